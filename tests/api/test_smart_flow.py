"""The platform's SMART on FHIR authorization server, black box: a real server (two workers)
with a synthetic Annuaire and qualified patients with Mon espace santé accounts; fhirclient's
SMART flow (PKCE S256) as the app, httpx as the browser on the sign-in pages (Pro Santé
Connect through the local provider, patient sign-in with password and TOTP), and every token
used on the FHIR API.

https://hl7.org/fhir/smart-app-launch/app-launch.html
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pyotp
import pytest
import requests
from fhirclient.auth import FHIROAuth2Auth
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from maison.security.patient_accounts import ScryptParams
from maison.security.principal import Scope
from maison.services.annuaire.synth import synthesize, write_extraction
from maison.services.ins import reference
from maison.services.ins.accounts import patient_accounts
from servers import MAISON, LaunchedServer, backend_data, free_port, import_annuaire
from support import open_sql_store

REDIRECT = "http://127.0.0.1:53682/callback"  # the dev client's loopback redirect
CONF_REDIRECT = "https://app.example/cb"
CONF = "conf-app"
CONF_SECRET = "conf-" + "c" * 24
BACKEND = "backend-svc"
EXCHANGE = "introspector"
EXCHANGE_SECRET = "intro-" + "i" * 24
PASSWORD = "Correct-Horse-42"
RSA = RSAKey.generate_key(2048, private=True)
EC = ECKey.generate_key("P-384", private=True)
DEV = "maison-smart-dev"


@dataclass
class Person:
    ins: str
    patient: str
    totp: str  # the account's TOTP secret
    account: str
    steps: list[int] = field(default_factory=lambda: [-1, 0, 1])

    def code(self) -> str:
        """A TOTP code not used yet (each is accepted once)."""
        assert self.steps, "no TOTP code left for this account in this test run"
        return str(pyotp.TOTP(self.totp).at(time.time(), counter_offset=self.steps.pop()))


@dataclass
class World:
    server: LaunchedServer
    folder: Path
    single: list[str]  # RPPS of professionals with one activity
    several: list[str]  # RPPS of professionals with several
    patients: list[str]  # Patient ids (qualified, with an INS NIR), no account
    ins: dict[str, str]  # Patient id -> INS
    parent: Person  # represents `child`
    child: str
    alone: Person
    issued: list[str] = field(default_factory=list)
    confined: list[tuple[str, str]] = field(default_factory=list)  # patient tokens, patient

    @property
    def base(self) -> str:
        return str(self.server.base_url)

    def remember(self, *values: Any) -> None:
        self.issued.extend(v for v in values if isinstance(v, str) and v)


def _accounts_and_patients(data: str, state: Path) -> tuple[dict[str, str], Any]:
    from maison.fhir.definitions import default_definitions

    store = open_sql_store(data, state, default_definitions(), clock=False)
    identities = reference.synthesize(50, seed=secrets.randbelow(2**31), oid=reference.OID_NIR)
    ids: dict[str, str] = {}
    for _ in range(5):
        body = reference.to_patient(next(identities), "QUAL")
        stored = store.write(lambda tx, b=body: tx.create("Patient", b))
        ids[stored.id] = body["identifier"][0]["value"]
    accounts = patient_accounts(store, params=ScryptParams(log_n=10))
    pids = list(ids)
    parent = accounts.create(pids[0], PASSWORD)
    alone = accounts.create(pids[1], PASSWORD)
    accounts.add_representative(pids[2], parent.account.account_id, "tutelle", None)
    store.close()
    made = {
        "parent": Person(ids[pids[0]], pids[0], parent.totp_secret, parent.account.account_id),
        "alone": Person(ids[pids[1]], pids[1], alone.totp_secret, alone.account.account_id),
    }
    return ids, made


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("smart")
    rows = list(synthesize(60, 2026))
    (tmp / "rows.json").write_bytes(orjson.dumps(rows))
    extraction = write_extraction(rows, tmp / "x1.txt", generated_at=datetime(2026, 1, 1, 3, 0))
    clients = {
        CONF: {
            "redirect_uris": [CONF_REDIRECT],
            "secret": CONF_SECRET,
            "public": False,
            "scope": "openid fhirUser launch/patient offline_access patient/*.rs user/*.rs",
        },
        BACKEND: {
            "jwks": {"keys": [{**RSA.as_dict(private=False), "kid": "rsa-1"}]},
            "scope": "system/Patient.rs system/Observation.rs",
        },
    }
    env = {
        "MAISON_SMART_CLIENTS": orjson.dumps(clients).decode(),
        "MAISON_EXCHANGE_CLIENTS": orjson.dumps({EXCHANGE: {"secret": EXCHANGE_SECRET}}).decode(),
    }
    data = backend_data(backend, tmp)
    srv = LaunchedServer(data, tmp, free_port(), env=env, workers=2, log_level="info")
    srv.token = "unused"
    import_annuaire(srv, extraction)
    ids, people = _accounts_and_patients(data, tmp)
    srv.start()
    counts = Counter(r["Identifiant PP"] for r in rows if r["Type d'identifiant PP"] == "8")
    pids = list(ids)
    try:
        yield World(
            srv,
            tmp,
            [k for k, n in counts.items() if n == 1],
            [k for k, n in counts.items() if n > 1],
            pids[3:],
            ids,
            people["parent"],
            pids[2],
            people["alone"],
        )
    finally:
        srv.stop()


# --- the app: fhirclient -------------------------------------------------------------------
class _App:
    """What fhirclient's FHIROAuth2Auth needs of its FHIRServer: scope, launch, form POST."""

    def __init__(self, scope: str, launch: str | None = None) -> None:
        self.desired_scope = scope
        self.launch_token = launch
        self.session = requests.Session()

    def should_save_state(self) -> None:
        pass

    def post_as_form(self, url: str, formdata: dict[str, str], auth: Any = None) -> Any:
        res = self.session.post(url, data=formdata, auth=auth, timeout=30)
        res.raise_for_status()
        return res


def _smart(w: World, client: str = DEV, redirect: str = REDIRECT, **state: Any) -> FHIROAuth2Auth:
    conf = httpx.get(f"{w.base}/.well-known/smart-configuration").json()
    return FHIROAuth2Auth(
        state={
            "app_id": client,
            "aud": w.base,
            "authorize_uri": conf["authorization_endpoint"],
            "token_uri": conf["token_endpoint"],
            "redirect_uri": redirect,
            **state,
        }
    )


# --- the browser: httpx --------------------------------------------------------------------
def _flow(page: str) -> str:
    found = re.search(r'name=flow value="([^"]+)"', page)
    assert found, page
    return unescape(found[1])


def _hidden(page: str) -> dict[str, str]:
    return {
        unescape(n): unescape(v)
        for n, v in re.findall(r'<input type=hidden name="([^"]*)" value="([^"]*)">', page)
    }


def _psc_sign_in(browser: httpx.Client, location: str, rpps: str) -> httpx.Response:
    """Sign in on the local PSC provider's page, then follow its redirect back to /auth."""
    assert "/psc/auth?" in location, location
    page = browser.get(location)
    assert page.status_code == 200, page.text
    form = {**_hidden(page.text), "identifier": rpps, "password": "maison-test", "action": "ecps"}
    back = browser.post("/psc/auth", data=form)
    assert back.status_code == 302, back.text
    assert "/auth/psc/callback?" in back.headers["location"]
    return browser.get(back.headers["location"])


def _professional(
    w: World, url: str, rpps: str, ins: str | None = None, activity: str | None = None
) -> str:
    """Drive the pages from the authorize URL to the app's callback URL."""
    with httpx.Client(base_url=w.base, timeout=60) as browser:
        first = browser.get(url)
        if first.status_code == 200:  # the choice page: professional or patient
            assert "Pro Santé Connect" in first.text and "mon espace santé" in first.text
            first = browser.post(
                "/auth/authorize/choose", data={"flow": _flow(first.text), "who": "professional"}
            )
        assert first.status_code == 302, first.text
        answer = _psc_sign_in(browser, first.headers["location"], rpps)
        if activity is not None:
            assert answer.status_code == 200 and "Choisissez votre activité" in answer.text
            answer = browser.post(
                "/auth/authorize/activity", data={"flow": _flow(answer.text), "activity": activity}
            )
        if ins is not None:
            assert answer.status_code == 200 and "Choisissez le patient" in answer.text
            answer = browser.post(
                "/auth/authorize/pick-patient", data={"flow": _flow(answer.text), "ins": ins}
            )
        assert answer.status_code == 302, answer.text
        location: str = answer.headers["location"]
        return location


def _patient(w: World, url: str, who: Person, choice: str | None = None) -> str:
    with httpx.Client(base_url=w.base, timeout=60) as browser:
        page = browser.get(url)
        assert page.status_code == 200, page.text
        page = browser.post(
            "/auth/authorize/choose", data={"flow": _flow(page.text), "who": "patient"}
        )
        assert "Se connecter à mon espace santé" in page.text
        flow = _flow(page.text)
        wrong = browser.post(
            "/auth/authorize/patient",
            data={"flow": flow, "ins": who.ins, "password": "nope", "totp": ""},
        )
        assert wrong.status_code == 401 and "incorrect" in wrong.text
        answer = browser.post(
            "/auth/authorize/patient",
            data={"flow": flow, "ins": who.ins, "password": PASSWORD, "totp": who.code()},
        )
        if choice is not None:
            assert answer.status_code == 200, answer.text
            assert "Pour quel dossier agissez-vous" in answer.text
            answer = browser.post(
                "/auth/authorize/represent", data={"flow": _flow(answer.text), "choice": choice}
            )
        assert answer.status_code == 302, answer.text
        location: str = answer.headers["location"]
        return location


def _claims(w: World, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{w.base}/.well-known/jwks.json").json())
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


def _fhir(w: World, token: str, path: str) -> httpx.Response:
    return httpx.get(f"{w.base}/{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize_url(w: World, challenge: str, **over: str) -> str:
    params = {
        "response_type": "code",
        "client_id": DEV,
        "redirect_uri": REDIRECT,
        "scope": "openid fhirUser offline_access user/*.rs",
        "state": "st-1",
        "aud": w.base,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **over,
    }
    query = httpx.QueryParams({k: v for k, v in params.items() if v != "-"})
    return f"{w.base}/auth/authorize?{query}"


def _code(location: str) -> str:
    query = parse_qs(urlsplit(location).query)
    assert "code" in query, location
    return query["code"][0]


def _token(w: World, form: dict[str, str], auth: Any = None) -> httpx.Response:
    answer = httpx.post(f"{w.base}/auth/token", data=form, auth=auth, timeout=30)
    if answer.status_code == 200:
        body = answer.json()
        w.remember(body.get("access_token"), body.get("refresh_token"), body.get("id_token"))
    return answer


def _error(answer: httpx.Response, status: int, error: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error, answer.text


def _assertion(
    w: World,
    client: str = BACKEND,
    key: Any = RSA,
    alg: str = "RS384",
    kid: str = "rsa-1",
    **over: Any,
) -> str:
    claims = {
        "iss": client,
        "sub": client,
        "aud": f"{w.base}/auth/token",
        "exp": int(time.time()) + 240,
        "jti": secrets.token_urlsafe(16),
        **over,
    }
    return jwt.encode({"alg": alg, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def _backend(w: World, assertion: str, scope: str = "system/Patient.rs") -> httpx.Response:
    return _token(
        w,
        {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


# --- the tests ------------------------------------------------------------------------------
def test_smart_configuration_is_complete_and_agrees_with_discovery(world: World) -> None:
    conf = httpx.get(f"{world.base}/.well-known/smart-configuration").json()
    oidc = httpx.get(f"{world.base}/auth/.well-known/openid-configuration").json()
    assert conf["issuer"] == oidc["issuer"] == f"{world.base}/auth"
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "jwks_uri",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "scopes_supported",
        "code_challenge_methods_supported",
        "response_types_supported",
    ):
        assert conf[name] == oidc[name], name
    assert conf["authorization_endpoint"] == f"{world.base}/auth/authorize"
    assert conf["token_endpoint"] == f"{world.base}/auth/token"
    assert {"private_key_jwt", "client_secret_basic"} <= set(
        conf["token_endpoint_auth_methods_supported"]
    )
    assert {"RS384", "ES384"} <= set(conf["token_endpoint_auth_signing_alg_values_supported"])
    assert {
        "authorization_code",
        "client_credentials",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    } <= set(conf["grant_types_supported"])
    assert conf["code_challenge_methods_supported"] == ["S256"]
    assert {
        "launch-ehr",
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "context-ehr-patient",
        "context-standalone-patient",
        "sso-openid-connect",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
        "authorize-post",
    } <= set(conf["capabilities"])
    for route in ("authorization_endpoint", "revocation_endpoint"):  # they exist
        assert httpx.post(conf[route], data={}).status_code != 404


def test_professional_standalone_launch_with_fhirclient(world: World) -> None:
    auth = _smart(world)
    app = _App("launch/patient openid fhirUser offline_access user/*.rs patient/*.rs")
    url = auth.authorize_uri(app)
    assert parse_qs(urlsplit(url).query)["code_challenge_method"] == ["S256"]
    patient = world.patients[0]
    callback = _professional(world, url, world.several[0], world.ins[patient], activity="1")
    world.remember(_code(callback))
    context = auth.handle_callback(callback, app)  # state checked, code + verifier exchanged
    world.remember(auth.access_token, auth.refresh_token, context.get("id_token"))
    assert context["patient"] == patient and context["need_patient_banner"] is True
    claims = _claims(world, auth.access_token)
    assert claims["patient"] == patient and claims["fhirUser"].startswith("Practitioner/")
    assert claims["professional"]["activity"] == 1 and claims["exp"] - claims["iat"] == 300
    id_claims = _claims(world, context["id_token"])
    assert id_claims["aud"] == DEV and id_claims["fhirUser"] == claims["fhirUser"]

    read = _fhir(world, auth.access_token, f"Patient/{patient}")
    assert read.status_code == 200, read.text
    assert _fhir(world, auth.access_token, "Practitioner?_count=1").status_code == 200  # user/

    first_refresh = auth.refresh_token
    auth.reauthorize(app)  # fhirclient refreshes
    world.remember(auth.access_token, auth.refresh_token)
    assert auth.refresh_token != first_refresh
    assert _fhir(world, auth.access_token, f"Patient/{patient}").status_code == 200
    replay = _token(
        world, {"grant_type": "refresh_token", "refresh_token": first_refresh, "client_id": DEV}
    )
    _error(replay, 400, "invalid_grant")
    fresh = _token(
        world,
        {"grant_type": "refresh_token", "refresh_token": auth.refresh_token, "client_id": DEV},
    )
    _error(fresh, 400, "invalid_grant")  # the replay revoked the whole grant


def test_standalone_launch_refuses_an_unknown_ins(world: World) -> None:
    _verifier, challenge = _pkce()
    url = _authorize_url(world, challenge, scope="launch/patient patient/*.rs")
    with httpx.Client(base_url=world.base, timeout=60) as browser:
        page = browser.get(url)
        go = browser.post(
            "/auth/authorize/choose", data={"flow": _flow(page.text), "who": "professional"}
        )
        pick = _psc_sign_in(browser, go.headers["location"], world.single[0])
        assert "Choisissez le patient" in pick.text
        unknown = browser.post(
            "/auth/authorize/pick-patient",
            data={"flow": _flow(pick.text), "ins": "199999999999999"},
        )
        assert unknown.status_code == 404 and "location" not in unknown.headers
        assert "Aucun patient" in unknown.text


def test_ehr_launch(world: World) -> None:
    rpps, patient = world.single[1], world.patients[1]
    out = subprocess.run(
        [
            *MAISON,
            "token",
            "--data",
            world.server.data,
            "--state",
            str(world.server.state),
            "--rpps",
            rpps,
            "--scope",
            "user/*.rs",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    ehr_token = out.stdout.strip().splitlines()[-1]
    launched = httpx.post(
        f"{world.base}/auth/launch",
        json={"patient": patient},
        headers={"Authorization": f"Bearer {ehr_token}"},
    )
    assert launched.status_code == 201, launched.text
    launch = launched.json()["launch"]
    world.remember(launch)
    system = httpx.post(
        f"{world.base}/auth/launch",
        json={"patient": patient},
        headers={"Authorization": f"Bearer {world.server.mint()}"},
    )
    assert system.status_code == 403  # a system token is no professional
    missing = httpx.post(
        f"{world.base}/auth/launch",
        json={"patient": "nobody"},
        headers={"Authorization": f"Bearer {ehr_token}"},
    )
    assert missing.status_code == 404

    auth = _smart(world)
    app = _App("launch openid fhirUser patient/*.rs", launch=launch)
    callback = _professional(world, auth.authorize_uri(app), rpps)  # straight to PSC
    context = auth.handle_callback(callback, app)
    world.remember(auth.access_token, context.get("id_token"))
    assert context["patient"] == patient
    assert _fhir(world, auth.access_token, f"Patient/{patient}").status_code == 200
    world.confined.append((auth.access_token, patient))

    # a launch is used once, and only by the professional who created it
    again = httpx.get(auth.authorize_uri(_App("launch patient/*.rs", launch=launch)))
    assert again.status_code == 302 and "error=invalid_request" in again.headers["location"]
    launch2 = httpx.post(
        f"{world.base}/auth/launch",
        json={"patient": patient},
        headers={"Authorization": f"Bearer {ehr_token}"},
    ).json()["launch"]
    url = _smart(world).authorize_uri(_App("launch patient/*.rs", launch=launch2))
    with httpx.Client(base_url=world.base, timeout=60) as browser:
        go = browser.get(url)
        refused = _psc_sign_in(browser, go.headers["location"], world.single[2])
        assert refused.status_code == 403 and "autre professionnel" in unescape(refused.text)


def test_patient_acting_for_a_represented_person_with_a_confidential_app(world: World) -> None:
    auth = _smart(world, CONF, CONF_REDIRECT, app_secret=CONF_SECRET)
    app = _App("launch/patient openid fhirUser offline_access patient/*.rs user/*.rs")
    callback = _patient(world, auth.authorize_uri(app), world.parent, choice="0")
    context = auth.handle_callback(callback, app)  # client_secret_basic at the token endpoint
    world.remember(auth.access_token, auth.refresh_token, context.get("id_token"))
    claims = _claims(world, auth.access_token)
    assert context["patient"] == world.child == claims["patient"]
    assert claims["fhirUser"].startswith("RelatedPerson/")
    assert claims["representative"]["for"] == f"Patient/{world.child}"
    assert claims["representative"]["self"] == f"Patient/{world.parent.patient}"
    assert claims["representative"]["kind"] == "tutelle"
    assert "user/*.rs" not in claims["scope"].split() and "patient/*.rs" in claims["scope"]
    assert _fhir(world, auth.access_token, f"Patient/{world.child}").status_code == 200
    world.confined.append((auth.access_token, world.child))


def test_patient_own_record_with_the_dev_client(world: World) -> None:
    auth = _smart(world)
    app = _App("openid fhirUser patient/*.rs")
    context = auth.handle_callback(_patient(world, auth.authorize_uri(app), world.alone), app)
    world.remember(auth.access_token, context.get("id_token"))
    claims = _claims(world, auth.access_token)
    assert claims["patient"] == world.alone.patient and "representative" not in claims
    assert claims["fhirUser"] == f"Patient/{world.alone.patient}"
    assert claims["sub"] == world.alone.account
    assert _fhir(world, auth.access_token, f"Patient/{world.alone.patient}").status_code == 200
    world.confined.append((auth.access_token, world.alone.patient))


def _confined(world: World) -> list[tuple[str, str]]:
    """Patient-context tokens of this world (the flows of other tests may run in another
    worker under xdist: then one patient sign-in of its own)."""
    if not world.confined:
        auth = _smart(world)
        app = _App("openid fhirUser patient/*.rs user/*.rs")
        auth.handle_callback(_patient(world, auth.authorize_uri(app), world.alone), app)
        world.remember(auth.access_token)
        world.confined.append((auth.access_token, world.alone.patient))
    return world.confined


def test_patient_tokens_carry_their_patient_and_patient_scopes_only(world: World) -> None:
    for token, patient in _confined(world):
        claims = _claims(world, token)
        assert claims["patient"] == patient
        parsed = [Scope.parse(s) for s in claims["scope"].split()]
        resource = {p.context for p in parsed if p is not None}
        assert resource <= {"patient", "user"}  # user/ only for a professional
        if "professional" not in claims:
            assert resource == {"patient"}


def test_a_patient_token_cannot_read_another_patient(world: World) -> None:
    for token, patient in _confined(world):
        others = [
            p
            for p in [*world.patients, world.child, world.parent.patient, world.alone.patient]
            if p != patient
        ]
        for other in others:
            assert _fhir(world, token, f"Patient/{other}").status_code in (403, 404)


def test_backend_service_with_private_key_jwt(world: World) -> None:
    answer = _backend(world, _assertion(world), "system/Patient.rs system/Encounter.rs")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scope"] == "system/Patient.rs" and body["expires_in"] == 300
    assert "refresh_token" not in body
    search = _fhir(world, body["access_token"], "Patient?_count=2")
    assert search.status_code == 200 and search.json()["resourceType"] == "Bundle"
    assert _fhir(world, body["access_token"], "Practitioner?_count=1").status_code == 403

    # an ES384 backend registered with the CLI while the server runs
    jwks = world.folder / "ec-jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [{**EC.as_dict(private=False), "kid": "ec-1"}]}))
    subprocess.run(
        [
            MAISON[0],
            "-c",
            "from maison.cli.smart import smart_app; smart_app()",
            "register",
            "--client-id",
            "ec-svc",
            "--jwks",
            str(jwks),
            "--scope",
            "system/Observation.rs",
            "--data",
            world.server.data,
            "--state",
            str(world.server.state),
        ],
        check=True,
        capture_output=True,
    )
    ec = _backend(world, _assertion(world, "ec-svc", EC, "ES384", "ec-1"), "system/Observation.rs")
    assert ec.status_code == 200, ec.text


def test_client_assertion_attacks_are_refused(world: World) -> None:
    replayed = _assertion(world)
    assert _backend(world, replayed).status_code == 200
    _error(_backend(world, replayed), 401, "invalid_client")
    _error(_backend(world, _assertion(world, aud=f"{world.base}/psc/token")), 401, "invalid_client")
    _error(_backend(world, _assertion(world, exp=int(time.time()) - 120)), 401, "invalid_client")
    _error(_backend(world, _assertion(world, exp=int(time.time()) + 3600)), 401, "invalid_client")
    stranger = RSAKey.generate_key(2048, private=True)
    _error(_backend(world, _assertion(world, key=stranger)), 401, "invalid_client")
    part = [
        base64.urlsafe_b64encode(orjson.dumps(v)).rstrip(b"=").decode()
        for v in (
            {"alg": "none"},
            {
                "iss": BACKEND,
                "sub": BACKEND,
                "aud": f"{world.base}/auth/token",
                "exp": int(time.time()) + 60,
                "jti": "none-1",
            },
        )
    ]
    _error(_backend(world, f"{part[0]}.{part[1]}."), 401, "invalid_client")
    no_key = _token(
        world, {"grant_type": "client_credentials", "scope": "system/Patient.rs", "client_id": DEV}
    )
    _error(no_key, 401, "invalid_client")


def test_aud_must_be_this_fhir_server(world: World) -> None:
    _verifier, challenge = _pkce()
    for aud in ("https://other.example/fhir", "-"):
        answer = httpx.get(_authorize_url(world, challenge, aud=aud))
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith(REDIRECT + "?") and "code=" not in location
        assert parse_qs(urlsplit(location).query)["error"] == ["invalid_request"]


@pytest.mark.parametrize(
    "redirect",
    [
        "https://evil.example/callback",
        "http://127.0.0.1.evil.example:8080/callback",
        "http://127.0.0.1:8080@evil.example/callback",
        CONF_REDIRECT,
    ],
)
def test_unregistered_redirect_uri_is_a_page_never_a_redirect(world: World, redirect: str) -> None:
    _verifier, challenge = _pkce()
    url = _authorize_url(world, challenge, redirect_uri=redirect, aud="x")
    form = dict(httpx.URL(url).params)
    for answer in (httpx.get(url), httpx.post(f"{world.base}/auth/authorize", data=form)):
        assert answer.status_code == 400 and "location" not in answer.headers
        assert "redirect_uri" in answer.text and "Demande refusée" in answer.text


def test_replayed_code_revokes_and_wrong_verifier_is_refused(world: World) -> None:
    verifier, challenge = _pkce()
    location = _professional(world, _authorize_url(world, challenge), world.single[3])
    code = _code(location)
    world.remember(code)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": DEV,
        "code_verifier": _pkce()[0],
    }
    _error(_token(world, form), 400, "invalid_grant")  # wrong PKCE verifier
    _error(_token(world, {**form, "code_verifier": ""}), 400, "invalid_request")
    first = _token(world, {**form, "code_verifier": verifier})
    assert first.status_code == 200, first.text
    tokens = first.json()
    intro = httpx.post(
        f"{world.base}/auth/introspect",
        data={"token": tokens["access_token"]},
        auth=(EXCHANGE, EXCHANGE_SECRET),
    )
    assert intro.json()["active"] is True
    _error(_token(world, {**form, "code_verifier": verifier}), 400, "invalid_grant")  # replay
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": DEV,
    }
    _error(_token(world, refresh), 400, "invalid_grant")  # revoked with the replay
    intro = httpx.post(
        f"{world.base}/auth/introspect",
        data={"token": tokens["access_token"]},
        auth=(EXCHANGE, EXCHANGE_SECRET),
    )
    assert intro.json() == {"active": False}


def test_refresh_after_revocation_is_refused(world: World) -> None:
    verifier, challenge = _pkce()
    code = _code(_professional(world, _authorize_url(world, challenge), world.single[4]))
    tokens = _token(
        world,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": DEV,
            "code_verifier": verifier,
        },
    ).json()
    revoked = httpx.post(
        f"{world.base}/auth/revoke", data={"token": tokens["refresh_token"], "client_id": DEV}
    )
    assert revoked.status_code == 200
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": DEV,
    }
    _error(_token(world, refresh), 400, "invalid_grant")


def test_refresh_stops_once_the_professional_leaves_the_annuaire(world: World) -> None:
    gone = world.single[5]
    verifier, challenge = _pkce()
    code = _code(_professional(world, _authorize_url(world, challenge), gone))
    tokens = _token(
        world,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": DEV,
            "code_verifier": verifier,
        },
    ).json()
    rows = orjson.loads((world.folder / "rows.json").read_bytes())
    kept = [r for r in rows if r["Identifiant PP"] != gone]
    second = write_extraction(
        kept, world.folder / "x2.txt", generated_at=datetime(2026, 2, 1, 3, 0)
    )
    import_annuaire(world.server, second)
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": DEV,
    }
    answer = _token(world, refresh)
    _error(answer, 400, "invalid_grant")
    assert "professional refused" in answer.json()["error_description"]


def test_forms_are_single_use_and_bound_to_the_browser(world: World) -> None:
    _verifier, challenge = _pkce()
    with httpx.Client(base_url=world.base, timeout=30) as browser:
        url = _authorize_url(world, challenge)
        page = browser.post("/auth/authorize", data=dict(httpx.URL(url).params))  # authorize-post
        assert page.status_code == 200 and "script" not in page.text.lower()
        assert page.headers["x-frame-options"] == "DENY"
        flow = _flow(page.text)
        stolen = httpx.post(
            f"{world.base}/auth/authorize/choose", data={"flow": flow, "who": "patient"}
        )
        assert stolen.status_code == 400  # no cookie of this browser
        ok = browser.post("/auth/authorize/choose", data={"flow": flow, "who": "patient"})
        assert ok.status_code == 200
        twice = browser.post("/auth/authorize/choose", data={"flow": flow, "who": "patient"})
        assert twice.status_code == 400 and "expiré" in twice.text


def test_no_token_code_or_secret_in_the_server_log(world: World) -> None:
    _confined(world)  # at least one sign-in and one backend token in this world
    assert _backend(world, _assertion(world)).status_code == 200
    assert len(world.issued) >= 2
    log = world.server.log.read_text(errors="replace")
    assert "SMART" in log  # the log is on
    leaked = [t[:12] for t in world.issued if t in log]
    assert leaked == []
    for secret in (CONF_SECRET, PASSWORD, EXCHANGE_SECRET):
        assert secret not in log


def test_fhirclient_discovers_the_authorization_server_from_the_capability_statement(
    world: World,
) -> None:
    """The CapabilityStatement names the endpoints (SMART oauth-uris extension), so fhirclient
    finds them with no setup, and they are the smart-configuration's."""
    from fhirclient import client as fhir_client

    smart = fhir_client.FHIRClient(
        settings={"app_id": DEV, "api_base": world.base, "redirect_uri": REDIRECT}
    )
    smart.prepare()
    conf = httpx.get(f"{world.base}/.well-known/smart-configuration").json()
    auth = smart.server.auth
    assert auth is not None
    assert auth._authorize_uri == conf["authorization_endpoint"]
    assert auth._token_uri == conf["token_endpoint"]
