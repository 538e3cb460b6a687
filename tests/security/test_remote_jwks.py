"""RemoteJwks: discovery, caching, key rotation and outages, with a fake HTTP GET."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from maison.fhir.errors import Category, FhirError
from maison.security import jwks as jwks_module
from maison.security.jwks import RemoteJwks
from maison.security.tokens import JwtAuthenticator

ISSUER = "https://idp.example.org/realms/maison"
JWKS_URI = "https://idp.example.org/realms/maison/protocol/openid-connect/certs"
DISCOVERY = f"{ISSUER}/.well-known/openid-configuration"
AUDIENCE = "maison"
T0 = 1_800_000_000.0

KEY_1 = ECKey.generate_key("P-256", parameters={"kid": "k1"})
KEY_2 = ECKey.generate_key("P-256", parameters={"kid": "k2"})


class FakeGet:
    """Serves JSON documents by URL and records every request."""

    def __init__(self, keys: list[ECKey]) -> None:
        self.calls: list[str] = []
        self.down = False
        self.docs: dict[str, Any] = {DISCOVERY: {"issuer": ISSUER, "jwks_uri": JWKS_URI}}
        self.publish(keys)

    def publish(self, keys: list[ECKey]) -> None:
        self.docs[JWKS_URI] = {"keys": [k.as_dict(private=False) for k in keys]}

    def __call__(self, url: str) -> Any:
        self.calls.append(url)
        if self.down:
            raise httpx.ConnectError("connection refused")
        return self.docs[url]


def mint(key: ECKey, now: float = T0) -> str:
    claims = {"iss": ISSUER, "sub": "s", "aud": AUDIENCE, "exp": int(now) + 3600}
    return "Bearer " + jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


def setup(keys: list[ECKey], **options: Any) -> tuple[FakeGet, JwtAuthenticator]:
    fake = FakeGet(keys)
    source = RemoteJwks(ISSUER, http_get=fake, **options)
    return fake, JwtAuthenticator(ISSUER, AUDIENCE, source)


def unauthorized(auth: JwtAuthenticator, header: str, now: float) -> str:
    with pytest.raises(FhirError) as caught:
        auth.authenticate(header, now=now)
    assert caught.value.category is Category.UNAUTHORIZED
    return caught.value.message


def test_discovery_then_cache() -> None:
    fake, auth = setup([KEY_1])
    assert auth.authenticate(mint(KEY_1), now=T0).subject == "s"
    assert fake.calls == [DISCOVERY, JWKS_URI]
    for second in range(1, 299, 7):
        auth.authenticate(mint(KEY_1), now=T0 + second)
    assert len(fake.calls) == 2


def test_keys_are_refetched_after_the_ttl() -> None:
    fake, auth = setup([KEY_1], ttl=300)
    auth.authenticate(mint(KEY_1), now=T0)
    auth.authenticate(mint(KEY_1), now=T0 + 300)
    assert fake.calls == [DISCOVERY, JWKS_URI] * 2


def test_key_rotation_refetches_at_most_once_a_minute() -> None:
    fake, auth = setup([KEY_1])
    auth.authenticate(mint(KEY_1), now=T0)
    fake.publish([KEY_1, KEY_2])  # the issuer rotates 30 s later
    # the last fetch is under a minute old: no refetch, the new key is unknown for now
    assert unauthorized(auth, mint(KEY_2), T0 + 30) == "unknown signing key"
    assert len(fake.calls) == 2
    assert auth.authenticate(mint(KEY_2), now=T0 + 60).subject == "s"
    assert len(fake.calls) == 4
    assert auth.authenticate(mint(KEY_1), now=T0 + 61).subject == "s"
    assert len(fake.calls) == 4


def test_a_flood_of_unknown_kids_costs_one_fetch_a_minute() -> None:
    fake, auth = setup([KEY_1])
    auth.authenticate(mint(KEY_1), now=T0)
    for i in range(50):
        forged = ECKey.generate_key("P-256", parameters={"kid": f"x{i}"})
        assert unauthorized(auth, mint(forged), T0 + 60 + i) == "unknown signing key"
    assert len(fake.calls) == 4  # the first fetch, then one refetch at T0 + 60


def test_outage_keeps_serving_cached_keys() -> None:
    fake, auth = setup([KEY_1])
    auth.authenticate(mint(KEY_1), now=T0)
    fake.down = True
    assert auth.authenticate(mint(KEY_1), now=T0 + 1000).subject == "s"
    assert unauthorized(auth, mint(KEY_2), T0 + 2000) == "unknown signing key"


def test_outage_without_keys_refuses() -> None:
    fake, auth = setup([KEY_1])
    fake.down = True
    message = unauthorized(auth, mint(KEY_1), T0)
    assert message == "signing keys of the issuer are unavailable"
    fake.down = False
    assert unauthorized(auth, mint(KEY_1), T0 + 10) == message  # rate-limited retry
    assert auth.authenticate(mint(KEY_1), now=T0 + 60).subject == "s"


@pytest.mark.parametrize(
    "config",
    [
        {"issuer": "https://evil.example.org", "jwks_uri": JWKS_URI},
        {"issuer": ISSUER},
        {"issuer": ISSUER, "jwks_uri": 7},
        ["not", "an", "object"],
    ],
)
def test_bad_discovery_documents_are_not_trusted(config: Any) -> None:
    fake, auth = setup([KEY_1])
    fake.docs[DISCOVERY] = config
    assert unauthorized(auth, mint(KEY_1), T0) == "signing keys of the issuer are unavailable"


def test_explicit_jwks_uri_skips_discovery() -> None:
    fake = FakeGet([KEY_1])
    auth = JwtAuthenticator(ISSUER, AUDIENCE, RemoteJwks(jwks_uri=JWKS_URI, http_get=fake))
    assert auth.authenticate(mint(KEY_1), now=T0).subject == "s"
    assert fake.calls == [JWKS_URI]


@pytest.mark.parametrize("args", [{}, {"issuer": ISSUER, "jwks_uri": JWKS_URI}])
def test_exactly_one_location_is_required(args: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RemoteJwks(**args)


def test_default_fetcher_uses_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_get(url: str, **kwargs: Any) -> httpx.Response:
        seen.update(kwargs, url=url)
        status = 200 if url == JWKS_URI else 404
        return httpx.Response(status, json={"keys": []}, request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", fake_get)
    assert jwks_module.httpx_get_json(JWKS_URI) == {"keys": []}
    assert seen["url"] == JWKS_URI and seen["timeout"] == 5.0
    with pytest.raises(httpx.HTTPStatusError):
        jwks_module.httpx_get_json(DISCOVERY)
