"""Batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

INS_TEST = "https://maison.example.org/fhir/sid/ipp"  # random values are no INS


def _txn(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _patient_entry(value: str, full_url: str) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": {
            "resourceType": "Patient",
            "identifier": [{"system": INS_TEST, "value": value}],
            "name": [{"family": "Béranger", "given": ["Noël"]}],
        },
        "request": {
            "method": "POST",
            "url": "Patient",
            "ifNoneExist": f"identifier={INS_TEST}|{value}",
        },
    }


def _obs_entry(subject: str) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": subject},
            "valueQuantity": {
                "value": 72,
                "unit": "/min",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        },
        "request": {"method": "POST", "url": "Observation"},
    }


def test_transaction_resolves_urn_uuid(http: httpx.Client) -> None:
    value = uuid.uuid4().hex
    purl = f"urn:uuid:{uuid.uuid4()}"
    r = http.post("/", json=_txn(_patient_entry(value, purl), _obs_entry(purl), _obs_entry(purl)))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response" and len(out["entry"]) == 3
    assert [e["response"]["status"] for e in out["entry"]] == ["201 Created"] * 3
    pid = out["entry"][0]["response"]["location"].split("/")[1]
    for e in out["entry"][1:]:
        assert e["resource"]["subject"]["reference"] == f"Patient/{pid}"
    found = http.get("/Observation", params={"subject": f"Patient/{pid}"}).json()
    assert found["total"] == 2

    # the same transaction again: conditional create finds the patient, no duplicate
    r = http.post("/", json=_txn(_patient_entry(value, purl), _obs_entry(purl)))
    out2 = r.json()
    assert out2["entry"][0]["response"]["status"] == "200 OK"
    assert out2["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    assert http.get("/Patient", params={"identifier": f"{INS_TEST}|{value}"}).json()["total"] == 1


def test_transaction_conditional_reference(http: httpx.Client) -> None:
    value = uuid.uuid4().hex
    http.post("/", json=_txn(_patient_entry(value, f"urn:uuid:{uuid.uuid4()}")))
    r = http.post("/", json=_txn(_obs_entry(f"Patient?identifier={INS_TEST}|{value}")))
    assert r.status_code == 200, r.text
    ref = r.json()["entry"][0]["resource"]["subject"]["reference"]
    assert ref.startswith("Patient/") and "?" not in ref
    r = http.post("/", json=_txn(_obs_entry(f"Patient?identifier={INS_TEST}|nobody")))
    assert r.status_code == 412


def test_transaction_is_atomic(http: httpx.Client) -> None:
    value = uuid.uuid4().hex
    purl = f"urn:uuid:{uuid.uuid4()}"
    bad = _obs_entry(purl)
    bad["resource"]["status"] = "not-a-status"
    before = http.get("/_history", params={"_count": 1}).json()["total"]
    r = http.post("/", json=_txn(_patient_entry(value, purl), _obs_entry(purl), bad))
    assert r.status_code == 422
    assert "Bundle.entry[2]" in r.json()["issue"][0]["diagnostics"]
    assert http.get("/Patient", params={"identifier": f"{INS_TEST}|{value}"}).json()["total"] == 0
    assert http.get("/_history", params={"_count": 1}).json()["total"] == before


def test_transaction_unresolvable_urn_is_refused(http: httpx.Client) -> None:
    r = http.post("/", json=_txn(_obs_entry(f"urn:uuid:{uuid.uuid4()}")))
    assert r.status_code == 400
    assert "fullUrl" in r.json()["issue"][0]["diagnostics"]


def test_transaction_order_delete_post_put_get(http: httpx.Client) -> None:
    gone = http.post("/Basic", json={"resourceType": "Basic", "code": {"text": "a"}}).json()["id"]
    pid = f"t-{uuid.uuid4().hex[:10]}"
    entries = [
        {"request": {"method": "GET", "url": f"Basic/{pid}"}},
        {
            "resource": {"resourceType": "Basic", "id": pid, "code": {"text": "put"}},
            "request": {"method": "PUT", "url": f"Basic/{pid}"},
        },
        {"request": {"method": "DELETE", "url": f"Basic/{gone}"}},
    ]
    r = http.post("/", json=_txn(*entries))
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["200 OK", "201 Created", "200 OK"]
    assert r.json()["entry"][0]["resource"]["code"]["text"] == "put"
    assert http.get(f"/Basic/{gone}").status_code == 410


def test_batch_entries_are_independent(http: httpx.Client) -> None:
    good = {
        "resource": {"resourceType": "Basic", "code": {"text": "ok"}},
        "request": {"method": "POST", "url": "Basic"},
    }
    bad = {"resource": {"resourceType": "Basic"}, "request": {"method": "POST", "url": "Basic"}}
    missing = {"request": {"method": "GET", "url": "Basic/does-not-exist"}}
    r = http.post("/", json=_txn(good, bad, missing, kind="batch"))
    assert r.status_code == 200
    out = r.json()
    assert out["type"] == "batch-response"
    codes = [e["response"]["status"].split()[0] for e in out["entry"]]
    assert codes == ["201", "422", "404"]
    assert out["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
