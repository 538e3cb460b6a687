"""A document's content for the pages: fetched with ITI-68 through the API, a PDF shown inline,
a CDA shown as its readable sections (or the PDF it wraps), always downloadable.

https://profiles.ihe.net/ITI/MHD/ITI-68.html, https://interop.esante.gouv.fr/ig/documents/
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from maison.portal import documents
from maison.portal.cda_view import cda_view
from maison.portal.web import Ctx, FormError

XML_TYPES = ("text/xml", "application/xml", "application/hl7-v3+xml", "application/cda+xml")
#: Largest content the portal renders as CDA sections (bigger ones are only downloaded).
MAX_RENDERED = 8 * 1024 * 1024


async def fetch(ctx: Ctx, resource: dict[str, Any]) -> tuple[bytes, str]:
    """The document's bytes and media type (ITI-68 Retrieve Document)."""
    path = documents.binary_path(resource)
    if path is None:
        raise FormError("Le contenu de ce document n'est pas disponible sur la plateforme.", 404)
    response = await ctx.api("GET", path, headers={"Accept": "*/*"})
    media = response.headers.get("content-type", "application/octet-stream").split(";")[0]
    return response.content, media.strip()


async def document_view(ctx: Ctx, resource: dict[str, Any]) -> dict[str, Any]:
    """What a document page shows: its line, and either a PDF to embed or CDA sections."""

    row = documents.row_of(resource, {})
    view: dict[str, Any] = {"row": row, "resource": resource, "cda": None, "pdf": False}
    view["error"] = None
    media = row.content_type
    if media == "application/pdf":
        view["pdf"] = True
    elif media in XML_TYPES and (row.size or 0) <= MAX_RENDERED:
        data, _ = await fetch(ctx, resource)
        parsed = cda_view(data)
        if hasattr(parsed, "message"):
            view["error"] = parsed.message
        else:
            view["cda"] = parsed
            embedded = getattr(parsed, "embedded", None)
            view["pdf"] = embedded is not None and embedded[0] == "application/pdf"
    assert ctx.session is not None
    view["notice"] = ctx.session.pop("notice")
    return view


def _filename(row: documents.DocumentRow, media: str) -> str:
    ext = {"application/pdf": ".pdf"}.get(media, ".xml" if media in XML_TYPES else ".bin")
    safe = "".join(c if c.isalnum() or c in "-_ " else "_" for c in row.title)[:80].strip()
    return (safe or "document") + ext


async def content_response(ctx: Ctx, resource: dict[str, Any]) -> Response:
    """The content as a response: ``?forme=pdf`` unwraps the PDF of a CDA level 1, and
    ``?telecharger=1`` asks the browser to save it."""

    data, media = await fetch(ctx, resource)
    if ctx.request.query_params.get("forme") == "pdf" and media in XML_TYPES:
        parsed = cda_view(data)
        embedded = getattr(parsed, "embedded", None)
        if not embedded or embedded[0] != "application/pdf":
            raise FormError("Ce document ne contient pas de PDF.", 404)
        media, data = embedded[0], embedded[1]
    row = documents.row_of(resource, {})
    disposition = "attachment" if ctx.request.query_params.get("telecharger") else "inline"
    name = _filename(row, media)
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
        "Cache-Control": "no-store",
        # a document is data, never a page of this site: no script, no form, framed by us only
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
        "frame-ancestors 'self'" + ("" if media == "application/pdf" else "; sandbox"),
    }
    if media not in ("application/pdf",):
        media = "application/octet-stream" if disposition == "attachment" else "text/plain"
    return Response(data, media_type=media, headers=headers)
