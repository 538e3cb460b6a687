"""HTTP routes of the platform's SMART on FHIR authorization server, under ``/auth``.

Pages (French, no script, not framable): ``/auth/authorize`` (GET or POST), then the forms
``/auth/authorize/{choose,cancel,activity,patient,pick-patient,represent}`` that carry the
flow id, and Pro Santé Connect's return ``/auth/psc/callback``. ``POST /auth/launch`` creates
an EHR launch, ``POST /auth/revoke`` revokes a refresh token (RFC 7009). The token endpoint
``/auth/token`` is shared with token exchange (``exchange_routes``, which calls :func:`token`).

Configuration (environment):

* ``MAISON_SMART_CLIENTS``: JSON ``{"client_id": {"redirect_uris", "scope", "public",
  "secret" | "jwks" | "jwks_uri"}}``, besides the built-in ``maison-smart-dev`` and the
  registrations of ``maison smart register``;
* ``MAISON_PSC_ISSUER``: the Pro Santé Connect issuer professionals sign in with (default the
  local provider ``BASE/psc``), ``MAISON_PSC_CLIENT_ID`` / ``MAISON_PSC_CLIENT_SECRET`` the
  platform's registration there (default the local provider's public ``maison-dev``);
* patients sign in with the accounts of ``maison patient account`` (INS, password, TOTP).

Only served with the local issuer (it signs the tokens the FHIR endpoint trusts).

https://hl7.org/fhir/smart-app-launch/app-launch.html
"""

from __future__ import annotations

import html
import logging
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from maison.api.oauth_http import NO_STORE, oauth_error, oauth_json
from maison.api.pages import CSP, alert, buttons, input_group, page
from maison.api.services import Services
from maison.fhir.errors import Category, FhirError
from maison.security.oidc_rp import RelyingParty
from maison.security.patient_accounts import AccountError
from maison.security.professional import (
    PROFESSIONAL_CLAIM,
    ProfessionalContext,
    ProfessionalContextError,
    from_userinfo,
    structure_ids,
)
from maison.services.ins.accounts import patient_accounts
from maison.services.psc.annuaire_lookup import check_professional, userinfo_for_professional
from maison.services.psc.provider import AuthorizeError, OAuthError
from maison.services.smart.authorize import EXPIRED, Authorizer, FlowError, Step
from maison.services.smart.backend import ClientAuthenticator, client_credentials
from maison.services.smart.clients import ClientRegistry, portal_client, portal_secret
from maison.services.smart.grants import Grant, Tokens
from maison.services.smart.launch import LaunchError, create_launch
from maison.services.smart.patients import find_patient_by_ins, patient_exists

log = logging.getLogger("maison.smart")

PREFIX = "/auth"
COOKIE = "maison_smart_browser"
_PAGE_HEADERS = {
    **NO_STORE,
    "x-frame-options": "DENY",
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
}


@dataclass
class SmartServer:
    """The SMART authorization server of this process: https://hl7.org/fhir/smart-app-launch/app-launch.html."""

    authorizer: Authorizer
    clients: ClientAuthenticator
    tokens: Tokens

    def token(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """``authorization_code``, ``refresh_token`` and ``client_credentials`` at ``/auth/token``: https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token."""
        client = self.clients.authenticate(form, authorization)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self.tokens.redeem_code(client, form)
        if grant == "refresh_token":
            return self.tokens.refresh(client, form)
        if grant == "client_credentials":
            if not form.get("client_assertion"):
                raise OAuthError(
                    "invalid_client", "client_credentials needs private_key_jwt (RFC 7523)", 401
                )
            return client_credentials(self.tokens, client, form)
        raise OAuthError("unsupported_grant_type", "unsupported grant_type")


def make_smart(services: Services) -> SmartServer | None:
    """The SMART authorization server from the settings and environment; None without the
    local issuer: https://hl7.org/fhir/smart-app-launch/app-launch.html."""
    issuer = services.issuer
    if issuer is None:
        return None
    settings = services.settings
    store = services.store
    base = settings.base_url
    portal = portal_client(base, portal_secret(settings.state_dir / "keys"))
    clients = ClientRegistry(store, os.environ.get("MAISON_SMART_CLIENTS"), [portal])

    def recheck(grant: Grant) -> None:
        """A professional's grant lives while the Annuaire still lists him in that activity."""
        national = grant.claims.get("SubjectNameID")
        pro = grant.claims.get(PROFESSIONAL_CLAIM)
        if not isinstance(national, str) or not isinstance(pro, Mapping):
            return
        try:
            info = userinfo_for_professional(store, services.defs, national)
            context = from_userinfo(info, int(pro.get("activity", 0)))
            check_professional(store, services.defs, context)
        except (ProfessionalContextError, ValueError, TypeError) as error:
            raise OAuthError("invalid_grant", f"professional refused: {error}") from None
        if structure_ids(context.activity) != pro.get("structure"):
            raise OAuthError("invalid_grant", "professional refused: his activity changed")

    tokens = Tokens(issuer, settings.audience or base, store, recheck=recheck)
    psc_issuer = (os.environ.get("MAISON_PSC_ISSUER") or f"{base}/psc").rstrip("/")
    lock = threading.Lock()
    parties: list[RelyingParty] = []

    def psc() -> RelyingParty:
        with lock:
            if not parties:
                parties.append(
                    RelyingParty(
                        psc_issuer,
                        os.environ.get("MAISON_PSC_CLIENT_ID") or "maison-dev",
                        os.environ.get("MAISON_PSC_CLIENT_SECRET") or None,
                        f"{base}{PREFIX}/psc/callback",
                    )
                )
            return parties[0]

    def check(context: ProfessionalContext) -> None:
        check_professional(store, services.defs, context)

    accounts = patient_accounts(store)
    authorizer = Authorizer(
        clients=clients,
        tokens=tokens,
        records=store,
        fhir_base=base,
        psc=psc,
        check_professional=check,
        find_patient=lambda ins: find_patient_by_ins(store, services.defs, ins),
        patient_exists=lambda pid: patient_exists(store, pid),
        accounts=lambda: accounts,
        account_error=AccountError,
        admins=lambda: settings.admin_ids,
    )
    authenticator = ClientAuthenticator(clients, f"{base}{PREFIX}/token", store)
    return SmartServer(authorizer, authenticator, tokens)


# --- pages -------------------------------------------------------------------------------------
def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return page(title, body, status, _PAGE_HEADERS)


def _form(action: str, flow: str, inner: str, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return (
        f'<form method=post action="{PREFIX}/authorize/{action}"{klass}>'
        f'<input type=hidden name=flow value="{html.escape(flow)}">{inner}</form>'
    )


def _notice(step: Step) -> str:
    return alert(step.message) if step.message else ""


def _cancel(step: Step) -> str:
    return _form(
        "cancel",
        step.flow,
        '<button class="fr-btn fr-btn--secondary">Annuler et revenir à l\'application</button>',
        "fr-mt-4w",
    )


def _patient_form(step: Step) -> str:
    return _form(
        "patient",
        step.flow,
        input_group(
            "Matricule INS",
            "ins",
            "name=ins required autocomplete=username",
            "15 caractères, clé comprise",
        )
        + input_group(
            "Mot de passe",
            "password",
            "name=password type=password required autocomplete=current-password",
        )
        + input_group(
            "Code à usage unique",
            "totp",
            "name=totp inputmode=numeric autocomplete=one-time-code",
            "6 chiffres, affichés par votre application d'authentification",
        )
        + '<button class="fr-btn">Se connecter</button>',
    )


def render(step: Step) -> Response:
    """A step as a French page or a redirect: https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code."""
    if step.location is not None:
        return RedirectResponse(step.location, 302, headers=NO_STORE)
    app = f'<p class="fr-text--lead">Application : <b>{html.escape(step.client_id)}</b></p>'
    if step.page == "choose":
        body = (
            f'{app}<h2 class="fr-h4">Professionnel de santé</h2>'
            + _form(
                "choose",
                step.flow,
                '<button class="fr-btn" name=who value=professional>'
                "Se connecter avec Pro Santé Connect</button>",
                "fr-mb-4w",
            )
            + '<h2 class="fr-h4">Patient</h2>'
            + _form(
                "choose",
                step.flow,
                '<button class="fr-btn" name=who value=patient>'
                "Se connecter à mon espace santé</button>",
            )
            + _cancel(step)
        )
        return _page("Connexion", body, step.status)
    if step.page == "patient":
        body = f"{app}{_notice(step)}{_patient_form(step)}{_cancel(step)}"
        return _page("Se connecter à mon espace santé", body, step.status)
    if step.page in ("activity", "represent"):
        action, field = (
            ("activity", "activity") if step.page == "activity" else ("represent", "choice")
        )
        choices = buttons(
            f'<button class="fr-btn" name={field} value="{html.escape(v)}">'
            f"{html.escape(label)}</button>"
            for v, label in step.choices
        )
        title = (
            "Choisissez votre activité"
            if step.page == "activity"
            else "Pour quel dossier agissez-vous ?"
        )
        return _page(
            title,
            f"{app}{_notice(step)}{_form(action, step.flow, choices)}{_cancel(step)}",
            step.status,
        )
    if step.page == "pick_patient":
        inner = (
            input_group(
                "Matricule INS du patient",
                "ins",
                "name=ins required",
                "15 caractères, clé comprise",
            )
            + '<button class="fr-btn">Choisir ce patient</button>'
        )
        return _page(
            "Choisissez le patient",
            f"{app}{_notice(step)}{_form('pick-patient', step.flow, inner)}{_cancel(step)}",
            step.status,
        )
    back = (
        f'<p><a class="fr-link" href="{html.escape(step.back)}">Revenir à l\'application</a></p>'
        if step.back
        else ""
    )
    return _page("Connexion refusée", f"{_notice(step)}{back}", step.status)


def _error_page(error: AuthorizeError) -> Response:
    if error.redirect:
        return RedirectResponse(error.redirect, 302, headers=NO_STORE)
    return _page(
        "Demande refusée",
        alert(f"Demande refusée ({error.error}) : {error.description}."),
        400,
    )


async def _params(request: Request) -> dict[str, str]:
    if request.method == "POST":
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    return dict(request.query_params)


def smart_routes(services: Services) -> list[Route]:
    """The SMART authorization endpoint, its pages, EHR launch and revocation under ``/auth``: https://hl7.org/fhir/smart-app-launch/app-launch.html."""
    smart = make_smart(services)
    if smart is None:
        return []
    authorizer = smart.authorizer
    secure = services.settings.base_url.startswith("https://")

    def browser_of(request: Request) -> str:
        return request.cookies.get(COOKIE, "")

    def step_handler(
        run: Callable[[dict[str, str], str], Step],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            params = await _params(request)
            browser = browser_of(request)
            try:
                step = await run_in_threadpool(run, params, browser)
            except FlowError:
                return _page("Demande expirée", alert(EXPIRED), 400)
            except AuthorizeError as error:
                log.info("SMART authorize refused: %s", error.error)
                return _error_page(error)
            if step.page == "redirect":
                log.info("SMART flow step for client %s", step.client_id)
            return render(step)

        return handler

    async def authorize(request: Request) -> Response:
        params = await _params(request)
        browser = browser_of(request) or secrets.token_urlsafe(24)
        try:
            step = await run_in_threadpool(authorizer.start, params, browser)
        except AuthorizeError as error:
            log.info("SMART authorize refused: %s", error.error)
            return _error_page(error)
        response = render(step)
        response.set_cookie(
            COOKIE, browser, path=PREFIX, httponly=True, samesite="lax", secure=secure
        )
        return response

    def flow(params: Mapping[str, str]) -> str:
        return params.get("flow", "")

    async def launch(request: Request) -> Response:
        header = request.headers.get("authorization")
        try:
            principal = await run_in_threadpool(services.authenticator.authenticate, header)
        except FhirError as error:
            return oauth_json(
                {"error": "invalid_token", "error_description": error.message},
                401,
                {"www-authenticate": 'Bearer realm="maison", error="invalid_token"'},
            )
        professional = principal.claims.get("SubjectNameID")
        if not isinstance(professional, str) or not professional:
            return oauth_json(
                {
                    "error": "forbidden",
                    "error_description": "only a professional may launch an app",
                },
                403,
            )
        try:
            if request.headers.get("content-type", "").startswith("application/json"):
                body = orjson.loads(await request.body())
            else:
                body = await _params(request)
            if not isinstance(body, dict):
                raise LaunchError("a JSON object is expected")
            patient, encounter = body.get("patient"), body.get("encounter")
            if not isinstance(patient, str) or not isinstance(encounter, str | None):
                raise LaunchError("patient (a Patient id) is required")
            patient = patient.removeprefix("Patient/")
            encounter = encounter.removeprefix("Encounter/") if encounter else None
            found = await run_in_threadpool(
                services.run, principal, False, lambda tx: tx.read("Patient", patient)
            )
            if found is None or found.resource is None:
                raise FhirError(Category.NOT_FOUND, f"no Patient/{patient}")
            launch_id = await run_in_threadpool(
                create_launch, services.store, patient, encounter, professional
            )
        except (LaunchError, orjson.JSONDecodeError) as error:
            return oauth_json({"error": "invalid_request", "error_description": str(error)}, 400)
        except FhirError as error:
            status = 403 if error.category is Category.FORBIDDEN else 404
            return oauth_json(
                {"error": "invalid_request", "error_description": error.message}, status
            )
        log.info("EHR launch created by %s", professional)
        return oauth_json({"launch": launch_id, "expires_in": 300, "patient": patient}, 201)

    async def revoke(request: Request) -> Response:
        try:
            params = await _params(request)
            client = await run_in_threadpool(
                smart.clients.authenticate, params, request.headers.get("authorization")
            )
            await run_in_threadpool(smart.tokens.revoke, client, params.get("token", ""))
        except OAuthError as error:
            return oauth_error(error)
        return oauth_json({})

    a = authorizer
    return [
        Route(f"{PREFIX}/authorize", authorize, methods=["GET", "POST"]),
        Route(
            f"{PREFIX}/authorize/choose",
            step_handler(lambda p, b: a.choose(flow(p), b, p.get("who", ""))),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/authorize/cancel",
            step_handler(lambda p, b: a.cancel(flow(p), b)),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/authorize/activity",
            step_handler(lambda p, b: a.choose_activity(flow(p), b, p.get("activity", ""))),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/authorize/pick-patient",
            step_handler(lambda p, b: a.pick_patient(flow(p), b, p.get("ins", ""))),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/authorize/patient",
            step_handler(
                lambda p, b: a.patient_sign_in(
                    flow(p), b, p.get("ins", ""), p.get("password", ""), p.get("totp", "")
                )
            ),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/authorize/represent",
            step_handler(lambda p, b: a.represent(flow(p), b, p.get("choice", ""))),
            methods=["POST"],
        ),
        Route(f"{PREFIX}/psc/callback", step_handler(a.psc_callback), methods=["GET"]),
        Route(f"{PREFIX}/launch", launch, methods=["POST"]),
        Route(f"{PREFIX}/revoke", revoke, methods=["POST"]),
    ]
