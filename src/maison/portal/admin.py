"""The administration space: identity-vigilance (potential duplicates, merge and unmerge), the
Annuaire import history, the audit chain's verification status, the platform's health. For the
professionals the server names as administrators (``--admin IDNPS``), through the API's
administration operations and ``Patient/$merge`` with their own token.

https://hl7.org/fhir/R5/patient-operation-merge.html, https://esante.gouv.fr/identitovigilance
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from maison.portal.fhir_client import ApiError
from maison.portal.web import PREFIX, Ctx, FormError, Redirect, Web
from maison.security.admin import ADMIN_SCOPE

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: The administration operations' output names, in French.
LABELS = {
    "entries": "Entrées",
    "head-seq": "Dernière entrée (numéro)",
    "head-hash": "Empreinte de tête",
    "checkpoint": "Dernier point de contrôle signé",
    "last-verification": "Dernière vérification",
    "never-verified": "Jamais vérifiée",
    "at": "Date",
    "time": "Date",
    "ok": "Chaîne intacte",
    "checked": "Entrées vérifiées",
    "problem": "Problème",
    "seq": "Numéro",
    "file": "Fichier",
    "files": "Fichiers",
    "kind": "Nature",
    "created": "Créées",
    "updated": "Mises à jour",
    "unchanged": "Inchangées",
    "rejected": "Rejetées",
    "deleted": "Supprimées",
    "duration": "Durée (s)",
    "seconds": "Durée (s)",
    "head": "Tête de chaîne",
    "hash": "Empreinte",
    "key": "Clé de signature",
    "unsigned": "Entrées depuis",
    "outcome": "Résultat",
    "by": "Par",
    "from": "Depuis l'entrée",
    "last": "Jusqu'à l'entrée",
    "checkpoints": "Points de contrôle vérifiés",
    "unverified": "Entrées non encore vérifiées",
    "problem-seq": "Entrée en cause",
    "problem-kind": "Nature du problème",
    "rows": "Lignes",
    "persons": "Personnes ou structures",
    "deactivated": "Désactivées",
    "invalid": "Invalides",
    "run": "Exécution",
    "error": "Erreur",
    "total": "Total",
}
#: Codes of the operations' answers, in French.
WORDS = {
    "intact": "intacte",
    "broken": "rompue",
    "never": "jamais vérifiée",
    "cli": "ligne de commande",
    "api": "API",
    "annuaire": "Annuaire Santé",
    "finess": "FINESS",
    "failed": "échec",
    "ok": "réussi",
    "DPOT": "doublon potentiel",
    "COLP": "collision d'INS",
    "HOMD": "homonymes",
}


def _require_admin(ctx: Ctx) -> None:
    assert ctx.session is not None
    if ADMIN_SCOPE not in str(ctx.session.get("scope", "")).split():
        raise FormError(
            "Cet espace est réservé aux administrateurs de la plateforme (identitovigilance, "
            "délégué à la protection des données, exploitation).",
            403,
        )


def _value(part: dict[str, Any]) -> Any:
    for key, value in part.items():
        if key.startswith("value"):
            return value
    return part.get("resource")


def _parts(parameter: dict[str, Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for part in parameter.get("part") or []:
        out.setdefault(str(part.get("name")), []).append(_value(part))
    return out


def _params(body: dict[str, Any]) -> dict[str, list[Any]]:
    """A Parameters resource as name → values (a part-less parameter's value, or its parts)."""
    out: dict[str, list[Any]] = {}
    for p in body.get("parameter") or []:
        value = _parts(p) if p.get("part") else _value(p)
        out.setdefault(str(p.get("name")), []).append(value)
    return out


async def _health(ctx: Ctx) -> dict[str, Any]:
    response = await ctx.web.api.http.get("/healthz")
    metadata = await ctx.web.api.http.get("/metadata")
    software: dict[str, Any] = {}
    if metadata.status_code == 200:
        software = metadata.json().get("software") or {}
    return {
        "ok": response.status_code == 200,
        "status": response.status_code,
        "software": software,
    }


async def home(ctx: Ctx) -> Response:
    """The platform at a glance: health and the audit chain's last verification."""
    _require_admin(ctx)
    health = await _health(ctx)
    try:
        audit = _params(await ctx.json("/$audit-status"))
    except ApiError as error:
        audit = {"error": [error.message]}
    return ctx.render(
        "admin/accueil.html",
        title="Administration",
        health=health,
        audit=audit,
        labels=LABELS,
        words=WORDS,
    )


async def identities(ctx: Ctx) -> Response:
    """Potential duplicates, by score (``Patient/$identity-vigilance``)."""
    _require_admin(ctx)
    raw = ctx.request.query_params.get("seuil", "0.8")
    try:
        threshold = float(raw)
    except ValueError:
        raise FormError("Le seuil est un nombre entre 0 et 1 (par exemple 0.8).") from None
    if not 0 < threshold <= 1:
        raise FormError("Le seuil est un nombre entre 0 et 1 (par exemple 0.8).")
    body = await ctx.json(
        "/Patient/$identity-vigilance", [("threshold", str(threshold)), ("_count", "200")]
    )
    found = _params(body)
    pairs = []
    for pair in found.get("pair") or []:
        patients = [p for p in pair.get("patient") or [] if isinstance(p, dict)]
        if len(patients) != 2:
            continue
        pairs.append(
            {
                "a": patients[0],
                "b": patients[1],
                "score": (pair.get("score") or [None])[0],
                "reasons": [str(r) for r in pair.get("reason") or []],
                "kind": WORDS.get(str((pair.get("kind") or [""])[0]), ""),
            }
        )
    assert ctx.session is not None
    return ctx.render(
        "admin/identites.html",
        title="Identitovigilance",
        pairs=pairs,
        threshold=threshold,
        notice=ctx.session.pop("notice"),
        merged=ctx.session.get("merged"),
    )


def _patient_id(value: str) -> str:
    ref = value.removeprefix("Patient/")
    if not _ID.fullmatch(ref):
        raise FormError("Dossier patient inconnu.")
    return ref


async def merge(ctx: Ctx) -> Response:
    """Merge two records (``Patient/$merge``): the source is closed into the target; the
    preview first, then the merge itself once confirmed."""
    _require_admin(ctx)
    form = await ctx.request.form()
    source = _patient_id(str(form.get("source", "")))
    target = _patient_id(str(form.get("cible", "")))
    if source == target:
        raise FormError("Choisissez deux dossiers différents.")
    confirmed = str(form.get("confirmation", "")) == "oui"
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "source-patient", "valueReference": {"reference": f"Patient/{source}"}},
            {"name": "target-patient", "valueReference": {"reference": f"Patient/{target}"}},
            {"name": "preview", "valueBoolean": not confirmed},
        ],
    }
    answer = (await ctx.api("POST", "/Patient/$merge", json=body)).json()
    if not confirmed:
        return ctx.render(
            "admin/fusion.html",
            title="Fusionner deux dossiers",
            source=source,
            target=target,
            outcome=_params(answer),
        )
    assert ctx.session is not None
    provenance = next(
        (
            str(p["valueReference"].get("reference", "")).removeprefix("Provenance/")
            for p in answer.get("parameter") or []
            if p.get("name") == "provenance" and isinstance(p.get("valueReference"), dict)
        ),
        "",
    )
    ctx.session.set("notice", f"Le dossier Patient/{source} est fusionné dans Patient/{target}.")
    ctx.session.set("merged", {"source": source, "provenance": provenance})
    raise Redirect(f"{PREFIX}/admin/identites")


async def unmerge(ctx: Ctx) -> Response:
    """Undo a merge (``Patient/[id]/$unmerge``)."""
    _require_admin(ctx)
    form = await ctx.request.form()
    source = _patient_id(str(form.get("source", "")))
    provenance = str(form.get("provenance", "")).strip().removeprefix("Provenance/")
    if provenance and not _ID.fullmatch(provenance):
        raise FormError("Trace de fusion (Provenance) inconnue.")
    parameters = (
        [{"name": "provenance", "valueReference": {"reference": f"Provenance/{provenance}"}}]
        if provenance
        else []
    )
    await ctx.api(
        "POST",
        f"/Patient/{source}/$unmerge",
        json={"resourceType": "Parameters", "parameter": parameters},
    )
    assert ctx.session is not None
    ctx.session.pop("merged")
    assert ctx.session is not None
    ctx.session.set("notice", f"La fusion du dossier Patient/{source} est annulée.")
    raise Redirect(f"{PREFIX}/admin/identites")


async def imports(ctx: Ctx) -> Response:
    """The Annuaire Santé and FINESS imports, newest first (``$annuaire-imports``)."""
    _require_admin(ctx)
    found = _params(await ctx.json("/$annuaire-imports", [("_count", "100")]))
    runs = [run for run in found.get("import") or [] if isinstance(run, dict)]
    return ctx.render(
        "admin/imports.html", title="Imports de l'annuaire", runs=runs, labels=LABELS, words=WORDS
    )


def routes(web: Web) -> list[Route]:
    """The administration pages (a professional named administrator)."""
    p = web.page
    return [
        Route("/admin/", p(home, space="pro"), methods=["GET"]),
        Route("/admin/identites", p(identities, space="pro"), methods=["GET"]),
        Route("/admin/identites/fusion", p(merge, space="pro"), methods=["POST"]),
        Route("/admin/identites/defusion", p(unmerge, space="pro"), methods=["POST"]),
        Route("/admin/imports", p(imports, space="pro"), methods=["GET"]),
    ]
