"""The administration space: only the professionals the server names administrators get the
``maison:admin`` scope and its pages; the others get a French refusal
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest
from flows import pro_sign_in, submit

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
            assert "jamais vérifiée" in page.text  # the audit chain's last verification
            imports = await c.get("/portal/admin/imports")
            assert imports.status_code == 200, imports.text[-2000:]
            assert "Annuaire Santé" in imports.text and "FINESS" in imports.text
            vigilance = await c.get("/portal/admin/identites", params={"seuil": "0.5"})
            assert vigilance.status_code == 200, vigilance.text[-2000:]
            assert "de dossiers à examiner" in vigilance.text
            bad = await c.get("/portal/admin/identites", params={"seuil": "deux"})
            assert bad.status_code == 400

    anyio.run(scenario)


def test_an_administrator_merges_a_planted_duplicate_after_a_preview(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.mint('system/*.*')}"}
    twins = []
    for family, given in (("Dupont-Lefèvre", "Hélène"), ("DUPONT LEFEVRE", "HELENE")):
        created = httpx.post(
            f"{server.base_url}/Patient",
            json={
                "resourceType": "Patient",
                "name": [{"use": "official", "family": family, "given": [given]}],
                "gender": "female",
                "birthDate": "1961-04-12",
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        twins.append(created.json()["id"])

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
            await pro_sign_in(c, ADMIN)
            listing = await c.get("/portal/admin/identites")
            assert listing.status_code == 200
            assert all(f"Patient/{t}" in listing.text for t in twins), listing.text[-3000:]
            preview = await submit(
                c,
                listing,
                "/admin/identites/fusion",
                {"source": f"Patient/{twins[1]}", "cible": f"Patient/{twins[0]}"},
            )
            assert preview.status_code == 200, preview.text[-3000:]
            assert "Confirmer la fusion" in preview.text
            done = await submit(c, preview, "/admin/identites/fusion")
            assert done.status_code == 200, done.text[-3000:]
            assert "est fusionné dans" in done.text
            assert "Annuler cette fusion" in done.text
            undone = await submit(c, done, "/admin/identites/defusion", button=None)
            assert undone.status_code == 200, undone.text[-3000:]
            assert "est annulée" in undone.text

    anyio.run(scenario)
    merged = httpx.get(f"{server.base_url}/Patient/{twins[1]}", headers=headers).json()
    assert merged.get("active", True) is True  # unmerged: active again


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
