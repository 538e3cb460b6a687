"""The browser helpers themselves: axe finds violations (also under the pages' strict CSP),
reports them readably, and the page weight counts what was transferred."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from browser_support import assert_accessible, axe_violations, page_weight, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

ORIGIN = "http://maison.test"  # answered by page.route: no network, no server
STRICT_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
BAD = (
    "<!doctype html><html><head><meta charset=utf-8><title>Mal</title></head><body>"
    "<img src=data:,><input name=x>"
    "<p style='color:#ddd;background:#fff'>peu lisible</p></body></html>"
)
GOOD = (
    "<!doctype html><html lang=fr><head><meta charset=utf-8><title>Bien</title></head>"
    "<body><main><h1>Bien</h1><label>Nom <input name=nom></label></main></body></html>"
)


def serve(page: Page, body: str) -> str:
    """Serve ``body`` at a fake origin with the SMART pages' CSP; its URL."""

    def fulfill(route: Route) -> None:
        route.fulfill(
            status=200,
            body=body,
            headers={
                "content-type": "text/html; charset=utf-8",
                "content-security-policy": STRICT_CSP,
            },
        )

    page.route(f"{ORIGIN}/**", fulfill)
    return f"{ORIGIN}/page"


def test_axe_finds_violations_under_a_strict_csp(page: Page) -> None:
    page.goto(serve(page, BAD))
    found = {v["id"]: v["impact"] for v in axe_violations(page)}
    assert found.get("image-alt") == "critical"
    assert found.get("label") == "critical"
    assert found.get("html-has-lang") == "serious"
    assert found.get("color-contrast") == "serious"
    assert "region" not in found  # moderate
    assert "region" in {v["id"] for v in axe_violations(page, impacts=("moderate",), tags=())}


def test_assert_accessible_reports_rules_and_targets(page: Page) -> None:
    page.goto(serve(page, BAD))
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page, "support-bad")
    message = str(failure.value)
    assert "- image-alt [critical] Images must have alternative text: img" in message
    assert "- label [critical]" in message and "input" in message
    tolerated = assert_accessible(
        page, "support-bad", known={"image-alt", "label", "html-has-lang", "color-contrast"}
    )
    assert len(tolerated) == 4
    with pytest.raises(AssertionError, match=r"no longer found.*'bypass'"):
        assert_accessible(
            page,
            "support-bad",
            known={"image-alt", "label", "html-has-lang", "color-contrast", "bypass"},
        )


def test_a_good_page_passes_and_is_screenshot(page: Page) -> None:
    page.goto(serve(page, GOOD))
    assert assert_accessible(page, "support-good") == []
    assert screenshot(page, "support-good").stat().st_size > 0


def test_page_weight_counts_the_document_and_its_resources(page: Page) -> None:
    image = b"\x89PNG" + bytes(20_000)
    html = "<!doctype html><html lang=fr><title>p</title><img alt=x src=/big.png></html>"

    def fulfill(route: Route) -> None:
        if route.request.url.endswith("/big.png"):
            route.fulfill(status=200, body=image, headers={"content-type": "image/png"})
        else:
            route.fulfill(status=200, body=html, headers={"content-type": "text/html"})

    page.route(f"{ORIGIN}/**", fulfill)
    weight = page_weight(page, f"{ORIGIN}/page")
    assert weight >= len(image) + len(html)
