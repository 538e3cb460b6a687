"""Synthetic French demo data: deterministic, valid NIR keys, self-contained transaction bundles."""

from __future__ import annotations

import base64
import hashlib
import random
from collections import Counter
from datetime import date
from typing import Any

import orjson
import pytest
from stdnum.fr import nir as stdnum_nir

from maison.services.demo import (
    INS_NIR_TEST_SYSTEM,
    IPP_SYSTEM,
    bundle_references,
    bundle_rng,
    demo_bundles,
    individual_resources,
    make_nir,
    patient_bundle,
)
from maison.services.demo.synthetic import BIRTH_PLACE, INSEE_CODE

BUNDLES = list(demo_bundles(60, seed=7))


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle["entry"]]


def _ins(patient: dict[str, Any]) -> dict[str, Any]:
    (ins,) = [i for i in patient["identifier"] if i["system"] == INS_NIR_TEST_SYSTEM]
    return ins


def test_same_seed_gives_the_same_bytes_and_other_seeds_differ() -> None:
    again = [orjson.dumps(b) for b in demo_bundles(60, seed=7)]
    assert again == [orjson.dumps(b) for b in BUNDLES]
    other = [orjson.dumps(b) for b in demo_bundles(60, seed=8)]
    assert not set(other) & set(again)


def test_a_bundle_depends_only_on_seed_and_index() -> None:
    tail = list(demo_bundles(3, seed=7, start=10))
    assert tail == BUNDLES[10:13]
    assert patient_bundle(bundle_rng(7, 11), 11) == BUNDLES[11]


def test_make_nir_matches_published_keys() -> None:
    # ANS TestContenuCDA example matricule (INS-NIR de test), see domain data nir-key-examples.csv
    assert make_nir(2, date(1979, 3, 14), "51215", 189) == "279035121518989"
    # Corsica: 2B replaced by 18 for the key (python-stdnum doctest vector 253072B07300470 has a
    # 1953 birth; we use a post-1976 birth, where 2A/2B appear in the NIR).
    corsican = make_nir(2, date(1983, 7, 2), "2B073", 4)
    assert corsican[:13] == "283072B073004"
    assert int(corsican[13:]) == 97 - int("2830718073004") % 97
    # born in Corsica before the 1976 split: département 20
    assert make_nir(1, date(1953, 7, 2), "2A004", 4)[5:10] == "20004"
    with pytest.raises(ValueError):
        make_nir(3, date(1983, 7, 2), "75056", 1)
    with pytest.raises(ValueError):
        make_nir(1, date(1983, 7, 2), "75056", 0)


def test_every_patient_has_a_valid_test_nir_consistent_with_its_traits() -> None:
    seen_abroad = seen_corsica = False
    for bundle in BUNDLES:
        patient = _resources(bundle)[0]
        ins = _ins(patient)
        value = ins["value"]
        assert len(value) == 15
        assert stdnum_nir.is_valid(value), value
        assert ins["use"] == "official"
        assert ins["type"]["coding"][0]["code"] == "INS-NIR-TEST"
        assert value[0] == {"male": "1", "female": "2"}[patient["gender"]]
        birth = date.fromisoformat(patient["birthDate"])
        assert value[1:5] == f"{birth.year % 100:02d}{birth.month:02d}"
        (place,) = [e for e in patient["extension"] if e["url"] == BIRTH_PLACE]
        codes = [
            e["valueCoding"]["code"]
            for e in place["valueAddress"].get("extension", [])
            if e["url"] == INSEE_CODE
        ]
        if place["valueAddress"]["country"] != "FR":
            seen_abroad = True
            assert value[5:10] == codes[0] and codes[0][:2] == "99"
        elif codes[0][:2] in ("2A", "2B"):
            seen_corsica = True
            assert value[7:10] == codes[0][2:]
        else:
            assert value[5:10] == codes[0]
        (ipp,) = [i for i in patient["identifier"] if i["system"] == IPP_SYSTEM]
        assert ipp["value"].startswith("IPP-")
        assert "HTEST" in {s["code"] for s in patient["meta"]["security"]}
    assert seen_abroad or seen_corsica  # the sample covers a non-metropolitan birthplace


def test_patients_have_french_accented_names_and_addresses() -> None:
    names = [n for b in BUNDLES for n in _resources(b)[0]["name"] if n["use"] == "official"]
    words = [n["family"] for n in names] + [g for n in names for g in n["given"]]
    assert any(not w.isascii() for w in words)
    for bundle in BUNDLES:
        address = _resources(bundle)[0]["address"][0]
        assert len(address["postalCode"]) == 5 and address["postalCode"].isdigit()
        assert address["country"] == "FR"


def test_internal_references_resolve_within_the_bundle() -> None:
    all_urls: list[str] = []
    for bundle in BUNDLES:
        full_urls = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}
        all_urls += list(full_urls)
        patient_url = bundle["entry"][0]["fullUrl"]
        refs = bundle_references(bundle)
        assert refs
        assert all(ref in full_urls for ref in refs), set(refs) - set(full_urls)
        for resource in _resources(bundle)[1:]:
            assert resource.get("subject") == {"reference": patient_url}
            encounter_refs = [resource["encounter"]] if "encounter" in resource else []
            encounter_refs += resource.get("context", {}).get("encounter", [])
            if resource["resourceType"] != "Encounter":
                assert encounter_refs
            assert all(full_urls[r["reference"]] == "Encounter" for r in encounter_refs)
    assert len(set(all_urls)) == len(all_urls)
    assert all(u.startswith("urn:uuid:") and len(u) == 45 for u in all_urls)


def test_transaction_entries_post_and_the_patient_is_a_conditional_create() -> None:
    for bundle in BUNDLES:
        assert bundle["type"] == "transaction"
        for entry in bundle["entry"]:
            assert entry["request"]["method"] == "POST"
            assert entry["request"]["url"] == entry["resource"]["resourceType"]
        patient_entry = bundle["entry"][0]
        ins = _ins(patient_entry["resource"])
        assert patient_entry["request"]["ifNoneExist"] == (
            f"identifier={INS_NIR_TEST_SYSTEM}|{ins['value']}"
        )
        assert all("ifNoneExist" not in e["request"] for e in bundle["entry"][1:])


def test_resource_counts_per_bundle() -> None:
    totals = []
    for bundle in BUNDLES:
        counts = Counter(r["resourceType"] for r in _resources(bundle))
        assert counts["Patient"] == 1
        assert 2 <= counts["Encounter"] <= 3
        assert 10 <= counts["Observation"] <= 12
        assert 2 <= counts["Condition"] <= 3
        assert 2 <= counts["DocumentReference"] <= 3
        assert set(counts) == {
            "Patient",
            "Encounter",
            "Observation",
            "Condition",
            "DocumentReference",
        }
        totals.append(sum(counts.values()))
    assert 18 <= sum(totals) / len(totals) <= 22


def test_observations_use_loinc_and_ucum() -> None:
    codes: set[str] = set()
    for bundle in BUNDLES:
        for obs in (r for r in _resources(bundle) if r["resourceType"] == "Observation"):
            assert obs["status"] == "final"
            assert obs["code"]["coding"][0]["system"] == "http://loinc.org"
            codes.add(obs["code"]["coding"][0]["code"])
            quantities = (
                [obs["valueQuantity"]]
                if "valueQuantity" in obs
                else [c["valueQuantity"] for c in obs["component"]]
            )
            for q in quantities:
                assert q["system"] == "http://unitsofmeasure.org" and q["code"] == q["unit"]
                assert q["value"] > 0
    assert {"8867-4", "29463-7", "8302-2", "85354-9", "2339-0"} <= codes


def test_documents_carry_a_small_pdf_with_matching_size_and_hash() -> None:
    for bundle in BUNDLES[:10]:
        for doc in (r for r in _resources(bundle) if r["resourceType"] == "DocumentReference"):
            assert doc["status"] == "current"
            attachment = doc["content"][0]["attachment"]
            assert attachment["contentType"] == "application/pdf"
            data = base64.b64decode(attachment["data"], validate=True)
            assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
            assert attachment["size"] == len(data) < 4096
            assert base64.b64decode(attachment["hash"]) == hashlib.sha1(data).digest()


def test_collection_bundles_have_no_request_and_unknown_types_are_refused() -> None:
    bundle = patient_bundle(bundle_rng(0, 0), 0, bundle_type="collection")
    assert bundle["type"] == "collection"
    assert all("request" not in e for e in bundle["entry"])
    with pytest.raises(ValueError):
        patient_bundle(bundle_rng(0, 0), 0, bundle_type="batch")


@pytest.mark.parametrize("resource_type", ["Patient", "Observation"])
def test_individual_resources_are_standalone(resource_type: str) -> None:
    resources = individual_resources(random.Random(3), 25, resource_type)
    assert len(resources) == 25
    assert all(r["resourceType"] == resource_type for r in resources)
    assert b"urn:uuid" not in orjson.dumps(resources)
    assert resources == individual_resources(random.Random(3), 25, resource_type)
    if resource_type == "Observation":
        for obs in resources:
            assert "reference" not in obs["subject"]
            assert stdnum_nir.is_valid(obs["subject"]["identifier"]["value"])
    with pytest.raises(ValueError):
        individual_resources(random.Random(3), 1, "Encounter")


def test_every_generated_resource_passes_the_r4_validator(defs: Any) -> None:
    validation = pytest.importorskip("maison.fhir.validation")
    validator = validation.Validator(defs)
    resources = [r for b in BUNDLES[:20] for r in _resources(b)]
    resources += individual_resources(random.Random(5), 20, "Patient")
    resources += individual_resources(random.Random(5), 20, "Observation")
    resources += [patient_bundle(bundle_rng(1, 1), 1)]
    failures = []
    for resource in resources:
        issues = validator.validate(resource)
        errors = [i for i in issues if i.severity in ("error", "fatal")]
        if errors:
            failures.append((resource["resourceType"], errors))
    assert not failures, failures[:3]
