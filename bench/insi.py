"""INSi benchmark: `Patient/$ins-search` and `$ins-verify` over a reference base of N identities.

Synthesises N identities (`maison.services.ins.reference.synthesize`, test OID) into a file,
imports it with `maison ins load` (timed: identities/s), starts a server on that store and
measures, over a sample of identities, each operation's p50/p95/p99 with 1 client (httpx) and its
throughput with wrk (C) and `--clients` connections. Also prints the INSi return codes the sample
got (00 one, 01 none, 02 several: the synthesis makes realistic homonyms). Figures, not a test.

    .venv/bin/python bench/insi.py                                # 100,000 identities, SQLite
    .venv/bin/python bench/insi.py --identities 1000000 --data /var/tmp/maison-insi
    .venv/bin/python bench/insi.py --identities 1000000 --pg-db maison_insi
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import common
from maison.services.ins.reference import ReferenceIdentity, synthesize, write
from search import measure, wrk_measure


def sample_and_write(n: int, seed: int, path: Path, size: int) -> list[ReferenceIdentity]:
    """Write ``n`` identities to ``path``; keep a uniform sample of ``size`` (reservoir)."""
    rng = random.Random(seed)
    kept: list[ReferenceIdentity] = []

    def stream() -> Any:
        for i, ident in enumerate(synthesize(n, seed)):
            if len(kept) < size:
                kept.append(ident)
            else:
                j = rng.randrange(i + 1)
                if j < size:
                    kept[j] = ident
            yield ident

    write(stream(), path)
    return kept


def search_url(i: ReferenceIdentity) -> str:
    """A GET ``$ins-search`` with the first birth first name, as a software calls it first."""
    query = {
        "NomNaissance": i.nom_naissance,
        "Prenom": i.prenoms[0],
        "Sexe": i.sexe,
        "DateNaissance": i.date_naissance,
    }
    return "/Patient/$ins-search?" + urlencode(query)


def verify_url(i: ReferenceIdentity) -> str:
    """A GET ``$ins-verify`` of the identity's own INS and traits."""
    query = {
        "INS": i.matricule,
        "NomNaissance": i.nom_naissance,
        "Prenom": i.prenoms[0],
        "Sexe": i.sexe,
        "DateNaissance": i.date_naissance,
    }
    return "/Patient/$ins-verify?" + urlencode(query)


def main(argv: list[str] | None = None) -> int:
    """Synthesise, load, then time the two operations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2000, help="identities to query")
    parser.add_argument("--clients", type=int, default=4, help="wrk connections")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    common.add_server_options(parser)
    args = parser.parse_args(argv)
    if "--no-demo" not in args.server_args:  # the demo's own reference identities stay out
        args.server_args = f"{args.server_args} --no-demo".strip()

    rows: list[dict[str, Any]] = []
    with common.running_server(args, label="insi") as server:
        if server.data == "(external)":
            raise SystemExit("bench/insi.py loads the base with the CLI: not on --url")
        folder = Path(tempfile.mkdtemp(prefix="maison-insi-"))
        ref = folder / "reference.csv"
        t0 = time.perf_counter()
        sample = sample_and_write(args.identities, args.seed, ref, args.sample)
        synth_s = time.perf_counter() - t0
        workdir = server.log_path.parent if server.log_path else Path.cwd()
        load_cmd = [*common.maison_command(args), "ins", "load", str(ref), "--data", server.data]
        t0 = time.perf_counter()
        subprocess.run(load_cmd, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
        load_s = time.perf_counter() - t0
        ref.unlink()
        print(
            f"synthesised {args.identities:,} identities in {synth_s:.1f} s; "
            f"loaded in {load_s:.1f} s ({args.identities / load_s:,.0f}/s)",
            file=sys.stderr,
        )
        codes: Counter[str] = Counter()
        with server.client() as client:
            for ident in sample[:300]:
                body = client.get(search_url(ident)).json()
                codes[next(p["valueCode"] for p in body["parameter"] if p["name"] == "CodeCR")] += 1
        for name, make in (("$ins-search", search_url), ("$ins-verify", verify_url)):
            urls = [make(i) for i in sample]
            one = measure(server, urls, 1, args.seconds / 2)
            many = wrk_measure(server, urls, args.clients, args.seconds)
            rows.append(
                {
                    "operation": name,
                    "identities": args.identities,
                    "p50_ms (1 client)": one["p50_ms"],
                    "p95_ms (1 client)": one["p95_ms"],
                    "p99_ms (1 client)": one.get("p99_ms"),
                    f"req/s (wrk, {args.clients})": many["req/s"],
                    f"p50_ms (wrk, {args.clients})": many["p50_ms"],
                    "errors": one["errors"] + many["errors"],
                }
            )
    common.print_rows(f"INSi over {args.identities:,} identities", rows, args.json)
    print(
        "return codes of the first 300 searches (first first name only): "
        + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())),
        file=sys.stderr,
    )
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
