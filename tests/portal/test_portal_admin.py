"""The administration space: only the professionals the server names administrators get the
``maison:admin`` scope and its pages; the others get a French refusal
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest
from flows import pro_sign_in

from servers import Server, free_port

ADMIN = "10014606213"  # a médecin of the demo Annuaire, named administrator
NURSE = "10002260510"  # an infirmier of the demo Annuaire, not an administrator


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("portal-admin")
    srv = Server(
        str(tmp / "data"), tmp, free_port(), extra_args=["--workers", "1", "--admin", f"8{ADMIN}"]
    )
    try:
        yield srv.start(timeout=180)
    finally:
        srv.stop()


def test_an_administrator_reaches_the_administration_pages(server: Server) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
            home = await pro_sign_in(c, ADMIN)
            assert "Administration" in home.text
            page = await c.get("/portal/admin/")
            assert page.status_code == 200, page.text[-2000:]
            assert "État de la plateforme" in page.text
            assert "Le service répond" in page.text

    anyio.run(scenario)


def test_another_professional_gets_no_administration(server: Server) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
            home = await pro_sign_in(c, NURSE)
            assert str(home.url).endswith("/portal/pro/"), home.text[-2000:]
            assert ">Administration<" not in home.text
            page = await c.get("/portal/admin/")
            assert page.status_code == 403
            assert "réservé aux administrateurs" in page.text

    anyio.run(scenario)
