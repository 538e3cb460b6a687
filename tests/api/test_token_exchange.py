"""Token exchange (RFC 8693) and introspection (RFC 7662), black box: a real server with the
local PSC provider and the ``/auth`` exchange routes, a synthetic Annuaire imported, a PSC
sign-in with PKCE driven by httpx, the exchanged token used on the FHIR API.

https://www.rfc-editor.org/rfc/rfc8693
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from maison.security import pki
from maison.security.issuer import KEY_FILE, LocalIssuer
from maison.services.annuaire.synth import synthesize, write_extraction
from maison.services.psc.exchange import (
    ACCESS_TOKEN_TYPE,
    GRANT_TYPE,
    certificate_from_header,
    exchange_clients,
)
from servers import LaunchedServer, backend_data, free_port, import_annuaire

REDIRECT = "http://127.0.0.1:53682/callback"
CLIENT = "dpi-clinique"
SECRET = "exchange-" + "s" * 24


@dataclass
class World:
    server: LaunchedServer
    folder: Path
    rows: list[dict[str, str]]
    single: list[str]  # RPPS of professionals with one Annuaire row
    several: list[str]  # RPPS of professionals with several rows
    authority: pki.Authority
    id_tokens: list[str] = field(default_factory=list)  # of the PSC sign-ins, newest last

    @property
    def base(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("exchange")
    rows = list(synthesize(60, 2026))
    first = write_extraction(rows, tmp / "x1.txt", generated_at=datetime(2026, 1, 1, 3, 0))
    authority = pki.init_authority(tmp / "pki")
    env = {
        "MAISON_EXCHANGE_CLIENTS": orjson.dumps({CLIENT: {"secret": SECRET}}).decode(),
        "MAISON_TRUST_CLIENT_CERT_HEADER": "1",
        "MAISON_EXCHANGE_CA_BUNDLE": str(tmp / "pki" / pki.CA_BUNDLE),
    }
    srv = LaunchedServer(backend_data(backend, tmp), tmp, free_port(), env=env)
    srv.token = "unused"
    import_annuaire(srv, first)
    srv.start()
    counts = Counter(r["Identifiant PP"] for r in rows if r["Type d'identifiant PP"] == "8")
    single = [k for k, n in counts.items() if n == 1]
    several = [k for k, n in counts.items() if n > 1]
    try:
        yield World(srv, tmp, rows, single, several, authority)
    finally:
        srv.stop()


# --- a PSC sign-in, by hand -----------------------------------------------------------------
def _psc_token(w: World, identifier: str) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code",
        "client_id": "maison-dev",
        "redirect_uri": REDIRECT,
        "scope": "openid scope_all",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
        "acr_values": "eidas1",
    }
    with httpx.Client(base_url=w.base, timeout=30) as c:
        page = c.get("/psc/auth", params=params)
        assert page.status_code == 200, page.text
        form = {
            unescape(n): unescape(v)
            for n, v in re.findall(r'<input type=hidden name="([^"]*)" value="([^"]*)">', page.text)
        }
        form.update(identifier=identifier, password="maison-test", action="password")
        answer = c.post("/psc/auth", data=form)
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        tokens = c.post(
            "/psc/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": "maison-dev",
                "code_verifier": verifier,
            },
        )
        assert tokens.status_code == 200, tokens.text
        w.id_tokens.append(tokens.json()["id_token"])
        token: str = tokens.json()["access_token"]
        return token


def _exchange(
    w: World,
    subject_token: str,
    scope: str = "user/Practitioner.rs",
    auth: tuple[str, str] | None = (CLIENT, SECRET),
    headers: dict[str, str] | None = None,
    **over: str,
) -> httpx.Response:
    form = {
        "grant_type": GRANT_TYPE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "scope": scope,
        **over,
    }
    return httpx.post(
        f"{w.base}/auth/token",
        data={k: v for k, v in form.items() if v != "-"},
        auth=auth,
        headers=headers,
        timeout=30,
    )


def _claims(w: World, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{w.base}/.well-known/jwks.json").json())
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


def _error(answer: httpx.Response, status: int, error: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error, answer.text
    assert answer.headers["cache-control"] == "no-store"
    description: str = body["error_description"]
    return description


def _psc_key(w: World) -> ECKey:
    path = w.server.state / "keys" / "psc" / KEY_FILE
    return ECKey.import_key(orjson.loads(path.read_bytes()))


def _crafted(w: World, rpps: str, **over: Any) -> str:
    """A PSC-shaped access token signed with the local provider's own key."""
    key = _psc_key(w)
    now = int(time.time())
    claims = {
        "iss": f"{w.base}/psc",
        "aud": w.base,
        "sub": f"f:test:8{rpps}",
        "SubjectNameID": f"8{rpps}",
        "scope": "openid scope_all",
        "acr": "eidas1",
        "iat": now - 10,
        "exp": now + 100,
        **over,
    }
    header = {"alg": "ES256", "kid": key.thumbprint(), "typ": "at+jwt"}
    return jwt.encode(header, claims, key, algorithms=["ES256"])


# --- the happy path -------------------------------------------------------------------------
def test_exchange_use_on_fhir_and_introspect(world: World) -> None:
    rpps = world.single[0]
    idnps = f"8{rpps}"
    psc = _psc_token(world, rpps)
    answer = _exchange(world, psc, "user/Practitioner.rs fhirUser")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "user/Practitioner.rs fhirUser"
    assert 0 < body["expires_in"] <= 120  # never beyond the PSC token (2 min)
    token = body["access_token"]
    claims = _claims(world, token)
    assert claims["iss"] == f"{world.base}/auth" and claims["aud"] == world.base
    assert claims["sub"] == idnps and claims["SubjectNameID"] == idnps
    assert claims["fhirUser"] == f"Practitioner/{idnps}"
    assert claims["acr"] == "eidas1"
    pro = claims["professional"]
    assert pro["idnps"] == idnps and pro["activity"] == 0
    assert pro["structure"] and set(pro["structure"]) <= {"finess", "siret", "rass"}
    assert pro["profession"]
    assert claims["client_id"] == CLIENT
    assert "cnf" not in claims
    assert claims["exp"] - claims["iat"] == body["expires_in"]

    with httpx.Client(
        base_url=world.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as fhir:
        found = fhir.get("/Practitioner", params={"_id": idnps})
        assert found.status_code == 200, found.text
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [idnps]
        write = fhir.post(
            "/Patient",
            content=orjson.dumps({"resourceType": "Patient", "name": [{"family": "X"}]}),
            headers={"content-type": "application/fhir+json"},
        )
        assert write.status_code == 403, write.text

    seen = httpx.post(
        f"{world.base}/auth/introspect", data={"token": token}, auth=(CLIENT, SECRET)
    ).json()
    assert seen["active"] is True
    assert seen["sub"] == idnps and seen["scope"] == body["scope"]
    assert seen["professional"] == claims["professional"]
    for bad in (psc, "not-a-token", ""):
        seen = httpx.post(
            f"{world.base}/auth/introspect", data={"token": bad}, auth=(CLIENT, SECRET)
        ).json()
        assert seen == {"active": False}
    refused = httpx.post(f"{world.base}/auth/introspect", data={"token": token})
    _error(refused, 401, "invalid_client")


# --- refusals ---------------------------------------------------------------------------------
def test_client_authentication(world: World) -> None:
    psc = _crafted(world, world.single[1])
    _error(_exchange(world, psc, auth=None), 401, "invalid_client")
    answer = _exchange(world, psc, auth=(CLIENT, "wrong-" + SECRET))
    _error(answer, 401, "invalid_client")
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert "public client" in _error(
        _exchange(world, psc, auth=("maison-dev", "")), 401, "invalid_client"
    )
    with pytest.raises(ValueError, match="public client"):
        exchange_clients(orjson.dumps({"maison-dev": {"secret": "x" * 20}}).decode())


def test_only_token_exchange_grant(world: World) -> None:
    psc = _crafted(world, world.single[1])
    answer = _exchange(world, psc, grant_type="client_credentials")  # a SMART grant
    _error(answer, 400, "unauthorized_client")  # …that this exchange client may not use
    _error(_exchange(world, psc, grant_type="password"), 400, "unsupported_grant_type")
    answer = _exchange(world, psc, subject_token_type="urn:ietf:params:oauth:token-type:id_token")
    _error(answer, 400, "invalid_request")


def test_subject_token_from_another_issuer(world: World) -> None:
    platform = LocalIssuer.load_or_create(world.server.state / "keys", f"{world.base}/auth")
    rpps = world.single[1]
    own = platform.mint(
        f"8{rpps}",
        ["user/Practitioner.rs"],
        world.base,
        60,
        {"SubjectNameID": f"8{rpps}", "acr": "eidas1"},
    )
    assert "subject_token refused" in _error(_exchange(world, own), 400, "invalid_request")


def test_expired_and_wrong_audience_subject_tokens(world: World) -> None:
    rpps = world.single[1]
    assert _exchange(world, _crafted(world, rpps)).status_code == 200
    now = int(time.time())
    expired = _crafted(world, rpps, iat=now - 300, exp=now - 5)
    assert "expired" in _error(_exchange(world, expired), 400, "invalid_request")
    other = _crafted(world, rpps, aud="https://elsewhere.example")
    assert "audience" in _error(_exchange(world, other), 400, "invalid_request")
    weak = _crafted(world, rpps, acr="eidas0")
    _error(_exchange(world, weak), 400, "invalid_grant")


def test_lifetime_never_beyond_the_subject_token(world: World) -> None:
    now = int(time.time())
    psc = _crafted(world, world.single[1], exp=now + 40)
    body = _exchange(world, psc).json()
    assert body["expires_in"] <= 40
    long = _crafted(world, world.single[1], exp=now + 3600)
    assert _exchange(world, long).json()["expires_in"] == 600


@pytest.mark.parametrize("scope", ["system/*.*", "patient/*.rs", "user/*.rs system/Patient.r"])
def test_scopes_beyond_a_professional(world: World, scope: str) -> None:
    psc = _crafted(world, world.single[1])
    description = _error(_exchange(world, psc, scope), 400, "invalid_scope")
    assert scope.split()[-1] in description


def test_several_activities_need_a_choice(world: World) -> None:
    rpps = world.several[0]
    psc = _psc_token(world, rpps)
    description = _error(_exchange(world, psc), 400, "invalid_request")
    assert "activities" in description and "0: " in description and "1: " in description
    chosen = _exchange(world, psc, activity="1")
    assert chosen.status_code == 200, chosen.text
    assert _claims(world, chosen.json()["access_token"])["professional"]["activity"] == 1
    _error(_exchange(world, psc, activity="99"), 400, "invalid_request")
    _error(_exchange(world, psc, activity="x"), 400, "invalid_request")


def test_unknown_professional(world: World) -> None:
    psc = _crafted(world, "99999999999")
    description = _error(_exchange(world, psc), 400, "invalid_grant")
    assert "(unknown)" in description


def test_subject_token_of_an_ended_psc_session(world: World) -> None:
    psc = _psc_token(world, world.single[3])
    assert _exchange(world, psc).status_code == 200
    bye = httpx.get(f"{world.base}/psc/logout", params={"id_token_hint": world.id_tokens[-1]})
    assert bye.status_code == 200, bye.text
    assert "session has ended" in _error(_exchange(world, psc), 400, "invalid_request")


# --- certificate binding (RFC 8705) ---------------------------------------------------------
def _header(cert: Any) -> dict[str, str]:
    return {"X-Client-Cert": quote(pki.certificate_pem(cert).decode())}


def test_certificate_bound_token(world: World) -> None:
    org = pki.issue_organisation(
        world.authority.organisations, "Clinique des Tests", finess="750000001"
    )
    psc = _crafted(world, world.single[1])
    answer = _exchange(world, psc, headers=_header(org.certificate))
    assert answer.status_code == 200, answer.text
    bound = answer.json()["access_token"]
    claims = _claims(world, bound)
    assert claims["cnf"] == {"x5t#S256": pki.x5t_s256(org.certificate)}

    stranger_ca = pki.create_intermediate(pki.create_root())
    stranger = pki.issue_organisation(stranger_ca, "Ailleurs", finess="750000002")
    # the FHIR endpoint takes the bound token only with its certificate (RFC 8705 §3)
    url = f"{world.base}/Practitioner?_id={claims['sub']}"
    with_cert = {"Authorization": f"Bearer {bound}", **_header(org.certificate)}
    r = httpx.get(url, headers=with_cert, timeout=30)
    assert r.status_code == 200 and r.json()["total"] == 1, r.text[:300]
    for headers in (
        {"Authorization": f"Bearer {bound}"},
        {"Authorization": f"Bearer {bound}", **_header(stranger.certificate)},
    ):
        r = httpx.get(url, headers=headers, timeout=30)
        assert r.status_code == 401, r.text[:300]
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "RFC 8705" in r.json()["issue"][0]["diagnostics"]
    description = _error(
        _exchange(world, psc, headers=_header(stranger.certificate)), 401, "invalid_client"
    )
    assert description.startswith("client certificate refused")
    garbage = _exchange(world, psc, headers={"X-Client-Cert": "not%20a%20certificate"})
    _error(garbage, 401, "invalid_client")


def test_certificate_header_ignored_unless_the_proxy_is_trusted(world: World) -> None:
    org = pki.issue_organisation(world.authority.organisations, "Clinique", finess="750000003")
    value = _header(org.certificate)["X-Client-Cert"]
    assert certificate_from_header(value, trusted=False) is None
    chain = certificate_from_header(value, trusted=True)
    assert chain is not None and chain[0] == org.certificate


# --- last: a re-import that makes a professional inactive -------------------------------------
def test_professional_made_inactive_by_a_reimport(world: World) -> None:
    gone = world.single[2]
    psc = _psc_token(world, gone)
    assert _exchange(world, psc).status_code == 200
    kept = [r for r in world.rows if r["Identifiant PP"] != gone]
    second = write_extraction(kept, world.folder / "x2.txt", generated_at=datetime(2026, 2, 1, 3))
    import_annuaire(world.server, second)
    description = _error(_exchange(world, psc), 400, "invalid_grant")
    assert "no longer active" in description and "(inactive)" in description
