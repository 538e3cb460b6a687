"""Identity-vigilance merge of two Patient records, and its reverse.

A cellule d'identitovigilance that finds a *doublon* (one person, two records) merges the
duplicate (source) into the surviving record (target): the source is deactivated and linked
``replaced-by`` the target, the target ``replaces`` the source and keeps the source's local
identifiers (IPP) with ``use`` ``old``, and every resource that referenced the source is
repointed to the target, each as a new version. A Provenance records the merge; ``$unmerge``
reads it to undo the merge. Two records carrying different matricules INS are two persons and
are never merged; the surviving record is the one carrying the INS.

https://hl7.org/fhir/R5/patient-operation-merge.html (parameter names and semantics)
https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient.html (IPP ``usual``, ``old`` once
merged)
https://esante.gouv.fr/produits-services/referentiel-ins (RNIV: doublons, fusion)
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from maison.fhir.definitions import Definitions
from maison.fhir.errors import ISSUE_CODE, Category, FhirError, Issue, invalid, operation_outcome
from maison.fhir.search import SearchQuery, parse_search
from maison.services.ins.matricule import active_ins_values, identifier_kind
from maison.store.interface import SearchPage, Stored

DATA_OPERATION: Final = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
#: ISO 21089 record-lifecycle events: the only base CodeSystem with ``merge``/``unmerge``
#: (v3-DataOperation has none, so ``UPDATE`` is sent alongside it).
LIFECYCLE: Final = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
PARTICIPANT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
MERGE: Final = "merge"
UNMERGE: Final = "unmerge"
#: Records of what happened: never rewritten by a merge (they stay true to their time).
NEVER_REPOINTED: Final = frozenset({"Provenance", "AuditEvent"})

Path = tuple[str | int, ...]
Written = tuple[Stored, list[Issue]]


class MergeTx(Protocol):
    """What a merge reads: a StoreTx, or the GuardedTx of the caller."""

    def read(self, res_type: str, res_id: str) -> Stored | None:
        """The current version (a tombstone if deleted), or None."""

    def vread(self, res_type: str, res_id: str, version: int) -> Stored | None:
        """One version."""

    def search(self, query: SearchQuery) -> SearchPage:
        """Run a parsed search."""

    def referencing(
        self,
        res_type: str,
        res_id: str,
        via: Mapping[str, Collection[str]] | None = None,
        having: Mapping[str, tuple[str, str]] | None = None,
    ) -> list[tuple[str, str]]:
        """The resources whose references point to ``res_type/res_id``."""


class Writer(Protocol):
    """How a merge writes: through the same validation and write rules as any update (the INS
    rules on Patient), so a merge cannot store what a PUT would refuse."""

    def update(self, resource: dict[str, Any], version: int) -> Written:
        """Store a new version of ``resource`` replacing ``version``."""

    def create(self, resource: dict[str, Any]) -> Written:
        """Store a new resource."""


@dataclass(frozen=True)
class MergeRequest:
    """The patients to merge, by id or by identifiers (resolved by search), and ``preview``."""

    source: str | None = None
    target: str | None = None
    source_identifiers: tuple[dict[str, Any], ...] = ()
    target_identifiers: tuple[dict[str, Any], ...] = ()
    preview: bool = False


@dataclass
class MergeResult:
    """What a merge (or unmerge) did, or would do with ``preview``."""

    source: dict[str, Any]
    target: dict[str, Any]
    changed: list[str] = field(default_factory=list)  # "Type/id/_history/n" (or "Type/id")
    provenance: Stored | None = None
    issues: list[Issue] = field(default_factory=list)

    def outcome(self) -> dict[str, Any]:
        """The OperationOutcome of the operation."""
        return operation_outcome(self.issues)


# ------------------------------------------------------------------------------ pure functions


def _refuse(message: str, expression: str | None = None) -> FhirError:
    issue = Issue("error", "business-rule", message, (expression,) if expression else ())
    return FhirError(Category.UNPROCESSABLE, message, [issue])


def reference_id(reference: Any, res_type: str, bases: Collection[str], name: str) -> str:
    """The id of a ``[type]/[id]`` (or ``[base]/[type]/[id]``) Reference parameter naming a
    resource of this server: https://hl7.org/fhir/R4/references.html#literal."""
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(ref, str) or not ref:
        raise invalid(f"'{name}' must be a Reference with a reference such as {res_type}/123")
    local = ref
    for base in bases:
        prefix = base.rstrip("/") + "/"
        if ref.startswith(prefix):
            local = ref[len(prefix) :]
            break
    parts = local.split("/")
    if len(parts) != 2 or parts[0] != res_type or not parts[1]:
        raise invalid(
            f"'{name}' must reference a {res_type} of this server as {res_type}/[id], "
            f"not '{ref[:80]}'"
        )
    return parts[1]


def reference_forms(res_type: str, res_id: str, bases: Collection[str]) -> list[str]:
    """The literal references to one resource, relative then absolute on each base URL:
    https://hl7.org/fhir/R4/references.html#literal."""
    relative = f"{res_type}/{res_id}"
    return [relative, *(f"{b.rstrip('/')}/{relative}" for b in bases)]


def repoint_map(source_id: str, target_id: str, bases: Collection[str]) -> dict[str, str]:
    """Each literal reference to the source, and the same form pointing to the target:
    https://hl7.org/fhir/R4/references.html#literal."""
    old = reference_forms("Patient", source_id, bases)
    new = reference_forms("Patient", target_id, bases)
    return dict(zip(old, new, strict=True))


def reference_paths(node: Any, forms: Collection[str], path: Path = ()) -> Iterator[Path]:
    """Where ``node`` holds a Reference whose ``reference`` is one of ``forms`` (in nested and
    contained elements too): https://hl7.org/fhir/R4/references.html."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref in forms:
            yield path
        for key, value in node.items():
            if isinstance(value, dict | list):
                yield from reference_paths(value, forms, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, dict | list):
                yield from reference_paths(value, forms, (*path, index))


def _element_at(node: Any, path: Path) -> Any:
    """The element at ``path``, or None when the path no longer exists."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return None
        elif not isinstance(node, dict):
            return None
        node = node[step] if isinstance(step, int) else node.get(step)
    return node


def repoint(resource: dict[str, Any], mapping: Mapping[str, str]) -> tuple[dict[str, Any], int]:
    """A copy of ``resource`` with every reference in ``mapping`` replaced, and how many were:
    https://hl7.org/fhir/R4/references.html."""
    out = copy.deepcopy(resource)
    paths = list(reference_paths(out, mapping))
    for path in paths:
        ref = _element_at(out, path)
        ref["reference"] = mapping[ref["reference"]]
    return out, len(paths)


def ins_matricules(patient: Mapping[str, Any]) -> frozenset[str]:
    """The matricules INS in force on a Patient (NIR, NIA, test, demo): https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html."""
    return frozenset(value for _, value in active_ins_values(patient))


def _links(patient: Mapping[str, Any], link_type: str) -> list[str]:
    out: list[str] = []
    for link in patient.get("link") or []:
        if isinstance(link, dict) and link.get("type") == link_type:
            other = link.get("other")
            ref = other.get("reference") if isinstance(other, dict) else None
            if isinstance(ref, str):
                out.append(ref)
    return out


def replaced_by(patient: Mapping[str, Any]) -> list[str]:
    """The references of the records this Patient was merged into: https://hl7.org/fhir/R4/patient-definitions.html#Patient.link."""
    return _links(patient, "replaced-by")


def _label(patient_id: str, patient: Mapping[str, Any]) -> str:
    names = patient.get("name") or []
    name = names[0] if names and isinstance(names[0], dict) else {}
    given = " ".join(g for g in name.get("given") or [] if isinstance(g, str))
    family = name.get("family") if isinstance(name.get("family"), str) else ""
    who = " ".join(p for p in (given, family) if p)
    return f"Patient/{patient_id}" + (f" ({who})" if who else "")


def check_merge(
    source_id: str, source: Mapping[str, Any], target_id: str, target: Mapping[str, Any]
) -> None:
    """Refuse (422, nothing written) a merge identity-vigilance forbids: https://esante.gouv.fr/produits-services/referentiel-ins."""
    src, tgt = _label(source_id, source), _label(target_id, target)
    if source_id == target_id:
        raise _refuse(f"The source and the target are the same record ({src}): nothing to merge")
    into = replaced_by(source)
    if into:
        raise _refuse(
            f"{src} was already merged into {into[0]}; undo that merge ($unmerge) first "
            "or merge that record instead",
            "source-patient",
        )
    if replaced_by(target):
        raise _refuse(
            f"The target {tgt} was itself merged into {replaced_by(target)[0]}: merge into "
            "that record instead",
            "target-patient",
        )
    if target.get("active") is False:
        raise _refuse(
            f"The target {tgt} is inactive: the surviving record of a merge must be active",
            "target-patient",
        )
    src_ins, tgt_ins = ins_matricules(source), ins_matricules(target)
    if src_ins and tgt_ins and not src_ins <= tgt_ins:
        raise _refuse(
            f"{src} and {tgt} carry different matricules INS ({', '.join(sorted(src_ins))} and "
            f"{', '.join(sorted(tgt_ins))}): they are two different persons and must never be "
            "merged; if one INS is wrong, correct that record (INSi verification) instead"
        )
    if src_ins and not tgt_ins:
        raise _refuse(
            f"{src} carries a matricule INS and the target {tgt} does not: the surviving record "
            "must be the one carrying the INS; merge the other way (source-patient "
            f"Patient/{target_id}, target-patient Patient/{source_id})"
        )


def _same_identifier(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.get("system") == b.get("system") and a.get("value") == b.get("value")


def copied_identifiers(
    source: Mapping[str, Any], target: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The source's local (non-INS) identifiers the target lacks, with ``use`` ``old`` (FR Core:
    IPP ``usual``, ``old`` once merged): https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient.html."""
    have = [i for i in target.get("identifier") or [] if isinstance(i, dict)]
    out: list[dict[str, Any]] = []
    for ident in source.get("identifier") or []:
        if not isinstance(ident, dict) or identifier_kind(ident) is not None:
            continue
        if not isinstance(ident.get("value"), str):
            continue
        if any(_same_identifier(ident, h) for h in [*have, *out]):
            continue
        out.append({**copy.deepcopy(ident), "use": "old"})
    return out


def _link(target_id: str, link_type: str) -> dict[str, Any]:
    return {"other": {"reference": f"Patient/{target_id}"}, "type": link_type}


def merged_source(source: dict[str, Any], target_id: str) -> dict[str, Any]:
    """The source once merged: inactive, ``replaced-by`` the target: https://hl7.org/fhir/R5/patient-operation-merge.html."""
    out = copy.deepcopy(source)
    out["active"] = False
    out["link"] = [*(out.get("link") or []), _link(target_id, "replaced-by")]
    return out


def merged_target(
    target: dict[str, Any], source_id: str, source: Mapping[str, Any]
) -> dict[str, Any]:
    """The target once merged: ``replaces`` the source, keeps its local identifiers as ``old``:
    https://hl7.org/fhir/R5/patient-operation-merge.html."""
    out = copy.deepcopy(target)
    extra = copied_identifiers(source, target)
    if extra:
        out["identifier"] = [*(out.get("identifier") or []), *extra]
    if f"Patient/{source_id}" not in _links(out, "replaces"):
        out["link"] = [*(out.get("link") or []), _link(source_id, "replaces")]
    return out


def _agent(agent: str) -> dict[str, Any]:
    parts = agent.split("/")
    who: dict[str, Any]
    if len(parts) == 2 and parts[0][:1].isupper() and parts[0].isalpha() and parts[1]:
        who = {"reference": agent}  # a fhirUser such as Practitioner/123
    else:
        who = {"identifier": {"value": agent}, "display": agent}
    return {
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "performer"}]},
        "who": who,
    }


def provenance(
    kind: str,
    targets: list[str],
    recorded: str,
    agent: str,
    entity: dict[str, Any],
) -> dict[str, Any]:
    """The Provenance of a merge or an unmerge: every version it wrote as ``target``, the caller
    as ``agent``: https://hl7.org/fhir/R4/provenance.html."""
    return {
        "resourceType": "Provenance",
        "target": [{"reference": t} for t in targets],
        "recorded": recorded,
        "activity": {
            "coding": [
                {"system": DATA_OPERATION, "code": "UPDATE", "display": "revise"},
                {"system": LIFECYCLE, "code": kind},
            ],
            "text": kind,
        },
        "agent": [_agent(agent)],
        "entity": [entity],
    }


def activity_of(prov: Mapping[str, Any]) -> str | None:
    """``merge`` or ``unmerge`` for the Provenance this module writes, else None:
    https://hl7.org/fhir/R4/provenance-definitions.html#Provenance.activity."""
    activity = prov.get("activity")
    if not isinstance(activity, dict):
        return None
    for coding in activity.get("coding") or []:
        if isinstance(coding, dict) and coding.get("system") == LIFECYCLE:
            code = coding.get("code")
            if code in (MERGE, UNMERGE):
                return str(code)
    return None


def _versioned(stored: Stored) -> str:
    return f"{stored.type}/{stored.id}/_history/{stored.version}"


def _split_versioned(ref: str) -> tuple[str, str, int] | None:
    """``Type/id/_history/n`` → (type, id, n)."""
    parts = ref.split("/")
    if len(parts) == 4 and parts[2] == "_history" and parts[3].isdigit():
        return parts[0], parts[1], int(parts[3])
    return None


def reference_params(defs: Definitions, target_type: str) -> dict[str, tuple[str, ...]]:
    """Per resource type, the reference search parameters that may point to ``target_type``:
    where the index can hold a reference to it (https://hl7.org/fhir/R4/searchparameter.html)."""
    out: dict[str, tuple[str, ...]] = {}
    for rtype in sorted(defs.resource_types):
        codes = tuple(
            sorted(
                code
                for code, p in defs.search_params(rtype).items()
                if p.type == "reference" and (not p.target or target_type in p.target)
            )
        )
        if codes:
            out[rtype] = codes
    return out


# ------------------------------------------------------------------------------ over a store


def _escape(value: str) -> str:
    for ch in ("\\", "|", ",", "$"):
        value = value.replace(ch, "\\" + ch)
    return value


def _find_by_identifiers(
    tx: MergeTx, defs: Definitions, identifiers: tuple[dict[str, Any], ...], name: str
) -> str:
    params: list[tuple[str, str]] = []
    for ident in identifiers:
        value = ident.get("value")
        if not isinstance(value, str) or not value:
            raise invalid(f"'{name}' needs identifiers with a value")
        system = ident.get("system")
        token = f"{_escape(system)}|{_escape(value)}" if isinstance(system, str) else _escape(value)
        params.append(("identifier", token))
    query = parse_search(defs, "Patient", params)
    query.count, query.total = 2, "none"
    found = tx.search(query).entries
    shown = ", ".join(f"{i.get('system', '')}|{i.get('value')}" for i in identifiers)
    if not found:
        raise _refuse(f"No Patient has the identifier(s) {shown} given in '{name}'", name)
    if len(found) > 1:
        raise _refuse(
            f"Several Patients have the identifier(s) {shown} given in '{name}' "
            f"(Patient/{found[0].id}, Patient/{found[1].id}, …): name the record by reference",
            name,
        )
    return found[0].id


def _resolve(
    tx: MergeTx,
    defs: Definitions,
    res_id: str | None,
    identifiers: tuple[dict[str, Any], ...],
    name: str,
) -> str:
    if res_id is None and not identifiers:
        raise invalid(f"$merge needs '{name}' or '{name}-identifier'")
    found = (
        _find_by_identifiers(tx, defs, identifiers, f"{name}-identifier") if identifiers else None
    )
    if res_id is not None and found is not None and found != res_id:
        raise _refuse(
            f"'{name}' (Patient/{res_id}) and '{name}-identifier' (Patient/{found}) name "
            "different records",
            name,
        )
    result = res_id or found
    assert result is not None
    return result


def _current(tx: MergeTx, res_type: str, res_id: str, role: str) -> Stored:
    stored = tx.read(res_type, res_id)
    if stored is None or stored.resource is None:
        state = "was deleted" if stored is not None else "is not known"
        raise FhirError(Category.NOT_FOUND, f"The {role} {res_type}/{res_id} {state}")
    return stored


def _repointable(
    tx: MergeTx, defs: Definitions, source_id: str, target_id: str
) -> list[tuple[str, str]]:
    try:
        found = tx.referencing("Patient", source_id, reference_params(defs, "Patient"))
    except FhirError as exc:
        if exc.category != Category.FORBIDDEN:
            raise
        message = (
            f"Patient/{source_id} is referenced by resources this token may not read, and a "
            f"merge repoints every reference or none: {exc.message}"
        )
        raise FhirError(Category.FORBIDDEN, message) from None
    return [
        (t, i)
        for t, i in found
        if t not in NEVER_REPOINTED
        and (t, i) not in (("Patient", source_id), ("Patient", target_id))
    ]


def _update(writer: Writer, resource: dict[str, Any], version: int, doing: str) -> Written:
    """One write of a merge or unmerge; a refusal names the resource and what was being done
    (the whole unit is then rolled back)."""
    try:
        return writer.update(resource, version)
    except FhirError as exc:
        where = f"{resource['resourceType']}/{resource['id']}"
        message = f"{where} could not be {doing}, so nothing was written: {exc.message}"
        first = Issue("error", ISSUE_CODE[exc.category], message)
        raise FhirError(exc.category, message, [first, *exc.issues[1:]]) from None


def _write_recorded(
    writer: Writer,
    patients: list[tuple[dict[str, Any], int, str]],
    others: list[tuple[dict[str, Any], int, str]],
    record: tuple[str, dict[str, Any], Any, str | None],
    issues: list[Issue],
) -> tuple[list[Stored], Stored]:
    """Write the two patients, then the repointed resources (each ``(resource, version it
    replaces, what is being done)``), and record it all in one Provenance (``(kind, entity,
    agent, now)``): https://hl7.org/fhir/R4/provenance.html."""
    written: list[Stored] = []
    for resource, version, doing in [*patients, *others]:
        stored, notes = _update(writer, resource, version, doing)
        issues.extend(notes)
        written.append(stored)
    kind, entity, agent, now = record
    recorded = now or written[0].last_updated
    prov, _ = writer.create(
        provenance(kind, [_versioned(w) for w in written], recorded, agent, entity)
    )
    return written, prov


def merge(
    tx: MergeTx,
    writer: Writer,
    defs: Definitions,
    request: MergeRequest,
    agent: str,
    bases: Collection[str] = (),
    now: str | None = None,
) -> MergeResult:
    """Merge the source Patient into the target: links, identifiers, every reference repointed,
    a Provenance; with ``preview`` nothing is written: https://hl7.org/fhir/R5/patient-operation-merge.html."""
    source_id = _resolve(tx, defs, request.source, request.source_identifiers, "source-patient")
    target_id = _resolve(tx, defs, request.target, request.target_identifiers, "target-patient")
    if source_id == target_id:
        check_merge(source_id, {}, target_id, {})
    source = _current(tx, "Patient", source_id, "source-patient")
    target = _current(tx, "Patient", target_id, "target-patient")
    assert source.resource is not None and target.resource is not None
    check_merge(source_id, source.resource, target_id, target.resource)
    mapping = repoint_map(source_id, target_id, bases)
    plans: list[tuple[Stored, dict[str, Any]]] = []
    kept: list[str] = []
    for rtype, rid in _repointable(tx, defs, source_id, target_id):
        current = tx.read(rtype, rid)
        if current is None or current.resource is None:
            continue
        moved, count = repoint(current.resource, mapping)
        if count:
            plans.append((current, moved))
        else:  # only version-specific references (or another server's Patient with that id)
            kept.append(f"{rtype}/{rid}")
    new_source = merged_source(source.resource, target_id)
    new_target = merged_target(target.resource, source_id, source.resource)
    names = [f"{s.type}/{s.id}" for s, _ in plans]
    verb = "would be" if request.preview else "was"
    summary = (
        f"Patient/{source_id} {verb} merged into Patient/{target_id}; {len(plans)} resource(s) "
        f"{'would be ' if request.preview else ''}repointed"
        + (f": {', '.join(names)}" if names else "")
    )
    issues = [Issue("information", "informational", summary)]
    if kept:
        issues.append(
            Issue(
                "information",
                "informational",
                f"Left as they are: {', '.join(kept)} (their references to Patient/{source_id} "
                "name one version of it, or another server's Patient)",
            )
        )
    if request.preview:
        return MergeResult(new_source, new_target, names, None, issues)
    entity = {"role": "source", "what": {"reference": f"Patient/{source_id}"}}
    written, prov = _write_recorded(
        writer,
        [(new_source, source.version, "deactivated"), (new_target, target.version, "updated")],
        [(moved, current.version, "repointed") for current, moved in plans],
        (MERGE, entity, agent, now),
        issues,
    )
    src_stored, tgt_stored = written[0], written[1]
    issues.append(
        Issue("information", "informational", f"The merge is recorded as Provenance/{prov.id}")
    )
    assert src_stored.resource is not None and tgt_stored.resource is not None
    return MergeResult(
        src_stored.resource,
        tgt_stored.resource,
        [_versioned(s) for s in written[2:]],
        prov,
        issues,
    )


def _provenances(tx: MergeTx, defs: Definitions, what: str) -> list[Stored]:
    query = parse_search(defs, "Provenance", [("entity", what), ("_count", "1000")])
    query.total = "none"
    found = [s for s in tx.search(query).entries if s.resource is not None]
    return sorted(
        found,
        key=lambda s: (str((s.resource or {}).get("recorded", "")), s.last_updated),
        reverse=True,
    )


def _is_merge_of(prov: Mapping[str, Any], source_id: str) -> bool:
    if activity_of(prov) != MERGE:
        return False
    return any(
        isinstance(e, dict)
        and e.get("role") == "source"
        and (e.get("what") or {}).get("reference") == f"Patient/{source_id}"
        for e in prov.get("entity") or []
    )


def _merge_provenance(tx: MergeTx, defs: Definitions, source_id: str, given: str | None) -> Stored:
    if given is not None:
        stored = tx.read("Provenance", given)
        if stored is None or stored.resource is None:
            raise FhirError(Category.NOT_FOUND, f"Provenance/{given} is not known")
        if not _is_merge_of(stored.resource, source_id):
            raise _refuse(
                f"Provenance/{given} does not record a merge of Patient/{source_id}", "provenance"
            )
        return stored
    merges = [
        s
        for s in _provenances(tx, defs, f"Patient/{source_id}")
        if _is_merge_of(s.resource or {}, source_id)
    ]
    if not merges:
        raise _refuse(f"Patient/{source_id} has no recorded merge to undo")
    return merges[0]


def _revert_patient(
    current: dict[str, Any],
    before: Mapping[str, Any],
    merged: Mapping[str, Any],
    link_type: str,
    other_id: str,
) -> dict[str, Any]:
    """Undo what the merge did to one Patient, keeping what was changed since."""
    out = copy.deepcopy(current)
    links = [
        link
        for link in out.get("link") or []
        if not (
            isinstance(link, dict)
            and link.get("type") == link_type
            and (link.get("other") or {}).get("reference") == f"Patient/{other_id}"
        )
    ]
    if links:
        out["link"] = links
    else:
        out.pop("link", None)
    added = [i for i in merged.get("identifier") or [] if i not in (before.get("identifier") or [])]
    if added:
        kept = [i for i in out.get("identifier") or [] if i not in added]
        if kept:
            out["identifier"] = kept
        else:
            out.pop("identifier", None)
    if link_type == "replaced-by":  # the source: active as it was before the merge
        if "active" in before:
            out["active"] = before["active"]
        else:
            out.pop("active", None)
    return out


def _version_pair(
    tx: MergeTx, res_type: str, res_id: str, version: int
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    before = tx.vread(res_type, res_id, version - 1) if version > 1 else None
    after = tx.vread(res_type, res_id, version)
    if before is None or after is None or before.resource is None or after.resource is None:
        return None
    return before.resource, after.resource


def unmerge(
    tx: MergeTx,
    writer: Writer,
    defs: Definitions,
    source_id: str,
    agent: str,
    provenance_id: str | None = None,
    bases: Collection[str] = (),
    now: str | None = None,
) -> MergeResult:
    """Undo the merge of ``source_id`` its (latest) merge Provenance records, and record that in
    a second Provenance: https://hl7.org/fhir/R5/patient-operation-merge.html."""
    source = _current(tx, "Patient", source_id, "patient")
    assert source.resource is not None
    prov = _merge_provenance(tx, defs, source_id, provenance_id)
    assert prov.resource is not None
    undone = [
        s
        for s in _provenances(tx, defs, f"Provenance/{prov.id}")
        if activity_of(s.resource or {}) == UNMERGE
    ]
    if undone:
        raise _refuse(
            f"The merge recorded by Provenance/{prov.id} was already undone "
            f"(Provenance/{undone[0].id}, {(undone[0].resource or {}).get('recorded', '')})"
        )
    versions: dict[tuple[str, str], int] = {}
    for t in prov.resource.get("target") or []:
        parsed = _split_versioned(str((t or {}).get("reference", "")))
        if parsed is not None:
            versions[(parsed[0], parsed[1])] = parsed[2]
    src_version = versions.get(("Patient", source_id))
    src_pair = _version_pair(tx, "Patient", source_id, src_version) if src_version else None
    into = replaced_by(src_pair[1]) if src_pair else []
    if src_pair is None or not into or not into[-1].startswith("Patient/"):
        raise _refuse(
            f"Provenance/{prov.id} does not record which record Patient/{source_id} was merged into"
        )
    target_id = into[-1].split("/", 1)[1]  # the link this merge appended
    target = _current(tx, "Patient", target_id, "target")
    assert target.resource is not None
    further = replaced_by(target.resource)
    if further:
        raise _refuse(
            f"Patient/{target_id} was itself merged into {further[0]} since; undo that merge "
            f"first ($unmerge on Patient/{target_id})"
        )
    if f"Patient/{target_id}" not in replaced_by(source.resource):
        raise _refuse(
            f"Patient/{source_id} is no longer merged into Patient/{target_id}: nothing to undo"
        )
    tgt_version = versions.get(("Patient", target_id))
    tgt_pair = _version_pair(tx, "Patient", target_id, tgt_version) if tgt_version else None
    if tgt_pair is None:
        raise _refuse(f"Provenance/{prov.id} does not hold the merged version of the target")

    issues: list[Issue] = []
    mapping = repoint_map(source_id, target_id, bases)
    plans: list[tuple[Stored, dict[str, Any]]] = []
    for (rtype, rid), version in versions.items():
        if rtype == "Patient" and rid in (source_id, target_id):
            continue
        where = f"{rtype}/{rid}"
        pair = _version_pair(tx, rtype, rid, version)
        current = tx.read(rtype, rid)
        if pair is None or current is None or current.resource is None:
            issues.append(
                Issue("warning", "not-found", f"{where} is gone since the merge: not repointed")
            )
            continue
        before, _merged = pair
        reverted = copy.deepcopy(current.resource)
        done = 0
        paths = list(reference_paths(before, mapping))
        for path in paths:
            old_ref = _element_at(before, path)["reference"]
            now_ref = _element_at(reverted, path)
            if isinstance(now_ref, dict) and now_ref.get("reference") == mapping[old_ref]:
                now_ref["reference"] = old_ref
                done += 1
        if not done:
            issues.append(
                Issue(
                    "warning",
                    "conflict",
                    f"{where} no longer references Patient/{target_id} where the merge put it "
                    f"(changed since, version {current.version}): left unchanged; review it",
                )
            )
            continue
        if done < len(paths) or current.version != version:
            issues.append(
                Issue(
                    "warning",
                    "conflict",
                    f"{where} changed since the merge (version {version} → {current.version}): "
                    f"{done} of its {len(paths)} repointed reference(s) still pointed to "
                    f"Patient/{target_id} and were pointed back; review it",
                )
            )
        plans.append((current, reverted))

    new_source = _revert_patient(
        source.resource, src_pair[0], src_pair[1], "replaced-by", target_id
    )
    new_target = _revert_patient(target.resource, tgt_pair[0], tgt_pair[1], "replaces", source_id)
    entity = {"role": "revision", "what": {"reference": f"Provenance/{prov.id}"}}
    written, unprov = _write_recorded(
        writer,
        [(new_source, source.version, "reactivated"), (new_target, target.version, "restored")],
        [(reverted, current.version, "pointed back") for current, reverted in plans],
        (UNMERGE, entity, agent, now),
        issues,
    )
    src_stored, tgt_stored = written[0], written[1]
    issues.insert(
        0,
        Issue(
            "information",
            "informational",
            f"The merge of Patient/{source_id} into Patient/{target_id} (Provenance/{prov.id}) "
            f"was undone; {len(plans)} resource(s) pointed back; recorded as "
            f"Provenance/{unprov.id}",
        ),
    )
    assert src_stored.resource is not None and tgt_stored.resource is not None
    return MergeResult(
        src_stored.resource,
        tgt_stored.resource,
        [_versioned(s) for s in written[2:]],
        unprov,
        issues,
    )


def output_parameters(
    result: MergeResult, given: Mapping[str, Any] | None, patient: str = "target"
) -> dict[str, Any]:
    """The output Parameters: ``input``, ``outcome``, ``result`` (the target of a merge, the
    restored source of an unmerge) and ``provenance``: https://hl7.org/fhir/R5/patient-operation-merge.html."""
    params: list[dict[str, Any]] = []
    if given is not None:
        params.append({"name": "input", "resource": dict(given)})
    params.append({"name": "outcome", "resource": result.outcome()})
    params.append(
        {"name": "result", "resource": result.target if patient == "target" else result.source}
    )
    if result.provenance is not None:
        params.append(
            {
                "name": "provenance",
                "valueReference": {"reference": f"Provenance/{result.provenance.id}"},
            }
        )
    return {"resourceType": "Parameters", "parameter": params}


__all__ = [
    "MergeRequest",
    "MergeResult",
    "MergeTx",
    "Writer",
    "check_merge",
    "copied_identifiers",
    "merge",
    "merged_source",
    "merged_target",
    "output_parameters",
    "provenance",
    "reference_id",
    "reference_paths",
    "repoint",
    "unmerge",
]
