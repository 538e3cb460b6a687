"""The administration scope is granted by the authorization server only to the professionals the
server names as administrators, never to a patient
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""

from __future__ import annotations

from maison.security.admin import ADMIN_SCOPE, is_admin
from maison.security.principal import Principal, parse_scopes
from maison.services.smart.clients import OTHER_SCOPES, PORTAL_SCOPE


def _principal(scope: str) -> Principal:
    scopes, others = parse_scopes(scope)
    return Principal("sub", "maison-portal", scopes, None, None, None, other_scopes=others)


def test_the_scope_is_known_and_the_portal_may_ask_for_it() -> None:
    assert ADMIN_SCOPE in OTHER_SCOPES
    assert ADMIN_SCOPE in PORTAL_SCOPE.split()


def test_is_admin_reads_the_scope_only() -> None:
    assert is_admin(_principal(f"openid user/*.cruds {ADMIN_SCOPE}"))
    assert not is_admin(_principal("openid user/*.cruds system/*.*"))
    assert not is_admin(None)
