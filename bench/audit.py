"""Audit trail benchmark: the cost of recording an AuditEvent, and `maison audit verify`'s rate.

In one process over a fresh store (SQLite by default, --pg for PostgreSQL):

1. write cost, each a group-committed unit (``store.write``) timed one after the other:
   a resource create alone; the same create with its AuditEvent recorded in the same unit
   (``AuditTrail.record(events, tx)``); an AuditEvent alone in a unit of its own (a denial or a
   read: ``record(events)``); and the CPU cost of one append (build, encrypt, hash, insert)
   measured over a batch of 10,000 in one transaction;
2. the chain filled to --entries entries (batches of 10,000 per transaction);
3. ``verify`` over the whole chain: entries/s, and the extrapolation to 10,000,000.

Figures, not a test.

    .venv/bin/python bench/audit.py                       # 100,000 entries, SQLite
    .venv/bin/python bench/audit.py --entries 1000000     # what the note reports
    .venv/bin/python bench/audit.py --entries 10000000 --data /var/tmp/maison-audit-10m
    .venv/bin/python bench/audit.py --pg postgresql://maison@127.0.0.1:5432/postgres

https://profiles.ihe.net/ITI/BALP/, https://www.rfc-editor.org/rfc/rfc8032
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from maison.audit.chain import AuditTrail
from maison.audit.events import Actor, audit_event
from maison.fhir.definitions import default_definitions
from maison.fhir.indexing import Indexer
from maison.store.crypto import Keyring
from maison.store.sql import SqlStore, SqlTx, StoreSettings

WHEN = datetime(2026, 3, 1, tzinfo=UTC)
DOCTOR = Actor(
    subject="psc-sub",
    idnps="810002909371",
    profession="10",
    structure={"finess": "750000001"},
    fhir_user="Practitioner/810002909371",
    client_id="maison-portal",
)
BATCH = 10_000


def event(n: int) -> dict[str, Any]:
    """A typical access: a document read by a doctor, with its matrix decision."""
    return audit_event(
        DOCTOR,
        "read",
        recorded=WHEN + timedelta(milliseconds=n),
        resources=[f"DocumentReference/doc-{n}"],
        patient=f"Patient/p{n % 50_000}",
        reason={"rule": "matrix.allow", "cell": "10|LOINC:11488-4"},
        client_address="192.0.2.10",
        request_id=f"req-{n}",
    )


def timed(label: str, count: int, fn: Callable[[int], Any]) -> float:
    """Run ``fn(i)`` ``count`` times one after the other; print and return µs per call."""
    laps: list[float] = []
    for i in range(count):
        started = time.perf_counter()
        fn(i)
        laps.append(time.perf_counter() - started)
    mean = statistics.fmean(laps) * 1e6
    p50 = statistics.median(laps) * 1e6
    p99 = sorted(laps)[int(len(laps) * 0.99)] * 1e6
    print(f"  {label:<46} mean {mean:8.0f} µs   p50 {p50:8.0f} µs   p99 {p99:8.0f} µs")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000, help="chain length to verify")
    parser.add_argument("--writes", type=int, default=1000, help="units per write-cost series")
    parser.add_argument("--data", default=None, help="SQLite data folder (kept)")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL of an empty database")
    parser.add_argument(
        "--synchronous", default="FULL", help="SQLite synchronous (FULL, the default, or NORMAL)"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="maison-audit-bench-"))
    folder = Path(args.data) if args.data else tmp / "data"
    folder.mkdir(parents=True, exist_ok=True)
    url = args.pg or f"sqlite:///{folder / 'maison.db'}"
    state = folder / "state" if args.data else tmp / "state"  # the keys stay with kept data
    store = SqlStore(
        url,
        Keyring.load_or_create(state),
        Indexer(default_definitions()).extract,
        settings=StoreSettings(sqlite_synchronous=args.synchronous),
    )
    store.migrate()
    trail = AuditTrail.open(store, state)
    print(f"store: {store.dialect} ({url}), synchronous={args.synchronous}")
    try:
        print(f"1. write cost, {args.writes} units each, one after the other")
        patient = {"resourceType": "Patient", "name": [{"family": "Durand"}]}
        base = timed(
            "create alone",
            args.writes,
            lambda i: store.write(lambda tx: tx.create("Patient", patient)),
        )

        def with_audit(i: int) -> None:
            def unit(tx: SqlTx) -> None:
                tx.create("Patient", patient)
                trail.record([event(i)], tx)

            store.write(unit)

        audited = timed("create + its AuditEvent (same unit)", args.writes, with_audit)
        alone = timed(
            "AuditEvent alone (a unit of its own)", args.writes, lambda i: trail.record([event(i)])
        )
        build = timed("build one AuditEvent (pure)", args.writes, event)
        events = [event(i) for i in range(BATCH)]
        started = time.perf_counter()
        store.write(lambda tx: trail.append(tx, events))
        per_append = (time.perf_counter() - started) / BATCH * 1e6
        print(f"  {'append in a batch of 10,000 (encrypt+hash+insert)':<46} {per_append:8.1f} µs")
        print(
            f"  => audit overhead on a write: {audited - base:+.0f} µs p50 "
            f"({(audited - base) / base:+.0%}); a separate audit unit: {alone:.0f} µs p50; "
            f"building: {build:.0f} µs"
        )

        have = _count(trail)
        todo = max(args.entries - have, 0)
        print(f"2. filling the chain to {args.entries:,} entries ({todo:,} to append)")
        started = time.perf_counter()
        done = 0
        template = events
        while done < todo:
            size = min(BATCH, todo - done)
            chunk = template[:size]
            store.write(lambda tx, chunk=chunk: trail.append(tx, chunk))  # type: ignore[misc]
            done += size
        elapsed = time.perf_counter() - started
        if todo:
            print(f"  {todo:,} appended in {elapsed:.1f} s ({todo / elapsed:,.0f} entries/s)")

        print("3. verify")
        report = trail.verify()
        print(
            f"  {report.checked:,} entries, {report.checkpoints:,} checkpoints in "
            f"{report.seconds:.1f} s: {report.rate:,.0f} entries/s, "
            f"{'intact' if report.intact else report.broken}"
        )
        if report.rate:
            print(f"  => 10,000,000 entries: ~{10_000_000 / report.rate:,.0f} s (extrapolated)")
    finally:
        store.close()
        if not args.data:
            shutil.rmtree(tmp, ignore_errors=True)


def _count(trail: AuditTrail) -> int:
    from maison.store.audit_log import head_of

    head = head_of(trail.store.engine)
    return head.seq if head else 0


if __name__ == "__main__":
    main()
