"""INS strict traits: INSi alphabet, extraction from FR Core Patients, change detection."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maison.fhir.errors import Category, FhirError, Issue
from maison.services.ins.traits import (
    BIRTH_LIST_GIVEN_NAME_URL,
    BIRTH_PLACE_URL,
    INSEE_CODE_URL,
    Traits,
    carries_ins,
    check_birth_date,
    check_cog,
    normalise_name,
    strict_traits_changed,
    traits_from_insi,
    traits_from_patient,
)
from support import CORPORA

FR_CORE = CORPORA / "compiled" / "hl7.fhir.fr.core"
TODAY = date(2025, 6, 1)
COMMUNE_CS = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FR_CORE / f"Patient-{name}.json").read_text("utf-8"))
    return data


def _errors(issues: tuple[Issue, ...] | list[Issue]) -> list[str]:
    return [i.diagnostics for i in issues if i.severity == "error"]


def _complete(patient: dict[str, Any], given_list: str, cog: str) -> dict[str, Any]:
    """Put back what SUSHI dropped from the compiled examples (see the compiled README)."""
    patient = copy.deepcopy(patient)
    official = next(n for n in patient["name"] if n["use"] == "official")
    official.setdefault("extension", []).append(
        {"url": BIRTH_LIST_GIVEN_NAME_URL, "valueString": given_list}
    )
    place = next(e for e in patient["extension"] if e["url"] == BIRTH_PLACE_URL)
    place["valueAddress"].setdefault("extension", []).append(
        {"url": INSEE_CODE_URL, "valueCoding": {"system": COMMUNE_CS, "code": cog}}
    )
    return patient


# --- normalise_name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected", "note"),
    [
        ("DURAND", "DURAND", None),
        ("Durand", "DURAND", "upper-cased"),
        ("Cécile", "CECILE", "diacritics removed"),
        ("Hélène-Françoise", "HELENE-FRANCOISE", "diacritics removed"),
        ("  de  la   Fontaine ", "DE LA FONTAINE", "spaces trimmed and collapsed"),
        ("Lætitia", "LAETITIA", "æ→AE"),
        ("Œdipe", "OEDIPE", "Œ→OE"),
        ("Strauß", "STRAUSS", "ß→SS"),
        ("Łukasz", "LUKASZ", "Ł→L"),
        ("D\u2019Artagnan", "D'ARTAGNAN", "apostrophe"),
        ("Jean\u2013Pierre", "JEAN-PIERRE", "dashes"),
        ("DUPONT--DURAND", "DUPONT--DURAND", None),
        ("Zoë\u00a0Ruth", "ZOE RUTH", "diacritics removed"),
    ],
)
def test_normalise_name(raw: str, expected: str, note: str | None) -> None:
    normalised, notes = normalise_name(raw)
    assert normalised == expected
    if note is None:
        assert notes == []
    else:
        assert any(note in n for n in notes), notes


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("Jean2", "'2'"), ("St. John", "'.'"), ("Durand, Pierre", "','"), ("李", "'李'")],
)
def test_normalise_name_refuses_other_characters(raw: str, shown: str) -> None:
    with pytest.raises(FhirError) as err:
        normalise_name(raw, "Patient.name[0].family")
    assert err.value.category is Category.UNPROCESSABLE
    (issue,) = err.value.issues
    assert issue.expression == ("Patient.name[0].family",)
    assert "INSi alphabet does not allow" in issue.diagnostics and shown in issue.diagnostics


@pytest.mark.parametrize("raw", ["", "   ", 42])
def test_normalise_name_refuses_empty_and_non_strings(raw: Any) -> None:
    with pytest.raises(FhirError):
        normalise_name(raw)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzéèêëàâäîïôöùûüçœæÉÈÀÇŒÆ -'\u2019", min_size=1))
@settings(max_examples=300, deadline=None)
def test_normalised_names_are_insi_and_stable(raw: str) -> None:
    try:
        normalised, _ = normalise_name(raw)
    except FhirError:
        assert not raw.strip()
        return
    assert re.fullmatch(r"[A-Z' -]+", normalised)
    assert "  " not in normalised and normalised == normalised.strip()
    assert normalise_name(normalised) == (normalised, [])


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_normalise_name_only_raises_fhir_errors(raw: str) -> None:
    try:
        normalised, _ = normalise_name(raw)
    except FhirError as err:
        assert err.category is Category.UNPROCESSABLE
    else:
        assert re.fullmatch(r"[A-Z' -]+", normalised)


@given(st.text(max_size=12))
@settings(max_examples=300, deadline=None)
def test_birth_date_and_cog_checks_never_crash(raw: str) -> None:
    check_birth_date(raw, TODAY)
    check_cog(raw)


# --- FR Core examples -----------------------------------------------------------------------


def test_compiled_ins_example_misses_list_and_cog() -> None:
    traits = traits_from_patient(_load("FRCorePatientINSExample"), TODAY)
    assert (traits.birth_name, traits.first_given, traits.birth_date, traits.sex) == (
        "DURAND",
        "PIERRE",
        "1974-12-25",
        "M",
    )
    messages = _errors(traits.issues)
    assert any(BIRTH_LIST_GIVEN_NAME_URL in m and m.startswith("Patient.name[0]") for m in messages)
    assert any(INSEE_CODE_URL in m for m in messages)
    assert not traits.complete


def test_completed_ins_example_has_all_traits() -> None:
    patient = _complete(_load("FRCorePatientINSExample"), "Pierre Yves", "01006")
    traits = traits_from_patient(patient, TODAY)
    assert traits == Traits("DURAND", ("PIERRE", "YVES"), "PIERRE", "1974-12-25", "M", "01006")
    assert traits.issues == () and traits.complete
    assert carries_ins(patient)


def test_completed_rniv_example_has_all_traits() -> None:
    patient = _complete(_load("FRCorePatientINSExampleRNIV"), "Jeanne Marie Cécile", "88154")
    traits = traits_from_patient(patient, TODAY)
    assert traits.given_names == ("JEANNE", "MARIE", "CECILE")
    assert (traits.birth_name, traits.sex, traits.birth_place) == ("DARK", "F", "88154")
    assert traits.issues == ()
    assert carries_ins(patient)  # claims fr-core-patient-ins, though it has no INS identifier


# --- problems -------------------------------------------------------------------------------


@pytest.fixture
def patient() -> dict[str, Any]:
    return _complete(_load("FRCorePatientINSExample"), "Pierre Yves", "01006")


def _messages(patient: dict[str, Any]) -> list[str]:
    return _errors(traits_from_patient(patient, TODAY).issues)


@pytest.mark.parametrize(
    ("birth_date", "fragment"),
    [
        ("2023-02-30", "not a calendar date"),
        ("2025-06-02", "in the future"),
        ("2026", "in the future"),
        ("1974-00-00", "no day or month 00"),
        ("1974-12-00", "no day or month 00"),
        ("25/12/1974", "not a date"),
        ("1974-13", "no month 13"),
    ],
)
def test_bad_birth_dates(patient: dict[str, Any], birth_date: str, fragment: str) -> None:
    patient["birthDate"] = birth_date
    assert any(fragment in m for m in _messages(patient)), _messages(patient)


@pytest.mark.parametrize("birth_date", ["1974", "1974-12"])
def test_partial_birth_dates_are_warned(birth_date: str) -> None:
    (issue,) = check_birth_date(birth_date, TODAY)
    assert issue.severity == "warning" and "full date" in issue.diagnostics


@pytest.mark.parametrize("gender", ["unknown", "other"])
def test_unknown_gender_cannot_carry_an_ins(patient: dict[str, Any], gender: str) -> None:
    patient["gender"] = gender
    assert any("cannot carry an INS" in m for m in _messages(patient))
    assert traits_from_patient(patient, TODAY).sex is None


@pytest.mark.parametrize("cog", ["1006", "010060", "2C004", "00123", "96001", "AB123", 1006])
def test_malformed_cog(cog: Any) -> None:
    assert _errors(check_cog(cog, "x"))


@pytest.mark.parametrize("cog", ["01006", "2A004", "2B033", "20004", "97209", "98735", "99350"])
def test_valid_cog(cog: str) -> None:
    assert check_cog(cog) == []


def test_malformed_cog_in_patient(patient: dict[str, Any]) -> None:
    place = next(e for e in patient["extension"] if e["url"] == BIRTH_PLACE_URL)
    place["valueAddress"]["extension"][0]["valueCoding"]["code"] = "2C004"
    (message,) = _messages(patient)
    assert message.startswith("Patient.extension[1].valueAddress.extension[0].valueCoding.code")


def test_first_name_must_be_first_of_the_list(patient: dict[str, Any]) -> None:
    patient["name"][0]["given"] = ["Yves"]
    assert any("is not the first of the birth first names" in m for m in _messages(patient))


@pytest.mark.parametrize("first", ["Anne", "Anne Sophie", "Anne-Sophie"])
def test_compound_first_names(patient: dict[str, Any], first: str) -> None:
    patient["name"][0]["given"] = [first]
    patient["name"][0]["extension"][0]["valueString"] = "Anne-Sophie Marie"
    assert _messages(patient) == []


def test_empty_list_of_first_names(patient: dict[str, Any]) -> None:
    patient["name"][0]["extension"][0]["valueString"] = "  "
    assert any("list of birth first names is empty" in m for m in _messages(patient))


def test_several_given_and_official_names(patient: dict[str, Any]) -> None:
    patient["name"][0]["given"] = ["Pierre", "Yves"]
    patient["name"].append({"use": "official", "family": "Martin", "given": ["Paul"]})
    messages = _messages(patient)
    assert any("2 values; FR Core INS keeps exactly one" in m for m in messages)
    assert any("2 names with use 'official'" in m for m in messages)


def test_missing_everything() -> None:
    traits = traits_from_patient({"resourceType": "Patient"}, TODAY)
    assert traits == Traits()
    assert len(_errors(traits.issues)) == 4  # official name, birthDate, gender, birth place


def test_name_with_digits_is_reported_but_kept(patient: dict[str, Any]) -> None:
    patient["name"][0]["family"] = "Durand2"
    traits = traits_from_patient(patient, TODAY)
    assert traits.birth_name == "DURAND2"
    assert any("INSi alphabet" in m for m in _errors(traits.issues))


# --- changes --------------------------------------------------------------------------------


def test_strict_traits_changed_after_normalisation(patient: dict[str, Any]) -> None:
    old = traits_from_patient(patient, TODAY)
    accents = copy.deepcopy(patient)
    accents["name"][0]["family"] = "durand "
    accents["name"][0]["extension"][0]["valueString"] = "PIERRE  YVES"
    assert strict_traits_changed(old, traits_from_patient(accents, TODAY)) == []
    changed = copy.deepcopy(patient)
    changed["name"][0]["family"] = "Durant"
    changed["birthDate"] = "1974-12-26"
    changed["gender"] = "female"
    changed["extension"][1]["valueAddress"]["extension"][0]["valueCoding"]["code"] = "01007"
    assert strict_traits_changed(old, traits_from_patient(changed, TODAY)) == [
        "birthName",
        "birthDate",
        "sex",
        "birthPlace",
    ]


def test_non_strict_changes_are_not_reported(patient: dict[str, Any]) -> None:
    old = traits_from_patient(patient, TODAY)
    usual = copy.deepcopy(patient)
    usual["name"].append({"use": "usual", "family": "Martin", "given": ["Pierrot"]})
    usual["telecom"] = []
    assert strict_traits_changed(old, traits_from_patient(usual, TODAY)) == []


def test_traits_from_insi() -> None:
    traits = traits_from_insi("DURAND", "PIERRE YVES", "M", "1974-12-25", "01006")
    assert traits == Traits("DURAND", ("PIERRE", "YVES"), "PIERRE", "1974-12-25", "M", "01006")
    with pytest.raises(FhirError):
        traits_from_insi("DURAND", "PIERRE", "X", "1974-12-25", None)
    with pytest.raises(FhirError):
        traits_from_insi("DURAND", "PIERRE", "M", "1974-02-30", None)
