"""``maison access matrix show|check|load|--rollback`` as an operator runs them (Typer's test
runner; SQLite, or PostgreSQL with MAISON_TEST_STORE), with and without the NOS loaded.

https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from typer.testing import CliRunner

from maison.cli.access import access_app
from maison.cli.terminology import terminology_app
from maison.security.matrix_store import packaged_csv
from support import SHARED

runner = CliRunner()
NOS = SHARED / "domain" / "data" / "nos"


def _run(data: str, state: Path, *args: str) -> tuple[int, str]:
    from maison.cli import access

    access.console.width = access.out.width = 400
    result = runner.invoke(
        access_app, [*args, "--data", data, "--state", str(state)], env={"COLUMNS": "400"}
    )
    return result.exit_code, result.output


def _load_nos(data: str, state: Path) -> None:
    files = [str(p) for p in sorted(NOS.glob("*.csv"))]
    result = runner.invoke(terminology_app, ["load", *files, "--data", data, "--state", str(state)])
    assert result.exit_code == 0, result.output


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, "utf-8")
    return path


def test_show_the_packaged_matrix(data_url: str, tmp_path: Path) -> None:
    code, output = _run(data_url, tmp_path, "matrix", "show", "--profession", "10")
    assert code == 0, output
    assert "319 cells, 11 allowed, 319 provisional" in output
    assert output.count("CLASS:") == 11
    code, output = _run(data_url, tmp_path, "matrix", "show", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert len(rows) == 319 and {r["status"] for r in rows} == {"provisional"}


def test_check_without_the_nos_says_what_it_could_not_check(data_url: str, tmp_path: Path) -> None:
    code, output = _run(data_url, tmp_path, "matrix", "check")
    assert code == 0, output
    assert "not checked: profession codes" in output
    assert "not checked: document type codes" in output
    bad = _write(tmp_path, "bad.csv", packaged_csv() + "10,,,CLASS:10,no,provisional,x\n")
    code, output = _run(data_url, tmp_path, "matrix", "check", str(bad))
    assert code == 1
    assert "line 321: contradiction: line 2 says allowed" in output


def test_check_with_the_nos_checks_every_code(data_url: str, tmp_path: Path) -> None:
    _load_nos(data_url, tmp_path)
    code, output = _run(data_url, tmp_path, "matrix", "check")
    assert code == 0, output
    assert "not checked" not in output
    assert "without a row" in output and "93/10" in output  # psychologue: no row, deny
    wrong = _write(
        tmp_path,
        "wrong.csv",
        "profession,savoir_faire,role,document_type,allowed,status,source\n"
        "10,,,LOINC:11488-4,yes,official,a\n"
        "77,,,CLASS:10,yes,official,a\n"
        "10,,,TRE_A05:NOPE,yes,official,a\n"
        "10,,,CLASS:95,yes,official,a\n",
    )
    code, output = _run(data_url, tmp_path, "matrix", "check", str(wrong))
    assert code == 1
    assert "line 3, column profession: the profession '77' is not a code of TRE_G15" in output
    assert "line 4, column document_type: 'TRE_A05:NOPE' is not a type of JDV_J66" in output
    assert "line 5, column document_type: 'CLASS:95' is not a class of JDV_J57" in output


def test_load_then_rollback(data_url: str, tmp_path: Path) -> None:
    _load_nos(data_url, tmp_path)
    code, before = _run(data_url, tmp_path, "matrix", "show", "--format", "csv")
    packaged_version = _version(data_url, tmp_path)
    corrected = _write(
        tmp_path,
        "official.csv",
        packaged_csv()
        .replace("21,,,CLASS:43,no,provisional", "21,,,CLASS:43,yes,official")
        .replace("60,,,CLASS:44,no,provisional", "60,,,CLASS:44,yes,official"),
    )
    code, output = _run(data_url, tmp_path, "matrix", "load", str(corrected), "--by", "dpo")
    assert code == 0, output
    assert "2 cell(s) differ (0 added, 0 removed, 2 changed)" in output
    new_version = output.strip().splitlines()[-1]
    assert len(new_version) == 64 and new_version != packaged_version
    assert f"previous {packaged_version[:12]}" in output
    code, output = _run(data_url, tmp_path, "matrix", "show", "--profession", "21")
    assert new_version in output and "by dpo" in output and "official" in output

    invalid = _write(tmp_path, "invalid.csv", packaged_csv().replace(",no,", ",nope,", 1))
    code, output = _run(data_url, tmp_path, "matrix", "load", str(invalid))
    assert code == 1 and "nothing activated" in output and "column allowed" in output
    assert _version(data_url, tmp_path) == new_version

    code, output = _run(data_url, tmp_path, "matrix", "load", "--rollback", packaged_version[:8])
    assert code == 0, output
    assert output.strip().splitlines()[-1] == packaged_version
    assert "2 cell(s) differ" in output
    code, after = _run(data_url, tmp_path, "matrix", "show", "--format", "csv")
    assert after == before
    code, output = _run(data_url, tmp_path, "matrix", "load", "--rollback", "ffffffff")
    assert code == 1 and "no matrix version matches" in output


def test_load_needs_a_file_or_a_version(data_url: str, tmp_path: Path) -> None:
    code, output = _run(data_url, tmp_path, "matrix", "load")
    assert code == 2 and "either a FILE or --rollback" in output


def _version(data: str, state: Path) -> str:
    code, output = _run(data, state, "matrix", "show", "--profession", "none")
    assert code == 0, output
    return output.split("version ", 1)[1].split()[0].rstrip(":")
