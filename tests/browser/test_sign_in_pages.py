"""The platform's sign-in pages in headless Chromium, reached from the portal as a person
would: the SMART authorization server's choice and patient form, the local Pro Santé Connect
provider's test page. Each has a ``<main>``, loads the design system (DSFR) despite its strict
CSP (no script, no inline style), is screenshotted and passes every axe-core rule (best
practices included) at the serious and critical impacts; the lesser ones are printed and kept
in ``axe/<name>.json``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from browser_support import (
    BLOCKING,
    axe_run,
    format_violations,
    save_axe_report,
    screenshot,
)
from playwright.sync_api import expect

from servers import Server

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Response

#: The DSFR's ``fr-btn`` background (blue-france-sun-113), Chromium's own button background.
DSFR_BLUE = "rgb(0, 0, 145)"
BROWSER_BUTTON = "rgb(239, 239, 239)"


class Watch:
    """What a page refused or failed to load: CSP refusals, error answers of its resources."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        # a page's own error status (401 of a refused sign-in) is logged too: see _response
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text}")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            self.problems.append(f"{response.status} {response.url}")


def all_rules_accessible(page: Page, name: str) -> list[dict[str, Any]]:
    """Every axe-core rule (not only the WCAG A/AA ones): fail on serious or critical
    violations, print and return the others (all kept in ``axe/<name>.json``)."""
    everything = axe_run(page, ())
    save_axe_report(name, page.url, everything)
    blocking = [v for v in everything if v.get("impact") in BLOCKING]
    assert not blocking, f"axe violations on {name} ({page.url}):\n" + format_violations(blocking)
    lesser = [v for v in everything if v.get("impact") not in BLOCKING]
    print(f"axe {name}: {len(lesser)} lesser violation(s)\n{format_violations(lesser)}")
    return lesser


def assert_designed(page: Page, watch: Watch) -> None:
    """One ``<main>``, the DSFR header, its style sheet applied, nothing refused."""
    assert page.get_attribute("html", "lang") == "fr"
    assert page.locator("main#contenu").count() == 1
    assert page.locator("main").count() == 1
    expect(page.locator("header.fr-header")).to_contain_text("maison — espace santé")
    assert page.locator("footer.fr-footer").count() == 1
    assert page.locator("script, style, [style]").count() == 0
    stylesheets = page.locator("link[rel=stylesheet]")
    assert stylesheets.count() == 2
    assert all(
        re.fullmatch(r"/portal/static/dsfr-[0-9.]+/(utility/utility\.)?(dsfr\.)?min\.css", href)
        for href in stylesheets.evaluate_all("(links) => links.map((l) => l.getAttribute('href'))")
    )
    button = page.locator("main .fr-btn").first
    background = button.evaluate("(el) => getComputedStyle(el).backgroundColor")
    assert background != BROWSER_BUTTON
    assert background == DSFR_BLUE
    font = page.locator("body").evaluate("(el) => getComputedStyle(el).fontFamily")
    assert "Marianne" in font
    page.wait_for_load_state("networkidle")
    assert watch.problems == []


def test_patient_sign_in_pages(page: Page, browser_server: Server) -> None:
    watch = Watch(page)
    page.goto(f"{browser_server.base_url}/portal/")
    page.get_by_role("link", name="Espace patient").click()
    expect(page).to_have_url(re.compile(r"/auth/authorize\?"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
    assert_designed(page, watch)
    screenshot(page, "connexion-choix")
    all_rules_accessible(page, "connexion-choix")

    page.get_by_role("button", name="Se connecter à mon espace santé").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Se connecter à mon espace santé")
    assert_designed(page, watch)
    ins = page.get_by_label("Matricule INS")
    expect(ins).to_have_class(re.compile(r"\bfr-input\b"))
    expect(page.locator("label[for=ins] .fr-hint-text")).to_have_text("15 caractères, clé comprise")
    cancel = page.get_by_role("button", name="Annuler et revenir à l'application")
    expect(cancel).to_have_class(re.compile(r"\bfr-btn--secondary\b"))
    screenshot(page, "connexion-patient")
    all_rules_accessible(page, "connexion-patient")

    # wrong credentials: the form again, with a DSFR error alert
    ins.fill("199999999999999")
    page.get_by_label("Mot de passe").fill("pas-le-bon-mot-de-passe")
    page.get_by_label("Code à usage unique").fill("000000")
    page.get_by_role("button", name="Se connecter", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_count(1)
    expect(alert).to_have_class(re.compile(r"\bfr-alert--error\b"))
    expect(page.get_by_label("Matricule INS")).to_have_count(1)
    assert_designed(page, watch)
    screenshot(page, "connexion-patient-erreur")
    all_rules_accessible(page, "connexion-patient-erreur")


def test_pro_sante_connect_page(page: Page, browser_server: Server) -> None:
    watch = Watch(page)
    page.goto(f"{browser_server.base_url}/portal/")
    page.get_by_role("link", name="Espace professionnel").click()
    page.get_by_role("button", name="Se connecter avec Pro Santé Connect").click()
    expect(page).to_have_url(re.compile(r"/psc/auth\?"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Connexion Pro Santé Connect — environnement de test"
    )
    assert_designed(page, watch)
    expect(page.get_by_label("Identifiant (RPPS, ADELI ou IDNPS)")).to_have_count(1)
    expect(page.get_by_role("button", name="Approbation e-CPS simulée")).to_have_class(
        re.compile(r"\bfr-btn--secondary\b")
    )
    screenshot(page, "psc-connexion")
    all_rules_accessible(page, "psc-connexion")
