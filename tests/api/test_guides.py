"""A real guide end to end: the Annuaire Santé profiles and SearchParameters on its examples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from maison.fhir.fhirpath import evaluate
from servers import Server, guide_server
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


def _guide_server(backend: str, tmp_path_factory: pytest.TempPathFactory, *guides: str) -> Server:
    """A server without demo data with these compiled guides installed (in this order)."""
    tmp = tmp_path_factory.mktemp(guides[-1][:20])
    return guide_server(backend, tmp, *(COMPILED / g for g in guides))


@pytest.fixture(scope="module")
def annuaire(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _guide_server(backend, tmp_path_factory, "hl7.fhir.fr.core", "IG-fhir-annuaire")
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


def _check_search_parameters(
    srv: Server, parameters: list[Path], examples: list[dict[str, Any]]
) -> int:
    """Every SearchParameter whose expression has a value on an example finds that example
    over HTTP; returns how many (parameter, example) pairs were checked."""
    checked = 0
    with srv.client() as c:
        for path in sorted(parameters):
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
    return checked


def test_every_annuaire_search_parameter_finds_its_examples(annuaire: Server) -> None:
    examples = [
        _json(p)
        for p in sorted(ANNUAIRE.glob("*.json"))
        if _json(p)["resourceType"] in EXAMPLE_TYPES
        and f"{_json(p)['resourceType']}/{_json(p)['id']}" not in WRONG_EXAMPLES
    ]
    parameters = list(ANNUAIRE.glob("SearchParameter-*.json"))
    assert _check_search_parameters(annuaire, parameters, examples) >= 10


# --- PDSm (Partage de Documents de Santé en mobilité) over IHE MHD -------------------------
PDSM = COMPILED / "IG-fhir-partage-de-documents-de-sante"
MHD = COMPILED / "IHE-ITI.MHD"
PDSM_TYPES = ("Patient", "Organization", "Binary", "DocumentReference", "List")


@pytest.fixture(scope="module")
def pdsm(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    guides = ("hl7.fhir.fr.core", "IHE-ITI.MHD", "IG-fhir-partage-de-documents-de-sante")
    srv = _guide_server(backend, tmp_path_factory, *guides)
    yield srv
    srv.stop()


def _pdsm_examples() -> list[dict[str, Any]]:
    return [d for p in sorted(PDSM.glob("*.json")) if (d := _json(p))["resourceType"] in PDSM_TYPES]


# Official examples that break the base R4 rules: their contained resources keep the
# meta.versionId/lastUpdated of the server they were copied from (dom-4), and the
# DocumentReference contains a Practitioner nothing references (dom-3).
PDSM_WRONG = {
    "DocumentReference/exemple-pdsm-documentreference": ("dom-3", "dom-4"),
    "List/ExampleSubmissionSet": ("dom-4",),
}


def _corrected(doc: dict[str, Any]) -> dict[str, Any]:
    """The minimal fix of a PDSM_WRONG example: contained resources lose the server meta
    they were copied with (dom-4), and a contained author nothing pointed at is added to
    ``author`` (dom-3; the comprehensive profile requires a contained resource)."""
    contained = [
        {
            **res,
            "meta": {
                k: v
                for k, v in res.get("meta", {}).items()
                if k not in ("versionId", "lastUpdated")
            },
        }
        for res in doc.get("contained", [])
    ]
    out = {**doc, "contained": contained}
    text = orjson.dumps(out).decode()
    for res in contained:
        if f'"#{res["id"]}"' not in text and "author" in doc:
            out["author"] = [*doc["author"], {"reference": f"#{res['id']}"}]
    return out


def test_pdsm_examples_load_or_are_refused_with_the_true_reason(pdsm: Server) -> None:
    loaded = 0
    with pdsm.client() as c:
        for doc in _pdsm_examples():
            key = f"{doc['resourceType']}/{doc['id']}"
            r = c.put(f"/{key}", json=doc)
            if key in PDSM_WRONG:
                assert r.status_code == 422, r.text[:300]
                for rule in PDSM_WRONG[key]:
                    assert f"constraint {rule} failed" in r.text, (key, rule)
                r = c.put(f"/{key}", json=_corrected(doc))
            assert r.status_code in (200, 201), (key, r.text[:800])
            loaded += 1
    assert loaded == 7


# (query, expected ids): every PDSm and MHD SearchParameter, and the core ones the PDSm
# Gestionnaire CapabilityStatement lists, on the (corrected) examples
PDSM_SEARCHES = [
    ("List?isArchived=false", {"ExampleSubmissionSet"}),
    ("List?isArchived=true", set()),
    ("List?sourceId=urn:oid:1.2.250.1.213.1.1.1|SRC-01", {"ExampleSubmissionSet"}),
    (
        "List?designationType=https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/"
        "TRE-R02-SecteurActivite|SA05",
        {"ExampleSubmissionSet"},
    ),
    ("List?designationType=http://snomed.info/sct|80146002", {"ExampleFolder"}),
    ("List?patient=Patient/fr-patient-123", {"ExampleSubmissionSet", "ExampleFolder"}),
    ("List?patient.identifier=urn:oid:1.2.250.1.213.1.4.10|", set()),
    (
        "DocumentReference?patient=fr-patient-123",
        {"exemple-pdsm-documentreference", "PDSmSimplifiedExample"},
    ),
    (
        "DocumentReference?type=http://loinc.org|34133-9&status=current",
        {"exemple-pdsm-documentreference"},
    ),
    (
        "DocumentReference?category=https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/"
        "TRE-A03-ClasseDocument|10",
        {"exemple-pdsm-documentreference", "PDSmSimplifiedExample"},
    ),
    ("DocumentReference?security-label=N", {"exemple-pdsm-documentreference"}),
    (
        "DocumentReference?author=PractitionerRole/practitionerrole-example",
        {"exemple-pdsm-documentreference", "PDSmSimplifiedExample"},
    ),
    ("DocumentReference?period-start=2025-04-20", {"exemple-pdsm-documentreference"}),
    ("DocumentReference?period-end=lt2025-04-25", set()),
    ("DocumentReference?period-end=le2025-04-25", {"exemple-pdsm-documentreference"}),
]


@pytest.mark.parametrize(("query", "expected"), PDSM_SEARCHES)
def test_pdsm_searches(pdsm: Server, query: str, expected: set[str]) -> None:
    with pdsm.client() as c:
        for doc in _pdsm_examples():  # idempotent: the same content writes no new version
            key = f"{doc['resourceType']}/{doc['id']}"
            c.put(f"/{key}", json=_corrected(doc) if key in PDSM_WRONG else doc)
        r = c.get(f"/{query}")
        assert r.status_code == 200, r.text[:300]
        assert {e["resource"]["id"] for e in r.json().get("entry", [])} == expected


def test_pdsm_search_parameters_find_their_examples(pdsm: Server) -> None:
    """Each SearchParameter of PDSm and MHD whose expression has a value on an example finds
    that example (the same generic check as the Annuaire's)."""
    examples = [
        _corrected(d) if f"{d['resourceType']}/{d['id']}" in PDSM_WRONG else d
        for d in _pdsm_examples()
    ]
    with pdsm.client() as c:
        for doc in examples:
            c.put(f"/{doc['resourceType']}/{doc['id']}", json=doc)
    parameters = [*PDSM.glob("SearchParameter-*.json"), *MHD.glob("SearchParameter-*.json")]
    # the examples give values to isArchived, sourceId, designationType
    assert _check_search_parameters(pdsm, parameters, examples) >= 2
