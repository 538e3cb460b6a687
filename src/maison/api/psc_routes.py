"""HTTP routes of the local Pro Santé Connect-compatible provider, under ``/psc``.

https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
"""

from __future__ import annotations

import html
import logging
import os

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from maison.api.oauth_http import NO_STORE, oauth_error, oauth_json
from maison.api.pages import CSP, alert, buttons, input_group, page
from maison.api.services import Services
from maison.security.professional import ProfessionalContextError
from maison.services.psc.annuaire_lookup import userinfo_for_professional
from maison.services.psc.provider import (
    DEV_PASSWORD,
    AuthorizeError,
    AuthorizeRequest,
    OAuthError,
    PscProvider,
    default_clients,
    load_key,
)

log = logging.getLogger("maison.psc")

PREFIX = "/psc"
#: No caching of anything the provider answers (RFC 6749 §5.1), no framing of its pages.
_PAGE_HEADERS = {
    **NO_STORE,
    "x-frame-options": "DENY",
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
}


def make_provider(services: Services) -> PscProvider:
    """The provider of this server: its own key in ``STATE/keys/psc/``, issuer
    ``BASE/psc``, test password ``MAISON_PSC_PASSWORD`` (default ``maison-test``), extra
    clients ``MAISON_PSC_CLIENTS`` (JSON): https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect."""
    settings = services.settings
    return PscProvider(
        key=load_key(settings.state_dir / "keys" / "psc"),
        issuer_url=f"{settings.base_url}{PREFIX}",
        audience=settings.audience or settings.base_url,
        records=services.store,
        clients=default_clients(os.environ.get("MAISON_PSC_CLIENTS")),
        password=os.environ.get("MAISON_PSC_PASSWORD") or DEV_PASSWORD,
    )


TITLE = "Connexion Pro Santé Connect — environnement de test"


def _page(body: str, status: int = 200) -> HTMLResponse:
    return page(
        TITLE,
        body,
        status,
        _PAGE_HEADERS,
        head_title=TITLE,
        tagline="Pro Santé Connect — fournisseur d'identité de test",
    )


def _error_page(error: AuthorizeError) -> HTMLResponse:
    return _page(alert(f"Demande refusée ({error.error}) : {error.description}."), 400)


def _sign_in_form(request: AuthorizeRequest, message: str = "", identifier: str = "") -> str:
    hidden = "".join(
        f'<input type=hidden name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in request.hidden_fields().items()
    )
    notice = alert(message) if message else ""
    return (
        f"<p>Application : <b>{html.escape(request.client_id)}</b>. Environnement de test : "
        "tout professionnel de l'Annuaire Santé importé peut se connecter.</p>"
        f'{notice}<form method=post action="{PREFIX}/auth">{hidden}'
        + input_group(
            "Identifiant (RPPS, ADELI ou IDNPS)",
            "identifier",
            f'name=identifier required autocomplete=username value="{html.escape(identifier)}"',
            "Par exemple un numéro RPPS, à 11 chiffres",
        )
        + input_group(
            "Mot de passe de test",
            "password",
            "name=password type=password autocomplete=current-password",
            "Inutile pour l'approbation e-CPS simulée",
        )
        + buttons(
            (
                '<button class="fr-btn" name=action value=password>Se connecter</button>',
                '<button class="fr-btn fr-btn--secondary" name=action value=ecps>'
                "Approbation e-CPS simulée</button>",
            ),
            inline=True,
        )
        + "</form>"
    )


def psc_routes(services: Services) -> list[Route]:
    """The provider's endpoints under ``/psc``: discovery, JWKS, authorize, token, userinfo,
    logout (https://openid.net/specs/openid-connect-core-1_0.html)."""
    provider = make_provider(services)

    async def discovery(_request: Request) -> Response:
        return oauth_json(provider.discovery())

    async def jwks(_request: Request) -> Response:
        return oauth_json(provider.jwks())

    async def authorize(request: Request) -> Response:
        if request.method == "POST":
            form = await request.form()
            params = {k: v for k, v in form.items() if isinstance(v, str)}
        else:
            params = dict(request.query_params)
        try:
            checked = provider.check_authorize(params)
        except AuthorizeError as error:
            log.info("PSC authorize refused: %s", error.error)
            if error.redirect:
                return RedirectResponse(error.redirect, 302, headers=NO_STORE)
            return _error_page(error)
        if request.method == "GET":
            return _page(_sign_in_form(checked))
        identifier = params.get("identifier", "").strip()
        if params.get("action") != "ecps" and not provider.check_password(
            params.get("password", "")
        ):
            return _page(_sign_in_form(checked, "Mot de passe de test incorrect.", identifier), 401)
        try:
            claims = await run_in_threadpool(
                userinfo_for_professional, services.store, services.defs, identifier
            )
        except ProfessionalContextError as error:
            log.info("PSC sign-in refused (%s)", error.reason)
            return _page(_sign_in_form(checked, error.message, identifier), 403)
        code = await run_in_threadpool(
            provider.issue_code, checked, str(claims["SubjectNameID"]), str(claims["sub"])
        )
        log.info("PSC sign-in of %s for client %s", claims["SubjectNameID"], checked.client_id)
        return RedirectResponse(provider.redirect_with_code(checked, code), 302, headers=NO_STORE)

    async def token(request: Request) -> Response:
        authorization = request.headers.get("authorization")
        basic = bool(authorization and authorization.lower().startswith("basic "))
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return oauth_error(
                OAuthError("invalid_request", "form-urlencoded body expected"), "psc", bearer=True
            )
        form = await request.form()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            answer = await run_in_threadpool(provider.token, params, authorization)
        except OAuthError as error:
            log.info("PSC token refused: %s (%s)", error.error, params.get("grant_type"))
            return oauth_error(error, "psc", bearer=not basic)
        return oauth_json(answer)

    async def userinfo(request: Request) -> Response:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return oauth_json(
                {"error": "invalid_token"}, 401, {"www-authenticate": 'Bearer realm="psc"'}
            )
        try:
            claims = await run_in_threadpool(provider.read_access_token, value.strip())
            info = await run_in_threadpool(
                userinfo_for_professional, services.store, services.defs, claims["SubjectNameID"]
            )
        except OAuthError as error:
            log.info("PSC userinfo refused: %s (%s)", error.error, error.description)
            return oauth_error(error, "psc", bearer=True)
        except ProfessionalContextError as error:
            log.info("PSC userinfo refused (%s)", error.reason)
            return oauth_error(OAuthError("invalid_token", error.message, 401), "psc", bearer=True)
        if info.get("sub") != claims.get("sub"):
            return oauth_error(
                OAuthError("invalid_token", "subject changed", 401), "psc", bearer=True
            )
        return oauth_json(info)

    async def logout(request: Request) -> Response:
        if request.method == "POST":
            form = await request.form()
            params = {k: v for k, v in form.items() if isinstance(v, str)}
        else:
            params = dict(request.query_params)
        try:
            target = await run_in_threadpool(provider.logout, params)
        except OAuthError as error:
            log.info("PSC logout refused: %s", error.description)
            return _page(alert(f"Déconnexion refusée : {error.description}."), 400)
        if target:
            return RedirectResponse(target, 302, headers=NO_STORE)
        return _page("<p>Vous êtes déconnecté de Pro Santé Connect (environnement de test).</p>")

    return [
        Route(f"{PREFIX}/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route(f"{PREFIX}/jwks", jwks, methods=["GET"]),
        Route(f"{PREFIX}/auth", authorize, methods=["GET", "POST"]),
        Route(f"{PREFIX}/token", token, methods=["POST"]),
        Route(f"{PREFIX}/userinfo", userinfo, methods=["GET", "POST"]),
        Route(f"{PREFIX}/logout", logout, methods=["GET", "POST"]),
    ]
