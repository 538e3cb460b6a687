"""What the terminology service reads concepts from: code systems with their concepts,
designations and ``is-a`` hierarchy, value sets and concept maps, possibly in several versions.

Two implementations: :class:`~maison.terminology.packages.PackageSource` (the CodeSystems,
ValueSets and ConceptMaps of the installed FHIR packages and guides, in memory) and the SQL
store the loaders fill (``maison terminology load``: NOS, LOINC, SNOMED CT RF2), which holds
the big systems. :class:`ChainedSource` asks each in turn.

A code system is named by its canonical URL. The NOS publishes the LOINC document type codes
under its TRE_A04 URL while the guides use ``http://loinc.org``: both name one system
(:data:`SYSTEM_ALIASES`, :func:`canonical_system`), everywhere.

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
#: The NOS URL of LOINC (TRE_A04-Loinc): the same code system as http://loinc.org.
NOS_LOINC: Final = "https://mos.esante.gouv.fr/NOS/TRE_A04-Loinc/FHIR/TRE-A04-Loinc"
#: Other URLs of one code system -> the canonical URL the service stores it under.
SYSTEM_ALIASES: Final[dict[str, str]] = {
    NOS_LOINC: LOINC,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
}


def canonical_system(url: str) -> str:
    """The URL a code system is stored and compared under (aliases resolved, version cut).

    https://hl7.org/fhir/R4/terminologies-systems.html
    """
    bare = url.split("|", 1)[0]
    return SYSTEM_ALIASES.get(bare, bare)


def fold(text: str) -> str:
    """Lower case without accents or ligatures: what text filters compare (``é`` matches
    ``e``, ``œ`` matches ``oe``).

    https://hl7.org/fhir/R4/valueset-operation-expand.html (``filter``)
    """
    # œ and æ are letters of their own for Unicode: "coeur" must find "cœur"
    lowered = text.casefold().replace("œ", "oe").replace("æ", "ae")
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True, slots=True)
class Designation:
    """Another name of a concept, in a language, for a use (https://hl7.org/fhir/R4/codesystem-definitions.html#CodeSystem.concept.designation)."""

    value: str
    language: str | None = None
    use_system: str | None = None
    use_code: str | None = None

    def as_fhir(self) -> dict[str, Any]:
        """The FHIR ``designation`` element."""
        out: dict[str, Any] = {}
        if self.language:
            out["language"] = self.language
        if self.use_code:
            use = {"code": self.use_code}
            if self.use_system:
                use = {"system": self.use_system, **use}
            out["use"] = use
        out["value"] = self.value
        return out


@dataclass(frozen=True, slots=True)
class Concept:
    """One concept of one version of a code system (https://hl7.org/fhir/R4/codesystem.html)."""

    system: str  # canonical URL
    code: str
    display: str | None = None
    version: str | None = None
    inactive: bool = False
    designations: tuple[Designation, ...] = ()
    #: (property code, value): FHIR CodeSystem.concept.property pairs, values as str/bool/int
    properties: tuple[tuple[str, Any], ...] = ()

    def matches(self, words: list[str]) -> bool:
        """Whether every folded word of a filter starts a word of the display or of a
        designation (https://hl7.org/fhir/R4/valueset-operation-expand.html)."""
        if not words:
            return True
        texts = [self.display or "", *(d.value for d in self.designations)]
        tokens = {t for text in texts for t in _words(fold(text))}
        return all(any(t.startswith(w) for t in tokens) for w in words)


def filter_words(text: str | None) -> list[str]:
    """The folded words of an ``$expand`` filter."""
    return _words(fold(text)) if text else []


def _words(folded: str) -> list[str]:
    return "".join(c if c.isalnum() else " " for c in folded).split()


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """A version of a code system the source holds (https://hl7.org/fhir/R4/codesystem.html)."""

    url: str  # canonical URL
    version: str | None
    name: str | None = None
    title: str | None = None
    count: int = 0  # concepts held
    content: str = "complete"  # CodeSystem.content of what is held
    hierarchical: bool = False  # has an is-a hierarchy (parents/children answer)
    oid: str | None = None  # urn:oid:… identifier when known (XDS codingScheme)


class TerminologySource(Protocol):
    """Read access to code systems, value sets and concept maps, by canonical URL and
    optional version (None: the latest loaded). Every method takes code system URLs through
    :func:`canonical_system` itself, so an alias works everywhere.

    https://hl7.org/fhir/R4/terminology-service.html
    """

    def system(self, url: str, version: str | None = None) -> SystemInfo | None:
        """The version of a code system (None: not held)."""
        ...

    def systems(self) -> list[SystemInfo]:
        """Every code system version held."""
        ...

    def concept(self, url: str, code: str, version: str | None = None) -> Concept | None:
        """One concept with its designations and properties (None: unknown code)."""
        ...

    def concepts(
        self, url: str, version: str | None = None, words: list[str] | None = None
    ) -> Iterator[Concept]:
        """The concepts of a code system in code order, those matching every filter word
        when ``words`` (see :meth:`Concept.matches`) are given."""
        ...

    def parents(self, url: str, code: str, version: str | None = None) -> list[str]:
        """The direct is-a parents of a code."""
        ...

    def children(self, url: str, code: str, version: str | None = None) -> list[str]:
        """The direct is-a children of a code."""
        ...

    def descendants(self, url: str, code: str, version: str | None = None) -> set[str]:
        """Every code below ``code`` (transitive is-a), ``code`` itself excluded."""
        ...

    def value_set(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        """A ValueSet resource (https://hl7.org/fhir/R4/valueset.html)."""
        ...

    def concept_map(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        """A ConceptMap resource (https://hl7.org/fhir/R4/conceptmap.html)."""
        ...

    def concept_maps(self) -> list[dict[str, Any]]:
        """Every ConceptMap held (latest versions)."""
        ...


def ancestors(
    source: TerminologySource, url: str, code: str, version: str | None = None
) -> set[str]:
    """Every code above ``code`` (transitive is-a), itself excluded
    (https://hl7.org/fhir/R4/codesystem-operation-subsumes.html)."""
    seen: set[str] = set()
    todo = list(source.parents(url, code, version))
    while todo:
        parent = todo.pop()
        if parent not in seen:
            seen.add(parent)
            todo.extend(source.parents(url, parent, version))
    return seen


class ChainedSource:
    """Several sources asked in turn: the first that holds a system (or value set, or map)
    answers for it (https://hl7.org/fhir/R4/terminology-service.html)."""

    def __init__(self, sources: Iterable[TerminologySource]) -> None:
        self.sources = list(sources)

    def _holder(self, url: str, version: str | None) -> TerminologySource | None:
        return next((s for s in self.sources if s.system(url, version) is not None), None)

    def system(self, url: str, version: str | None = None) -> SystemInfo | None:
        holder = self._holder(url, version)
        return holder.system(url, version) if holder else None

    def systems(self) -> list[SystemInfo]:
        return [info for s in self.sources for info in s.systems()]

    def concept(self, url: str, code: str, version: str | None = None) -> Concept | None:
        holder = self._holder(url, version)
        return holder.concept(url, code, version) if holder else None

    def concepts(
        self, url: str, version: str | None = None, words: list[str] | None = None
    ) -> Iterator[Concept]:
        holder = self._holder(url, version)
        return holder.concepts(url, version, words) if holder else iter(())

    def parents(self, url: str, code: str, version: str | None = None) -> list[str]:
        holder = self._holder(url, version)
        return holder.parents(url, code, version) if holder else []

    def children(self, url: str, code: str, version: str | None = None) -> list[str]:
        holder = self._holder(url, version)
        return holder.children(url, code, version) if holder else []

    def descendants(self, url: str, code: str, version: str | None = None) -> set[str]:
        holder = self._holder(url, version)
        return holder.descendants(url, code, version) if holder else set()

    def value_set(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        return next(
            (vs for s in self.sources if (vs := s.value_set(url, version)) is not None), None
        )

    def concept_map(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        return next(
            (cm for s in self.sources if (cm := s.concept_map(url, version)) is not None), None
        )

    def concept_maps(self) -> list[dict[str, Any]]:
        seen: set[str] = set()
        out: list[dict[str, Any]] = []
        for s in self.sources:
            for cm in s.concept_maps():
                if cm.get("url") not in seen:
                    seen.add(str(cm.get("url")))
                    out.append(cm)
        return out


__all__ = [
    "LOINC",
    "NOS_LOINC",
    "SNOMED",
    "SYSTEM_ALIASES",
    "ChainedSource",
    "Concept",
    "Designation",
    "SystemInfo",
    "TerminologySource",
    "ancestors",
    "canonical_system",
    "filter_words",
    "fold",
]
