"""Token search modifiers answered by the terminology service: the codes of a value set for
``:in`` / ``:not-in`` and of a hierarchy (SNOMED CT ``is-a``, a NOS or FHIR code system's
nesting) for ``:below`` / ``:above``, each under every URL its code system is known by (a
DocumentReference may carry a LOINC type under ``http://loinc.org`` or the NOS TRE_A04 URL).

https://hl7.org/fhir/R4/search.html#token
"""

from __future__ import annotations

from maison.fhir.errors import Category, FhirError
from maison.terminology.compose import Composer, ExpansionCache
from maison.terminology.source import (
    SYSTEM_ALIASES,
    TerminologySource,
    ancestors,
    canonical_system,
)


def system_urls(system: str) -> list[str]:
    """The canonical URL of a code system and the other URLs it is known by (aliases).

    https://hl7.org/fhir/R4/terminologies-systems.html
    """
    canonical = canonical_system(system)
    return [canonical, *sorted(a for a, c in SYSTEM_ALIASES.items() if c == canonical)]


class SearchCodes:
    """The ``SearchTerminology`` of the search parser, over a terminology source.

    https://hl7.org/fhir/R4/search.html#token
    """

    def __init__(self, source: TerminologySource, cache: ExpansionCache | None = None) -> None:
        self.source = source
        self.cache = cache

    def value_set_codes(self, url: str) -> frozenset[tuple[str, str]] | None:
        """The codes of a value set (``url`` or ``url|version``), each under every URL of its
        system; None when the value set is unknown, an error when it cannot be expanded
        (https://hl7.org/fhir/R4/valueset-operation-expand.html)."""
        bare, _, version = url.partition("|")
        vs = self.source.value_set(bare, version or None)
        if vs is None:
            return None
        composer = Composer(self.source, self.cache)
        expansion, _ = composer.evaluate(vs, composer.key(vs, bare, version or None), None)
        return frozenset(
            (system, entry.code)
            for entry in expansion.entries
            for system in system_urls(entry.system)
        )

    def subsumed(self, system: str, code: str, below: bool) -> frozenset[tuple[str, str]] | None:
        """``code`` and the codes below (or above) it in the system's hierarchy, each under
        every URL of the system; None when the system is not held
        (https://hl7.org/fhir/R4/codesystem-operation-subsumes.html)."""
        canonical = canonical_system(system)
        info = self.source.system(canonical)
        if info is None:
            return None
        if self.source.concept(canonical, code) is None:
            raise FhirError(
                Category.INVALID, f"{code[:100]} is not a code of {canonical} on this server"
            )
        related = (
            self.source.descendants(canonical, code)
            if below
            else ancestors(self.source, canonical, code)
        )
        return frozenset((url, c) for c in {code, *related} for url in system_urls(canonical))


__all__ = ["SearchCodes", "system_urls"]
