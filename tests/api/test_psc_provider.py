"""The local Pro Santé Connect-compatible provider, black box: a real server (two workers) with
the ``/psc`` routes, a synthetic Annuaire imported, fhirclient's OAuth2 code flow (PKCE S256)
for the happy path and httpx for every attack.

https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
import requests
from fhirclient.auth import FHIROAuth2Auth
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from maison.services.annuaire.synth import synthesize, write_extraction
from maison.services.psc.provider import AuthorizeRequest, OAuthError, PscProvider
from servers import LaunchedServer, backend_data, free_port, import_annuaire

REDIRECT = "http://127.0.0.1:53682/callback"
LOGOUT_TARGET = "http://127.0.0.1:53682/bye"
CONFIDENTIAL = "rp-confidential"
SECRET = "s3cret-" + "x" * 24
CLIENTS = {
    CONFIDENTIAL: {
        "secret": SECRET,
        "redirect_uris": ["https://rp.example/cb"],
        "post_logout_redirect_uris": ["https://rp.example/bye"],
    }
}


@dataclass
class World:
    """The server, the professionals to sign in with, every secret value handed out."""

    server: LaunchedServer
    extraction_dir: Path
    rows: list[dict[str, str]]
    rpps: list[str]  # RPPS numbers of active professionals (distinct people)
    issued: list[str] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"{self.server.base_url}/psc"

    def remember(self, *values: str | None) -> None:
        self.issued.extend(v for v in values if v)


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("psc")
    rows = list(synthesize(60, 2026))
    first = write_extraction(rows, tmp / "x1.txt", generated_at=datetime(2026, 1, 1, 3, 0))
    clients = {"MAISON_PSC_CLIENTS": orjson.dumps(CLIENTS).decode()}
    srv = LaunchedServer(
        backend_data(backend, tmp), tmp, free_port(), env=clients, workers=2, log_level="info"
    )
    srv.token = "unused"  # no `maison token` needed
    import_annuaire(srv, first)
    srv.start()
    rpps: list[str] = []
    for row in rows:
        if row["Type d'identifiant PP"] == "8" and row["Identifiant PP"] not in rpps:
            rpps.append(row["Identifiant PP"])
    try:
        yield World(srv, tmp, rows, rpps)
    finally:
        srv.stop()


# --- a relying party, by hand -------------------------------------------------------------
def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize_params(challenge: str, **over: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": "maison-dev",
        "redirect_uri": REDIRECT,
        "scope": "openid scope_all",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "acr_values": "eidas1",
    }
    params.update(over)
    return {k: v for k, v in params.items() if v != "-"}


def _hidden(page: str) -> dict[str, str]:
    return {
        unescape(n): unescape(v)
        for n, v in re.findall(r'<input type=hidden name="([^"]*)" value="([^"]*)">', page)
    }


def _sign_in(
    w: World, identifier: str, params: dict[str, str], action: str = "password",
    password: str = "maison-test",
) -> httpx.Response:  # fmt: skip
    """GET the sign-in page, then POST it back as a browser would."""
    with httpx.Client(base_url=w.server.base_url, timeout=30) as c:
        page = c.get("/psc/auth", params=params)
        assert page.status_code == 200, page.text
        assert "Connexion Pro Santé Connect — environnement de test" in page.text
        form = {**_hidden(page.text), "identifier": identifier, "password": password}
        form["action"] = action
        return c.post("/psc/auth", data=form)


def _code(w: World, identifier: str, params: dict[str, str]) -> str:
    answer = _sign_in(w, identifier, params)
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == [params["state"]]
    code = query["code"][0]
    w.remember(code)
    return code


def _token(w: World, form: dict[str, str], auth: tuple[str, str] | None = None) -> httpx.Response:
    answer = httpx.post(f"{w.issuer}/token", data=form, auth=auth, timeout=30)
    if answer.status_code == 200:
        body = answer.json()
        w.remember(body["access_token"], body["refresh_token"], body.get("id_token"))
    return answer


def _exchange(w: World, code: str, verifier: str, **over: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "maison-dev",
        "code_verifier": verifier,
    }
    form.update(over)
    return _token(w, {k: v for k, v in form.items() if v != "-"})


def _refresh(w: World, refresh_token: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": "maison-dev",
    }
    return _token(w, form)


def _tokens(w: World, identifier: str) -> dict[str, Any]:
    verifier, challenge = _pkce()
    params = _authorize_params(challenge)
    answer = _exchange(w, _code(w, identifier, params), verifier)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    body["nonce"] = params["nonce"]
    return body


def _claims(w: World, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{w.issuer}/jwks").json())
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


def _error(answer: httpx.Response, status: int, error: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error, answer.text


# --- fhirclient as the relying party ----------------------------------------------------------
class _FhirclientServer:
    """What FHIROAuth2Auth needs of a fhirclient FHIRServer: scope, form POST, state saving."""

    desired_scope = "openid scope_all"
    launch_token = None

    def __init__(self) -> None:
        self.session = requests.Session()

    def should_save_state(self) -> None:
        pass

    def post_as_form(self, url: str, formdata: dict[str, str], auth: Any = None) -> Any:
        res = self.session.post(url, data=formdata, auth=auth, timeout=30)
        res.raise_for_status()
        return res


# --- the tests ------------------------------------------------------------------------------
def test_discovery_has_the_shape_of_psc(world: World) -> None:
    doc = httpx.get(f"{world.issuer}/.well-known/openid-configuration").json()
    assert doc["issuer"] == world.issuer
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "end_session_endpoint"):  # fmt: skip
        assert doc[name].startswith(world.issuer + "/"), name
    assert {"openid", "scope_all"} <= set(doc["scopes_supported"])
    assert doc["response_types_supported"] == ["code"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["acr_values_supported"] == ["eidas1"]
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    keys = httpx.get(doc["jwks_uri"]).json()["keys"]
    assert [(k["kty"], k["crv"], k["alg"]) for k in keys] == [("EC", "P-256", "ES256")]
    assert "d" not in keys[0]


def test_fhirclient_code_flow_userinfo_refresh_logout(world: World) -> None:
    rpps = world.rpps[0]
    nonce = secrets.token_urlsafe(8)
    auth = FHIROAuth2Auth(
        state={
            "app_id": "maison-dev",
            "authorize_uri": f"{world.issuer}/auth?nonce={nonce}&acr_values=eidas1",
            "token_uri": f"{world.issuer}/token",
            "redirect_uri": REDIRECT,
        }
    )
    rp = _FhirclientServer()
    url = auth.authorize_uri(rp)
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params["code_challenge_method"] == "S256"
    answer = _sign_in(world, rpps, params, action="ecps")  # simulated e-CPS approval
    assert answer.status_code == 302, answer.text
    callback = answer.headers["location"]
    assert callback.startswith(REDIRECT + "?")
    world.remember(parse_qs(urlsplit(callback).query)["code"][0])
    extra = auth.handle_callback(callback, rp)  # state checked, code + verifier exchanged
    access, refresh, id_token = auth.access_token, auth.refresh_token, extra["id_token"]
    world.remember(access, refresh, id_token)
    assert extra["token_type"] == "Bearer"

    at = _claims(world, access)
    assert at["exp"] - at["iat"] == 120
    assert at["acr"] == "eidas1"
    assert at["aud"] == world.server.base_url
    assert at["SubjectNameID"] == f"8{rpps}"
    assert at["scope"] == "openid scope_all"
    idt = _claims(world, id_token)
    assert idt["nonce"] == nonce and idt["aud"] == "maison-dev" and idt["acr"] == "eidas1"
    assert idt["sid"] and idt["auth_time"] <= idt["iat"]
    assert idt["sub"] == at["sub"] and idt["sub"].endswith(f":8{rpps}")

    info = httpx.get(f"{world.issuer}/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert info.status_code == 200, info.text
    claims = info.json()
    assert claims["SubjectNameID"] == f"8{rpps}" and claims["sub"] == at["sub"]
    assert claims["SubjectRefPro"]["exercices"][0]["activities"]
    posted = httpx.post(f"{world.issuer}/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert posted.json() == claims

    auth.reauthorize(rp)  # refresh, by fhirclient
    assert auth.refresh_token != refresh and auth.access_token != access
    world.remember(auth.access_token, auth.refresh_token)
    _error(_refresh(world, refresh), 400, "invalid_grant")  # the rotated one, reused

    # the reuse revoked the whole family: the newest refresh token is refused too (BCP §4.14)
    _error(_refresh(world, auth.refresh_token), 400, "invalid_grant")

    fresh = _tokens(world, rpps)
    out = httpx.get(
        f"{world.issuer}/logout",
        params={
            "id_token_hint": fresh["id_token"],
            "post_logout_redirect_uri": LOGOUT_TARGET,
            "state": "bye1",
        },
    )
    assert out.status_code == 302 and out.headers["location"] == f"{LOGOUT_TARGET}?state=bye1"
    _error(_refresh(world, fresh["refresh_token"]), 400, "invalid_grant")
    after = httpx.get(
        f"{world.issuer}/userinfo", headers={"Authorization": f"Bearer {fresh['access_token']}"}
    )
    assert after.status_code == 401 and "invalid_token" in after.headers["www-authenticate"]


def test_refresh_rotates_and_a_reused_one_is_refused(world: World) -> None:
    tokens = _tokens(world, world.rpps[1])
    first = _refresh(world, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert _claims(world, rotated["id_token"])["nonce"] == tokens["nonce"]
    _error(_refresh(world, tokens["refresh_token"]), 400, "invalid_grant")


def test_logout_needs_a_registered_post_logout_uri(world: World) -> None:
    tokens = _tokens(world, world.rpps[1])
    out = httpx.get(
        f"{world.issuer}/logout",
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example/"},
    )  # fmt: skip
    assert out.status_code == 400 and "location" not in out.headers
    assert _refresh(world, tokens["refresh_token"]).status_code == 200  # session not ended


def test_confidential_client_basic_and_post(world: World) -> None:
    for how in ("basic", "post", "wrong"):
        verifier, challenge = _pkce()
        params = _authorize_params(
            challenge, client_id=CONFIDENTIAL, redirect_uri="https://rp.example/cb"
        )
        code = _code(world, world.rpps[2], params)
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": "https://rp.example/cb", "code_verifier": verifier}  # fmt: skip
        if how == "basic":
            answer = _token(world, form, auth=(CONFIDENTIAL, SECRET))
        elif how == "post":
            answer = _token(world, {**form, "client_id": CONFIDENTIAL, "client_secret": SECRET})
        else:
            answer = _token(world, form, auth=(CONFIDENTIAL, "not-the-secret"))
            _error(answer, 401, "invalid_client")
            assert answer.headers["www-authenticate"].startswith("Basic")
            continue
        assert answer.status_code == 200, answer.text
    # a confidential client's code cannot be redeemed as the public dev client
    verifier, challenge = _pkce()
    params = _authorize_params(
        challenge, client_id=CONFIDENTIAL, redirect_uri="https://rp.example/cb"
    )
    code = _code(world, world.rpps[2], params)
    _error(
        _exchange(world, code, verifier, redirect_uri="https://rp.example/cb"), 400, "invalid_grant"
    )


def test_replayed_code_is_refused_and_revokes_its_tokens(world: World) -> None:
    verifier, challenge = _pkce()
    code = _code(world, world.rpps[3], _authorize_params(challenge))
    first = _exchange(world, code, verifier)
    assert first.status_code == 200, first.text
    _error(_exchange(world, code, verifier), 400, "invalid_grant")
    _error(_refresh(world, first.json()["refresh_token"]), 400, "invalid_grant")


def test_missing_and_wrong_pkce_verifier(world: World) -> None:
    verifier, challenge = _pkce()
    code = _code(world, world.rpps[3], _authorize_params(challenge))
    _error(_exchange(world, code, "-"), 400, "invalid_request")
    _error(_exchange(world, code, _pkce()[0]), 400, "invalid_grant")
    _error(
        _exchange(world, code, verifier, redirect_uri="http://127.0.0.1:1/other"),
        400,
        "invalid_grant",
    )
    assert _exchange(world, code, verifier).status_code == 200  # failures did not consume it


@pytest.mark.parametrize(
    "over",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge_method": "-"},
        {"code_challenge": "-"},
        {"nonce": "-"},
        {"scope": "scope_all"},
        {"acr_values": "eidas2"},
    ],
)
def test_bad_authorization_requests_go_back_with_an_error(
    world: World, over: dict[str, str]
) -> None:
    _verifier, challenge = _pkce()
    params = _authorize_params(challenge, **over)
    answer = httpx.get(f"{world.issuer}/auth", params=params)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?") and "code=" not in location
    query = parse_qs(urlsplit(location).query)
    assert query["error"][0] in ("invalid_request", "invalid_scope"), query
    if "state" in params:
        assert query["state"] == [params["state"]]


@pytest.mark.parametrize(
    "redirect",
    [
        "https://evil.example/callback",
        "http://127.0.0.1.evil.example:8080/callback",
        "http://127.0.0.1:8080@evil.example/callback",
        "http://127.0.0.1/callback",  # no port: not the loopback pattern
        "https://rp.example/cb",  # another client's
        "https://rp.example/cb/../evil",
    ],
)
def test_unregistered_redirect_uri_never_redirects(world: World, redirect: str) -> None:
    _verifier, challenge = _pkce()
    params = _authorize_params(challenge, redirect_uri=redirect)
    get = httpx.get(f"{world.issuer}/auth", params=params)
    assert get.status_code == 400 and "location" not in get.headers
    assert "redirect_uri" in get.text
    post = httpx.post(f"{world.issuer}/auth", data={**params, "identifier": world.rpps[0],
                                                     "password": "maison-test"})  # fmt: skip
    assert post.status_code == 400 and "location" not in post.headers


def test_wrong_password_and_unknown_professional_see_the_page_again(world: World) -> None:
    _verifier, challenge = _pkce()
    wrong = _sign_in(world, world.rpps[0], _authorize_params(challenge), password="nope")
    assert wrong.status_code == 401 and "location" not in wrong.headers
    assert "Mot de passe de test incorrect" in wrong.text
    unknown = _sign_in(world, "19999999999", _authorize_params(challenge))
    assert unknown.status_code == 403 and "location" not in unknown.headers
    assert "no professional 19999999999 in the Annuaire" in unescape(unknown.text)


def test_userinfo_refuses_bad_tokens(world: World) -> None:
    for header in ("", "Bearer", "Bearer abc.def.ghi", f"Bearer {world.server.mint()}"):
        answer = httpx.get(f"{world.issuer}/userinfo", headers={"Authorization": header})
        assert answer.status_code == 401, (header[:20], answer.text)


def test_inactive_professional_is_refused(world: World) -> None:
    gone = world.rpps[4]
    tokens = _tokens(world, gone)
    kept = [r for r in world.rows if r["Identifiant PP"] != gone]
    second = write_extraction(
        kept, world.extraction_dir / "x2.txt", generated_at=datetime(2026, 2, 1, 3, 0)
    )
    import_annuaire(world.server, second)
    _verifier, challenge = _pkce()
    answer = _sign_in(world, gone, _authorize_params(challenge))
    assert answer.status_code == 403 and "location" not in answer.headers
    assert "no longer active" in unescape(answer.text)
    info = httpx.get(
        f"{world.issuer}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 401 and info.json()["error"] == "invalid_token"


def test_public_client_never_gets_a_token_without_pkce_even_with_a_stray_secret(
    world: World,
) -> None:
    verifier, challenge = _pkce()
    code = _code(world, world.rpps[5], _authorize_params(challenge))
    _error(_exchange(world, code, verifier, client_secret="x"), 401, "invalid_client")


def test_no_token_value_in_the_server_log(world: World) -> None:
    assert len(world.issued) > 20
    log = world.server.log.read_text(errors="replace")
    assert "PSC sign-in of" in log  # the log is on
    leaked = [t[:12] for t in world.issued if t in log]
    assert leaked == []
    assert "maison-test" not in log


# --- the provider in process, with an injected clock (lifetimes) -------------------------------
class _Records:
    """In-memory ``store_meta``."""

    def __init__(self) -> None:
        self.facts: dict[str, str] = {}

    def get_meta(self, key: str) -> str | None:
        return self.facts.get(key)

    def set_meta(self, key: str, value: str) -> None:
        assert len(key) <= 64
        self.facts[key] = value

    def swap_meta(self, key: str, expected: str | None, value: str) -> str | None:
        current = self.facts.get(key)
        if current == expected:
            self.set_meta(key, value)
        return current


def _provider(now: list[float]) -> PscProvider:
    return PscProvider(
        ECKey.generate_key("P-256", private=True),
        "http://psc.test/psc",
        "http://platform.test",
        _Records(),
        clock=lambda: now[0],
    )


def _grant(provider: PscProvider) -> tuple[dict[str, str], AuthorizeRequest]:
    verifier, challenge = _pkce()
    request = provider.check_authorize(_authorize_params(challenge))
    code = provider.issue_code(request, "810000000001", "f:x:810000000001")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": "maison-dev", "code_verifier": verifier}  # fmt: skip
    return form, request


def test_lifetimes_are_those_of_psc() -> None:
    now = [1_800_000_000.0]
    provider = _provider(now)
    form, _request = _grant(provider)
    now[0] += 61  # codes live one minute
    with pytest.raises(OAuthError, match="expired"):
        provider.token(form, None)

    form, _request = _grant(provider)
    tokens = provider.token(form, None)
    assert tokens["expires_in"] == 120 and tokens["refresh_expires_in"] == 1800
    now[0] += 121  # the access token is over after 2 min
    with pytest.raises(OAuthError, match="expired"):
        provider.read_access_token(tokens["access_token"])
    now[0] += 1800  # the refresh token after 30 min (the session's idle limit)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
               "client_id": "maison-dev"}  # fmt: skip
    with pytest.raises(OAuthError, match="expired"):
        provider.token(refresh, None)

    form, _request = _grant(provider)
    signed_in = now[0]
    tokens = provider.token(form, None)
    refreshed = []
    for _ in range(12):  # refreshed every 29 min: the session still ends 4 h after sign-in
        now[0] += 29 * 60
        refresh["refresh_token"] = tokens["refresh_token"]
        try:
            tokens = provider.token(refresh, None)
        except OAuthError as error:
            assert error.error == "invalid_grant"
            break
        refreshed.append(now[0] - signed_in)
    assert refreshed and max(refreshed) <= 4 * 3600 < now[0] - signed_in


def test_artefacts_are_sealed_and_bound() -> None:
    now = [1_800_000_000.0]
    provider, other = _provider(now), _provider(now)
    form, _request = _grant(provider)
    assert "810000000001" not in form["code"]  # encrypted, not just signed
    with pytest.raises(OAuthError, match="invalid authorization code"):
        other.token(form, None)  # another provider's key
    tampered = {
        **form,
        "code": form["code"][:-4] + ("AAAA" if form["code"][-4:] != "AAAA" else "BBBB"),
    }
    with pytest.raises(OAuthError, match="invalid authorization code"):
        provider.token(tampered, None)
    assert provider.token(form, None)["token_type"] == "Bearer"
