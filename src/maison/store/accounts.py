"""The ``patient_account`` table: sign-in credentials of patients (Mon espace santé accounts).

One row per account, bound to one INS and one Patient. The password is kept only as an scrypt
hash (RFC 7914) and the TOTP secret (RFC 6238) only encrypted with the store's data keys; the
failure counter and lock time implement the access restriction of CNIL délibération 2022-100.
The INS is in clear, as it is in the token index of the Patient it comes from. Every function
takes the connection of a store unit (``SqlTx.conn``), so it commits with the rest of the unit.

https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000046123442 (CNIL délibération 2022-100)
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    LargeBinary,
    Row,
    String,
    Table,
    Text,
    false,
    or_,
    select,
    update,
)

from maison.store.schema import metadata

# Created by migration f2b8d4a6c0e3 (store/migrations/versions/f2b8d4a6c0e3_patient_account.py).
patient_account = Table(
    "patient_account",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("ins", String(32), nullable=False),  # matricule INS (NIR/NIA), unique
    Column("ins_system", String(64), nullable=False),  # its OID as a FHIR system
    Column("patient_id", String(64), nullable=False),  # the FHIR Patient id
    Column("password_hash", Text, nullable=False),  # scrypt$ln=…,r=…,p=…$salt$hash
    Column("totp_secret", LargeBinary, nullable=False),  # encrypted (Keyring)
    Column("totp_confirmed", Boolean, nullable=False, server_default=false()),
    Column("totp_last_step", BigInteger, nullable=True),  # last time step accepted (no replay)
    Column("failed_count", Integer, nullable=False, server_default="0"),
    Column("locked_until", Float, nullable=True),  # seconds since the epoch
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Index("ux_patient_account_ins", "ins", unique=True),
    Index("ux_patient_account_patient", "patient_id", unique=True),
)


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One stored account, as read (https://www.rfc-editor.org/rfc/rfc6238)."""

    account_id: str
    ins: str
    ins_system: str
    patient_id: str
    password_hash: str
    totp_secret: bytes
    totp_confirmed: bool
    totp_last_step: int | None
    failed_count: int
    locked_until: float | None
    created_at: str
    updated_at: str


def _row(row: Row[tuple[object, ...]] | None) -> AccountRow | None:
    if row is None:
        return None
    m = row._mapping
    return AccountRow(
        account_id=str(m["account_id"]),
        ins=str(m["ins"]),
        ins_system=str(m["ins_system"]),
        patient_id=str(m["patient_id"]),
        password_hash=str(m["password_hash"]),
        totp_secret=bytes(m["totp_secret"]),
        totp_confirmed=bool(m["totp_confirmed"]),
        totp_last_step=None if m["totp_last_step"] is None else int(m["totp_last_step"]),
        failed_count=int(m["failed_count"]),
        locked_until=None if m["locked_until"] is None else float(m["locked_until"]),
        created_at=str(m["created_at"]),
        updated_at=str(m["updated_at"]),
    )


def insert(conn: Connection, row: AccountRow) -> None:
    """Store a new account (the unique indexes refuse a second one for an INS or a Patient)."""
    conn.execute(
        patient_account.insert().values(
            account_id=row.account_id,
            ins=row.ins,
            ins_system=row.ins_system,
            patient_id=row.patient_id,
            password_hash=row.password_hash,
            totp_secret=row.totp_secret,
            totp_confirmed=row.totp_confirmed,
            totp_last_step=row.totp_last_step,
            failed_count=row.failed_count,
            locked_until=row.locked_until,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
    )


def by_id(conn: Connection, account_id: str) -> AccountRow | None:
    """The account with this id."""
    t = patient_account.c
    return _row(conn.execute(select(patient_account).where(t.account_id == account_id)).first())


def by_ins(conn: Connection, ins: str) -> AccountRow | None:
    """The account bound to this matricule INS."""
    t = patient_account.c
    return _row(conn.execute(select(patient_account).where(t.ins == ins)).first())


def by_patient(conn: Connection, patient_id: str) -> AccountRow | None:
    """The account bound to this Patient."""
    t = patient_account.c
    return _row(conn.execute(select(patient_account).where(t.patient_id == patient_id)).first())


def listing(conn: Connection, limit: int, after: str | None = None) -> list[AccountRow]:
    """Accounts in INS order, after ``after`` (an INS), at most ``limit``."""
    t = patient_account.c
    stmt = select(patient_account).order_by(t.ins).limit(limit)
    if after is not None:
        stmt = stmt.where(t.ins > after)
    return [r for r in (_row(x) for x in conn.execute(stmt)) if r is not None]


def record_failure(
    conn: Connection, account_id: str, now: str, limit: int, lock_until: float
) -> bool:
    """Count one failed sign-in; at the ``limit``-th the account is locked until
    ``lock_until`` and the counter restarts. True when this failure locked it."""
    t = patient_account.c
    count = conn.execute(
        update(patient_account)
        .where(t.account_id == account_id)
        .values(failed_count=t.failed_count + 1, updated_at=now)
        .returning(t.failed_count)
    ).scalar_one_or_none()
    if count is None or int(count) < limit:
        return False
    conn.execute(
        update(patient_account)
        .where(t.account_id == account_id)
        .values(failed_count=0, locked_until=lock_until)
    )
    return True


def clear_failures(conn: Connection, account_id: str, now: str) -> None:
    """Forget the failures after a successful sign-in."""
    t = patient_account.c
    conn.execute(
        update(patient_account)
        .where(t.account_id == account_id)
        .values(failed_count=0, locked_until=None, updated_at=now)
    )


def claim_step(conn: Connection, account_id: str, step: int, now: str) -> bool:
    """Record that the TOTP code of time step ``step`` was used, only if no code of this or a
    later step was used before (a code is accepted once: RFC 6238 §5.2); True when claimed."""
    t = patient_account.c
    done = conn.execute(
        update(patient_account)
        .where(
            t.account_id == account_id,
            or_(t.totp_last_step.is_(None), t.totp_last_step < step),
        )
        .values(totp_last_step=step, totp_confirmed=True, updated_at=now)
    )
    return done.rowcount == 1


def set_password_hash(conn: Connection, account_id: str, password_hash: str, now: str) -> bool:
    """Replace the password hash; False when there is no such account."""
    t = patient_account.c
    done = conn.execute(
        update(patient_account)
        .where(t.account_id == account_id)
        .values(password_hash=password_hash, updated_at=now)
    )
    return done.rowcount == 1


def set_totp_secret(conn: Connection, account_id: str, sealed: bytes, now: str) -> bool:
    """Replace the (encrypted) TOTP secret: not confirmed yet, no step used."""
    t = patient_account.c
    done = conn.execute(
        update(patient_account)
        .where(t.account_id == account_id)
        .values(totp_secret=sealed, totp_confirmed=False, totp_last_step=None, updated_at=now)
    )
    return done.rowcount == 1


__all__ = [
    "AccountRow",
    "by_id",
    "by_ins",
    "by_patient",
    "claim_step",
    "clear_failures",
    "insert",
    "listing",
    "patient_account",
    "record_failure",
    "set_password_hash",
    "set_totp_secret",
]
