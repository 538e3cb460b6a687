"""The other Annuaire sources in the import: side files (diplômes, savoir-faire, MSSanté) that
enrich the activity extraction, and the FINESS establishment extraction that owns the
structures it holds. Real store (SQLite, or PostgreSQL with MAISON_TEST_STORE)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from maison.fhir.definitions import Definitions
from maison.services.annuaire import mapping as m
from maison.services.annuaire import side_files as sf
from maison.services.annuaire.finess import organization_from_finess, read_establishments
from maison.services.annuaire.finess_synth import synthesize_finess, write_finess
from maison.services.annuaire.importer import (
    FINESS_SOURCE,
    SOURCE,
    import_extraction,
    import_finess,
)
from maison.services.annuaire.side_synth import write_side_files
from maison.services.annuaire.synth import synthesize, write_extraction
from maison.store.import_ledger import ImportLedger
from maison.store.schema import resource_history
from maison.store.sql import SqlStore
from servers import MAISON
from support import open_sql_store

STAMP = datetime(2026, 1, 1, 3, 0)
ROWS = list(synthesize(120, seed=11))


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s: SqlStore = open_sql_store(data_url, tmp_path / "state", defs)
    yield s
    s.close()


def _versions(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(resource_history)).scalar_one())


def _read(store: SqlStore, res_type: str, res_id: str) -> dict[str, Any]:
    stored = store.read(lambda tx: tx.read(res_type, res_id))
    assert stored is not None and stored.resource is not None, (res_type, res_id)
    body: dict[str, Any] = stored.resource
    return body


def _side_rows(paths: dict[str, Path]) -> list[sf.SideRow]:
    out: list[sf.SideRow] = []
    for path in paths.values():
        out += [r for r in sf.read_side_file(path) if isinstance(r, sf.SideRow)]
    return out


# --- side files ------------------------------------------------------------------------------


def test_side_files_enrich_what_the_activity_import_writes(store: SqlStore, tmp_path: Path) -> None:
    activity = write_extraction(ROWS, tmp_path / "activite.txt", generated_at=STAMP)
    sides = write_side_files(ROWS, tmp_path / "sides", seed=3, generated_at=STAMP)
    side_rows = _side_rows(sides)  # type: ignore[arg-type]
    summary = import_extraction(store, activity, side_files=list(sides.values()), parallel=False)
    assert summary.rejected == 0
    # every person's Practitioner is exactly the enrichment of what the activity rows give
    persons: dict[str, list[dict[str, str]]] = {}
    for row in ROWS:
        persons.setdefault(row[m.IDNAT_PP], []).append(row)
    enriched = diplomas = mailboxes = 0
    for key, rows in persons.items():
        practitioner = next(
            r for r in m.resources_for_person(rows) if r["resourceType"] == "Practitioner"
        )
        mine = [r for r in side_rows if r.key == key and not r.structure_mailbox]
        expected = sf.enrich_practitioner(practitioner, mine) if mine else practitioner
        stored = _read(store, "Practitioner", practitioner["id"])
        got = {k: v for k, v in stored.items() if k not in ("meta",)}
        assert got == {k: v for k, v in expected.items() if k != "meta"}, key
        enriched += bool(mine)
        diplomas += any(q.get("code", {}).get("coding") for q in got.get("qualification", []))
        mailboxes += any(t.get("extension") for t in got.get("telecom", []))
    assert enriched > 50 and diplomas > 50 and mailboxes > 20
    # structure mailboxes (ORG/APP) land on their Organization
    structure_rows = [r for r in side_rows if r.structure_mailbox]
    assert structure_rows
    boxed = [
        org_id
        for org_id in _org_ids(ROWS)
        if any(
            sf.MAILBOX_METADATA_URL in str(t.get("extension"))
            for t in _read(store, "Organization", org_id).get("telecom", [])
        )
    ]
    assert boxed
    # the same files again: nothing written
    before = _versions(store)
    again = import_extraction(store, activity, side_files=list(sides.values()), parallel=False)
    assert (again.created, again.updated, _versions(store)) == (0, 0, before)


def _org_ids(rows: list[dict[str, str]]) -> list[str]:
    return sorted({i for r in rows if (i := m.organization_id(r)) is not None})


def test_a_bad_side_row_is_rejected_with_its_file_and_line(store: SqlStore, tmp_path: Path) -> None:
    activity = write_extraction(ROWS, tmp_path / "activite.txt", generated_at=STAMP)
    sides = write_side_files(ROWS, tmp_path / "sides", seed=3, generated_at=STAMP)
    path = sides["diplomes"]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(2, "8|123|8123|TROP|COURT|\n")
    path.write_text("".join(lines), encoding="utf-8")
    summary = import_extraction(
        store,
        activity,
        side_files=list(sides.values()),
        rejects_path=tmp_path / "rejects.txt",
        parallel=True,
    )
    assert summary.rejected == 1
    text = (tmp_path / "rejects.txt").read_text(encoding="utf-8")
    assert text.startswith(f"line 3: {path.name}: ")


# --- FINESS ------------------------------------------------------------------------------------


def _finess_for(rows: list[dict[str, str]], n: int) -> list[dict[str, str]]:
    """A FINESS extraction whose first establishment is the FINESS site of an activity row."""
    site = next(r for r in rows if r[m.FINESS_SITE])
    out = list(synthesize_finess(n, seed=5))
    out[0] = {**out[0], "nofinesset": site[m.FINESS_SITE]}
    return out


def test_finess_owns_the_structures_it_holds(store: SqlStore, tmp_path: Path) -> None:
    activity = write_extraction(ROWS, tmp_path / "activite.txt", generated_at=STAMP)
    import_extraction(store, activity, parallel=False)
    establishments = _finess_for(ROWS, 30)
    finess = write_finess(establishments, tmp_path / "finess.csv", generated_at=STAMP)
    first = import_finess(store, finess)
    assert first.rejected == 0 and first.persons == 30
    assert first.updated == 1 and first.created == 29  # the shared one replaced
    shared = next(e for e in read_establishments(finess) if not isinstance(e, Exception))
    org_id = organization_from_finess(shared)["id"]  # type: ignore[arg-type]
    body = _read(store, "Organization", org_id)
    assert [t["code"] for t in body["meta"]["tag"]] == [FINESS_SOURCE]
    # the activity import references it and no longer writes it, nor takes it back
    before = _versions(store)
    again = import_extraction(store, activity, parallel=False)
    assert (again.created, again.updated, again.deactivated) == (0, 0, 0)
    assert _versions(store) == before
    # an activity extraction without that structure does not make it inactive
    site = shared.nofinesset  # type: ignore[union-attr]
    without = [r for r in ROWS if r[m.FINESS_SITE] != site]
    newer = write_extraction(without, tmp_path / "newer.txt", generated_at=STAMP)
    import_extraction(store, newer, parallel=False)
    assert _read(store, "Organization", org_id)["active"] is True
    ledger = ImportLedger(store)
    assert ledger.hashes(SOURCE, [("Organization", org_id)]) == {}
    # the FINESS extraction without it does
    gone = write_finess(establishments[1:], tmp_path / "finess2.csv", generated_at=STAMP)
    second = import_finess(store, gone)
    assert (second.created, second.updated, second.deactivated) == (0, 0, 1)
    assert _read(store, "Organization", org_id)["active"] is False


def test_finess_bad_lines_are_rejected_and_the_import_goes_on(
    store: SqlStore, tmp_path: Path
) -> None:
    path = write_finess(list(synthesize_finess(10, seed=2)), tmp_path / "f.csv", generated_at=STAMP)
    lines = path.read_bytes().split(b"\n")
    lines.insert(3, b"structureet;12345;too;short")
    path.write_bytes(b"\n".join(lines))
    summary = import_finess(store, path, rejects_path=tmp_path / "r.txt")
    assert summary.rejected == 1 and summary.created == 10
    assert (tmp_path / "r.txt").read_text(encoding="utf-8").startswith("line 4: ")


# --- the command -------------------------------------------------------------------------------


def test_the_command_reads_each_files_kind(data_url: str, tmp_path: Path) -> None:
    activity = write_extraction(ROWS[:40], tmp_path / "activite.zip", generated_at=STAMP)
    sides = write_side_files(ROWS[:40], tmp_path / "s", seed=1, generated_at=STAMP, compress=True)
    finess = write_finess(_finess_for(ROWS[:40], 5), tmp_path / "finess.zip", generated_at=STAMP)
    where = ["--data", data_url, "--state", str(tmp_path / "state")]
    done = subprocess.run(
        [
            *MAISON,
            "annuaire",
            "import",
            str(activity),
            *map(str, sides.values()),
            str(finess),
            *where,
        ],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # the summary lists FINESS first, then the activity file
    table = done.stderr.replace("┃", "│")
    assert 0 < table.index("│ finess.zip") < table.index("│ activite.zip"), table
    # a file of no known kind: one message, exit 2, nothing imported
    stray = tmp_path / "notes.txt"
    stray.write_text("hello\n", encoding="utf-8")
    bad = subprocess.run(
        [*MAISON, "annuaire", "import", str(stray), *where],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "notes.txt" in bad.stderr
