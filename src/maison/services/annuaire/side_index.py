"""The rows of the side files (diplômes, savoir-faire, MSSanté), indexed on disk by person and
by structure, so the import of the activity file can enrich each Practitioner and Organization
without holding the side files in memory.

A temporary SQLite file (deleted on close) holds one row per side row: the key it is about
(Identification nationale PP, or the structure of an ORG/APP mailbox), its kind, line and cells
as JSON. Built once before the activity file is read; looked up once per person.

https://annuaire.sante.fr/web/site-pro/extractions-publiques
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from maison.services.annuaire.extraction import RowError
from maison.services.annuaire.side_files import (
    SIDE_KINDS,
    SideRow,
    enrich_organization,
    enrich_practitioner,
    kinds_in,
    organization_keys,
    read_side_file,
)

#: Side rows inserted per statement while the index is built.
_CHUNK: Final = 5_000


class SideIndex:
    """Side rows by key, in a temporary SQLite file (https://annuaire.sante.fr/)."""

    def __init__(self) -> None:
        """Create the empty index in a fresh temporary folder (https://sqlite.org/)."""
        self._folder = Path(tempfile.mkdtemp(prefix="maison-side-"))
        self._db = sqlite3.connect(self._folder / "side.db")
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE side (key TEXT, structure INTEGER, kind TEXT, line INTEGER, cells BLOB);"
        )
        self.rows = 0
        self.files: list[str] = []

    def load(
        self,
        path: Path,
        rejected: Callable[[str, RowError], None],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Add every side file ``path`` holds (a .txt, or a zip of one or several); rejected
        rows go to ``rejected`` with the file's name (https://annuaire.sante.fr/)."""
        kinds = kinds_in(path)
        for kind, member in kinds.items():
            if kind not in SIDE_KINDS:
                continue
            self.files.append(f"{path.name}:{member}" if member != path.name else path.name)
            chunk: list[tuple[Any, ...]] = []
            for item in read_side_file(path, kind):
                if isinstance(item, RowError):
                    rejected(member, item)
                    continue
                chunk.append(
                    (
                        item.key,
                        int(item.structure_mailbox),
                        item.kind,
                        item.line,
                        orjson.dumps(dict(item.cells)),
                    )
                )
                if len(chunk) >= _CHUNK:
                    self._insert(chunk)
                    if progress is not None:
                        progress(self.rows)
            self._insert(chunk)
        self._db.execute("CREATE INDEX IF NOT EXISTS side_key ON side (key, structure)")
        if progress is not None:
            progress(self.rows)

    def _insert(self, chunk: list[tuple[Any, ...]]) -> None:
        self._db.executemany("INSERT INTO side VALUES (?, ?, ?, ?, ?)", chunk)
        self.rows += len(chunk)
        chunk.clear()

    def _rows(self, keys: Sequence[str], structure: bool) -> list[SideRow]:
        if not keys or not self.rows:
            return []
        marks = ", ".join("?" * len(keys))
        found = self._db.execute(
            f"SELECT kind, line, key, cells FROM side WHERE key IN ({marks}) AND structure = ? "
            "ORDER BY kind, line",
            (*keys, int(structure)),
        ).fetchall()
        return [SideRow(kind, line, key, orjson.loads(cells)) for kind, line, key, cells in found]

    def enrich(self, resources: Iterable[dict[str, Any]], person: str) -> list[dict[str, Any]]:
        """The person's resources with what the side files say of him and of his structures
        (https://interop.esante.gouv.fr/ig/fhir/annuaire/)."""
        out: list[dict[str, Any]] = []
        for res in resources:
            if res["resourceType"] == "Practitioner":
                rows = self._rows([person], structure=False)
                res = enrich_practitioner(res, rows) if rows else res
            elif res["resourceType"] == "Organization":
                rows = self._rows(organization_keys(res), structure=True)
                res = enrich_organization(res, rows) if rows else res
            out.append(res)
        return out

    def close(self) -> None:
        """Delete the temporary file (https://sqlite.org/)."""
        self._db.close()
        shutil.rmtree(self._folder, ignore_errors=True)


__all__ = ["SideIndex"]
