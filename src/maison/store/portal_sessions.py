"""The ``portal_session`` table: the portal's server-side sessions.

The browser holds only an opaque random identifier; the row is keyed by its SHA-256, so a read
of the table cannot be replayed as a cookie, and its content (the user's access and refresh
tokens, the CSRF secret) is encrypted with the store's data keys. A session has an absolute end
and an idle end. Every function takes the connection of a store unit (``SqlTx.conn``).

https://cheatsheetseries.owasp.org/cheatsheets/Session_Management_Cheat_Sheet.html
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    LargeBinary,
    String,
    Table,
    delete,
    select,
    update,
)

from maison.store.schema import metadata

# Created by migration b8e1c5d3f7a9 (store/migrations/versions/b8e1c5d3f7a9_portal_session.py).
portal_session = Table(
    "portal_session",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # hex SHA-256 of the cookie value
    Column("ends_at", Float, nullable=False),  # absolute end, seconds since the epoch
    Column("idle_until", Float, nullable=False),  # idle end, pushed forward on use
    Column("data", LargeBinary, nullable=False),  # encrypted JSON (Keyring, aad: id_hash)
    Index("ix_portal_session_ends", "ends_at"),
)


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One stored session, as read (content still encrypted)."""

    id_hash: str
    ends_at: float
    idle_until: float
    data: bytes


def get(conn: Connection, id_hash: str) -> SessionRow | None:
    """The session of this identifier hash, or None."""
    row = conn.execute(select(portal_session).where(portal_session.c.id_hash == id_hash)).first()
    if row is None:
        return None
    return SessionRow(str(row.id_hash), float(row.ends_at), float(row.idle_until), bytes(row.data))


def insert(conn: Connection, row: SessionRow) -> None:
    """Store a new session."""
    conn.execute(
        portal_session.insert().values(
            id_hash=row.id_hash, ends_at=row.ends_at, idle_until=row.idle_until, data=row.data
        )
    )


def save(conn: Connection, id_hash: str, idle_until: float, data: bytes | None) -> bool:
    """Push the idle end forward and, when given, replace the content; False if gone."""
    values: dict[str, object] = {"idle_until": idle_until}
    if data is not None:
        values["data"] = data
    done = conn.execute(
        update(portal_session).where(portal_session.c.id_hash == id_hash).values(**values)
    )
    return bool(done.rowcount)


def remove(conn: Connection, id_hash: str) -> None:
    """Forget one session (sign-out, rotation)."""
    conn.execute(delete(portal_session).where(portal_session.c.id_hash == id_hash))


def purge(conn: Connection, now: float) -> int:
    """Forget the sessions past their absolute or idle end; how many."""
    done = conn.execute(
        delete(portal_session).where(
            (portal_session.c.ends_at < now) | (portal_session.c.idle_until < now)
        )
    )
    return int(done.rowcount or 0)
