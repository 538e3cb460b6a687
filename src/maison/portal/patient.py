"""The patient space: my documents, one document, hiding it, who accessed my record.

https://www.monespacesante.fr/ (the service it mirrors), https://profiles.ihe.net/ITI/MHD/
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from maison.portal import documents
from maison.portal.content import content_response, document_view
from maison.portal.web import PREFIX, Ctx, FormError, Redirect, Web


def _patient(ctx: Ctx) -> str:
    assert ctx.session is not None
    return str((ctx.session.get("user") or {}).get("patient"))


async def document_list(ctx: Ctx) -> Response:
    """My documents, by category and date, with filters (ITI-67)."""
    filters = documents.filters_of(ctx)
    rows, total = await documents.search(ctx, _patient(ctx), filters)
    everything, _ = (rows, total) if not filters else await documents.search(ctx, _patient(ctx), {})
    categories = sorted({(r.category_code, r.category) for r in everything if r.category_code})
    template = (
        "patient/_liste.html"
        if ctx.request.headers.get("hx-request")
        else ("patient/documents.html")
    )
    return ctx.render(
        template,
        title="Mes documents",
        rows=rows,
        total=total,
        filters=filters,
        categories=categories,
        labels=documents.LABELS,
    )


async def document_page(ctx: Ctx) -> Response:
    """One document: its metadata, its content shown, its visibility."""
    resource = await documents.read(ctx, str(ctx.request.path_params["doc"]))
    view = await document_view(ctx, resource)
    return ctx.render(
        "patient/document.html",
        title=view["row"].title,
        labels=documents.LABELS,
        **view,
    )


async def document_content(ctx: Ctx) -> Response:
    """The content itself (PDF inline, or download): ITI-68 through the API."""
    resource = await documents.read(ctx, str(ctx.request.path_params["doc"]))
    return await content_response(ctx, resource)


ACTIONS: dict[str, tuple[str, bool, str]] = {
    "masquer-ps": (documents.MASQUE_PS, True, "Le document est masqué aux professionnels."),
    "afficher-ps": (documents.MASQUE_PS, False, "Le document est de nouveau visible."),
    "masquer-representants": (
        documents.INVISIBLE_REPRESENTANTS,
        True,
        "Le document est masqué à vos représentants légaux.",
    ),
    "afficher-representants": (
        documents.INVISIBLE_REPRESENTANTS,
        False,
        "Le document est de nouveau visible par vos représentants légaux.",
    ),
}


async def visibility(ctx: Ctx) -> Response:
    """Hide a document from professionals or legal representatives, or show it again."""
    form = await ctx.request.form()
    action = ACTIONS.get(str(form.get("action", "")))
    if action is None:
        raise FormError("Action inconnue.")
    doc_id = documents.valid_id(str(ctx.request.path_params["doc"]))
    resource = await documents.read(ctx, doc_id)
    code, on, message = action
    await documents.set_label(ctx, resource, code, on)
    assert ctx.session is not None
    ctx.session.set("notice", message)
    raise Redirect(f"{PREFIX}/patient/documents/{doc_id}")


def _agent(event: dict[str, Any]) -> dict[str, str]:
    who = {"name": "", "role": "", "structure": ""}
    for agent in event.get("agent") or []:
        if not agent.get("requestor"):
            continue
        who["name"] = str((agent.get("who") or {}).get("display") or "")
        roles = agent.get("role") or []
        if roles:
            who["role"] = str(
                ((roles[0].get("coding") or [{}])[0]).get("display") or roles[0].get("text") or ""
            )
        org = (agent.get("who") or {}).get("identifier") or {}
        who["structure"] = str(org.get("value") or "")
    return who


def access_row(event: dict[str, Any]) -> dict[str, Any]:
    """One access of the trail as the patient reads it (who, when, what, bris de glace):
    https://profiles.ihe.net/ITI/BALP/."""
    purposes = [
        str(c.get("code")) for p in event.get("purposeOfEvent") or [] for c in p.get("coding") or []
    ]
    subtype = ", ".join(str(c.get("display") or c.get("code")) for c in event.get("subtype") or [])
    what = [
        str((e.get("what") or {}).get("reference") or "")
        for e in event.get("entity") or []
        if (e.get("what") or {}).get("reference", "").startswith(("DocumentReference", "Binary"))
    ]
    return {
        "when": str(event.get("recorded") or ""),
        "action": subtype or str((event.get("type") or {}).get("display") or ""),
        "outcome": "refusé" if event.get("outcome") not in (None, "0") else "autorisé",
        "emergency": "BTG" in purposes,
        "what": what,
        **_agent(event),
    }


async def history(ctx: Ctx) -> Response:
    """Who accessed my record: the AuditEvents the API lets me read."""
    bundle = await ctx.json("/AuditEvent", [("_count", "100")])  # newest first
    events = [
        access_row(e["resource"])
        for e in bundle.get("entry") or []
        if (e.get("resource") or {}).get("resourceType") == "AuditEvent"
    ]
    return ctx.render("patient/historique.html", title="Historique des accès", events=events)


def routes(web: Web) -> list[Route]:
    """The patient space's pages."""
    page = web.page
    return [
        Route("/patient/", page(document_list, space="patient"), methods=["GET"]),
        Route("/patient/documents/{doc}", page(document_page, space="patient"), methods=["GET"]),
        Route(
            "/patient/documents/{doc}/contenu",
            page(document_content, space="patient"),
            methods=["GET"],
        ),
        Route(
            "/patient/documents/{doc}/visibilite",
            page(visibility, space="patient"),
            methods=["POST"],
        ),
        Route("/patient/historique", page(history, space="patient"), methods=["GET"]),
    ]
