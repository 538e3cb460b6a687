"""The physical purge of a resource (every version, history and index row), only used by the
purge of a closed DMP past its retention period; run on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from maison.fhir.definitions import Definitions
from maison.fhir.search import parse_search
from maison.store.schema import INDEX_TABLES, resource, resource_history
from maison.store.sql import SqlStore
from support import open_sql_store

DOC: dict[str, Any] = {
    "resourceType": "DocumentReference",
    "status": "current",
    "subject": {"reference": "Patient/p1"},
    "content": [{"attachment": {"url": "Binary/b1", "contentType": "application/pdf"}}],
}


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s: SqlStore = open_sql_store(data_url, tmp_path / "state", defs, ids=True)
    yield s
    s.close()


def _rows(store: SqlStore, res_id: str) -> dict[str, int]:
    tables = {"resource": resource, "history": resource_history, **INDEX_TABLES}
    with store.engine.connect() as conn:
        return {
            name: int(
                conn.execute(
                    select(func.count()).select_from(t).where(t.c.res_id == res_id)
                ).scalar_one()
            )
            for name, t in tables.items()
        }


def test_purge_removes_every_version_history_and_index_row(
    store: SqlStore, defs: Definitions
) -> None:
    store.write(lambda tx: tx.create("Patient", {"resourceType": "Patient"}, "p1"))
    store.write(lambda tx: tx.create("DocumentReference", dict(DOC), "d1"))
    store.write(lambda tx: tx.update("DocumentReference", "d1", {**DOC, "status": "superseded"}))
    store.write(lambda tx: tx.create("DocumentReference", dict(DOC), "d2"))
    assert _rows(store, "d1")["history"] == 2 and _rows(store, "d1")["reference"] > 0
    removed = store.write(lambda tx: tx.purge("DocumentReference", "d1"))
    assert removed == 2
    assert set(_rows(store, "d1").values()) == {0}
    assert store.read(lambda tx: tx.read("DocumentReference", "d1")) is None
    assert store.read(lambda tx: tx.vread("DocumentReference", "d1", 1)) is None
    history = store.read(lambda tx: tx.history("DocumentReference", "d1", None, 10, None))
    assert history.entries == []
    query = parse_search(defs, "DocumentReference", [("subject", "Patient/p1")])
    found = store.read(lambda tx: tx.search(query))
    assert [e.id for e in found.entries] == ["d2"]  # the other document is untouched
    assert store.write(lambda tx: tx.purge("DocumentReference", "d1")) == 0


def test_a_purge_in_a_failed_unit_is_rolled_back(store: SqlStore) -> None:
    store.write(lambda tx: tx.create("DocumentReference", dict(DOC), "d1"))

    def failing(tx: Any) -> None:
        tx.purge("DocumentReference", "d1")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.write(failing)
    kept = store.read(lambda tx: tx.read("DocumentReference", "d1"))
    assert kept is not None and kept.resource is not None and kept.version == 1
    assert _rows(store, "d1")["history"] == 1


def test_purge_of_a_resource_written_in_the_same_unit(store: SqlStore) -> None:
    def unit(tx: Any) -> int:
        tx.create("DocumentReference", dict(DOC), "d9")
        return int(tx.purge("DocumentReference", "d9"))

    assert store.write(unit) == 1
    assert set(_rows(store, "d9").values()) == {0}
