"""Print the cost of search-index extraction in µs per resource: python bench/extract.py.

Three figures per synthetic resource: ``Indexer.extract`` (compiled fast path + normalisation into
rows), the compiled expressions alone, and the same expressions through fhirpathpy.
https://hl7.org/fhir/R4/search.html#ptypes
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from maison.fhir.definitions import default_definitions
from maison.fhir.fhirpath import compile_full, compile_typed
from maison.fhir.indexing import Indexer, IndexValues, expression_for_type

DIV = '<div xmlns="http://www.w3.org/1999/xhtml">summary</div>'
SYNTHETIC: dict[str, dict[str, Any]] = {
    "Patient": {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"lastUpdated": "2024-03-01T10:00:00.123Z", "profile": ["http://x/fr-patient"]},
        "text": {"status": "generated", "div": DIV},
        "identifier": [
            {
                "system": "urn:oid:1.2.250.1.213.1.4.8",
                "value": "1740512345678",
                "type": {"coding": [{"system": "http://x/v2-0203", "code": "INS-NIR"}]},
            },
            {"system": "urn:oid:1.2.250.1.71.4.2.7", "value": "IPP-42"},
        ],
        "active": True,
        "name": [
            {"use": "official", "family": "Durand", "given": ["Pierre", "Élie"]},
            {"use": "usual", "family": "Durand-Martin", "given": ["Pierre"]},
        ],
        "telecom": [
            {"system": "phone", "value": "0123456789", "use": "home"},
            {"system": "email", "value": "p.durand@example.org"},
        ],
        "gender": "male",
        "birthDate": "1974-12-25",
        "address": [{"line": ["1 rue de la Paix"], "city": "Paris", "postalCode": "75002"}],
        "generalPractitioner": [{"reference": "Practitioner/gp1"}],
        "managingOrganization": {"reference": "Organization/o1"},
    },
    "Observation": {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"lastUpdated": "2024-03-01T10:00:00.123Z"},
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
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Weight"}],
            "text": "Poids",
        },
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2024-03-01T09:30:00+01:00",
        "performer": [{"reference": "Practitioner/gp1"}],
        "valueQuantity": {
            "value": 72.5,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    },
    "DocumentReference": {
        "resourceType": "DocumentReference",
        "id": "d1",
        "meta": {"lastUpdated": "2024-03-01T10:00:00.123Z"},
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3.4.5"},
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1b7c0e6a"}],
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "category": [{"coding": [{"system": "http://x/class", "code": "10"}]}],
        "subject": {"reference": "Patient/p1"},
        "date": "2024-03-01T10:00:00+01:00",
        "author": [{"reference": "Practitioner/gp1"}],
        "securityLabel": [{"coding": [{"system": "http://x/conf", "code": "N"}]}],
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "language": "fr-FR",
                    "url": "Binary/b1",
                    "title": "Compte rendu",
                },
                "format": {"system": "http://x/format", "code": "urn:ihe:iti:xds-sd:pdf:2008"},
            }
        ],
        "context": {
            "encounter": [{"reference": "Encounter/e1"}],
            "period": {"start": "2024-03-01"},
            "facilityType": {"coding": [{"system": "http://x/facility", "code": "SA01"}]},
            "practiceSetting": {"coding": [{"system": "http://x/practice", "code": "GENE"}]},
        },
    },
}


def per_call_us(fn: Callable[[], object], seconds: float) -> float:
    """Run ``fn`` repeatedly for about ``seconds`` and return the best mean time per call in µs."""
    best = float("inf")
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            fn()
            n += 1
        best = min(best, elapsed / n)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.5, help="time budget per figure")
    args = parser.parse_args()
    defs = default_definitions()
    indexer = Indexer(defs)
    print(f"{'resource':<18} {'params':>6} {'rows':>5} {'extract':>10} {'fast expr':>10} "
          f"{'fhirpathpy':>11} {'speed-up':>8}")  # fmt: skip
    for rtype, resource in SYNTHETIC.items():
        plans = indexer.plans(rtype)
        expressions = [
            e
            for p in defs.search_params(rtype).values()
            if p.type not in ("composite", "special") and (e := expression_for_type(p, rtype))
        ]
        fast = [compile_typed(e) for e in expressions]
        slow = [compile_full(e) for e in expressions]
        values: IndexValues = indexer.extract(resource)
        rows = sum(len(getattr(values, k)) for k in IndexValues.__slots__)
        t_extract = per_call_us(lambda r=resource: indexer.extract(r), args.seconds)
        t_fast = per_call_us(lambda r=resource, fs=fast: [f(r) for f in fs], args.seconds)
        t_slow = per_call_us(lambda r=resource, fs=slow: [f(r) for f in fs], args.seconds)
        print(
            f"{rtype:<18} {len(plans):>6} {rows:>5} {t_extract:>8.1f}µs {t_fast:>8.1f}µs "
            f"{t_slow:>9.1f}µs {t_slow / t_fast:>7.0f}x"
        )


if __name__ == "__main__":
    main()
