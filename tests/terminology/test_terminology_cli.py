"""``maison terminology load`` and ``list`` as an operator runs them (Typer's test runner on the
command group; SQLite, or PostgreSQL with MAISON_TEST_STORE).

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from typer.testing import CliRunner

from maison.cli.terminology import terminology_app
from support import CORPORA, SHARED

runner = CliRunner()
NOS = CORPORA / "nos"
DOMAIN = SHARED / "domain" / "data" / "nos"


def _invoke(*args: str) -> tuple[int, str]:
    from maison.cli import terminology

    terminology.console.width = 400  # made at import, maybe before COLUMNS was set (xdist)
    result = runner.invoke(terminology_app, list(args), env={"COLUMNS": "400"})
    return result.exit_code, result.output


def _rows(output: str) -> list[list[str]]:
    """The cells of the table rows printed."""
    out = []
    for line in output.splitlines():
        if "│" in line:
            out.append([c.strip() for c in line.split("│")[1:-1]])
    return out


def _rf2(folder: Path) -> list[Path]:
    """A tiny synthetic RF2 snapshot (made-up ids and terms), one file per kind."""
    folder.mkdir()
    files = {
        "sct2_Concept_Snapshot_INT_20250101.txt": [
            "id\teffectiveTime\tactive\tmoduleId\tdefinitionStatusId",
            "100\t20250101\t1\t900000000000207008\t900000000000074008",
            "200\t20250101\t1\t900000000000207008\t900000000000074008",
        ],
        "sct2_Description_Snapshot-en_INT_20250101.txt": [
            "id\teffectiveTime\tactive\tmoduleId\tconceptId\tlanguageCode\ttypeId\tterm\t"
            "caseSignificanceId",
            "11\t20250101\t1\t900000000000207008\t100\ten\t900000000000003001\tTop (root)\t"
            "900000000000448009",
            "21\t20250101\t1\t900000000000207008\t200\ten\t900000000000003001\tLeaf (finding)\t"
            "900000000000448009",
        ],
        "sct2_Relationship_Snapshot_INT_20250101.txt": [
            "id\teffectiveTime\tactive\tmoduleId\tsourceId\tdestinationId\trelationshipGroup\t"
            "typeId\tcharacteristicTypeId\tmodifierId",
            "31\t20250101\t1\t900000000000207008\t200\t100\t0\t116680003\t900000000000011006\t"
            "900000000000451002",
        ],
    }
    paths = []
    for name, lines in files.items():
        path = folder / name
        path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
        paths.append(path)
    return paths


def test_load_then_reload_then_list(tmp_path: Path, data_url: str) -> None:
    state = str(tmp_path / "state")
    archive = tmp_path / "NOS-Fichiers_Publics-Versions_json_fhir.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(NOS.glob("*.json")):
            z.write(f, f.name)
    csvs = [
        DOMAIN / "JDV_J66-TypeCode-DMP.csv",
        DOMAIN / "ASS_X16-CorrespondanceType-Classe-DMP.csv",
    ]
    rf2 = _rf2(tmp_path / "rf2")
    code, text = _invoke(
        "load", str(archive), *map(str, csvs), *map(str, rf2), "--data", data_url, "--state", state
    )
    assert code == 0, text
    assert "Terminology load" in text
    rows = {(r[0], r[1], r[2]): r for r in _rows(text) if len(r) == 5}
    assert rows[("CodeSystem", "TRE_G15-ProfessionSante", "20211217120000")][3:] == [
        "30",
        "created",
    ]
    assert rows[("ValueSet", "JDV_J66-TypeCode-DMP", "")][3:] == ["81", "created"]
    assert rows[("ValueSet", "JDV_J66-TypeCode-DMP", "0.1.0")][3:] == ["81", "created"]
    assert rows[("ConceptMap", "ASS_X16-CorrespondanceType-Classe-DMP", "")][3:] == [
        "103",
        "created",
    ]
    snomed = "http://snomed.info/sct/900000000000207008/version/20250101"
    assert rows[("CodeSystem", "SNOMED CT", snomed)][3:] == ["2", "created"]
    assert "22 created, 0 replaced, 0 unchanged" in text

    code, text = _invoke(
        "load", str(archive), *map(str, csvs), *map(str, rf2), "--data", data_url, "--state", state
    )
    assert code == 0, text
    assert "0 created, 0 replaced, 22 unchanged" in text

    code, text = _invoke("list", "--data", data_url, "--state", state)
    assert code == 0, text
    assert "Loaded terminologies (22)" in text
    listed = {(r[0], r[1], r[3]): r for r in _rows(text) if len(r) == 7}
    assert listed[("CodeSystem", "SNOMED CT", snomed)][4:6] == ["snomed", "2"]
    assert listed[("ValueSet", "JDV_J66-TypeCode-DMP", "")][4:6] == ["nos", "81"]
    assert listed[("CodeSystem", "TRE_G15-ProfessionSante", "20211217120000")][4:6] == [
        "fhir",
        "30",
    ]


def test_a_bad_file_stops_with_one_message(tmp_path: Path, data_url: str) -> None:
    state = str(tmp_path / "state")
    good = DOMAIN / "JDV_J57-ClassCode-DMP.csv"
    bad = tmp_path / "TRE_Z99-Essai.csv"
    bad.write_text("code;display\n1;un\n", encoding="utf-8")  # semicolons: one column
    after = DOMAIN / "JDV_J66-TypeCode-DMP.csv"
    code, text = _invoke(
        "load", str(good), str(bad), str(after), "--data", data_url, "--state", state
    )
    assert code == 1, text
    flat = " ".join(text.split())
    assert f"{bad}, line 1: a code system (TRE) list needs the columns code, display" in flat
    assert f"nothing loaded from {bad}" in flat
    code, text = _invoke("list", "--data", data_url, "--state", state)
    assert code == 0 and "Loaded terminologies (1)" in text  # the file before it stays loaded
    assert "JDV_J57-ClassCode-DMP" in text and "JDV_J66" not in text


def test_unknown_or_missing_path(tmp_path: Path, data_url: str) -> None:
    state = str(tmp_path / "state")
    code, text = _invoke(
        "load", str(tmp_path / "absent.json"), "--data", data_url, "--state", state
    )
    assert code == 1 and "no such file or folder" in text
    odd = tmp_path / "notes.txt"
    odd.write_text("hello", encoding="utf-8")
    code, text = _invoke("load", str(odd), "--data", data_url, "--state", state)
    assert code == 1 and "unknown format" in text
