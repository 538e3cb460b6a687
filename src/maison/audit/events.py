"""Pure builders of the AuditEvents the platform records, after IHE BALP (Basic Audit Log Patterns).

One AuditEvent per access, decision or administrative action, shaped after the BALP profiles
(https://profiles.ihe.net/ITI/BALP/): the *who* (agent ``user``: IDNPS, profession TRE_G15; agent
``userorg``: the structure; agent ``client``: the application and its network address), the
*what* (entity for the patient, role 1, and for the resources, role 3/4), the *when*
(``recorded``), the outcome (0/4/8) and the policy decision (an entity holding the rule, the
matrix cell and the consent). Events stay plain FHIR R4 dicts (https://hl7.org/fhir/R4/auditevent.html).

Codes, and where they come from:

* ``type``: ``rest`` of http://terminology.hl7.org/CodeSystem/audit-event-type for RESTful
  interactions (BALP Create/Read/Update/Delete/Query), with a subtype from
  http://hl7.org/fhir/restful-interaction; DICOM (http://dicom.nema.org/resources/ontology/DCM,
  PS3.16 CID 400/403) ``110110`` "Patient Record" for consents, ``110113`` "Security Alert" with
  ``110127`` "Emergency Override Started" for a bris de glace, ``110129`` "Security
  Configuration" for administrative actions.
* ``action`` C/R/U/D/E and ``outcome`` 0/4/8: https://hl7.org/fhir/R4/valueset-audit-event-action.html,
  https://hl7.org/fhir/R4/valueset-audit-event-outcome.html.
* agents: ``110150`` "Application" (DCM, BALP agent[client]), ``IRCP`` of
  v3-ParticipationType (BALP agent[user]), ``PROV`` of v3-RoleClass (BALP agent[userorg]);
  ``purposeOfUse`` ``BTG`` "break the glass" of http://terminology.hl7.org/CodeSystem/v3-ActReason.
* entities: http://terminology.hl7.org/CodeSystem/audit-entity-type (1 person, 2 system object),
  http://terminology.hl7.org/CodeSystem/object-role (1 patient, 3 report, 4 domain resource,
  13 security resource, 24 query); the request id as BALP's ``XrequestId`` entity.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, get_args

Action = Literal[
    "read",
    "search",
    "create",
    "update",
    "delete",
    "operation",
    "denial",
    "consent",
    "break-glass",
    "admin",
]
ACTIONS: Final[tuple[str, ...]] = get_args(Action)
Outcome = Literal["0", "4", "8"]  # success, minor failure, serious failure

DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL: Final = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CLASS: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
BALP_ENTITY_TYPE: Final = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
#: Our own code system naming the kind of each event (what the log's ``kind`` column holds).
KIND_SYSTEM: Final = "https://maison.example.org/fhir/CodeSystem/audit-kind"
#: Our own code system naming the ``$operation`` an event records.
OPERATION: Final = "https://maison.example.org/fhir/CodeSystem/operation"
IDNPS_SYSTEM: Final = "urn:oid:1.2.250.1.71.4.2.1"
TRE_G15: Final = (
    "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
)
STRUCTURE_SYSTEMS: Final = {
    "finess": "https://finess.esante.gouv.fr",
    "siret": "https://sirene.fr",
    "rass": "https://rass.esante.gouv.fr",
    "idnst": "urn:oid:1.2.250.1.71.4.2.2",
}
#: Resource types recorded as object role 3 "Report" (documents); others are 4 "Domain Resource".
DOCUMENT_TYPES: Final = frozenset({"DocumentReference", "Binary", "Composition", "List"})

_INTERACTION: Final[dict[str, tuple[str, str]]] = {
    # action → (restful-interaction code, AuditEvent.action)
    "read": ("read", "R"),
    "vread": ("vread", "R"),
    "history": ("history-instance", "R"),
    "search": ("search-type", "E"),
    "create": ("create", "C"),
    "update": ("update", "U"),
    "patch": ("patch", "U"),
    "delete": ("delete", "D"),
    "operation": ("operation", "E"),
}


class ProfessionalLike(Protocol):
    """The professional facts an event names (what ``ActingProfessional`` carries)."""

    @property
    def national_id(self) -> str: ...  # IDNPS

    @property
    def profession(self) -> str | None: ...  # TRE_G15

    @property
    def structure(self) -> Mapping[str, str]: ...  # finess / siret / rass


class PrincipalLike(Protocol):
    """The caller facts an event names (what ``security.Principal`` carries)."""

    @property
    def subject(self) -> str: ...

    @property
    def client_id(self) -> str | None: ...

    @property
    def fhir_user(self) -> str | None: ...

    @property
    def professional(self) -> ProfessionalLike | None: ...


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted, as plain values (https://profiles.ihe.net/ITI/BALP/ agent[user]/[userorg])."""

    subject: str  # the token's ``sub`` (or a system name: "maison-cli")
    idnps: str | None = None
    profession: str | None = None  # TRE_G15 code
    structure: Mapping[str, str] = field(default_factory=dict)  # finess / siret / rass / idnst
    fhir_user: str | None = None  # "Practitioner/…", "Patient/…", "RelatedPerson/…"
    client_id: str | None = None  # the OAuth client (the application)
    name: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyReason:
    """Why the decision was taken: rule id, habilitation matrix cell, consent record."""

    rule: str | None = None
    cell: str | None = None
    consent: str | None = None  # a reference, e.g. "Consent/123"
    text: str | None = None  # a sentence for the patient and the DPO

    @classmethod
    def of(cls, value: PolicyReason | Mapping[str, Any] | None) -> PolicyReason | None:
        """A reason from a ``{rule, cell, consent, text}`` dict (or itself; None stays None)."""
        if value is None or isinstance(value, PolicyReason):
            return value
        return cls(
            **{k: str(value[k]) for k in ("rule", "cell", "consent", "text") if value.get(k)}
        )


def actor_of(principal: PrincipalLike) -> Actor:
    """The :class:`Actor` of an authenticated caller (https://profiles.ihe.net/ITI/BALP/)."""
    pro = principal.professional
    return Actor(
        subject=principal.subject,
        idnps=pro.national_id if pro else None,
        profession=pro.profession if pro else None,
        structure=dict(pro.structure) if pro else {},
        fhir_user=principal.fhir_user,
        client_id=principal.client_id,
    )


def audit_event(
    actor: Actor | PrincipalLike | None,
    action: Action,
    *,
    recorded: datetime,
    resources: Sequence[str] = (),
    patient: str | None = None,
    outcome: Outcome = "0",
    reason: PolicyReason | Mapping[str, Any] | None = None,
    client_address: str | None = None,
    request_id: str | None = None,
    interaction: str | None = None,
    query: str | None = None,
    break_glass: bool = False,
    description: str | None = None,
    server: str = "maison",
) -> dict[str, Any]:
    """One BALP-style AuditEvent (https://hl7.org/fhir/R4/auditevent.html).

    ``action`` is the kind of event; for a ``denial`` ``interaction`` names what was refused
    (default ``read``), for ``operation`` the ``$name``; ``resources`` are the references read or
    written (``DocumentReference/1``), ``patient`` the record concerned (``Patient/7``),
    ``query`` the search as sent; ``break_glass`` marks an access under bris de glace
    (purposeOfUse ``BTG``). Outcome "0" success, "4" refused or failed, "8" server failure.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if actor is not None and not isinstance(actor, Actor):
        actor = actor_of(actor)
    if action == "denial" and outcome == "0":
        outcome = "4"
    event: dict[str, Any] = {"resourceType": "AuditEvent"}
    event.update(_type(action, interaction))
    event["recorded"] = _instant(recorded)
    event["outcome"] = outcome
    policy = PolicyReason.of(reason)
    if description or (policy and policy.text):
        event["outcomeDesc"] = description or (policy.text if policy else None)
    if break_glass or action == "break-glass":
        event["purposeOfEvent"] = [_btg()]
    event["agent"] = _agents(actor, client_address, break_glass or action == "break-glass")
    event["source"] = {
        "site": server,
        "observer": {"display": server},
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    entities = _entities(patient, resources, query, request_id, policy)
    if entities:
        event["entity"] = entities
    return event


def kind_of(event: Mapping[str, Any]) -> str:
    """The kind of an event built by :func:`audit_event` (its ``audit-kind`` subtype code)."""
    for coding in event.get("subtype") or ():
        if coding.get("system") == KIND_SYSTEM:
            return str(coding["code"])
    return "other"


def patient_of(event: Mapping[str, Any]) -> str | None:
    """The patient an AuditEvent concerns: its entity of role 1 "Patient" (BALP entity[patient])."""
    for entity in event.get("entity") or ():
        role = entity.get("role") or {}
        if role.get("system") == OBJECT_ROLE and role.get("code") == "1":
            reference = (entity.get("what") or {}).get("reference")
            return str(reference) if reference else None
    return None


def requestor_of(event: Mapping[str, Any]) -> str | None:
    """The IDNPS of an AuditEvent's requesting agent (BALP agent[user], ``requestor`` true,
    identified in the IDNPS system), or None (https://profiles.ihe.net/ITI/BALP/)."""
    for agent in event.get("agent") or ():
        if agent.get("requestor") is not True:
            continue
        identifier = (agent.get("who") or {}).get("identifier") or {}
        if identifier.get("system") == IDNPS_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    return None


def as_bundle(events: Sequence[Mapping[str, Any]], total: int | None = None) -> dict[str, Any]:
    """A searchset Bundle of AuditEvents (https://hl7.org/fhir/R4/bundle.html#searchset)."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["entry"] = [
        {
            **({"fullUrl": f"AuditEvent/{e['id']}"} if e.get("id") else {}),
            "resource": dict(e),
            "search": {"mode": "match"},
        }
        for e in events
    ]
    return bundle


# -- parts -----------------------------------------------------------------------------------
def _type(action: str, interaction: str | None) -> dict[str, Any]:
    kind = {"system": KIND_SYSTEM, "code": action}
    if action == "consent":
        return {
            "type": {"system": DCM, "code": "110110", "display": "Patient Record"},
            "subtype": [kind],
            "action": "C" if interaction in (None, "create") else _rest(interaction)[1],
        }
    if action == "break-glass":
        return {
            "type": {"system": DCM, "code": "110113", "display": "Security Alert"},
            "subtype": [
                {"system": DCM, "code": "110127", "display": "Emergency Override Started"},
                kind,
            ],
            "action": "E",
        }
    if action == "admin":
        return {
            "type": {"system": DCM, "code": "110113", "display": "Security Alert"},
            "subtype": [
                {"system": DCM, "code": "110129", "display": "Security Configuration"},
                kind,
            ],
            "action": "E",
        }
    attempted = interaction or ("read" if action == "denial" else action)
    code, letter = _rest(attempted)
    subtype: list[dict[str, Any]] = [{"system": RESTFUL, "code": code}]
    if attempted.startswith("$"):  # the operation's name next to restful-interaction#operation
        subtype = [{"system": RESTFUL, "code": "operation"}, {"system": OPERATION, "code": code}]
    return {
        "type": {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"},
        "subtype": [*subtype, kind],
        "action": letter,
    }


def _rest(interaction: str) -> tuple[str, str]:
    if interaction.startswith("$"):
        return interaction, "E"
    return _INTERACTION.get(interaction, (interaction, "E"))


def _btg() -> dict[str, Any]:
    return {"coding": [{"system": ACT_REASON, "code": "BTG", "display": "break the glass"}]}


def _agents(actor: Actor | None, address: str | None, btg: bool) -> list[dict[str, Any]]:
    client: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
        "who": {"display": (actor.client_id if actor and actor.client_id else "unknown")},
        "requestor": False,
    }
    if actor and actor.client_id:
        client["who"] = {"identifier": {"value": actor.client_id}}
    if address:
        client["network"] = {"address": address, "type": "2" if _is_ip(address) else "1"}
    agents = [client]
    if actor is None:
        return agents
    user: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}
            ]
        },
        "requestor": True,
    }
    who: dict[str, Any] = {}
    if actor.idnps:
        who["identifier"] = {"system": IDNPS_SYSTEM, "value": actor.idnps}
    else:
        who["identifier"] = {"value": actor.subject}
    if actor.fhir_user:
        who["reference"] = actor.fhir_user
    if actor.name:
        who["display"] = actor.name
        user["name"] = actor.name
    user["who"] = who
    if actor.profession:
        user["role"] = [{"coding": [{"system": TRE_G15, "code": actor.profession}]}]
    elif actor.fhir_user and actor.fhir_user.startswith("Patient/"):
        user["role"] = [{"coding": [{"system": ROLE_CLASS, "code": "PAT", "display": "patient"}]}]
    if btg:
        user["purposeOfUse"] = [_btg()]
    agents.append(user)
    ids = [(k, v) for k, v in actor.structure.items() if v]
    if ids:
        kind, value = ids[0]
        system = STRUCTURE_SYSTEMS.get(kind)
        org: dict[str, Any] = {
            "type": {
                "coding": [{"system": ROLE_CLASS, "code": "PROV", "display": "healthcare provider"}]
            },
            "who": {"identifier": {**({"system": system} if system else {}), "value": value}},
            "requestor": False,
        }
        agents.append(org)
    return agents


def _entities(
    patient: str | None,
    resources: Sequence[str],
    query: str | None,
    request_id: str | None,
    policy: PolicyReason | None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if patient:
        out.append(
            {
                "what": {"reference": patient},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    for ref in resources:
        if ref == patient:
            continue
        document = ref.split("/", 1)[0] in DOCUMENT_TYPES
        out.append(
            {
                "what": {"reference": ref},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": (
                    {"system": OBJECT_ROLE, "code": "3", "display": "Report"}
                    if document
                    else {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}
                ),
            }
        )
    if query is not None:
        out.append(
            {
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
                "description": query,
                "query": base64.b64encode(query.encode()).decode(),
            }
        )
    if request_id:
        out.append(
            {
                "what": {"identifier": {"value": request_id}},
                "type": {"system": BALP_ENTITY_TYPE, "code": "XrequestId"},
            }
        )
    if policy is not None:
        details = [
            {"type": name, "valueString": value}
            for name, value in (
                ("rule", policy.rule),
                ("cell", policy.cell),
                ("consent", policy.consent),
            )
            if value
        ]
        entity: dict[str, Any] = {
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "13", "display": "Security Resource"},
        }
        if policy.consent:
            entity["what"] = {"reference": policy.consent}
        if policy.rule:
            entity["name"] = policy.rule
        if policy.text:
            entity["description"] = policy.text
        if details:
            entity["detail"] = details
        out.append(entity)
    return out


def _instant(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("the recorded time needs a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
