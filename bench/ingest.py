"""Ingest benchmark: synthetic patient transaction Bundles over HTTP with 1 and 4 clients.

Usage: .venv/bin/python bench/ingest.py [--bundles 200] [--clients 1,4] [--store sqlite|pg]
       .venv/bin/python bench/ingest.py --dry-run      # generate and check bundles only
https://hl7.org/fhir/R4/http.html#transaction
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

import orjson
from stdnum.fr import nir as stdnum_nir

import common
from maison.services.demo import INS_NIR_TEST_SYSTEM, bundle_references, demo_bundles

WARMUP_START = 10_000_000  # bundle indices used for warm-up, far from the measured ones


def _bodies(count: int, seed: int, start: int) -> list[tuple[str, str, bytes | None, int]]:
    return [
        ("POST", "/", orjson.dumps(b), len(b["entry"]))
        for b in demo_bundles(count, seed=seed, start=start)
    ]


def dry_run(count: int, seed: int) -> int:
    """Generate the bundles and check them locally (references, NIR keys, R4 validation)."""
    t0 = time.perf_counter()
    bundles = list(demo_bundles(count, seed=seed))
    generated = time.perf_counter() - t0
    sizes = [len(orjson.dumps(b)) for b in bundles]
    types: Counter[str] = Counter()
    problems: list[str] = []
    for i, bundle in enumerate(bundles):
        urls = {e["fullUrl"] for e in bundle["entry"]}
        missing = [r for r in bundle_references(bundle) if r not in urls]
        if missing:
            problems.append(f"bundle {i}: unresolved references {missing[:3]}")
        for entry in bundle["entry"]:
            resource = entry["resource"]
            types[resource["resourceType"]] += 1
            for ident in resource.get("identifier", []):
                if ident.get("system") == INS_NIR_TEST_SYSTEM and not stdnum_nir.is_valid(
                    ident["value"]
                ):
                    problems.append(f"bundle {i}: invalid NIR {ident['value']}")
    validated = _validate(bundles, problems)
    total = sum(types.values())
    print(f"bundles: {count}  resources: {total}  ({total / count:.1f} per bundle)")
    print("  " + ", ".join(f"{k} {v}" for k, v in sorted(types.items())))
    print(
        f"JSON: {sum(sizes) / 1e6:.1f} MB, {sum(sizes) / count / 1024:.1f} KiB per bundle; "
        f"generated in {generated:.2f}s ({count / generated:.0f} bundles/s)"
    )
    print(f"R4 validation: {validated}")
    for problem in problems[:20]:
        print("PROBLEM:", problem)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _validate(bundles: list[dict[str, Any]], problems: list[str]) -> str:
    try:
        from maison.fhir.definitions import default_definitions
        from maison.fhir.validation import Validator  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        return f"skipped ({exc})"
    validator = Validator(default_definitions())
    checked = 0
    for i, bundle in enumerate(bundles):
        for entry in bundle["entry"]:
            checked += 1
            for issue in validator.validate(entry["resource"]):
                if issue.severity in ("error", "fatal"):
                    rtype = entry["resource"]["resourceType"]
                    problems.append(f"bundle {i} {rtype}: {issue.diagnostics} {issue.expression}")
    return f"{checked} resources checked"


def main(argv: list[str] | None = None) -> int:
    """Run the ingest benchmark and print resources/s, bundles/s, latencies and peak RSS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=200, help="bundles per run (~20 resources)")
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=3, help="bundles sent before timing")
    parser.add_argument("--dry-run", action="store_true", help="only generate and check bundles")
    parser.add_argument("--json", default=None, help="append result rows to this JSON-lines file")
    common.add_server_options(parser)
    args = parser.parse_args(argv)
    if args.dry_run:
        return dry_run(args.bundles, args.seed)

    levels = [int(c) for c in args.clients.split(",") if c.strip()]
    rows = []
    for level, clients in enumerate(levels):
        # distinct patients per level, so a shared (--url / --data) store never matches ifNoneExist
        work = _bodies(args.bundles, args.seed, start=level * args.bundles)
        warm = _bodies(args.warmup, args.seed, start=WARMUP_START + level * 1000)
        with common.running_server(args, label=f"ingest x{clients}") as server:
            if warm:
                w = common.run_load(server, warm, 1, common.check_transaction)
                if w.errors:
                    print("warm-up failed:", *w.first_errors, sep="\n  ", file=sys.stderr)
                    return 2
            result = common.run_load(server, work, clients, common.check_transaction)
            row: dict[str, Any] = {
                "store": "external" if args.url else common.store_kind(args),
                "clients": clients,
                "bundles": result.ok,
                "resources": result.units,
                "seconds": round(result.elapsed, 2),
                "resources/s": round(result.units / result.elapsed, 1),
                "bundles/s": round(result.ok / result.elapsed, 2),
                **common.latency_summary(result.latencies),
                "errors": result.errors,
                **server.memory(),
            }
            if args.server_args:
                row["server_args"] = args.server_args
        rows.append(row)
        for err in result.first_errors:
            print("ERROR:", err, file=sys.stderr)
    common.print_rows("ingest (transaction bundles)", rows, args.json)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
