"""A transaction's bodies are validated before its write unit (outside the store's serialised
writer) and the unit uses those results only for bodies that are exactly the ones it writes:
a foreseen reference saves the work, a wrong one never lets an invalid body through.

https://hl7.org/fhir/R4/http.html#transaction
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maison.api import bundles
from maison.api import interactions as ix
from maison.fhir.definitions import Definitions
from maison.fhir.errors import FhirError, Issue
from maison.fhir.validation import Validator
from maison.store.sql import SqlStore
from support import open_sql_store

BASE = "https://maison.test/fhir"
IPP = "urn:oid:1.2.250.1.71.4.2.7.999"


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s: SqlStore = open_sql_store(data_url, tmp_path / "state", defs)
    yield s
    s.close()


class Counting:
    """The validator, counting the bodies it validates and where (in the unit or before)."""

    def __init__(self, defs: Definitions) -> None:
        self.validator = Validator(defs)
        self.in_unit = False
        self.ahead: list[str] = []
        self.unit: list[str] = []

    def __call__(self, body: dict[str, Any]) -> list[Issue]:
        (self.unit if self.in_unit else self.ahead).append(str(body.get("resourceType")))
        return self.validator.validate(body, None)


def _runner(store: SqlStore, counting: Counting) -> bundles.Runner:
    def run(fn: Any, write: bool) -> Any:
        def unit(tx: Any) -> Any:
            counting.in_unit = True
            try:
                return fn(tx)
            finally:
                counting.in_unit = False

        return store.write(unit) if write else store.read(unit)

    return run


def _patient(store: SqlStore, value: str) -> str:
    body = {"resourceType": "Patient", "identifier": [{"system": IPP, "value": value}]}
    return store.write(lambda tx: tx.create("Patient", body).id)


def _conditional(store: SqlStore) -> tuple[str, str]:
    """A new patient's id and the conditional reference naming it by identifier."""
    value = uuid.uuid4().hex
    return _patient(store, value), f"Patient?identifier={IPP}|{value}"


def _written(store: SqlStore) -> int:
    """How many Observation versions the store holds."""
    page = store.read(lambda tx: tx.history("Observation", None, None, 1000, None))
    return len(page.entries)


def _bundle(subject: str, status: str = "final") -> dict[str, Any]:
    obs = f"urn:uuid:{uuid.uuid4()}"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": obs,
                "resource": {
                    "resourceType": "Observation",
                    "status": status,
                    "code": {"text": "pouls"},
                    "subject": {"reference": subject},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Provenance",
                    "target": [{"reference": obs}],
                    "recorded": "2026-11-27T10:00:00Z",
                    "agent": [{"who": {"display": "Dr Test"}}],
                },
                "request": {"method": "POST", "url": "Provenance"},
            },
        ],
    }


def _transaction(
    store: SqlStore, counting: Counting, bundle: dict[str, Any], known: dict[str, str] | None
) -> dict[str, Any]:
    ctx = ix.Context(counting.validator.defs, counting, BASE)
    return bundles.transaction(
        ctx, _runner(store, counting), store.new_id, bundle, False, False, known=known
    )


def test_foreseen_bodies_are_validated_once_before_the_unit(
    store: SqlStore, defs: Definitions
) -> None:
    pid = _patient(store, uuid.uuid4().hex)
    counting = Counting(defs)
    out = _transaction(store, counting, _bundle(f"Patient/{pid}"), None)
    assert [e["response"]["status"] for e in out["entry"]] == ["201 Created"] * 2
    assert sorted(counting.ahead) == ["Observation", "Provenance"]
    assert counting.unit == []  # the unit wrote exactly the bodies validated before it
    provenance = out["entry"][1]["resource"]
    observation = out["entry"][0]["resource"]
    assert provenance["target"][0]["reference"] == f"Observation/{observation['id']}"


def test_a_conditional_reference_resolved_by_the_caller_is_foreseen(
    store: SqlStore, defs: Definitions
) -> None:
    pid, conditional = _conditional(store)
    counting = Counting(defs)
    out = _transaction(store, counting, _bundle(conditional), {conditional: f"Patient/{pid}"})
    assert out["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    assert counting.unit == []
    # unknown to the caller: that body is left to the unit, which resolves it itself
    counting = Counting(defs)
    out = _transaction(store, counting, _bundle(conditional), None)
    assert out["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    assert counting.ahead == ["Provenance"] and counting.unit == ["Observation"]


def test_a_wrong_foresight_never_skips_the_validation_of_what_is_written(
    store: SqlStore, defs: Definitions
) -> None:
    pid, conditional = _conditional(store)
    counting = Counting(defs)
    wrong = {conditional: "Patient/not-the-one"}
    out = _transaction(store, counting, _bundle(conditional), wrong)
    assert out["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    assert counting.unit == ["Observation"]  # the body differs from the foreseen one
    # an invalid body is refused by the unit whatever was foreseen, and nothing is written
    before = _written(store)
    counting = Counting(defs)
    with pytest.raises(FhirError) as refused:
        _transaction(store, counting, _bundle(conditional, status="pas-un-statut"), wrong)
    assert "Observation" in refused.value.message
    assert counting.unit == ["Observation"]
    assert _written(store) == before


def test_an_invalid_body_foreseen_is_refused_as_in_the_unit(
    store: SqlStore, defs: Definitions
) -> None:
    pid = _patient(store, uuid.uuid4().hex)
    counting = Counting(defs)
    with pytest.raises(FhirError) as refused:
        _transaction(store, counting, _bundle(f"Patient/{pid}", status="pas-un-statut"), None)
    assert refused.value.message.startswith("Bundle.entry[0]")
    assert "pas-un-statut" in str([i.diagnostics for i in refused.value.issues])
    assert counting.unit == []


def test_a_post_entry_may_be_given_the_id_its_caller_drew(
    store: SqlStore, defs: Definitions
) -> None:
    pid = _patient(store, uuid.uuid4().hex)
    counting = Counting(defs)
    drawn = uuid.uuid4().hex
    ctx = ix.Context(defs, counting, BASE)
    bundle = _bundle(f"Patient/{pid}")
    out = bundles.transaction(
        ctx, _runner(store, counting), store.new_id, bundle, False, False, new_ids={0: drawn}
    )
    assert out["entry"][0]["response"]["location"].startswith(f"Observation/{drawn}/")
    assert out["entry"][1]["resource"]["target"][0]["reference"] == f"Observation/{drawn}"
    assert counting.unit == []  # foreseen with that id


def test_the_store_gets_the_bodies_to_come_with_their_ids(
    store: SqlStore, defs: Definitions
) -> None:
    pid = _patient(store, uuid.uuid4().hex)
    counting = Counting(defs)
    seen: list[dict[str, Any]] = []
    ctx = ix.Context(defs, counting, BASE, ahead=seen.append)
    out = bundles.transaction(
        ctx, _runner(store, counting), store.new_id, _bundle(f"Patient/{pid}"), False, False
    )
    stored = [e["resource"] for e in out["entry"]]
    assert [(b["resourceType"], b["id"]) for b in seen] == [
        (r["resourceType"], r["id"]) for r in stored
    ]
    for body, written in zip(seen, stored, strict=True):  # the stored body, but its stamp
        assert body == {k: v for k, v in written.items() if k != "meta"}
