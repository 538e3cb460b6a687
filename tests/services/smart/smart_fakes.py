"""In-memory stand-ins for the SMART authorization server's collaborators."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from joserfc.jwk import ECKey

from maison.security.issuer import LocalIssuer
from maison.security.oidc_rp import PendingLogin, Session

SAMPLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "domain" / "data" / "psc"
FHIR_BASE = "http://platform.test"
TOKEN_URL = f"{FHIR_BASE}/auth/token"


class Records:
    """In-memory ``store_meta``."""

    def __init__(self) -> None:
        self.facts: dict[str, str] = {}

    def get_meta(self, key: str) -> str | None:
        return self.facts.get(key)

    def set_meta(self, key: str, value: str) -> None:
        assert len(key) <= 64, key
        self.facts[key] = value

    def swap_meta(self, key: str, expected: str | None, value: str) -> str | None:
        current = self.facts.get(key)
        if current == expected:
            self.set_meta(key, value)
        return current


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def issuer() -> LocalIssuer:
    return LocalIssuer(ECKey.generate_key("P-256", private=True), f"{FHIR_BASE}/auth")


def userinfo(activities: int = 1) -> dict[str, Any]:
    """The PSC sandbox userinfo sample, with ``activities`` copies of its activity."""
    info = orjson.loads((SAMPLE / "userinfo-example-bas.json").read_bytes())
    exercice = info["SubjectRefPro"]["exercices"][0]
    first = exercice["activities"][0]
    exercice["activities"] = []
    for i in range(activities):
        act = copy.deepcopy(first)
        act["raisonSocialeSite"] = f"Structure {i}"
        exercice["activities"].append(act)
    return dict(info)


class FakeParty:
    """A RelyingParty whose provider always signs the same professional in."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.started: list[PendingLogin] = []

    def start(self) -> tuple[str, PendingLogin]:
        pending = PendingLogin(f"psc-state-{len(self.started)}", "n", "v" * 43, 0.0)
        self.started.append(pending)
        return f"https://psc.test/auth?state={pending.state}", pending

    def finish(self, pending: PendingLogin, params: dict[str, str]) -> Session:
        assert params["state"] == pending.state
        return Session(
            "at",
            "idt",
            None,
            "Bearer",
            None,
            None,
            None,
            {"sub": "s", "acr": "eidas1", "auth_time": 1},
            self.info,
        )


@dataclass(frozen=True)
class Account:
    account_id: str
    ins: str
    patient_id: str
    display: str
    totp_enrolled: bool = True


@dataclass(frozen=True)
class Representation:
    patient_id: str
    ins: str
    display: str
    kind: str
    valid_until: date | None
    related_person_id: str | None = None


class AccountError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
        self.reason = code


class Accounts:
    """Patient accounts: INS 1..., password ``pw``, code ``123456``."""

    def __init__(self) -> None:
        self.accounts = {
            "180000000000001": Account("acc-1", "180000000000001", "p-parent", "Parent"),
            "280000000000002": Account("acc-2", "280000000000002", "p-alone", "Seul"),
        }
        self.mandates = {
            "acc-1": [
                Representation("p-child", "", "Enfant", "parent", None, "rp-1"),
                Representation("p-old", "", "Ancien", "guardian", date(2000, 1, 1)),
            ],
        }

    def verify(self, ins: str, password: str, totp_code: str) -> Account:
        account = self.accounts.get(ins)
        if account is None or password != "pw":
            raise AccountError("bad_credentials")
        if totp_code != "123456":
            raise AccountError("totp_invalid")
        return account

    def represented(self, account_id: str) -> list[Representation]:
        return self.mandates.get(account_id, [])
