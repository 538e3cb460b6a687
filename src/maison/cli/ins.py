"""``maison ins``: the INSi reference base (synthesise, load) and the identity-vigilance report.

https://esante.gouv.fr/produits-services/referentiel-ins
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    Progress,
)
from rich.table import Table

from maison.api.settings import DEFAULT_DATA, Settings
from maison.cli.options import DataOpt, StateOpt
from maison.cli.progress import rate, rate_progress

ins_app = typer.Typer(help="INS: the INSi reference base and identity-vigilance.")
console = Console(stderr=True)


def _progress(label: str) -> Progress:
    return rate_progress(console, label, percent=True)


def _data_lines(path: Path) -> int:
    """Rows in a plain reference file (lines minus a CSV header), for the progress bar."""
    lines = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            lines += chunk.count(b"\n")
    return max(lines - (1 if path.name.lower().endswith(".csv") else 0), 0)


@ins_app.command("synth")
def synth(
    count: Annotated[int, typer.Argument(help="How many identities to make.", min=1)],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="File to write: .csv or .jsonl, .gz allowed.")
    ] = Path("ins-reference.csv"),
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same identities).")] = 0,
    oid: Annotated[
        str,
        typer.Option(
            help="Assigning authority OID: the test OID by default (never a real NIR OID)."
        ),
    ] = "1.2.250.1.213.1.4.10",
) -> None:
    """Write N realistic synthetic French identities (valid keys, test OID) to a reference
    file that ``maison ins load`` imports."""
    from maison.services.ins.reference import OID_DEMO, OID_TEST, synthesize, write

    if oid not in (OID_TEST, OID_DEMO):
        console.print(
            f"[red]Synthetic identities use the test ({OID_TEST}) or demo ({OID_DEMO}) OID, "
            f"never {oid}: a made-up matricule must not pass for a real NIR/NIA.[/red]"
        )
        raise typer.Exit(2)
    started = time.perf_counter()
    with _progress("synthesising") as progress:
        task = progress.add_task("synth", total=count, rate="")

        def counted() -> Iterator[Any]:
            for i, identity in enumerate(synthesize(count, seed, oid), 1):
                if i % 10_000 == 0:
                    progress.update(task, completed=i, rate=rate(i, started))
                yield identity

        written = write(counted(), out)
        progress.update(task, completed=written, rate=rate(written, started))
    console.print(f"[green]{written:,} identities written to {out}[/green]")


@ins_app.command("load")
def load(
    file: Annotated[Path, typer.Argument(help="Reference file: CSV (;) or JSON Lines, .gz ok.")],
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
    rejects: Annotated[
        Path | None,
        typer.Option(help="Where to write rejected rows (default: FILE.rejects.txt)."),
    ] = None,
) -> None:
    """Import a reference base of identities into the INSi-compatible service (idempotent:
    a second import of the same file changes nothing)."""
    from maison.api.ins_operations import record_of
    from maison.api.services import make_store
    from maison.fhir.definitions import default_definitions
    from maison.services.ins.reference import RowError, read
    from maison.store.identity_base import IdentityBase, IdentityRecord

    if not file.is_file():
        console.print(f"[red]{file}: no such file[/red]")
        raise typer.Exit(2)
    store = make_store(Settings(data=data, state=state, demo=False), default_definitions())
    store.migrate()
    base = IdentityBase(store)
    reject_path = rejects or file.with_name(file.name + ".rejects.txt")
    errors: list[RowError] = []
    rows = None if file.name.endswith(".gz") else _data_lines(file)
    started = time.perf_counter()
    with _progress("loading") as progress:
        task = progress.add_task("load", total=rows, rate="")

        def records() -> Iterator[IdentityRecord]:
            for row in read(file):
                if isinstance(row, RowError):
                    errors.append(row)
                    progress.advance(task)
                    continue
                yield record_of(row)

        def advance(n: int) -> None:
            progress.advance(task, n)
            done = progress.tasks[0].completed
            progress.update(task, rate=rate(int(done), started, "rows"))

        counts = base.load(records(), progress=advance)
        progress.update(task, total=progress.tasks[0].completed)
    store.close()
    if errors:
        with open(reject_path, "w", encoding="utf-8") as out:
            for e in errors:
                out.write(f"line {e.line}: {e.message}\n")
    table = Table(title=f"INSi reference base: {file.name}")
    table.add_column("created", justify="right")
    table.add_column("updated", justify="right")
    table.add_column("unchanged", justify="right")
    table.add_column("rejected", justify="right")
    table.add_row(
        *(f"{n:,}" for n in (counts.created, counts.updated, counts.unchanged)), f"{len(errors):,}"
    )
    console.print(table)
    if errors:
        console.print(f"[yellow]rejected rows with reasons: {reject_path}[/yellow]")


@ins_app.command("vigilance")
def vigilance(
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
    threshold: Annotated[
        float, typer.Option(help="Lowest score reported as a potential duplicate (0-1).")
    ] = 0.8,
    limit: Annotated[int, typer.Option(help="Rows shown per table (all are counted).")] = 50,
    homonyms: Annotated[bool, typer.Option(help="Also list homonyms (HOMD).")] = False,
) -> None:
    """Report potential duplicates, INS collisions and identity anomalies over the stored
    Patients, for the cellule d'identitovigilance."""
    from maison.api.services import build_services
    from maison.services.ins.vigilance import anomalies, candidate_from_patient, find_duplicates

    services = build_services(Settings(data=data, state=state, demo=False))
    services.store.migrate()
    patients = list(_patients(services))
    candidates = [candidate_from_patient(p, p["id"]) for p in patients]
    console.print(f"{len(candidates):,} patients read")
    stats: dict[str, int] = {}
    pairs = list(find_duplicates(candidates, threshold, report_homonyms=homonyms, stats=stats))
    kinds = Counter(p.kind for p in pairs)
    table = Table(title=f"Potential duplicates and collisions ({len(pairs):,})")
    for col in ("kind", "score", "patient A", "patient B", "reasons"):
        table.add_column(col)
    for pair in pairs[:limit]:
        table.add_row(pair.kind, f"{pair.score:.2f}", pair.a, pair.b, "; ".join(pair.reasons))
    console.print(table)
    found = anomalies(patients)
    atable = Table(title=f"Identity anomalies ({len(found):,})")
    for col in ("patient", "anomaly"):
        atable.add_column(col)
    for pid, text in found[:limit]:
        atable.add_row(pid, text)
    console.print(atable)
    summary = ", ".join(f"{k}: {n:,}" for k, n in sorted(kinds.items())) or "none"
    console.print(f"pairs by kind: {summary}; anomalies: {len(found):,}")
    services.store.close()


def _patients(services: Any) -> Iterator[dict[str, Any]]:
    """Every current Patient, page by page (keyset cursor), with a progress bar."""
    from maison.fhir.search import encode_cursor, parse_search

    with _progress("reading patients") as progress:
        task = progress.add_task("read", total=None, rate="")
        cursor: str | None = None
        started = time.perf_counter()
        done = 0
        while True:
            params = [("_count", "1000")] + ([("_cursor", cursor)] if cursor else [])
            query = parse_search(services.defs, "Patient", params)
            page = services.store.read(lambda tx, q=query: tx.search(q))
            for stored in page.entries:
                yield stored.resource
            done += len(page.entries)
            progress.update(task, completed=done, rate=rate(done, started))
            if page.last is None or len(page.entries) < 1000:
                break
            cursor = encode_cursor(page.last)
