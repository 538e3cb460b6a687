"""OAuth 2.0 Token Exchange: a Pro Santé Connect access token for a platform API token.

A registered exchange client (``client_secret_basic``) presents the PSC access token of a
professional (``subject_token``); the platform checks it against the PSC issuer (signature,
issuer, audience, expiry), finds the professional in the Annuaire, settles his activity and
mints a short platform access token with SMART ``user/`` scopes, bound to the client's
organisation certificate when one is presented (RFC 8705 ``cnf.x5t#S256``).

Decisions:

* an unusable subject token (bad signature, other issuer or audience, expired) is
  ``invalid_request``, as RFC 8693 §2.2.2 says; a professional the Annuaire refuses (unknown,
  inactive, activity no longer his) is ``invalid_grant`` with the reason;
* the PSC token's ``acr`` must be ``eidas1`` (``required_acr``; None accepts any);
* the platform token lives at most 10 minutes and never beyond the PSC token;
* with the local provider, a token whose PSC session ended (logout) is refused (``ended``);
  a remote PSC's logout is not seen (its access tokens live 2 minutes);
* the FHIR endpoint does not check ``cnf`` yet: binding is recorded, not enforced.

https://www.rfc-editor.org/rfc/rfc8693
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import orjson
from cryptography import x509

from maison.fhir.definitions import Definitions
from maison.fhir.errors import FhirError
from maison.security import pki
from maison.security.issuer import LocalIssuer
from maison.security.jwks import KeySource
from maison.security.principal import Scope
from maison.security.professional import ProfessionalContextError, token_claims
from maison.security.professional import from_userinfo as context_from_userinfo
from maison.security.tokens import JwtAuthenticator
from maison.services.psc.annuaire_lookup import check_professional, userinfo_for_professional
from maison.services.psc.provider import DEV_CLIENT, OAuthError, basic_credentials
from maison.store.sql import SqlStore

GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
MAX_LIFETIME: Final = 600  # 10 minutes
REQUIRED_ACR: Final = "eidas1"
#: Non-resource scopes a professional may ask for besides ``user/…``.
EXTRA_SCOPES: Final = frozenset({"fhirUser"})
#: Most bytes of a certificate chain read from the proxy header.
MAX_CERT_HEADER: Final = 32 * 1024


@dataclass(frozen=True)
class ExchangeClient:
    """A client registered for token exchange (confidential): https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1."""

    client_id: str
    secret: str


def exchange_clients(raw: str | None) -> dict[str, ExchangeClient]:
    """The exchange clients of a JSON object ``{"id": {"secret": "…"}}`` (the
    ``MAISON_EXCHANGE_CLIENTS`` environment variable): https://www.rfc-editor.org/rfc/rfc8693#section-2.1."""
    clients: dict[str, ExchangeClient] = {}
    for cid, spec in (orjson.loads(raw) if raw else {}).items():
        secret = spec.get("secret") if isinstance(spec, Mapping) else None
        if cid == DEV_CLIENT:
            raise ValueError(f"{DEV_CLIENT} is a public client: it may not exchange tokens")
        if not isinstance(secret, str) or len(secret) < 16:
            raise ValueError(f"exchange client {cid!r} needs a secret of 16 characters or more")
        clients[cid] = ExchangeClient(cid, secret)
    return clients


def authenticate_client(
    clients: Mapping[str, ExchangeClient], authorization: str | None
) -> ExchangeClient:
    """``client_secret_basic`` only, constant-time secret comparison: https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1."""
    credentials = basic_credentials(authorization)
    if credentials is None:
        raise OAuthError("invalid_client", "client authentication (HTTP Basic) is required", 401)
    cid, secret = credentials
    client = clients.get(cid)
    if client is None:
        if cid == DEV_CLIENT:
            raise OAuthError(
                "invalid_client",
                f"{DEV_CLIENT} is a public client: it may not exchange tokens",
                401,
            )
        raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
    if not hmac.compare_digest(secret.encode(), client.secret.encode()):
        raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
    return client


@dataclass(frozen=True)
class TrustedCAs:
    """The CA bundle client certificates must chain to (a self-signed root and intermediates): https://www.rfc-editor.org/rfc/rfc8705#section-2.1."""

    root: x509.Certificate
    intermediates: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_bundle(cls, path: Path) -> TrustedCAs:
        """Read a PEM bundle (``maison pki``'s ``ca-bundle``): https://www.rfc-editor.org/rfc/rfc8705#section-2.1."""
        certs = pki.load_certificates(path)
        roots = [c for c in certs if c.issuer == c.subject]
        if len(roots) != 1:
            raise ValueError(f"{path}: expected exactly one self-signed root, found {len(roots)}")
        return cls(roots[0], tuple(c for c in certs if c is not roots[0]))


def certificate_from_header(value: str | None, trusted: bool) -> list[x509.Certificate] | None:
    """The client certificate (and chain) of a trusted TLS proxy's URL-encoded PEM header
    (nginx ``$ssl_client_escaped_cert``); None when absent or the proxy is not trusted:
    https://www.rfc-editor.org/rfc/rfc8705#section-2."""
    if not trusted or not value or not value.strip():
        return None
    if len(value) > MAX_CERT_HEADER:
        raise OAuthError("invalid_client", "client certificate header too large", 401)
    try:
        certs = pki.parse_certificates(unquote(value).encode("ascii"), "the client certificate")
    except (pki.CertificateError, pki.PkiError, ValueError) as error:
        raise OAuthError("invalid_client", f"unreadable client certificate: {error}", 401) from None
    if not certs:
        raise OAuthError("invalid_client", "no certificate in the client certificate header", 401)
    return certs


def _scopes(requested: str) -> list[str]:
    names = requested.split()
    if not names:
        raise OAuthError(
            "invalid_scope", "scope is required: the SMART user/ scopes wanted (user/*.rs …)"
        )
    refused = []
    for name in names:
        scope = Scope.parse(name)
        if scope is None:
            if name not in EXTRA_SCOPES:
                refused.append(name)
        elif scope.context != "user":
            refused.append(name)
    if refused:
        raise OAuthError(
            "invalid_scope",
            "a professional's token carries SMART user/ scopes only; refused: " + " ".join(refused),
        )
    return list(dict.fromkeys(names))


def _activity(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 4:
        raise OAuthError("invalid_request", "activity must be an activity number (0, 1, …)")
    return int(value)


class TokenExchange:
    """PSC access token → platform API token: https://www.rfc-editor.org/rfc/rfc8693#section-2."""

    def __init__(
        self,
        *,
        psc_issuer: str,
        psc_keys: KeySource,
        audience: str,
        issuer: LocalIssuer,
        store: SqlStore,
        defs: Callable[[], Definitions],
        clients: Mapping[str, ExchangeClient],
        trusted_cas: TrustedCAs | None = None,
        required_acr: str | None = REQUIRED_ACR,
        max_lifetime: int = MAX_LIFETIME,
        ended: Callable[[Mapping[str, Any]], bool] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.psc = JwtAuthenticator(psc_issuer, audience, psc_keys, leeway_seconds=0)
        self.audience = audience
        self.issuer = issuer
        self.platform = issuer.authenticator(audience, leeway_seconds=0)
        self.store = store
        self.defs = defs
        self.clients = clients
        self.trusted_cas = trusted_cas
        self.required_acr = required_acr
        self.max_lifetime = max_lifetime
        self.ended = ended  # whether the PSC session of a token has ended (logout)
        self.clock = clock

    def authenticate_client(self, authorization: str | None) -> ExchangeClient:
        """The registered exchange client of the request: https://www.rfc-editor.org/rfc/rfc8693#section-2.1."""
        return authenticate_client(self.clients, authorization)

    def _subject_claims(self, token: str, now: float) -> dict[str, Any]:
        try:
            claims = dict(self.psc.authenticate(f"Bearer {token}", now).claims)
        except FhirError as error:
            raise OAuthError("invalid_request", f"subject_token refused: {error.message}") from None
        if self.ended is not None and self.ended(claims):
            raise OAuthError("invalid_request", "subject_token refused: the PSC session has ended")
        return claims

    def _binding(self, chain: list[x509.Certificate] | None, now: float) -> str | None:
        if chain is None:
            return None
        if self.trusted_cas is None:
            raise OAuthError(
                "invalid_client", "certificate binding is not configured (no CA bundle)", 401
            )
        cert, *rest = chain
        try:
            pki.verify_chain(
                cert,
                [*rest, *self.trusted_cas.intermediates],
                self.trusted_cas.root,
                now=datetime.fromtimestamp(now, UTC),
            )
        except pki.CertificateError as error:
            raise OAuthError(
                "invalid_client", f"client certificate refused: {error.message}", 401
            ) from None
        return pki.x5t_s256(cert)

    def exchange(
        self,
        form: Mapping[str, str],
        client: ExchangeClient,
        certificate: list[x509.Certificate] | None = None,
    ) -> dict[str, Any]:
        """Answer a token exchange request: https://www.rfc-editor.org/rfc/rfc8693#section-2.2.1."""
        now = self.clock()
        if form.get("grant_type") != GRANT_TYPE:
            raise OAuthError("unsupported_grant_type", f"grant_type must be {GRANT_TYPE}")
        if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
            raise OAuthError("invalid_request", f"subject_token_type must be {ACCESS_TOKEN_TYPE}")
        for unsupported in ("actor_token", "actor_token_type"):
            if form.get(unsupported):
                raise OAuthError("invalid_request", f"{unsupported} is not supported")
        wanted = form.get("requested_token_type")
        if wanted and wanted != ACCESS_TOKEN_TYPE:
            raise OAuthError("invalid_request", f"requested_token_type must be {ACCESS_TOKEN_TYPE}")
        for target in ("audience", "resource"):
            if form.get(target) and form[target] != self.audience:
                raise OAuthError("invalid_target", f"this server issues tokens for {self.audience}")
        token = form.get("subject_token", "").strip()
        if not token:
            raise OAuthError("invalid_request", "subject_token is required")
        scopes = _scopes(form.get("scope", ""))
        activity = _activity(form.get("activity"))
        thumbprint = self._binding(certificate, now)
        claims = self._subject_claims(token, now)
        remaining = math.floor(float(claims["exp"]) - now)
        if remaining < 1:
            raise OAuthError("invalid_request", "subject_token refused: expired")
        acr = claims.get("acr")
        if self.required_acr is not None and acr != self.required_acr:
            raise OAuthError(
                "invalid_grant", f"level of assurance {self.required_acr} required (acr)"
            )
        national = claims.get("SubjectNameID")
        if not isinstance(national, str) or not national:
            raise OAuthError("invalid_request", "subject_token has no SubjectNameID (IDNPS)")
        defs = self.defs()
        try:
            info = userinfo_for_professional(self.store, defs, national)
            context = context_from_userinfo(info, activity)
            check_professional(self.store, defs, context)
        except ProfessionalContextError as error:
            code = "invalid_request" if error.reason in ("choice", "invalid") else "invalid_grant"
            raise OAuthError(code, f"{error.message} ({error.reason})") from None
        extra: dict[str, Any] = {"client_id": client.client_id, **token_claims(context)}
        if acr is not None:
            extra["acr"] = acr
        if thumbprint is not None:
            extra["cnf"] = {"x5t#S256": thumbprint}
        lifetime = min(self.max_lifetime, remaining)
        access = self.issuer.mint(
            context.national_id, scopes, self.audience, lifetime, extra, now=now
        )
        return {
            "access_token": access,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(scopes),
        }

    def introspect(self, token: str | None) -> dict[str, Any]:
        """``active`` and the claims of one of the platform's own tokens, ``active: false`` for
        anything else: https://www.rfc-editor.org/rfc/rfc7662#section-2.2."""
        if not token or not token.strip():
            return {"active": False}
        try:
            principal = self.platform.authenticate(f"Bearer {token.strip()}", self.clock())
        except FhirError:
            return {"active": False}
        claims = dict(principal.claims)
        claims.setdefault("token_type", "Bearer")
        return {**claims, "active": True}
