"""The relying party of Pro Santé Connect: authorization code flow with PKCE, ID token and
userinfo validation, refresh and logout, against any OpenID provider named by its issuer URL.

The same class talks to the real PSC (production ``https://auth.esw.esante.gouv.fr/auth/realms/
esante-wallet``, sandbox BAS ``https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet``)
and to the local PSC-compatible provider: everything else is read from the discovery document.

Decisions:

* discovery is read on first use (or by :meth:`RelyingParty.discover` at start), never at
  import; its ``issuer`` must equal the configured one exactly (Discovery §4.3);
* signatures are checked with :mod:`maison.security.jwks` (asymmetric algorithms only: ``none``
  and ``HS*`` are refused, RFC 8725 §3.1-3.2); an unknown ``kid`` refetches the JWKS once;
* ``acr`` is ordered ``eidas1 < eidas2 < eidas3``; a missing or lower level is refused;
* a refreshed ID token must keep ``iss``, ``sub`` and ``aud`` (Core §12.2); its ``acr`` is not
  required again (no new authentication happened);
* error messages never carry a token, a code or a verifier.

https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowAuth
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import orjson

from maison.fhir.errors import FhirError
from maison.security.jwks import SUPPORTED_ALGORITHMS, RemoteJwks, b64url_decode
from maison.security.professional import (
    ProfessionalContext,
    ProfessionalContextError,
    from_userinfo,
)

PSC_PRODUCTION_ISSUER = "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"
PSC_SANDBOX_ISSUER = "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet"
DEFAULT_SCOPE = "openid scope_all"
DEFAULT_ACR = "eidas1"
#: eIDAS levels of assurance, lowest first (``acr`` values announced by PSC and FranceConnect).
ACR_LEVELS: dict[str, int] = {"eidas1": 1, "eidas2": 2, "eidas3": 3}
PENDING_LIFETIME_SECONDS = 600.0
_MAX_DOCUMENT_BYTES = 1024 * 1024


class RelyingPartyError(Exception):
    """A sign-in, refresh or logout step failed; ``code`` says which, for an HTTP mapping.

    Codes: ``discovery``, ``jwks``, ``state_mismatch``, ``login_expired``, ``provider_error``,
    ``issuer_mismatch``, ``token_endpoint``, ``invalid_id_token``, ``userinfo``,
    ``invalid_userinfo``, ``activity_choice``, ``no_refresh_token``, ``logout``.
    https://openid.net/specs/openid-connect-core-1_0.html#AuthError
    """

    def __init__(
        self,
        message: str,
        code: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        #: the provider's own ``error`` / ``error_description`` (RFC 6749 §4.1.2.1, §5.2)
        self.error = error
        self.error_description = error_description


# --- discovery ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Discovery:
    """The endpoints of an OpenID provider: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_metadata(cls, issuer: str, metadata: Any) -> Discovery:
        """Check a discovery document against the configured issuer: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfigurationValidation."""
        if not isinstance(metadata, Mapping):
            raise RelyingPartyError(
                f"the discovery document of {issuer} is not a JSON object", "discovery"
            )
        announced = metadata.get("issuer")
        if announced != issuer:
            shown = announced if isinstance(announced, str) else "none"
            raise RelyingPartyError(
                f"the discovery document of {issuer} names another issuer ({shown[:200]}): "
                "refused (OpenID Connect Discovery §4.3)",
                "discovery",
            )
        urls: dict[str, str | None] = {}
        for name in (
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "userinfo_endpoint",
            "end_session_endpoint",
        ):
            value = metadata.get(name)
            if value is not None and (not isinstance(value, str) or not _is_http_url(value)):
                raise RelyingPartyError(
                    f"the discovery document of {issuer} has an invalid {name}", "discovery"
                )
            urls[name] = value
        for required in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if urls[required] is None:
                raise RelyingPartyError(
                    f"the discovery document of {issuer} has no {required}", "discovery"
                )
        return cls(
            issuer=issuer,
            authorization_endpoint=urls["authorization_endpoint"] or "",
            token_endpoint=urls["token_endpoint"] or "",
            jwks_uri=urls["jwks_uri"] or "",
            userinfo_endpoint=urls["userinfo_endpoint"],
            end_session_endpoint=urls["end_session_endpoint"],
            metadata=dict(metadata),
        )

    @classmethod
    def fetch(
        cls, issuer: str, http: httpx.Client, document: str = "openid-configuration"
    ) -> Discovery:
        """Read ``{issuer}/.well-known/openid-configuration``: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfigurationRequest."""
        url = f"{issuer.rstrip('/')}/.well-known/{document}"
        return cls.from_metadata(issuer, _get_json(http, url, "discovery"))


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.netloc)


def _get_json(http: httpx.Client, url: str, code: str) -> Any:
    try:
        response = http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as err:
        raise RelyingPartyError(
            f"cannot reach {url}: {type(err).__name__} (is the provider up and the URL right?)",
            code,
        ) from None
    if response.status_code != 200:
        raise RelyingPartyError(f"{url} answered HTTP {response.status_code}", code)
    if len(response.content) > _MAX_DOCUMENT_BYTES:
        raise RelyingPartyError(f"{url} answered a document too large", code)
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise RelyingPartyError(f"{url} did not answer JSON", code) from None


# --- the login state and the session -----------------------------------------------------------
@dataclass(frozen=True)
class PendingLogin:
    """What the RP keeps between the redirect and the callback: https://openid.net/specs/openid-connect-core-1_0.html#AuthRequest."""

    state: str
    nonce: str
    code_verifier: str = field(repr=False)
    created_at: float


@dataclass(frozen=True)
class Session:
    """The tokens of a signed-in professional, the validated ID token claims and the userinfo: https://openid.net/specs/openid-connect-core-1_0.html#TokenResponse."""

    access_token: str = field(repr=False)
    id_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    token_type: str
    expires_at: float | None
    refresh_expires_at: float | None
    scope: str | None
    id_claims: Mapping[str, Any]
    userinfo: Mapping[str, Any] = field(repr=False)

    @property
    def subject(self) -> str:
        """The ``sub`` of the ID token: https://openid.net/specs/openid-connect-core-1_0.html#IDToken."""
        return str(self.id_claims["sub"])


# --- the relying party -------------------------------------------------------------------------
class RelyingParty:
    """An OpenID Connect client of PSC, configured by the issuer URL: https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        redirect_uri: str,
        scope: str = DEFAULT_SCOPE,
        acr_values: str = DEFAULT_ACR,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        leeway_seconds: float = 60.0,
        pending_lifetime_seconds: float = PENDING_LIFETIME_SECONDS,
        jwks_ttl_seconds: float = 300.0,
        jwks_min_refetch_seconds: float = 60.0,
        discovery_document: str = "openid-configuration",
    ) -> None:
        if not _is_http_url(issuer):
            raise ValueError(f"the issuer must be an http(s) URL, not {issuer!r}")
        first = acr_values.split()[:1]
        if not first or first[0] not in ACR_LEVELS:
            raise ValueError(f"acr_values must start with one of {sorted(ACR_LEVELS)}")
        self.issuer = issuer
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.acr_values = acr_values
        self.leeway = float(leeway_seconds)
        self.pending_lifetime = float(pending_lifetime_seconds)
        # PSC also publishes "wallet-openid-configuration", whose authorization_endpoint is
        # the wallet page (https://wallet.esw.esante.gouv.fr/auth) rather than Keycloak's own.
        self.discovery_document = discovery_document
        self._owns_http = http is None
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False
        )
        self._clock = clock
        self._jwks_ttl = jwks_ttl_seconds
        self._jwks_min_refetch = jwks_min_refetch_seconds
        self._discovery: Discovery | None = None
        self._jwks: RemoteJwks | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RelyingParty(issuer={self.issuer!r}, client_id={self.client_id!r})"

    def close(self) -> None:
        """Close the HTTP client this object created (not an injected one)."""
        if self._owns_http:
            self._http.close()

    # discovery and keys
    def discover(self) -> Discovery:
        """Read (or re-read) the provider's discovery document: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig."""
        found = Discovery.fetch(self.issuer, self._http, self.discovery_document)
        with self._lock:
            self._discovery = found
            self._jwks = RemoteJwks(
                jwks_uri=found.jwks_uri,
                http_get=lambda url: _get_json(self._http, url, "jwks"),
                ttl=self._jwks_ttl,
                min_refetch_seconds=self._jwks_min_refetch,
            )
        return found

    @property
    def discovery(self) -> Discovery:
        """The discovery document, read on first use: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig."""
        current = self._discovery
        return current if current is not None else self.discover()

    def _keys(self) -> RemoteJwks:
        keys = self._jwks
        if keys is None:
            self.discover()  # builds the key source from the discovered jwks_uri
            keys = self._jwks
        assert keys is not None
        return keys

    # the flow
    def start(self) -> tuple[str, PendingLogin]:
        """The authorization URL (PKCE S256, state, nonce, acr_values) and what to keep: https://www.rfc-editor.org/rfc/rfc7636#section-4."""
        pending = PendingLogin(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),  # 86 chars of [A-Za-z0-9_-]: RFC 7636 §4.1
            created_at=self._clock(),
        )
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": pending.state,
            "nonce": pending.nonce,
            "acr_values": self.acr_values,
            "code_challenge": code_challenge(pending.code_verifier),
            "code_challenge_method": "S256",
        }
        return _with_query(self.discovery.authorization_endpoint, params), pending

    def finish(self, pending: PendingLogin, callback_params: Mapping[str, str]) -> Session:
        """Check the callback, exchange the code, validate the ID token and read userinfo: https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowSteps."""
        now = self._clock()
        state = callback_params.get("state")
        if not isinstance(state, str) or not hmac.compare_digest(
            state.encode("utf-8", "surrogatepass"), pending.state.encode()
        ):
            raise RelyingPartyError(
                "the sign-in answer does not match the sign-in started here (state mismatch): "
                "start again",
                "state_mismatch",
            )
        if now - pending.created_at > self.pending_lifetime:
            raise RelyingPartyError("the sign-in took too long: start again", "login_expired")
        iss = callback_params.get("iss")  # RFC 9207: the provider names itself in the callback
        if iss is not None and iss != self.issuer:
            raise RelyingPartyError(
                "the sign-in answer comes from another provider (iss mismatch, RFC 9207)",
                "issuer_mismatch",
            )
        error = callback_params.get("error")
        if error is not None:
            description = callback_params.get("error_description")
            text = f"the provider refused the sign-in: {_short(error)}"
            if description:
                text += f" ({_short(description)})"
            raise RelyingPartyError(
                text, "provider_error", error=error, error_description=description
            )
        code = callback_params.get("code")
        if not isinstance(code, str) or not code:
            raise RelyingPartyError("the sign-in answer carries no code", "provider_error")
        tokens = self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": pending.code_verifier,
            }
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise RelyingPartyError("the token endpoint gave no ID token", "invalid_id_token")
        access_token = tokens["access_token"]
        claims = self._validate_id_token(id_token, now, nonce=pending.nonce, check_acr=True)
        _check_at_hash(claims, access_token, _header(id_token).get("alg", ""))
        userinfo = self._userinfo(access_token, claims["sub"])
        return _session(tokens, id_token, claims, userinfo, now, refresh_token=None)

    def refresh(self, session: Session) -> Session:
        """New tokens from the refresh token, keeping the rotated one: https://openid.net/specs/openid-connect-core-1_0.html#RefreshTokens."""
        if not session.refresh_token:
            raise RelyingPartyError("this session has no refresh token", "no_refresh_token")
        now = self._clock()
        tokens = self._token_request(
            {"grant_type": "refresh_token", "refresh_token": session.refresh_token}
        )
        id_token = tokens.get("id_token")
        claims: Mapping[str, Any]
        if isinstance(id_token, str):
            claims = self._validate_id_token(
                id_token, now, nonce=session.id_claims.get("nonce"), check_acr=False
            )
            _check_at_hash(claims, tokens["access_token"], _header(id_token).get("alg", ""))
            if claims["sub"] != session.id_claims.get("sub"):
                raise RelyingPartyError(
                    "the refreshed ID token names another subject (OpenID Connect Core §12.2)",
                    "invalid_id_token",
                )
        else:
            id_token, claims = session.id_token, session.id_claims
        return _session(
            tokens, id_token, claims, session.userinfo, now, refresh_token=session.refresh_token
        )

    def logout_url(
        self,
        session: Session,
        post_logout_redirect_uri: str | None = None,
        state: str | None = None,
    ) -> str:
        """The RP-initiated logout URL: https://openid.net/specs/openid-connect-rpinitiated-1_0.html#RPLogout."""
        endpoint = self.discovery.end_session_endpoint
        if endpoint is None:
            raise RelyingPartyError(
                f"the provider {self.issuer} announces no end_session_endpoint", "logout"
            )
        params = {"id_token_hint": session.id_token, "client_id": self.client_id}
        if post_logout_redirect_uri is not None:
            params["post_logout_redirect_uri"] = post_logout_redirect_uri
        if state is not None:
            params["state"] = state
        return _with_query(endpoint, params)

    def professional(self, session: Session, activity: int | None = None) -> ProfessionalContext:
        """The professional context of the session's userinfo: https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect."""
        claims = dict(session.userinfo)
        acr = session.id_claims.get("acr")
        if isinstance(acr, str):
            claims["acr"] = acr  # the level validated on the ID token
        try:
            return from_userinfo(claims, activity)
        except ProfessionalContextError as err:
            code = "activity_choice" if err.reason == "choice" else "invalid_userinfo"
            raise RelyingPartyError(err.message, code) from None

    # token endpoint, ID token, userinfo
    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        endpoint = self.discovery.token_endpoint
        headers = {"Accept": "application/json"}
        if self._client_secret is not None:  # client_secret_basic: RFC 6749 §2.3.1
            user = quote(self.client_id, safe="")
            password = quote(self._client_secret, safe="")
            basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {basic}"
        else:  # public client: client_id in the body, PKCE proves the possession
            form = {**form, "client_id": self.client_id}
        try:
            response = self._http.post(endpoint, data=form, headers=headers)
        except httpx.HTTPError as err:
            raise RelyingPartyError(
                f"cannot reach the token endpoint {endpoint}: {type(err).__name__}",
                "token_endpoint",
            ) from None
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            description = body.get("error_description") if isinstance(body, dict) else None
            text = f"the token endpoint refused the request (HTTP {response.status_code}"
            text += f", {_short(error)})" if isinstance(error, str) else ")"
            if isinstance(description, str):
                text += f": {_short(description)}"
            raise RelyingPartyError(
                text,
                "token_endpoint",
                error=error if isinstance(error, str) else None,
                error_description=description if isinstance(description, str) else None,
            )
        if not isinstance(body, dict):
            raise RelyingPartyError("the token endpoint did not answer JSON", "token_endpoint")
        if not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise RelyingPartyError("the token endpoint gave no access token", "token_endpoint")
        token_type = body.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise RelyingPartyError(
                "the token endpoint gave a token type other than Bearer", "token_endpoint"
            )
        return body

    def _verify_jws(self, token: str, what: str, code: str, now: float) -> dict[str, Any]:
        """Signature check of a compact JWS with the provider's keys (RFC 7515 §5.2)."""
        parts = token.split(".")
        if len(parts) == 5:
            raise RelyingPartyError(f"the {what} is encrypted (JWE): not supported", code)
        if len(parts) != 3:
            raise RelyingPartyError(f"the {what} is not a signed JWT", code)
        header = _json_part(parts[0], what, code)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
            shown = alg if isinstance(alg, str) and alg.isalnum() and len(alg) < 16 else "?"
            raise RelyingPartyError(
                f"the {what} is signed with '{shown}': only asymmetric algorithms are accepted",
                code,
            )
        if "crit" in header:
            raise RelyingPartyError(f"the {what} has critical header parameters", code)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise RelyingPartyError(f"the {what} has a malformed kid", code)
        try:
            signature = b64url_decode(parts[2])
            candidates = [k for k in self._keys().keys_for(kid, now) if k.can_verify(alg)]
        except ValueError:
            raise RelyingPartyError(f"the {what} has a malformed signature", code) from None
        except FhirError:
            raise RelyingPartyError(
                f"the signing keys of {self.issuer} are unavailable", "jwks"
            ) from None
        if not candidates:
            raise RelyingPartyError(f"the {what} is signed with an unknown key", code)
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        if not any(k.verify(alg, signing_input, signature) for k in candidates):
            raise RelyingPartyError(f"the {what} has an invalid signature", code)
        return _json_part(parts[1], what, code)

    def _validate_id_token(
        self, token: str, now: float, *, nonce: Any, check_acr: bool
    ) -> dict[str, Any]:
        code = "invalid_id_token"
        claims = self._verify_jws(token, "ID token", code, now)

        def refuse(reason: str) -> RelyingPartyError:
            return RelyingPartyError(f"the ID token is refused: {reason}", code)

        if claims.get("iss") != self.issuer:
            raise refuse("it comes from another issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.client_id not in audiences:
            raise refuse("it is meant for another client (aud)")
        azp = claims.get("azp")
        if len(audiences) > 1 and azp is None:
            raise refuse("several audiences and no azp")
        if azp is not None and azp != self.client_id:
            raise refuse("it was issued to another client (azp)")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise refuse("no subject (sub)")
        exp, iat = _date(claims, "exp"), _date(claims, "iat")
        if exp is None or iat is None:
            raise refuse("exp and iat are required")
        if now >= exp + self.leeway:
            raise refuse("it has expired")
        if iat > now + self.leeway:
            raise refuse("it was issued in the future (check the clocks)")
        nbf = _date(claims, "nbf")
        if nbf is not None and nbf > now + self.leeway:
            raise refuse("it is not valid yet (nbf)")
        got = claims.get("nonce")
        # at sign-in the nonce is required; a refreshed ID token may omit it (Core §12.2)
        if (check_acr or got is not None) and not (
            isinstance(got, str)
            and isinstance(nonce, str)
            and hmac.compare_digest(got.encode("utf-8", "surrogatepass"), nonce.encode())
        ):
            raise refuse("its nonce is not the one of this sign-in (replay?)")
        if check_acr:
            wanted = ACR_LEVELS[self.acr_values.split()[0]]
            acr = claims.get("acr")
            if not isinstance(acr, str) or ACR_LEVELS.get(acr, 0) < wanted:
                shown = acr if isinstance(acr, str) else "none"
                raise refuse(
                    f"level of assurance '{_short(shown)}' is below the required "
                    f"'{self.acr_values.split()[0]}' (acr)"
                )
        return claims

    def _userinfo(self, access_token: str, sub: str) -> dict[str, Any]:
        endpoint = self.discovery.userinfo_endpoint
        if endpoint is None:
            raise RelyingPartyError(
                f"the provider {self.issuer} announces no userinfo_endpoint", "userinfo"
            )
        try:
            response = self._http.get(
                endpoint,
                headers={
                    "Authorization": f"Bearer {access_token}",
                    "Accept": "application/json, application/jwt",
                },
            )
        except httpx.HTTPError as err:
            raise RelyingPartyError(
                f"cannot reach the userinfo endpoint {endpoint}: {type(err).__name__}", "userinfo"
            ) from None
        if response.status_code != 200:
            raise RelyingPartyError(
                f"the userinfo endpoint answered HTTP {response.status_code}", "userinfo"
            )
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "application/jwt":  # signed userinfo: Core §5.3.2
            claims = self._verify_jws(
                response.text.strip(), "userinfo", "invalid_userinfo", self._clock()
            )
            if "iss" in claims and claims["iss"] != self.issuer:
                raise RelyingPartyError(
                    "the signed userinfo comes from another issuer", "invalid_userinfo"
                )
            aud = claims.get("aud")
            if aud is not None and self.client_id not in ([aud] if isinstance(aud, str) else aud):
                raise RelyingPartyError(
                    "the signed userinfo is meant for another client", "invalid_userinfo"
                )
        else:
            try:
                claims = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise RelyingPartyError(
                    "the userinfo endpoint answered neither JSON nor a JWT", "invalid_userinfo"
                ) from None
            if not isinstance(claims, dict):
                raise RelyingPartyError("the userinfo is not a JSON object", "invalid_userinfo")
        if claims.get("sub") != sub:
            raise RelyingPartyError(
                "the userinfo names another person than the ID token (sub mismatch, "
                "OpenID Connect Core §5.3.2)",
                "invalid_userinfo",
            )
        return claims


# --- helpers -----------------------------------------------------------------------------------
def code_challenge(verifier: str) -> str:
    """The S256 code challenge of a PKCE verifier: https://www.rfc-editor.org/rfc/rfc7636#section-4.2."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` added to (and overriding) its own query."""
    parts = urlsplit(url)
    query = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params}
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _short(text: Any) -> str:
    value = str(text)
    printable = "".join(c if c.isprintable() else "?" for c in value[:200])
    return printable + ("…" if len(value) > 200 else "")


def _header(token: str) -> dict[str, Any]:
    try:
        value = orjson.loads(b64url_decode(token.split(".", 1)[0]))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _json_part(segment: str, what: str, code: str) -> dict[str, Any]:
    try:
        value = orjson.loads(b64url_decode(segment))
    except ValueError:
        raise RelyingPartyError(f"the {what} is malformed", code) from None
    if not isinstance(value, dict):
        raise RelyingPartyError(f"the {what} is malformed: not a JSON object", code)
    return value


def _date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RelyingPartyError(
            f"the ID token is refused: {name} is not a NumericDate", "invalid_id_token"
        )
    return float(value)


def _check_at_hash(claims: Mapping[str, Any], access_token: str, alg: str) -> None:
    """When present, ``at_hash`` must match the access token (Core §3.1.3.8, §3.2.2.9)."""
    at_hash = claims.get("at_hash")
    if at_hash is None:
        return
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[alg[2:]]
    half = digest(access_token.encode("ascii")).digest()
    expected = base64.urlsafe_b64encode(half[: len(half) // 2]).rstrip(b"=").decode("ascii")
    if not isinstance(at_hash, str) or not hmac.compare_digest(at_hash, expected):
        raise RelyingPartyError(
            "the ID token is refused: at_hash does not match the access token", "invalid_id_token"
        )


def _session(
    tokens: Mapping[str, Any],
    id_token: str,
    claims: Mapping[str, Any],
    userinfo: Mapping[str, Any],
    now: float,
    *,
    refresh_token: str | None,
) -> Session:
    def deadline(name: str) -> float | None:
        value = tokens.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            return None
        return now + float(value)

    new_refresh = tokens.get("refresh_token")
    scope = tokens.get("scope")
    return Session(
        access_token=tokens["access_token"],
        id_token=id_token,
        refresh_token=new_refresh if isinstance(new_refresh, str) else refresh_token,
        token_type="Bearer",
        expires_at=deadline("expires_in"),
        refresh_expires_at=deadline("refresh_expires_in"),  # Keycloak's, hence PSC's
        scope=scope if isinstance(scope, str) else None,
        id_claims=dict(claims),
        userinfo=dict(userinfo),
    )
