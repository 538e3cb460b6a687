"""The terminology operations over HTTP: ``ValueSet/$expand``, ``ValueSet/$validate-code``,
``CodeSystem/$lookup``, ``CodeSystem/$validate-code``, ``CodeSystem/$subsumes`` and
``ConceptMap/$translate``, at type and instance level, with GET and POST, on base R4 value sets
and on NOS ones installed as conformance resources.

Needs ``register_terminology(services.operations, defs)`` in the composition root.
https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from servers import Server
from support import SHARED

NOS = SHARED / "corpora" / "nos"
GENDER_VS = "http://hl7.org/fhir/ValueSet/administrative-gender"
GENDER = "http://hl7.org/fhir/administrative-gender"
VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
MOS = "https://mos.esante.gouv.fr/NOS"
J66 = f"{MOS}/JDV_J66-TypeCode-DMP/FHIR/JDV-J66-TypeCode-DMP"
A03 = f"{MOS}/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
NOS_LOINC = f"{MOS}/TRE_A04-Loinc/FHIR/TRE-A04-Loinc"
OPERATIONS = {
    "ValueSet": {"expand", "validate-code"},
    "CodeSystem": {"lookup", "validate-code", "subsumes"},
    "ConceptMap": {"translate"},
}


def _json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


@pytest.fixture(scope="module")
def wired(server: Server) -> Server:
    """The server, once it is known to offer the terminology operations."""
    cap = httpx.get(f"{server.base_url}/metadata").json()
    for rtype, wanted in OPERATIONS.items():
        resource = next(r for r in cap["rest"][0]["resource"] if r["type"] == rtype)
        names = {op["name"] for op in resource.get("operation", [])}
        if not wanted <= names:
            pytest.fail("register_terminology(services.operations, defs) is not called at startup")
    return server


@pytest.fixture
def c(wired: Server) -> Iterator[httpx.Client]:
    with wired.client() as client:
        yield client


def _param(parameters: dict[str, Any], name: str) -> Any:
    for p in parameters["parameter"]:
        if p["name"] == name:
            return next(v for k, v in p.items() if k.startswith("value"))
    return None


def _ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_the_operations_are_listed_and_their_definitions_served(c: httpx.Client) -> None:
    op = _ok(c.get("/OperationDefinition/ValueSet-expand"))
    assert op["url"] == "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"


def test_expand_a_base_value_set(c: httpx.Client) -> None:
    out = _ok(c.get("/ValueSet/$expand", params={"url": GENDER_VS}))
    assert out["resourceType"] == "ValueSet"
    codes = [x["code"] for x in out["expansion"]["contains"]]
    assert codes == ["female", "male", "other", "unknown"]
    assert out["expansion"]["total"] == 4
    page = _ok(c.get("/ValueSet/$expand", params={"url": GENDER_VS, "count": "2", "offset": "1"}))
    assert [x["code"] for x in page["expansion"]["contains"]] == ["male", "other"]
    assert page["expansion"]["offset"] == 1
    fem = _ok(c.get("/ValueSet/$expand", params={"url": GENDER_VS, "filter": "FÉM"}))
    assert [x["code"] for x in fem["expansion"]["contains"]] == ["female"]
    # instance level, the value set found by its id among the definitions
    same = _ok(c.get("/ValueSet/administrative-gender/$expand"))
    assert same["expansion"]["total"] == 4
    # POST with an inline value set
    inline = {
        "resourceType": "ValueSet",
        "compose": {"include": [{"system": GENDER, "concept": [{"code": "other"}]}]},
    }
    body = {"resourceType": "Parameters", "parameter": [{"name": "valueSet", "resource": inline}]}
    posted = _ok(c.post("/ValueSet/$expand", json=body))
    assert posted["expansion"]["contains"] == [
        {"system": GENDER, "version": "4.0.1", "code": "other", "display": "Other"}
    ]


def test_validate_code_lookup_and_subsumes(c: httpx.Client) -> None:
    q = {"url": GENDER_VS, "system": GENDER, "code": "female"}
    out = _ok(c.get("/ValueSet/$validate-code", params=q))
    assert _param(out, "result") is True and _param(out, "display") == "Female"
    out = _ok(c.get("/ValueSet/$validate-code", params={**q, "code": "woman"}))
    assert _param(out, "result") is False and "woman" in _param(out, "message")
    coding = {"system": GENDER, "code": "male", "display": "Homme"}
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "url", "valueUri": GENDER_VS},
            {"name": "coding", "valueCoding": coding},
        ],
    }
    out = _ok(c.post("/ValueSet/$validate-code", json=body))
    assert _param(out, "result") is True and "Homme" in _param(out, "message")
    out = _ok(c.get("/CodeSystem/$validate-code", params={"url": GENDER, "code": "unknown"}))
    assert _param(out, "result") is True
    out = _ok(c.get("/CodeSystem/$lookup", params={"system": GENDER, "code": "male"}))
    assert _param(out, "display") == "Male" and _param(out, "version") == "4.0.1"
    q = {"system": VER_STATUS, "codeA": "unconfirmed", "codeB": "differential"}
    assert _param(_ok(c.get("/CodeSystem/$subsumes", params=q)), "outcome") == "subsumes"
    q = {"codeA": "differential", "codeB": "unconfirmed"}
    out = _ok(c.get("/CodeSystem/condition-ver-status/$subsumes", params=q))
    assert _param(out, "outcome") == "subsumed-by"


def test_translate_with_an_inline_concept_map(c: httpx.Client) -> None:
    cm = _json(NOS / "ASS_X04-CorrespondanceType-Classe-CISIS-FHIR.json")
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "conceptMap", "resource": cm},
            {"name": "coding", "valueCoding": {"system": "http://loinc.org", "code": "11488-4"}},
        ],
    }
    out = _ok(c.post("/ConceptMap/$translate", json=body))
    assert _param(out, "result") is True
    match = next(p for p in out["parameter"] if p["name"] == "match")
    assert {"name": "concept", "valueCoding": {"system": A03, "code": "10"}} in match["part"]


def test_nos_value_sets_installed_as_conformance_resources(c: httpx.Client) -> None:
    for name in (
        "ValueSet-JDV-J66-TypeCode-DMP.json",
        "ValueSet-JDV-J57-ClassCode-DMP.json",
        "CodeSystem-TRE-A03-ClasseDocument.json",
        "CodeSystem-TRE-A05-TypeDocComplementaire.json",
    ):
        resource = _json(NOS / name)
        r = c.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
        assert r.status_code in (200, 201), r.text
    deadline = time.monotonic() + 10
    while True:  # every worker reloads the installed definitions within a second
        r = c.get("/ValueSet/$expand", params={"url": J66, "count": "0"})
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert _ok(r)["expansion"]["total"] == 81
    q = {"url": J66, "system": "http://loinc.org", "code": "11488-4"}
    assert _param(_ok(c.get("/ValueSet/$validate-code", params=q)), "result") is True
    q = {"system": NOS_LOINC, "code": "11488-4"}
    out = _ok(c.get("/ValueSet/JDV-J57-ClassCode-DMP/$validate-code", params=q))
    assert _param(out, "result") is False
    out = _ok(c.get("/ValueSet/$expand", params={"url": J66, "filter": "evaluation autonomie"}))
    assert [x["code"] for x in out["expansion"]["contains"]] == ["BIL_AUTO"]


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        ("/ValueSet/$expand", {"url": "http://example.org/none"}, 404, "http://example.org/none"),
        ("/ValueSet/$expand", {}, 400, "url"),
        ("/ValueSet/$expand", {"url": GENDER_VS, "date": "2020"}, 400, "date"),
        ("/ValueSet/$expand", {"url": GENDER_VS, "nonsense": "1"}, 400, "nonsense"),
        ("/ValueSet/$expand", {"url": GENDER_VS, "count": "x"}, 400, "count"),
        ("/ValueSet/no-such-id/$expand", {}, 404, "no-such-id"),
        ("/ValueSet/$validate-code", {"url": GENDER_VS, "code": "male"}, 400, "system"),
        (
            "/CodeSystem/$lookup",
            {"system": "http://example.org/cs", "code": "a"},
            404,
            "example.org",
        ),
        ("/CodeSystem/$lookup", {"system": GENDER, "code": "nope"}, 404, "nope"),
        ("/CodeSystem/$subsumes", {"system": GENDER, "codeA": "male"}, 400, "codeB"),
        (
            "/ConceptMap/$translate",
            {"url": "http://example.org/cm", "system": GENDER, "code": "male"},
            404,
            "example.org/cm",
        ),
    ],
)
def test_bad_input_gets_an_operation_outcome(
    c: httpx.Client, path: str, params: dict[str, str], status: int, words: str
) -> None:
    r = c.get(path, params=params)
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert words in outcome["issue"][0]["diagnostics"]


def test_reading_a_terminology_needs_a_token_with_read_access(wired: Server) -> None:
    url = f"{wired.base_url}/ValueSet/$expand"
    assert httpx.get(url, params={"url": GENDER_VS}).status_code == 401
    with wired.client(wired.mint("system/Patient.read")) as other:
        r = other.get("/ValueSet/$expand", params={"url": GENDER_VS})
        assert r.status_code == 403, r.text
    with wired.client(wired.mint("user/ValueSet.read")) as reader:
        assert reader.get("/ValueSet/$expand", params={"url": GENDER_VS}).status_code == 200
        r = reader.get("/CodeSystem/$lookup", params={"system": GENDER, "code": "male"})
        assert r.status_code == 403, r.text
