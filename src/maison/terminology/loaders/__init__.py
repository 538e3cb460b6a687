"""What the terminology loaders hand to the store: code system versions as a stream of rows,
and ValueSet/ConceptMap resources; one error type for bad input.

Each format has its module (``fhir_json``, ``nos_csv``, ``nos_tabs``, ``svs``, ``loinc``,
``snomed``); :mod:`~maison.terminology.loaders.detect` tells them apart and groups the files of
one release. Loaders stream their input: rows are produced only when the store asks for them
(never when the same content is already loaded), so memory stays bounded by a batch.

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from maison.terminology.source import Designation


class LoadError(Exception):
    """Bad terminology input: what is wrong, in which file, at which line (nothing of the unit
    it belongs to is written) (https://hl7.org/fhir/R4/terminology-service.html)."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where = f"{where}, line {self.line}" if where else f"line {self.line}"
        return f"{where}: {self.message}" if where else self.message


@dataclass(slots=True)
class ConceptRow:
    """One concept with what is known of it where it is read
    (https://hl7.org/fhir/R4/codesystem-definitions.html#CodeSystem.concept)."""

    code: str
    display: str | None = None
    inactive: bool = False
    properties: tuple[tuple[str, Any], ...] = ()
    designations: tuple[Designation, ...] = ()
    parents: tuple[str, ...] = ()


@dataclass(slots=True)
class DesignationRow:
    """A designation read apart from its concept (a description file, a linguistic variant);
    ``preferred``: preferred in its language, a display candidate
    (https://hl7.org/fhir/R4/codesystem-definitions.html#CodeSystem.concept.designation)."""

    code: str
    value: str
    language: str | None = None
    use_system: str | None = None
    use_code: str | None = None
    preferred: bool = False


@dataclass(slots=True)
class ParentRow:
    """A direct is-a edge: ``child`` is-a ``parent`` (https://hl7.org/fhir/R4/codesystem.html#hierarchy)."""

    child: str
    parent: str


Row = ConceptRow | DesignationRow | ParentRow


@dataclass(frozen=True)
class SystemMeta:
    """The code system version a load is for (https://hl7.org/fhir/R4/codesystem.html)."""

    url: str  # canonical URL
    version: str | None
    kind: str  # fhir | nos | svs | loinc | snomed
    name: str | None = None
    title: str | None = None
    content: str = "complete"
    oid: str | None = None  # bare OID
    header: dict[str, Any] | None = None  # the CodeSystem resource without its concepts


@dataclass
class SystemLoad:
    """One code system version to load: its metadata, the hash of its content (same hash,
    nothing to write) and its rows, produced only when asked
    (https://hl7.org/fhir/R4/codesystem.html)."""

    meta: SystemMeta
    digest: str
    rows: Callable[[], Iterator[Row]]
    label: str = ""  # the file (or release) it comes from
    total: int | None = None  # rows expected, for progress
    #: picks the display of a concept read without one from its designations (default: the
    #: first designation)
    display_from: Callable[[Sequence[DesignationRow]], str | None] | None = None


@dataclass
class ResourceLoad:
    """A ValueSet or ConceptMap to store (https://hl7.org/fhir/R4/valueset.html,
    https://hl7.org/fhir/R4/conceptmap.html)."""

    body: dict[str, Any]
    kind: str
    label: str = ""
    digest: str = field(default="")

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = digest_of(self.body)


Item = SystemLoad | ResourceLoad
#: OID (bare) -> canonical URL of a code system, when known.
OidResolver = Callable[[str], str | None]


def digest_of(resource: Any, tag: str = "") -> str:
    """SHA-256 of a JSON value with sorted keys (and the tag of the loader that read it)."""
    raw = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(tag.encode() + b"\0" + raw).hexdigest()


def oid_of(resource: dict[str, Any]) -> str | None:
    """The bare OID of a canonical resource's ``urn:oid:`` identifier
    (https://hl7.org/fhir/R4/datatypes.html#Identifier)."""
    for ident in resource.get("identifier") or []:
        value = ident.get("value") if isinstance(ident, dict) else None
        if isinstance(value, str) and value.startswith("urn:oid:"):
            return value[len("urn:oid:") :]
    return None


__all__ = [
    "ConceptRow",
    "DesignationRow",
    "Item",
    "LoadError",
    "OidResolver",
    "ParentRow",
    "ResourceLoad",
    "Row",
    "SystemLoad",
    "SystemMeta",
    "digest_of",
    "oid_of",
]
