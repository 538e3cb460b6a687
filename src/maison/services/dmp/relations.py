"""The facts of a patient's record the access rules decide on, read from the FHIR resources
that hold them: the DMP's state and the patient's decisions (``Consent``, see
:mod:`maison.services.dmp.record`), his médecin traitant DMP (a Patient extension), and his
équipes de soins (``CareTeam``: subject the patient, members Practitioner, PractitionerRole or
a whole Organization, a period).

A care team counts only once the patient consented to its access (a ``dmp-care-team``
Consent naming it: Conseil d'État, 15 October 2025); the patient's consent to one professional
(``dmp-professional``) and a bris de glace (``dmp-bris-de-glace``) run for their period; a
blocking (``dmp-block``) refuses the professional it names.

https://hl7.org/fhir/R4/careteam.html, https://hl7.org/fhir/R4/consent.html,
https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from maison.fhir.definitions import Definitions
from maison.security.access import MASQUE_PS, Grant, RecordFacts, author_ids
from maison.services.dmp import record
from maison.services.dmp.record import Kind, State
from maison.store.interface import Stored, StoreTx

IDNST: Final = "urn:oid:1.2.250.1.71.4.2.2"
#: The largest number of active Consents or CareTeams read for one record.
MAX_ROWS: Final = 1000


#: Where a record's Consents and CareTeams name their patient, and its documents too (only
#: those masked to professionals are looked up: :data:`MASKED`).
HOLDERS: Final = {
    "Consent": ("patient",),
    "CareTeam": ("patient", "subject"),
    "DocumentReference": ("subject",),
}
MASKED: Final = {"DocumentReference": ("security-label", MASQUE_PS)}


def _record(
    tx: StoreTx, patient_id: str
) -> tuple[Stored | None, dict[str, list[dict[str, Any]]], list[Stored]]:
    """(the Patient, the active Consents and CareTeams naming him, his documents masked to
    professionals): one look-up of the reference and token indexes, then one read of all of
    them (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/, TD3.3a)."""
    ids: dict[str, list[str]] = {}
    for rtype, rid in tx.referencing("Patient", patient_id, HOLDERS, MASKED):
        ids.setdefault(rtype, []).append(rid)
    refs = [("Patient", patient_id)]
    for rtype, wanted in ids.items():
        refs.extend((rtype, rid) for rid in wanted[:MAX_ROWS])
    found = tx.read_each(refs)
    held: dict[str, list[dict[str, Any]]] = {}
    masked: list[Stored] = []
    for (rtype, _), stored in sorted(found.items()):
        body = stored.resource
        if body is None or rtype == "Patient":
            continue
        if rtype == "DocumentReference":
            masked.append(stored)
        elif body.get("status") == "active":
            held.setdefault(rtype, []).append(body)
    return found.get(("Patient", patient_id)), held, masked


def _masked(masked: list[Stored]) -> tuple[tuple[str, frozenset[str], frozenset[str]], ...]:
    """The masked documents with their authors (who still see them)."""
    out = []
    for stored in masked:
        if stored.resource is not None:
            idnps, refs = author_ids(stored.resource)
            out.append((stored.id, idnps, refs))
    return tuple(out)


class FactsCache:
    """The facts of records and the standing of professionals, kept per process while no
    resource is written (a stamp of one index probe, read at each request): a consent
    recorded, a team changed, a document masked or a professional deactivated takes effect at
    the next request, in every worker.

    ``max_age`` (seconds) bounds how long an entry is trusted whatever the stamp says: on
    PostgreSQL, writers in other processes take their seq numbers before they commit, so one
    that commits after a later number was seen leaves the stamp unchanged; an entry read
    meanwhile is kept at most this long (None: the stamp alone, as SQLite writers commit in
    seq order)."""

    def __init__(
        self,
        defs: Callable[[], Definitions],
        size: int = 20_000,
        max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._defs = defs
        self._size = size
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = -1
        self._filled = 0.0  # when the entries of this stamp began to be kept
        self._facts: dict[str, RecordFacts | None] = {}
        self._standing: dict[str, str | None] = {}

    def for_request(
        self, retention_years: int = record.RETENTION_YEARS, write: bool = False
    ) -> tuple[Callable[[StoreTx, str], RecordFacts | None], Callable[[StoreTx, str], str | None]]:
        """(facts loader, standing check) for one request: the stamp is read once. A write
        unit reads through the cache but never fills it (what it read may be rolled back)."""
        seen: list[int] = []

        def stamp(tx: StoreTx) -> int:
            if not seen:
                now = tx.last_write()
                seen.append(now)
                with self._lock:
                    stale = (
                        self._max_age is not None and self._clock() - self._filled > self._max_age
                    )
                    if (now != self._stamp or stale) and not write:
                        self._stamp = now
                        self._filled = self._clock()
                        self._facts.clear()
                        self._standing.clear()
            return seen[0]

        def facts(tx: StoreTx, patient_id: str) -> RecordFacts | None:
            current = stamp(tx)
            with self._lock:
                if patient_id in self._facts and self._stamp == current:
                    return self._facts[patient_id]
            found = record_facts(tx, self._defs(), patient_id, retention_years)
            with self._lock:
                if self._stamp == current and not write:
                    if len(self._facts) >= self._size:
                        self._facts.clear()
                    self._facts[patient_id] = found
            return found

        def standing(tx: StoreTx, idnps: str) -> str | None:
            current = stamp(tx)
            with self._lock:
                if idnps in self._standing and self._stamp == current:
                    return self._standing[idnps]
            found = annuaire_standing(tx, idnps)
            with self._lock:
                if self._stamp == current and not write:
                    if len(self._standing) >= self._size:
                        self._standing.clear()
                    self._standing[idnps] = found
            return found

        return facts, standing


def annuaire_standing(tx: StoreTx, idnps: str) -> str | None:
    """Why the Annuaire Santé no longer lets this professional act (his Practitioner, read by
    its IDNPS id as the import stores it, is inactive), None when it does or does not know him:
    a token issued before his deactivation stops opening records at once
    (https://interop.esante.gouv.fr/ig/fhir/annuaire/)."""
    stored = tx.read("Practitioner", idnps)
    if stored is None or stored.deleted or stored.resource is None:
        return None
    if stored.resource.get("active") is False:
        return (
            f"the professional {idnps} is no longer active in the Annuaire Santé: he may not "
            "open a patient's record"
        )
    return None


def state_refusal(status: record.DmpStatus) -> str | None:
    """Why nobody may read the record, whatever his relationship: closed or merged. A DMP
    never opened explicitly is read like an open one: since the loi du 24 juillet 2019 Mon
    espace santé is opened for everyone who did not object, and such a record is fed all the
    same (:func:`record.feeding_refusal`)
    (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/, TD0.2)."""
    if status.state in (State.OPEN, State.NEVER_OPENED):
        return None
    return record.consultation_refusal(
        record.DmpStatus(
            status.patient,
            status.state,
            status.opened_at,
            status.closed_at,
            status.purge_after,
            None,
            None,
            None,
        ),
        None,
    )


def _identifiers(resource: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for ident in resource.get("identifier") or []:
        if isinstance(ident, Mapping):
            system, value = ident.get("system"), ident.get("value")
            if isinstance(system, str) and isinstance(value, str):
                out.append((system, value))
    return out


def _read(tx: StoreTx, ref: str) -> Stored | None:
    head, _, rid = ref.rstrip("/").rpartition("/")
    if not rid or not head:
        return None
    found = tx.read(head.rsplit("/", 1)[-1], rid)
    return found if found is not None and not found.deleted and found.resource else None


def who_is(tx: StoreTx, reference: Mapping[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """(IDNPS values, references, structure ids) a Reference names: a Practitioner (his
    IDNPS), a PractitionerRole (its practitioner's), an Organization (its FINESS, SIRET, IDNST
    and the id an IDNST carries after its type digit), or an identifier alone."""
    idnps: set[str] = set()
    refs: set[str] = set()
    structures: set[str] = set()
    ident = reference.get("identifier")
    if isinstance(ident, Mapping):
        system, value = ident.get("system"), ident.get("value")
        if isinstance(value, str):
            if system == record.IDNPS:
                idnps.add(value)
            else:
                structures.add(value)
    ref = reference.get("reference")
    if isinstance(ref, str):
        refs.add(ref)
        if idnps and ref.startswith("Practitioner/"):
            return idnps, refs, structures  # his IDNPS is named: nothing more to read
        target = _read(tx, ref)
        if target is not None and target.resource is not None:
            body = target.resource
            if target.type == "PractitionerRole":
                inner = body.get("practitioner")
                if isinstance(inner, Mapping):
                    more = who_is(tx, inner)
                    idnps |= more[0]
                    refs |= more[1]
            for system, value in _identifiers(body):
                if target.type == "Organization":
                    structures.add(value)
                    if system == IDNST and len(value) > 1:
                        structures.add(value[1:])
                elif system == record.IDNPS:
                    idnps.add(value)
    return idnps, refs, structures


def _period(value: Any) -> tuple[datetime | None, datetime | None]:
    """(start, end) of a Period, open ends as None."""
    period = value if isinstance(value, Mapping) else {}
    start, end = period.get("start"), period.get("end")
    return (
        record.parse_instant(start) if isinstance(start, str) else None,
        record.parse_instant(end) if isinstance(end, str) else None,
    )


def _grant(
    tx: StoreTx, kind: Any, consent: Mapping[str, Any], reference: Mapping[str, Any]
) -> Grant:
    idnps, refs, structures = who_is(tx, reference)
    start, end = record.period_of(consent)
    return Grant(
        kind,
        f"Consent/{consent.get('id')}",
        frozenset(idnps),
        frozenset(refs),
        frozenset(structures),
        start,
        end,
        record.emergency_reason(consent),
    )


def _newest_per_actor(
    consents: Iterable[Mapping[str, Any]], kind: Kind
) -> list[tuple[record.Decision, Mapping[str, Any], Mapping[str, Any]]]:
    """The newest decision of ``kind`` per actor named (earlier ones are superseded)."""
    best: dict[str, tuple[record.Decision, Mapping[str, Any], Mapping[str, Any]]] = {}
    for consent in consents:
        decision = record.decision_of(consent)
        actor = record.actor_of(consent)
        if decision is None or decision.kind is not kind or actor is None:
            continue
        key = str(actor.get("reference") or actor.get("identifier"))
        if kind is Kind.BRIS_DE_GLACE:
            key = f"{key}#{consent.get('id')}"  # every emergency stands on its own
        moment = record.parse_instant(decision.at) or datetime.min.replace(tzinfo=UTC)
        held = best.get(key)
        if held is None or (record.parse_instant(held[0].at) or moment) <= moment:
            best[key] = (decision, consent, actor)
    return list(best.values())


def record_facts(
    tx: StoreTx,
    defs: Definitions,
    patient_id: str,
    retention_years: int = record.RETENTION_YEARS,
) -> RecordFacts | None:
    """The facts of ``Patient/[patient_id]``'s record, None when no such patient
    (https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185)."""
    patient, held, documents = _record(tx, patient_id)
    if patient is None or patient.resource is None:
        return None
    consents = held.get("Consent", [])
    status = record.dmp_status(patient.resource, consents, retention_years)
    grants: list[Grant] = []
    blocks: list[Grant] = []
    for decision, consent, actor in _newest_per_actor(consents, Kind.PROFESSIONAL):
        if decision.permit:
            grants.append(_grant(tx, "consent", consent, actor))
    for decision, consent, actor in _newest_per_actor(consents, Kind.BRIS_DE_GLACE):
        if decision.permit:
            grants.append(_grant(tx, "emergency", consent, actor))
    for decision, consent, actor in _newest_per_actor(consents, Kind.BLOCK):
        if not decision.permit:
            blocks.append(_grant(tx, "block", consent, actor))
    team_consent: dict[str, str | None] = {}
    for decision, consent, actor in _newest_per_actor(consents, Kind.CARE_TEAM):
        ref = actor.get("reference")
        if isinstance(ref, str):
            team_consent[ref] = f"Consent/{consent.get('id')}" if decision.permit else None
    for team in held.get("CareTeam", []):
        ref = f"CareTeam/{team.get('id')}"
        team_start, team_end = _period(team.get("period"))
        for participant in team.get("participant") or []:
            member = participant.get("member") if isinstance(participant, Mapping) else None
            if not isinstance(member, Mapping):
                continue
            idnps, refs, structures = who_is(tx, member)
            # a member's own period narrows the team's (https://hl7.org/fhir/R4/careteam.html)
            start, end = _period(participant.get("period"))
            grants.append(
                Grant(
                    "care-team",
                    ref,
                    frozenset(idnps),
                    frozenset(refs),
                    frozenset(structures),
                    max((t for t in (team_start, start) if t is not None), default=None),
                    min((t for t in (team_end, end) if t is not None), default=None),
                    consent=team_consent.get(ref),
                )
            )
    masked = _masked(documents)
    return RecordFacts(
        masked=masked,
        masked_complete=len(documents) < MAX_ROWS,
        patient=f"Patient/{patient_id}",
        state_refusal=state_refusal(status),
        consultation_opposed=status.consultation_opposed_since,
        emergency_opposed=status.emergency_opposed_since,
        medecin_traitant=status.medecin_traitant,
        grants=tuple(grants),
        blocks=tuple(blocks),
    )


__all__ = [
    "FactsCache",
    "annuaire_standing",
    "record_facts",
    "state_refusal",
    "who_is",
]
