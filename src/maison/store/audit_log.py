"""The ``audit_log`` tables: an append-only hash chain of encrypted AuditEvents, its head and its
signed checkpoints (the SQL only; the chain itself is computed in ``maison.audit.chain``).

* ``audit_log``: one row per AuditEvent; ``seq`` is dense (1, 2, 3…) so that a deleted row is a
  gap; ``body`` is the event encrypted with the store's data keys; ``hash`` chains each row to
  the previous one (``prev_hash``). ``patient`` and ``requestor_idnps`` index the rows for
  the listings: one record's accesses; one professional's own accesses, by the IDNPS of the
  requesting agent (NULL for entries written before migration d4f6a8c0e2b1 and for requestors
  without one). ``requestor_idnps`` is an index only, outside the chain's canonical entry: the
  event's body, which the chain covers, stays the authority (``audit/chain.py`` checks it when
  it reads).
* ``audit_head``: one row (id 1) holding the last seq and hash. Appenders lock it
  (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time anyway), which
  serialises concurrent writers into one unbroken chain.
* ``audit_checkpoint``: (seq, hash) signed with Ed25519 every N entries, each naming the
  previous checkpoint, so a deleted checkpoint is seen too.

Every function takes a connection of a store unit (``SqlTx.conn``) or opens its own.

https://hl7.org/fhir/R4/auditevent.html, https://profiles.ihe.net/ITI/BALP/
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    select,
)

from maison.store.schema import metadata

_bigint_pk = BigInteger().with_variant(Integer(), "sqlite")
GENESIS = bytes(32)  # the prev_hash of entry 1

# Created by migration a7d3c9e1f5b2 (store/migrations/versions/a7d3c9e1f5b2_audit_log.py).
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", _bigint_pk, primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False),  # AuditEvent.recorded (instant, UTC)
    Column("patient", String(128), nullable=True),  # "Patient/123": the patient's listing
    Column("kind", String(32), nullable=False),  # read, search, denial, break-glass…
    Column("body", LargeBinary, nullable=False),  # the AuditEvent, encrypted (Keyring)
    Column("prev_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    # The IDNPS of the requesting agent (added by migration d4f6a8c0e2b1; NULL before it).
    Column("requestor_idnps", String(64), nullable=True),
    Index("ix_audit_log_patient", "patient", "seq"),
    Index("ix_audit_log_requestor", "requestor_idnps", "seq"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    Column("checkpoint_seq", BigInteger, nullable=False),  # the last checkpoint (0: none)
)

audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column("seq", _bigint_pk, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
    Column("prev_seq", BigInteger, nullable=False),  # the previous checkpoint (0: none)
    Column("at", String(32), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", LargeBinary, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Head:
    """The end of the chain: last seq, its hash, and the last checkpoint's seq."""

    seq: int
    hash: bytes
    checkpoint_seq: int


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """One signed checkpoint (https://www.rfc-editor.org/rfc/rfc8032)."""

    seq: int
    hash: bytes
    prev_seq: int
    at: str
    key_id: str
    signature: bytes


def is_write_unit(conn: Connection) -> bool:
    """Whether ``conn`` is inside a write transaction (not an autocommit read unit), so rows
    written through it commit together with the rest of the unit."""
    options = conn.get_execution_options()
    if conn.dialect.name == "sqlite":
        return bool(options.get("maison_write", True)) and conn.in_transaction()
    return options.get("isolation_level") != "AUTOCOMMIT" and conn.in_transaction()


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def lock_head(conn: Connection) -> Head:
    """Read the head row, locking it until the transaction ends (serialises appenders; SQLite
    holds its one write lock already). Driver-level SQL: this runs in every audited request."""
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    row = conn.exec_driver_sql(
        f"SELECT seq, hash, checkpoint_seq FROM audit_head WHERE id = 1{lock}"
    ).first()
    if row is None:  # a table emptied by hand: start again (verify reports the rest)
        conn.execute(audit_head.insert().values(id=1, seq=0, hash=GENESIS, checkpoint_seq=0))
        return Head(0, GENESIS, 0)
    return Head(int(row[0]), bytes(row[1]), int(row[2]))


def read_head(conn: Connection) -> Head | None:
    """The head row without locking it."""
    h = audit_head.c
    row = conn.execute(select(h.seq, h.hash, h.checkpoint_seq).where(h.id == 1)).one_or_none()
    return None if row is None else Head(int(row.seq), bytes(row.hash), int(row.checkpoint_seq))


def set_head(conn: Connection, head: Head) -> None:
    """Move the head (under the lock taken by :func:`lock_head`)."""
    m = _mark(conn)
    conn.exec_driver_sql(
        f"UPDATE audit_head SET seq = {m}, hash = {m}, checkpoint_seq = {m} WHERE id = 1",
        (head.seq, head.hash, head.checkpoint_seq),
    )


#: The columns the chain covers (what :func:`iter_entries` gives the verifier).
ENTRY_COLUMNS = ("seq", "at", "patient", "kind", "body", "prev_hash", "hash")
#: What :func:`insert_entries` writes: the chained columns, then the index-only ones.
INSERT_COLUMNS = (*ENTRY_COLUMNS, "requestor_idnps")


def insert_entries(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert chained entries, tuples in :data:`INSERT_COLUMNS` order (one driver-level
    executemany: compiling a Core insert per batch cost a third of an append)."""
    if not rows:
        return
    mark = _mark(conn)
    conn.exec_driver_sql(
        f"INSERT INTO audit_log ({', '.join(INSERT_COLUMNS)}) "
        f"VALUES ({', '.join([mark] * len(INSERT_COLUMNS))})",
        list(rows),
    )


def insert_checkpoint(conn: Connection, row: CheckpointRow) -> None:
    """Insert one signed checkpoint."""
    conn.execute(
        audit_checkpoint.insert().values(
            seq=row.seq,
            hash=row.hash,
            prev_seq=row.prev_seq,
            at=row.at,
            key_id=row.key_id,
            signature=row.signature,
        )
    )


def checkpoints(engine: Engine, from_seq: int = 0) -> list[CheckpointRow]:
    """The checkpoints at or after ``from_seq``, in seq order (one per N entries: few)."""
    c = audit_checkpoint.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.seq, c.hash, c.prev_seq, c.at, c.key_id, c.signature)
            .where(c.seq >= from_seq)
            .order_by(c.seq)
        ).all()
    return [
        CheckpointRow(
            int(r.seq), bytes(r.hash), int(r.prev_seq), r.at, r.key_id, bytes(r.signature)
        )
        for r in rows
    ]


def entry_hash(engine: Engine, seq: int) -> bytes | None:
    """The stored hash of entry ``seq``, if it exists."""
    with engine.connect() as conn:
        value = conn.execute(
            select(audit_log.c.hash).where(audit_log.c.seq == seq)
        ).scalar_one_or_none()
    return None if value is None else bytes(value)


def head_of(engine: Engine) -> Head | None:
    """The head row, on a connection of its own."""
    with engine.connect() as conn:
        return read_head(conn)


EntryRow = tuple[int, str, str | None, str, bytes, bytes, bytes]


def iter_entries(engine: Engine, from_seq: int = 1, page: int = 20_000) -> Iterator[EntryRow]:
    """Every entry from ``from_seq`` on, in seq order, as tuples (seq, at, patient, kind, body,
    prev_hash, hash); read in keyset pages so no transaction stays open for the whole walk; plain
    driver rows (no Core row processing: a fifth of the walk)."""
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    statement = (
        f"SELECT {', '.join(ENTRY_COLUMNS)} FROM audit_log WHERE seq > {mark} "
        f"ORDER BY seq LIMIT {int(page)}"
    )

    def fetch(after: int) -> list[Any]:
        with engine.connect() as conn:
            cursor = conn.exec_driver_sql(statement, (after,))
            return list(cursor.cursor.fetchall()) if cursor.cursor is not None else []

    after = from_seq - 1
    while True:
        rows = fetch(after)
        if not rows:
            return
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1][0]


def latest(
    engine: Engine,
    patient: str | None,
    since: str | None,
    count: int,
    *,
    requestor: str | None = None,
    until: str | None = None,
) -> list[tuple[int, bytes]]:
    """(seq, encrypted body) of the newest ``count`` entries (of one patient, of one requestor
    IDNPS, recorded at or after ``since``, at or before ``until``, when given), newest first."""
    t = audit_log.c
    query = select(t.seq, t.body)
    if patient is not None:
        query = query.where(t.patient == patient)
    if requestor is not None:
        query = query.where(t.requestor_idnps == requestor)
    if since is not None:
        query = query.where(t.at >= since)
    if until is not None:
        query = query.where(t.at <= until)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(t.seq.desc()).limit(count)).all()
    return [(int(r.seq), bytes(r.body)) for r in rows]


def entry_of(engine: Engine, seq: int) -> tuple[int, str | None, bytes] | None:
    """(seq, patient, encrypted body) of entry ``seq``, or None when it does not exist."""
    t = audit_log.c
    with engine.connect() as conn:
        row = conn.execute(select(t.seq, t.patient, t.body).where(t.seq == seq)).one_or_none()
    return None if row is None else (int(row.seq), row.patient, bytes(row.body))


def iter_newest(
    engine: Engine, patient: str | None, since: str | None, page: int = 1000
) -> Iterator[tuple[int, bytes]]:
    """(seq, encrypted body) of every entry (of one patient, recorded at or after ``since`` when
    given), newest first, read in keyset pages so no transaction stays open for the whole walk."""
    t = audit_log.c
    before: int | None = None
    while True:
        query = select(t.seq, t.body)
        if patient is not None:
            query = query.where(t.patient == patient)
        if since is not None:
            query = query.where(t.at >= since)
        if before is not None:
            query = query.where(t.seq < before)
        with engine.connect() as conn:
            rows = conn.execute(query.order_by(t.seq.desc()).limit(page)).all()
        for r in rows:
            yield int(r.seq), bytes(r.body)
        if len(rows) < page:
            return
        before = int(rows[-1].seq)
