"""Token search modifiers expanded by the terminology service: ``:in``/``:not-in`` with the
system aliases, ``:below``/``:above`` over a code system's hierarchy."""

from __future__ import annotations

from typing import Any

import pytest

from maison.fhir.definitions import Definitions
from maison.fhir.errors import FhirError
from maison.fhir.search import Criterion, TokenValue, parse_search
from maison.terminology.packages import PackageSource
from maison.terminology.search_codes import SearchCodes, system_urls
from maison.terminology.source import LOINC, NOS_LOINC

CS = "http://example.org/fhir/CodeSystem/anatomie"
VS = "http://example.org/fhir/ValueSet/types"
CODE_SYSTEM: dict[str, Any] = {
    "resourceType": "CodeSystem",
    "url": CS,
    "status": "active",
    "content": "complete",
    "hierarchyMeaning": "is-a",
    "concept": [
        {
            "code": "tronc",
            "display": "Tronc",
            "concept": [
                {"code": "thorax", "display": "Thorax", "concept": [{"code": "coeur"}]},
                {"code": "abdomen", "display": "Abdomen"},
            ],
        },
        {"code": "tete", "display": "Tête"},
    ],
}
VALUE_SET: dict[str, Any] = {
    "resourceType": "ValueSet",
    "url": VS,
    "status": "active",
    "compose": {"include": [{"system": NOS_LOINC, "concept": [{"code": "11488-4"}]}]},
}


@pytest.fixture(scope="module")
def terms(defs: Definitions) -> SearchCodes:
    return SearchCodes(PackageSource(defs.extended([CODE_SYSTEM, VALUE_SET])))


def _codes(c: Criterion) -> set[tuple[str | None, str | None]]:
    return {(v.system, v.code) for v in c.values if isinstance(v, TokenValue)}


def test_below_and_above_follow_the_hierarchy(defs: Definitions, terms: SearchCodes) -> None:
    q = parse_search(defs, "Observation", [("code:below", f"{CS}|tronc")], terms=terms)
    (c,) = q.criteria
    assert c.modifier == "in"
    assert _codes(c) == {(CS, code) for code in ("tronc", "thorax", "coeur", "abdomen")}
    q = parse_search(defs, "Observation", [("code:above", f"{CS}|coeur")], terms=terms)
    assert _codes(q.criteria[0]) == {(CS, code) for code in ("coeur", "thorax", "tronc")}
    q = parse_search(defs, "Observation", [("code:below", f"{CS}|tete")], terms=terms)
    assert _codes(q.criteria[0]) == {(CS, "tete")}


def test_in_gives_each_code_under_every_url_of_its_system(
    defs: Definitions, terms: SearchCodes
) -> None:
    assert system_urls(NOS_LOINC)[:1] == [LOINC] and NOS_LOINC in system_urls(LOINC)
    q = parse_search(defs, "DocumentReference", [("type:in", VS)], terms=terms)
    assert {(LOINC, "11488-4"), (NOS_LOINC, "11488-4")} <= _codes(q.criteria[0])


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("code:below", "tronc", "takes system|code"),
        ("code:below", "http://example.org/unknown|x", "is not loaded with a hierarchy"),
        ("code:above", f"{CS}|nope", "nope is not a code of"),
        ("code:in", "http://example.org/fhir/ValueSet/unknown", "cannot be expanded"),
    ],
)
def test_bad_token_hierarchy_searches_say_why(
    defs: Definitions, terms: SearchCodes, param: str, value: str, message: str
) -> None:
    with pytest.raises(FhirError) as err:
        parse_search(defs, "Observation", [(param, value)], terms=terms)
    assert message in str(err.value)


def test_without_a_terminology_service_below_on_a_token_is_refused(defs: Definitions) -> None:
    with pytest.raises(FhirError) as err:
        parse_search(defs, "Observation", [("code:below", f"{CS}|tronc")])
    assert "is not loaded with a hierarchy" in str(err.value)


def test_too_many_codes_are_refused_with_the_reason(defs: Definitions) -> None:
    big = {
        "resourceType": "CodeSystem",
        "url": "http://example.org/fhir/CodeSystem/big",
        "status": "active",
        "content": "complete",
        "concept": [{"code": "root", "concept": [{"code": f"c{i}"} for i in range(5001)]}],
    }
    every = {
        "resourceType": "ValueSet",
        "url": "http://example.org/fhir/ValueSet/big",
        "status": "active",
        "compose": {"include": [{"system": big["url"]}]},
    }
    terms = SearchCodes(PackageSource(defs.extended([big, every])))
    with pytest.raises(FhirError) as err:
        parse_search(defs, "Observation", [("code:below", f"{big['url']}|root")], terms=terms)
    assert "5002 codes below it" in str(err.value) and "narrower code" in str(err.value)
    with pytest.raises(FhirError) as err:
        parse_search(defs, "Observation", [("code:in", every["url"])], terms=terms)
    assert "the value set has 5002 codes" in str(err.value)
