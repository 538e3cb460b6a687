"""Search-index extraction: normalisation rules, official examples, fast path vs fhirpathpy."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maison.fhir.definitions import Definitions
from maison.fhir.fhirpath import FhirPathError, compile_fast, evaluate
from maison.fhir.indexing import Indexer, IndexValues, date_range, expression_for_type, fold
from maison.fhir.normalize import number_range, parse_reference
from support import FHIR_TEST_CASES

EXAMPLES = FHIR_TEST_CASES / "r4" / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
LOW, HIGH = "0001-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z"


@pytest.fixture(scope="module")
def indexer(defs: Definitions) -> Indexer:
    return Indexer(defs)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


# --------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Chalmers", "chalmers"),
        ("  Élodie   DUPONT-Çavé ", "elodie dupont-cave"),
        ("Zoë\tMüller\nJr", "zoe muller jr"),
        ("ﬁne", "fine"),
        ("", ""),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024", ("2024-01-01T00:00:00.000000Z", "2024-12-31T23:59:59.999999Z")),
        ("2024-02", ("2024-02-01T00:00:00.000000Z", "2024-02-29T23:59:59.999999Z")),
        ("2023-02", ("2023-02-01T00:00:00.000000Z", "2023-02-28T23:59:59.999999Z")),
        ("2024-03-15", ("2024-03-15T00:00:00.000000Z", "2024-03-15T23:59:59.999999Z")),
        ("2024-03-15T10:20:30", ("2024-03-15T10:20:30.000000Z", "2024-03-15T10:20:30.999999Z")),
        (
            "2024-03-15T10:20:30.5+02:00",
            ("2024-03-15T08:20:30.500000Z", "2024-03-15T08:20:30.599999Z"),
        ),
        (
            "2024-01-01T00:30:00-01:00",
            ("2024-01-01T01:30:00.000000Z", "2024-01-01T01:30:00.999999Z"),
        ),
        ("2024-03-15T10:20Z", ("2024-03-15T10:20:00.000000Z", "2024-03-15T10:20:59.999999Z")),
        (
            "2013-05-15T17:11:14.1234567Z",
            ("2013-05-15T17:11:14.123456Z", "2013-05-15T17:11:14.123456Z"),
        ),
        ("0001-01-01T00:00:00+05:00", (LOW, "0001-01-01T00:00:00.999999Z")),
        ("2023-02-29", None),
        ("2024-13", None),
        ("2024-03-15T25:00:00Z", None),
        ("24", None),
        ("2024-03-15T10:20:30+15:00", None),
        ("yesterday", None),
    ],
)
def test_date_range(value: str, expected: tuple[str, str] | None) -> None:
    assert date_range(value) == expected


def test_date_range_text_order_is_time_order() -> None:
    values = ["2023-12-31T23:00:00-02:00", "2024-01-01T02:00:00Z", "2024-01-02", "2025"]
    lows = [date_range(v)[0] for v in values]  # type: ignore[index]
    assert lows == sorted(lows)
    assert all(INSTANT.fullmatch(v) for v in lows)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (100, (100.0, 99.5, 100.5)),
        (1.5, (1.5, 1.45, 1.55)),
        (Decimal("1.50"), (1.5, 1.495, 1.505)),
        (0, (0.0, -0.5, 0.5)),
        (-2, (-2.0, -2.5, -1.5)),
        (True, None),
        ("abc", None),
        (None, None),
    ],
)
def test_number_range(value: Any, expected: tuple[float, float, float] | None) -> None:
    assert number_range(value) == expected


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("Patient/123", ("Patient", "123", None)),
        ("Patient/123/_history/2", ("Patient", "123", None)),
        ("http://x/fhir/Patient/123", ("Patient", "123", "http://x/fhir/Patient/123")),
        (
            "urn:uuid:6b5f7e3a-2c1d-4e5f-8a9b-0c1d2e3f4a5b",
            (None, None, "urn:uuid:6b5f7e3a-2c1d-4e5f-8a9b-0c1d2e3f4a5b"),
        ),
        (
            "http://hl7.org/fhir/ValueSet/x|4.0.1",
            (None, None, "http://hl7.org/fhir/ValueSet/x|4.0.1"),
        ),
        ("#contained-1", None),
        ("", None),
    ],
)
def test_parse_reference(ref: str, expected: Any) -> None:
    assert parse_reference(ref) == expected


# --------------------------------------------------------------------------------------
# One hand-written case per extraction rule
# --------------------------------------------------------------------------------------


def rows(values: IndexValues, kind: str, code: str) -> list[tuple[Any, ...]]:
    return [r for r in getattr(values, kind) if r[0] == code]


def test_string_human_name_and_address(indexer: Indexer) -> None:
    patient = {
        "resourceType": "Patient",
        "name": [
            {
                "text": "Dr Élise  Martin",
                "family": "Martin",
                "given": ["Élise", "Anne"],
                "prefix": ["Dr"],
                "suffix": ["PhD"],
            }
        ],
        "address": [
            {
                "line": ["1 rue de la Paix", "Bât. B"],
                "city": "Paris",
                "district": "Paris 2e",
                "state": "IDF",
                "postalCode": "75002",
                "country": "FR",
                "text": "1 rue de la Paix, Paris",
            }
        ],
    }
    out = indexer.extract(patient)
    assert sorted(rows(out, "string", "name")) == sorted(
        [
            ("name", "dr elise martin", "Dr Élise  Martin"),
            ("name", "martin", "Martin"),
            ("name", "elise", "Élise"),
            ("name", "anne", "Anne"),
            ("name", "dr", "Dr"),
            ("name", "phd", "PhD"),
        ]
    )
    assert rows(out, "string", "family") == [("family", "martin", "Martin")]
    assert {r[2] for r in rows(out, "string", "address")} == {
        "1 rue de la Paix",
        "Bât. B",
        "Paris",
        "Paris 2e",
        "IDF",
        "75002",
        "FR",
        "1 rue de la Paix, Paris",
    }
    assert rows(out, "string", "address-city") == [("address-city", "paris", "Paris")]


def test_token_rules(indexer: Indexer) -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "active": False,
        "gender": "female",
        "identifier": [
            {
                "system": "urn:oid:1.2.250.1.213.1.4.8",
                "value": "1740512345678",
                "type": {
                    "coding": [
                        {"system": "http://interopsante.org/CodeSystem/v2-0203", "code": "INS-NIR"}
                    ],
                    "text": "NIR définitif",
                },
            },
            {"value": "no-system"},
        ],
        "telecom": [
            {"system": "phone", "value": "01 23 45 67 89"},
            {"system": "email", "value": "a@b.fr"},
        ],
        "maritalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                    "code": "M",
                    "display": "Married",
                }
            ],
            "text": "Mariée",
        },
        "meta": {"tag": [{"system": "http://t", "code": "x", "display": "Tag X"}]},
    }
    out = indexer.extract(patient)
    assert rows(out, "token", "_id") == [("_id", None, "p1", None)]
    assert rows(out, "token", "active") == [("active", None, "false", None)]
    assert rows(out, "token", "gender") == [("gender", None, "female", None)]
    assert rows(out, "token", "identifier") == [
        ("identifier", "urn:oid:1.2.250.1.213.1.4.8", "1740512345678", "nir definitif"),
        ("identifier", None, "no-system", None),
    ]
    assert rows(out, "token", "identifier:of-type") == [
        (
            "identifier:of-type",
            "http://interopsante.org/CodeSystem/v2-0203",
            "INS-NIR|1740512345678",
            None,
        )
    ]
    assert rows(out, "token", "phone") == [("phone", None, "01 23 45 67 89", None)]
    assert rows(out, "token", "email") == [("email", None, "a@b.fr", None)]
    assert len(rows(out, "token", "telecom")) == 2
    assert rows(out, "token", "_tag") == [("_tag", "http://t", "x", "tag x")]


def test_token_codeable_concept_text_row(indexer: Indexer) -> None:
    cond = {
        "resourceType": "Condition",
        "code": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabète"},
                {"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11"},
            ],
            "text": "Diabète de type 2",
        },
    }
    assert rows(indexer.extract(cond), "token", "code") == [
        ("code", "http://snomed.info/sct", "44054006", "diabete"),
        ("code", "http://hl7.org/fhir/sid/icd-10", "E11", None),
        ("code", None, None, "diabete de type 2"),
    ]


def test_date_rules(indexer: Indexer) -> None:
    enc = {
        "resourceType": "Encounter",
        "period": {"start": "2024-03-01T10:00:00+01:00"},
        "location": [{"period": {"end": "2024-03"}}, {"period": {}}],
        "meta": {"lastUpdated": "2024-03-01T12:00:00.123Z"},
    }
    out = indexer.extract(enc)
    assert rows(out, "date", "date") == [("date", "2024-03-01T09:00:00.000000Z", HIGH)]
    assert rows(out, "date", "location-period") == [
        ("location-period", LOW, "2024-03-31T23:59:59.999999Z")
    ]
    assert rows(out, "date", "_lastUpdated") == [
        ("_lastUpdated", "2024-03-01T12:00:00.123000Z", "2024-03-01T12:00:00.123999Z")
    ]
    obs = {
        "resourceType": "Observation",
        "effectiveTiming": {"event": ["2024-05-02", "2024-05-01T08:00:00Z", "bad"]},
    }
    assert rows(indexer.extract(obs), "date", "date") == [
        ("date", "2024-05-01T08:00:00.000000Z", "2024-05-02T23:59:59.999999Z")
    ]
    obs = {"resourceType": "Observation", "effectiveInstant": "2024-05-01T08:00:00.5Z"}
    assert rows(indexer.extract(obs), "date", "date") == [
        ("date", "2024-05-01T08:00:00.500000Z", "2024-05-01T08:00:00.599999Z")
    ]
    pat = {"resourceType": "Patient", "birthDate": "1974", "deceasedDateTime": "2020-01-01"}
    out = indexer.extract(pat)
    assert rows(out, "date", "birthdate") == [
        ("birthdate", "1974-01-01T00:00:00.000000Z", "1974-12-31T23:59:59.999999Z")
    ]
    assert rows(out, "date", "death-date") == [
        ("death-date", "2020-01-01T00:00:00.000000Z", "2020-01-01T23:59:59.999999Z")
    ]
    assert rows(out, "token", "deceased") == [("deceased", None, "true", None)]


def test_number_rules(indexer: Indexer) -> None:
    risk = {
        "resourceType": "RiskAssessment",
        "prediction": [{"probabilityDecimal": 0.25}, {"probabilityDecimal": 100}],
    }
    assert rows(indexer.extract(risk), "number", "probability") == [
        ("probability", 0.25, 0.245, 0.255),
        ("probability", 100.0, 99.5, 100.5),
    ]


def test_quantity_rules(indexer: Indexer) -> None:
    obs = {
        "resourceType": "Observation",
        "valueQuantity": {
            "value": 72.5,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
        "component": [
            {"valueQuantity": {"value": 120, "unit": "mmHg"}},
            {"valueQuantity": {"unit": "no value"}},
            {"valueString": "x"},
        ],
    }
    out = indexer.extract(obs)
    assert rows(out, "quantity", "value-quantity") == [
        ("value-quantity", "http://unitsofmeasure.org", "kg", 72.5, 72.45, 72.55)
    ]
    assert rows(out, "quantity", "component-value-quantity") == [
        ("component-value-quantity", None, "mmHg", 120.0, 119.5, 120.5)
    ]
    invoice = {"resourceType": "Invoice", "totalGross": {"value": 12.5, "currency": "EUR"}}
    assert rows(indexer.extract(invoice), "quantity", "totalgross") == [
        ("totalgross", "urn:iso:std:iso:4217", "EUR", 12.5, 12.45, 12.55)
    ]
    cond = {
        "resourceType": "Condition",
        "onsetRange": {"low": {"value": 40, "code": "a", "system": "http://unitsofmeasure.org"}},
    }
    assert rows(indexer.extract(cond), "quantity", "onset-age") == [
        ("onset-age", "http://unitsofmeasure.org", "a", None, 40.0, None)
    ]


def test_reference_rules(indexer: Indexer) -> None:
    obs = {
        "resourceType": "Observation",
        "subject": {"reference": "Patient/123/_history/2"},
        "performer": [
            {"reference": "http://x/fhir/Practitioner/9"},
            {"reference": "urn:uuid:0b9f1d7a-3b7a-4c56-9a7a-2f6c8e1d2a11"},
            {"reference": "#contained"},
            {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810002"}},
            {"display": "nobody"},
        ],
    }
    out = indexer.extract(obs)
    assert rows(out, "reference", "subject") == [("subject", "Patient", "123", None)]
    assert rows(out, "reference", "patient") == [("patient", "Patient", "123", None)]
    assert rows(out, "reference", "performer") == [
        ("performer", "Practitioner", "9", "http://x/fhir/Practitioner/9"),
        ("performer", None, None, "urn:uuid:0b9f1d7a-3b7a-4c56-9a7a-2f6c8e1d2a11"),
    ]
    assert rows(out, "token", "performer:identifier") == [
        ("performer:identifier", "urn:oid:1.2.250.1.71.4.2.1", "810002", None)
    ]
    assert not [r for r in out.reference if r[0].endswith(":identifier")]
    plan = {
        "resourceType": "CarePlan",
        "instantiatesCanonical": ["http://example.org/fhir/PlanDefinition/p1|2.0"],
        "subject": {"reference": "https://h/fhir/Group/g1"},
    }
    out = indexer.extract(plan)
    assert rows(out, "reference", "instantiates-canonical") == [
        ("instantiates-canonical", None, None, "http://example.org/fhir/PlanDefinition/p1|2.0")
    ]
    assert rows(out, "reference", "patient") == []
    assert rows(out, "reference", "subject") == [
        ("subject", "Group", "g1", "https://h/fhir/Group/g1")
    ]


def test_uri_rules(indexer: Indexer) -> None:
    vs = {
        "resourceType": "ValueSet",
        "url": "http://example.org/fhir/ValueSet/x",
        "compose": {"include": [{"system": "http://loinc.org"}, {"system": "http://snomed"}]},
    }
    out = indexer.extract(vs)
    assert out.uri == [
        ("reference", "http://loinc.org"),
        ("reference", "http://snomed"),
        ("url", "http://example.org/fhir/ValueSet/x"),
    ]


def test_composite_and_special_are_skipped(indexer: Indexer, defs: Definitions) -> None:
    obs = _load(EXAMPLES / "observation-example.json")
    out = indexer.extract(obs)
    composite = {
        c
        for c, p in defs.search_params("Observation").items()
        if p.type in ("composite", "special")
    }
    assert composite
    codes = {r[0] for kind in IndexValues.__slots__ for r in getattr(out, kind)}
    assert not codes & composite


def test_unknown_or_missing_type_gives_no_rows(indexer: Indexer) -> None:
    assert indexer.extract({"resourceType": "NotAType", "id": "x"}) == IndexValues()
    assert indexer.extract({"id": "x"}) == IndexValues()


def test_plans_are_compiled_once(indexer: Indexer) -> None:
    first = indexer.plans("Patient")
    assert first is indexer.plans("Patient")
    assert 15 <= len(first) <= 60


def test_rows_are_deduplicated(indexer: Indexer) -> None:
    patient = {"resourceType": "Patient", "name": [{"given": ["Jo"]}, {"given": ["Jo"]}]}
    assert rows(indexer.extract(patient), "string", "given") == [("given", "jo", "Jo")]


# --------------------------------------------------------------------------------------
# The official R4 examples
# --------------------------------------------------------------------------------------

EXAMPLE_ROWS = [
    (
        "patient-example.json",
        "token",
        ("identifier", "urn:oid:1.2.36.146.595.217.0.1", "12345", None),
    ),
    (
        "patient-example.json",
        "token",
        ("identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203", "MR|12345", None),
    ),
    ("patient-example.json", "string", ("family", "chalmers", "Chalmers")),
    ("patient-example.json", "string", ("address-city", "pleasantville", "PleasantVille")),
    (
        "patient-example.json",
        "date",
        ("birthdate", "1974-12-25T00:00:00.000000Z", "1974-12-25T23:59:59.999999Z"),
    ),
    ("patient-example.json", "reference", ("organization", "Organization", "1", None)),
    ("patient-example.json", "token", ("phone", None, "(03) 5555 6473", None)),
    ("observation-example.json", "token", ("code", "http://loinc.org", "29463-7", "body weight")),
    (
        "observation-example.json",
        "quantity",
        ("value-quantity", "http://unitsofmeasure.org", "[lb_av]", 185.0, 184.5, 185.5),
    ),
    ("observation-example.json", "reference", ("patient", "Patient", "example", None)),
    (
        "observation-example.json",
        "date",
        ("date", "2016-03-28T00:00:00.000000Z", "2016-03-28T23:59:59.999999Z"),
    ),
    ("encounter-example.json", "token", ("status", None, "in-progress", None)),
    ("encounter-example.json", "reference", ("subject", "Patient", "example", None)),
    (
        "condition-example.json",
        "token",
        ("code", "http://snomed.info/sct", "39065001", "burn of ear"),
    ),
    (
        "documentreference-example.json",
        "token",
        ("identifier", "urn:ietf:rfc:3986", "urn:oid:1.3.6.1.4.1.21367.2005.3.7.1234", None),
    ),
    (
        "documentreference-example.json",
        "uri",
        ("location", "http://example.org/xds/mhd/Binary/07a6483f-732b-461e-86b6-edb665c45510"),
    ),
    ("valueset-example.json", "uri", ("url", "http://hl7.org/fhir/ValueSet/example-extensional")),
    ("riskassessment-example.json", "number", ("probability", 0.000168, 0.0001675, 0.0001685)),
]


@pytest.mark.parametrize(("name", "kind", "row"), EXAMPLE_ROWS)
def test_official_example_rows(
    indexer: Indexer, name: str, kind: str, row: tuple[Any, ...]
) -> None:
    values = indexer.extract(_load(EXAMPLES / name))
    assert row in getattr(values, kind), [r for r in getattr(values, kind) if r[0] == row[0]]


def _well_formed(values: IndexValues) -> None:
    def opt_str(v: Any) -> bool:
        return v is None or isinstance(v, str)

    def opt_float(v: Any) -> bool:
        return v is None or isinstance(v, float)

    for code, folded, value in values.string:
        assert isinstance(code, str) and opt_str(folded) and opt_str(value)
    for code, system, value, text in values.token:
        assert isinstance(code, str) and opt_str(system) and opt_str(value) and opt_str(text)
        assert value is not None or text is not None or system is not None
    for code, low, high in values.date:
        assert INSTANT.fullmatch(low) and INSTANT.fullmatch(high) and low <= high, (code, low)
    for _code, value, low, high in values.number:
        assert all(isinstance(x, float) for x in (value, low, high)) and low <= value <= high
    for _code, system, unit, value, low, high in values.quantity:
        assert opt_str(system) and opt_str(unit) and opt_float(value)
        assert opt_float(low) and opt_float(high)
    for _code, rtype, rid, url in values.reference:
        assert opt_str(rtype) and opt_str(rid) and opt_str(url) and (rid or url)
    for code, uri in values.uri:
        assert isinstance(code, str) and isinstance(uri, str)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_official_example_extracts(indexer: Indexer, path: Path) -> None:
    resource = _load(path)
    values = indexer.extract(resource)
    _well_formed(values)
    if "id" in resource:
        assert ("_id", None, resource["id"], None) in values.token


# --------------------------------------------------------------------------------------
# The fast path agrees with fhirpathpy on every parameter of every example
# --------------------------------------------------------------------------------------

# (example file, parameter code) pairs where the two differ, with the reason. Empty: they agree.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {}


def _canon(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canon(v) for v in value]
    return value if value is None or isinstance(value, str) else str(value)


def _value_set(values: list[Any]) -> set[str]:
    return {json.dumps(_canon(v), sort_keys=True) for v in values}


def test_fast_path_agrees_with_fhirpathpy(defs: Definitions) -> None:
    agree, differ, fallback, failing = 0, {}, 0, 0
    for path in EXAMPLE_FILES:
        resource = _load(path)
        rtype = resource["resourceType"]
        for code, param in sorted(defs.search_params(rtype).items()):
            expression = expression_for_type(param, rtype)
            if param.type in ("composite", "special") or expression is None:
                continue
            fast = compile_fast(expression)
            if fast is None:
                fallback += 1
                continue
            try:
                slow = evaluate(resource, expression)
            except FhirPathError:
                failing += 1
                continue
            if _value_set(fast.values(resource)) == _value_set(slow):
                agree += 1
            else:
                differ[(path.name, code)] = expression
    print(f"fast path vs fhirpathpy: {agree} agree, {len(differ)} differ, {fallback} fallback")
    assert set(differ) == set(KNOWN_DIFFERENCES), differ
    assert agree >= 1300
    assert failing == 0
    assert fallback <= 5


def test_fast_path_covers_nearly_every_r4_parameter(defs: Definitions) -> None:
    total, fast = 0, 0
    for rtype in sorted(defs.resource_types):
        for param in defs.search_params(rtype).values():
            expression = expression_for_type(param, rtype)
            if param.type in ("composite", "special") or expression is None:
                continue
            total += 1
            fast += compile_fast(expression) is not None
    assert total > 2400
    assert fast / total > 0.99


# --------------------------------------------------------------------------------------
# Odd data never breaks extraction
# --------------------------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2024", "2024-02-30", "Patient/1", "#x", "urn:uuid:1", "phone", "1e400"]),
)
_KEYS = st.sampled_from(
    [
        "name", "given", "family", "identifier", "system", "value", "code", "coding", "text",
        "subject", "reference", "period", "start", "end", "effectiveDateTime", "effectivePeriod",
        "valueQuantity", "component", "telecom", "address", "line", "type", "birthDate",
        "extension", "url", "meta", "tag", "status", "event", "currency", "low", "high",
        "valueString", "performer", "display", "content", "attachment", "date", "category",
    ]
)  # fmt: skip
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_KEYS, children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rtype=st.sampled_from(
        ["Patient", "Observation", "Encounter", "Condition", "DocumentReference", "Bundle"]
    ),
    body=st.dictionaries(_KEYS, _JSON, max_size=8),
)
def test_extract_never_raises(defs: Definitions, rtype: str, body: dict[str, Any]) -> None:
    indexer = _shared_indexer(defs)
    values = indexer.extract({**body, "resourceType": rtype})
    _well_formed(values)


_INDEXERS: dict[int, Indexer] = {}


def _shared_indexer(defs: Definitions) -> Indexer:
    return _INDEXERS.setdefault(id(defs), Indexer(defs))


def test_composite_rows_only_for_complete_repetitions(indexer: Indexer) -> None:
    """A composite matches only when every component matches in one repetition, so a
    repetition lacking a component gets no rows (https://hl7.org/fhir/R4/search.html#composite)."""
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
        "valueQuantity": {"value": 5.4, "system": "http://unitsofmeasure.org", "code": "mmol/L"},
    }
    out = indexer.extract(obs)
    codes = {row[0] for _, _, row in out.composite}
    assert "code-value-quantity$0" in codes and "code-value-quantity$1" in codes
    assert "combo-code-value-quantity$0" in codes
    absent = {"code-value-concept", "code-value-date", "code-value-string"}
    assert not {c for c in codes if c.split("$")[0] in absent}
    assert not {c for c in codes if c.startswith("component-")}
