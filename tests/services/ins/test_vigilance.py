"""Identity vigilance: each duplicate rule, non-duplicates, collisions, blocking, FHIR input."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maison.services.ins import vigilance
from maison.services.ins.reference import synthesize, to_patient
from maison.services.ins.vigilance import (
    COLLISION,
    DEFAULT_THRESHOLD,
    DUPLICATE,
    HOMONYM,
    Candidate,
    candidate_from_patient,
    find_duplicates,
    fold,
    phonetic,
    score,
)

BASE = Candidate(
    id="base",
    family="LE GALL-MARTIN",
    given_names=("JEAN-PIERRE", "MARIE", "LOUIS"),
    birth_date="1975-03-04",
    gender="male",
    birth_place="29019",
    ins=None,
)


def variant(**changes: Any) -> Candidate:
    return replace(BASE, id="variant", **changes)


# Each kind of duplicate: (changes to the base, the reason expected among the reasons).
DUPLICATES: list[tuple[str, dict[str, Any], str]] = [
    ("identical", {}, vigilance.SAME_BIRTH_NAME),
    ("accents and case", {"family": "Le Gall Martin"}, vigilance.SAME_BIRTH_NAME_FOLDED),
    ("accents on the name", {"family": "Lé Gâll-Märtin"}, vigilance.SAME_BIRTH_NAME_FOLDED),
    (
        "JEAN-PIERRE = Jean Pierre",
        {"given_names": ("Jean Pierre", "Marie", "Louis")},
        vigilance.SAME_GIVEN_FOLDED,
    ),
    (
        "Jean-Pierre as two first names",
        {"given_names": ("JEAN", "PIERRE", "MARIE", "LOUIS")},
        vigilance.SAME_GIVEN_FOLDED,
    ),
    (
        "first names inverted",
        {"given_names": ("MARIE", "JEAN-PIERRE", "LOUIS")},
        vigilance.GIVEN_INVERTED,
    ),
    (
        "first of one is second of the other",
        {"given_names": ("LOUIS", "JEAN-PIERRE")},
        vigilance.GIVEN_INVERTED,
    ),
    ("first name only", {"given_names": ("JEAN-PIERRE",)}, vigilance.GIVEN_SUBLIST),
    ("first name typo", {"given_names": ("JEAN-PIERE", "MARIE", "LOUIS")}, vigilance.GIVEN_TYPO),
    ("composed first name cut", {"given_names": ("JEAN",)}, vigilance.GIVEN_COMPOSED),
    ("date one digit", {"birth_date": "1975-03-07"}, vigilance.DATE_ONE_DIGIT),
    ("year one digit", {"birth_date": "1976-03-04"}, vigilance.DATE_ONE_DIGIT),
    ("day and month swapped", {"birth_date": "1975-04-03"}, vigilance.DATE_SWAPPED),
    ("one day apart", {"birth_date": "1975-03-05"}, vigilance.DATE_ONE_DAY),
    ("digits transposed", {"birth_date": "1957-03-04"}, vigilance.DATE_TRANSPOSED),
    ("partial date", {"birth_date": "1975-03"}, vigilance.DATE_PARTIAL),
    ("birth date missing", {"birth_date": None}, vigilance.DATE_MISSING),
    ("name typo", {"family": "LE GAL-MARTIN"}, vigilance.NAME_TYPO),
    ("compound name cut", {"family": "MARTIN"}, vigilance.COMPOUND_NAME),
    ("sex unknown", {"gender": "unknown"}, vigilance.SEX_UNKNOWN),
    ("sex missing", {"gender": None}, vigilance.SEX_UNKNOWN),
    ("place missing", {"birth_place": None}, vigilance.PLACE_MISSING),
    ("place in the same département", {"birth_place": "29232"}, vigilance.PLACE_SAME_DEPARTMENT),
    ("sex entered wrong", {"gender": "female"}, vigilance.SEX_DIFFERS),
]


@pytest.mark.parametrize(("label", "changes", "reason"), DUPLICATES, ids=[d[0] for d in DUPLICATES])
def test_each_kind_of_duplicate_scores_high_with_its_reason(
    label: str, changes: dict[str, Any], reason: str
) -> None:
    value, reasons = score(BASE, variant(**changes))
    assert reason in reasons, (label, reasons)
    assert value >= DEFAULT_THRESHOLD, (label, value, reasons)


def test_used_name_of_one_is_the_birth_name_of_the_other() -> None:
    """Born LE GALL-MARTIN, married DUPONT: a desk typed the used name as the birth name."""
    record = replace(BASE, used_family="DUPONT", gender="female")
    typed_wrong = variant(family="Dupont", gender="female")
    value, reasons = score(record, typed_wrong)
    assert vigilance.USED_NAME in reasons and value >= DEFAULT_THRESHOLD
    (pair,) = find_duplicates([record, typed_wrong])
    assert vigilance.USED_NAME in pair.reasons
    both_used = replace(typed_wrong, family="KERGOAT", used_family="DUPONT")
    assert vigilance.USED_NAME not in score(record, both_used)[1]  # sisters-in-law


def test_names_that_sound_alike() -> None:
    assert phonetic("DUPONT") == phonetic("Dupond")
    assert phonetic("LEFEBVRE") == phonetic("Lefèvre")
    assert phonetic("CATHERINE") == phonetic("KATHERINE")
    value, reasons = score(variant(family="DUPONT"), variant(family="DUPOND"))
    assert vigilance.NAME_TYPO in reasons and value >= DEFAULT_THRESHOLD
    value, reasons = score(variant(family="FAURE"), variant(family="FORE"))
    assert vigilance.NAME_SOUNDS in reasons and value >= DEFAULT_THRESHOLD


def test_fold() -> None:
    assert fold("Jean-Pierre") == fold("JEAN PIERRE") == "JEAN PIERRE"
    assert fold("D'Almeida") == "D ALMEIDA"
    assert fold("Lætitia Œuvrard") == "LAETITIA OEUVRARD"
    assert fold("  ") == ""


# Clear non-duplicates (and twins): must not be reported at the default threshold.
NOT_DUPLICATES: list[tuple[str, dict[str, Any], float]] = [
    ("same name, born 20 years apart", {"birth_date": "1995-08-21"}, 0.5),
    ("father and son", {"birth_date": "1950-06-17", "given_names": ("JEAN-PIERRE",)}, 0.5),
    ("other family, other first names", {"family": "DURAND", "given_names": ("PAUL",)}, 0.3),
    (
        "same family, same month, others",
        {"given_names": ("PAUL",), "birth_date": "1975-03-20"},
        0.7,
    ),
]


@pytest.mark.parametrize(
    ("label", "changes", "ceiling"), NOT_DUPLICATES, ids=[d[0] for d in NOT_DUPLICATES]
)
def test_clear_non_duplicates_score_low(
    label: str, changes: dict[str, Any], ceiling: float
) -> None:
    value, _ = score(BASE, variant(**changes))
    assert value <= ceiling, label
    assert list(find_duplicates([BASE, variant(**changes)])) == []


@pytest.mark.parametrize("gender", ["male", "female"])
def test_twins_score_low_and_are_flagged_as_possible_twins(gender: str) -> None:
    """Twins share birth name, date and place but not their first names: a real risk of a wrong
    merge, so they are never reported as duplicates; they come out as HOMD (homonyme détecté)
    when the cellule asks for homonyms, to mark them and prevent a future mix-up."""
    twin = variant(given_names=("ANNE", "MARIE"), gender=gender)
    value, reasons = score(BASE, twin)
    assert value <= 0.45 and vigilance.POSSIBLE_TWINS in reasons
    assert list(find_duplicates([BASE, twin])) == []
    (pair,) = find_duplicates([BASE, twin], report_homonyms=True)
    assert pair.kind == HOMONYM and vigilance.POSSIBLE_TWINS in pair.reasons


def test_homonyms_with_distinct_ins_are_not_duplicates() -> None:
    a = replace(BASE, ins="175032901900147")
    b = variant(ins="175033501900112", birth_place="35238")
    value, reasons = score(a, b)
    assert value < DEFAULT_THRESHOLD and vigilance.HOMONYMS in reasons
    assert list(find_duplicates([a, b])) == []
    (pair,) = find_duplicates([a, b], report_homonyms=True)
    assert pair.kind == HOMONYM


@pytest.mark.parametrize("threshold", [0.0, DEFAULT_THRESHOLD, 0.99, 1.0])
def test_collisions_are_always_reported(threshold: float) -> None:
    stranger = Candidate("stranger", "DURAND", ("ZOE",), "2001-01-01", "female", "75115", "1 75")
    owner = replace(BASE, ins="175")
    same_person = variant(ins="175")
    pairs = list(find_duplicates([owner, stranger, same_person], threshold))
    collisions = [p for p in pairs if p.kind == COLLISION]
    assert {(p.a, p.b) for p in collisions} == {
        ("base", "stranger"),
        ("base", "variant"),
        ("stranger", "variant"),
    }
    assert all(p.score == 1.0 and p.reasons[0] == vigilance.SAME_INS for p in collisions)
    assert pairs[: len(collisions)] == collisions  # collisions come first
    assert score(owner, stranger)[0] == 1.0


def test_a_pair_found_by_several_blocks_is_reported_once() -> None:
    stats: dict[str, int] = {}
    pairs = list(find_duplicates([BASE, variant()], stats=stats))
    assert len(pairs) == 1 and pairs[0].kind == DUPLICATE and pairs[0].score == 1.0
    assert stats["blocks"] == 5  # every date-and-name scheme holds the pair
    assert stats["comparisons"] == 1


def test_every_duplicate_kind_is_found_in_a_crowd() -> None:
    crowd = [
        Candidate(
            f"p{i}", i.nom_naissance, i.prenoms, i.date_naissance, i.sexe, i.lieu_naissance, None
        )
        for i in synthesize(3000, seed=21)
    ]
    crowd = [replace(c, id=f"p{n}") for n, c in enumerate(crowd)]
    expected = {}
    for n, (label, changes, reason) in enumerate(DUPLICATES):
        twin_of = replace(BASE, id=f"b{n}", family=f"{BASE.family}-{chr(65 + n)}Z")
        changes = dict(changes)
        if "family" in changes:
            changes["family"] = f"{changes['family']}-{chr(65 + n)}Z"
        crowd.append(twin_of)
        crowd.append(replace(twin_of, id=f"v{n}", **changes))
        expected[(f"b{n}", f"v{n}")] = (label, reason)
    found = {(p.a, p.b): p for p in find_duplicates(crowd)}
    for key, (label, reason) in expected.items():
        assert key in found, label
        assert reason in found[key].reasons, (label, found[key].reasons)


def test_blocking_is_near_linear() -> None:
    crowd = [
        Candidate(
            str(n),
            i.nom_naissance,
            i.prenoms,
            i.date_naissance,
            i.sexe,
            i.lieu_naissance,
            i.matricule,
        )
        for n, i in enumerate(synthesize(20_000, seed=8))
    ]
    stats: dict[str, int] = {}
    list(find_duplicates(crowd, stats=stats))
    assert stats["candidates"] == 20_000
    assert stats["comparisons"] < 5 * 20_000  # all pairs would be 2e8


def test_oversized_blocks_fall_back_to_a_sliding_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vigilance, "MAX_BLOCK", 5)

    def letters(n: int) -> str:
        syllables = ("BAL", "KER", "MIS", "NOT", "PUF", "DAG", "SEV", "TIZ", "VOK", "RUM")
        return "".join(syllables[int(d)] for d in f"{n:03d}")

    crowd = [replace(BASE, id=f"m{n}", given_names=(letters(n),)) for n in range(60)]
    crowd.append(replace(crowd[7], id="dup", given_names=(letters(7).capitalize(),)))
    stats: dict[str, int] = {}
    pairs = [p for p in find_duplicates(crowd, stats=stats) if p.kind == DUPLICATE]
    assert stats["oversized"] >= 1
    assert [(p.a, p.b) for p in pairs] == [("m7", "dup")]


# ----------------------------------------------------------------------------- properties

NAMES = st.sampled_from(
    ["MARTIN", "Martin", "MARTÍN", "LE GALL", "Le-Gall", "DUPOND", "DUPONT", ""]
)
GIVEN = st.sampled_from(["JEAN", "Jean-Pierre", "PIERRE", "MARIE", "Marie Claire", "ZOE", "JEANNE"])
DATES = st.one_of(
    st.none(),
    st.sampled_from(["1975", "1975-03", "1975-13", "garbage"]),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["1975-03-04", "1975-04-03", "1975-03-05", "1957-03-04", "1976-03-04"]),
)
CANDIDATES = st.builds(
    Candidate,
    id=st.text(max_size=3),
    family=st.one_of(st.none(), NAMES),
    given_names=st.lists(GIVEN, max_size=3).map(tuple),
    birth_date=DATES,
    gender=st.sampled_from([None, "male", "female", "unknown", "other"]),
    birth_place=st.sampled_from([None, "29019", "29232", "99352", "2A004"]),
    ins=st.sampled_from([None, "175", "276"]),
    used_family=st.one_of(st.none(), NAMES),
)


@given(CANDIDATES, CANDIDATES)
@settings(max_examples=300)
def test_score_is_symmetric_and_between_0_and_1(a: Candidate, b: Candidate) -> None:
    forward, reasons = score(a, b)
    backward, back_reasons = score(b, a)
    assert forward == backward and reasons == back_reasons
    assert 0.0 <= forward <= 1.0
    if a.ins and a.ins == b.ins:
        assert forward == 1.0


@given(st.lists(CANDIDATES, max_size=12))
@settings(max_examples=60)
def test_batch_agrees_with_pairwise_scores_and_reports_collisions(cands: list[Candidate]) -> None:
    cands = [replace(c, id=str(n)) for n, c in enumerate(cands)]
    pairs = {(p.a, p.b): p for p in find_duplicates(cands)}
    for p in pairs.values():
        assert (p.score, list(p.reasons)) == score(*(c for c in cands if c.id in (p.a, p.b)))
    for i, a in enumerate(cands):
        for b in cands[i + 1 :]:
            if a.ins and a.ins == b.ins:
                assert pairs[(a.id, b.id)].kind == COLLISION


# ----------------------------------------------------------------------------- FHIR


def test_candidate_from_an_fr_core_ins_patient() -> None:
    ident = next(i for i in synthesize(50, seed=4) if len(i.prenoms) > 1)
    patient = to_patient(ident)
    patient["name"].append({"use": "usual", "family": "Dupont", "given": ["Jean"]})
    patient["identifier"].insert(
        0, {"use": "old", "system": "urn:oid:1.2.250.1.213.1.4.9", "value": "7000"}
    )
    cand = candidate_from_patient(patient, "Patient/1")
    assert cand == Candidate(
        id="Patient/1",
        family=ident.nom_naissance,
        given_names=ident.prenoms,
        birth_date=ident.date_naissance,
        gender="female" if ident.sexe == "F" else "male",
        birth_place=ident.lieu_naissance,
        ins=ident.matricule,
        used_family="Dupont",
    )


def test_candidate_from_a_plain_patient() -> None:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "http://hopital.fr/ipp", "value": "IPP-1"}],
        "name": [{"family": "Durand", "given": ["Pierre", "Paul"]}],
        "gender": "male",
    }
    cand = candidate_from_patient(patient, "p")
    assert (cand.family, cand.given_names, cand.ins, cand.birth_date) == (
        "Durand",
        ("Pierre", "Paul"),
        None,
        None,
    )
    assert candidate_from_patient({"resourceType": "Patient"}, "empty") == Candidate(
        "empty", None, (), None, None, None, None
    )
