"""Signing in to the portal: the SMART authorization code flow (PKCE S256, confidential client)
against the platform's own authorization server, which signs patients in with their INS,
password and one-time code and professionals through Pro Santé Connect.

https://hl7.org/fhir/smart-app-launch/app-launch.html
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from maison.portal.fhir_client import ApiError, claims_of
from maison.portal.web import PREFIX, Ctx, FormError, Redirect
from maison.security.admin import ADMIN_SCOPE
from maison.services.smart.clients import PORTAL_CALLBACK, PORTAL_CLIENT

#: Everything the portal may need; the authorization server keeps what fits the person who
#: signs in (``patient/`` for a patient or his representative, ``user/`` for a professional).
SCOPE = f"openid fhirUser offline_access patient/*.cruds user/*.cruds {ADMIN_SCOPE}"
SPACES = {"patient": "patient", "professionnel": "pro"}
HOME = {"patient": f"{PREFIX}/patient/", "pro": f"{PREFIX}/pro/"}


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def start(ctx: Ctx) -> Response:
    """Send the browser to the authorization endpoint: https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code."""
    space = SPACES.get(str(ctx.request.path_params.get("space")))
    if space is None:
        raise FormError("Espace inconnu.", 404)
    verifier = secrets.token_urlsafe(48)
    pending = {
        "verifier": verifier,
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "space": space,
        "at": time.time(),
    }
    if ctx.session is None:
        ctx.cookie, ctx.session = await run_in_threadpool(ctx.web.sessions.create, {})
    ctx.session.set("signin", pending)  # type: ignore[union-attr]
    base = ctx.web.api.base_url
    query = urlencode(
        {
            "response_type": "code",
            "client_id": PORTAL_CLIENT,
            "redirect_uri": base + PORTAL_CALLBACK,
            "scope": SCOPE,
            "state": pending["state"],
            "nonce": pending["nonce"],
            "aud": base,
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    return RedirectResponse(f"/auth/authorize?{query}", status_code=303)


async def callback(ctx: Ctx) -> Response:
    """Take the code back, redeem it, check the ID token, and open a fresh session (a new
    identifier: https://owasp.org/www-community/attacks/Session_fixation)."""
    params = ctx.request.query_params
    session = ctx.session
    pending = session.get("signin") if session is not None else None
    if session is None or not isinstance(pending, dict):
        raise FormError("Cette connexion n'a pas été demandée depuis ce navigateur.", 400)
    if not hmac.compare_digest(str(params.get("state", "")), str(pending["state"])):
        raise FormError("Cette connexion n'a pas été demandée depuis ce navigateur.", 400)
    if time.time() - float(pending["at"]) > 600:
        raise FormError("La connexion a pris trop de temps : recommencez.", 400)
    if params.get("error"):
        session.pop("signin")
        if params.get("error") == "access_denied":
            raise Redirect(f"{PREFIX}/")
        raise FormError(f"Connexion refusée : {params.get('error_description') or params['error']}")
    code = params.get("code")
    if not code:
        raise FormError("La réponse de connexion est incomplète.", 400)
    answer = await ctx.web.api.token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": ctx.web.api.base_url + PORTAL_CALLBACK,
            "code_verifier": str(pending["verifier"]),
        }
    )
    id_claims = claims_of(str(answer.get("id_token", "")))
    if id_claims.get("nonce") != pending["nonce"] or id_claims.get("aud") not in (
        PORTAL_CLIENT,
        [PORTAL_CLIENT],
    ):
        raise ApiError(502, "jeton d'identité inattendu")
    access = claims_of(str(answer["access_token"]))
    kind = "pro" if access.get("professional") else "patient"
    if kind == "patient" and not answer.get("patient"):
        raise FormError("Aucun dossier patient n'est associé à ce compte.", 403)
    user: dict[str, Any] = {"fhirUser": id_claims.get("fhirUser") or access.get("fhirUser")}
    if kind == "patient":
        user["patient"] = str(answer["patient"])
        user["representative"] = access.get("representative")
    else:
        user["professional"] = access.get("professional")
        user["admin"] = ADMIN_SCOPE in str(answer.get("scope", "")).split()
    data = {
        "kind": kind,
        "user": user,
        "access": answer["access_token"],
        "refresh": answer.get("refresh_token"),
        "exp": time.time() + float(answer.get("expires_in", 300)),
        "scope": answer.get("scope", ""),
    }
    ctx.cookie, ctx.session = await run_in_threadpool(ctx.web.sessions.rotate, session, data)
    await _name_user(ctx)
    return RedirectResponse(HOME[kind], status_code=303)


async def _name_user(ctx: Ctx) -> None:
    """Put the signed-in person's display name in the session (read through the API)."""
    assert ctx.session is not None
    user = dict(ctx.session.get("user") or {})
    reference = user.get("fhirUser")
    name = ""
    if isinstance(reference, str) and reference.count("/") == 1:
        try:
            resource = await ctx.json(f"/{reference}")
            name = human_name(resource)
        except ApiError:
            name = ""
    if ctx.kind == "patient" and user.get("patient") and f"Patient/{user['patient']}" != reference:
        try:
            user["for_name"] = human_name(await ctx.json(f"/Patient/{user['patient']}"))
        except ApiError:
            user["for_name"] = ""
    user["name"] = name or ("Patient" if ctx.kind == "patient" else "Professionnel")
    ctx.session.set("user", user)


def human_name(resource: dict[str, Any]) -> str:
    """« Prénom NOM » of a Patient, Practitioner or RelatedPerson: https://hl7.org/fhir/R4/datatypes.html#HumanName."""
    names = resource.get("name") or []
    if not names:
        return ""
    chosen = next((n for n in names if n.get("use") == "usual"), None) or next(
        (n for n in names if n.get("use") == "official"), names[0]
    )
    if chosen.get("text"):
        return str(chosen["text"])
    given = " ".join(chosen.get("given") or [])
    family = str(chosen.get("family") or "").upper()
    return " ".join(p for p in (given, family) if p)


async def sign_out(ctx: Ctx) -> Response:
    """End the session here and revoke its grant: https://www.rfc-editor.org/rfc/rfc7009."""
    session = ctx.session
    if session is not None:
        refresh = session.get("refresh")
        if refresh:
            with contextlib.suppress(Exception):  # the session ends whatever revocation says
                await ctx.web.api.http.post(
                    "/auth/revoke",
                    data={"token": str(refresh), "token_type_hint": "refresh_token"},
                    auth=(ctx.web.api.client_id, ctx.web.api.client_secret),
                )
        await run_in_threadpool(ctx.web.sessions.end, session)
        ctx.session = None
        ctx.clear_cookie = True
    return RedirectResponse(f"{PREFIX}/", status_code=303)
