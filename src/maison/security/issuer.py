"""The development-mode local token issuer: one ES256 key kept in a 0600 file.

https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from joserfc import jwt
from joserfc.jwk import ECKey

from maison.security.jwks import StaticJwks
from maison.security.tokens import JwtAuthenticator
from maison.store.secret_files import check_private, create_secret_file

KEY_FILE = "issuer-key.json"
ALGORITHM = "ES256"
# Claims mint() sets itself; extra_claims may not override them.
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope"})
SCOPES_SUPPORTED = (
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.cruds",
    "user/*.rs",
    "user/*.cruds",
    "system/*.rs",
    "system/*.cruds",
    "patient/*.read",
    "patient/*.write",
    "user/*.read",
    "user/*.write",
    "system/*.read",
    "system/*.write",
)
#: What ``/auth/token`` serves (SMART App Launch, Backend Services, RFC 8693).
GRANT_TYPES_SUPPORTED = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:token-exchange",
)
#: Client authentication at ``/auth/token`` (public clients send only their client_id).
TOKEN_AUTH_METHODS = ("private_key_jwt", "client_secret_basic", "none")
#: JWS algorithms of ``private_key_jwt`` client assertions (SMART Backend Services).
ASSERTION_ALGORITHMS = ("RS384", "ES384")


class LocalIssuer:
    """Mints ES256 access tokens for development: https://www.rfc-editor.org/rfc/rfc9068#section-2."""

    def __init__(self, key: ECKey, issuer_url: str) -> None:
        if not key.is_private or key.as_dict().get("crv") != "P-256":
            raise ValueError("the local issuer needs a private EC P-256 key")
        self.issuer_url = issuer_url
        self.kid = key.thumbprint()  # RFC 7638
        self._key = key

    @classmethod
    def load_or_create(cls, folder: Path, issuer_url: str) -> LocalIssuer:
        """Load `folder/issuer-key.json`, creating it (mode 0600, atomically) on first use: https://www.rfc-editor.org/rfc/rfc7517#section-4."""
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / KEY_FILE
        if not path.exists():
            _create_key_file(path)
        check_private(path)
        data = orjson.loads(path.read_bytes())
        return cls(ECKey.import_key(data), issuer_url)

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set: https://www.rfc-editor.org/rfc/rfc7517#section-5."""
        public = self._key.as_dict(private=False)
        jwk = {k: public[k] for k in ("kty", "crv", "x", "y")}
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}]}

    def key_source(self) -> StaticJwks:
        """A key source over this issuer's own key, to validate its tokens without HTTP."""
        return StaticJwks(self.jwks())

    def authenticator(self, audience: str | Iterable[str], **options: Any) -> JwtAuthenticator:
        """A JwtAuthenticator that accepts this issuer's tokens: https://www.rfc-editor.org/rfc/rfc9068#section-4."""
        return JwtAuthenticator(self.issuer_url, audience, self.key_source(), **options)

    def openid_configuration(self, base_url: str) -> dict[str, Any]:
        """OpenID provider metadata of ``/auth`` (the SMART authorization server, token
        exchange and introspection): https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata."""
        base = base_url.rstrip("/")
        return {
            "issuer": self.issuer_url,
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "authorization_endpoint": f"{base}/auth/authorize",
            "token_endpoint": f"{base}/auth/token",
            "introspection_endpoint": f"{base}/auth/introspect",
            "revocation_endpoint": f"{base}/auth/revoke",
            "grant_types_supported": list(GRANT_TYPES_SUPPORTED),
            "token_endpoint_auth_methods_supported": list(TOKEN_AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
            "revocation_endpoint_auth_methods_supported": list(TOKEN_AUTH_METHODS),
            "scopes_supported": list(SCOPES_SUPPORTED),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "scope", "fhirUser",
                "patient", "representative", "SubjectNameID",
            ],
        }  # fmt: skip

    def mint(
        self,
        subject: str,
        scopes: list[str],
        audience: str | list[str],
        lifetime_seconds: int = 3600,
        extra_claims: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """Sign an access token (JWT, ES256): https://www.rfc-editor.org/rfc/rfc9068#section-2.2."""
        extra = dict(extra_claims or {})
        clash = RESERVED_CLAIMS & extra.keys()
        if clash:
            raise ValueError(f"extra_claims may not set {sorted(clash)}")
        issued = int(time.time() if now is None else now)
        claims = {
            **extra,
            "iss": self.issuer_url,
            "sub": subject,
            "aud": audience,
            "iat": issued,
            "exp": issued + lifetime_seconds,
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(scopes),
        }
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": "at+jwt"}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])

    def id_token(
        self,
        subject: str,
        client_id: str,
        lifetime_seconds: int = 300,
        extra_claims: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """Sign an OpenID Connect ID token for a client: https://openid.net/specs/openid-connect-core-1_0.html#IDToken."""
        issued = int(time.time() if now is None else now)
        claims = {
            **dict(extra_claims or {}),
            "iss": self.issuer_url,
            "sub": subject,
            "aud": client_id,
            "azp": client_id,
            "iat": issued,
            "exp": issued + lifetime_seconds,
        }
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])


def _create_key_file(path: Path) -> None:
    key = ECKey.generate_key("P-256", private=True)
    create_secret_file(path, orjson.dumps(key.as_dict(private=True)))  # a racing winner's stays
