"""The portal's web plumbing: templates, the session of each request, CSRF, security headers,
errors as French pages, and the user's API token (refreshed when it runs out).

https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from maison.portal.fhir_client import (
    ApiError,
    FhirClient,
    SignedOut,
    claims_of,
    fresh,
    problem_of,
)
from maison.portal.sessions import COOKIE, IDLE, Session, SessionStore
from maison.portal.words import rule_words

log = logging.getLogger("maison.portal")

TEMPLATES = Path(__file__).parent / "templates"
PREFIX = "/portal"
#: Largest form the portal reads (a document added by a professional, with its fields).
MAX_FORM_BYTES = 20 * 1024 * 1024 + 64 * 1024

#: What each kind of page may load: our own files only, no inline script, no framing by others.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; object-src 'none'; frame-src 'self'; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

#: What an API status means for the person reading the page.
STATUS_WORDS = {
    400: "La demande n'est pas valide.",
    401: "Votre session a pris fin : reconnectez-vous.",
    403: "Vous n'avez pas le droit d'accéder à cette information.",
    404: "Cette information n'existe pas ou ne vous est pas accessible.",
    409: "L'information a changé entre-temps : rechargez la page.",
    410: "Cette information a été supprimée.",
    412: "L'information a changé entre-temps : rechargez la page.",
    413: "Le fichier est trop volumineux.",
    415: "Ce type de fichier n'est pas accepté.",
    422: "Les informations saisies ne sont pas acceptées.",
    429: "Trop de demandes : réessayez dans un instant.",
    500: "Le service a rencontré une erreur. Réessayez plus tard.",
    502: "Le service ne répond pas comme attendu. Réessayez plus tard.",
    503: "Le service est momentanément indisponible.",
}


def status_words(status: int) -> str:
    """A French sentence for an HTTP status: https://www.rfc-editor.org/rfc/rfc9110#section-15."""
    return STATUS_WORDS.get(status) or (
        STATUS_WORDS[400] if 400 <= status < 500 else STATUS_WORDS[500]
    )


class Redirect(Exception):  # noqa: N818 (control flow, not an error)
    """Leave the page for another (sign-in, after a form)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class FormError(Exception):
    """A form the server refuses (validated here, not only in the browser)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Ctx:
    """One request of the portal: the request, its session, the helpers of its page."""

    request: Request
    session: Session | None
    web: Web
    cookie: str | None = None  # a new session identifier to send back
    clear_cookie: bool = False

    @property
    def kind(self) -> str | None:
        """``patient`` or ``pro`` once signed in."""
        return self.session.get("kind") if self.session is not None else None

    async def token(self) -> str:
        """The user's access token, refreshed when it is about to end."""
        session = self.session
        if session is None or not session.get("access"):
            raise SignedOut()
        if fresh(float(session.get("exp", 0))):
            return str(session.get("access"))
        refresh = session.get("refresh")
        if not refresh:
            raise SignedOut()
        try:
            answer = await self.web.api.token(
                {"grant_type": "refresh_token", "refresh_token": str(refresh)}
            )
        except ApiError:
            raise SignedOut() from None
        session.set("access", answer["access_token"])
        session.set("exp", time.time() + float(answer.get("expires_in", 300)))
        if answer.get("refresh_token"):
            session.set("refresh", answer["refresh_token"])
        return str(answer["access_token"])

    async def api(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> httpx.Response:
        """One API call as the signed-in user; a refusal becomes an :class:`ApiError`."""
        response = await self.web.api.request(
            method,
            path,
            await self.token(),
            params=params,
            json=json,
            content=content,
            headers=headers,
            address=self.request.client.host if self.request.client else None,
        )
        if response.status_code == 401:
            raise SignedOut()
        if response.status_code not in ok:
            raise problem_of(response)
        return response

    async def json(self, path: str, params: Any = None) -> dict[str, Any]:
        """A GET answered with a FHIR resource."""
        body = orjson.loads((await self.api("GET", path, params=params)).content)
        return body if isinstance(body, dict) else {}

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        """A page of the portal, in French."""
        return self.web.render(self, template, status, **values)


class Web:
    """Templates, sessions and the API client shared by the portal's pages."""

    def __init__(self, sessions: SessionStore, api: FhirClient, secure: bool) -> None:
        self.sessions = sessions
        self.api = api
        self.secure = secure
        self.cookie_name = ("__Host-" if secure else "") + COOKIE
        #: displays of codes looked up in the terminology, kept for the process's life
        self.displays: dict[tuple[str, str], str] = {}
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["prefix"] = PREFIX
        self.env.filters["date_fr"] = date_fr

    def render(self, ctx: Ctx, template: str, status: int, **values: Any) -> HTMLResponse:
        """Render a template with the session's user and CSRF token."""
        session = ctx.session
        page = self.env.get_template(template).render(
            csrf=session.csrf if session is not None else "",
            user=session.get("user") if session is not None else None,
            kind=ctx.kind,
            request=ctx.request,
            **values,
        )
        return HTMLResponse(page, status_code=status)

    def page(
        self, handler: Callable[[Ctx], Awaitable[Response]], *, space: str | None = None
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a page: its session, CSRF on every POST, the space it belongs to, errors as
        French pages (never a stack trace), security headers, the session saved."""

        async def endpoint(request: Request) -> Response:
            raw = request.cookies.get(self.cookie_name)
            session = await run_in_threadpool(self.sessions.load, raw) if raw else None
            ctx = Ctx(request, session, self)
            try:
                if space is not None and ctx.kind != space:
                    raise SignedOut()
                if request.method == "POST":
                    await self._check_csrf(ctx)
                response = await handler(ctx)
            except Redirect as go:
                response = RedirectResponse(go.location, status_code=303)
            except SignedOut:
                target = "patient" if space == "patient" else "professionnel"
                if request.method == "GET" and space is not None:
                    response = RedirectResponse(f"{PREFIX}/connexion/{target}", status_code=303)
                else:
                    response = ctx.render(
                        "erreur.html",
                        401,
                        title="Session terminée",
                        message=status_words(401),
                        detail="",
                    )
            except FormError as error:
                response = ctx.render(
                    "erreur.html",
                    error.status,
                    title="Demande refusée",
                    message=error.message,
                    detail="",
                )
            except ApiError as problem:
                response = ctx.render(
                    "erreur.html",
                    problem.status if 400 <= problem.status < 600 else 502,
                    title="Demande refusée" if problem.status < 500 else "Erreur du service",
                    message=status_words(problem.status),
                    reason=rule_words(problem.codes),
                    detail=problem.message,
                )
            except Exception:
                log.exception("portal page %s failed", request.url.path)
                response = ctx.render(
                    "erreur.html",
                    500,
                    title="Erreur du service",
                    message=status_words(500),
                    detail="",
                )
            if ctx.session is not None and not ctx.clear_cookie:
                await run_in_threadpool(self.sessions.save, ctx.session)
            self._finish(ctx, response)
            return response

        return endpoint

    async def _check_csrf(self, ctx: Ctx) -> None:
        length = ctx.request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_FORM_BYTES:
            raise FormError("Le fichier est trop volumineux (20 Mo au plus).", 413)
        try:
            form = await ctx.request.form(max_files=1, max_fields=50)
        except HTTPException as error:
            raise FormError(f"Le formulaire n'a pas pu être lu ({error.detail}).", 400) from None
        given = ctx.request.headers.get("x-csrf-token") or form.get("csrf")
        if ctx.session is None or not ctx.session.csrf_ok(
            given if isinstance(given, str) else None
        ):
            raise FormError(
                "Le formulaire a expiré ou ne vient pas de ce site : rechargez la page et "
                "recommencez.",
                403,
            )

    def _finish(self, ctx: Ctx, response: Response) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if ctx.cookie is not None:
            response.set_cookie(
                self.cookie_name,
                ctx.cookie,
                max_age=IDLE * 16,
                path="/",
                secure=self.secure,
                httponly=True,
                samesite="lax",
            )
        elif ctx.clear_cookie:
            response.delete_cookie(
                self.cookie_name, path="/", secure=self.secure, httponly=True, samesite="lax"
            )


MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
    "octobre", "novembre", "décembre",
)  # fmt: skip


def date_fr(value: Any, with_time: bool = False) -> str:
    """A FHIR date or dateTime as a French date (« 3 mars 2026 à 14:05 »)."""
    text = str(value or "")
    if len(text) < 4 or not text[:4].isdigit():
        return text
    year = text[:4]
    if len(text) < 7:
        return year
    month = MONTHS[int(text[5:7]) - 1] if text[5:7].isdigit() and 1 <= int(text[5:7]) <= 12 else ""
    if len(text) < 10:
        return f"{month} {year}"
    day = int(text[8:10]) if text[8:10].isdigit() else 0
    out = f"{'1er' if day == 1 else day} {month} {year}"
    if with_time and len(text) >= 16:
        out += f" à {text[11:16]}"
    return out


def claims(token: str) -> dict[str, Any]:
    """The claims of a token the portal holds."""
    return claims_of(token)
