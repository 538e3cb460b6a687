"""Matricule INS: structure, key (python-stdnum vectors, spec examples), Patient identifiers."""

from __future__ import annotations

import csv
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.fr import nir as stdnum_nir

from maison.fhir.errors import Category, FhirError, Issue
from maison.services.ins.matricule import (
    FR_CORE_V2_0203,
    SYSTEMS,
    V2_0203,
    Kind,
    Matricule,
    active_ins_values,
    check,
    check_patient_identifiers,
    compute_key,
    identifier_kind,
    ins_identifiers,
    parse,
)
from support import CORPORA, SHARED

NIR = SYSTEMS[Kind.NIR]
NIA = SYSTEMS[Kind.NIA]
TEST = SYSTEMS[Kind.NIR_TEST]
KEY_EXAMPLES = SHARED / "domain" / "data" / "ins" / "nir-key-examples.csv"
FR_CORE = CORPORA / "compiled" / "hl7.fhir.fr.core"
EXPR = "Patient.identifier[0].value"


def _errors(issues: list[Issue]) -> list[str]:
    return [i.diagnostics for i in issues if i.severity == "error"]


def _warnings(issues: list[Issue]) -> list[str]:
    return [i.diagnostics for i in issues if i.severity == "warning"]


def _with_key(first13: str) -> str:
    return first13 + compute_key(first13)


# --- key ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["295109912611193", "253072B07300470", "253072A07300443"])
def test_stdnum_vectors_are_valid(value: str) -> None:
    assert check(value, NIR, EXPR) == []
    assert parse(value, NIR).value == value


def _key_rows() -> list[dict[str, str]]:
    with KEY_EXAMPLES.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("row", _key_rows(), ids=lambda r: r["matricule"])
def test_shared_key_examples(row: dict[str, str]) -> None:
    value = row["matricule"]
    assert compute_key(row["first13"]) == stdnum_nir.calc_check_digits(row["first13"])
    if row["key_valid"] == "true":
        assert compute_key(row["first13"]) == row["key"]
        assert _errors(check(value, NIR, EXPR)) == []
    else:
        expected = row["key_valid"].split("computed ")[1].rstrip(")")
        assert compute_key(row["first13"]) == expected
        message = f"the key of matricule INS {value} is {row['key']}, expected {expected}"
        assert any(message in e for e in _errors(check(value, NIR, EXPR)))


def test_fr_core_example_key_is_refused_with_the_expected_key_named() -> None:
    issues = check("123456789012244", NIR, EXPR)
    assert any(
        e == f"{EXPR}: the key of matricule INS 123456789012244 is 44, expected 12"
        for e in _errors(issues)
    )
    assert all(i.expression == (EXPR,) for i in issues)


def test_hl7v2_example_key_is_refused() -> None:
    with pytest.raises(FhirError) as err:
        parse("288091234567823", NIR, EXPR)
    assert err.value.category is Category.UNPROCESSABLE
    assert "is 23, expected 94" in err.value.message
    assert err.value.issues[0].expression == (EXPR,)


@pytest.mark.parametrize("key", ["00", "98", "99"])
def test_keys_out_of_range_are_explained(key: str) -> None:
    (message,) = _errors(check("2951099126111" + key, NIR))
    assert "expected 93" in message and "between 01 and 97" in message


# --- shape ----------------------------------------------------------------------------------


def test_parsed_parts() -> None:
    abroad = parse("295109912611193")
    assert (abroad.sex, abroad.year, abroad.month, abroad.place) == ("F", "95", "10", "99126")
    assert abroad.born_abroad and abroad.department == "99" and abroad.order == "111"
    assert abroad.key == "93" and abroad.month_known and not abroad.provisional
    corsica = parse("253072B07300470")
    assert corsica.department == "2B" and corsica.sex == "F" and not corsica.born_abroad
    overseas = parse(_with_key("1850597209123"))
    assert overseas.department == "972" and overseas.place == "97209" and overseas.sex == "M"
    unknown_month = parse(_with_key("1503099350001"))
    assert not unknown_month.month_known


def test_thirteen_characters_get_the_key_suggested() -> None:
    (message,) = _errors(check("2951099126111", NIR, EXPR))
    assert "15 characters" in message and "got 13" in message
    assert "with its key it would be 295109912611193" in message


@pytest.mark.parametrize("value", ["2 95 10 99 126 111 93", "2951099126111-93", "253072b07300470"])
def test_separators_and_lower_case_are_reported_not_stripped(value: str) -> None:
    (message,) = _errors(check(value, NIR, EXPR))
    assert "exactly 15 upper-case characters" in message and "send '" in message


@pytest.mark.parametrize("value", [2951099126111193, None, ["295109912611193"]])
def test_non_strings_are_refused(value: Any) -> None:
    (message,) = _errors(check(value, NIR, EXPR))
    assert "string of 15 characters" in message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2A510991261100", "characters 1-5"),
        ("29510991261A100", "characters 8-13"),
        ("2951099126B1100", "characters 8-13"),
        ("253072C07300443", "characters 6-7"),
        ("253072073004A43", "characters 8-13"),
        ("2951099126111A3", "characters 14-15 (key)"),
    ],
)
def test_letters_out_of_place_are_refused(value: str, fragment: str) -> None:
    value = (value + "0")[:15]
    messages = _errors(check(value, NIR, EXPR))
    assert any(fragment in m for m in messages), messages


@pytest.mark.parametrize("value", ["2A3072507300443", "25A072507300443", "253072207A00443"])
def test_corsica_letters_only_at_characters_6_7(value: str) -> None:
    assert check(_with_key("253072A073004"), NIR) == []
    messages = _errors(check(value, NIR))
    assert any("A/B are only allowed as 2A/2B at characters 6-7" in m for m in messages), messages


@pytest.mark.parametrize("digit", "0569")
def test_sex_digit_refused(digit: str) -> None:
    value = _with_key(digit + "951099126111")
    assert any("character 1 (sex)" in m for m in _errors(check(value, NIR)))


@pytest.mark.parametrize("digit", "3478")
def test_provisional_sex_digits(digit: str) -> None:
    value = _with_key(digit + "951099126111")
    assert check(value, NIA) == []
    (warning,) = _warnings(check(value, NIR))
    assert "provisional" in warning and "INS-NIA" in warning
    assert parse(value, NIA).provisional


@pytest.mark.parametrize("month", ["00", "13", "19", "43", "49"])
def test_months_refused(month: str) -> None:
    value = _with_key(f"295{month}99126111")
    assert any("birth month" in m for m in _errors(check(value, NIR)))


@pytest.mark.parametrize("month", ["01", "12", "20", "31", "42", "50", "63", "99"])
def test_months_accepted(month: str) -> None:
    assert check(_with_key(f"295{month}99126111"), NIR) == []


def test_department_00_and_order_000_refused() -> None:
    assert any("département 00" in m for m in _errors(check(_with_key("1951000126111"), NIR)))
    assert any("order number" in m for m in _errors(check(_with_key("1951099126000"), NIR)))


# --- properties -----------------------------------------------------------------------------

_MONTHS = [f"{m:02d}" for m in [*range(1, 13), *range(20, 43), *range(50, 100)]]


@st.composite
def matricules(draw: st.DrawFn) -> str:
    sex = draw(st.sampled_from("123478"))
    year = f"{draw(st.integers(0, 99)):02d}"
    month = draw(st.sampled_from(_MONTHS))
    place = (
        draw(
            st.one_of(
                st.integers(1, 95).map(lambda d: f"{d:02d}"),
                st.sampled_from(["2A", "2B", "97", "98", "99"]),
            )
        )
        + f"{draw(st.integers(0, 999)):03d}"
    )
    order = f"{draw(st.integers(1, 999)):03d}"
    return _with_key(sex + year + month + place + order)


@given(matricules())
@settings(max_examples=300, deadline=None)
def test_generated_matricules_are_accepted(value: str) -> None:
    assert check(value, NIA) == []
    assert _errors(check(value, NIR)) == []
    assert parse(value).key == stdnum_nir.calc_check_digits(value)
    assert stdnum_nir.is_valid(value)


@given(matricules(), st.integers(0, 14), st.characters())
@settings(max_examples=1000, deadline=None)
def test_any_single_character_substitution_is_refused(value: str, at: int, char: str) -> None:
    # Proof in maison.services.ins.matricule's docstring: a body change shifts the number
    # (2A=19, 2B=18) by c * 10**k with 0 < |c| < 97, which 97 (prime) cannot divide.
    if value[at] == char:
        return
    changed = value[:at] + char + value[at + 1 :]
    assert _errors(check(changed, NIR)), changed


@given(matricules(), st.integers(0, 11))
@settings(max_examples=500, deadline=None)
def test_adjacent_transpositions_in_the_body_are_refused(value: str, at: int) -> None:
    # Swapping distinct neighbours a, b changes the number by 9 * (a - b) * 10**k (or puts a
    # letter out of place): never a multiple of 97. Swaps that reach into the key change the
    # key too, so the property is limited to the 13-character body.
    if value[at] == value[at + 1]:
        return
    changed = value[:at] + value[at + 1] + value[at] + value[at + 2 :]
    assert _errors(check(changed, NIR)), changed


@given(st.one_of(st.text(max_size=20), st.text(alphabet="0123456789AB ", min_size=13, max_size=16)))
@settings(max_examples=500, deadline=None)
def test_check_never_crashes_and_parse_agrees(value: str) -> None:
    issues = check(value, NIR, EXPR)
    if _errors(issues):
        with pytest.raises(FhirError):
            parse(value, NIR, EXPR)
    else:
        assert stdnum_nir.is_valid(value) and len(value) == 15


# --- Patient identifiers --------------------------------------------------------------------


def _ins(
    value: str, kind: Kind = Kind.NIR, use: str | None = "official", **extra: Any
) -> dict[str, Any]:
    identifier: dict[str, Any] = {
        "type": {"coding": [{"system": FR_CORE_V2_0203, "code": kind.value}]},
        "system": SYSTEMS[kind],
        "value": value,
    }
    if use is not None:
        identifier["use"] = use
    identifier.update(extra)
    return identifier


def _patient(*identifiers: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": list(identifiers)}


def test_fr_core_ins_example_is_refused_naming_the_field_and_key() -> None:
    patient = json.loads((FR_CORE / "Patient-FRCorePatientINSExample.json").read_text("utf-8"))
    ((index, _, kind),) = ins_identifiers(patient)
    assert (index, kind) == (0, Kind.NIR)
    messages = _errors(check_patient_identifiers(patient))
    assert (
        "Patient.identifier[0].value: the key of matricule INS 123456789012244 is 44, expected 12"
        in messages
    )


def test_valid_patient_identifiers_have_no_issue() -> None:
    patient = _patient(
        {"use": "usual", "system": "https://hospital.example/ipp", "value": "IPP-1"},
        _ins("295109912611193"),
        _ins(_with_key("2951099126112"), use="old"),
    )
    assert check_patient_identifiers(patient) == []
    assert [k for _, _, k in ins_identifiers(patient)] == [Kind.NIR, Kind.NIR]
    assert active_ins_values(patient) == {(NIR, "295109912611193")}


def test_nss_is_not_an_ins_even_under_the_nir_oid() -> None:
    nss = {
        "use": "official",
        "type": {"coding": [{"system": V2_0203, "code": "NH"}]},
        "system": NIR,
        "value": "123456789012244",
    }
    assert identifier_kind(nss) is None
    assert ins_identifiers(_patient(nss)) == []
    assert check_patient_identifiers(_patient(nss)) == []


def test_nia_type_under_the_nir_oid_is_refused() -> None:
    wrong = _ins("295109912611193", Kind.NIA, use="temp", system=NIR)
    messages = _errors(check_patient_identifiers(_patient(wrong)))
    assert any("type INS-NIA does not match system" in m and NIA in m for m in messages)


def test_nir_with_use_temp_points_at_the_nia() -> None:
    messages = _errors(check_patient_identifiers(_patient(_ins("295109912611193", use="temp"))))
    assert any("'temp' denotes a NIA" in m for m in messages)


def test_nia_with_use_official_is_refused() -> None:
    nia = _ins("295109912611193", Kind.NIA, use="official")
    messages = _errors(check_patient_identifiers(_patient(nia)))
    assert any("a NIA is temporary (use temp)" in m for m in messages)
    assert check_patient_identifiers(_patient(_ins("295109912611193", Kind.NIA, use="temp"))) == []


def test_missing_use_is_refused() -> None:
    messages = _errors(check_patient_identifiers(_patient(_ins("295109912611193", use=None))))
    assert messages == ["Patient.identifier[0]: an INS-NIR identifier needs use official or old"]


def test_untyped_identifier_under_the_nir_oid_is_taken_as_ins_and_key_checked() -> None:
    untyped = {"use": "official", "system": NIR, "value": "123456789012244"}
    assert identifier_kind(untyped) is Kind.NIR
    issues = check_patient_identifiers(_patient(untyped))
    assert any("NSS" in w for w in _warnings(issues))
    assert any("is 44, expected 12" in e for e in _errors(issues))


def test_two_matricules_in_force_are_refused() -> None:
    patient = _patient(_ins("295109912611193"), _ins("253072B07300470", Kind.NIA, use="temp"))
    messages = _errors(check_patient_identifiers(patient))
    assert any("one matricule INS in force" in m for m in messages)


def test_test_matricule_under_the_test_oid() -> None:
    patient = _patient(_ins("279035121518989", Kind.NIR_TEST))
    assert check_patient_identifiers(patient) == []
    assert active_ins_values(patient) == {(TEST, "279035121518989")}


def test_matricule_is_a_value() -> None:
    assert Matricule("295109912611193") == parse("295109912611193")


@pytest.mark.parametrize(
    ("gender", "birth_date", "fragment"),
    [
        ("male", "1995-10-12", "codes sex F (character 1 = 2) but Patient.gender is male"),
        ("female", "1996-10-12", "codes birth year/month 95/10 but Patient.birthDate is 1996"),
        ("female", "1995-11", "codes birth year/month 95/10"),
    ],
)
def test_matricule_and_traits_disagreeing_is_warned(
    gender: str, birth_date: str, fragment: str
) -> None:
    patient = _patient(_ins("295109912611193")) | {"gender": gender, "birthDate": birth_date}
    issues = check_patient_identifiers(patient)
    assert _errors(issues) == []
    assert any(fragment in w for w in _warnings(issues)), issues


def test_matricule_and_traits_agreeing() -> None:
    patient = _patient(_ins("295109912611193")) | {"gender": "female", "birthDate": "1995-10-12"}
    assert check_patient_identifiers(patient) == []
    unknown_month = _patient(_ins(_with_key("1953099350001")))
    assert check_patient_identifiers(unknown_month | {"birthDate": "1995-07-01"}) == []
