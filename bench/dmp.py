"""DMP document sharing: ITI-65 feeding throughput, ITI-67 search at scale, ITI-68 retrieve.

Against ``maison serve`` (``--no-demo``) with the PDSm guides and the NOS value sets installed
(``maison ig install`` of FR Core, IHE MHD and the PDSm guide; ``maison terminology load`` of
the NOS CSV and JSON files of the shared folder, ``$MAISON_SHARED`` or ``../shared``):

1. Feeding: full PDSm Provide Document Bundles (SubmissionSet + DocumentReference + Binary, the
   PDF inline in base64) posted to ``/``, with 100 kB and 1 MB PDFs (random bytes behind a PDF
   header, so nothing compresses), 1 and 8 concurrent clients (threads, one keep-alive
   connection each), for qualified patients. Documents/s and MB/s (of PDF bytes) next to the
   raw disk measured in the same run: the same sizes written as files with fsync (file and
   folder) in the server's data folder, with the same concurrency. Target: ≥ 50% of the disk.
2. Retrieve [ITI-68]: a 10 MB document fed the same way, then ``GET /Binary/<id>`` (raw, the
   document's own content type) read whole, against a plain read of a 10 MB file in the same
   folder: from the page cache, and cold (each file evicted with ``posix_fadvise(DONTNEED)``
   before each read, which needs no root).
3. Search [ITI-67] at scale: ``--documents N`` DocumentReferences loaded in bulk through the
   store's own write path (``SqlStore.bulk_writers`` units of ``tx.create``, as the Annuaire
   importer writes), ``--per-patient`` each (default 20) for as many patients carrying an INS,
   with the metadata of DMP documents (type/class pairs of ASS_X16, format, confidentiality,
   dates, author, custodian, context) but without their Binaries. Then, for random patients,
   ``GET /DocumentReference?patient=Patient/<id>&status=current`` and
   ``?patient.identifier=<INS system>|<NIR>&status=current`` with one client: p50/p95/n.
   Target: p50 < 20 ms at 1,000,000 documents. The bulk load resumes on a kept store
   (``--data DIR`` or ``--pg-db NAME``): the patients already there are not written again.

Figures, not a test: nothing asserts a time.

    .venv/bin/python bench/dmp.py                                   # SQLite, ~3-4 minutes
    .venv/bin/python bench/dmp.py --documents 100000 --pg postgresql://maison@127.0.0.1:PORT/postgres
    .venv/bin/python bench/dmp.py --parts search --documents 1000000 --data /var/tmp/dmp-1m
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

import common

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from dmp_documents import document as dmp_document
from dmp_documents import provide_bundle
from maison.api.settings import DEFAULT_DATA, Settings
from maison.services.demo import synthetic
from maison.services.dmp.provide import DOCUMENT_PROFILE
from support import CORPORA, SHARED

MB = 1_000_000
GUIDES = ("hl7.fhir.fr.core", "IHE-ITI.MHD", "IG-fhir-partage-de-documents-de-sante")
INS_NIR = "urn:oid:1.2.250.1.213.1.4.10"
#: ids of the bulk-loaded patients: ``dmpbench-p<index>``, so a rerun finds where it stopped
BULK_PREFIX = "dmpbench-p"
CONFIDENTIALITY = (("N", 0.85), ("R", 0.1), ("V", 0.05))
Row = dict[str, Any]


# --------------------------------------------------------------------------- setup


def _workdir(server: common.Server) -> Path:
    assert server.log_path is not None
    return server.log_path.parent


def _state_dir(server: common.Server) -> Path:
    """The server's state folder: its data folder on SQLite, ``./maison-data`` beside it (the
    server's working folder) for a database URL. The blobs live in it."""
    settings = Settings(data=server.data)
    if settings.is_url:
        return (_workdir(server) / DEFAULT_DATA).resolve()
    return Path(server.data).resolve()


def _cli(args: argparse.Namespace, server: common.Server, *command: str) -> float:
    """Run ``maison <command> --data …`` in the server's working folder; its duration."""
    cmd = [*common.maison_command(args), *command, "--data", server.data]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=_workdir(server), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:2])} failed:\n{done.stdout[-1500:]}{done.stderr}")
    return time.perf_counter() - t0


def install_reference_data(args: argparse.Namespace, server: common.Server) -> Row:
    """The PDSm guides and the NOS value sets, as an operator installs them."""
    compiled = CORPORA / "compiled"
    guides = [compiled / g for g in GUIDES]
    nos = [*sorted((SHARED / "domain/data/nos").glob("*.csv"))]
    nos += sorted((CORPORA / "nos").glob("*.json"))
    missing = [p for p in [*guides, *nos[:1]] if not p.exists()]
    if missing or not nos:
        raise SystemExit(f"reference data not found under {SHARED} (set MAISON_SHARED)")
    with server.client() as client:
        known = client.get("/StructureDefinition", params={"url": DOCUMENT_PROFILE})
    installed = known.status_code == 200 and bool(known.json().get("entry"))
    # on a kept store the guides are there already (installing again reindexes the store)
    seconds = 0.0 if installed else sum(_cli(args, server, "ig", "install", str(g)) for g in guides)
    seconds_nos = _cli(args, server, "terminology", "load", *map(str, nos))
    time.sleep(1.5)  # every worker reloads the installed definitions within a second
    return {
        "guides": ", ".join(GUIDES),
        "guides_install_s": "already installed" if installed else round(seconds, 1),
        "nos_files": len(nos),
        "nos_load_s": round(seconds_nos, 1),
    }


def qualified_patients(server: common.Server, count: int, seed: int) -> list[str]:
    """``count`` new Patients with a qualified INS (the token declares the INSi call)."""
    refs: list[str] = []
    with server.client() as client:
        for n in range(count):
            index = 10**7 + seed * 1000 + n
            bundle = synthetic.patient_bundle(synthetic.bundle_rng(index, index), index)
            patient = bundle["entry"][0]["resource"]
            made = client.post("/Patient", content=orjson.dumps(patient))
            if made.status_code == 409:  # a kept store: the patient of an earlier run
                ins = next(i for i in patient["identifier"] if i["system"] == INS_NIR)
                made = client.get("/Patient", params={"identifier": f"{INS_NIR}|{ins['value']}"})
                entries = made.json().get("entry", []) if made.status_code == 200 else []
                if entries:
                    refs.append(f"Patient/{entries[0]['resource']['id']}")
                    continue
            if made.status_code != 201:
                raise SystemExit(f"POST /Patient: HTTP {made.status_code} {made.text[:500]}")
            refs.append(f"Patient/{made.json()['id']}")
    return refs


# --------------------------------------------------------------------------- raw disk


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raw_write(folder: Path, data: bytes) -> None:
    path = folder / f"raw-{uuid.uuid4().hex}"
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(folder)


def raw_write_speed(
    folder: Path, payloads: list[bytes], clients: int, min_seconds: float
) -> tuple[float, float]:
    """Write ``payloads`` as files with fsync (file + folder) over ``clients`` threads, all of
    them at least once and again until ``min_seconds`` have passed; (seconds, MB/s). The files
    are removed afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    state = {"next": 0, "bytes": 0}
    barrier = threading.Barrier(clients + 1)
    started = [0.0]

    def worker() -> None:
        barrier.wait()
        while True:
            with lock:
                i = state["next"]
                late = time.perf_counter() - started[0] >= min_seconds
                if i >= len(payloads) and late:
                    return
                state["next"] = i + 1
                data = payloads[i % len(payloads)]
                state["bytes"] += len(data)
            _raw_write(folder, data)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    started[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started[0]
    for path in folder.glob("raw-*"):
        path.unlink()
    return elapsed, state["bytes"] / elapsed / MB


# --------------------------------------------------------------------------- 1. feeding


def pdf_payload(size: int, rng: random.Random) -> bytes:
    """``size`` bytes that start like a PDF and do not compress (each one different)."""
    head = b"%PDF-1.4\n% maison bench " + uuid.UUID(int=rng.getrandbits(128)).hex.encode() + b"\n"
    tail = b"\n%%EOF\n"
    return head + rng.randbytes(size - len(head) - len(tail)) + tail


def feed_requests(
    patients: list[str], size: int, count: int, rng: random.Random
) -> tuple[list[tuple[str, str, bytes | None, int]], list[bytes]]:
    """``count`` serialised Provide Document Bundles of one ``size`` PDF each, round-robin over
    ``patients``; and the PDFs themselves (for the raw disk comparison)."""
    requests: list[tuple[str, str, bytes | None, int]] = []
    pdfs: list[bytes] = []
    for n in range(count):
        data = pdf_payload(size, rng)
        bundle = provide_bundle(patients[n % len(patients)], [data])
        requests.append(("POST", "/", orjson.dumps(bundle), 3))
        pdfs.append(data)
    return requests, pdfs


def feeding(
    server: common.Server, patients: list[str], args: argparse.Namespace, raw_dir: Path
) -> list[Row]:
    """ITI-65 documents/s and MB/s per (size, clients), next to the raw disk's MB/s."""
    rng = random.Random(args.seed)
    warm, _ = feed_requests(patients, 100_000, 8, rng)
    common.run_load(server, warm, 4, common.check_transaction)  # profiles, value sets, pools
    rows: list[Row] = []
    cells = [(label, size, count) for label, size, count in args.sizes]
    for label, size, count in cells:
        for clients in args.clients:
            requests, pdfs = feed_requests(patients, size, count, rng)
            body_mb = sum(len(r[2] or b"") for r in requests) / MB
            result = common.run_load(server, requests, clients, common.check_transaction)
            if result.errors:
                print(f"feeding {label} x{clients}: {result.first_errors}", file=sys.stderr)
            mb = result.ok * size / MB
            raw_s, raw_mbs = raw_write_speed(raw_dir, pdfs, clients, args.raw_seconds)
            feed_mbs = mb / result.elapsed
            rows.append(
                {
                    "pdf": label,
                    "clients": clients,
                    "documents": result.ok,
                    "errors": result.errors,
                    "seconds": round(result.elapsed, 2),
                    "documents_per_s": round(result.ok / result.elapsed, 1),
                    "MB_per_s (PDF bytes)": round(feed_mbs, 2),
                    "request MB/s (base64 bundles)": round(body_mb / result.elapsed, 2),
                    **{k: v for k, v in common.latency_summary(result.latencies).items()},
                    "raw disk MB/s (write+fsync)": round(raw_mbs, 2),
                    "raw disk seconds": round(raw_s, 2),
                    "feed / raw disk": f"{feed_mbs / raw_mbs:.0%}",
                }
            )
            del requests, pdfs
    return rows


# --------------------------------------------------------------------------- 2. retrieve


def _evict(path: Path) -> None:
    """Drop a file's pages from the page cache (no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _rate(runs: int, once: Callable[[], int], before: Callable[[], None]) -> tuple[float, float]:
    """(MB/s over ``runs`` calls of ``once``, p50 ms); ``before`` runs untimed before each."""
    seconds: list[float] = []
    moved = 0
    for _ in range(runs):
        before()
        t0 = time.perf_counter()
        moved += once()
        seconds.append(time.perf_counter() - t0)
    return moved / sum(seconds) / MB, common.percentile(seconds, 50) * 1000


def retrieve(
    server: common.Server, patient: str, args: argparse.Namespace, folder: Path, state: Path
) -> list[Row]:
    """ITI-68 of a 10 MB document against plain reads of a 10 MB file, warm and cold."""
    size = args.retrieve_mb * MB
    data = pdf_payload(size, random.Random(args.seed + 1))
    body = orjson.dumps(provide_bundle(patient, [data]))
    with server.client() as client:
        fed = client.post("/", content=body)
        if fed.status_code != 200:
            raise SystemExit(f"feeding the {args.retrieve_mb} MB document: {fed.text[:800]}")
        binary = fed.json()["entry"][2]["response"]["location"].split("/_history/")[0]
        blob_id = binary.rsplit("/", 1)[-1]
        blob_files = [p for p in (state / "blobs").rglob(f"{blob_id}*") if p.is_file()]
        folder.mkdir(parents=True, exist_ok=True)
        raw_path = folder / "raw-retrieve"
        raw_path.write_bytes(data)
        _evict(raw_path)

        def get() -> int:
            got = 0
            with client.stream("GET", f"/{binary}", headers={"Accept": "application/pdf"}) as r:
                if r.status_code != 200:
                    raise SystemExit(f"GET /{binary}: HTTP {r.status_code}")
                for chunk in r.iter_raw():
                    got += len(chunk)
            if got != size:
                raise SystemExit(f"GET /{binary}: {got:,} bytes, not {size:,}")
            return got

        def read_raw() -> int:
            with raw_path.open("rb") as f:
                return sum(len(p) for p in iter(lambda: f.read(1 << 20), b""))

        def cold_blob() -> None:
            for p in blob_files:
                _evict(p)

        get()  # warm the connection and the route
        rows: list[Row] = []
        for cache, blob_before, raw_before in (
            ("page cache (warm)", lambda: None, lambda: None),
            ("cold (fadvise DONTNEED)", cold_blob, lambda: _evict(raw_path)),
        ):
            api_mbs, api_ms = _rate(args.retrieve_runs, get, blob_before)
            raw_mbs, raw_ms = _rate(args.retrieve_runs, read_raw, raw_before)
            rows.append(
                {
                    "document": f"{args.retrieve_mb} MB PDF",
                    "cache": cache if blob_files else f"{cache}; blob file not found",
                    "runs": args.retrieve_runs,
                    "ITI-68 MB/s": round(api_mbs, 1),
                    "ITI-68 p50 ms": round(api_ms, 1),
                    "raw read MB/s": round(raw_mbs, 1),
                    "raw read p50 ms": round(raw_ms, 2),
                    "ITI-68 / raw read": f"{api_mbs / raw_mbs:.0%}",
                }
            )
        raw_path.unlink()
    return rows


# --------------------------------------------------------------------------- 3. bulk + search


def type_class_pairs() -> list[tuple[str, str]]:
    """(LOINC type, TRE_A03 class) pairs of the ASS_X16 correspondence of the DMP."""
    path = SHARED / "domain/data/nos/ASS_X16-CorrespondanceType-Classe-DMP.csv"
    with path.open(newline="", encoding="utf-8") as f:
        return [(r["type_code"], r["class_code"]) for r in csv.DictReader(f)]


def bulk_patient(index: int) -> dict[str, Any]:
    """A Patient with a valid test INS (NIR key), unique per ``index``: the NIR holds the sex,
    the year and month of birth and an order number (1-999), so each month takes 1,998."""
    sex = 1 + index % 2
    months = index // 1998
    birth = date(1935 + months // 12, months % 12 + 1, 1 + index % 28)
    nir = synthetic.make_nir(sex, birth, "75056", (index // 2) % 999 + 1)
    return {
        "resourceType": "Patient",
        "id": f"{BULK_PREFIX}{index}",
        "identifier": [{"use": "official", "system": INS_NIR, "value": nir}],
        "name": [{"use": "official", "family": f"BENCH{index % 5000}", "given": ["Alex"]}],
        "gender": "male" if sex == 1 else "female",
        "birthDate": birth.isoformat(),
    }


def bulk_document(
    patient: str, rng: random.Random, pairs: list[tuple[str, str]], now: datetime
) -> dict[str, Any]:
    """A DocumentReference shaped as the DMP stores it, its Binary left out."""
    type_code, class_code = rng.choice(pairs)
    label = rng.choices([c for c, _ in CONFIDENTIALITY], [w for _, w in CONFIDENTIALITY])[0]
    service = now - timedelta(days=rng.randint(0, 3650), minutes=rng.randint(0, 600))
    created = service + timedelta(hours=rng.randint(1, 72))
    size = int(rng.lognormvariate(11.5, 1.0))  # ~100 kB median, as PDFs of reports
    doc = dmp_document(
        patient,
        f"Binary/{uuid.uuid4()}",
        b"",
        type_code=type_code,
        class_code=class_code,
        label=label,
        service_start=service.isoformat(timespec="seconds"),
        title=f"Document {type_code}",
    )
    doc["date"] = created.isoformat(timespec="seconds")
    attachment = doc["content"][0]["attachment"]
    attachment.update(
        size=size,
        hash=base64.b64encode(rng.randbytes(20)).decode(),
        creation=doc["date"],
    )
    return doc


def _exists(client: httpx.Client, index: int) -> bool:
    r = client.get(f"/Patient/{BULK_PREFIX}{index}")
    return r.status_code == 200


def loaded_patients(client: httpx.Client) -> int:
    """How many bulk patients a kept store already holds (they are written in order)."""
    if not _exists(client, 0):
        return 0
    low, high = 0, 1
    while _exists(client, high):
        low, high = high, high * 2
    while high - low > 1:  # low exists, high does not
        mid = (low + high) // 2
        if _exists(client, mid):
            low = mid
        else:
            high = mid
    return high


def bulk_load(
    server: common.Server, state: Path, patients: int, per_patient: int, batch: int, seed: int
) -> Row:
    """Write ``patients`` x ``per_patient`` documents through the store's bulk writers."""
    from maison.api.services import build_services

    with server.client() as client:
        start = loaded_patients(client)
    row: Row = {"patients_before": start, "documents_before": start * per_patient}
    if start >= patients:
        return {**row, "load_s": 0.0, "documents_written": 0}
    services = build_services(Settings(data=server.data, state=str(state), demo=False))
    pairs = type_class_pairs()
    now = datetime(2026, 11, 1, 12, 0).astimezone()
    store = services.store
    written = 0
    t0 = time.perf_counter()
    last_report = t0
    try:
        store.check_keys("the state folder")
        services.refresh()  # the installed guides: their search parameters

        def unit(first: int, last: int) -> Callable[[Any], int]:
            rng = random.Random(seed * 1_000_003 + first)
            work: list[tuple[str, dict[str, Any]]] = []
            for index in range(first, last):
                patient = bulk_patient(index)
                work.append(("Patient", patient))
                ref = f"Patient/{patient['id']}"
                work += [
                    ("DocumentReference", bulk_document(ref, rng, pairs, now))
                    for _ in range(per_patient)
                ]

            def apply(tx: Any) -> int:
                for res_type, body in work:
                    res_id = body.pop("id", None) or str(uuid.uuid4())
                    tx.create(res_type, body, res_id, fresh=True)
                return len(work)

            return apply

        with store.bulk_writers(2) as lanes:
            pending: deque[Future[int]] = deque()
            step = max(1, batch // per_patient)
            for n, first in enumerate(range(start, patients, step)):
                last = min(patients, first + step)
                pending.append(lanes[n % len(lanes)](unit(first, last)))
                while len(pending) > len(lanes):
                    pending.popleft().result()
                    written += step * per_patient
                if time.perf_counter() - last_report > 10:
                    last_report = time.perf_counter()
                    rate = written / (last_report - t0)
                    print(
                        f"[bulk] {start * per_patient + written:,} documents, {rate:,.0f}/s",
                        file=sys.stderr,
                    )
            while pending:
                pending.popleft().result()
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        store.analyze()
        analyze_s = time.perf_counter() - t1
    finally:
        store.close()
    documents = (patients - start) * per_patient
    return {
        **row,
        "patients_written": patients - start,
        "documents_written": documents,
        "load_s": round(load_s, 1),
        "documents_per_s": round(documents / load_s, 0),
        "resources_per_s": round((documents + patients - start) / load_s, 0),
        "analyze_s": round(analyze_s, 1),
    }


def search(server: common.Server, patients: int, args: argparse.Namespace) -> list[Row]:
    """ITI-67 by patient reference and by the patient's INS, for random patients."""
    rng = random.Random(args.seed + 2)
    picks = [rng.randrange(patients) for _ in range(args.searches + 20)]
    kinds: list[tuple[str, Callable[[int], str]]] = [
        (
            "ITI-67 patient=Patient/<id>",
            lambda i: f"/DocumentReference?patient=Patient/{BULK_PREFIX}{i}&status=current",
        ),
        (
            "ITI-67 patient.identifier=<INS>",
            lambda i: (
                "/DocumentReference?patient.identifier="
                + f"{INS_NIR}|{bulk_patient(i)['identifier'][0]['value']}&status=current"
            ),
        ),
    ]
    rows: list[Row] = []
    with server.client() as client:
        for kind, url in kinds:
            seconds: list[float] = []
            matches: list[int] = []
            errors = 0
            began = time.perf_counter()
            stopped = ""
            for n, index in enumerate(picks):
                if time.perf_counter() - began > args.search_seconds:
                    stopped = f"stopped after {args.search_seconds:.0f} s"
                    break
                path = url(index)
                t0 = time.perf_counter()
                r = client.get(path)
                elapsed = time.perf_counter() - t0
                if r.status_code != 200:
                    errors += 1
                    if errors == 1:
                        print(f"{path}: HTTP {r.status_code} {r.text[:300]}", file=sys.stderr)
                    continue
                if n >= 20:  # the first 20 warm the connection and the caches
                    seconds.append(elapsed)
                    entries = orjson.loads(r.content).get("entry", [])
                    matches.append(
                        sum(1 for e in entries if e.get("search", {}).get("mode") != "include")
                    )
            rows.append(
                {
                    "query": kind,
                    "url (example)": url(picks[0]),
                    "n": len(seconds),
                    "errors": errors,
                    "matches (mean)": round(sum(matches) / max(1, len(matches)), 1),
                    "p50_ms": round(common.percentile(seconds, 50) * 1000, 2),
                    "p95_ms": round(common.percentile(seconds, 95) * 1000, 2),
                    "p99_ms": round(common.percentile(seconds, 99) * 1000, 2),
                    "target": "p50 < 20 ms at 1,000,000 documents",
                    "note": stopped,
                }
            )
    return rows


# --------------------------------------------------------------------------- main


def _sizes(text: str) -> list[tuple[str, int, int]]:
    """``100k:200,1M:60`` → [(label, bytes, documents)]."""
    out: list[tuple[str, int, int]] = []
    for part in text.split(","):
        label, _, count = part.partition(":")
        unit = {"k": 1000, "m": MB}[label[-1].lower()]
        out.append(
            (label.replace("k", " kB").replace("M", " MB"), int(label[:-1]) * unit, int(count))
        )
    return out


def _parts(text: str) -> set[str]:
    return common.parts(text, {"feed", "retrieve", "search"})


@contextlib.contextmanager
def one_store(args: argparse.Namespace) -> Iterator[None]:
    """Pin the store (a SQLite folder or a PostgreSQL database) for the whole run, so the
    server restarted after the bulk load finds it; remove it at the end unless kept."""
    kind = common.store_kind(args)
    if kind == "sqlite" and not args.data:
        folder = Path(tempfile.mkdtemp(prefix="maison-bench-dmp-"))
        args.data = str(folder / "data")
        try:
            yield
        finally:
            if args.keep:
                print(f"kept {args.data}", file=sys.stderr)
            else:
                shutil.rmtree(folder, ignore_errors=True)
    elif kind == "pg" and not args.pg_db:
        args.pg_db = f"maison_bench_dmp_{int(time.time())}_{os.getpid()}"
        try:
            yield
        finally:
            if args.keep:
                print(f"kept PostgreSQL database {args.pg_db}", file=sys.stderr)
            else:
                _drop_database(args.pg or common.DEFAULT_PG, args.pg_db)
    else:
        yield


def _drop_database(admin_url: str, name: str) -> None:
    """Drop the run's database and the server state folder kept beside it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(
        common._pg_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
    shutil.rmtree(Path(tempfile.gettempdir()) / f"maison-bench-state-{name}", ignore_errors=True)


def main() -> None:
    """Run the parts asked for and print one table each, then a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_server_options(parser)
    parser.add_argument("--parts", type=_parts, default=_parts("feed,retrieve,search"),
                        help="which parts to run: feed,retrieve,search")  # fmt: skip
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=_sizes("100k:300,1M:150"),
        help="PDF sizes and documents fed per cell, e.g. 100k:300,1M:150",
    )
    parser.add_argument("--clients", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8])
    parser.add_argument(
        "--raw-seconds", type=float, default=2.0, help="least time of each raw disk measure"
    )
    parser.add_argument("--retrieve-mb", type=int, default=10, help="size of the retrieved PDF")
    parser.add_argument("--retrieve-runs", type=int, default=10)
    parser.add_argument(
        "--documents",
        type=int,
        default=20_000,
        help="DocumentReferences in the store for the search part (bulk loaded, no Binary)",
    )
    parser.add_argument("--per-patient", type=int, default=20, help="documents per patient")
    parser.add_argument("--batch", type=int, default=500, help="documents per bulk transaction")
    parser.add_argument("--searches", type=int, default=500, help="timed searches per query")
    parser.add_argument(
        "--search-seconds", type=float, default=60.0, help="time budget of each search kind"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, metavar="FILE", help="append the rows as JSON")
    args = parser.parse_args()
    common.own_servers_only(parser, args)

    summary: Row = {"store": common.store_kind(args)}
    with one_store(args):
        with common.running_server(args, "dmp") as server:
            state = _state_dir(server)
            raw_dir = state / "bench-raw-disk"
            setup = install_reference_data(args, server)
            common.print_rows("setup: reference data", [setup], args.json)
            patients = qualified_patients(server, 8, args.seed)

            if "feed" in args.parts:
                rows = feeding(server, patients, args, raw_dir)
                title = "1. ITI-65 feeding vs raw disk write (target >= 50%)"
                common.print_rows(title, rows, args.json)
                for r in rows:
                    summary[f"feed {r['pdf']} x{r['clients']}"] = (
                        f"{r['documents_per_s']} doc/s, {r['MB_per_s (PDF bytes)']} MB/s "
                        f"= {r['feed / raw disk']} of disk"
                    )

            if "retrieve" in args.parts:
                rows = retrieve(server, patients[0], args, raw_dir, state)
                title = f"2. ITI-68 retrieve of {args.retrieve_mb} MB vs raw read"
                common.print_rows(title, rows, args.json)
                for r in rows:
                    summary[f"retrieve {r['cache']}"] = (
                        f"{r['ITI-68 MB/s']} MB/s = {r['ITI-68 / raw read']} of raw read"
                    )

            count = max(1, args.documents // args.per_patient)
            if "search" in args.parts:
                load = bulk_load(server, state, count, args.per_patient, args.batch, args.seed)
                load["note"] = "DocumentReference + Patient only: the Binaries are skipped"
                title = f"3a. bulk load to {count * args.per_patient:,} documents"
                common.print_rows(title, [load], args.json)
                summary["bulk load"] = (
                    f"{load['documents_written']:,} documents in {load['load_s']} s"
                )
            summary.update({f"server {k}": v for k, v in server.memory().items()})

        if "search" in args.parts:
            # a new server, as after an import: SQLite connections opened before the bulk
            # load's ANALYZE keep the statistics they loaded (seconds per search with them)
            with common.running_server(args, "dmp search") as server:
                rows = search(server, count, args)
            title = f"3b. ITI-67 at {count * args.per_patient:,} bulk documents, 1 client"
            common.print_rows(title, rows, args.json)
            for r in rows:
                summary[r["query"]] = f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms (n={r['n']})"
    common.print_rows("summary", [summary], args.json)


if __name__ == "__main__":
    main()
