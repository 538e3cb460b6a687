"""Two real FHIR clients nobody here wrote, against the running server: fhirpy and fhirclient."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fhirclient.models.observation import Observation as FcObservation
from fhirclient.models.patient import Patient as FcPatient
from fhirclient.server import FHIRServer
from fhirpy import SyncFHIRClient

INS_TEST = "https://maison.example.org/fhir/sid/ipp"  # a local IPP: random values are no INS


def test_fhirpy_crud_search_and_paging(server: Any, http: httpx.Client) -> None:
    client = SyncFHIRClient(server.base_url, authorization=f"Bearer {server.token}")
    value = uuid.uuid4().hex
    patient = client.resource(
        "Patient",
        identifier=[{"system": INS_TEST, "value": value}],
        name=[{"family": "Lefèvre", "given": ["Françoise"]}],
        birthDate="1950-03-04",
    )
    patient.save()
    assert patient.id and patient["meta"]["versionId"] == "1"

    patient["gender"] = "female"
    patient.save()
    fetched = client.reference("Patient", patient.id).to_resource()
    assert fetched["gender"] == "female" and fetched["meta"]["versionId"] == "2"

    found = client.resources("Patient").search(identifier=f"{INS_TEST}|{value}").fetch()
    assert [p.id for p in found] == [patient.id]
    by_name = client.resources("Patient").search(family="lefevre", _id=patient.id).fetch()
    assert [p.id for p in by_name] == [patient.id]

    for i in range(5):
        client.resource(
            "Observation",
            status="final",
            code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            subject=patient.to_reference(),
            valueQuantity={"value": 60 + i, "unit": "/min"},
        ).save()
    obs = client.resources("Observation").search(subject=f"Patient/{patient.id}").limit(2)
    all_obs = obs.fetch_all()  # follows the next links
    assert len(all_obs) == 5
    raw = http.get("/Observation", params={"subject": f"Patient/{patient.id}", "_count": 100})
    assert {o.id for o in all_obs} == {e["resource"]["id"] for e in raw.json()["entry"]}

    patient.delete()
    assert http.get(f"/Patient/{patient.id}").status_code == 410


def test_fhirclient_create_read_update(server: Any) -> None:
    smart = FHIRServer(None, base_uri=server.base_url + "/")
    smart.session.headers["Authorization"] = f"Bearer {server.token}"
    pat = FcPatient({"resourceType": "Patient", "name": [{"family": "Noël", "given": ["Zoé"]}]})
    created = pat.create(smart)
    assert created is not None and created["resourceType"] == "Patient"
    pid = created["id"]
    read = FcPatient.read(pid, smart)
    assert read.name[0].family == "Noël"
    read.gender = "female"
    read.update(smart)
    again = FcPatient.read(pid, smart)
    assert again.gender == "female" and again.meta.versionId == "2"
    obs = FcObservation(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "poids"},
            "subject": {"reference": f"Patient/{pid}"},
            "valueQuantity": {"value": 61.5, "unit": "kg"},
        }
    )
    out = obs.create(smart)
    assert out is not None
    fetched = FcObservation.read(out["id"], smart)
    assert fetched.valueQuantity.value == 61.5
    assert fetched.subject.reference == f"Patient/{pid}"


def test_fhirpy_chains_and_includes_match_raw_http(server: Any, http: httpx.Client) -> None:
    client = SyncFHIRClient(server.base_url, authorization=f"Bearer {server.token}")
    family = f"Chaîne{uuid.uuid4().hex[:8]}"
    patient = client.resource("Patient", name=[{"family": family}])
    patient.save()
    obs_ids = set()
    for code in ("8867-4", "29463-7"):
        obs = client.resource(
            "Observation",
            status="final",
            code={"coding": [{"system": "http://loinc.org", "code": code}]},
            subject=patient.to_reference(),
        )
        obs.save()
        obs_ids.add(obs.id)
    chained = client.resources("Observation").search(**{"subject:Patient.family": family})
    assert {o.id for o in chained.fetch_all()} == obs_ids
    raw = http.get("/Observation", params={"subject:Patient.family": family}).json()
    assert {e["resource"]["id"] for e in raw["entry"]} == obs_ids

    bundle = (
        client.resources("Observation")
        .search(**{"subject:Patient.family": family})
        .include("Observation", "subject")
        .fetch_raw()
    )
    modes = sorted((e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle.entry)
    assert modes == [("include", "Patient"), ("match", "Observation"), ("match", "Observation")]
    rev = client.resources("Patient").search(_id=patient.id).revinclude("Observation", "subject")
    raw_rev = http.get(
        "/Patient", params={"_id": patient.id, "_revinclude": "Observation:subject"}
    ).json()
    assert len(rev.fetch_raw().entry) == len(raw_rev["entry"]) == 3
