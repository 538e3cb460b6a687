"""`maison psc list|userinfo` and `maison token --rpps` over an imported Annuaire, as a tester
runs them (SQLite, or PostgreSQL with MAISON_TEST_STORE)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from maison.cli.annuaire import annuaire_app
from maison.cli.main import app

runner = CliRunner()


def _run(application: Any, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(application, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.output


def _claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    claims: dict[str, Any] = orjson.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


@pytest.fixture
def annuaire(tmp_path: Path, data_url: str) -> tuple[str, str]:
    extraction = tmp_path / "PS_LibreAcces_Personne_activite_202601010300.txt"
    state = str(tmp_path / "state")
    assert _run(annuaire_app, "synth", "200", "-o", str(extraction), "--seed", "3")[0] == 0
    code, _, text = _run(
        annuaire_app, "import", str(extraction), "--data", data_url, "--state", state
    )
    assert code == 0, text
    return data_url, state


def _people(data: str, state: str) -> list[list[str]]:
    code, _, text = _run(app, "psc", "list", "--data", data, "--state", state, "--count", "200")
    assert code == 0, text
    rows = [
        [c.strip() for c in line.split("│")[1:-1]]
        for line in text.splitlines()
        if line.startswith("│")
    ]
    return [r for r in rows if r and r[0] != "IDNPS"]


def test_psc_list_then_a_token_for_a_professional(annuaire: tuple[str, str]) -> None:
    data, state = annuaire
    people = _people(data, state)
    assert len(people) > 100
    idnps, number = next((p[0], p[1]) for p in people if p[0].startswith("8"))
    code, out, text = _run(app, "token", "--data", data, "--state", state, "--rpps", number)
    if code == 2 and "several" in text:  # several activities: the first one, explicitly
        code, out, text = _run(
            app, "token", "--data", data, "--state", state, "--rpps", number, "--activity", "0"
        )
    assert code == 0, text
    claims = _claims(out.strip().splitlines()[-1])
    assert claims["sub"] == idnps and claims["SubjectNameID"] == idnps
    assert claims["fhirUser"] == f"Practitioner/{idnps}" and claims["acr"] == "eidas1"
    assert claims["scope"] == "user/*.cruds"
    assert claims["professional"]["activity"] == 0 and claims["professional"]["idnps"] == idnps
    code, out, text = _run(
        app, "psc", "userinfo", number, "--data", data, "--state", state, "--activity", "0"
    )
    assert code == 0, text
    assert orjson.loads(out)["SubjectNameID"] == idnps


def test_several_activities_must_be_chosen_and_unknown_ones_refused(
    annuaire: tuple[str, str],
) -> None:
    data, state = annuaire
    multi = None
    for idnps, *_ in _people(data, state):
        code, _, text = _run(app, "token", "--data", data, "--state", state, "--rpps", idnps)
        if code == 2:
            multi = idnps
            break
    assert multi is not None, "the synthetic extraction has persons with several activities"
    assert "--activity" in text and "1: " in text  # the choices are listed
    code, _, text = _run(
        app, "token", "--data", data, "--state", state, "--rpps", multi, "--activity", "1"
    )
    assert code == 0, text
    code, _, text = _run(
        app, "token", "--data", data, "--state", state, "--rpps", multi, "--activity", "99"
    )
    assert code == 2 and "99" in text
    code, _, text = _run(app, "token", "--data", data, "--state", state, "--rpps", "10000000000")
    assert code == 2 and "no professional 10000000000" in " ".join(text.split())
    code, _, text = _run(app, "token", "--data", data, "--state", state, "--activity", "1")
    assert code == 2 and "--activity goes with --rpps" in text
