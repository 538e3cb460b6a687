"""The storage interface every adapter implements (one contract suite runs on all of them).

https://hl7.org/fhir/R4/http.html — the persistence needs of the RESTful interactions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from maison.fhir.search import Cursor, SearchQuery


@dataclass(frozen=True)
class Stored:
    """One stored version of a resource (``resource`` is None for a deletion)."""

    type: str
    id: str
    version: int
    last_updated: str
    deleted: bool
    resource: dict[str, Any] | None
    method: str = ""
    seq: int = 0


@dataclass(frozen=True)
class HistoryPage:
    """A page of history entries, newest first, and the cursor of the next page if any."""

    entries: list[Stored]
    total: int | None
    next_cursor: int | None


@dataclass(frozen=True)
class SearchPage:
    """The ids matching a search, one page of them, and the total if asked."""

    entries: list[Stored]
    total: int | None
    has_more: bool
    included: list[Stored] = field(default_factory=list)  # _include / _revinclude
    last: Cursor | None = None  # where this page ended, when there is a next page


class StoreTx(Protocol):
    """Operations inside one atomic unit; all or nothing on commit."""

    def read(self, res_type: str, res_id: str) -> Stored | None:
        """The current version (a tombstone if deleted), or None if never written."""

    def replaced(self, res_type: str, res_id: str) -> Stored | None:
        """The current version an update is about to replace (for write rules that compare
        old and new); a right to update, not to read, is what it needs."""

    def vread(self, res_type: str, res_id: str, version: int) -> Stored | None:
        """One version."""

    def create(
        self,
        res_type: str,
        resource: dict[str, Any],
        res_id: str | None = None,
        fresh: bool = False,
    ) -> Stored:
        """Store a new resource: a new id, or ``res_id`` if free (``fresh``: known unused)."""

    def update(
        self,
        res_type: str,
        res_id: str,
        resource: dict[str, Any],
        expected_version: int | None = None,
    ) -> tuple[Stored, bool]:
        """Store a new version (creating it if absent); returns (stored, created)."""

    def delete(self, res_type: str, res_id: str) -> Stored | None:
        """Mark deleted (history kept); None if there was nothing to delete."""

    def search(self, query: SearchQuery) -> SearchPage:
        """Run a parsed search."""

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        since: str | None,
        count: int,
        before_seq: int | None,
    ) -> HistoryPage:
        """Instance, type or system history, newest first."""

    def referencing(
        self,
        res_type: str,
        res_id: str,
        via: Mapping[str, Collection[str]] | None = None,
        having: Mapping[str, tuple[str, str]] | None = None,
    ) -> list[tuple[str, str]]:
        """(type, id) of the current resources whose indexed references point to
        ``res_type/res_id`` (itself excluded), sorted; ``via`` limits the look-up to these
        reference search parameters per source type; ``having`` keeps, of the source types it
        names, the resources whose token parameter holds a code in any system
        ({type: (parameter, code)}) (https://hl7.org/fhir/R4/references.html)."""

    def holders(
        self, res_type: str, code: str, system: str, value: str, writing: str | None = None
    ) -> list[Stored]:
        """The current resources of the type whose token parameter holds
        ``system|value``; ``writing`` names the type whose write asks (for the guard)
        (https://hl7.org/fhir/R4/search.html#token)."""

    def read_each(self, refs: Collection[tuple[str, str]]) -> dict[tuple[str, str], Stored]:
        """The current, not deleted versions of those of ``refs`` (type, id) that have one,
        whatever their types (https://hl7.org/fhir/R4/http.html#read)."""

    def read_many(self, res_type: str, ids: Collection[str]) -> dict[str, Stored]:
        """The current, not deleted versions of those of ``ids`` that have one, by id
        (https://hl7.org/fhir/R4/http.html#read)."""

    def last_write(self) -> int:
        """The sequence number of the latest version written, of any type (0: none): a stamp
        that changes whenever a resource is written (for caches of what resources say)."""


class ResourceStore(Protocol):
    """A store of FHIR resources with versions and search indexes."""

    def transaction(self, write: bool = True) -> AbstractContextManager[StoreTx]:
        """Open an atomic unit of work."""

    def close(self) -> None:
        """Release connections."""
