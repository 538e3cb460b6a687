"""The Annuaire Santé import into a real store (SQLite, or PostgreSQL with MAISON_TEST_STORE):
what is written, field by field; idempotent re-imports; a newer extraction changes exactly what
changed; rejects; scattered persons; a crash in the middle."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from maison.fhir.definitions import Definitions
from maison.fhir.search import parse_search
from maison.fhir.validation import Validator
from maison.security.readonly import source_of
from maison.services.annuaire import mapping as m
from maison.services.annuaire.extraction import ACTIVITE_COLUMNS, ExtractionError
from maison.services.annuaire.importer import (
    IMPORT_TAG,
    IMPORT_TAG_SYSTEM,
    SOURCE,
    ImportProgress,
    ImportSummary,
    import_extraction,
)
from maison.services.annuaire.synth import luhn_key, synthesize, write_extraction
from maison.store.import_ledger import ImportLedger
from maison.store.schema import resource, resource_history
from maison.store.sql import SqlStore
from support import open_sql_store

Row = dict[str, str]
RPPS = "https://rpps.esante.gouv.fr"


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s: SqlStore = open_sql_store(data_url, tmp_path / "state", defs)
    yield s
    s.close()


# --- the crafted extraction --------------------------------------------------------------------
BASE: list[Row] = list(synthesize(60, seed=7))


def _persons(rows: list[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(row[m.IDNAT_PP], []).append(row)
    return out


def _org_hash(row: Row) -> str:
    org = m.organization(row)
    assert org is not None
    return m.content_hash(org)


def _uniform_structures(rows: list[Row]) -> dict[str, int]:
    """Structures whose rows all give the same Organization -> how many rows use them."""
    hashes: dict[str, set[str]] = {}
    for row in rows:
        key = m.structure_key(row)
        if key is not None:
            hashes.setdefault(key, set()).add(_org_hash(row))
    counts = Counter(m.structure_key(r) for r in rows)
    return {k: counts[k] for k, h in hashes.items() if len(h) == 1}


PERSONS = _persons(BASE)
UNIFORM = _uniform_structures(BASE)
SINGLE = [p for p, rows in PERSONS.items() if len(rows) == 1]
# a person alone in his structure (removed in the newer extraction)
REMOVED = next(p for p in SINGLE if UNIFORM.get(m.structure_key(PERSONS[p][0]) or "") == 1)
# a person whose one activity moves to another structure (both shared, so both stay)
MOVER = next(
    p for p in SINGLE if p != REMOVED and UNIFORM.get(m.structure_key(PERSONS[p][0]) or "", 0) > 1
)
TARGET = next(
    r
    for r in BASE
    if UNIFORM.get(m.structure_key(r) or "", 0) > 1
    and m.structure_key(r) != m.structure_key(PERSONS[MOVER][0])
)
# a structure whose phone changes (not the mover's, not the target)
PHONED = next(
    k
    for k in UNIFORM
    if k not in (m.structure_key(PERSONS[MOVER][0]), m.structure_key(TARGET))
    and k != m.structure_key(PERSONS[REMOVED][0])
)
STRUCTURE_CELLS = [*ACTIVITE_COLUMNS[19:47], *ACTIVITE_COLUMNS[48:50]]


def _new_person(template: Row) -> Row:
    """A new professional (valid RPPS key) working at the template's structure."""
    body = "1099999999"
    rpps = body + luhn_key(body)
    return {
        **template,
        m.ID_PP: rpps,
        m.IDNAT_PP: "8" + rpps,
        m.NOM: "NOUVELLE",
        m.PRENOM: "Arrivée",
    }


def newer_extraction() -> list[Row]:
    """BASE a month later: one phone changed, one person gone, one new, one activity moved."""
    out: list[Row] = []
    for row in BASE:
        if row[m.IDNAT_PP] == REMOVED:
            continue
        if m.structure_key(row) == PHONED:
            row = {**row, m.TELEPHONE: "0199000000"}
        if row[m.IDNAT_PP] == MOVER:
            row = {**row, **{c: TARGET[c] for c in STRUCTURE_CELLS}}
        out.append(row)
    out.append(_new_person(TARGET))
    return out


def _write(rows: list[Row], path: Path) -> Path:
    return write_extraction(rows, path, generated_at=datetime(2026, 1, 1, 3, 0))


def _expected(rows: list[Row]) -> dict[tuple[str, str], dict[str, Any]]:
    """What the store should hold for ``rows``: every resource once (the first one for a
    structure), tagged as imported."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for person in _persons(rows).values():
        for res in m.resources_for_person(person):
            res["meta"]["tag"] = [IMPORT_TAG]
            out.setdefault((res["resourceType"], res["id"]), res)
    return out


def _stored(store: SqlStore, res_type: str, res_id: str) -> dict[str, Any]:
    got = store.read(lambda tx: tx.read(res_type, res_id))
    assert got is not None and got.resource is not None, (res_type, res_id)
    return got.resource


def _without_version(body: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in body["meta"].items() if k not in ("versionId", "lastUpdated")}
    return {**body, "meta": meta}


def _versions(store: SqlStore) -> tuple[int, dict[tuple[str, str], int]]:
    """(rows of resource_history, current version of every resource)."""
    with store.engine.connect() as conn:
        history = int(conn.execute(select(func.count()).select_from(resource_history)).scalar())
        current = {
            (str(t), str(i)): int(v)
            for t, i, v in conn.execute(
                select(resource.c.res_type, resource.c.res_id, resource.c.version)
            )
        }
    return history, current


def _run(store: SqlStore, path: Path, **kw: Any) -> ImportSummary:
    kw.setdefault("parallel", False)  # in-process: the child process is tested on its own
    return import_extraction(store, path, **kw)


# --- tests ------------------------------------------------------------------------------------
def test_import_writes_the_mapped_resources_tagged_and_searchable(
    store: SqlStore, tmp_path: Path, defs: Definitions
) -> None:
    path = _write(BASE, tmp_path / "PS_LibreAcces_Personne_activite_202601010300.txt")
    steps: list[ImportProgress] = []
    summary = _run(store, path, progress=steps.append, batch=7)
    expected = _expected(BASE)
    kinds = Counter(t for t, _ in expected)
    assert summary == ImportSummary(
        rows=60,
        persons=len(PERSONS),
        created=len(expected),
        updated=0,
        unchanged=0,
        deactivated=0,
        rejected=0,
        run=1,
    )
    assert kinds["Practitioner"] == len(PERSONS)
    assert kinds["PractitionerRole"] == len({m.practitioner_role_id(r) for r in BASE})
    assert {s.phase for s in steps} == {"checking", "importing", "deactivating"}
    assert steps[-1].phase == "deactivating"
    assert [s for s in steps if s.phase == "importing"][-1].done == 60
    # every resource is the mapping's, with the import tag and meta.source kept
    for key, want in expected.items():
        got = _stored(store, *key)
        assert got["meta"]["versionId"] == "1"
        assert _without_version(got) == want, key
    # field by field, for a few persons: the one with most activities, the mover
    busiest = max(PERSONS, key=lambda p: len(PERSONS[p]))
    for idnps in (busiest, MOVER):
        rows = PERSONS[idnps]
        person = _stored(store, "Practitioner", idnps)
        assert person["meta"]["source"] == "https://annuaire.esante.gouv.fr"
        assert person["meta"]["tag"] == [
            {
                "system": IMPORT_TAG_SYSTEM,
                "code": "annuaire",
                "display": "Imported from the Annuaire Santé extraction",
            }
        ]
        assert source_of(person) == "annuaire"  # read-only through the API
        assert person["active"] is True
        assert [(i["system"], i["value"]) for i in person["identifier"]] == [
            ("urn:oid:1.2.250.1.71.4.2.1", idnps),
            (RPPS, rows[0][m.ID_PP]),
        ]
        assert person["name"][0]["family"] == rows[0][m.NOM]
        assert person["name"][0]["given"] == [rows[0][m.PRENOM]]
        professions = [q["code"]["coding"][0]["code"] for q in person["qualification"]]
        assert rows[0][m.PROFESSION] in professions
        for row in rows:
            role = _stored(store, "PractitionerRole", m.practitioner_role_id(row))
            assert role["practitioner"] == {"reference": f"Practitioner/{idnps}"}
            org_id = m.organization_id(row)
            assert role["organization"] == {"reference": f"Organization/{org_id}"}
            org = _stored(store, "Organization", str(org_id))
            assert org["name"] == row[m.RAISON_SOCIALE]
            assert any(t["value"] == row[m.TELEPHONE] for t in org["telecom"])
    # the search index is written with the resources
    rpps = PERSONS[busiest][0][m.ID_PP]
    query = parse_search(defs, "Practitioner", [("identifier", f"{RPPS}|{rpps}")])
    page = store.read(lambda tx: tx.search(query))
    assert [e.id for e in page.entries] == [busiest]
    query = parse_search(defs, "PractitionerRole", [("practitioner", f"Practitioner/{busiest}")])
    page = store.read(lambda tx: tx.search(query))
    assert len(page.entries) == len({m.practitioner_role_id(r) for r in PERSONS[busiest]})
    query = parse_search(
        defs, "Practitioner", [("_tag", f"{IMPORT_TAG_SYSTEM}|annuaire"), ("_total", "accurate")]
    )
    assert store.read(lambda tx: tx.search(query)).total == len(PERSONS)


def test_imported_resources_pass_base_r4_validation(
    store: SqlStore, tmp_path: Path, defs: Definitions
) -> None:
    rows = list(synthesize(300, seed=11))
    _run(store, _write(rows, tmp_path / "x.txt"))
    validator = Validator(defs)
    sample = list(_expected(rows))[::5]
    for key in sample:
        issues = validator.validate(_stored(store, *key))
        assert [i.diagnostics for i in issues if i.severity in ("error", "fatal")] == [], key


def test_reimporting_the_same_file_writes_nothing(store: SqlStore, tmp_path: Path) -> None:
    path = _write(BASE, tmp_path / "x.zip")  # a zip, as published
    first = _run(store, path, batch=5)
    before = _versions(store)
    again = _run(store, path, batch=3)
    assert (again.created, again.updated, again.deactivated) == (0, 0, 0)
    assert again.unchanged == first.created and again.run == 2
    assert _versions(store) == before  # no new version of anything


def test_a_newer_extraction_changes_exactly_what_changed(store: SqlStore, tmp_path: Path) -> None:
    _run(store, _write(BASE, tmp_path / "old.txt"))
    old_versions = _versions(store)[1]
    newer = newer_extraction()
    summary = _run(store, _write(newer, tmp_path / "new.txt"))
    removed_keys = {
        ("Practitioner", REMOVED),
        ("Organization", str(m.organization_id(PERSONS[REMOVED][0]))),
        ("PractitionerRole", m.practitioner_role_id(PERSONS[REMOVED][0])),
    }
    moved_from = m.practitioner_role_id(PERSONS[MOVER][0])
    moved_to = m.practitioner_role_id(
        {**PERSONS[MOVER][0], **{c: TARGET[c] for c in STRUCTURE_CELLS}}
    )
    newcomer = _new_person(TARGET)
    created_keys = {
        ("Practitioner", newcomer[m.IDNAT_PP]),
        ("PractitionerRole", m.practitioner_role_id(newcomer)),
        ("PractitionerRole", moved_to),
    }
    phoned_id = PHONED.split(":", 1)[1]
    assert (summary.created, summary.updated, summary.deactivated) == (3, 1, 4)
    assert summary.unchanged == len(_expected(newer)) - 3 - 1
    versions = _versions(store)[1]
    changed = {k for k, v in versions.items() if old_versions.get(k) != v}
    assert changed == removed_keys | created_keys | {
        ("PractitionerRole", moved_from),
        ("Organization", phoned_id),
    }
    # the phone
    org = _stored(store, "Organization", phoned_id)
    assert org["telecom"][0] == {"system": "phone", "value": "0199000000", "rank": 1}
    assert org["meta"]["versionId"] == "2"
    # the one gone, and the moved activity: a new version, inactive, still tagged
    for key in [*removed_keys, ("PractitionerRole", moved_from)]:
        body = _stored(store, *key)
        assert body["active"] is False and body["meta"]["versionId"] == "2", key
        assert body["meta"]["tag"] == [IMPORT_TAG]
    assert _stored(store, "PractitionerRole", moved_to)["organization"] == {
        "reference": f"Organization/{m.organization_id(TARGET)}"
    }
    assert _stored(store, "Practitioner", MOVER)["meta"]["versionId"] == "1"
    assert _stored(store, "Practitioner", newcomer[m.IDNAT_PP])["name"][0]["family"] == "NOUVELLE"
    ledger = ImportLedger(store)
    assert ledger.count(SOURCE, retired=True) == 4
    # the same newer file again: nothing; nothing made inactive twice
    again = _run(store, _write(newer, tmp_path / "new2.txt"))
    assert (again.created, again.updated, again.deactivated) == (0, 0, 0)
    # the old extraction again: the person gone comes back (a new, active version)
    back = _run(store, _write(BASE, tmp_path / "old2.txt"))
    assert (back.created, back.updated, back.deactivated) == (0, 5, 3)
    person = _stored(store, "Practitioner", REMOVED)
    assert person["active"] is True and person["meta"]["versionId"] == "3"
    assert ledger.count(SOURCE, retired=True) == 3  # the newcomer and the moved role


def test_broken_rows_are_rejected_with_their_line_and_the_import_goes_on(
    store: SqlStore, tmp_path: Path
) -> None:
    path = _write(BASE[:10], tmp_path / "x.txt")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    bad_key = lines[3].replace(BASE[2][m.ID_PP], BASE[2][m.ID_PP][:10] + "0", 1)
    bad_key = bad_key.replace(BASE[2][m.IDNAT_PP], "8" + BASE[2][m.ID_PP][:10] + "0", 1)
    if bad_key == lines[3]:
        pytest.fail("the crafted row did not change")
    short = "|".join(lines[5].split("|")[:40]) + "|\n"
    lines[3], lines[5] = bad_key, short
    path.write_text("".join(lines), encoding="utf-8")
    summary = _run(store, path)
    assert summary.rejected == 2 and summary.rows == 10
    assert summary.rejects_path == tmp_path / "x.txt.rejects.txt"
    rejects = summary.rejects_path.read_text(encoding="utf-8").splitlines()
    assert len(rejects) == 2
    assert rejects[0].startswith("line 4: RPPS") and "check digit" in rejects[0]
    assert rejects[1] == "line 6: 40 columns instead of 56"
    kept = BASE[:2] + BASE[3:4] + BASE[5:10]
    assert summary.created == len(_expected(kept)) > 0  # the others are imported
    elsewhere = tmp_path / "rejects" / "out.txt"
    elsewhere.parent.mkdir()
    assert _run(store, path, rejects_path=elsewhere).rejects_path == elsewhere
    assert elsewhere.read_text(encoding="utf-8").splitlines() == rejects
    # once the extraction is clean, its reject file goes with the next import
    _write(BASE[:10], path)
    assert _run(store, path).rejects_path is None
    assert not (tmp_path / "x.txt.rejects.txt").exists()


@pytest.mark.parametrize("parallel", [False, True])
def test_a_file_that_is_not_the_extraction_writes_nothing(
    store: SqlStore, tmp_path: Path, parallel: bool
) -> None:
    path = tmp_path / "patients.csv"
    path.write_text("nom;prenom;naissance\nMARTIN;CLAIRE;1980-01-01\n", encoding="utf-8")
    with pytest.raises(ExtractionError, match="not a PS_LibreAcces_Personne_activite"):
        import_extraction(store, path, parallel=parallel)
    assert store.count() == 0
    assert ImportLedger(store).count(SOURCE) == 0
    assert not (tmp_path / "patients.csv.rejects.txt").exists()


def test_an_extraction_without_valid_rows_makes_nothing_inactive(
    store: SqlStore, tmp_path: Path
) -> None:
    _run(store, _write(BASE[:5], tmp_path / "x.txt"))
    empty = _write([], tmp_path / "empty.txt")
    summary = _run(store, empty)
    assert (summary.rows, summary.persons, summary.deactivated) == (0, 0, 0)


def test_scattered_rows_of_a_person_are_merged(store: SqlStore, tmp_path: Path) -> None:
    busiest = max(PERSONS, key=lambda p: len(PERSONS[p]))
    rows = PERSONS[busiest]
    assert len(rows) >= 2
    others = [r for r in BASE if r[m.IDNAT_PP] != busiest]
    # his first activity at the start, the others far away, not adjacent
    scattered = [rows[0], *others[:20], *rows[1:], *others[20:]]
    summary = _run(store, _write(scattered, tmp_path / "scattered.txt"), batch=4)
    assert summary.persons == len(PERSONS)
    assert summary.created == len(_expected(BASE))
    person = _stored(store, "Practitioner", busiest)
    assert _without_version(person) == _expected(BASE)[("Practitioner", busiest)]
    for row in rows:  # every activity kept
        role = _stored(store, "PractitionerRole", m.practitioner_role_id(row))
        assert role["active"] is True and role["meta"]["versionId"] == "1"
    # idempotent too, and the same store as from the sorted file
    before = _versions(store)
    again = _run(store, _write(scattered, tmp_path / "scattered2.txt"), batch=3)
    assert (again.created, again.updated, again.deactivated) == (0, 0, 0)
    assert _versions(store) == before
    sorted_file = _run(store, _write(BASE, tmp_path / "sorted.txt"))
    assert (sorted_file.created, sorted_file.updated, sorted_file.deactivated) == (0, 0, 0)


def test_the_child_process_reads_and_maps(store: SqlStore, tmp_path: Path) -> None:
    path = _write(BASE, tmp_path / "x.zip")
    seen: list[str] = []
    summary = import_extraction(store, path, progress=lambda p: seen.append(p.phase))
    assert summary.created == len(_expected(BASE)) and summary.rows == 60
    assert seen[0] == "checking" and "importing" in seen
    again = _run(store, path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, summary.created)


def test_a_crash_mid_import_leaves_a_consistent_store_that_the_next_import_completes(
    store: SqlStore, tmp_path: Path
) -> None:
    path = _write(BASE, tmp_path / "x.txt")
    calls = 0

    def crashing(resource: Mapping[str, Any]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls > 40:
            raise RuntimeError("the machine lost power")
        return []

    with pytest.raises(RuntimeError, match="lost power"):
        _run(store, path, batch=3, validate=crashing)
    ledger = ImportLedger(store)
    written = _versions(store)[1]
    assert 0 < len(written) <= 40  # whole batches only
    recorded = ledger.hashes(SOURCE, list(_expected(BASE)))
    assert set(recorded) == set(written)  # the ledger and the store agree
    for key, digest in recorded.items():
        assert m.content_hash(_stored(store, *key)) == digest
    done = _run(store, path)
    assert done.created == len(_expected(BASE)) - len(written)
    assert (done.updated, done.unchanged, done.deactivated) == (0, len(written), 0)


def test_resources_the_validator_refuses_are_reported_not_written(
    store: SqlStore, tmp_path: Path
) -> None:
    path = _write(BASE, tmp_path / "x.txt")
    refused = ("Practitioner", MOVER)

    def validate(resource: Mapping[str, Any]) -> list[str]:
        if (resource["resourceType"], resource["id"]) == refused:
            return ["Practitioner.name: minimum required = 2, but only found 1"]
        return []

    summary = _run(store, path, validate=validate)
    assert summary.invalid == 1 and summary.rejected == 0
    assert store.read(lambda tx: tx.read(*refused)) is None
    assert summary.rejects_path is not None
    line = BASE.index(PERSONS[MOVER][0]) + 2
    assert summary.rejects_path.read_text(encoding="utf-8") == (
        f"line {line}: Practitioner/{MOVER} not written: "
        "Practitioner.name: minimum required = 2, but only found 1\n"
    )
    # written once accepted; never made inactive meanwhile
    assert _run(store, path).created == 1
