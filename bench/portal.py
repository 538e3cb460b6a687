"""Portal: a patient's document list at 500 documents, the professional's search, page weight.

Against ``maison serve`` with the demo data (the default), started by the bench:

1. Setup: a demo patient who has documents (found through the FHIR API), his portal account
   (``maison patient account create --ins … --password-stdin``: the TOTP secret it prints gives
   the one-time codes, computed with pyotp), and ``--documents`` (default 500) current
   DocumentReferences for him in all, the missing ones bulk loaded through the store's own write
   path (units of ``tx.create`` on ``SqlStore.bulk_writers``, as ``bench/dmp.py`` does): DMP
   metadata only (type/class pairs the demo names, confidentiality, dates over ten years, an
   author), no Binary. Then a new server, so that its connections read the statistics of the
   ANALYZE that follows the load.
2. Patient space: the patient signs in as a browser does (INS, password, one-time code through
   the authorization server's pages: ``tests/portal/flows.py``), then, with that session cookie,
   ``GET /portal/patient/`` is timed as an HTTP round trip on loopback (gzip on, the body read
   whole): the whole list, filtered by a category, filtered by a date range, the htmx partial
   (``HX-Request: true``) and one document's page. Target: list p50 < 150 ms at 500 documents.
   The full page also counts the accesses to the record since the patient last opened his
   history, from the last 100 AuditEvents of his trail, and each list view is itself audited:
   ``--prime`` (100) untimed views first fill that window, as for a patient who uses the portal;
   the row "history just read" opens ``/portal/patient/historique`` (untimed) before each timed
   view instead. Next to the latencies, the server's CPU time per request (user + system of its
   processes, from ``/proc``): on a shared machine it is the figure that does not depend on the
   other jobs.
3. Professional space: a médecin of the demo Annuaire signs in through the local Pro Santé
   Connect, searches the patient by INS and records the patient's oral consent through the
   dossier's form; then ``POST /portal/pro/recherche`` (CSRF token from the page; answered with a
   303) and ``GET /portal/pro/dossier`` are timed separately, one after the other.
4. Page weight in headless Chromium (``$MAISON_CHROMIUM`` or ``/usr/bin/chromium`` driven by
   Playwright, a new context per page so nothing is cached): the bytes transferred (Resource
   Timing ``transferSize``: HTML, CSS, JS, fonts, icons, the document's preview frame) for the
   front page, the document list and a document page (the signed-in pages get the session
   cookie). Target: < 500 kB each. Without Chromium or Playwright: "not measured".

``--profile DIR`` also records the server (``py-spy record --subprocesses``, collapsed stacks)
while the whole list is requested again, and prints the functions that take the time.

Figures, not a test: nothing asserts a time.

    .venv/bin/python bench/portal.py                          # SQLite + demo data, ~5 minutes
    .venv/bin/python bench/portal.py --profile /var/tmp/portal-profile
    .venv/bin/python bench/portal.py --pg postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from lxml import html as lxml_html

import common

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "portal"))

from flows import follow, forms, pro_sign_in, submit  # noqa: E402  (tests/portal)
from flows import patient_sign_in as _patient_sign_in  # noqa: E402

Row = dict[str, Any]
PASSWORD = "Correct-Horse-Battery-9"
DOCTOR = "10014606213"  # a médecin of the demo Annuaire (tests/portal/test_portal_professional.py)
INS_PREFIX = "urn:oid:1.2.250.1.213.1.4."
#: ids of the bulk-loaded documents: ``portalbench-<n>``, so a rerun on a kept store tops up
BULK_PREFIX = "portalbench-"
CONFIDENTIALITY = (("N", 0.85), ("R", 0.1), ("V", 0.05))
TARGET_LIST_MS = 150.0
TARGET_WEIGHT = 500_000
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_WEIGHT_JS = """() => [
    ...performance.getEntriesByType('navigation'),
    ...performance.getEntriesByType('resource'),
].map((e) => [e.name, e.initiatorType || 'navigation', e.transferSize || 0,
              e.encodedBodySize || 0, e.decodedBodySize || 0])"""


# --------------------------------------------------------------------------- store


@contextlib.contextmanager
def one_store(args: argparse.Namespace) -> Iterator[Path]:
    """A ``/var/tmp/bench-portal-*`` folder for everything temporary (the servers' working
    folders go there too), and the store pinned for the whole run (a SQLite folder in it, or a
    new PostgreSQL database), so the server restarted after the bulk load finds it. Removed at
    the end unless ``--keep``."""
    root = Path(tempfile.mkdtemp(prefix="bench-portal-", dir="/var/tmp"))
    old_tempdir = tempfile.tempdir
    tempfile.tempdir = str(root)  # common.running_server makes its working folders in it
    kind = common.store_kind(args)
    fresh_db = None
    if kind == "sqlite" and not args.data:
        args.data = str(root / "data")
    elif kind == "pg" and not args.pg_db:
        fresh_db = args.pg_db = f"maison_bench_portal_{int(time.time())}_{os.getpid()}"
    try:
        yield root
    finally:
        tempfile.tempdir = old_tempdir
        if fresh_db and not args.keep:
            _drop_database(args.pg or common.DEFAULT_PG, fresh_db)
        if args.keep:
            print(
                f"kept {root}" + (f" and database {fresh_db}" if fresh_db else ""), file=sys.stderr
            )
        else:
            shutil.rmtree(root, ignore_errors=True)


def _drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(
        common._pg_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _workdir(server: common.Server) -> Path:
    assert server.log_path is not None
    return server.log_path.parent


def _state_dir(server: common.Server) -> Path:
    """The state folder: the data folder on SQLite, ``./maison-data`` in the server's working
    folder for a database URL (keys, server.json)."""
    from maison.api.settings import DEFAULT_DATA, Settings

    settings = Settings(data=server.data)
    if settings.is_url:
        return (_workdir(server) / DEFAULT_DATA).resolve()
    return Path(server.data).resolve()


# --------------------------------------------------------------------------- setup


def demo_patient(server: common.Server) -> tuple[str, str]:
    """(id, INS) of a demo patient who has current documents."""
    with server.client() as api:
        docs = api.get("/DocumentReference", params={"status": "current", "_count": "1"})
        if docs.status_code != 200 or not docs.json().get("entry"):
            raise SystemExit(f"no demo document: HTTP {docs.status_code} {docs.text[:300]}")
        ref = docs.json()["entry"][0]["resource"]["subject"]["reference"]
        pid = ref.split("/")[-1]
        patient = api.get(f"/Patient/{pid}").json()
    ins = next(
        i["value"] for i in patient.get("identifier", []) if i["system"].startswith(INS_PREFIX)
    )
    return pid, ins


def patient_documents(server: common.Server, pid: str) -> list[dict[str, Any]]:
    """The patient's current DocumentReferences, as the API gives them to the platform."""
    out: list[dict[str, Any]] = []
    with server.client() as api:
        url: str | None = "/DocumentReference"
        params: dict[str, str] | None = {
            "patient": f"Patient/{pid}",
            "status": "current",
            "_count": "1000",
            "_elements": "id,date,context,category",
        }
        while url:
            r = api.get(url, params=params)
            if r.status_code != 200:
                raise SystemExit(f"GET {url}: HTTP {r.status_code} {r.text[:300]}")
            bundle = r.json()
            out += [
                e["resource"]
                for e in bundle.get("entry", [])
                if e.get("resource", {}).get("resourceType") == "DocumentReference"
            ]
            url = next(
                (ln["url"] for ln in bundle.get("link", []) if ln["relation"] == "next"), None
            )
            if url:
                parts = urlsplit(url)
                url, params = f"{parts.path}?{parts.query}", None
    return out


def bench_patient(args: argparse.Namespace, server: common.Server) -> tuple[str, str, str]:
    """(id, INS, TOTP secret) of the patient of the bench: a demo patient with documents whose
    portal account is opened here, or the one of an earlier run on a kept store (noted in the
    state folder: a secret is printed once)."""
    sidecar = _state_dir(server) / "bench-portal-account.json"
    if sidecar.exists():
        saved = orjson.loads(sidecar.read_bytes())
        return str(saved["patient"]), str(saved["ins"]), str(saved["secret"])
    pid, ins = demo_patient(server)
    cmd = [*common.maison_command(args), "patient", "account", "create", "--ins", ins]
    cmd += ["--password-stdin", "--data", server.data]
    done = subprocess.run(
        cmd,
        cwd=_workdir(server),
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"secret: (\S+)", done.stdout)
    if done.returncode != 0 or not found:
        raise SystemExit(f"patient account create failed:\n{done.stdout[-1500:]}{done.stderr}")
    sidecar.write_bytes(orjson.dumps({"patient": pid, "ins": ins, "secret": found.group(1)}))
    return pid, ins, found.group(1)


def bulk_document(
    patient: str, index: int, rng: random.Random, now: datetime
) -> tuple[str, dict[str, Any]]:
    """A current DocumentReference as the DMP stores it (PDSm shape, NOS codes with the labels
    the demo gives them), its Binary left out; (id, resource)."""
    from maison.services.demo import documents as demo

    pairs = [
        demo.CONSULTATION,
        demo.LAB_REPORT,
        demo.DISCHARGE_LETTER,
        demo.VACCINATIONS,
        demo.IMAGING_REPORT,
    ]
    type_code, class_code = rng.choice(pairs)
    label = rng.choices([c for c, _ in CONFIDENTIALITY], [w for _, w in CONFIDENTIALITY])[0]
    service = now - timedelta(days=rng.randint(0, 3650), minutes=rng.randint(0, 600))
    created = service + timedelta(hours=rng.randint(1, 72))
    doc = demo.document(
        patient,
        f"Binary/{uuid.UUID(int=rng.getrandbits(128))}",
        b"",
        type_code=type_code,
        class_code=class_code,
        label=label,
        service_start=service.isoformat(timespec="seconds"),
        title=demo.DISPLAYS.get(type_code, "Document"),
        master=f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}",
    )
    doc["date"] = created.isoformat(timespec="seconds")
    doc["author"] = [{"reference": "#author", "display": "Dr Alice MEDECIN"}]
    attachment = doc["content"][0]["attachment"]
    attachment.update(
        size=int(rng.lognormvariate(11.5, 1.0)),  # ~100 kB median, as PDF reports
        hash="AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        creation=doc["date"],
    )
    return f"{BULK_PREFIX}{index}", doc


def bulk_load(server: common.Server, pid: str, have: list[dict[str, Any]], target: int) -> Row:
    """Top the patient up to ``target`` current documents through the store's bulk writers."""
    from maison.api.services import build_services
    from maison.api.settings import Settings

    start = sum(1 for d in have if str(d.get("id", "")).startswith(BULK_PREFIX))
    missing = target - len(have)
    row: Row = {"documents_before": len(have), "documents_written": max(0, missing)}
    if missing <= 0:
        return {**row, "load_s": 0.0}
    services = build_services(Settings(data=server.data, state=str(_state_dir(server)), demo=False))
    store = services.store
    rng = random.Random(start)
    now = datetime(2026, 11, 1, 12, 0).astimezone()
    work = [bulk_document(f"Patient/{pid}", start + n, rng, now) for n in range(missing)]
    t0 = time.perf_counter()
    try:
        store.check_keys("the state folder")
        services.refresh()

        def unit(part: list[tuple[str, dict[str, Any]]]) -> Callable[[Any], int]:
            def apply(tx: Any) -> int:
                for res_id, body in part:
                    tx.create("DocumentReference", body, res_id, fresh=True)
                return len(part)

            return apply

        with store.bulk_writers(1) as lanes:
            for first in range(0, len(work), 250):
                lanes[0](unit(work[first : first + 250])).result()
        load_s = time.perf_counter() - t0
        store.analyze()
    finally:
        store.close()
    return {**row, "load_s": round(load_s, 2)}


# --------------------------------------------------------------------------- sign-in


def _csrf(page: str) -> str:
    for form in forms(page):
        for el in form.inputs:
            if el.get("name") == "csrf" and el.get("value"):
                return str(el.get("value"))
    raise SystemExit(f"no CSRF token in the page:\n{page[:1500]}")


def totp(secret: str, last: list[int]) -> str:
    """A one-time code of a step not used yet (each code is accepted once)."""
    import pyotp

    step = max(int(time.time() // 30), last[0] + 1)
    while step > int(time.time() // 30) + 1:
        time.sleep(0.5)
    last[0] = step
    return str(pyotp.TOTP(secret).at(step * 30))


def patient_session(base: str, ins: str, secret: str) -> dict[str, str]:
    """Sign the patient in as a browser does; the session's cookies. A code is accepted once:
    a code an earlier run on a kept store used is refused, so up to three steps are tried."""

    async def run(code: str) -> tuple[dict[str, str], str]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            page = await _patient_sign_in(c, ins, PASSWORD, code)
            if not str(page.url).endswith("/portal/patient/") or page.status_code != 200:
                return {}, f"{page.status_code} {page.url}\n{page.text[:2000]}"
            return dict(c.cookies.items()), ""

    last = [0]
    problem = ""
    for _ in range(3):
        cookies, problem = asyncio.run(run(totp(secret, last)))
        if cookies:
            return cookies
    raise SystemExit(f"patient sign-in failed: {problem}")


def pro_session(base: str, ins: str) -> tuple[dict[str, str], str]:
    """Sign the médecin in (Pro Santé Connect), find the patient, record his oral consent when
    the access is not granted yet; (cookies, how the access was obtained)."""

    async def run() -> tuple[dict[str, str], str]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            home = await pro_sign_in(c, DOCTOR)
            if not str(home.url).endswith("/portal/pro/"):
                raise SystemExit(f"professional sign-in failed: {home.url}\n{home.text[:2000]}")
            record = await submit(c, home, "/pro/recherche", {"ins": ins})
            how = "already authorized"
            if record.status_code == 200 and "non autorisé" in record.text:
                record = await submit(c, record, "/consentement")
                how = "oral consent, dossier form"
            if record.status_code != 200 or "autorisé</strong>" not in record.text:
                raise SystemExit(f"no access to the dossier:\n{record.text[:3000]}")
            if "non autorisé" in record.text:
                raise SystemExit(f"access still refused:\n{record.text[:3000]}")
            await follow(c, record)
            return dict(c.cookies.items()), how

    return asyncio.run(run())


def browser_client(base: str, cookies: dict[str, str]) -> httpx.Client:
    """One keep-alive connection carrying the session, as a browser tab (gzip accepted)."""
    return httpx.Client(
        base_url=base,
        cookies=cookies,
        timeout=60,
        headers={"Accept": "text/html", "Accept-Language": "fr-FR"},
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


# --------------------------------------------------------------------------- timing

#: CPU seconds used so far by the server's processes (None: an external server)
CpuClock = Callable[[], float]


def server_cpu(server: common.Server) -> CpuClock:
    """A clock of the CPU time (user + system) of the server's process tree, read from
    ``/proc/<pid>/stat``: on a shared machine it tells the server's own work apart from the
    time its requests wait for a core."""
    assert server.proc is not None
    root = server.proc.pid
    tick = os.sysconf("SC_CLK_TCK")

    def clock() -> float:
        total = 0
        for pid in common.process_tree(root):
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    return clock


def _links(page: str, part: str) -> list[str]:
    tree = lxml_html.fromstring(page)
    return [str(a.get("href")) for a in tree.xpath(f"//a[contains(@href, '{part}')]")]


def _total(page: str) -> int | None:
    found = re.search(r"<p>(\d+) documents?", page)
    return int(found.group(1)) if found else None


def timed_gets(
    client: httpx.Client,
    path: str,
    runs: int,
    warmup: int,
    cpu: CpuClock,
    headers: dict[str, str] | None = None,
    before: Callable[[], object] | None = None,
) -> tuple[list[float], httpx.Response, float]:
    """``runs`` timed GETs (after ``warmup`` untimed ones), each answer read whole and 200
    (``before`` runs untimed before each); the latencies, the last answer and the server's
    CPU seconds per timed request."""
    seconds: list[float] = []
    last: httpx.Response | None = None
    used = 0.0
    for n in range(warmup + runs):
        if before is not None:
            before()
        c0 = cpu()
        t0 = time.perf_counter()
        r = client.get(path, headers=headers)
        elapsed = time.perf_counter() - t0
        c1 = cpu()
        if r.status_code != 200:
            raise SystemExit(f"GET {path}: HTTP {r.status_code}\n{r.text[:2000]}")
        if n >= warmup:
            seconds.append(elapsed)
            used += c1 - c0
        last = r
    assert last is not None
    return seconds, last, used / max(1, runs)


def _figures(seconds: list[float], cpu_per_request: float) -> Row:
    return {
        "n": len(seconds),
        "p50_ms": round(common.percentile(seconds, 50) * 1000, 1),
        "p95_ms": round(common.percentile(seconds, 95) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "server CPU ms/req": round(cpu_per_request * 1000, 1),
    }


def patient_pages(
    base: str,
    cookies: dict[str, str],
    docs: list[dict[str, Any]],
    args: argparse.Namespace,
    cpu: CpuClock,
) -> tuple[list[Row], str]:
    """The patient's list (whole, by category, by dates, htmx partial) and a document page;
    rows, and the path of a demo document (with content) for the page weight."""
    categories = Counter(
        str(c.get("code"))
        for d in docs
        for cat in d.get("category") or []
        for c in (cat.get("coding") or [])[:1]
    )
    category = categories.most_common(1)[0][0] if categories else ""
    du, au = args.dates.split(":")
    in_range = sum(1 for d in docs if du <= str(d.get("date", ""))[:10] <= au)
    in_category = categories.get(category, 0)
    history = "/portal/patient/historique"
    kinds: list[tuple[str, str, dict[str, str] | None, int, str | None]] = [
        ("list, all documents", "/portal/patient/", None, len(docs), None),
        ("list, all, history just read", "/portal/patient/", None, len(docs), history),
        (
            f"list, category {category}",
            f"/portal/patient/?categorie={category}",
            None,
            in_category,
            None,
        ),
        (
            f"list, dates {du} to {au}",
            f"/portal/patient/?du={du}&au={au}",
            None,
            in_range,
            None,
        ),
        ("list, htmx partial", "/portal/patient/", {"HX-Request": "true"}, len(docs), None),
    ]
    # the first 200 by service date, as "newest first" means for the first page
    newest = sorted(
        docs,
        key=lambda d: str(((d.get("context") or {}).get("period") or {}).get("start") or ""),
        reverse=True,
    )
    rows: list[Row] = []
    with browser_client(base, cookies) as client:
        # each list view is audited (an AuditEvent naming every document listed) and the full
        # page counts the new accesses in the last 100 events of the trail: fill that window
        # first, as for a patient who uses the portal and has not opened his history since
        for _ in range(args.prime):
            client.get("/portal/patient/")
        first_links: list[str] = []
        for label, path, headers, expected, first in kinds:
            seconds, last, used = timed_gets(
                client,
                path,
                args.requests // 2 if first else args.requests,
                args.warmup,
                cpu,
                headers,
                (lambda page=first: client.get(page)) if first else None,
            )
            shown = _links(last.text, "/patient/documents/")
            if not first_links:
                first_links = shown
            rows.append(
                {
                    "page": label,
                    "url": path,
                    **_figures(seconds, used),
                    "target": f"p50 < {TARGET_LIST_MS:.0f} ms" if "all" in label else "",
                    "before each": f"GET {first}" if first else "",
                    "documents matching": expected,
                    "total shown": _total(last.text),
                    "rows shown": len(shown),
                    "HTML kB": round(len(last.content) / 1000, 1),
                    "gzip kB": round(last.num_bytes_downloaded / 1000, 1),
                }
            )
        shown_ids = {link.rsplit("/", 1)[-1] for link in first_links}
        first_page = {str(d["id"]) for d in newest[: len(shown_ids)]}
        rows[0]["rows are the newest"] = (
            "yes" if shown_ids == first_page else f"no ({len(shown_ids - first_page)} older)"
        )
        demo_docs = [d for d in docs if not str(d["id"]).startswith(BULK_PREFIX)]
        doc_path = f"/portal/patient/documents/{demo_docs[0]['id'] if demo_docs else docs[0]['id']}"
        seconds, last, used = timed_gets(client, doc_path, args.requests // 2, args.warmup, cpu)
        rows.append(
            {
                "page": "document page (demo PDF)",
                "url": doc_path,
                **_figures(seconds, used),
                "HTML kB": round(len(last.content) / 1000, 1),
            }
        )
    return rows, doc_path


def pro_pages(
    base: str, cookies: dict[str, str], ins: str, args: argparse.Namespace, cpu: CpuClock
) -> tuple[list[Row], str]:
    """``POST /portal/pro/recherche`` then ``GET /portal/pro/dossier``, timed apart."""
    posts: list[float] = []
    gets: list[float] = []
    cpu_posts = cpu_gets = 0.0
    with browser_client(base, cookies) as client:
        home = client.get("/portal/pro/")
        if home.status_code != 200:
            raise SystemExit(f"GET /portal/pro/: HTTP {home.status_code}")
        csrf = _csrf(home.text)
        last = home
        for n in range(args.warmup + args.searches):
            c0 = cpu()
            t0 = time.perf_counter()
            r = client.post("/portal/pro/recherche", data={"ins": ins, "csrf": csrf})
            t1 = time.perf_counter()
            c1 = cpu()
            if r.status_code != 303 or not r.headers.get("location", "").endswith("/pro/dossier"):
                raise SystemExit(
                    f"POST /portal/pro/recherche: HTTP {r.status_code}\n{r.text[:2000]}"
                )
            t2 = time.perf_counter()
            last = client.get(r.headers["location"])
            t3 = time.perf_counter()
            c2 = cpu()
            if last.status_code != 200:
                raise SystemExit(f"GET /portal/pro/dossier: HTTP {last.status_code}")
            if n >= args.warmup:
                posts.append(t1 - t0)
                gets.append(t3 - t2)
                cpu_posts += c1 - c0
                cpu_gets += c2 - c1
    shown = _links(last.text, "/dossier/documents/")
    authorized = "non autorisé" not in last.text
    rows = [
        {
            "page": "pro: POST /portal/pro/recherche",
            **_figures(posts, cpu_posts / len(posts)),
        },
        {
            "page": "pro: GET /portal/pro/dossier",
            **_figures(gets, cpu_gets / len(gets)),
            "pro access": "authorized" if authorized else "refused",
            "total shown": _total(last.text),
            "rows shown": len(shown),
            "HTML kB": round(len(last.content) / 1000, 1),
            "gzip kB": round(last.num_bytes_downloaded / 1000, 1),
        },
        {
            "page": "pro: search + dossier",
            **_figures(
                [a + b for a, b in zip(posts, gets, strict=True)],
                (cpu_posts + cpu_gets) / len(posts),
            ),
        },
    ]
    return rows, shown[0] if shown else ""


# --------------------------------------------------------------------------- page weight


def page_weights(base: str, pages: list[tuple[str, str, dict[str, str] | None]]) -> list[Row]:
    """Bytes transferred for each page in a fresh Chromium context (nothing cached)."""
    chromium = os.environ.get("MAISON_CHROMIUM") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        return [{"page": p, "bytes": f"not measured (no Playwright: {error})"} for p, _, _ in pages]
    if not (Path(chromium).is_file() and os.access(chromium, os.X_OK)):
        return [
            {"page": p, "bytes": f"not measured (no Chromium at {chromium})"} for p, _, _ in pages
        ]
    rows: list[Row] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
        try:
            for label, path, cookies in pages:
                context = browser.new_context(locale="fr-FR")
                if cookies:
                    context.add_cookies(
                        [{"name": k, "value": v, "url": base} for k, v in cookies.items()]
                    )
                page = context.new_page()
                response = page.goto(base + path, wait_until="load")
                if (
                    response is None
                    or not response.ok
                    or urlsplit(page.url).path != path.split("?")[0]
                ):
                    status = response.status if response is not None else "no response"
                    rows.append({"page": label, "bytes": f"not measured ({status}, {page.url})"})
                    context.close()
                    continue
                page.wait_for_load_state("networkidle")
                entries: list[list[Any]] = page.evaluate(_WEIGHT_JS)
                context.close()
                by_kind: Counter[str] = Counter()
                for name, initiator, transfer, _encoded, _decoded in entries:
                    kind = _kind(str(name), str(initiator))
                    by_kind[kind] += int(transfer)
                total = sum(by_kind.values())
                rows.append(
                    {
                        "page": label,
                        "url": path,
                        "requests": len(entries),
                        "bytes": total,
                        "kB": round(total / 1000, 1),
                        "target": f"< {TARGET_WEIGHT // 1000} kB",
                        **{f"{k} kB": round(v / 1000, 1) for k, v in sorted(by_kind.items())},
                    }
                )
        finally:
            browser.close()
    return rows


def _kind(url: str, initiator: str) -> str:
    path = urlsplit(url).path
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if initiator == "navigation":
        return "html"
    if suffix in ("woff", "woff2", "ttf", "otf"):
        return "fonts"
    if suffix in ("svg", "png", "ico", "jpg", "webp"):
        return "icons/images"
    if suffix == "css":
        return "css"
    if suffix in ("js", "mjs"):
        return "js"
    if initiator == "iframe":
        return "preview frame"
    return "other"


# --------------------------------------------------------------------------- profile


def profile_list(
    server: common.Server, base: str, cookies: dict[str, str], folder: Path, seconds: float
) -> list[Row]:
    """py-spy on the server's processes while the whole list is requested; the top costs."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if server.proc is None or py_spy is None:
        return [{"function": "not profiled (no py-spy or no server process)"}]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "portal-list.collapsed.txt"
    # blocking mode (the default): --nonblocking reads the stacks while they change and
    # credits the time to the wrong lines
    cmd = [py_spy, "record", "--subprocesses", "--pid", str(server.proc.pid), "--rate", "200"]
    cmd += ["--format", "raw", "-o", str(out)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(2.0)  # attach to every worker
    n = 0
    with browser_client(base, cookies) as client:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            client.get("/portal/patient/")
            n += 1
    spy.send_signal(signal.SIGINT)
    try:
        _, err = spy.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    if not out.exists():
        return [{"function": f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}"}]
    return summarize_collapsed(out, n)


#: Leaves of threads that wait (py-spy counts a wait on a lock or a pipe as activity).
IDLE_LEAVES = (
    "_loop (maison/store/sql.py:",  # the group-commit writer waiting for work
    "run (asyncio/runners.py",
    "_recv (multiprocessing/",
    "wait (threading.py",
    "get (queue.py",
    "select (selectors.py",
    "main (multiprocessing/resource_tracker.py",
)
#: Frames worth naming in the summary besides maison's own.
NAMED = ("json/decoder.py", "jinja2/environment.py", "do_execute (", "_compress_body (")


def summarize_collapsed(path: Path, requests: int, top: int = 24) -> list[Row]:
    """Shares of the busy samples (waits left out) that pass through each frame of maison (and
    JSON parsing, template rendering, SQL execution, gzip), then the frames that take the most
    time themselves."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            re.sub(r" \(.*?/(site-packages|src|python3\.\d+)/", " (", f) for f in stack.split(";")
        ]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames or frames[-1].startswith(IDLE_LEAVES):
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            if "(maison/" in frame or any(k in frame for k in NAMED):
                inclusive[frame] += count
    if not total:
        return [{"function": f"no busy sample in {path}"}]
    rows: list[Row] = [
        {
            "function": frame[:110],
            "inclusive %": round(100 * count / total, 1),
            "self %": round(100 * own.get(frame, 0) / total, 1),
        }
        for frame, count in inclusive.most_common(top)
    ]
    rows.append({"function": f"({total} busy samples, {requests} list requests, {path})"})
    for frame, count in own.most_common(12):
        rows.append({"function": f"self: {frame[:104]}", "self %": round(100 * count / total, 1)})
    return rows


# --------------------------------------------------------------------------- main


def _tree_state() -> str:
    """The commit measured, ``+changes`` when the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(REPO), "status", "--porcelain", "-uno"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head[:60]}{' +uncommitted changes' if dirty else ''}"


TIMING = ("page", "n", "p50_ms", "p95_ms", "max_ms", "server CPU ms/req", "target", "before each")
CONTENT = (
    "page",
    "documents matching",
    "total shown",
    "rows shown",
    "rows are the newest",
    "HTML kB",
    "gzip kB",
    "pro access",
)


def print_table(
    title: str, rows: list[Row], json_path: str | None, columns: tuple[str, ...] = ()
) -> None:
    """One line per row (the pages), one column per figure (``columns`` only, if given)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys and k != "url" and (not columns or k in columns)]
    if columns:
        keys = [k for k in columns if k in keys]
    for key in keys:
        table.add_column(escape(key), justify="left" if key in ("page", "function") else "right")
    for row in rows:
        table.add_row(*(escape(str(row.get(k, ""))) for k in keys))
    Console(width=max(160, shutil.get_terminal_size().columns)).print(table)
    if json_path:
        with open(json_path, "ab") as f:
            for row in rows:
                f.write(orjson.dumps({"benchmark": title, "at": time.time(), **row}) + b"\n")


def main() -> None:
    """Set up the patient, time his pages and the professional's, weigh the pages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_server_options(parser)
    parser.set_defaults(startup_timeout=300.0)  # the demo data load on first start
    parser.add_argument("--documents", type=int, default=500, help="the patient's documents")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per page")
    parser.add_argument("--searches", type=int, default=50, help="timed pro searches")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests first")
    parser.add_argument(
        "--prime",
        type=int,
        default=100,
        help="untimed list views before the timed ones (fills the audit window the list reads)",
    )
    parser.add_argument(
        "--dates", default="2024-01-01:2024-12-31", help="date filter of the list, DU:AU"
    )
    parser.add_argument("--no-weight", action="store_true", help="skip the Chromium part")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="also record the server with py-spy during --profile-seconds of list requests",
    )
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--json", default=None, metavar="FILE", help="append the rows as JSON")
    args = parser.parse_args()
    if args.url:
        parser.error("--url is not supported: the bench bulk loads the store and opens an account")

    summary: Row = {"store": common.store_kind(args), "tree": _tree_state()}
    load_before = os.getloadavg()[0]
    with one_store(args):
        with common.running_server(args, "portal setup") as server:
            pid, ins, secret = bench_patient(args, server)
            have = patient_documents(server, pid)
            load = bulk_load(server, pid, have, args.documents)
            setup = {"patient": f"Patient/{pid}", "ins": ins, **load}
        with common.running_server(args, "portal") as server:
            base = server.base_url
            docs = patient_documents(server, pid)
            setup["documents_now"] = len(docs)
            print_table("setup", [setup], args.json)
            cookies = patient_session(base, ins, secret)
            cpu = server_cpu(server)
            rows, doc_path = patient_pages(base, cookies, docs, args, cpu)
            pro_cookies, how = pro_session(base, ins)
            pro_rows, pro_doc = pro_pages(base, pro_cookies, ins, args, cpu)
            pro_rows[1]["pro access"] = f"{pro_rows[1]['pro access']} ({how})"
            timing = rows + pro_rows
            title = f"portal pages, patient with {len(docs)} documents, 1 client on loopback"
            print_table(title, timing, args.json, TIMING)
            print_table("what the pages showed", timing, None, CONTENT)
            if not args.no_weight:
                weights = page_weights(
                    base,
                    [
                        ("front page /portal/", "/portal/", None),
                        ("patient document list", "/portal/patient/", cookies),
                        ("patient document page", doc_path, cookies),
                        *([("pro dossier", "/portal/pro/dossier", pro_cookies)] if pro_doc else []),
                    ],
                )
                print_table(
                    "page weight, headless Chromium (bytes transferred)", weights, args.json
                )
                for w in weights:
                    summary[f"weight {w['page']}"] = (
                        f"{w['kB']} kB" if "kB" in w else str(w.get("bytes"))
                    )
            for r in timing:
                summary[r["page"]] = f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms"
            if args.profile:
                prof = profile_list(server, base, cookies, Path(args.profile), args.profile_seconds)
                print_table(
                    "where the list's time goes (py-spy, server processes)", prof, args.json
                )
            summary.update({f"server {k}": v for k, v in server.memory().items()})
    summary["load average (1 min) before / after"] = (
        f"{load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    common.print_rows("summary", [summary], args.json)


if __name__ == "__main__":
    main()
