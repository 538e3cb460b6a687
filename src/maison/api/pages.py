"""The page shell of the platform's own HTML pages (the SMART authorization server's sign-in
pages, the local Pro Santé Connect provider's test page): plain server-rendered French HTML
with the design system of the State (DSFR), no script, the look of the portal.

The DSFR files are those the portal serves under ``/portal/static/dsfr-<version>/`` (fetched by
``maison setup``; this package may not import ``maison.portal``, which sits above it). Without
them (not fetched, or the API served alone) the pages stay usable unstyled. No "République
Française" block: that mark is reserved to State sites.

https://www.systeme-de-design.gouv.fr/
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable, Mapping

from starlette.responses import HTMLResponse

from maison.fhir.definitions import package_dir

#: Where the portal serves the fetched static packages (``maison.portal.site``).
STATIC_PREFIX = "/portal/static"
SERVICE = "maison — espace santé"
#: What the pages may load: the DSFR's same-origin style sheets, fonts and icons; no script,
#: no inline style, no framing (``x-frame-options``), forms posted to this origin only.
CSP = (
    "default-src 'none'; style-src 'self'; font-src 'self'; img-src 'self' data:; "
    "form-action 'self'"
)


@functools.cache
def dsfr_folder() -> str | None:
    """The URL folder of the pinned DSFR (``dsfr-1.15.3``), None when it was not fetched."""
    try:
        folder = package_dir("dsfr")
        return folder.name if folder.is_dir() else None
    except (KeyError, OSError, ValueError):
        return None


def _head(head_title: str) -> str:
    links = ""
    if (folder := dsfr_folder()) is not None:
        base = f"{STATIC_PREFIX}/{folder}"
        links = (
            f'<link rel="stylesheet" href="{base}/dsfr.min.css">'
            f'<link rel="stylesheet" href="{base}/utility/utility.min.css">'
            f'<link rel="icon" href="{base}/favicon/favicon.svg" type="image/svg+xml">'
        )
    return (
        '<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(head_title)}</title>{links}</head>"
    )


def _header(tagline: str) -> str:
    return (
        '<div class="fr-skiplinks"><nav class="fr-container" aria-label="Accès rapide">'
        '<ul class="fr-skiplinks__list"><li><a class="fr-link" href="#contenu">Contenu</a></li>'
        "</ul></nav></div>"
        '<header class="fr-header"><div class="fr-header__body"><div class="fr-container">'
        '<div class="fr-header__body-row"><div class="fr-header__brand">'
        '<div class="fr-header__service">'
        f'<p class="fr-header__service-title">{html.escape(SERVICE)}</p>'
        f'<p class="fr-header__service-tagline">{html.escape(tagline)}</p>'
        "</div></div></div></div></div></header>"
    )


_FOOTER = (
    '<footer class="fr-footer" id="pied"><div class="fr-container"><div class="fr-footer__body">'
    '<div class="fr-footer__content"><p class="fr-footer__content-desc">maison est une '
    "implémentation de référence, libre, des services socles de la e-santé. Les données de "
    "démonstration sont fictives.</p></div></div></div></footer>"
)


def document(
    title: str,
    body: str,
    *,
    head_title: str | None = None,
    tagline: str = "Connexion à la plateforme",
) -> str:
    """A whole page: ``title`` (plain text) as its heading, ``body`` (HTML, already escaped)
    in ``<main>``, and ``head_title`` (default ``"<title> — maison"``) in the tab."""
    return (
        '<!doctype html><html lang="fr" data-fr-scheme="light">'
        + _head(head_title if head_title is not None else f"{title} — maison")
        + "<body>"
        + _header(tagline)
        + '<main id="contenu" class="fr-container fr-my-6w" tabindex="-1">'
        '<div class="fr-grid-row fr-grid-row--center"><div class="fr-col-12 fr-col-md-10 '
        f'fr-col-lg-7"><h1>{html.escape(title)}</h1>{body}</div></div></main>'
        + _FOOTER
        + "</body></html>"
    )


def page(
    title: str,
    body: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    head_title: str | None = None,
    tagline: str = "Connexion à la plateforme",
) -> HTMLResponse:
    """A page of :func:`document` as a response with these status and headers."""
    doc = document(title, body, head_title=head_title, tagline=tagline)
    return HTMLResponse(doc, status_code=status, headers=dict(headers or {}))


def alert(message: str) -> str:
    """An error message (plain text), announced by screen readers; class ``err`` kept for the
    tests and scripts that look for it."""
    return (
        '<div class="fr-alert fr-alert--error fr-alert--sm fr-mb-3w err" role="alert">'
        f"<p>{html.escape(message)}</p></div>"
    )


def input_group(label: str, ident: str, attrs: str, hint: str = "") -> str:
    """A labelled field ``<input id=ident attrs>``: ``label`` and ``hint`` plain text, ``ident``
    a fixed id, ``attrs`` the input's other attributes (HTML, values already escaped)."""
    hint_html = f'<span class="fr-hint-text">{html.escape(hint)}</span>' if hint else ""
    return (
        f'<div class="fr-input-group"><label class="fr-label" for="{ident}">'
        f"{html.escape(label)}{hint_html}</label>"
        f'<input class="fr-input" id="{ident}" {attrs}></div>'
    )


def buttons(items: Iterable[str], inline: bool = False) -> str:
    """Buttons (HTML) as a DSFR group, stacked or side by side from medium screens up."""
    kind = "fr-btns-group fr-btns-group--inline-md" if inline else "fr-btns-group"
    return f'<ul class="{kind}">' + "".join(f"<li>{b}</li>" for b in items) + "</ul>"
