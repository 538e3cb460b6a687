"""Idempotent, streaming import of the Annuaire Santé extraction into the store.

The extraction (``PS_LibreAcces_Personne_activite``, one row per activity) is read twice, never
held: a first pass checks the layout (a wrong file raises :class:`ExtractionError` before
anything is written), counts the rows and finds the persons whose rows are not all adjacent; the
second pass groups each person's consecutive rows, maps them to a Practitioner, the
Organizations of his structures and one PractitionerRole per activity
(:func:`~maison.services.annuaire.mapping.resources_for_person`), and writes, a batch of persons
per transaction, only what is new or changed: the content hash of each resource is compared with
the :class:`~maison.store.import_ledger.ImportLedger`, which is updated in the same transaction.
The rare persons found scattered by the first pass are imported afterwards from all their rows,
so a late row never replaces a person's earlier activities. Everything the ledger holds that this
extraction no longer does is then made inactive (``active: false``, a new version).

Every resource written carries ``meta.source`` (the Annuaire) and the import tag
(``https://maison.example.org/fhir/CodeSystem/import|annuaire``) that makes it read-only through
the API. Rejected rows go, with their line numbers, to a reject file; the import goes on.

https://annuaire.sante.fr/web/site-pro/extractions-publiques
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import (
    Callable,
    Collection,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import Future
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, Any, Final

import orjson

from maison.security.readonly import IMPORT_TAG_SYSTEM
from maison.services.annuaire.extraction import (
    ExtractionError,
    Row,
    RowError,
    read_activities,
    scan_persons,
)
from maison.services.annuaire.finess import organization_from_finess, read_establishments
from maison.services.annuaire.mapping import IDNAT_PP, content_hash, resources_for_person
from maison.services.annuaire.side_index import SideIndex
from maison.store.import_ledger import ImportLedger, Key
from maison.store.interface import Stored
from maison.store.sql import SqlStore, SqlTx

#: The ledger source of this import.
SOURCE: Final = "annuaire"
#: The ledger source of the FINESS establishment import (owner of the structures it holds).
FINESS_SOURCE: Final = "finess"
#: The tag every imported resource carries (the API keeps such resources read-only).
IMPORT_TAG: Final = {
    "system": IMPORT_TAG_SYSTEM,
    "code": SOURCE,
    "display": "Imported from the Annuaire Santé extraction",
}
#: Scattered persons re-read per extra pass over the file (bounds what is held at once).
SCATTERED_PER_PASS: Final = 20_000
#: The store meta key of the import history (``$annuaire-imports``), and how many runs it keeps.
RUNS_META: Final = "annuaire_import_runs"
KEPT_RUNS: Final = 200

log = logging.getLogger("maison.annuaire")

Resource = dict[str, Any]
#: Checks a resource about to be written; returns the errors (none: it may be written).
Validate = Callable[[Resource], Sequence[str]]


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What one import did (https://annuaire.sante.fr/web/site-pro/extractions-publiques)."""

    rows: int  # data rows read (header excluded), rejected ones included
    persons: int  # persons imported
    created: int
    updated: int  # changed, or brought back after being made inactive
    unchanged: int
    deactivated: int  # made inactive: no longer in the extraction
    rejected: int  # rows rejected, written to rejects_path
    invalid: int = 0  # resources the validator refused (not written), in rejects_path too
    rejects_path: Path | None = None  # None when nothing was rejected
    run: int = 0  # the ledger run number of this import


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """Where an import is: its phase, rows (or entries) done and the total if known.

    Phases: ``checking`` (first pass), ``importing``, ``merging`` (scattered persons, one
    pass per group), ``deactivating``.
    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """

    phase: str
    done: int
    total: int | None


Progress = Callable[[ImportProgress], None]
#: Queues a unit of work on one of the store's bulk writers.
Lane = Callable[[Callable[[SqlTx], "_Counts"]], Future["_Counts"]]
#: Batches in the database at once on PostgreSQL (two cores' worth: one running, one prepared).
LANES: Final = 2


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One resource of a batch, ready to be compared and written."""

    key: Key
    body: bytes  # the resource as JSON, parsed only if it is to be written
    digest: str
    line: int  # first line of the person whose rows gave it

    def resource(self) -> Resource:
        """The resource to write."""
        parsed: Resource = orjson.loads(self.body)
        return parsed


@dataclass(slots=True)
class _Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    invalid: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)

    def add(self, other: _Counts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deactivated += other.deactivated
        self.invalid += other.invalid
        self.problems.extend(other.problems)


def import_extraction(
    store: SqlStore,
    path: str | Path,
    *,
    progress: Progress | None = None,
    rejects_path: str | Path | None = None,
    batch: int = 500,
    known_professions: Collection[str] | None = None,
    validate: Validate | None = None,
    parallel: bool = True,
    side_files: Sequence[str | Path] = (),
) -> ImportSummary:
    """Import an extraction (``.txt`` or ``.zip``): write what is new or changed, make inactive
    what it no longer holds (https://annuaire.sante.fr/web/site-pro/extractions-publiques).

    ``batch`` persons are written per transaction; ``validate``, when given, checks each
    resource about to be written (refused ones are reported, not written); ``parallel`` reads
    and maps the file in a child process while this one writes; ``side_files`` (diplômes,
    savoir-faire, MSSanté extractions of the same date) enrich the Practitioners and
    Organizations, their rejected rows reported with the file they come from. Raises
    :class:`~maison.services.annuaire.extraction.ExtractionError`, having written nothing, when
    the file is not the extraction.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    files = [Path(path), *(Path(p) for p in side_files)]
    with _recorded(store, SOURCE, files) as done:
        summary = _import_extraction(
            store,
            Path(path),
            progress=progress,
            rejects_path=rejects_path,
            batch=batch,
            known_professions=known_professions,
            validate=validate,
            parallel=parallel,
            side_files=side_files,
        )
        done(summary)
    return summary


def _import_extraction(
    store: SqlStore,
    source: Path,
    *,
    progress: Progress | None,
    rejects_path: str | Path | None,
    batch: int,
    known_professions: Collection[str] | None,
    validate: Validate | None,
    parallel: bool,
    side_files: Sequence[str | Path],
) -> ImportSummary:
    report: Progress = progress or (lambda _: None)
    known = frozenset(known_professions) if known_professions is not None else None
    ledger = ImportLedger(store)
    lanes = ExitStack()
    writer = _Writer(
        store,
        ledger,
        ledger.start_run(SOURCE),
        validate,
        lanes=lanes.enter_context(store.bulk_writers(LANES)),
    )
    rejects = _Rejects(
        Path(rejects_path) if rejects_path else source.with_name(source.name + ".rejects.txt")
    )
    sides = [Path(p) for p in side_files]
    produced = (
        _from_child(source, known, batch, sides)
        if parallel
        else _produce(source, known, batch, sides)
    )
    rows = persons = 0
    try:
        with closing(produced) as messages:
            for message in messages:
                if isinstance(message, ImportProgress):
                    report(message)
                    continue
                rejects.start()
                rejects.extend(message.rejects, rows=True)
                if message.payload:
                    writer.submit(_candidates(message.payload))
                persons += message.persons
                rows = max(rows, message.rows)
                rejects.extend(writer.drain_problems())
                report(ImportProgress(message.phase, message.done, message.total))
        writer.finish()
        rejects.extend(writer.drain_problems())
        # what this extraction no longer holds (never everything on an empty extraction)
        if persons:
            writer.deactivate(report)
    except BaseException:
        writer.abandon()  # let the batches in flight end (each commits whole or not at all)
        raise
    finally:
        lanes.close()
        rejects.close()
    return _summary(writer, rejects, rows, persons)


def _summary(writer: _Writer, rejects: _Rejects, rows: int, persons: int) -> ImportSummary:
    counts = writer.counts
    return ImportSummary(
        rows=rows,
        persons=persons,
        created=counts.created,
        updated=counts.updated,
        unchanged=counts.unchanged,
        deactivated=counts.deactivated,
        rejected=rejects.rows,
        invalid=counts.invalid,
        rejects_path=rejects.path if rejects.written else None,
        run=writer.run,
    )


#: The tag of the structures imported from the FINESS extraction (read-only like the others).
FINESS_TAG: Final = {
    "system": IMPORT_TAG_SYSTEM,
    "code": FINESS_SOURCE,
    "display": "Imported from the FINESS establishment extraction",
}


def import_finess(
    store: SqlStore,
    path: str | Path,
    *,
    progress: Progress | None = None,
    rejects_path: str | Path | None = None,
    batch: int = 1000,
    validate: Validate | None = None,
) -> ImportSummary:
    """Import the FINESS establishment extraction as Organizations: what is new or changed is
    written, what it no longer holds made inactive (https://www.data.gouv.fr/fr/datasets/
    finess-extraction-du-fichier-des-etablissements/).

    The structures it holds are then owned by it: the activity import references them and no
    longer writes them (the FINESS record is the richer one). Raises
    :class:`~maison.services.annuaire.extraction.ExtractionError`, having written nothing, when
    the file is not the extraction.
    """
    source = Path(path)
    with _recorded(store, FINESS_SOURCE, [source]) as done:
        summary = _import_finess(store, source, progress, rejects_path, batch, validate)
        done(summary)
    return summary


def _import_finess(
    store: SqlStore,
    source: Path,
    progress: Progress | None,
    rejects_path: str | Path | None,
    batch: int,
    validate: Validate | None,
) -> ImportSummary:
    report: Progress = progress or (lambda _: None)
    total = sum(1 for _ in read_establishments(source))  # first pass: layout and count
    ledger = ImportLedger(store)
    lanes = ExitStack()
    writer = _Writer(
        store,
        ledger,
        ledger.start_run(FINESS_SOURCE),
        validate,
        FINESS_SOURCE,
        lanes=lanes.enter_context(store.bulk_writers(LANES)),
    )
    rejects = _Rejects(
        Path(rejects_path) if rejects_path else source.with_name(source.name + ".rejects.txt")
    )
    rows = structures = 0
    try:
        rejects.start()
        items = iter(read_establishments(source))
        while chunk := list(islice(items, batch)):
            rows += len(chunk)
            payload: dict[Key, _Candidate] = {}
            for item in chunk:
                if isinstance(item, RowError):
                    rejects.extend([(item.line, item.message)], rows=True)
                    continue
                org = organization_from_finess(item)
                org.setdefault("meta", {})["tag"] = [*org["meta"].get("tag", []), FINESS_TAG]
                key = (org["resourceType"], org["id"])
                payload[key] = _Candidate(key, orjson.dumps(org), content_hash(org), item.line)
            structures += len(payload)
            if payload:
                writer.submit(list(payload.values()))
            rejects.extend(writer.drain_problems())
            report(ImportProgress("importing", rows, total))
        writer.finish()
        rejects.extend(writer.drain_problems())
        if structures:
            writer.deactivate(report)
    except BaseException:
        writer.abandon()
        raise
    finally:
        lanes.close()
        rejects.close()
    return _summary(writer, rejects, rows, structures)


# --------------------------------------------------------------------------------------------
# The import history: one record per run, the newest first, in the store's meta
# --------------------------------------------------------------------------------------------


@contextmanager
def _recorded(
    store: SqlStore, kind: str, files: Sequence[Path]
) -> Iterator[Callable[[ImportSummary], None]]:
    """Record the import run of the ``with`` block in the history: its outcome and counts
    once ``done(summary)`` is called, its error when the block raises."""
    started_at = store.clock().astimezone(UTC)
    started = time.perf_counter()
    entry: dict[str, Any] = {
        "time": started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "kind": kind,
        "files": [f.name for f in files],
    }

    def done(summary: ImportSummary) -> None:
        entry.update(
            outcome="ok",
            rows=summary.rows,
            persons=summary.persons,
            created=summary.created,
            updated=summary.updated,
            unchanged=summary.unchanged,
            deactivated=summary.deactivated,
            rejected=summary.rejected,
            invalid=summary.invalid,
            run=summary.run,
        )

    try:
        yield done
    except BaseException as exc:
        entry.update(outcome="failed", error=(str(exc) or type(exc).__name__)[:300])
        entry["seconds"] = round(time.perf_counter() - started, 3)
        record_import(store, entry)
        raise
    entry["seconds"] = round(time.perf_counter() - started, 3)
    record_import(store, entry)


def record_import(store: SqlStore, entry: Mapping[str, Any], attempts: int = 10) -> bool:
    """Add one run to the import history (the last :data:`KEPT_RUNS`, newest first), by
    compare-and-swap so concurrent imports lose none; never raises (the import itself is
    done): returns whether it was recorded (https://annuaire.sante.fr/web/site-pro/extractions-publiques)."""
    try:
        for _ in range(attempts):
            current = store.get_meta(RUNS_META)
            runs = _parse_runs(current)
            value = orjson.dumps([dict(entry), *runs][:KEPT_RUNS]).decode()
            if store.swap_meta(RUNS_META, current, value) == current:
                return True
    except Exception:  # the history is a convenience: an import is never failed for it
        log.warning("could not record the import run in the history", exc_info=True)
        return False
    log.warning("could not record the import run in the history: too many concurrent changes")
    return False


def import_runs(store: SqlStore) -> list[dict[str, Any]]:
    """The recorded import runs, newest first (https://annuaire.sante.fr/web/site-pro/extractions-publiques)."""
    return _parse_runs(store.get_meta(RUNS_META))


def _parse_runs(raw: str | None) -> list[dict[str, Any]]:
    if not raw:
        return []
    try:
        runs = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


# --------------------------------------------------------------------------------------------
# Reading and mapping (in a child process when parallel): batches of serialised candidates
# --------------------------------------------------------------------------------------------


#: One mapped resource: (type, id, content hash, first line of its person, JSON body).
_Mapped = tuple[str, str, str, int, bytes]


@dataclass(frozen=True, slots=True)
class _Batch:
    """A batch of mapped persons, and the rows rejected since the previous batch."""

    phase: str
    done: int  # progress within the phase
    total: int | None
    rows: int  # data rows read so far by the main pass
    persons: int
    rejects: list[tuple[int, str]]
    payload: list[_Mapped]  # the batch's resources, each (type, id) once


_Message = ImportProgress | _Batch


def _produce(
    path: Path, known: frozenset[str] | None, batch: int, sides: Sequence[Path] = ()
) -> Generator[_Message, None, None]:
    """Check the file, index the side files, then map: the persons with adjacent rows, then
    the scattered ones."""
    total, scattered = yield from _check(path)
    side = SideIndex()
    try:
        yield from _map(path, known, batch, total, scattered, sides, side)
    finally:
        side.close()


def _map(
    path: Path,
    known: frozenset[str] | None,
    batch: int,
    total: int,
    scattered: frozenset[str],
    sides: Sequence[Path],
    side: SideIndex,
) -> Generator[_Message, None, None]:
    rows = 0
    rejected: list[tuple[int, str]] = []
    loaded: list[int] = []
    for side_path in sides:
        side.load(
            side_path,
            lambda member, error: rejected.append((error.line, f"{member}: {error.message}")),
            loaded.append,
        )
        while loaded:
            yield ImportProgress("side files", loaded.pop(), None)

    def adjacent() -> Iterator[Row]:
        nonlocal rows
        for item in read_activities(path, known_professions=known):
            rows += 1
            if isinstance(item, RowError):
                rejected.append((item.line, item.message))
            elif item.person_key not in scattered:
                yield item

    def taken() -> list[tuple[int, str]]:
        out = rejected[:]
        rejected.clear()
        return out

    for group in _batches(_persons(adjacent()), batch):
        yield _Batch("importing", rows, total, rows, len(group), taken(), _mapped(group, side))
    yield _Batch("importing", rows, total, rows, 0, taken(), [])
    ordered = sorted(scattered)
    for start in range(0, len(ordered), SCATTERED_PER_PASS):
        wanted = set(ordered[start : start + SCATTERED_PER_PASS])
        for group in _batches(iter(_gather(path, known, wanted)), batch):
            yield _Batch("merging", start, len(ordered), rows, len(group), [], _mapped(group, side))
        yield _Batch("merging", start + len(wanted), len(ordered), rows, 0, [], [])


def _check(path: Path) -> Generator[ImportProgress, None, tuple[int, frozenset[str]]]:
    """First pass: the data row count and the persons whose rows are not all adjacent.

    Only the layout and each line's IDNPS are read (the rows are checked by the second pass;
    a rejected row's key at worst makes its person taken as scattered, which is only slower).
    The set of persons seen is the import's only structure that grows with the file; it is
    dropped before the writes start.
    """
    seen: set[bytes] = set()
    scattered: set[bytes] = set()
    previous = None
    count = 0
    for count, (_, key) in enumerate(scan_persons(path), start=1):
        if count % 50_000 == 0:
            yield ImportProgress("checking", count, None)
        if key != previous:
            if key in seen:
                scattered.add(key)
            else:
                seen.add(key)
            previous = key
    yield ImportProgress("checking", count, count)
    return count, frozenset(k.decode("latin-1") for k in scattered)


def _mapped(
    persons: list[tuple[int, list[Mapping[str, str]]]], side: SideIndex | None = None
) -> list[_Mapped]:
    """The resources of a batch of persons, tagged, hashed and serialised, each (type, id)
    once: a structure shared by several persons of the batch is taken from the first."""
    out: dict[Key, _Mapped] = {}
    for line, cells in persons:
        resources = resources_for_person(cells)
        if side is not None and side.rows:
            resources = side.enrich(resources, cells[0][IDNAT_PP])
        for resource in resources:
            key = (resource["resourceType"], resource["id"])
            if key not in out:
                digest = content_hash(resource)
                out[key] = (key[0], key[1], digest, line, orjson.dumps(_tagged(resource)))
    return list(out.values())


def _candidates(payload: list[_Mapped]) -> list[_Candidate]:
    return [
        _Candidate((res_type, res_id), body, digest, line)
        for res_type, res_id, digest, line, body in payload
    ]


def _from_child(
    path: Path, known: frozenset[str] | None, batch: int, sides: Sequence[Path] = ()
) -> Generator[_Message, None, None]:
    """:func:`_produce` run in a child Python process, its messages read from a pipe.

    A fresh interpreter (not a fork: no thread, lock or database connection inherited, and
    unlike multiprocessing's spawn it does not re-run the caller's ``__main__``).
    """
    read_fd, write_fd = os.pipe()
    args = orjson.dumps(
        {
            "path": str(path),
            "known": sorted(known) if known is not None else None,
            "batch": batch,
            "sides": [str(p) for p in sides],
        }
    ).decode()
    package_root = str(Path(__file__).resolve().parents[3])  # the folder holding maison/
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, args, str(write_fd)],
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            env=env,
        )
    finally:
        os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as stream:
            while True:
                head = stream.read(4)
                body = stream.read(int.from_bytes(head, "big")) if len(head) == 4 else b""
                if not body:
                    code = child.wait()
                    raise RuntimeError(f"the extraction reader process ended unexpectedly ({code})")
                message = pickle.loads(body)
                if isinstance(message, tuple):
                    kind, text = message
                    if kind == "end":
                        return
                    raise ExtractionError(text) if kind == "extraction" else RuntimeError(text)
                yield message
    finally:
        if child.poll() is None:
            child.terminate()
        child.wait()


_CHILD_CODE: Final = "from maison.services.annuaire.importer import _child_main; _child_main()"


def _child_main() -> None:
    """The child process: every message of :func:`_produce`, then ``end`` or the error, as
    length-prefixed pickles on the pipe whose descriptor is the second argument."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops us
    args = orjson.loads(sys.argv[1])
    known = frozenset(args["known"]) if args["known"] is not None else None
    out = os.fdopen(int(sys.argv[2]), "wb")

    def send(message: object) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(4, "big") + data)

    try:
        try:
            sides = [Path(p) for p in args["sides"]]
            for message in _produce(Path(args["path"]), known, int(args["batch"]), sides):
                send(message)
        except ExtractionError as exc:
            send(("extraction", str(exc)))
        except BrokenPipeError:
            raise
        except Exception as exc:  # reported to the parent, which raises it
            send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            send(("end", ""))
        out.close()
    except BrokenPipeError:  # the parent is gone: nobody to tell
        os._exit(1)


def _persons(rows: Iterable[Row]) -> Iterator[tuple[int, list[Mapping[str, str]]]]:
    """(first line, cells of each row) per run of consecutive rows of one person."""
    key: str | None = None
    line = 0
    cells: list[Mapping[str, str]] = []
    for row in rows:
        if row.person_key != key:
            if cells:
                yield line, cells
            key, line, cells = row.person_key, row.line, []
        cells.append(row.values)
    if cells:
        yield line, cells


def _gather(
    path: Path, known: Collection[str] | None, wanted: set[str]
) -> list[tuple[int, list[Mapping[str, str]]]]:
    """All the rows of the ``wanted`` persons, by person, in order of first appearance."""
    found: dict[str, tuple[int, list[Mapping[str, str]]]] = {}
    for item in read_activities(path, known_professions=known):
        if isinstance(item, Row) and item.person_key in wanted:
            found.setdefault(item.person_key, (item.line, []))[1].append(item.values)
    return list(found.values())


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _tagged(resource: Resource) -> Resource:
    """The (freshly mapped) resource, given the import tag in its ``meta``."""
    meta = resource.setdefault("meta", {})
    meta["tag"] = [*meta.get("tag", []), IMPORT_TAG]
    return resource


class _Rejects:
    """The reject file, opened at the first rejected row (``line N: reason`` per line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self.written = False
        self._started = False
        self._out: IO[str] | None = None

    def start(self) -> None:
        """The file checked out: a reject file left by an earlier import goes."""
        if not self._started:
            self._started = True
            self.path.unlink(missing_ok=True)

    def extend(self, problems: Iterable[tuple[int, str]], *, rows: bool = False) -> None:
        """Write ``line N: reason`` lines (``rows``: each is a rejected row, counted)."""
        for line, message in problems:
            if self._out is None:
                self._out = self.path.open("w", encoding="utf-8")
                self.written = True
            self._out.write(f"line {line}: {message}\n")
            if rows:
                self.rows += 1

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


class _Writer:
    """Writes batches through the store's bulk writers, one transaction each: on PostgreSQL
    two batches are in the database at once (one's statements run while the other's rows are
    prepared), and the next batch is mapped meanwhile. A structure (Organization) shared with
    a batch still in flight is left to that batch, so no two transactions touch one row."""

    def __init__(
        self,
        store: SqlStore,
        ledger: ImportLedger,
        run: int,
        validate: Validate | None,
        source: str = SOURCE,
        lanes: Sequence[Lane] = (),
    ) -> None:
        self.source = source
        self.store = store
        self.ledger = ledger
        self.run = run
        self.validate = validate
        self.counts = _Counts()
        self._lanes: Sequence[Lane] = lanes or (store.write_future,)
        self._submitted = 0
        # batches in flight, oldest first, with the structures each writes
        self._pending: deque[tuple[Future[_Counts], set[Key]]] = deque()
        self._problems: list[tuple[int, str]] = []
        self._refused: set[Key] = set()  # refused by the validator in this run (writer threads)

    # -- main thread -------------------------------------------------------------------
    def submit(self, work: list[_Candidate]) -> None:
        """Queue the write of a batch, then wait for the oldest in flight when every writer is
        busy (so batches are mapped or decoded while others are written)."""
        in_flight = set().union(*(keys for _, keys in self._pending))
        work = [c for c in work if c.key not in in_flight]
        shared = {c.key for c in work if c.key[0] == "Organization"}
        lane = self._lanes[self._submitted % len(self._lanes)]
        self._submitted += 1
        self._pending.append((lane(lambda tx: self._apply(tx, work)), shared))
        while len(self._pending) > len(self._lanes):
            self._wait()

    def finish(self) -> None:
        """Wait for the batches in flight."""
        while self._pending:
            self._wait()

    def abandon(self) -> None:
        """Wait for the batches in flight, whatever their outcome (the import is failing)."""
        while self._pending:
            future, _ = self._pending.popleft()
            future.exception()

    def drain_problems(self) -> list[tuple[int, str]]:
        """The validation problems reported so far (line, message)."""
        out, self._problems = self._problems, []
        return out

    def _wait(self) -> None:
        future, _ = self._pending[0]
        try:
            counts = future.result()
        finally:
            self._pending.popleft()
        self._problems.extend(counts.problems)
        counts.problems = []
        self.counts.add(counts)

    def deactivate(self, report: Progress, page: int = 500) -> None:
        """Make inactive what the ledger holds and this run did not see."""
        done = 0
        missing = self.ledger.missing(self.source, self.run, page)
        while keys := list(islice(missing, page)):
            self.counts.add(self.store.write(partial(self._retire, keys=keys)))
            done += len(keys)
            report(ImportProgress("deactivating", done, None))
        report(ImportProgress("deactivating", done, done))

    # -- writer thread: inside one transaction -----------------------------------------
    def _apply(self, tx: SqlTx, work: list[_Candidate]) -> _Counts:
        counts = _Counts()
        known = self.ledger.entries(tx, self.source, [c.key for c in work])
        owned = self._owned_elsewhere(tx, work)
        # what this source wrote of them is no longer its own (never made inactive by it)
        self.ledger.forget(tx, self.source, [k for k in owned if k in known])
        changed: list[_Candidate] = []
        same: list[Key] = []
        for c in work:
            if c.key in owned:
                continue  # the FINESS import holds this structure: its content wins
            entry = known.get(c.key)
            if entry is not None and entry.run == self.run:
                continue  # a structure already written or seen by an earlier batch of this run
            if entry is not None and entry.content_hash == c.digest and not entry.retired:
                same.append(c.key)
            elif c.key not in self._refused:
                changed.append(c)
        if self.validate is not None:
            accepted = [c for c in changed if self._valid(c, counts)]
            # a refused change keeps the previous version, still held by the source
            kept = [c.key for c in changed if c.key in known and c.key in self._refused]
            self.ledger.touch(tx, self.source, self.run, kept)
            changed = accepted
        present = self.ledger.existing(tx, [c.key for c in changed if c.key not in known])
        replaced: list[tuple[str, str, str]] = []
        added: list[tuple[str, str, str]] = []
        for c in changed:
            res_type, res_id = c.key
            if c.key in known or c.key in present:
                tx.update(res_type, res_id, c.resource())
                counts.updated += 1
                replaced.append((res_type, res_id, c.digest))
            else:
                tx.create(res_type, c.resource(), res_id, fresh=True)
                counts.created += 1
                added.append((res_type, res_id, c.digest))
        self.ledger.mark(tx, self.source, self.run, replaced)
        self.ledger.mark(tx, self.source, self.run, added, new=True)
        self.ledger.touch(tx, self.source, self.run, same)
        counts.unchanged += len(same)
        return counts

    def _owned_elsewhere(self, tx: SqlTx, work: list[_Candidate]) -> set[Key]:
        """The Organizations of ``work`` the FINESS import holds (not retired), when this is
        the activity import: a structure's FINESS record is richer than what the activity
        rows say of it. The FINESS import takes them from the activity import's ledger, so
        that import never makes them inactive (https://finess.sante.gouv.fr/)."""
        if self.source == FINESS_SOURCE:  # the structures it holds are no longer the
            self.ledger.forget(tx, SOURCE, [c.key for c in work])  # activity import's
            return set()
        if self.source != SOURCE:
            return set()
        keys = [c.key for c in work if c.key[0] == "Organization"]
        held = self.ledger.entries(tx, FINESS_SOURCE, keys) if keys else {}
        return {k for k, e in held.items() if not e.retired}

    def _valid(self, c: _Candidate, counts: _Counts) -> bool:
        """Whether the validator accepts ``c`` (a refusal is reported with the person's line)."""
        assert self.validate is not None
        errors = list(self.validate(c.resource()))
        if not errors:
            return True
        self._refused.add(c.key)
        counts.invalid += 1
        counts.problems.append(
            (c.line, f"{c.key[0]}/{c.key[1]} not written: " + "; ".join(errors[:5]))
        )
        return False

    def _retire(self, tx: SqlTx, keys: list[Key]) -> _Counts:
        counts = _Counts()
        retired: list[tuple[str, str, str]] = []
        gone: list[Key] = []
        live: dict[Key, Stored] = {}
        for res_type in sorted({t for t, _ in keys}):
            found = tx.read_many(res_type, [i for t, i in keys if t == res_type])
            live.update(((res_type, i), stored) for i, stored in found.items())
        for res_type, res_id in keys:
            current = live.get((res_type, res_id))
            if current is None or current.resource is None:
                gone.append((res_type, res_id))  # deleted meanwhile: nothing to make inactive
                continue
            body = current.resource
            if body.get("active") is not False:
                meta = {
                    k: v
                    for k, v in body.get("meta", {}).items()
                    if k not in ("versionId", "lastUpdated")
                }
                body = {**body, "meta": meta, "active": False}
                tx.update(res_type, res_id, body)
                counts.deactivated += 1
            retired.append((res_type, res_id, content_hash(body)))
        self.ledger.retire(tx, self.source, retired)
        self.ledger.forget(tx, self.source, gone)
        return counts


__all__ = [
    "FINESS_SOURCE",
    "IMPORT_TAG",
    "IMPORT_TAG_SYSTEM",
    "SOURCE",
    "ImportProgress",
    "ImportSummary",
    "Validate",
    "import_extraction",
    "import_finess",
]
