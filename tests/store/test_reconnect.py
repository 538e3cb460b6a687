"""A store whose pooled connections were killed (the database restarted) answers again at
once for the facts a server checks on every request (PostgreSQL only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from maison.fhir.definitions import Definitions
from support import open_sql_store


def test_get_meta_replaces_a_dead_pooled_connection(
    backend: str, data_url: str, tmp_path: Path, defs: Definitions
) -> None:
    if backend != "postgresql":
        pytest.skip("connections to kill exist only on PostgreSQL")
    store = open_sql_store(data_url, tmp_path / "state", defs)
    try:
        store.set_meta("probe", "1")
        assert store.get_meta("probe") == "1"  # a connection now waits in the pool
        killer = create_engine(data_url.replace("postgresql://", "postgresql+psycopg://"))
        with killer.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        killer.dispose()
        assert store.get_meta("probe") == "1"
    finally:
        store.close()
