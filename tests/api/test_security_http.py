"""Security by default over HTTP: tokens required, scopes enforced, discovery public."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


def test_public_endpoints_need_no_token(server: Any) -> None:
    for path in (
        "/metadata",
        "/healthz",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/.well-known/smart-configuration",
    ):
        assert httpx.get(server.base_url + path).status_code == 200, path
    jwks = httpx.get(server.base_url + "/.well-known/jwks.json").json()
    assert jwks["keys"] and all("d" not in k for k in jwks["keys"])  # public keys only


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer abc",
        "Basic dXNlcjpwYXNz",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ],
)
def test_everything_else_needs_a_valid_token(server: Any, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    for method, path in (
        ("GET", "/Patient"),
        ("GET", "/Patient/1"),
        ("POST", "/"),
        ("GET", "/_history"),
        ("DELETE", "/Patient/1"),
    ):
        r = httpx.request(method, server.base_url + path, headers=headers)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["resourceType"] == "OperationOutcome"


def test_token_from_another_issuer_key_is_refused(server: Any, tmp_path: Any) -> None:
    from maison.security.issuer import LocalIssuer

    rogue = LocalIssuer.load_or_create(tmp_path, server.base_url + "/auth")
    token = rogue.mint("mallory", ["system/*.*"], server.base_url)
    r = httpx.get(server.base_url + "/Patient", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_scopes_are_enforced(server: Any) -> None:
    read_only = server.mint("system/Patient.read")
    with server.client(read_only) as c:
        assert c.get("/Patient").status_code == 200
        r = c.post("/Patient", json={"resourceType": "Patient"})
        assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
        assert c.get("/Observation").status_code == 403
    writer = server.mint("system/Observation.write")
    with server.client(writer) as c:
        obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
        assert c.post("/Observation", json=obs).status_code == 201
        # a transaction entry outside the scopes fails the whole transaction
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": obs, "request": {"method": "POST", "url": "Observation"}},
                {
                    "resource": {"resourceType": "Patient"},
                    "request": {"method": "POST", "url": "Patient"},
                },
            ],
        }
        assert c.post("/", json=bundle).status_code == 403


def test_include_never_widens_access(server: Any) -> None:
    with server.client() as admin:
        pid = admin.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
        obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{pid}"},
        }
        oid = admin.post("/Observation", json=obs).json()["id"]
    params = {"_id": oid, "_include": "Observation:subject"}
    with server.client(server.mint("system/Observation.rs", "system/Patient.r")) as both:
        modes = [
            e["search"]["mode"] for e in both.get("/Observation", params=params).json()["entry"]
        ]
        assert modes == ["match", "include"]
    with server.client(server.mint("system/Observation.rs")) as narrow:
        entries = narrow.get("/Observation", params=params).json()["entry"]
        assert [e["resource"]["resourceType"] for e in entries] == ["Observation"]


def test_system_search_sees_only_readable_types(server: Any) -> None:
    """A system-level search without _type is narrowed to the types the token may search;
    naming a type it may not is refused, never silently narrowed."""
    with server.client() as admin:
        pid = admin.post("/Patient", json={"resourceType": "Patient"}).json()["id"]
        obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
        oid = admin.post("/Observation", json=obs).json()["id"]
    ids = f"{pid},{oid}"
    with server.client(server.mint("system/Patient.rs")) as narrow:
        r = narrow.get("/", params={"_id": ids})
        assert r.status_code == 200, r.text
        assert [e["resource"]["id"] for e in r.json()["entry"]] == [pid]
        r = narrow.get("/", params={"_id": ids, "_type": "Patient,Observation"})
        assert r.status_code == 403
    with server.client(server.mint("system/Patient.rs", "system/Observation.rs")) as both:
        r = both.get("/", params={"_id": ids})
        assert sorted(e["resource"]["id"] for e in r.json()["entry"]) == sorted([pid, oid])
    with server.client(server.mint("system/Device.rs")) as other:
        assert other.get("/", params={"_type": "Patient"}).status_code == 403


def test_write_only_client_updates_a_patient(server: Any) -> None:
    """The INS rules compare a Patient with the version it replaces; that needs the right to
    update, not to read."""
    with server.client(server.mint("system/Patient.cu")) as writer:
        created = writer.post("/Patient", json={"resourceType": "Patient", "gender": "female"})
        assert created.status_code == 201, created.text
        body = {**created.json(), "gender": "male"}
        r = writer.put(f"/Patient/{body['id']}", json=body)
        assert r.status_code == 200, r.text
        assert writer.get(f"/Patient/{body['id']}").status_code == 403
