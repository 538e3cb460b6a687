"""The security table of issue 6, one row per attack, black box: a real server (the local Pro
Santé Connect provider, token exchange with certificate binding, the FHIR endpoint) over a
synthetic Annuaire. Each row is refused with a status, a reason a person understands
(OperationOutcome, OAuth error JSON or the provider's page) and, for a bearer token, an
RFC 6750 ``WWW-Authenticate`` challenge; the server log records the refusal (a line with
"refused", as the provider and the exchange write them) and never the token, code, verifier
or refresh token itself.

The rows reuse the helpers of ``test_psc_provider`` and ``test_token_exchange`` (their
``World`` views are built over this module's server) and the JWS forger of
``security/test_jwt_authenticator``.

https://www.rfc-editor.org/rfc/rfc6750#section-3 ·
https://www.rfc-editor.org/rfc/rfc9700 ·
https://www.rfc-editor.org/rfc/rfc8705#section-3
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from html import unescape
from typing import Any

import httpx
import orjson
import pytest
import test_psc_provider as psc
import test_token_exchange as tx

from maison.security import pki
from maison.security.issuer import LocalIssuer
from maison.services.annuaire.synth import synthesize, write_extraction
from maison.services.psc.provider import DEV_PASSWORD
from security.test_jwt_authenticator import b64, sign
from servers import LaunchedServer, backend_data, free_port, import_annuaire

FHIR_JSON = "application/fhir+json"


class RefusalNotLoggedError(AssertionError):
    """The refusal left no line in the server log (the issue wants each one logged)."""


@dataclass
class Worlds:
    """One server seen through the two existing test worlds, and the platform's own issuer."""

    psc: psc.World
    tx: tx.World
    platform: LocalIssuer

    @property
    def server(self) -> LaunchedServer:
        return self.psc.server

    @property
    def base(self) -> str:
        return self.server.base_url


@dataclass
class Attempt:
    """The refused request's answer and every secret value the row handled."""

    answer: httpx.Response
    secrets: list[str]


@dataclass(frozen=True)
class Removed:
    """A professional signed in, then dropped from the Annuaire by a re-import."""

    rpps: str
    psc_token: str


@pytest.fixture(scope="module")
def worlds(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worlds]:
    tmp = tmp_path_factory.mktemp("psc-security")
    rows = list(synthesize(60, 2026))
    first = write_extraction(rows, tmp / "x1.txt", generated_at=datetime(2026, 1, 1, 3, 0))
    authority = pki.init_authority(tmp / "pki")
    env = {
        "MAISON_EXCHANGE_CLIENTS": orjson.dumps({tx.CLIENT: {"secret": tx.SECRET}}).decode(),
        "MAISON_TRUST_CLIENT_CERT_HEADER": "1",
        "MAISON_EXCHANGE_CA_BUNDLE": str(tmp / "pki" / pki.CA_BUNDLE),
    }
    srv = LaunchedServer(backend_data(backend, tmp), tmp, free_port(), env=env, log_level="info")
    srv.token = "unused"  # tokens come from the PSC sign-in, the exchange or the issuer's key
    import_annuaire(srv, first)
    srv.start()
    counts = Counter(r["Identifiant PP"] for r in rows if r["Type d'identifiant PP"] == "8")
    single = [k for k, n in counts.items() if n == 1]
    several = [k for k, n in counts.items() if n > 1]
    platform = LocalIssuer.load_or_create(tmp / "keys", f"{srv.base_url}/auth")
    try:
        yield Worlds(
            psc.World(srv, tmp, rows, single),
            tx.World(srv, tmp, rows, single, several, authority),
            platform,
        )
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def removed(worlds: Worlds) -> Removed:
    """Sign in and exchange for a professional, then re-import the Annuaire without him."""
    gone = worlds.tx.single[-1]
    token = tx._psc_token(worlds.tx, gone)
    assert tx._exchange(worlds.tx, token).status_code == 200  # accepted while in the Annuaire
    kept = [r for r in worlds.tx.rows if r["Identifiant PP"] != gone]
    second = write_extraction(
        kept, worlds.tx.folder / "x2.txt", generated_at=datetime(2026, 2, 1, 3, 0)
    )
    import_annuaire(worlds.server, second)
    return Removed(gone, token)


# --- the attacks --------------------------------------------------------------------------
def _fhir(w: Worlds, token: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """A FHIR read with the token (and extra headers)."""
    return httpx.get(
        f"{w.base}/Practitioner",
        params={"_count": "1"},
        headers={"Authorization": f"Bearer {token}", "Accept": FHIR_JSON, **(headers or {})},
        timeout=30,
    )


def _platform_token(w: Worlds, **over: Any) -> str:
    """A platform access token signed with the platform's own key."""
    rpps = w.tx.single[0]
    return w.platform.mint(f"8{rpps}", ["user/Practitioner.rs"], w.base, **over)


def expired_token(w: Worlds) -> Attempt:
    token = _platform_token(w, lifetime_seconds=60, now=time.time() - 3600)
    return Attempt(_fhir(w, token), [token])


def other_issuer(w: Worlds) -> Attempt:
    # the platform's own key, another issuer: only the iss check stops it
    stranger = LocalIssuer.load_or_create(w.tx.folder / "keys", "https://other.example/auth")
    token = stranger.mint("810000000001", ["user/*.cruds"], w.base)
    return Attempt(_fhir(w, token), [token])


def psc_token_at_fhir(w: Worlds) -> Attempt:
    # a genuine PSC access token, audience the platform, presented straight to the FHIR API
    token = tx._psc_token(w.tx, w.tx.single[0])
    return Attempt(_fhir(w, token), [token])


def wrong_audience(w: Worlds) -> Attempt:
    token = w.platform.mint("810000000001", ["user/*.cruds"], "https://elsewhere.example")
    return Attempt(_fhir(w, token), [token])


def _forged(w: Worlds, alg: str, key: Any) -> str:
    now = int(time.time())
    claims = {"iss": f"{w.base}/auth", "aud": w.base, "sub": "mallory", "iat": now,
              "exp": now + 600, "scope": "system/*.cruds"}  # fmt: skip
    return sign({"alg": alg, "kid": w.platform.kid, "typ": "at+jwt"}, claims, key)


def alg_none(w: Worlds) -> Attempt:
    token = _forged(w, "none", None)
    return Attempt(_fhir(w, token), [token])


def hs256_with_public_key(w: Worlds) -> Attempt:
    # algorithm confusion (RFC 8725 §2.1): the published JWK as the HMAC secret
    public = httpx.get(f"{w.base}/.well-known/jwks.json").json()["keys"][0]
    token = _forged(w, "HS256", orjson.dumps(public))
    return Attempt(_fhir(w, token), [token])


def tampered_payload(w: Worlds) -> Attempt:
    head, payload, sig = _platform_token(w).split(".")
    claims = orjson.loads(_b64d(payload))
    claims["scope"] = "system/*.cruds"
    token = f"{head}.{b64(orjson.dumps(claims))}.{sig}"
    return Attempt(_fhir(w, token), [token])


def _b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _bound(w: Worlds) -> tuple[str, str]:
    """A PSC token and the platform token exchanged for it, bound to an organisation's
    certificate (RFC 8705)."""
    org = pki.issue_organisation(w.tx.authority.organisations, "Clinique", finess="750000001")
    subject = tx._psc_token(w.tx, w.tx.single[1])
    answer = tx._exchange(w.tx, subject, headers=tx._header(org.certificate))
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    assert tx._claims(w.tx, token)["cnf"]["x5t#S256"] == pki.x5t_s256(org.certificate)
    return subject, token


def bound_token_without_certificate(w: Worlds) -> Attempt:
    subject, token = _bound(w)
    return Attempt(_fhir(w, token), [subject, token])


def bound_token_with_another_certificate(w: Worlds) -> Attempt:
    subject, token = _bound(w)
    stranger = pki.issue_organisation(
        pki.create_intermediate(pki.create_root()), "Ailleurs", finess="750000002"
    )
    return Attempt(_fhir(w, token, tx._header(stranger.certificate)), [subject, token])


def exchange_with_an_untrusted_certificate(w: Worlds) -> Attempt:
    subject = tx._psc_token(w.tx, w.tx.single[1])
    stranger = pki.issue_organisation(
        pki.create_intermediate(pki.create_root()), "Ailleurs", finess="750000002"
    )
    return Attempt(tx._exchange(w.tx, subject, headers=tx._header(stranger.certificate)), [subject])


def exchange_alg_none_subject_token(w: Worlds) -> Attempt:
    good = tx._crafted(w.tx, w.tx.single[1])
    head = b64(orjson.dumps({"alg": "none", "typ": "at+jwt"}))
    token = f"{head}.{good.split('.')[1]}."
    return Attempt(tx._exchange(w.tx, token), [token, good])


def exchange_tampered_subject_token(w: Worlds) -> Attempt:
    good = tx._crafted(w.tx, w.tx.single[1])
    head, payload, sig = good.split(".")
    claims = orjson.loads(_b64d(payload))
    claims["SubjectNameID"] = f"8{w.tx.single[2]}"  # someone else
    token = f"{head}.{b64(orjson.dumps(claims))}.{sig}"
    return Attempt(tx._exchange(w.tx, token), [token, good])


def replayed_code(w: Worlds) -> Attempt:
    verifier, challenge = psc._pkce()
    code = psc._code(w.psc, w.psc.rpps[0], psc._authorize_params(challenge))
    first = psc._exchange(w.psc, code, verifier)
    assert first.status_code == 200, first.text
    body = first.json()
    again = psc._exchange(w.psc, code, verifier)
    return Attempt(again, [code, verifier, body["access_token"], body["refresh_token"]])


def missing_pkce_verifier(w: Worlds) -> Attempt:
    verifier, challenge = psc._pkce()
    code = psc._code(w.psc, w.psc.rpps[0], psc._authorize_params(challenge))
    return Attempt(psc._exchange(w.psc, code, "-"), [code, verifier])


def wrong_pkce_verifier(w: Worlds) -> Attempt:
    verifier, challenge = psc._pkce()
    code = psc._code(w.psc, w.psc.rpps[0], psc._authorize_params(challenge))
    wrong = psc._pkce()[0]
    return Attempt(psc._exchange(w.psc, code, wrong), [code, verifier, wrong])


def open_redirect_authorize(w: Worlds) -> Attempt:
    _verifier, challenge = psc._pkce()
    params = psc._authorize_params(challenge, redirect_uri="https://evil.example/callback")
    return Attempt(httpx.get(f"{w.psc.issuer}/auth", params=params), [])


def open_redirect_logout(w: Worlds) -> Attempt:
    tokens = psc._tokens(w.psc, w.psc.rpps[0])
    params = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "https://evil.example/",
    }
    answer = httpx.get(f"{w.psc.issuer}/logout", params=params)
    return Attempt(answer, [tokens["id_token"], tokens["access_token"], tokens["refresh_token"]])


def revoked_refresh_token(w: Worlds) -> Attempt:
    tokens = psc._tokens(w.psc, w.psc.rpps[0])
    rotated = psc._refresh(w.psc, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    newest = rotated.json()["refresh_token"]
    reused = psc._refresh(w.psc, tokens["refresh_token"])  # a stolen copy: revokes the family
    assert reused.status_code == 400, reused.text
    secrets = [tokens["access_token"], tokens["refresh_token"], newest]
    return Attempt(psc._refresh(w.psc, newest), secrets)


def refresh_token_after_logout(w: Worlds) -> Attempt:
    tokens = psc._tokens(w.psc, w.psc.rpps[0])
    bye = httpx.get(f"{w.psc.issuer}/logout", params={"id_token_hint": tokens["id_token"]})
    assert bye.status_code == 200, bye.text
    secrets = [tokens["id_token"], tokens["access_token"], tokens["refresh_token"]]
    return Attempt(psc._refresh(w.psc, tokens["refresh_token"]), secrets)


def userinfo_tampered_token(w: Worlds) -> Attempt:
    good = tx._psc_token(w.tx, w.tx.single[0])
    head, payload, sig = good.split(".")
    claims = orjson.loads(_b64d(payload))
    claims["SubjectNameID"] = f"8{w.tx.single[2]}"  # someone else
    token = f"{head}.{b64(orjson.dumps(claims))}.{sig}"
    answer = httpx.get(f"{w.psc.issuer}/userinfo", headers={"Authorization": f"Bearer {token}"})
    return Attempt(answer, [token, good])


def _removed(w: Worlds, request: pytest.FixtureRequest) -> Removed:
    found: Removed = request.getfixturevalue("removed")
    return found


def removed_professional_exchange(w: Worlds, request: pytest.FixtureRequest) -> Attempt:
    gone = _removed(w, request)
    return Attempt(tx._exchange(w.tx, gone.psc_token), [gone.psc_token])


def removed_professional_sign_in(w: Worlds, request: pytest.FixtureRequest) -> Attempt:
    gone = _removed(w, request)
    _verifier, challenge = psc._pkce()
    answer = psc._sign_in(w.psc, gone.rpps, psc._authorize_params(challenge))
    return Attempt(answer, [DEV_PASSWORD])


def removed_professional_userinfo(w: Worlds, request: pytest.FixtureRequest) -> Attempt:
    gone = _removed(w, request)
    answer = httpx.get(
        f"{w.psc.issuer}/userinfo", headers={"Authorization": f"Bearer {gone.psc_token}"}
    )
    return Attempt(answer, [gone.psc_token])


# --- the table ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """What a refusal must look like: status, answer kind, OAuth error, the reason's words,
    whether a Bearer challenge with ``error="invalid_token"`` is due."""

    attack: Callable[..., Attempt]
    status: int
    kind: str  # "outcome" (FHIR), "oauth" (RFC 6749 §5.2 JSON), "page" (the provider's HTML)
    reason: str
    error: str | None = None
    challenge: bool = False


TABLE: list[Any] = [
    # bearer tokens at the FHIR endpoint (RFC 6750 §3: 401, error="invalid_token")
    ("expired-token", Row(expired_token, 401, "outcome", "token expired at", challenge=True)),
    ("token-from-another-issuer", Row(other_issuer, 401, "outcome", "issuer mismatch",
                                      challenge=True)),
    ("psc-token-straight-to-fhir", Row(psc_token_at_fhir, 401, "outcome", "unknown signing key",
                                       challenge=True)),
    ("wrong-audience", Row(wrong_audience, 401, "outcome", "audience mismatch", challenge=True)),
    ("alg-none", Row(alg_none, 401, "outcome", "signing algorithm 'none' is not allowed",
                     challenge=True)),
    ("hs256-signed-with-the-public-key", Row(hs256_with_public_key, 401, "outcome",
                                             "signing algorithm 'HS256' is not allowed",
                                             challenge=True)),
    ("tampered-payload", Row(tampered_payload, 401, "outcome", "invalid token signature",
                             challenge=True)),
    # RFC 8705: a certificate-bound token at the FHIR endpoint, and the exchange's client cert
    ("bound-token-without-its-certificate", Row(bound_token_without_certificate, 401, "outcome",
                                                "bound to a client certificate (RFC 8705)",
                                                challenge=True)),
    ("bound-token-with-another-certificate", Row(bound_token_with_another_certificate, 401,
                                                 "outcome", "is not the one the access token is "
                                                 "bound to (RFC 8705)", challenge=True)),
    ("exchange-with-an-untrusted-certificate", Row(exchange_with_an_untrusted_certificate, 401,
                                                   "oauth", "client certificate refused",
                                                   "invalid_client")),
    # the PSC subject token at the token exchange (RFC 8693 §2.2.2: invalid_request)
    ("exchange-alg-none-subject-token", Row(exchange_alg_none_subject_token, 400, "oauth",
                                            "subject_token refused: signing algorithm 'none'",
                                            "invalid_request")),
    ("exchange-tampered-subject-token", Row(exchange_tampered_subject_token, 400, "oauth",
                                            "subject_token refused: invalid token signature",
                                            "invalid_request")),
    # the local provider's authorization code flow (RFC 6749 §5.2, RFC 7636 §4.6)
    ("replayed-authorization-code", Row(replayed_code, 400, "oauth",
                                        "authorization code already used", "invalid_grant")),
    ("missing-pkce-verifier", Row(missing_pkce_verifier, 400, "oauth",
                                  "code_verifier (PKCE) is required", "invalid_request")),
    ("wrong-pkce-verifier", Row(wrong_pkce_verifier, 400, "oauth",
                                "code_verifier does not match the code_challenge",
                                "invalid_grant")),
    ("open-redirect-in-redirect-uri", Row(open_redirect_authorize, 400, "page",
                                          "redirect_uri non enregistrée pour ce client")),
    ("open-redirect-after-logout", Row(open_redirect_logout, 400, "page",
                                       "post_logout_redirect_uri is not registered")),
    ("revoked-refresh-token", Row(revoked_refresh_token, 400, "oauth",
                                  "refresh token revoked or already used", "invalid_grant")),
    ("refresh-token-after-logout", Row(refresh_token_after_logout, 400, "oauth",
                                       "the session has ended (logout)", "invalid_grant")),
    ("userinfo-tampered-token", Row(userinfo_tampered_token, 401, "oauth",
                                    "token not issued by this provider", "invalid_token",
                                    challenge=True)),
    # a professional the Annuaire no longer lists (a re-import without him)
    ("removed-professional-token-exchange", Row(removed_professional_exchange, 400, "oauth",
                                                "no longer active in the Annuaire Santé",
                                                "invalid_grant")),
    ("removed-professional-sign-in", Row(removed_professional_sign_in, 403, "page",
                                         "no longer active in the Annuaire Santé")),
    ("removed-professional-userinfo", Row(removed_professional_userinfo, 401, "oauth",
                                          "no longer active in the Annuaire Santé",
                                          "invalid_token", challenge=True)),
]  # fmt: skip


@pytest.mark.parametrize("row", [pytest.param(r, id=i) for i, r in TABLE])
def test_refused_with_the_reason_and_logged_without_the_token(
    worlds: Worlds, request: pytest.FixtureRequest, row: Row
) -> None:
    log = worlds.server.log
    start = log.stat().st_size
    takes_request = row.attack.__code__.co_argcount == 2
    attempt = row.attack(worlds, request) if takes_request else row.attack(worlds)
    answer = attempt.answer
    assert answer.status_code == row.status, answer.text[:500]
    assert "location" not in answer.headers  # nothing sent back to a redirect URI

    challenge = answer.headers.get("www-authenticate", "")
    if row.challenge:  # RFC 6750 §3
        assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge, challenge
    elif row.status == 401:  # a client that failed to authenticate (RFC 6749 §5.2)
        assert challenge.startswith("Basic "), challenge
    else:
        assert not challenge.startswith("Bearer"), challenge

    ctype = answer.headers.get("content-type", "")
    if row.kind == "outcome":
        assert ctype.startswith(FHIR_JSON), ctype
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        issue = outcome["issue"][0]
        assert issue["severity"] == "error" and issue["code"] == "login", issue
        said = issue["diagnostics"]
    elif row.kind == "oauth":
        assert ctype.startswith("application/json"), ctype
        assert answer.headers["cache-control"] == "no-store"
        body = answer.json()
        assert body["error"] == row.error, body
        said = body["error_description"]
    else:
        assert ctype.startswith("text/html"), ctype
        said = unescape(answer.text)
    assert row.reason in said, said
    for secret in attempt.secrets:  # the answer never echoes a secret either
        assert secret not in answer.text

    whole = log.read_bytes()
    text, ours = whole.decode(errors="replace"), whole[start:].decode(errors="replace")
    leaked = [s[:12] + "…" for s in attempt.secrets if s and s in text]
    assert leaked == [], f"secret values in the server log: {leaked}"
    if "refused" not in ours:
        raise RefusalNotLoggedError(f"no refusal line in the server log for this request: {ours!r}")
