"""INS reference base: synthesis (valid, unique, realistic, hard cases), files, FR Core mapping."""

from __future__ import annotations

import gzip
import itertools
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.fr import nir as stdnum_nir

from maison.fhir.definitions import load_definitions
from maison.fhir.validation import Validator
from maison.services.ins import reference
from maison.services.ins.reference import (
    CSV_COLUMNS,
    OID_DEMO,
    OID_NIA,
    OID_NIR,
    OID_TEST,
    ReferenceIdentity,
    RowError,
    from_patient,
    normalize_date,
    problems,
    read,
    synthesize,
    to_patient,
    write,
)
from support import CORPORA

FR_CORE = CORPORA / "compiled" / "hl7.fhir.fr.core"
POOL = list(synthesize(40_000, seed=11))


def _one(**changes: Any) -> ReferenceIdentity:
    base = ReferenceIdentity(
        matricule="180126978912552",
        oid=OID_TEST,
        nom_naissance="MARTIN",
        prenoms=("JEAN", "PIERRE"),
        sexe="M",
        date_naissance="1980-12-15",
        lieu_naissance="69789",
    )
    return replace(base, **changes)


# ----------------------------------------------------------------------------- synthesis


def test_same_seed_same_identities_other_seed_others() -> None:
    assert list(synthesize(500, seed=11)) == POOL[:500]
    assert list(synthesize(500, seed=12)) != POOL[:500]
    assert len(list(synthesize(0, seed=1))) == 0
    assert len(list(synthesize(1, seed=1))) == 1


def test_every_identity_is_valid_and_every_matricule_unique() -> None:
    assert [(i, p) for i in POOL if (p := problems(i))] == []
    matricules = [i.matricule for i in POOL]
    history = [h for i in POOL for h in i.historique]
    assert len(set(matricules)) == len(matricules)
    assert history and len(set(history) | set(matricules)) == len(history) + len(matricules)


def test_matricule_encodes_the_traits_with_a_stdnum_key() -> None:
    for ident in POOL[:5000]:
        m = ident.matricule
        assert stdnum_nir.is_valid(m)
        assert m[13:] == stdnum_nir.calc_check_digits(m)
        assert m[0] == ("1" if ident.sexe == "M" else "2")
        assert m[1:3] == ident.date_naissance[2:4]
        if len(ident.date_naissance) >= 7:
            assert m[3:5] == ident.date_naissance[5:7]
        else:
            assert m[3:5] == "20"  # unknown month
        if ident.lieu_naissance[:2] in ("2A", "2B") and ident.date_naissance < "1976":
            assert m[5:10] == "20" + ident.lieu_naissance[2:]  # Corsica before 1976
        else:
            assert m[5:10] == ident.lieu_naissance


def test_corsica_keys_use_19_and_18_for_the_modulo() -> None:
    corsica = [i for i in POOL if i.matricule[5:7] in ("2A", "2B")]
    assert corsica
    for ident in corsica:
        digits = ident.matricule[:5] + {"2A": "19", "2B": "18"}[ident.matricule[5:7]]
        digits += ident.matricule[7:13]
        assert int(ident.matricule[13:]) == 97 - int(digits) % 97


def test_the_population_looks_french() -> None:
    places = Counter(i.lieu_naissance[:2] for i in POOL)
    abroad = places["99"] / len(POOL)
    assert 0.035 < abroad < 0.065
    assert places["2A"] and places["2B"] and places["97"]
    assert len(reference._FAMILY_NAMES) > 1500
    families = {i.nom_naissance for i in POOL}
    assert len(families) > 3000
    assert any("-" in f for f in families) and any(" " in f for f in families)
    assert any("'" in f for f in families)
    assert {"LE GALL", "D'ALMEIDA", "DA SILVA"} <= set(reference._FAMILY_NAMES)
    counts = Counter(len(i.prenoms) for i in POOL)
    assert set(counts) == {1, 2, 3, 4}
    assert all(len(set(i.prenoms)) == len(i.prenoms) for i in POOL)
    male = {p for i in POOL if i.sexe == "M" for p in i.prenoms[:1]}
    female = {p for i in POOL if i.sexe == "F" for p in i.prenoms[:1]}
    assert len(male) > 200 and len(female) > 200
    years = [int(i.date_naissance[:4]) for i in POOL]
    assert min(years) <= 1930 and max(years) == 2025
    assert all(i.date_naissance <= "2025-06-30" for i in POOL)
    assert any(len(i.date_naissance) < 10 for i in POOL)  # partial dates, born abroad
    # generations: a 1950s man is more often JEAN than LUCAS, a 2010s boy the other way round
    fifties = Counter(
        i.prenoms[0] for i in POOL if i.sexe == "M" and "1950" <= i.date_naissance < "1960"
    )
    tens = Counter(
        i.prenoms[0] for i in POOL if i.sexe == "M" and "2010" <= i.date_naissance < "2020"
    )
    assert fifties["JEAN"] > fifties["LUCAS"] and tens["LUCAS"] > tens["JEAN"]


def _search_by_traits(pool: list[ReferenceIdentity]) -> dict[tuple[str, str, str, str], int]:
    """How many identities an INSi search by (nom, premier prénom, sexe, date) would return."""
    return Counter((i.nom_naissance, i.premier_prenom, i.sexe, i.date_naissance) for i in pool)


def test_hard_cases_homonyms_and_twins() -> None:
    by_traits = _search_by_traits(POOL)
    several = [key for key, count in by_traits.items() if count > 1]
    assert len(several) > 20  # INSi would answer "02 several" for these
    by_name_date: dict[tuple[str, str], list[ReferenceIdentity]] = {}
    for ident in POOL:
        by_name_date.setdefault((ident.nom_naissance, ident.date_naissance), []).append(ident)
    twins = other_sex = elsewhere = 0
    for group in by_name_date.values():
        for a, b in itertools.combinations(group, 2):
            if a.lieu_naissance == b.lieu_naissance and a.premier_prenom != b.premier_prenom:
                twins += 1
            if a.premier_prenom == b.premier_prenom and a.sexe != b.sexe:
                other_sex += 1
                assert a.premier_prenom in reference._UNISEX
            if a.premier_prenom == b.premier_prenom and a.lieu_naissance != b.lieu_naissance:
                elsewhere += 1
    assert twins > 150 and other_sex > 10 and elsewhere > 50


def test_synthesis_streams_in_constant_memory() -> None:
    stream = synthesize(1_000_000, seed=3)
    assert isinstance(stream, Iterator)
    tracemalloc.start()
    for _ in itertools.islice(stream, 5_000):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000


def test_oids_nia_test_demo() -> None:
    nia = list(synthesize(3000, seed=5, oid=OID_NIA))
    assert all(i.matricule[0] in "78" and not i.historique and not problems(i) for i in nia)
    demo = list(synthesize(100, seed=5, oid=OID_DEMO))
    assert {i.oid for i in demo} == {OID_DEMO}
    with pytest.raises(ValueError):
        synthesize(1, seed=1, oid="1.2.3")
    with pytest.raises(ValueError):
        synthesize(-1, seed=1)
    with pytest.raises(ValueError):
        synthesize(10**9, seed=1)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("1980-12-15", "1980-12-15"),
        ("1980-12", "1980-12"),
        ("1980", "1980"),
        ("1980-00-00", "1980"),
        ("1980-12-00", "1980-12"),
        (" 1980-02-29 ", "1980-02-29"),
    ],
)
def test_normalize_date(text: str, normalized: str) -> None:
    assert normalize_date(text) == normalized


@pytest.mark.parametrize("text", ["1981-02-29", "1980-13-01", "1980-00-05", "80-12-15", "", "x"])
def test_normalize_date_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        normalize_date(text)


@given(st.dates(min_value=date(1800, 1, 1)))
def test_normalize_date_accepts_every_calendar_date(day: date) -> None:
    assert normalize_date(day.isoformat()) == day.isoformat()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, None),
        ({"matricule": "180126978912599"}, "wrong key"),
        ({"matricule": "18012697891253"}, "not 13 characters"),
        ({"sexe": "X"}, "not M or F"),
        ({"sexe": "F"}, "sex digit 1 does not match"),
        ({"nom_naissance": "MARTÍN"}, "INSi alphabet"),
        ({"nom_naissance": "Martin"}, "INSi alphabet"),
        ({"prenoms": ("JEAN PIERRE",)}, "INSi alphabet"),
        ({"prenoms": ()}, "no prénom"),
        ({"date_naissance": "1980-02-30"}, "day is out of range"),
        ({"date_naissance": "1981-12-15"}, "year 80 does not match"),
        ({"date_naissance": "1980-11-15"}, "month 12 does not match"),
        ({"lieu_naissance": "20789"}, "not a COG code"),
        ({"lieu_naissance": "69123"}, "does not match the COG"),
        ({"lieu_naissance": "99100"}, "France itself"),
        ({"oid": "1.2.250.1.213.1.4.2"}, "unknown INS OID"),
        ({"historique": ("180126978912599",)}, "historic matricule"),
    ],
)
def test_problems_one_rule_at_a_time(changes: dict[str, Any], message: str | None) -> None:
    found = problems(_one(**changes))
    if message is None:
        assert found == []
    else:
        assert any(message in p for p in found), found


def test_problems_accepts_the_published_key_vectors() -> None:
    corsica = _one(
        matricule="253072B07300470",
        sexe="F",
        date_naissance="1953-07-01",
        lieu_naissance="2B073",
    )
    assert problems(corsica) == []
    abroad = _one(
        matricule="295109912611193", sexe="F", date_naissance="1995-10", lieu_naissance="99126"
    )
    assert problems(abroad) == []


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", ["ref.csv", "ref.jsonl", "ref.csv.gz", "ref.ndjson.gz"])
def test_write_then_read_round_trips(tmp_path: Path, name: str) -> None:
    pool = POOL[:3000]
    assert write(pool, tmp_path / name) == len(pool)
    assert list(read(tmp_path / name)) == pool


def test_csv_layout_is_documented(tmp_path: Path) -> None:
    write(POOL[:2], tmp_path / "ref.csv")
    lines = (tmp_path / "ref.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == ";".join(CSV_COLUMNS)
    first = POOL[0]
    assert lines[1].split(";")[:4] == [
        first.matricule,
        first.oid,
        first.nom_naissance,
        " ".join(first.prenoms),
    ]


@given(st.lists(st.sampled_from(POOL[:500]), max_size=20), st.sampled_from(["csv", "jsonl"]))
@settings(max_examples=30, deadline=None)
def test_round_trip_any_selection(
    tmp_path_factory: pytest.TempPathFactory, pool: list[ReferenceIdentity], fmt: str
) -> None:
    path = tmp_path_factory.mktemp("rt") / f"ref.{fmt}"
    write(pool, path)
    assert list(read(path)) == pool


def test_read_yields_row_errors_with_line_numbers(tmp_path: Path) -> None:
    good = POOL[0]
    rows = [
        ";".join(CSV_COLUMNS),
        f"{good.matricule};{good.oid};{good.nom_naissance};{' '.join(good.prenoms)};"
        f"{good.sexe};{good.date_naissance};{good.lieu_naissance};",
        "180126978912599;1.2.250.1.213.1.4.10;MARTIN;JEAN;M;1980-12-15;69789;",
        "180126978912552;1.2.250.1.213.1.4.10;Martin;JEAN;M;1980-12-15;69789;",
        "180126978912552;1.2.250.1.213.1.4.10;MARTIN;JEAN;M;1980-12-15",
        "180126978912552;1.2.250.1.213.1.4.10;MARTIN;JEAN;M;1980-12-32;69789;",
        "",
        "180126978912552;1.2.250.1.213.1.4.10;MARTIN;;M;1980-12-15;69789;",
        "180126978912552;1.2.250.1.213.1.4.10;MARTIN;JEAN PIERRE;M;1980-12-15;69789;",
    ]
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = list(read(path))
    assert out[0] == good
    errors = [o for o in out if isinstance(o, RowError)]
    assert [e.line for e in errors] == [3, 4, 5, 6, 8]
    assert "wrong key" in errors[0].message
    assert "INSi alphabet" in errors[1].message
    assert "fields instead of 8" in errors[2].message
    assert "day is out of range" in errors[3].message
    assert "missing prenoms" in errors[4].message
    assert out[-1] == _one(prenoms=("JEAN", "PIERRE"))


def test_read_jsonl_errors_and_sniffing(tmp_path: Path) -> None:
    good = orjson.loads(orjson.dumps(to_record(POOL[1])))
    lines = [
        orjson.dumps(good).decode(),
        "{not json",
        "[1, 2]",
        orjson.dumps({**good, "sexe": 1}).decode(),
        orjson.dumps({**good, "prenoms": " ".join(good["prenoms"])}).decode(),
    ]
    path = tmp_path / "no-extension"
    path.write_text("\n".join(lines), encoding="utf-8")
    out = list(read(path))
    assert out[0] == POOL[1] and out[4] == POOL[1]
    assert [(o.line, o.message[:12]) for o in out[1:4] if isinstance(o, RowError)] == [
        (2, "invalid JSON"),
        (3, "a line must "),
        (4, "fields must "),
    ]
    csv_path = tmp_path / "also-no-extension"
    write(POOL[:3], tmp_path / "x.csv")
    csv_path.write_bytes((tmp_path / "x.csv").read_bytes())
    assert list(read(csv_path)) == POOL[:3]
    gz = tmp_path / "packed"
    gz.write_bytes(gzip.compress((tmp_path / "x.csv").read_bytes()))
    assert list(read(gz)) == POOL[:3]
    with pytest.raises(ValueError):
        write(POOL[:1], tmp_path / "ref.txt")


def test_read_rejects_a_csv_without_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a;b;c\n1;2;3\n", encoding="utf-8")
    (error,) = list(read(path))
    assert isinstance(error, RowError) and error.line == 1 and "matricule" in error.message


def to_record(ident: ReferenceIdentity) -> dict[str, Any]:
    return {
        "matricule": ident.matricule,
        "oid": ident.oid,
        "nom_naissance": ident.nom_naissance,
        "prenoms": list(ident.prenoms),
        "sexe": ident.sexe,
        "date_naissance": ident.date_naissance,
        "lieu_naissance": ident.lieu_naissance,
        "historique": list(ident.historique),
    }


# ----------------------------------------------------------------------------- FHIR


@pytest.fixture(scope="module")
def fr_validator() -> Validator:
    own = load_definitions()
    for path in sorted(FR_CORE.glob("*.json")):
        resource = orjson.loads(path.read_bytes())
        if resource["resourceType"] in ("StructureDefinition", "ValueSet", "CodeSystem"):
            own.add(resource)
    return Validator(own)


def _samples() -> list[ReferenceIdentity]:
    picked = [POOL[0], POOL[1]]
    picked.append(next(i for i in POOL if i.historique))
    picked.append(next(i for i in POOL if len(i.date_naissance) == 4))
    picked.append(next(i for i in POOL if i.lieu_naissance[:2] == "2A"))
    picked.append(next(iter(synthesize(1, seed=2, oid=OID_NIA))))
    picked.append(replace(POOL[2], oid=OID_NIR))
    return picked


def test_to_patient_conforms_to_fr_core_patient_ins(fr_validator: Validator) -> None:
    for ident in _samples():
        patient = to_patient(ident)
        issues = fr_validator.validate(patient, [reference.FR_CORE_PATIENT_INS])
        assert [i.diagnostics for i in issues if i.severity in ("error", "fatal")] == []


def test_to_patient_shape() -> None:
    ident = next(i for i in POOL if len(i.prenoms) >= 2 and i.historique)
    patient = to_patient(ident)
    ins = patient["identifier"][0]
    assert ins["system"] == f"urn:oid:{OID_TEST}" and ins["value"] == ident.matricule
    assert ins["use"] == "official"
    assert ins["type"]["coding"][0] == {
        "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203",
        "code": "INS-NIR-TEST",
        "display": "NIR TEST",
    }
    assert [i["use"] for i in patient["identifier"][1:]] == ["old"]
    (name,) = patient["name"]
    assert name["use"] == "official" and name["family"] == ident.nom_naissance
    assert name["given"] == [ident.prenoms[0]]
    assert name["extension"] == [
        {"url": reference.BIRTH_LIST_GIVEN_NAME, "valueString": " ".join(ident.prenoms)}
    ]
    place = patient["extension"][1]["valueAddress"]["extension"][0]["valueCoding"]
    assert place == {"system": reference.COMMUNE_CS, "code": ident.lieu_naissance}
    assert patient["gender"] == {"M": "male", "F": "female"}[ident.sexe]
    nia = to_patient(next(iter(synthesize(1, seed=2, oid=OID_NIA))))
    assert nia["identifier"][0]["use"] == "temp"
    assert nia["identifier"][0]["type"]["coding"][0]["code"] == "INS-NIA"


def test_from_patient_inverts_to_patient() -> None:
    for ident in _samples() + POOL[:300]:
        assert from_patient(to_patient(ident)) == ident
    nir_history = replace(POOL[0], oid=OID_NIR, historique=("7" + POOL[0].matricule[1:],))
    old = to_patient(nir_history)["identifier"][1]
    assert old["system"] == f"urn:oid:{OID_NIA}"


def test_from_patient_reads_the_fr_core_example_and_says_what_is_missing() -> None:
    example = orjson.loads((FR_CORE / "Patient-FRCorePatientINSExample.json").read_bytes())
    with pytest.raises(ValueError, match="INSEE code"):
        from_patient(example)
    example["extension"][1]["valueAddress"]["extension"] = [
        {
            "url": reference.INSEE_CODE,
            "valueCoding": {"system": reference.COMMUNE_CS, "code": "01006"},
        }
    ]
    ident = from_patient(example)
    assert (ident.oid, ident.nom_naissance, ident.prenoms, ident.sexe) == (
        OID_NIR,
        "Durand",
        ("Pierre",),
        "M",
    )
    assert problems(ident)  # the example's name case and key are not INSi-valid
    broken_cases: list[tuple[dict[str, Any], str]] = [
        ({"identifier": []}, "no INS identifier"),
        ({"name": [{"use": "usual", "family": "X"}]}, "no official name"),
        ({"gender": "unknown"}, "neither male nor female"),
        ({"birthDate": None}, "no birthDate"),
    ]
    for broken, message in broken_cases:
        with pytest.raises(ValueError, match=message):
            from_patient({**example, **broken})
    assert OID_TEST in reference.INS_TYPES


def test_a_patient_with_its_insi_history_passes_the_write_rules() -> None:
    """An identity with previous matricules (INSHISTO) under the test OID becomes a Patient the
    INS rules accept: the old matricules are kept with use old, as a NIR's are."""
    from maison.services.ins.matricule import active_ins_values, check_patient_identifiers

    ident = next(i for i in POOL if i.historique)
    patient = reference.to_patient(ident, "PROV")
    assert [i for i in check_patient_identifiers(patient) if i.severity == "error"] == []
    assert {v for _, v in active_ins_values(patient)} == {ident.matricule}
