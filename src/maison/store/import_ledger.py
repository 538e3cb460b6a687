"""The import ledger: which resources an external source maintains, and what was last written.

An import (the Annuaire Santé extraction, for one) writes resources whose content belongs to the
source. For each one the ledger keeps the hash of the content written and the number of the last
*run* (one import of one extraction) that held it, so a re-import compares hashes without
decrypting a single body, and what the source dropped is found with one indexed query: every
entry whose run is older than the current one. An entry is *retired* once its resource was made
inactive because the source dropped it; a later extraction that holds it again brings it back.

The methods that change the ledger take the store transaction (:class:`SqlTx`) that writes the
resources, so the ledger and the resources commit together or not at all: a crash never leaves
a ledger entry for a resource that was not written, nor the reverse.

https://hl7.org/fhir/R4/resource.html#Meta (``meta.source``: where a resource comes from)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    any_,
    bindparam,
    delete,
    false,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from maison.store.schema import import_ledger, resource
from maison.store.sql import SqlStore, SqlTx

Key = tuple[str, str]  # (resource type, id)
_IN_CHUNK = 1000  # bound parameters per IN (...) list


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What the ledger holds for one resource (https://hl7.org/fhir/R4/resource.html#Meta)."""

    content_hash: str
    run: int
    retired: bool


class ImportLedger:
    """The ledger of the resources external sources maintain, on a SQL store.

    https://hl7.org/fhir/R4/resource.html#Meta
    """

    def __init__(self, store: SqlStore) -> None:
        """Use the store's engine (https://hl7.org/fhir/R4/resource.html#Meta)."""
        self._store = store

    # -- outside a write transaction ---------------------------------------------------
    def start_run(self, source: str) -> int:
        """A new run number for ``source``, one more than any recorded (nothing is written).

        https://hl7.org/fhir/R4/resource.html#Meta
        """
        # the run exists once entries carry it; one import of a source at a time (two
        # concurrent ones would share a number)
        with self._store.engine.connect() as conn:
            conn = _read_only(conn, self._store.dialect)
            latest = conn.execute(
                select(func.max(import_ledger.c.run)).where(import_ledger.c.source == source)
            ).scalar_one_or_none()
        return int(latest or 0) + 1

    def hashes(self, source: str, keys: Iterable[Key]) -> dict[Key, str]:
        """The recorded content hash of those of ``keys`` the ledger holds (batched look-ups).

        https://hl7.org/fhir/R4/resource.html#Meta
        """
        with self._store.engine.connect() as conn:
            conn = _read_only(conn, self._store.dialect)
            found = _entries(conn, source, keys)
        return {k: e.content_hash for k, e in found.items()}

    def missing(self, source: str, run: int, page: int = 1000) -> Iterator[Key]:
        """The entries of ``source`` that run ``run`` did not see and that are not retired yet,
        in (type, id) order, read page by page so they may be retired while iterating.

        https://hl7.org/fhir/R4/resource.html#Meta
        """
        t = import_ledger.c
        last: Key | None = None
        while True:
            conds = [t.source == source, t.run < run, t.retired == false()]
            if last is not None:
                conds.append(tuple_(t.res_type, t.res_id) > tuple_(*last))
            with self._store.engine.connect() as conn:
                conn = _read_only(conn, self._store.dialect)
                rows = conn.execute(
                    select(t.res_type, t.res_id)
                    .where(*conds)
                    .order_by(t.res_type, t.res_id)
                    .limit(page)
                ).all()
            for res_type, res_id in rows:
                yield str(res_type), str(res_id)
            if len(rows) < page:
                return
            last = (str(rows[-1][0]), str(rows[-1][1]))

    def count(self, source: str, *, retired: bool | None = None) -> int:
        """How many entries ``source`` has (only the retired ones, or only the others).

        https://hl7.org/fhir/R4/resource.html#Meta
        """
        t = import_ledger.c
        conds = [t.source == source]
        if retired is not None:
            conds.append(t.retired == retired)
        with self._store.engine.connect() as conn:
            conn = _read_only(conn, self._store.dialect)
            return int(
                conn.execute(
                    select(func.count()).select_from(import_ledger).where(*conds)
                ).scalar_one()
            )

    # -- inside the transaction that writes the resources ------------------------------
    def entries(self, tx: SqlTx, source: str, keys: Iterable[Key]) -> dict[Key, LedgerEntry]:
        """The entries of those of ``keys`` the ledger holds, as this transaction sees them.

        https://hl7.org/fhir/R4/resource.html#Meta
        """
        return _entries(tx.conn, source, keys)

    def existing(self, tx: SqlTx, keys: Iterable[Key]) -> set[Key]:
        """Those of ``keys`` the store holds a resource for (current or deleted), so a writer
        knows whether a create would collide.

        https://hl7.org/fhir/R4/http.html#update
        """
        tx.flush()
        r = resource.c
        found: set[Key] = set()
        for res_type, ids in _by_type(keys):
            for part in _id_lists(r.res_id, ids, tx.conn):
                rows = tx.conn.execute(select(r.res_id).where(r.res_type == res_type, part))
                found.update((res_type, str(row[0])) for row in rows)
        return found

    def mark(
        self,
        tx: SqlTx,
        source: str,
        run: int,
        rows: Iterable[tuple[str, str, str]],
        *,
        new: bool = False,
    ) -> None:
        """Record ``(type, id, content hash)`` as written and seen by run ``run``, replacing any
        entry (``new``: the caller knows there is none, so plain inserts do).

        https://hl7.org/fhir/R4/resource.html#Meta
        """
        values = [
            {
                "source": source,
                "res_type": res_type,
                "res_id": res_id,
                "content_hash": digest,
                "run": run,
                "retired": False,
            }
            for res_type, res_id, digest in rows
        ]
        if not values:
            return
        if new:
            _insert(tx.conn, values)
            return
        dialect = postgresql if self._store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(import_ledger)
        stmt = stmt.on_conflict_do_update(
            index_elements=[
                import_ledger.c.source,
                import_ledger.c.res_type,
                import_ledger.c.res_id,
            ],
            set_={
                "content_hash": stmt.excluded.content_hash,
                "run": stmt.excluded.run,
                "retired": stmt.excluded.retired,
            },
        )
        tx.conn.execute(stmt, values)

    def touch(self, tx: SqlTx, source: str, run: int, keys: Iterable[Key]) -> None:
        """Record that run ``run`` saw ``keys`` unchanged (https://hl7.org/fhir/R4/resource.html#Meta)."""
        t = import_ledger.c
        for res_type, ids in _by_type(keys):
            for part in _id_lists(t.res_id, ids, tx.conn):
                tx.conn.execute(
                    update(import_ledger)
                    .where(t.source == source, t.res_type == res_type, part)
                    .values(run=run, retired=False)
                )

    def retire(self, tx: SqlTx, source: str, rows: Iterable[tuple[str, str, str]]) -> None:
        """Record ``(type, id, content hash)`` as retired: made inactive because the source
        dropped it; its run stays the last one that held it.

        https://hl7.org/fhir/R4/resource.html#Meta
        """
        t = import_ledger.c
        values = [
            {"k_type": res_type, "k_id": res_id, "content_hash": digest}
            for res_type, res_id, digest in rows
        ]
        if not values:
            return
        tx.conn.execute(
            update(import_ledger)
            .where(
                t.source == source,
                t.res_type == bindparam("k_type"),
                t.res_id == bindparam("k_id"),
            )
            .values(content_hash=bindparam("content_hash"), retired=True),
            values,
        )

    def forget(self, tx: SqlTx, source: str, keys: Iterable[Key]) -> None:
        """Drop the entries of ``keys`` (their resources were deleted).

        https://hl7.org/fhir/R4/resource.html#Meta
        """
        t = import_ledger.c
        for res_type, ids in _by_type(keys):
            for part in _id_lists(t.res_id, ids, tx.conn):
                tx.conn.execute(
                    delete(import_ledger).where(t.source == source, t.res_type == res_type, part)
                )


def _insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert many entries: COPY on PostgreSQL (several times cheaper), executemany elsewhere."""
    if conn.dialect.name != "postgresql" or len(rows) < 8:
        conn.execute(import_ledger.insert(), rows)
        return
    cols = [c.name for c in import_ledger.columns]
    raw: Any = conn.connection.dbapi_connection
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {import_ledger.name} ({', '.join(cols)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([row[c] for c in cols])


def _read_only(conn: Connection, dialect: str) -> Connection:
    """As SqlStore.transaction(write=False): no SQLite write lock, no PostgreSQL BEGIN."""
    if dialect == "sqlite":
        return conn.execution_options(maison_write=False)
    return conn.execution_options(isolation_level="AUTOCOMMIT")


def _by_type(keys: Iterable[Key]) -> Iterator[tuple[str, list[str]]]:
    """The ids of ``keys`` grouped by type, each id once."""
    for res_type, group in groupby(sorted(set(keys)), key=lambda k: k[0]):
        yield res_type, [res_id for _, res_id in group]


def _id_lists(
    column: ColumnElement[str], ids: list[str], conn: Connection
) -> Iterator[ColumnElement[bool]]:
    """``column`` among ``ids``: one array parameter on PostgreSQL (``= ANY``: one short
    statement, nothing to re-parse), IN lists of at most _IN_CHUNK elsewhere."""
    if conn.dialect.name == "postgresql":
        yield column == any_(bindparam("ids", ids, type_=postgresql.ARRAY(String)))
        return
    for start in range(0, len(ids), _IN_CHUNK):
        yield column.in_(ids[start : start + _IN_CHUNK])


def _entries(conn: Connection, source: str, keys: Iterable[Key]) -> dict[Key, LedgerEntry]:
    t = import_ledger.c
    found: dict[Key, LedgerEntry] = {}
    for res_type, ids in _by_type(keys):
        for part in _id_lists(t.res_id, ids, conn):
            rows = conn.execute(
                select(t.res_id, t.content_hash, t.run, t.retired).where(
                    t.source == source, t.res_type == res_type, part
                )
            )
            for res_id, digest, run, retired in rows:
                found[(res_type, str(res_id))] = LedgerEntry(str(digest), int(run), bool(retired))
    return found


__all__ = ["ImportLedger", "Key", "LedgerEntry"]
