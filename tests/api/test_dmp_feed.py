"""Feeding and consulting the DMP over HTTP: ITI-65 Provide Document Bundle and ITI-105
Simplified Publish as PDSm profiles them, ITI-68 Retrieve Document (whole and by range), the
lifecycle (replace, PATCH of status/securityLabel/isArchived only, no physical delete), and
the refusals with their reasons — nothing stored when a feed is refused.

https://profiles.ihe.net/ITI/MHD/ITI-65.html, https://interop.esante.gouv.fr/ig/fhir/pdsm/
"""

from __future__ import annotations

import base64
import copy
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dmp_documents import (
    DMP_GUIDES,
    cda_document,
    dmp_server,
    doctor_token,
    pdf,
    provide_bundle,
    qualified_patient,
)
from maison.api.settings import Settings
from maison.services.dmp.lifecycle import IS_ARCHIVED
from maison.services.dmp.provide import DOCUMENT_PROFILE
from servers import Server, guide_server
from support import CORPORA

COMPILED = CORPORA / "compiled"
INS_TEST = "urn:oid:1.2.250.1.213.1.4.10"


@pytest.fixture(scope="module")
def dmp(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = dmp_server(backend, tmp_path_factory.mktemp("dmp-feed"))
    yield srv
    srv.stop()


@pytest.fixture
def patient(dmp: Server) -> tuple[str, str]:
    return qualified_patient(dmp)


def _feed(c: httpx.Client, bundle: dict[str, Any]) -> httpx.Response:
    return c.post("/", json=bundle)


def _doc_id(response: httpx.Response, index: int = 1) -> str:
    location = response.json()["entry"][index]["response"]["location"]
    return str(location.split("/")[1])


def _count(c: httpx.Client, rtype: str) -> int:
    r = c.get(f"/{rtype}", params={"_summary": "count"})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def test_a_provide_bundle_is_stored_and_retrieved(dmp: Server, patient: tuple[str, str]) -> None:
    ref, _ins = patient
    content = pdf("CR de consultation du 1er mars") * 50
    with dmp.client() as c:
        r = _feed(c, provide_bundle(ref, [content]))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["type"] == "transaction-response"
        assert [e["response"]["status"][:3] for e in body["entry"]] == ["201", "201", "201"]
        doc = c.get(f"/DocumentReference/{_doc_id(r)}").json()
        url = doc["content"][0]["attachment"]["url"]
        assert url.startswith("Binary/") and doc["status"] == "current"
        # ITI-68: the document itself, whole and by range
        raw = c.get(f"/{url}", headers={"accept": "*/*"})
        assert raw.status_code == 200 and raw.content == content
        assert raw.headers["content-type"].startswith("application/pdf")
        assert raw.headers["accept-ranges"] == "bytes"
        part = c.get(f"/{url}", headers={"range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == content[10:100]
        assert part.headers["content-range"] == f"bytes 10-99/{len(content)}"
        tail = c.get(f"/{url}", headers={"range": "bytes=-7"})
        assert tail.status_code == 206 and tail.content == content[-7:]
        beyond = c.get(f"/{url}", headers={"range": f"bytes={len(content)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == (
            f"bytes */{len(content)}"
        )
        # as a FHIR Binary, the content inline
        fhir = c.get(f"/{url}", headers={"accept": "application/fhir+json"})
        assert fhir.status_code == 200
        assert base64.b64decode(fhir.json()["data"]) == content
        # the content is not in the resource table: the stored Binary has no data
        assert (
            "data"
            not in c.get(f"/{url}/_history/1", headers={"accept": "application/fhir+json"}).json()
        )


def test_the_content_is_encrypted_at_rest(dmp: Server, patient: tuple[str, str]) -> None:
    marker = f"secret-{uuid.uuid4()}".encode()
    with dmp.client() as c:
        r = _feed(c, provide_bundle(patient[0], [pdf() + marker]))
        assert r.status_code == 200, r.text
    blobs = _blob_dir(dmp)
    files = [p for p in blobs.rglob("*") if p.is_file()]
    assert files, "the content is stored in the blob store"
    assert not any(marker in p.read_bytes() for p in files)


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("wrong-hash", 422, "attachment.hash (SHA-1) does not match"),
        ("wrong-size", 422, "attachment.size says"),
        ("type-outside-j66", 422, "is not in the DMP value set JDV_J66"),
        ("class-not-x16", 422, "ASS_X16"),
        ("no-binary", 400, "does not point at a Binary of the bundle"),
        ("two-submission-sets", 400, "exactly one SubmissionSet"),
        ("other-patient", 422, "is not the SubmissionSet's"),
        ("unqualified", 422, "only emitted for a qualified identity"),
        ("content-type", 400, "is not the attachment's"),
    ],
)
def test_a_bad_feed_is_refused_with_its_reason_and_nothing_is_stored(
    dmp: Server, patient: tuple[str, str], case: str, status: int, reason: str
) -> None:
    ref, _ = patient
    bundle = provide_bundle(ref)
    doc = bundle["entry"][1]["resource"]
    attachment = doc["content"][0]["attachment"]
    if case == "wrong-hash":
        attachment["hash"] = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    elif case == "wrong-size":
        attachment["size"] += 1
    elif case == "type-outside-j66":
        doc["type"]["coding"][0]["code"] = "00000-0"
    elif case == "class-not-x16":
        doc["category"][0]["coding"][0]["code"] = "11"
    elif case == "no-binary":
        attachment["url"] = "urn:uuid:00000000-0000-0000-0000-000000000000"
        bundle["entry"].pop(2)
    elif case == "two-submission-sets":
        bundle["entry"].append(copy.deepcopy(bundle["entry"][0]))
        bundle["entry"][-1]["fullUrl"] = f"urn:uuid:{uuid.uuid4()}"
    elif case == "other-patient":
        other, _ = qualified_patient(dmp)
        doc["subject"] = {"reference": other}
    elif case == "unqualified":
        with dmp.client() as c:
            made = c.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "X"}]})
            ins = "1" + str(uuid.uuid4().int)[:12]
        # a patient named by an INS nobody holds as qualified
        for e in bundle["entry"][:2]:
            e["resource"]["subject"] = {"identifier": {"system": INS_TEST, "value": ins + "00"}}
        assert made.status_code == 201
    elif case == "content-type":
        bundle["entry"][2]["resource"]["contentType"] = "text/plain"
    with dmp.client() as c:
        before = {t: _count(c, t) for t in ("DocumentReference", "List", "Binary")}
        blobs_before = _blob_files(dmp)
        r = _feed(c, bundle)
        assert r.status_code == status, r.text
        assert r.json()["resourceType"] == "OperationOutcome"
        assert reason in r.text, r.text
        assert {t: _count(c, t) for t in before} == before
    assert _blob_files(dmp) == blobs_before


def _blob_dir(srv: Server) -> Path:
    return Settings(data=srv.data, state=str(srv.state)).blob_dir


def _blob_files(srv: Server) -> set[str]:
    return {str(p) for p in _blob_dir(srv).rglob("*") if p.is_file()}


def test_replacement_supersedes_the_old_document(dmp: Server, patient: tuple[str, str]) -> None:
    ref, _ = patient
    with dmp.client() as c:
        first = _feed(c, provide_bundle(ref, [pdf("v1")]))
        assert first.status_code == 200, first.text
        old = _doc_id(first)
        second = _feed(c, provide_bundle(ref, [pdf("v2")], replaces=f"DocumentReference/{old}"))
        assert second.status_code == 200, second.text
        new = _doc_id(second)
        assert c.get(f"/DocumentReference/{old}").json()["status"] == "superseded"
        assert c.get(f"/DocumentReference/{new}").json()["status"] == "current"
        current = c.get("/DocumentReference", params={"subject": ref, "status": "current"}).json()
        ids = {e["resource"]["id"] for e in current.get("entry", [])}
        assert new in ids and old not in ids
        # a superseded document cannot be replaced again, nor one of another patient
        again = _feed(c, provide_bundle(ref, [pdf("v3")], replaces=f"DocumentReference/{old}"))
        assert again.status_code == 422 and "not current" in again.text
        other, _ = qualified_patient(dmp)
        foreign = _feed(c, provide_bundle(other, [pdf("x")], replaces=f"DocumentReference/{new}"))
        assert foreign.status_code == 422 and "another patient" in foreign.text
        assert c.get(f"/DocumentReference/{new}").json()["status"] == "current"


def test_metadata_updates_are_limited_to_status_labels_and_archiving(
    dmp: Server, patient: tuple[str, str]
) -> None:
    ref, _ = patient
    with dmp.client() as c:
        r = _feed(c, provide_bundle(ref))
        doc_id = _doc_id(r)
        path = f"/DocumentReference/{doc_id}"
        patch = {"content-type": "application/json-patch+json"}
        mask = [
            {
                "op": "replace",
                "path": "/securityLabel/0/coding/0",
                "value": {
                    "system": "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/"
                    "FHIR/TRE-A07-StatutVisibiliteDocument",
                    "code": "MASQUE_PS",
                },
            }
        ]
        masked = c.patch(path, json=mask, headers=patch)
        assert masked.status_code == 200, masked.text
        archive = [
            {
                "op": "add",
                "path": "/extension",
                "value": [{"url": IS_ARCHIVED, "valueBoolean": True}],
            }
        ]
        archived = c.patch(path, json=archive, headers=patch)
        assert archived.status_code == 200, archived.text
        found = c.get("/DocumentReference", params={"subject": ref, "isArchived": "true"})
        assert doc_id in {e["resource"]["id"] for e in found.json().get("entry", [])}
        retitle = [{"op": "add", "path": "/description", "value": "autre"}]
        refused = c.patch(path, json=retitle, headers=patch)
        assert refused.status_code == 405 and "only status, securityLabel" in refused.text
        delete = c.delete(path)
        assert delete.status_code == 405 and "logically" in delete.text
        gone = c.patch(
            path,
            json=[{"op": "replace", "path": "/status", "value": "superseded"}],
            headers=patch,
        )
        assert gone.status_code == 200, gone.text
        back = c.patch(
            path, json=[{"op": "replace", "path": "/status", "value": "current"}], headers=patch
        )
        assert back.status_code == 422 and "never comes back" in back.text
        binary = c.get(path).json()["content"][0]["attachment"]["url"]
        assert c.delete(f"/{binary}").status_code == 405


def test_simplified_publish(dmp: Server, patient: tuple[str, str]) -> None:
    ref, _ = patient
    content = pdf("publication simplifiée")
    bundle = provide_bundle(ref, [content])
    doc = bundle["entry"][1]["resource"]
    doc["meta"]["profile"] = [
        "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-simplified-publish"
    ]
    attachment = doc["content"][0]["attachment"]
    del attachment["url"]
    attachment["data"] = base64.b64encode(content).decode()
    with dmp.client() as c:
        r = c.post("/DocumentReference", json=doc)
        assert r.status_code == 201, r.text
        stored = r.json()
        url = stored["content"][0]["attachment"]["url"]
        assert "data" not in stored["content"][0]["attachment"]
        assert c.get(f"/{url}").content == content
        attachment["size"] = 1
        bad = c.post("/DocumentReference", json=doc)
        assert bad.status_code == 422 and "attachment.size says 1 bytes" in bad.text


def test_without_the_nos_a_strict_server_refuses_to_feed(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("dmp-strict")
    srv = guide_server(backend, tmp, *(COMPILED / g for g in DMP_GUIDES))
    try:
        ref, _ = qualified_patient(srv)
        with srv.client() as c:
            r = _feed(c, provide_bundle(ref))
        assert r.status_code == 422, r.text
        assert "is not loaded on this server" in r.text
    finally:
        srv.stop()


# --- the official examples: accepted, or refused with the true reason ----------------------
def _pdsm4dmp(name: str) -> dict[str, Any]:
    path = next((CORPORA / "IG-FHIR-PDSM4DMP-EEDS").rglob(f"{name}.json"))
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


def test_pdsm4dmp_iti65_example(dmp: Server) -> None:
    """The ANS ITI-65 example is wrong for the DMP twice over: its INS (123456789012345) has a
    wrong key, so no Patient can carry it, and its format code (IHE mimeTypeSufficient) and
    its type/class pair are outside the DMP's value sets and ASS_X16. It is refused with
    those reasons, the codes first, whatever patient it names."""
    doc = _pdsm4dmp("Bundle-example-td2-iti65-lot-soumission")
    with dmp.client() as c:
        wrong = {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "123456789012345"}
        r = c.post("/Patient", json={"resourceType": "Patient", "identifier": [wrong]})
        assert r.status_code == 422 and "expected 11" in r.text, r.text[:400]
        _ref, ins = qualified_patient(dmp)
        raw = orjson.dumps(doc).replace(b"urn:oid:1.2.250.1.213.1.4.8", INS_TEST.encode())
        fixed = orjson.loads(raw.replace(b"123456789012345", ins.encode()))
        for bundle in (doc, fixed):
            r = _feed(c, copy.deepcopy(bundle))
            assert r.status_code == 422, r.text
            reasons = " ".join(i["diagnostics"] for i in r.json()["issue"])
            assert "mimeTypeSufficient is not in the CI-SIS value set JDV_J10" in reasons
            assert "according to ASS_X16-CorrespondanceType-Classe-DMP, not to 11" in reasons


def test_pdsm4dmp_replacement_needs_the_replaced_document(dmp: Server) -> None:
    """The replacement example PATCHes DocumentReference/doc-x-id: refused while it is absent."""
    with dmp.client() as c:
        r = _feed(c, _pdsm4dmp("Bundle-example-td2-1-remplacement"))
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["issue"][0]["diagnostics"]


def test_a_cda_document_agrees_with_its_metadata(dmp: Server, patient: tuple[str, str]) -> None:
    ref, ins = patient
    with dmp.client() as c:
        resource = c.get(f"/{ref}").json()
        xml, master = cda_document(resource, ins)
        ok = _feed(c, provide_bundle(ref, [xml], content_type="text/xml", master=master))
        assert ok.status_code == 200, ok.text
        # the same CDA filed under other metadata: the differing fields are named
        xml, master = cda_document(resource, ins)
        other = provide_bundle(
            ref,
            [xml],
            content_type="text/xml",
            master=master,
            type_code="11506-3",
            service_start="2026-02-01T09:00:00+01:00",
        )
        bad = _feed(c, other)
        assert bad.status_code == 422, bad.text
        assert "document type" in bad.text and "act" in bad.text, bad.text
        # a CDA about another patient than the one the metadata name
        other_ref, _ = qualified_patient(dmp)
        xml, master = cda_document(resource, ins)
        foreign = _feed(c, provide_bundle(other_ref, [xml], content_type="text/xml", master=master))
        assert foreign.status_code == 422 and "patient INS" in foreign.text, foreign.text
        broken = _feed(c, provide_bundle(ref, [b"<ClinicalDocument"], content_type="text/xml"))
        assert broken.status_code in (400, 422) and "not well-formed" in broken.text, broken.text


def test_find_document_references_names_the_patient_and_sorts_by_service_date(
    dmp: Server, patient: tuple[str, str]
) -> None:
    ref, ins = patient
    starts = ["2026-01-05T09:00:00+01:00", "2026-03-05T09:00:00+01:00", "2026-02-05T09:00:00+01:00"]
    with dmp.client() as c:
        for start in starts:
            r = _feed(c, provide_bundle(ref, [pdf(start)], service_start=start))
            assert r.status_code == 200, r.text
    professional = doctor_token(dmp, ref, "user/DocumentReference.rs")
    with dmp.client(professional) as c:
        refused = c.get("/DocumentReference", params={"status": "current"})
        assert refused.status_code == 400 and "names the patient" in refused.text
        found = c.get(
            "/DocumentReference",
            params={"patient.identifier": f"{INS_TEST}|{ins}", "status": "current"},
        )
        assert found.status_code == 200, found.text
        got = [e["resource"]["context"]["period"]["start"] for e in found.json()["entry"]]
        assert got == sorted(starts, reverse=True)
        oldest_first = c.get(
            "/DocumentReference", params={"patient": ref, "_sort": "period"}
        ).json()
        got = [e["resource"]["context"]["period"]["start"] for e in oldest_first["entry"]]
        assert got == sorted(starts)


def test_a_patient_token_sees_only_its_own_record(dmp: Server) -> None:
    """SMART patient/ scopes confine a token to its patient's compartment: its documents and
    their content, never another patient's (403), and it writes only into its record."""
    (mine, _), (theirs, _) = qualified_patient(dmp), qualified_patient(dmp)
    docs: dict[str, str] = {}
    with dmp.client() as c:
        for ref in (mine, theirs):
            r = _feed(c, provide_bundle(ref, [pdf(ref)]))
            assert r.status_code == 200, r.text
            docs[ref] = _doc_id(r)
        binaries = {
            ref: c.get(f"/DocumentReference/{doc}").json()["content"][0]["attachment"]["url"]
            for ref, doc in docs.items()
        }
    token = dmp.mint("patient/*.rs", "patient/Observation.c", patient=mine.split("/")[1])
    with dmp.client(token) as c:
        assert c.get(f"/{mine}").status_code == 200
        assert c.get(f"/{theirs}").status_code == 403
        assert c.get(f"/DocumentReference/{docs[mine]}").status_code == 200
        assert c.get(f"/DocumentReference/{docs[theirs]}").status_code == 403
        assert c.get(f"/{binaries[mine]}").content == pdf(mine)
        assert c.get(f"/{binaries[theirs]}").status_code == 403
        found = c.get("/DocumentReference", params={"status": "current", "patient": theirs})
        assert found.status_code == 200 and found.json().get("entry", []) == []
        everything = c.get("/DocumentReference", params={"patient": mine}).json()
        assert {e["resource"]["subject"]["reference"] for e in everything["entry"]} == {mine}
        assert c.get("/Binary").status_code == 403
        other_obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "poids"},
            "subject": {"reference": theirs},
        }
        assert c.post("/Observation", json=other_obs).status_code == 403
        own_obs = {**other_obs, "subject": {"reference": mine}}
        assert c.post("/Observation", json=own_obs).status_code == 201


def test_a_large_document_is_uploaded_raw_then_filed(dmp: Server, patient: tuple[str, str]) -> None:
    """A document too large for base64 in JSON is streamed first (POST Binary, raw), then a
    Provide Document Bundle files it by ``Binary/<id>``, its size and SHA-1 checked."""
    ref, _ = patient
    content = pdf("grand document") + bytes(range(256)) * 8000  # ~2 MB
    with dmp.client() as c:
        up = c.post("/Binary", content=content, headers={"content-type": "application/pdf"})
        assert up.status_code == 201, up.text
        binary = up.json()["id"]
        assert up.headers["x-content-size"] == str(len(content))
        bundle = provide_bundle(ref, [content])
        doc = bundle["entry"][1]["resource"]
        doc["content"][0]["attachment"]["url"] = f"Binary/{binary}"
        bundle["entry"].pop(2)  # the content is not in the bundle
        wrong = copy.deepcopy(bundle)
        wrong["entry"][1]["resource"]["content"][0]["attachment"]["size"] = 3
        refused = _feed(c, wrong)
        assert refused.status_code == 422 and "attachment.size says 3 bytes" in refused.text
        r = _feed(c, bundle)
        assert r.status_code == 200, r.text
        got = c.get(f"/Binary/{binary}")
        assert got.content == content
        again = _feed(c, bundle)  # the same content cannot be a second document's
        assert again.status_code == 422 and "already a document's content" in again.text


def test_an_upload_above_the_limit_is_refused_while_streaming(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("dmp-limit")
    from servers import backend_data, free_port

    srv = Server(
        backend_data(backend, tmp),
        tmp,
        free_port(),
        extra_args=["--no-demo", "--max-document", "1000000"],
    ).start()
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(2 * 1024):  # up to 2 GB, in 1 MB pieces
            sent += 1
            yield b"\0" * (1024 * 1024)

    try:
        with srv.client() as c:
            try:
                r = c.post("/Binary", content=body(), headers={"content-type": "application/pdf"})
                assert r.status_code == 413, r.text
                assert "larger than the limit" in r.text
            except httpx.TransportError:
                pass  # the server closed the connection once it had said no
            assert sent < 64, f"the client could send {sent} MB before the refusal"
            assert c.get("/Binary", params={"_summary": "count"}).json()["total"] == 0
        assert not [p for p in _blob_dir(srv).rglob("*") if p.is_file()]
    finally:
        srv.stop()


def test_find_document_lists(dmp: Server, patient: tuple[str, str]) -> None:
    """ITI-66: the patient's SubmissionSets (and Folders) by code."""
    ref, _ = patient
    with dmp.client() as c:
        r = _feed(c, provide_bundle(ref, [pdf("a"), pdf("b")]))
        assert r.status_code == 200, r.text
        lists = c.get(
            "/List",
            params={
                "code": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes|submissionset",
                "patient": ref,
            },
        )
        assert lists.status_code == 200, lists.text
        entries = lists.json()["entry"]
        assert len(entries) == 1
        items = [i["item"]["reference"] for i in entries[0]["resource"]["entry"]]
        assert len(items) == 2 and all(i.startswith("DocumentReference/") for i in items)


def test_the_dmp_scenario_through_fhirpy_and_raw_http(
    dmp: Server, patient: tuple[str, str]
) -> None:
    """Submission → search → retrieve → replace → mask → archive, with fhirpy (a client
    nobody here wrote) next to raw HTTP, the results in their PDSm shapes."""
    from fhirpy import SyncFHIRClient

    ref, ins = patient
    client = SyncFHIRClient(dmp.base_url, authorization=f"Bearer {dmp.token}")
    response = client.execute("", method="post", data=provide_bundle(ref, [pdf("v1")]))
    assert response["type"] == "transaction-response"
    first = response["entry"][1]["response"]["location"].split("/")[1]
    found = (
        client.resources("DocumentReference")
        .search(**{"patient.identifier": f"{INS_TEST}|{ins}", "status": "current"})
        .fetch_all()
    )
    assert first in {d.id for d in found}
    doc = client.reference("DocumentReference", first).to_resource()
    assert DOCUMENT_PROFILE in doc["meta"]["profile"]
    url = doc["content"][0]["attachment"]["url"]
    with dmp.client() as c:
        assert c.get(f"/{url}").content == pdf("v1")
    replaced = client.execute(
        "",
        method="post",
        data=provide_bundle(ref, [pdf("v2")], replaces=f"DocumentReference/{first}"),
    )
    second = replaced["entry"][1]["response"]["location"].split("/")[1]
    assert client.reference("DocumentReference", first).to_resource()["status"] == "superseded"
    with dmp.client() as c:
        patch = {"content-type": "application/json-patch+json"}
        masked = c.patch(
            f"/DocumentReference/{second}",
            json=[
                {"op": "replace", "path": "/securityLabel/0/coding/0/code", "value": "MASQUE_PS"}
            ],
            headers=patch,
        )
        assert masked.status_code == 200, masked.text
        archived = c.patch(
            f"/DocumentReference/{second}",
            json=[
                {
                    "op": "add",
                    "path": "/extension",
                    "value": [{"url": IS_ARCHIVED, "valueBoolean": True}],
                }
            ],
            headers=patch,
        )
        assert archived.status_code == 200, archived.text
    final = client.reference("DocumentReference", second).to_resource()
    assert final["securityLabel"][0]["coding"][0]["code"] == "MASQUE_PS"
    assert final["extension"] == [{"url": IS_ARCHIVED, "valueBoolean": True}]
    assert final["meta"]["versionId"] == "3"
    current = (
        client.resources("DocumentReference").search(patient=ref, status="current").fetch_all()
    )
    assert {d.id for d in current} == {second}


MHD_PROVIDE = sorted((COMPILED / "IHE-ITI.MHD").glob("Bundle-ex-*ProvideDocumentBundle*.json"))


@pytest.mark.parametrize(
    "path", [p for p in MHD_PROVIDE if "response" not in p.name], ids=lambda p: p.stem
)
def test_ihe_mhd_examples_are_refused_by_the_dmp_with_the_true_reason(
    dmp: Server, patient: tuple[str, str], path: Path
) -> None:
    """IHE's international examples code their documents with LOINC types and SNOMED facility
    types outside the DMP's value sets, some declare a size their content does not have (24
    bytes for 23) or name no patient: the DMP refuses them, each with its reason, and stores
    nothing."""
    bundle = orjson.loads(path.read_bytes())
    raw = orjson.dumps(bundle).replace(b"Patient/ex-patient", patient[0].encode())
    with dmp.client() as c:
        before = _count(c, "DocumentReference")
        r = _feed(c, orjson.loads(raw))
        assert 400 <= r.status_code < 500, r.text
        reason = r.json()["issue"][0]["diagnostics"]
        assert any(
            words in reason
            for words in (
                "DMP value set",
                "CI-SIS value set",
                "ASS_X16",
                "Binary",
                "not valid",
                "not known",
                "attachment.size says",
                "attachment.hash",
                "names no patient",
            )
        ), reason
        assert _count(c, "DocumentReference") == before


def test_the_pdsm_simplified_publish_example_is_refused_for_its_wrong_size(
    dmp: Server, patient: tuple[str, str]
) -> None:
    """PDSm's ITI-105 example says its document has 250,000 bytes and the SHA-1 of nothing,
    but carries "Hello World": refused with that reason."""
    doc = orjson.loads(
        (
            COMPILED
            / "IG-fhir-partage-de-documents-de-sante"
            / "DocumentReference-PDSmSimplifiedExample.json"
        ).read_bytes()
    )
    doc["subject"] = {"reference": patient[0]}
    with dmp.client() as c:
        r = c.post("/DocumentReference", json={k: v for k, v in doc.items() if k != "id"})
    assert r.status_code in (400, 422), r.text
    assert "attachment.size says 250,000 bytes but the document has 11" in r.text or (
        "DMP value set" in r.text or "not valid" in r.text
    ), r.text
