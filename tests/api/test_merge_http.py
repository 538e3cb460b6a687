"""``Patient/$merge`` and ``Patient/[id]/$unmerge`` over HTTP, on a running server.

Needs ``register_merge(services.operations)`` in the composition root.
https://hl7.org/fhir/R5/patient-operation-merge.html
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from maison.services.ins import reference
from servers import Server

IPP_SYSTEM = "urn:oid:1.2.250.1.71.4.2.7.999"
PI = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PI"}]}


@pytest.fixture(scope="module")
def wired(server: Server) -> Server:
    """The server, once it is known to offer $merge (registered by the composition root)."""
    cap = httpx.get(f"{server.base_url}/metadata").json()
    patient = next(r for r in cap["rest"][0]["resource"] if r["type"] == "Patient")
    names = {op["name"] for op in patient.get("operation", [])}
    if not {"merge", "unmerge"} <= names:
        pytest.fail("register_merge(services.operations) is not called at startup")
    return server


@pytest.fixture
def c(wired: Server) -> Iterator[httpx.Client]:
    """A professional's client (user/ scopes)."""
    with wired.client(wired.mint("system/*.*")) as client:
        yield client


class Case:
    """One set of uniquely named records on the shared server."""

    def __init__(self, client: httpx.Client, base: str) -> None:
        self.c = client
        self.base = base
        self.tag = uuid.uuid4().hex[:8]

    def id(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        r = self.c.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
        assert r.status_code in (200, 201), r.text
        body: dict[str, Any] = r.json()
        return body

    def get(self, res_type: str, name: str) -> dict[str, Any]:
        r = self.c.get(f"/{res_type}/{self.id(name)}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def patient(self, name: str, ins_seed: int | None = None) -> dict[str, Any]:
        if ins_seed is not None:
            # one INS, one person: each case draws its own identities (seed offset by the tag)
            seed = (ins_seed + int(self.tag, 16)) % 2**31
            identity = next(iter(reference.synthesize(1, seed=seed)))
            patient = reference.to_patient(identity, "PROV")
            patient.pop("meta")
        else:
            patient = {
                "resourceType": "Patient",
                "name": [{"family": "DUPONT", "given": ["Jean"]}],
                "birthDate": "1980-02-03",
                "identifier": [],
            }
        ipp = {"use": "usual", "type": PI, "system": IPP_SYSTEM, "value": self.id(f"ipp-{name}")}
        patient["identifier"].append(ipp)
        return self.put({**patient, "id": self.id(name)})

    def records(self) -> None:
        """src (no INS), tgt (INS) and an Observation, Encounter and DocumentReference of src."""
        self.patient("src")
        self.patient("tgt", ins_seed=31)
        src = f"Patient/{self.id('src')}"
        self.put(
            {
                "resourceType": "Observation",
                "id": self.id("obs"),
                "status": "final",
                "code": {"text": "poids"},
                "subject": {"reference": src},
            }
        )
        self.put(
            {
                "resourceType": "Encounter",
                "id": self.id("enc"),
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "subject": {"reference": src},
            }
        )
        self.put(
            {
                "resourceType": "DocumentReference",
                "id": self.id("doc"),
                "status": "current",
                "contained": [
                    {"resourceType": "RelatedPerson", "id": "rp", "patient": {"reference": src}}
                ],
                "author": [{"reference": "#rp"}],
                "subject": {"reference": f"{self.base}/{src}"},
                "content": [{"attachment": {"contentType": "text/plain", "data": "YQ=="}}],
                "context": {"related": [{"reference": src}]},
            }
        )

    def merge(self, source: str, target: str, preview: bool = False, **kw: Any) -> httpx.Response:
        params: list[dict[str, Any]] = [
            {
                "name": "source-patient",
                "valueReference": {"reference": f"Patient/{self.id(source)}"},
            },
            {
                "name": "target-patient",
                "valueReference": {"reference": f"Patient/{self.id(target)}"},
            },
        ]
        if preview:
            params.append({"name": "preview", "valueBoolean": True})
        return (kw.get("client") or self.c).post(
            "/Patient/$merge", json={"resourceType": "Parameters", "parameter": params}
        )

    def unmerge(self, source: str) -> httpx.Response:
        return self.c.post(
            f"/Patient/{self.id(source)}/$unmerge",
            json={"resourceType": "Parameters", "parameter": []},
        )


def out(response: httpx.Response, name: str) -> Any:
    for p in response.json()["parameter"]:
        if p["name"] == name:
            return p.get("resource", p.get("valueReference"))
    return None


def history_total(client: httpx.Client) -> int:
    r = client.get("/_history", params={"_count": "1"})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def test_definitions_are_served(c: httpx.Client) -> None:
    merge = c.get("/OperationDefinition/Patient-merge").json()
    assert merge["code"] == "merge" and merge["type"] is True and merge["affectsState"] is True
    unmerge = c.get("/OperationDefinition/Patient-unmerge").json()
    assert unmerge["code"] == "unmerge" and unmerge["instance"] is True


def test_merge_over_http(c: httpx.Client, wired: Server) -> None:
    case = Case(c, wired.base_url)
    case.records()
    r = case.merge("src", "tgt")
    assert r.status_code == 200, r.text
    assert out(r, "input")["resourceType"] == "Parameters"
    assert out(r, "outcome")["issue"][0]["severity"] == "information"
    tgt_ref = f"Patient/{case.id('tgt')}"
    result = out(r, "result")
    assert result["id"] == case.id("tgt")
    assert {"other": {"reference": f"Patient/{case.id('src')}"}, "type": "replaces"} in result[
        "link"
    ]
    old = [i for i in result["identifier"] if i.get("use") == "old"]
    assert [i["value"] for i in old] == [case.id("ipp-src")]
    assert case.get("Observation", "obs")["subject"] == {"reference": tgt_ref}
    assert case.get("Encounter", "enc")["subject"] == {"reference": tgt_ref}
    doc = case.get("DocumentReference", "doc")
    assert doc["subject"] == {"reference": f"{wired.base_url}/{tgt_ref}"}
    assert doc["context"]["related"] == [{"reference": tgt_ref}]
    assert doc["contained"][0]["patient"] == {"reference": tgt_ref}
    hist = c.get(f"/Observation/{case.id('obs')}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in hist["entry"]] == ["2", "1"]
    assert hist["entry"][1]["resource"]["subject"] == {"reference": f"Patient/{case.id('src')}"}
    src = case.get("Patient", "src")
    assert src["active"] is False
    assert src["link"] == [{"other": {"reference": tgt_ref}, "type": "replaced-by"}]
    prov_ref = out(r, "provenance")["reference"]
    prov = c.get(f"/{prov_ref}").json()
    assert [t["reference"] for t in prov["target"]] == [
        f"Patient/{case.id('src')}/_history/2",
        f"{tgt_ref}/_history/2",
        f"DocumentReference/{case.id('doc')}/_history/2",
        f"Encounter/{case.id('enc')}/_history/2",
        f"Observation/{case.id('obs')}/_history/2",
    ]
    assert prov["activity"]["text"] == "merge"
    assert prov["agent"][0]["who"]["identifier"]["value"] == "dev-user"
    assert prov["entity"] == [
        {"role": "source", "what": {"reference": f"Patient/{case.id('src')}"}}
    ]
    found = c.get("/Provenance", params={"target": f"Observation/{case.id('obs')}"}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [prov["id"]]


def test_preview_writes_nothing(c: httpx.Client, wired: Server) -> None:
    case = Case(c, wired.base_url)
    case.records()
    before = history_total(c)
    r = case.merge("src", "tgt", preview=True)
    assert r.status_code == 200, r.text
    assert out(r, "provenance") is None
    assert "would be merged" in out(r, "outcome")["issue"][0]["diagnostics"]
    assert out(r, "result")["link"][0]["type"] == "replaces"
    assert history_total(c) == before
    assert "link" not in case.get("Patient", "src")


@pytest.mark.parametrize(
    ("source", "target", "status", "words"),
    [
        ("src", "src", 422, "same record"),
        ("nobody", "tgt", 404, "is not known"),
        ("src", "nobody", 404, "is not known"),
        ("other-ins", "tgt", 422, "two different persons"),
        ("tgt", "src", 422, "merge the other way"),
    ],
)
def test_refusals(
    c: httpx.Client, wired: Server, source: str, target: str, status: int, words: str
) -> None:
    case = Case(c, wired.base_url)
    case.records()
    case.patient("other-ins", ins_seed=32)
    before = history_total(c)
    r = case.merge(source, target)
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert words in outcome["issue"][0]["diagnostics"]
    assert history_total(c) == before


def test_already_merged_and_bad_requests(c: httpx.Client, wired: Server) -> None:
    case = Case(c, wired.base_url)
    case.records()
    case.patient("third")
    assert case.merge("src", "tgt").status_code == 200
    r = case.merge("src", "third")
    assert r.status_code == 422 and "already merged" in r.text
    r = case.merge("third", "src")
    assert r.status_code == 422 and "was itself merged" in r.text
    no_source = {
        "resourceType": "Parameters",
        "parameter": [{"name": "target-patient", "valueReference": {"reference": "Patient/x"}}],
    }
    r = c.post("/Patient/$merge", json=no_source)
    assert r.status_code == 400 and "source-patient" in r.text
    wrong_type = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "source-patient", "valueReference": {"reference": "Observation/x"}},
            {"name": "target-patient", "valueReference": {"reference": "Patient/x"}},
        ],
    }
    assert c.post("/Patient/$merge", json=wrong_type).status_code == 400
    assert c.get("/Patient/$merge").status_code == 405


def test_identifiers_resolve(c: httpx.Client, wired: Server) -> None:
    case = Case(c, wired.base_url)
    case.records()

    def by_ipp(value: str) -> dict[str, Any]:
        return {"system": IPP_SYSTEM, "value": value}

    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "source-patient-identifier", "valueIdentifier": by_ipp(case.id("ipp-src"))},
            {"name": "target-patient-identifier", "valueIdentifier": by_ipp(case.id("ipp-tgt"))},
            {"name": "preview", "valueBoolean": True},
        ],
    }
    r = c.post("/Patient/$merge", json=body)
    assert r.status_code == 200, r.text
    assert out(r, "result")["id"] == case.id("tgt")
    body["parameter"][0]["valueIdentifier"] = by_ipp("no-such-ipp")
    r = c.post("/Patient/$merge", json=body)
    assert r.status_code == 422 and "No Patient has the identifier" in r.text


def test_patient_apps_may_not_merge(wired: Server) -> None:
    token = wired.mint("patient/*.*", patient="p1")
    with wired.client(token) as client:
        r = Case(client, wired.base_url).merge("a", "b")
    assert r.status_code == 403, r.text


def test_a_type_the_token_may_not_read_refuses_everything(c: httpx.Client, wired: Server) -> None:
    case = Case(c, wired.base_url)
    case.records()
    before = history_total(c)
    token = wired.mint(
        "system/Patient.*",
        "system/Observation.*",
        "system/DocumentReference.*",
        "system/Provenance.*",
    )
    with wired.client(token) as limited:
        r = case.merge("src", "tgt", client=limited)
    assert r.status_code == 403, r.text
    assert "Encounter" in r.json()["issue"][0]["diagnostics"]
    assert history_total(c) == before
    assert case.get("Observation", "obs")["subject"]["reference"].endswith(case.id("src"))


def test_unmerge_over_http(c: httpx.Client, wired: Server) -> None:
    case = Case(c, wired.base_url)
    case.records()
    assert case.merge("src", "tgt").status_code == 200
    r = case.unmerge("src")
    assert r.status_code == 200, r.text
    src_ref = f"Patient/{case.id('src')}"
    restored = out(r, "result")
    assert restored["id"] == case.id("src") and "link" not in restored
    assert "active" not in restored
    tgt = case.get("Patient", "tgt")
    assert "link" not in tgt and all(i.get("use") != "old" for i in tgt["identifier"])
    assert case.get("Observation", "obs")["subject"] == {"reference": src_ref}
    assert case.get("Encounter", "enc")["subject"] == {"reference": src_ref}
    doc = case.get("DocumentReference", "doc")
    assert doc["context"]["related"] == [{"reference": src_ref}]
    assert doc["subject"] == {"reference": f"{wired.base_url}/{src_ref}"}
    prov = c.get(f"/{out(r, 'provenance')['reference']}").json()
    assert prov["activity"]["text"] == "unmerge"
    assert prov["entity"][0]["role"] == "revision"
    before = history_total(c)
    again = case.unmerge("src")
    assert again.status_code == 422 and "already undone" in again.text
    assert history_total(c) == before
    never = case.unmerge("tgt")
    assert never.status_code == 422 and "no recorded merge" in never.text
