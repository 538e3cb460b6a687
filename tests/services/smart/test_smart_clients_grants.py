"""SMART clients as data, authorization codes (PKCE, single use), refresh rotation and
revocation, EHR launch ids: https://hl7.org/fhir/smart-app-launch/app-launch.html."""

from __future__ import annotations

import secrets

import orjson
import pytest
from joserfc import jwt
from smart_fakes import FHIR_BASE, Clock, Records, issuer

from maison.services.psc.provider import OAuthError, s256
from maison.services.smart.clients import (
    DEV_CLIENT,
    ClientError,
    ClientRegistry,
    client_from_json,
    parse_clients,
    register,
)
from maison.services.smart.grants import ACCESS_TTL, Grant, Tokens
from maison.services.smart.launch import LaunchError, create_launch, resolve_launch

REDIRECT = "https://app.example/cb"


def _tokens(clock: Clock) -> tuple[Tokens, Records]:
    records = Records()
    return Tokens(issuer(), FHIR_BASE, records, clock), records


def test_registration_is_checked() -> None:
    ok = client_from_json("app", {"redirect_uris": [REDIRECT], "scope": "openid patient/*.rs"})
    assert ok.public and ok.allows_redirect(REDIRECT)
    assert not ok.allows_redirect(REDIRECT + "/../x") and not ok.allows_redirect(REDIRECT + "?a")
    for bad in (
        {"redirect_uris": ["http://evil.example/cb"]},
        {"redirect_uris": [REDIRECT], "scope": "rocket/launch"},
        {"redirect_uris": [REDIRECT], "secret": "short"},
        {"redirect_uris": [REDIRECT], "public": False},
        {"redirect_uris": [], "scope": "system/*.rs"},  # system/ needs keys
        {"jwks": {"keys": [{"kty": "EC", "d": "x"}]}},  # a private key
        {"jwks_uri": "http://evil.example/jwks"},
    ):
        with pytest.raises(ClientError):
            client_from_json("app", bad)
    with pytest.raises(ClientError):
        client_from_json("bad id!", {})
    with pytest.raises(ClientError):
        parse_clients("{not json")


def test_grantable_scopes_stay_within_the_registration() -> None:
    client = client_from_json(
        "app",
        {"redirect_uris": [REDIRECT], "scope": "openid launch patient/Observation.rs user/*.read"},
    )
    asked = [
        "openid",
        "profile",
        "patient/Observation.r",
        "patient/Patient.rs",
        "user/Patient.rs",
        "user/Patient.cruds",
        "system/*.rs",
    ]
    assert client.grantable(asked) == ["openid", "patient/Observation.r", "user/Patient.rs"]


def test_registry_reads_the_store_and_keeps_the_built_in_client() -> None:
    records = Records()
    registry = ClientRegistry(
        records, orjson.dumps({"env": {"redirect_uris": [REDIRECT]}}).decode()
    )
    assert registry.get(DEV_CLIENT) is not None and registry.get("env") is not None
    assert registry.get(DEV_CLIENT).allows_redirect("http://127.0.0.1:5555/cb")  # type: ignore[union-attr]
    register(records, client_from_json("cli", {"redirect_uris": [REDIRECT]}))
    register(records, client_from_json("cli2", {"redirect_uris": [REDIRECT]}))
    assert {"cli", "cli2", "env", DEV_CLIENT} <= set(registry.all())
    with pytest.raises(ClientError):
        register(records, client_from_json(DEV_CLIENT, {}))


def _grant(
    scopes: tuple[str, ...] = ("openid", "fhirUser", "offline_access", "patient/*.rs"),
) -> Grant:
    return Grant(
        "app",
        "acc-1",
        scopes,
        {"fhirUser": "Patient/p1"},
        {"patient": "p1", "need_patient_banner": False},
        "nonce-1",
        1,
    )


def _code(tokens: Tokens, verifier: str, grant: Grant | None = None) -> str:
    return tokens.issue_code(grant or _grant(), REDIRECT, s256(verifier))


def _redeem(tokens: Tokens, code: str, verifier: str, **over: str) -> dict[str, object]:
    client = client_from_json("app", {"redirect_uris": [REDIRECT], "scope": "openid"})
    form = {"code": code, "redirect_uri": REDIRECT, "code_verifier": verifier, **over}
    return tokens.redeem_code(client, form)


def test_code_gives_tokens_with_the_launch_context() -> None:
    clock = Clock()
    tokens, records = _tokens(clock)
    verifier = secrets.token_urlsafe(48)
    code = _code(tokens, verifier)
    assert not any(code in k or code in v for k, v in records.facts.items())  # hashed
    answer = _redeem(tokens, code, verifier)
    assert answer["patient"] == "p1" and answer["need_patient_banner"] is False
    assert answer["expires_in"] == ACCESS_TTL == 300
    claims = jwt.decode(str(answer["access_token"]), tokens.issuer._key).claims
    assert claims["patient"] == "p1" and claims["fhirUser"] == "Patient/p1"
    assert claims["exp"] - claims["iat"] == 300 and claims["client_id"] == "app"
    id_claims = jwt.decode(str(answer["id_token"]), tokens.issuer._key).claims
    assert id_claims["aud"] == "app" and id_claims["nonce"] == "nonce-1"
    assert id_claims["fhirUser"] == "Patient/p1"
    assert "." in str(answer["refresh_token"])


def test_pkce_redirect_and_expiry_are_checked_without_consuming_the_code() -> None:
    clock = Clock()
    tokens, _records = _tokens(clock)
    verifier = secrets.token_urlsafe(48)
    code = _code(tokens, verifier)
    for over, error in (
        ({"code_verifier": secrets.token_urlsafe(48)}, "invalid_grant"),
        ({"code_verifier": ""}, "invalid_request"),
        ({"redirect_uri": REDIRECT + "x"}, "invalid_grant"),
    ):
        with pytest.raises(OAuthError) as caught:
            _redeem(tokens, code, verifier, **over)
        assert caught.value.error == error
    assert _redeem(tokens, code, verifier)["token_type"] == "Bearer"
    late = _code(tokens, verifier)
    clock.now += 61
    with pytest.raises(OAuthError, match="expired"):
        _redeem(tokens, late, verifier)


def test_a_replayed_code_revokes_its_grant() -> None:
    tokens, _records = _tokens(Clock())
    verifier = secrets.token_urlsafe(48)
    code = _code(tokens, verifier)
    first = _redeem(tokens, code, verifier)
    with pytest.raises(OAuthError, match="already used"):
        _redeem(tokens, code, verifier)
    grant_id = jwt.decode(str(first["access_token"]), tokens.issuer._key).claims["grant_id"]
    assert tokens.revoked(grant_id)
    client = client_from_json("app", {"redirect_uris": [REDIRECT]})
    with pytest.raises(OAuthError, match="revoked"):
        tokens.refresh(client, {"refresh_token": str(first["refresh_token"])})


def test_refresh_rotates_and_a_reused_token_revokes_the_grant() -> None:
    clock = Clock()
    tokens, _records = _tokens(clock)
    client = client_from_json("app", {"redirect_uris": [REDIRECT]})
    other = client_from_json("other", {"redirect_uris": [REDIRECT]})
    verifier = secrets.token_urlsafe(48)
    first = _redeem(tokens, _code(tokens, verifier), verifier)
    with pytest.raises(OAuthError, match="another client"):
        tokens.refresh(other, {"refresh_token": str(first["refresh_token"])})
    with pytest.raises(OAuthError, match="widen"):
        tokens.refresh(
            client, {"refresh_token": str(first["refresh_token"]), "scope": "user/*.cruds"}
        )
    second = tokens.refresh(client, {"refresh_token": str(first["refresh_token"])})
    assert second["refresh_token"] != first["refresh_token"] and "id_token" not in second
    assert second["patient"] == "p1"
    with pytest.raises(OAuthError):
        tokens.refresh(client, {"refresh_token": str(first["refresh_token"])})
    with pytest.raises(OAuthError, match="revoked"):  # the whole grant went with it
        tokens.refresh(client, {"refresh_token": str(second["refresh_token"])})


def test_revocation_and_no_refresh_without_offline_access() -> None:
    tokens, _records = _tokens(Clock())
    client = client_from_json("app", {"redirect_uris": [REDIRECT]})
    verifier = secrets.token_urlsafe(48)
    answer = _redeem(tokens, _code(tokens, verifier), verifier)
    tokens.revoke(client, "garbage")  # ignored, RFC 7009 §2.2
    tokens.revoke(client, str(answer["refresh_token"]))
    with pytest.raises(OAuthError, match="revoked"):
        tokens.refresh(client, {"refresh_token": str(answer["refresh_token"])})
    online = _code(tokens, verifier, _grant(("patient/*.rs",)))
    assert "refresh_token" not in _redeem(tokens, online, verifier)
    assert "id_token" not in _redeem(
        tokens, _code(tokens, verifier, _grant(("patient/*.rs",))), verifier
    )


def test_launch_is_single_use_and_short_lived() -> None:
    clock, records = Clock(), Records()
    launch = create_launch(records, "p1", "e1", "810000000001", clock)
    found = resolve_launch(records, launch, clock)
    assert (found.patient, found.encounter, found.professional) == ("p1", "e1", "810000000001")
    with pytest.raises(LaunchError):
        resolve_launch(records, launch, clock)
    late = create_launch(records, "p1", None, "810000000001", clock)
    clock.now += 301
    with pytest.raises(LaunchError, match="expired"):
        resolve_launch(records, late, clock)
    for bad in ("../x", "p 1"):
        with pytest.raises(LaunchError):
            create_launch(records, bad, None, "8", clock)
    with pytest.raises(LaunchError):
        resolve_launch(records, "nope", clock)


def test_refresh_asks_again_whether_the_user_may_still_act() -> None:
    clock = Clock()
    allowed = [True]

    def recheck(grant: Grant) -> None:
        if not allowed[0]:
            raise OAuthError("invalid_grant", "professional refused: inactive")

    records = Records()
    tokens = Tokens(issuer(), FHIR_BASE, records, clock, recheck)
    client = client_from_json("app", {"redirect_uris": [REDIRECT]})
    verifier = secrets.token_urlsafe(48)
    answer = _redeem(tokens, _code(tokens, verifier), verifier)
    answer = tokens.refresh(client, {"refresh_token": str(answer["refresh_token"])})
    allowed[0] = False
    with pytest.raises(OAuthError, match="inactive"):
        tokens.refresh(client, {"refresh_token": str(answer["refresh_token"])})
    allowed[0] = True
    with pytest.raises(OAuthError, match="revoked"):
        tokens.refresh(client, {"refresh_token": str(answer["refresh_token"])})
