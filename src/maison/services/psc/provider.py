"""The local Pro Santé Connect-compatible OpenID provider (development, demos, tests).

Same discovery shape, claim names and token lifetimes as PSC (access 2 min, refresh 30 min,
session 4 h), ``acr`` ``eidas1``, authorization code flow with PKCE S256 only.

State that several worker processes must share is kept out of process memory:

* authorization codes and refresh tokens are self-contained artefacts, encrypted and
  authenticated (JWE ``dir`` + ``A256GCM``, key derived from the provider's signing key), bound
  to the client, the redirect URI, the PKCE challenge, the nonce and the session;
* what must be remembered (a code already exchanged, the current refresh token of a rotation
  family, a session ended by logout) is a small record in the store's key/value facts
  (``store_meta``, through :class:`Records`). The check-then-set is not atomic across workers:
  two workers racing within milliseconds on the same code could both accept it.

https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import unquote_plus, urlencode, urlsplit

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey

ALGORITHM: Final = "ES256"
ACR: Final = "eidas1"
ACCESS_TTL: Final = 120  # PSC access token: 2 min
REFRESH_TTL: Final = 30 * 60  # PSC refresh token: 30 min (also the session's idle limit)
SESSION_TTL: Final = 4 * 3600  # PSC session: 4 h from authentication
CODE_TTL: Final = 60  # an authorization code is exchanged at once (RFC 6749 §4.1.2: ≤ 10 min)
DEV_CLIENT: Final = "maison-dev"
DEV_PASSWORD: Final = "maison-test"
LOOPBACK_PATTERNS: Final = ("http://127.0.0.1:*", "http://localhost:*")
SCOPES: Final = ("openid", "scope_all")
_ENC_HEADER: Final = {"alg": "dir", "enc": "A256GCM"}


class OAuthError(Exception):
    """An error answered as RFC 6749 JSON: https://www.rfc-editor.org/rfc/rfc6749#section-5.2."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        """The JSON error body: https://www.rfc-editor.org/rfc/rfc6749#section-5.2."""
        return {"error": self.error, "error_description": self.description}


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(client id, secret) of an ``Authorization: Basic`` header, None without one; malformed
    credentials are ``invalid_client`` (https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1)."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except ValueError:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    user, sep, pwd = raw.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    return unquote_plus(user), unquote_plus(pwd)


class Records(Protocol):
    """Small shared facts (single use, rotation, logout): the store's key/value table."""

    def get_meta(self, key: str) -> str | None:
        """The value recorded under ``key``, or None."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Record ``value`` under ``key`` (keys up to 64 characters)."""
        ...

    def swap_meta(self, key: str, expected: str | None, value: str) -> str | None:
        """Record ``value`` if the current value is ``expected`` (None: absent), atomically
        across processes; the value found before."""
        ...


@dataclass(frozen=True)
class Client:
    """A registered relying party: https://openid.net/specs/openid-connect-registration-1_0.html#ClientMetadata."""

    client_id: str
    secret: str | None = None  # None: a public client (PKCE only)
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()

    def allows_redirect(self, uri: str) -> bool:
        """Exact match, or a loopback pattern ``http://127.0.0.1:*`` (any port, RFC 8252 §7.3):
        https://www.rfc-editor.org/rfc/rfc6749#section-3.1.2.3."""
        return any(_redirect_matches(p, uri) for p in self.redirect_uris)

    def allows_logout_redirect(self, uri: str) -> bool:
        """Registered post-logout URIs only: https://openid.net/specs/openid-connect-rpinitiated-1_0.html#RPLogout."""
        return any(_redirect_matches(p, uri) for p in self.post_logout_redirect_uris)


def _redirect_matches(pattern: str, uri: str) -> bool:
    if pattern == uri:
        return True
    if pattern not in LOOPBACK_PATTERNS:
        return False
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    host = urlsplit(pattern.replace(":*", "")).hostname
    return (
        parts.scheme == "http"
        and parts.hostname == host
        and parts.netloc == f"{host}:{port}"  # no user info, an explicit port
        and port is not None
        and not parts.fragment
    )


def default_clients(extra: str | None = None) -> dict[str, Client]:
    """The dev client ``maison-dev`` (public, loopback redirects) and the clients of a JSON
    object ``{"id": {"secret", "redirect_uris", "post_logout_redirect_uris"}}`` (the
    ``MAISON_PSC_CLIENTS`` environment variable): https://www.rfc-editor.org/rfc/rfc6749#section-2."""
    clients = {
        DEV_CLIENT: Client(DEV_CLIENT, None, LOOPBACK_PATTERNS, LOOPBACK_PATTERNS),
    }
    for cid, spec in (orjson.loads(extra) if extra else {}).items():
        clients[cid] = Client(
            cid,
            spec.get("secret"),
            tuple(spec.get("redirect_uris", ())),
            tuple(spec.get("post_logout_redirect_uris", ())),
        )
    return clients


@dataclass(frozen=True)
class AuthorizeRequest:
    """A checked authorization request: https://openid.net/specs/openid-connect-core-1_0.html#AuthRequest."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str
    nonce: str
    code_challenge: str

    def hidden_fields(self) -> dict[str, str]:
        """The request parameters the sign-in form posts back."""
        return {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
            "acr_values": ACR,
        }


class AuthorizeError(Exception):
    """A refused authorization request; ``redirect`` when the error may go back to the client
    (https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1)."""

    def __init__(self, error: str, description: str, redirect: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect = redirect


def s256(verifier: str) -> str:
    """The S256 code challenge of a verifier: https://www.rfc-editor.org/rfc/rfc7636#section-4.2."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _derive(key: ECKey, label: bytes) -> bytes:
    d = base64.urlsafe_b64decode(str(key.as_dict(private=True)["d"]) + "==")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(d)


@dataclass
class PscProvider:
    """The local PSC-compatible OpenID provider: https://openid.net/specs/openid-connect-core-1_0.html."""

    key: ECKey
    issuer_url: str  # e.g. http://127.0.0.1:8080/psc
    audience: str  # the platform: access tokens are for it
    records: Records
    clients: dict[str, Client] = field(default_factory=default_clients)
    password: str = DEV_PASSWORD
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.kid = self.key.thumbprint()
        self._box = OctKey.import_key(_derive(self.key, b"maison psc artefacts v1"))

    # --- discovery -------------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        """Provider metadata, PSC's shape: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata."""
        base = self.issuer_url
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/auth",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "end_session_endpoint": f"{base}/logout",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "acr_values_supported": [ACR],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "sid",
                "SubjectNameID",
                "preferred_username",
                "given_name",
                "family_name",
                "SubjectRefPro",
            ],
        }

    def jwks(self) -> dict[str, Any]:
        """The public signing key: https://www.rfc-editor.org/rfc/rfc7517#section-5."""
        public = self.key.as_dict(private=False)
        jwk = {k: public[k] for k in ("kty", "crv", "x", "y")}
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}]}

    # --- authorize -------------------------------------------------------------------------
    def check_authorize(self, params: Mapping[str, str]) -> AuthorizeRequest:
        """Check an authorization request; errors before the redirect URI is known to be
        registered never redirect: https://openid.net/specs/openid-connect-core-1_0.html#AuthRequestValidation."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise AuthorizeError("invalid_client", "client_id inconnu")
        redirect_uri = params.get("redirect_uri", "")
        if not client.allows_redirect(redirect_uri):
            raise AuthorizeError(
                "invalid_request",
                "redirect_uri non enregistrée pour ce client (aucune redirection)",
            )
        state = params.get("state", "")

        def refuse(error: str, description: str) -> AuthorizeError:
            query = {"error": error, "error_description": description}
            if state:
                query["state"] = state
            sep = "&" if "?" in redirect_uri else "?"
            return AuthorizeError(error, description, f"{redirect_uri}{sep}{urlencode(query)}")

        if params.get("response_type") != "code":
            raise refuse("unsupported_response_type", "response_type must be code")
        scopes = params.get("scope", "").split()
        if "openid" not in scopes:
            raise refuse("invalid_scope", "scope must contain openid")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise refuse("invalid_scope", f"unsupported scope(s): {' '.join(unknown)}")
        if not state:
            raise refuse("invalid_request", "state is required")
        nonce = params.get("nonce", "")
        if not nonce:
            raise refuse("invalid_request", "nonce is required")
        challenge = params.get("code_challenge", "")
        method = params.get("code_challenge_method", "")
        if not challenge:
            raise refuse("invalid_request", "code_challenge (PKCE, S256) is required")
        if method != "S256":
            raise refuse("invalid_request", "code_challenge_method must be S256 (plain refused)")
        if not 43 <= len(challenge) <= 128:
            raise refuse("invalid_request", "code_challenge is not an S256 challenge")
        acr = params.get("acr_values")
        if acr is not None and ACR not in acr.split():
            raise refuse("invalid_request", "acr_values must be eidas1")
        return AuthorizeRequest(
            client.client_id, redirect_uri, " ".join(scopes), state, nonce, challenge
        )

    def check_password(self, password: str) -> bool:
        """The test password of the development sign-in (constant-time comparison)."""
        return hmac.compare_digest(password.encode(), self.password.encode())

    def issue_code(self, request: AuthorizeRequest, national_id: str, sub: str) -> str:
        """A one-minute authorization code bound to the request, with a new session:
        https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2."""
        now = int(self.clock())
        claims = {
            "typ": "code",
            "jti": secrets.token_urlsafe(16),
            "cid": request.client_id,
            "ru": request.redirect_uri,
            "cc": request.code_challenge,
            "nonce": request.nonce,
            "scope": request.scope,
            "nid": national_id,
            "sub": sub,
            "sid": secrets.token_urlsafe(16),
            "auth_time": now,
            "exp": now + CODE_TTL,
        }
        return self._seal(claims)

    def redirect_with_code(self, request: AuthorizeRequest, code: str) -> str:
        """The client's redirect URI with ``code`` and ``state``: https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2."""
        sep = "&" if "?" in request.redirect_uri else "?"
        query = urlencode({"code": code, "state": request.state})
        return f"{request.redirect_uri}{sep}{query}"

    # --- token -----------------------------------------------------------------------------
    def authenticate_client(self, form: Mapping[str, str], authorization: str | None) -> Client:
        """client_secret_basic, client_secret_post, or a public client by client_id:
        https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1."""
        cid, secret, basic = form.get("client_id"), form.get("client_secret"), False
        credentials = basic_credentials(authorization)
        if credentials is not None:
            (cid, secret), basic = credentials, True
        client = self.clients.get(cid or "")
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if client.secret is None:
            if secret:
                raise OAuthError("invalid_client", "a public client has no secret", 401)
            return client
        if not secret or not hmac.compare_digest(secret.encode(), client.secret.encode()):
            how = "client_secret_basic" if basic else "client_secret_post"
            raise OAuthError("invalid_client", f"client authentication failed ({how})", 401)
        return client

    def token(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """The token endpoint: https://openid.net/specs/openid-connect-core-1_0.html#TokenEndpoint."""
        client = self.authenticate_client(form, authorization)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._exchange_code(client, form)
        if grant == "refresh_token":
            return self._refresh(client, form)
        raise OAuthError(
            "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
        )

    def _exchange_code(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        code = self._open(form.get("code", ""), "code")
        if code["cid"] != client.client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != code["ru"]:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier", "")
        if not verifier:
            raise OAuthError("invalid_request", "code_verifier (PKCE) is required")
        if not 43 <= len(verifier) <= 128 or not hmac.compare_digest(s256(verifier), code["cc"]):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        used_key = f"psc:c:{code['jti']}"
        family, refresh_jti = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        first = self.records.swap_meta(used_key, None, family)  # single use, atomic
        if first is not None:
            # RFC 6819 §4.4.1.1 / OAuth security BCP: revoke what the first exchange gave
            self.records.set_meta(f"psc:f:{first}", "revoked")
            raise OAuthError("invalid_grant", "authorization code already used")
        self.records.set_meta(f"psc:f:{family}", refresh_jti)
        return self._tokens(client, code, family, refresh_jti)

    def _refresh(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        rt = self._open(form.get("refresh_token", ""), "rt")
        if rt["cid"] != client.client_id:
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        now = int(self.clock())
        if self.records.get_meta(f"psc:s:{rt['sid']}") == "ended":
            raise OAuthError("invalid_grant", "the session has ended (logout)")
        if now - int(rt["auth_time"]) > SESSION_TTL:
            raise OAuthError("invalid_grant", "the session is over (4 h): sign in again")
        requested = form.get("scope")
        if requested and not set(requested.split()) <= set(str(rt["scope"]).split()):
            raise OAuthError("invalid_scope", "a refresh cannot widen the scope")
        family_key = f"psc:f:{rt['fid']}"
        refresh_jti = secrets.token_urlsafe(16)
        # rotation: compare-and-set of the family's current token, atomic across workers
        current = self.records.swap_meta(family_key, str(rt["jti"]), refresh_jti)
        if current != rt["jti"]:
            if current != "revoked":
                self.records.set_meta(family_key, "revoked")  # reuse: revoke the whole family
            raise OAuthError("invalid_grant", "refresh token revoked or already used")
        return self._tokens(client, rt, str(rt["fid"]), refresh_jti)

    def _tokens(
        self, client: Client, grant: Mapping[str, Any], family: str, refresh_jti: str
    ) -> dict[str, Any]:
        now = int(self.clock())
        scope = str(grant["scope"])
        common = {"iss": self.issuer_url, "sub": grant["sub"], "iat": now}
        access = self._sign(
            {
                **common,
                "aud": self.audience,
                "exp": now + ACCESS_TTL,
                "jti": secrets.token_urlsafe(16),
                "azp": client.client_id,
                "scope": scope,
                "acr": ACR,
                "auth_time": grant["auth_time"],
                "sid": grant["sid"],
                "SubjectNameID": grant["nid"],
                "typ": "Bearer",
            },
            "at+jwt",
        )
        refresh_exp = min(now + REFRESH_TTL, int(grant["auth_time"]) + SESSION_TTL)
        refresh = self._seal(
            {
                "typ": "rt",
                "jti": refresh_jti,
                "fid": family,
                "cid": client.client_id,
                "scope": scope,
                "nid": grant["nid"],
                "sub": grant["sub"],
                "sid": grant["sid"],
                "nonce": grant.get("nonce"),
                "auth_time": grant["auth_time"],
                "exp": refresh_exp,
            }
        )
        out: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL,
            "refresh_token": refresh,
            "refresh_expires_in": refresh_exp - now,
            "scope": scope,
            "session_state": grant["sid"],
        }
        claims = {
            **common,
            "aud": client.client_id,
            "azp": client.client_id,
            "exp": now + ACCESS_TTL,
            "auth_time": grant["auth_time"],
            "acr": ACR,
            "sid": grant["sid"],
            "SubjectNameID": grant["nid"],
            "preferred_username": grant["nid"],
            "at_hash": _half_hash(access),
        }
        if grant.get("nonce"):
            claims["nonce"] = grant["nonce"]
        out["id_token"] = self._sign(claims, "JWT")
        return out

    # --- userinfo and logout -----------------------------------------------------------------
    def read_access_token(self, token: str) -> dict[str, Any]:
        """Check a Bearer access token this provider issued; its claims:
        https://www.rfc-editor.org/rfc/rfc6750#section-3.1."""
        claims = self._verify(token, "at+jwt")
        if claims.get("aud") != self.audience:
            raise OAuthError("invalid_token", "wrong audience", 401)
        if self.records.get_meta(f"psc:s:{claims.get('sid')}") == "ended":
            raise OAuthError("invalid_token", "the session has ended (logout)", 401)
        return claims

    def logout(self, params: Mapping[str, str]) -> str | None:
        """End the session named by ``id_token_hint``; the registered post-logout redirect, if
        any: https://openid.net/specs/openid-connect-rpinitiated-1_0.html#RPLogout."""
        hint = params.get("id_token_hint", "")
        if not hint:
            raise OAuthError("invalid_request", "id_token_hint is required")
        claims = self._verify(hint, "JWT", check_exp=False)
        client = self.clients.get(str(claims.get("aud")))
        if client is None:
            raise OAuthError("invalid_request", "id_token_hint names an unknown client")
        target = params.get("post_logout_redirect_uri")
        if target and not client.allows_logout_redirect(target):
            raise OAuthError("invalid_request", "post_logout_redirect_uri is not registered")
        self.records.set_meta(f"psc:s:{claims['sid']}", "ended")
        if not target:
            return None
        state = params.get("state")
        if state:
            target += ("&" if "?" in target else "?") + urlencode({"state": state})
        return target

    # --- JOSE ------------------------------------------------------------------------------
    def _sign(self, claims: Mapping[str, Any], typ: str) -> str:
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": typ}
        return jwt.encode(header, dict(claims), self.key, algorithms=[ALGORITHM])

    def _verify(self, token: str, typ: str, check_exp: bool = True) -> dict[str, Any]:
        try:
            decoded = jwt.decode(token, self.key, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError):
            raise OAuthError("invalid_token", "token not issued by this provider", 401) from None
        claims = dict(decoded.claims)
        if decoded.header.get("typ") != typ or claims.get("iss") != self.issuer_url:
            raise OAuthError("invalid_token", "token not issued by this provider", 401)
        if check_exp and int(claims.get("exp", 0)) <= self.clock():
            raise OAuthError("invalid_token", "token expired", 401)
        return claims

    def _seal(self, claims: Mapping[str, Any]) -> str:
        return jwe.encrypt_compact(_ENC_HEADER, orjson.dumps(dict(claims)), self._box)

    def _open(self, value: str, typ: str) -> dict[str, Any]:
        what = "authorization code" if typ == "code" else "refresh token"
        try:
            plain = jwe.decrypt_compact(value, self._box).plaintext
            claims = orjson.loads(plain or b"")
        except (JoseError, ValueError, TypeError):
            raise OAuthError("invalid_grant", f"invalid {what}") from None
        if not isinstance(claims, dict) or claims.get("typ") != typ:
            raise OAuthError("invalid_grant", f"invalid {what}")
        if int(claims.get("exp", 0)) <= self.clock():
            raise OAuthError("invalid_grant", f"{what} expired")
        return claims


def _half_hash(token: str) -> str:
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def load_key(folder: Path) -> ECKey:
    """The provider's own ES256 key, ``folder/issuer-key.json`` (0600, created on first use
    like the local issuer's): https://www.rfc-editor.org/rfc/rfc7517#section-4."""
    from maison.security.issuer import KEY_FILE, LocalIssuer

    LocalIssuer.load_or_create(folder, "urn:maison:psc")  # creates the file, checks its mode
    return ECKey.import_key(orjson.loads((folder / KEY_FILE).read_bytes()))
