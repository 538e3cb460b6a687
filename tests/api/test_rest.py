"""Black-box tests of the RESTful interactions over raw HTTP (https://hl7.org/fhir/R4/http.html)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

FHIR = "application/fhir+json"


def patient(family: str = "Durand", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": ["Hélène"]}],
        "gender": "female",
        "birthDate": "1974-12-25",
        **extra,
    }


def ident() -> str:
    return uuid.uuid4().hex


def test_metadata_is_public_and_generated(server: Any) -> None:
    r = httpx.get(f"{server.base_url}/metadata")
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    types = {res["type"] for res in cs["rest"][0]["resource"]}
    assert {"Patient", "DocumentReference", "Observation"} <= types
    assert len(types) > 140
    codes = {i["code"] for i in cs["rest"][0]["interaction"]}
    assert {"transaction", "batch"} <= codes


def test_create_read_vread_update_delete(http: httpx.Client) -> None:
    r = http.post("/Patient", json=patient(), headers={"Content-Type": FHIR})
    assert r.status_code == 201, r.text
    body = r.json()
    pid = body["id"]
    assert body["meta"]["versionId"] == "1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].endswith(f"/Patient/{pid}/_history/1")
    assert "last-modified" in r.headers
    assert r.headers["content-type"].startswith(FHIR)

    r = http.get(f"/Patient/{pid}")
    assert r.status_code == 200 and r.json()["name"][0]["given"] == ["Hélène"]

    upd = {**r.json(), "gender": "other"}
    r = http.put(f"/Patient/{pid}", json=upd)
    assert r.status_code == 200 and r.json()["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'

    assert http.get(f"/Patient/{pid}/_history/1").json()["gender"] == "female"
    assert http.get(f"/Patient/{pid}/_history/2").json()["gender"] == "other"
    assert http.get(f"/Patient/{pid}/_history/9").status_code == 404

    r = http.delete(f"/Patient/{pid}")
    assert r.status_code == 200
    r = http.get(f"/Patient/{pid}")
    assert r.status_code == 410
    assert r.json()["resourceType"] == "OperationOutcome"
    # history kept after deletion
    hist = http.get(f"/Patient/{pid}/_history").json()
    assert hist["type"] == "history" and hist["total"] == 3
    assert [e["request"]["method"] for e in hist["entry"]] == ["DELETE", "PUT", "POST"]
    assert http.get(f"/Patient/{pid}/_history/2").status_code == 200
    # delete again: idempotent
    assert http.delete(f"/Patient/{pid}").status_code == 200


def test_create_ignores_client_id(http: httpx.Client) -> None:
    r = http.post("/Patient", json=patient(id="chosen-by-client"))
    assert r.status_code == 201 and r.json()["id"] != "chosen-by-client"


def test_update_as_create_and_if_match(http: httpx.Client) -> None:
    pid = f"p-{ident()}"
    r = http.put(f"/Patient/{pid}", json=patient(id=pid))
    assert r.status_code == 201 and r.json()["id"] == pid
    r = http.put(f"/Patient/{pid}", json=patient(id=pid), headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200 and r.json()["meta"]["versionId"] == "2"
    r = http.put(f"/Patient/{pid}", json=patient(id=pid), headers={"If-Match": 'W/"1"'})
    assert r.status_code == 412
    assert "version" in r.json()["issue"][0]["diagnostics"]
    r = http.put(f"/Patient/{pid}", json=patient(id=pid), headers={"If-Match": "garbage"})
    assert r.status_code == 400


def test_conditional_create(http: httpx.Client) -> None:
    value = ident()
    body = patient(
        identifier=[{"system": "https://maison.example.org/fhir/sid/ipp", "value": value}]
    )
    cond = {"If-None-Exist": f"identifier=https://maison.example.org/fhir/sid/ipp|{value}"}
    first = http.post("/Patient", json=body, headers=cond)
    assert first.status_code == 201
    again = http.post("/Patient", json=body, headers=cond)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    # two matches -> 412
    http.post("/Patient", json=body)
    r = http.post("/Patient", json=body, headers=cond)
    assert r.status_code == 412


def test_conditional_update_and_delete(http: httpx.Client) -> None:
    value = ident()
    sysval = f"https://maison.example.org/fhir/sid/ipp|{value}"
    body = patient(
        identifier=[{"system": "https://maison.example.org/fhir/sid/ipp", "value": value}]
    )
    r = http.put(f"/Patient?identifier={sysval}", json=body)
    assert r.status_code == 201
    pid = r.json()["id"]
    r = http.put(f"/Patient?identifier={sysval}", json={**body, "gender": "male"})
    assert r.status_code == 200 and r.json()["id"] == pid and r.json()["gender"] == "male"
    r = http.delete(f"/Patient?identifier={sysval}")
    assert r.status_code == 200
    assert http.get(f"/Patient/{pid}").status_code == 410


def test_prefer_return(http: httpx.Client) -> None:
    r = http.post("/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert r.status_code == 201 and r.content == b"" and "location" in r.headers
    r = http.post("/Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"})
    assert r.status_code == 201 and r.json()["resourceType"] == "OperationOutcome"


def test_type_and_system_history_paging(http: httpx.Client) -> None:
    for _ in range(3):
        http.post("/Basic", json={"resourceType": "Basic", "code": {"text": "x"}})
    page = http.get("/Basic/_history", params={"_count": 2}).json()
    assert len(page["entry"]) == 2 and page["total"] >= 3
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    page2 = httpx.get(nxt, headers=http.headers).json()
    seen = {e["fullUrl"] for e in page["entry"]}
    assert page2["entry"] and not seen & {e["fullUrl"] for e in page2["entry"]}
    system = http.get("/_history", params={"_count": 5}).json()
    assert system["type"] == "history" and system["total"] >= 3
    assert len(system["entry"]) == min(5, system["total"])


def test_patch_json_and_fhirpath(http: httpx.Client) -> None:
    pid = http.post("/Patient", json=patient()).json()["id"]
    r = http.patch(
        f"/Patient/{pid}",
        content=b'[{"op":"replace","path":"/gender","value":"male"}]',
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["gender"] == "male" and r.json()["meta"]["versionId"] == "2"
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Patient.birthDate"},
                    {"name": "value", "valueDate": "1980-01-01"},
                ],
            }
        ],
    }
    r = http.patch(f"/Patient/{pid}", json=params, headers={"Content-Type": FHIR})
    assert r.status_code == 200, r.text
    assert r.json()["birthDate"] == "1980-01-01"
    # a patch that makes the resource invalid is refused and writes nothing
    r = http.patch(
        f"/Patient/{pid}",
        content=b'[{"op":"replace","path":"/gender","value":"banana"}]',
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code in (400, 422)
    assert http.get(f"/Patient/{pid}").json()["meta"]["versionId"] == "3"


def test_validate_operation(http: httpx.Client) -> None:
    r = http.post("/Patient/$validate", json=patient())
    assert r.status_code == 200
    assert not [i for i in r.json()["issue"] if i["severity"] == "error"]
    r = http.post("/Patient/$validate", json={**patient(), "gender": "banana"})
    assert r.status_code == 200
    assert [i for i in r.json()["issue"] if i["severity"] == "error"]


@pytest.mark.parametrize(
    ("method", "path", "content", "headers", "status"),
    [
        ("POST", "/Patient", b"{not json", {}, 400),
        ("POST", "/Patient", b"", {}, 400),
        ("POST", "/Patient", b"[1,2]", {}, 400),
        ("POST", "/Patient", b'{"resourceType":"Observation","status":"final"}', {}, 400),
        ("POST", "/Nonsense", b'{"resourceType":"Nonsense"}', {}, 404),
        ("GET", "/Nonsense/1", b"", {}, 404),
        ("POST", "/Patient", b'{"resourceType":"Patient","foo":1}', {}, 422),
        ("POST", "/Patient", b'{"resourceType":"Patient","gender":"x"}', {}, 422),
        (
            "POST",
            "/Patient",
            b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}',
            {},
            422,
        ),
        ("GET", "/Patient?family=a%00b", b"", {}, 400),
        ("GET", "/Patient/a%00b", b"", {}, 400),
        ("GET", "/Patient?family=" + "x" * 10_000, b"", {}, 414),
        ("PUT", "/Patient/abc", b'{"resourceType":"Patient","id":"xyz"}', {}, 400),
        ("PUT", "/Patient/abc", b'{"resourceType":"Patient"}', {}, 400),
        ("PUT", "/Patient/bad$id", b'{"resourceType":"Patient","id":"bad$id"}', {}, 400),
        ("POST", "/Patient", b"{}", {"Content-Type": "text/plain"}, 415),
        ("POST", "/Patient", b"<Patient/>", {"Content-Type": "application/fhir+xml"}, 415),
        ("GET", "/Patient/x", b"", {"Accept": "application/fhir+xml"}, 406),
        ("GET", "/Patient?unknownparam=1", b"", {}, 400),
        ("GET", "/Patient/does-not-exist", b"", {}, 404),
        ("DELETE", "/", b"", {}, 405),
        ("POST", "/", b'{"resourceType":"Patient"}', {}, 400),
        ("POST", "/", b'{"resourceType":"Bundle","type":"collection"}', {}, 400),
    ],
)
def test_bad_input_gets_operation_outcome(
    http: httpx.Client,
    method: str,
    path: str,
    content: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    h = {"Content-Type": FHIR, **headers}
    r = http.request(method, path, content=content, headers=h)
    assert r.status_code == status, r.text
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    assert oo["issue"][0]["diagnostics"]


def test_oversized_body_is_413(http: httpx.Client) -> None:
    big = b'{"resourceType":"Patient","text":"' + b"x" * (17 * 1024 * 1024) + b'"}'
    r = http.post("/Patient", content=big, headers={"Content-Type": FHIR})
    assert r.status_code == 413
    assert r.json()["resourceType"] == "OperationOutcome"


def test_search_by_id_and_token(http: httpx.Client) -> None:
    value = ident()
    body = patient(identifier=[{"system": "urn:test", "value": value}])
    pid = http.post("/Patient", json=body).json()["id"]
    bundle = http.get("/Patient", params={"_id": pid}).json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["id"] == pid
    assert http.get("/Patient", params={"identifier": f"urn:test|{value}"}).json()["total"] == 1
    assert http.get("/Patient", params={"identifier": value}).json()["total"] == 1
    assert http.get("/Patient", params={"identifier": f"urn:other|{value}"}).json()["total"] == 0


def test_compartment_search(http: httpx.Client) -> None:
    pid = http.post("/Patient", json=patient()).json()["id"]
    other = http.post("/Patient", json=patient()).json()["id"]
    mine = {"resourceType": "Observation", "status": "final", "code": {"text": "poids"}}
    a = http.post("/Observation", json={**mine, "subject": {"reference": f"Patient/{pid}"}})
    b = http.post("/Observation", json={**mine, "performer": [{"reference": f"Patient/{pid}"}]})
    http.post("/Observation", json={**mine, "subject": {"reference": f"Patient/{other}"}})
    found = http.get(f"/Patient/{pid}/Observation").json()
    assert {e["resource"]["id"] for e in found["entry"]} == {a.json()["id"], b.json()["id"]}
    assert found["link"][0]["url"].split("?")[0].endswith(f"/Patient/{pid}/Observation")
    assert http.get(f"/Patient/{pid}/Observation", params={"status": "final"}).json()["total"] == 2
    assert http.get(f"/Patient/{pid}/Organization").status_code == 400  # not in the compartment
    assert http.get(f"/Nope/{pid}/Observation").status_code == 404


def test_summary_and_elements(http: httpx.Client) -> None:
    body = patient(
        text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
        photo=[{"contentType": "image/png", "data": "AAAA"}],
    )
    pid = http.post("/Patient", json=body).json()["id"]

    def one(**params: str) -> dict[str, Any]:
        return dict(
            http.get("/Patient", params={"_id": pid, **params}).json()["entry"][0]["resource"]
        )

    full = one()
    assert "photo" in full and "text" in full
    summary = one(_summary="true")
    assert "photo" not in summary and "text" not in summary  # photo is not a summary element
    assert summary["name"] == full["name"] and summary["birthDate"] == full["birthDate"]
    assert {"code": "SUBSETTED"}.items() <= summary["meta"]["tag"][-1].items()
    assert "text" not in one(_summary="data") and "photo" in one(_summary="data")
    assert set(one(_summary="text")) == {"resourceType", "id", "meta", "text"}
    assert set(one(_elements="gender,photo")) == {"resourceType", "id", "meta", "gender", "photo"}
    assert http.get("/Patient", params={"_elements": "nonsense"}).status_code == 400
    assert http.get("/Patient", params={"_summary": "maybe"}).status_code == 400
    counted = http.get("/Patient", params={"_id": pid, "_summary": "count"}).json()
    assert counted["total"] == 1 and counted["entry"] == []


@pytest.mark.parametrize("sort", ["", "-created", "created,-_id"])
def test_paging_is_stable_while_writes_happen(http: httpx.Client, sort: str) -> None:
    """Keyset cursors, sorted or not: resources written between pages neither hide nor
    repeat the others (https://hl7.org/fhir/R4/http.html#paging)."""
    tag = uuid.uuid4().hex

    def basic(i: int) -> dict[str, Any]:
        return {
            "resourceType": "Basic",
            "code": {"text": str(i)},
            "created": f"2020-01-{1 + i % 5:02d}",  # ties: the id breaks them
            "meta": {"tag": [{"system": "urn:paging", "code": tag}]},
        }

    start = [http.post("/Basic", json=basic(i)).json() for i in range(10)]
    seen: list[str] = []
    url: str | None = f"/Basic?_tag=urn:paging|{tag}&_count=3" + (f"&_sort={sort}" if sort else "")
    while url:
        page = http.get(url).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
        for res in start[:4]:  # updates and creates between pages
            http.put(f"/Basic/{res['id']}", json={**res, "code": {"text": "changed"}})
        http.post("/Basic", json=basic(99))
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    originals = {r["id"] for r in start}
    assert len(seen) == len(set(seen))  # nothing twice
    assert originals <= set(seen)  # nothing that existed all along was missed
    if sort:
        created = {r["id"]: r["created"] for r in start}
        dates = [created[i] for i in seen if i in created]
        assert dates == sorted(dates, reverse=sort.startswith("-"))
    assert http.get("/Basic", params={"_cursor": "garbage"}).status_code == 400
