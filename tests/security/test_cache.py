"""The validated-token cache never extends a token's life nor accepts what failed."""

from __future__ import annotations

from typing import Any

import pytest

from maison.fhir.errors import Category, FhirError
from maison.security.cache import CachingAuthenticator
from maison.security.principal import Principal


class Counting:
    def __init__(self, exp: float) -> None:
        self.calls = 0
        self.exp = exp

    def authenticate(self, header: str | None, now: float | None = None) -> Principal:
        self.calls += 1
        if header != "Bearer good" or (now or 0) >= self.exp:
            raise FhirError(Category.UNAUTHORIZED, "invalid token")
        claims: dict[str, Any] = {"sub": "u", "iss": "i", "exp": self.exp, "scope": "system/*.*"}
        return Principal.from_claims(claims)


def test_hits_skip_validation_until_expiry() -> None:
    inner = Counting(exp=1000.0)
    auth = CachingAuthenticator(inner, ttl=10_000)
    assert auth.authenticate("Bearer good", now=100).subject == "u"
    assert auth.authenticate("Bearer good", now=200).subject == "u"
    assert inner.calls == 1
    with pytest.raises(FhirError):
        auth.authenticate("Bearer good", now=1000)  # expired: re-validated, refused
    assert inner.calls == 2


def test_failures_are_not_cached_and_ttl_bounds_entries() -> None:
    inner = Counting(exp=10_000.0)
    auth = CachingAuthenticator(inner, ttl=60, max_entries=1)
    for _ in range(2):
        with pytest.raises(FhirError):
            auth.authenticate("Bearer bad", now=0)
    assert inner.calls == 2
    auth.authenticate("Bearer good", now=0)
    auth.authenticate("Bearer good", now=61)  # past the ttl: validated again
    assert inner.calls == 4
