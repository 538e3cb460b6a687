"""Portal sessions: opaque, encrypted at rest, rotated at sign-in, ended by time
(https://cheatsheetseries.owasp.org/cheatsheets/Session_Management_Cheat_Sheet.html)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from maison.api.services import build_services
from maison.api.settings import Settings
from maison.portal.sessions import IDLE, LIFETIME, SessionStore
from maison.store.portal_sessions import portal_session


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sessions(data_url: str, tmp_path: Path) -> Iterator[tuple[SessionStore, Clock]]:
    services = build_services(Settings(data=data_url, state=str(tmp_path), demo=False))
    services.store.migrate()
    clock = Clock()
    try:
        yield SessionStore(services.store, services.store.keyring, clock), clock
    finally:
        services.store.close()


def test_content_is_encrypted_and_keyed_by_a_hash(sessions: tuple[SessionStore, Clock]) -> None:
    store, _ = sessions
    cookie, session = store.create({"access": "SECRET-TOKEN-VALUE"})
    rows = store.store.read(lambda tx: tx.conn.execute(select(portal_session)).all())
    assert len(rows) == 1
    assert cookie not in rows[0].id_hash
    assert b"SECRET-TOKEN-VALUE" not in bytes(rows[0].data)
    loaded = store.load(cookie)
    assert loaded is not None and loaded.get("access") == "SECRET-TOKEN-VALUE"
    assert loaded.csrf and loaded.csrf_ok(session.csrf) and not loaded.csrf_ok("other")


def test_rotation_forgets_the_old_identifier(sessions: tuple[SessionStore, Clock]) -> None:
    store, _ = sessions
    old_cookie, old = store.create({})
    new_cookie, new = store.rotate(old, {"kind": "patient"})
    assert new_cookie != old_cookie and new.csrf != old.csrf
    assert store.load(old_cookie) is None
    assert store.load(new_cookie) is not None


def test_sessions_end_when_idle_or_too_old(sessions: tuple[SessionStore, Clock]) -> None:
    store, clock = sessions
    cookie, _ = store.create({})
    clock.now += IDLE - 1
    live = store.load(cookie)
    assert live is not None
    store.save(live)  # pushes the idle end forward
    clock.now += IDLE - 1
    assert store.load(cookie) is not None
    clock.now += IDLE + 1
    assert store.load(cookie) is None
    cookie, _ = store.create({})
    for _ in range(LIFETIME // (IDLE - 60) + 1):
        clock.now += IDLE - 60
        live = store.load(cookie)
        if live is None:
            break
        store.save(live)
    assert store.load(cookie) is None
    assert store.purge() >= 2


def test_unknown_or_malformed_cookies_are_no_session(sessions: tuple[SessionStore, Clock]) -> None:
    store, _ = sessions
    assert store.load("") is None
    assert store.load("x" * 500) is None
    assert store.load("not-a-session") is None
