"""A bounded cache of validated access tokens, so a client's repeated calls skip the
signature check (RFC 8725 §3 holds: only tokens that passed full validation are cached,
and each hit re-checks expiry).

https://www.rfc-editor.org/rfc/rfc9068#section-4
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

from maison.security.authenticator import Authenticator
from maison.security.principal import Principal


class CachingAuthenticator:
    """Wraps an Authenticator; remembers successes until the token expires (at most ``ttl``)."""

    def __init__(self, inner: Authenticator, max_entries: int = 10_000, ttl: float = 300.0) -> None:
        self.inner = inner
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(
        self, authorization_header: str | None, now: float | None = None
    ) -> Principal | None:
        """The principal of an already validated, unexpired token; None otherwise (no I/O)."""
        if not authorization_header:
            return None
        moment = time.time() if now is None else now
        key = _key(authorization_header)
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            principal, until = hit
            if moment < until:
                self._entries.move_to_end(key)
                return principal
            del self._entries[key]
        return None

    def authenticate(self, authorization_header: str | None, now: float | None = None) -> Principal:
        """The caller behind the header: https://www.rfc-editor.org/rfc/rfc6750#section-2.1."""
        moment = time.time() if now is None else now
        hit = self.cached(authorization_header, moment)
        if hit is not None:
            return hit
        if not authorization_header:
            return self.inner.authenticate(authorization_header, now)
        key = _key(authorization_header)
        principal = self.inner.authenticate(authorization_header, now)
        exp = principal.claims.get("exp")
        until = min(float(exp), moment + self.ttl) if isinstance(exp, int | float) else moment
        if until > moment:
            with self._lock:
                self._entries[key] = (principal, until)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return principal


def _key(header: str) -> bytes:
    return hashlib.sha256(header.encode("utf-8", "surrogatepass")).digest()
