"""``maison annuaire``: import the Annuaire Santé extraction (idempotent), or synthesise one.

https://annuaire.sante.fr/web/site-pro/extractions-publiques
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich.console import Console
from rich.progress import (
    Progress,
    TaskID,
)
from rich.table import Table

from maison.api.settings import DEFAULT_DATA, Settings
from maison.cli.options import DataOpt, StateOpt
from maison.cli.progress import rate, rate_progress

if TYPE_CHECKING:
    from maison.services.annuaire.importer import ImportProgress, ImportSummary, Validate

annuaire_app = typer.Typer(
    help="Annuaire Santé: import the RPPS/ADELI open-data extraction, or synthesise one."
)
console = Console(stderr=True)

#: New or changed resources of each type checked against the installed profiles (sample).
SAMPLE_PER_TYPE = 100
_PHASES = {
    "checking": "checking rows",
    "importing": "importing",
    "merging": "merging scattered persons",
    "side files": "indexing the side files",
    "deactivating": "deactivating what is gone",
}


class Validation(StrEnum):
    """How many written resources the server's validator checks."""

    none = "none"
    sample = "sample"
    all = "all"


class _Bars:
    """One Rich task per import phase: rows (or entries) done, total when known, rate."""

    def __init__(self, progress: Progress, name: str) -> None:
        self.progress = progress
        self.name = name
        self.tasks: dict[str, tuple[TaskID, float]] = {}
        self.last = time.perf_counter()  # a phase starts when the previous one was last heard

    def __call__(self, step: ImportProgress) -> None:
        if step.phase not in self.tasks:
            label = f"{self.name}: {_PHASES.get(step.phase, step.phase)}"
            task = self.progress.add_task(label, total=step.total, rate="")
            self.tasks[step.phase] = (task, self.last)
        self.last = time.perf_counter()
        task, started = self.tasks[step.phase]
        unit = "persons" if step.phase == "merging" else "rows"
        unit = "entries" if step.phase == "deactivating" else unit
        self.progress.update(
            task, completed=step.done, total=step.total, rate=rate(step.done, started, unit)
        )


def _progress() -> Progress:
    return rate_progress(console)


def _validator(services: Any, mode: Validation) -> Validate | None:
    """The server's validator (base R4 and the installed profiles) as an import check."""
    if mode is Validation.none:
        return None
    checked: Counter[str] = Counter()

    def validate(resource: Mapping[str, Any]) -> list[str]:
        kind = str(resource.get("resourceType"))
        if mode is Validation.sample and checked[kind] >= SAMPLE_PER_TYPE:
            return []
        checked[kind] += 1
        issues = services.validate(dict(resource))
        return [i.diagnostics for i in issues if i.severity in ("error", "fatal")]

    return validate


def _rejects_for(file: Path, rejects: Path | None, several: bool) -> Path | None:
    """The reject file of ``file``: --rejects itself for one file, inside it for several."""
    if rejects is None:
        return None
    if several:
        rejects.mkdir(parents=True, exist_ok=True)
        return rejects / f"{file.name}.rejects.txt"
    return rejects


#: The NOS terminology of profession codes (https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/).
TRE_G15: Final = (
    "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
)


def _known_professions(defs: Any) -> frozenset[str] | None:
    """The TRE_G15 codes of the installed CodeSystem (rows with another code are rejected),
    or None when it is not installed."""
    system = defs.code_systems.get(TRE_G15)
    if system is None:
        return None
    codes: set[str] = set()
    stack = list(system.get("concept", []))
    while stack:
        concept = stack.pop()
        codes.add(str(concept["code"]))
        stack.extend(concept.get("concept", []))
    return frozenset(codes)


def _classify(files: list[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """The activity extractions, the side files and the FINESS extractions among ``files``
    (by content: header row or first line); a file that is none of them raises
    :class:`~maison.services.annuaire.extraction.ExtractionError`."""
    from maison.services.annuaire.extraction import ExtractionError, read_activities
    from maison.services.annuaire.finess import read_establishments
    from maison.services.annuaire.side_files import SIDE_KINDS, kinds_in

    activity: list[Path] = []
    sides: list[Path] = []
    finess: list[Path] = []
    for file in files:
        try:
            kinds = kinds_in(file)
            annuaire_error = None
        except ExtractionError as exc:
            kinds, annuaire_error = {}, exc
        if not kinds:
            try:
                next(iter(read_establishments(file)), None)
            except ExtractionError as finess_error:
                if annuaire_error is None:  # the activity reader says best what the file lacks
                    try:
                        next(iter(read_activities(file)), None)
                    except ExtractionError as exc:
                        annuaire_error = exc
                if annuaire_error is None:
                    raise finess_error from None
                raise ExtractionError(
                    f"{annuaire_error} (nor is it a side file of the extraction or the FINESS "
                    "establishment extraction, whose first line is 'finess;etalab;…')"
                ) from None
            finess.append(file)
            continue
        if "activite" in kinds:
            activity.append(file)
        if any(k in SIDE_KINDS for k in kinds):
            sides.append(file)
    return activity, sides, finess


def _summary_table(results: list[tuple[Path, ImportSummary, float]]) -> Table:
    table = Table(title="Annuaire Santé import")
    for column in ("file", "rows", "rows/s", "persons", "created", "updated", "unchanged"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for column in ("deactivated", "rejected"):
        table.add_column(column, justify="right")
    if any(s.invalid for _, s, _ in results):
        table.add_column("invalid", justify="right")
    for file, s, seconds in results:
        cells = [
            file.name,
            f"{s.rows:,}",
            f"{s.rows / seconds:,.0f}" if seconds > 0 else "",
            f"{s.persons:,}",
            *(f"{n:,}" for n in (s.created, s.updated, s.unchanged, s.deactivated, s.rejected)),
        ]
        if any(r.invalid for _, r, _ in results):
            cells.append(f"{s.invalid:,}")
        table.add_row(*cells)
    return table


@annuaire_app.command("import")
def import_(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Extractions (.txt/.csv or the published .zip), each complete: "
            "PS_LibreAcces_Personne_activite (several are imported in this order: what a file "
            "no longer holds is made inactive), with the side files of the same date "
            "(PS_LibreAcces_Dipl_AutExerc, PS_LibreAcces_SavoirFaire, the MSSanté "
            "correspondence extraction) that enrich it, and the FINESS establishment "
            "extraction (etalab-cs1100507-stock), imported first. Each file's kind is read "
            "from its content."
        ),
    ],
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            help="Where to write rejected rows: a file (one FILE) or a folder (several); "
            "default FILE.rejects.txt."
        ),
    ] = None,
    validate: Annotated[
        Validation,
        typer.Option(
            help="Check written resources against the installed profiles: the first "
            f"{SAMPLE_PER_TYPE} of each type (sample), every one (all: about 0.4 ms each with the "
            "Annuaire profiles, 2 to 3 times the import itself), "
            "or none."
        ),
    ] = Validation.sample,
    batch: Annotated[int, typer.Option(help="Persons written per transaction.", min=1)] = 500,
) -> None:
    """Import Annuaire Santé extractions as Practitioner, Organization and PractitionerRole
    (idempotent: a file imported again writes nothing; works while the server runs)."""
    from functools import partial

    from maison.api.services import build_services
    from maison.services.annuaire.extraction import ExtractionError
    from maison.services.annuaire.importer import import_extraction, import_finess
    from maison.store.crypto import DataKeyError

    missing = [f for f in files if not f.is_file()]
    if missing:
        console.print(f"[red]{missing[0]}: no such file[/red]")
        raise typer.Exit(2)
    try:
        activity, sides, finess = _classify(files)
    except ExtractionError as exc:
        console.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    if sides and len(activity) != 1:
        console.print(
            "[red]side files (diplômes, savoir-faire, MSSanté) enrich one "
            f"PS_LibreAcces_Personne_activite extraction; {len(activity)} given: import each "
            "date's files in their own command[/red]"
        )
        raise typer.Exit(2)
    plan: list[tuple[Path, Any]] = [(f, import_finess) for f in finess]
    plan += [(f, partial(import_extraction, side_files=sides)) for f in activity]
    several = len(plan) > 1
    services = build_services(Settings(data=data, state=state, demo=False))
    try:
        services.store.migrate()
        services.store.check_keys("the state folder")
        services.refresh()  # installed guides: their search parameters and profiles
        professions = _known_professions(services.defs)
        if professions is None and activity:
            console.print(
                "[yellow]profession codes not checked: the NOS CodeSystem TRE_G15-ProfessionSante "
                "is not installed (maison ig install TRE_G15-ProfessionSante-FHIR.json)[/yellow]"
            )
        plan = [
            (f, partial(run, known_professions=professions) if run is not import_finess else run)
            for f, run in plan
        ]
        results: list[tuple[Path, ImportSummary, float]] = []
        for file, run in plan:
            started = time.perf_counter()
            with _progress() as progress:
                try:
                    summary = run(
                        services.store,
                        file,
                        progress=_Bars(progress, file.name),
                        rejects_path=_rejects_for(file, rejects, several),
                        batch=batch,
                        validate=_validator(services, validate),
                    )
                except ExtractionError as exc:
                    progress.stop()
                    console.print(f"[red]{exc}[/red]", soft_wrap=True)
                    raise typer.Exit(2) from None
            results.append((file, summary, time.perf_counter() - started))
        services.store.analyze()
    except DataKeyError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        services.store.close()
    console.print(_summary_table(results))
    for file, summary, _ in results:
        if summary.rejects_path is not None:
            what = f"{summary.rejected:,} rejected row(s)"
            if summary.invalid:
                what += f" and {summary.invalid:,} resource(s) refused by the validator"
            console.print(f"[yellow]{file.name}: {what}, with reasons: {summary.rejects_path}[/]")


@annuaire_app.command("synth")
def synth(
    rows: Annotated[int, typer.Argument(help="How many activity rows to write.", min=1)],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="File to write: .txt, or .zip holding the named .txt as published "
            "(default PS_LibreAcces_Personne_activite_<now>.txt).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same rows).")] = 0,
    side_files: Annotated[
        bool,
        typer.Option(
            "--side-files",
            help="Also write the diplômes, savoir-faire and MSSanté files of the same persons "
            "next to it.",
        ),
    ] = False,
    finess: Annotated[
        bool,
        typer.Option(
            "--finess", help="Also write a FINESS extraction of their establishments next to it."
        ),
    ] = False,
) -> None:
    """Write a synthetic extraction in the official layout (fictitious professionals with
    valid RPPS keys, structures with valid SIRET/FINESS), for tests and benchmarks."""
    from maison.services.annuaire.finess_synth import finess_for_activity, finess_name, write_finess
    from maison.services.annuaire.side_synth import write_side_files
    from maison.services.annuaire.synth import extraction_name, synthesize, write_extraction

    target = out or Path(extraction_name(datetime.now()))
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("synthesising", total=rows, rate="")

        def counted() -> Iterator[dict[str, str]]:
            for i, row in enumerate(synthesize(rows, seed), 1):
                if i % 10_000 == 0:
                    progress.update(task, completed=i, rate=rate(i, started, "rows"))
                yield row

        write_extraction(counted(), target)
        progress.update(task, completed=rows, rate=rate(rows, started, "rows"))
    console.print(f"[green]{rows:,} rows written to {target}[/green]")
    stamp = datetime.now()
    zipped = target.suffix.lower() == ".zip"
    if side_files:
        written = write_side_files(
            synthesize(rows, seed), target.parent, seed=seed, generated_at=stamp, compress=zipped
        )
        for path in written.values():
            console.print(f"[green]side file written to {path}[/green]")
    if finess:
        name = finess_name(stamp)
        path = target.parent / (name[: -len(".csv")] + ".zip" if zipped else name)
        write_finess(finess_for_activity(synthesize(rows, seed), seed), path, generated_at=stamp)
        console.print(f"[green]FINESS extraction written to {path}[/green]")
