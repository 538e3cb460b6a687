"""authorize(): every interaction against every scope shape that matters."""

from __future__ import annotations

import pytest

from maison.fhir.errors import Category, FhirError
from maison.security.principal import Principal, parse_scopes
from maison.security.scopes import INTERACTION_PERMISSION, authorize


def principal(scope: str, patient: str | None = None) -> Principal:
    scopes, others = parse_scopes(scope)
    return Principal("u1", "https://idp", scopes, None, patient, None, {}, others)


ALLOW, DENY = True, False
READS = ["read", "vread", "history", "history-instance"]
SEARCHES = ["search", "search-type", "history-type"]
WRITES = ["create", "update", "patch", "delete"]

# (scope, patient context, interaction, resource type, allowed)
TABLE: list[tuple[str, str | None, str, str | None, bool]] = [
    # v1 read = r + s, write = c + u + d, * = everything
    *[("user/Observation.read", None, i, "Observation", ALLOW) for i in READS + SEARCHES],
    *[("user/Observation.read", None, i, "Observation", DENY) for i in WRITES],
    *[("user/Observation.write", None, i, "Observation", ALLOW) for i in WRITES],
    *[("user/Observation.write", None, i, "Observation", DENY) for i in READS + SEARCHES],
    *[("system/*.*", None, i, "Encounter", ALLOW) for i in READS + SEARCHES + WRITES],
    # v2 letters, one at a time
    *[("user/Observation.r", None, i, "Observation", ALLOW) for i in READS],
    *[("user/Observation.r", None, i, "Observation", DENY) for i in SEARCHES + WRITES],
    *[("user/Observation.s", None, i, "Observation", ALLOW) for i in SEARCHES],
    *[("user/Observation.s", None, i, "Observation", DENY) for i in READS + WRITES],
    ("user/Observation.c", None, "create", "Observation", ALLOW),
    ("user/Observation.c", None, "update", "Observation", DENY),
    ("user/Observation.u", None, "update", "Observation", ALLOW),
    ("user/Observation.u", None, "patch", "Observation", ALLOW),
    ("user/Observation.u", None, "create", "Observation", DENY),
    ("user/Observation.d", None, "delete", "Observation", ALLOW),
    ("user/Observation.d", None, "update", "Observation", DENY),
    ("user/Observation.cud", None, "read", "Observation", DENY),
    # resource type must match, unless *
    ("user/Observation.cruds", None, "read", "Patient", DENY),
    ("user/*.cruds", None, "delete", "Patient", ALLOW),
    ("user/Observation.rs user/Patient.c", None, "create", "Patient", ALLOW),
    ("user/Observation.rs user/Patient.c", None, "create", "Observation", DENY),
    # system-wide interactions (no resource type) need a * scope
    ("system/*.rs", None, "search-system", None, ALLOW),
    ("system/*.rs", None, "history-system", None, ALLOW),
    ("system/Patient.rs", None, "search-system", None, DENY),
    ("user/*.r", None, "search-system", None, DENY),
    # context levels: system/ and user/ alike; patient/ needs a launch patient
    ("system/Observation.rs", None, "read", "Observation", ALLOW),
    ("user/Observation.rs", None, "read", "Observation", ALLOW),
    ("patient/Observation.rs", "p1", "read", "Observation", ALLOW),
    ("patient/Observation.rs", "p1", "search", "Observation", ALLOW),
    ("patient/Observation.rs", None, "read", "Observation", DENY),
    ("patient/*.cruds", None, "create", "Observation", DENY),
    ("patient/*.cruds user/Observation.r", None, "read", "Observation", ALLOW),
    ("patient/*.read", "p1", "update", "Observation", DENY),
    ("patient/*.write", "p1", "update", "Observation", ALLOW),
    # v2 constraints are kept but not enforced yet
    ("patient/Observation.rs?category=laboratory", "p1", "search", "Observation", ALLOW),
    # no resource scope at all
    ("openid fhirUser launch/patient", "p1", "read", "Patient", DENY),
    ("", None, "read", "Patient", DENY),
    # bundles: entries are checked one by one by the caller
    ("user/Observation.r", None, "transaction", None, ALLOW),
    ("patient/Observation.r", "p1", "batch", None, ALLOW),
    ("patient/Observation.r", None, "batch", None, DENY),
    ("openid", None, "transaction", None, DENY),
]


@pytest.mark.parametrize(("scope", "patient", "interaction", "resource_type", "allowed"), TABLE)
def test_authorize_table(
    scope: str, patient: str | None, interaction: str, resource_type: str | None, allowed: bool
) -> None:
    p = principal(scope, patient)
    if allowed:
        authorize(p, interaction, resource_type)
    else:
        with pytest.raises(FhirError) as caught:
            authorize(p, interaction, resource_type)
        assert caught.value.category is Category.FORBIDDEN
        assert interaction in caught.value.message


def test_every_interaction_is_in_the_table() -> None:
    covered = {row[2] for row in TABLE}
    assert set(INTERACTION_PERMISSION) | {"transaction", "batch"} <= covered


def test_refusal_reasons() -> None:
    with pytest.raises(FhirError) as caught:
        authorize(principal("patient/Observation.rs"), "read", "Observation")
    assert caught.value.message == (
        "read on Observation refused: patient/ scopes need a patient in the launch context "
        "and the token has none"
    )
    with pytest.raises(FhirError) as caught:
        authorize(principal("user/Observation.rs"), "delete", "Observation")
    assert caught.value.message == (
        "delete on Observation refused: no scope grants 'd' "
        "(e.g. user/Observation.d or patient/Observation.d)"
    )


@pytest.mark.parametrize("interaction", ["operation", "capabilities", "READ", ""])
def test_unknown_interactions_are_a_programming_error(interaction: str) -> None:
    with pytest.raises(ValueError, match="unknown interaction"):
        authorize(principal("system/*.*"), interaction, "Patient")
