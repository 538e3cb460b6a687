"""Session-wide fixtures: definitions, the backend under test, a running server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from maison.fhir.definitions import Definitions, default_definitions
from servers import Server, backend_data, free_port

BACKEND = os.environ.get("MAISON_TEST_STORE", "sqlite")


@pytest.fixture(scope="session")
def defs() -> Definitions:
    """The base R4 definitions (fetched by `maison setup`)."""
    return default_definitions()


@pytest.fixture(scope="session")
def backend() -> str:
    """The store under test: sqlite (default) or postgresql (MAISON_TEST_STORE)."""
    return BACKEND


@pytest.fixture
def data_url(backend: str, tmp_path: Path) -> str:
    """A fresh, empty store location for the backend under test."""
    return backend_data(backend, tmp_path)


@pytest.fixture(scope="session")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running maison server on the backend under test, without demo data."""
    tmp = tmp_path_factory.mktemp("server")
    srv = Server(backend_data(backend, tmp), tmp, free_port(), extra_args=["--no-demo"]).start()
    yield srv
    srv.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """An authenticated HTTP client on the session server."""
    with server.client() as c:
        yield c
