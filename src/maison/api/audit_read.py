"""Reading the audit trail through the API: ``GET [base]/AuditEvent?patient=…`` and
``GET [base]/AuditEvent/[id]``, served from the hash chain (AuditEvents are never stored in the
resource table), and the refusal of every write.

Who reads what:

* a patient's token (one confined to a Patient compartment, the patient himself or his legal
  representative acting for him) reads the accesses to *that* record only, when its
  ``patient/`` scopes cover AuditEvent (read or search);
* a backend token holding ``system/AuditEvent`` with read or search (the data protection
  officer's and the operator's tools) reads any record's; a wildcard ``system/*`` does not
  suffice: the access history of every record is granted by name;
* a professional's ``user/`` token (one carrying a professional context) whose ``user/`` scopes
  cover AuditEvent (read or search; ``user/*.rs`` will do) reads his own accesses only: the
  entries whose requesting agent is his IDNPS (reads, searches, refusals, bris de glace), of
  every record or of one (``patient=``), never a record's history. Reading them is not an
  access to a record and is not traced (no AuditEvent read is);
* anyone else (a ``user/`` token without a professional context…) is refused, with the reason.

An entry read by id that is not the caller's patient's (or, for a professional, not his own
access) answers 404, as one that does not exist: its existence is not revealed. Errors are
raised as :class:`FhirError` inside and returned as ``(status, OperationOutcome)`` by the two
public functions, so the HTTP edge only sends them.

https://hl7.org/fhir/R4/auditevent.html, https://profiles.ihe.net/ITI/BALP/
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from maison.api.errors import status_of
from maison.audit.chain import AuditTrail
from maison.audit.events import as_bundle, patient_of, requestor_of
from maison.fhir.errors import Category, FhirError, invalid, not_found
from maison.fhir.normalize import date_range
from maison.security.principal import Principal

DEFAULT_COUNT: Final = 50
MAX_COUNT: Final = 500
#: Parameters the HTTP layer answers (format negotiation), accepted and ignored here.
_TRANSPORT: Final = frozenset({"_format", "_pretty"})
_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_SEQ: Final = re.compile(r"[1-9][0-9]{0,17}")
_INSTANT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"

OWN_RECORD_ONLY: Final = "you may only read the accesses to your own record"
WHO_READS: Final = (
    "the access history of a record is read by its patient, his legal representatives, and the "
    "data protection officer's tools; a professional reads his own accesses"
)
WRITE_REFUSED: Final = (
    "AuditEvents are written by the platform only; they cannot be created, changed or deleted "
    "through the API"
)


@dataclass(frozen=True, slots=True)
class _Reader:
    """Whose records a caller may read: one patient's (``patient`` id) or any (None); with a
    ``requestor`` (an IDNPS), only the accesses that professional made."""

    patient: str | None
    requestor: str | None = None


def audit_search(
    trail: AuditTrail,
    principal: Principal,
    params: list[tuple[str, str]],
    base_url: str,
    resource_id: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Answer ``GET AuditEvent?patient=&date=&_count=`` (a searchset, newest first) or
    ``GET AuditEvent/[id]`` from the chain (https://hl7.org/fhir/R4/auditevent.html#search)."""
    try:
        reader = _reader(principal)
        if resource_id is not None:
            return 200, _read(trail, reader, params, resource_id)
        if reader.requestor is not None:
            return 200, _own_accesses(trail, reader.requestor, params, base_url.rstrip("/"))
        return 200, _search(trail, reader, params, base_url.rstrip("/"))
    except FhirError as error:
        return status_of(error), error.outcome()


def audit_write_refusal(method: str) -> tuple[int, dict[str, Any]]:
    """Refuse a create, update, patch or delete of an AuditEvent: 405 with the reason
    (https://profiles.ihe.net/ITI/BALP/, https://hl7.org/fhir/R4/auditevent.html)."""
    error = FhirError(Category.METHOD_NOT_ALLOWED, f"{method.upper()} AuditEvent: {WRITE_REFUSED}")
    return status_of(error), error.outcome()


# -- who may read ------------------------------------------------------------------------------
def _reader(principal: Principal) -> _Reader:
    compartment = principal.compartment()
    if compartment is not None:  # a patient's token (confined even if it holds other scopes)
        patient = compartment[1]
        if not any(
            s.context == "patient" and (s.covers("r", "AuditEvent") or s.covers("s", "AuditEvent"))
            for s in principal.scopes
        ):
            raise FhirError(
                Category.FORBIDDEN,
                "this token's patient/ scopes do not cover AuditEvent (patient/AuditEvent.rs "
                "or patient/*.rs is needed to read the accesses to your record)",
            )
        represented = principal.claims.get("representative")
        if represented is not None:
            whose = represented.get("for") if isinstance(represented, Mapping) else None
            if whose != f"Patient/{patient}":
                raise FhirError(
                    Category.FORBIDDEN,
                    f"this token represents {whose or 'nobody'}, not Patient/{patient}: "
                    f"{OWN_RECORD_ONLY}",
                )
        return _Reader(patient)
    if any(
        s.context == "system"
        and s.resource_type == "AuditEvent"
        and (s.covers("r", "AuditEvent") or s.covers("s", "AuditEvent"))
        for s in principal.scopes
    ):
        return _Reader(None)
    professional = principal.professional
    if professional is not None:  # a professional's user/ token: his own accesses only
        if not any(
            s.context == "user" and (s.covers("r", "AuditEvent") or s.covers("s", "AuditEvent"))
            for s in principal.scopes
        ):
            raise FhirError(
                Category.FORBIDDEN,
                "this token's user/ scopes do not cover AuditEvent (user/AuditEvent.rs or "
                "user/*.rs is needed to read your own accesses)",
            )
        return _Reader(None, requestor=professional.national_id)
    raise FhirError(Category.FORBIDDEN, f"AuditEvent: {WHO_READS}")


# -- search ------------------------------------------------------------------------------------
def _search(
    trail: AuditTrail, reader: _Reader, params: Sequence[tuple[str, str]], base_url: str
) -> dict[str, Any]:
    patient: str | None = None
    since: datetime | None = None
    count = DEFAULT_COUNT
    seen: set[str] = set()
    for name, value in params:
        if name in _TRANSPORT:
            continue
        if name in seen:
            raise invalid(f"AuditEvent search: parameter '{name}' is given more than once", name)
        seen.add(name)
        if name == "patient":
            patient = _patient(value)
        elif name == "date":
            since = _since(value)
        elif name == "_count":
            count = _count(value)
        else:
            raise invalid(
                f"AuditEvent search: parameter '{name}' is not supported (supported: patient, "
                "date with ge or gt, _count)",
                name,
            )
    if reader.patient is not None:
        if patient is None:
            patient = reader.patient
        elif patient != reader.patient:
            raise FhirError(Category.FORBIDDEN, OWN_RECORD_ONLY)
    elif patient is None:
        raise invalid("AuditEvent search: the patient parameter is required", "patient")
    reference = f"Patient/{patient}"
    events = trail.for_patient(reference, since, count)
    bundle = as_bundle(events)
    for entry in bundle["entry"]:
        entry["fullUrl"] = f"{base_url}/AuditEvent/{entry['resource']['id']}"
    kept = [("patient", reference)]
    if since is not None:
        kept.append(("date", "ge" + since.strftime(_INSTANT)))
    kept.append(("_count", str(count)))
    self_url = f"{base_url}/AuditEvent?{urlencode(kept)}"
    return {**bundle, "link": [{"relation": "self", "url": self_url}]}


# -- a professional's own accesses -------------------------------------------------------------
def _own_accesses(
    trail: AuditTrail, idnps: str, params: Sequence[tuple[str, str]], base_url: str
) -> dict[str, Any]:
    patient: str | None = None
    bounds: dict[str, datetime] = {}  # ge: the first instant kept, le: the last
    count = DEFAULT_COUNT
    seen: set[str] = set()
    for name, value in params:
        if name in _TRANSPORT:
            continue
        if name in seen and name != "date":
            raise invalid(f"AuditEvent search: parameter '{name}' is given more than once", name)
        seen.add(name)
        if name == "patient":
            patient = _patient(value)
        elif name == "date":
            side, moment = _bound(value)
            if side in bounds:
                which = "lower (ge, gt)" if side == "ge" else "upper (le, lt)"
                raise invalid(f"AuditEvent search: date is given two {which} bounds", name)
            bounds[side] = moment
        elif name == "_count":
            count = _count(value)
        else:
            raise invalid(
                f"AuditEvent search: parameter '{name}' is not supported (supported: patient, "
                "date with ge, gt, le or lt, _count)",
                name,
            )
    since, until = bounds.get("ge"), bounds.get("le")
    reference = f"Patient/{patient}" if patient is not None else None
    events = trail.for_requestor(idnps, reference, since, until, count)
    bundle = as_bundle(events)
    for entry in bundle["entry"]:
        entry["fullUrl"] = f"{base_url}/AuditEvent/{entry['resource']['id']}"
    kept: list[tuple[str, str]] = []
    if reference is not None:
        kept.append(("patient", reference))
    if since is not None:
        kept.append(("date", "ge" + since.strftime(_INSTANT)))
    if until is not None:
        kept.append(("date", "le" + until.strftime(_INSTANT)))
    kept.append(("_count", str(count)))
    self_url = f"{base_url}/AuditEvent?{urlencode(kept)}"
    return {**bundle, "link": [{"relation": "self", "url": self_url}]}


def _bound(value: str) -> tuple[str, datetime]:
    """("ge", the first instant kept) or ("le", the last) of a ``date`` with ge, gt, le or lt."""
    prefix, raw = value[:2], value[2:]
    if prefix in ("ge", "gt"):
        return "ge", _since(value)
    if prefix not in ("le", "lt"):
        raise invalid(
            "AuditEvent search: date takes a ge, gt, le or lt prefix (the accesses since or "
            f"until a moment), got {value[:80]!r}",
            "date",
        )
    span = date_range(raw)
    if span is None:
        raise invalid(
            f"AuditEvent search: date {raw[:80]!r} is not a FHIR date, dateTime or instant", "date"
        )
    if prefix == "le":
        return "le", _parse_instant(span[1])
    before = _parse_instant(span[0])
    try:
        return "le", before - timedelta(microseconds=1)
    except OverflowError:
        return "le", before


def _patient(value: str) -> str:
    pid = value[len("Patient/") :] if value.startswith("Patient/") else value
    if not _ID.fullmatch(pid):
        raise invalid(
            f"AuditEvent search: patient must be Patient/[id] or an id, got {value[:80]!r}",
            "patient",
        )
    return pid


def _since(value: str) -> datetime:
    prefix, raw = value[:2], value[2:]
    if prefix not in ("ge", "gt"):
        raise invalid(
            "AuditEvent search: date takes a ge or gt prefix (the accesses since a moment), "
            f"got {value[:80]!r}",
            "date",
        )
    span = date_range(raw)
    if span is None:
        raise invalid(
            f"AuditEvent search: date {raw[:80]!r} is not a FHIR date, dateTime or instant", "date"
        )
    if prefix == "ge":
        return _parse_instant(span[0])
    after = _parse_instant(span[1])
    try:
        return after + timedelta(microseconds=1)
    except OverflowError:
        return after


def _parse_instant(text: str) -> datetime:
    return datetime.strptime(text, _INSTANT).replace(tzinfo=UTC)


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise invalid(f"_count must be an integer, got {value[:40]!r}", "_count") from None
    if count < 0:
        raise invalid(f"_count must be at least 0, got {count}", "_count")
    return min(count, MAX_COUNT)


# -- read --------------------------------------------------------------------------------------
def _read(
    trail: AuditTrail, reader: _Reader, params: Sequence[tuple[str, str]], resource_id: str
) -> dict[str, Any]:
    for name, _value in params:
        if name not in _TRANSPORT:
            raise invalid(f"AuditEvent read: parameter '{name}' is not supported", name)
    missing = not_found(f"AuditEvent/{resource_id[:64]} is not known")
    if not _SEQ.fullmatch(resource_id):
        raise missing
    event = trail.entry(int(resource_id))
    if event is None:
        raise missing
    if reader.patient is not None and patient_of(event) != f"Patient/{reader.patient}":
        raise missing  # another record's entry: answered as if it did not exist
    if reader.requestor is not None and requestor_of(event) != reader.requestor:
        raise missing  # another's access: answered as if it did not exist
    return event
