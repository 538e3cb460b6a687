"""Server-side sessions of the portal: an opaque cookie, its content encrypted in the store.

The cookie carries 32 random bytes and nothing else; the row is found by their SHA-256. A
session is rotated (a new identifier, the old one forgotten) whenever the user signs in, so an
identifier planted before sign-in is worthless after it (session fixation). Each session has a
CSRF secret that every form and htmx request echoes.

https://cheatsheetseries.owasp.org/cheatsheets/Session_Management_Cheat_Sheet.html
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from maison.store import portal_sessions as rows
from maison.store.crypto import Keyring
from maison.store.sql import SqlStore

#: The cookie's name; ``__Host-`` when served over https (bound to the host, path ``/``).
COOKIE = "maison_portail"
#: A session ends 8 hours after sign-in at most, or after 30 minutes without a request.
LIFETIME = 8 * 3600
IDLE = 30 * 60
#: The idle end is pushed forward at most once a minute (one write, not one per request).
TOUCH_EVERY = 60
#: Ended sessions are deleted every this many new sessions (per process).
PURGE_EVERY = 100


@dataclass
class Session:
    """One browser's session: who signed in and the tokens the portal calls the API with."""

    id_hash: str
    ends_at: float
    idle_until: float
    data: dict[str, Any] = field(default_factory=dict)
    changed: bool = False

    @property
    def csrf(self) -> str:
        """The secret every form of this session carries: https://cheatsheetseries.owasp.org/cheatsheets/Cross-Site_Request_Forgery_Prevention_Cheat_Sheet.html."""
        return str(self.data.get("csrf", ""))

    def csrf_ok(self, given: str | None) -> bool:
        """Whether a form's token is this session's (constant time)."""
        return bool(given) and bool(self.csrf) and hmac.compare_digest(str(given), self.csrf)

    def get(self, key: str, default: Any = None) -> Any:
        """A value of the session."""
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Change a value (saved at the end of the request)."""
        if self.data.get(key) != value:
            self.data[key] = value
            self.changed = True

    def pop(self, key: str) -> Any:
        """Take a value out (saved at the end of the request)."""
        if key in self.data:
            self.changed = True
        return self.data.pop(key, None)


def _hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


class SessionStore:
    """Sessions kept in the store's ``portal_session`` table, content sealed with the data keys."""

    def __init__(
        self, store: SqlStore, keyring: Keyring, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.clock = clock
        self._created = 0

    def _seal(self, id_hash: str, data: dict[str, Any]) -> bytes:
        return self.keyring.encrypt(orjson.dumps(data), f"portal-session|{id_hash}".encode())

    def _open(self, id_hash: str, sealed: bytes) -> dict[str, Any] | None:
        try:
            data = orjson.loads(self.keyring.decrypt(sealed, f"portal-session|{id_hash}".encode()))
        except Exception:  # a key gone or a row tampered with: the session is simply over
            return None
        return data if isinstance(data, dict) else None

    def create(self, data: dict[str, Any] | None = None) -> tuple[str, Session]:
        """A new session (fresh identifier and CSRF secret); returns the cookie value with it."""
        cookie = secrets.token_urlsafe(32)
        id_hash = _hash(cookie)
        now = self.clock()
        content = {**(data or {}), "csrf": secrets.token_urlsafe(32)}
        session = Session(id_hash, now + LIFETIME, now + IDLE, content)
        row = rows.SessionRow(
            id_hash, session.ends_at, session.idle_until, self._seal(id_hash, content)
        )
        self.store.write(lambda tx: rows.insert(tx.conn, row))
        self._created += 1
        if self._created % PURGE_EVERY == 0:  # ended sessions do not pile up
            self.purge()
        return cookie, session

    def load(self, cookie: str | None) -> Session | None:
        """The live session of a cookie, or None (unknown, ended, or undecryptable)."""
        if not cookie or len(cookie) > 128:
            return None
        id_hash = _hash(cookie)
        row = self.store.read(lambda tx: rows.get(tx.conn, id_hash))
        now = self.clock()
        if row is None or row.ends_at <= now or row.idle_until <= now:
            return None
        data = self._open(id_hash, row.data)
        if data is None:
            return None
        return Session(id_hash, row.ends_at, row.idle_until, data)

    def save(self, session: Session) -> None:
        """Write the session back if it changed, or push its idle end forward (at most once a
        minute)."""
        now = self.clock()
        idle_until = min(now + IDLE, session.ends_at)
        if not session.changed and idle_until - session.idle_until < TOUCH_EVERY:
            return
        sealed = self._seal(session.id_hash, session.data) if session.changed else None
        self.store.write(lambda tx: rows.save(tx.conn, session.id_hash, idle_until, sealed))
        session.idle_until = idle_until
        session.changed = False

    def rotate(self, session: Session, data: dict[str, Any]) -> tuple[str, Session]:
        """Replace a session by a new one holding ``data`` (sign-in): the old identifier is
        forgotten in the same unit: https://owasp.org/www-community/attacks/Session_fixation."""
        cookie = secrets.token_urlsafe(32)
        id_hash = _hash(cookie)
        now = self.clock()
        content = {**data, "csrf": secrets.token_urlsafe(32)}
        fresh = Session(id_hash, now + LIFETIME, now + IDLE, content)
        sealed = self._seal(id_hash, content)
        old = session.id_hash

        def apply(tx: Any) -> None:
            rows.remove(tx.conn, old)
            rows.insert(tx.conn, rows.SessionRow(id_hash, fresh.ends_at, fresh.idle_until, sealed))

        self.store.write(apply)
        return cookie, fresh

    def end(self, session: Session) -> None:
        """Forget a session (sign-out)."""
        self.store.write(lambda tx: rows.remove(tx.conn, session.id_hash))

    def purge(self) -> int:
        """Forget every ended session; how many."""
        now = self.clock()
        return int(self.store.write(lambda tx: rows.purge(tx.conn, now)))
