"""The audit hash chain: append, list, verify; tampering in the database is reported exactly."""

from __future__ import annotations

import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, select, update

from maison.audit.chain import AuditTrail, CheckpointKey, verify_chain
from maison.audit.events import Actor, audit_event
from maison.store.audit_log import audit_checkpoint, audit_head, audit_log
from maison.store.sql import SqlStore

WHEN = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DOCTOR = Actor(subject="s", idnps="810002909371", profession="10", structure={"finess": "75"})


@pytest.fixture
def trail(store: SqlStore, tmp_path: Path) -> AuditTrail:
    return AuditTrail.open(store, tmp_path / "state", checkpoint_every=10)


def _event(n: int, patient: str = "Patient/p1", action: Any = "read") -> dict[str, Any]:
    return audit_event(
        DOCTOR,
        action,
        recorded=WHEN + timedelta(seconds=n),
        resources=[f"DocumentReference/d{n}"],
        patient=patient,
        reason={"rule": "matrix.allow", "cell": f"10x{n}"},
    )


def _fill(trail: AuditTrail, count: int) -> None:
    trail.record([_event(n) for n in range(1, count + 1)])


def _sql(store: SqlStore, *statements: Any) -> None:
    with store.engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def test_append_and_verify_intact(trail: AuditTrail, store: SqlStore) -> None:
    seqs = trail.record([_event(1), _event(2)])
    assert seqs == [1, 2]
    _fill(trail, 33)
    seen: list[tuple[int, int]] = []
    report = trail.verify(progress=lambda done, total: seen.append((done, total)))
    assert report.intact, report.broken
    assert (report.checked, report.first, report.last) == (35, 1, 35)
    assert report.checkpoints == 3  # at 10, 20, 30
    assert seen[-1] == (35, 35)
    assert report.rate > 0


def test_empty_chain_is_intact(trail: AuditTrail) -> None:
    report = trail.verify()
    assert report.intact and report.checked == 0


def test_record_inside_a_write_unit_commits_or_rolls_back_with_it(
    trail: AuditTrail, store: SqlStore
) -> None:
    def unit(tx: Any) -> None:
        tx.create("Patient", {"resourceType": "Patient"})
        trail.record([_event(1, action="create")], tx)

    store.write(unit)

    def failing(tx: Any) -> None:
        trail.record([_event(2, action="create")], tx)
        raise RuntimeError("the access failed")

    with pytest.raises(RuntimeError):
        store.write(failing)
    with store.transaction() as tx:  # a unit of its own (store.transaction) works too
        trail.record([_event(3, action="update")], tx)
    assert [e["id"] for e in trail.for_patient("Patient/p1")] == ["2", "1"]
    assert trail.verify().intact


def test_record_in_a_read_unit_uses_its_own_write(trail: AuditTrail, store: SqlStore) -> None:
    def read(tx: Any) -> list[int]:
        return trail.record([_event(1, action="denial")], tx)

    assert store.read(read) == [1]
    assert trail.for_patient("Patient/p1")[0]["outcome"] == "4"


def test_for_patient_newest_first_since_and_count(trail: AuditTrail) -> None:
    trail.record([_event(n, "Patient/p1" if n % 2 else "Patient/p2") for n in range(1, 11)])
    mine = trail.for_patient("Patient/p1")
    assert [e["id"] for e in mine] == ["9", "7", "5", "3", "1"]
    assert all(e["resourceType"] == "AuditEvent" for e in mine)
    assert [e["id"] for e in trail.for_patient("Patient/p1", count=2)] == ["9", "7"]
    since = WHEN + timedelta(seconds=5)
    assert [e["id"] for e in trail.for_patient("Patient/p1", since=since)] == ["9", "7", "5"]
    assert len(trail.for_patient(None)) == 10


def test_bodies_are_not_readable_in_clear(trail: AuditTrail, store: SqlStore) -> None:
    trail.record([_event(1)])
    with store.engine.connect() as conn:
        body = conn.execute(select(audit_log.c.body)).scalar_one()
    for clear in (b"810002909371", b"AuditEvent", b"DocumentReference", b"matrix.allow"):
        assert clear not in body


def test_signing_key_file_is_private(tmp_path: Path) -> None:
    key = CheckpointKey.load_or_create(tmp_path / "keys")
    path = tmp_path / "keys" / "audit-signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert CheckpointKey.load_or_create(tmp_path / "keys").key_id == key.key_id
    path.chmod(0o644)
    with pytest.raises(PermissionError):
        CheckpointKey.load_or_create(tmp_path / "keys")


# -- tampering directly in the database ------------------------------------------------------
def test_edited_body_is_a_hash_mismatch(trail: AuditTrail, store: SqlStore) -> None:
    _fill(trail, 25)
    with store.engine.connect() as conn:
        body = conn.execute(select(audit_log.c.body).where(audit_log.c.seq == 14)).scalar_one()
    forged = bytes(body[:-1]) + bytes([body[-1] ^ 1])
    _sql(store, update(audit_log).where(audit_log.c.seq == 14).values(body=forged))
    report = trail.verify()
    assert report.broken is not None
    assert (report.broken.kind, report.broken.seq) == ("hash", 14)
    assert "hash mismatch at seq 14" in report.broken.message
    assert report.checked == 13


def test_edited_patient_column_is_a_hash_mismatch(trail: AuditTrail, store: SqlStore) -> None:
    _fill(trail, 5)
    _sql(store, update(audit_log).where(audit_log.c.seq == 3).values(patient="Patient/other"))
    broken = trail.verify().broken
    assert broken is not None and (broken.kind, broken.seq) == ("hash", 3)


def test_deleted_row_is_a_gap(trail: AuditTrail, store: SqlStore) -> None:
    _fill(trail, 25)
    _sql(store, delete(audit_log).where(audit_log.c.seq == 7))
    report = trail.verify()
    assert report.broken is not None
    assert (report.broken.kind, report.broken.seq) == ("gap", 6)
    assert report.broken.message == "gap after seq 6: entry 7 is missing"


def test_deleted_first_rows_are_a_gap(trail: AuditTrail, store: SqlStore) -> None:
    _fill(trail, 5)
    _sql(store, delete(audit_log).where(audit_log.c.seq <= 2))
    broken = trail.verify().broken
    assert broken is not None and broken.message == "gap after seq 0: entries 1..2 are missing"


def test_swapped_rows_are_a_prev_hash_mismatch(trail: AuditTrail, store: SqlStore) -> None:
    _fill(trail, 25)
    t = audit_log.c
    _sql(
        store,
        update(audit_log).where(t.seq == 12).values(seq=-1),
        update(audit_log).where(t.seq == 13).values(seq=12),
        update(audit_log).where(t.seq == -1).values(seq=13),
    )
    report = trail.verify()
    assert report.broken is not None
    assert (report.broken.kind, report.broken.seq) == ("link", 12)
    assert "prev_hash mismatch at seq 12" in report.broken.message
    # the moved bodies no longer decrypt either: their key binds them to their seq
    with pytest.raises(InvalidTag):
        trail.for_patient("Patient/p1", count=30)


def test_altered_checkpoint_signature(trail: AuditTrail, store: SqlStore) -> None:
    _fill(trail, 25)
    with store.engine.connect() as conn:
        sig = conn.execute(
            select(audit_checkpoint.c.signature).where(audit_checkpoint.c.seq == 20)
        ).scalar_one()
    forged = bytes([sig[0] ^ 0xFF]) + bytes(sig[1:])
    _sql(
        store, update(audit_checkpoint).where(audit_checkpoint.c.seq == 20).values(signature=forged)
    )
    report = trail.verify()
    assert report.broken is not None
    assert (report.broken.kind, report.broken.seq) == ("checkpoint-signature", 20)
    assert report.checked == 19


def _rewrite_from_15(store: SqlStore, forger: AuditTrail) -> None:
    """What an attacker with database access but without the key does: cut the chain at 14,
    re-append entries 15.. with every hash recomputed."""
    _sql(
        store,
        delete(audit_log).where(audit_log.c.seq >= 15),
        update(audit_head).values(seq=14, hash=_hash_of(store, 14), checkpoint_seq=10),
    )
    forger.record([_event(n, "Patient/forged") for n in range(15, 26)])


def test_rewritten_chain_fails_the_genuine_checkpoint(
    trail: AuditTrail, store: SqlStore, tmp_path: Path
) -> None:
    _fill(trail, 25)
    forger = AuditTrail(store, trail.key, checkpoint_every=1_000_000)  # no new checkpoints
    _rewrite_from_15(store, forger)
    report = trail.verify()
    assert report.broken is not None
    assert (report.broken.kind, report.broken.seq) == ("checkpoint-hash", 20)


def test_rewritten_chain_with_forged_checkpoints(
    trail: AuditTrail, store: SqlStore, tmp_path: Path
) -> None:
    _fill(trail, 25)
    _sql(store, delete(audit_checkpoint).where(audit_checkpoint.c.seq >= 20))
    forger = AuditTrail(
        store, CheckpointKey.load_or_create(tmp_path / "forger"), checkpoint_every=10
    )
    _rewrite_from_15(store, forger)
    report = trail.verify()
    assert report.broken is not None
    assert (report.broken.kind, report.broken.seq) == ("checkpoint-signature", 20)


def _hash_of(store: SqlStore, seq: int) -> bytes:
    with store.engine.connect() as conn:
        return bytes(
            conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == seq)).scalar_one()
        )


def test_deleted_checkpoint_breaks_the_checkpoint_chain(trail: AuditTrail, store: SqlStore) -> None:
    _fill(trail, 35)
    _sql(store, delete(audit_checkpoint).where(audit_checkpoint.c.seq == 20))
    broken = trail.verify().broken
    assert broken is not None and (broken.kind, broken.seq) == ("checkpoint-chain", 30)


def test_dropped_tail_attested_by_a_checkpoint(trail: AuditTrail, store: SqlStore) -> None:
    _fill(trail, 25)
    _sql(
        store,
        delete(audit_log).where(audit_log.c.seq > 17),
        update(audit_head).values(seq=17, hash=_hash_of(store, 17), checkpoint_seq=10),
    )
    report = trail.verify()
    assert report.broken is not None
    assert report.broken.kind == "truncated"
    assert report.broken.message == (
        "the last 3 entries after checkpoint 10 are missing (seq 18..20): checkpoint at seq 20 "
        "says they existed"
    )
    assert report.checked == 17


def test_dropped_tail_after_the_last_checkpoint_is_seen_by_the_head(
    trail: AuditTrail, store: SqlStore
) -> None:
    _fill(trail, 25)
    _sql(store, delete(audit_log).where(audit_log.c.seq > 22))
    broken = trail.verify().broken
    assert broken is not None
    assert broken.message == (
        "the last 3 entries after checkpoint 20 are missing (seq 23..25): the head (seq 25) "
        "says they existed"
    )


def test_explicit_checkpoint_covers_the_tail(trail: AuditTrail, store: SqlStore) -> None:
    _fill(trail, 25)
    assert trail.checkpoint() == 25
    assert trail.checkpoint() is None  # nothing new
    _sql(
        store,
        delete(audit_log).where(audit_log.c.seq > 23),
        update(audit_head).values(seq=23, hash=_hash_of(store, 23)),
    )
    broken = trail.verify().broken
    assert broken is not None and "checkpoint at seq 25 says they existed" in broken.message
    trail.record([_event(26)])  # appending goes on after a checkpoint


def test_verify_from_a_seq(trail: AuditTrail, store: SqlStore) -> None:
    _fill(trail, 25)
    report = trail.verify(from_seq=11)
    assert report.intact and (report.checked, report.first) == (15, 11)
    _sql(store, update(audit_log).where(audit_log.c.seq == 5).values(kind="search"))
    assert trail.verify(from_seq=11).intact  # before the window
    assert trail.verify().broken is not None


def test_verify_with_the_public_key_only(
    trail: AuditTrail, store: SqlStore, tmp_path: Path
) -> None:
    _fill(trail, 12)
    public = CheckpointKey(trail.key.public)
    assert verify_chain(store, public).intact
    with pytest.raises(ValueError):
        public.sign(b"x")
    other = CheckpointKey.load_or_create(tmp_path / "other")
    broken = verify_chain(store, other).broken
    assert broken is not None and broken.kind == "checkpoint-signature"


# -- concurrency --------------------------------------------------------------------------------
def test_concurrent_appends_keep_one_chain(trail: AuditTrail, store: SqlStore) -> None:
    threads, per_thread = 8, 25
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for n in range(per_thread):
                trail.record([_event(k * 1000 + n, f"Patient/t{k}")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    report = trail.verify()
    assert report.intact, report.broken
    assert report.checked == threads * per_thread
    assert report.checkpoints == threads * per_thread // 10


def test_concurrent_separate_transactions_keep_one_chain(
    trail: AuditTrail, store: SqlStore
) -> None:
    """Each thread its own connection and transaction (the PostgreSQL row lock at work)."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite serialises writers with BEGIN IMMEDIATE; covered above")
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker(k: int) -> None:
        try:
            barrier.wait()
            for n in range(20):
                with store.transaction() as tx:
                    trail.append(tx, [_event(k * 100 + n, f"Patient/t{k}"), _event(n)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    report = trail.verify()
    assert report.intact, report.broken
    assert report.checked == 6 * 20 * 2
