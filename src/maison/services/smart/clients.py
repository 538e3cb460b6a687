"""Registered SMART clients, as data: the built-in public dev client, the environment
(``MAISON_SMART_CLIENTS``) and the registrations of ``maison smart register`` kept in the
store's meta table.

A registration is a JSON object ``{"redirect_uris": [...], "scope": "...", "public": bool,
"secret": "...", "jwks": {...} | "jwks_uri": "https://..."}``. The registered ``scope`` bounds
what the client may ever be granted: a requested scope outside it is dropped (RFC 6749 §3.3).

https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from maison.security.admin import ADMIN_SCOPE
from maison.security.principal import Scope, parse_scopes
from maison.services.psc.provider import LOOPBACK_PATTERNS, Client, Records
from maison.store.secret_files import load_or_create_secret

DEV_CLIENT: Final = "maison-smart-dev"
#: Where ``maison smart register`` keeps its registrations (one JSON object).
META_KEY: Final = "smart:clients"
#: Non-resource scopes (SMART launch context and OpenID Connect) a client may register.
OTHER_SCOPES: Final = frozenset(
    {
        "openid",
        "fhirUser",
        "profile",
        "launch",
        "launch/patient",
        "launch/encounter",
        "offline_access",
        "online_access",
        ADMIN_SCOPE,
    }
)
DEV_SCOPE: Final = (
    "openid fhirUser launch launch/patient offline_access online_access "
    "patient/*.cruds user/*.cruds patient/*.* user/*.*"
)
_CLIENT_ID: Final = re.compile(r"[A-Za-z0-9._~-]{1,64}")


class ClientError(ValueError):
    """A registration that cannot be used (https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html#registering-a-client-communicating-public-keys)."""


@dataclass(frozen=True)
class SmartClient:
    """A registered SMART app or backend service: https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr."""

    client_id: str
    redirect_uris: tuple[str, ...] = ()
    scope: str = ""
    public: bool = True
    secret: str | None = field(default=None, repr=False)
    jwks: Mapping[str, Any] | None = None
    jwks_uri: str | None = None

    @property
    def asymmetric(self) -> bool:
        """Authenticates with ``private_key_jwt`` (a registered JWKS or jwks_uri): https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html."""
        return self.jwks is not None or self.jwks_uri is not None

    def allows_redirect(self, uri: str) -> bool:
        """Exact match against the registration (the dev client also takes loopback ports,
        RFC 8252 §7.3): https://www.rfc-editor.org/rfc/rfc6749#section-3.1.2.3."""
        return Client(self.client_id, None, self.redirect_uris).allows_redirect(uri)

    def grantable(self, requested: Iterable[str]) -> list[str]:
        """The requested scopes this registration covers, in request order (RFC 6749 §3.3):
        https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html."""
        registered, others = parse_scopes(self.scope)
        granted: list[str] = []
        for name in dict.fromkeys(requested):
            scope = Scope.parse(name)
            if scope is None:
                if name in others:
                    granted.append(name)
            elif any(_covers(r, scope) for r in registered):
                granted.append(name)
        return granted

    def as_json(self) -> dict[str, Any]:
        """The registration as stored, secret included: https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr."""
        out: dict[str, Any] = {
            "redirect_uris": list(self.redirect_uris),
            "scope": self.scope,
            "public": self.public,
        }
        if self.secret is not None:
            out["secret"] = self.secret
        if self.jwks is not None:
            out["jwks"] = dict(self.jwks)
        if self.jwks_uri is not None:
            out["jwks_uri"] = self.jwks_uri
        return out


def _covers(registered: Scope, wanted: Scope) -> bool:
    return (
        registered.context == wanted.context
        and registered.resource_type in ("*", wanted.resource_type)
        and wanted.permissions <= registered.permissions
        and (not registered.constraints or registered.constraints == wanted.constraints)
    )


def client_from_json(client_id: str, spec: Any) -> SmartClient:
    """Check one registration: https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr."""
    if not _CLIENT_ID.fullmatch(client_id):
        raise ClientError(
            f"client_id {client_id[:80]!r}: 1-64 characters among A-Z a-z 0-9 . _ ~ -"
        )
    if not isinstance(spec, Mapping):
        raise ClientError(f"client {client_id}: the registration must be a JSON object")
    uris = spec.get("redirect_uris", [])
    if not isinstance(uris, list) or not all(isinstance(u, str) and u for u in uris):
        raise ClientError(f"client {client_id}: redirect_uris must be a list of URLs")
    for uri in uris:
        if uri in LOOPBACK_PATTERNS:
            continue
        if not uri.startswith(("https://", "http://127.0.0.1:", "http://localhost:")) or "#" in uri:
            raise ClientError(
                f"client {client_id}: redirect URI {uri[:120]!r} must be https (or a loopback "
                "http URL with a port), without fragment"
            )
    scope = spec.get("scope", "")
    if not isinstance(scope, str):
        raise ClientError(f"client {client_id}: scope must be a space-separated string")
    resource, others = parse_scopes(scope)
    unknown = sorted(others - OTHER_SCOPES)
    if unknown:
        raise ClientError(f"client {client_id}: unknown scope(s) {' '.join(unknown)[:200]}")
    secret = spec.get("secret")
    if secret is not None and (not isinstance(secret, str) or len(secret) < 16):
        raise ClientError(f"client {client_id}: a secret needs 16 characters or more")
    jwks, jwks_uri = spec.get("jwks"), spec.get("jwks_uri")
    if jwks is not None and (
        not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list)
    ):
        raise ClientError(f'client {client_id}: jwks must be a JWK Set ({{"keys": [...]}})')
    if jwks_uri is not None and not (
        isinstance(jwks_uri, str) and jwks_uri.startswith(("https://", "http://127.0.0.1:"))
    ):
        raise ClientError(f"client {client_id}: jwks_uri must be an https URL")
    if jwks is not None and jwks_uri is not None:
        raise ClientError(f"client {client_id}: give jwks or jwks_uri, not both")
    if jwks is not None and any("d" in k for k in jwks["keys"] if isinstance(k, Mapping)):
        raise ClientError(
            f"client {client_id}: the JWKS holds a private key: register the public one"
        )
    public = spec.get("public", secret is None and jwks is None and jwks_uri is None)
    if not isinstance(public, bool):
        raise ClientError(f"client {client_id}: public must be true or false")
    if public and (secret is not None or jwks is not None or jwks_uri is not None):
        raise ClientError(f"client {client_id}: a public client has no secret and no keys")
    if not public and secret is None and jwks is None and jwks_uri is None:
        raise ClientError(f"client {client_id}: a confidential client needs a secret or keys")
    if any(s.context == "system" for s in resource) and jwks is None and jwks_uri is None:
        raise ClientError(
            f"client {client_id}: system/ scopes need a backend service (jwks or jwks_uri)"
        )
    return SmartClient(
        client_id,
        tuple(uris),
        " ".join(scope.split()),
        public,
        secret,
        dict(jwks) if jwks is not None else None,
        jwks_uri,
    )


def dev_client() -> SmartClient:
    """The built-in public client ``maison-smart-dev`` (loopback redirects on any port), so
    ``fhirclient`` works locally out of the box: https://www.rfc-editor.org/rfc/rfc8252#section-7.3."""
    return SmartClient(DEV_CLIENT, LOOPBACK_PATTERNS, DEV_SCOPE, public=True)


def parse_clients(raw: str | None) -> dict[str, SmartClient]:
    """The clients of a JSON object ``{"client_id": registration}``: https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr."""
    if not raw or not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ClientError(f"SMART client registrations are not JSON: {error}") from None
    if not isinstance(data, Mapping):
        raise ClientError("SMART client registrations must be a JSON object")
    return {cid: client_from_json(str(cid), spec) for cid, spec in data.items()}


def stored_clients(records: Records) -> dict[str, SmartClient]:
    """The registrations of ``maison smart register``: https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr."""
    return parse_clients(records.get_meta(META_KEY))


def register(records: Records, client: SmartClient) -> None:
    """Add or replace one registration in the store (atomically against concurrent
    registrations): https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr."""
    if client.client_id in (DEV_CLIENT, PORTAL_CLIENT):
        raise ClientError(f"{client.client_id} is built in")
    for _attempt in range(20):
        before = records.get_meta(META_KEY)
        current = orjson.loads(before) if before else {}
        current[client.client_id] = client.as_json()
        after = orjson.dumps(current, option=orjson.OPT_SORT_KEYS).decode()
        if records.swap_meta(META_KEY, before, after) == before:
            return
    raise ClientError("the registrations changed too often meanwhile: try again")


#: The portal's own client: confidential, its one callback under the server's base URL.
PORTAL_CLIENT: Final = "maison-portal"
PORTAL_CALLBACK: Final = "/portal/connexion/retour"
PORTAL_SCOPE: Final = (
    f"openid fhirUser launch/patient offline_access patient/*.cruds user/*.cruds {ADMIN_SCOPE}"
)


def portal_secret(keys: Path) -> str:
    """The portal client's secret, kept in the server's key folder (created on first start):
    https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1."""
    return load_or_create_secret(keys / "portal-client.secret")


def portal_client(base_url: str, secret: str) -> SmartClient:
    """The built-in confidential client of the portal served by this process, redirected only
    to its callback: https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr."""
    callback = base_url.rstrip("/") + PORTAL_CALLBACK
    return SmartClient(PORTAL_CLIENT, (callback,), PORTAL_SCOPE, public=False, secret=secret)


class ClientRegistry:
    """Every client the server knows, read at each use (a registration made while the server
    runs applies at once): https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr."""

    def __init__(
        self,
        records: Records,
        environment: str | None = None,
        built_in: Iterable[SmartClient] = (),
    ) -> None:
        self.records = records
        self.fixed = {
            DEV_CLIENT: dev_client(),
            **parse_clients(environment),
            **{c.client_id: c for c in built_in},
        }

    def all(self) -> dict[str, SmartClient]:
        """The built-in and environment clients, then the stored registrations (which cannot
        replace them): https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr."""
        return {**stored_clients(self.records), **self.fixed}

    def get(self, client_id: str | None) -> SmartClient | None:
        """The client of this id, or None: https://www.rfc-editor.org/rfc/rfc6749#section-2.2."""
        if not client_id:
            return None
        fixed = self.fixed.get(client_id)
        return fixed if fixed is not None else stored_clients(self.records).get(client_id)
