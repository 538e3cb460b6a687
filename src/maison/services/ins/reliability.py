"""RNIV identity statuses (PROV, RECUP, VALI, QUAL), checked against their evidence.

The FR Core extension ``fr-core-identity-reliability`` carries the status (``identityStatus``)
and its evidence: ``methodCollection``, ``dateInterrogationINSi``, ``validationMode``,
``validationDate`` and ``comment`` (RNIV attributes such as DOUT, FICT). The four statuses
are the crossing of two independent criteria (FR Core CodeSystem
``fr-core-cs-identity-status``, RNIV EXI SI 07): *retrieved through INSi* (RECUP, QUAL) and
*checked against a high-trust identity document* (VALI, QUAL). The server does not trust a
bare claim; each criterion must be supported:

* INSi criterion: a record of a successful INSi call (CR 00) made by the platform's own
  service, whose matricule is on the Patient and whose traits equal the Patient's
  (:class:`InsiEvidence`); or ``dateInterrogationINSi`` + ``methodCollection`` INSI or CV
  (carte Vitale read, then INSi call) declared by a client allowed to assert INSi results
  (``may_assert_insi``). Either way the Patient must carry a matricule INS in force.
* document criterion: ``validationMode`` (any code of ``fr-core-cs-mode-validation-identity``,
  a required binding listing only the RNIV high-trust devices and the RNIV exceptions for
  minors and EHPAD residents) + ``validationDate``.
* ``methodCollection`` AV (Application carte Vitale) fulfils both (RNIV v2.0 §4.3.4, cited by
  FR Core). It replaces the INSi call, so it needs the same right as an INSi assertion.
* a criterion established by a stored version persists while the strict traits (and, for the
  INSi criterion, the matricule) do not change.
* not evidence: ``methodCollection`` SM, CB (Datamatrix INS read from a document) and RFID say
  how traits were captured, not that INSi was called or a document checked.

Decisions (our derivation from the status definitions; the RNIV text on trait modification
was not available to us): a change of a strict trait voids the criteria established for the
old traits, because both criteria are statements about *those* traits (INSi returned them;
the document showed them). The status then falls to what the new evidence in the same write
supports (INSi evidence for the new traits, a declared ``dateInterrogationINSi`` that differs
from the stored one, a validationMode/validationDate that differs from the stored ones, or AV
with a new validationDate); the write is
accepted with a warning rather than refused, because correcting a trait is legitimate. A
claim the evidence never supported is refused (422). DOUT/FICT force PROV and forbid INSi
calls (RNIV EXI SI 09, FR Core invariants ``fr-core-identity-reliability-1/2``). The
matricule of an identity is only emitted when it is QUAL (FR Core profile description; RNIV);
FR Core invariants ``fr-core-1/2`` (written on VALI) are not business rules here.

https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-identity-reliability.html
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from maison.fhir.errors import Category, FhirError, Issue
from maison.services.ins.matricule import active_ins, active_ins_values, check_patient_identifiers
from maison.services.ins.traits import (
    TRAIT_PATHS,
    Traits,
    carries_ins,
    strict_traits_changed,
    traits_from_patient,
)

RELIABILITY_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
IDENTITY_STATUS_CS = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status"
#: FR Core 2.1.x coded the status in this CodeSystem (PDSm 3.1 depends on FR Core 2.1.0).
LEGACY_STATUS_CS = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445"
METHOD_COLLECTION_CS = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-method-collection"
VALIDATION_MODE_CS = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-mode-validation-identity"
COMMENT_CS = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status-comment"

PROV, RECUP, VALI, QUAL = "PROV", "RECUP", "VALI", "QUAL"
STATUS_DISPLAY = {
    PROV: "Identité provisoire",
    RECUP: "Identité récupérée",
    VALI: "Identité validée",
    QUAL: "Identité qualifiée",
}
#: The criteria each status asserts.
_CRITERIA: dict[str, frozenset[str]] = {
    PROV: frozenset(),
    RECUP: frozenset({"insi"}),
    VALI: frozenset({"document"}),
    QUAL: frozenset({"insi", "document"}),
}
_STATUS_OF = {criteria: status for status, criteria in _CRITERIA.items()}

#: fr-core-cs-method-collection (extensible binding).
METHODS = {
    "SM": "Saisie manuelle",
    "CV": "Carte Vitale",
    "INSI": "Téléservice INSi",
    "CB": "Code à barre",
    "RFID": "Puce RFID",
    "AV": "Application carte Vitale",
}
#: Methods that include an INSi call: direct query by traits, or carte Vitale read then INSi.
INSI_METHODS = frozenset({"INSI", "CV"})
#: fr-core-cs-mode-validation-identity (required binding): the RNIV high-trust devices.
HIGH_TRUST_MODES = {
    "CN": "Carte nationale d'identité",
    "PA": "Passeport",
    "CS": "Carte de séjour",
    "eCN": "e-carte d'identité",
    "IN": "Identité Numérique La Poste",
    "AV": "Application Carte Vitale",
    "LECV": "Livret de famille, accompagné de la carte Vitale avec photographie",
    "AN": "Extrait d'acte de naissance",
    "LEP": "Livret de famille des parents",
    "CC": "Carnet de circulation",
    "ANCV": "(Extrait d')acte de naissance, accompagné de la carte Vitale avec photographie",
}
#: fr-core-cs-identity-status-comment (extensible binding).
COMMENTS = frozenset(
    {
        "VIDE", "DOUB", "DESA", "DPOT", "DOUA", "COLP", "COLV", "FILI", "CACH", "ANOM",
        "IDVER", "RECD", "IDRA", "USUR", "HOMD", "INVA", "HOMA", "FICT", "DOUT",
    }
)  # fmt: skip
_SUBS = {
    "methodCollection": "valueCoding",
    "dateInterrogationINSi": "valueDate",
    "identityStatus": "valueCoding",
    "comment": "valueCodeableConcept",
    "validationDate": "valueDate",
    "validationMode": "valueCoding",
}
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$", re.ASCII)


@dataclass(frozen=True)
class Reliability:
    """What a Patient's identity-reliability extension says (issues are not compared)."""

    status: str | None = None
    method: str | None = None
    insi_date: str | None = None
    validation_mode: str | None = None
    validation_date: str | None = None
    comments: tuple[str, ...] = ()
    index: int | None = None  # Patient.extension index of the extension used
    status_index: int | None = None  # its identityStatus sub-extension index
    issues: tuple[Issue, ...] = field(default=(), compare=False)

    @property
    def doubtful(self) -> bool:
        """RNIV attribute DOUT (identité douteuse)."""
        return "DOUT" in self.comments

    @property
    def fictitious(self) -> bool:
        """RNIV attribute FICT (identité fictive)."""
        return "FICT" in self.comments


@dataclass(frozen=True)
class InsiEvidence:
    """A record of an INSi call made by the platform's own INSi service."""

    cr: str  # INSi return code: "00" one identity found, "01" none, "02" several
    date: str  # YYYY-MM-DD of the call
    system: str  # FHIR system of the returned OID (INS-NIR, INS-NIA, test, demo)
    matricule: str  # the 15-character matricule INS returned
    traits: Traits  # the traits returned (traits.traits_from_insi)
    method: str = "INSI"  # INSI (query by traits) or CV (carte Vitale)


@dataclass(frozen=True)
class Decision:
    """The outcome of checking a Patient write against RNIV status rules."""

    outcome: str  # "accepted" | "downgraded" | "refused"
    resource: dict[str, Any] | None  # the Patient to store (a new dict); None when refused
    status: str | None  # the status stored (None: no status)
    claimed: str | None  # the status the client sent
    issues: tuple[Issue, ...] = ()

    @property
    def error(self) -> FhirError | None:
        """The 422 error to answer when the write is refused."""
        if self.outcome != "refused":
            return None
        errors = [i for i in self.issues if i.severity in ("error", "fatal")]
        message = errors[0].diagnostics if errors else "Identity status refused"
        return FhirError(Category.UNPROCESSABLE, message, list(self.issues))


def _issue(severity: str, code: str, expression: str, message: str) -> Issue:
    return Issue(severity, code, message, (expression,) if expression else ())


def _check_date(
    value: object, expression: str, label: str, today: date | None, issues: list[Issue]
) -> str | None:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        issues.append(
            _issue("error", "value", expression, f"{expression}: {label} {value!r} is not a date")
        )
        return None
    parts = [int(p) for p in value.split("-")]
    try:
        day = date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
    except ValueError:
        issues.append(
            _issue(
                "error",
                "value",
                expression,
                f"{expression}: {label} {value} is not a calendar date",
            )
        )
        return None
    if today is not None and day > today:
        issues.append(
            _issue(
                "error",
                "value",
                expression,
                f"{expression}: {label} {value} is in the future (today is {today.isoformat()})",
            )
        )
        return None
    return value


def _coding(
    sub: Mapping[str, Any], expression: str, issues: list[Issue]
) -> tuple[str | None, str | None]:
    coding = sub.get("valueCoding")
    if not isinstance(coding, Mapping):
        issues.append(_issue("error", "value", expression, f"{expression}: expected a valueCoding"))
        return None, None
    system, code = coding.get("system"), coding.get("code")
    if not isinstance(code, str):
        issues.append(
            _issue("error", "required", expression, f"{expression}: valueCoding has no code")
        )
        return None, None
    return (system if isinstance(system, str) else None), code


def _read_one(
    index: int, ext: Mapping[str, Any], today: date | None, issues: list[Issue]
) -> dict[str, Any]:
    base = f"Patient.extension[{index}]"
    out: dict[str, Any] = {"comments": [], "index": index}
    if any(k.startswith("value") for k in ext):
        issues.append(
            _issue(
                "error",
                "structure",
                base,
                f"{base}: {RELIABILITY_URL} is a complex extension: put the status and its "
                "evidence in sub-extensions, not in a value",
            )
        )
    subs = ext.get("extension")
    if not isinstance(subs, list):
        return out
    seen: dict[str, int] = {}
    for j, sub in enumerate(subs):
        expr = f"{base}.extension[{j}]"
        if not isinstance(sub, Mapping):
            continue
        url = sub.get("url")
        if url not in _SUBS:
            issues.append(
                _issue(
                    "warning",
                    "informational",
                    expr,
                    f"{expr}: sub-extension {url!r} is not defined by {RELIABILITY_URL} and is "
                    "ignored",
                )
            )
            continue
        assert isinstance(url, str)
        if url != "comment" and url in seen:
            issues.append(
                _issue(
                    "error",
                    "structure",
                    expr,
                    f"{expr}: {url} appears more than once (max 1; first at "
                    f"{base}.extension[{seen[url]}])",
                )
            )
            continue
        seen.setdefault(url, j)
        value_key = _SUBS[url]
        if value_key not in sub:
            issues.append(_issue("error", "value", expr, f"{expr}: {url} takes a {value_key}"))
            continue
        if url == "identityStatus":
            _read_status(sub, expr, out, j, issues)
        elif url == "methodCollection":
            system, code = _coding(sub, f"{expr}.valueCoding", issues)
            if code is not None:
                if code not in METHODS or system not in (None, METHOD_COLLECTION_CS):
                    issues.append(
                        _issue(
                            "warning",
                            "code-unknown",
                            f"{expr}.valueCoding",
                            f"{expr}: collection method {system}#{code} is not one of "
                            f"{METHOD_COLLECTION_CS} ({', '.join(METHODS)}); it proves nothing",
                        )
                    )
                else:
                    out["method"] = code
        elif url == "validationMode":
            system, code = _coding(sub, f"{expr}.valueCoding", issues)
            if code is not None:
                if code not in HIGH_TRUST_MODES or system not in (None, VALIDATION_MODE_CS):
                    issues.append(
                        _issue(
                            "error",
                            "code-invalid",
                            f"{expr}.valueCoding",
                            f"{expr}: validation mode {system}#{code} is not a high-trust "
                            f"identity device of {VALIDATION_MODE_CS} "
                            f"({', '.join(HIGH_TRUST_MODES)})",
                        )
                    )
                else:
                    out["validation_mode"] = code
        elif url == "dateInterrogationINSi":
            out["insi_date"] = _check_date(
                sub.get("valueDate"), f"{expr}.valueDate", "dateInterrogationINSi", today, issues
            )
        elif url == "validationDate":
            out["validation_date"] = _check_date(
                sub.get("valueDate"), f"{expr}.valueDate", "validationDate", today, issues
            )
        else:  # comment
            concept = sub.get("valueCodeableConcept")
            codings = concept.get("coding") if isinstance(concept, Mapping) else None
            for coding in codings if isinstance(codings, list) else []:
                if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                    out["comments"].append(coding["code"])
    return out


def _read_status(
    sub: Mapping[str, Any], expr: str, out: dict[str, Any], j: int, issues: list[Issue]
) -> None:
    system, code = _coding(sub, f"{expr}.valueCoding", issues)
    if code is None:
        return
    where = f"{expr}.valueCoding"
    if code not in _CRITERIA:
        issues.append(
            _issue(
                "error",
                "code-invalid",
                where,
                f"{where}: identity status {code!r} is not one of PROV, RECUP, VALI, QUAL "
                f"({IDENTITY_STATUS_CS})",
            )
        )
        return
    if system == LEGACY_STATUS_CS:
        issues.append(
            _issue(
                "warning",
                "code-invalid",
                where,
                f"{where}: {LEGACY_STATUS_CS} is the FR Core 2.1 CodeSystem; use "
                f"{IDENTITY_STATUS_CS}",
            )
        )
    elif system is None:
        issues.append(
            _issue("warning", "required", where, f"{where}: add system {IDENTITY_STATUS_CS}")
        )
    elif system != IDENTITY_STATUS_CS:
        issues.append(
            _issue(
                "error",
                "code-invalid",
                where,
                f"{where}: identity status system {system!r} is not {IDENTITY_STATUS_CS}",
            )
        )
        return
    out["status"] = code
    out["status_index"] = j


def read_reliability(patient: Mapping[str, Any], today: date | None = None) -> Reliability:
    """The identity status and its evidence, with issues: https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-identity-reliability.html."""
    issues: list[Issue] = []
    exts = patient.get("extension")
    found = [
        (i, e)
        for i, e in enumerate(exts if isinstance(exts, list) else [])
        if isinstance(e, Mapping) and e.get("url") == RELIABILITY_URL
    ]
    if not found:
        return Reliability()
    read = [_read_one(i, e, today, issues) for i, e in found]
    with_status = [r for r in read if r.get("status") is not None]
    if len(with_status) > 1:
        where = tuple(f"Patient.extension[{r['index']}]" for r in with_status)
        issues.append(
            Issue(
                "error",
                "business-rule",
                f"{', '.join(where)}: {len(with_status)} identity statuses; an identity has "
                "exactly one (RNIV EXI SI 07)",
                where,
            )
        )
    elif len(read) > 1:
        primary = with_status[0] if with_status else read[0]
        issues.append(
            _issue(
                "warning",
                "business-rule",
                "Patient.extension",
                f"Patient.extension: {len(read)} {RELIABILITY_URL} extensions; only "
                f"Patient.extension[{primary['index']}] is read for the status and its evidence "
                "(comments of all are read)",
            )
        )
    primary = with_status[0] if with_status else read[0]
    comments = tuple(dict.fromkeys(c for r in read for c in r["comments"]))
    status = primary.get("status")
    base = f"Patient.extension[{primary['index']}]"
    for attribute in ("DOUT", "FICT"):
        if attribute in comments and status != PROV:
            issues.append(
                _issue(
                    "error",
                    "invariant",
                    base,
                    f"{base}: an identity with attribute {attribute} "
                    f"({'identité douteuse' if attribute == 'DOUT' else 'identité fictive'}) "
                    f"must have status PROV, not {status or 'none'} (RNIV EXI SI 09; FR Core "
                    "fr-core-identity-reliability-1)",
                )
            )
    if "DOUT" in comments and "FICT" in comments:
        issues.append(
            _issue(
                "error",
                "invariant",
                base,
                f"{base}: attributes FICT and DOUT cannot be combined (RNIV; FR Core "
                "fr-core-identity-reliability-2)",
            )
        )
    for code in comments:
        if code not in COMMENTS:
            issues.append(
                _issue(
                    "warning",
                    "code-unknown",
                    base,
                    f"{base}: comment code {code!r} is not in {COMMENT_CS}",
                )
            )
    return Reliability(
        status=status,
        method=primary.get("method"),
        insi_date=primary.get("insi_date"),
        validation_mode=primary.get("validation_mode"),
        validation_date=primary.get("validation_date"),
        comments=comments,
        index=primary["index"],
        status_index=primary.get("status_index"),
        issues=tuple(issues),
    )


def insi_call_allowed(patient: Mapping[str, Any]) -> Issue | None:
    """None, or why INSi may not be called for this identity (DOUT/FICT, RNIV EXI SI 09): https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-identity-reliability.html."""
    rel = read_reliability(patient)
    for attribute, label in (("DOUT", "identité douteuse"), ("FICT", "identité fictive")):
        if attribute in rel.comments:
            where = f"Patient.extension[{rel.index}]"
            return _issue(
                "error",
                "business-rule",
                where,
                f"{where}: the identity has attribute {attribute} ({label}); the INSi "
                "téléservice may not be called for it (RNIV EXI SI 09)",
            )
    return None


def may_emit_ins(patient: Mapping[str, Any]) -> bool:
    """True only for a QUAL identity with a matricule in force: https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    rel = read_reliability(patient)
    if any(i.severity in ("error", "fatal") for i in rel.issues):
        return False
    return (
        rel.status == QUAL and not rel.doubtful and not rel.fictitious and bool(active_ins(patient))
    )


def _status_of(criteria: frozenset[str]) -> str:
    return _STATUS_OF[criteria]


def _insi_evidence_reasons(
    evidence: InsiEvidence, traits: Traits, ins: frozenset[tuple[str, str]]
) -> list[str]:
    reasons: list[str] = []
    if evidence.cr != "00":
        meaning = {"01": "no identity found", "02": "several identities found"}.get(
            evidence.cr, "not a success"
        )
        return [
            f"the platform's INSi call of {evidence.date} returned CR {evidence.cr} ({meaning})"
        ]
    if (evidence.system, evidence.matricule) not in ins:
        reasons.append(
            f"the Patient does not carry the matricule {evidence.matricule} ({evidence.system}) "
            f"returned by the platform's INSi call of {evidence.date}"
        )
    pairs = (
        ("birthName", evidence.traits.birth_name, traits.birth_name),
        ("birthGivenNames", " ".join(evidence.traits.given_names), " ".join(traits.given_names)),
        ("birthDate", evidence.traits.birth_date, traits.birth_date),
        ("sex", evidence.traits.sex, traits.sex),
    )
    for name, insi, mine in pairs:
        if insi != mine:
            reasons.append(
                f"{name} differs from the platform's INSi answer of {evidence.date} "
                f"(INSi {insi!r}, Patient {mine!r} at {TRAIT_PATHS[name]})"
            )
    if (
        evidence.traits.birth_place is not None
        and evidence.traits.birth_place != traits.birth_place
    ):
        reasons.append(
            f"birthPlace differs from the platform's INSi answer of {evidence.date} "
            f"(INSi {evidence.traits.birth_place!r}, Patient {traits.birth_place!r})"
        )
    return reasons


def check_status(
    new_patient: Mapping[str, Any],
    old_patient: Mapping[str, Any] | None,
    insi_evidence: InsiEvidence | None,
    may_assert_insi: bool,
    *,
    today: date,
) -> Decision:
    """Check the claimed RNIV status against its evidence; downgrade after a trait change: https://hl7.fr/ig/fhir/core/CodeSystem-fr-core-cs-identity-status.html."""
    new_rel = read_reliability(new_patient, today)
    issues: list[Issue] = list(new_rel.issues)
    claimed = new_rel.status
    if any(i.severity in ("error", "fatal") for i in issues):
        return Decision("refused", None, None, claimed, tuple(issues))
    old_rel = read_reliability(old_patient) if old_patient is not None else None
    new_traits = traits_from_patient(new_patient, today)
    old_traits = traits_from_patient(old_patient, today) if old_patient is not None else None
    new_ins = active_ins_values(new_patient)
    old_ins = active_ins_values(old_patient) if old_patient is not None else frozenset()
    changed = strict_traits_changed(old_traits, new_traits) if old_traits is not None else []
    ins_changed = old_patient is not None and new_ins != old_ins
    old_status = (old_rel.status if old_rel is not None else None) or PROV

    insi_reasons: list[str] = []
    platform = False
    if insi_evidence is not None:
        found = _insi_evidence_reasons(insi_evidence, new_traits, new_ins)
        platform = not found
        insi_reasons.extend(found)
    else:
        insi_reasons.append("the platform has no record of an INSi call for this Patient")
    declared = False
    if may_assert_insi:
        if not new_ins:
            insi_reasons.append("the Patient carries no matricule INS in force")
        elif new_rel.method not in INSI_METHODS or new_rel.insi_date is None:
            insi_reasons.append(
                "the reliability extension does not declare an INSi call (dateInterrogationINSi "
                "and methodCollection INSI or CV)"
            )
        else:
            declared = True
    else:
        insi_reasons.append(
            "this client may not assert an INSi result itself (dateInterrogationINSi / "
            "methodCollection are only trusted from clients with that right)"
        )
    fresh_insi_date = old_rel is None or new_rel.insi_date != old_rel.insi_date
    av = may_assert_insi and new_rel.method == "AV" and bool(new_ins)
    fresh_av = (
        old_rel is None
        or old_rel.method != "AV"
        or new_rel.validation_date != old_rel.validation_date
    )
    document = new_rel.validation_mode is not None and new_rel.validation_date is not None
    fresh_document = old_rel is None or (new_rel.validation_mode, new_rel.validation_date) != (
        old_rel.validation_mode,
        old_rel.validation_date,
    )
    insi_persisted = "insi" in _CRITERIA[old_status] and bool(new_ins)
    document_persisted = "document" in _CRITERIA[old_status]
    insi_void = bool(changed) or ins_changed
    document_void = bool(changed)

    # What the evidence supports once a change of traits / matricule voids the old criteria.
    insi_ok = (
        platform
        or (declared and (fresh_insi_date or not insi_void))
        or (insi_persisted and not insi_void)
    )
    if declared and insi_void and not fresh_insi_date:
        insi_reasons.append(
            "dateInterrogationINSi is the one stored before the strict traits or the matricule "
            "changed: a new INSi call is needed"
        )
    doc_ok = (document and (fresh_document or not document_void)) or (
        document_persisted and not document_void
    )
    av_ok = av and (fresh_av or not insi_void)
    supported = frozenset({"insi"} if insi_ok or av_ok else set()) | frozenset(
        {"document"} if doc_ok or av_ok else set()
    )

    wanted = _CRITERIA[claimed or PROV]
    status = claimed
    outcome = "accepted"
    status_expr = (
        f"Patient.extension[{new_rel.index}].extension[{new_rel.status_index}].valueCoding.code"
        if new_rel.index is not None and new_rel.status_index is not None
        else "Patient.extension"
    )
    missing = wanted - supported
    if missing:
        if (changed or ins_changed) and missing <= _CRITERIA[old_status]:
            status = _status_of(wanted & supported)
            outcome = "downgraded"
            what = []
            if changed:
                what.append("strict trait(s) " + ", ".join(changed))
            if ins_changed:
                what.append("the matricule INS")
            issues.append(
                _issue(
                    "warning",
                    "business-rule",
                    status_expr,
                    f"{status_expr}: {' and '.join(what)} changed on a {old_status} identity; "
                    f"status {claimed} downgraded to {status}: the INSi retrieval and the "
                    "identity-document check held for the previous traits; a new INSi call "
                    "(RECUP) or a new document check (VALI: new validationMode/validationDate) "
                    "re-establishes them",
                )
            )
        else:
            parts = []
            if "insi" in missing:
                parts.append(
                    f"status {claimed} needs a successful INSi retrieval: "
                    + "; ".join(insi_reasons)
                )
            if "document" in missing:
                parts.append(
                    f"status {claimed} needs a check against a high-trust identity document: set "
                    f"validationMode ({', '.join(HIGH_TRUST_MODES)}) and validationDate"
                    + (
                        " (a new check, since strict traits changed)"
                        if document and document_void and not fresh_document
                        else ""
                    )
                )
            issues.append(
                _issue("error", "business-rule", status_expr, f"{status_expr}: " + ". ".join(parts))
            )
            issues.extend(new_traits.issues)  # all the problems at once, for the client
            return Decision("refused", None, None, claimed, tuple(issues))

    enforce = (status not in (None, PROV)) or carries_ins(new_patient)
    if enforce:
        trait_errors = [i for i in new_traits.issues if i.severity in ("error", "fatal")]
        issues.extend(new_traits.issues)
        if trait_errors:
            return Decision("refused", None, None, claimed, tuple(issues))

    resource = copy.deepcopy(dict(new_patient))
    if outcome == "downgraded" and new_rel.index is not None and new_rel.status_index is not None:
        sub = resource["extension"][new_rel.index]["extension"][new_rel.status_index]
        assert status is not None
        sub["valueCoding"] = {
            "system": IDENTITY_STATUS_CS,
            "code": status,
            "display": STATUS_DISPLAY[status],
        }
    return Decision(outcome, resource, status, claimed, tuple(issues))


def check_patient_write(
    new_patient: Mapping[str, Any],
    old_patient: Mapping[str, Any] | None,
    insi_evidence: InsiEvidence | None,
    may_assert_insi: bool,
    *,
    today: date,
) -> Decision:
    """INS checks for every Patient create/update: identifiers, then status: https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    id_issues = check_patient_identifiers(new_patient)
    decision = check_status(new_patient, old_patient, insi_evidence, may_assert_insi, today=today)
    issues = (*id_issues, *decision.issues)
    if any(i.severity in ("error", "fatal") for i in id_issues):
        return Decision("refused", None, None, decision.claimed, issues)
    return Decision(decision.outcome, decision.resource, decision.status, decision.claimed, issues)
