"""The professional space against a running server: Pro Santé Connect sign-in (the local
provider, reached over HTTP by the authorization server), the INS search, the DMP access check,
the bris de glace, the documents the rules let through (https://esante.gouv.fr/produits-services/pro-sante-connect)."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest
from flows import pro_sign_in, submit
from lxml import html as lxml_html

from servers import Server, free_port

DOCTOR = "10014606213"  # a médecin of the demo Annuaire (README)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("portal-pro")
    srv = Server(str(tmp / "data"), tmp, free_port(), extra_args=["--workers", "1"])
    try:
        yield srv.start(timeout=180)
    finally:
        srv.stop()


def _patient_with_documents(server: Server) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {server.mint('system/*.*')}"}
    docs = httpx.get(
        f"{server.base_url}/DocumentReference",
        params={"status": "current", "_count": "1"},
        headers=headers,
    ).json()
    pid = docs["entry"][0]["resource"]["subject"]["reference"].split("/")[1]
    patient = httpx.get(f"{server.base_url}/Patient/{pid}", headers=headers).json()
    ins = next(
        i["value"]
        for i in patient["identifier"]
        if i["system"].startswith("urn:oid:1.2.250.1.213.1.4.")
    )
    return pid, ins


def _documents(page: str) -> list[str]:
    tree = lxml_html.fromstring(page)
    return [a.get("href") for a in tree.xpath("//a[contains(@href, '/dossier/documents/')]")]


def test_a_doctor_finds_a_patient_by_ins_and_breaks_the_glass(server: Server) -> None:
    pid, ins = _patient_with_documents(server)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
            home = await pro_sign_in(c, DOCTOR)
            assert str(home.url).endswith("/portal/pro/"), home.text[:2000]
            bad = await submit(c, home, "/pro/recherche", {"ins": "123"})
            assert bad.status_code == 400 and "15 caractères" in bad.text
            record = await submit(c, home, "/pro/recherche", {"ins": ins})
            assert record.status_code == 200, record.text[:3000]
            assert "Accès au DMP" in record.text
            assert "non autorisé" in record.text  # no relationship yet
            assert not _documents(record.text)
            short = await submit(c, record, "/bris-de-glace", {"motif": "court"})
            assert short.status_code == 400
            opened = await submit(
                c,
                record,
                "/bris-de-glace",
                {"motif": "Patient inconscient aux urgences", "confirmation": "oui"},
            )
            assert opened.status_code == 200, opened.text[-3000:]
            assert "Accès en urgence ouvert" in opened.text
            links = _documents(opened.text)
            assert links
            page = await c.get(links[0])
            assert page.status_code == 200, page.text[:2000]
            log = await c.get("/portal/pro/journal")
            assert log.status_code == 200, log.text[-2000:]
            assert "Bris de glace" in log.text

    anyio.run(scenario)
    mine = server.mint("patient/*.rs", patient=pid)
    trail = httpx.get(
        f"{server.base_url}/AuditEvent",
        params={"_count": "100"},
        headers={"Authorization": f"Bearer {mine}"},
    ).json()
    emergency = [
        e
        for e in trail.get("entry", [])
        if any(
            c.get("code") == "BTG"
            for p in e["resource"].get("purposeOfEvent") or []
            for c in p.get("coding") or []
        )
    ]
    assert emergency


def test_a_professional_without_sign_in_is_sent_to_it(server: Server) -> None:
    response = httpx.get(f"{server.base_url}/portal/pro/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/portal/connexion/professionnel"


def test_a_doctor_finds_a_patient_by_his_traits_through_insi(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.mint('system/*.*')}"}
    pid, ins = _patient_with_documents(server)
    patient = httpx.get(f"{server.base_url}/Patient/{pid}", headers=headers).json()
    official = next(n for n in patient["name"] if n.get("use") == "official")
    traits = {
        "nom": official["family"],
        "prenom": official["given"][0],
        "sexe": {"male": "M", "female": "F"}[patient["gender"]],
        "naissance": patient["birthDate"],
    }

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
            home = await pro_sign_in(c, DOCTOR)
            bad = await submit(c, home, "/pro/recherche-traits", {**traits, "sexe": "X"})
            assert bad.status_code == 400 and "Indiquez le sexe" in bad.text
            none = await submit(
                c, home, "/pro/recherche-traits", {**traits, "naissance": "1901-01-01"}
            )
            assert none.status_code == 404, none.text[-2000:]
            assert "aucune identité" in none.text
            found = await submit(c, home, "/pro/recherche-traits", traits)
            assert found.status_code == 200, found.text[-3000:]
            assert str(found.url).endswith("/portal/pro/dossier")
            assert ins in found.text
            assert "Identité qualifiée" in found.text

    anyio.run(scenario)


def test_an_upload_that_is_not_a_pdf_is_refused(server: Server) -> None:
    pid, ins = _patient_with_documents(server)
    headers = {"Authorization": f"Bearer {server.mint('system/*.*')}"}
    doctor = httpx.get(
        f"{server.base_url}/Practitioner", params={"identifier": DOCTOR}, headers=headers
    ).json()["entry"][0]["resource"]["id"]
    designated = httpx.post(
        f"{server.base_url}/Patient/{pid}/$dmp-medecin-traitant",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "practitioner", "valueReference": {"reference": f"Practitioner/{doctor}"}}
            ],
        },
        headers=headers,
    )
    assert designated.status_code == 200, designated.text

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:
            home = await pro_sign_in(c, DOCTOR)
            await submit(c, home, "/pro/recherche", {"ins": ins})
            form = await c.get("/portal/pro/dossier/ajouter")
            assert form.status_code == 200
            csrf = lxml_html.fromstring(form.text).xpath("//input[@name='csrf']/@value")[0]
            fields = {"csrf": csrf, "titre": "Pas un PDF", "date": "2026-01-02", "type": "x|y"}
            sent = await c.post(
                "/portal/pro/dossier/ajouter",
                data=fields,
                files={"fichier": ("note.pdf", b"<html>not a pdf</html>", "application/pdf")},
            )
            assert sent.status_code == 415, sent.text[-2000:]
            assert "est pas un PDF" in sent.text
            forged = await c.post(
                "/portal/pro/dossier/ajouter",
                data={**fields, "csrf": "forged"},
                files={"fichier": ("a.pdf", b"%PDF-1.4 x", "application/pdf")},
            )
            assert forged.status_code == 403

    anyio.run(scenario)
