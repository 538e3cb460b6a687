"""The portal's acceptance scenario in headless Chromium (issue: the portal): a patient signs in
and masks a document; a professional of a profession the matrix does not allow (an infirmier)
breaks the glass and still sees no document; the patient consents to a care team whose doctor
is his médecin traitant, and that doctor sees the masked document; the patient's history shows
both accesses, the bris de glace flagged; the doctor adds a PDF and the patient finds it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import assert_accessible, screenshot
from playwright.sync_api import Browser, Page, expect
from portal_people import PASSWORD, Account

from servers import MAISON, Server, free_port

DOCTOR = "10014606213"  # a médecin of the demo Annuaire (README)
NURSE = "10002260510"  # an infirmier of the demo Annuaire (profession 60)
NOS = Path(__file__).resolve().parents[2].parent / "shared" / "domain" / "data" / "nos"
NOS_FILES = (
    "JDV_J66-TypeCode-DMP.csv",
    "JDV_J57-ClassCode-DMP.csv",
    "ASS_X16-CorrespondanceType-Classe-DMP.csv",
    "JDV_J08-XdsConfidentialityCode-CISIS.csv",
    "JDV_J04-XdsPracticeSettingCode-CISIS.csv",
    "TRE_G15-ProfessionSante.csv",
)


@pytest.fixture(scope="module")
def server(chromium_executable: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with demo data and the NOS tables a professional needs to add a document."""
    tmp = tmp_path_factory.mktemp("acceptance")
    data = str(tmp / "data")
    subprocess.run(
        [*MAISON, "terminology", "load", *(str(NOS / f) for f in NOS_FILES), "--data", data,
         "--state", str(tmp)],
        check=True, capture_output=True,
    )  # fmt: skip
    srv = Server(data, tmp, free_port(), extra_args=["--admin", f"8{DOCTOR}"])
    try:
        srv.start(timeout=180)
        yield srv
    finally:
        srv.stop()


def _api(server: Server) -> httpx.Client:
    token = server.mint("system/*.*")
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _practitioner(api: httpx.Client, rpps: str) -> str:
    found = api.get("/Practitioner", params={"identifier": rpps}).json()
    return str(found["entry"][0]["resource"]["id"])


def _patient_signs_in(page: Page, server: Server, account: Account) -> None:
    page.goto(f"{server.base_url}/portal/")
    page.get_by_role("link", name="Espace patient").click()
    page.get_by_role("button", name="Se connecter à mon espace santé").click()
    page.get_by_label("Matricule INS").fill(account.ins)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_label("Code à usage unique").fill(account.code())
    page.get_by_role("button", name="Se connecter", exact=True).click()
    expect(page).to_have_url(re.compile(r"/portal/patient/$"))


def _professional_signs_in(page: Page, server: Server, rpps: str) -> None:
    page.goto(f"{server.base_url}/portal/")
    page.get_by_role("link", name="Espace professionnel").click()
    page.get_by_role("button", name="Se connecter avec Pro Santé Connect").click()
    page.locator("input[name=identifier]").fill(rpps)
    page.locator("input[name=password]").fill("maison-test")
    page.get_by_role("button", name="Se connecter", exact=True).click()
    page.wait_for_url(lambda url: "/psc/auth" not in url)  # back from Pro Santé Connect
    activities = page.locator("form button[name=activity]")
    if "/portal/" not in page.url and activities.count():
        # the demo doctor's liberal activity (his cabinet: a SIRET and a secteur), as the
        # README's `maison token --rpps … --activity 1`
        activities.nth(1 if activities.count() > 1 else 0).click()
    expect(page).to_have_url(re.compile(r"/portal/pro/$"))


def _open_record(page: Page, ins: str) -> None:
    page.get_by_label("Matricule INS du patient").fill(ins)
    page.get_by_role("button", name="Rechercher").click()
    expect(page.get_by_role("heading", name="Dossier médical partagé")).to_be_visible()


def test_masks_matrix_care_team_bris_de_glace_and_a_new_document(
    browser: Browser, server: Server
) -> None:
    account = Account(server)
    with _api(server) as api:  # closed: no socket left for a later test to trip on
        doctor = _practitioner(api, DOCTOR)
        team = api.post(
            "/CareTeam",
            json={
                "resourceType": "CareTeam",
                "status": "active",
                "name": "Équipe de cardiologie",
                "subject": {"reference": f"Patient/{account.patient}"},
                "participant": [{"member": {"reference": f"Practitioner/{doctor}"}}],
            },
        )
        assert team.status_code == 201, team.text
        designated = api.post(
            f"/Patient/{account.patient}/$dmp-medecin-traitant",
            json={
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "practitioner",
                        "valueReference": {"reference": f"Practitioner/{doctor}"},
                    }
                ],
            },
        )
        assert designated.status_code == 200, designated.text

    patient = browser.new_context(locale="fr-FR").new_page()
    _patient_signs_in(patient, server, account)
    patient.locator("#liste table a").first.click()
    masked_title = patient.locator("h1").inner_text()
    patient.get_by_role("button", name="Masquer aux professionnels").click()
    expect(patient.get_by_text("Le document est masqué aux professionnels.")).to_be_visible()
    patient.get_by_role("link", name="Mes choix").click()
    patient.get_by_role("button", name="Donner mon accord à « Équipe de cardiologie »").click()
    expect(patient.get_by_text("Votre accord est enregistré.")).to_be_visible()
    screenshot(patient, "patient-choix")
    assert_accessible(patient, "patient-choix")

    nurse = browser.new_context(locale="fr-FR").new_page()
    _professional_signs_in(nurse, server, NURSE)
    screenshot(nurse, "pro-recherche")
    assert_accessible(nurse, "pro-recherche")
    _open_record(nurse, account.ins)
    expect(nurse.get_by_text("non autorisé")).to_be_visible()
    screenshot(nurse, "pro-dossier-non-autorise")
    assert_accessible(nurse, "pro-dossier-non-autorise")
    nurse.get_by_label("Motif de l'urgence").fill("Patient inconscient, admis aux urgences")
    # the DSFR draws the box on the label, which takes the click
    nurse.get_by_label("Je confirme que la situation du patient est une urgence").check(force=True)
    nurse.get_by_role("button", name="Accéder en urgence").click()
    expect(nurse.get_by_text("Accès en urgence ouvert")).to_be_visible()
    expect(nurse.get_by_text("Aucun document à afficher.")).to_be_visible()  # the matrix
    assert masked_title not in nurse.content()

    doc = browser.new_context(locale="fr-FR").new_page()
    _professional_signs_in(doc, server, DOCTOR)
    _open_record(doc, account.ins)
    expect(doc.get_by_text("Vous êtes le médecin traitant DMP de ce patient.")).to_be_visible()
    expect(doc.get_by_role("link", name=masked_title).first).to_be_visible()
    screenshot(doc, "pro-dossier")
    assert_accessible(doc, "pro-dossier")
    doc.get_by_role("link", name="Ajouter un document").click()
    doc.get_by_label("Fichier PDF").set_input_files(
        files=[{"name": "bilan.pdf", "mimeType": "application/pdf", "buffer": _pdf()}]
    )
    doc.get_by_label("Type de document").select_option(label="CR d'examens biologiques")
    doc.get_by_label("Titre").fill("Bilan sanguin de contrôle")
    doc.get_by_label("Date de l'acte").fill("2026-11-20")
    screenshot(doc, "pro-ajout")
    assert_accessible(doc, "pro-ajout")
    doc.get_by_role("button", name="Ajouter le document").click()
    expect(doc.get_by_text("est ajouté au DMP du patient")).to_be_visible()
    screenshot(doc, "pro-dossier-apres-ajout")

    # the doctor is also an administrator of this server
    doc.get_by_role("link", name="Administration").click()
    expect(doc.get_by_text("Le service répond")).to_be_visible()
    screenshot(doc, "admin-accueil")
    assert_accessible(doc, "admin-accueil")
    doc.get_by_role("link", name="Identitovigilance").click()
    expect(
        doc.get_by_role("heading", name="Identitovigilance : doublons potentiels")
    ).to_be_visible()
    screenshot(doc, "admin-identites")
    assert_accessible(doc, "admin-identites")
    doc.goto(f"{server.base_url}/portal/admin/imports")
    expect(doc.get_by_role("cell", name="Annuaire Santé").first).to_be_visible()
    screenshot(doc, "admin-imports")
    assert_accessible(doc, "admin-imports")

    patient.get_by_role("link", name="Mes documents").click()
    expect(patient.get_by_role("link", name="Bilan sanguin de contrôle")).to_be_visible()
    expect(patient.get_by_text("depuis votre dernière visite")).to_be_visible()  # the notice
    patient.get_by_role("link", name="Historique des accès", exact=True).click()
    rows = patient.locator("table tbody tr")
    expect(rows.filter(has_text="Bris de glace").first).to_be_visible()
    history = patient.locator("table").inner_text()
    assert history.count("autorisé") >= 2
    screenshot(patient, "patient-historique-acces")
    assert_accessible(patient, "patient-historique-acces")

    # the patient adds one of his own documents
    patient.get_by_role("link", name="Mes documents").click()
    patient.get_by_role("link", name="Ajouter un de mes documents").click()
    patient.get_by_label("Fichier PDF").set_input_files(
        files=[{"name": "mesures.pdf", "mimeType": "application/pdf", "buffer": _pdf()}]
    )
    patient.get_by_label("Type de document").select_option(index=1)
    patient.get_by_label("Titre").fill("Relevé de tension à domicile")
    patient.get_by_label("Date du document").fill("2026-11-01")
    screenshot(patient, "patient-ajout")
    assert_accessible(patient, "patient-ajout")
    patient.get_by_role("button", name="Ajouter le document").click()
    expect(
        patient.get_by_text("Votre document « Relevé de tension à domicile » est ajouté")
    ).to_be_visible()
    expect(patient.get_by_role("link", name="Relevé de tension à domicile")).to_be_visible()


def _pdf() -> bytes:
    from maison.services.dmp.cda_build import minimal_pdf

    return minimal_pdf("Bilan sanguin de contrôle")
