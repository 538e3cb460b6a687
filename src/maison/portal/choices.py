"""The patient's choices about his DMP: oppositions (feeding, consultation, access in an
emergency), his équipes de soins, the professionals he blocked, read and changed through the
DMP operations of the API.

https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000048293744 (R. 1111-41 and following,
the patient's rights on his DMP), https://hl7.org/fhir/R4/consent.html
"""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from maison.portal.fhir_client import parameter_values
from maison.portal.signin import human_name
from maison.portal.web import PREFIX, Ctx, FormError, Redirect, Web
from maison.services.dmp.record import DECISION_SYSTEM, Kind

#: The oppositions the page offers, with what they mean.
OPPOSITIONS = {
    "feeding": "Je m'oppose à ce que des documents soient ajoutés à mon dossier",
    "consultation": "Je m'oppose à ce que les professionnels consultent mon dossier",
    "emergency": "Je m'oppose à l'accès en urgence (bris de glace) à mon dossier",
}
CHOICES = f"{PREFIX}/patient/choix"
_PRACTITIONER = re.compile(r"(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}")
_CARE_TEAM = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: RPPS (11 digits), ADELI (9 characters) or IDNPS (the RPPS or ADELI prefixed).
_NATIONAL_ID = re.compile(r"[0-9A-Za-z]{9,12}")


def _patient(ctx: Ctx) -> str:
    assert ctx.session is not None
    return str((ctx.session.get("user") or {}).get("patient"))


def _kind(consent: dict[str, Any]) -> str | None:
    for category in consent.get("category") or []:
        for coding in category.get("coding") or []:
            if coding.get("system") == DECISION_SYSTEM:
                return str(coding.get("code"))
    return None


def _actor(consent: dict[str, Any]) -> dict[str, Any]:
    for actor in (consent.get("provision") or {}).get("actor") or []:
        return dict(actor.get("reference") or {})
    return {}


def decisions(consents: list[dict[str, Any]]) -> dict[str, Any]:
    """The decisions in force, newest first per kind and actor (the newest active one decides:
    https://hl7.org/fhir/R4/consent.html)."""
    consents = sorted(consents, key=lambda c: str(c.get("dateTime") or ""), reverse=True)
    emergency: bool | None = None
    blocked: dict[str, dict[str, Any]] = {}
    teams: dict[str, bool] = {}
    seen_actors: set[str] = set()
    for consent in consents:
        if consent.get("status") != "active":
            continue
        kind = _kind(consent)
        permit = (consent.get("provision") or {}).get("type") == "permit"
        if kind == Kind.EMERGENCY.value and emergency is None:
            emergency = not permit
        elif kind == Kind.BLOCK.value:
            actor = _actor(consent)
            ref = str(actor.get("reference") or "")
            if ref and ref not in seen_actors:
                seen_actors.add(ref)
                if not permit:
                    blocked[ref] = actor
        elif kind == Kind.CARE_TEAM.value:
            source = str((consent.get("sourceReference") or {}).get("reference") or "")
            ref = source or str(_actor(consent).get("reference") or "")
            if ref and ref not in teams:
                teams[ref] = permit
    return {"emergency_opposed": bool(emergency), "blocked": blocked, "teams": teams}


async def page(ctx: Ctx) -> Response:
    """My choices: the DMP's state, my oppositions, my équipes de soins, who I blocked."""
    pid = _patient(ctx)
    state = parameter_values(
        await ctx.json("/Patient/$dmp-access", [("patient", f"Patient/{pid}")])
    )
    consents = await ctx.json("/Consent", [("patient", f"Patient/{pid}"), ("_count", "500")])
    decided = decisions([e["resource"] for e in consents.get("entry") or [] if e.get("resource")])
    teams_bundle = await ctx.json("/CareTeam", [("subject", f"Patient/{pid}"), ("_count", "100")])
    teams = []
    for entry in teams_bundle.get("entry") or []:
        team = entry.get("resource") or {}
        if team.get("resourceType") != "CareTeam":
            continue
        ref = f"CareTeam/{team.get('id')}"
        members = [
            str((p.get("member") or {}).get("display") or "") for p in team.get("participant") or []
        ]
        teams.append(
            {
                "id": team.get("id"),
                "name": team.get("name") or "Équipe de soins",
                "members": [m for m in members if m],
                "consent": decided["teams"].get(ref),
            }
        )
    opposed = {
        "feeding": bool(state.get("feeding-opposed")),
        "consultation": bool(state.get("consultation-opposed")),
        "emergency": decided["emergency_opposed"],
    }
    assert ctx.session is not None
    return ctx.render(
        "patient/choix.html",
        title="Mes choix",
        state=state,
        opposed=opposed,
        oppositions=OPPOSITIONS,
        teams=teams,
        blocked=decided["blocked"],
        notice=ctx.session.pop("notice"),
    )


async def _operation(ctx: Ctx, name: str, parameters: list[dict[str, Any]], notice: str) -> None:
    body = {"resourceType": "Parameters", "parameter": parameters}
    await ctx.api("POST", f"/Patient/{_patient(ctx)}/${name}", json=body)
    assert ctx.session is not None
    ctx.session.set("notice", notice)


async def opposition(ctx: Ctx) -> Response:
    """Set or lift one opposition (``$dmp-opposition``)."""
    form = await ctx.request.form()
    kind = str(form.get("kind", ""))
    if kind not in OPPOSITIONS:
        raise FormError("Choix inconnu.")
    opposed = str(form.get("opposed", "")) == "oui"
    words = "enregistrée" if opposed else "levée"
    await _operation(
        ctx,
        "dmp-opposition",
        [{"name": "kind", "valueCode": kind}, {"name": "opposed", "valueBoolean": opposed}],
        f"Votre opposition est {words}.",
    )
    raise Redirect(CHOICES)


async def block(ctx: Ctx) -> Response:
    """Block a professional found by his RPPS/ADELI number (``$dmp-block``)."""
    form = await ctx.request.form()
    number = re.sub(r"\s", "", str(form.get("identifiant", "")))
    if not _NATIONAL_ID.fullmatch(number):
        raise FormError("Saisissez le numéro RPPS (11 chiffres) ou ADELI (9 caractères).")
    found = await ctx.json("/Practitioner", [("identifier", number), ("_count", "2")])
    people = [e["resource"] for e in found.get("entry") or [] if e.get("resource", {}).get("id")]
    if not people:
        raise FormError("Aucun professionnel n'a ce numéro dans l'annuaire.", 404)
    person = people[0]
    ref = {"reference": f"Practitioner/{person['id']}"}
    await _operation(
        ctx,
        "dmp-block",
        [{"name": "practitioner", "valueReference": ref}],
        f"{human_name(person) or 'Le professionnel'} ne peut plus accéder à votre dossier.",
    )
    raise Redirect(CHOICES)


async def unblock(ctx: Ctx) -> Response:
    """Lift a block (``$dmp-block`` with ``unblock``)."""
    form = await ctx.request.form()
    ref = str(form.get("professionnel", ""))
    if not _PRACTITIONER.fullmatch(ref):
        raise FormError("Professionnel inconnu.")
    await _operation(
        ctx,
        "dmp-block",
        [
            {"name": "practitioner", "valueReference": {"reference": ref}},
            {"name": "unblock", "valueBoolean": True},
        ],
        "Le professionnel peut de nouveau accéder à votre dossier selon vos autres choix.",
    )
    raise Redirect(CHOICES)


async def care_team(ctx: Ctx) -> Response:
    """Consent to (or refuse) an équipe de soins' access (``$dmp-care-team``)."""
    form = await ctx.request.form()
    team = str(form.get("equipe", ""))
    if not _CARE_TEAM.fullmatch(team):
        raise FormError("Équipe de soins inconnue.")
    permit = str(form.get("accord", "")) == "oui"
    await _operation(
        ctx,
        "dmp-care-team",
        [
            {"name": "careTeam", "valueReference": {"reference": f"CareTeam/{team}"}},
            {"name": "permit", "valueBoolean": permit},
        ],
        "Votre accord est enregistré." if permit else "Votre refus est enregistré.",
    )
    raise Redirect(CHOICES)


def routes(web: Web) -> list[Route]:
    """The patient's choices pages."""
    p = web.page
    return [
        Route("/patient/choix", p(page, space="patient"), methods=["GET"]),
        Route("/patient/choix/opposition", p(opposition, space="patient"), methods=["POST"]),
        Route("/patient/choix/bloquer", p(block, space="patient"), methods=["POST"]),
        Route("/patient/choix/debloquer", p(unblock, space="patient"), methods=["POST"]),
        Route("/patient/choix/equipe", p(care_team, space="patient"), methods=["POST"]),
    ]
