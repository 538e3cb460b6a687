"""Resource validation: mutations of valid resources each yield exactly the expected error."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from maison.fhir.definitions import Definitions, load_definitions
from maison.fhir.errors import Issue
from maison.fhir.validation import Validator
from support import CORPORA

FR_CORE = CORPORA / "compiled" / "hl7.fhir.fr.core"
FR_INS = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">P</div>'},
    "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "123"}],
    "name": [{"family": "Durand", "given": ["Pierre", "Marie"]}],
    "gender": "male",
    "birthDate": "1974-12-25",
    "_birthDate": {"extension": [{"url": "http://example.org/t", "valueTime": "10:00:00"}]},
    "deceasedBoolean": False,
    "managingOrganization": {"reference": "Organization/o1"},
}

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">O</div>'},
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    "subject": {"reference": "Patient/p1"},
    "effectivePeriod": {"start": "2024-01-01", "end": "2024-01-02"},
    "valueQuantity": {"value": 72.5, "unit": "kg", "system": "http://unitsofmeasure.org"},
}


@pytest.fixture(scope="module")
def validator(defs: Definitions) -> Validator:
    return Validator(defs)


@pytest.fixture(scope="module")
def fr_validator() -> Validator:
    own = load_definitions()
    for path in sorted(FR_CORE.glob("*.json")):
        resource = orjson.loads(path.read_bytes())
        if resource["resourceType"] in ("StructureDefinition", "ValueSet", "CodeSystem"):
            own.add(resource)
    return Validator(own)


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "error"]


def only_error(validator: Validator, resource: dict[str, Any], **kw: Any) -> Issue:
    found = errors(validator.validate(resource, **kw))
    assert len(found) == 1, [i.diagnostics for i in found]
    return found[0]


def test_valid_resources_have_no_errors(validator: Validator) -> None:
    assert validator.validate(PATIENT) == []
    assert validator.validate(OBSERVATION) == []


def test_missing_required_element(validator: Validator) -> None:
    obs = copy.deepcopy(OBSERVATION)
    del obs["status"]
    issue = only_error(validator, obs)
    assert issue.diagnostics == "Observation.status: minimum cardinality 1, found 0"
    assert issue.expression == ("Observation.status",)


def test_missing_required_choice(validator: Validator, defs: Definitions) -> None:
    issue = only_error(
        Validator(defs),
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/1"},
        },
    )
    assert issue.diagnostics == "MedicationRequest.medication[x]: minimum cardinality 1, found 0"


def test_unknown_element(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    pat["name"][0]["foo"] = "x"
    issue = only_error(validator, pat)
    assert issue.diagnostics == "Unknown element 'foo' in Patient.name[0]"
    assert issue.expression == ("Patient.name[0].foo",)


def test_unknown_primitive_companion(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    pat["_name"] = {"id": "x"}
    assert "Unknown element '_name' in Patient" in only_error(validator, pat).diagnostics


def test_wrong_primitive_format(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    pat["birthDate"] = "1974-13-25"
    issue = only_error(validator, pat)
    assert issue.diagnostics == "Patient.birthDate: '1974-13-25' is not a valid date"


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("active",), "true", "must be a JSON boolean"),
        (("multipleBirthInteger",), 1.5, "must be a JSON integer"),
        (("id",), "a_b", "is not a valid id"),
        (("name", 0, "given", 1), " ", "must contain non-whitespace content"),
        (("name", 0, "family"), "", "must not be empty"),
        (("gender",), "male ", "is not a valid code"),
        (("photo",), [{"contentType": "image/png", "data": "%%%2@()()"}], "is not valid base64"),
    ],
)
def test_primitive_rules(
    validator: Validator, path: tuple[Any, ...], value: Any, fragment: str
) -> None:
    pat = copy.deepcopy(PATIENT)
    target: Any = pat
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert fragment in only_error(validator, pat).diagnostics


def test_wrong_array_ness(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    pat["name"] = pat["name"][0]
    issue = only_error(validator, pat)
    assert issue.diagnostics.startswith("Patient.name: must be a JSON array")
    pat = copy.deepcopy(PATIENT)
    pat["gender"] = ["male"]
    issue = only_error(validator, pat)
    assert issue.diagnostics.startswith("Patient.gender: must be a single value")


def test_empty_array(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    pat["identifier"] = []
    assert "must not be empty" in only_error(validator, pat).diagnostics


def test_bad_code_in_required_binding(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    pat["gender"] = "mal"
    issue = only_error(validator, pat)
    assert issue.diagnostics == (
        "Patient.gender: 'mal' is not in the required value set "
        "http://hl7.org/fhir/ValueSet/administrative-gender"
    )


def test_two_choice_variants(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    pat["deceasedDateTime"] = "2020-01-01"
    issue = only_error(validator, pat)
    assert "only one of deceased[x] is allowed" in issue.diagnostics


def test_choice_type_not_allowed(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    del pat["deceasedBoolean"]
    pat["deceasedString"] = "yes"
    assert "type String is not allowed for deceased[x]" in only_error(validator, pat).diagnostics


def test_unknown_resource_type(validator: Validator) -> None:
    issue = only_error(validator, {"resourceType": "Patientt"})
    assert issue.diagnostics == "Unknown resourceType 'Patientt'"


def test_reference_rules(validator: Validator) -> None:
    obs = copy.deepcopy(OBSERVATION)
    obs["subject"] = {"reference": "Medication/m1"}
    assert "a reference to Medication is not allowed here" in only_error(validator, obs).diagnostics
    obs["subject"] = {"reference": "not a reference"}
    assert "is not a valid reference" in only_error(validator, obs).diagnostics
    for ok in ("https://x.org/fhir/Patient/1", "urn:uuid:0b2b5d4e-9f1c-4b8a-8c3e-2f6d1a9b7c10"):
        obs["subject"] = {"reference": ok}
        assert errors(validator.validate(obs)) == []


def test_contained_rules(validator: Validator) -> None:
    obs = copy.deepcopy(OBSERVATION)
    obs["contained"] = [{"resourceType": "Patient", "id": "c1"}]
    obs["subject"] = {"reference": "#c1"}
    assert errors(validator.validate(obs)) == []
    obs["subject"] = {"reference": "#c2"}
    found = [i.diagnostics for i in errors(validator.validate(obs))]
    assert any("does not match the id of a contained resource" in d for d in found)
    assert any("dom-3" in d for d in found)
    obs["subject"] = {"reference": "#c1"}
    obs["contained"] = [{"resourceType": "Patient", "gender": "x"}]
    found = [i.diagnostics for i in errors(validator.validate(obs))]
    assert "Observation.contained[0]: a contained resource must have an id" in found
    assert any("'x' is not in the required value set" in d for d in found)


def test_content_reference(validator: Validator) -> None:
    q = {
        "resourceType": "Questionnaire",
        "status": "draft",
        "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "bad"}]}],
    }
    issue = only_error(validator, q)
    assert issue.expression == ("Questionnaire.item[0].item[0].type",)


def test_bundle_entry_resources(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    pat["gender"] = "mal"
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:0b2b5d4e-9f1c-4b8a-8c3e-2f6d1a9b7c10", "resource": pat}],
    }
    issue = only_error(validator, bundle)
    assert issue.expression == ("Bundle.entry[0].resource.gender",)


def test_invariant(validator: Validator) -> None:
    obs = copy.deepcopy(OBSERVATION)
    obs["effectivePeriod"] = {"start": "2024-01-03", "end": "2024-01-02"}
    issue = only_error(validator, obs)
    assert issue.diagnostics.startswith("Observation.effectivePeriod: constraint per-1 failed")


def test_extension_rules(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    pat["extension"] = [{"valueString": "x"}]
    assert (
        "Patient.extension[0].url: minimum cardinality 1" in only_error(validator, pat).diagnostics
    )
    pat["extension"] = [{"url": "x", "valueString": "x"}]
    assert "extension url must be absolute" in only_error(validator, pat).diagnostics
    pat["extension"] = [{"url": "http://e.org/x", "valueString": "x", "extension": []}]
    assert errors(validator.validate(pat))


def test_narrative_html_checks(validator: Validator) -> None:
    pat = copy.deepcopy(PATIENT)
    pat["text"]["div"] = '<div xmlns="http://www.w3.org/1999/xhtml"><script>x</script></div>'
    assert any("txt-1" in i.diagnostics for i in errors(validator.validate(pat)))
    pat["text"]["div"] = "<div>not xhtml"
    assert "not well-formed XHTML" in errors(validator.validate(pat))[0].diagnostics


def test_unknown_profile_is_a_warning(validator: Validator) -> None:
    issues = validator.validate(PATIENT, ["http://example.org/StructureDefinition/nope"])
    assert [i.severity for i in issues] == ["warning"]


def test_skipped_invariants_are_reported(validator: Validator) -> None:
    validator.validate({"resourceType": "Patient", "text": PATIENT["text"]})
    assert "txt-1" not in validator.skipped_invariants
    assert all(reason for reason in validator.skipped_invariants.values())


def test_fr_core_ins_example_is_valid(fr_validator: Validator) -> None:
    example = orjson.loads((FR_CORE / "Patient-FRCorePatientINSExample.json").read_bytes())
    assert errors(fr_validator.validate(example, [FR_INS])) == []


def test_fr_core_required_slice(fr_validator: Validator) -> None:
    example = orjson.loads((FR_CORE / "Patient-FRCorePatientINSExample.json").read_bytes())
    example["extension"] = [
        e for e in example["extension"] if not e["url"].endswith("patient-birthPlace")
    ]
    issue = only_error(fr_validator, example, profiles=[FR_INS])
    assert "slice 'birthPlace' requires at least 1, found 0" in issue.diagnostics


def test_fr_core_slice_pattern(fr_validator: Validator) -> None:
    example = orjson.loads((FR_CORE / "Patient-FRCorePatientINSExample.json").read_bytes())
    # the INS-NIR slice is matched by type; its system is fixed by pattern
    example["identifier"][0]["system"] = "urn:oid:1.2.3"
    issue = only_error(fr_validator, example, profiles=[FR_INS])
    assert issue.expression == ("Patient.identifier[0].system",)
    assert "must match the pattern 'urn:oid:1.2.250.1.213.1.4.8'" in issue.diagnostics


def test_binding_strengths(validator: Validator) -> None:
    """Outside a preferred value set: a warning; a required or extensible binding the server
    cannot expand (MIME types; marital status, whose code system is not in the base package):
    a warning naming the value set, never a silent pass."""
    pat = copy.deepcopy(PATIENT)
    pat["maritalStatus"] = {"coding": [{"system": "http://example.org/etat", "code": "x"}]}
    pat["photo"] = [{"contentType": "image/png", "data": "iVBORw0KGgo="}]
    pat["communication"] = [
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "xx-YY"}]}}
    ]
    issues = validator.validate(pat)
    assert errors(issues) == []
    warnings = {i.diagnostics for i in issues if i.severity == "warning"}
    assert warnings == {
        "Patient.communication[0].language: urn:ietf:bcp:47#xx-YY is not in the preferred "
        "value set http://hl7.org/fhir/ValueSet/languages",
        "Patient.maritalStatus: the extensible value set "
        "http://hl7.org/fhir/ValueSet/marital-status is not loaded here, so the code was not "
        "checked against it",
        "Patient.photo[0].contentType: the required value set "
        "http://hl7.org/fhir/ValueSet/mimetypes is not loaded here, so the code was not "
        "checked against it",
    }


class _Known:
    """A terminology that holds one value set with one code."""

    def contains(self, value_set: str, system: str | None, code: str) -> bool | None:
        if value_set.startswith("http://hl7.org/fhir/ValueSet/administrative-gender"):
            return code == "female" and system in (
                None,
                "http://hl7.org/fhir/administrative-gender",
            )
        if value_set.startswith("http://hl7.org/fhir/ValueSet/marital-status"):
            return code == "M"
        return None


def test_the_validator_asks_the_terminology_it_is_given(defs: Definitions) -> None:
    checked = Validator(defs, terminology=_Known())
    pat = copy.deepcopy(PATIENT)
    pat["gender"] = "female"
    assert errors(checked.validate(pat)) == []
    pat["gender"] = "male"
    assert [i.diagnostics for i in errors(checked.validate(pat))] == [
        "Patient.gender: 'male' is not in the required value set "
        "http://hl7.org/fhir/ValueSet/administrative-gender"
    ]
    pat["gender"] = "female"
    marital = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
    pat["maritalStatus"] = {"coding": [{"system": marital, "code": "Z"}]}
    issues = checked.validate(pat)
    assert errors(issues) == []
    assert (
        f"Patient.maritalStatus: {marital}#Z is not in the extensible value set "
        "http://hl7.org/fhir/ValueSet/marital-status"
    ) in {i.diagnostics for i in issues if i.severity == "warning"}
    pat["maritalStatus"] = {"coding": [{"system": marital, "code": "M"}]}
    assert not any("maritalStatus" in (i.diagnostics or "") for i in checked.validate(pat))
