"""The authorization chokepoint: a store transaction that checks the caller's scopes on every
operation, so no handler can forget it.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from maison.fhir.errors import FhirError
from maison.fhir.search import SearchQuery
from maison.security.principal import Principal
from maison.security.readonly import check_change
from maison.security.scopes import authorize
from maison.store.interface import HistoryPage, SearchPage, Stored, StoreTx

# Types an import may keep read-only (the Annuaire Santé's): only their updates and deletes
# read the current version to check its import tag.
PROTECTABLE_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "HealthcareService", "Device"}
)


@dataclass
class GuardedTx:
    """A StoreTx seen through one principal's permissions."""

    tx: StoreTx
    principal: Principal

    def read(self, res_type: str, res_id: str) -> Stored | None:
        """read, allowed by a read scope on the type."""
        authorize(self.principal, "read", res_type)
        return self.tx.read(res_type, res_id)

    def replaced(self, res_type: str, res_id: str) -> Stored | None:
        """The version an update replaces, for write rules: allowed by an update scope (a
        write-only client never sees it)."""
        authorize(self.principal, "update", res_type)
        return self.tx.replaced(res_type, res_id)

    def vread(self, res_type: str, res_id: str, version: int) -> Stored | None:
        """vread, allowed by a read scope on the type."""
        authorize(self.principal, "vread", res_type)
        return self.tx.vread(res_type, res_id, version)

    def create(
        self,
        res_type: str,
        resource: dict[str, Any],
        res_id: str | None = None,
        fresh: bool = False,
    ) -> Stored:
        """create, allowed by a write/create scope on the type."""
        authorize(self.principal, "create", res_type)
        check_change(self.principal, "create", res_type, resource, None)
        return self.tx.create(res_type, resource, res_id, fresh)

    def update(
        self,
        res_type: str,
        res_id: str,
        resource: dict[str, Any],
        expected_version: int | None = None,
    ) -> tuple[Stored, bool]:
        """update (or update-as-create), allowed by a write/update scope on the type."""
        authorize(self.principal, "update", res_type)
        if res_type in PROTECTABLE_TYPES:
            current = self.tx.replaced(res_type, res_id)
            old = current.resource if current is not None and not current.deleted else None
            check_change(self.principal, "update", res_type, resource, old)
        return self.tx.update(res_type, res_id, resource, expected_version)

    def delete(self, res_type: str, res_id: str) -> Stored | None:
        """delete, allowed by a write/delete scope on the type."""
        authorize(self.principal, "delete", res_type)
        if res_type in PROTECTABLE_TYPES:
            current = self.tx.replaced(res_type, res_id)
            old = current.resource if current is not None and not current.deleted else None
            check_change(self.principal, "delete", res_type, None, old)
        return self.tx.delete(res_type, res_id)

    def search(self, query: SearchQuery) -> SearchPage:
        """search, allowed by a read/search scope on the type."""
        if query.types:
            query = self._readable_types(query)
        else:
            authorize(self.principal, "search-type", query.resource_type)
        page = self.tx.search(query)
        if not page.included:
            return page
        readable: dict[str, bool] = {}
        for stored in page.included:
            if stored.type not in readable:
                try:
                    authorize(self.principal, "read", stored.type)
                    readable[stored.type] = True
                except FhirError:
                    readable[stored.type] = False
        kept = [s for s in page.included if readable[s.type]]  # _include never widens access
        return replace(page, included=kept)

    def _readable_types(self, query: SearchQuery) -> SearchQuery:
        """A system-level search keeps the types the token may search; with ``_type``
        naming a type it may not, the whole search is refused (never silently narrowed)."""
        allowed: list[str] = []
        refusal: FhirError | None = None
        for rtype in query.types:
            try:
                authorize(self.principal, "search-type", rtype)
                allowed.append(rtype)
            except FhirError as exc:
                refusal = refusal or exc
        if refusal is not None and (query.explicit_types or not allowed):
            raise refusal
        return replace(query, types=tuple(allowed))

    def referencing(
        self,
        res_type: str,
        res_id: str,
        via: Mapping[str, Collection[str]] | None = None,
    ) -> list[tuple[str, str]]:
        """The resources referencing ``res_type/res_id``, only when the caller may read every
        type found: an operation that repoints references (``$merge``) does all or nothing
        (https://hl7.org/fhir/R4/references.html)."""
        authorize(self.principal, "read", res_type)
        found = self.tx.referencing(res_type, res_id, via)
        for rtype in sorted({t for t, _ in found}):
            authorize(self.principal, "read", rtype)
        return found

    def holders(
        self, res_type: str, code: str, system: str, value: str, writing: str | None = None
    ) -> list[Stored]:
        """Who holds an identifier, for the integrity checks of a write (one INS one patient;
        an INS named in a document must be qualified): allowed by a create or update scope on
        the type being written (``writing``, default ``res_type``). The bodies stay in the
        server: the client is only told what its own write would break."""
        target = writing or res_type
        try:
            authorize(self.principal, "create", target)
        except FhirError:
            authorize(self.principal, "update", target)
        return self.tx.holders(res_type, code, system, value)

    def operation(
        self, code: str, interaction: str, res_type: str | None, contexts: frozenset[str]
    ) -> None:
        """An ``$operation`` needs the interaction its registration names, from a scope of one
        of ``contexts`` (e.g. INSi only for professionals and systems, never a patient app):
        https://hl7.org/fhir/R4/operations.html."""
        try:
            authorize(self.principal, interaction, res_type, contexts)
        except FhirError as exc:
            raise FhirError(exc.category, f"${code}: {exc.message}") from None

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        since: str | None,
        count: int,
        before_seq: int | None,
    ) -> HistoryPage:
        """history, allowed by a read scope on the type (every type for system history)."""
        level = "history-instance" if res_id else "history-type" if res_type else "history-system"
        authorize(self.principal, level, res_type)
        return self.tx.history(res_type, res_id, since, count, before_seq)
