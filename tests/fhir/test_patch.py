"""PATCH in both formats: the official JSON Patch and FHIRPath Patch cases, then edge cases.

https://hl7.org/fhir/R4/http.html#patch and https://hl7.org/fhir/R4/fhirpatch.html
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from fhir.fhirxml import parse_resource, resource_to_json
from maison.fhir.definitions import Definitions
from maison.fhir.errors import Category, FhirError
from maison.fhir.patch import apply_fhirpath_patch, apply_json_patch, apply_patch
from support import FHIR_TEST_CASES

PATCH_CASES = FHIR_TEST_CASES / "r4" / "patch"

# --- the official cases ----------------------------------------------------------------------

FHIRPATH_CASES: dict[str, Any] = {
    case.get("name"): case
    for case in etree.parse(str(PATCH_CASES / "fhir-patch-tests.xml")).getroot().iter("case")
}
JSON_CASES: dict[str, dict[str, Any]] = {
    case["comment"]: case
    for case in json.loads((PATCH_CASES / "json-patch-tests.json").read_text(encoding="utf-8"))
}

# Cases where we disagree with the official expectation, and why. A listed case that starts
# passing fails the run (strict xfail), and so does an unlisted case that fails.
KNOWN_FHIRPATH_DISAGREEMENTS: dict[str, str] = {}
KNOWN_JSON_DISAGREEMENTS: dict[str, str] = {}
# Without definitions the patcher cannot know that a new element repeats, so an element added
# where none existed yet is set as a single value rather than a one-item array.
WITHOUT_DEFINITIONS = "without definitions a new repeating element is written as a single value"
KNOWN_FHIRPATH_DISAGREEMENTS_WITHOUT_DEFINITIONS: dict[str, str] = {
    "Add Anonymous Type": WITHOUT_DEFINITIONS,
    "Operation on missing element #2": WITHOUT_DEFINITIONS,
}


def _params(names: list[str], known: dict[str, str]) -> list[Any]:
    return [
        pytest.param(
            name,
            id=name,
            marks=[pytest.mark.xfail(strict=True, raises=AssertionError, reason=known[name])]
            if name in known
            else [],
        )
        for name in names
    ]


def _child(element: Any) -> Any:
    return next(c for c in element if isinstance(c.tag, str))


def test_the_official_case_files_hold_what_we_expect() -> None:
    assert len(FHIRPATH_CASES) == 33
    assert len(JSON_CASES) == 16
    for known in (KNOWN_FHIRPATH_DISAGREEMENTS, KNOWN_FHIRPATH_DISAGREEMENTS_WITHOUT_DEFINITIONS):
        assert set(known) <= set(FHIRPATH_CASES)
    assert set(KNOWN_JSON_DISAGREEMENTS) <= set(JSON_CASES)


def _run_fhirpath_case(name: str, definitions: Definitions | None, defs: Definitions) -> None:
    case = FHIRPATH_CASES[name]
    resource = resource_to_json(_child(case.find("input")), defs)
    patch = resource_to_json(_child(case.find("diff")), defs)
    before = copy.deepcopy(resource)
    error = case.find("error")
    if error is not None:
        with pytest.raises(FhirError) as caught:
            apply_fhirpath_patch(resource, patch, definitions=definitions)
        assert caught.value.category is Category.UNPROCESSABLE
        assert caught.value.message == error.get("msg")
    else:
        expected = resource_to_json(_child(case.find("output")), defs)
        assert apply_fhirpath_patch(resource, patch, definitions=definitions) == expected
    assert resource == before


@pytest.mark.parametrize("name", _params(list(FHIRPATH_CASES), KNOWN_FHIRPATH_DISAGREEMENTS))
def test_official_fhirpath_patch_case(name: str, defs: Definitions) -> None:
    _run_fhirpath_case(name, defs, defs)


@pytest.mark.parametrize(
    "name", _params(list(FHIRPATH_CASES), KNOWN_FHIRPATH_DISAGREEMENTS_WITHOUT_DEFINITIONS)
)
def test_official_fhirpath_patch_case_without_definitions(name: str, defs: Definitions) -> None:
    _run_fhirpath_case(name, None, defs)


@pytest.mark.parametrize("name", _params(list(JSON_CASES), KNOWN_JSON_DISAGREEMENTS))
def test_official_json_patch_case(name: str) -> None:
    case = JSON_CASES[name]
    before = copy.deepcopy(case["doc"])
    if "error" in case:
        with pytest.raises(FhirError) as caught:
            apply_json_patch(case["doc"], case["patch"])
        assert caught.value.category is Category.UNPROCESSABLE
    else:
        assert apply_json_patch(case["doc"], case["patch"]) == case["expected"]
    assert case["doc"] == before


# --- apply_patch: the interaction ------------------------------------------------------------

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [
        {"system": "urn:a", "value": "1"},
        {"system": "urn:b", "value": "2", "use": "official"},
    ],
    "name": [{"family": "Durand", "given": ["Anne", "Marie"]}],
    "birthDate": "1970-01-01",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1970-01-01T08:00:00Z",
            }
        ]
    },
    "deceasedBoolean": False,
    "contained": [{"resourceType": "Organization", "id": "o1", "name": "Clinique"}],
}


PATIENT_BEFORE = copy.deepcopy(PATIENT)


def op(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    """One FHIRPath Patch ``operation`` parameter; keyword names are the parts' names."""
    out = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    for name, value in parts.items():
        if name in ("index", "source", "destination"):
            out.append({"name": name, "valueInteger": value})
        elif name == "name":
            out.append({"name": "name", "valueString": value})
        else:  # value: a ready part body such as {"valueString": "x"} or {"part": [...]}
            out.append({"name": "value", **value})
    return {"name": "operation", "part": out}


def fhirpatch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def test_apply_patch_dispatches_on_the_media_type(defs: Definitions) -> None:
    json_patch = [{"op": "replace", "path": "/birthDate", "value": "1971-02-02"}]
    out = apply_patch(PATIENT, "application/json-patch+json; charset=utf-8", json_patch)
    assert out["birthDate"] == "1971-02-02"
    body = fhirpatch(op("replace", "Patient.birthDate", value={"valueDate": "1972-03-03"}))
    out = apply_patch(PATIENT, "Application/FHIR+JSON", json.dumps(body).encode(), definitions=defs)
    assert out["birthDate"] == "1972-03-03"


@pytest.mark.parametrize(
    "content_type", ["application/fhir+xml", "application/xml-patch+xml", "text/plain", ""]
)
def test_apply_patch_refuses_other_media_types(content_type: str) -> None:
    with pytest.raises(FhirError) as caught:
        apply_patch(PATIENT, content_type, [])
    assert caught.value.category is Category.MEDIA_TYPE


def test_apply_patch_refuses_a_body_that_is_not_json() -> None:
    with pytest.raises(FhirError) as caught:
        apply_patch(PATIENT, "application/json-patch+json", b"[{")
    assert caught.value.category is Category.INVALID


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "replace", "path": "/id", "value": "other"}],
        [{"op": "remove", "path": "/id"}],
        [{"op": "replace", "path": "/resourceType", "value": "Person"}],
    ],
)
def test_apply_patch_refuses_to_change_identity(patch: list[dict[str, Any]]) -> None:
    with pytest.raises(FhirError) as caught:
        apply_patch(PATIENT, "application/json-patch+json", patch)
    assert caught.value.category is Category.UNPROCESSABLE


# --- JSON Patch ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "patch",
    [
        {"op": "add", "path": "/a", "value": 1},
        "[]",
        [1],
        [{"path": "/a"}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": ["add"], "path": "/a", "value": 1}],
        [{"op": "add", "value": 1}],
        [{"op": "add", "path": "/a"}],
        [{"op": "move", "path": "/a"}],
        [{"op": "remove", "path": "a/b"}],
        [{"op": "remove", "path": "/a~2"}],
        [{"op": "remove", "path": 3}],
        [{"op": "copy", "from": None, "path": "/a"}],
    ],
)
def test_a_malformed_json_patch_is_invalid(patch: object) -> None:
    with pytest.raises(FhirError) as caught:
        apply_json_patch(PATIENT, patch)
    assert caught.value.category is Category.INVALID


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "remove", "path": "/gender"}],
        [{"op": "replace", "path": "/name/3/family", "value": "X"}],
        [{"op": "add", "path": "/name/0/family/x", "value": "X"}],
        [{"op": "move", "from": "/nothing", "path": "/a"}],
        [{"op": "test", "path": "/deceasedBoolean", "value": 0}],  # false is not 0
        [{"op": "test", "path": "/birthDate", "value": "1970-01-02"}],
        [{"op": "move", "from": "/name", "path": "/name/0/x"}],
        [{"op": "replace", "path": "", "value": [1]}],
    ],
)
def test_a_json_patch_that_cannot_apply_is_unprocessable(patch: list[Any]) -> None:
    with pytest.raises(FhirError) as caught:
        apply_json_patch(PATIENT, patch)
    assert caught.value.category is Category.UNPROCESSABLE
    assert "JSON Patch" in caught.value.message or "JSON object" in caught.value.message


def test_json_patch_operations_apply_in_order_and_copy_values() -> None:
    value = {"family": "Martin"}
    patch = [
        {"op": "add", "path": "/name/-", "value": value},
        {"op": "replace", "path": "/name/1/family", "value": "Petit"},
        {"op": "copy", "from": "/name/1", "path": "/name/0"},
        {"op": "test", "path": "/name/0/family", "value": "Petit"},
    ]
    out = apply_json_patch(PATIENT, patch)
    assert [n.get("family") for n in out["name"]] == ["Petit", "Durand", "Petit"]
    assert value == {"family": "Martin"}


# --- FHIRPath Patch: paths -------------------------------------------------------------------


def test_where_selects_the_element_to_replace(defs: Definitions) -> None:
    patch = fhirpatch(
        op(
            "replace",
            "Patient.identifier.where(system = 'urn:b').value",
            value={"valueString": "9"},
        )
    )
    out = apply_fhirpath_patch(PATIENT, patch, definitions=defs)
    assert [i["value"] for i in out["identifier"]] == ["1", "9"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Patient.identifier.first().value", ["X", "2"]),
        ("Patient.identifier.last().value", ["1", "X"]),
        ("Patient.identifier[1].value", ["1", "X"]),
        ("identifier.tail().value", ["1", "X"]),
        ("Patient.identifier.skip(1).single().value", ["1", "X"]),
        ("Patient.identifier.take(1).value", ["X", "2"]),
        ("Patient.identifier.where(use = 'official' and $this.value = '2').value", ["1", "X"]),
        ("Patient.identifier.where(%resource.id = 'p1').first().`value`", ["X", "2"]),
    ],
)
def test_supported_path_functions(path: str, expected: list[str], defs: Definitions) -> None:
    patch = fhirpatch(op("replace", path, value={"valueString": "X"}))
    out = apply_fhirpath_patch(PATIENT, patch, definitions=defs)
    assert [i["value"] for i in out["identifier"]] == expected


def test_of_type_on_a_choice_and_on_contained_resources(defs: Definitions) -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "weight"},
        "valueQuantity": {"value": 70, "unit": "kg"},
    }
    patch = fhirpatch(
        op("replace", "Observation.value.ofType(Quantity).value", value={"valueDecimal": 71})
    )
    for definitions in (defs, None):
        out = apply_fhirpath_patch(observation, patch, definitions=definitions)
        assert out["valueQuantity"] == {"value": 71, "unit": "kg"}
    patch = fhirpatch(op("replace", "Observation.value.ofType(string)", value={"valueString": "x"}))
    with pytest.raises(FhirError, match="No content found"):
        apply_fhirpath_patch(observation, patch, definitions=defs)
    patch = fhirpatch(
        op("replace", "Patient.contained.ofType(Organization).name", value={"valueString": "CHU"})
    )
    out = apply_fhirpath_patch(PATIENT, patch, definitions=defs)
    assert out["contained"][0]["name"] == "CHU"


def test_extension_function_reaches_a_primitive_companion(defs: Definitions) -> None:
    url = "http://hl7.org/fhir/StructureDefinition/patient-birthTime"
    patch = fhirpatch(
        op(
            "replace",
            f"Patient.birthDate.extension('{url}').value",
            value={"valueDateTime": "1970-01-01T09:00:00Z"},
        )
    )
    out = apply_fhirpath_patch(PATIENT, patch, definitions=defs)
    assert out["_birthDate"]["extension"][0]["valueDateTime"] == "1970-01-01T09:00:00Z"
    assert out["birthDate"] == "1970-01-01"


@pytest.mark.parametrize(
    "path",
    [
        "Patient.name.given.exists()",
        "Patient.name | Patient.identifier",
        "Patient.name[first]",
        "Patient.name.",
        "Patient.name.where(",
        "Patient.identifier.where(value = = 1)",
        "Patient.identifier.skip(x)",
        "Patient.identifier.extension(url)",
        "%resource.name",
    ],
)
def test_paths_we_cannot_locate_are_unprocessable(path: str, defs: Definitions) -> None:
    patch = fhirpatch(op("replace", path, value={"valueString": "X"}))
    with pytest.raises(FhirError) as caught:
        apply_fhirpath_patch(PATIENT, patch, definitions=defs)
    assert caught.value.category is Category.UNPROCESSABLE
    assert path.split(".")[0] in caught.value.message


def test_a_path_for_another_resource_type_matches_nothing(defs: Definitions) -> None:
    patch = fhirpatch(op("delete", "Observation.status"))
    assert apply_fhirpath_patch(PATIENT, patch, definitions=defs) == PATIENT
    patch = fhirpatch(op("replace", "Observation.status", value={"valueCode": "final"}))
    with pytest.raises(FhirError, match=r"No content found at Observation\.status"):
        apply_fhirpath_patch(PATIENT, patch, definitions=defs)


# --- FHIRPath Patch: operations --------------------------------------------------------------


def test_delete_of_nothing_is_not_an_error(defs: Definitions) -> None:
    patch = fhirpatch(op("delete", "Patient.identifier.where(system = 'urn:zzz')"))
    assert apply_fhirpath_patch(PATIENT, patch, definitions=defs) == PATIENT


@pytest.mark.parametrize(
    "operation",
    [
        op("replace", "Patient.identifier.value", value={"valueString": "X"}),
        op("replace", "Patient.gender", value={"valueCode": "male"}),
        op("delete", "Patient.identifier"),
        op("delete", "Patient"),
        op("replace", "Patient", value={"valueString": "X"}),
        op(
            "add",
            "Patient.identifier",
            name="period",
            value={"part": [{"name": "start", "valueDateTime": "2020"}]},
        ),
        op("add", "Patient.contact", name="gender", value={"valueCode": "male"}),
        op("add", "Patient", name="birthDate", value={"valueDate": "1999-01-01"}),
        op("add", "Patient", name="deceased", value={"valueDateTime": "2020-01-01"}),
        op("add", "Patient", name="nickname", value={"valueString": "X"}),
        op("add", "Patient.birthDate", name="value", value={"valueString": "X"}),
        op(
            "add",
            "Patient",
            name="contact",
            value={"part": [{"name": "colour", "valueString": "x"}]},
        ),
        op(
            "add",
            "Patient",
            name="contact",
            value={
                "part": [
                    {"name": "gender", "valueCode": "male"},
                    {"name": "gender", "valueCode": "female"},
                ]
            },
        ),
        op("insert", "Patient.identifier", index=3, value={"valueIdentifier": {"value": "3"}}),
        op("insert", "Patient.birthDate", index=0, value={"valueDate": "2000-01-01"}),
        op("insert", "Patient.identifier[0]", index=0, value={"valueIdentifier": {"value": "3"}}),
        op("insert", "Patient", index=0, value={"valueIdentifier": {"value": "3"}}),
        op("move", "Patient.identifier", source=2, destination=0),
        op("move", "Patient.identifier", source=0, destination=2),
        op("move", "Patient.telecom", source=0, destination=0),
        op("move", "Patient.name.given.first()", source=0, destination=1),
    ],
)
def test_operations_that_cannot_apply_are_unprocessable(
    operation: dict[str, Any], defs: Definitions
) -> None:
    with pytest.raises(FhirError) as caught:
        apply_fhirpath_patch(PATIENT, fhirpatch(operation), definitions=defs)
    assert caught.value.category is Category.UNPROCESSABLE


def test_replacing_a_primitive_keeps_its_extensions(defs: Definitions) -> None:
    patch = fhirpatch(op("replace", "Patient.birthDate", value={"valueDate": "1980-05-05"}))
    out = apply_fhirpath_patch(PATIENT, patch, definitions=defs)
    assert out["birthDate"] == "1980-05-05"
    assert out["_birthDate"] == PATIENT["_birthDate"]


def test_a_value_may_carry_its_own_primitive_extensions(defs: Definitions) -> None:
    ext = {"extension": [{"url": "urn:x", "valueString": "y"}]}
    patch = fhirpatch(
        op("replace", "Patient.birthDate", value={"valueDate": "1980-05-05", "_valueDate": ext}),
        op(
            "add",
            "Patient.name[0]",
            name="given",
            value={"valueString": "Zoé", "_valueString": ext},
        ),
    )
    out = apply_fhirpath_patch(PATIENT, patch, definitions=defs)
    assert out["_birthDate"] == ext
    assert out["name"][0]["given"] == ["Anne", "Marie", "Zoé"]
    assert out["name"][0]["_given"] == [None, None, ext]


def test_add_puts_id_and_extensions_of_a_primitive_in_its_companion(defs: Definitions) -> None:
    extension = {
        "part": [{"name": "url", "valueUri": "urn:u"}, {"name": "value", "valueCode": "x"}]
    }
    patch = fhirpatch(
        op("add", "Patient.name[0].given[1]", name="extension", value=extension),
        op("add", "Patient.deceased", name="id", value={"valueString": "d1"}),
    )
    out = apply_fhirpath_patch(PATIENT, patch, definitions=defs)
    assert out["name"][0]["given"] == ["Anne", "Marie"]
    assert out["name"][0]["_given"] == [None, {"extension": [{"url": "urn:u", "valueCode": "x"}]}]
    assert out["deceasedBoolean"] is False
    assert out["_deceasedBoolean"] == {"id": "d1"}


@pytest.mark.parametrize("path", ["resourceType", "Patient.resourceType", "Patient._birthDate"])
def test_json_syntax_is_not_reachable_by_a_path(path: str, defs: Definitions) -> None:
    assert apply_fhirpath_patch(PATIENT, fhirpatch(op("delete", path)), definitions=defs) == PATIENT


def test_where_on_contained_resources(defs: Definitions) -> None:
    path = "Patient.contained.where(name = 'Clinique').name"
    patch = fhirpatch(op("replace", path, value={"valueString": "CHU"}))
    out = apply_fhirpath_patch(PATIENT, patch, definitions=defs)
    assert out["contained"] == [{"resourceType": "Organization", "id": "o1", "name": "CHU"}]


def test_deleting_a_primitive_deletes_its_extensions(defs: Definitions) -> None:
    out = apply_fhirpath_patch(
        PATIENT, fhirpatch(op("delete", "Patient.birthDate")), definitions=defs
    )
    assert "birthDate" not in out and "_birthDate" not in out


def test_primitive_lists_keep_their_companions_aligned(defs: Definitions) -> None:
    ext = {"extension": [{"url": "urn:x", "valueString": "y"}]}
    patient = {
        "resourceType": "Patient",
        "name": [{"given": ["A", "B", "C"], "_given": [None, ext, None]}],
    }
    moved = apply_fhirpath_patch(
        patient,
        fhirpatch(op("move", "Patient.name.given", source=1, destination=0)),
        definitions=defs,
    )
    assert moved["name"][0] == {"given": ["B", "A", "C"], "_given": [ext, None, None]}
    inserted = apply_fhirpath_patch(
        patient,
        fhirpatch(op("insert", "Patient.name.given", index=0, value={"valueString": "Z"})),
        definitions=defs,
    )
    assert inserted["name"][0] == {"given": ["Z", "A", "B", "C"], "_given": [None, None, ext, None]}
    deleted = apply_fhirpath_patch(
        patient, fhirpatch(op("delete", "Patient.name.given[1]")), definitions=defs
    )
    assert deleted["name"][0] == {"given": ["A", "C"]}
    replaced = apply_fhirpath_patch(
        patient,
        fhirpatch(op("replace", "Patient.name.given[1]", value={"valueString": "Q"})),
        definitions=defs,
    )
    assert replaced["name"][0] == {"given": ["A", "Q", "C"], "_given": [None, ext, None]}


def test_a_choice_element_takes_the_type_of_its_new_value(defs: Definitions) -> None:
    patch = fhirpatch(op("replace", "Patient.deceased", value={"valueDateTime": "2020-01-01"}))
    out = apply_fhirpath_patch(PATIENT, patch, definitions=defs)
    assert out["deceasedDateTime"] == "2020-01-01" and "deceasedBoolean" not in out
    patient = {"resourceType": "Patient"}
    patch = fhirpatch(op("add", "Patient", name="deceased", value={"valueBoolean": True}))
    assert apply_fhirpath_patch(patient, patch, definitions=defs) == {
        "resourceType": "Patient",
        "deceasedBoolean": True,
    }


def test_complex_values_built_from_parts_follow_the_definitions(defs: Definitions) -> None:
    value = {
        "part": [
            {"name": "gender", "valueCode": "female"},
            {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "1"}},
            {"name": "name", "part": [{"name": "given", "valueString": "Léa"}]},
            {
                "name": "extension",
                "part": [
                    {"name": "url", "valueUri": "urn:e"},
                    {"name": "value", "valueInteger": 3},
                ],
            },
        ]
    }
    out = apply_fhirpath_patch(
        {"resourceType": "Patient"},
        fhirpatch(op("add", "Patient", name="contact", value=value)),
        definitions=defs,
    )
    assert out["contact"] == [
        {
            "gender": "female",
            "telecom": [{"system": "phone", "value": "1"}],
            "name": {"given": ["Léa"]},
            "extension": [{"url": "urn:e", "valueInteger": 3}],
        }
    ]


def test_insert_into_an_absent_list_and_add_a_contained_resource(defs: Definitions) -> None:
    patch = fhirpatch(
        op("insert", "Patient.telecom", index=0, value={"valueContactPoint": {"value": "1"}}),
        op(
            "add",
            "Patient",
            name="contained",
            value={"resource": {"resourceType": "Practitioner", "id": "d"}},
        ),
    )
    out = apply_fhirpath_patch({"resourceType": "Patient"}, patch, definitions=defs)
    assert out == {
        "resourceType": "Patient",
        "telecom": [{"value": "1"}],
        "contained": [{"resourceType": "Practitioner", "id": "d"}],
    }


def test_deleting_the_last_content_removes_the_emptied_elements(defs: Definitions) -> None:
    patient = {"resourceType": "Patient", "name": [{"given": ["A"]}], "active": True}
    out = apply_fhirpath_patch(
        patient, fhirpatch(op("delete", "Patient.name.given")), definitions=defs
    )
    assert out == {"resourceType": "Patient", "active": True}


@pytest.mark.parametrize(
    "parameters",
    [
        [],
        {"resourceType": "Patient"},
        {"resourceType": "Parameters", "parameter": {}},
        fhirpatch({"name": "op", "part": []}),
        fhirpatch({"name": "operation"}),
        fhirpatch({"name": "operation", "part": [{"name": "kind", "valueCode": "add"}]}),
        fhirpatch(op("upsert", "Patient.active", value={"valueBoolean": True})),
        fhirpatch({"name": "operation", "part": [{"name": "type", "valueCode": "delete"}]}),
        fhirpatch(op("delete", "   ")),
        fhirpatch(op("replace", "Patient.active")),
        fhirpatch(op("add", "Patient", value={"valueBoolean": True})),
        fhirpatch(op("insert", "Patient.identifier", value={"valueIdentifier": {}})),
        fhirpatch(op("insert", "Patient.identifier", index=-1, value={"valueIdentifier": {}})),
        fhirpatch(op("move", "Patient.identifier", source=0)),
        fhirpatch(op("replace", "Patient.active", value={})),
        fhirpatch(
            op("replace", "Patient.active", value={"valueBoolean": True, "valueString": "x"})
        ),
        fhirpatch(op("replace", "Patient.active", value={"resource": "x"})),
        fhirpatch(op("replace", "Patient.name[0]", value={"part": []})),
        fhirpatch(op("replace", "Patient.name[0]", value={"part": [{"valueString": "x"}]})),
        fhirpatch(
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "delete"},
                    {"name": "path", "valueString": "Patient.active"},
                    {"name": "path", "valueString": "Patient.gender"},
                ],
            }
        ),
    ],
)
def test_a_malformed_fhirpath_patch_is_invalid(parameters: Any, defs: Definitions) -> None:
    with pytest.raises(FhirError) as caught:
        apply_fhirpath_patch(PATIENT, parameters, definitions=defs)
    assert caught.value.category is Category.INVALID


def test_parse_resource_reads_fhir_xml(defs: Definitions) -> None:
    xml = """<Patient xmlns="http://hl7.org/fhir"><id value="x"/><active value="true"/>
      <name><given value="A"/><given id="g2"><extension url="urn:e"><valueInteger value="2"/>
      </extension></given></name><multipleBirthInteger value="2"/></Patient>"""
    assert parse_resource(xml, defs) == {
        "resourceType": "Patient",
        "id": "x",
        "active": True,
        "name": [
            {
                "given": ["A", None],
                "_given": [None, {"id": "g2", "extension": [{"url": "urn:e", "valueInteger": 2}]}],
            }
        ],
        "multipleBirthInteger": 2,
    }


# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)
pointers = st.sampled_from(
    ["", "/", "/a", "/a/0", "/a/-", "/name/0/given/1", "/identifier/5", "/~0", "/~1", "/a/b/c"]
) | st.text(max_size=8)
json_ops = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"])
        | json_values
    },
    optional={"path": pointers | json_values, "from": pointers, "value": json_values},
)
documents = st.dictionaries(st.sampled_from(["a", "b", "name", "~", "/"]), json_values, max_size=4)


@settings(max_examples=300, deadline=None)
@given(doc=documents | st.just(PATIENT), patch=st.lists(json_ops, max_size=4) | json_values)
def test_random_json_patches_only_raise_fhir_errors(doc: dict[str, Any], patch: Any) -> None:
    before = copy.deepcopy(doc)
    patch_before = copy.deepcopy(patch)
    try:
        out = apply_json_patch(doc, patch)
    except FhirError as exc:
        assert exc.category in (Category.INVALID, Category.UNPROCESSABLE)
    else:
        assert isinstance(out, dict)
    assert doc == before
    assert patch == patch_before


paths = st.sampled_from(
    [
        "Patient",
        "Patient.identifier",
        "Patient.identifier[0]",
        "Patient.identifier.value",
        "Patient.identifier.where(system = 'urn:b')",
        "Patient.name",
        "Patient.name.given",
        "Patient.name[0]",
        "Patient.name[0].given[1]",
        "Patient.birthDate",
        "Patient.birthDate.extension",
        "Patient.deceased",
        "Patient.contained.ofType(Organization)",
        "Patient.contained[0].name",
        "Patient.contact",
        "name.first().family",
    ]
) | st.text(max_size=12)
names = st.sampled_from(
    ["identifier", "given", "family", "birthDate", "contact", "deceased", "telecom", "x"]
)
values = st.one_of(
    st.builds(lambda v: {"valueString": v}, st.text(max_size=3)),
    st.builds(lambda v: {"valueInteger": v}, st.integers()),
    st.builds(lambda v: {"valueIdentifier": v}, json_values),
    st.builds(lambda v: {"resource": v}, json_values),
    st.builds(lambda p: {"part": p}, st.lists(json_values, max_size=2)),
    st.builds(lambda n, v: {"part": [{"name": n, "valueString": v}]}, names, st.text(max_size=3)),
    json_values,
)
OPTIONAL_PARTS = ("name", "value", "index", "source", "destination")


def _value_part(value: Any) -> dict[str, Any]:
    return {"name": "value", **value} if isinstance(value, dict) else {"name": "value"}


def _operation(
    kind: str, path: str, extra: list[dict[str, Any]], dropped: set[str]
) -> dict[str, Any]:
    parts = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    parts += [p for p in extra if p["name"] not in dropped]
    return {"name": "operation", "part": parts}


# Mostly well-formed operations (every part present, at most one dropped), so that the
# patcher itself is exercised and not only the document checks.
operations = st.builds(
    _operation,
    st.sampled_from(["add", "insert", "delete", "replace", "move", "nope"]),
    paths,
    st.tuples(
        st.builds(lambda n: {"name": "name", "valueString": n}, names),
        st.builds(_value_part, values),
        st.builds(lambda i: {"name": "index", "valueInteger": i}, st.integers(-1, 3)),
        st.builds(lambda i: {"name": "source", "valueInteger": i}, st.integers(-1, 3)),
        st.builds(lambda i: {"name": "destination", "valueInteger": i}, st.integers(-1, 3)),
    ).map(list),
    st.sets(st.sampled_from(OPTIONAL_PARTS), max_size=1),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(operations, max_size=3), with_definitions=st.booleans())
def test_random_fhirpath_patches_only_raise_fhir_errors(
    operations: list[dict[str, Any]], with_definitions: bool, defs: Definitions
) -> None:
    parameters = fhirpatch(*operations)
    parameters_before = copy.deepcopy(parameters)
    try:
        out = apply_fhirpath_patch(
            PATIENT, parameters, definitions=defs if with_definitions else None
        )
    except FhirError as exc:
        assert exc.category in (Category.INVALID, Category.UNPROCESSABLE)
    else:
        assert isinstance(out, dict)
        assert out.get("resourceType") == "Patient"
    assert PATIENT == PATIENT_BEFORE
    assert parameters == parameters_before
