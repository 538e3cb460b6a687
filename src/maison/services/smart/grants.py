"""Authorization codes, refresh tokens and the access tokens of SMART apps.

* an authorization code is a random value, kept (hashed) for one minute in the store's meta
  table with everything the token request must match (client, redirect URI, PKCE challenge);
  it is single use: a second redemption refuses and revokes what the first one gave
  (RFC 6749 §4.1.2);
* a refresh token is ``<grant id>.<secret>``; the grant record holds the hash of the current
  secret: each refresh rotates it, a replayed (or revoked) one revokes the whole grant
  (OAuth 2.0 Security BCP §4.14.2);
* access tokens live 5 minutes (``ACCESS_TTL``) and carry ``grant_id``: introspection answers
  ``active: false`` once their grant is revoked; the FHIR endpoint does not look (5 minutes);
* refresh tokens are issued for ``offline_access`` or ``online_access`` only and live 12 hours;
  each refresh asks ``recheck`` again (a professional must still be active in the Annuaire, in
  the same activity), a refusal revokes the grant.

https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from maison.security.issuer import LocalIssuer
from maison.services.psc.provider import OAuthError, Records, s256
from maison.services.smart.clients import SmartClient

ACCESS_TTL: Final = 300  # SMART apps: 5 minutes
CODE_TTL: Final = 60
REFRESH_TTL: Final = 12 * 3600
REVOKED: Final = "revoked"
REFRESH_SCOPES: Final = frozenset({"offline_access", "online_access"})
#: Scopes that only ask for a context or a token kind: they stay in the granted scope.
_CODE_KEY, _GRANT_KEY = "smart:c:", "smart:g:"


@dataclass(frozen=True)
class Grant:
    """What a signed-in user allowed an app: who, which scopes, which launch context.

    https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
    """

    client_id: str
    subject: str
    scopes: tuple[str, ...]
    claims: Mapping[str, Any] = field(default_factory=dict)  # extra access-token claims
    context: Mapping[str, Any] = field(default_factory=dict)  # patient, encounter, banner
    nonce: str | None = None
    auth_time: int = 0

    def as_json(self) -> dict[str, Any]:
        """A JSON form for the store: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html."""
        return {
            "cid": self.client_id,
            "sub": self.subject,
            "scope": list(self.scopes),
            "claims": dict(self.claims),
            "ctx": dict(self.context),
            "nonce": self.nonce,
            "at": self.auth_time,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Grant:
        """Read back :meth:`as_json`: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html."""
        return cls(
            str(data["cid"]),
            str(data["sub"]),
            tuple(data["scope"]),
            dict(data.get("claims") or {}),
            dict(data.get("ctx") or {}),
            data.get("nonce"),
            int(data.get("at") or 0),
        )


class Tokens:
    """Codes, refresh grants and access tokens of the SMART authorization server: https://www.rfc-editor.org/rfc/rfc6749#section-4.1."""

    def __init__(
        self,
        issuer: LocalIssuer,
        audience: str,
        records: Records,
        clock: Callable[[], float] = time.time,
        recheck: Callable[[Grant], None] | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.records = records
        self.clock = clock
        self.recheck = recheck  # at each refresh: is the user still allowed (the Annuaire)?

    # --- authorization codes ---------------------------------------------------------------
    def issue_code(self, grant: Grant, redirect_uri: str, code_challenge: str) -> str:
        """A one-minute single-use code bound to the client, redirect URI and PKCE challenge: https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2."""
        code = secrets.token_urlsafe(32)
        record = {
            "grant": grant.as_json(),
            "ru": redirect_uri,
            "cc": code_challenge,
            "exp": int(self.clock()) + CODE_TTL,
        }
        self.records.set_meta(_CODE_KEY + s256(code), orjson.dumps(record).decode())
        return code

    def redeem_code(self, client: SmartClient, form: Mapping[str, str]) -> dict[str, Any]:
        """The token response for an authorization code (PKCE S256 verified, single use): https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token."""
        code = form.get("code", "")
        if not code or len(code) > 256:
            raise OAuthError("invalid_request", "code is required")
        key = _CODE_KEY + s256(code)
        raw = self.records.get_meta(key)
        if raw is None:
            raise OAuthError("invalid_grant", "unknown or expired authorization code")
        if raw.startswith("used:"):
            self.revoke_grant(raw[5:])  # RFC 6749 §4.1.2: revoke what the first use gave
            raise OAuthError("invalid_grant", "authorization code already used")
        record = orjson.loads(raw)
        grant = Grant.from_json(record["grant"])
        if int(record["exp"]) <= self.clock():
            raise OAuthError("invalid_grant", "authorization code expired")
        if grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if form.get("redirect_uri") != record["ru"]:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier", "")
        if not verifier:
            raise OAuthError("invalid_request", "code_verifier (PKCE) is required")
        if not 43 <= len(verifier) <= 128 or not hmac.compare_digest(s256(verifier), record["cc"]):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        grant_id = secrets.token_urlsafe(16)
        if self.records.swap_meta(key, raw, f"used:{grant_id}") != raw:  # lost a race
            raise OAuthError("invalid_grant", "authorization code already used")
        return self._answer(client, grant, grant_id, with_id_token=True)

    # --- refresh ---------------------------------------------------------------------------
    def refresh(self, client: SmartClient, form: Mapping[str, str]) -> dict[str, Any]:
        """Rotate a refresh token; a replayed or revoked one is refused (and revokes its grant): https://hl7.org/fhir/smart-app-launch/app-launch.html#step-7-app-uses-a-refresh-token-to-obtain-a-new-access-token."""
        token = form.get("refresh_token", "")
        grant_id, _, secret = token.partition(".")
        if not grant_id or not secret or len(token) > 256:
            raise OAuthError("invalid_grant", "invalid refresh token")
        key = _GRANT_KEY + grant_id
        raw = self.records.get_meta(key)
        if raw is None or raw == REVOKED:
            raise OAuthError("invalid_grant", "refresh token revoked or unknown")
        record = orjson.loads(raw)
        grant = Grant.from_json(record["grant"])
        if grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        if not hmac.compare_digest(s256(secret), str(record["h"])):
            self.revoke_grant(grant_id)  # a rotated token came back: someone holds a copy
            raise OAuthError("invalid_grant", "refresh token revoked or already used")
        if int(record["exp"]) <= self.clock():
            raise OAuthError("invalid_grant", "refresh token expired: sign in again")
        if self.recheck is not None:
            try:
                self.recheck(grant)
            except OAuthError:
                self.revoke_grant(grant_id)
                raise
        requested = form.get("scope")
        if requested:
            wanted = requested.split()
            if not set(wanted) <= set(grant.scopes):
                raise OAuthError("invalid_scope", "a refresh cannot widen the scope")
            grant = Grant(
                grant.client_id,
                grant.subject,
                tuple(s for s in grant.scopes if s in wanted),
                grant.claims,
                grant.context,
                grant.nonce,
                grant.auth_time,
            )
        return self._answer(client, grant, grant_id, with_id_token=False, previous=raw)

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke a grant: its refresh token and, for introspection, its access tokens: https://www.rfc-editor.org/rfc/rfc7009#section-2.1."""
        if grant_id and len(grant_id) <= 48:
            self.records.set_meta(_GRANT_KEY + grant_id, REVOKED)

    def revoke(self, client: SmartClient, token: str) -> None:
        """RFC 7009 revocation of a refresh token of this client (anything else: ignored): https://www.rfc-editor.org/rfc/rfc7009#section-2.2."""
        grant_id, _, secret = token.partition(".")
        if not grant_id or not secret or len(grant_id) > 48:
            return
        raw = self.records.get_meta(_GRANT_KEY + grant_id)
        if raw is None or raw == REVOKED:
            return
        record = orjson.loads(raw)
        if record["grant"]["cid"] == client.client_id:
            self.revoke_grant(grant_id)

    def revoked(self, grant_id: str) -> bool:
        """Whether a grant was revoked (introspection): https://www.rfc-editor.org/rfc/rfc7662#section-2.2."""
        return self.records.get_meta(_GRANT_KEY + grant_id) == REVOKED

    # --- the token response ----------------------------------------------------------------
    def access_token(
        self, grant: Grant, grant_id: str | None = None, lifetime: int = ACCESS_TTL
    ) -> str:
        """A platform access token for a grant: https://hl7.org/fhir/smart-app-launch/app-launch.html#response-5."""
        extra = {**grant.claims, "client_id": grant.client_id}
        for name in ("patient", "encounter"):
            if grant.context.get(name):
                extra[name] = grant.context[name]
        if grant_id is not None:
            extra["grant_id"] = grant_id
        return self.issuer.mint(
            grant.subject, list(grant.scopes), self.audience, lifetime, extra, now=self.clock()
        )

    def _answer(
        self,
        client: SmartClient,
        grant: Grant,
        grant_id: str,
        *,
        with_id_token: bool,
        previous: str | None = None,
    ) -> dict[str, Any]:
        now = int(self.clock())
        out: dict[str, Any] = {
            "access_token": self.access_token(grant, grant_id),
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL,
            "scope": " ".join(grant.scopes),
        }
        for name in ("patient", "encounter", "need_patient_banner", "smart_style_url"):
            if grant.context.get(name) is not None:
                out[name] = grant.context[name]
        if REFRESH_SCOPES & set(grant.scopes):
            secret = secrets.token_urlsafe(32)
            exp = now + REFRESH_TTL
            if previous is not None:
                exp = int(orjson.loads(previous)["exp"])  # rotation does not extend the grant
            record = orjson.dumps({"h": s256(secret), "exp": exp, "grant": grant.as_json()})
            key = _GRANT_KEY + grant_id
            if previous is None:
                # a replayed code may have revoked the grant meanwhile: never resurrect it
                if self.records.swap_meta(key, None, record.decode()) is not None:
                    raise OAuthError("invalid_grant", "the grant was revoked")
            elif self.records.swap_meta(key, previous, record.decode()) != previous:
                self.revoke_grant(grant_id)  # two refreshes raced with the same token
                raise OAuthError("invalid_grant", "refresh token revoked or already used")
            out["refresh_token"] = f"{grant_id}.{secret}"
        elif previous is not None:
            self.revoke_grant(grant_id)
        if with_id_token and "openid" in grant.scopes:
            claims: dict[str, Any] = {"auth_time": grant.auth_time or now}
            if grant.nonce:
                claims["nonce"] = grant.nonce
            if "fhirUser" in grant.claims and (
                "fhirUser" in grant.scopes or "profile" in grant.scopes
            ):
                claims["fhirUser"] = grant.claims["fhirUser"]
            out["id_token"] = self.issuer.id_token(
                grant.subject, client.client_id, ACCESS_TTL, claims, now=now
            )
        return out
