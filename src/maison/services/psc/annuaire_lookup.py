"""The Annuaire side of Pro Santé Connect: a professional found in the imported Annuaire Santé
(Practitioner, his PractitionerRoles and their Organizations), as PSC userinfo claims for the
local provider, and the cross-check of a professional context against him.

A professional is found by his IDNPS (the Practitioner id, see
:func:`maison.services.annuaire.mapping.practitioner_id`), or by his RPPS (IDNPS ``8`` + RPPS)
or ADELI number through the identifier search. Inactive roles are kept in what is found (the
cross-check says an activity *is no longer* active rather than *unknown*).

https://interop.esante.gouv.fr/ig/fhir/annuaire/
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from maison.fhir.definitions import Definitions
from maison.fhir.search import parse_search
from maison.security.professional import (
    ADELI_SYSTEM,
    IDNPS_SYSTEM,
    RPPS_SYSTEM,
    ProfessionalContext,
    ProfessionalContextError,
    check_against_annuaire,
    userinfo_for,
)
from maison.store.sql import SqlStore, SqlTx

Resource = dict[str, Any]
#: Most roles read for one professional (a person has a handful of activities).
MAX_ROLES: Final = 1000


@dataclass(frozen=True)
class AnnuaireProfessional:
    """A Practitioner of the Annuaire with his roles (active or not) and their Organizations.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-dp-practitioner.html
    """

    practitioner: Resource
    roles: list[Resource] = field(default_factory=list)
    organizations: dict[str, Resource] = field(default_factory=dict)  # by id

    @property
    def active_roles(self) -> list[Resource]:
        """The roles the Annuaire still lists as active."""
        return [r for r in self.roles if r.get("active") is not False]


def _search_one(tx: SqlTx, defs: Definitions, system: str, number: str) -> Resource | None:
    query = parse_search(
        defs, "Practitioner", [("identifier", f"{system}|{number}"), ("_count", "2")]
    )
    entries = [e.resource for e in tx.search(query).entries if e.resource is not None]
    return entries[0] if entries else None


def _practitioner(tx: SqlTx, defs: Definitions, number: str) -> Resource | None:
    """The Practitioner of an IDNPS, an RPPS or an ADELI number."""
    for candidate in (number, f"8{number}", f"0{number}"):
        stored = tx.read("Practitioner", candidate)
        if stored is not None and stored.resource is not None:
            return stored.resource
    for system in (IDNPS_SYSTEM, RPPS_SYSTEM, ADELI_SYSTEM):
        found = _search_one(tx, defs, system, number)
        if found is not None:
            return found
    return None


def _gather(tx: SqlTx, defs: Definitions, number: str) -> AnnuaireProfessional | None:
    person = _practitioner(tx, defs, number.strip())
    if person is None:
        return None
    query = parse_search(
        defs,
        "PractitionerRole",
        [("practitioner", f"Practitioner/{person['id']}"), ("_count", str(MAX_ROLES))],
    )
    roles = [e.resource for e in tx.search(query).entries if e.resource is not None]
    roles.sort(key=lambda r: str(r.get("id", "")))
    wanted = {
        str(r["organization"]["reference"]).rsplit("/", 1)[-1]
        for r in roles
        if isinstance(r.get("organization"), Mapping) and r["organization"].get("reference")
    }
    organizations = {
        i: s.resource
        for i, s in tx.read_many("Organization", wanted).items()
        if s.resource is not None
    }
    return AnnuaireProfessional(person, roles, organizations)


def find_professional(
    store: SqlStore, defs: Definitions, number: str
) -> AnnuaireProfessional | None:
    """The Annuaire professional of an IDNPS, RPPS or ADELI number, with his roles and their
    Organizations; None when the Annuaire does not know him.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/
    """
    return store.read(lambda tx: _gather(tx, defs, number))


def userinfo_for_professional(store: SqlStore, defs: Definitions, number: str) -> dict[str, Any]:
    """The PSC userinfo claims of an active Annuaire professional (his active roles as
    activities); :class:`ProfessionalContextError` when unknown or inactive.

    https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
    """
    found = find_professional(store, defs, number)
    if found is None:
        raise ProfessionalContextError(
            f"no professional {number} in the Annuaire Santé (neither IDNPS, RPPS nor ADELI): "
            "import an extraction that holds him, or pick one `maison psc` lists",
            "unknown",
        )
    if found.practitioner.get("active") is False:
        raise ProfessionalContextError(
            f"the professional {number} is no longer active in the Annuaire Santé "
            f"(Practitioner {found.practitioner.get('id')} active: false): he cannot sign in",
            "inactive",
        )
    return userinfo_for(found.practitioner, found.active_roles, found.organizations)


def check_professional(store: SqlStore, defs: Definitions, context: ProfessionalContext) -> None:
    """Cross-check a professional context with the Annuaire the platform holds: unknown,
    inactive, or an activity he no longer has → :class:`ProfessionalContextError`.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/
    """
    found = find_professional(store, defs, context.national_id)
    if found is None:
        check_against_annuaire(context, None, [])
        return
    check_against_annuaire(context, found.practitioner, found.roles)


def list_professionals(store: SqlStore, defs: Definitions, count: int = 20) -> list[Resource]:
    """Up to ``count`` active Practitioners of the Annuaire, by id (test identities to sign in
    with on the local provider).

    https://interop.esante.gouv.fr/ig/fhir/annuaire/
    """
    query = parse_search(
        defs,
        "Practitioner",
        [("active", "true"), ("_sort", "_id"), ("_count", str(max(1, count)))],
    )
    page = store.read(lambda tx: tx.search(query))
    return [e.resource for e in page.entries if e.resource is not None]
