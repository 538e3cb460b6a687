"""``maison access matrix``: show, check, load and roll back the DMP habilitation matrix
(arrêté du 26 octobre 2023); codes are checked against the NOS loaded with ``maison
terminology load`` when they are there, and the checks that could not be made are said.

https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from maison.api.settings import DEFAULT_DATA
from maison.cli.options import DataOpt, StateOpt, open_bare_store
from maison.security.matrix import COLUMNS, Matrix, MatrixError, Vocabulary, load_csv
from maison.terminology.source import canonical_system

access_app = typer.Typer(help="Access to the DMP: the habilitation matrix.")
matrix_app = typer.Typer(
    help="The habilitation matrix (arrêté du 26 octobre 2023): show, check, load, roll back."
)
access_app.add_typer(matrix_app, name="matrix")
console = Console(stderr=True)
out = Console()

NOS = "https://mos.esante.gouv.fr/NOS/"
G15 = f"{NOS}TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
J66 = f"{NOS}JDV_J66-TypeCode-DMP/FHIR/JDV-J66-TypeCode-DMP"
J57 = f"{NOS}JDV_J57-ClassCode-DMP/FHIR/JDV-J57-ClassCode-DMP"


def _codes(source: Any, url: str) -> frozenset[tuple[str, str]] | None:
    """The (canonical system, code) of a loaded value set, None when it is not loaded."""
    from maison.terminology.compose import Composer

    vs = source.value_set(url)
    if vs is None:
        return None
    composer = Composer(source)
    expansion, _ = composer.evaluate(vs, composer.key(vs, url, None), None)
    return frozenset(entry.key for entry in expansion.entries)


def vocabulary(store: Any) -> Vocabulary:
    """The TRE_G15 professions and the J66 types and J57 classes loaded in the store.

    https://mos.esante.gouv.fr/NOS/
    """
    from maison.terminology.sql_source import SqlTerminology

    source = SqlTerminology(store)
    professions = (
        frozenset(c.code for c in source.concepts(G15)) if source.system(G15) is not None else None
    )
    return Vocabulary(professions, _codes(source, J66), _codes(source, J57))


def _print_errors(errors: list[MatrixError], label: str) -> None:
    console.print(f"[red]{escape(label)}: {len(errors)} error(s)[/red]")
    for error in errors:
        console.print(f"  [red]{escape(str(error))}[/red]", soft_wrap=True)


def _print_unchecked(vocab: Vocabulary) -> None:
    for what in vocab.unchecked():
        console.print(
            f"[yellow]not checked: {escape(what)}; load the NOS lists with maison terminology "
            "load[/yellow]",
            soft_wrap=True,
        )


def _coverage(matrix: Matrix, vocab: Vocabulary) -> list[str]:
    """Profession by class pairs without a row (default deny applies to them)."""
    if vocab.professions is None or vocab.classes is None:
        return []
    covered = {(c.profession, c.system, c.code) for c in matrix.cells if c.is_class}
    missing = [
        f"{p}/{code}"
        for p in sorted(vocab.professions)
        for system, code in sorted(vocab.classes)
        if (p, system, code) not in covered
    ]
    return missing


def _describe(matrix: Matrix) -> str:
    allowed = sum(1 for c in matrix.cells if c.allowed)
    loaded = (
        f" (loaded {matrix.loaded_at or '-'} by {matrix.loaded_by})" if matrix.loaded_by else ""
    )
    return (
        f"version {matrix.version}{loaded}: "
        f"{len(matrix.cells)} cells, {allowed} allowed, {matrix.provisional} provisional"
    )


@matrix_app.command("show")
def show(
    profession: Annotated[
        str | None, typer.Option("--profession", help="Only this TRE_G15 profession code.")
    ] = None,
    format_: Annotated[
        str, typer.Option("--format", help="table (default) or csv (normalized rows).")
    ] = "table",
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Show the active matrix, its version, and which cells are provisional."""
    from maison.security.matrix_store import MatrixStoreError, active_matrix

    if format_ not in ("table", "csv"):
        console.print("[red]--format is table or csv[/red]")
        raise typer.Exit(2)
    store = open_bare_store(data, state, "maison access")
    try:
        matrix = active_matrix(store, canonical_system)
    except MatrixStoreError as exc:
        _print_errors(exc.errors, exc.message)
        raise typer.Exit(1) from None
    finally:
        store.close()
    cells = [c for c in matrix.cells if profession is None or c.profession == profession]
    if format_ == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(c.row() for c in cells)
        typer.echo(buffer.getvalue(), nl=False)
        return
    console.print(escape(_describe(matrix)), soft_wrap=True)
    table = Table(title=f"Habilitation matrix ({len(cells)} cells shown)")
    for column in ("line", *COLUMNS):
        table.add_column(column, overflow="fold" if column == "source" else "ellipsis")
    for c in cells:
        status = "[yellow]provisional[/yellow]" if c.status == "provisional" else c.status
        table.add_row(
            str(c.line),
            c.profession,
            escape(c.savoir_faire),
            escape(c.role),
            escape(c.document_type),
            "[green]yes[/green]" if c.allowed else "[red]no[/red]",
            status,
            escape(c.source),
        )
    out.print(table)


@matrix_app.command("check")
def check(
    file: Annotated[
        Path | None, typer.Argument(help="A matrix CSV (default: the active matrix).")
    ] = None,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Validate a matrix file (or the active matrix), its codes against the loaded NOS; exit
    code 1 on errors."""
    from maison.security.matrix_store import active_text

    store = open_bare_store(data, state, "maison access")
    try:
        vocab = vocabulary(store)
        text = file.read_text("utf-8") if file is not None else active_text(store)
    except (OSError, UnicodeDecodeError) as exc:
        console.print(f"[red]cannot read {escape(str(file))}: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    finally:
        store.close()
    label = str(file) if file is not None else "the active matrix"
    parsed = load_csv(text, canonical=canonical_system, vocabulary=vocab)
    _print_unchecked(vocab)
    if isinstance(parsed, list):
        _print_errors(parsed, label)
        raise typer.Exit(1)
    missing = _coverage(parsed, vocab)
    if missing:
        console.print(
            f"[yellow]{len(missing)} profession/class pair(s) without a row (default deny): "
            f"{escape(', '.join(missing[:20]))}{' …' if len(missing) > 20 else ''}[/yellow]",
            soft_wrap=True,
        )
    console.print(f"[green]ok[/green] {escape(label)}: {escape(_describe(parsed))}", soft_wrap=True)


@matrix_app.command("load")
def load(
    file: Annotated[Path | None, typer.Argument(help="The corrected matrix CSV.")] = None,
    rollback: Annotated[
        str | None,
        typer.Option("--rollback", help="Activate again a version loaded before (8+ chars)."),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who loads it (default: the system user).")
    ] = None,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Validate a matrix and make it the active one (a running server picks it up within a
    second), or roll back to a version loaded before."""
    from maison.security import matrix_store

    if (file is None) == (rollback is None):
        console.print("[red]give either a FILE or --rollback VERSION[/red]")
        raise typer.Exit(2)
    who = by or _user()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    store = open_bare_store(data, state, "maison access")
    try:
        if rollback is not None:
            done = matrix_store.rollback(
                store, rollback, canonical=canonical_system, loaded_by=who, loaded_at=now
            )
        else:
            assert file is not None
            try:
                text = file.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                console.print(f"[red]cannot read {escape(str(file))}: {escape(str(exc))}[/red]")
                raise typer.Exit(1) from None
            vocab = vocabulary(store)
            _print_unchecked(vocab)
            done = matrix_store.activate(
                store,
                text,
                canonical=canonical_system,
                loaded_by=who,
                loaded_at=now,
                vocabulary=vocab,
            )
    except matrix_store.MatrixStoreError as exc:
        if exc.errors:
            _print_errors(exc.errors, str(file))
        console.print(f"[red]{escape(exc.message)}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    changes = done.changes
    console.print(
        f"[green]active[/green] {escape(_describe(done.matrix))}; previous {done.previous[:12]}; "
        f"{changes.total} cell(s) differ ({changes.added} added, {changes.removed} removed, "
        f"{changes.changed} changed)",
        soft_wrap=True,
    )
    typer.echo(done.matrix.version)


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
