"""A read is answered only once its accesses are in the trail: the answer is rendered while
the trail writes, and withheld when the trail cannot be written
(https://profiles.ihe.net/ITI/BALP/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from maison.api.app import prepare
from maison.api.http import build_app
from maison.api.services import Services
from maison.api.settings import Settings

BASE = "http://testserver"
PATIENT = {
    "resourceType": "Patient",
    "name": [{"family": "Martin", "given": ["Alice"]}],
    "gender": "female",
    "birthDate": "1980-02-03",
}


class Client:
    """The app called in process (no server, so the test can break the trail)."""

    def __init__(self, services: Services) -> None:
        self.transport = httpx.ASGITransport(app=build_app(services))

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url=BASE) as c:
                return await c.request(method, path, **kw)

        return anyio.run(go)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self._call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self._call("POST", path, **kw)


@pytest.fixture
def served(tmp_path: Path) -> Any:
    services = prepare(Settings(data=str(tmp_path / "data"), demo=False, public_url=BASE))
    assert services.issuer is not None and services.audit is not None
    try:
        yield services, Client(services)
    finally:
        services.store.close()


def _token(services: Services, scopes: list[str], **claims: Any) -> str:
    assert services.issuer is not None
    return services.issuer.mint("tester", scopes, BASE, 600, claims)


def _entries(services: Services) -> int:
    from maison.store.audit_log import head_of

    head = head_of(services.store.engine)
    return head.seq if head else 0


def test_a_read_is_answered_once_traced_and_withheld_when_the_trace_fails(
    served: tuple[Services, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    services, client = served
    admin = {"Authorization": f"Bearer {_token(services, ['system/*.*'])}"}
    created = client.post("/Patient", content=orjson.dumps(PATIENT), headers=admin)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    mine = {
        "Authorization": "Bearer "
        + _token(services, ["patient/*.rs"], patient=pid, fhirUser=f"Patient/{pid}")
    }

    before = _entries(services)
    ok = client.get(f"/Patient/{pid}", headers=mine)
    assert ok.status_code == 200 and ok.json()["id"] == pid
    assert _entries(services) == before + 1  # durable before the answer came back

    assert services.audit is not None

    def broken(*args: Any) -> list[int]:
        raise OSError("disk full")

    monkeypatch.setattr(services.audit, "append", broken)
    refused = client.get(f"/Patient/{pid}", headers=mine)
    assert refused.status_code >= 500
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert "Martin" not in refused.text  # nothing of the record left untraced
    assert _entries(services) == before + 1
