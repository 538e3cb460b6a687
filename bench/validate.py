"""Print the cost of validating typical resources in µs each: python bench/validate.py."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson

from maison.fhir.definitions import default_definitions
from maison.fhir.validation import Validator

EXAMPLES = Path(__file__).resolve().parents[2] / "shared/corpora/fhir-test-cases/r4/examples"
DIV = '<div xmlns="http://www.w3.org/1999/xhtml">summary</div>'
TYPICAL: dict[str, dict[str, Any]] = {
    "Patient (typical)": {
        "resourceType": "Patient",
        "id": "p1",
        "text": {"status": "generated", "div": DIV},
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "1740512345678"}],
        "name": [{"use": "official", "family": "Durand", "given": ["Pierre"]}],
        "telecom": [{"system": "phone", "value": "0123456789", "use": "home"}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "address": [{"line": ["1 rue X"], "city": "Paris", "postalCode": "75001"}],
    },
    "Observation (typical)": {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-01T10:00:00Z",
        "valueQuantity": {
            "value": 72.5,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    },
    "Encounter (typical)": {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2024-01-01T10:00:00Z", "end": "2024-01-01T11:00:00Z"},
    },
    "DocumentReference (typical)": {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "subject": {"reference": "Patient/p1"},
        "date": "2024-01-01T10:00:00Z",
        "content": [
            {"attachment": {"contentType": "application/pdf", "url": "Binary/b1", "size": 1234}}
        ],
    },
}


def measure(validator: Validator, resource: dict[str, Any], seconds: float = 0.5) -> float:
    """Mean µs per validation over about ``seconds`` of repeated runs."""
    validator.validate(resource)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        validator.validate(resource)
        n += 1
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    defs = default_definitions()
    full, structural = Validator(defs), Validator(defs, invariants=False)
    cases = dict(TYPICAL)
    for name in (
        "patient-example",
        "observation-example",
        "encounter-example",
        "documentreference-example",
    ):
        path = EXAMPLES / f"{name}.json"
        if path.exists():
            cases[f"{name}.json (R4 example)"] = orjson.loads(path.read_bytes())
    print(f"{'resource':40} {'all checks':>12} {'no invariants':>14}")
    for name, resource in cases.items():
        all_checks, no_invariants = measure(full, resource), measure(structural, resource)
        print(f"{name:40} {all_checks:10.0f}µs {no_invariants:12.0f}µs")
    print(
        f"invariants skipped: {len(full.skipped_invariants)} {sorted(full.skipped_invariants)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
