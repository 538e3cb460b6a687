"""The professional space: find a patient by INS, the DMP access check, the documents the rules
let me read, the patient's consent, the bris de glace.

https://esante.gouv.fr/produits-services/dmp (TD0.2 access check), https://profiles.ihe.net/ITI/MHD/
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from maison.portal import documents
from maison.portal.content import content_response, document_view
from maison.portal.fhir_client import ApiError, parameter_values
from maison.portal.patient import access_row, name_roles
from maison.portal.pdf_form import read_pdf_form
from maison.portal.signin import human_name
from maison.portal.upload import submission
from maison.portal.web import PREFIX, Ctx, FormError, Redirect, Web
from maison.portal.words import rule_words
from maison.services.dmp.metadata import nos_url
from maison.services.ins.reliability import STATUS_DISPLAY, read_reliability
from maison.services.smart.patients import normalize_ins

#: The INS systems a matricule may belong to: NIR, NIA, then the test and demo OIDs of the
#: INSi test platforms (domain spec §1), tried in this order.
INS_SYSTEMS = tuple(f"urn:oid:1.2.250.1.213.1.4.{n}" for n in (8, 9, 10, 11))


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
        values = parameter_values(body)
        values["system"] = candidate
        values["reason_fr"] = rule_words(str(values.get("rule", ""))) or values.get("reason")
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
        return await _open_record(ctx, ins, None)
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


_COG = re.compile(r"\d[0-9AB]\d{3}")


def _traits(form: Any) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The traits of the form, checked here (not only in the browser), and the ``$ins-search``
    parameters they make (https://esante.gouv.fr/produits-services/ins)."""
    values = {
        k: str(form.get(k, "")).strip() for k in ("nom", "prenom", "sexe", "naissance", "lieu")
    }
    if not values["nom"] or len(values["nom"]) > 100:
        raise FormError("Saisissez le nom de naissance du patient.")
    if not values["prenom"] or len(values["prenom"]) > 100:
        raise FormError("Saisissez un prénom du patient (le premier prénom de naissance).")
    if values["sexe"] not in ("M", "F"):
        raise FormError("Indiquez le sexe du patient.")
    day = values["naissance"]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) or day > date.today().isoformat():
        raise FormError("Indiquez la date de naissance (AAAA-MM-JJ, pas dans le futur).")
    if values["lieu"] and not _COG.fullmatch(values["lieu"]):
        raise FormError("Le lieu de naissance est un code INSEE (COG) de 5 caractères.")
    params = [
        ("NomNaissance", values["nom"]),
        ("Prenom", values["prenom"]),
        ("Sexe", values["sexe"]),
        ("DateNaissance", day),
    ]
    if values["lieu"]:
        params.append(("LieuNaissance", values["lieu"]))
    return values, params


async def search_traits(ctx: Ctx) -> Response:
    """Find a patient by his traits through the INSi-compatible téléservice (``$ins-search``),
    then open his record by the INS it returns."""
    form = await ctx.request.form()
    try:
        values, params = _traits(form)
    except FormError as error:
        return ctx.render(
            "pro/recherche.html", 400, title="Rechercher un patient", ins="", error=None,
            traits=dict(form), traits_error=error.message,
        )  # fmt: skip
    body = await ctx.json("/Patient/$ins-search", params)
    answer = parameter_values(body)
    code = str(answer.get("CodeCR", ""))
    if code != "00":
        message = {
            "01": "Le téléservice INSi ne connaît aucune identité avec ces traits.",
            "02": "Plusieurs identités correspondent : ajoutez un autre prénom ou le lieu de "
            "naissance.",
        }.get(code, f"Le téléservice INSi a répondu : {answer.get('LibelleCR', code)}.")
        return ctx.render(
            "pro/recherche.html", 404 if code == "01" else 409, title="Rechercher un patient",
            ins="", error=None, traits=values, traits_error=message,
        )  # fmt: skip
    patient = next(
        (
            p.get("resource") or {}
            for p in body.get("parameter") or []
            if p.get("name") == "patient"
        ),
        {},
    )
    ins = next(
        (
            (str(i["system"]), str(i["value"]))
            for i in patient.get("identifier") or []
            if str(i.get("system", "")) in INS_SYSTEMS
        ),
        None,
    )
    if ins is None:
        raise FormError("Le téléservice INSi n'a pas renvoyé de matricule INS.", 502)
    return await _open_record(ctx, ins[1], ins[0])


async def _open_record(ctx: Ctx, ins: str, system: str | None) -> Response:
    access = await access_check(ctx, ins, system)
    patient = str((access.get("patient") or {}).get("reference") or "")
    assert ctx.session is not None
    ctx.session.set(
        "dossier",
        {"ins": ins, "system": access["system"], "patient": patient.removeprefix("Patient/")},
    )
    raise Redirect(f"{PREFIX}/pro/dossier")


async def identity(ctx: Ctx, patient_id: str) -> dict[str, Any]:
    """The patient's identity as the platform holds it: traits and RNIV status
    (https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-identity-reliability.html)."""

    try:
        patient = await ctx.json(f"/Patient/{patient_id}")
    except ApiError:
        return {}
    status = read_reliability(patient).status
    return {
        "name": human_name(patient),
        "birth_date": patient.get("birthDate"),
        "sex": {"male": "masculin", "female": "féminin"}.get(str(patient.get("gender")), ""),
        "status": status,
        "status_label": STATUS_DISPLAY.get(status or "", "Statut d'identité inconnu"),
    }


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
    who = await identity(ctx, current["patient"])
    rows: list[documents.DocumentRow] = []
    total = 0
    filters = documents.filters_of(ctx)
    page = documents.page_of(ctx)
    categories: list[tuple[str, str]] = []
    if access.get("authorized"):
        rows, total = await documents.search(ctx, current["patient"], filters, page)
        categories = await documents.categories(ctx, current["patient"])
    assert ctx.session is not None
    return ctx.render(
        "pro/dossier.html",
        title="Dossier du patient",
        access=access,
        ins=current["ins"],
        identity=who,
        rows=rows,
        total=total,
        filters=filters,
        categories=categories,
        page=page,
        pages=max(1, -(-total // documents.PAGE_SIZE)),
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


#: HL7 v3 confidentiality codes a DMP document may carry (JDV_J08), with their French words.
CONFIDENTIALITY = {"N": "Normale", "R": "Restreinte", "V": "Très restreinte"}


async def document_types(ctx: Ctx) -> list[tuple[str, str, str]]:
    """The DMP document types (JDV_J66) as ``(system, code, display)``, from the platform's
    terminology (``ValueSet/$expand``: https://hl7.org/fhir/R4/valueset-operation-expand.html)."""
    url = nos_url("JDV_J66-TypeCode-DMP")
    try:
        body = await ctx.json("/ValueSet/$expand", [("url", url), ("count", "1000")])
    except ApiError:
        return []
    found = [
        (str(c.get("system")), str(c.get("code")), str(c.get("display") or c.get("code")))
        for c in (body.get("expansion") or {}).get("contains") or []
        if c.get("code")
    ]
    return sorted(found, key=lambda t: t[2].lower())


async def class_of(ctx: Ctx, system: str, code: str) -> tuple[str, str, str] | None:
    """The class ASS_X16 gives a type (``ConceptMap/$translate``: https://hl7.org/fhir/R4/conceptmap-operation-translate.html)."""
    url = nos_url("ASS_X16-CorrespondanceType-Classe-DMP")
    try:
        body = await ctx.json(
            "/ConceptMap/$translate", [("url", url), ("system", system), ("code", code)]
        )
    except ApiError:
        return None
    for p in body.get("parameter") or []:
        if p.get("name") != "match":
            continue
        for part in p.get("part") or []:
            concept = part.get("valueCoding") or {}
            if part.get("name") == "concept" and concept.get("code"):
                return (
                    str(concept.get("system")),
                    str(concept["code"]),
                    str(concept.get("display") or concept["code"]),
                )
    return None


async def add_page(ctx: Ctx, error: str | None = None, status: int = 200) -> Response:
    """The form that adds a PDF to the patient's DMP as a CDA level 1."""
    current = _current(ctx)
    types = await document_types(ctx)
    return ctx.render(
        "pro/ajout.html",
        status,
        title="Ajouter un document",
        ins=current["ins"],
        types=types,
        confidentiality=CONFIDENTIALITY,
        error=error,
    )


async def add(ctx: Ctx) -> Response:
    """Check the form on the server, build the CDA N1 and its metadata, feed it (ITI-65)."""

    current = _current(ctx)
    try:
        sent = await read_pdf_form(ctx, "de l'acte")
    except FormError as error:
        return await add_page(ctx, error.message, error.status)
    form, data, title, day = sent.fields, sent.data, sent.title, sent.day
    confidentiality = str(form.get("confidentialite", "N"))
    if confidentiality not in CONFIDENTIALITY:
        return await add_page(ctx, "Niveau de confidentialité inconnu.", 400)
    chosen = str(form.get("type", ""))
    types = {
        f"{system}|{code}": (system, code, display)
        for system, code, display in await document_types(ctx)
    }
    if chosen not in types:
        return await add_page(ctx, "Choisissez le type du document dans la liste.", 400)
    system, code, display = types[chosen]
    klass = await class_of(ctx, system, code)
    if klass is None:
        return await add_page(ctx, "La classe de ce type de document est inconnue (ASS_X16).", 422)
    patient = await ctx.json(f"/Patient/{current['patient']}")
    assert ctx.session is not None
    user = ctx.session.get("user") or {}
    author = None
    reference = user.get("fhirUser")
    if isinstance(reference, str) and reference.startswith("Practitioner/"):
        try:
            author = await ctx.json(f"/{reference}")
        except ApiError:
            author = None
    try:
        bundle = submission(
            patient,
            user.get("professional") or {},
            author,
            data,
            type_code=code,
            type_display=display,
            class_code=klass[1],
            class_display=klass[2],
            title=title,
            service_date=day,
            confidentiality=confidentiality,
        )
    except ValueError as error:
        return await add_page(ctx, str(error), 400)
    await ctx.api("POST", "/", json=bundle)
    ctx.session.pop(f"categories:{current['patient']}")
    ctx.session.set("notice", f"Le document « {title} » est ajouté au DMP du patient.")
    raise Redirect(f"{PREFIX}/pro/dossier")


async def my_log(ctx: Ctx) -> Response:
    """My own accesses, as the trail records them (the API gives a professional his own only)."""

    bundle = await ctx.json("/AuditEvent", [("_count", "100")])
    events = [
        access_row(e["resource"])
        for e in bundle.get("entry") or []
        if (e.get("resource") or {}).get("resourceType") == "AuditEvent"
    ]
    await name_roles(ctx, events)
    return ctx.render("pro/journal.html", title="Mes accès", events=events)


def routes(web: Web) -> list[Route]:
    """The professional space's pages."""
    page = web.page
    return [
        Route("/pro/", page(search_page, space="pro"), methods=["GET"]),
        Route("/pro/recherche", page(search, space="pro"), methods=["POST"]),
        Route("/pro/recherche-traits", page(search_traits, space="pro"), methods=["POST"]),
        Route("/pro/dossier", page(record_page, space="pro"), methods=["GET"]),
        Route("/pro/dossier/documents/{doc}", page(document_page, space="pro"), methods=["GET"]),
        Route(
            "/pro/dossier/documents/{doc}/contenu",
            page(document_content, space="pro"),
            methods=["GET"],
        ),
        Route("/pro/dossier/consentement", page(consent, space="pro"), methods=["POST"]),
        Route("/pro/dossier/ajouter", page(add_page, space="pro"), methods=["GET"]),
        Route("/pro/dossier/ajouter", page(add, space="pro"), methods=["POST"]),
        Route("/pro/dossier/bris-de-glace", page(emergency, space="pro"), methods=["POST"]),
        Route("/pro/journal", page(my_log, space="pro"), methods=["GET"]),
    ]
