"""The portal's way into the platform: the FHIR API and the SMART token endpoint of this very
process, called in-process over ASGI with the signed-in user's token. No private back door: the
portal sees what the API lets that user see, and every access it makes is traced like any other.

https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
from starlette.types import ASGIApp

#: Refresh the access token when it has less than this left (seconds).
REFRESH_MARGIN = 30


class SignedOut(Exception):  # noqa: N818 (control flow, not an error)
    """The session's grant is over (refresh refused or expired): sign in again."""


class ApiError(Exception):
    """An API answer the page must show: its status and the OperationOutcome's words."""

    def __init__(self, status: int, message: str, codes: tuple[str, ...] = ()) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.codes = codes


def _outcome_text(body: Any) -> tuple[str, tuple[str, ...]]:
    if not isinstance(body, Mapping):
        return "", ()
    if body.get("resourceType") != "OperationOutcome":
        text = body.get("error_description") or body.get("error") or ""
        return str(text), ()
    texts: list[str] = []
    codes: list[str] = []
    for issue in body.get("issue") or []:
        details = issue.get("details") or {}
        text = details.get("text") or issue.get("diagnostics") or ""
        if text and text not in texts:
            texts.append(str(text))
        codes.extend(str(c.get("code")) for c in details.get("coding") or [] if c.get("code"))
    return " ".join(texts), tuple(codes)


def problem_of(response: httpx.Response) -> ApiError:
    """The refusal carried by an API answer: https://hl7.org/fhir/R4/operationoutcome.html."""
    try:
        body = response.json()
    except ValueError:
        body = None
    text, codes = _outcome_text(body)
    return ApiError(response.status_code, text, codes)


def parameter_values(parameters: dict[str, Any]) -> dict[str, Any]:
    """The ``value[x]`` of each top-level parameter of a Parameters resource, by name (the last
    one wins): https://hl7.org/fhir/R4/parameters.html."""
    out: dict[str, Any] = {}
    for p in parameters.get("parameter") or []:
        for key, value in p.items():
            if key.startswith("value"):
                out[str(p.get("name"))] = value
    return out


def claims_of(jwt: str) -> dict[str, Any]:
    """The payload of a token this process just issued to the portal over its own channel (the
    token endpoint's answer needs no signature check: https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation)."""
    try:
        payload = jwt.split(".")[1]
        data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class FhirClient:
    """In-process HTTP to the platform's own ASGI app (FHIR API and ``/auth``)."""

    def __init__(self, app: ASGIApp, base_url: str, client_id: str, client_secret: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 0)),
            base_url=self.base_url,
            timeout=60.0,
        )
        self.client_id = client_id
        self.client_secret = client_secret

    async def token(self, form: Mapping[str, str]) -> dict[str, Any]:
        """A call to the SMART token endpoint as the portal's confidential client:
        https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token."""
        response = await self.http.post(
            "/auth/token", data=dict(form), auth=(self.client_id, self.client_secret)
        )
        if response.status_code != 200:
            raise problem_of(response)
        body = response.json()
        if not isinstance(body, dict) or "access_token" not in body:
            raise ApiError(502, "réponse inattendue du serveur d'autorisation")
        return body

    async def request(
        self,
        method: str,
        path: str,
        token: str,
        *,
        params: Any = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        address: str | None = None,
    ) -> httpx.Response:
        """One API call with the user's bearer token, from the user's network address (so the
        trail records where the access came from): https://hl7.org/fhir/R4/http.html."""
        sent = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
        if json is not None:
            sent["Content-Type"] = "application/fhir+json"
        sent.update(headers or {})
        body = orjson.dumps(json) if json is not None else content
        if not address:
            return await self.http.request(method, path, params=params, content=body, headers=sent)
        transport = httpx.ASGITransport(app=self.app, client=(address, 0))
        async with httpx.AsyncClient(
            transport=transport, base_url=self.base_url, timeout=60.0
        ) as http:
            return await http.request(method, path, params=params, content=body, headers=sent)

    async def close(self) -> None:
        """Release the in-process transport."""
        await self.http.aclose()


def fresh(expires_at: float, now: float | None = None) -> bool:
    """Whether an access token is still good for a request."""
    return expires_at - (time.time() if now is None else now) > REFRESH_MARGIN
