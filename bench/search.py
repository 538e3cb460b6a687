"""Search benchmark: the socle's typical FHIR searches over a large synthetic store.

Preloads the store (like reads.py) to --resources with French synthetic patients (~20 resources
each), then, for each query kind, prints p50/p95 with 1 client and throughput with --clients,
and the store's size per resource. Figures, not a test.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

import common
from reads import TYPES, count, preload

INS_TEST = "urn:oid:1.2.250.1.213.1.4.10"


def sample_patients(client: httpx.Client, n: int) -> list[dict[str, Any]]:
    """Some patients (id, INS, family, birthDate) to build queries from."""
    out: list[dict[str, Any]] = []
    url: str | None = f"/Patient?_count={min(n, 500)}&_sort=_id"
    while url and len(out) < n:
        page = client.get(url).json()
        for e in page.get("entry", []):
            p = e["resource"]
            ins = next(
                (i["value"] for i in p.get("identifier", []) if i.get("system") == INS_TEST), None
            )
            family = (p.get("name") or [{}])[0].get("family")
            if ins and family and p.get("birthDate"):
                out.append({"id": p["id"], "ins": ins, "family": family, "birth": p["birthDate"]})
        url = next(
            (link["url"] for link in page.get("link", []) if link["relation"] == "next"), None
        )
    return out


def queries(p: dict[str, Any]) -> dict[str, str]:
    """One query of each kind for one patient."""
    ins = f"{INS_TEST}|{p['ins']}"
    prefix = p["family"][:3]
    return {
        "patient by INS": f"/Patient?identifier={ins}",
        "family prefix + birthdate": f"/Patient?family={prefix}&birthdate={p['birth']}",
        "docs by patient INS+type+status, sorted, p1": (
            f"/DocumentReference?patient.identifier={ins}&status=current"
            "&type=http://loinc.org|11488-4,http://loinc.org|34133-9,http://loinc.org|11506-3"
            "&_sort=-date&_count=2"
        ),
        "docs ... page 5 (offset)": (
            f"/DocumentReference?patient.identifier={ins}&status=current&_sort=-date"
            "&_count=1&_offset=4"
        ),
        "obs by patient + code + date range": (
            f"/Observation?patient=Patient/{p['id']}&code=http://loinc.org|8867-4"
            "&date=ge2000-01-01&date=le2030-12-31"
        ),
        "_revinclude Encounter": f"/Patient?_id={p['id']}&_revinclude=Encounter:subject",
        "2-level chain": f"/Observation?encounter.subject.identifier={ins}",
    }


def measure(server: common.Server, urls: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """Latencies of the given URLs, cycled over ``clients`` threads for ``seconds``."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        i = slot
        with server.client() as c:
            while time.perf_counter() < deadline:
                url = urls[i % len(urls)]
                i += clients
                t0 = time.perf_counter()
                r = c.get(url)
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    if r.status_code != 200:
                        errors[0] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {
        "req/s": round(len(lat) / elapsed, 1),
        **common.latency_summary(lat),
        "errors": errors[0],
    }


WRK_SCRIPT = """
local urls = {%s}
local headers = {["Authorization"] = "Bearer %s", ["Accept"] = "application/fhir+json"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", urls[(i %% #urls) + 1], headers)
end
"""


def wrk_measure(
    server: common.Server, urls: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    """The same URLs cycled by wrk (C): the server's capacity without Python's client cost."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    quoted = [quote(u, safe="/?=&,:%$+") for u in urls]  # wrk sends the bytes as they are
    body = WRK_SCRIPT % (",".join(f'"{u}"' for u in quoted), server.token)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(body)
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, int(seconds))}s", "--latency", "-s", f.name]
    proc = subprocess.run([*cmd, server.base_url], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"wrk failed: {proc.stderr or proc.stdout}")
    out = proc.stdout
    Path(f.name).unlink()

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        return round(float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)], 2)

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "req/s": float(rate.group(1)) if rate else 0.0,
        "p50_ms": ms("50"),
        "p95_ms": ms("90"),  # wrk reports 50/75/90/99: p90 stands in for p95
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def store_size(data: str) -> dict[str, int]:
    """Bytes of the store (tables with their indexes) and of the search index tables alone."""
    sizes: dict[str, int] = {}
    if data.startswith("postgresql"):
        import psycopg

        url = data.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname = current_schema()"
            ).fetchall()
        sizes = {name: int(size) for name, size in rows}
    else:
        path = Path(data) / "maison.db"
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            owner = dict(
                conn.execute("SELECT name, coalesce(tbl_name, name) FROM sqlite_master").fetchall()
            )
            try:
                rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
            except sqlite3.OperationalError:  # dbstat not compiled in: the file as a whole
                return {"total": path.stat().st_size, "index": 0}
        finally:
            conn.close()
        for name, size in rows:
            table = owner.get(name, name)
            sizes[table] = sizes.get(table, 0) + int(size)
    index = sum(v for k, v in sizes.items() if k.startswith("idx_") or k.startswith("index_"))
    return {"total": sum(sizes.values()), "index": index}


def run_step(
    server: common.Server, args: argparse.Namespace, target: int, clients: list[int]
) -> list[dict[str, Any]]:
    """Preload to ``target`` resources, then time each query kind."""
    with server.client() as client:
        counts = {t: count(client, t) for t in TYPES}
    existing = sum(counts.values())
    if existing < target:
        print(f"store holds {existing}; preloading to {target}", file=sys.stderr)
        preload(server, target - existing, counts["Patient"], args.seed, args.load_clients)
    with server.client() as client:
        total = sum(count(client, t) for t in TYPES)
        patients = sample_patients(client, args.patients)
    random.Random(args.seed).shuffle(patients)
    per_kind: dict[str, list[str]] = {}
    for p in patients:
        for kind, url in queries(p).items():
            per_kind.setdefault(kind, []).append(url)
    size = store_size(server.data) if server.data != "(external)" else {}
    rows = []
    for kind, urls in per_kind.items():
        one = measure(server, urls, 1, args.seconds / 2)
        row: dict[str, Any] = {
            "query": kind,
            "resources": total,
            "p50_ms (1 client)": one["p50_ms"],
            "p95_ms (1 client)": one["p95_ms"],
        }
        errors = one["errors"]
        for n in clients:
            many = (wrk_measure if args.loadgen == "wrk" else measure)(
                server, urls, n, args.seconds
            )
            row[f"req/s ({n})"] = many["req/s"]
            row[f"p50_ms ({n})"] = many["p50_ms"]
            errors += many["errors"]
        row["errors"] = errors
        rows.append(row)
    if size:
        print(
            f"store at {total} resources: {size['total'] / total:,.0f} bytes per resource, "
            f"of which search index tables {size['index'] / total:,.0f} "
            f"({size['total'] / 2**20:,.0f} MiB in all)",
            file=sys.stderr,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Preload to each step, then time each query kind with 1 client and each --clients count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument(
        "--steps",
        default="",
        help="comma list of store sizes to measure at in turn (growth curve), e.g. "
        "100000,250000,500000,1000000; default: --resources only",
    )
    parser.add_argument("--clients", default="4,8", help="comma list of concurrent clients")
    parser.add_argument("--loadgen", choices=["httpx", "wrk"], default="httpx")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--patients", type=int, default=200, help="patients to draw queries from")
    parser.add_argument("--load-clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    common.add_server_options(parser)
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",") if s] or [args.resources]
    clients = [int(c) for c in args.clients.split(",") if c]

    failed = False
    with common.running_server(args, label="search") as server:
        for target in steps:
            rows = run_step(server, args, target, clients)
            common.print_rows(f"search over {rows[0]['resources']} resources", rows, args.json)
            failed = failed or any(r.get("errors") for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
