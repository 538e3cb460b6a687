"""The HL7 validator test cases (R4 subset) and the R4 examples, against our validator.

Agreement means: a case is valid (no error-severity issue) for us iff for the Java validator.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import orjson
import pytest

from maison.fhir.definitions import load_definitions, package_dir
from maison.fhir.validation import Validator
from support import FHIR_TEST_CASES

SUITE = FHIR_TEST_CASES / "validator"
EXAMPLES = FHIR_TEST_CASES / "r4" / "examples"

KNOWN_DISAGREEMENTS: dict[str, str] = {
    "attachment-with-wrong-size": "Attachment.size vs decoded data length is not checked",
    "bundle-document-versioned-references-bad": "references are not resolved inside bundles",
    "dr-example-org": "example.org URLs are accepted (Java rejects them outside examples)",
    "capstmt": "CapabilityStatement search parameter types are not cross-checked",
    "mr-covid-bnd1": "Coding.system / ValueSet-as-system checks need terminology",
    "pat-security-bad-string": "security-checks mode (HTML in strings) is not implemented",
    "sp-diff-type": "SearchParameter derivedFrom consistency is not checked",
    "sp-diff-base": "SearchParameter expressions are not checked",
    "parameters-reference-bad": "references are not resolved",
    "bundle-duplicate-id": "Bundle fullUrl / duplicate id rules are not checked",
    "mni-patientOverview-bundle-example1": "LOINC display names need a terminology server",
    "mni-patientOverview-bundle-example1b": "LOINC display names need a terminology server",
    "bundle-duplicate-ids-not": "LOINC display names need a terminology server",
    "pat-dob-ext": "unknown extensions are accepted (server policy)",
    "target-ref-profile-empty": "unknown extensions are accepted (server policy)",
    "bundle-id-2": "Bundle.link relation uniqueness is not checked",
    "bundle-id-3": "CVX display names need a terminology server",
    "bundle-id-4": "CVX display names need a terminology server",
    "bundle-id-5": "CVX display names need a terminology server",
    "pat-example-extensions": "unknown extensions are accepted (server policy)",
    "bundle-with-contained": "narrative hyperlinks and LOINC displays are not checked",
    "uk-msg": "SNOMED CT codes need a terminology server",
    "contained-resource-bad-id-ignore": "validateContains=IGNORE option is not supported",
    "encounter-period": "fhirpathpy compares dates of different precision as strings (per-1)",
    "bad-markdown-no-html": "noHtmlInMarkdown option is not supported",
    "ips-nz-pj": "LOINC display names need a terminology server",
}

# R4 examples that are really invalid against the R4 core definitions
EXAMPLE_ERRORS: dict[str, str] = {
    "bundle-questionnaire.json": "nested items have no linkId (Questionnaire.item.linkId 1..1)",
    "codesystem-example.json": "code 'chol-mass' is defined twice (csd-1)",
    "devicemetric-example.json": "parent refers to DeviceDefinition, R4 allows Device only",
    "deviceusestatement-example.json": "reasonReference to Procedure is not allowed in R4",
    "medicationrequest0301.json": "dispenseRequest.performer refers to a Practitioner",
}


def _cases() -> list[dict[str, Any]]:
    manifest = json.loads((SUITE / "manifest-r4-subset.json").read_text())
    return [c for c in manifest["test-cases"] if c["file"].endswith(".json")]


@cache
def _validator() -> Validator:
    """Base R4 plus the core extension definitions, as the Java validator loads them."""
    defs = load_definitions()
    defs.add(orjson.loads((package_dir() / "extension-definitions.json").read_bytes()))
    return Validator(defs)


def _java_valid(case: dict[str, Any]) -> bool:
    outcome = json.loads((SUITE / "outcomes" / case["java"]).read_text())
    return not any(i["severity"] in ("error", "fatal") for i in outcome.get("issue", ()))


def _our_errors(case: dict[str, Any]) -> list[str]:
    try:
        resource = orjson.loads((SUITE / case["file"]).read_bytes())
    except orjson.JSONDecodeError as exc:
        return [f"JSON parse error: {exc}"]
    issues = _validator().validate(resource)
    return [i.diagnostics for i in issues if i.severity in ("error", "fatal")]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["name"])
def test_validator_case(case: dict[str, Any]) -> None:
    ours = _our_errors(case)
    agree = (not ours) == _java_valid(case)
    if case["name"] in KNOWN_DISAGREEMENTS:
        assert not agree, f"now agrees, remove from KNOWN_DISAGREEMENTS: {case['name']}"
    else:
        assert agree, f"java valid={_java_valid(case)}, our errors={ours}"


def test_agreement_count() -> None:
    cases = _cases()
    assert len(cases) == 88
    assert len(cases) - len(KNOWN_DISAGREEMENTS) == 62


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_r4_example(path: Any) -> None:
    resource = orjson.loads(path.read_bytes())
    found = [i.diagnostics for i in _validator().validate(resource) if i.severity == "error"]
    if path.name in EXAMPLE_ERRORS:
        assert found, f"now valid, remove from EXAMPLE_ERRORS: {path.name}"
    else:
        assert found == []
