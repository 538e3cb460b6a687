"""The professional context: a PSC userinfo read field by field, the choice among several
activities, malformed userinfo refused with one error type, the Annuaire round trip and the
cross-check (pure: no store)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from maison.security.professional import (
    Activity,
    OtherId,
    ProfessionalContextError,
    check_against_annuaire,
    from_userinfo,
    userinfo_for,
)
from maison.services.annuaire import mapping as m
from maison.services.annuaire.synth import synthesize
from support import SHARED

SAMPLE_PATH = SHARED / "domain" / "data" / "psc" / "userinfo-example-bas.json"
SAMPLE: dict[str, Any] = (
    json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))
    if SAMPLE_PATH.exists()
    else {
        # the sample's shape, kept here should the shared file move
        "sub": "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:ANS20231122132732",
        "SubjectNameID": "ANS20231122132732",
        "given_name": "Fistinien",
        "family_name": "Grominoch",
        "codeCivilite": "M",
        "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
        "SubjectRole": ["80^1.2.250.1.213.1.1.5.5"],
        "Secteur_Activite": "SA07^1.2.250.1.71.4.2.4",
        "otherIds": [{"identifiant": "ANS20231122132732", "origine": "EDIT", "qualite": 1}],
        "SubjectRefPro": {
            "exercices": [
                {
                    "codeProfession": "80",
                    "codeCategorieProfessionnelle": "C",
                    "codeCiviliteDexercice": "",
                    "codeTypeSavoirFaire": "",
                    "codeSavoirFaire": "",
                    "activities": [
                        {
                            "codeModeExercice": "L",
                            "codeSecteurDactivite": "SA07",
                            "codeSectionPharmacien": "",
                            "codeRole": "",
                            "codeGenreActivite": "GENR01",
                            "numeroSiretSite": "",
                            "numeroSirenSite": "",
                            "numeroFinessSite": "",
                            "numeroFinessetablissementJuridique": "",
                            "identifiantTechniqueDeLaStructure": "R81311",
                            "raisonSocialeSite": "CABINET INDIVIDUEL PEDI PODO0023704",
                            "bureauCedex": "75015 PARIS",
                            "codePostal": "75015",
                            "ancienIdentifiantDeLaStructure": "499700237045007",
                        }
                    ],
                }
            ]
        },
    }
)


def _activity(**cells: str) -> dict[str, str]:
    base = copy.deepcopy(SAMPLE["SubjectRefPro"]["exercices"][0]["activities"][0])
    base.update(cells)
    return dict(base)


def _several() -> dict[str, Any]:
    """A doctor with two activities in one exercice and one in a second exercice."""
    claims = copy.deepcopy(SAMPLE)
    claims["SubjectNameID"] = "810001234567"
    claims["SubjectRefPro"]["exercices"] = [
        {
            "codeProfession": "10",
            "codeCategorieProfessionnelle": "C",
            "codeCiviliteDexercice": "DR",
            "codeTypeSavoirFaire": "S",
            "codeSavoirFaire": "SM54",
            "activities": [
                _activity(raisonSocialeSite="CABINET DU DR MARTIN", codeRole="FON-01"),
                _activity(
                    codeModeExercice="S",
                    codeSecteurDactivite="SA01",
                    codeRole="FON-AU",
                    numeroFinessSite="750000001",
                    numeroFinessetablissementJuridique="750000010",
                    identifiantTechniqueDeLaStructure="F750000001",
                    raisonSocialeSite="HOPITAL SAINT-LOUIS",
                    ancienIdentifiantDeLaStructure="1750000001",
                ),
            ],
        },
        {
            "codeProfession": "21",
            "codeCategorieProfessionnelle": "C",
            "activities": [
                _activity(raisonSocialeSite="PHARMACIE CENTRALE", codeSecteurDactivite="SA33")
            ],
        },
    ]
    return claims


# --- the sample, field by field ---------------------------------------------------------------
def test_the_sandbox_userinfo_gives_its_context_field_by_field() -> None:
    ctx = from_userinfo(SAMPLE, None)
    assert ctx.national_id == "ANS20231122132732"
    assert ctx.rpps is None and ctx.adeli is None  # a BAS test account: neither 8… nor 0…
    assert ctx.subject == "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:ANS20231122132732"
    assert (ctx.family_name, ctx.given_name, ctx.civility) == ("Grominoch", "Fistinien", "M")
    assert ctx.civility_of_practice is None
    assert (ctx.profession, ctx.category) == ("80", "C")
    assert ctx.savoir_faire == (None, None)
    assert ctx.acr == "eidas1"
    assert ctx.authentication_level == "APPPRIP3"
    assert ctx.other_ids == (OtherId("ANS20231122132732", "EDIT", 1),)
    assert ctx.activities == (ctx.activity,)
    assert ctx.activity == Activity(
        index=0,
        profession="80",
        category="C",
        savoir_faire_type=None,
        savoir_faire=None,
        mode="L",
        secteur="SA07",
        role=None,
        genre="GENR01",
        section_pharmacien=None,
        finess_site=None,
        finess_ej=None,
        siret=None,
        siren=None,
        rass_id="R81311",
        idnst="499700237045007",
        name="CABINET INDIVIDUEL PEDI PODO0023704",
        postal_code="75015",
        city="75015 PARIS",
        civility_of_practice=None,
    )


def test_rpps_and_adeli_come_from_the_idnps_else_from_other_ids() -> None:
    claims = copy.deepcopy(SAMPLE)
    claims["SubjectNameID"] = "810001234567"
    assert from_userinfo(claims).rpps == "10001234567"
    claims["SubjectNameID"] = "0751234567"
    ctx = from_userinfo(claims)
    assert (ctx.rpps, ctx.adeli) == (None, "751234567")
    claims["SubjectNameID"] = "ANS1"
    claims["otherIds"] = [{"identifiant": "10009999999", "origine": "RPPS", "qualite": 1}]
    assert from_userinfo(claims).rpps == "10009999999"


def test_the_acr_claim_wins_over_the_palier_and_an_unknown_palier_gives_no_level() -> None:
    claims = copy.deepcopy(SAMPLE)
    claims["acr"] = "eidas2"
    assert from_userinfo(claims).acr == "eidas2"
    del claims["acr"]
    claims["Palier_Authentification"] = "XYZ^1.2.3"
    ctx = from_userinfo(claims)
    assert (ctx.acr, ctx.authentication_level) == (None, "XYZ")


# --- several activities ---------------------------------------------------------------------
def test_several_activities_require_a_choice_listing_them() -> None:
    with pytest.raises(ProfessionalContextError) as caught:
        from_userinfo(_several(), None)
    message = str(caught.value)
    assert caught.value.reason == "choice"
    assert "810001234567 has 3 activities" in message
    assert "--activity N" in message
    assert "0: CABINET DU DR MARTIN, secteur SA07, rôle FON-01" in message
    assert "1: HOPITAL SAINT-LOUIS, secteur SA01, rôle FON-AU" in message
    assert "2: PHARMACIE CENTRALE, secteur SA33" in message


def test_an_activity_is_chosen_by_its_index_across_exercices() -> None:
    ctx = from_userinfo(_several(), 1)
    assert ctx.activity.name == "HOPITAL SAINT-LOUIS"
    assert (ctx.activity.finess_site, ctx.activity.finess_ej) == ("750000001", "750000010")
    assert (ctx.activity.mode, ctx.activity.secteur, ctx.activity.role) == ("S", "SA01", "FON-AU")
    assert (ctx.profession, ctx.savoir_faire, ctx.civility_of_practice) == (
        "10",
        ("S", "SM54"),
        "DR",
    )
    assert [a.index for a in ctx.activities] == [0, 1, 2]
    pharmacy = from_userinfo(_several(), 2)
    assert (pharmacy.profession, pharmacy.savoir_faire) == ("21", (None, None))
    assert pharmacy.activity.secteur == "SA33"


@pytest.mark.parametrize("index", [3, -1, 99])
def test_an_activity_index_out_of_range_is_refused_listing_the_numbers(index: int) -> None:
    with pytest.raises(ProfessionalContextError, match=r"the numbers are 0 to 2: 0: CABINET"):
        from_userinfo(_several(), index)


def test_a_single_activity_is_chosen_and_its_index_zero_accepted() -> None:
    assert from_userinfo(SAMPLE, 0) == from_userinfo(SAMPLE, None)
    with pytest.raises(ProfessionalContextError, match=r"no activity 1 .* numbers are 0 to 0"):
        from_userinfo(SAMPLE, 1)


def test_no_activity_at_all_is_refused() -> None:
    claims = copy.deepcopy(SAMPLE)
    claims["SubjectRefPro"]["exercices"][0]["activities"] = []
    with pytest.raises(ProfessionalContextError, match="has no activity"):
        from_userinfo(claims)
    del claims["SubjectRefPro"]
    with pytest.raises(ProfessionalContextError, match="has no activity"):
        from_userinfo(claims)


# --- malformed ------------------------------------------------------------------------------
def _without(key: str) -> dict[str, Any]:
    claims = copy.deepcopy(SAMPLE)
    del claims[key]
    return claims


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    claims = copy.deepcopy(SAMPLE)
    node: Any = claims
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return claims


ACTIVITY_PATH = ("SubjectRefPro", "exercices", 0, "activities")


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ([], "the userinfo must be an object, not list"),
        (_without("SubjectNameID"), "no SubjectNameID"),
        (_with(("SubjectNameID",), ""), "no SubjectNameID"),
        (_with(("SubjectNameID",), ["x"]), "SubjectNameID must be a string, not list"),
        (_with(("SubjectRefPro",), "x"), "SubjectRefPro must be an object, not str"),
        (
            _with(("SubjectRefPro", "exercices"), {"a": 1}),
            "SubjectRefPro.exercices must be a list, not dict",
        ),
        (
            _with(("SubjectRefPro", "exercices", 0), 3),
            r"SubjectRefPro.exercices\[0\] must be an object, not int",
        ),
        (_with(ACTIVITY_PATH, "x"), r"exercices\[0\].activities must be a list"),
        (_with((*ACTIVITY_PATH, 0), None), r"activities\[0\] must be an object, not NoneType"),
        (
            _with((*ACTIVITY_PATH, 0, "codeSecteurDactivite"), 1.5),
            r"activities\[0\].codeSecteurDactivite must be a string, not float",
        ),
        (_with(("otherIds",), {}), "otherIds must be a list, not dict"),
        (
            _with(("otherIds", 0, "qualite"), "1"),
            r"otherIds\[0\].qualite must be an integer",
        ),
        (_with(("Palier_Authentification",), True), "Palier_Authentification must be a string"),
        (_with(("SubjectRole",), "80"), "SubjectRole must be a list, not str"),
        (_with(("SubjectRole",), [{}]), r"SubjectRole\[0\] must be a string, not dict"),
        (_with(("family_name",), {}), "family_name must be a string, not dict"),
        (_with(("codeCivilite",), 10**5000), "codeCivilite must be a string, not int"),
    ],
)
def test_malformed_userinfo_is_refused_with_its_reason(claims: Any, message: str) -> None:
    with pytest.raises(ProfessionalContextError, match=message) as caught:
        from_userinfo(claims)
    assert caught.value.reason == "invalid"
    assert str(caught.value).startswith("malformed userinfo") or "SubjectNameID" in message


def test_a_malformed_userinfo_is_invalid_before_any_activity_choice() -> None:
    claims = {**_several(), "otherIds": "x"}
    with pytest.raises(ProfessionalContextError, match="otherIds must be a list") as caught:
        from_userinfo(claims, None)
    assert caught.value.reason == "invalid"


def test_a_non_integer_activity_is_refused() -> None:
    with pytest.raises(ProfessionalContextError, match="must be an integer"):
        from_userinfo(SAMPLE, "1")  # type: ignore[arg-type]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
ACTIVITY_KEYS = sorted(SAMPLE["SubjectRefPro"]["exercices"][0]["activities"][0])
EXERCICE_KEYS = [k for k in SAMPLE["SubjectRefPro"]["exercices"][0] if k != "activities"]


def _near(keys: list[str], extra: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with some of ``keys`` set to arbitrary JSON (or a plausible string)."""
    value = st.text(max_size=12) | JSON
    return st.fixed_dictionaries({}, optional={**{k: value for k in keys}, **extra})


NEAR_USERINFO = _near(
    [k for k in SAMPLE if k != "SubjectRefPro"],
    {
        "SubjectRefPro": JSON
        | st.fixed_dictionaries(
            {},
            optional={
                "exercices": JSON
                | st.lists(
                    JSON
                    | _near(
                        EXERCICE_KEYS,
                        {"activities": JSON | st.lists(JSON | _near(ACTIVITY_KEYS, {}))},
                    ),
                    max_size=3,
                )
            },
        )
    },
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the sample (keys and list positions), leaves and containers."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    out = []
    for key, value in items:
        out.append((*prefix, key))
        if isinstance(value, dict | list) and value:
            out.extend(_paths(value, (*prefix, key)))
    return out


PATHS = _paths({k: v for k, v in SAMPLE.items() if k != "_note"})


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    """The sample with a few of its values replaced (a string most often, else any JSON)."""
    claims = copy.deepcopy(SAMPLE)
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=3)):
        node: Any = claims
        try:
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = draw(st.text(max_size=6) | JSON)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed the way there
    return claims


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(claims=JSON | NEAR_USERINFO | _mutated(), activity=st.none() | st.integers(-2, 4))
@example(claims=SAMPLE, activity=None)
def test_from_userinfo_raises_nothing_but_its_own_error(claims: Any, activity: int | None) -> None:
    try:
        ctx = from_userinfo(claims, activity)
    except ProfessionalContextError as error:
        assert str(error)
    else:
        assert ctx.national_id and ctx.activity in ctx.activities


# --- the Annuaire round trip and the cross-check (pure) ---------------------------------------
ROWS = list(synthesize(200, seed=5))


def _people() -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for row in ROWS:
        out.setdefault(row[m.IDNAT_PP], []).append(row)
    return out


PEOPLE = _people()


def _split(resources: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    person = next(r for r in resources if r["resourceType"] == "Practitioner")
    roles = [r for r in resources if r["resourceType"] == "PractitionerRole"]
    orgs = {f"Organization/{r['id']}": r for r in resources if r["resourceType"] == "Organization"}
    return person, roles, orgs


def _facts(row: dict[str, str]) -> dict[str, str | None]:
    """What the Annuaire knows of one activity (the extraction row through the mapping)."""
    org = m.organization(row) or {}
    finess_ej = row[m.FINESS_EJ] if row[m.FINESS_EJ] != row[m.FINESS_SITE] else ""
    fonction = row[m.FONCTION] if row[m.FONCTION].startswith("FON-") else ""
    return {
        "profession": row[m.PROFESSION] or None,
        "category": row[m.CATEGORIE] or None,
        "mode": row[m.MODE] or None,
        "secteur": row[m.SECTEUR] or None,
        "role": fonction or None,
        "genre": row[m.GENRE] or None,
        "section_pharmacien": row[m.SECTION_PHARMA] or None,
        "finess_site": row[m.FINESS_SITE] or None,
        "finess_ej": finess_ej or None,
        "siret": row[m.SIRET] or None,
        "siren": row[m.SIREN] or None,
        "rass_id": row[m.TECHNICAL_ID] or None,
        "idnst": m.idnst(row),
        "name": org.get("name"),
    }


def _activity_facts(activity: Activity) -> dict[str, str | None]:
    return {k: getattr(activity, k) for k in _facts(ROWS[0])}


def test_userinfo_for_the_annuaire_resources_round_trips_to_the_annuaire_facts() -> None:
    several = [
        p for p, rows in PEOPLE.items() if len({m.practitioner_role_id(r) for r in rows}) > 1
    ]
    assert several, "the synthetic extraction has persons with several activities"
    for idnps, rows in PEOPLE.items():
        person, roles, orgs = _split(m.resources_for_person(rows))
        claims = userinfo_for(person, roles, orgs)
        assert claims["SubjectNameID"] == idnps
        assert claims["SubjectRole"] == [f"{rows[0][m.PROFESSION]}^1.2.250.1.213.1.1.5.5"]
        by_role = {m.practitioner_role_id(r): r for r in rows}
        ordered = [by_role[k] for k in sorted(by_role)]
        for index, row in enumerate(ordered):
            ctx = from_userinfo(claims, index if len(ordered) > 1 else None)
            assert ctx.national_id == idnps
            kind, number = row[m.TYPE_ID_PP], row[m.ID_PP]
            assert (ctx.rpps, ctx.adeli) == (
                number if kind == "8" else None,
                number if kind == "0" else None,
            )
            assert (ctx.family_name, ctx.given_name) == (row[m.NOM], row[m.PRENOM])
            assert ctx.civility == (row[m.CIVILITE] or None)
            assert ctx.civility_of_practice == (row[m.CIVILITE_EXERCICE] or None)
            assert ctx.savoir_faire == (row[m.TYPE_SF] or None, row[m.SF] or None)
            assert ctx.acr == "eidas1"
            assert _activity_facts(ctx.activity) == _facts(row), (idnps, index)
            check_against_annuaire(ctx, person, roles)  # the Annuaire accepts its own
        if len(ordered) > 1:
            with pytest.raises(ProfessionalContextError, match="choose one by its number"):
                from_userinfo(claims, None)


def _doctor() -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    idnps = next(p for p, rows in PEOPLE.items() if len(rows) == 1)
    return _split(m.resources_for_person(PEOPLE[idnps]))


def test_the_cross_check_refuses_unknown_inactive_and_foreign_activities() -> None:
    person, roles, orgs = _doctor()
    ctx = from_userinfo(userinfo_for(person, roles, orgs))
    idnps = ctx.national_id
    with pytest.raises(ProfessionalContextError, match=f"{idnps} is unknown to the Annuaire") as e:
        check_against_annuaire(ctx, None, [])
    assert e.value.reason == "unknown"
    with pytest.raises(ProfessionalContextError, match=f"{idnps} is no longer active") as e:
        check_against_annuaire(ctx, {**person, "active": False}, roles)
    assert e.value.reason == "inactive"
    gone = [{**r, "active": False} for r in roles]
    with pytest.raises(ProfessionalContextError, match="is no longer active in the Annuaire") as e:
        check_against_annuaire(ctx, person, gone)
    assert e.value.reason == "activity"
    assert "choose another activity" in str(e.value)
    elsewhere = [{**r, "organization": {"reference": "Organization/1999999999"}} for r in roles]
    with pytest.raises(ProfessionalContextError, match="is not one of his situations") as e:
        check_against_annuaire(ctx, person, elsewhere)
    other = {**person, "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "8999"}]}
    with pytest.raises(ProfessionalContextError, match=f"is 8999, not the professional {idnps}"):
        check_against_annuaire(ctx, other, roles)


def test_userinfo_for_leaves_inactive_roles_out_and_needs_an_idnps() -> None:
    person, roles, orgs = _doctor()
    claims = userinfo_for(person, [{**r, "active": False} for r in roles], orgs)
    assert claims["SubjectRefPro"]["exercices"][0]["activities"] == []
    with pytest.raises(ProfessionalContextError, match="has no IDNPS"):
        userinfo_for({**person, "identifier": []}, roles, orgs)


def test_token_claims_round_trip_to_the_acting_professional() -> None:
    """What a platform token carries for a professional reads back whole, and a malformed
    claim is never half-trusted."""
    from maison.security.principal import Principal
    from maison.security.professional import ActingProfessional, token_claims

    context = from_userinfo(SAMPLE, 0)
    claims = {"iss": "i", "sub": context.national_id, **token_claims(context)}
    acting = Principal.from_claims(claims).professional
    assert acting is not None
    assert acting.national_id == context.national_id
    assert acting.profession == context.profession
    assert acting.activity == 0 and acting.acr == "eidas1"
    assert acting.secteur == context.activity.secteur and acting.role == context.activity.role
    for broken in ({"activity": 0}, {"idnps": "8", "activity": "0"}, "x", {"idnps": 1}):
        assert ActingProfessional.from_claims({"professional": broken}) is None
    assert Principal.from_claims({"iss": "i", "sub": "s"}).professional is None
