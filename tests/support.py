"""Shared test helpers: where the read-only shared material lives."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MAISON_SHARED", REPO.parent / "shared")).resolve()
CORPORA = SHARED / "corpora"
FHIR_TEST_CASES = CORPORA / "fhir-test-cases"


class TickingClock:
    """A deterministic store clock: one second later at every call."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> Any:
        from datetime import timedelta

        self.now += timedelta(seconds=1)
        return self.now


def open_sql_store(
    data_url: str, state: Path, defs: Any, *, ids: bool = False, clock: bool = True
) -> Any:
    """A migrated SqlStore for ``data_url`` (the backend under test), its keys in ``state``;
    ``ids``: ids ``id1``, ``id2``… instead of UUIDs."""
    from maison.api.settings import Settings
    from maison.fhir.indexing import Indexer
    from maison.store.crypto import Keyring
    from maison.store.sql import SqlStore

    settings = Settings(data=data_url, state=str(state))
    if not settings.is_url:
        Path(settings.data).mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1_000_000))
    store = SqlStore(
        settings.database_url,
        Keyring.load_or_create(state),
        Indexer(defs).extract,
        **({"clock": TickingClock()} if clock else {}),
        **({"new_id": lambda: f"id{next(counter)}"} if ids else {}),
    )
    store.migrate()
    return store


def nos_csv_terminology(data_url: str, state: Path, defs: Any) -> tuple[Any, Any]:
    """(store, SqlTerminology) with the NOS CSV lists of ../shared loaded, as `maison
    terminology load` does."""
    from maison.terminology.loaders.detect import plan
    from maison.terminology.sql_source import SqlTerminology

    store = open_sql_store(data_url, state, defs, clock=False)
    loaded = SqlTerminology(store)
    for unit in plan(sorted((SHARED / "domain" / "data" / "nos").glob("*.csv"))):
        loaded.load(unit.produce)
    return store, loaded
