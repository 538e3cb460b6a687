"""Client authentication at the token endpoint, and SMART Backend Services.

* a public client names itself (``client_id``) and proves nothing: PKCE does;
* a symmetric confidential client uses ``client_secret_basic`` (constant-time comparison);
* an asymmetric client (and every backend service) uses ``private_key_jwt``: a JWT (RFC 7523)
  signed RS384 or ES384 with a key of its registered JWKS or ``jwks_uri``, ``iss`` = ``sub``
  = client_id, ``aud`` = the token endpoint, ``exp`` at most five minutes ahead, ``jti``
  used once (kept in the store's meta table); a ``jku`` header must be the registered
  ``jwks_uri``;
* ``client_credentials`` is for backend services only and grants ``system/`` scopes within
  the registration, in a 5-minute token without refresh.

https://hl7.org/fhir/smart-app-launch/backend-services.html
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from maison.fhir.errors import FhirError
from maison.security.jwks import KeySource, RemoteJwks, StaticJwks, b64url_decode
from maison.security.tokens import JwtAuthenticator
from maison.services.psc.provider import OAuthError, Records, basic_credentials, s256
from maison.services.smart.clients import ClientRegistry, SmartClient
from maison.services.smart.grants import ACCESS_TTL, Grant, Tokens

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS: Final = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME: Final = 300
LEEWAY: Final = 30.0
_JTI_KEY: Final = "smart:j:"


def _unverified(segment: str) -> dict[str, Any]:
    try:
        value = orjson.loads(b64url_decode(segment))
    except ValueError:
        raise OAuthError("invalid_client", "malformed client assertion", 401) from None
    if not isinstance(value, dict):
        raise OAuthError("invalid_client", "malformed client assertion", 401)
    return value


class ClientAuthenticator:
    """Who is calling the token endpoint: https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html#authenticating-to-the-token-endpoint."""

    def __init__(
        self,
        clients: ClientRegistry,
        token_url: str,
        records: Records,
        clock: Callable[[], float] = time.time,
        remote_keys: Callable[[str], KeySource] | None = None,
    ) -> None:
        self.clients = clients
        self.token_url = token_url
        self.records = records
        self.clock = clock
        self._remote: dict[str, KeySource] = {}
        self._lock = threading.Lock()
        self._remote_keys = remote_keys or (lambda uri: RemoteJwks(jwks_uri=uri))

    def authenticate(self, form: Mapping[str, str], authorization: str | None) -> SmartClient:
        """The authenticated client of a token request: https://www.rfc-editor.org/rfc/rfc6749#section-2.3."""
        if form.get("client_assertion") or form.get("client_assertion_type"):
            if authorization:
                raise OAuthError("invalid_request", "use one client authentication method", 401)
            return self.assertion_client(form)
        credentials = basic_credentials(authorization)
        if credentials is not None:
            cid, secret = credentials
            client = self.clients.get(cid)
            if client is None or client.secret is None:
                raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
            if not hmac.compare_digest(secret.encode(), client.secret.encode()):
                raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
            return client
        if form.get("client_secret"):
            raise OAuthError(
                "invalid_client", "client_secret_post is not supported: use HTTP Basic", 401
            )
        client = self.clients.get(form.get("client_id"))
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if not client.public:
            raise OAuthError("invalid_client", "this client must authenticate", 401)
        return client

    def _keys(self, client: SmartClient) -> KeySource:
        if client.jwks is not None:
            try:
                return StaticJwks(client.jwks)
            except ValueError:
                raise OAuthError(
                    "invalid_client", "the registered JWKS holds no usable key", 401
                ) from None
        assert client.jwks_uri is not None
        with self._lock:
            source = self._remote.get(client.jwks_uri)
            if source is None:
                source = self._remote[client.jwks_uri] = self._remote_keys(client.jwks_uri)
        return source

    def assertion_client(self, form: Mapping[str, str]) -> SmartClient:
        """Check a ``private_key_jwt`` client assertion (RFC 7523 §3); its client: https://hl7.org/fhir/smart-app-launch/backend-services.html#signature-verification."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError(
                "invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}", 401
            )
        assertion = form.get("client_assertion", "").strip()
        parts = assertion.split(".")
        if len(parts) != 3 or len(assertion) > 16 * 1024:
            raise OAuthError("invalid_client", "client_assertion must be a signed JWT", 401)
        header, claims = _unverified(parts[0]), _unverified(parts[1])
        cid = claims.get("iss")
        if not isinstance(cid, str) or not cid:
            raise OAuthError("invalid_client", "client assertion without iss", 401)
        if form.get("client_id") and form["client_id"] != cid:
            raise OAuthError("invalid_client", "client_id differs from the assertion's iss", 401)
        client = self.clients.get(cid)
        if client is None or not client.asymmetric:
            raise OAuthError("invalid_client", "unknown client or no registered keys", 401)
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_uri:
            raise OAuthError("invalid_client", "jku is not the registered jwks_uri", 401)
        now = self.clock()
        checker = JwtAuthenticator(
            cid,
            self.token_url,
            self._keys(client),
            leeway_seconds=LEEWAY,
            algorithms=ASSERTION_ALGORITHMS,
        )
        try:
            checked = dict(checker.authenticate(f"Bearer {assertion}", now).claims)
        except FhirError as error:
            raise OAuthError(
                "invalid_client", f"client assertion refused: {error.message}", 401
            ) from None
        if checked.get("sub") != cid:
            raise OAuthError("invalid_client", "client assertion: sub must equal iss", 401)
        if float(checked["exp"]) > now + MAX_ASSERTION_LIFETIME + LEEWAY:
            raise OAuthError(
                "invalid_client", "client assertion: exp is more than 5 minutes ahead", 401
            )
        jti = checked.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 512:
            raise OAuthError("invalid_client", "client assertion without jti", 401)
        key = _JTI_KEY + s256(f"{cid}\x00{jti}")
        if self.records.swap_meta(key, None, str(int(float(checked["exp"])))) is not None:
            raise OAuthError("invalid_client", "client assertion replayed (jti already used)", 401)
        return client


def client_credentials(
    tokens: Tokens, client: SmartClient, form: Mapping[str, str]
) -> dict[str, Any]:
    """A backend service's access token, ``system/`` scopes within its registration: https://hl7.org/fhir/smart-app-launch/backend-services.html#issue-access-token."""
    if not client.asymmetric:
        raise OAuthError(
            "unauthorized_client", "client_credentials is for backend services (private_key_jwt)"
        )
    requested = form.get("scope", "").split()
    if not requested:
        raise OAuthError("invalid_scope", "scope is required (system/… scopes)")
    system = [s for s in requested if s.startswith("system/")]
    granted = client.grantable(system)
    if not granted:
        raise OAuthError(
            "invalid_scope", "none of the requested system/ scopes is registered for this client"
        )
    grant = Grant(client.client_id, client.client_id, tuple(granted))
    return {
        "access_token": tokens.access_token(grant),
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL,
        "scope": " ".join(granted),
    }
