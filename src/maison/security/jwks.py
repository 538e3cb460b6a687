"""Signature-verification keys from a JSON Web Key Set, static or fetched from an issuer.

https://www.rfc-editor.org/rfc/rfc7517#section-5
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from maison.fhir.errors import Category, FhirError

log = logging.getLogger(__name__)

MIN_RSA_BITS = 2048
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
# Asymmetric JWS algorithms (RFC 7518 §3.1) this module verifies; the curve each ES* needs.
SUPPORTED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
_ES_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def b64url_decode(segment: str) -> bytes:
    """Strict base64url without padding: https://www.rfc-editor.org/rfc/rfc7515#section-2."""
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as err:  # pragma: no cover - the regex and length check exclude it
        raise ValueError("not base64url") from err


@dataclass(frozen=True, eq=False)
class VerifyingKey:
    """One parsed public key of a JWKS: https://www.rfc-editor.org/rfc/rfc7517#section-4."""

    kid: str | None
    alg: str | None  # the JWK "alg" member: when present, the only algorithm it verifies
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    curve: str | None = None  # for EC keys

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> VerifyingKey | None:
        """Parse a public signing JWK; None if it cannot verify (oct, enc, OKP, RSA < 2048)."""
        if jwk.get("use", "sig") != "sig":
            return None
        ops = jwk.get("key_ops")
        if ops is not None and "verify" not in ops:
            return None
        kid = jwk.get("kid")
        kid = kid if isinstance(kid, str) else None
        alg = jwk.get("alg")
        alg = alg if isinstance(alg, str) else None
        kty = jwk.get("kty")
        if kty == "RSA":
            n = int.from_bytes(b64url_decode(_member(jwk, "n")), "big")
            e = int.from_bytes(b64url_decode(_member(jwk, "e")), "big")
            if n.bit_length() < MIN_RSA_BITS:
                return None
            return cls(kid, alg, rsa.RSAPublicNumbers(e, n).public_key())
        if kty == "EC":
            crv = _member(jwk, "crv")
            if crv not in _CURVES:
                return None
            curve, size = _CURVES[crv]
            x, y = b64url_decode(_member(jwk, "x")), b64url_decode(_member(jwk, "y"))
            if len(x) != size or len(y) != size:
                raise ValueError("EC coordinates of the wrong length")
            point = b"\x04" + x + y  # from_encoded_point checks the point is on the curve
            return cls(kid, alg, ec.EllipticCurvePublicKey.from_encoded_point(curve, point), crv)
        return None  # "oct" is never accepted (no HS*), OKP not supported

    def can_verify(self, alg: str) -> bool:
        """Whether this key may verify `alg` (prevents algorithm confusion)."""
        if self.alg is not None and self.alg != alg:
            return False
        if alg[:2] in ("RS", "PS"):
            return isinstance(self.public_key, rsa.RSAPublicKey)
        if alg in _ES_CURVE:
            return self.curve == _ES_CURVE[alg]
        return False

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """Verify a JWS signature: https://www.rfc-editor.org/rfc/rfc7518#section-3."""
        if alg not in SUPPORTED_ALGORITHMS or not self.can_verify(alg):
            return False
        digest = _HASHES[alg[2:]]()
        key = self.public_key
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                size = _CURVES[self.curve or ""][1]
                if len(signature) != 2 * size:
                    return False
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest))
            elif alg.startswith("PS"):
                pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
                key.verify(signature, signing_input, pss, digest)
            else:
                key.verify(signature, signing_input, padding.PKCS1v15(), digest)
        except InvalidSignature:
            return False
        return True


def _member(jwk: Mapping[str, Any], name: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise ValueError(f"JWK member {name!r} missing")
    return value


def parse_jwks(jwks: Mapping[str, Any]) -> tuple[VerifyingKey, ...]:
    """Parse the signing keys of a JWK Set, skipping unusable ones: https://www.rfc-editor.org/rfc/rfc7517#section-5."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise ValueError("a JWK Set needs a 'keys' array")
    parsed: list[VerifyingKey] = []
    for jwk in keys:
        if not isinstance(jwk, Mapping):
            continue
        try:
            key = VerifyingKey.from_jwk(jwk)
        except ValueError as err:
            log.warning("skipping malformed JWK kid=%r: %s", jwk.get("kid"), err)
            continue
        if key is not None:
            parsed.append(key)
    return tuple(parsed)


def _select(keys: Sequence[VerifyingKey], kid: str | None) -> tuple[VerifyingKey, ...]:
    if kid is None:
        return tuple(keys) if len(keys) == 1 else ()
    return tuple(k for k in keys if k.kid == kid)


class KeySource(Protocol):
    """Where the authenticator finds verification keys by `kid`."""

    def keys_for(self, kid: str | None, now: float) -> Sequence[VerifyingKey]:
        """The candidate keys for `kid`; without a kid, only the key of a one-key set."""
        ...


class StaticJwks:
    """A fixed JWK Set, parsed once: https://www.rfc-editor.org/rfc/rfc7517#section-5."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(jwks)
        if not self._keys:
            raise ValueError("the JWK Set holds no usable signing key")

    def keys_for(self, kid: str | None, now: float) -> Sequence[VerifyingKey]:
        """The keys with this kid: https://www.rfc-editor.org/rfc/rfc7515#section-4.1.4."""
        return _select(self._keys, kid)


HttpGet = Callable[[str], Any]  # url -> decoded JSON document


def httpx_get_json(url: str) -> Any:
    """GET a JSON document with httpx (5 s timeout, no redirects): https://www.rfc-editor.org/rfc/rfc8414#section-3."""
    import httpx

    response = httpx.get(url, timeout=5.0, headers={"Accept": "application/json"})
    response.raise_for_status()
    return orjson.loads(response.content)


class RemoteJwks:
    """An issuer's JWKS, found by OpenID discovery and cached: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig."""

    def __init__(
        self,
        issuer: str | None = None,
        *,
        jwks_uri: str | None = None,
        http_get: HttpGet = httpx_get_json,
        ttl: float = 300.0,
        min_refetch_seconds: float = 60.0,
    ) -> None:
        if (issuer is None) == (jwks_uri is None):
            raise ValueError("give exactly one of issuer (for discovery) or jwks_uri")
        self.issuer = issuer.rstrip("/") if issuer else None
        self._jwks_uri = jwks_uri
        self._get = http_get
        self.ttl = ttl
        self.min_refetch_seconds = min_refetch_seconds
        self._keys: tuple[VerifyingKey, ...] | None = None
        self._fetched_at = float("-inf")  # last successful fetch
        self._attempted_at = float("-inf")  # last fetch attempt, successful or not
        self._lock = threading.Lock()

    def keys_for(self, kid: str | None, now: float) -> Sequence[VerifyingKey]:
        """Cached keys; refreshed after `ttl`, or at most once a minute on an unknown kid."""
        with self._lock:
            if self._keys is None or now - self._fetched_at >= self.ttl:
                self._refresh(now)
            found = _select(self._keys or (), kid)
            if not found and kid is not None:
                self._refresh(now)  # key rotation: the issuer may have published a new key
                found = _select(self._keys or (), kid)
            if self._keys is None:
                raise FhirError(Category.UNAUTHORIZED, "signing keys of the issuer are unavailable")
            return found

    def _refresh(self, now: float) -> None:
        if now - self._attempted_at < self.min_refetch_seconds:
            return
        self._attempted_at = now
        try:
            uri = self._jwks_uri or self._discover()
            keys = parse_jwks(self._get(uri))
        except Exception as err:  # network, HTTP status, JSON: keep serving the cached keys
            log.warning("cannot refresh JWKS of %s: %s", self.issuer or self._jwks_uri, err)
            return
        self._keys = keys
        self._fetched_at = now

    def _discover(self) -> str:
        config = self._get(f"{self.issuer}/.well-known/openid-configuration")
        if not isinstance(config, Mapping):
            raise ValueError("openid-configuration is not a JSON object")
        if str(config.get("issuer", "")).rstrip("/") != self.issuer:
            raise ValueError("openid-configuration names another issuer")
        uri = config.get("jwks_uri")
        if not isinstance(uri, str) or not uri:
            raise ValueError("openid-configuration has no jwks_uri")
        return uri
