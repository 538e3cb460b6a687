"""The AuditEvent builders: BALP-shaped events, valid against base R4."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maison.audit.events import (
    ACTIONS,
    IDNPS_SYSTEM,
    KIND_SYSTEM,
    TRE_G15,
    Actor,
    PolicyReason,
    actor_of,
    as_bundle,
    audit_event,
    kind_of,
    patient_of,
)
from maison.fhir.definitions import Definitions
from maison.fhir.errors import Issue
from maison.fhir.validation import Validator

WHEN = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
DOCTOR = Actor(
    subject="psc-sub-1",
    idnps="810002909371",
    profession="10",
    structure={"finess": "750000001"},
    fhir_user="Practitioner/810002909371",
    client_id="maison-portal",
)


@pytest.fixture(scope="module")
def validator(defs: Definitions) -> Validator:
    return Validator(defs)


def _errors(issues: list[Issue]) -> list[str]:
    return [f"{i.expression}: {i.diagnostics}" for i in issues if i.severity in ("error", "fatal")]


def _agent(event: Mapping[str, Any], code: str) -> dict[str, Any]:
    return next(a for a in event["agent"] if a["type"]["coding"][0]["code"] == code)


def test_read_of_a_document_is_balp_shaped(validator: Validator) -> None:
    event = audit_event(
        DOCTOR,
        "read",
        recorded=WHEN,
        resources=["DocumentReference/d1"],
        patient="Patient/p1",
        reason={"rule": "matrix.allow", "cell": "10x11488-4", "consent": "Consent/c1"},
        client_address="192.0.2.7",
        request_id="req-42",
    )
    assert _errors(validator.validate(event)) == []
    assert _errors(validator.validate({k: v for k, v in event.items() if k != "source"}))
    assert event["type"]["code"] == "rest"
    assert {"system": "http://hl7.org/fhir/restful-interaction", "code": "read"} in event["subtype"]
    assert (event["action"], event["outcome"], event["recorded"]) == (
        "R",
        "0",
        "2026-03-01T10:30:00.000000Z",
    )
    user = _agent(event, "IRCP")
    assert user["who"]["identifier"] == {"system": IDNPS_SYSTEM, "value": "810002909371"}
    assert user["role"][0]["coding"][0] == {"system": TRE_G15, "code": "10"}
    assert user["requestor"] is True
    org = _agent(event, "PROV")
    assert org["who"]["identifier"]["value"] == "750000001"
    client = _agent(event, "110150")
    assert client["network"] == {"address": "192.0.2.7", "type": "2"}
    roles = {e["role"]["code"]: e for e in event["entity"] if "role" in e}
    assert roles["1"]["what"] == {"reference": "Patient/p1"}
    assert roles["3"]["what"] == {"reference": "DocumentReference/d1"}
    details = {d["type"]: d["valueString"] for d in roles["13"]["detail"]}
    assert details == {"rule": "matrix.allow", "cell": "10x11488-4", "consent": "Consent/c1"}
    assert patient_of(event) == "Patient/p1"
    assert kind_of(event) == "read"
    request = next(e for e in event["entity"] if e["type"]["code"] == "XrequestId")
    assert request["what"]["identifier"]["value"] == "req-42"


def test_denial_is_a_minor_failure_with_its_reason(validator: Validator) -> None:
    event = audit_event(
        DOCTOR,
        "denial",
        recorded=WHEN,
        interaction="read",
        resources=["DocumentReference/d9"],
        patient="Patient/p1",
        reason=PolicyReason(rule="matrix.deny", cell="10xX", text="not allowed by the matrix"),
    )
    assert _errors(validator.validate(event)) == []
    assert event["outcome"] == "4"
    assert event["outcomeDesc"] == "not allowed by the matrix"
    assert event["action"] == "R"
    assert kind_of(event) == "denial"


def test_search_records_its_query(validator: Validator) -> None:
    query = "GET DocumentReference?patient=p1&type=11488-4"
    event = audit_event(DOCTOR, "search", recorded=WHEN, patient="Patient/p1", query=query)
    assert _errors(validator.validate(event)) == []
    entity = next(e for e in event["entity"] if e.get("role", {}).get("code") == "24")
    assert base64.b64decode(entity["query"]).decode() == query
    assert event["action"] == "E"


def test_break_glass_carries_btg(validator: Validator) -> None:
    event = audit_event(
        DOCTOR, "break-glass", recorded=WHEN, patient="Patient/p1", description="coma, urgence"
    )
    assert _errors(validator.validate(event)) == []
    assert event["type"]["code"] == "110113"
    assert event["subtype"][0]["code"] == "110127"
    btg = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG"}
    assert btg.items() <= _agent(event, "IRCP")["purposeOfUse"][0]["coding"][0].items()
    assert btg.items() <= event["purposeOfEvent"][0]["coding"][0].items()
    read = audit_event(DOCTOR, "read", recorded=WHEN, patient="Patient/p1", break_glass=True)
    assert read["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"


def test_consent_admin_and_operation(validator: Validator) -> None:
    consent = audit_event(
        DOCTOR, "consent", recorded=WHEN, patient="Patient/p1", resources=["Consent/c1"]
    )
    admin = audit_event(None, "admin", recorded=WHEN, description="matrix load")
    op = audit_event(DOCTOR, "operation", recorded=WHEN, interaction="$everything")
    for event in (consent, admin, op):
        assert _errors(validator.validate(event)) == []
    assert consent["type"]["code"] == "110110"
    assert admin["type"]["code"] == "110113" and admin["subtype"][0]["code"] == "110129"
    assert [c["code"] for c in op["subtype"]] == ["operation", "$everything", "operation"]


@dataclass(frozen=True)
class _Pro:
    national_id: str
    profession: str | None
    structure: Mapping[str, str]


@dataclass(frozen=True)
class _Principal:
    subject: str
    client_id: str | None
    fhir_user: str | None
    professional: _Pro | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


def test_principal_and_patient_actors() -> None:
    pro = _Principal("s", "app", "Practitioner/1", _Pro("8100", "40", {"siret": "123"}))
    assert actor_of(pro).idnps == "8100"
    event = audit_event(pro, "create", recorded=WHEN, resources=["Observation/o1"])
    assert event["action"] == "C"
    assert _agent(event, "PROV")["who"]["identifier"]["system"] == "https://sirene.fr"
    patient = _Principal("ins-sub", "mes", "Patient/p1")
    event = audit_event(patient, "read", recorded=WHEN, patient="Patient/p1")
    user = _agent(event, "IRCP")
    assert user["who"]["reference"] == "Patient/p1"
    assert user["role"][0]["coding"][0]["code"] == "PAT"


def test_real_principal_satisfies_the_protocol() -> None:
    from maison.security.principal import Principal

    principal = Principal.from_claims(
        {
            "sub": "x",
            "iss": "https://issuer",
            "scope": "user/*.rs",
            "professional": {"idnps": "81000", "activity": 0, "structure": {"finess": "75"}},
        }
    )
    actor = actor_of(principal)
    assert (actor.subject, actor.idnps, dict(actor.structure)) == ("x", "81000", {"finess": "75"})


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        audit_event(DOCTOR, "peek", recorded=WHEN)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        audit_event(DOCTOR, "read", recorded=datetime(2026, 1, 1))


def test_as_bundle_is_a_valid_searchset(validator: Validator) -> None:
    events = [
        {**audit_event(DOCTOR, "read", recorded=WHEN, patient="Patient/p1"), "id": str(n)}
        for n in (2, 1)
    ]
    bundle = as_bundle(events, total=2)
    assert _errors(validator.validate(bundle)) == []
    assert [e["fullUrl"] for e in bundle["entry"]] == ["AuditEvent/2", "AuditEvent/1"]
    assert bundle["total"] == 2 and bundle["type"] == "searchset"


_ref = st.from_regex(r"[A-Za-z0-9\-.]{1,20}", fullmatch=True)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    action=st.sampled_from(ACTIONS),
    outcome=st.sampled_from(["0", "4", "8"]),
    patient=st.none() | _ref.map(lambda i: f"Patient/{i}"),
    docs=st.lists(_ref.map(lambda i: f"DocumentReference/{i}"), max_size=3),
    idnps=st.none() | st.from_regex(r"[0-9]{11,12}", fullmatch=True),
    address=st.none() | st.ip_addresses().map(str) | st.just("host.example"),
    rule=st.none() | _ref,
    seconds=st.integers(min_value=0, max_value=10**9),
    btg=st.booleans(),
)
def test_every_built_event_is_valid_r4(
    validator: Validator,
    action: Any,
    outcome: Any,
    patient: str | None,
    docs: list[str],
    idnps: str | None,
    address: str | None,
    rule: str | None,
    seconds: int,
    btg: bool,
) -> None:
    actor = Actor(subject="s", idnps=idnps, profession="10" if idnps else None)
    event = audit_event(
        actor,
        action,
        recorded=WHEN + timedelta(seconds=seconds),
        resources=docs,
        patient=patient,
        outcome=outcome,
        reason={"rule": rule} if rule else None,
        client_address=address,
        break_glass=btg,
    )
    assert _errors(validator.validate(event)) == []
    assert patient_of(event) == patient
    assert kind_of(event) == action
    assert any(c["system"] == KIND_SYSTEM for c in event["subtype"])
