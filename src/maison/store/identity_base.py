"""The INSi reference base: the identities behind our INSi-compatible téléservice, at rest.

https://esante.gouv.fr/produits-services/referentiel-ins

Each identity is one encrypted payload (the keyring's AES-256-GCM, bound to its row); the
matricule (a NIR is sensitive personal data) is stored and looked up only as a keyed hash,
HMAC-SHA256 under a *lookup key*. The lookup key is 32 random bytes made once per store and kept
in ``store_meta`` wrapped (encrypted) by the keyring: it does not depend on which data key is
current, so rotating data keys leaves every hash valid, and the wrap stays readable because a
keyring keeps its old keys (``SqlStore.check_keys`` refuses to start without them). The search
traits (normalised birth name, birth date, sex) are in clear, as in the search index tables.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import orjson
from sqlalchemy import Connection, Table, and_, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from maison.store.schema import insi_call, insref_history, insref_identity, store_meta
from maison.store.sql import SqlStore, format_instant

LOOKUP_KEY_META = "insref_lookup_key"
_LOOKUP_KEY_AAD = b"store_meta:" + LOOKUP_KEY_META.encode()
_IN_CHUNK = 1000  # bound parameters per IN (...) list


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """One identity of the reference base (https://esante.gouv.fr/produits-services/referentiel-ins)."""

    matricule: str  # 15 chars (13 + key), NIR or NIA
    oid: str  # assigning authority OID, e.g. "1.2.250.1.213.1.4.10"
    birth_name: str  # normalised to the INSi alphabet (A-Z, space, hyphen, apostrophe)
    given_names: tuple[str, ...]  # birth first names, first one first
    sex: str  # "M" | "F"
    birth_date: str  # YYYY-MM-DD, or partial YYYY-MM / YYYY
    birth_place: str  # COG INSEE code (5 chars) or "" when unknown
    history: tuple[str, ...] = ()  # previous matricules (INSHISTO)


@dataclass(frozen=True, slots=True)
class LoadCounts:
    """What a load did (https://esante.gouv.fr/produits-services/referentiel-ins)."""

    created: int
    updated: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class InsiCall:
    """One call to the platform's INSi service, kept as evidence for later Patient writes."""

    id: int
    at: datetime  # UTC
    operation: str  # "search" | "verify"
    client: str  # the caller's subject / client id
    cr: str  # "00" | "01" | "02"
    matricule: str | None  # returned matricule when cr == "00"
    oid: str | None
    traits: dict[str, Any]  # the traits returned (JSON-serialisable), {} when none


class IdentityBase:
    """The INSi reference base on a SQL store (https://esante.gouv.fr/produits-services/referentiel-ins)."""

    def __init__(self, store: SqlStore) -> None:
        """Use the store's engine, keyring and clock (https://esante.gouv.fr/produits-services/referentiel-ins)."""
        self._store = store
        self._key: bytes | None = None

    # -- keys --------------------------------------------------------------------------
    def _lookup_key(self) -> bytes:
        if self._key is None:
            self._key = lookup_key(self._store)
        return self._key

    def _hash(self, matricule: str) -> bytes:
        return hmac.digest(self._lookup_key(), b"mat:" + matricule.encode(), hashlib.sha256)

    def _existing_key(self) -> bool:
        """Whether the lookup key exists, without making it: lookups run inside other
        transactions (a Patient write's INS rules) where making it would wait on the
        SQLite write lock that transaction holds. No key yet means nothing stored yet."""
        return not (self._key is None and self._store.get_meta(LOOKUP_KEY_META) is None)

    # -- connections -------------------------------------------------------------------
    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        # as SqlStore.transaction(write=False): no write lock on SQLite, no BEGIN on PostgreSQL
        with self._store.engine.connect() as conn:
            if self._store.dialect == "sqlite":
                conn = conn.execution_options(maison_write=False)
            else:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._store.write_lock(), self._store.engine.begin() as conn:
            yield conn

    # -- loading -----------------------------------------------------------------------
    def load(
        self,
        records: Iterable[IdentityRecord],
        batch: int = 5000,
        progress: Callable[[int], None] | None = None,
    ) -> LoadCounts:
        """Upsert identities by (oid, matricule), one transaction per batch (https://esante.gouv.fr/produits-services/referentiel-ins)."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._lookup_key()  # before the write transaction: it may have to be made
        created = updated = unchanged = 0
        it = iter(records)
        while chunk := list(islice(it, batch)):
            with self._writing() as conn:
                c, u, n = self._load_batch(conn, chunk)
            created, updated, unchanged = created + c, updated + u, unchanged + n
            if progress is not None:
                progress(len(chunk))
        return LoadCounts(created, updated, unchanged)

    def _load_batch(self, conn: Connection, chunk: list[IdentityRecord]) -> tuple[int, int, int]:
        key = self._lookup_key()
        hashed = [(self._hash(rec.matricule), rec) for rec in chunk]
        existing = self._digests(conn, list({mh for mh, _ in hashed}))
        state = dict(existing)  # (mat_hash, oid) -> digest, as the batch goes
        final: dict[tuple[bytes, str], tuple[IdentityRecord, bytes, bytes]] = {}
        created = updated = unchanged = 0
        for mh, rec in hashed:
            row_key = (mh, rec.oid)
            plain = _encode(rec)
            digest = hmac.digest(key, b"rec:" + plain, hashlib.sha256)
            before = state.get(row_key)
            if before is None:
                created += 1
            elif before == digest:
                unchanged += 1
                continue
            else:
                updated += 1
            state[row_key] = digest
            final[row_key] = (rec, digest, plain)
        new_rows: list[dict[str, Any]] = []
        changed_rows: list[dict[str, Any]] = []
        hist_rows: list[dict[str, Any]] = []
        for (mh, oid), (rec, digest, plain) in final.items():
            row = {
                "birth_name": rec.birth_name,
                "birth_date": rec.birth_date,
                "sex": rec.sex,
                "digest": digest,
                "payload": self._store.keyring.encrypt(plain, _identity_aad(mh, oid)),
            }
            if (mh, oid) in existing:
                changed_rows.append({**row, "k_mat_hash": mh, "k_oid": oid})
            else:
                new_rows.append({"mat_hash": mh, "oid": oid, **row})
            hist_rows.extend(
                {"hist_hash": hh, "mat_hash": mh, "oid": oid}
                for hh in dict.fromkeys(self._hash(old) for old in rec.history)
            )
        if changed_rows:
            t, h = insref_identity, insref_history
            conn.execute(
                update(t)
                .where(t.c.mat_hash == bindparam("k_mat_hash"), t.c.oid == bindparam("k_oid"))
                .values({c: bindparam(c) for c in ("birth_name", "birth_date", "sex")})
                .values(digest=bindparam("digest"), payload=bindparam("payload")),
                changed_rows,
            )
            conn.execute(
                delete(h).where(
                    h.c.mat_hash == bindparam("k_mat_hash"), h.c.oid == bindparam("k_oid")
                ),
                [{"k_mat_hash": r["k_mat_hash"], "k_oid": r["k_oid"]} for r in changed_rows],
            )
        self._insert(conn, insref_identity, new_rows)
        self._insert(conn, insref_history, hist_rows)
        return created, updated, unchanged

    def _digests(self, conn: Connection, hashes: list[bytes]) -> dict[tuple[bytes, str], bytes]:
        t = insref_identity
        found: dict[tuple[bytes, str], bytes] = {}
        for start in range(0, len(hashes), _IN_CHUNK):
            part = hashes[start : start + _IN_CHUNK]
            for mh, oid, digest in conn.execute(
                select(t.c.mat_hash, t.c.oid, t.c.digest).where(t.c.mat_hash.in_(part))
            ):
                found[(bytes(mh), oid)] = bytes(digest)
        return found

    def _insert(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert many rows: COPY on PostgreSQL (several times cheaper), executemany elsewhere."""
        if not rows:
            return
        if self._store.dialect != "postgresql" or len(rows) < 8:
            conn.execute(table.insert(), rows)
            return
        cols = [c.name for c in table.columns if c.name in rows[0]]
        raw: Any = conn.connection.dbapi_connection
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([row[c] for c in cols])

    # -- lookups -----------------------------------------------------------------------
    def by_traits(self, birth_name: str, birth_date: str, sex: str) -> list[IdentityRecord]:
        """Identities with exactly these normalised traits (https://esante.gouv.fr/produits-services/referentiel-ins)."""
        t = insref_identity
        query = select(t.c.mat_hash, t.c.oid, t.c.payload).where(
            t.c.birth_name == birth_name, t.c.birth_date == birth_date, t.c.sex == sex
        )
        with self._reading() as conn:
            rows = conn.execute(query).all()
        found = [self._open(bytes(mh), oid, bytes(payload)) for mh, oid, payload in rows]
        return sorted(found, key=lambda r: (r.matricule, r.oid))

    def by_matricule(self, matricule: str) -> IdentityRecord | None:
        """The identity whose active or previous matricule this is (https://esante.gouv.fr/produits-services/referentiel-ins)."""
        if not self._existing_key():
            return None
        t, h = insref_identity, insref_history
        mh = self._hash(matricule)
        active = (
            select(t.c.mat_hash, t.c.oid, t.c.payload)
            .where(t.c.mat_hash == mh)
            .order_by(t.c.oid)
            .limit(1)
        )
        previous = (
            select(t.c.mat_hash, t.c.oid, t.c.payload)
            .join(h, and_(h.c.mat_hash == t.c.mat_hash, h.c.oid == t.c.oid))
            .where(h.c.hist_hash == mh)
            .order_by(t.c.oid, t.c.mat_hash)
            .limit(1)
        )
        with self._reading() as conn:
            row = conn.execute(active).first() or conn.execute(previous).first()
        if row is None:
            return None
        return self._open(bytes(row[0]), row[1], bytes(row[2]))

    def count(self) -> int:
        """How many identities the base holds (https://esante.gouv.fr/produits-services/referentiel-ins)."""
        with self._reading() as conn:
            return int(conn.execute(select(func.count()).select_from(insref_identity)).scalar_one())

    def _open(self, mat_hash: bytes, oid: str, payload: bytes) -> IdentityRecord:
        return _decode(self._store.keyring.decrypt(payload, _identity_aad(mat_hash, oid)))

    # -- calls -------------------------------------------------------------------------
    def record_call(
        self,
        operation: str,
        client: str,
        cr: str,
        matricule: str | None,
        oid: str | None,
        traits: dict[str, Any],
    ) -> InsiCall:
        """Keep one INSi call as evidence (https://esante.gouv.fr/produits-services/referentiel-ins)."""
        at = _parse_instant(format_instant(self._store.clock()))
        plain = orjson.dumps({"matricule": matricule, "oid": oid, "traits": traits})
        mh = self._hash(matricule) if matricule is not None else None
        with self._writing() as conn:
            inserted = conn.execute(
                insi_call.insert()
                .values(
                    at=format_instant(at),
                    operation=operation,
                    client=client,
                    cr=cr,
                    mat_hash=mh,
                    payload=b"",
                )
                .returning(insi_call.c.id)
            )
            call_id = int(inserted.scalar_one())
            # the payload is bound to its row id, known only once inserted
            conn.execute(
                update(insi_call)
                .where(insi_call.c.id == call_id)
                .values(payload=self._store.keyring.encrypt(plain, _call_aad(call_id)))
            )
        return InsiCall(call_id, at, operation, client, cr, matricule, oid, dict(traits))

    def calls_for(self, matricule: str, since: datetime | None = None) -> list[InsiCall]:
        """The calls that returned this matricule, newest first (https://esante.gouv.fr/produits-services/referentiel-ins)."""
        if not self._existing_key():
            return []
        c = insi_call
        query = select(c.c.id, c.c.at, c.c.operation, c.c.client, c.c.cr, c.c.payload).where(
            c.c.mat_hash == self._hash(matricule)
        )
        if since is not None:
            query = query.where(c.c.at >= format_instant(since))
        query = query.order_by(c.c.at.desc(), c.c.id.desc())
        with self._reading() as conn:
            rows = conn.execute(query).all()
        calls = []
        for call_id, at, operation, client, cr, payload in rows:
            body = orjson.loads(self._store.keyring.decrypt(bytes(payload), _call_aad(call_id)))
            calls.append(
                InsiCall(
                    int(call_id),
                    _parse_instant(at),
                    operation,
                    client,
                    cr,
                    body["matricule"],
                    body["oid"],
                    body["traits"],
                )
            )
        return calls


def lookup_key(store: SqlStore) -> bytes:
    """The store's random HMAC key for matricules, kept wrapped by the keyring in store_meta: https://esante.gouv.fr/produits-services/referentiel-ins."""
    wrapped = store.get_meta(LOOKUP_KEY_META)
    if wrapped is None:
        fresh = base64.b64encode(store.keyring.encrypt(os.urandom(32), _LOOKUP_KEY_AAD)).decode()
        try:
            with store.write_lock(), store.engine.begin() as conn:
                conn.execute(store_meta.insert().values(key=LOOKUP_KEY_META, value=fresh))
            wrapped = fresh
        except IntegrityError:  # a concurrent first use made it: use theirs
            wrapped = store.get_meta(LOOKUP_KEY_META)
            assert wrapped is not None
    return store.keyring.decrypt(base64.b64decode(wrapped), _LOOKUP_KEY_AAD)


def _identity_aad(mat_hash: bytes, oid: str) -> bytes:
    return b"insref:" + oid.encode() + b"/" + mat_hash


def _call_aad(call_id: int) -> bytes:
    return b"insi_call:" + str(call_id).encode()


def _encode(rec: IdentityRecord) -> bytes:
    return orjson.dumps(
        {
            "matricule": rec.matricule,
            "oid": rec.oid,
            "birth_name": rec.birth_name,
            "given_names": list(rec.given_names),
            "sex": rec.sex,
            "birth_date": rec.birth_date,
            "birth_place": rec.birth_place,
            "history": list(rec.history),
        }
    )


def _decode(raw: bytes) -> IdentityRecord:
    body = orjson.loads(raw)
    return IdentityRecord(
        matricule=body["matricule"],
        oid=body["oid"],
        birth_name=body["birth_name"],
        given_names=tuple(body["given_names"]),
        sex=body["sex"],
        birth_date=body["birth_date"],
        birth_place=body["birth_place"],
        history=tuple(body["history"]),
    )


def _parse_instant(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
