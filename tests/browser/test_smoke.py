"""Smoke tests in headless Chromium: the SMART sign-in pages, public endpoints, security by
default."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import TYPE_CHECKING

import httpx
from browser_support import assert_accessible, page_weight, screenshot

from servers import Server

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

DEV_CLIENT = "maison-smart-dev"
REDIRECT = "http://127.0.0.1:5555/cb"
#: Accessibility violations (serious/critical) of the SMART sign-in pages, reported to be
#: fixed in ``src/maison/api/smart_routes.py``; the check fails on any other one, and once
#: one of these is fixed (then drop it from here).
KNOWN_SIGN_IN_VIOLATIONS: frozenset[str] = frozenset()
PAGE_WEIGHT_BUDGET = 500 * 1024


def authorize_url(base: str) -> str:
    """A valid authorization request of the built-in dev client (PKCE S256)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    query = httpx.QueryParams(
        {
            "response_type": "code",
            "client_id": DEV_CLIENT,
            "redirect_uri": REDIRECT,
            "scope": "openid fhirUser launch/patient patient/*.rs",
            "state": "abc123",
            "aud": base,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{base}/auth/authorize?{query}"


def tab_to(page: Page, target: Locator, limit: int = 20) -> None:
    """Press Tab until ``target`` has the keyboard focus (at most ``limit`` times)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("(el) => el === document.activeElement"):
            return
    raise AssertionError(f"{target} is not reachable with {limit} Tab presses")


def unlabelled_inputs(page: Page) -> list[str]:
    """The visible form fields without an accessible label (``<label>`` or ARIA)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter((el) => el.type !== 'hidden')
            .filter((el) => !(el.labels && el.labels.length)
                && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
            .map((el) => el.outerHTML)"""
    )
    return found


def test_patient_sign_in_by_keyboard(page: Page, browser_server: Server) -> None:
    response = page.goto(authorize_url(browser_server.base_url))
    assert response is not None and response.status == 200
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.title() == "Connexion — maison"
    shot = screenshot(page, "smart-sign-in-choose")
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert_accessible(page, "smart-sign-in-choose", known=KNOWN_SIGN_IN_VIOLATIONS)

    # the patient chooses his sign-in with the keyboard only
    patient = page.get_by_role("button", name="Se connecter à mon espace santé")
    tab_to(page, patient)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.get_by_role("heading", level=1).inner_text() == "Se connecter à mon espace santé"
    assert unlabelled_inputs(page) == []
    ins = page.get_by_label("Matricule INS")
    password = page.get_by_label("Mot de passe")
    totp = page.get_by_label("Code à usage unique")
    for field in (ins, password, totp):
        assert field.count() == 1
    screenshot(page, "smart-sign-in-patient")
    assert_accessible(page, "smart-sign-in-patient", known=KNOWN_SIGN_IN_VIOLATIONS)

    # the form is filled and sent with the keyboard; unknown credentials are refused in French
    tab_to(page, ins)
    page.keyboard.type("199999999999999")
    page.keyboard.press("Tab")
    assert password.evaluate("(el) => el === document.activeElement")
    page.keyboard.type("pas-le-bon-mot-de-passe")
    page.keyboard.press("Tab")
    assert totp.evaluate("(el) => el === document.activeElement")
    page.keyboard.type("000000")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator(".err").count() == 1
    assert page.get_by_label("Matricule INS").count() == 1  # the form is shown again
    screenshot(page, "smart-sign-in-patient-refused")
    assert_accessible(page, "smart-sign-in-patient-refused", known=KNOWN_SIGN_IN_VIOLATIONS)


def test_sign_in_page_weight(page: Page, browser_server: Server) -> None:
    weight = page_weight(page, authorize_url(browser_server.base_url))
    assert 0 < weight < PAGE_WEIGHT_BUDGET


def test_public_endpoints_answer_and_fhir_needs_a_token(page: Page, browser_server: Server) -> None:
    base = browser_server.base_url
    health = page.goto(f"{base}/healthz")
    assert health is not None and health.status == 200
    assert health.json() == {"status": "ok"}

    metadata = page.goto(f"{base}/metadata")
    assert metadata is not None and metadata.status == 200
    assert metadata.json()["resourceType"] == "CapabilityStatement"

    patients = page.goto(f"{base}/Patient")
    assert patients is not None and patients.status == 401
    assert patients.headers.get("www-authenticate", "").startswith("Bearer")
    assert "entry" not in patients.text()


def test_professional_sign_in_page(page: Page, browser_server: Server) -> None:
    page.goto(authorize_url(browser_server.base_url))
    professional = page.get_by_role("button", name="Se connecter avec Pro Santé Connect")
    tab_to(page, professional)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    # the local Pro Santé Connect provider's page (the default issuer on a dev server)
    assert page.url.startswith(f"{browser_server.base_url}/psc/auth")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert unlabelled_inputs(page) == []
    assert page.get_by_label("Identifiant (RPPS, ADELI ou IDNPS)").count() == 1
    screenshot(page, "psc-sign-in")
    assert_accessible(page, "psc-sign-in", known=KNOWN_SIGN_IN_VIOLATIONS)
