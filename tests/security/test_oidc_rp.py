"""The PSC relying party against a fake OpenID provider served by httpx.MockTransport."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from maison.security.oidc_rp import (
    Discovery,
    RelyingParty,
    RelyingPartyError,
    Session,
    code_challenge,
)

ISSUER = "https://psc.example.test/auth/realms/esante-wallet"
CLIENT_ID = "maison-portal"
CLIENT_SECRET = "s3cret:with/odd chars"
REDIRECT_URI = "https://maison.example.test/psc/callback"
T0 = 1_800_000_000.0
USERINFO_SAMPLE = Path("/work/shared/domain/data/psc/userinfo-example-bas.json")
SUB = "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:ANS20231122132732"


def _userinfo_sample() -> dict[str, Any]:
    if USERINFO_SAMPLE.exists():
        data = json.loads(USERINFO_SAMPLE.read_text(encoding="utf-8"))
        data.pop("_note", None)
        return dict(data)
    return {  # the shape of the sample, in case the shared folder is absent
        "sub": SUB,
        "SubjectNameID": "ANS20231122132732",
        "given_name": "Fistinien",
        "family_name": "Grominoch",
        "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
        "SubjectRefPro": {
            "exercices": [
                {
                    "codeProfession": "80",
                    "codeCategorieProfessionnelle": "C",
                    "activities": [
                        {
                            "codeModeExercice": "L",
                            "codeSecteurDactivite": "SA07",
                            "identifiantTechniqueDeLaStructure": "R81311",
                            "raisonSocialeSite": "CABINET INDIVIDUEL PEDI PODO0023704",
                        }
                    ],
                }
            ]
        },
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(orjson.dumps(header)) + "." + _b64(orjson.dumps(claims))
    return head + "." + _b64(signature)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FakeProvider:
    """A small OpenID provider: discovery, JWKS, token (code + PKCE, refresh), userinfo."""

    def __init__(self, issuer: str = ISSUER, secret: str | None = CLIENT_SECRET) -> None:
        self.issuer = issuer
        self.secret = secret
        self.key = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"})
        self.published: list[Any] = [self.key]
        self.clock = Clock()
        self.codes: dict[str, dict[str, Any]] = {}
        self.refresh_tokens: set[str] = set()
        self.userinfo: dict[str, Any] = _userinfo_sample()
        self.userinfo_as_jwt = False
        self.discovery_issuer = issuer
        self.id_claims_override: dict[str, Any] = {}
        self.id_token_hook: Callable[[dict[str, Any]], str] | None = None
        self.refreshed_id_token = True
        self.requests: list[httpx.Request] = []
        self.wallet_endpoint = f"{issuer}/wallet/auth"

    # endpoints
    @property
    def metadata(self) -> dict[str, Any]:
        base = f"{self.issuer}/protocol/openid-connect"
        return {
            "issuer": self.discovery_issuer,
            "authorization_endpoint": f"{base}/auth",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "end_session_endpoint": f"{base}/logout",
            "jwks_uri": f"{base}/certs",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "acr_values_supported": ["eidas1"],
        }

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url).split("?")[0]
        meta = self.metadata
        if url == f"{self.issuer}/.well-known/openid-configuration":
            return httpx.Response(200, json=meta)
        if url == f"{self.issuer}/.well-known/wallet-openid-configuration":
            return httpx.Response(
                200, json={**meta, "authorization_endpoint": self.wallet_endpoint}
            )
        if url == meta["jwks_uri"]:
            keys = [k.as_dict(private=False) for k in self.published]
            return httpx.Response(200, json={"keys": keys})
        if url == meta["token_endpoint"] and request.method == "POST":
            return self._token(request)
        if url == meta["userinfo_endpoint"]:
            return self._userinfo(request)
        return httpx.Response(404)

    def authorize(self, authorization_url: str) -> dict[str, str]:
        """What the browser brings back after the professional signs in."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
        assert query["client_id"] == CLIENT_ID
        code = secrets.token_urlsafe(16)
        self.codes[code] = query
        return {"code": code, "state": query["state"], "session_state": "x"}

    def _client_ok(self, request: httpx.Request, form: dict[str, str]) -> bool:
        if self.secret is None:
            return form.get("client_id") == CLIENT_ID and "authorization" not in request.headers
        auth = request.headers.get("authorization", "")
        expected = f"{CLIENT_ID}:{self.secret}"
        user, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        return f"{unquote(user)}:{unquote(password)}" == expected

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if not self._client_ok(request, form):
            return httpx.Response(401, json={"error": "invalid_client"})
        if form["grant_type"] == "authorization_code":
            query = self.codes.pop(form["code"], None)
            if query is None or form.get("redirect_uri") != query["redirect_uri"]:
                return httpx.Response(400, json={"error": "invalid_grant"})
            if code_challenge(form["code_verifier"]) != query["code_challenge"]:
                return httpx.Response(
                    400, json={"error": "invalid_grant", "error_description": "PKCE verification"}
                )
            nonce: str | None = query["nonce"]
        elif form["grant_type"] == "refresh_token":
            if form["refresh_token"] not in self.refresh_tokens:
                return httpx.Response(400, json={"error": "invalid_grant"})
            self.refresh_tokens.discard(form["refresh_token"])  # rotation
            nonce = None
        else:
            return httpx.Response(400, json={"error": "unsupported_grant_type"})
        access = "at-" + secrets.token_urlsafe(24)
        refresh = "rt-" + secrets.token_urlsafe(24)
        self.refresh_tokens.add(refresh)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 120,
            "refresh_expires_in": 1800,
            "refresh_token": refresh,
            "scope": "openid scope_all",
        }
        if nonce is not None or self.refreshed_id_token:
            body["id_token"] = self.id_token(nonce=nonce)
        return httpx.Response(200, json=body)

    def _userinfo(self, request: httpx.Request) -> httpx.Response:
        if not request.headers.get("authorization", "").startswith("Bearer at-"):
            return httpx.Response(401)
        if self.userinfo_as_jwt:
            claims = {**self.userinfo, "iss": self.issuer, "aud": CLIENT_ID}
            token = self.sign(claims)
            return httpx.Response(200, text=token, headers={"content-type": "application/jwt"})
        return httpx.Response(200, json=self.userinfo)

    # tokens
    def sign(self, claims: dict[str, Any], key: Any = None, alg: str = "RS256") -> str:
        key = key or self.key
        header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, key, algorithms=[alg])

    def claims(self, nonce: str | None) -> dict[str, Any]:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": SUB,
            "aud": CLIENT_ID,
            "azp": CLIENT_ID,
            "iat": now,
            "exp": now + 120,
            "auth_time": now,
            "acr": "eidas1",
            "preferred_username": "ANS20231122132732",
        }
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(self.id_claims_override)
        return {k: v for k, v in claims.items() if v is not None}

    def id_token(self, nonce: str | None) -> str:
        claims = self.claims(nonce)
        if self.id_token_hook is not None:
            return self.id_token_hook(claims)
        return self.sign(claims)


def _rp(provider: FakeProvider, secret: str | None = CLIENT_SECRET, **options: Any) -> RelyingParty:
    http = httpx.Client(transport=httpx.MockTransport(provider.handler))
    return RelyingParty(
        provider.issuer, CLIENT_ID, secret, REDIRECT_URI, http=http, clock=provider.clock, **options
    )


def _sign_in(provider: FakeProvider, rp: RelyingParty) -> Session:
    url, pending = rp.start()
    return rp.finish(pending, provider.authorize(url))


def _refused(provider: FakeProvider, rp: RelyingParty, code: str) -> RelyingPartyError:
    with pytest.raises(RelyingPartyError) as caught:
        _sign_in(provider, rp)
    assert caught.value.code == code, caught.value.message
    return caught.value


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def rp(provider: FakeProvider) -> RelyingParty:
    return _rp(provider)


# --- happy path --------------------------------------------------------------------------------
def test_no_io_until_used(provider: FakeProvider) -> None:
    _rp(provider)
    assert provider.requests == []


def test_start_builds_a_psc_authorization_request(provider: FakeProvider, rp: RelyingParty) -> None:
    url, pending = rp.start()
    parts = urlsplit(url)
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}"
        == provider.metadata["authorization_endpoint"]
    )
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["response_type"] == "code"
    assert query["scope"] == "openid scope_all"
    assert query["acr_values"] == "eidas1"
    assert query["state"] == pending.state
    assert query["nonce"] == pending.nonce
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["code_challenge_method"] == "S256"
    verifier = pending.code_verifier
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert query["code_challenge"] == _b64(digest)
    assert pending.created_at == T0
    assert verifier not in repr(pending)
    _, other = rp.start()
    assert {other.state, other.nonce} & {pending.state, pending.nonce} == set()


def test_wallet_discovery_document_and_endpoint_query_kept(provider: FakeProvider) -> None:
    # PSC's wallet-openid-configuration points at the wallet page, with a query of its own
    provider.wallet_endpoint = "https://wallet.example.test/auth/?acr_values=eidas1&x=1"
    rp = _rp(provider, discovery_document="wallet-openid-configuration")
    url, _ = rp.start()
    assert url.startswith("https://wallet.example.test/auth/?")
    query = parse_qs(urlsplit(url).query)
    assert query["x"] == ["1"] and query["acr_values"] == ["eidas1"]
    assert query["code_challenge_method"] == ["S256"]
    assert _sign_in(provider, rp).id_claims["sub"] == SUB


def test_full_sign_in(provider: FakeProvider, rp: RelyingParty) -> None:
    session = _sign_in(provider, rp)
    assert session.id_claims["sub"] == SUB
    assert session.id_claims["acr"] == "eidas1"
    assert session.userinfo["SubjectNameID"] == "ANS20231122132732"
    assert session.expires_at == T0 + 120
    assert session.refresh_expires_at == T0 + 1800
    assert session.access_token.startswith("at-")
    assert session.access_token not in repr(session)
    # client_secret_basic at the token endpoint, bearer at userinfo
    token_call = next(r for r in provider.requests if r.url.path.endswith("/token"))
    assert token_call.headers["authorization"].startswith("Basic ")
    assert b"client_secret" not in token_call.content
    context = rp.professional(session)
    assert context.national_id == "ANS20231122132732"
    assert context.subject == SUB
    assert context.acr == "eidas1"
    assert context.profession == "80"
    assert context.activity.index == 0
    assert context.activity.secteur == "SA07"
    assert context.activity.rass_id == "R81311"


def test_public_client_uses_pkce_without_secret() -> None:
    provider = FakeProvider(secret=None)
    rp = _rp(provider, secret=None)
    session = _sign_in(provider, rp)
    token_call = next(r for r in provider.requests if r.url.path.endswith("/token"))
    assert "authorization" not in token_call.headers
    assert b"client_id=maison-portal" in token_call.content
    assert session.id_claims["sub"] == SUB


def test_professional_with_several_activities_asks_for_a_choice(
    provider: FakeProvider, rp: RelyingParty
) -> None:
    exercice = provider.userinfo["SubjectRefPro"]["exercices"][0]
    second = {**exercice["activities"][0], "raisonSocialeSite": "CENTRE B"}
    exercice["activities"] = [exercice["activities"][0], second]
    session = _sign_in(provider, rp)
    with pytest.raises(RelyingPartyError) as caught:
        rp.professional(session)
    assert caught.value.code == "activity_choice"
    assert rp.professional(session, 1).activity.name == "CENTRE B"


def test_userinfo_as_signed_jwt(provider: FakeProvider, rp: RelyingParty) -> None:
    provider.userinfo_as_jwt = True
    session = _sign_in(provider, rp)
    assert session.userinfo["SubjectNameID"] == "ANS20231122132732"
    assert rp.professional(session).activity.secteur == "SA07"


def test_userinfo_jwt_with_bad_signature_is_refused(
    provider: FakeProvider, rp: RelyingParty
) -> None:
    provider.userinfo_as_jwt = True
    impostor = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    provider.sign = lambda claims, key=None, alg="RS256": jwt.encode(  # type: ignore[method-assign]
        {"alg": "RS256", "kid": "rsa-1"}, claims, impostor, algorithms=["RS256"]
    )
    provider.id_token_hook = lambda claims: jwt.encode(
        {"alg": "RS256", "kid": "rsa-1"}, claims, provider.key, algorithms=["RS256"]
    )
    _refused(provider, rp, "invalid_userinfo")


def test_refresh_rotates_the_refresh_token(provider: FakeProvider, rp: RelyingParty) -> None:
    session = _sign_in(provider, rp)
    provider.clock.now += 100
    renewed = rp.refresh(session)
    assert renewed.refresh_token != session.refresh_token
    assert renewed.access_token != session.access_token
    assert renewed.expires_at == provider.clock.now + 120
    assert renewed.userinfo == session.userinfo
    # the old refresh token was revoked by the provider: only the new one works
    with pytest.raises(RelyingPartyError) as caught:
        rp.refresh(session)
    assert caught.value.code == "token_endpoint"
    assert caught.value.error == "invalid_grant"
    assert session.refresh_token
    assert session.refresh_token not in caught.value.message
    again = rp.refresh(renewed)
    assert again.id_claims["sub"] == SUB


def test_refresh_without_new_id_token_keeps_the_old_one(
    provider: FakeProvider, rp: RelyingParty
) -> None:
    session = _sign_in(provider, rp)
    provider.refreshed_id_token = False
    renewed = rp.refresh(session)
    assert renewed.id_token == session.id_token


def test_refresh_refuses_another_subject(provider: FakeProvider, rp: RelyingParty) -> None:
    session = _sign_in(provider, rp)
    provider.id_claims_override = {"sub": "someone-else"}
    with pytest.raises(RelyingPartyError) as caught:
        rp.refresh(session)
    assert caught.value.code == "invalid_id_token"


def test_logout_url(provider: FakeProvider, rp: RelyingParty) -> None:
    session = _sign_in(provider, rp)
    url = rp.logout_url(session, "https://maison.example.test/bye", "s1")
    parts = urlsplit(url)
    assert url.startswith(provider.metadata["end_session_endpoint"] + "?")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "id_token_hint": session.id_token,
        "client_id": CLIENT_ID,
        "post_logout_redirect_uri": "https://maison.example.test/bye",
        "state": "s1",
    }


def test_same_class_two_issuers_only_the_url_differs() -> None:
    local = FakeProvider("http://127.0.0.1:8080/psc")
    psc = FakeProvider("https://auth.bas.psc.example.test/auth/realms/esante-wallet")
    sessions = []
    for provider in (local, psc):
        rp = _rp(provider)
        assert rp.discovery.token_endpoint.startswith(provider.issuer)
        sessions.append(_sign_in(provider, rp))
    assert [s.id_claims["iss"] for s in sessions] == [local.issuer, psc.issuer]
    # a token of one issuer is refused by the RP of the other
    local.id_token_hook = lambda claims: psc.sign({**claims, "iss": psc.issuer})
    local.published = [local.key, psc.key]
    _refused(local, _rp(local), "invalid_id_token")


# --- refusals ----------------------------------------------------------------------------------
def test_state_mismatch(provider: FakeProvider, rp: RelyingParty) -> None:
    url, pending = rp.start()
    callback = provider.authorize(url)
    with pytest.raises(RelyingPartyError) as caught:
        rp.finish(pending, {**callback, "state": "forged"})
    assert caught.value.code == "state_mismatch"
    with pytest.raises(RelyingPartyError) as missing:
        rp.finish(pending, {"code": callback["code"]})
    assert missing.value.code == "state_mismatch"


def test_provider_error_callback(rp: RelyingParty) -> None:
    _, pending = rp.start()
    params = {
        "state": pending.state,
        "error": "access_denied",
        "error_description": "User cancelled the e-CPS approval",
    }
    with pytest.raises(RelyingPartyError) as caught:
        rp.finish(pending, params)
    err = caught.value
    assert err.code == "provider_error"
    assert err.error == "access_denied"
    assert err.error_description == "User cancelled the e-CPS approval"
    assert "access_denied" in err.message and "cancelled" in err.message


def test_callback_from_another_issuer(provider: FakeProvider, rp: RelyingParty) -> None:
    url, pending = rp.start()
    callback = {**provider.authorize(url), "iss": "https://evil.example.test"}
    with pytest.raises(RelyingPartyError) as caught:
        rp.finish(pending, callback)
    assert caught.value.code == "issuer_mismatch"


def test_expired_pending_login(provider: FakeProvider, rp: RelyingParty) -> None:
    url, pending = rp.start()
    provider.clock.now += 3600
    with pytest.raises(RelyingPartyError) as caught:
        rp.finish(pending, provider.authorize(url))
    assert caught.value.code == "login_expired"


def test_wrong_pkce_verifier_is_refused_by_the_provider(
    provider: FakeProvider, rp: RelyingParty
) -> None:
    url, pending = rp.start()
    callback = provider.authorize(url)
    _, other = rp.start()
    forged = type(pending)(pending.state, pending.nonce, other.code_verifier, pending.created_at)
    with pytest.raises(RelyingPartyError) as caught:
        rp.finish(forged, callback)
    assert caught.value.code == "token_endpoint"
    assert caught.value.error == "invalid_grant"
    assert callback["code"] not in caught.value.message


def test_bad_signature(provider: FakeProvider, rp: RelyingParty) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    provider.id_token_hook = lambda claims: provider.sign(claims, key=impostor)
    err = _refused(provider, rp, "invalid_id_token")
    assert "signature" in err.message


def test_tampered_payload(provider: FakeProvider, rp: RelyingParty) -> None:
    def tamper(claims: dict[str, Any]) -> str:
        head, _, sig = provider.sign(claims).split(".")
        return f"{head}.{_b64(orjson.dumps({**claims, 'sub': 'admin'}))}.{sig}"

    provider.id_token_hook = tamper
    _refused(provider, rp, "invalid_id_token")


def test_alg_none(provider: FakeProvider, rp: RelyingParty) -> None:
    provider.id_token_hook = lambda claims: _unsigned({"alg": "none", "kid": "rsa-1"}, claims)
    err = _refused(provider, rp, "invalid_id_token")
    assert "'none'" in err.message


def test_hs256_signed_with_the_public_key(provider: FakeProvider, rp: RelyingParty) -> None:
    public_pem = provider.key.as_pem(private=False)

    def confused(claims: dict[str, Any]) -> str:
        head = _b64(orjson.dumps({"alg": "HS256", "kid": "rsa-1"}))
        body = _b64(orjson.dumps(claims))
        mac = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(mac)}"

    provider.id_token_hook = confused
    err = _refused(provider, rp, "invalid_id_token")
    assert "'HS256'" in err.message


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"iss": "https://other.example.test/realms/x"}, "another issuer"),
        ({"aud": "another-client", "azp": None}, "another client (aud)"),
        ({"aud": [CLIENT_ID, "api"], "azp": None}, "no azp"),
        ({"aud": [CLIENT_ID, "api"], "azp": "api"}, "(azp)"),
        ({"exp": int(T0) - 3600, "iat": int(T0) - 3720}, "expired"),
        ({"iat": int(T0) + 3600, "exp": int(T0) + 3720}, "future"),
        ({"nonce": "not-the-nonce"}, "nonce"),
        ({"acr": None}, "level of assurance 'none'"),
        ({"acr": "eidas0"}, "level of assurance 'eidas0'"),
        ({"sub": None}, "no subject"),
        ({"exp": None}, "exp and iat are required"),
        ({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, "at_hash"),
    ],
    ids=[
        "wrong-iss",
        "wrong-aud",
        "several-aud-no-azp",
        "wrong-azp",
        "expired",
        "issued-in-future",
        "wrong-nonce",
        "missing-acr",
        "insufficient-acr",
        "no-sub",
        "no-exp",
        "bad-at-hash",
    ],
)
def test_id_token_claims_refused(
    provider: FakeProvider, rp: RelyingParty, override: dict[str, Any], reason: str
) -> None:
    provider.id_claims_override = override
    err = _refused(provider, rp, "invalid_id_token")
    assert reason in err.message


def test_missing_nonce_is_refused(provider: FakeProvider, rp: RelyingParty) -> None:
    provider.id_token_hook = lambda claims: provider.sign(
        {k: v for k, v in claims.items() if k != "nonce"}
    )
    _refused(provider, rp, "invalid_id_token")


def test_higher_acr_is_accepted_and_small_clock_skew_tolerated(
    provider: FakeProvider, rp: RelyingParty
) -> None:
    provider.id_claims_override = {"acr": "eidas2", "iat": int(T0) + 30}
    assert _sign_in(provider, rp).id_claims["acr"] == "eidas2"


def test_userinfo_sub_differs_from_id_token(provider: FakeProvider, rp: RelyingParty) -> None:
    provider.userinfo["sub"] = "f:someone-else"
    err = _refused(provider, rp, "invalid_userinfo")
    assert "sub mismatch" in err.message


def test_discovery_issuer_mismatch(provider: FakeProvider) -> None:
    provider.discovery_issuer = "https://evil.example.test/auth/realms/esante-wallet"
    rp = _rp(provider)
    with pytest.raises(RelyingPartyError) as caught:
        rp.start()
    assert caught.value.code == "discovery"
    assert "another issuer" in caught.value.message


def test_discovery_unreachable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    rp = RelyingParty(
        ISSUER,
        CLIENT_ID,
        CLIENT_SECRET,
        REDIRECT_URI,
        http=httpx.Client(transport=httpx.MockTransport(down)),
    )
    with pytest.raises(RelyingPartyError) as caught:
        rp.discover()
    assert caught.value.code == "discovery"
    assert "cannot reach" in caught.value.message
    assert ISSUER in caught.value.message


def test_discovery_missing_endpoint() -> None:
    with pytest.raises(RelyingPartyError) as caught:
        Discovery.from_metadata(ISSUER, {"issuer": ISSUER, "authorization_endpoint": "https://a"})
    assert "token_endpoint" in caught.value.message


def test_unknown_kid_refetches_the_jwks_once(provider: FakeProvider, rp: RelyingParty) -> None:
    _sign_in(provider, rp)

    def jwks_fetches() -> int:
        return sum(1 for r in provider.requests if r.url.path.endswith("/certs"))

    assert jwks_fetches() == 1
    # the provider rotates to a new EC key: the RP refetches the JWKS and accepts it
    new_key = ECKey.generate_key("P-256", parameters={"kid": "ec-2", "use": "sig"})
    provider.published = [provider.key, new_key]
    provider.id_token_hook = lambda claims: provider.sign(claims, key=new_key, alg="ES256")
    provider.clock.now += 120
    assert _sign_in(provider, rp).id_claims["sub"] == SUB
    assert jwks_fetches() == 2
    # a kid that is still unknown after one refetch is refused
    ghost = ECKey.generate_key("P-256", parameters={"kid": "ghost"})
    provider.id_token_hook = lambda claims: provider.sign(claims, key=ghost, alg="ES256")
    provider.clock.now += 120
    err = _refused(provider, rp, "invalid_id_token")
    assert "unknown key" in err.message
    assert jwks_fetches() == 3
    # and a flood of unknown kids does not hammer the provider (one refetch a minute at most)
    provider.clock.now += 10
    _refused(provider, rp, "invalid_id_token")
    assert jwks_fetches() == 3


def test_messages_never_carry_tokens(provider: FakeProvider, rp: RelyingParty) -> None:
    provider.userinfo["sub"] = "other"
    url, pending = rp.start()
    callback = provider.authorize(url)
    with pytest.raises(RelyingPartyError) as caught:
        rp.finish(pending, callback)
    text = str(caught.value)
    for secret in (callback["code"], pending.code_verifier, pending.nonce, CLIENT_SECRET):
        assert secret not in text
    assert "at-" not in text
