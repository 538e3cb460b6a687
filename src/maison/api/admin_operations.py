"""The administration operations, for the holders of the ``maison:admin`` scope (the
identity-vigilance cell, the data protection officer, the operators) and the portal's
administration space: ``Patient/$identity-vigilance`` (potential duplicates, INS collisions and
identity anomalies, as ``maison ins vigilance`` reports them), ``$audit-status`` (the audit
trail's head, last checkpoint and last full verification) and ``$annuaire-imports`` (the
history of the Annuaire Santé and FINESS imports). All three only read; each call is recorded
in the audit trail, and the patients a vigilance report names on their record's trail.

https://hl7.org/fhir/R4/operationdefinition.html
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from maison.api.interactions import Result
from maison.api.operations import (
    PROFESSIONAL_CONTEXTS,
    Invocation,
    Operation,
    Registry,
    load_definition,
)
from maison.audit.chain import AuditTrail, VerifyReport, verify_chain
from maison.fhir.errors import Category, FhirError, Issue
from maison.fhir.search import encode_cursor, parse_search
from maison.security.admin import ADMIN_SCOPE, is_admin
from maison.security.record_guard import Access
from maison.services.annuaire.importer import import_runs
from maison.services.ins.vigilance import (
    DEFAULT_THRESHOLD,
    Candidate,
    DuplicatePair,
    anomalies,
    candidate_from_patient,
    find_duplicates,
)
from maison.store import audit_log
from maison.store.sql import SqlStore

#: The store meta key of the last full verification of the audit chain (JSON).
VERIFY_META: Final = "audit_last_verify"
#: The most entries ``$audit-status?verify=true`` verifies within a request.
MAX_API_VERIFY: Final = 100_000
#: Bounds of ``_count``.
MAX_COUNT: Final = 1000
VIGILANCE_COUNT: Final = 100
IMPORTS_COUNT: Final = 50
#: Patients read per page by the vigilance report.
_PAGE: Final = 1000
#: The policy rule the trail names for an administrator's access.
ADMIN_RULE: Final = "admin"


# ------------------------------------------------------------------------------- common checks


def require_admin(inv: Invocation, code: str) -> None:
    """Refuse (403, traced as a denial) a caller without the administration scope:
    https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html."""
    if not is_admin(inv.principal):
        raise FhirError(
            Category.FORBIDDEN,
            f"${code} is reserved to the platform's administrators: the token does not "
            f"carry the {ADMIN_SCOPE} scope (granted at sign-in to the professionals named by "
            "maison serve --admin / MAISON_ADMINS)",
        )


def _unprocessable(message: str, parameter: str) -> FhirError:
    return FhirError(
        Category.UNPROCESSABLE, message, [Issue("error", "value", message, (parameter,))]
    )


def _count(inv: Invocation, code: str, default: int) -> int:
    value = inv.value("_count")
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise _unprocessable(f"${code}: _count must be an integer", "_count")
    if not 1 <= value <= MAX_COUNT:
        raise _unprocessable(f"${code}: _count must be between 1 and {MAX_COUNT}", "_count")
    return value


def _trace(inv: Invocation, code: str, patient: str | None = None) -> None:
    """Add an administrator's access to the request's trace (the audit trail): the call
    itself (no patient), or the identity of a patient it names."""
    rules = inv.tx.rules
    if rules is None:
        return
    if patient is None:
        reason = f"${code} by an administrator ({ADMIN_SCOPE})"
        rules.trace.append(Access(f"${code}", None, None, True, ADMIN_RULE, reason))
    else:
        reason = f"named by ${code}: identity-vigilance report ({ADMIN_SCOPE})"
        rules.trace.append(Access("read", patient, patient, True, ADMIN_RULE, reason))


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parameters(parameter: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": parameter}


# ------------------------------------------------------------------------ $identity-vigilance


@dataclass(frozen=True)
class VigilanceReport:
    """What the vigilance report found over the stored Patients (https://esante.gouv.fr/produits-services/referentiel-ins)."""

    patients: int
    pairs: list[DuplicatePair]
    anomalies: list[tuple[str, str]]
    candidates: dict[str, Candidate]


def vigilance_report(
    patients: Iterator[Mapping[str, Any]], threshold: float, homonyms: bool = False
) -> VigilanceReport:
    """The report ``maison ins vigilance`` prints, over a stream of Patients: potential
    duplicates and INS collisions by decreasing score, and identity anomalies (the Patients are
    not held, only their traits): https://esante.gouv.fr/produits-services/referentiel-ins."""
    candidates: dict[str, Candidate] = {}
    found: list[tuple[str, str]] = []
    count = 0
    for patient in patients:
        count += 1
        pid = str(patient.get("id"))
        candidates[pid] = candidate_from_patient(dict(patient), pid)
        found.extend(anomalies([dict(patient)]))
    pairs = list(find_duplicates(candidates.values(), threshold, report_homonyms=homonyms))
    kinds = {"COLP": 0, "DPOT": 1, "HOMD": 2}
    pairs.sort(key=lambda p: (-p.score, kinds.get(p.kind, 3), p.a, p.b))
    return VigilanceReport(count, pairs, found, candidates)


def _stored_patients(inv: Invocation) -> Iterator[Mapping[str, Any]]:
    """Every current Patient, page by page (keyset cursor), in the request's read unit: the
    store itself, the report being the administrator's (each patient it names is traced)."""
    cursor: str | None = None
    while True:
        params = [("_count", str(_PAGE))] + ([("_cursor", cursor)] if cursor else [])
        page = inv.tx.tx.search(parse_search(inv.ctx.defs, "Patient", params))
        for stored in page.entries:
            if stored.resource is not None:
                yield stored.resource
        if page.last is None or len(page.entries) < _PAGE:
            return
        cursor = encode_cursor(page.last)


def display(candidate: Candidate | None) -> str | None:
    """How the portal names a patient: ``NOM Prénom, né(e) le JJ/MM/AAAA`` (birth name, first
    birth first name): https://esante.gouv.fr/produits-services/referentiel-ins."""
    if candidate is None:
        return None
    name = " ".join(
        part
        for part in ((candidate.family or "").upper(), next(iter(candidate.given_names), ""))
        if part
    )
    born = candidate.birth_date or ""
    if len(born) == 10:
        born = f"{born[8:10]}/{born[5:7]}/{born[:4]}"
    elif len(born) == 7:
        born = f"{born[5:7]}/{born[:4]}"
    when = f"né(e) le {born}" if born else "date de naissance inconnue"
    return f"{name or 'nom inconnu'}, {when}"


def _patient_ref(pid: str, candidates: Mapping[str, Candidate]) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": f"Patient/{pid}"}
    label = display(candidates.get(pid))
    if label:
        ref["display"] = label
    return ref


def identity_vigilance(inv: Invocation) -> Result:
    """``GET Patient/$identity-vigilance``: https://hl7.org/fhir/R4/operationdefinition.html."""
    code = "identity-vigilance"
    require_admin(inv, code)
    threshold = inv.value("threshold")
    if threshold is None:
        threshold = DEFAULT_THRESHOLD
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise _unprocessable(f"${code}: threshold must be a number", "threshold")
    if not 0.0 <= float(threshold) <= 1.0:
        raise _unprocessable(f"${code}: threshold must be between 0 and 1", "threshold")
    count = _count(inv, code, VIGILANCE_COUNT)
    homonyms = inv.value("homonyms") is True
    report = vigilance_report(_stored_patients(inv), float(threshold), homonyms)
    _trace(inv, code)
    out: list[dict[str, Any]] = [
        {"name": "threshold", "valueDecimal": float(threshold)},
        {"name": "patients", "valueInteger": report.patients},
        {"name": "pairs", "valueInteger": len(report.pairs)},
        {"name": "anomalies", "valueInteger": len(report.anomalies)},
    ]
    named: dict[str, None] = {}
    for pair in report.pairs[:count]:
        parts: list[dict[str, Any]] = [
            {"name": "patient", "valueReference": _patient_ref(pid, report.candidates)}
            for pid in (pair.a, pair.b)
        ]
        parts.append({"name": "score", "valueDecimal": pair.score})
        parts.append({"name": "kind", "valueCode": pair.kind})
        parts.extend({"name": "reason", "valueString": why} for why in pair.reasons)
        out.append({"name": "pair", "part": parts})
        named.update({pair.a: None, pair.b: None})
    for pid, why in report.anomalies[:count]:
        out.append(
            {
                "name": "anomaly",
                "part": [
                    {"name": "patient", "valueReference": _patient_ref(pid, report.candidates)},
                    {"name": "reason", "valueString": why},
                ],
            }
        )
        named[pid] = None
    for pid in named:
        _trace(inv, code, f"Patient/{pid}")
    return Result(200, _parameters(out))


# ------------------------------------------------------------------------------ $audit-status


def record_verification(
    store: SqlStore, report: VerifyReport, by: str, from_seq: int = 1
) -> dict[str, Any]:
    """Keep the outcome of a full verification of the audit chain in the store's meta, for
    ``$audit-status``; returns what was recorded (https://profiles.ihe.net/ITI/BALP/)."""
    entry: dict[str, Any] = {
        "time": _instant(store.clock()),
        "by": by,
        "outcome": "intact" if report.broken is None else "broken",
        "checked": report.checked,
        "from": from_seq,
        "last": report.last,
        "checkpoints": report.checkpoints,
        "seconds": round(report.seconds, 3),
    }
    if report.broken is not None:
        entry["problem"] = report.broken.message
        entry["problem_seq"] = report.broken.seq
        entry["problem_kind"] = report.broken.kind
    store.set_meta(VERIFY_META, orjson.dumps(entry).decode())
    return entry


def last_verification(store: SqlStore) -> dict[str, Any] | None:
    """The last full verification recorded, or None when the chain was never verified
    (https://profiles.ihe.net/ITI/BALP/)."""
    raw = store.get_meta(VERIFY_META)
    if not raw:
        return None
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) else None


def _verification_parts(entry: Mapping[str, Any] | None, head_seq: int) -> list[dict[str, Any]]:
    if entry is None:
        return [
            {"name": "outcome", "valueCode": "never"},
            {
                "name": "problem",
                "valueString": "la chaîne n'a jamais été vérifiée : lancer maison audit verify "
                "/ the chain was never verified: run maison audit verify",
            },
        ]
    parts: list[dict[str, Any]] = [{"name": "outcome", "valueCode": str(entry.get("outcome"))}]
    typed = (
        ("time", "valueInstant", str),
        ("by", "valueCode", str),
        ("checked", "valueInteger", int),
        ("from", "valueInteger", int),
        ("last", "valueInteger", int),
        ("checkpoints", "valueInteger", int),
        ("seconds", "valueDecimal", float),
    )
    for key, value_key, kind in typed:
        if entry.get(key) is not None:
            parts.append({"name": key, value_key: kind(entry[key])})
    last = entry.get("last")
    parts.append({"name": "unverified", "valueInteger": max(head_seq - int(last or 0), 0)})
    if entry.get("problem"):
        parts.append({"name": "problem", "valueString": str(entry["problem"])})
        if entry.get("problem_seq") is not None:
            parts.append({"name": "problem-seq", "valueInteger": int(entry["problem_seq"])})
        if entry.get("problem_kind"):
            parts.append({"name": "problem-kind", "valueCode": str(entry["problem_kind"])})
    return parts


def audit_status(
    inv: Invocation, store: SqlStore, trail: Callable[[], AuditTrail | None]
) -> Result:
    """``GET $audit-status``: https://hl7.org/fhir/R4/operationdefinition.html."""
    code = "audit-status"
    require_admin(inv, code)
    verify = inv.value("verify") is True
    head = audit_log.head_of(store.engine)
    seq = head.seq if head is not None else 0
    if verify:
        chain = trail()
        if chain is None:
            raise _unprocessable(f"${code}: this server keeps no audit trail", "verify")
        if seq > MAX_API_VERIFY:
            raise _unprocessable(
                f"${code}: the trail holds {seq:,} entries, more than the {MAX_API_VERIFY:,} a "
                "request verifies: run maison audit verify (its outcome is then reported here)",
                "verify",
            )
        record_verification(store, verify_chain(store, chain.key), "api")
    _trace(inv, code)
    out: list[dict[str, Any]] = [{"name": "entries", "valueInteger": seq}]
    if head is not None and seq:
        out.append(
            {
                "name": "head",
                "part": [
                    {"name": "seq", "valueInteger": seq},
                    {"name": "hash", "valueString": head.hash.hex()[:16]},
                ],
            }
        )
    if head is not None and head.checkpoint_seq:
        mark = next(
            (
                m
                for m in audit_log.checkpoints(store.engine, head.checkpoint_seq)
                if m.seq == head.checkpoint_seq
            ),
            None,
        )
        if mark is not None:
            out.append(
                {
                    "name": "checkpoint",
                    "part": [
                        {"name": "seq", "valueInteger": mark.seq},
                        {"name": "time", "valueInstant": mark.at},
                        {"name": "key", "valueString": mark.key_id},
                        {"name": "unsigned", "valueInteger": max(seq - mark.seq, 0)},
                    ],
                }
            )
    out.append(
        {"name": "last-verification", "part": _verification_parts(last_verification(store), seq)}
    )
    return Result(200, _parameters(out))


# -------------------------------------------------------------------------- $annuaire-imports

_COUNTS: Final = (
    "rows",
    "persons",
    "created",
    "updated",
    "unchanged",
    "deactivated",
    "rejected",
    "invalid",
    "run",
)


def _import_parts(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"name": "time", "valueInstant": str(run.get("time", ""))},
        {"name": "kind", "valueCode": str(run.get("kind", ""))},
        {"name": "outcome", "valueCode": str(run.get("outcome", ""))},
    ]
    parts.extend({"name": "file", "valueString": str(f)} for f in run.get("files") or ())
    for key in _COUNTS:
        value = run.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            parts.append({"name": key, "valueInteger": value})
    parts.append({"name": "duration", "valueDecimal": float(run.get("seconds") or 0.0)})
    if run.get("error"):
        parts.append({"name": "error", "valueString": str(run["error"])})
    return parts


def annuaire_imports(inv: Invocation, store: SqlStore) -> Result:
    """``GET $annuaire-imports``: https://hl7.org/fhir/R4/operationdefinition.html."""
    code = "annuaire-imports"
    require_admin(inv, code)
    count = _count(inv, code, IMPORTS_COUNT)
    runs = import_runs(store)
    _trace(inv, code)
    out: list[dict[str, Any]] = [{"name": "total", "valueInteger": len(runs)}]
    out.extend({"name": "import", "part": _import_parts(run)} for run in runs[:count])
    return Result(200, _parameters(out))


# ------------------------------------------------------------------------------ registration


def register_admin(
    registry: Registry, store: SqlStore, trail: Callable[[], AuditTrail | None]
) -> None:
    """Offer the administration operations (read-only, ``maison:admin`` holders among
    professionals and systems): https://hl7.org/fhir/R4/operationdefinition.html."""

    def status(inv: Invocation) -> Result:
        return audit_status(inv, store, trail)

    def imports(inv: Invocation) -> Result:
        return annuaire_imports(inv, store)

    for name, handler in (
        ("Patient-identity-vigilance", identity_vigilance),
        ("audit-status", status),
        ("annuaire-imports", imports),
    ):
        registry.add(Operation(load_definition(name), handler, "read", PROFESSIONAL_CONTEXTS))


__all__ = [
    "MAX_API_VERIFY",
    "VERIFY_META",
    "VigilanceReport",
    "annuaire_imports",
    "audit_status",
    "display",
    "identity_vigilance",
    "last_verification",
    "record_verification",
    "register_admin",
    "require_admin",
    "vigilance_report",
]
