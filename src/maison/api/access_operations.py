"""The patient's decisions on who may open his DMP, and the bris de glace, as FHIR operations:
``Patient/[id]/$dmp-consent`` (his consent to one professional, for one consultation),
``$dmp-block`` (a professional blocked, even with consent or in an emergency),
``$dmp-care-team`` (his initial consent to an équipe de soins' access) and ``$bris-de-glace``
(a professional's emergency access, for a short window, notified to the patient).

Each records a ``Consent`` (:mod:`maison.services.dmp.record`) that the access rules read
(:mod:`maison.services.dmp.relations`); each decision and each refusal is traced.

https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185, https://hl7.org/fhir/R4/consent.html
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from maison.api import interactions as ix
from maison.api.dmp_operations import (
    _doctor,
    _method,
    _performer,
    _refuse_state,
    _target,
    status_of,
)
from maison.api.operations import EVERY_CONTEXT, Invocation, Operation, Registry, load_definition
from maison.fhir.errors import Category, FhirError, invalid
from maison.security.record_guard import Access
from maison.services.dmp import record
from maison.services.dmp.record import Kind, State
from maison.services.dmp.relations import record_facts, who_is
from maison.store.interface import Stored, StoreTx

Clock = Callable[[], datetime]
#: The least a bris de glace's justification says, in characters.
MIN_REASON: Final = 10
#: The longest consent for one consultation, in hours.
MAX_CONSENT_HOURS: Final = 72
COMMUNICATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/communication-category"


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _trace(inv: Invocation, access: Access) -> None:
    """Add one decision of an operation to the request's trace (the audit trail)."""
    if inv.tx.rules is not None:
        inv.tx.rules.trace.append(access)


def _decided(
    inv: Invocation,
    action: str,
    consent: Stored,
    patient: str,
    rule: str,
    reason: str,
    emergency: bool = False,
) -> None:
    """Trace a decision an operation recorded as a Consent (https://profiles.ihe.net/ITI/BALP/)."""
    source = f"Consent/{consent.id}"
    _trace(inv, Access(action, source, patient, True, rule, reason, source, None, emergency))


def _refuse(inv: Invocation, patient: str, action: str, rule: str, message: str) -> FhirError:
    """A refusal of an operation, traced (https://profiles.ihe.net/ITI/BALP/)."""
    _trace(inv, Access(action, patient, patient, False, rule, message))
    return FhirError(Category.FORBIDDEN, message)


def caller_reference(inv: Invocation) -> dict[str, Any]:
    """The calling professional as a Reference: his IDNPS, his ``fhirUser`` when it names a
    Practitioner, his name when the Annuaire gives it."""
    who = inv.principal.professional
    assert who is not None
    ref: dict[str, Any] = {"identifier": {"system": record.IDNPS, "value": who.national_id}}
    user = inv.principal.fhir_user
    if isinstance(user, str) and user.startswith(("Practitioner/", "PractitionerRole/")):
        ref["reference"] = user
    name = inv.principal.claims.get("name")
    if isinstance(name, str) and name.strip():
        ref["display"] = name.strip()[:200]
    return ref


def _same_actor(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> bool:
    if a is None:
        return False
    if a.get("reference") and a.get("reference") == b.get("reference"):
        return True
    ia, ib = a.get("identifier"), b.get("identifier")
    return (
        isinstance(ia, Mapping)
        and isinstance(ib, Mapping)
        and ia.get("value") == ib.get("value")
        and ia.get("system") == ib.get("system")
    )


def _record(
    inv: Invocation,
    tx: StoreTx,
    patient_id: str,
    kind: Kind,
    permit: bool,
    actor: Mapping[str, Any],
    **inputs: Any,
) -> Stored:
    """Store one per-actor decision; the earlier active decisions of the kind on the same
    actor become ``inactive`` (kept: the patient's history)."""
    consents = ix.search(
        inv.ctx,
        tx,
        "Consent",
        [("patient", f"Patient/{patient_id}"), ("status", "active"), ("_count", "1000")],
        lenient=False,
    )
    for entry in (consents.resource or {}).get("entry", []):
        body = entry.get("resource") or {}
        decision = record.decision_of(body)
        if (
            kind is not Kind.BRIS_DE_GLACE
            and decision is not None
            and decision.kind is kind
            and _same_actor(record.actor_of(body), actor)
        ):
            stored = tx.read("Consent", str(body.get("id")))
            if stored is not None and stored.resource is not None:
                ix.update(
                    inv.ctx,
                    tx,
                    "Consent",
                    stored.id,
                    {**stored.resource, "status": "inactive"},
                    f'W/"{stored.version}"',
                )
    consent = record.consent_resource(patient_id, kind, permit, actor=actor, **inputs)
    result = ix.create(inv.ctx, tx, "Consent", consent)
    if result.stored is None:
        raise FhirError(Category.INTERNAL, "a write returned no stored version")
    return result.stored


def _answer(consent: Stored, reason: str, until: str | None = None) -> ix.Result:
    params: list[dict[str, Any]] = [
        {"name": "consent", "valueReference": {"reference": f"Consent/{consent.id}"}}
    ]
    if until:
        params.append({"name": "until", "valueDateTime": until})
    params.append({"name": "reason", "valueString": reason})
    return ix.Result(200, {"resourceType": "Parameters", "parameter": params})


def _open_record(inv: Invocation, op: str, retention: int) -> tuple[Stored, StoreTx]:
    patient = _target(inv, op)
    raw = inv.tx.tx
    _refuse_state(status_of(raw, patient, retention), op, State.CLOSED, State.INACTIVE)
    return patient, raw


def register_access(
    registry: Registry,
    clock: Clock,
    emergency_minutes: int = 30,
    consent_hours: int = 24,
    retention_years: int = record.RETENTION_YEARS,
) -> None:
    """Register ``$dmp-consent``, ``$dmp-block``, ``$dmp-care-team`` and ``$bris-de-glace``
    on Patient (https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185)."""

    def dmp_consent(inv: Invocation) -> ix.Result:
        """``POST Patient/[id]/$dmp-consent``: the patient's consent to one professional's
        access for one consultation (or its withdrawal)."""
        patient, raw = _open_record(inv, "dmp-consent", retention_years)
        ref = f"Patient/{patient.id}"
        value = inv.value("practitioner")
        if inv.principal.professional is not None:
            actor = caller_reference(inv)
            if value is not None:
                named = _doctor(inv, value)
                if not _same_actor(named, actor) and named.get("identifier") != actor.get(
                    "identifier"
                ):
                    raise _refuse(
                        inv,
                        ref,
                        "consent",
                        "dmp-consent:other-professional",
                        "$dmp-consent: a professional records the patient's consent to his own "
                        "access only; the patient records it for another professional",
                    )
        elif value is None:
            raise invalid(
                "$dmp-consent: practitioner names the professional the patient consents to"
            )
        else:
            actor = _doctor(inv, value)
        hours = inv.value("hours")
        hours = consent_hours if hours is None else hours
        if not isinstance(hours, int) or not 1 <= hours <= MAX_CONSENT_HOURS:
            raise invalid(f"$dmp-consent: hours must be between 1 and {MAX_CONSENT_HOURS}")
        now = clock()
        until = _instant(now + timedelta(hours=hours))
        permit = inv.value("revoke") is not True
        consent = _record(
            inv,
            raw,
            patient.id,
            Kind.PROFESSIONAL,
            permit,
            actor,
            at=_instant(now),
            performer=_performer(inv, patient.id, "dmp-consent"),
            method=_method(inv, "dmp-consent"),
            period=(_instant(now), until) if permit else None,
        )
        who = (actor.get("identifier") or {}).get("value") or actor.get("reference")
        reason = (
            f"the patient consents to the access of {who} until {until}"
            if permit
            else f"the patient's consent to the access of {who} is withdrawn"
        )
        _decided(inv, "consent", consent, ref, "dmp-consent", reason)
        return _answer(consent, reason, until if permit else None)

    def dmp_block(inv: Invocation) -> ix.Result:
        """``POST Patient/[id]/$dmp-block``: the patient blocks (or unblocks) a professional."""
        if inv.principal.professional is not None:
            raise _refuse(
                inv,
                f"Patient/{inv.resource_id}",
                "consent",
                "dmp-block:professional",
                "$dmp-block: only the patient, his legal representative or a service acting for "
                "him blocks a professional",
            )
        value = inv.value("practitioner")
        patient, raw = _open_record(inv, "dmp-block", retention_years)
        actor = _doctor(inv, value)
        unblock = inv.value("unblock") is True
        now = _instant(clock())
        consent = _record(
            inv,
            raw,
            patient.id,
            Kind.BLOCK,
            unblock,
            actor,
            at=now,
            performer=_performer(inv, patient.id, "dmp-block"),
            method=_method(inv, "dmp-block"),
        )
        who = actor.get("display") or (actor.get("identifier") or {}).get("value")
        reason = f"{who} is {'unblocked' if unblock else 'blocked'}"
        _decided(inv, "consent", consent, f"Patient/{patient.id}", "dmp-block", reason)
        return _answer(consent, reason)

    def dmp_care_team(inv: Invocation) -> ix.Result:
        """``POST Patient/[id]/$dmp-care-team``: the patient's initial consent to (or refusal
        of) an équipe de soins' access."""
        patient, raw = _open_record(inv, "dmp-care-team", retention_years)
        ref = f"Patient/{patient.id}"
        value = inv.value("careTeam")
        team_ref = value.get("reference") if isinstance(value, Mapping) else None
        head, _, tid = team_ref.partition("/") if isinstance(team_ref, str) else ("", "", "")
        if head != "CareTeam" or not tid:
            raise invalid("$dmp-care-team: careTeam must reference a CareTeam (CareTeam/[id])")
        ix.check_id(tid)
        team = raw.read("CareTeam", tid)
        if team is None or team.deleted or team.resource is None:
            raise FhirError(Category.UNPROCESSABLE, f"$dmp-care-team: {team_ref} is not known")
        subject = (team.resource.get("subject") or {}).get("reference")
        if subject != ref:
            raise FhirError(
                Category.UNPROCESSABLE,
                f"$dmp-care-team: {team_ref} is the équipe de soins of {subject}, not of {ref}: "
                "a patient consents to his own teams only",
            )
        who = inv.principal.professional
        if who is not None:
            member = False
            for participant in team.resource.get("participant") or []:
                m = participant.get("member") if isinstance(participant, Mapping) else None
                if isinstance(m, Mapping):
                    idnps, _refs, structures = who_is(raw, m)
                    if who.national_id in idnps or structures.intersection(who.structure.values()):
                        member = True
            if not member:
                raise _refuse(
                    inv,
                    ref,
                    "consent",
                    "dmp-care-team:not-a-member",
                    f"$dmp-care-team: you are not a member of {team_ref}: the patient's consent "
                    "to a team is recorded by the patient or by a member of the team",
                )
        permit = inv.value("permit") is not False
        consent = _record(
            inv,
            raw,
            patient.id,
            Kind.CARE_TEAM,
            permit,
            {"reference": f"CareTeam/{tid}"},
            at=_instant(clock()),
            performer=_performer(inv, patient.id, "dmp-care-team"),
            method=_method(inv, "dmp-care-team"),
        )
        reason = (
            f"the patient consents to the access of the équipe de soins {team_ref}"
            if permit
            else f"the patient refuses the access of the équipe de soins {team_ref}"
        )
        _decided(inv, "consent", consent, ref, "dmp-care-team", reason)
        return _answer(consent, reason)

    def bris_de_glace(inv: Invocation) -> ix.Result:
        """``POST Patient/[id]/$bris-de-glace``: a professional's emergency access."""
        ref = f"Patient/{inv.resource_id}"
        who = inv.principal.professional
        if who is None:
            raise _refuse(
                inv,
                ref,
                "break-glass",
                "bris-de-glace:no-professional",
                "$bris-de-glace: only a professional identified by Pro Santé Connect may break "
                "the glass",
            )
        reason = inv.value("reason")
        reason = reason.strip() if isinstance(reason, str) else ""
        if len(reason) < MIN_REASON:
            _trace(
                inv,
                Access(
                    "break-glass",
                    ref,
                    ref,
                    False,
                    "bris-de-glace:no-reason",
                    "a bris de glace without its justification",
                ),
            )
            raise invalid(
                f"$bris-de-glace: say why this is an emergency (reason, at least {MIN_REASON} "
                "characters): the patient and the data protection officer will read it",
                "reason",
            )
        minutes = inv.value("minutes")
        minutes = emergency_minutes if minutes is None else minutes
        if not isinstance(minutes, int) or not 1 <= minutes <= emergency_minutes:
            raise invalid(f"$bris-de-glace: minutes must be between 1 and {emergency_minutes}")
        patient = _target(inv, "bris-de-glace")
        raw = inv.tx.tx
        facts = record_facts(raw, inv.ctx.defs, patient.id, retention_years)
        assert facts is not None
        actor = caller_reference(inv)
        if facts.state_refusal is not None:
            raise _refuse(
                inv,
                ref,
                "break-glass",
                "dmp-access:state",
                f"$bris-de-glace: {facts.state_refusal}",
            )
        for block in facts.blocks:
            if block.names(who, inv.principal.fhir_user):
                raise _refuse(
                    inv,
                    ref,
                    "break-glass",
                    "dmp-access:blocked",
                    "$bris-de-glace: the patient blocked your access to his DMP, in an "
                    "emergency too",
                )
        if facts.emergency_opposed is not None:
            raise _refuse(
                inv,
                ref,
                "break-glass",
                "dmp-access:emergency-opposed",
                f"$bris-de-glace: the patient opposed access to his DMP in an emergency on "
                f"{facts.emergency_opposed[:10]}",
            )
        now = clock()
        until = _instant(now + timedelta(minutes=minutes))
        consent = _record(
            inv,
            raw,
            patient.id,
            Kind.BRIS_DE_GLACE,
            True,
            actor,
            at=_instant(now),
            performer=actor,
            period=(_instant(now), until),
            reason=reason,
        )
        _notify(inv, raw, patient.id, actor, reason, now, until, consent)
        _decided(
            inv, "break-glass", consent, ref, "dmp-access:bris-de-glace", reason, emergency=True
        )
        return _answer(consent, f"bris de glace until {until}: {reason}", until)

    for name, handler in (
        ("Patient-dmp-consent", dmp_consent),
        ("Patient-dmp-block", dmp_block),
        ("Patient-dmp-care-team", dmp_care_team),
    ):
        registry.add(Operation(load_definition(name), handler, "update", EVERY_CONTEXT))
    registry.add(
        Operation(load_definition("Patient-bris-de-glace"), bris_de_glace, "read", EVERY_CONTEXT)
    )


def _notify(
    inv: Invocation,
    tx: StoreTx,
    patient_id: str,
    actor: Mapping[str, Any],
    reason: str,
    now: datetime,
    until: str,
    consent: Stored,
) -> None:
    """Tell the patient, in French, that his DMP was opened in an emergency: a Communication
    in his record (https://hl7.org/fhir/R4/communication.html)."""
    who = inv.principal.professional
    assert who is not None
    name = actor.get("display") or f"le professionnel {who.national_id}"
    structure = ", ".join(f"{k.upper()} {v}" for k, v in sorted(who.structure.items()))
    text = (
        f"Le {now.astimezone(UTC).strftime('%d/%m/%Y à %H:%M')} (UTC), {name}"
        f"{' (' + structure + ')' if structure else ''} a accédé à votre dossier médical "
        f"partagé en urgence (bris de glace), jusqu'à {until[11:16]} (UTC). Motif déclaré : "
        f"« {reason} ». Cet accès figure dans l'historique des accès à votre dossier."
    )
    body = {
        "resourceType": "Communication",
        "status": "completed",
        "category": [{"coding": [{"system": COMMUNICATION_CATEGORY, "code": "notification"}]}],
        "subject": {"reference": f"Patient/{patient_id}"},
        "recipient": [{"reference": f"Patient/{patient_id}"}],
        "sender": dict(actor),
        "sent": _instant(now),
        "about": [{"reference": f"Consent/{consent.id}"}],
        "payload": [{"contentString": text}],
    }
    ix.create(inv.ctx, tx, "Communication", body)


__all__ = ["caller_reference", "register_access"]
