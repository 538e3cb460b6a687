"""The whole site: the FHIR API and, under ``/portal``, the patient and professional spaces that
use it, served by one process.

https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from maison.api.app import _die_with_parent, create_app
from maison.api.services import Services, build_services
from maison.api.settings import Settings
from maison.fhir.definitions import package_dir
from maison.portal import admin, choices, patient, personal, professional, signin
from maison.portal.fhir_client import FhirClient
from maison.portal.sessions import SessionStore
from maison.portal.web import PREFIX, Ctx, Web
from maison.services.smart.clients import PORTAL_CLIENT, portal_secret

OWN_STATIC = Path(__file__).parent / "static"


def _assets() -> list[Mount]:
    """The design system, htmx and our stylesheet, fetched by ``maison setup`` (pinned npm
    packages, checked by SHA-256): https://www.systeme-de-design.gouv.fr/."""
    mounts = [Mount("/static/portail", StaticFiles(directory=OWN_STATIC), name="own")]
    for key in ("dsfr", "htmx"):
        folder = package_dir(key)
        if folder.exists():
            mounts.append(Mount(f"/static/{folder.name}", StaticFiles(directory=folder)))
    return mounts


def asset_versions() -> dict[str, str]:
    """The versioned folder of each fetched asset package (cacheable URLs)."""
    return {key: package_dir(key).name for key in ("dsfr", "htmx")}


async def home(ctx: Ctx) -> Response:
    """The portal's front page: the two spaces."""
    return ctx.render("accueil.html", title="Accueil")


def portal_app(services: Services, api: Starlette) -> Starlette:
    """The portal as an ASGI app calling ``api`` in-process with each user's token."""
    settings = services.settings
    secret = portal_secret(settings.state_dir / "keys")
    client = FhirClient(api, settings.base_url, PORTAL_CLIENT, secret)
    sessions = SessionStore(services.store, services.store.keyring)
    web = Web(sessions, client, secure=settings.base_url.startswith("https://"))
    web.env.globals["assets"] = asset_versions()
    page = web.page
    routes = [
        Route("/", page(home), methods=["GET"]),
        Route("/connexion/retour", page(signin.callback), methods=["GET"]),
        Route("/connexion/{space}", page(signin.start), methods=["GET"]),
        Route("/deconnexion", page(signin.sign_out), methods=["POST"]),
        *patient.routes(web),
        *choices.routes(web),
        *personal.routes(web),
        *professional.routes(web),
        *admin.routes(web),
        *_assets(),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(GZipMiddleware, minimum_size=1024)],
    )
    app.state.web = web
    return app


def create_site(settings: Settings, services: Services | None = None) -> Starlette:
    """The API with the portal mounted under ``/portal``."""
    if services is None:
        services = build_services(settings)
        services.refresh()
    api = create_app(settings, services)
    portal = portal_app(services, api)

    async def to_portal(_request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    return Starlette(
        routes=[
            Route(PREFIX, to_portal, methods=["GET"]),
            Mount(PREFIX, portal),
            Mount("", api),
        ]
    )


def app_from_env() -> Starlette:
    """Factory for uvicorn workers (settings passed in ``MAISON_SETTINGS``)."""
    _die_with_parent()
    return create_site(Settings.from_env())
