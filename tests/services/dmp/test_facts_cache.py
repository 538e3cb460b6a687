"""The per-process cache of records' facts: kept while nothing is written, dropped at the next
request after any write, and (PostgreSQL) trusted for a bounded time at most."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maison.services.dmp.relations import FactsCache
from maison.store.sql import SqlStore
from support import open_sql_store

PATIENT = {"resourceType": "Patient", "name": [{"family": "Durand"}]}


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Any) -> Iterator[SqlStore]:
    s = open_sql_store(data_url, tmp_path / "state", defs)
    yield s
    s.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _reads(store: SqlStore, cache: FactsCache, pid: str) -> int:
    """How many look-ups of the record one request's facts made (0: served from the cache)."""
    count = 0

    def unit(tx: Any) -> None:
        nonlocal count
        real = tx.referencing

        def counting(*args: Any, **kw: Any) -> Any:
            nonlocal count
            count += 1
            return real(*args, **kw)

        tx.referencing = counting
        facts, _ = cache.for_request()
        assert facts(tx, pid) is not None

    store.read(unit)
    return count


def test_facts_are_kept_until_a_write_then_read_again(store: SqlStore, defs: Any) -> None:
    pid = store.write(lambda tx: tx.create("Patient", PATIENT)).id
    cache = FactsCache(lambda: defs)
    assert _reads(store, cache, pid) == 1
    assert _reads(store, cache, pid) == 0  # nothing written: kept
    store.write(lambda tx: tx.create("Patient", PATIENT))  # any write moves the stamp
    assert _reads(store, cache, pid) == 1
    assert _reads(store, cache, pid) == 0


def test_write_units_read_through_and_never_fill(store: SqlStore, defs: Any) -> None:
    pid = store.write(lambda tx: tx.create("Patient", PATIENT)).id
    cache = FactsCache(lambda: defs)

    def in_write(tx: Any) -> None:
        facts, _ = cache.for_request(write=True)
        assert facts(tx, pid) is not None

    store.write(in_write)
    assert _reads(store, cache, pid) == 1  # the write unit left nothing behind


def test_max_age_bounds_the_trust_in_an_unchanged_stamp(store: SqlStore, defs: Any) -> None:
    pid = store.write(lambda tx: tx.create("Patient", PATIENT)).id
    clock = Clock()
    cache = FactsCache(lambda: defs, max_age=1.0, clock=clock)
    assert _reads(store, cache, pid) == 1
    clock.now += 0.5
    assert _reads(store, cache, pid) == 0
    clock.now += 0.6  # older than max_age: read again though nothing was written
    assert _reads(store, cache, pid) == 1
    assert _reads(store, cache, pid) == 0
