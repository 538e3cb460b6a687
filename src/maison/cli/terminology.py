"""``maison terminology``: load terminology content (NOS, LOINC, SNOMED CT) into the store and
list what is loaded.

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    Progress,
    TaskID,
)
from rich.table import Table

from maison.api.settings import DEFAULT_DATA
from maison.cli.options import DataOpt, StateOpt, open_bare_store
from maison.cli.progress import rate, rate_progress

if TYPE_CHECKING:
    from maison.terminology.sql_source import Loaded, Outcome

terminology_app = typer.Typer(
    help="Terminologies: load the NOS, LOINC and SNOMED CT releases; list what is loaded."
)
console = Console(stderr=True)
#: Rows after which a code system gets its own progress bar (smaller ones just count).
BIG = 5000


def _progress() -> Progress:
    return rate_progress(console)


class _Bars:
    """One bar per unit (items loaded), and one per big code system and phase (rows/s)."""

    def __init__(self, progress: Progress, label: str) -> None:
        self.progress = progress
        self.items = progress.add_task(escape(f"{_short(label)}: items"), total=None, rate="")
        self.tasks: dict[tuple[str, str], tuple[TaskID, float]] = {}
        self.started = time.perf_counter()

    def __call__(self, label: str, phase: str, done: int, total: int | None) -> None:
        if (total or done) < BIG and (label, phase) not in self.tasks:
            return
        if (label, phase) not in self.tasks:
            task = self.progress.add_task(escape(f"{_short(label)}: {phase}"), total=total, rate="")
            self.tasks[(label, phase)] = (task, time.perf_counter())
        task, started = self.tasks[(label, phase)]
        self.progress.update(task, completed=done, total=total, rate=rate(done, started, "rows"))

    def item_done(self) -> None:
        self.progress.advance(self.items)


def _short(label: str) -> str:
    """A file's name rather than its whole path (a zip member after its archive's name)."""
    if "!" in label:
        archive, member = label.split("!", 1)
        return f"{Path(archive).name}!{member}"
    return Path(label).name if "/" in label else label


def _summary(outcomes: list[Outcome]) -> Table:
    table = Table(title="Terminology load")
    for column in ("type", "name", "version", "concepts", "status"):
        table.add_column(column, justify="right" if column == "concepts" else "left")
    colours = {"created": "green", "replaced": "yellow", "unchanged": "dim"}
    for o in outcomes:
        table.add_row(
            o.resource_type,
            escape(o.name or o.url),
            escape(o.version or ""),
            f"{o.count:,}",
            f"[{colours.get(o.status, 'white')}]{o.status}[/]",
        )
    return table


def _totals(outcomes: list[Outcome]) -> str:
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("created", "replaced")}
    unchanged = sum(1 for o in outcomes if o.status == "unchanged")
    return f"{counts['created']} created, {counts['replaced']} replaced, {unchanged} unchanged"


def _open_store(data: str, state: str | None) -> Any:
    """The store, migrated: terminology content goes to its own tables, never as resources."""
    return open_bare_store(data, state, "maison terminology")


@terminology_app.command("load")
def load(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files, zips or folders: FHIR JSON CodeSystem/ValueSet/ConceptMap (or Bundles, "
            "or the NOS json_fhir zip), NOS .tabs exports, NOS TRE_/JDV_/ASS_ CSV lists, IHE SVS "
            "XML value sets, a LOINC release (Loinc.csv, with its frFR linguistic variant) or a "
            "SNOMED CT RF2 snapshot (folder, zip, or its sct2_/der2_ files). Each path is "
            "loaded in one transaction (the files of one release together)."
        ),
    ],
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Load terminology content, idempotently (the same content again writes nothing; a new
    version is kept beside the others; works while the server runs)."""
    from maison.terminology.loaders import LoadError
    from maison.terminology.loaders.detect import plan
    from maison.terminology.sql_source import SqlTerminology

    try:
        units = plan(paths)
    except LoadError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    store = _open_store(data, state)
    outcomes: list[Outcome] = []
    try:
        terminology = SqlTerminology(store)
        for unit in units:
            with _progress() as progress:
                bars = _Bars(progress, unit.label)

                def counted(resolve: Any, unit: Any = unit, bars: _Bars = bars) -> Iterator[Any]:
                    for item in unit.produce(resolve):
                        yield item
                        bars.item_done()

                try:
                    outcomes += terminology.load(counted, bars)
                except LoadError as exc:
                    progress.stop()
                    if outcomes:
                        console.print(_summary(outcomes))
                    console.print(
                        f"[red]{escape(str(exc))}[/red]\n[red]nothing loaded from "
                        f"{escape(unit.label)}[/red]",
                        soft_wrap=True,
                    )
                    raise typer.Exit(1) from None
        if any(o.status != "unchanged" for o in outcomes):
            store.analyze()
    finally:
        store.close()
    console.print(_summary(outcomes))
    console.print(_totals(outcomes))


@terminology_app.command("list")
def list_(data: DataOpt = DEFAULT_DATA, state: StateOpt = None) -> None:
    """List the loaded code system versions, value sets and concept maps."""
    from maison.terminology.sql_source import SqlTerminology

    store = _open_store(data, state)
    try:
        loaded = SqlTerminology(store).loaded()
    finally:
        store.close()
    console.print(_listing(loaded))


def _listing(loaded: list[Loaded]) -> Table:
    table = Table(title=f"Loaded terminologies ({len(loaded)})")
    for column in ("type", "name", "url", "version", "from", "concepts", "loaded at"):
        table.add_column(
            column,
            justify="right" if column == "concepts" else "left",
            overflow="fold" if column in ("url", "version") else "ellipsis",
        )
    for item in loaded:
        table.add_row(
            item.resource_type,
            escape(item.name or ""),
            escape(item.url),
            escape(item.version or ""),
            item.kind,
            f"{item.count:,}",
            item.loaded_at[:19].replace("T", " "),
        )
    return table
