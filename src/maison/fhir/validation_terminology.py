"""Local expansion of value sets for required bindings (no terminology server).

https://hl7.org/fhir/R4/valueset.html#compositions
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from maison.fhir.definitions import Definitions

Codes = frozenset[tuple[str, str]]  # (system, code)


class BindingTerminology(Protocol):
    """What the validator asks of a terminology to check a binding.

    https://hl7.org/fhir/R4/terminologies.html#binding
    """

    def contains(self, value_set: str, system: str | None, code: str) -> bool | None:
        """Whether the value set holds the code (any system when ``system`` is None); None
        when the value set cannot be expanded here."""
        ...


def _concepts(concepts: Iterable[dict[str, Any]], system: str, out: set[tuple[str, str]]) -> None:
    for c in concepts:
        if "code" in c:
            out.add((system, str(c["code"])))
        if "concept" in c:
            _concepts(c["concept"], system, out)


class ValueSetExpander:
    """Expands value sets from local CodeSystems; None when it cannot be done offline.

    https://hl7.org/fhir/R4/valueset-operation-expand.html
    """

    def __init__(self, defs: Definitions) -> None:
        self._defs = defs
        self._cache: dict[str, Codes | None] = {}
        self._codes: dict[str, frozenset[str] | None] = {}

    def expand(self, url: str) -> Codes | None:
        """All (system, code) pairs of the value set, or None if not expandable locally."""
        url = url.split("|", 1)[0]
        if url in self._cache:
            return self._cache[url]
        self._cache[url] = None  # guards against import cycles
        result = self._expand(url)
        self._cache[url] = result
        return result

    def contains(self, value_set: str, system: str | None, code: str) -> bool | None:
        """Whether the value set holds the code (https://hl7.org/fhir/R4/valueset-operation-validate-code.html)."""
        if system is None:
            codes = self.codes(value_set)
            return None if codes is None else code in codes
        expansion = self.expand(value_set)
        return None if expansion is None else (system, code) in expansion

    def codes(self, url: str) -> frozenset[str] | None:
        """The bare codes of an expandable value set."""
        if url not in self._codes:
            expansion = self.expand(url)
            self._codes[url] = None if expansion is None else frozenset(c for _, c in expansion)
        return self._codes[url]

    def _system(self, system: str) -> Codes | None:
        cs = self._defs.code_systems.get(system)
        if cs is None or cs.get("content", "complete") != "complete":
            return None
        out: set[tuple[str, str]] = set()
        _concepts(cs.get("concept", ()), system, out)
        return frozenset(out)

    def _part(self, part: dict[str, Any]) -> Codes | None:
        if part.get("filter"):
            return None
        system = part.get("system")
        selected: Codes | None = None
        if system:
            if part.get("concept"):
                selected = frozenset((system, str(c["code"])) for c in part["concept"])
            else:
                selected = self._system(system)
                if selected is None:
                    return None
        for vs_url in part.get("valueSet", ()):
            sub = self.expand(vs_url)
            if sub is None:
                return None
            selected = sub if selected is None else selected & sub
        return selected

    def _expand(self, url: str) -> Codes | None:
        vs = self._defs.value_sets.get(url)
        if vs is None:
            return None
        compose = vs.get("compose")
        if not compose:
            contains = vs.get("expansion", {}).get("contains")
            if not contains:
                return None
            out: set[tuple[str, str]] = set()
            stack = list(contains)
            while stack:
                c = stack.pop()
                if "code" in c:
                    out.add((str(c.get("system", "")), str(c["code"])))
                stack.extend(c.get("contains", ()))
            return frozenset(out)
        result: set[tuple[str, str]] = set()
        for inc in compose.get("include", ()):
            part = self._part(inc)
            if part is None:
                return None
            result |= part
        for exc in compose.get("exclude", ()):
            part = self._part(exc)
            if part is None:
                return None
            result -= part
        return frozenset(result)
