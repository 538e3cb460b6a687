"""A real guide end to end: the Annuaire Santé profiles and SearchParameters on its examples."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from maison.fhir.fhirpath import evaluate
from servers import MAISON, Server, free_port
from support import CORPORA

COMPILED = CORPORA / "compiled"
ANNUAIRE = COMPILED / "IG-fhir-annuaire"
EXAMPLE_TYPES = ("Organization", "Practitioner", "PractitionerRole", "Person")
# Examples that break their own profile: AsDrPerson requires the versioned canonical
# "…/as-dr-person|1.2.0-snapshot-2" in meta.profile (slice as-dr-canonical); these give none.
WRONG_EXAMPLES = {"Person/pp16dr-person", "Person/pp19dr-person"}


def _json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


@pytest.fixture(scope="module")
def annuaire(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from servers import backend_data

    tmp = tmp_path_factory.mktemp("annuaire")
    srv = Server(backend_data(backend, tmp), tmp, free_port(), extra_args=["--no-demo"]).start()
    for guide in ("hl7.fhir.fr.core", "IG-fhir-annuaire"):
        out = subprocess.run(
            [
                *MAISON,
                "ig",
                "install",
                str(COMPILED / guide),
                "--data",
                srv.data,
                "--state",
                str(srv.state),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
    time.sleep(1.5)  # every worker reloads the installed definitions within a second
    yield srv
    srv.stop()


def test_examples_are_accepted_or_refused_with_the_true_reason(annuaire: Server) -> None:
    loaded = 0
    with annuaire.client() as c:
        for path in sorted(ANNUAIRE.glob("*.json")):
            doc = _json(path)
            if doc["resourceType"] not in EXAMPLE_TYPES:
                continue
            key = f"{doc['resourceType']}/{doc['id']}"
            r = c.put(f"/{key}", json=doc)
            if key in WRONG_EXAMPLES:
                assert r.status_code == 422, r.text
                assert "as-dr-canonical" in r.text
            else:
                assert r.status_code in (200, 201), (key, r.text[:500])
                loaded += 1
    assert loaded == 18  # 8 Organization, 4 Practitioner, 6 PractitionerRole


def _query_value(value: Any, ptype: str) -> str | None:
    if ptype == "string" and isinstance(value, str):
        return value[:4]
    if ptype == "token":
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            coding = (value.get("coding") or [value])[0]
            if coding.get("code"):
                return (
                    f"{coding['system']}|{coding['code']}"
                    if coding.get("system")
                    else coding["code"]
                )
    if ptype == "date" and isinstance(value, dict) and value.get("start"):
        return f"le{value['start']}"
    return None


def test_every_annuaire_search_parameter_finds_its_examples(annuaire: Server) -> None:
    checked = 0
    examples = [
        _json(p)
        for p in sorted(ANNUAIRE.glob("*.json"))
        if _json(p)["resourceType"] in EXAMPLE_TYPES
        and f"{_json(p)['resourceType']}/{_json(p)['id']}" not in WRONG_EXAMPLES
    ]
    with annuaire.client() as c:
        for path in sorted(ANNUAIRE.glob("SearchParameter-*.json")):
            sp = _json(path)
            for example in examples:
                if example["resourceType"] not in sp["base"]:
                    continue
                values = evaluate(example, sp["expression"])
                query = next((q for v in values if (q := _query_value(v, sp["type"]))), None)
                if query is None:
                    continue
                url = f"/{example['resourceType']}?{sp['code']}={quote(query, safe='|')}"
                r = c.get(url, params={"_count": 200})
                assert r.status_code == 200, (url, r.text[:300])
                ids = {e["resource"]["id"] for e in r.json()["entry"]}
                assert example["id"] in ids, (sp["code"], url)
                checked += 1
    assert checked >= 10
