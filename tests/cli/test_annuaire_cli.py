"""`maison annuaire synth` and `maison annuaire import` as an operator runs them (through
Typer's test runner on the command group; the store is SQLite, or PostgreSQL with
MAISON_TEST_STORE).

https://annuaire.sante.fr/web/site-pro/extractions-publiques
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from typer.testing import CliRunner

from maison.cli.annuaire import annuaire_app
from maison.services.annuaire.extraction import ACTIVITE_PREFIX, Row, read_activities

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    from maison.cli import annuaire

    annuaire.console.width = 200  # made at import, maybe before COLUMNS was set (xdist)
    result = runner.invoke(annuaire_app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_synth_writes_a_zip_as_published_and_the_same_seed_the_same_rows(tmp_path: Path) -> None:
    out = tmp_path / "annuaire.zip"
    code, text = _invoke("synth", "120", "-o", str(out), "--seed", "4")
    assert code == 0, text
    assert "120 rows written" in text
    with zipfile.ZipFile(out) as archive:
        [name] = archive.namelist()
    assert name.startswith(ACTIVITE_PREFIX + "_") and name.endswith(".txt")
    rows = list(read_activities(out))
    assert len(rows) == 120 and all(isinstance(r, Row) for r in rows)  # every key checks out
    again = tmp_path / "again.txt"
    assert _invoke("synth", "120", "--out", str(again), "--seed", "4")[0] == 0
    assert [r.values for r in read_activities(again) if isinstance(r, Row)] == [
        r.values for r in rows if isinstance(r, Row)
    ]


def test_import_then_reimport_writes_nothing_the_second_time(tmp_path: Path, data_url: str) -> None:
    extraction = tmp_path / "PS_LibreAcces_Personne_activite_202601010300.txt"
    assert _invoke("synth", "150", "-o", str(extraction), "--seed", "2")[0] == 0
    lines = extraction.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[7] = "|".join(lines[7].split("|")[:12]) + "|\n"  # a broken row, line 8
    extraction.write_text("".join(lines), encoding="utf-8")
    state = str(tmp_path / "state")
    rejects = tmp_path / "rejects.txt"
    code, text = _invoke(
        "import", str(extraction), "--data", data_url, "--state", state, "--rejects", str(rejects)
    )
    assert code == 0, text
    assert "Annuaire Santé import" in text
    row = next(line for line in text.splitlines() if extraction.name in line and "│" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert len(cells) == 9, text
    name, rows, _rate, persons, created, updated, unchanged, deactivated, rejected = cells
    assert (name, rows, updated, unchanged, deactivated, rejected) == (
        extraction.name,
        "150",
        "0",
        "0",
        "0",
        "1",
    )
    assert int(created.replace(",", "")) > int(persons) > 100
    assert f"1 rejected row(s), with reasons: {rejects}" in " ".join(text.split())
    assert rejects.read_text(encoding="utf-8") == "line 8: 12 columns instead of 56\n"
    # the same file again (several files: rejects go into a folder)
    code, text = _invoke(
        "import", str(extraction), str(extraction), "--data", data_url, "--state", state,
        "--rejects", str(tmp_path / "rejected"), "--validate", "all",
    )  # fmt: skip
    assert code == 0, text
    rows_out = [line for line in text.splitlines() if extraction.name in line and "│" in line]
    for line in rows_out:
        cells = [c.strip() for c in line.split("│") if c.strip()]
        assert cells[4:8] == ["0", "0", created, "0"]  # created, updated, unchanged, gone
    assert (tmp_path / "rejected" / f"{extraction.name}.rejects.txt").exists()


def test_a_file_of_another_layout_is_one_red_line_and_exit_2(tmp_path: Path, data_url: str) -> None:
    other = tmp_path / "export.csv"
    other.write_text("RPPS;Nom;Prénom\n10001234567;MARTIN;Claire\n", encoding="utf-8")
    code, text = _invoke("import", str(other), "--data", data_url, "--state", str(tmp_path / "s"))
    assert code == 2
    assert "Traceback" not in text
    assert "is not a PS_LibreAcces_Personne_activite extraction" in text
    assert next(line for line in text.splitlines() if "export.csv" in line).startswith(
        "export.csv is not"
    )
    code, text = _invoke("import", str(tmp_path / "absent.zip"), "--data", data_url)
    assert code == 2 and "no such file" in text


def test_profession_codes_are_checked_once_the_nos_terminology_is_installed(
    tmp_path: Path, data_url: str
) -> None:
    import subprocess

    from servers import MAISON
    from support import CORPORA

    extraction = tmp_path / "PS_LibreAcces_Personne_activite_202601010300.txt"
    assert _invoke("synth", "40", "-o", str(extraction), "--seed", "3")[0] == 0
    lines = extraction.read_text(encoding="utf-8").splitlines(keepends=True)
    cells = lines[5].split("|")
    cells[9] = "99"  # Code profession: not in TRE_G15
    lines[5] = "|".join(cells)
    extraction.write_text("".join(lines), encoding="utf-8")
    state = str(tmp_path / "state")
    where = ["--data", data_url, "--state", state]
    code, text = _invoke("import", str(extraction), *where, "--rejects", str(tmp_path / "r1"))
    assert code == 0, text
    assert "profession codes not checked" in " ".join(text.split())
    nos = CORPORA / "nos" / "TRE_G15-ProfessionSante-FHIR.json"
    installed = subprocess.run(
        [*MAISON, "ig", "install", str(nos), *where], capture_output=True, text=True, check=False
    )
    assert installed.returncode == 0, installed.stderr
    code, text = _invoke("import", str(extraction), *where, "--rejects", str(tmp_path / "r2"))
    assert code == 0, text
    assert "profession codes not checked" not in text
    assert (tmp_path / "r2").read_text(encoding="utf-8") == (
        "line 6: Code profession '99' is not a known profession (TRE_G15)\n"
    )
