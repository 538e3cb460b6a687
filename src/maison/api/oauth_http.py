"""The JSON answers of the OAuth endpoints (the local PSC provider, token exchange, SMART):
never cached, errors as RFC 6749 §5.2 bodies with the challenge RFC 6750 §3 asks for.

https://www.rfc-editor.org/rfc/rfc6749#section-5.1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

from maison.services.psc.provider import OAuthError

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def oauth_json(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON answer that no cache keeps: https://www.rfc-editor.org/rfc/rfc6749#section-5.1."""
    return Response(
        orjson.dumps(dict(body)),
        status_code=status,
        media_type="application/json",
        headers={**NO_STORE, **(headers or {})},
    )


def oauth_error(error: OAuthError, realm: str = "maison", bearer: bool = False) -> Response:
    """An OAuth error; a 401 carries ``WWW-Authenticate``: ``Bearer … error=…`` for a refused
    token (or when ``bearer``), ``Basic`` for a refused client
    (https://www.rfc-editor.org/rfc/rfc6749#section-5.2, https://www.rfc-editor.org/rfc/rfc6750#section-3)."""
    headers: dict[str, str] = {}
    if error.status == 401:
        if error.error == "invalid_token":
            headers["www-authenticate"] = f'Bearer realm="{realm}", error="{error.error}"'
        elif bearer:
            headers["www-authenticate"] = f'Bearer realm="{realm}"'
        else:
            headers["www-authenticate"] = f'Basic realm="{realm}"'
    return oauth_json(error.body(), error.status, headers)
