"""The professional space: find a patient by INS, the DMP access check, the documents the rules
let me read, the patient's consent, the bris de glace.

https://esante.gouv.fr/produits-services/dmp (TD0.2 access check), https://profiles.ihe.net/ITI/MHD/
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from maison.portal import documents
from maison.portal.content import content_response, document_view
from maison.portal.fhir_client import ApiError
from maison.portal.web import PREFIX, Ctx, FormError, Redirect, Web
from maison.services.smart.patients import normalize_ins

#: The INS systems a matricule may belong to: NIR, NIA, then the test and demo OIDs of the
#: INSi test platforms (domain spec §1), tried in this order.
INS_SYSTEMS = tuple(f"urn:oid:1.2.250.1.213.1.4.{n}" for n in (8, 9, 10, 11))


def _values(parameters: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in parameters.get("parameter") or []:
        for key, value in p.items():
            if key.startswith("value"):
                out[str(p.get("name"))] = value
    return out


async def access_check(ctx: Ctx, ins: str, system: str | None = None) -> dict[str, Any]:
    """``Patient/$dmp-access``: does the patient have an open DMP, and may I read it (the
    matricule looked up under each INS system until one knows it)."""
    problem: ApiError | None = None
    for candidate in (system,) if system else INS_SYSTEMS:
        try:
            body = await ctx.json("/Patient/$dmp-access", [("identifier", f"{candidate}|{ins}")])
        except ApiError as error:
            if error.status != 404:
                raise
            problem = error
            continue
        values = _values(body)
        values["system"] = candidate
        return values
    assert problem is not None
    raise problem


async def search_page(ctx: Ctx) -> Response:
    """The patient search form."""
    return ctx.render("pro/recherche.html", title="Rechercher un patient", ins="", error=None)


async def search(ctx: Ctx) -> Response:
    """Find a patient by INS (validated here: 15 characters with a valid key)."""
    form = await ctx.request.form()
    raw = str(form.get("ins", ""))
    ins = normalize_ins(raw)
    if ins is None:
        return ctx.render(
            "pro/recherche.html",
            400,
            title="Rechercher un patient",
            ins=raw[:40],
            error="Saisissez le matricule INS du patient : 15 caractères (NIR ou NIA), clé "
            "comprise.",
        )
    try:
        access = await access_check(ctx, ins)
    except ApiError as problem:
        if problem.status in (404, 422):
            return ctx.render(
                "pro/recherche.html",
                problem.status,
                title="Rechercher un patient",
                ins=raw[:40],
                error="Aucun patient n'a ce matricule INS sur la plateforme.",
            )
        raise
    patient = str((access.get("patient") or {}).get("reference") or "")
    assert ctx.session is not None
    ctx.session.set(
        "dossier",
        {"ins": ins, "system": access["system"], "patient": patient.removeprefix("Patient/")},
    )
    raise Redirect(f"{PREFIX}/pro/dossier")


def _current(ctx: Ctx) -> dict[str, str]:
    assert ctx.session is not None
    dossier = ctx.session.get("dossier")
    if not isinstance(dossier, dict) or not dossier.get("patient"):
        raise Redirect(f"{PREFIX}/pro/")
    return {
        "ins": str(dossier["ins"]),
        "system": str(dossier.get("system") or ""),
        "patient": str(dossier["patient"]),
    }


async def record_page(ctx: Ctx) -> Response:
    """The patient's DMP as I may see it: the access check, then the documents."""
    current = _current(ctx)
    access = await access_check(ctx, current["ins"], current["system"] or None)
    rows: list[documents.DocumentRow] = []
    total = 0
    filters = documents.filters_of(ctx)
    if access.get("authorized"):
        rows, total = await documents.search(ctx, current["patient"], filters)
    assert ctx.session is not None
    return ctx.render(
        "pro/dossier.html",
        title="Dossier du patient",
        access=access,
        ins=current["ins"],
        rows=rows,
        total=total,
        filters=filters,
        labels=documents.LABELS,
        notice=ctx.session.pop("notice"),
    )


async def document_page(ctx: Ctx) -> Response:
    """One document of the current patient."""
    _current(ctx)
    resource = await documents.read(ctx, str(ctx.request.path_params["doc"]))
    view = await document_view(ctx, resource)
    return ctx.render("pro/document.html", title=view["row"].title, labels=documents.LABELS, **view)


async def document_content(ctx: Ctx) -> Response:
    """A document's content (ITI-68)."""
    _current(ctx)
    resource = await documents.read(ctx, str(ctx.request.path_params["doc"]))
    return await content_response(ctx, resource)


async def consent(ctx: Ctx) -> Response:
    """Record the patient's consent, given to me orally, for this consultation."""
    current = _current(ctx)
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "method", "valueCode": "oral"}],
    }
    await ctx.api("POST", f"/Patient/{current['patient']}/$dmp-consent", json=body)
    assert ctx.session is not None
    ctx.session.set("notice", "Le consentement du patient est enregistré pour cette consultation.")
    raise Redirect(f"{PREFIX}/pro/dossier")


async def emergency(ctx: Ctx) -> Response:
    """Break the glass: a reason is required, the patient is told, the window is short."""
    current = _current(ctx)
    form = await ctx.request.form()
    reason = str(form.get("motif", "")).strip()
    if len(reason) < 10:
        raise FormError("Indiquez le motif de l'accès en urgence (10 caractères au moins).")
    if str(form.get("confirmation", "")) != "oui":
        raise FormError("Confirmez que la situation est une urgence.")
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueString": reason[:1000]}],
    }
    await ctx.api("POST", f"/Patient/{current['patient']}/$bris-de-glace", json=body)
    assert ctx.session is not None
    ctx.session.set(
        "notice",
        "Accès en urgence ouvert pour une durée limitée. Le patient en sera informé.",
    )
    raise Redirect(f"{PREFIX}/pro/dossier")


def routes(web: Web) -> list[Route]:
    """The professional space's pages."""
    page = web.page
    return [
        Route("/pro/", page(search_page, space="pro"), methods=["GET"]),
        Route("/pro/recherche", page(search, space="pro"), methods=["POST"]),
        Route("/pro/dossier", page(record_page, space="pro"), methods=["GET"]),
        Route("/pro/dossier/documents/{doc}", page(document_page, space="pro"), methods=["GET"]),
        Route(
            "/pro/dossier/documents/{doc}/contenu",
            page(document_content, space="pro"),
            methods=["GET"],
        ),
        Route("/pro/dossier/consentement", page(consent, space="pro"), methods=["POST"]),
        Route("/pro/dossier/bris-de-glace", page(emergency, space="pro"), methods=["POST"]),
    ]
