"""SMART v1/v2 scope parsing and the Principal built from token claims."""

from __future__ import annotations

from typing import Any

import pytest

from maison.security.principal import Principal, Scope, parse_scopes


@pytest.mark.parametrize(
    ("text", "context", "resource_type", "permissions", "constraints"),
    [
        ("patient/Observation.read", "patient", "Observation", "rs", ()),
        ("patient/Observation.write", "patient", "Observation", "cud", ()),
        ("user/*.write", "user", "*", "cud", ()),
        ("system/*.*", "system", "*", "cruds", ()),
        ("user/Patient.*", "user", "Patient", "cruds", ()),
        ("patient/Observation.rs", "patient", "Observation", "rs", ()),
        ("user/*.cruds", "user", "*", "cruds", ()),
        ("system/Encounter.d", "system", "Encounter", "d", ()),
        ("user/Observation.cu", "user", "Observation", "cu", ()),
        (
            "patient/Observation.rs?category=laboratory",
            "patient",
            "Observation",
            "rs",
            (("category", "laboratory"),),
        ),
        (
            "user/Condition.rs?category=problem-list-item&clinical-status=active",
            "user",
            "Condition",
            "rs",
            (("category", "problem-list-item"), ("clinical-status", "active")),
        ),
    ],
)
def test_smart_scopes_parse(
    text: str, context: str, resource_type: str, permissions: str, constraints: Any
) -> None:
    scope = Scope.parse(text)
    assert scope is not None
    assert (scope.context, scope.resource_type) == (context, resource_type)
    assert scope.permissions == frozenset(permissions)
    assert scope.constraints == constraints
    assert str(scope) == text


@pytest.mark.parametrize(
    "text",
    [
        "openid",
        "profile",
        "fhirUser",
        "launch",
        "launch/patient",
        "offline_access",
        "patient/Observation",  # no permission
        "patient/Observation.",
        "practitioner/Observation.read",  # unknown context
        "patient/observation.read",  # resource types start upper-case
        "patient/Observation.sr",  # v2 letters must be in cruds order
        "patient/Observation.rr",
        "patient/Observation.x",
        "patient/Observation.readwrite",
        "patient/Observation.read?category=x",  # constraints are v2-only
        "patient/Observation.rs?",
        "patient/Observation.rs?category",  # a constraint needs a value
        "Patient/Observation.rs",
        "patient/*.rs ",
        "",
    ],
)
def test_other_strings_are_not_resource_scopes(text: str) -> None:
    assert Scope.parse(text) is None


def test_parse_scopes_keeps_unknown_scopes_aside() -> None:
    scopes, others = parse_scopes("openid  launch/patient patient/*.rs bogus/x.y user/Patient.read")
    assert sorted(map(str, scopes)) == ["patient/*.rs", "user/Patient.read"]
    assert others == {"openid", "launch/patient", "bogus/x.y"}
    assert parse_scopes(["system/*.cruds", "openid"])[1] == {"openid"}
    assert parse_scopes(None) == (frozenset(), frozenset())


def _claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": "https://idp", "sub": "u1", "scope": "patient/*.rs openid"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_principal_from_claims() -> None:
    p = Principal.from_claims(
        _claims(client_id="app", patient="p1", fhirUser="Practitioner/9", extra=[1])
    )
    assert (p.subject, p.issuer, p.client_id, p.patient, p.fhir_user) == (
        "u1",
        "https://idp",
        "app",
        "p1",
        "Practitioner/9",
    )
    assert [str(s) for s in p.scopes] == ["patient/*.rs"]
    assert p.other_scopes == {"openid"}
    assert p.claims["extra"] == [1]
    with pytest.raises(TypeError):
        p.claims["sub"] = "admin"  # type: ignore[index]


def test_principal_claim_fallbacks() -> None:
    p = Principal.from_claims(_claims(scope=None, scp=["user/*.rs"], azp="app2", patient=""))
    assert [str(s) for s in p.scopes] == ["user/*.rs"]
    assert (p.client_id, p.patient, p.fhir_user) == ("app2", None, None)
    assert Principal.from_claims(_claims(scope=42)).scopes == frozenset()


@pytest.mark.parametrize(
    ("scope", "patient", "compartment"),
    [
        ("patient/*.rs", "p1", ("Patient", "p1")),
        ("patient/Observation.rs user/*.rs", "p1", ("Patient", "p1")),  # fail closed
        ("patient/*.rs", None, None),  # patient scopes then grant nothing
        ("user/*.rs launch/patient", "p1", None),  # EHR launch with user scopes only
        ("system/*.rs", None, None),
    ],
)
def test_compartment(scope: str, patient: str | None, compartment: Any) -> None:
    assert Principal.from_claims(_claims(scope=scope, patient=patient)).compartment() == (
        compartment
    )
