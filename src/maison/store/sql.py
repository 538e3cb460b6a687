"""The SQL adapter of the store: SQLite (embedded default) and PostgreSQL through SQLAlchemy Core.

https://hl7.org/fhir/R4/http.html (versions, history, conditional semantics live above this).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import math
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Table,
    and_,
    any_,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import ConnectionPoolEntry

from maison.fhir.definitions import CONFORMANCE_TYPES
from maison.fhir.errors import Category, FhirError
from maison.fhir.search import Cursor, SearchQuery
from maison.store.crypto import DataKeyError, Keyring
from maison.store.interface import HistoryPage, SearchPage, Stored
from maison.store.migrate import upgrade
from maison.store.schema import (
    INDEX_COLUMNS,
    INDEX_ROW_COLUMNS,
    INDEX_TABLES,
    idx_reference,
    idx_token,
    resource,
    resource_history,
    store_meta,
)
from maison.store.search_sql import (
    COLUMN_PARAMS,
    CURRENT,
    after,
    criterion,
    new_statement,
    order_by,
    plan,
    sort_columns,
    system_conditions,
)

log = logging.getLogger(__name__)
_deadline = threading.local()  # SQLite: when the running statement must be interrupted
T = TypeVar("T")
MAX_INCLUDED = 1000  # included resources per page


class IndexValuesLike(Protocol):
    """What the indexer returns: one list of row tuples per search-parameter type."""

    string: list[tuple[Any, ...]]
    token: list[tuple[Any, ...]]
    date: list[tuple[Any, ...]]
    number: list[tuple[Any, ...]]
    quantity: list[tuple[Any, ...]]
    reference: list[tuple[Any, ...]]
    uri: list[tuple[Any, ...]]


Indexer = Callable[[dict[str, Any]], IndexValuesLike]


def format_instant(moment: datetime) -> str:
    """An instant as FHIR ``instant`` text in UTC with microseconds (sortable as text)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_AHEAD_KEPT = 512  # index extractions kept for writes to come (one per resource)
_STAMP = ("versionId", "lastUpdated")


def _ahead_key(body: dict[str, Any]) -> bytes | None:
    """A body's content without its version stamp, as canonical JSON (None if it has none)."""
    meta = body.get("meta")
    if isinstance(meta, dict) and any(k in meta for k in _STAMP):
        rest = {k: v for k, v in meta.items() if k not in _STAMP}
        body = {k: v for k, v in body.items() if k != "meta"}
        if rest:
            body["meta"] = rest
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return None


@dataclass
class StoreSettings:
    """Tunables of the SQL store."""

    statement_timeout_ms: int = 30_000
    sqlite_synchronous: str = "FULL"  # FULL: an acknowledged write survives power loss too
    pool_size: int = 8


class SqlStore:
    """A resource store on one SQL database (https://hl7.org/fhir/R4/http.html)."""

    def __init__(
        self,
        url: str,
        keyring: Keyring,
        indexer: Indexer,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] | None = None,
        settings: StoreSettings | None = None,
    ) -> None:
        import uuid

        self.settings = settings or StoreSettings()
        self.keyring = keyring
        self.indexer = indexer
        self.clock = clock
        self.new_id = new_id or (lambda: str(uuid.uuid4()))
        self.engine = _make_engine(url, self.settings)
        self.dialect = self.engine.dialect.name
        self._committer: GroupCommitter | None = None
        self._written = 0  # resources written by this process (drives SQLite ANALYZE)
        self._analyzed_at = 0
        database = self.engine.url.database if self.dialect == "sqlite" else None
        self._lock_path = f"{database}.writelock" if database and database != ":memory:" else None
        self._committer_lock = threading.Lock()
        #: index rows extracted before their write unit, by body (``index_ahead``)
        self._ahead: OrderedDict[bytes, Any] = OrderedDict()
        self._ahead_lock = threading.Lock()

    def index_ahead(self, body: dict[str, Any]) -> None:
        """Extract the index rows of a resource about to be written (its id set, not yet
        stamped with a version) outside the store's serialised writer: the write then finds
        them done if it stores that very body. Extraction is pure work on the body; the rows
        it takes from the version stamp (``_lastUpdated``) are columns, not index rows
        (https://hl7.org/fhir/R4/search.html#ptypes)."""
        key = _ahead_key(body)
        if key is None:
            return
        indexer = self.indexer
        values = indexer(body)
        with self._ahead_lock:
            self._ahead[key] = (indexer, values)
            while len(self._ahead) > _AHEAD_KEPT:
                self._ahead.popitem(last=False)

    def _index_values(self, body: dict[str, Any]) -> Any:
        """The index rows of a stamped body: extracted ahead, else now."""
        if self._ahead:
            key = _ahead_key(body)
            if key is not None:
                with self._ahead_lock:
                    found = self._ahead.pop(key, None)
                if found is not None and found[0] is self.indexer:  # definitions unchanged
                    return found[1]
        return self.indexer(body)

    def migrate(self) -> None:
        """Apply the Alembic migrations (idempotent)."""
        upgrade(self.engine)

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[SqlTx]:
        """An atomic unit of work: everything in it commits together or not at all."""
        try:
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    conn = conn.execution_options(maison_write=write)
                elif not write:
                    # READ COMMITTED snapshots per statement anyway: skip BEGIN/COMMIT trips
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                with conn.begin():
                    tx = SqlTx(self, conn)
                    yield tx
                    tx.flush()
        except DBAPIError as exc:
            raise db_error(exc) from exc

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Serialise writers across processes on SQLite with a blocking file lock: the kernel
        wakes the next writer at once, where SQLite's busy handler would sleep up to 100 ms."""
        if self._lock_path is None:
            yield
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def read(self, fn: Callable[[SqlTx], T]) -> T:
        """Run ``fn`` in a read-only unit; a pooled connection found dead (database restarted)
        is replaced once, since reading again is harmless (writes answer 503 instead)."""
        _deadline.at = time.monotonic() + self.settings.statement_timeout_ms / 1000
        try:
            return self._read(fn)
        finally:
            _deadline.at = math.inf

    def _read(self, fn: Callable[[SqlTx], T]) -> T:
        try:
            with self.transaction(write=False) as tx:
                return fn(tx)
        except FhirError as err:
            if (
                not isinstance(err.__cause__, DBAPIError)
                or not err.__cause__.connection_invalidated
            ):
                raise
        with self.transaction(write=False) as tx:
            return fn(tx)

    def write(self, fn: Callable[[SqlTx], T]) -> T:
        """Run ``fn`` in its own savepoint of a group-committed write transaction: concurrent
        writers share one commit (one fsync), and each acknowledgement waits for it."""
        return self.write_future(fn).result()

    def write_future(self, fn: Callable[[SqlTx], T]) -> Future[T]:
        """Queue ``fn`` for the group-commit writer; the future resolves once it is durable."""
        if self._committer is None:
            with self._committer_lock:
                if self._committer is None:
                    self._committer = GroupCommitter(self)
        return self._committer.submit_future(fn)

    @contextmanager
    def bulk_writers(
        self, count: int
    ) -> Iterator[list[Callable[[Callable[[SqlTx], T]], Future[T]]]]:
        """``count`` independent writers for a bulk load whose units never touch the same
        rows: each its own connection and thread on PostgreSQL, so one unit's statements run
        in the database while the next is prepared; the one group-commit writer on SQLite
        (a single writer anyway). Units must not depend on each other's uncommitted work."""
        if self.dialect != "postgresql" or count <= 1:
            yield [self.write_future]
            return
        committers = [GroupCommitter(self, max_batch=1) for _ in range(count)]
        try:
            yield [c.submit_future for c in committers]
        finally:
            for c in committers:
                c.stop()

    def check_keys(self, where: str) -> None:
        """Refuse to run with a keyring that lacks a key the stored data was encrypted with;
        record the keys in use (https://hl7.org/fhir/R4/security.html, HDS: data at rest)."""
        recorded = [k for k in (self.get_meta("data_key_ids") or "").split(",") if k]
        missing = [k for k in recorded if k not in self.keyring.key_ids()]
        if missing:
            raise DataKeyError(
                f"The stored data is encrypted with data key(s) {', '.join(missing)}, which are "
                f"not in {where}. Start maison with the --state folder (or data folder) that "
                "holds them; a new key was not used."
            )
        self.keyring.persist()
        current = self.keyring.current.hex()
        if current not in recorded:
            self.set_meta("data_key_ids", ",".join([*recorded, current]))

    def get_meta(self, key: str) -> str | None:
        """A fact about the store itself (a plain read: no write lock, so it may be called while
        this process's writer holds the SQLite lock). A pooled connection found dead (the
        database restarted) is replaced once, as for :meth:`read`."""
        try:
            return self._get_meta(key)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        return self._get_meta(key)

    def _get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            conn = conn.execution_options(maison_write=False)
            return conn.execute(
                select(store_meta.c.value).where(store_meta.c.key == key)
            ).scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        """Record a fact about the store itself."""
        with self.engine.begin() as conn:
            conn.execute(delete(store_meta).where(store_meta.c.key == key))
            conn.execute(store_meta.insert().values(key=key, value=value))

    def swap_meta(self, key: str, expected: str | None, value: str) -> str | None:
        """Record ``value`` under ``key`` only if the current value is ``expected`` (None:
        absent), atomically across processes on both databases; returns the value found (so
        the swap happened when it equals ``expected``). For single-use and rotation records."""
        with self.write_lock(), self.engine.begin() as conn:
            if self.dialect == "postgresql":  # serialise the swaps of this key
                digest = hashlib.blake2b(f"meta|{key}".encode(), digest_size=8).digest()
                lock = int.from_bytes(digest, "big", signed=True)
                conn.execute(select(func.pg_advisory_xact_lock(lock)))
            current = conn.execute(
                select(store_meta.c.value).where(store_meta.c.key == key)
            ).scalar_one_or_none()
            if current == expected:
                conn.execute(delete(store_meta).where(store_meta.c.key == key))
                conn.execute(store_meta.insert().values(key=key, value=value))
        return current

    def analyze(self) -> None:
        """Refresh the planner's statistics. SQLite has no autovacuum to do it, and without
        them it drives searches from the wrong index (a 1000x difference); PostgreSQL's
        autovacuum keeps them, this only hastens it after bulk loads."""
        with self.write_lock(), self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA analysis_limit=1000")  # sampled: milliseconds
                conn.exec_driver_sql("ANALYZE")
            else:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
            conn.commit()
        self._analyzed_at = self._written

    def _maybe_analyze(self, written: int) -> None:
        """After writes: re-analyze (SQLite) once the data grew by half since the last time."""
        self._written += written
        if self.dialect == "sqlite" and self._written - self._analyzed_at > max(
            1000, self._analyzed_at // 2
        ):
            try:
                self.analyze()
            except DBAPIError:
                log.warning("ANALYZE failed; search plans may be slow", exc_info=True)

    def ping(self) -> None:
        """Check that the database answers."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def conformance_rev(self) -> str | None:
        """Changes whenever an installed conformance resource is written."""
        return self.get_meta("conformance_rev")

    def conformance_resources(self) -> list[dict[str, Any]]:
        """Every current StructureDefinition, ValueSet, CodeSystem and SearchParameter stored."""
        r, h = resource.c, resource_history.c
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(r.res_type, r.res_id, r.version, h.content)
                .select_from(CURRENT)
                .where(r.res_type.in_(sorted(CONFORMANCE_TYPES)), r.deleted == false())
            ).all()
        for row in rows:
            raw = self.keyring.decrypt(
                row.content, f"{row.res_type}/{row.res_id}/{row.version}".encode()
            )
            out.append(orjson.loads(raw))
        return out

    def reindex_ids(self, res_type: str, after: str | None, limit: int) -> list[str]:
        """Ids of current resources of a type, in id order, after ``after`` (for reindexing)."""
        r = resource.c
        conds = [r.res_type == res_type, r.deleted == false()]
        if after is not None:
            conds.append(r.res_id > after)
        with self.engine.connect() as conn:
            return [
                row[0]
                for row in conn.execute(
                    select(r.res_id).where(*conds).order_by(r.res_id).limit(limit)
                )
            ]

    def count(self) -> int:
        """How many live resources are stored."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(resource).where(resource.c.deleted == false())
                ).scalar_one()
            )

    def close(self) -> None:
        """Release all connections."""
        if self._committer is not None:
            self._committer.stop()
        self.engine.dispose()


def db_error(exc: DBAPIError) -> FhirError | DBAPIError:
    """A database failure as an error value when it is the client's to retry."""
    text = str(exc.orig).lower()
    if exc.connection_invalidated:
        return FhirError(Category.TIMEOUT, "The database connection was lost; retry the request")
    if isinstance(exc, IntegrityError):
        return FhirError(Category.CONFLICT, "Conflicting concurrent write; retry the request")
    if "locked" in text or "busy" in text:
        return FhirError(Category.TIMEOUT, "The store is busy; retry the request")
    if "statement timeout" in text or "canceling statement" in text or "interrupted" in text:
        return FhirError(Category.TIMEOUT, "The query took too long and was stopped")
    if "could not serialize" in text or "deadlock" in text:
        return FhirError(Category.CONFLICT, "Conflicting concurrent write; retry the request")
    return exc


class GroupCommitter:
    """One writer thread that commits the work of concurrent requests together.

    Each unit of work runs in its own SAVEPOINT, so a failing request is rolled back alone; the
    results are released only once the shared COMMIT has returned (durable), failures at once.
    """

    def __init__(self, store: SqlStore, max_batch: int = 64) -> None:
        self.store = store
        self.max_batch = max_batch
        self.queue: queue.SimpleQueue[tuple[Callable[[SqlTx], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self.thread = threading.Thread(target=self._loop, name="maison-writer", daemon=True)
        self.thread.start()

    def submit_future(self, fn: Callable[[SqlTx], T]) -> Future[T]:
        """Queue one unit of work; its future resolves once committed (or failed)."""
        fut: Future[T] = Future()
        self.queue.put((fn, fut))
        return fut

    def stop(self) -> None:
        """Finish queued work and end the writer thread."""
        self.queue.put(None)
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            self._run([item])

    def _more(self, batch: list[tuple[Callable[[SqlTx], Any], Future[Any]]]) -> None:
        """Add the work queued meanwhile to ``batch``, up to ``max_batch``."""
        while len(batch) < self.max_batch:
            try:
                nxt = self.queue.get_nowait()
            except queue.Empty:
                return
            if nxt is None:
                self.queue.put(None)
                return
            batch.append(nxt)

    def _run(self, batch: list[tuple[Callable[[SqlTx], Any], Future[Any]]]) -> None:
        done: list[tuple[Future[Any], Any]] = []
        pending = [fut for _, fut in batch]
        written = 0
        try:
            with self.store.write_lock(), self.store.engine.connect() as conn:
                # taken once the lock is held: what queued while another process held it
                # joins this commit (one fsync for all) instead of waiting for the next
                self._more(batch)
                pending = [fut for _, fut in batch]
                if self.store.dialect == "sqlite":
                    conn = conn.execution_options(maison_write=True)
                with conn.begin():
                    for fn, fut in batch:
                        savepoint = conn.begin_nested()
                        try:
                            tx = SqlTx(self.store, conn)
                            result = fn(tx)
                            tx.flush()
                        except BaseException as exc:  # the request's own failure
                            savepoint.rollback()
                            err = db_error(exc) if isinstance(exc, DBAPIError) else exc
                            fut.set_exception(err)
                            pending.remove(fut)
                        else:
                            savepoint.commit()
                            written += tx.written
                            done.append((fut, result))
        except BaseException as exc:  # the commit itself failed: nothing was acknowledged
            err = db_error(exc) if isinstance(exc, DBAPIError) else exc
            for fut in pending:
                if not fut.done():
                    fut.set_exception(err)
            return
        for fut, result in done:
            fut.set_result(result)
        self.store._maybe_analyze(written)


def _make_engine(url: str, settings: StoreSettings) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, pool_size=settings.pool_size, max_overflow=16)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: ConnectionPoolEntry) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
            cur.execute("PRAGMA busy_timeout=15000")
            cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA temp_store=MEMORY")
            # stored and searched strings are case-folded (URIs are case-sensitive anyway):
            # a case-sensitive LIKE lets 'prefix%' use the index as a range
            cur.execute("PRAGMA case_sensitive_like=ON")
            cur.close()
            # the statement timeout PostgreSQL has natively: checked every ~50k VM steps
            dbapi_conn.set_progress_handler(
                lambda: time.monotonic() > getattr(_deadline, "at", math.inf), 50_000
            )

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the lock up front; a read runs its single statement in autocommit,
            # and multi-statement reads call SqlTx.snapshot() to open a deferred transaction.
            if conn.get_execution_options().get("maison_write", True):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        # custom plans only: a search's selectivity lives in its values (an id, a code), which a
        # generic plan of a prepared statement cannot see (7 s instead of 14 ms at 1M)
        connect_args["options"] = (
            f"-c statement_timeout={settings.statement_timeout_ms} "
            "-c plan_cache_mode=force_custom_plan"
        )
    return create_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=16,
        pool_recycle=1800,  # no pre-ping (a round trip per checkout): lost links become 503
        connect_args=connect_args,
    )


_READ = (
    select(
        resource.c.version, resource.c.last_updated, resource.c.deleted, resource_history.c.content
    )
    .select_from(CURRENT)
    .where(resource.c.res_type == bindparam("res_type"), resource.c.res_id == bindparam("res_id"))
)
_CURRENT_ROW = select(resource.c.version, resource.c.deleted).where(
    resource.c.res_type == bindparam("res_type"), resource.c.res_id == bindparam("res_id")
)


@functools.lru_cache(maxsize=256)
def _referencing_statement(
    via: tuple[tuple[str, tuple[str, ...]], ...] | None, having: tuple[str, ...]
) -> Select[Any]:
    """The statement of :meth:`SqlTx.referencing` for one shape (the target and the tokens
    are bound parameters): built once, as building it cost more than running it. With
    ``via``, one branch per source type, each on the index that leads with (res_type, code):
    an OR of them made SQLite scan every reference to the target instead."""
    target_type: Any = bindparam("target_type")
    target_id: Any = bindparam("target_id")

    def branch(rtype: str | None, codes: tuple[str, ...] | None) -> Select[Any]:
        ref = idx_reference.alias(f"ref_{rtype or 'any'}").c
        conds: list[ColumnElement[bool]] = [
            ref.target_type == target_type,
            ref.target_id == target_id,
            not_(and_(ref.res_type == target_type, ref.res_id == target_id)),
        ]
        if rtype is not None and codes is not None:
            conds += [ref.res_type == rtype, ref.code.in_(codes)]
        for n, filtered in enumerate(having):
            if rtype is not None and filtered != rtype:
                continue
            tok = idx_token.alias(f"having_{n}").c
            holds = exists(
                select(tok.res_id).where(
                    tok.res_type == ref.res_type,
                    tok.res_id == ref.res_id,
                    tok.code == bindparam(f"token_code_{n}"),
                    tok.value == bindparam(f"token_value_{n}"),
                )
            )
            conds.append(holds if rtype is not None else or_(ref.res_type != filtered, holds))
        return select(ref.res_type.label("res_type"), ref.res_id.label("res_id")).where(*conds)

    if via is None:
        found = branch(None, None).subquery()
    else:
        found = union_all(*(branch(rtype, codes) for rtype, codes in via)).subquery()
    return (
        select(found.c.res_type, found.c.res_id)
        .distinct()
        .order_by(found.c.res_type, found.c.res_id)
    )


#: The stamp of :meth:`SqlTx.last_write`: the primary key's last entry, on either backend.
_LAST_WRITE = select(func.coalesce(func.max(resource_history.c.seq), 0))


@dataclass
class SqlTx:
    """Operations inside one database transaction; new rows are inserted in batches."""

    store: SqlStore
    conn: Connection
    _res_rows: list[dict[str, Any]] = field(default_factory=list)
    _hist_rows: list[dict[str, Any]] = field(default_factory=list)
    # index rows per kind, as tuples in INDEX_ROW_COLUMNS order (no dict per row: a resource
    # has dozens of them and building dicts was a sixth of the import time)
    _idx_rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    _pending: set[tuple[str, str]] = field(default_factory=set)
    # ids whose index rows are to be deleted, by type: done by flush, before the inserts, in
    # one statement per table (six per updated resource were a third of an update's time)
    _drops: dict[str, list[str]] = field(default_factory=dict)
    _now: str | None = None
    _snapshot: bool = False
    written: int = 0  # new resources inserted by this unit

    def snapshot(self) -> None:
        """Make the following reads see one consistent state (SQLite read-only units)."""
        if self._snapshot or self.store.dialect != "sqlite":
            return
        if not self.conn.get_execution_options().get("maison_write", True):
            self.conn.exec_driver_sql("BEGIN")
        self._snapshot = True

    def now(self) -> str:
        """The instant stamped on every version written in this transaction."""
        if self._now is None:
            self._now = format_instant(self.store.clock())
        return self._now

    # -- writing -------------------------------------------------------------------------
    def flush(self) -> None:
        """Send the batched index deletions, then the batched inserts, to the database."""
        if self._drops:
            self._delete_index_rows()
        if self._res_rows:
            self._insert(resource, self._res_rows)
            self.written += len(self._res_rows)
            self._res_rows = []
        if self._hist_rows:
            self._insert(resource_history, self._hist_rows)
            self._hist_rows = []
        for kind, rows in self._idx_rows.items():
            if rows:
                self._insert_tuples(INDEX_TABLES[kind], INDEX_ROW_COLUMNS[kind], rows)
        self._idx_rows = {}
        self._pending.clear()

    def _insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert many rows: COPY on PostgreSQL (several times cheaper), executemany elsewhere."""
        if self.store.dialect != "postgresql" or len(rows) < 8:
            self.conn.execute(table.insert(), rows)
            return
        cols = [c.name for c in table.columns if c.name in rows[0]]
        raw: Any = self.conn.connection.dbapi_connection
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([row[c] for c in cols])

    def _insert_tuples(
        self, table: Table, cols: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert many rows given as tuples in ``cols`` order (COPY on PostgreSQL)."""
        if self.store.dialect == "postgresql" and len(rows) >= 8:
            raw: Any = self.conn.connection.dbapi_connection
            with (
                raw.cursor() as cur,
                cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        sql = (
            f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
        )
        self.conn.exec_driver_sql(sql, rows)

    def _seal(self, res_type: str, res_id: str, version: int, body: dict[str, Any]) -> bytes:
        raw = orjson.dumps(body)
        return self.store.keyring.encrypt(raw, f"{res_type}/{res_id}/{version}".encode())

    def _stamp(self, body: dict[str, Any], res_id: str, version: int) -> dict[str, Any]:
        meta = dict(body.get("meta") or {})
        meta["versionId"] = str(version)
        meta["lastUpdated"] = self.now()
        out = {"resourceType": body["resourceType"], "id": res_id, "meta": meta}
        for k, v in body.items():
            if k not in out:
                out[k] = v
        return out

    def _queue_index(self, res_type: str, res_id: str, body: dict[str, Any]) -> None:
        values = self.store._index_values(body)
        key = (res_type, res_id)
        buckets = self._idx_rows
        for kind in INDEX_COLUMNS:
            rows = getattr(values, kind, None)
            if not rows:
                continue
            bucket = buckets.setdefault(kind, [])
            bucket.extend((*key, *row, None) for row in rows if row[0] not in COLUMN_PARAMS)
        for kind, group, row in getattr(values, "composite", ()):
            buckets.setdefault(kind, []).append((*key, *row, group))

    def _drop_index(self, res_type: str, res_id: str) -> None:
        """Queue the deletion of a resource's index rows (the next flush does it, before it
        inserts the new ones; a read of the resource meanwhile flushes first)."""
        self._drops.setdefault(res_type, []).append(res_id)
        self._pending.add((res_type, res_id))

    def _delete_index_rows(self) -> None:
        drops, self._drops = self._drops, {}
        for res_type, ids in drops.items():
            unique = sorted(set(ids))
            for table in INDEX_TABLES.values():
                if self.store.dialect == "postgresql":
                    # one array parameter: one short statement, whatever the count
                    matching = table.c.res_id == any_(
                        bindparam("ids", unique, type_=postgresql.ARRAY(String))
                    )
                    self.conn.execute(delete(table).where(table.c.res_type == res_type, matching))
                    continue
                for start in range(0, len(unique), 500):
                    self.conn.execute(
                        delete(table).where(
                            table.c.res_type == res_type,
                            table.c.res_id.in_(unique[start : start + 500]),
                        )
                    )

    def _write_version(
        self, res_type: str, res_id: str, version: int, body: dict[str, Any] | None, method: str
    ) -> dict[str, Any]:
        content = self._seal(res_type, res_id, version, body) if body is not None else None
        row = {
            "res_type": res_type,
            "res_id": res_id,
            "version": version,
            "last_updated": self.now(),
            "deleted": body is None,
        }
        self._hist_rows.append({**row, "method": method, "content": content})
        return row

    def _touch(self, res_type: str) -> None:
        """Record that installed definitions changed, so every server process reloads them."""
        if res_type in CONFORMANCE_TYPES:
            self.conn.execute(delete(store_meta).where(store_meta.c.key == "conformance_rev"))
            self.conn.execute(
                store_meta.insert().values(key="conformance_rev", value=self.store.new_id())
            )

    def create(
        self,
        res_type: str,
        body: dict[str, Any],
        res_id: str | None = None,
        fresh: bool = False,
    ) -> Stored:
        """Store a new resource with version 1 (``fresh``: the id was just generated)."""
        self._touch(res_type)
        if res_id is None:
            res_id = self.store.new_id()
        elif not fresh and self.read(res_type, res_id) is not None:
            raise FhirError(Category.CONFLICT, f"{res_type}/{res_id} already exists")
        stamped = self._stamp(body, res_id, 1)
        self._res_rows.append(self._write_version(res_type, res_id, 1, stamped, "POST"))
        self._pending.add((res_type, res_id))
        self._queue_index(res_type, res_id, stamped)
        return Stored(res_type, res_id, 1, self.now(), False, stamped, "POST")

    def update(
        self,
        res_type: str,
        res_id: str,
        body: dict[str, Any],
        expected_version: int | None = None,
    ) -> tuple[Stored, bool]:
        """Store a new version, creating the resource when absent (update-as-create)."""
        self._touch(res_type)
        current = self._current_row(res_type, res_id, lock=True)
        if current is None:
            if expected_version is not None:
                raise FhirError(
                    Category.PRECONDITION,
                    f"{res_type}/{res_id} does not exist, so version {expected_version} "
                    "in If-Match cannot match",
                )
            stamped = self._stamp(body, res_id, 1)
            self._res_rows.append(self._write_version(res_type, res_id, 1, stamped, "PUT"))
            self._pending.add((res_type, res_id))
            self._queue_index(res_type, res_id, stamped)
            return Stored(res_type, res_id, 1, self.now(), False, stamped, "PUT"), True
        old_version, _deleted = current
        if expected_version is not None and expected_version != old_version:
            raise FhirError(
                Category.PRECONDITION,
                f"Version conflict on {res_type}/{res_id}: If-Match asked for version "
                f"{expected_version} but the current version is {old_version}",
            )
        version = old_version + 1
        stamped = self._stamp(body, res_id, version)
        self._swap(res_type, res_id, old_version, version, stamped, "PUT")
        self._queue_index(res_type, res_id, stamped)
        return Stored(res_type, res_id, version, self.now(), False, stamped, "PUT"), False

    def reindex(self, res_type: str, ids: list[str]) -> int:
        """Recompute the index rows of some resources from their current version (after new
        search parameters were installed); the versions themselves are unchanged."""
        done = 0
        for stored in self._fetch(res_type, ids):
            assert stored.resource is not None
            self._drop_index(res_type, stored.id)
            self._queue_index(res_type, stored.id, stored.resource)
            done += 1
        return done

    def delete(self, res_type: str, res_id: str) -> Stored | None:
        """Delete the current version (a tombstone version is written; history is kept)."""
        self._touch(res_type)
        current = self._current_row(res_type, res_id, lock=True)
        if current is None or current[1]:
            return None
        version = current[0] + 1
        self._swap(res_type, res_id, current[0], version, None, "DELETE")
        return Stored(res_type, res_id, version, self.now(), True, None, "DELETE")

    def purge(self, res_type: str, res_id: str) -> int:
        """Remove a resource physically: every version, its history and its index rows, in
        this transaction; returns the versions removed (0: nothing was stored). Only the purge
        of a closed DMP past its retention period uses it (``maison dmp purge``); a delete
        keeps history (https://hl7.org/fhir/R4/http.html#delete)."""
        self.flush()
        self._touch(res_type)
        for table in INDEX_TABLES.values():
            self.conn.execute(
                delete(table).where(table.c.res_type == res_type, table.c.res_id == res_id)
            )
        h = resource_history.c
        removed = self.conn.execute(
            delete(resource_history).where(h.res_type == res_type, h.res_id == res_id)
        ).rowcount
        self.conn.execute(
            delete(resource).where(resource.c.res_type == res_type, resource.c.res_id == res_id)
        )
        return int(removed or 0)

    def _swap(
        self,
        res_type: str,
        res_id: str,
        old_version: int,
        version: int,
        body: dict[str, Any] | None,
        method: str,
    ) -> None:
        row = self._write_version(res_type, res_id, version, body, method)
        result = self.conn.execute(
            update(resource)
            .where(
                resource.c.res_type == res_type,
                resource.c.res_id == res_id,
                resource.c.version == old_version,
            )
            .values(
                version=version,
                last_updated=row["last_updated"],
                deleted=row["deleted"],
            )
        )
        if result.rowcount != 1:
            raise FhirError(
                Category.CONFLICT,
                f"{res_type}/{res_id} was changed by a concurrent request; retry",
            )
        self._drop_index(res_type, res_id)

    # -- reading -------------------------------------------------------------------------
    def _current_row(self, res_type: str, res_id: str, lock: bool) -> tuple[int, bool] | None:
        if (res_type, res_id) in self._pending:
            self.flush()
        stmt = _CURRENT_ROW
        if lock and self.store.dialect == "postgresql":
            stmt = stmt.with_for_update()
        row = self.conn.execute(stmt, {"res_type": res_type, "res_id": res_id}).first()
        return (int(row[0]), bool(row[1])) if row else None

    def _open(self, res_type: str, res_id: str, version: int, content: bytes | None) -> Any:
        if content is None:
            return None
        raw = self.store.keyring.decrypt(content, f"{res_type}/{res_id}/{version}".encode())
        return orjson.loads(raw)

    def read(self, res_type: str, res_id: str) -> Stored | None:
        """The current version, a tombstone if deleted, None if it never existed."""
        if (res_type, res_id) in self._pending:
            self.flush()
        row = self.conn.execute(_READ, {"res_type": res_type, "res_id": res_id}).first()
        if row is None:
            return None
        body = self._open(res_type, res_id, row.version, row.content)
        return Stored(res_type, res_id, row.version, row.last_updated, row.deleted, body)

    def replaced(self, res_type: str, res_id: str) -> Stored | None:
        """The current version an update is about to replace."""
        return self.read(res_type, res_id)

    def vread(self, res_type: str, res_id: str, version: int) -> Stored | None:
        """One version of a resource."""
        self.flush()
        h = resource_history.c
        row = self.conn.execute(
            select(h.last_updated, h.deleted, h.content, h.method, h.seq).where(
                h.res_type == res_type, h.res_id == res_id, h.version == version
            )
        ).first()
        if row is None:
            return None
        body = self._open(res_type, res_id, version, row.content)
        return Stored(
            res_type, res_id, version, row.last_updated, row.deleted, body, row.method, row.seq
        )

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        since: str | None,
        count: int,
        before_seq: int | None,
    ) -> HistoryPage:
        """Versions newest first (https://hl7.org/fhir/R4/http.html#history)."""
        self.flush()
        self.snapshot()
        h = resource_history.c
        conds: list[ColumnElement[bool]] = []
        if res_type:
            conds.append(h.res_type == res_type)
        if res_id:
            conds.append(h.res_id == res_id)
        if since:
            conds.append(h.last_updated >= since)
        total = int(
            self.conn.execute(
                select(func.count()).select_from(resource_history).where(*conds)
            ).scalar_one()
        )
        if before_seq is not None:
            conds.append(h.seq < before_seq)
        rows = self.conn.execute(
            select(
                h.seq,
                h.res_type,
                h.res_id,
                h.version,
                h.last_updated,
                h.deleted,
                h.method,
                h.content,
            )
            .where(*conds)
            .order_by(h.seq.desc())
            .limit(count + 1)
        ).all()
        entries = [
            Stored(
                r.res_type,
                r.res_id,
                r.version,
                r.last_updated,
                r.deleted,
                self._open(r.res_type, r.res_id, r.version, r.content),
                r.method,
                r.seq,
            )
            for r in rows[:count]
        ]
        nxt = entries[-1].seq if len(rows) > count and entries else None
        return HistoryPage(entries, total, nxt)

    def referencing(
        self,
        res_type: str,
        res_id: str,
        via: Mapping[str, Collection[str]] | None = None,
        having: Mapping[str, tuple[str, str]] | None = None,
    ) -> list[tuple[str, str]]:
        """(type, id) of the current resources whose indexed references point to
        ``res_type/res_id`` (itself excluded), sorted; ``via`` names the reference search
        parameters to look in per source type, so the look-up runs on the index that leads with
        (res_type, code) instead of scanning idx_reference; ``having`` keeps, of the source
        types it names, the resources whose token parameter holds a code in any system
        ({type: (parameter, code)}) (https://hl7.org/fhir/R4/references.html)."""
        self.flush()
        shape = None
        if via is not None:
            shape = tuple(
                (rtype, tuple(sorted(codes))) for rtype, codes in sorted(via.items()) if codes
            )
            if not shape:
                return []
        params = {"target_type": res_type, "target_id": res_id}
        filtered = tuple(sorted(having or {}))
        for n, rtype in enumerate(filtered):
            params[f"token_code_{n}"], params[f"token_value_{n}"] = (having or {})[rtype]
        rows = self.conn.execute(_referencing_statement(shape, filtered), params).all()
        return [(str(r[0]), str(r[1])) for r in rows]

    def last_write(self) -> int:
        """The seq of the latest version written, of any type, 0 for none: the last entry of
        the primary key (a probe of one index page). One stamp for every type: a stamp per
        type cost more to read (on PostgreSQL, planning seven probes, one of them walking the
        primary key backwards past the other types' rows) than the cache it keeps saves."""
        return int(self.conn.execute(_LAST_WRITE).scalar_one())

    def holders(
        self, res_type: str, code: str, system: str, value: str, writing: str | None = None
    ) -> list[Stored]:
        """The current ``res_type`` resources whose token parameter ``code`` holds
        ``system|value``, for identifiers that must be unique (one INS, one person). On
        PostgreSQL a transaction-scoped advisory lock on the value serialises two writers
        claiming it at once; SQLite writers are serialised already
        (https://hl7.org/fhir/R4/search.html#token)."""
        self.flush()
        if self.store.dialect == "postgresql":
            digest = hashlib.blake2b(
                f"{res_type}|{code}|{system}|{value}".encode(), digest_size=8
            ).digest()
            key = int.from_bytes(digest, "big", signed=True)
            self.conn.execute(select(func.pg_advisory_xact_lock(key)))
        tok = idx_token.c
        rows = self.conn.execute(
            select(tok.res_id)
            .where(
                tok.res_type == res_type,
                tok.code == code,
                tok.value == value,
                tok.system == system,
            )
            .distinct()
            .order_by(tok.res_id)
        ).all()
        found = [self.read(res_type, str(r[0])) for r in rows]
        return [f for f in found if f is not None and not f.deleted]

    # -- searching -----------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchPage:
        """Run a search compiled to SQL on the index tables (https://hl7.org/fhir/R4/search.html)."""
        self.flush()
        self.snapshot()
        new_statement()
        r = resource.c
        conds: list[ColumnElement[bool]]
        if query.types:
            conds = [r.deleted == false(), system_conditions(query)]
        else:
            conds = [r.res_type == query.resource_type, r.deleted == false()]
            conds.extend(
                criterion(c, query.resource_type, correlated=probe)
                for c, probe in zip(query.criteria, plan(query.criteria), strict=True)
            )
        total = None
        counting = select(func.count()).select_from(resource).where(*conds)
        need_total = query.total in ("accurate", "estimate") or query.summary_count
        if query.total == "estimate" and self.store.dialect == "postgresql":
            total = self._estimate(counting)
        if query.summary_count or query.count == 0:
            if need_total and total is None:
                total = int(self.conn.execute(counting).scalar_one())
            return SearchPage([], total, False)
        first_page = query.offset == 0 and query.after is None
        system = bool(query.types)
        columns = sort_columns(query.sort)
        if query.after is not None:
            conds.append(after(columns, query.after, system))
        rows = self.conn.execute(
            select(
                r.res_type,
                r.res_id,
                r.version,
                r.last_updated,
                resource_history.c.content,
                *(c.label(f"sort_{i}") for i, (c, _) in enumerate(columns)),
            )
            .select_from(CURRENT)
            .where(*conds)
            .order_by(*order_by(columns, system))
            .offset(query.offset)
            .limit(query.count + 1)
        ).all()
        entries = [
            Stored(
                row.res_type,
                row.res_id,
                row.version,
                row.last_updated,
                False,
                self._open(row.res_type, row.res_id, row.version, row.content),
            )
            for row in rows[: query.count]
        ]
        if need_total and total is None:
            # a first page that holds every match is its own count: no second query (it
            # halves the work of the selective searches: PostgreSQL plans each one afresh)
            if first_page and len(rows) <= query.count:
                total = len(rows)
            else:
                total = int(self.conn.execute(counting).scalar_one())
        included = self._included(entries, query) if query.includes or query.revincludes else []
        last = None
        if len(rows) > query.count and entries:
            row = rows[query.count - 1]
            values = tuple(row[5 + i] for i in range(len(columns)))
            last = Cursor(values, row.res_type, row.res_id)
        return SearchPage(entries, total, len(rows) > query.count, included, last)

    def _estimate(self, counting: Select[Any]) -> int:
        """``_total=estimate`` on PostgreSQL: the planner's row estimate of the matches, read
        from EXPLAIN without running the search (https://hl7.org/fhir/R4/search.html#total)."""
        compiled = counting.compile(self.conn, compile_kwargs={"render_postcompile": True})
        plan = self.conn.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params
        ).scalar_one()
        node = (plan[0] if isinstance(plan, list) else orjson.loads(plan)[0])["Plan"]
        while node.get("Node Type") == "Aggregate" and node.get("Plans"):
            node = node["Plans"][0]
        return int(node.get("Plan Rows", 0))

    def read_many(self, res_type: str, ids: Collection[str]) -> dict[str, Stored]:
        """The current, not deleted versions of those of ``ids`` that have one, by id (one
        query per 500 ids; https://hl7.org/fhir/R4/http.html#read)."""
        wanted = sorted(set(ids))
        if any((res_type, i) in self._pending for i in wanted):
            self.flush()
        return {s.id: s for s in self._fetch(res_type, wanted)}

    def read_each(self, refs: Collection[tuple[str, str]]) -> dict[tuple[str, str], Stored]:
        """The current, not deleted versions of those of ``refs`` (type, id) that have one,
        whatever their types: one query, a branch per type on the primary key (a row-value
        IN made SQLite scan the table), per 500 (https://hl7.org/fhir/R4/http.html#read)."""
        wanted = sorted(set(refs))
        if any(ref in self._pending for ref in wanted):
            self.flush()
        r, h = resource.c, resource_history.c
        out: dict[tuple[str, str], Stored] = {}
        for start in range(0, len(wanted), 500):
            by_type: dict[str, list[str]] = {}
            for res_type, res_id in wanted[start : start + 500]:
                by_type.setdefault(res_type, []).append(res_id)
            branches = [
                select(r.res_type, r.res_id, r.version, r.last_updated, h.content)
                .select_from(CURRENT)
                .where(r.res_type == res_type, r.res_id.in_(ids), r.deleted == false())
                for res_type, ids in sorted(by_type.items())
            ]
            statement = branches[0] if len(branches) == 1 else union_all(*branches)
            for row in self.conn.execute(statement).all():
                key = (str(row[0]), str(row[1]))
                out[key] = Stored(
                    key[0],
                    key[1],
                    row[2],
                    row[3],
                    False,
                    self._open(key[0], key[1], row[2], row[4]),
                )
        return out

    def _fetch(self, res_type: str, ids: list[str]) -> list[Stored]:
        """Current, not deleted versions of some resources of one type."""
        r, h = resource.c, resource_history.c
        out: list[Stored] = []
        for start in range(0, len(ids), 500):
            rows = self.conn.execute(
                select(r.res_id, r.version, r.last_updated, h.content)
                .select_from(CURRENT)
                .where(
                    r.res_type == res_type,
                    r.res_id.in_(ids[start : start + 500]),
                    r.deleted == false(),
                )
            ).all()
            out.extend(
                Stored(
                    res_type,
                    row.res_id,
                    row.version,
                    row.last_updated,
                    False,
                    self._open(res_type, row.res_id, row.version, row.content),
                )
                for row in rows
            )
        return out

    def _included(self, matches: list[Stored], query: SearchQuery) -> list[Stored]:
        """Resources named by _include / _revinclude, following :iterate up to 4 rounds
        (https://hl7.org/fhir/R4/search.html#include)."""
        ref = idx_reference.c
        seen = {(s.type, s.id) for s in matches}
        frontier, out = matches, []
        for depth in range(4):
            wanted: dict[str, set[str]] = {}
            for inc in query.includes:
                if depth and not inc.iterate:
                    continue
                ids = [s.id for s in frontier if s.type == inc.source]
                if not ids:
                    continue
                conds = [ref.res_type == inc.source, ref.res_id.in_(ids), ref.target_id.isnot(None)]
                if inc.code:
                    conds.append(ref.code == inc.code)
                if inc.target:
                    conds.append(ref.target_type == inc.target)
                for t, i in self.conn.execute(select(ref.target_type, ref.target_id).where(*conds)):
                    wanted.setdefault(t, set()).add(i)
            for inc in query.revincludes:
                if depth and not inc.iterate:
                    continue
                by_type: dict[str, list[str]] = {}
                for st in frontier:
                    by_type.setdefault(st.type, []).append(st.id)
                for ttype, ids in by_type.items():
                    if inc.target and inc.target != ttype:
                        continue
                    conds = [
                        ref.res_type == inc.source,
                        ref.target_type == ttype,
                        ref.target_id.in_(ids),
                    ]
                    if inc.code:
                        conds.append(ref.code == inc.code)
                    for (i,) in self.conn.execute(select(ref.res_id).where(*conds)):
                        wanted.setdefault(inc.source, set()).add(i)
            frontier = []
            for rtype, found in wanted.items():
                fresh = sorted(i for i in found if (rtype, i) not in seen)
                for st in self._fetch(rtype, fresh):
                    seen.add((st.type, st.id))
                    frontier.append(st)
            out.extend(frontier)
            if not frontier or len(out) > MAX_INCLUDED:
                break
        return out[:MAX_INCLUDED]


__all__ = ["SqlStore", "SqlTx", "StoreSettings", "format_instant"]
