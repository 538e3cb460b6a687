"""Professionals of an imported Annuaire (the real importer, SQLite or PostgreSQL with
MAISON_TEST_STORE) looked up as PSC userinfo: the round trip gives back the Annuaire facts; a
professional or an activity the newer extraction no longer holds is refused; an unknown number
is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from maison.fhir.definitions import Definitions
from maison.security.professional import (
    ProfessionalContext,
    ProfessionalContextError,
    from_userinfo,
)
from maison.services.annuaire import mapping as m
from maison.services.annuaire.importer import import_extraction
from maison.services.annuaire.synth import synthesize, write_extraction
from maison.services.psc.annuaire_lookup import (
    check_professional,
    find_professional,
    list_professionals,
    userinfo_for_professional,
)
from maison.store.sql import SqlStore
from support import open_sql_store

Row = dict[str, str]
ROWS: list[Row] = list(synthesize(80, seed=13))


def _people(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(row[m.IDNAT_PP], []).append(row)
    return out


PEOPLE = _people(ROWS)
# one activity per distinct role id, in the order userinfo_for gives them (by role id)
ACTIVITIES = {
    p: [r for _, r in sorted({m.practitioner_role_id(r): r for r in rows}.items())]
    for p, rows in PEOPLE.items()
}
SEVERAL = next(p for p, acts in ACTIVITIES.items() if len(acts) > 1)
GONE = next(p for p, acts in ACTIVITIES.items() if len(acts) == 1 and p != SEVERAL)
ADELI = next((p for p in PEOPLE if p.startswith("0")), None)


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s: SqlStore = open_sql_store(data_url, tmp_path / "state", defs)
    _import(s, ROWS, tmp_path / "first.txt")
    yield s
    s.close()


def _import(store: SqlStore, rows: list[Row], path: Path) -> None:
    write_extraction(rows, path, generated_at=datetime(2026, 1, 1, 3, 0))
    import_extraction(store, path, parallel=False)


def _facts(row: Row) -> dict[str, str | None]:
    """What the Annuaire knows of one activity (the extraction row, as the mapping reads it)."""
    finess_ej = row[m.FINESS_EJ] if row[m.FINESS_EJ] != row[m.FINESS_SITE] else ""
    return {
        "profession": row[m.PROFESSION] or None,
        "category": row[m.CATEGORIE] or None,
        "mode": row[m.MODE] or None,
        "secteur": row[m.SECTEUR] or None,
        "role": row[m.FONCTION] if row[m.FONCTION].startswith("FON-") else None,
        "genre": row[m.GENRE] or None,
        "section_pharmacien": row[m.SECTION_PHARMA] or None,
        "finess_site": row[m.FINESS_SITE] or None,
        "finess_ej": finess_ej or None,
        "siret": row[m.SIRET] or None,
        "siren": row[m.SIREN] or None,
        "rass_id": row[m.TECHNICAL_ID] or None,
        "idnst": m.idnst(row),
        "name": row[m.RAISON_SOCIALE] or None,
        "savoir_faire_type": row[m.TYPE_SF] or None,
        "savoir_faire": row[m.SF] or None,
        "civility_of_practice": row[m.CIVILITE_EXERCICE] or None,
    }


def _context(store: SqlStore, defs: Definitions, number: str, index: int) -> ProfessionalContext:
    claims = userinfo_for_professional(store, defs, number)
    return from_userinfo(claims, index)


def test_every_imported_professional_round_trips_to_the_annuaire_facts(
    store: SqlStore, defs: Definitions
) -> None:
    for idnps, activities in ACTIVITIES.items():
        first = PEOPLE[idnps][0]
        claims = userinfo_for_professional(store, defs, idnps)
        assert claims["SubjectNameID"] == idnps
        offered = claims["SubjectRefPro"]["exercices"][0]["activities"]
        assert len(offered) == len(activities), idnps
        for index, row in enumerate(activities):
            ctx = from_userinfo(claims, index)
            assert ctx.national_id == idnps
            assert (ctx.family_name, ctx.given_name) == (first[m.NOM], first[m.PRENOM])
            kind, number = first[m.TYPE_ID_PP], first[m.ID_PP]
            assert ctx.rpps == (number if kind == "8" else None)
            assert ctx.adeli == (number if kind == "0" else None)
            got = {k: getattr(ctx.activity, k) for k in _facts(row)}
            assert got == _facts(row), (idnps, index)
            assert ctx.acr == "eidas1"
            check_professional(store, defs, ctx)  # the Annuaire accepts what it gave


def test_a_professional_is_found_by_idnps_rpps_or_adeli(store: SqlStore, defs: Definitions) -> None:
    row = ACTIVITIES[SEVERAL][0]
    for number in (SEVERAL, row[m.ID_PP], f" {row[m.ID_PP]} "):
        found = find_professional(store, defs, number)
        assert found is not None and found.practitioner["id"] == SEVERAL, number
        assert [r["id"] for r in found.roles] == sorted(
            m.practitioner_role_id(r) for r in ACTIVITIES[SEVERAL]
        )
        assert set(found.organizations) == {m.organization_id(r) for r in ACTIVITIES[SEVERAL]}
    if ADELI is not None:
        found = find_professional(store, defs, PEOPLE[ADELI][0][m.ID_PP])
        assert found is not None and found.practitioner["id"] == ADELI


def test_several_activities_need_a_choice_naming_the_structures(
    store: SqlStore, defs: Definitions
) -> None:
    claims = userinfo_for_professional(store, defs, SEVERAL)
    with pytest.raises(ProfessionalContextError, match="choose one by its number") as caught:
        from_userinfo(claims, None)
    for index, row in enumerate(ACTIVITIES[SEVERAL]):
        assert f"{index}: {row[m.RAISON_SOCIALE]}, secteur {row[m.SECTEUR]}" in str(caught.value)


def test_an_unknown_number_is_refused(store: SqlStore, defs: Definitions) -> None:
    assert find_professional(store, defs, "10999999990") is None
    with pytest.raises(ProfessionalContextError, match="no professional 10999999990") as caught:
        userinfo_for_professional(store, defs, "10999999990")
    assert caught.value.reason == "unknown"
    # a PSC context of someone the Annuaire does not hold
    claims: dict[str, Any] = userinfo_for_professional(store, defs, GONE)
    stranger = from_userinfo({**claims, "SubjectNameID": "810999999990"})
    with pytest.raises(ProfessionalContextError, match="810999999990 is unknown") as caught:
        check_professional(store, defs, stranger)
    assert caught.value.reason == "unknown"


def test_a_newer_extraction_without_him_or_his_activity_refuses_him(
    store: SqlStore, defs: Definitions, tmp_path: Path
) -> None:
    gone = _context(store, defs, GONE, 0)
    dropped_row = ACTIVITIES[SEVERAL][-1]
    dropped = _context(store, defs, SEVERAL, len(ACTIVITIES[SEVERAL]) - 1)
    kept = _context(store, defs, SEVERAL, 0)
    dropped_id = m.practitioner_role_id(dropped_row)
    newer = [
        r
        for r in ROWS
        if r[m.IDNAT_PP] != GONE
        and not (r[m.IDNAT_PP] == SEVERAL and m.practitioner_role_id(r) == dropped_id)
    ]
    _import(store, newer, tmp_path / "newer.txt")
    # the professional gone: inactive, refused at sign-in and at the cross-check
    with pytest.raises(ProfessionalContextError, match=f"{GONE} is no longer active") as caught:
        userinfo_for_professional(store, defs, GONE)
    assert caught.value.reason == "inactive"
    with pytest.raises(ProfessionalContextError, match=f"{GONE} is no longer active") as caught:
        check_professional(store, defs, gone)
    assert caught.value.reason == "inactive"
    # the activity gone: that context refused, his other activity still accepted
    with pytest.raises(ProfessionalContextError, match="is no longer active in the Annuaire") as e:
        check_professional(store, defs, dropped)
    assert e.value.reason == "activity"
    assert dropped_row[m.RAISON_SOCIALE] in str(e.value)
    check_professional(store, defs, kept)
    claims = userinfo_for_professional(store, defs, SEVERAL)
    assert len(claims["SubjectRefPro"]["exercices"][0]["activities"]) == (
        len(ACTIVITIES[SEVERAL]) - 1
    )
    # the test identities no longer list him
    listed = [p["id"] for p in list_professionals(store, defs, count=1000)]
    assert GONE not in listed and SEVERAL in listed
    assert listed == sorted(listed) and len(listed) == len(PEOPLE) - 1
