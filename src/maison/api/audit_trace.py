"""What the guarded store decided during one request, turned into BALP AuditEvents for the
tamper-evident trail: one event per (action, patient record, outcome), listing the resources
read or written and the policy reason (rule, matrix cell, consent) it rests on.

Accesses outside any patient's record (the directory, terminologies, conformance resources)
by a service are not traced; every write, every denial and every access to a record is.

https://profiles.ihe.net/ITI/BALP/, https://hl7.org/fhir/R4/auditevent.html
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from maison.audit.events import Action, PolicyReason, audit_event
from maison.security.principal import Principal
from maison.security.record_guard import Access

#: The most resources one AuditEvent lists (a longer search lists its first ones).
MAX_ENTITIES: Final = 100
#: Actions as the trail names them.
_ACTIONS: Final[dict[str, Action]] = {
    "read": "read",
    "vread": "read",
    "history": "read",
    "search": "search",
    "create": "create",
    "update": "update",
    "delete": "delete",
    "consent": "consent",
    "break-glass": "break-glass",
}
#: The actions that are RESTful interactions (the others are named by their kind).
_REST: Final = frozenset({"read", "vread", "history", "search", "create", "update", "delete"})


@dataclass(frozen=True)
class RequestInfo:
    """Where a request comes from, for the trail and the access mode
    (https://profiles.ihe.net/ITI/BALP/ agent network address, XrequestId)."""

    client_address: str | None = None
    request_id: str | None = None
    method: str = ""
    path: str = ""
    query: str | None = None
    access_mode: str | None = None  # "centre-de-regulation" when asked


#: The request being served (set by the HTTP layer, read where the units are built).
CURRENT: ContextVar[RequestInfo | None] = ContextVar("maison_request", default=None)


def events_of(
    trace: Iterable[Access],
    principal: Principal,
    info: RequestInfo | None,
    recorded: datetime,
    failure: str | None = None,
) -> list[dict[str, Any]]:
    """The AuditEvents of one request's decisions (``failure``: the message of an error
    that undid the request's writes: its writes are then not traced as done)."""
    groups: dict[tuple[str, str | None, bool, str], list[Access]] = {}
    order: list[tuple[str, str | None, bool, str]] = []
    for access in trace:
        action = access.action.removesuffix("-check")
        if access.allowed and access.patient is None and action in ("read", "vread", "search"):
            continue  # reference data: not part of anyone's record
        if failure is not None and access.allowed and action in ("create", "update", "delete"):
            continue  # rolled back with the request
        key = (action, access.patient, access.allowed, access.rule)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(access)
    out: list[dict[str, Any]] = []
    address = info.client_address if info else None
    request_id = info.request_id if info else None
    query = f"{info.method} {info.path}{'?' + info.query if info.query else ''}" if info else None
    for key in order:
        action, patient, allowed, _rule = key
        accesses = groups[key]
        first = accesses[0]
        resources = list(
            dict.fromkeys(a.resource for a in accesses if a.resource and "/" in a.resource)
        )
        kind: Action = _ACTIONS.get(action, "operation") if allowed else "denial"
        emergency = any(a.emergency for a in accesses)
        reason = PolicyReason(
            first.rule, first.cell, first.source if first.source else None, first.reason
        )
        out.append(
            audit_event(
                principal,
                kind,
                recorded=recorded,
                resources=resources[:MAX_ENTITIES],
                patient=patient,
                outcome="0" if allowed else "4",
                reason=reason,
                client_address=address,
                request_id=request_id,
                interaction=action if action in _REST else None,
                query=query if action == "search" else None,
                break_glass=emergency,
                description=None
                if len(resources) <= MAX_ENTITIES
                else (f"{len(resources)} resources; the first {MAX_ENTITIES} are listed"),
            )
        )
    return out


def denial_event(
    principal: Principal,
    info: RequestInfo | None,
    recorded: datetime,
    message: str,
    patient: str | None = None,
) -> dict[str, Any]:
    """The AuditEvent of a refusal decided before any record rule (scopes, compartment)."""
    query = f"{info.method} {info.path}{'?' + info.query if info.query else ''}" if info else None
    return audit_event(
        principal,
        "denial",
        recorded=recorded,
        patient=patient,
        outcome="4",
        reason=PolicyReason("scope", None, None, message),
        client_address=info.client_address if info else None,
        request_id=info.request_id if info else None,
        query=query,
    )


__all__ = ["CURRENT", "MAX_ENTITIES", "RequestInfo", "denial_event", "events_of"]
