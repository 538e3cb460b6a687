"""The platform's administrators: the identity-vigilance cell, the data protection officer and
the operators, named by their IDNPS in the server's settings (``--admin``, ``MAISON_ADMINS``).
Signed in through Pro Santé Connect like any professional, they are granted the ``maison:admin``
scope, which the administration operations require; nothing else changes for them (the access
rules of the DMP apply to them as to anyone).

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

from typing import Final, Protocol

#: The scope of the administration operations (identity-vigilance report, audit chain status,
#: Annuaire import history).
ADMIN_SCOPE: Final = "maison:admin"


class HasScopes(Protocol):
    """What a principal exposes of its non-resource scopes."""

    @property
    def other_scopes(self) -> frozenset[str]:
        """openid, fhirUser, maison:admin, …"""
        ...


def is_admin(principal: HasScopes | None) -> bool:
    """Whether the caller holds the administration scope."""
    return principal is not None and ADMIN_SCOPE in principal.other_scopes
