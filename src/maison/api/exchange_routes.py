"""HTTP routes of the API trust space: token exchange and introspection under ``/auth``.

Configuration (environment):

* ``MAISON_EXCHANGE_CLIENTS``: JSON ``{"client-id": {"secret": "…"}}``, the clients allowed to
  exchange and introspect (``client_secret_basic``); the public ``maison-dev`` never is;
* ``MAISON_EXCHANGE_PSC_ISSUER``: an external PSC issuer whose JWKS (discovery) signs the
  subject tokens; unset, the local provider at ``BASE/psc``;
* ``MAISON_TRUST_CLIENT_CERT_HEADER=1``: read the client certificate from the TLS proxy's
  ``X-Client-Cert`` header (URL-encoded PEM, nginx ``$ssl_client_escaped_cert``); never set it
  unless a proxy that strips that header from clients sits in front;
* ``MAISON_EXCHANGE_CA_BUNDLE``: the PEM bundle (``maison pki``'s ``ca-bundle.pem``) client
  certificates must chain to.

The FHIR endpoint does not check ``cnf`` (RFC 8705 §3) yet: certificate-bound tokens are
minted, not enforced. Only served with the local development issuer (the tokens it mints are
the ones the FHIR endpoint trusts).

https://www.rfc-editor.org/rfc/rfc8693
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from maison.api.oauth_http import oauth_error, oauth_json
from maison.api.psc_routes import PREFIX as PSC_PREFIX
from maison.api.psc_routes import make_provider
from maison.api.services import Services
from maison.api.smart_routes import SmartServer, make_smart
from maison.security.jwks import KeySource, RemoteJwks, StaticJwks
from maison.services.psc.exchange import (
    TokenExchange,
    TrustedCAs,
    certificate_from_header,
    exchange_clients,
)
from maison.services.psc.provider import OAuthError, basic_credentials

#: Grants of the SMART authorization server (``smart_routes``) served at the same endpoint.
SMART_GRANTS = frozenset({"authorization_code", "refresh_token", "client_credentials"})

log = logging.getLogger("maison.exchange")

CERT_HEADER = "x-client-cert"


def make_exchange(services: Services) -> TokenExchange | None:
    """The token exchange of this server from its settings and environment; None without the
    local issuer: https://www.rfc-editor.org/rfc/rfc8693#section-2."""
    settings = services.settings
    if services.issuer is None:
        return None
    audience = settings.audience or settings.base_url
    external = os.environ.get("MAISON_EXCHANGE_PSC_ISSUER")
    keys: KeySource
    ended: Callable[[Mapping[str, Any]], bool] | None = None
    if external:
        psc_issuer, keys = external.rstrip("/"), RemoteJwks(external.rstrip("/"))
    else:
        provider = make_provider(services)
        psc_issuer, keys = f"{settings.base_url}{PSC_PREFIX}", StaticJwks(provider.jwks())
        store = services.store

        def ended(claims: Mapping[str, Any]) -> bool:  # the provider's logout record
            return store.get_meta(f"psc:s:{claims.get('sid')}") == "ended"

    bundle = os.environ.get("MAISON_EXCHANGE_CA_BUNDLE")
    return TokenExchange(
        psc_issuer=psc_issuer,
        psc_keys=keys,
        audience=audience,
        issuer=services.issuer,
        store=services.store,
        defs=lambda: services.defs,
        clients=exchange_clients(os.environ.get("MAISON_EXCHANGE_CLIENTS")),
        trusted_cas=TrustedCAs.from_bundle(Path(bundle)) if bundle else None,
        ended=ended,
    )


async def _form(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "form-urlencoded body expected")
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _exchange_only(exchange: TokenExchange, smart: SmartServer, authorization: str | None) -> bool:
    """Whether the caller authenticates as an exchange client that is no SMART client (it
    may not use the SMART grants: RFC 6749 §5.2 ``unauthorized_client``)."""
    credentials = basic_credentials(authorization)
    if credentials is None or smart.clients.clients.get(credentials[0]) is not None:
        return False
    try:
        exchange.authenticate_client(authorization)
    except OAuthError:
        return False
    return True


def exchange_routes(services: Services) -> list[Route]:
    """``POST /auth/token`` (token exchange, and the SMART grants dispatched to
    ``smart_routes``) and ``POST /auth/introspect``: https://www.rfc-editor.org/rfc/rfc8693#section-2."""
    exchange = make_exchange(services)
    if exchange is None:
        log.info("token exchange not served: an external issuer signs the platform's tokens")
        return []
    trust_header = services.settings.trust_client_cert_header
    smart = make_smart(services)

    async def token(request: Request) -> Response:
        # one endpoint for every grant: SMART's (RFC 6749, RFC 7523) and token exchange
        if smart is not None and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            form = await _form(request)
            if form.get("grant_type") in SMART_GRANTS:
                authorization = request.headers.get("authorization")
                try:
                    if _exchange_only(exchange, smart, authorization):
                        raise OAuthError(
                            "unauthorized_client", "this client is registered for token exchange"
                        )
                    answer = await run_in_threadpool(smart.token, form, authorization)
                except OAuthError as error:
                    log.info("SMART token refused: %s (%s)", error.error, form.get("grant_type"))
                    return oauth_error(error)
                return oauth_json(answer)
        try:
            client = exchange.authenticate_client(request.headers.get("authorization"))
            form = await _form(request)
            chain = certificate_from_header(request.headers.get(CERT_HEADER), trust_header)
            answer = await run_in_threadpool(exchange.exchange, form, client, chain)
        except OAuthError as error:
            log.info("token exchange refused: %s (%s)", error.error, error.description)
            return oauth_error(error)
        log.info("token exchange for client %s", client.client_id)
        return oauth_json(answer)

    async def introspect(request: Request) -> Response:
        try:
            exchange.authenticate_client(request.headers.get("authorization"))
            form = await _form(request)
        except OAuthError as error:
            return oauth_error(error)
        answer = await run_in_threadpool(exchange.introspect, form.get("token"))
        grant_id = answer.get("grant_id")
        if (
            smart is not None
            and isinstance(grant_id, str)
            and await run_in_threadpool(smart.tokens.revoked, grant_id)
        ):
            answer = {"active": False}  # its grant was revoked (replayed code, RFC 7009)
        return oauth_json(answer)

    return [
        Route("/auth/token", token, methods=["POST"]),
        Route("/auth/introspect", introspect, methods=["POST"]),
    ]
