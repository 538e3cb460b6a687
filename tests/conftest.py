"""Session-wide fixtures."""

from __future__ import annotations

import pytest

from maison.fhir.definitions import Definitions, default_definitions


@pytest.fixture(scope="session")
def defs() -> Definitions:
    """The base R4 definitions (fetched by `maison setup`)."""
    return default_definitions()
