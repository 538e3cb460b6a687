"""The patient space: my documents, one document, hiding it, who accessed my record.

https://www.monespacesante.fr/ (the service it mirrors), https://profiles.ihe.net/ITI/MHD/
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from maison.portal import documents
from maison.portal.content import content_response, document_view
from maison.portal.web import PREFIX, Ctx, FormError, Redirect, Web


def _patient(ctx: Ctx) -> str:
    assert ctx.session is not None
    return str((ctx.session.get("user") or {}).get("patient"))


async def document_list(ctx: Ctx) -> Response:
    """My documents, by category and date, with filters and pages (ITI-67)."""
    filters = documents.filters_of(ctx)
    page = documents.page_of(ctx)
    rows, total = await documents.search(ctx, _patient(ctx), filters, page)
    categories = await documents.categories(ctx, _patient(ctx))
    news = 0 if ctx.request.headers.get("hx-request") else await new_accesses(ctx)
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
        news=news,
        notice=ctx.session.pop("notice") if ctx.session is not None else None,
        page=page,
        pages=max(1, -(-total // documents.PAGE_SIZE)),
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


def _codes(concepts: Any) -> list[dict[str, Any]]:
    return [c for concept in concepts or [] for c in concept.get("coding") or []]


def access_row(event: dict[str, Any]) -> dict[str, Any]:
    """One access of the trail as the patient reads it (who, profession, structure, when,
    what, bris de glace): https://profiles.ihe.net/ITI/BALP/."""
    row: dict[str, Any] = {"name": "", "role": "", "structure": "", "patient": False}
    emergency = any(c.get("code") == "BTG" for c in _codes(event.get("purposeOfEvent")))
    for agent in event.get("agent") or []:
        who = agent.get("who") or {}
        types = [c.get("code") for c in (agent.get("type") or {}).get("coding") or []]
        if agent.get("requestor"):
            roles = _codes(agent.get("role"))
            row["patient"] = any(c.get("code") == "PAT" for c in roles)
            row["name"] = str(who.get("display") or agent.get("name") or "")
            if not row["name"]:
                row["name"] = (
                    "Vous"
                    if row["patient"]
                    else str((who.get("identifier") or {}).get("value") or "")
                )
            if roles and not row["patient"]:
                row["role"] = str(roles[0].get("display") or roles[0].get("code") or "")
                row["role_coding"] = roles[0]
            emergency = emergency or any(
                c.get("code") == "BTG" for c in _codes(agent.get("purposeOfUse"))
            )
        elif "PROV" in types:
            row["structure"] = str((who.get("identifier") or {}).get("value") or "")
    subtype = ", ".join(
        str(c.get("display") or c.get("code"))
        for c in event.get("subtype") or []
        if "restful-interaction" in str(c.get("system")) or "$" in str(c.get("code"))
    )
    row.update(
        {
            "when": str(event.get("recorded") or ""),
            "action": ACTION_WORDS.get(subtype, subtype)
            or str((event.get("type") or {}).get("display") or ""),
            "outcome": "refusé" if event.get("outcome") not in (None, "0") else "autorisé",
            "emergency": emergency,
        }
    )
    return row


#: The interactions in words.
ACTION_WORDS = {
    "read": "Consultation",
    "vread": "Consultation",
    "search-type": "Recherche",
    "search": "Recherche",
    "create": "Ajout",
    "update": "Modification",
    "patch": "Modification",
    "delete": "Suppression",
    "history-instance": "Historique",
    "operation": "Opération",
}


async def name_roles(ctx: Ctx, rows: list[dict[str, Any]]) -> None:
    """Professions as words (TRE_G15 through ``CodeSystem/$lookup``)."""
    for row in rows:
        coding = row.pop("role_coding", None)
        if coding and coding.get("system") and not coding.get("display"):
            key = (str(coding["system"]), str(coding.get("code")))
            if key not in ctx.web.displays:
                ctx.web.displays[key] = await documents.lookup(ctx, *key)
            row["role"] = ctx.web.displays[key] or row["role"]


async def trail(ctx: Ctx, since: str | None = None) -> list[dict[str, Any]]:
    """The record's accesses the API lets the patient read, newest first."""
    params = [("_count", "100")]
    if since:
        params.append(("date", f"gt{since}"))
    bundle = await ctx.json("/AuditEvent", params)
    rows = [
        access_row(e["resource"])
        for e in bundle.get("entry") or []
        if (e.get("resource") or {}).get("resourceType") == "AuditEvent"
    ]
    await name_roles(ctx, rows)
    return rows


def _seen_key(pid: str) -> str:
    return f"portal-seen:{pid}"[:64]


async def history(ctx: Ctx) -> Response:
    """Who accessed my record: the AuditEvents the API lets me read; the visit is remembered
    so the next sign-in tells what is new."""
    pid = _patient(ctx)
    events = await trail(ctx)
    if events:
        records = ctx.web.sessions.store
        await run_in_threadpool(records.set_meta, _seen_key(pid), events[0]["when"])
        assert ctx.session is not None
        ctx.session.set("news", {"since": events[0]["when"], "count": 0})
    return ctx.render("patient/historique.html", title="Historique des accès", events=events)


async def new_accesses(ctx: Ctx) -> int:
    """How many accesses by others since the patient last read his history. The session keeps
    the count and the newest event looked at, so each page reads only what came since (the
    patient's own page views add events too)."""
    assert ctx.session is not None
    pid = _patient(ctx)
    news = ctx.session.get("news")
    if not isinstance(news, dict):
        seen = await run_in_threadpool(ctx.web.sessions.store.get_meta, _seen_key(pid))
        news = {"since": seen, "count": 0}
    events = await trail(ctx, news.get("since"))
    count = int(news.get("count", 0)) + sum(1 for e in events if not e["patient"])
    since = events[0]["when"] if events else news.get("since")
    ctx.session.set("news", {"since": since, "count": count})
    return count


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
