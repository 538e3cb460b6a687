"""The authorization chokepoint: a store transaction that checks the caller's scopes on every
operation, so no handler can forget it.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from maison.fhir.definitions import Definitions
from maison.fhir.errors import Category, FhirError
from maison.fhir.search import SearchQuery, compartment_criterion, parse_search
from maison.security.principal import Principal
from maison.security.readonly import check_change
from maison.security.record_guard import RecordGuard
from maison.security.scopes import authorize
from maison.store.interface import HistoryPage, SearchPage, Stored, StoreTx

# Types an import may keep read-only (the Annuaire Santé's): only their updates and deletes
# read the current version to check its import tag.
PROTECTABLE_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "HealthcareService", "Device"}
)


def _not_audit(res_type: str) -> None:
    """AuditEvents are written by the platform only, into the audit trail, never as resources
    (https://hl7.org/fhir/R4/auditevent.html)."""
    if res_type == "AuditEvent":
        raise FhirError(
            Category.METHOD_NOT_ALLOWED,
            "AuditEvents are written by the platform only; they cannot be created, changed or "
            "deleted through the API",
        )


@dataclass
class GuardedTx:
    """A StoreTx seen through one principal's permissions: its scopes, and, for a patient
    token, the Patient compartment of its patient (SMART ``patient/`` scopes)."""

    tx: StoreTx
    principal: Principal
    defs: Definitions | None = None
    #: the DMP access rules of this request (None: scopes and compartment only)
    rules: RecordGuard | None = None

    # --- the patient compartment of a patient/ token ------------------------------------
    def _confined(self) -> tuple[str, str] | None:
        return self.principal.compartment() if self.defs is not None else None

    def _member(self, stored: Stored | None, owner: tuple[str, str]) -> bool:
        """Whether a stored resource is one a patient token may see: in its Patient
        compartment, the content of a document that is, or reference data outside any
        compartment (https://hl7.org/fhir/R4/compartmentdefinition-patient.html)."""
        if stored is None or stored.resource is None or stored.deleted:
            return True  # nothing to show: the handler says not found / gone
        assert self.defs is not None
        kind, pid = owner
        if stored.type == kind:
            return stored.id == pid
        if stored.type == "Binary":
            context = stored.resource.get("securityContext")
            ref = context.get("reference") if isinstance(context, Mapping) else None
            if not isinstance(ref, str) or "/" not in ref:
                return False
            ctype, _, cid = ref.rpartition("/")
            return self._member(self.tx.read(ctype.rsplit("/", 1)[-1], cid), owner)
        codes = self.defs.compartments.get(kind, {}).get(stored.type)
        if not codes:
            return True  # directory and reference data (Practitioner, Organization…)
        query = parse_search(self.defs, stored.type, [("_id", stored.id)])
        query.criteria.append(compartment_criterion(self.defs, kind, pid, stored.type))
        query.count, query.total = 1, "none"
        return bool(self.tx.search(query).entries)

    def _check_member(self, stored: Stored | None, action: str = "read") -> Stored | None:
        owner = self._confined()
        if owner is not None and not self._member(stored, owner):
            assert stored is not None
            reason = (
                f"{stored.type}/{stored.id} is outside the record of {owner[0]}/{owner[1]}, "
                "the only one this token may see"
            )
            if self.rules is not None:
                self.rules.outside(self.tx, stored, action, reason)
            raise FhirError(Category.FORBIDDEN, reason)
        return stored

    def _check_written(self, res_type: str, resource: dict[str, Any]) -> None:
        """A patient token writes only into its own record: the resource is its Patient or
        names it (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""
        owner = self._confined()
        if owner is None:
            return
        kind, pid = owner
        if res_type == kind:
            if resource.get("id") == pid:
                return
        elif f'"{kind}/{pid}"' in orjson.dumps(resource).decode() or (
            res_type == "Binary" and self._content_of_own_document(resource, f"{kind}/{pid}")
        ):
            return
        raise FhirError(
            Category.FORBIDDEN,
            f"this token writes only into the record of {kind}/{pid}",
        )

    def _content_of_own_document(self, binary: dict[str, Any], owner: str) -> bool:
        """A Binary whose ``securityContext`` is a DocumentReference of the token's own record
        (the content of a document the patient feeds: https://hl7.org/fhir/R4/binary.html)."""
        ref = (binary.get("securityContext") or {}).get("reference")
        if not isinstance(ref, str) or not ref.startswith("DocumentReference/"):
            return False
        doc = self.tx.read("DocumentReference", ref.removeprefix("DocumentReference/"))
        if doc is None or doc.deleted or doc.resource is None:
            return False
        return (doc.resource.get("subject") or {}).get("reference") == owner

    def read(self, res_type: str, res_id: str) -> Stored | None:
        """read, allowed by a read scope on the type."""
        authorize(self.principal, "read", res_type)
        stored = self._check_member(self.tx.read(res_type, res_id))
        return self.rules.check(self.tx, stored, "read") if self.rules is not None else stored

    def replaced(self, res_type: str, res_id: str) -> Stored | None:
        """The version an update replaces, for write rules: allowed by an update scope (a
        write-only client never sees it)."""
        authorize(self.principal, "update", res_type)
        return self.tx.replaced(res_type, res_id)

    def vread(self, res_type: str, res_id: str, version: int) -> Stored | None:
        """vread, allowed by a read scope on the type."""
        authorize(self.principal, "vread", res_type)
        if self._confined() is not None:
            self._check_member(self.tx.read(res_type, res_id), "vread")
        stored = self._check_member(self.tx.vread(res_type, res_id, version), "vread")
        return self.rules.check(self.tx, stored, "vread") if self.rules is not None else stored

    def create(
        self,
        res_type: str,
        resource: dict[str, Any],
        res_id: str | None = None,
        fresh: bool = False,
    ) -> Stored:
        """create, allowed by a write/create scope on the type."""
        _not_audit(res_type)
        authorize(self.principal, "create", res_type)
        check_change(self.principal, "create", res_type, resource, None)
        self._check_written(res_type, resource if res_id is None else {**resource, "id": res_id})
        stored = self.tx.create(res_type, resource, res_id, fresh)
        if self.rules is not None:
            self.rules.wrote("create", stored)
        return stored

    def update(
        self,
        res_type: str,
        res_id: str,
        resource: dict[str, Any],
        expected_version: int | None = None,
    ) -> tuple[Stored, bool]:
        """update (or update-as-create), allowed by a write/update scope on the type."""
        _not_audit(res_type)
        authorize(self.principal, "update", res_type)
        if res_type in PROTECTABLE_TYPES:
            current = self.tx.replaced(res_type, res_id)
            old = current.resource if current is not None and not current.deleted else None
            check_change(self.principal, "update", res_type, resource, old)
        if self._confined() is not None:
            self._check_member(self.tx.read(res_type, res_id), "update")
            self._check_written(res_type, {**resource, "id": res_id})
        if self.rules is not None and self.rules.guarded(res_type):
            self.rules.check_write(self.tx, res_type, self.tx.read(res_type, res_id), "update")
        stored, created = self.tx.update(res_type, res_id, resource, expected_version)
        if self.rules is not None:
            self.rules.wrote("create" if created else "update", stored)
        return stored, created

    def delete(self, res_type: str, res_id: str) -> Stored | None:
        """delete, allowed by a write/delete scope on the type."""
        _not_audit(res_type)
        authorize(self.principal, "delete", res_type)
        if res_type in PROTECTABLE_TYPES:
            current = self.tx.replaced(res_type, res_id)
            old = current.resource if current is not None and not current.deleted else None
            check_change(self.principal, "delete", res_type, None, old)
        if self._confined() is not None:
            self._check_member(self.tx.read(res_type, res_id), "delete")
        current = self.tx.read(res_type, res_id) if self.rules is not None else None
        if self.rules is not None and self.rules.guarded(res_type):
            self.rules.check_write(self.tx, res_type, current, "delete")
        gone = self.tx.delete(res_type, res_id)
        if self.rules is not None and current is not None and not current.deleted:
            self.rules.wrote("delete", current)
        return gone

    def search(self, query: SearchQuery) -> SearchPage:
        """search, allowed by a read/search scope on the type."""
        if query.types:
            query = self._readable_types(query)
        else:
            authorize(self.principal, "search-type", query.resource_type)
        owner = self._confined()
        if owner is not None:
            query = self._within(query, owner)
        rules = self.rules
        if rules is not None:
            narrowed = rules.narrow(self.tx, query)
            if narrowed is None:  # no document of the record may be shown: nothing matches
                return SearchPage([], 0 if query.total != "none" else None, False)
            query = narrowed
        page = self.tx.search(query)
        if owner is not None and page.included:
            kept_ = [s for s in page.included if self._member(s, owner)]
            page = replace(page, included=kept_)
        if rules is not None:
            kept = rules.keep(self.tx, page.entries, "search")
            total = page.total
            if total is not None and len(kept) < len(page.entries):  # never counts the unseen
                total -= len(page.entries) - len(kept)
            page = replace(
                page,
                entries=kept,
                total=total,
                included=rules.keep(self.tx, page.included, "search"),
            )
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

    def _within(self, query: SearchQuery, owner: tuple[str, str]) -> SearchQuery:
        """A patient token's search, narrowed to its patient's compartment; a type outside
        the compartment is directory data, searched whole; Binary is never searched (its
        documents are reached through their DocumentReference)."""
        assert self.defs is not None
        kind, pid = owner
        if query.types:
            raise FhirError(
                Category.FORBIDDEN,
                "a patient token searches one resource type at a time, within its record",
            )
        rtype = query.resource_type
        if rtype == "Binary":
            raise FhirError(
                Category.FORBIDDEN,
                "documents are found through their DocumentReference, not by searching Binary",
            )
        if rtype == kind or self.defs.compartments.get(kind, {}).get(rtype):
            criteria = [*query.criteria, compartment_criterion(self.defs, kind, pid, rtype)]
            return replace(query, criteria=criteria)
        return query

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
        having: Mapping[str, tuple[str, str]] | None = None,
    ) -> list[tuple[str, str]]:
        """The resources referencing ``res_type/res_id``, only when the caller may read every
        type found: an operation that repoints references (``$merge``) does all or nothing
        (https://hl7.org/fhir/R4/references.html)."""
        authorize(self.principal, "read", res_type)
        found = self.tx.referencing(res_type, res_id, via, having)
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

    def read_many(self, res_type: str, ids: Collection[str]) -> dict[str, Stored]:
        """Several reads of one type, each allowed as :meth:`read` would allow it (a forbidden
        one refuses the whole call)."""
        authorize(self.principal, "read", res_type)
        found = self.tx.read_many(res_type, ids)
        for stored in found.values():
            self._check_member(stored)
            if self.rules is not None:
                self.rules.check(self.tx, stored, "read")
        return found

    def read_each(self, refs: Collection[tuple[str, str]]) -> dict[tuple[str, str], Stored]:
        """Reads of several types, each allowed as :meth:`read` would allow it (a forbidden
        one refuses the whole call)."""
        for res_type in sorted({t for t, _ in refs}):
            authorize(self.principal, "read", res_type)
        found = self.tx.read_each(refs)
        for stored in found.values():
            self._check_member(stored)
            if self.rules is not None:
                self.rules.check(self.tx, stored, "read")
        return found

    def last_write(self) -> int:
        """The write stamp, for caches (a seq number only: no resource is read)."""
        return self.tx.last_write()

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
        if self._confined() is not None:
            if res_type is None or res_id is None:
                raise FhirError(
                    Category.FORBIDDEN,
                    "a patient token reads the history of its own resources only, one at a time",
                )
            self._check_member(self.tx.read(res_type, res_id), "history")
        rules = self.rules
        if rules is not None and rules.viewer.kind != "system":
            if res_type is None or (res_id is None and rules.guarded(res_type)):
                raise FhirError(
                    Category.FORBIDDEN,
                    "the history of patients' records is read one resource at a time",
                )
            if res_id is not None and rules.guarded(res_type):
                rules.check(self.tx, self.tx.read(res_type, res_id), "history")
        return self.tx.history(res_type, res_id, since, count, before_seq)
