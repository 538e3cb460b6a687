"""The portal in headless Chromium: a patient signs in with his INS, password and one-time
code, finds his documents, hides one from professionals and shows it again, reads his access
history; each main page is screenshotted and checked with axe-core (no serious violation)."""

from __future__ import annotations

import re

import pytest
from browser_support import assert_accessible, page_weight, screenshot
from playwright.sync_api import Page, expect
from portal_people import PASSWORD, Account

from servers import Server


@pytest.fixture(scope="module")
def account(browser_server: Server) -> Account:
    return Account(browser_server)


def _sign_in(page: Page, server: Server, account: Account) -> None:
    page.goto(f"{server.base_url}/portal/")
    page.get_by_role("link", name="Espace patient").click()
    page.get_by_role("button", name="Se connecter à mon espace santé").click()
    page.get_by_label("Matricule INS").fill(account.ins)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_label("Code à usage unique").fill(account.code())
    page.get_by_role("button", name="Se connecter", exact=True).click()
    expect(page).to_have_url(re.compile(r"/portal/patient/$"))


def test_front_page(page: Page, browser_server: Server) -> None:
    page.goto(f"{browser_server.base_url}/portal/")
    expect(page.get_by_role("heading", name="Bienvenue")).to_be_visible()
    assert page.get_attribute("html", "lang") == "fr"
    screenshot(page, "portail-accueil")
    assert_accessible(page, "portail-accueil")


def test_a_patient_masks_a_document_and_reads_his_history(
    page: Page, browser_server: Server, account: Account
) -> None:
    _sign_in(page, browser_server, account)
    expect(page.get_by_role("heading", name="Mes documents")).to_be_visible()
    screenshot(page, "patient-documents")
    assert_accessible(page, "patient-documents")
    page.locator("#liste table a").first.click()
    masquer = page.get_by_role("button", name="Masquer aux professionnels")
    expect(masquer).to_be_visible()
    screenshot(page, "patient-document")
    assert_accessible(page, "patient-document")
    masquer.click()
    expect(page.get_by_text("Le document est masqué aux professionnels.")).to_be_visible()
    page.get_by_role("button", name="Rendre visible aux professionnels").click()
    expect(page.get_by_text("Le document est de nouveau visible.")).to_be_visible()
    page.get_by_role("link", name="Historique des accès").click()
    expect(page.get_by_role("heading", name="Historique des accès à mon dossier")).to_be_visible()
    expect(page.locator("table tbody tr").first).to_be_visible()
    screenshot(page, "patient-historique")
    assert_accessible(page, "patient-historique")


def test_filters_update_the_list_in_place(
    page: Page, browser_server: Server, account: Account
) -> None:
    _sign_in(page, browser_server, account)
    page.get_by_label("Du").fill("2099-01-01")
    page.get_by_role("button", name="Filtrer").click()
    expect(page.get_by_text("0 document correspondant aux filtres.")).to_be_visible()
    assert "du=2099-01-01" in page.url  # htmx pushed the filtered URL


def test_portal_front_page_weight(page: Page, browser_server: Server) -> None:
    weight = page_weight(page, f"{browser_server.base_url}/portal/")
    print(f"portal front page: {weight} bytes transferred")
    assert weight < 500_000, weight
