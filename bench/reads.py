"""Read benchmark: GET /[type]/[id] with 8 clients over a store preloaded to 100k resources.

Usage: .venv/bin/python bench/reads.py [--resources 100000] [--clients 8] [--seconds 20]
       [--data DIR | --pg-db NAME]   # reuse a store: preloading is skipped once it is full
https://hl7.org/fhir/R4/http.html#read
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from typing import Any

import httpx
import orjson
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

import common
from maison.services.demo import demo_bundles

TYPES = ("Patient", "Encounter", "Observation", "Condition", "DocumentReference")


def count(client: httpx.Client, rtype: str) -> int:
    """How many resources of a type the server holds (``_summary=count``).

    https://hl7.org/fhir/R4/search.html#summary
    """
    r = client.get(f"/{rtype}", params={"_summary": "count"})
    if r.status_code != 200:
        raise RuntimeError(f"GET /{rtype}?_summary=count: HTTP {r.status_code} {r.text[:200]}")
    total = orjson.loads(r.content).get("total")
    if not isinstance(total, int):
        raise RuntimeError(f"GET /{rtype}?_summary=count returned no total")
    return total


def preload(server: common.Server, missing: int, start: int, seed: int, clients: int) -> list[str]:
    """POST patient transaction Bundles until ``missing`` more resources exist; return refs."""
    refs: list[str] = []
    lock = threading.Lock()
    state = {"created": 0, "next": start, "errors": 0}
    failure: list[str] = []

    with Progress(
        TextColumn("preload"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("resources"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task("preload", total=missing)

        def worker() -> None:
            with server.client() as client:
                while True:
                    with lock:
                        if state["created"] >= missing or failure:
                            return
                        index = state["next"]
                        state["next"] += 1
                    bundle = next(demo_bundles(1, seed=seed, start=index))
                    body = orjson.dumps(bundle)
                    weight = len(bundle["entry"])
                    try:
                        response = client.post("/", content=body)
                        good, units, locations = common.check_transaction(response, weight)
                        detail = f"HTTP {response.status_code}: {response.text[:300]}"
                    except httpx.HTTPError as exc:
                        good, units, locations, detail = False, 0, None, repr(exc)
                    with lock:
                        if not good:
                            state["errors"] += 1
                            if state["errors"] >= 10:
                                failure.append(detail)
                            continue
                        state["created"] += units
                        refs.extend(r for r in map(common.reference_of, locations or []) if r)
                    progress.advance(task, units)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if failure:
        raise RuntimeError(f"preload failed: {failure[0]}")
    if state["errors"]:
        print(f"preload: {state['errors']} bundle(s) failed", file=sys.stderr)
    return refs


def search_ids(client: httpx.Client, rtype: str, wanted: int) -> list[str]:
    """Up to ``wanted`` ``Type/id`` references found by paging a search.

    https://hl7.org/fhir/R4/http.html#paging
    """
    out: list[str] = []
    url: str | None = f"/{rtype}?_count=1000&_elements=id"
    while url and len(out) < wanted:
        r = client.get(url)
        if r.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {r.status_code} {r.text[:200]}")
        bundle = orjson.loads(r.content)
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("id"):
                out.append(f"{resource['resourceType']}/{resource['id']}")
        url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
    return out[:wanted]


def read_load(
    server: common.Server, refs: list[str], clients: int, seconds: float, warmup: float
) -> dict[str, Any]:
    """Each client reads random ids for ``seconds`` after ``warmup`` seconds not counted."""
    barrier = threading.Barrier(clients + 1)
    per_thread: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    first_error: list[str] = []
    deadlines = {"start": 0.0, "end": 0.0}

    def worker(slot: int) -> None:
        rng = random.Random(slot)
        latencies = per_thread[slot]
        with server.client(timeout=30) as client:
            client.get("/metadata")
            barrier.wait()
            while True:
                ref = rng.choice(refs)
                t0 = time.perf_counter()
                if t0 >= deadlines["end"]:
                    return
                try:
                    r = client.get(f"/{ref}")
                    good = r.status_code == 200
                    detail = f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as exc:
                    good, detail = False, repr(exc)
                t1 = time.perf_counter()
                if t0 < deadlines["start"]:
                    continue  # warm-up
                latencies.append(t1 - t0)
                if not good:
                    errors[slot] += 1
                    if not first_error:
                        first_error.append(f"GET /{ref}: {detail}")

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    deadlines["start"] = now + warmup
    deadlines["end"] = now + warmup + seconds
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - deadlines["start"]
    latencies = [x for per in per_thread for x in per]
    return {
        "reads": len(latencies),
        "seconds": round(elapsed, 2),
        "reads/s": round(len(latencies) / elapsed, 1),
        **common.latency_summary(latencies),
        "errors": sum(errors),
        "first_error": first_error[0] if first_error else "",
    }


WRK_SCRIPT = """
local refs = {%s}
local headers = {["Authorization"] = "Bearer %s", ["Accept"] = "application/fhir+json"}
math.randomseed(%d)
request = function()
  return wrk.format("GET", "/" .. refs[math.random(#refs)], headers)
end
"""


def wrk_load(
    server: common.Server, refs: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    """The same random reads driven by wrk (a C load generator: less CPU taken from the server)."""
    import re
    import shutil
    import subprocess
    import tempfile

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    body = WRK_SCRIPT % (",".join(f'"{r}"' for r in refs), server.token, 1)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(body)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{int(seconds)}s",
            "--latency",
            "-s",
            f.name,
            server.base_url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return round(float(m.group(1)) * scale, 2)

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "loadgen": "wrk",
        "reads/s": float(rate.group(1)) if rate else 0.0,
        "p50_ms": ms("50"),
        "p90_ms": ms("90"),
        "p99_ms": ms("99"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "first_error": "",
    }


def main(argv: list[str] | None = None) -> int:
    """Preload the store if needed, then print reads/s and p50/p95/p99 with 8 clients."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=100_000, help="store size to reach")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--load-clients", type=int, default=4, help="clients for the preload")
    parser.add_argument("--sample", type=int, default=20_000, help="ids to read from at random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="append result rows to this JSON-lines file")
    parser.add_argument(
        "--loadgen",
        choices=["httpx", "wrk"],
        default="httpx",
        help="load generator: Python threads (default) or wrk (C; reports p50/p90/p99)",
    )
    common.add_server_options(parser)
    args = parser.parse_args(argv)

    with common.running_server(args, label=f"reads x{args.clients}") as server:
        with server.client() as client:
            counts = {t: count(client, t) for t in TYPES}
        existing = sum(counts.values())
        refs: list[str] = []
        if existing < args.resources:
            print(
                f"store holds {existing} resources; preloading to {args.resources}", file=sys.stderr
            )
            t0 = time.perf_counter()
            # continue the demo series after the patients already there (new NIRs, new IPPs)
            refs = preload(
                server, args.resources - existing, counts["Patient"], args.seed, args.load_clients
            )
            took = time.perf_counter() - t0
            print(
                f"preloaded {len(refs)} resources in {took:.0f}s "
                f"({len(refs) / took:.0f} resources/s)",
                file=sys.stderr,
            )
            existing += len(refs)
        if len(refs) < args.sample:
            with server.client() as client:
                total = max(1, sum(counts.values()))
                for rtype in TYPES:
                    share = max(1, args.sample * counts[rtype] // total)
                    refs += search_ids(client, rtype, share)
        rng = random.Random(args.seed)
        if len(refs) > args.sample:
            refs = rng.sample(refs, args.sample)
        if not refs:
            print("no resource ids to read", file=sys.stderr)
            return 2
        if args.loadgen == "wrk":
            result = wrk_load(server, refs, args.clients, args.seconds)
        else:
            result = read_load(server, refs, args.clients, args.seconds, args.warmup_seconds)
        row: dict[str, Any] = {
            "store": "external" if args.url else common.store_kind(args),
            "resources": existing,
            "clients": args.clients,
            **{k: v for k, v in result.items() if k != "first_error"},
            **server.memory(),
        }
        if args.server_args:
            row["server_args"] = args.server_args
    if result["first_error"]:
        print("ERROR:", result["first_error"], file=sys.stderr)
    common.print_rows("reads (GET /[type]/[id])", [row], args.json)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
