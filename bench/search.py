"""Search benchmark: the socle's typical FHIR searches over a large synthetic store.

Preloads the store (like reads.py) to --resources with French synthetic patients (~20 resources
each), then, for each query kind, prints p50/p95 with 1 client and throughput with --clients,
and the store's size per resource. Figures, not a test.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from typing import Any

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


def main(argv: list[str] | None = None) -> int:
    """Preload if needed, then time each query kind with 1 and --clients clients."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--patients", type=int, default=200, help="patients to draw queries from")
    parser.add_argument("--load-clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    common.add_server_options(parser)
    args = parser.parse_args(argv)

    with common.running_server(args, label="search") as server:
        with server.client() as client:
            counts = {t: count(client, t) for t in TYPES}
        existing = sum(counts.values())
        if existing < args.resources:
            print(f"store holds {existing}; preloading to {args.resources}", file=sys.stderr)
            preload(
                server, args.resources - existing, counts["Patient"], args.seed, args.load_clients
            )
        with server.client() as client:
            total = sum(count(client, t) for t in TYPES)
            patients = sample_patients(client, args.patients)
        random.Random(args.seed).shuffle(patients)
        per_kind: dict[str, list[str]] = {}
        for p in patients:
            for kind, url in queries(p).items():
                per_kind.setdefault(kind, []).append(url)
        rows = []
        for kind, urls in per_kind.items():
            one = measure(server, urls, 1, args.seconds / 2)
            many = measure(server, urls, args.clients, args.seconds)
            rows.append(
                {
                    "query": kind,
                    "resources": total,
                    "p50_ms (1 client)": one["p50_ms"],
                    "p95_ms (1 client)": one["p95_ms"],
                    f"req/s ({args.clients} clients)": many["req/s"],
                    f"p95_ms ({args.clients} clients)": many["p95_ms"],
                    "errors": one["errors"] + many["errors"],
                }
            )
    common.print_rows(f"search over {total} resources", rows, args.json)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
