"""The import ledger, on SQLite and on PostgreSQL (MAISON_TEST_STORE)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from maison.fhir.definitions import Definitions
from maison.store.import_ledger import ImportLedger, LedgerEntry
from maison.store.sql import SqlStore, SqlTx
from support import open_sql_store

H1, H2, H3 = ("1" * 64), ("2" * 64), ("3" * 64)


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s: SqlStore = open_sql_store(data_url, tmp_path / "state", defs, clock=False)
    yield s
    s.close()


@pytest.fixture
def ledger(store: SqlStore) -> ImportLedger:
    return ImportLedger(store)


def test_runs_count_up_from_what_is_recorded(store: SqlStore, ledger: ImportLedger) -> None:
    assert ledger.start_run("annuaire") == 1
    assert ledger.start_run("annuaire") == 1  # nothing written until entries carry the run
    store.write(lambda tx: ledger.mark(tx, "annuaire", 1, [("Practitioner", "p1", H1)]))
    assert ledger.start_run("annuaire") == 2
    assert ledger.start_run("finess") == 1  # each source counts its own runs


def test_mark_then_look_up_hashes_in_batches(store: SqlStore, ledger: ImportLedger) -> None:
    rows = [("Organization", f"o{i}", f"{i:064d}") for i in range(2500)]
    rows.append(("Practitioner", "p1", H1))
    store.write(lambda tx: ledger.mark(tx, "annuaire", 1, rows, new=True))
    keys = [(t, i) for t, i, _ in rows] + [("Practitioner", "absent"), ("Organization", "o1")]
    found = ledger.hashes("annuaire", keys)
    assert len(found) == 2501  # more ids than one IN list holds; each key once
    assert found[("Organization", "o2499")] == f"{2499:064d}"
    assert found[("Practitioner", "p1")] == H1
    assert ("Practitioner", "absent") not in found
    assert ledger.hashes("other", keys) == {}  # sources do not see each other's entries


def test_mark_replaces_an_entry_and_brings_a_retired_one_back(
    store: SqlStore, ledger: ImportLedger
) -> None:
    key = ("Practitioner", "p1")
    store.write(lambda tx: ledger.mark(tx, "annuaire", 1, [(*key, H1)]))
    store.write(lambda tx: ledger.retire(tx, "annuaire", [(*key, H2)]))
    seen = store.read(lambda tx: ledger.entries(tx, "annuaire", [key]))
    assert seen == {key: LedgerEntry(H2, 1, True)}  # the run stays the last that held it
    store.write(lambda tx: ledger.mark(tx, "annuaire", 3, [(*key, H3)]))
    seen = store.read(lambda tx: ledger.entries(tx, "annuaire", [key]))
    assert seen == {key: LedgerEntry(H3, 3, False)}
    assert ledger.count("annuaire") == 1 and ledger.count("annuaire", retired=True) == 0


def test_missing_is_what_the_run_did_not_see_and_is_not_retired_yet(
    store: SqlStore, ledger: ImportLedger
) -> None:
    first = [("Practitioner", f"p{i:04d}", H1) for i in range(2300)]
    store.write(lambda tx: ledger.mark(tx, "annuaire", 1, first, new=True))
    seen = [(t, i) for t, i, _ in first[::2]]

    def second_run(tx: SqlTx) -> None:
        ledger.touch(tx, "annuaire", 2, seen)  # unchanged ones
        ledger.mark(tx, "annuaire", 2, [("Organization", "o1", H2)])  # a new one

    store.write(second_run)
    gone = [(t, i) for t, i, _ in first[1::2]]
    assert list(ledger.missing("annuaire", 2, page=500)) == gone  # every page, in order
    # retiring while iterating (what the importer does, page by page) ends the iteration
    done = []
    for key in ledger.missing("annuaire", 2, page=100):
        store.write(lambda tx, key=key: ledger.retire(tx, "annuaire", [(*key, H3)]))
        done.append(key)
    assert done == gone
    assert list(ledger.missing("annuaire", 2)) == []
    assert ledger.count("annuaire", retired=True) == len(gone)
    assert list(ledger.missing("annuaire", 3)) == [("Organization", "o1"), *seen]


def test_existing_names_the_resources_the_store_holds(
    store: SqlStore, ledger: ImportLedger
) -> None:
    body: dict[str, Any] = {"resourceType": "Organization", "name": "Cabinet"}
    store.write(lambda tx: tx.create("Organization", dict(body), "o1"))
    store.write(lambda tx: tx.create("Organization", dict(body), "o2"))
    store.write(lambda tx: tx.delete("Organization", "o2"))

    def look(tx: SqlTx) -> set[tuple[str, str]]:
        tx.create("Organization", dict(body), "o3", fresh=True)  # queued, not flushed yet
        return ledger.existing(
            tx, [("Organization", "o1"), ("Organization", "o2"), ("Organization", "o3"),
                 ("Organization", "o4"), ("Practitioner", "o1")]
        )  # fmt: skip

    found = store.write(look)
    assert found == {("Organization", "o1"), ("Organization", "o2"), ("Organization", "o3")}


def test_forget_and_a_failed_transaction_leaves_no_entry(
    store: SqlStore, ledger: ImportLedger
) -> None:
    store.write(lambda tx: ledger.mark(tx, "annuaire", 1, [("Practitioner", "p1", H1)]))

    def failing(tx: SqlTx) -> None:
        ledger.mark(tx, "annuaire", 2, [("Practitioner", "p2", H2)])
        tx.create("Practitioner", {"resourceType": "Practitioner"}, "p2", fresh=True)
        raise RuntimeError("crash in the middle of a batch")

    with pytest.raises(RuntimeError):
        store.write(failing)
    assert ledger.hashes("annuaire", [("Practitioner", "p2")]) == {}
    assert store.read(lambda tx: tx.read("Practitioner", "p2")) is None
    store.write(lambda tx: ledger.forget(tx, "annuaire", [("Practitioner", "p1")]))
    assert ledger.count("annuaire") == 0


def test_missing_uses_the_source_run_index(store: SqlStore) -> None:
    indexes = {
        ix["name"]: ix["column_names"] for ix in inspect(store.engine).get_indexes("import_ledger")
    }
    assert indexes["ix_import_ledger_source_run"] == ["source", "run"]
    pk = inspect(store.engine).get_pk_constraint("import_ledger")["constrained_columns"]
    assert pk == ["source", "res_type", "res_id"]
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            plan = conn.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT res_type, res_id FROM import_ledger "
                    "WHERE source = 'annuaire' AND run < 5 AND retired = 0"
                )
            ).all()
        assert "ix_import_ledger_source_run" in " ".join(str(r) for r in plan)
