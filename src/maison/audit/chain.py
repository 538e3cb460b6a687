"""The tamper-evident audit trail: AuditEvents appended to a hash chain with signed checkpoints.

Each entry is stored deflated and encrypted (``audit/body.py``: the store's data keys, bound to
its seq) and carries
``hash = SHA-256(prev_hash || canonical(entry))`` where the canonical entry is its seq, time,
patient, kind and *encrypted* body: the chain is checked without the data keys (an auditor only
needs the public checkpoint key), and an edited, re-encrypted or moved body breaks it all the
same. The row's ``requestor_idnps`` (the requesting professional, for his own log) is an index
outside the canonical entry: it is checked against the decrypted body, which the chain covers,
whenever it is used. Every ``checkpoint_every`` entries the (seq, hash) pair is signed with
Ed25519 (RFC 8032), each checkpoint naming the previous one, so rewriting the chain from some
point on, or deleting entries a checkpoint attests, is detected by :meth:`AuditTrail.verify`.

What a chain cannot prove by itself: that entries appended after the last checkpoint were not
cut off together with the head row. Checkpoints bound that window; :meth:`AuditTrail.checkpoint`
signs the current head on demand (at shutdown, from a timer), and exporting the signed
checkpoints elsewhere closes it.

https://profiles.ihe.net/ITI/BALP/, https://hl7.org/fhir/R4/auditevent.html,
https://www.rfc-editor.org/rfc/rfc8032
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import Connection

from maison.audit.body import seal, unseal
from maison.audit.events import kind_of, patient_of, requestor_of
from maison.store import audit_log as sql
from maison.store.audit_log import GENESIS, CheckpointRow, Head
from maison.store.crypto import Keyring
from maison.store.secret_files import check_private, create_secret_file
from maison.store.sql import SqlStore, SqlTx

KEY_FILE = "audit-signing.key"
CHECKPOINT_EVERY = 1000
_ENTRY = b"maison-audit-entry/1"
_CHECKPOINT = b"maison-audit-checkpoint/1"
_PROGRESS_EVERY = 10_000

Progress = Callable[[int, int], None]  # (entries checked, entries expected in all)


# -- signing key ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointKey:
    """The Ed25519 key that signs checkpoints (https://www.rfc-editor.org/rfc/rfc8032)."""

    public: Ed25519PublicKey
    private: Ed25519PrivateKey | None = None

    @property
    def key_id(self) -> str:
        """The key's id: the first 16 hex digits of the SHA-256 of its raw public key."""
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()[:16]

    @classmethod
    def load_or_create(cls, folder: Path) -> CheckpointKey:
        """Load ``folder/audit-signing.key`` (PKCS#8 PEM), creating it on first use (mode 0600,
        atomically: a concurrent creator's key wins): https://www.rfc-editor.org/rfc/rfc8032."""
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / KEY_FILE
        if not path.exists():
            _create_key_file(path)
        check_private(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(key.public_key(), key)

    @classmethod
    def load(cls, folder: Path) -> CheckpointKey:
        """Load ``folder/audit-signing.key`` without creating it (FileNotFoundError when absent):
        a verifier must never check old checkpoints against a new key (RFC 8032)."""
        if not (folder / KEY_FILE).exists():
            raise FileNotFoundError(f"no audit signing key at {folder / KEY_FILE}")
        return cls.load_or_create(folder)

    def sign(self, payload: bytes) -> bytes:
        """An Ed25519 signature of ``payload`` (https://www.rfc-editor.org/rfc/rfc8032#section-5.1.6)."""
        if self.private is None:
            raise ValueError("this checkpoint key holds no private key: it can only verify")
        return self.private.sign(payload)

    def verifies(self, signature: bytes, payload: bytes) -> bool:
        """Whether ``signature`` is this key's over ``payload`` (RFC 8032 §5.1.7)."""
        try:
            self.public.verify(signature, payload)
        except InvalidSignature:
            return False
        return True


def _create_key_file(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    create_secret_file(path, pem)  # another process won the race: its key stays


# -- canonical forms ---------------------------------------------------------------------------
def entry_hash(
    prev_hash: bytes, seq: int, at: str, patient: str | None, kind: str, body: bytes
) -> bytes:
    """``SHA-256(prev_hash || canonical(entry))``: every field length-prefixed, so no two
    entries share a canonical form (https://csrc.nist.gov/pubs/fips/180-4/upd1/final)."""
    at_b, patient_b, kind_b = at.encode(), (patient or "").encode(), kind.encode()
    return hashlib.sha256(
        b"".join(
            (
                prev_hash,
                _ENTRY,
                struct.pack(
                    ">QIII?I",
                    seq,
                    len(at_b),
                    len(patient_b),
                    len(kind_b),
                    patient is None,
                    len(body),
                ),
                at_b,
                patient_b,
                kind_b,
                body,
            )
        )
    ).digest()


def checkpoint_payload(seq: int, hash_: bytes, prev_seq: int, at: str) -> bytes:
    """The bytes a checkpoint signs: its seq, the chain hash there, the previous checkpoint's
    seq and the time (https://www.rfc-editor.org/rfc/rfc8032)."""
    return _CHECKPOINT + struct.pack(">QQ", seq, prev_seq) + hash_ + at.encode()


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- verification report -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Break:
    """The first broken link found: where, what kind, and a sentence saying it."""

    seq: int
    #: gap | link | hash | checkpoint-signature | checkpoint-hash | checkpoint-chain |
    #: truncated | head
    kind: str
    message: str


@dataclass(slots=True)
class VerifyReport:
    """What :meth:`AuditTrail.verify` found (https://profiles.ihe.net/ITI/BALP/)."""

    checked: int = 0
    first: int | None = None
    last: int | None = None
    checkpoints: int = 0
    seconds: float = 0.0
    broken: Break | None = None
    last_hash: bytes | None = None  # the hash of the last entry checked (an anchor to publish)
    notes: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """Whether no broken link was found."""
        return self.broken is None

    @property
    def rate(self) -> float:
        """Entries checked per second."""
        return self.checked / self.seconds if self.seconds > 0 else 0.0


# -- the trail ----------------------------------------------------------------------------------
class AuditTrail:
    """The audit trail of one store: append, list, verify (https://profiles.ihe.net/ITI/BALP/)."""

    def __init__(
        self,
        store: SqlStore,
        key: CheckpointKey,
        keyring: Keyring | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self.store = store
        self.key = key
        self.keyring = keyring or store.keyring
        self.checkpoint_every = checkpoint_every
        self.clock = clock or store.clock

    @classmethod
    def open(cls, store: SqlStore, state_dir: Path, **options: Any) -> AuditTrail:
        """The trail of ``store`` with its checkpoint key in ``STATE/keys/audit-signing.key``."""
        return cls(store, CheckpointKey.load_or_create(state_dir / "keys"), **options)

    # -- writing --------------------------------------------------------------------------
    def record(self, events: Iterable[Mapping[str, Any]], tx: SqlTx | None = None) -> list[int]:
        """Append ``events`` to the chain: inside ``tx`` when it is a write unit (they commit,
        or roll back, with the access they record), else in a write unit of their own, durable
        when this returns (denials, reads). Returns the seqs given (https://profiles.ihe.net/ITI/BALP/)."""
        batch = list(events)
        if not batch:
            return []
        if tx is not None and sql.is_write_unit(tx.conn):
            return self.append(tx, batch)
        return self.store.write(lambda unit: self.append(unit, batch))

    def record_future(self, events: Iterable[Mapping[str, Any]]) -> Future[list[int]]:
        """Queue ``events`` for a write unit of their own and return at once; the future
        resolves once they are durable (the caller waits for it before it answers, doing the
        rest of its work meanwhile: https://profiles.ihe.net/ITI/BALP/)."""
        batch = list(events)
        return self.store.write_future(lambda unit: self.append(unit, batch))

    def append(
        self, tx_or_conn: SqlTx | Connection, events: Iterable[Mapping[str, Any]]
    ) -> list[int]:
        """Chain ``events`` after the head, under the head's row lock, in the caller's write
        transaction; sign a checkpoint at every ``checkpoint_every``-th entry (RFC 8032)."""
        conn = tx_or_conn.conn if isinstance(tx_or_conn, SqlTx) else tx_or_conn
        batch = list(events)
        if not batch:
            return []
        head = sql.lock_head(conn)
        seq, prev, checkpoint_seq = head.seq, head.hash, head.checkpoint_seq
        rows: list[tuple[Any, ...]] = []
        marks: list[CheckpointRow] = []
        keyring = self.keyring
        for event in batch:
            seq += 1
            at = str(event.get("recorded") or _instant(self.clock()))
            patient = patient_of(event)
            kind = kind_of(event)
            body = seal(keyring, event, seq)
            digest = entry_hash(prev, seq, at, patient, kind, body)
            # sql.INSERT_COLUMNS: the chained columns, then the index-only requestor
            rows.append((seq, at, patient, kind, body, prev, digest, requestor_of(event)))
            prev = digest
            if seq % self.checkpoint_every == 0:
                marks.append(self._checkpoint(seq, digest, checkpoint_seq))
                checkpoint_seq = seq
        sql.insert_entries(conn, rows)
        for mark in marks:
            sql.insert_checkpoint(conn, mark)
        sql.set_head(conn, Head(seq, prev, checkpoint_seq))
        return [r[0] for r in rows]

    def checkpoint(self) -> int | None:
        """Sign the current head now (at shutdown, from a timer): entries up to it can no longer
        be cut off unseen; returns its seq (None: nothing new since the last checkpoint)."""

        def unit(tx: SqlTx) -> int | None:
            head = sql.lock_head(tx.conn)
            if head.seq == 0 or head.seq == head.checkpoint_seq:
                return None
            sql.insert_checkpoint(
                tx.conn, self._checkpoint(head.seq, head.hash, head.checkpoint_seq)
            )
            sql.set_head(tx.conn, Head(head.seq, head.hash, head.seq))
            return head.seq

        return self.store.write(unit)

    def _checkpoint(self, seq: int, digest: bytes, prev_seq: int) -> CheckpointRow:
        at = _instant(self.clock())
        signature = self.key.sign(checkpoint_payload(seq, digest, prev_seq, at))
        return CheckpointRow(seq, digest, prev_seq, at, self.key.key_id, signature)

    # -- reading --------------------------------------------------------------------------
    def for_patient(
        self, patient_ref: str | None, since: datetime | None = None, count: int = 100
    ) -> list[dict[str, Any]]:
        """The AuditEvents of one patient's record (every one when ``patient_ref`` is None),
        decrypted, newest first (https://hl7.org/fhir/R4/auditevent.html)."""
        rows = sql.latest(
            self.store.engine, patient_ref, _instant(since) if since else None, max(count, 0)
        )
        out: list[dict[str, Any]] = []
        for seq, body in rows:
            event = unseal(self.keyring, body, seq)
            out.append({"resourceType": "AuditEvent", "id": str(seq), **event})
        return out

    def for_requestor(
        self,
        idnps: str,
        patient_ref: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        count: int = 100,
    ) -> list[dict[str, Any]]:
        """The AuditEvents whose requesting agent is the professional ``idnps`` (of one
        patient's record when ``patient_ref`` is given, recorded in [since, until]), decrypted,
        newest first (https://profiles.ihe.net/ITI/BALP/). Found through the requestor index,
        kept only when the body (which the chain covers) names him: an edited index column
        can hide an entry, never show another's. Entries written before the index existed
        (NULL) are not found."""
        rows = sql.latest(
            self.store.engine,
            patient_ref,
            _instant(since) if since else None,
            max(count, 0),
            requestor=idnps,
            until=_instant(until) if until else None,
        )
        out: list[dict[str, Any]] = []
        for seq, body in rows:
            event = unseal(self.keyring, body, seq)
            if requestor_of(event) == idnps:
                out.append({"resourceType": "AuditEvent", "id": str(seq), **event})
        return out

    def entry(self, seq: int) -> dict[str, Any] | None:
        """The AuditEvent of entry ``seq``, decrypted (its ``id`` is the seq), or None when
        there is no such entry (https://hl7.org/fhir/R4/auditevent.html)."""
        row = sql.entry_of(self.store.engine, seq)
        if row is None:
            return None
        event = unseal(self.keyring, row[2], row[0])
        return {"resourceType": "AuditEvent", "id": str(row[0]), **event}

    def newest(
        self, patient_ref: str | None = None, since: datetime | None = None, page: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every AuditEvent (of one patient's record when ``patient_ref`` is given), decrypted,
        newest first, streamed in pages (https://hl7.org/fhir/R4/auditevent.html)."""
        rows = sql.iter_newest(
            self.store.engine, patient_ref, _instant(since) if since else None, max(page, 1)
        )
        for seq, body in rows:
            event = unseal(self.keyring, body, seq)
            yield {"resourceType": "AuditEvent", "id": str(seq), **event}

    # -- verification ---------------------------------------------------------------------
    def verify(self, progress: Progress | None = None, from_seq: int = 1) -> VerifyReport:
        """Walk the chain from ``from_seq`` in order and report the first broken link: an edited
        entry (hash), a deleted one (gap), a moved one (prev_hash), a bad or missing checkpoint,
        a truncated tail (https://www.rfc-editor.org/rfc/rfc8032)."""
        return verify_chain(self.store, self.key, progress, from_seq)


def verify_chain(
    store: SqlStore, key: CheckpointKey, progress: Progress | None = None, from_seq: int = 1
) -> VerifyReport:
    """Check the chain of ``store`` against the checkpoint ``key`` (public part suffices); see
    :meth:`AuditTrail.verify` (https://www.rfc-editor.org/rfc/rfc8032)."""
    started = time.perf_counter()
    report = VerifyReport()
    from_seq = max(from_seq, 1)
    head = sql.head_of(store.engine)
    total = max((head.seq if head else 0) - from_seq + 1, 0)
    marks = {m.seq: m for m in sql.checkpoints(store.engine, 0)}
    report.broken = _walk(store, key, report, marks, from_seq, total, progress)
    if report.broken is None:
        report.broken = _tail(report, marks, head, from_seq)
    report.seconds = time.perf_counter() - started
    if progress is not None:
        progress(report.checked, max(total, report.checked))
    return report


def _walk(
    store: SqlStore,
    key: CheckpointKey,
    report: VerifyReport,
    marks: dict[int, CheckpointRow],
    from_seq: int,
    total: int,
    progress: Progress | None,
) -> Break | None:
    if from_seq == 1:
        prev: bytes | None = GENESIS
    else:
        prev = sql.entry_hash(store.engine, from_seq - 1)
        if prev is None:
            return Break(from_seq - 1, "gap", f"entry {from_seq - 1} (before --from) is missing")
        report.notes.append(f"started from the stored hash of entry {from_seq - 1}")
    last_mark = max((s for s in marks if s < from_seq), default=0)
    expected = from_seq
    hash_fn = entry_hash
    for seq, at, patient, kind, body, prev_hash, stored in sql.iter_entries(store.engine, from_seq):
        if seq != expected:
            first_missing, last_missing = expected, seq - 1
            span = (
                f"entry {first_missing} is"
                if first_missing == last_missing
                else f"entries {first_missing}..{last_missing} are"
            )
            return Break(expected - 1, "gap", f"gap after seq {expected - 1}: {span} missing")
        if bytes(prev_hash) != prev:
            return Break(
                seq,
                "link",
                f"prev_hash mismatch at seq {seq}: it does not name the hash of entry {seq - 1} "
                "(entries reordered or replaced)",
            )
        digest = hash_fn(prev, seq, at, patient, kind, bytes(body))
        if digest != bytes(stored):
            return Break(seq, "hash", f"hash mismatch at seq {seq}: the entry was edited")
        mark = marks.get(seq)
        if mark is not None:
            broken = _check_mark(key, mark, digest, last_mark, from_seq)
            if broken is not None:
                return broken
            report.checkpoints += 1
            last_mark = seq
        if report.first is None:
            report.first = seq
        report.last = seq
        report.last_hash = digest
        report.checked += 1
        prev = digest
        expected = seq + 1
        if progress is not None and report.checked % _PROGRESS_EVERY == 0:
            progress(report.checked, max(total, report.checked))
    return None


def _check_mark(
    key: CheckpointKey, mark: CheckpointRow, digest: bytes, last_mark: int, from_seq: int
) -> Break | None:
    payload = checkpoint_payload(mark.seq, mark.hash, mark.prev_seq, mark.at)
    if mark.key_id != key.key_id or not key.verifies(mark.signature, payload):
        return Break(
            mark.seq,
            "checkpoint-signature",
            f"checkpoint at seq {mark.seq}: signature invalid (key {mark.key_id})",
        )
    if mark.hash != digest:
        return Break(
            mark.seq,
            "checkpoint-hash",
            f"checkpoint at seq {mark.seq} does not match the chain: entries up to it were "
            "rewritten",
        )
    if mark.prev_seq != last_mark and (last_mark >= from_seq or mark.prev_seq >= from_seq):
        return Break(
            mark.seq,
            "checkpoint-chain",
            f"checkpoint at seq {mark.seq} follows checkpoint {mark.prev_seq}, but the previous "
            f"one found is {last_mark or 'none'}: a checkpoint was deleted",
        )
    return None


def _tail(
    report: VerifyReport, marks: dict[int, CheckpointRow], head: Head | None, from_seq: int
) -> Break | None:
    last = report.last if report.last is not None else from_seq - 1
    before = max((s for s in marks if s <= last), default=0)
    after = max((s for s in marks if s > last), default=0)
    attested = max(after, head.seq if head else 0)
    if attested > last:
        by = f"checkpoint at seq {after}" if after >= attested else f"the head (seq {attested})"
        since = f"after checkpoint {before}" if before else "after the start"
        return Break(
            last,
            "truncated",
            f"the last {attested - last} entries {since} are missing (seq {last + 1}..{attested}):"
            f" {by} says they existed",
        )
    if head is not None and report.last_hash is not None and report.last == head.seq:
        if head.hash != report.last_hash:
            return Break(last, "head", f"the head does not name the hash of entry {last}")
    elif head is not None and report.last is not None and head.seq < report.last:
        return Break(
            head.seq,
            "head",
            f"the head says seq {head.seq} but entries run to {report.last}: rows were added "
            "outside the chain's lock",
        )
    return None
