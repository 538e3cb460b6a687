"""Helpers of the browser tests: axe-core checks, screenshots, page weight.

Import them as ``from browser_support import ...`` (pytest puts this folder on ``sys.path``).
Not named ``support.py``: this folder's module would then shadow ``tests/support.py`` for the
test folders collected after it.

Artifacts go to ``$MAISON_ARTIFACTS`` or, by default, ``<repo>/artifacts``:
``screenshots/<name>.png`` and ``axe/<name>.json`` (every violation axe found, all impacts).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO: Final = Path(__file__).resolve().parents[2]
#: The WCAG 2.1 A and AA rules (RGAA 4 follows WCAG 2.1 AA).
WCAG_TAGS: Final = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
BLOCKING: Final = ("serious", "critical")

_RUN_AXE: Final = """async (options) => {
    const results = await window.axe.run(document, options);
    return results.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        helpUrl: v.helpUrl,
        tags: v.tags,
        nodes: v.nodes.map((n) => ({
            target: n.target,
            html: n.html,
            impact: n.impact,
            failureSummary: n.failureSummary,
        })),
    }));
}"""

_WEIGHT: Final = """() => {
    const entries = [
        ...performance.getEntriesByType('navigation'),
        ...performance.getEntriesByType('resource'),
    ];
    return entries.map((e) => [e.name, e.transferSize || 0, e.encodedBodySize || 0]);
}"""


def artifacts_dir(kind: str) -> Path:
    """``$MAISON_ARTIFACTS/<kind>`` or ``<repo>/artifacts/<kind>``, created."""
    root = Path(os.environ.get("MAISON_ARTIFACTS") or REPO / "artifacts")
    folder = root / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _file_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    if not cleaned:
        raise ValueError(f"no usable file name in {name!r}")
    return cleaned


@functools.cache
def axe_source() -> str:
    """axe-core's ``axe.min.js``, from the pinned npm package ``maison setup`` fetches."""
    from maison.fhir.definitions import package_dir

    path = package_dir("axe-core") / "axe.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `maison setup` to fetch axe-core")
    return path.read_text(encoding="utf-8")


def axe_run(page: Page, tags: Iterable[str] = WCAG_TAGS) -> list[dict[str, Any]]:
    """Every axe-core violation of the page (all impacts) for these rule tags (no tags: all
    of axe's rules, best practices included).

    axe is evaluated through the DevTools protocol, which the pages' CSP
    (``default-src 'none'``, no script) does not block, unlike a ``<script>`` tag."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    options: dict[str, Any] = {"resultTypes": ["violations"]}
    if values := list(tags):
        options["runOnly"] = {"type": "tag", "values": values}
    violations: list[dict[str, Any]] = page.evaluate(_RUN_AXE, options)
    return violations


def axe_violations(
    page: Page, impacts: Collection[str] = BLOCKING, tags: Iterable[str] = WCAG_TAGS
) -> list[dict[str, Any]]:
    """The page's axe-core violations of these impacts (WCAG 2.1 A/AA rules by default)."""
    return [v for v in axe_run(page, tags) if v.get("impact") in impacts]


def format_violations(violations: Iterable[dict[str, Any]], targets: int = 3) -> str:
    """One readable line per violation: rule id, impact, help, its first targets."""
    lines = []
    for v in violations:
        nodes = v.get("nodes", [])
        shown = ", ".join(" ".join(map(str, n.get("target", []))) for n in nodes[:targets])
        more = f" (+{len(nodes) - targets} more)" if len(nodes) > targets else ""
        lines.append(
            f"- {v['id']} [{v.get('impact')}] {v.get('help', '')}: {shown}{more} "
            f"({v.get('helpUrl', '')})"
        )
    return "\n".join(lines)


def save_axe_report(name: str, url: str, violations: list[dict[str, Any]]) -> Path:
    """``axe/<name>.json`` in the artifacts folder."""
    path = artifacts_dir("axe") / f"{_file_name(name)}.json"
    report = {"name": name, "url": url, "violations": violations}
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def assert_accessible(
    page: Page,
    name: str,
    impacts: Collection[str] = BLOCKING,
    known: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Fail, with a readable summary, on axe violations of these impacts.

    Every violation (all impacts) is kept in ``axe/<name>.json``. ``known`` lists rule ids
    that are already reported and tolerated for now; a known rule that no longer occurs is a
    failure too, so that the list only shrinks. Returns the tolerated violations."""
    everything = axe_run(page)
    save_axe_report(name, page.url, everything)
    found = [v for v in everything if v.get("impact") in impacts]
    new = [v for v in found if v["id"] not in known]
    tolerated = [v for v in found if v["id"] in known]
    fixed = sorted(set(known) - {v["id"] for v in found})
    problems = []
    if new:
        problems.append(
            f"{len(new)} accessibility violation(s) on {name} ({page.url}):\n"
            + format_violations(new)
        )
    if fixed:
        problems.append(f"known violations no longer found on {name}, drop them: {fixed}")
    assert not problems, "\n".join(problems)
    return tolerated


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG ``screenshots/<name>.png`` in the artifacts folder; its path."""
    path = artifacts_dir("screenshots") / f"{_file_name(name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def page_weight(page: Page, url: str) -> int:
    """Bytes transferred to load ``url`` (document and every resource, headers included),
    from the Resource Timing entries' ``transferSize`` once the network is idle.

    Use a fresh context (the ``page`` fixture): cached resources transfer 0 bytes."""
    response = page.goto(url, wait_until="load")
    if response is None or not response.ok:
        status = response.status if response is not None else "no response"
        raise AssertionError(f"{url} did not load: {status}")
    page.wait_for_load_state("networkidle")
    entries: list[list[Any]] = page.evaluate(_WEIGHT)
    return sum(int(transfer) for _, transfer, _ in entries)
