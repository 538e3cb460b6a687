"""Pro Santé Connect benchmark: token validation overhead, the local provider's sign-in flow end
to end, and the token exchange (RFC 8693), each as p50/p95 over n samples.

1. In process, no I/O: ``JwtAuthenticator.authenticate`` on fresh ES256 tokens (every token
   new: the signature is checked) with the issuer's JWKS cached (``RemoteJwks`` already
   fetched), then ``CachingAuthenticator`` on fresh tokens (a miss) and on one token again
   (a hit). The issue's target: < 0.2 ms p50.
2. Over loopback HTTP against ``maison serve`` with the demo data (its synthetic Annuaire), one
   keep-alive client, requests interleaved round-robin: ``GET /healthz`` and ``GET /metadata``
   (no token), ``GET /Patient/<id>`` with the same token every time (a cache hit) and with a
   fresh token every time (validated in full); the differences are the overhead a token adds.
3. The sign-in flow on the local provider at ``/psc``: authorize (the page), the sign-in form
   POST (302 with the code), the token request (code + PKCE verifier), userinfo; each step and
   the whole flow.
4. The token exchange ``POST /auth/token`` (PSC access token → platform token), without and
   with an organisation certificate in ``X-Client-Cert`` (the chain is checked, the token bound).

Figures, not a test: nothing here asserts a time.

    .venv/bin/python bench/psc.py                      # SQLite, demo data
    .venv/bin/python bench/psc.py --runs 100 --requests 2000
    .venv/bin/python bench/psc.py --pg postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import orjson
from joserfc.jwk import ECKey

import common
from maison.api.settings import DEFAULT_DATA, Settings
from maison.security import pki
from maison.security.cache import CachingAuthenticator
from maison.security.issuer import LocalIssuer
from maison.security.jwks import RemoteJwks
from maison.security.tokens import JwtAuthenticator
from maison.services.psc.exchange import ACCESS_TOKEN_TYPE, GRANT_TYPE
from maison.services.psc.provider import DEV_CLIENT, DEV_PASSWORD

REDIRECT = "http://127.0.0.1:53682/callback"
CLIENT = "bench-exchange"
SECRET = "bench-" + "s" * 24
_HIDDEN = re.compile(r'<input type=hidden name="([^"]*)" value="([^"]*)">')

Row = dict[str, Any]


def _row(what: str, seconds: list[float], note: str = "") -> Row:
    """One line of the table: p50/p95 in milliseconds and n."""
    return {
        "measure": what,
        "p50_ms": round(common.percentile(seconds, 50) * 1000, 4),
        "p95_ms": round(common.percentile(seconds, 95) * 1000, 4),
        "n": len(seconds),
        "note": note,
    }


def _timed(calls: Iterable[Callable[[], object]]) -> list[float]:
    """The duration of each call, in seconds."""
    out: list[float] = []
    gc.collect()
    for call in calls:
        t0 = time.perf_counter_ns()
        call()
        out.append((time.perf_counter_ns() - t0) / 1e9)
    return out


# --------------------------------------------------------------------------- 1. in process


def in_process(iterations: int) -> list[Row]:
    """Validation of ES256 tokens with the JWKS cached, and the cache of validated tokens."""
    issuer = LocalIssuer(ECKey.generate_key("P-256", private=True), "https://bench.example/auth")
    audience = "https://bench.example"
    jwks = issuer.jwks()
    keys = RemoteJwks(jwks_uri="https://bench.example/jwks", http_get=lambda _url: jwks)
    plain = JwtAuthenticator(issuer.issuer_url, audience, keys)
    caching = CachingAuthenticator(plain)
    scopes = ["user/*.rs", "openid", "fhirUser"]
    extra = {"SubjectNameID": "810001234567", "fhirUser": "Practitioner/810001234567"}

    def fresh(n: int) -> list[str]:
        return [
            f"Bearer {issuer.mint('810001234567', scopes, audience, 600, extra)}" for _ in range(n)
        ]

    for header in fresh(50):  # warm up (imports, the JWKS fetch into the cache)
        caching.authenticate(header)
    first = fresh(iterations)
    validate = _timed([lambda h=h: plain.authenticate(h) for h in first])
    second = fresh(iterations)
    miss = _timed([lambda h=h: caching.authenticate(h) for h in second])
    one = second[0]
    hit = _timed([lambda: caching.authenticate(one)] * (iterations * 4))
    return [
        _row("JwtAuthenticator.authenticate, fresh ES256 token", validate, "target < 0.2 ms"),
        _row("CachingAuthenticator.authenticate, miss (fresh)", miss, "validate + remember"),
        _row("CachingAuthenticator.authenticate, hit (same)", hit, "sha256 + dict lookup"),
    ]


# --------------------------------------------------------------------------- 2. FHIR endpoint


def _claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(payload + "==="))
    return claims


def _issuer_key_folder(server: common.Server) -> Path:
    """Where ``maison serve`` keeps its issuer key (its state folder's ``keys``)."""
    workdir = server.log_path.parent if server.log_path else Path.cwd()
    settings = Settings(data=server.data)
    return (workdir / DEFAULT_DATA if settings.is_url else settings.state_dir) / "keys"


def fhir_endpoint(server: common.Server, n: int) -> list[Row]:
    """/healthz, /metadata, a Patient read with one token and with a fresh token each time."""
    assert server.token
    claims = _claims_of(server.token)
    issuer = LocalIssuer.load_or_create(_issuer_key_folder(server), str(claims["iss"]))
    tokens = [
        issuer.mint(str(claims["sub"]), str(claims["scope"]).split(), claims["aud"], 600)
        for _ in range(n)
    ]
    times: dict[str, list[float]] = {"healthz": [], "metadata": [], "same": [], "fresh": []}
    with server.client() as c:
        pid = c.get("/Patient", params={"_count": "1"}).json()["entry"][0]["resource"]["id"]
        path = f"/Patient/{pid}"
        plain = {"Accept": common.FHIR_JSON, "Authorization": ""}
        for _ in range(20):  # warm up
            c.get("/metadata", headers=plain)
            c.get(path)
        gc.collect()
        for token in tokens:
            for name, url, headers in (
                ("healthz", "/healthz", plain),
                ("metadata", "/metadata", plain),
                ("same", path, None),
                ("fresh", path, {"Authorization": f"Bearer {token}"}),
            ):
                t0 = time.perf_counter_ns()
                r = c.get(url, headers=headers)
                times[name].append((time.perf_counter_ns() - t0) / 1e9)
                if r.status_code != 200:
                    raise SystemExit(f"GET {url}: HTTP {r.status_code} {r.text[:300]}")
    p50 = {k: common.percentile(v, 50) * 1000 for k, v in times.items()}
    return [
        _row("GET /healthz (no token)", times["healthz"]),
        _row("GET /metadata (no token)", times["metadata"]),
        _row("GET /Patient/<id>, same token (cache hit)", times["same"]),
        _row("GET /Patient/<id>, fresh token (validated)", times["fresh"]),
        {
            "measure": "  difference of p50: fresh - same token",
            "p50_ms": round(p50["fresh"] - p50["same"], 4),
            "note": "full validation at the endpoint",
        },
        {
            "measure": "  difference of p50: Patient (same token) - /metadata",
            "p50_ms": round(p50["same"] - p50["metadata"], 4),
            "note": "token + read vs capability statement",
        },
    ]


# --------------------------------------------------------------------------- 3. sign-in flow


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_in(c: httpx.Client, identifier: str, steps: dict[str, list[float]] | None) -> str:
    """One authorization code flow with PKCE on the local provider; its access token."""

    def step(name: str, call: Callable[[], httpx.Response], status: int) -> httpx.Response:
        t0 = time.perf_counter_ns()
        r = call()
        if steps is not None:
            steps[name].append((time.perf_counter_ns() - t0) / 1e9)
        if r.status_code != status:
            raise SystemExit(f"sign-in, {name}: HTTP {r.status_code} {r.text[:300]}")
        return r

    verifier, challenge = _pkce()
    params = {
        "response_type": "code",
        "client_id": DEV_CLIENT,
        "redirect_uri": REDIRECT,
        "scope": "openid scope_all",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "acr_values": "eidas1",
    }
    page = step("authorize", lambda: c.get("/psc/auth", params=params), 200)
    form = {unescape(k): unescape(v) for k, v in _HIDDEN.findall(page.text)}
    form.update(identifier=identifier, password=DEV_PASSWORD, action="password")
    answer = step("sign-in POST", lambda: c.post("/psc/auth", data=form), 302)
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    grant = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": DEV_CLIENT,
        "code_verifier": verifier,
    }
    tokens = step("token", lambda: c.post("/psc/token", data=grant), 200).json()
    access: str = tokens["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    step("userinfo", lambda: c.get("/psc/userinfo", headers=bearer), 200)
    return access


def _professional(server: common.Server) -> str:
    """An active professional of the demo Annuaire (his IDNPS)."""
    with server.client() as c:
        found = c.get("/Practitioner", params={"active": "true", "_count": "1"}).json()
    entries = found.get("entry") or []
    if not entries:
        raise SystemExit("no active Practitioner: run with the demo data (no --no-demo)")
    return str(entries[0]["resource"]["id"])


def sign_in_flow(server: common.Server, identifier: str, runs: int) -> list[Row]:
    """The flow ``runs`` times, one browser-like keep-alive client."""
    steps: dict[str, list[float]] = {
        "authorize": [],
        "sign-in POST": [],
        "token": [],
        "userinfo": [],
    }
    total: list[float] = []
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        for _ in range(3):  # warm up
            sign_in(c, identifier, None)
        gc.collect()
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            sign_in(c, identifier, steps)
            total.append((time.perf_counter_ns() - t0) / 1e9)
    rows = [_row("sign-in flow end to end (4 requests)", total, f"professional {identifier}")]
    rows += [_row(f"  {name}", seconds) for name, seconds in steps.items()]
    return rows


# --------------------------------------------------------------------------- 4. token exchange


def token_exchange(
    server: common.Server, identifier: str, authority: pki.Authority, n: int
) -> list[Row]:
    """``POST /auth/token`` without and with a client certificate, interleaved."""
    org = pki.issue_organisation(authority.organisations, "Clinique du banc", finess="750000001")
    cert = {"X-Client-Cert": quote(pki.certificate_pem(org.certificate).decode())}
    times: dict[str, list[float]] = {"plain": [], "cert": []}
    auth = (CLIENT, SECRET)
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        subject, got_at = sign_in(c, identifier, None), time.monotonic()
        form = {
            "grant_type": GRANT_TYPE,
            "subject_token": subject,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "scope": "user/*.rs",
        }
        probe = c.post("/auth/token", data=form, auth=auth)
        if probe.status_code == 400 and "activit" in probe.json().get("error_description", ""):
            form["activity"] = "0"  # several activities: the first one
        for i in range(n + 5):
            if time.monotonic() - got_at > 90:  # a PSC access token lives 2 minutes
                subject, got_at = sign_in(c, identifier, None), time.monotonic()
                form["subject_token"] = subject
            for name, headers in (("plain", None), ("cert", cert)):
                t0 = time.perf_counter_ns()
                r = c.post("/auth/token", data=form, headers=headers, auth=auth)
                if i >= 5:  # the first five warm up
                    times[name].append((time.perf_counter_ns() - t0) / 1e9)
                if r.status_code != 200:
                    raise SystemExit(
                        f"token exchange ({name}): HTTP {r.status_code} {r.text[:300]}"
                    )
                if name == "cert" and "cnf" not in _claims_of(r.json()["access_token"]):
                    raise SystemExit("the exchanged token is not bound to the certificate")
    return [
        _row("token exchange, no client certificate", times["plain"]),
        _row("token exchange, X-Client-Cert (bound)", times["cert"], "chain check + cnf"),
    ]


# --------------------------------------------------------------------------- output


def print_table(title: str, rows: list[Row], json_path: str | None) -> None:
    """One line per measure (and JSON lines appended to ``json_path``)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("measure", "p50_ms", "p95_ms", "n", "note"):
        table.add_column(column, justify="left" if column in ("measure", "note") else "right")
    for row in rows:
        table.add_row(*(str(row.get(k, "")) for k in ("measure", "p50_ms", "p95_ms", "n", "note")))
    Console(width=140).print(table)
    if json_path:
        with open(json_path, "ab") as f:
            for row in rows:
                f.write(orjson.dumps({"benchmark": title, "at": time.time(), **row}) + b"\n")


def main(argv: list[str] | None = None) -> int:
    """Measure in process, then against a server with the local provider and the exchange."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000, help="in-process validations")
    parser.add_argument("--requests", type=int, default=1000, help="FHIR reads per kind")
    parser.add_argument("--runs", type=int, default=50, help="sign-in flows")
    parser.add_argument("--exchanges", type=int, default=200, help="token exchanges per kind")
    parser.add_argument("--json", default=None)
    common.add_server_options(parser)
    args = parser.parse_args(argv)
    if args.url:
        raise SystemExit("bench/psc.py configures the server's exchange clients: not on --url")
    if "--no-demo" in args.server_args:
        raise SystemExit("bench/psc.py signs in a professional of the demo Annuaire")

    rows = in_process(args.iterations)
    folder = Path(tempfile.mkdtemp(prefix="maison-psc-bench-"))
    try:
        authority = pki.init_authority(folder / "pki")
        os.environ.update(  # read by the server the benchmark starts
            MAISON_EXCHANGE_CLIENTS=orjson.dumps({CLIENT: {"secret": SECRET}}).decode(),
            MAISON_TRUST_CLIENT_CERT_HEADER="1",
            MAISON_EXCHANGE_CA_BUNDLE=str(folder / "pki" / pki.CA_BUNDLE),
        )
        with common.running_server(args, label="psc") as server:
            rows += fhir_endpoint(server, args.requests)
            identifier = _professional(server)
            rows += sign_in_flow(server, identifier, args.runs)
            rows += token_exchange(server, identifier, authority, args.exchanges)
            memory = server.memory()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print_table(f"Pro Santé Connect ({common.store_kind(args)})", rows, args.json)
    print(f"server peak RSS: {memory.get('peak_rss_mib')} MiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
