"""SMART Backend Services: private_key_jwt client assertions (RFC 7523) and
client_credentials: https://hl7.org/fhir/smart-app-launch/backend-services.html."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from smart_fakes import FHIR_BASE, TOKEN_URL, Clock, Records, issuer

from maison.security.jwks import StaticJwks
from maison.services.psc.provider import OAuthError
from maison.services.smart.backend import ASSERTION_TYPE, ClientAuthenticator, client_credentials
from maison.services.smart.clients import ClientRegistry
from maison.services.smart.grants import Tokens

RSA = RSAKey.generate_key(2048, private=True)
EC = ECKey.generate_key("P-384", private=True)
SCOPE = "system/Patient.rs system/Observation.cruds"


def _public(key: RSAKey | ECKey, kid: str) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": kid}


def _world(clock: Clock) -> tuple[ClientAuthenticator, Tokens]:
    records = Records()
    env = {
        "rsa-svc": {"jwks": {"keys": [_public(RSA, "r1")]}, "scope": SCOPE},
        "ec-svc": {"jwks_uri": "https://svc.example/jwks", "scope": SCOPE},
        "app": {"redirect_uris": ["https://app.example/cb"], "secret": "s" * 20, "public": False},
    }
    registry = ClientRegistry(records, orjson.dumps(env).decode())
    fetched: list[str] = []

    def remote(uri: str) -> StaticJwks:
        fetched.append(uri)
        return StaticJwks({"keys": [_public(EC, "e1")]})

    auth = ClientAuthenticator(registry, TOKEN_URL, records, clock, remote)
    return auth, Tokens(issuer(), FHIR_BASE, records, clock)


def _assertion(
    clock: Clock,
    cid: str = "rsa-svc",
    key: Any = RSA,
    alg: str = "RS384",
    kid: str = "r1",
    header: dict[str, Any] | None = None,
    **over: Any,
) -> str:
    claims = {
        "iss": cid,
        "sub": cid,
        "aud": TOKEN_URL,
        "exp": int(clock.now) + 240,
        "jti": secrets.token_urlsafe(12),
        **over,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": kid, **(header or {})}, claims, key, algorithms=[alg])


def _form(assertion: str, **over: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": "system/Patient.rs",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **over,
    }


def _refused(auth: ClientAuthenticator, form: dict[str, str], match: str) -> None:
    with pytest.raises(OAuthError, match=match) as caught:
        auth.authenticate(form, None)
    assert caught.value.error == "invalid_client" and caught.value.status == 401


def test_rs384_and_es384_assertions_give_system_tokens() -> None:
    clock = Clock()
    auth, tokens = _world(clock)
    client = auth.authenticate(_form(_assertion(clock)), None)
    answer = client_credentials(
        tokens,
        client,
        {"scope": "system/Patient.rs user/*.rs system/Observation.rs system/Encounter.rs"},
    )
    assert answer["scope"] == "system/Patient.rs system/Observation.rs"
    assert answer["expires_in"] == 300 and "refresh_token" not in answer
    ec = _assertion(clock, "ec-svc", EC, "ES384", "e1", {"jku": "https://svc.example/jwks"})
    assert auth.authenticate(_form(ec), None).client_id == "ec-svc"
    with pytest.raises(OAuthError, match="none of the requested"):
        client_credentials(tokens, client, {"scope": "system/Encounter.rs"})


def test_a_replayed_jti_is_refused() -> None:
    clock = Clock()
    auth, _tokens = _world(clock)
    assertion = _assertion(clock)
    auth.authenticate(_form(assertion), None)
    _refused(auth, _form(assertion), "replayed")


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"aud": "https://other.example/token"}, "audience"),
        ({"exp": 1_800_000_000 - 60}, "expired"),
        ({"exp": 1_800_000_000 + 3600}, "5 minutes"),
        ({"sub": "someone-else"}, "sub must equal iss"),
        ({"jti": None}, "jti"),
    ],
)
def test_bad_assertion_claims_are_refused(over: dict[str, Any], match: str) -> None:
    clock = Clock()
    auth, _tokens = _world(clock)
    _refused(auth, _form(_assertion(clock, **over)), match)


def test_bad_signatures_and_algorithms_are_refused() -> None:
    clock = Clock()
    auth, _tokens = _world(clock)
    claims = {
        "iss": "rsa-svc",
        "sub": "rsa-svc",
        "aud": TOKEN_URL,
        "exp": int(clock.now) + 60,
        "jti": "j1",
    }

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    none = f"{part({'alg': 'none'})}.{part(claims)}."
    _refused(auth, _form(none), "malformed|not allowed|signed JWT")
    hs = jwt.encode({"alg": "HS256"}, claims, OctKey.generate_key(256), algorithms=["HS256"])
    _refused(auth, _form(hs), "not allowed")
    rs256 = _assertion(clock, alg="RS256")
    _refused(auth, _form(rs256), "not allowed")
    stranger = RSAKey.generate_key(2048, private=True)
    _refused(auth, _form(_assertion(clock, key=stranger)), "signature")
    tampered = _assertion(clock).split(".")
    tampered[1] = part({**claims, "jti": "other"})
    _refused(auth, _form(".".join(tampered)), "signature")
    jku = _assertion(clock, "ec-svc", EC, "ES384", "e1", {"jku": "https://evil.example/jwks"})
    _refused(auth, _form(jku), "jku")
    _refused(auth, _form(_assertion(clock), client_id="ec-svc"), "client_id differs")
    _refused(auth, _form(_assertion(clock), client_assertion_type="x"), "client_assertion_type")


def test_secret_and_public_clients() -> None:
    clock = Clock()
    auth, tokens = _world(clock)
    basic = "Basic " + base64.b64encode(b"app:" + b"s" * 20).decode()
    client = auth.authenticate({}, basic)
    assert client.client_id == "app"
    with pytest.raises(OAuthError, match="backend services"):
        client_credentials(tokens, client, {"scope": "system/Patient.rs"})
    wrong = "Basic " + base64.b64encode(b"app:nope").decode()
    with pytest.raises(OAuthError, match="wrong secret"):
        auth.authenticate({}, wrong)
    with pytest.raises(OAuthError, match="must authenticate"):
        auth.authenticate({"client_id": "app"}, None)
    with pytest.raises(OAuthError, match="client_secret_post"):
        auth.authenticate({"client_id": "app", "client_secret": "s" * 20}, None)
    assert auth.authenticate({"client_id": "maison-smart-dev"}, None).public
