"""Bearer JWT access tokens from a configured issuer, validated into a Principal.

https://www.rfc-editor.org/rfc/rfc9068#section-4
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from maison.fhir.errors import Category, FhirError
from maison.security.jwks import SUPPORTED_ALGORITHMS, KeySource, b64url_decode
from maison.security.principal import Principal

DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
MAX_TOKEN_LENGTH = 16 * 1024
# RFC 6750 §2.1: "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1)
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*) *")
_ALG_NAME = re.compile(r"[A-Za-z0-9+-]{1,16}")


def _unauthorized(message: str) -> FhirError:
    return FhirError(Category.UNAUTHORIZED, message)


class JwtAuthenticator:
    """Validates signed JWT access tokens: https://www.rfc-editor.org/rfc/rfc9068#section-4."""

    def __init__(
        self,
        issuer: str,
        audience: str | Iterable[str],
        keys: KeySource,
        *,
        leeway_seconds: float = 30.0,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
    ) -> None:
        self.issuer = issuer
        self.audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not self.audiences:
            raise ValueError("at least one audience is required")
        self.keys = keys
        self.leeway = float(leeway_seconds)
        self.algorithms = frozenset(algorithms)
        refused = self.algorithms - SUPPORTED_ALGORITHMS
        if refused:
            # "none" and HS* (shared secrets) are never accepted: RFC 8725 §3.1-3.2
            raise ValueError(f"unsupported or unsafe JWS algorithms: {sorted(refused)}")

    def authenticate(self, authorization_header: str | None, now: float | None = None) -> Principal:
        """Validate `Authorization: Bearer <jwt>`: https://www.rfc-editor.org/rfc/rfc9068#section-4."""
        now = time.time() if now is None else now
        token = _bearer_token(authorization_header)
        parts = token.split(".")
        if len(parts) != 3:
            raise _unauthorized("malformed token: expected a signed JWT (three base64url parts)")
        header = _json_segment(parts[0], "header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            shown = alg if isinstance(alg, str) and _ALG_NAME.fullmatch(alg) else "?"
            raise _unauthorized(f"signing algorithm '{shown}' is not allowed")
        if "crit" in header:  # RFC 7515 §4.1.11: no extension is understood here
            raise _unauthorized("token uses unsupported critical header parameters")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _unauthorized("malformed token header: kid must be a string")
        try:
            signature = b64url_decode(parts[2])
        except ValueError:
            raise _unauthorized("malformed token signature") from None
        candidates = [k for k in self.keys.keys_for(kid, now) if k.can_verify(alg)]
        if not candidates:
            raise _unauthorized("unknown signing key")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        if not any(k.verify(alg, signing_input, signature) for k in candidates):
            raise _unauthorized("invalid token signature")
        claims = _json_segment(parts[1], "payload")
        self._check_claims(claims, now)
        return Principal.from_claims(claims)

    def _check_claims(self, claims: Mapping[str, Any], now: float) -> None:
        # RFC 7519 §4.1: exp (required here), nbf, iat, iss, aud
        if "exp" not in claims:
            raise _unauthorized("token has no expiry (exp claim)")
        exp = _numeric_date(claims, "exp")
        if now >= exp + self.leeway:
            raise _unauthorized(f"token expired at {_iso(exp)}")
        if "nbf" in claims:
            nbf = _numeric_date(claims, "nbf")
            if now + self.leeway < nbf:
                raise _unauthorized(f"token not valid before {_iso(nbf)}")
        if "iat" in claims:
            iat = _numeric_date(claims, "iat")
            if now + self.leeway < iat:
                raise _unauthorized(f"token issued in the future ({_iso(iat)})")
        if claims.get("iss") != self.issuer:
            raise _unauthorized("issuer mismatch")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in self.audiences for a in audiences):
            raise _unauthorized("audience mismatch")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _unauthorized("token has no subject (sub claim)")


def _bearer_token(header: str | None) -> str:
    if header is None or not header.strip():
        raise _unauthorized("missing bearer token")
    if len(header) > MAX_TOKEN_LENGTH:
        raise _unauthorized("authorization header too large")
    match = _BEARER.fullmatch(header.strip())
    if match is None:
        if header.split(None, 1)[0].lower() != "bearer":
            raise _unauthorized("authorization scheme must be Bearer")
        raise _unauthorized("malformed bearer token")
    return match[1]


def _json_segment(segment: str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(b64url_decode(segment))
    except ValueError:  # base64 or JSON (orjson.JSONDecodeError is a ValueError)
        raise _unauthorized(f"malformed token {what}") from None
    if not isinstance(value, dict):
        raise _unauthorized(f"malformed token {what}: not a JSON object")
    return value


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _unauthorized(f"{name} claim is not a NumericDate")
    return float(value)


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} (seconds since 1970)"
