"""The DMP of a patient: whether it is open, closed or never opened, the patient's oppositions
to feeding and to consultation, his médecin traitant DMP, and what each means for a feed or a
consultation — pure rules over the FHIR resources that hold that state.

Where the state lives (readable by the portal, searchable like any resource):

* **Opening** — a ``Consent`` (the patient's consent to the opening, hence to the feeding of
  his DMP), ``Patient.active`` true. Confidence: high that a Consent is the FHIR home of such
  a decision; medium on the codes below.
* **Closure** — ``Patient.active`` false and the complex extension :data:`CLOSURE` (``date``
  valueDateTime, ``reason`` valueString) on the Patient. PDSM4DMP (draft, ci-build) names a
  ``dmp-fermeture`` extension under ``https://interop.esante.gouv.fr/ig/fhir/dmp/…``, but
  neither its URL nor its shape is in a published guide we hold, so the canonical is ours
  (``https://maison.example.org/fhir/StructureDefinition/dmp-closure``), to be swapped for the
  ANS one when it is published. Confidence: medium. A closed DMP's documents are kept for
  :data:`RETENTION_YEARS` (10 years, CSP, as the consumer site says; configurable), then
  purged by ``maison dmp purge``.
* **Oppositions** — one ``Consent`` per decision, the newest active one per kind deciding:
  ``scope`` ``patient-privacy``, ``category`` = LOINC 59284-0 "Patient consent" (the code
  R4's consent-category examples use for a patient's consent) plus our code saying which DMP
  decision it records (:data:`DECISION_SYSTEM`: ``dmp-opening``, ``dmp-feeding``,
  ``dmp-consultation``; no NOS code set for these decisions exists in the corpora);
  ``policyRule`` v3-ActCode ``OPTIN`` (permit) / ``OPTOUT`` (deny); ``provision.type``
  permit/deny; ``provision.action`` consentaction ``collect`` (feeding) or ``access``
  (consultation); ``dateTime``; ``performer`` the patient or his legal representative
  (RelatedPerson); ``verification`` (who confirmed it, when), ``sourceReference`` (the
  signed form, when there is one) and our extension :data:`COLLECTION_METHOD` (oral, written,
  electronic) saying how it was collected.
  An earlier decision of the same kind is made ``inactive`` when a new one is recorded, so the
  history stays and ``status=active`` reads the current state. Confidence: medium.
* **Médecin traitant DMP** — the extension :data:`MEDECIN_TRAITANT` (valueReference to a
  Practitioner or PractitionerRole, carrying his IDNPS as ``Reference.identifier``) on the
  Patient, not ``Patient.generalPractitioner``: the médecin traitant DMP is a status the
  patient grants in his DMP (it lets the doctor see documents masked to professionals), which
  need not match the general practitioners another system records, and an ADT feed rewriting
  ``generalPractitioner`` must not change DMP rights. Same canonical policy as the closure
  (PDSM4DMP draft: ``dmp-medecin-traitant``). Confidence: medium-high.

A Patient never opened is fed all the same unless a caller asks for an opening first
(:func:`feeding_refusal` ``require_opening``): since the loi du 24 juillet 2019 Mon espace
santé — and the DMP in it — is opened for everyone who did not object, so the absence of a
recorded opening is not a refusal. A closed DMP, a record made inactive (merged), or an
opposition to feeding refuse every feed. An opposition to consultation refuses every
professional, the médecin traitant included; only the bris de glace (issue 8) may pass it.

https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/ (TD0.2), https://hl7.org/fhir/R4/consent.html
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final

#: Our extensions and code system (not the ANS drafts: see the module docstring).
CANONICAL_BASE: Final = "https://maison.example.org/fhir"
CLOSURE: Final = f"{CANONICAL_BASE}/StructureDefinition/dmp-closure"
MEDECIN_TRAITANT: Final = f"{CANONICAL_BASE}/StructureDefinition/dmp-medecin-traitant"
DECISION_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/dmp-decision"
#: How a decision was collected (oral | written | electronic), on the Consent.
COLLECTION_METHOD: Final = f"{CANONICAL_BASE}/StructureDefinition/dmp-collection-method"
COLLECTION_METHODS: Final = frozenset({"oral", "written", "electronic"})
LOINC: Final = "http://loinc.org"
PATIENT_CONSENT: Final = "59284-0"
SCOPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
ACTION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentaction"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
IDNPS: Final = "urn:oid:1.2.250.1.71.4.2.1"
PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#: How long a closed DMP's documents are kept before the purge (CSP; consumer site).
RETENTION_YEARS: Final = 10


class Kind(StrEnum):
    """The DMP decisions a patient records, each a Consent category code of ours."""

    OPENING = "dmp-opening"
    FEEDING = "dmp-feeding"
    CONSULTATION = "dmp-consultation"
    #: the patient's opposition to (or acceptance of) access in an emergency
    EMERGENCY = "dmp-emergency"
    #: the patient's initial consent to an équipe de soins' access (one per CareTeam)
    CARE_TEAM = "dmp-care-team"
    #: the patient's consent to one professional's access, for one consultation
    PROFESSIONAL = "dmp-professional"
    #: the patient's blocking of one professional
    BLOCK = "dmp-block"
    #: a professional's bris de glace: not the patient's will, the legal basis of an
    #: emergency access, recorded so that its window is part of the record's state
    BRIS_DE_GLACE = "dmp-bris-de-glace"


#: The decisions made per actor (a team, a professional): several are active at once.
PER_ACTOR: Final = frozenset({Kind.CARE_TEAM, Kind.PROFESSIONAL, Kind.BLOCK, Kind.BRIS_DE_GLACE})
#: The extension holding the justification of a bris de glace.
EMERGENCY_REASON: Final = f"{CANONICAL_BASE}/StructureDefinition/dmp-emergency-reason"


#: consentaction code of each decision: feeding collects, consultation accesses.
ACTION: Final = {
    Kind.OPENING: "collect",
    Kind.FEEDING: "collect",
    Kind.CONSULTATION: "access",
    Kind.EMERGENCY: "access",
    Kind.CARE_TEAM: "access",
    Kind.PROFESSIONAL: "access",
    Kind.BLOCK: "access",
    Kind.BRIS_DE_GLACE: "access",
}
DISPLAY: Final = {
    Kind.OPENING: "Ouverture du DMP (consentement à l'alimentation)",
    Kind.FEEDING: "Alimentation du DMP",
    Kind.CONSULTATION: "Consultation du DMP",
    Kind.EMERGENCY: "Accès en urgence (bris de glace) au DMP",
    Kind.CARE_TEAM: "Accès de l'équipe de soins au DMP",
    Kind.PROFESSIONAL: "Accès d'un professionnel au DMP pour une consultation",
    Kind.BLOCK: "Blocage d'un professionnel",
    Kind.BRIS_DE_GLACE: "Accès en mode bris de glace",
}


class State(StrEnum):
    """Where a DMP stands."""

    NEVER_OPENED = "never-opened"
    OPEN = "open"
    CLOSED = "closed"
    INACTIVE = "inactive"  # Patient.active false without closure: a merged duplicate


@dataclass(frozen=True)
class Decision:
    """One recorded decision of the patient (a Consent)."""

    kind: Kind
    permit: bool
    at: str  # Consent.dateTime
    consent_id: str | None


@dataclass(frozen=True)
class DmpStatus:
    """A patient's DMP as TD0.2 reports it: https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/."""

    patient: str  # "Patient/[id]"
    state: State
    opened_at: str | None
    closed_at: str | None
    purge_after: date | None
    feeding_opposed_since: str | None
    consultation_opposed_since: str | None
    medecin_traitant: Mapping[str, Any] | None  # a Reference
    emergency_opposed_since: str | None = None  # opposition to the bris de glace

    @property
    def exists(self) -> bool:
        """Whether a DMP was ever opened (closed ones still exist until purged)."""
        return self.state in (State.OPEN, State.CLOSED) or self.opened_at is not None

    @property
    def is_open(self) -> bool:
        """Whether the DMP is open."""
        return self.state is State.OPEN


def _day(value: str | None) -> str | None:
    return value[:10] if isinstance(value, str) else None


def parse_instant(value: str) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime (UTC when no offset), None when malformed
    (https://hl7.org/fhir/R4/datatypes.html#dateTime)."""
    text = value.strip()
    if len(text) == 4 and text.isdigit():
        text += "-01-01"
    elif len(text) == 7:
        text += "-01"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def add_years(day: date, years: int) -> date:
    """``day`` plus whole years (29 February → 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def extension(resource: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    """The first extension of ``resource`` with this url."""
    for ext in resource.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == url:
            return ext
    return None


def closure_date(patient: Mapping[str, Any]) -> str | None:
    """The closure date the Patient's :data:`CLOSURE` extension records, None when open."""
    ext = extension(patient, CLOSURE)
    if ext is None:
        return None
    part = extension(ext, "date")
    value = part.get("valueDateTime") if part is not None else None
    return value if isinstance(value, str) else None


def decision_of(consent: Mapping[str, Any]) -> Decision | None:
    """The DMP decision a Consent records, None when it records none (not ours, inactive,
    malformed) (https://hl7.org/fhir/R4/consent.html)."""
    if consent.get("resourceType") != "Consent" or consent.get("status") != "active":
        return None
    kind: Kind | None = None
    for category in consent.get("category") or []:
        for coding in category.get("coding") or [] if isinstance(category, Mapping) else []:
            if isinstance(coding, Mapping) and coding.get("system") == DECISION_SYSTEM:
                try:
                    kind = Kind(str(coding.get("code")))
                except ValueError:
                    return None
    provision = consent.get("provision")
    at = consent.get("dateTime")
    if kind is None or not isinstance(provision, Mapping) or not isinstance(at, str):
        return None
    if provision.get("type") not in ("permit", "deny"):
        return None
    cid = consent.get("id")
    return Decision(kind, provision["type"] == "permit", at, cid if isinstance(cid, str) else None)


def _newest(decisions: Iterable[Decision], kind: Kind) -> Decision | None:
    mine = [d for d in decisions if d.kind is kind]
    if not mine:
        return None
    return max(mine, key=lambda d: parse_instant(d.at) or datetime.min.replace(tzinfo=UTC))


def dmp_status(
    patient: Mapping[str, Any],
    consents: Iterable[Mapping[str, Any]],
    retention_years: int = RETENTION_YEARS,
) -> DmpStatus:
    """The state of a patient's DMP from his Patient resource and the Consents naming him
    (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/, TD0.2)."""
    decisions = [d for d in (decision_of(c) for c in consents) if d is not None]
    opening = _newest(decisions, Kind.OPENING)
    feeding = _newest(decisions, Kind.FEEDING)
    consultation = _newest(decisions, Kind.CONSULTATION)
    emergency = _newest(decisions, Kind.EMERGENCY)
    closed = closure_date(patient)
    purge_after: date | None = None
    if closed is not None:
        state = State.CLOSED
        moment = parse_instant(closed)
        purge_after = add_years(moment.date(), retention_years) if moment is not None else None
    elif patient.get("active") is False:
        state = State.INACTIVE
    elif opening is not None and opening.permit:
        state = State.OPEN
    else:
        state = State.NEVER_OPENED
    ext = extension(patient, MEDECIN_TRAITANT)
    doctor = ext.get("valueReference") if ext is not None else None
    return DmpStatus(
        patient=f"Patient/{patient.get('id')}",
        state=state,
        opened_at=opening.at if opening is not None and opening.permit else None,
        closed_at=closed,
        purge_after=purge_after,
        feeding_opposed_since=feeding.at if feeding is not None and not feeding.permit else None,
        consultation_opposed_since=(
            consultation.at if consultation is not None and not consultation.permit else None
        ),
        medecin_traitant=doctor if isinstance(doctor, Mapping) else None,
        emergency_opposed_since=(
            emergency.at if emergency is not None and not emergency.permit else None
        ),
    )


def feeding_refusal(status: DmpStatus, require_opening: bool = False) -> str | None:
    """Why nothing may be fed into this DMP, None when it may be fed
    (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/, TD2)."""
    if status.state is State.CLOSED:
        return (
            f"the patient's DMP is closed since {_day(status.closed_at)}: nothing can be fed "
            "into it"
        )
    if status.state is State.INACTIVE:
        return (
            f"the patient record {status.patient} is inactive (merged into another record?): "
            "feed the patient's active record"
        )
    if status.feeding_opposed_since is not None:
        return (
            f"the patient opposed the feeding of his DMP on "
            f"{_day(status.feeding_opposed_since)}: nothing can be fed until he lifts it"
        )
    if require_opening and status.state is State.NEVER_OPENED:
        return "the patient's DMP was never opened: record his consent with $dmp-open first"
    return None


def is_professional(
    reference: Mapping[str, Any] | None, national_id: str | None, fhir_user: str | None = None
) -> bool:
    """Whether a Reference (the médecin traitant) names the caller: by IDNPS, or by the
    ``fhirUser`` of his token (https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect)."""
    if not isinstance(reference, Mapping):
        return False
    ident = reference.get("identifier")
    if (
        national_id
        and isinstance(ident, Mapping)
        and ident.get("system") == IDNPS
        and ident.get("value") == national_id
    ):
        return True
    ref = reference.get("reference")
    return bool(fhir_user) and isinstance(ref, str) and ref == fhir_user


def consultation_refusal(
    status: DmpStatus, national_id: str | None, fhir_user: str | None = None
) -> str | None:
    """Why this professional (IDNPS ``national_id``) may not consult the DMP, None when this
    check lets him: the state and the oppositions only; the care team, consent at each
    consultation, the matrix and the bris de glace come with the access rules (issue 8)
    (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/, TD0.2)."""
    if status.state is State.NEVER_OPENED:
        return "the patient has no DMP on this platform (it was never opened)"
    if status.state is State.INACTIVE:
        return (
            f"the patient record {status.patient} is inactive (merged into another record?): "
            "look up the patient's active record"
        )
    if status.state is State.CLOSED:
        return (
            f"the patient's DMP is closed since {_day(status.closed_at)}: it can no longer be "
            f"consulted (its documents are kept until {status.purge_after}, then purged)"
        )
    if status.consultation_opposed_since is not None:
        doctor = is_professional(status.medecin_traitant, national_id, fhir_user)
        who = "even by his médecin traitant DMP" if doctor else "by any professional"
        return (
            f"the patient opposed the consultation of his DMP on "
            f"{_day(status.consultation_opposed_since)}: it may not be consulted {who}, "
            "except through the bris de glace where the patient did not oppose it"
        )
    return None


def purge_due(status: DmpStatus, today: date) -> bool:
    """Whether a closed DMP's retention period is over on ``today``, so its documents are
    purged (CSP: 10 years after the closure)."""
    return (
        status.state is State.CLOSED
        and status.purge_after is not None
        and (today >= status.purge_after)
    )


def consent_resource(
    patient_id: str,
    kind: Kind,
    permit: bool,
    at: str,
    performer: Mapping[str, Any] | None = None,
    method: str | None = None,
    source: Mapping[str, Any] | None = None,
    actor: Mapping[str, Any] | None = None,
    period: tuple[str, str | None] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """The Consent recording one DMP decision of the patient (or his legal representative)
    (https://hl7.org/fhir/R4/consent.html)."""
    patient_ref = {"reference": f"Patient/{patient_id}"}
    who = dict(performer) if performer is not None else patient_ref
    verification: dict[str, Any] = {
        "verified": True,
        "verifiedWith": who,
        "verificationDate": at,
    }
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": LOINC, "code": PATIENT_CONSENT, "display": "Patient consent"}]},
            {"coding": [{"system": DECISION_SYSTEM, "code": kind.value, "display": DISPLAY[kind]}]},
        ],
        "patient": patient_ref,
        "dateTime": at,
        "performer": [who],
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN" if permit else "OPTOUT"}]},
        "verification": [verification],
        "provision": {
            "type": "permit" if permit else "deny",
            "action": [{"coding": [{"system": ACTION_SYSTEM, "code": ACTION[kind]}]}],
        },
    }
    extensions: list[dict[str, Any]] = []
    if method:
        extensions.append({"url": COLLECTION_METHOD, "valueCode": method})
    if reason:
        extensions.append({"url": EMERGENCY_REASON, "valueString": reason})
    if extensions:
        consent["extension"] = extensions
    if source is not None:
        consent["sourceReference"] = dict(source)
    provision = consent["provision"]
    if actor is not None:
        provision["actor"] = [
            {
                "role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
                "reference": dict(actor),
            }
        ]
    if period is not None:
        provision["period"] = {"start": period[0], **({"end": period[1]} if period[1] else {})}
    if kind is Kind.BRIS_DE_GLACE:  # the professional's declaration: nothing the patient verified
        consent.pop("verification", None)
        provision["purpose"] = [{"system": ACT_REASON, "code": "BTG", "display": "break the glass"}]
        consent["policyRule"] = {"coding": [{"system": ACT_REASON, "code": "BTG"}]}
    return consent


def actor_of(consent: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Reference a per-actor decision names (``provision.actor[0].reference``)."""
    provision = consent.get("provision")
    actors = provision.get("actor") if isinstance(provision, Mapping) else None
    if isinstance(actors, list) and actors and isinstance(actors[0], Mapping):
        ref = actors[0].get("reference")
        return ref if isinstance(ref, Mapping) else None
    return None


def period_of(consent: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The (start, end) of a decision's ``provision.period``, open ends as None."""
    provision = consent.get("provision")
    period = provision.get("period") if isinstance(provision, Mapping) else None
    if not isinstance(period, Mapping):
        return None, None
    start, end = period.get("start"), period.get("end")
    return (
        parse_instant(start) if isinstance(start, str) else None,
        parse_instant(end) if isinstance(end, str) else None,
    )


def emergency_reason(consent: Mapping[str, Any]) -> str | None:
    """The justification a bris de glace records."""
    ext = extension(consent, EMERGENCY_REASON)
    value = ext.get("valueString") if ext is not None else None
    return value if isinstance(value, str) else None


def closed_patient(patient: Mapping[str, Any], at: str, reason: str | None) -> dict[str, Any]:
    """The Patient with its DMP closed: ``active`` false and the :data:`CLOSURE` extension."""
    parts: list[dict[str, Any]] = [{"url": "date", "valueDateTime": at}]
    if reason:
        parts.append({"url": "reason", "valueString": reason})
    out = _without(patient, CLOSURE)
    out["active"] = False
    out["extension"] = [*out.get("extension", []), {"url": CLOSURE, "extension": parts}]
    return out


def reopened_patient(patient: Mapping[str, Any]) -> dict[str, Any]:
    """The Patient with its DMP open: ``active`` true, no closure."""
    return {**_without(patient, CLOSURE), "active": True}


def with_medecin_traitant(
    patient: Mapping[str, Any], doctor: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The Patient with ``doctor`` (a Reference) as médecin traitant DMP, or none."""
    out = _without(patient, MEDECIN_TRAITANT)
    if doctor is not None:
        out["extension"] = [
            *out.get("extension", []),
            {"url": MEDECIN_TRAITANT, "valueReference": dict(doctor)},
        ]
    return out


def _without(resource: Mapping[str, Any], url: str) -> dict[str, Any]:
    out = dict(resource)
    kept = [
        e
        for e in resource.get("extension") or []
        if not (isinstance(e, Mapping) and e.get("url") == url)
    ]
    if kept:
        out["extension"] = kept
    else:
        out.pop("extension", None)
    return out


__all__ = [
    "CLOSURE",
    "COLLECTION_METHOD",
    "COLLECTION_METHODS",
    "DECISION_SYSTEM",
    "MEDECIN_TRAITANT",
    "RETENTION_YEARS",
    "Decision",
    "DmpStatus",
    "Kind",
    "State",
    "add_years",
    "closed_patient",
    "closure_date",
    "consent_resource",
    "consultation_refusal",
    "decision_of",
    "dmp_status",
    "feeding_refusal",
    "is_professional",
    "parse_instant",
    "purge_due",
    "reopened_patient",
    "with_medecin_traitant",
]
