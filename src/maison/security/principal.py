"""Who is calling, and the SMART scopes they hold.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from maison.security.professional import ActingProfessional

# SMART v2 permission letters, in the order the specification requires them.
PERMISSIONS = "cruds"
CONTEXTS = frozenset({"patient", "user", "system"})
# SMART v1 suffixes and their v2 equivalents ("patient/X.read" is "patient/X.rs")
V1_PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset("rs"),
    "write": frozenset("cud"),
    "*": frozenset(PERMISSIONS),
}

_SCOPE = re.compile(
    r"(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{0,63})\."
    r"(?P<perm>read|write|\*|[cruds]{1,5})(?:\?(?P<query>[^\s?]+))?"
)


@dataclass(frozen=True)
class Scope:
    """A SMART resource scope (v1 or v2): https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html."""

    context: str  # patient | user | system
    resource_type: str  # a FHIR resource type or "*"
    permissions: frozenset[str]  # subset of c, r, u, d, s
    constraints: tuple[tuple[str, str], ...] = ()  # v2 `?param=value`: kept, not enforced yet
    raw: str = ""

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        """Parse one scope string; None when it is not a SMART resource scope."""
        return _parse_scope(text) if cls is Scope else cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> Scope | None:
        match = _SCOPE.fullmatch(text)
        if match is None:
            return None
        perm, query = match["perm"], match["query"]
        if perm in V1_PERMISSIONS:
            if query is not None:
                return None  # constraints only exist in v2 syntax
            permissions = V1_PERMISSIONS[perm]
        else:
            # v2 letters: each at most once, in "cruds" order
            if not _in_order(perm):
                return None
            permissions = frozenset(perm)
        constraints: tuple[tuple[str, str], ...] = ()
        if query is not None:
            try:
                constraints = tuple(parse_qsl(query, strict_parsing=True))
            except ValueError:
                return None
        return cls(match["context"], match["type"], permissions, constraints, text)

    def covers(self, permission: str, resource_type: str | None) -> bool:
        """Whether this scope grants `permission` on `resource_type` (None: every type)."""
        if permission not in self.permissions:
            return False
        return self.resource_type == "*" or self.resource_type == resource_type

    def __str__(self) -> str:
        letters = "".join(p for p in PERMISSIONS if p in self.permissions)
        return self.raw or f"{self.context}/{self.resource_type}.{letters}"


@functools.lru_cache(maxsize=1024)
def _parse_scope(text: str) -> Scope | None:
    return Scope._parse(text)


def _in_order(letters: str) -> bool:
    position = -1
    for letter in letters:
        index = PERMISSIONS.find(letter)
        if index <= position:
            return False
        position = index
    return True


def parse_scopes(value: str | Iterable[str] | None) -> tuple[frozenset[Scope], frozenset[str]]:
    """Split a space-delimited scope claim (RFC 6749 §3.3) into SMART scopes and other scopes."""
    if value is None:
        return frozenset(), frozenset()
    items = value.split() if isinstance(value, str) else [str(v) for v in value]
    scopes: set[Scope] = set()
    others: set[str] = set()
    for item in items:
        scope = Scope.parse(item)
        if scope is None:
            others.add(item)
        else:
            scopes.add(scope)
    return frozenset(scopes), frozenset(others)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html."""

    subject: str
    issuer: str
    scopes: frozenset[Scope]
    client_id: str | None
    patient: str | None  # SMART launch context patient id
    fhir_user: str | None  # e.g. "Practitioner/123"
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    other_scopes: frozenset[str] = frozenset()  # openid, profile, launch/patient, ...

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """Build from validated JWT access-token claims (RFC 9068 §2.2, SMART launch context)."""
        raw_scopes = claims.get("scope")
        if raw_scopes is None:
            raw_scopes = claims.get("scp")  # some issuers send a list under "scp"
        if not isinstance(raw_scopes, str | list | tuple | None):
            raw_scopes = None
        scopes, others = parse_scopes(raw_scopes)
        return cls(
            subject=str(claims["sub"]),
            issuer=str(claims["iss"]),
            scopes=scopes,
            client_id=_text(claims.get("client_id")) or _text(claims.get("azp")),
            patient=_text(claims.get("patient")),
            fhir_user=_text(claims.get("fhirUser")),
            claims=MappingProxyType(dict(claims)),
            other_scopes=others,
        )

    @functools.cached_property
    def professional(self) -> ActingProfessional | None:
        """The professional context the token carries (profession, structure, activity), or
        None: https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect."""
        return ActingProfessional.from_claims(self.claims)

    def compartment(self) -> tuple[str, str] | None:
        """The Patient compartment this caller is confined to, if any.

        https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#patient-specific-scopes
        Confined as soon as it holds a patient/ scope and a launch patient, even when it also
        holds user/ or system/ scopes (fail closed until per-scope compartments exist).
        """
        if self.patient and any(s.context == "patient" for s in self.scopes):
            return ("Patient", self.patient)
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
