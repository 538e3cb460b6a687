"""Create benchmark: single-resource POSTs (Patient and/or Observation) with 4 clients.

Usage: .venv/bin/python bench/creates.py [--count 2000] [--clients 4]
                                         [--type Patient|Observation|both] [--store sqlite|pg]
https://hl7.org/fhir/R4/http.html#create
"""

from __future__ import annotations

import argparse
import random
import sys
from typing import Any

import orjson

import common
from maison.services.demo import individual_resources


def requests_for(count: int, kind: str, seed: int) -> list[tuple[str, str, bytes | None, int]]:
    """``count`` pre-serialised creates; ``both`` alternates Patients and Observations."""
    rng = random.Random(f"maison-bench-creates/{seed}")
    if kind == "both":
        patients = individual_resources(rng, (count + 1) // 2, "Patient")
        observations = individual_resources(rng, count // 2, "Observation", start=count)
        mixed: list[dict[str, Any]] = []
        for i in range(count):
            mixed.append(patients[i // 2] if i % 2 == 0 else observations[i // 2])
        resources = mixed
    else:
        resources = individual_resources(rng, count, kind)
    return [("POST", f"/{r['resourceType']}", orjson.dumps(r), 1) for r in resources]


def main(argv: list[str] | None = None) -> int:
    """Run the create benchmark and print creates/s, latencies and peak RSS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="resources to create")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--type", default="both", choices=("Patient", "Observation", "both"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=20, help="creates sent before timing")
    parser.add_argument(
        "--prefer",
        choices=("minimal", "representation", "OperationOutcome"),
        default=None,
        help="send `Prefer: return=...` (default: no Prefer header)",
    )
    parser.add_argument("--json", default=None, help="append result rows to this JSON-lines file")
    common.add_server_options(parser)
    args = parser.parse_args(argv)

    work = requests_for(args.count, args.type, args.seed)
    warm = requests_for(args.warmup, args.type, args.seed + 1_000_000)
    with common.running_server(args, label=f"creates x{args.clients}") as server:
        if args.prefer:
            server.extra_headers["Prefer"] = f"return={args.prefer}"
        if warm:
            w = common.run_load(server, warm, 1, common.check_created)
            if w.errors:
                print("warm-up failed:", *w.first_errors, sep="\n  ", file=sys.stderr)
                return 2
        result = common.run_load(server, work, args.clients, common.check_created)
        row: dict[str, Any] = {
            "store": "external" if args.url else common.store_kind(args),
            "clients": args.clients,
            "type": args.type,
            "created": result.ok,
            "seconds": round(result.elapsed, 2),
            "creates/s": round(result.ok / result.elapsed, 1),
            **common.latency_summary(result.latencies),
            "errors": result.errors,
            **server.memory(),
        }
        if args.server_args:
            row["server_args"] = args.server_args
    for err in result.first_errors:
        print("ERROR:", err, file=sys.stderr)
    common.print_rows("creates (POST /[type])", [row], args.json)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
