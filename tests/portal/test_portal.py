"""The portal end to end in process: a patient and a professional sign in through the platform's
own authorization server, read through the API, and the rules and the trail apply as for any
client (https://hl7.org/fhir/smart-app-launch/app-launch.html)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx
import pyotp
import pytest
from flows import patient_sign_in, submit

from maison.api.app import prepare
from maison.api.services import Services
from maison.api.settings import Settings
from maison.portal.site import create_site
from maison.services.ins.accounts import patient_accounts
from servers import backend_data

BASE = "http://127.0.0.1:8999"
PASSWORD = "Correct-Horse-Battery-9"


class World:
    """A demo store, the site over it, and the patient who has documents."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.site = create_site(services.settings, services)
        self.accounts = patient_accounts(services.store)
        token = self.token(["system/*.*"])
        bundle = self.run(
            lambda c: c.get(
                "/DocumentReference",
                params={"status": "current", "_count": "1"},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
        self.patient = bundle["entry"][0]["resource"]["subject"]["reference"].split("/")[1]
        self.enrolment = self.accounts.create(self.patient, PASSWORD)
        self.ins = self.enrolment.account.ins
        self.last_step = 0
        self.patient_cookie = ""

    def token(self, scopes: list[str], **claims: Any) -> str:
        assert self.services.issuer is not None
        return self.services.issuer.mint("tester", scopes, BASE, 600, claims)

    def code(self) -> str:
        """A one-time code never used yet (each is accepted once; the window is ±1 step)."""
        step = max(int(time.time() // 30), self.last_step + 1)
        while step > int(time.time() // 30) + 1:
            time.sleep(0.5)
        self.last_step = step
        return str(pyotp.TOTP(self.enrolment.totp_secret).at(step * 30))

    def run(self, fn: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]) -> Any:
        async def go() -> Any:
            async with self.browser() as client:
                return await fn(client)

        return anyio.run(go)

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.site), base_url=BASE)


@pytest.fixture(scope="module")
def world(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("portal")
    data = backend_data(backend, tmp)
    services = prepare(Settings(data=data, state=str(tmp), public_url=BASE, demo=True))
    try:
        yield World(services)
    finally:
        services.store.close()


def test_the_front_page_is_public_and_french(world: World) -> None:
    page = world.run(lambda c: c.get("/portal/"))
    assert page.status_code == 200
    assert '<html lang="fr"' in page.text
    assert "Espace patient" in page.text and "Espace professionnel" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert world.run(lambda c: c.get("/portal")).status_code == 308


def test_a_patient_signs_in_and_sees_his_documents(world: World) -> None:
    async def scenario(c: httpx.AsyncClient) -> httpx.Response:
        home = await patient_sign_in(c, world.ins, PASSWORD, world.code())
        assert home.status_code == 200, home.text[:2000]
        assert str(home.url).endswith("/portal/patient/")
        world.patient_cookie = c.cookies["maison_portail"]
        return home

    home = world.run(scenario)
    assert "Mes documents" in home.text
    assert "/portal/patient/documents/" in home.text


def test_pages_of_a_space_need_its_sign_in(world: World) -> None:
    response = world.run(lambda c: c.get("/portal/patient/"))
    assert response.status_code == 303
    assert response.headers["location"] == "/portal/connexion/patient"
    response = world.run(lambda c: c.get("/portal/pro/dossier"))
    assert response.status_code == 303


async def _signed_in_patient(world: World, c: httpx.AsyncClient) -> httpx.Response:
    """The patient's session: signed in once for the module, its cookie reused."""
    if world.patient_cookie:
        c.cookies.set("maison_portail", world.patient_cookie)
        home = await c.get("/portal/patient/")
    else:
        home = await patient_sign_in(c, world.ins, PASSWORD, world.code())
        world.patient_cookie = c.cookies["maison_portail"]
    assert str(home.url).endswith("/portal/patient/"), home.text[:1500]
    return home


def _document_links(page: str) -> list[str]:
    from lxml import html as lxml_html

    tree = lxml_html.fromstring(page)
    return [
        a.get("href")
        for a in tree.xpath("//a[@href]")
        if "/documents/" in a.get("href") and "/contenu" not in a.get("href")
    ]


def test_a_patient_reads_masks_and_shows_a_document_again(world: World) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        home = await _signed_in_patient(world, c)
        link = _document_links(home.text)[0]
        page = await c.get(link)
        assert page.status_code == 200, page.text[:2000]
        assert "Masquer aux professionnels" in page.text
        content = await c.get(link + "/contenu")
        assert content.status_code == 200
        media = content.headers["content-type"]
        if media.startswith("application/pdf"):
            assert content.content.startswith(b"%PDF-")
        else:  # a CDA, served as text (never as a page of the site), sandboxed
            assert media.startswith("text/plain")
            assert b"ClinicalDocument" in content.content
            assert "sandbox" in content.headers["content-security-policy"]
            unwrapped = await c.get(link + "/contenu", params={"forme": "pdf"})
            assert unwrapped.status_code == 200  # the demo's CDAs are level 1: a PDF inside
            assert unwrapped.content.startswith(b"%PDF-")
        masked = await submit(c, page, "/visibilite", button=("action", "masquer-ps"))
        assert masked.status_code == 200, masked.text[:2000]
        assert "masqué aux professionnels" in masked.text
        assert "Rendre visible aux professionnels" in masked.text
        shown = await submit(c, masked, "/visibilite", button=("action", "afficher-ps"))
        assert "de nouveau visible" in shown.text
        assert "Masquer aux professionnels" in shown.text

    world.run(scenario)


def test_a_form_without_its_csrf_token_is_refused(world: World) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        home = await _signed_in_patient(world, c)
        link = _document_links(home.text)[0]
        refused = await c.post(link + "/visibilite", data={"action": "masquer-ps"})
        assert refused.status_code == 403
        assert "formulaire a expiré" in refused.text
        wrong = await c.post(link + "/visibilite", data={"action": "masquer-ps", "csrf": "x" * 43})
        assert wrong.status_code == 403

    world.run(scenario)


def test_a_session_identifier_planted_before_sign_in_is_worthless_after(world: World) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        start = await c.get("/portal/connexion/patient")
        planted = start.cookies.get("maison_portail")
        assert planted
        home = await patient_sign_in(c, world.ins, PASSWORD, world.code())
        assert str(home.url).endswith("/portal/patient/")
        now = c.cookies.get("maison_portail")
        assert now and now != planted
        async with world.browser() as attacker:
            attacker.cookies.set("maison_portail", planted)
            response = await attacker.get("/portal/patient/")
            assert response.status_code == 303  # back to sign-in: not the victim's session

    world.run(scenario)


def test_another_patients_document_is_refused_and_traced(world: World) -> None:
    token = world.token(["system/*.*"])
    bundle = world.run(
        lambda c: c.get(
            "/DocumentReference",
            params={"status": "current", "_count": "50"},
            headers={"Authorization": f"Bearer {token}"},
        )
    ).json()
    other, owner = next(
        (e["resource"]["id"], e["resource"]["subject"]["reference"])
        for e in bundle["entry"]
        if e["resource"]["subject"]["reference"] != f"Patient/{world.patient}"
    )

    async def scenario(c: httpx.AsyncClient) -> httpx.Response:
        await _signed_in_patient(world, c)
        return await c.get(f"/portal/patient/documents/{other}")

    refused = world.run(scenario)
    assert refused.status_code in (403, 404)
    assert "Traceback" not in refused.text
    dpo = world.token(["system/AuditEvent.rs"])  # the data protection officer's tool
    trail = world.run(
        lambda c: c.get(
            "/AuditEvent",
            params={"patient": owner, "_count": "100"},
            headers={"Authorization": f"Bearer {dpo}"},
        )
    ).json()
    refusals = [
        e["resource"]
        for e in trail.get("entry", [])
        if e["resource"].get("outcome") not in (None, "0")
        and any(
            (x.get("what") or {}).get("reference") == f"DocumentReference/{other}"
            for x in e["resource"].get("entity") or []
        )
    ]
    assert refusals


def test_bad_filters_and_ids_get_french_errors_not_500(world: World) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        await _signed_in_patient(world, c)
        bad = await c.get("/portal/patient/", params={"du": "hier"})
        assert bad.status_code == 400 and "AAAA-MM-JJ" in bad.text
        bad = await c.get("/portal/patient/documents/..%2F..%2Fetc")
        assert bad.status_code == 404

    world.run(scenario)


def test_the_patient_reads_who_accessed_his_record(world: World) -> None:
    async def scenario(c: httpx.AsyncClient) -> httpx.Response:
        await _signed_in_patient(world, c)
        return await c.get("/portal/patient/historique")

    history = world.run(scenario)
    assert history.status_code == 200, history.text[-2000:]
    assert "Historique des accès à mon dossier" in history.text
    assert "<tbody>" in history.text


def test_document_classes_are_named_from_the_terminology(world: World) -> None:
    async def scenario(c: httpx.AsyncClient) -> httpx.Response:
        return await _signed_in_patient(world, c)

    home = world.run(scenario)
    from lxml import html as lxml_html

    options = lxml_html.fromstring(home.text).xpath("//select[@id='categorie']/option")
    labels = [o.text_content() for o in options[1:]]
    assert labels and not any(label.isdigit() for label in labels), labels


def test_the_patient_opposes_and_blocks_then_undoes_it(world: World) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        await _signed_in_patient(world, c)
        page = await c.get("/portal/patient/choix")
        assert page.status_code == 200, page.text[-3000:]
        assert "Mes oppositions" in page.text, page.text
        assert "Mon dossier médical partagé" in page.text
        opposed = await submit(
            c, page, "/choix/opposition", {"kind": "emergency"}, button=("opposed", "oui")
        )
        assert "Votre opposition est enregistrée." in opposed.text, opposed.text[-3000:]
        assert "Opposition en cours" in opposed.text
        lifted = await submit(
            c, opposed, "/choix/opposition", {"kind": "emergency"}, button=("opposed", "non")
        )
        assert "Votre opposition est levée." in lifted.text
        bad = await submit(c, lifted, "/choix/bloquer", {"identifiant": "12"})
        assert bad.status_code == 400
        blocked = await submit(c, lifted, "/choix/bloquer", {"identifiant": "10014606213"})
        assert "ne peut plus accéder à votre dossier" in blocked.text, blocked.text[-3000:]
        assert "Débloquer" in blocked.text
        unblocked = await submit(c, blocked, "/choix/debloquer")
        assert "de nouveau accéder" in unblocked.text
        assert "Vous n'avez bloqué aucun professionnel." in unblocked.text

    world.run(scenario)


def test_the_trail_records_the_browsers_address_not_the_portals(world: World) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        await _signed_in_patient(world, c)

    async def go() -> None:
        transport = httpx.ASGITransport(app=world.site, client=("203.0.113.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            await scenario(c)

    anyio.run(go)
    dpo = world.token(["system/AuditEvent.rs"])
    trail = world.run(
        lambda c: c.get(
            "/AuditEvent",
            params={"patient": f"Patient/{world.patient}", "_count": "20"},
            headers={"Authorization": f"Bearer {dpo}"},
        )
    ).json()
    addresses = {
        a.get("network", {}).get("address")
        for e in trail.get("entry", [])
        for a in e["resource"].get("agent") or []
    }
    assert "203.0.113.7" in addresses


def test_a_long_record_is_listed_by_pages_latest_service_date_first(world: World) -> None:
    import copy
    import uuid

    token = world.token(["system/*.*"])
    one = world.run(
        lambda c: c.get(
            "/DocumentReference",
            params={"patient": f"Patient/{world.patient}", "status": "current", "_count": "1"},
            headers={"Authorization": f"Bearer {token}"},
        )
    ).json()["entry"][0]["resource"]
    bodies = []
    for day in range(1, 56):
        body = copy.deepcopy(one)
        body.pop("id", None)
        body.pop("meta", None)
        body["masterIdentifier"] = {
            "system": "urn:ietf:rfc:3986",
            "value": f"urn:uuid:{uuid.uuid4()}",
        }
        body["identifier"] = [
            {**i, "value": f"urn:uuid:{uuid.uuid4()}"} for i in body.get("identifier") or []
        ]
        body["context"] = {
            **body.get("context", {}),
            "period": {"start": f"2020-01-{day % 28 + 1:02d}"},
        }
        body["content"][0]["attachment"]["title"] = f"Document de série {day:02d}"
        bodies.append(body)

    def write(tx: Any) -> None:
        for body in bodies:
            tx.create("DocumentReference", body)

    world.services.store.write(write)

    async def scenario(c: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        first = await _signed_in_patient(world, c)
        second = await c.get("/portal/patient/", params={"page": "2"})
        return first, second

    first, second = world.run(scenario)
    assert "Page 1 sur 2" in first.text, first.text[-3000:]
    assert len(_document_links(first.text)) == 50
    assert "Page 2 sur 2" in second.text
    assert "Page précédente" in second.text
    assert len(_document_links(second.text)) >= 11
    assert "Document de série" in second.text  # the 2020 series comes after the recent ones


def test_a_patient_feeds_his_own_document_and_no_one_elses(world: World) -> None:
    import orjson

    from maison.portal.personal import patient_submission
    from maison.services.dmp.cda_build import minimal_pdf

    a00 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
    a03 = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
    mine = world.token(
        ["patient/*.cruds"], patient=world.patient, fhirUser=f"Patient/{world.patient}"
    )
    headers = {"Authorization": f"Bearer {mine}", "Content-Type": "application/fhir+json"}

    def bundle(patient: str) -> bytes:
        return orjson.dumps(
            patient_submission(
                patient,
                minimal_pdf("Relevé de tension"),
                type_coding=(a00, "DOCPAT03", "CR déposé par le patient"),
                class_coding=(a03, "10", "Compte rendu"),
                title="Relevé de tension",
                service_date="2026-11-01",
            )
        )

    fed = world.run(
        lambda c: c.post("/", content=bundle(f"Patient/{world.patient}"), headers=headers)
    )
    assert fed.status_code == 200, fed.text[:2000]
    assert all(e["response"]["status"].startswith("201") for e in fed.json()["entry"])
    other = world.run(
        lambda c: c.post("/", content=bundle("Patient/someone-else"), headers=headers)
    )
    assert other.status_code == 403, other.text[:2000]
