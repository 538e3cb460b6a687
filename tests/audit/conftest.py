"""Fixtures of the audit trail's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maison.store.sql import SqlStore
from support import open_sql_store


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Any) -> Iterator[SqlStore]:
    """A store on the backend under test, its keys in ``tmp_path/state``."""
    s = open_sql_store(data_url, tmp_path / "state", defs)
    yield s
    s.close()
