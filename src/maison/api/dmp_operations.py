"""The DMP of a patient as FHIR operations: ``Patient/[id]/$dmp-open``, ``$dmp-close``,
``$dmp-opposition``, ``$dmp-medecin-traitant`` and the TD0.2 check ``Patient/$dmp-access``
("does this patient have an open DMP, and may I access it"), plus the check a feed runs first.

Every decision is written through the invocation's guarded store with the generic create and
update handlers, so the caller's scopes, validation and the Patient write rules apply as to a
PUT; the rules themselves are pure (:mod:`maison.services.dmp.record`, where the FHIR shape of
the state is described and justified). Choices made here, with their confidence:

* The writes need ``update`` on Patient (then ``Consent`` create/update and reads through the
  guard); a patient-context token may only record his own decisions (``Patient/[id]`` must be
  his launch patient), and a decision is made by the patient or by a RelatedPerson of his —
  another patient's representative is refused. High.
* ``$dmp-access`` needs ``read`` on Patient; it reads the DMP state (Patient and Consents)
  unguarded, as the check itself: it answers flags, never the Consents' bodies. A patient token
  may only ask about himself. Medium (issue 8 will put the access rules in the guard).
* ``authorized`` here is only the record's part of TD0.2: never opened, closed or a merged
  record → not authorized; an opposition to consultation → not authorized for anyone, the
  médecin traitant DMP included (only the bris de glace, issue 8, may pass it); otherwise
  authorized. The care team, consent at each consultation and the matrix come with issue 8.
* Dates: ``$dmp-open``, ``$dmp-opposition`` and ``$dmp-close`` take an optional ``date`` (when
  the patient decided, or when the DMP closed — e.g. the date of death); never in the future,
  a closure never before the opening. Re-opening a closed DMP (before its purge) is allowed
  and clears the closure. Medium.
* A refused feed (closed DMP, opposition, merged record) is 422 ``business-rule``, like the
  other DMP refusals of a feed. Medium.

https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/ (TD0.2), https://hl7.org/fhir/R4/consent.html
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from maison.api import interactions as ix
from maison.api.operations import EVERY_CONTEXT, Invocation, Operation, Registry, load_definition
from maison.fhir.errors import Category, FhirError, Issue, invalid
from maison.services.dmp import record
from maison.services.dmp.record import DmpStatus, Kind, State
from maison.services.ins import matricule
from maison.services.ins.vigilance import INS_SYSTEMS
from maison.store.interface import Stored

Clock = Callable[[], datetime]
#: The opposition kinds ``$dmp-opposition`` takes.
OPPOSITION_KINDS = {
    "feeding": Kind.FEEDING,
    "consultation": Kind.CONSULTATION,
    "emergency": Kind.EMERGENCY,
}
#: The reference search parameter naming the patient of a Consent.
CONSENT_PATIENT = {"Consent": ("patient",)}


# ------------------------------------------------------------------------------ reading state


def consents_of(tx: Any, patient_id: str) -> list[Stored]:
    """The current Consents naming the patient (https://hl7.org/fhir/R4/consent.html)."""
    found = []
    for rtype, rid in tx.referencing("Patient", patient_id, CONSENT_PATIENT):
        stored = tx.read(rtype, rid)
        if stored is not None and not stored.deleted and stored.resource is not None:
            found.append(stored)
    return found


def status_of(tx: Any, patient: Stored, retention_years: int) -> DmpStatus:
    """The DMP state of a stored Patient (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/)."""
    assert patient.resource is not None
    consents = [c.resource for c in consents_of(tx, patient.id) if c.resource is not None]
    return record.dmp_status(patient.resource, consents, retention_years)


def resolve_patient(tx: Any, reference: str) -> Stored | None:
    """The current Patient a reference names: ``Patient/[id]`` (also absolute), the
    conditional ``Patient?identifier=system|value`` the ANS examples use, or the
    ``system|value`` of a logical reference; None when unknown or ambiguous."""
    logical = "|" in reference and "?" not in reference  # an id never holds a "|"
    if "?identifier=" in reference or logical:
        text = reference.split("=", 1)[1] if "?identifier=" in reference else reference
        system, _, value = unquote(text).partition("|")
        held = tx.holders("Patient", "identifier", system, value)
        current = [h for h in held if not h.deleted and h.resource is not None]
        return current[0] if len(current) == 1 else None
    head, _, pid = reference.rstrip("/").rpartition("/")
    if not pid or not (head == "Patient" or head.endswith("/Patient")):
        return None
    stored = tx.read("Patient", pid)
    return stored if stored is not None and not stored.deleted else None


def feeding_check(
    read: Callable[[Callable[[Any], Any]], Any],
    retention_years: int = record.RETENTION_YEARS,
    require_opening: bool = False,
) -> Callable[[str | None], str | None]:
    """The check a feed (ITI-65/105) runs on its patient reference before anything is stored:
    refused (422) when the DMP is closed, the patient opposed feeding or the record is merged;
    else the ``Patient/[id]`` the reference names (None when unknown). ``read`` runs a function
    on a read-only store unit (``store.read``)
    (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/, TD2)."""

    def check(reference: str | None) -> str | None:
        if not reference:
            return None

        def find(tx: Any) -> tuple[str, DmpStatus] | None:
            patient = resolve_patient(tx, reference)
            if patient is None:
                return None
            return f"Patient/{patient.id}", status_of(tx, patient, retention_years)

        found: tuple[str, DmpStatus] | None = read(find)
        if found is None:
            return None
        named, status = found
        reason = record.feeding_refusal(status, require_opening)
        if reason is not None:
            message = f"The feed is refused: {reason}"
            raise FhirError(
                Category.UNPROCESSABLE,
                message,
                [Issue("error", "business-rule", message, ("Bundle.entry.resource.subject",))],
            )
        return named

    return check


# ------------------------------------------------------------------------------ input checks


def _now(clock: Clock) -> str:
    return clock().astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _when(inv: Invocation, clock: Clock, op: str) -> str:
    """The ``date`` input (not in the future), or now."""
    value = inv.value("date")
    if value is None:
        return _now(clock)
    moment = record.parse_instant(value)
    if moment is None or len(value) < 10:
        raise invalid(f"${op}: date {value[:40]!r} is not a FHIR date or dateTime", "date")
    if moment > clock():
        raise invalid(f"${op}: date {value} is in the future", "date")
    return str(value)


def _own_record(inv: Invocation, patient_id: str, what: str) -> None:
    """A patient-context token acts on its own record only."""
    compartment = inv.principal.compartment()
    if compartment is not None and compartment[1] != patient_id:
        raise FhirError(
            Category.FORBIDDEN,
            f"{what}: this token acts for Patient/{compartment[1]} and may not act on "
            f"Patient/{patient_id}'s DMP",
        )


def _target(inv: Invocation, op: str) -> Stored:
    """The Patient the instance-level operation is invoked on."""
    if inv.resource_id is None:
        raise invalid(f"${op} is invoked on a Patient: Patient/[id]/${op}")
    ix.check_id(inv.resource_id)
    _own_record(inv, inv.resource_id, f"${op}")
    stored = inv.tx.read("Patient", inv.resource_id)
    if stored is None or stored.resource is None:
        state = "was deleted" if stored is not None else "is not known"
        category = Category.GONE if stored is not None else Category.NOT_FOUND
        raise FhirError(category, f"${op}: Patient/{inv.resource_id} {state}")
    return stored


def _performer(inv: Invocation, patient_id: str, op: str) -> dict[str, Any] | None:
    """The ``performer`` input: the patient himself or a RelatedPerson of his (his legal
    representative); anyone else is refused."""
    value = inv.value("performer")
    if value is None:
        return None
    ref = value.get("reference") if isinstance(value, Mapping) else None
    if not isinstance(ref, str) or "/" not in ref:
        raise invalid(f"${op}: performer must be a reference Patient/[id] or RelatedPerson/[id]")
    rtype, _, rid = ref.partition("/")
    if rtype == "Patient" and rid == patient_id:
        return {"reference": ref}
    if rtype == "RelatedPerson":
        ix.check_id(rid)
        related = inv.tx.read("RelatedPerson", rid)
        if related is None or related.resource is None:
            raise FhirError(Category.UNPROCESSABLE, f"${op}: performer {ref} is not known")
        whose = (related.resource.get("patient") or {}).get("reference")
        if whose == f"Patient/{patient_id}":
            return {"reference": ref}
        raise FhirError(
            Category.UNPROCESSABLE,
            f"${op}: {ref} represents {whose}, not Patient/{patient_id}: a decision on a DMP is "
            "made by its patient or his own legal representative",
        )
    raise FhirError(
        Category.UNPROCESSABLE,
        f"${op}: a decision on Patient/{patient_id}'s DMP is made by the patient or his legal "
        f"representative (a RelatedPerson of his), not {ref}",
    )


def _method(inv: Invocation, op: str) -> str | None:
    value = inv.value("method")
    if value is not None and value not in record.COLLECTION_METHODS:
        known = ", ".join(sorted(record.COLLECTION_METHODS))
        raise invalid(f"${op}: method {str(value)[:40]!r} is not one of {known}")
    return str(value) if value is not None else None


def _refuse_state(status: DmpStatus, op: str, *refused: State) -> None:
    if status.state in refused:
        if status.state is State.CLOSED:
            reason = f"the patient's DMP is closed since {(status.closed_at or '')[:10]}"
        elif status.state is State.INACTIVE:
            reason = f"{status.patient} is inactive (merged into another record?)"
        else:
            reason = "the patient's DMP was never opened ($dmp-open first)"
        raise FhirError(
            Category.UNPROCESSABLE,
            f"${op}: {reason}",
            [Issue("error", "business-rule", f"${op}: {reason}")],
        )


# ------------------------------------------------------------------------------ output


def status_parameters(status: DmpStatus) -> list[dict[str, Any]]:
    """The DMP state as output parameters (the same in every operation's answer)."""
    out: list[dict[str, Any]] = [
        {"name": "patient", "valueReference": {"reference": status.patient}},
        {"name": "exists", "valueBoolean": status.exists},
        {"name": "open", "valueBoolean": status.is_open},
        {"name": "state", "valueCode": status.state.value},
    ]
    if status.opened_at:
        out.append({"name": "opened-at", "valueDateTime": status.opened_at})
    if status.closed_at:
        out.append({"name": "closed-at", "valueDateTime": status.closed_at})
    if status.purge_after:
        out.append({"name": "purge-after", "valueDate": status.purge_after.isoformat()})
    out.append({"name": "feeding-opposed", "valueBoolean": bool(status.feeding_opposed_since)})
    if status.feeding_opposed_since:
        out.append({"name": "feeding-opposed-since", "valueDateTime": status.feeding_opposed_since})
    out.append(
        {"name": "consultation-opposed", "valueBoolean": bool(status.consultation_opposed_since)}
    )
    if status.consultation_opposed_since:
        out.append(
            {
                "name": "consultation-opposed-since",
                "valueDateTime": status.consultation_opposed_since,
            }
        )
    if status.medecin_traitant is not None:
        out.append({"name": "medecin-traitant", "valueReference": dict(status.medecin_traitant)})
    return out


def _answer(status: DmpStatus, consent: Stored | None = None, note: str | None = None) -> ix.Result:
    params = status_parameters(status)
    if consent is not None:
        params.append({"name": "consent", "valueReference": {"reference": f"Consent/{consent.id}"}})
    issues = [Issue("information", "informational", note)] if note else []
    return ix.Result(200, {"resourceType": "Parameters", "parameter": params}, issues=issues)


# ------------------------------------------------------------------------------ the writes


def _stored(result: ix.Result) -> Stored:
    if result.stored is None:
        raise FhirError(Category.INTERNAL, "a write returned no stored version")
    return result.stored


def _decision_inputs(inv: Invocation, patient_id: str, clock: Clock, op: str) -> dict[str, Any]:
    """The checked inputs every decision takes: date, performer, method, source."""
    source = inv.value("source")
    return {
        "at": _when(inv, clock, op),
        "performer": _performer(inv, patient_id, op),
        "method": _method(inv, op),
        "source": source if isinstance(source, Mapping) else None,
    }


def _record_decision(
    inv: Invocation, patient_id: str, kind: Kind, permit: bool, inputs: dict[str, Any]
) -> Stored:
    """Store the Consent of one decision; the earlier active ones of its kind become
    ``inactive`` (kept: the history of the patient's decisions)."""
    for previous in consents_of(inv.tx, patient_id):
        assert previous.resource is not None
        decision = record.decision_of(previous.resource)
        if decision is not None and decision.kind is kind:
            ix.update(
                inv.ctx,
                inv.tx,
                "Consent",
                previous.id,
                {**previous.resource, "status": "inactive"},
                f'W/"{previous.version}"',
            )
    consent = record.consent_resource(patient_id, kind, permit, **inputs)
    return _stored(ix.create(inv.ctx, inv.tx, "Consent", consent))


def _write_patient(inv: Invocation, patient: Stored, body: dict[str, Any]) -> Stored:
    return _stored(
        ix.update(inv.ctx, inv.tx, "Patient", patient.id, body, f'W/"{patient.version}"')
    )


def _fresh(inv: Invocation, patient: Stored, retention: int) -> DmpStatus:
    stored = inv.tx.read("Patient", patient.id)
    assert stored is not None
    return status_of(inv.tx, stored, retention)


def register_dmp(
    registry: Registry, clock: Clock, retention_years: int = record.RETENTION_YEARS
) -> None:
    """Register the DMP operations on ``registry``: opening, closure, oppositions, médecin
    traitant DMP and the TD0.2 check (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/)."""

    def dmp_open(inv: Invocation) -> ix.Result:
        """``POST Patient/[id]/$dmp-open``: the patient's consent to the opening and feeding."""
        patient = _target(inv, "dmp-open")
        status = status_of(inv.tx, patient, retention_years)
        _refuse_state(status, "dmp-open", State.INACTIVE)
        inputs = _decision_inputs(inv, patient.id, clock, "dmp-open")
        if status.state is State.OPEN:
            return _answer(status, note=f"the DMP is already open since {status.opened_at}")
        assert patient.resource is not None
        if status.state is State.CLOSED or patient.resource.get("active") is not True:
            patient = _write_patient(inv, patient, record.reopened_patient(patient.resource))
        consent = _record_decision(inv, patient.id, Kind.OPENING, True, inputs)
        return _answer(_fresh(inv, patient, retention_years), consent)

    def dmp_close(inv: Invocation) -> ix.Result:
        """``POST Patient/[id]/$dmp-close``: closure; documents kept for the retention period."""
        patient = _target(inv, "dmp-close")
        status = status_of(inv.tx, patient, retention_years)
        _refuse_state(status, "dmp-close", State.CLOSED, State.INACTIVE, State.NEVER_OPENED)
        at = _when(inv, clock, "dmp-close")
        opened = record.parse_instant(status.opened_at or "")
        closing = record.parse_instant(at)
        if opened is not None and closing is not None and closing < opened:
            raise invalid(
                f"$dmp-close: the closure date {at} is before the opening ({status.opened_at})"
            )
        reason = inv.value("reason")
        assert patient.resource is not None
        body = record.closed_patient(patient.resource, at, reason)
        patient = _write_patient(inv, patient, body)
        return _answer(_fresh(inv, patient, retention_years))

    def dmp_opposition(inv: Invocation) -> ix.Result:
        """``POST Patient/[id]/$dmp-opposition``: an opposition to feeding or consultation,
        set or lifted."""
        text = inv.value("kind")
        kind = OPPOSITION_KINDS.get(str(text))
        if kind is None:
            raise invalid(
                f"$dmp-opposition: unknown opposition kind {str(text)[:40]!r} (expected "
                "feeding, consultation or emergency)"
            )
        patient = _target(inv, "dmp-opposition")
        status = status_of(inv.tx, patient, retention_years)
        _refuse_state(status, "dmp-opposition", State.CLOSED, State.INACTIVE)
        inputs = _decision_inputs(inv, patient.id, clock, "dmp-opposition")
        opposed = inv.value("opposed") is True
        consent = _record_decision(inv, patient.id, kind, not opposed, inputs)
        return _answer(_fresh(inv, patient, retention_years), consent)

    def dmp_medecin_traitant(inv: Invocation) -> ix.Result:
        """``POST Patient/[id]/$dmp-medecin-traitant``: designate (or clear) the médecin
        traitant DMP."""
        doctor_ref = inv.value("practitioner")
        clear = inv.value("clear") is True
        if (doctor_ref is None) == (not clear):
            raise invalid(
                "$dmp-medecin-traitant: give either practitioner (the doctor to designate) "
                "or clear=true (to remove the designation), not both and not neither"
            )
        patient = _target(inv, "dmp-medecin-traitant")
        status = status_of(inv.tx, patient, retention_years)
        _refuse_state(status, "dmp-medecin-traitant", State.CLOSED, State.INACTIVE)
        doctor = None if clear else _doctor(inv, doctor_ref)
        assert patient.resource is not None
        body = record.with_medecin_traitant(patient.resource, doctor)
        patient = _write_patient(inv, patient, body)
        return _answer(_fresh(inv, patient, retention_years))

    def dmp_access(inv: Invocation) -> ix.Result:
        """``Patient/$dmp-access``: does this patient have an open DMP, and may I access it
        (TD0.2)."""
        raw = inv.tx.tx  # the check reads the state itself; it answers flags, not Consents
        patient = _access_patient(inv, raw)
        _own_record(inv, patient.id, "$dmp-access")
        status = status_of(raw, patient, retention_years)
        professional = inv.principal.professional
        national_id = professional.national_id if professional is not None else None
        is_doctor = record.is_professional(
            status.medecin_traitant, national_id, inv.principal.fhir_user
        )
        refusal = record.consultation_refusal(status, national_id, inv.principal.fhir_user)
        params = status_parameters(status)
        if status.medecin_traitant is not None:
            params.append({"name": "medecin-traitant-is-caller", "valueBoolean": is_doctor})
        rules = inv.tx.rules
        if rules is not None and rules.viewer.kind != "system":
            # the access rules themselves: what a read of this record would be answered
            granted = rules.basis_for(raw, f"Patient/{patient.id}")
            params.append({"name": "authorized", "valueBoolean": granted.allowed})
            params.append({"name": "reason", "valueString": granted.reason})
            params.append({"name": "rule", "valueCode": granted.rule})
            if granted.source:
                params.append({"name": "basis", "valueReference": {"reference": granted.source}})
            return ix.Result(200, {"resourceType": "Parameters", "parameter": params})
        params.append({"name": "authorized", "valueBoolean": refusal is None})
        reason = refusal or (
            "the DMP is open and the patient did not oppose its consultation (the care-team, "
            "consent and matrix rules apply on each access)"
        )
        if is_doctor:
            reason += "; you are the patient's médecin traitant DMP"
        params.append({"name": "reason", "valueString": reason})
        return ix.Result(200, {"resourceType": "Parameters", "parameter": params})

    writes = (
        ("Patient-dmp-open", dmp_open),
        ("Patient-dmp-close", dmp_close),
        ("Patient-dmp-opposition", dmp_opposition),
        ("Patient-dmp-medecin-traitant", dmp_medecin_traitant),
    )
    for name, handler in writes:
        registry.add(Operation(load_definition(name), handler, "update", EVERY_CONTEXT))
    registry.add(Operation(load_definition("Patient-dmp-access"), dmp_access, "read"))


def _doctor(inv: Invocation, value: Any) -> dict[str, Any]:
    """The médecin traitant reference to store: the Practitioner or PractitionerRole named,
    with the practitioner's IDNPS (so TD0.2 recognises him from his token) and name."""
    ref = value.get("reference") if isinstance(value, Mapping) else None
    rtype, _, rid = ref.partition("/") if isinstance(ref, str) else ("", "", "")
    if rtype not in ("Practitioner", "PractitionerRole") or not rid:
        raise invalid(
            "$dmp-medecin-traitant: practitioner must reference a Practitioner or a "
            f"PractitionerRole, not {str(ref)[:60]!r}"
        )
    ix.check_id(rid)
    target = inv.tx.read(rtype, rid)
    if target is None or target.deleted or target.resource is None:
        raise FhirError(Category.UNPROCESSABLE, f"$dmp-medecin-traitant: {ref} is not known")
    person = target.resource
    if rtype == "PractitionerRole":
        pref = (person.get("practitioner") or {}).get("reference")
        held = inv.tx.read("Practitioner", pref.split("/")[-1]) if isinstance(pref, str) else None
        person = held.resource if held is not None and held.resource is not None else {}
    out: dict[str, Any] = {"reference": f"{rtype}/{rid}"}
    idnps = next(
        (
            i.get("value")
            for i in person.get("identifier") or []
            if isinstance(i, Mapping) and i.get("system") == record.IDNPS
        ),
        None,
    )
    if isinstance(idnps, str):
        out["identifier"] = {"system": record.IDNPS, "value": idnps}
    names = person.get("name") or []
    if names and isinstance(names[0], Mapping):
        n = names[0]
        display = " ".join([*n.get("prefix", []), *n.get("given", []), n.get("family", "")])
        if display.strip():
            out["display"] = display.strip()
    return out


def _access_patient(inv: Invocation, tx: Any) -> Stored:
    """The Patient ``$dmp-access`` asks about: by INS (``identifier=system|value``) or by
    reference (``patient=Patient/[id]``)."""
    identifier, reference = inv.value("identifier"), inv.value("patient")
    if (identifier is None) == (reference is None):
        raise invalid(
            "$dmp-access: give the patient's INS (identifier=urn:oid:1.2.250.1.213.1.4.8|"
            "<matricule>) or a reference (patient=Patient/[id]), one of them"
        )
    if identifier is not None:
        system, bar, value = str(identifier).partition("|")
        if not bar or system not in INS_SYSTEMS:
            known = ", ".join(sorted(INS_SYSTEMS))
            raise invalid(
                f"$dmp-access: identifier {str(identifier)[:60]!r} is not an INS: expected "
                f"system|matricule with the system one of {known}",
                "identifier",
            )
        problems = [i for i in matricule.check(value, system) if i.severity == "error"]
        if problems:
            raise invalid(f"$dmp-access: {problems[0].diagnostics}", "identifier")
        stored = resolve_patient(tx, f"Patient?identifier={system}|{value}")
        if stored is None:
            raise FhirError(
                Category.NOT_FOUND,
                f"$dmp-access: no patient of this platform carries the INS {value}",
            )
        return stored
    ref = str(reference)
    head, _, pid = ref.partition("/")
    if head != "Patient" or not pid:
        raise invalid(f"$dmp-access: patient must be Patient/[id], not {ref[:60]!r}", "patient")
    ix.check_id(pid)
    stored = resolve_patient(tx, ref)
    if stored is None:
        raise FhirError(Category.NOT_FOUND, f"$dmp-access: {ref} is not known")
    return stored


__all__ = [
    "OPPOSITION_KINDS",
    "consents_of",
    "feeding_check",
    "register_dmp",
    "resolve_patient",
    "status_of",
    "status_parameters",
]
