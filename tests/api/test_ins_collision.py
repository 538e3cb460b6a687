"""One INS, one person: a second Patient carrying a matricule INS already held is refused (409),
whatever the route (create, update, patch, transaction), and nothing is written.

https://esante.gouv.fr/produits-services/referentiel-ins (RNIV: collisions)
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import httpx

from maison.services.ins import reference
from maison.services.ins.matricule import compute_key
from maison.services.ins.reference import ReferenceIdentity, synthesize

INS_TEST = "urn:oid:1.2.250.1.213.1.4.10"


def _identity() -> ReferenceIdentity:
    return next(synthesize(1, seed=uuid.uuid4().int % 2**31))


def _patient(family: str, identity: ReferenceIdentity) -> dict[str, Any]:
    """A PROV FR Core Patient carrying the identity's matricule INS."""
    return reference.to_patient(dataclasses.replace(identity, nom_naissance=family), "PROV")


def test_second_patient_with_the_same_ins_is_refused(http: httpx.Client) -> None:
    person = _identity()
    ins = person.matricule
    first = http.post("/Patient", json=_patient("MARTIN", person))
    assert first.status_code == 201, first.text
    first_id = first.json()["id"]
    again = http.post("/Patient", json=_patient("MARTINS", person))
    assert again.status_code == 409, again.text
    text = again.json()["issue"][0]["diagnostics"]
    assert f"Patient/{first_id}" in text and "$merge" in text and ins in text
    # updating or patching another Patient to carry it is refused the same way
    plain = {"resourceType": "Patient", "name": [{"family": "DURAND"}]}
    other = http.post("/Patient", json=plain).json()
    put = http.put(
        f"/Patient/{other['id']}", json={**_patient("DURAND", person), "id": other["id"]}
    )
    assert put.status_code == 409, put.text
    order = (int(ins[10:13]) + 1) % 1000
    sibling_13 = f"{ins[:10]}{order:03d}"
    sibling = dataclasses.replace(person, matricule=sibling_13 + compute_key(sibling_13))
    held = http.post("/Patient", json=_patient("DURAND", sibling))
    assert held.status_code == 201, held.text
    index = next(
        i
        for i, ident in enumerate(held.json()["identifier"])
        if ident["value"] == sibling.matricule
    )
    patch = http.patch(
        f"/Patient/{held.json()['id']}",
        json=[{"op": "replace", "path": f"/identifier/{index}/value", "value": ins}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert patch.status_code == 409, patch.text
    # the holder itself may be updated; once it is deleted, the INS is free again
    mine = {**first.json(), "active": True}
    assert http.put(f"/Patient/{first_id}", json=mine).status_code == 200
    assert http.delete(f"/Patient/{first_id}").status_code in (200, 204)
    assert http.post("/Patient", json=_patient("MARTINS", person)).status_code == 201


def test_a_transaction_claiming_one_ins_twice_writes_nothing(http: httpx.Client) -> None:
    person = _identity()
    ins = person.matricule
    tag = uuid.uuid4().hex[:8].upper().translate(str.maketrans("0123456789", "GHIJKLMNOP"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": _patient(f"COLLISION{tag}", person),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": _patient(f"COLLISION{tag}", person),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    r = http.post("/", json=bundle)
    assert r.status_code == 409, r.text
    found = http.get("/Patient", params={"identifier": f"{INS_TEST}|{ins}"}).json()
    assert found.get("total", len(found.get("entry", []))) == 0
    assert not found.get("entry")


PI = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PI"}]}


def _ipp(system: str | None, value: str, use: str = "usual") -> dict[str, Any]:
    out: dict[str, Any] = {"use": use, "type": PI, "value": value}
    if system:
        out["system"] = system
    return out


def test_ipp_is_unique_per_structure_and_several_structures_coexist(http: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    chu = f"urn:oid:1.2.250.1.71.4.2.7.{uuid.uuid4().int % 10**6}"
    clinique = f"https://clinique-{tag}.example.fr/ipp"
    both = {
        "resourceType": "Patient",
        "name": [{"family": "LEROY"}],
        "identifier": [_ipp(chu, f"{tag}-1"), _ipp(clinique, f"{tag}-A")],
    }
    first = http.post("/Patient", json=both)
    assert first.status_code == 201, first.text
    # the same IPP value in another structure is another patient's: fine
    other = {"resourceType": "Patient", "identifier": [_ipp(f"{clinique}/b", f"{tag}-1")]}
    assert http.post("/Patient", json=other).status_code == 201
    # the same IPP in the same structure is a collision
    again = http.post(
        "/Patient", json={"resourceType": "Patient", "identifier": [_ipp(chu, f"{tag}-1")]}
    )
    assert again.status_code == 409, again.text
    assert "The IPP" in again.text and first.json()["id"] in again.text
    # an old IPP (kept after a merge) claims nothing
    kept = {"resourceType": "Patient", "identifier": [_ipp(chu, f"{tag}-1", use="old")]}
    assert http.post("/Patient", json=kept).status_code == 201
    # found by either structure's IPP
    for system, value in ((chu, f"{tag}-1"), (clinique, f"{tag}-A")):
        found = http.get("/Patient", params={"identifier": f"{system}|{value}"})
        ids = {e["resource"]["id"] for e in found.json().get("entry", [])}
        assert first.json()["id"] in ids


def test_ipp_without_its_structure_system_is_refused(http: httpx.Client) -> None:
    r = http.post("/Patient", json={"resourceType": "Patient", "identifier": [_ipp(None, "123")]})
    assert r.status_code == 422, r.text
    assert "system of the structure" in r.text
