"""Issue 9 acceptance on the NOS files of ../shared, loaded the way `maison terminology load`
does into the SQL store (SQLite and PostgreSQL): each DMP value set expands to the codes its
file lists, J66 codes validate against J66 and not J57, every ASS_X16 type gives its class."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest

from maison.fhir.definitions import Definitions
from maison.terminology.expand import expand
from maison.terminology.source import LOINC
from maison.terminology.sql_source import SqlTerminology
from maison.terminology.translate import translate
from maison.terminology.validate import validate_in_value_set
from support import SHARED, nos_csv_terminology

NOS_CSV = SHARED / "domain" / "data" / "nos"
NOS = "https://mos.esante.gouv.fr/NOS/"


def _url(name: str) -> str:
    return f"{NOS}{name}/FHIR/{name.replace('_', '-')}"


@pytest.fixture(scope="module")
def term(
    backend: str, tmp_path_factory: pytest.TempPathFactory, defs: Definitions
) -> Iterator[SqlTerminology]:
    from servers import backend_data

    tmp = tmp_path_factory.mktemp("nos")
    store, loaded = nos_csv_terminology(backend_data(backend, tmp), tmp / "state", defs)
    yield loaded
    store.close()


def _rows(name: str) -> list[dict[str, str]]:
    with (NOS_CSV / name).open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    "name",
    [
        "JDV_J04-XdsPracticeSettingCode-CISIS",
        "JDV_J08-XdsConfidentialityCode-CISIS",
        "JDV_J57-ClassCode-DMP",
        "JDV_J66-TypeCode-DMP",
    ],
)
def test_each_dmp_value_set_expands_to_its_file(term: SqlTerminology, name: str) -> None:
    got = expand(term, url=_url(name), count=5000)["expansion"]
    listed = {(r["system"], r["code"]) for r in _rows(f"{name}.csv")}
    assert got["total"] == len(listed)
    assert {(c["system"], c["code"]) for c in got["contains"]} == listed


def test_j66_codes_are_in_j66_and_not_in_j57(term: SqlTerminology) -> None:
    def result(url: str, system: str, code: str) -> bool:
        out = validate_in_value_set(term, url=url, system=system, code=code)
        return next(p["valueBoolean"] for p in out["parameter"] if p["name"] == "result")

    for row in _rows("JDV_J66-TypeCode-DMP.csv"):
        assert result(_url("JDV_J66-TypeCode-DMP"), row["system"], row["code"]), row
        assert not result(_url("JDV_J57-ClassCode-DMP"), row["system"], row["code"]), row
        if row["system"].endswith("TRE-A04-Loinc"):  # the same code under http://loinc.org
            assert result(_url("JDV_J66-TypeCode-DMP"), LOINC, row["code"]), row


def test_every_x16_type_gives_its_class(term: SqlTerminology) -> None:
    rows = _rows("ASS_X16-CorrespondanceType-Classe-DMP.csv")
    assert len(rows) > 50
    for row in rows:
        out = translate(
            term,
            url=_url("ASS_X16-CorrespondanceType-Classe-DMP"),
            system=row["source_system"],
            code=row["type_code"],
        )
        concepts = [
            (part["valueCoding"]["system"], part["valueCoding"]["code"])
            for p in out["parameter"]
            if p["name"] == "match"
            for part in p["part"]
            if part["name"] == "concept"
        ]
        assert concepts == [(row["target_system"], row["class_code"])], row
