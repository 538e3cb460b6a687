"""Shared test helpers: where the read-only shared material lives."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MAISON_SHARED", REPO.parent / "shared")).resolve()
CORPORA = SHARED / "corpora"
FHIR_TEST_CASES = CORPORA / "fhir-test-cases"
