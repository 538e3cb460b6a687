"""`maison patient account|represent|totp` as a platform operator runs them (SQLite, or
PostgreSQL with MAISON_TEST_STORE)."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pyotp
import pytest
from typer.testing import CliRunner

from maison.cli.patients import patient_app
from maison.fhir.definitions import Definitions
from maison.services.ins import reference
from maison.services.ins.accounts import patient_accounts
from support import open_sql_store

runner = CliRunner()
PASSWORD = "Correct-Horse-42"
BIRTH = f"{date.today().year - 10}-04-01"  # a child of 10
LAST = f"{date.today().year + 8}-03-31"  # the day before 18


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(patient_app, list(args), input=stdin, env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.output


@pytest.fixture
def place(tmp_path: Path, data_url: str, defs: Definitions) -> tuple[list[str], list[str]]:
    """The --data/--state options and the INS of: an adult (QUAL), another adult (QUAL), a
    child of 10 (VALI), a PROV identity."""
    state = tmp_path / "state"
    store = open_sql_store(data_url, state, defs, clock=False)
    people = reference.synthesize(4, seed=uuid.uuid4().int % 2**31)
    ins = []
    for identity, status, birth in zip(
        people, ["QUAL", "QUAL", "VALI", "PROV"], [None, None, BIRTH, None], strict=True
    ):
        body = reference.to_patient(identity, status)
        if birth:
            body["birthDate"] = birth
        store.write(lambda tx, b=body: tx.create("Patient", b))
        ins.append(identity.matricule)
    store.close()
    return ["--data", data_url, "--state", str(state)], ins


def _secret(out: str) -> str:
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("secret:"))


def test_accounts_and_representatives(
    place: tuple[list[str], list[str]], data_url: str, defs: Definitions, tmp_path: Path
) -> None:
    opts, (adult, other, child, provisional) = place
    code, out, text = _run(
        "account", "create", "--ins", adult, *opts, "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 0, text
    assert "otpauth://totp/" in out and PASSWORD not in text
    secret = _secret(out)
    # twice: refused; not qualified: refused with its status; weak password: the rule
    code, _, text = _run(
        "account", "create", "--ins", adult, *opts, "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 2 and "(exists)" in text
    code, _, text = _run(
        "account", "create", "--ins", provisional, *opts, "--password-stdin", stdin=PASSWORD
    )
    assert code == 2 and "status PROV" in text
    code, _, text = _run("account", "create", "--ins", other, *opts, "--password-stdin", stdin="x")
    assert code == 2 and "12 characters" in text
    # prompted twice
    code, out, text = _run("account", "create", "--ins", other, *opts, stdin=f"{PASSWORD}\n" * 2)
    assert code == 0, text
    code, out, text = _run("account", "list", *opts)
    assert code == 0 and adult in out and other in out
    # the dev helper needs --dev; its code signs in
    code, _, text = _run("totp", "--ins", adult, *opts)
    assert code == 2 and "--dev" in text
    code, out, text = _run("totp", "--ins", adult, "--dev", *opts)
    assert code == 0, text
    assert out.strip() == pyotp.TOTP(secret).now()
    store = open_sql_store(data_url, tmp_path / "state", defs, clock=False)
    try:
        accounts = patient_accounts(store)
        assert accounts.verify(adult, PASSWORD, out.strip()).ins == adult
        # a new secret voids the old one
        code, out, text = _run("account", "reset-totp", "--ins", adult, *opts)
        assert code == 0 and _secret(out) != secret
        # representatives
        code, out, text = _run(
            "represent", "add", "--patient", child, "--representative", adult, *opts
        )
        assert code == 0, text
        assert "parent of Patient/" in out and f"until {LAST}" in out
        code, out, text = _run("represent", "list", "--representative", adult, *opts)
        assert code == 0 and child in out and "parent" in out
        code, out, text = _run("represent", "list", "--representative", other, *opts)
        assert code == 0 and child not in out
        code, _, text = _run(
            "represent", "add", "--patient", child, "--representative", other, *opts,
            "--kind", "tutelle", "--until", "yesterday",
        )  # fmt: skip
        assert code == 2 and "not a date" in text
        code, out, text = _run(
            "represent", "remove", "--patient", child, "--representative", adult, *opts
        )
        assert code == 0 and "1 representation(s) ended" in out
        assert accounts.represented(accounts.by_ins(adult).account_id) == []
    finally:
        store.close()


def test_unknown_ins(place: tuple[list[str], list[str]]) -> None:
    opts, _ = place
    code, _, text = _run(
        "account", "create", "--ins", "199999999999999", *opts, "--password-stdin", stdin=PASSWORD
    )
    assert code == 2 and "(unknown)" in text
    code, _, text = _run("account", "reset-totp", "--ins", "199999999999999", *opts)
    assert code == 2 and "no account" in text
    args: Any = ("represent", "list", "--representative", "199999999999999", *opts)
    assert _run(*args)[0] == 2
