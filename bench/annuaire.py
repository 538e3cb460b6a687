"""Annuaire Santé import benchmark: `maison annuaire import` of a synthetic extraction of N rows.

Synthesises N rows (`maison.services.annuaire.synth`, the published 56-column layout, zipped
as published unless --txt), then times three runs of the import command, each a separate
process over the same store, with the peak RSS of its process tree (the importer and its
reader child, from /proc, polled every 0.2 s):

1. the first import (everything created);
2. the same file again: must write nothing (the history table is counted before and after);
3. a newer extraction where 1% of the persons changed (--changes): half of them renamed
   (their Practitioner updated), half gone (their resources made inactive), and as many rows
   of new persons added (the synthesis continued past N).

Then (unless --search 0) `maison serve` over the imported store answers the Annuaire API
searches the issue names, each timed for --search seconds with one client: a practitioner by
RPPS, by name + city (his roles whose organization is in that city), an organization by
name + city, and a practitioner with his roles (`_revinclude`).

Figures, not a test.

    .venv/bin/python bench/annuaire.py                          # 100,000 rows, SQLite
    .venv/bin/python bench/annuaire.py --rows 1000000 --pg postgresql://maison@127.0.0.1:5432/postgres
    .venv/bin/python bench/annuaire.py --rows 1000000 --data /var/tmp/maison-annuaire
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

import common
from maison.api.settings import Settings
from maison.services.annuaire.synth import synthesize, write_extraction
from search import measure

IDNPS = "Identification nationale PP"
NOM = "Nom d'exercice"
CLI = "from maison.cli.annuaire import annuaire_app; annuaire_app(prog_name='maison annuaire')"


def base_rows(n: int, seed: int) -> Iterator[dict[str, str]]:
    """The first extraction."""
    return synthesize(n, seed)


def changed_rows(n: int, seed: int, changes: float) -> Iterator[dict[str, str]]:
    """The newer extraction: of every 1/changes persons, one renamed and one gone (every
    other time); new persons' rows appended (the synthesis continued past ``n``)."""
    every = max(2, round(1 / changes))
    person = -1
    last = None
    for row in synthesize(n, seed):
        if row[IDNPS] != last:
            person, last = person + 1, row[IDNPS]
        if person % every == 0:
            if (person // every) % 2 == 0:
                yield {**row, NOM: row[NOM] + "-RENOMME"}
            continue  # gone
        yield row
    extra = max(1, round(n * changes / 2))
    for i, row in enumerate(synthesize(n + extra, seed)):
        if i >= n:
            yield row


def timed_write(rows: Iterator[dict[str, str]], path: Path) -> float:
    t0 = time.perf_counter()
    write_extraction(rows, path, generated_at=datetime(2026, 1, 1, 3, 0))
    return time.perf_counter() - t0


def history_rows(database_url: str) -> int:
    """Versions stored so far (every write adds one; 0 before the store exists)."""
    from sqlalchemy import create_engine, func, inspect, select
    from sqlalchemy.pool import NullPool

    from maison.store.schema import resource_history

    if database_url.startswith("sqlite:///") and not Path(database_url[10:]).exists():
        return 0
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        if not inspect(engine).has_table("resource_history"):
            return 0
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(resource_history)).scalar())
    finally:
        engine.dispose()


def summary_cells(output: str, name: str) -> dict[str, str]:
    """The row of the CLI's summary table for ``name``."""
    header: list[str] = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│")[1:-1]]
        if cells and cells[0] == "file":
            header = cells
        elif cells and cells[0] == name and header:
            return dict(zip(header, cells, strict=False))
    return {}


def _children_cpu() -> float:
    """CPU seconds of the waited-for descendants (the importer and its reader child)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_import(
    path: Path, data: str, state: Path, label: str, count: Callable[[], int]
) -> dict[str, Any]:
    """One `maison annuaire import` in its own process: time, peak RSS, what it wrote."""
    before = count()
    cpu_before = _children_cpu()
    cmd = [sys.executable, "-c", CLI, "import", str(path), "--data", data, "--state", str(state)]
    seconds, text, memory = common.timed_command(cmd, label)
    cells = summary_cells(text, path.name)
    rows = int(cells.get("rows", "0").replace(",", ""))
    return {
        "run": label,
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows/s": round(rows / seconds) if seconds else None,
        "created": cells.get("created"),
        "updated": cells.get("updated"),
        "unchanged": cells.get("unchanged"),
        "deactivated": cells.get("deactivated"),
        "rejected": cells.get("rejected"),
        "cpu_s (importer+reader)": round(_children_cpu() - cpu_before, 1),
        "versions written": count() - before,
        "peak_rss_mib (tree)": memory["peak_rss_mib"],
        "peak_rss_mib (largest)": memory["peak_rss_largest_mib"],
    }


RPPS = "https://rpps.esante.gouv.fr"
MAISON = [sys.executable, "-c", "from maison.cli.main import app; app(prog_name='maison')"]


def search_queries(client: httpx.Client, n: int, seed: int) -> dict[str, list[str]]:
    """URLs of each kind, built from practitioners and organizations read through the API."""
    rng = random.Random(seed)
    bundle = client.get(
        "/PractitionerRole",
        params={"_count": 500, "active": "true", "_include": "PractitionerRole:practitioner"},
    ).json()
    bundle2 = client.get(
        "/PractitionerRole",
        params={"_count": 500, "active": "true", "_include": "PractitionerRole:organization"},
    ).json()
    found = {
        (e["resource"]["resourceType"], e["resource"]["id"]): e["resource"]
        for b in (bundle, bundle2)
        for e in b.get("entry", [])
    }
    kinds: dict[str, list[str]] = {
        "practitioner by RPPS": [],
        "practitioner by name + city": [],
        "organization by name + city": [],
        "practitioner + roles (_revinclude)": [],
    }
    roles = [r for (t, _), r in found.items() if t == "PractitionerRole"]
    rng.shuffle(roles)
    for role in roles[: n * 3]:
        doctor = found.get(("Practitioner", role["practitioner"]["reference"].split("/")[-1]))
        org_ref = (role.get("organization") or {}).get("reference", "")
        org = found.get(("Organization", org_ref.split("/")[-1]))
        if doctor is None or org is None:
            continue
        rpps = next((i["value"] for i in doctor["identifier"] if i["system"] == RPPS), None)
        family = doctor["name"][0].get("family")
        city = next((a.get("city") for a in org.get("address", []) if a.get("city")), None)
        if rpps and len(kinds["practitioner by RPPS"]) < n:
            kinds["practitioner by RPPS"].append(f"/Practitioner?identifier={RPPS}|{rpps}")
            kinds["practitioner + roles (_revinclude)"].append(
                f"/Practitioner?identifier={RPPS}|{rpps}&_revinclude=PractitionerRole:practitioner"
            )
        if family and city and len(kinds["practitioner by name + city"]) < n:
            kinds["practitioner by name + city"].append(
                f"/PractitionerRole?practitioner.family={quote(family)}"
                f"&organization.address-city={quote(city)}&_include=PractitionerRole:practitioner"
            )
        name = org.get("name")
        if name and city and len(kinds["organization by name + city"]) < n:
            kinds["organization by name + city"].append(
                f"/Organization?name={quote(name)}&address-city={quote(city)}"
            )
    return kinds


def run_searches(data: str, state: Path, seconds: float, seed: int) -> list[dict[str, object]]:
    """Start `maison serve` over the store and time each kind of search (one client)."""
    port = common.free_port()
    base = f"http://127.0.0.1:{port}"
    log = state.parent / "serve.log"
    cmd = [*MAISON, "serve", "--no-demo", "--data", data, "--state", str(state)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        common.wait_ready(base, proc, 120)
        token = subprocess.run(
            [*MAISON, "token", "--data", data, "--state", str(state), "--scope", "system/*.*"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        server = common.Server(base_url=base, token=token, data=data, proc=proc)
        with server.client() as c:
            kinds = search_queries(c, 200, seed)
            for urls in kinds.values():  # warm-up, and check each answers
                for url in urls[:20]:
                    r = c.get(url)
                    if r.status_code != 200 or not r.json().get("entry"):
                        print(f"{url}: {r.status_code} {r.text[:300]}", file=sys.stderr)
                        break
        rows: list[dict[str, object]] = []
        for kind, urls in kinds.items():
            result = measure(server, urls, 1, seconds)
            rows.append({"query": kind, "urls": len(urls), **result})
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    """Synthesise, then import, re-import and import a 1%-changed extraction."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--changes", type=float, default=0.01, help="share of persons changed")
    parser.add_argument("--txt", action="store_true", help="plain .txt instead of the .zip")
    parser.add_argument("--json", default=None, help="append result rows as JSON lines")
    parser.add_argument(
        "--search", type=float, default=10.0, help="seconds per search kind (0: no searches)"
    )
    group = parser.add_argument_group("store")
    group.add_argument("--pg", metavar="URL", default=None, help="PostgreSQL server to use")
    group.add_argument("--pg-db", metavar="NAME", default=None, help="keep this PG database")
    group.add_argument("--data", metavar="DIR", default=None, help="keep this SQLite folder")
    group.add_argument("--keep", action="store_true", help="keep the fresh store and files")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="maison-annuaire-"))
    cleanups: list[Callable[[], None]] = []
    if args.pg or args.pg_db:
        data, drop = common.pg_database(args.pg or common.DEFAULT_PG, args.pg_db, args.keep)
        cleanups.append(drop)
        store = "PostgreSQL"
    else:
        data = str(Path(args.data).resolve()) if args.data else str(folder / "data")
        store = "SQLite"
    state = folder / "state"
    if args.pg_db:  # a kept database needs its data key again
        state = Path(tempfile.gettempdir()) / f"maison-bench-state-{args.pg_db}"
    database_url = Settings(data=data, state=str(state)).database_url
    suffix = ".txt" if args.txt else ".zip"
    first = folder / f"first{suffix}"
    newer = folder / f"newer{suffix}"
    rows: list[dict[str, Any]] = []
    searches: list[dict[str, object]] = []
    try:
        synth_s = timed_write(base_rows(args.rows, args.seed), first)
        change_s = timed_write(changed_rows(args.rows, args.seed, args.changes), newer)
        print(
            f"synthesised {args.rows:,} rows in {synth_s:.1f} s ({first.stat().st_size:,} bytes), "
            f"the changed extraction in {change_s:.1f} s",
            file=sys.stderr,
        )

        def count() -> int:
            return history_rows(database_url)

        for label, path in (("first import", first), ("same file", first), ("1% changed", newer)):
            result = run_import(path, data, state, label, count)
            print(f"{label}: {result['seconds']} s", file=sys.stderr)
            rows.append(result)
        if args.search > 0:
            searches = run_searches(data, state, args.search, args.seed)
    finally:
        for cleanup in cleanups:
            cleanup()
        if args.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    common.print_rows(f"Annuaire import of {args.rows:,} rows ({store})", rows, args.json)
    if args.search > 0:
        common.print_rows(
            f"Annuaire searches over {args.rows:,} rows ({store})", searches, args.json
        )
    if rows[1]["versions written"] != 0:
        print("the re-import of the same file wrote versions", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
