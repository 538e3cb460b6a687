"""INSi-compatible téléservice: $ins-search CR codes, $ins-verify verdicts, bad input, output."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maison.fhir.definitions import Definitions, load_definitions
from maison.fhir.errors import Category, FhirError, Issue
from maison.fhir.validation import Validator
from maison.services.ins import insi
from maison.services.ins.insi import (
    CR_FOUND,
    CR_NONE,
    CR_SEVERAL,
    MATCH,
    MISMATCH,
    OPERATION_DEFINITIONS,
    Difference,
    InsiResponse,
    evidence,
    patient_of,
    search,
    search_request,
    to_parameters,
    verify,
    verify_request,
)
from maison.services.ins.matricule import compute_key
from maison.services.ins.reference import (
    BIRTH_PLACE,
    FR_CORE_PATIENT_INS,
    OID_NIA,
    OID_NIR,
    OID_TEST,
)
from maison.services.ins.reliability import check_patient_write
from support import CORPORA

FR_CORE = CORPORA / "compiled" / "hl7.fhir.fr.core"
TODAY = date(2025, 6, 1)


def key(first13: str) -> str:
    return first13 + compute_key(first13)


@dataclass(frozen=True)
class Rec:
    """The store's IdentityRecord, as a plain in-memory fake."""

    matricule: str
    oid: str
    birth_name: str
    given_names: tuple[str, ...]
    sex: str
    birth_date: str
    birth_place: str
    history: tuple[str, ...] = ()


DUPONT = Rec(
    key("1850375056123"), OID_NIR, "DUPONT", ("JEAN", "PIERRE"), "M", "1985-03-12", "75056"
)
# twins: same birth name, date and sex (and place); first names tell them apart
MARTIN_1 = Rec(
    key("2900769123045"), OID_NIR, "MARTIN", ("MARIE", "CLAIRE"), "F", "1990-07-01", "69123"
)
MARTIN_2 = Rec(
    key("2900769123046"), OID_NIR, "MARTIN", ("ANNE", "MARIE"), "F", "1990-07-01", "69123"
)
# homonyms with the same first name, born elsewhere: the COG tells them apart
DURAND_1 = Rec(key("1700113055201"), OID_NIR, "DURAND", ("LUC",), "M", "1970-01-15", "13055")
DURAND_2 = Rec(key("1700133063202"), OID_NIR, "DURAND", ("LUC", "PAUL"), "M", "1970-01-15", "33063")
# a composed first name, then a second one
LEROY = Rec(
    key("1881120004017"), OID_NIR, "LEROY", ("JEAN-PIERRE", "LOUIS"), "M", "1988-11-02", "2A004"
)
# partial birth dates (born abroad; unknown month: NIR month 20..42)
BENALI = Rec(key("2602099350045"), OID_NIR, "BENALI", ("FATIMA",), "F", "1960", "99350")
KONE = Rec(key("1750499335011"), OID_NIR, "KONE", ("MOUSSA",), "M", "1975-04", "99335")
# a NIR that replaced a NIA (INSHISTO)
GARCIA_NIA = key("7800599134012")
GARCIA = Rec(
    key("1800599134012"), OID_NIR, "GARCIA", ("CARLOS",), "M", "1980-05-20", "99134", (GARCIA_NIA,)
)
# accents in the civil status, stored in the INSi alphabet
LEFEVRE = Rec(
    key("2920259350077"), OID_NIR, "LEFEVRE", ("HELENE", "ZOE"), "F", "1992-02-29", "59350"
)
DALMEIDA = Rec(key("1650275056321"), OID_NIR, "D'ALMEIDA", ("JOAO",), "M", "1965-02-10", "75056")
# a NIA in force, and an identity of the test authority without a known birthplace
DIALLO = Rec(key("8011299216002"), OID_NIA, "DIALLO", ("AISSATA",), "F", "2001-12-05", "99216")
NGUYEN = Rec(key("2010975056301"), OID_TEST, "NGUYEN", ("THI", "LAN"), "F", "2001-09-09", "")

BASE = (
    DUPONT,
    MARTIN_1,
    MARTIN_2,
    DURAND_1,
    DURAND_2,
    LEROY,
    BENALI,
    KONE,
    GARCIA,
    LEFEVRE,
    DALMEIDA,
    DIALLO,
    NGUYEN,
)


def by_traits(birth_name: str, birth_date: str, sex: str) -> list[Rec]:
    return [r for r in BASE if (r.birth_name, r.birth_date, r.sex) == (birth_name, birth_date, sex)]


def by_matricule(matricule: str) -> Rec | None:
    return next((r for r in BASE if matricule == r.matricule or matricule in r.history), None)


def parameters(**values: Any) -> dict[str, Any]:
    """A Parameters body with each value in the value[x] the OperationDefinition declares."""
    kinds = {"Sexe": "valueCode", "DateNaissance": "valueDate", "LieuNaissance": "valueCode"}
    entries = []
    for name, value in values.items():
        for one in value if isinstance(value, list) else [value]:
            entries.append({"name": name, kinds.get(name, "valueString"): one})
    return {"resourceType": "Parameters", "parameter": entries}


def traits_of(rec: Rec, first: str | None = None, place: bool = False) -> dict[str, str]:
    out = {
        "NomNaissance": rec.birth_name,
        "Prenom": first or rec.given_names[0],
        "Sexe": rec.sex,
        "DateNaissance": rec.birth_date,
    }
    if place:
        out["LieuNaissance"] = rec.birth_place
    return out


def run_search(**values: str | list[str]) -> InsiResponse:
    return search(search_request(parameters(**values), TODAY), by_traits)


def run_verify(**values: str | list[str]) -> InsiResponse:
    return verify(verify_request(parameters(**values), TODAY), by_matricule)


def refused(parse: Any, source: Any) -> FhirError:
    with pytest.raises(FhirError) as info:
        parse(source, TODAY)
    return info.value


def warnings(issues: Sequence[Issue]) -> list[str]:
    return [i.diagnostics for i in issues if i.severity == "warning"]


# --- $ins-search: CR codes ------------------------------------------------------------------

SEARCH_CASES: list[tuple[str, dict[str, str], str, Rec | None]] = [
    ("one identity", traits_of(DUPONT), CR_FOUND, DUPONT),
    ("one identity, with its COG", traits_of(DUPONT, place=True), CR_FOUND, DUPONT),
    ("second first name of the list", traits_of(DUPONT, "PIERRE"), CR_FOUND, DUPONT),
    ("first name not in the list", traits_of(DUPONT, "PAUL"), CR_NONE, None),
    ("other birth name", {**traits_of(DUPONT), "NomNaissance": "DUPOND"}, CR_NONE, None),
    ("other sex", {**traits_of(DUPONT), "Sexe": "F"}, CR_NONE, None),
    ("other birth date", {**traits_of(DUPONT), "DateNaissance": "1985-03-13"}, CR_NONE, None),
    ("other COG", {**traits_of(DUPONT), "LieuNaissance": "69123"}, CR_NONE, None),
    ("twins: shared first name", traits_of(MARTIN_1, "MARIE"), CR_SEVERAL, None),
    ("twins: first name of one", traits_of(MARTIN_1, "CLAIRE"), CR_FOUND, MARTIN_1),
    ("twins: first name of the other", traits_of(MARTIN_2, "ANNE"), CR_FOUND, MARTIN_2),
    ("twins: same COG does not help", traits_of(MARTIN_1, "MARIE", True), CR_SEVERAL, None),
    ("homonyms: same first name", traits_of(DURAND_1, "LUC"), CR_SEVERAL, None),
    ("homonyms: COG of one", traits_of(DURAND_1, "LUC", True), CR_FOUND, DURAND_1),
    ("homonyms: COG of the other", traits_of(DURAND_2, "LUC", True), CR_FOUND, DURAND_2),
    ("homonyms: second first name", traits_of(DURAND_2, "PAUL"), CR_FOUND, DURAND_2),
    (
        "homonyms: COG of neither",
        {**traits_of(DURAND_1, "LUC"), "LieuNaissance": "59350"},
        CR_NONE,
        None,
    ),
    ("composed first name as a whole", traits_of(LEROY, "JEAN-PIERRE"), CR_FOUND, LEROY),
    ("part of a composed first name", traits_of(LEROY, "JEAN"), CR_NONE, None),
    ("part of a composed first name (2)", traits_of(LEROY, "PIERRE"), CR_NONE, None),
    ("first name after a composed one", traits_of(LEROY, "LOUIS"), CR_FOUND, LEROY),
    ("partial date YYYY", traits_of(BENALI), CR_FOUND, BENALI),
    (
        "partial date, INSi 00",
        {**traits_of(BENALI), "DateNaissance": "1960-00-00"},
        CR_FOUND,
        BENALI,
    ),
    (
        "partial date vs full date",
        {**traits_of(BENALI), "DateNaissance": "1960-01-01"},
        CR_NONE,
        None,
    ),
    ("partial date YYYY-MM", traits_of(KONE), CR_FOUND, KONE),
    (
        "partial date YYYY-MM, INSi 00",
        {**traits_of(KONE), "DateNaissance": "1975-04-00"},
        CR_FOUND,
        KONE,
    ),
    (
        "accents and lower case",
        {**traits_of(LEFEVRE), "NomNaissance": "Lefèvre", "Prenom": "Hélène"},
        CR_FOUND,
        LEFEVRE,
    ),
    (
        "typographic apostrophe",
        {**traits_of(DALMEIDA), "NomNaissance": "d\u2019Almeida", "Prenom": "João"},
        CR_FOUND,
        DALMEIDA,
    ),
    ("a NIA", traits_of(DIALLO), CR_FOUND, DIALLO),
    ("a historical INS does not hide the active one", traits_of(GARCIA), CR_FOUND, GARCIA),
]


@pytest.mark.parametrize(
    ("values", "cr", "found"), [c[1:] for c in SEARCH_CASES], ids=[c[0] for c in SEARCH_CASES]
)
def test_search_return_codes(values: dict[str, str], cr: str, found: Rec | None) -> None:
    response = run_search(**values)
    assert response.cr == cr
    assert response.identity == found
    assert response.verdict is None
    params = to_parameters(response)
    names = [p["name"] for p in params["parameter"]]
    assert ("INDIVIDU" in names) == (found is not None) == ("patient" in names)


def test_search_libelles_follow_the_real_service() -> None:
    assert run_search(**traits_of(DUPONT)).libelle == "OK"
    none = run_search(**traits_of(DUPONT, "PAUL")).libelle
    assert none.startswith("Aucune identité trouvée")
    several = run_search(**traits_of(DURAND_1, "LUC")).libelle
    assert several.startswith("Plusieurs identités trouvées")
    # other first names first, then the birthplace COG
    assert several.index("prénoms") < several.index("COG")
    with_cog = run_search(**traits_of(MARTIN_1, "MARIE", True)).libelle
    assert with_cog.startswith("Plusieurs identités trouvées") and "prénom" in with_cog


def test_search_from_a_get_query_is_the_same() -> None:
    query = [(k, v) for k, v in traits_of(DURAND_2, "LUC", True).items()] + [("_format", "json")]
    request = search_request(query, TODAY)
    assert request == search_request(parameters(**traits_of(DURAND_2, "LUC", True)), TODAY)
    assert search(request, by_traits).identity == DURAND_2


def test_search_passes_the_normalised_traits_to_the_lookup() -> None:
    calls: list[tuple[str, str, str]] = []

    def spy(name: str, born: str, sex: str) -> list[Rec]:
        calls.append((name, born, sex))
        return [KONE, KONE]  # a store returning duplicates is not "several identities"

    request = search_request(
        parameters(NomNaissance=" kone ", Prenom="moussa", Sexe="m", DateNaissance="1975-04-00"),
        TODAY,
    )
    response = search(request, spy)
    assert calls == [("KONE", "1975-04", "M")]
    assert response.cr == CR_FOUND


# --- $ins-verify --------------------------------------------------------------------------


def verify_values(rec: Rec, **changes: str) -> dict[str, str]:
    values = {"INS": rec.matricule, **traits_of(rec, place=True)}
    values.update(changes)
    return {k: v for k, v in values.items() if v != ""}


def test_verify_match() -> None:
    response = run_verify(**verify_values(DUPONT))
    assert (response.cr, response.verdict, response.differences) == (CR_FOUND, MATCH, ())
    assert response.identity == DUPONT and response.historical is None
    assert response.libelle == "OK"


@pytest.mark.parametrize(
    "values",
    [
        verify_values(DUPONT, Prenom="PIERRE"),  # any birth first name
        verify_values(DUPONT, LieuNaissance=""),  # COG not sent: not compared
        verify_values(DUPONT, Prenom="", ListePrenom="JEAN PIERRE"),
        verify_values(
            DUPONT, INS="", NumIdentifiant=DUPONT.matricule[:13], Cle=DUPONT.matricule[13:]
        ),
        verify_values(DUPONT, OID=OID_NIR),
        verify_values(DUPONT, OID=f"urn:oid:{OID_NIR}"),
        verify_values(DIALLO),  # default OID of a NIA
        verify_values(DIALLO, OID=OID_NIA),
        verify_values(NGUYEN, LieuNaissance="", OID=OID_TEST),
        verify_values(LEROY, Prenom="JEAN-PIERRE"),
        verify_values(KONE, DateNaissance="1975-04-00"),
        verify_values(LEFEVRE, NomNaissance="Lefèvre", Prenom="Zoé", Sexe="f"),
    ],
    ids=[
        "second-first-name",
        "no-cog",
        "liste-prenom",
        "num-identifiant-cle",
        "oid",
        "urn-oid",
        "nia-default-oid",
        "nia-oid",
        "test-oid",
        "composed",
        "partial-date",
        "normalised",
    ],
)
def test_verify_matches(values: dict[str, str]) -> None:
    response = run_verify(**values)
    assert (response.cr, response.verdict, response.differences) == (CR_FOUND, MATCH, ())


MISMATCHES: list[tuple[str, dict[str, str], Difference]] = [
    ("NomNaissance", {"NomNaissance": "DUPOND"}, Difference("NomNaissance", "DUPOND", "DUPONT")),
    ("Prenom", {"Prenom": "PAUL"}, Difference("Prenom", "PAUL", "JEAN PIERRE")),
    (
        "ListePrenom",
        {"Prenom": "", "ListePrenom": "PIERRE JEAN"},
        Difference("ListePrenom", "PIERRE JEAN", "JEAN PIERRE"),
    ),
    (
        "ListePrenom-short",
        {"Prenom": "", "ListePrenom": "JEAN"},
        Difference("ListePrenom", "JEAN", "JEAN PIERRE"),
    ),
    ("Sexe", {"Sexe": "F"}, Difference("Sexe", "F", "M")),
    (
        "DateNaissance",
        {"DateNaissance": "1985-03-21"},
        Difference("DateNaissance", "1985-03-21", "1985-03-12"),
    ),
    (
        "DateNaissance-partial",
        {"DateNaissance": "1985-03"},
        Difference("DateNaissance", "1985-03", "1985-03-12"),
    ),
    ("LieuNaissance", {"LieuNaissance": "75112"}, Difference("LieuNaissance", "75112", "75056")),
    ("OID", {"OID": OID_TEST}, Difference("OID", OID_TEST, OID_NIR)),
]


@pytest.mark.parametrize(
    ("changes", "difference"), [m[1:] for m in MISMATCHES], ids=[m[0] for m in MISMATCHES]
)
def test_verify_each_trait_mismatching(changes: dict[str, str], difference: Difference) -> None:
    response = run_verify(**verify_values(DUPONT, **changes))
    assert (response.cr, response.verdict) == (CR_FOUND, MISMATCH)
    assert response.differences == (difference,)
    assert response.identity == DUPONT  # the reference identity, to correct the stored one
    assert difference.trait in response.libelle
    params = to_parameters(response)
    parts = [p["part"] for p in params["parameter"] if p["name"] == "difference"]
    assert parts == [
        [
            {"name": "trait", "valueCode": difference.trait},
            {"name": "sent", "valueString": difference.sent},
            {"name": "reference", "valueString": difference.reference},
        ]
    ]
    assert {"name": "verdict", "valueCode": "mismatch"} in params["parameter"]


def test_verify_several_mismatches_and_an_unknown_reference_cog() -> None:
    response = run_verify(**verify_values(NGUYEN, Sexe="M", LieuNaissance="75056"))
    assert [d.trait for d in response.differences] == ["Sexe", "LieuNaissance"]
    parts = [p["part"] for p in to_parameters(response)["parameter"] if p["name"] == "difference"]
    assert [x["name"] for x in parts[-1]] == ["trait", "sent"]  # no reference COG to show


def test_verify_historical_matricule_returns_the_active_ins() -> None:
    response = run_verify(**verify_values(GARCIA, INS=GARCIA_NIA))
    assert (response.cr, response.verdict) == (CR_FOUND, MATCH)
    assert response.historical == GARCIA_NIA and response.identity == GARCIA
    assert "INS historique" in response.libelle
    assert any(
        GARCIA_NIA in w and GARCIA.matricule in w and "historical" in w
        for w in warnings(response.issues)
    )
    params = to_parameters(response)
    assert {"name": "historical", "valueBoolean": True} in params["parameter"]
    individu = read_back(params)["INDIVIDU"]
    assert individu["INSACTIF"] == {
        "NumIdentifiant": GARCIA.matricule[:13],
        "Cle": GARCIA.matricule[13:],
        "OID": f"urn:oid:{OID_NIR}",
    }
    assert individu["INSHISTO"] == [
        {"NumIdentifiant": GARCIA_NIA[:13], "Cle": GARCIA_NIA[13:], "OID": f"urn:oid:{OID_NIA}"}
    ]


def test_verify_historical_nia_with_its_own_oid_matches() -> None:
    response = run_verify(**verify_values(GARCIA, INS=GARCIA_NIA, OID=OID_NIA))
    assert (response.verdict, response.differences) == (MATCH, ())


def test_verify_unknown_matricule() -> None:
    unknown = key("1850375056999")
    response = run_verify(**verify_values(DUPONT, INS=unknown))
    assert (response.cr, response.identity, response.verdict) == (CR_NONE, None, None)
    assert response.libelle.startswith("Aucune identité trouvée")
    assert [p["name"] for p in to_parameters(response)["parameter"]] == ["CodeCR", "LibelleCR"]


def test_verify_ignores_a_store_answer_for_another_matricule() -> None:
    request = verify_request(parameters(**verify_values(DUPONT)), TODAY)
    assert verify(request, lambda m: MARTIN_1).cr == CR_NONE


# --- bad input --------------------------------------------------------------------------------

S = insi.search_request
V = insi.verify_request
SEARCH_OK = traits_of(DUPONT)
VERIFY_OK = verify_values(DUPONT)

BAD: list[tuple[str, Any, Any, Category, str, str]] = [
    # (id, parser, source, category, parameter named, words of the message)
    ("not-parameters", S, {"resourceType": "Patient"}, Category.INVALID, "Parameters", "Patient"),
    (
        "parameter-not-list",
        S,
        {"resourceType": "Parameters", "parameter": {}},
        Category.INVALID,
        "Parameters.parameter",
        "list",
    ),
    ("not-a-resource", S, "NomNaissance=X", Category.INVALID, "Parameters", "query"),
    (
        "entry-not-object",
        S,
        {"resourceType": "Parameters", "parameter": ["x"]},
        Category.INVALID,
        "parameter[0]",
        "object",
    ),
    (
        "entry-no-name",
        S,
        {"resourceType": "Parameters", "parameter": [{"valueString": "X"}]},
        Category.INVALID,
        "parameter[0]",
        "no name",
    ),
    (
        "missing-nom",
        S,
        parameters(**{**SEARCH_OK, "NomNaissance": []}),
        Category.INVALID,
        "NomNaissance",
        "missing",
    ),
    (
        "missing-prenom",
        S,
        parameters(**{**SEARCH_OK, "Prenom": []}),
        Category.INVALID,
        "Prenom",
        "missing",
    ),
    (
        "missing-sexe",
        S,
        parameters(**{**SEARCH_OK, "Sexe": []}),
        Category.INVALID,
        "Sexe",
        "missing",
    ),
    (
        "missing-date",
        S,
        parameters(**{**SEARCH_OK, "DateNaissance": []}),
        Category.INVALID,
        "DateNaissance",
        "missing",
    ),
    (
        "unknown-parameter",
        S,
        parameters(**SEARCH_OK, Prénom="X"),
        Category.INVALID,
        "Prénom",
        "unknown parameter",
    ),
    (
        "repeated-nom",
        S,
        parameters(**{**SEARCH_OK, "NomNaissance": ["A", "B"]}),
        Category.INVALID,
        "NomNaissance",
        "2 times",
    ),
    (
        "several-prenom",
        S,
        parameters(**{**SEARCH_OK, "Prenom": ["JEAN", "PIERRE"]}),
        Category.INVALID,
        "Prenom",
        "ONE birth first name per call",
    ),
    (
        "several-prenom-get",
        S,
        [*SEARCH_OK.items(), ("Prenom", "PIERRE")],
        Category.INVALID,
        "Prenom",
        "once per birth first name",
    ),
    (
        "prenom-with-space",
        S,
        parameters(**{**SEARCH_OK, "Prenom": "Jean Pierre"}),
        Category.UNPROCESSABLE,
        "Prenom",
        "ONE birth first name per call",
    ),
    (
        "prenom-with-comma",
        S,
        parameters(**{**SEARCH_OK, "Prenom": "JEAN,PIERRE"}),
        Category.UNPROCESSABLE,
        "Prenom",
        "several first names",
    ),
    (
        "value-not-string",
        S,
        {"resourceType": "Parameters", "parameter": [{"name": "Sexe", "valueInteger": 1}]},
        Category.INVALID,
        "Sexe",
        "valueCode",
    ),
    (
        "no-value",
        S,
        {"resourceType": "Parameters", "parameter": [{"name": "Sexe"}]},
        Category.INVALID,
        "Sexe",
        "no value",
    ),
    (
        "parts-not-value",
        S,
        {"resourceType": "Parameters", "parameter": [{"name": "Sexe", "part": []}]},
        Category.INVALID,
        "Sexe",
        "not parts",
    ),
    (
        "impossible-date",
        S,
        parameters(**{**SEARCH_OK, "DateNaissance": "2023-02-30"}),
        Category.UNPROCESSABLE,
        "DateNaissance",
        "not a calendar date",
    ),
    (
        "month-13",
        S,
        parameters(**{**SEARCH_OK, "DateNaissance": "2023-13-01"}),
        Category.UNPROCESSABLE,
        "DateNaissance",
        "no month 13",
    ),
    (
        "french-date",
        S,
        parameters(**{**SEARCH_OK, "DateNaissance": "12/03/1985"}),
        Category.UNPROCESSABLE,
        "DateNaissance",
        "did you mean 1985-03-12",
    ),
    (
        "future-date",
        S,
        parameters(**{**SEARCH_OK, "DateNaissance": "2030-01-01"}),
        Category.UNPROCESSABLE,
        "DateNaissance",
        "future",
    ),
    (
        "day-without-month",
        S,
        parameters(**{**SEARCH_OK, "DateNaissance": "1960-00-12"}),
        Category.UNPROCESSABLE,
        "DateNaissance",
        "month 00",
    ),
    (
        "digits-in-name",
        S,
        parameters(**{**SEARCH_OK, "NomNaissance": "DUPONT2"}),
        Category.UNPROCESSABLE,
        "NomNaissance",
        "'2'",
    ),
    (
        "dot-in-first-name",
        S,
        parameters(**{**SEARCH_OK, "Prenom": "J."}),
        Category.UNPROCESSABLE,
        "Prenom",
        "'.'",
    ),
    (
        "no-letter",
        S,
        parameters(**{**SEARCH_OK, "NomNaissance": "--"}),
        Category.UNPROCESSABLE,
        "NomNaissance",
        "no letter",
    ),
    (
        "empty-nom",
        S,
        parameters(**{**SEARCH_OK, "NomNaissance": "  "}),
        Category.UNPROCESSABLE,
        "NomNaissance",
        "empty",
    ),
    (
        "empty-get",
        S,
        [*{**SEARCH_OK, "Prenom": ""}.items()],
        Category.UNPROCESSABLE,
        "Prenom",
        "empty",
    ),
    (
        "empty-cog",
        S,
        parameters(**SEARCH_OK, LieuNaissance=""),
        Category.UNPROCESSABLE,
        "LieuNaissance",
        "empty",
    ),
    (
        "sexe-x",
        S,
        parameters(**{**SEARCH_OK, "Sexe": "X"}),
        Category.UNPROCESSABLE,
        "Sexe",
        "M or F",
    ),
    (
        "sexe-unknown",
        S,
        parameters(**{**SEARCH_OK, "Sexe": "U"}),
        Category.UNPROCESSABLE,
        "Sexe",
        "M (masculin) or F (féminin)",
    ),
    (
        "sexe-fhir",
        S,
        parameters(**{**SEARCH_OK, "Sexe": "male"}),
        Category.UNPROCESSABLE,
        "Sexe",
        "male is M",
    ),
    (
        "cog-short",
        S,
        parameters(**SEARCH_OK, LieuNaissance="7505"),
        Category.UNPROCESSABLE,
        "LieuNaissance",
        "not a COG",
    ),
    (
        "cog-00",
        S,
        parameters(**SEARCH_OK, LieuNaissance="00123"),
        Category.UNPROCESSABLE,
        "LieuNaissance",
        "not a COG",
    ),
    (
        "cog-letters",
        S,
        parameters(**SEARCH_OK, LieuNaissance="PARIS"),
        Category.UNPROCESSABLE,
        "LieuNaissance",
        "not a COG",
    ),
    # $ins-verify
    (
        "wrong-key",
        V,
        parameters(**{**VERIFY_OK, "INS": DUPONT.matricule[:13] + "00"}),
        Category.UNPROCESSABLE,
        "INS",
        f"expected {DUPONT.matricule[13:]}",
    ),
    (
        "wrong-key-split",
        V,
        parameters(
            **{
                **verify_values(DUPONT, INS=""),
                "NumIdentifiant": DUPONT.matricule[:13],
                "Cle": "01",
            }
        ),
        Category.UNPROCESSABLE,
        "Cle",
        f"expected {DUPONT.matricule[13:]}",
    ),
    (
        "thirteen-characters",
        V,
        parameters(**{**VERIFY_OK, "INS": DUPONT.matricule[:13]}),
        Category.UNPROCESSABLE,
        "INS",
        f"it would be {DUPONT.matricule}",
    ),
    (
        "num-identifiant-short",
        V,
        parameters(**{**verify_values(DUPONT, INS=""), "NumIdentifiant": "123", "Cle": "01"}),
        Category.UNPROCESSABLE,
        "NumIdentifiant",
        "13 first characters",
    ),
    (
        "cle-alone",
        V,
        parameters(**{**verify_values(DUPONT, INS=""), "Cle": "01"}),
        Category.INVALID,
        "NumIdentifiant",
        "missing",
    ),
    (
        "ins-and-split",
        V,
        parameters(**VERIFY_OK, NumIdentifiant=DUPONT.matricule[:13], Cle="01"),
        Category.INVALID,
        "INS",
        "not both",
    ),
    (
        "missing-ins",
        V,
        parameters(**verify_values(DUPONT, INS="")),
        Category.INVALID,
        "INS",
        "missing",
    ),
    (
        "nia-with-nir-oid",
        V,
        parameters(**verify_values(DIALLO, OID=OID_NIR)),
        Category.UNPROCESSABLE,
        "OID",
        "NIA",
    ),
    (
        "nir-with-nia-oid",
        V,
        parameters(**verify_values(DUPONT, OID=OID_NIA)),
        Category.UNPROCESSABLE,
        "OID",
        "NIR (definitive number",
    ),
    (
        "unknown-oid",
        V,
        parameters(**verify_values(DUPONT, OID="1.2.3")),
        Category.UNPROCESSABLE,
        "OID",
        "1.2.250.1.213.1.4.8 (INS-NIR)",
    ),
    (
        "prenom-and-liste",
        V,
        parameters(**VERIFY_OK, ListePrenom="JEAN PIERRE"),
        Category.INVALID,
        "Prenom",
        "not both",
    ),
    (
        "missing-prenom-verify",
        V,
        parameters(**verify_values(DUPONT, Prenom="")),
        Category.INVALID,
        "Prenom",
        "ListePrenom",
    ),
    (
        "several-prenom-verify",
        V,
        parameters(**{**VERIFY_OK, "Prenom": ["JEAN", "PIERRE"]}),
        Category.INVALID,
        "Prenom",
        "ListePrenom",
    ),
    (
        "liste-digits",
        V,
        parameters(**verify_values(DUPONT, Prenom="", ListePrenom="JEAN 2")),
        Category.UNPROCESSABLE,
        "ListePrenom",
        "'2'",
    ),
    (
        "ins-in-search",
        S,
        parameters(**SEARCH_OK, INS=DUPONT.matricule),
        Category.INVALID,
        "INS",
        "unknown parameter",
    ),
]


@pytest.mark.parametrize(
    ("parse", "source", "category", "param", "words"),
    [b[1:] for b in BAD],
    ids=[b[0] for b in BAD],
)
def test_bad_input_is_refused_naming_the_parameter(
    parse: Any, source: Any, category: Category, param: str, words: str
) -> None:
    err = refused(parse, source)
    assert err.category is category
    errors = [i for i in err.issues if i.severity == "error"]
    assert errors, err.issues
    assert any(param in i.diagnostics for i in errors)
    assert words in err.message, err.message
    assert all(i.severity in ("error", "warning", "information") for i in err.issues)


def test_every_problem_is_reported_at_once() -> None:
    err = refused(
        S, parameters(NomNaissance="DUPONT1", Prenom="JEAN", Sexe="X", DateNaissance="2023-02-30")
    )
    assert err.category is Category.UNPROCESSABLE
    expressions = [i.expression for i in err.issues if i.severity == "error"]
    assert expressions == [("NomNaissance",), ("Sexe",), ("DateNaissance",)]
    assert err.message.startswith("Patient/$ins-search: 3 problems")
    # a structural problem among them makes the whole answer a 400
    err = refused(S, parameters(NomNaissance="DUPONT1", Sexe="M", DateNaissance="1985-03-12"))
    assert err.category is Category.INVALID


def test_a_malformed_parameter_is_not_also_reported_missing() -> None:
    body = parameters(**{**SEARCH_OK, "Sexe": []})
    body["parameter"].append({"name": "Sexe", "valueCoding": {"code": "M"}})
    err = refused(S, body)
    assert [i.diagnostics for i in err.issues] == [
        "Sexe: expected valueCode (the sex, M or F), got valueCoding"
    ]
    body = parameters(**verify_values(DUPONT, INS=""))
    body["parameter"].append({"name": "INS", "valueInteger": 185037505})
    assert [i.expression for i in refused(V, body).issues] == [("INS",)]


def test_nia_with_nir_oid_explains_the_difference() -> None:
    err = refused(V, parameters(**verify_values(DIALLO, OID=OID_NIR)))
    assert OID_NIA in err.message and OID_NIR in err.message
    assert "starts with 8" in err.message and "omit OID" in err.message


# --- normalisation warnings -------------------------------------------------------------------


def test_normalisation_warnings_name_the_parameter() -> None:
    request = search_request(
        parameters(NomNaissance="Lefèvre", Prenom="Hélène", Sexe="f", DateNaissance="1992-02-29"),
        TODAY,
    )
    assert (request.birth_name, request.given_name, request.sex) == ("LEFEVRE", "HELENE", "F")
    found = warnings(request.issues)
    assert found[0].startswith("NomNaissance: 'Lefèvre' normalised to 'LEFEVRE' (INSi alphabet")
    assert "diacritics removed" in found[0] and "upper-cased" in found[0]
    assert found[1].startswith("Prenom: 'Hélène' normalised to 'HELENE'")
    assert found[2] == "Sexe: 'f' normalised to 'F'"
    assert [i.expression for i in request.issues] == [("NomNaissance",), ("Prenom",), ("Sexe",)]
    # and they travel with the answer, as an OperationOutcome
    response = search(request, by_traits)
    outcome = read_back(to_parameters(response))["issues"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["diagnostics"] for i in outcome["issue"]] == found


@pytest.mark.parametrize(
    ("param", "raw", "value", "words"),
    [
        ("LieuNaissance", "2a004", "2A004", "LieuNaissance: '2a004' normalised to '2A004'"),
        ("DateNaissance", "1960-00-00", "1960", "00 marks an unknown day or month"),
        ("DateNaissance", " 1985-03-12", "1985-03-12", "normalised to '1985-03-12'"),
        ("NomNaissance", "Œuvrard", "OEUVRARD", "Œ→OE"),
        ("NomNaissance", "d\u2019Almeida", "D'ALMEIDA", "apostrophes"),
        ("Prenom", "  jean ", "JEAN", "spaces trimmed"),
    ],
)
def test_each_normalisation_is_a_warning(param: str, raw: str, value: str, words: str) -> None:
    values = {**traits_of(LEROY), param: raw}
    request = search_request(parameters(**values), TODAY)
    got = {
        "LieuNaissance": request.birth_place,
        "DateNaissance": request.birth_date,
        "NomNaissance": request.birth_name,
        "Prenom": request.given_name,
    }[param]
    assert got == value
    assert any(words in w and w.startswith(param) for w in warnings(request.issues))


def test_partial_dates_are_noted_not_warned() -> None:
    request = search_request(parameters(**traits_of(BENALI)), TODAY)
    assert warnings(request.issues) == []
    assert [i.diagnostics for i in request.issues if i.severity == "information"] == [
        "DateNaissance: 1960 is a partial date (day or month unknown): only identities "
        "recorded with this same partial date are found"
    ]


def test_clean_input_has_no_issue() -> None:
    assert search_request(parameters(**traits_of(DUPONT, place=True)), TODAY).issues == ()
    assert verify_request(parameters(**verify_values(DUPONT, OID=OID_NIR)), TODAY).issues == ()


def test_matricule_separators_are_removed_with_a_warning() -> None:
    spaced = " ".join([DUPONT.matricule[:1], DUPONT.matricule[1:5], DUPONT.matricule[5:]])
    request = verify_request(parameters(**verify_values(DUPONT, INS=spaced)), TODAY)
    assert request.matricule == DUPONT.matricule
    assert request.oid == OID_NIR and not request.oid_given
    assert warnings(request.issues) == [
        f"INS: {spaced!r} normalised to {DUPONT.matricule!r} (a matricule INS is written without "
        "spaces or separators)"
    ]


_LETTERS = "abcdefghijklmnopqrstuvwxyzéèêëàâäîïôöùûüçœæÿÉÈÀÇŒ"
_NAMES = st.text(alphabet=_LETTERS + " -'\u2019", min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(raw=_NAMES)
def test_birth_names_are_normalised_or_refused(raw: str) -> None:
    try:
        request = search_request(parameters(**{**traits_of(DUPONT), "NomNaissance": raw}), TODAY)
    except FhirError as err:
        assert err.category is Category.UNPROCESSABLE
        assert err.message.startswith("NomNaissance")
        return
    assert re.fullmatch(r"[A-Z' -]+", request.birth_name)
    assert any(c.isalpha() for c in request.birth_name)
    changed = request.birth_name != raw
    assert bool(warnings(request.issues)) == changed
    # normalising is idempotent: sending the result back gives no warning
    again = search_request(parameters(**{**traits_of(DUPONT), "NomNaissance": request.birth_name}))
    assert again.birth_name == request.birth_name and again.issues == ()


@settings(max_examples=200, deadline=None)
@given(raw=st.text(alphabet=_LETTERS + "-'", min_size=1, max_size=20))
def test_first_names_are_normalised_or_refused(raw: str) -> None:
    try:
        request = search_request(parameters(**{**traits_of(DUPONT), "Prenom": raw}), TODAY)
    except FhirError as err:
        assert err.category is Category.UNPROCESSABLE and err.message.startswith("Prenom")
        return
    assert re.fullmatch(r"[A-Z'-]+", request.given_name)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_ENTRY = st.fixed_dictionaries(
    {"name": st.sampled_from([*insi.INPUT_PARAMETERS["ins-verify"], "x"])},
    optional={"valueString": _JSON, "valueCode": st.text(max_size=20), "part": _JSON},
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        _JSON,
        st.fixed_dictionaries(
            {"resourceType": st.just("Parameters"), "parameter": st.lists(_ENTRY, max_size=8)}
        ),
    )
)
def test_any_input_is_a_request_or_a_400_422(body: Any) -> None:
    for parse in (search_request, verify_request):
        try:
            parse(body, TODAY)
        except FhirError as err:
            assert err.category in (Category.INVALID, Category.UNPROCESSABLE)
            assert err.message and all(i.diagnostics for i in err.issues)


# --- output: Parameters -----------------------------------------------------------------------


def read_back(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters → plain dict (repeated names as lists), to compare with what was returned."""

    def value(entry: dict[str, Any]) -> Any:
        if "part" in entry:
            return group(entry["part"])
        if "resource" in entry:
            return entry["resource"]
        (key_,) = [k for k in entry if k.startswith("value")]
        return entry[key_]

    def group(entries: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for entry in entries:
            name = entry["name"]
            if name in ("INSHISTO", "difference"):
                out.setdefault(name, []).append(value(entry))
            else:
                assert name not in out, name
                out[name] = value(entry)
        return out

    assert params["resourceType"] == "Parameters"
    return group(params["parameter"])


@pytest.mark.parametrize("rec", [DUPONT, LEROY, BENALI, GARCIA, DIALLO, NGUYEN])
def test_parameters_round_trip(rec: Rec) -> None:
    response = InsiResponse(CR_FOUND, "OK", rec)
    out = read_back(to_parameters(response))
    assert (out["CodeCR"], out["LibelleCR"]) == ("00", "OK")
    individu = out["INDIVIDU"]
    assert individu["INSACTIF"]["NumIdentifiant"] + individu["INSACTIF"]["Cle"] == rec.matricule
    assert (
        len(individu["INSACTIF"]["NumIdentifiant"]) == 13 and len(individu["INSACTIF"]["Cle"]) == 2
    )
    assert individu["INSACTIF"]["OID"] == f"urn:oid:{rec.oid}"
    history = [h["NumIdentifiant"] + h["Cle"] for h in individu.get("INSHISTO", [])]
    assert tuple(history) == rec.history
    tiq = individu["TIQ"]
    assert tiq["NomNaissance"] == rec.birth_name
    assert tuple(tiq["ListePrenom"].split(" ")) == rec.given_names
    assert (tiq["Sexe"], tiq["DateNaissance"]) == (rec.sex, rec.birth_date)
    assert tiq.get("LieuNaissance", "") == rec.birth_place
    patient = out["patient"]
    assert patient["resourceType"] == "Patient"
    assert patient["identifier"][0]["value"] == rec.matricule
    reliability = patient["extension"][0]["extension"][0]["valueCoding"]["code"]
    assert reliability == "RECUP"
    assert any(e["url"] == BIRTH_PLACE for e in patient["extension"]) == bool(rec.birth_place)
    assert "verdict" not in out and "issues" not in out and "historical" not in out


def test_none_and_several_have_no_identity() -> None:
    for response in (
        run_search(**traits_of(DUPONT, "PAUL")),
        run_search(**traits_of(DURAND_1, "LUC")),
    ):
        assert [p["name"] for p in to_parameters(response)["parameter"]] == ["CodeCR", "LibelleCR"]


@pytest.fixture(scope="module")
def fr_validator() -> Validator:
    own = load_definitions()
    for path in sorted(FR_CORE.glob("*.json")):
        resource = orjson.loads(path.read_bytes())
        if resource["resourceType"] in ("StructureDefinition", "ValueSet", "CodeSystem"):
            own.add(resource)
    return Validator(own)


def _errors(issues: list[Issue]) -> list[str]:
    return [i.diagnostics for i in issues if i.severity in ("error", "fatal")]


def test_outputs_are_valid_fhir(defs: Definitions, fr_validator: Validator) -> None:
    validator = Validator(defs)
    responses = [
        run_search(**traits_of(LEFEVRE, "Hélène")),
        run_search(**traits_of(DURAND_1, "LUC")),
        run_verify(**verify_values(GARCIA, INS=GARCIA_NIA, Sexe="F")),
        run_verify(**verify_values(NGUYEN, Sexe="M", LieuNaissance="75056")),
    ]
    for response in responses:
        assert _errors(validator.validate(to_parameters(response))) == []
    for rec in (DUPONT, GARCIA, DIALLO, LEROY):
        assert _errors(fr_validator.validate(patient_of(rec), [FR_CORE_PATIENT_INS])) == []


# --- evidence -----------------------------------------------------------------------------------


def test_evidence_of_a_cr_00_lets_the_patient_be_recup() -> None:
    response = run_search(**traits_of(DUPONT))
    found = evidence(response, TODAY)
    assert found is not None
    assert (found.cr, found.date, found.method) == ("00", "2025-06-01", "INSI")
    assert (found.system, found.matricule) == (f"urn:oid:{OID_NIR}", DUPONT.matricule)
    assert found.traits.birth_name == "DUPONT" and found.traits.given_names == ("JEAN", "PIERRE")
    assert (found.traits.sex, found.traits.birth_date, found.traits.birth_place) == (
        "M",
        "1985-03-12",
        "75056",
    )
    decision = check_patient_write(patient_of(DUPONT), None, found, False, today=TODAY)
    assert (decision.outcome, decision.status) == ("accepted", "RECUP"), decision.issues
    # the evidence is about DUPONT: another identity gets no RECUP from it
    other = check_patient_write(patient_of(MARTIN_1), None, found, False, today=TODAY)
    assert other.outcome == "refused"


def test_evidence_of_a_verification_is_the_active_ins() -> None:
    response = run_verify(**verify_values(GARCIA, INS=GARCIA_NIA))
    found = evidence(response, TODAY)
    assert found is not None and found.matricule == GARCIA.matricule


def test_no_evidence_without_cr_00() -> None:
    assert evidence(run_search(**traits_of(DUPONT, "PAUL")), TODAY) is None
    assert evidence(run_search(**traits_of(DURAND_1, "LUC")), TODAY) is None
    assert evidence(run_verify(**verify_values(DUPONT, INS=key("1850375056999"))), TODAY) is None


def test_evidence_without_birthplace() -> None:
    found = evidence(InsiResponse(CR_FOUND, "OK", NGUYEN), TODAY)
    assert found is not None and found.traits.birth_place is None
    assert found.system == f"urn:oid:{OID_TEST}"


# --- OperationDefinitions -----------------------------------------------------------------------


def _opdef(code: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(OPERATION_DEFINITIONS[code].read_text("utf-8"))
    return data


@pytest.mark.parametrize("code", ["ins-search", "ins-verify"])
def test_operation_definitions_are_valid(code: str, defs: Definitions) -> None:
    opdef = _opdef(code)
    assert _errors(Validator(defs).validate(opdef)) == []
    assert opdef["url"] == f"{insi.CANONICAL_BASE}/OperationDefinition/{code}"
    assert (opdef["code"], opdef["kind"], opdef["resource"]) == (code, "operation", ["Patient"])
    assert (opdef["system"], opdef["type"], opdef["instance"], opdef["affectsState"]) == (
        False,
        True,
        False,
        False,
    )

    def walk(params: list[dict[str, Any]]) -> None:
        for p in params:
            assert {"name", "use", "min", "max", "documentation"} <= set(p), p["name"]
            assert " / " in p["documentation"], p["name"]  # French / English
            assert ("type" in p) != ("part" in p), p["name"]
            walk(p.get("part", []))

    walk(opdef["parameter"])


@pytest.mark.parametrize("code", ["ins-search", "ins-verify"])
def test_operation_definitions_declare_what_the_parser_reads(code: str) -> None:
    specs = insi.INPUT_PARAMETERS[code]
    inputs = {p["name"]: p for p in _opdef(code)["parameter"] if p["use"] == "in"}
    assert list(inputs) == list(specs)
    for name, spec in specs.items():
        assert inputs[name]["type"] == spec.type, name
        assert inputs[name]["min"] == int(spec.required), name
        assert inputs[name]["max"] == "1", name


@pytest.mark.parametrize("code", ["ins-search", "ins-verify"])
def test_operation_definitions_declare_what_to_parameters_writes(code: str) -> None:
    outputs = {p["name"]: p for p in _opdef(code)["parameter"] if p["use"] == "out"}
    if code == "ins-search":
        responses = [run_search(**traits_of(LEFEVRE, "Hélène")), run_search(**traits_of(GARCIA))]
    else:
        responses = [run_verify(**verify_values(GARCIA, INS=GARCIA_NIA, Sexe="F", Prenom="héctor"))]

    def check(entries: list[dict[str, Any]], declared: dict[str, dict[str, Any]]) -> None:
        for entry in entries:
            assert entry["name"] in declared, entry["name"]
            spec = declared[entry["name"]]
            if "part" in entry:
                check(entry["part"], {p["name"]: p for p in spec["part"]})
            elif "resource" in entry:
                assert entry["resource"]["resourceType"] == spec["type"]
            else:
                (key_,) = [k for k in entry if k.startswith("value")]
                assert key_ == "value" + spec["type"][0].upper() + spec["type"][1:], entry

    for response in responses:
        check(to_parameters(response)["parameter"], outputs)
    for code_cr in ("00", "01", "02"):
        assert code_cr in outputs["CodeCR"]["documentation"]
