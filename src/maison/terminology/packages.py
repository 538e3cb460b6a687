"""The code systems, value sets and concept maps of the loaded FHIR definitions (the base R4
package and the guides installed with ``maison ig install``) as a :class:`TerminologySource`.

Each code system is indexed on first use (concepts by code, the ``is-a`` hierarchy from nested
``concept`` elements and the ``parent``/``subsumedBy``/``child`` properties), so building a
source for fresh definitions costs nothing until a system is asked for.

https://hl7.org/fhir/R4/codesystem.html
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from maison.fhir.definitions import Definitions
from maison.terminology.source import (
    Concept,
    Designation,
    SystemInfo,
    canonical_system,
)

#: Property URIs (http://hl7.org/fhir/concept-properties) that give a concept's parents / children.
_PARENT_URIS = ("#parent", "#subsumedBy")
_CHILD_URIS = ("#child",)
_PARENT_CODES = frozenset({"parent", "subsumedBy"})
_CHILD_CODES = frozenset({"child"})
#: ``status`` values of a concept that is no longer active.
_INACTIVE_STATUS = frozenset({"retired", "inactive"})
#: A NOS concept with an end date (``dateFin``) is withdrawn: kept in the TRE, no longer active.
_END_DATE = "dateFin"

_revisions = itertools.count(1)


def _property_value(prop: dict[str, Any]) -> Any:
    for key, value in prop.items():
        if key.startswith("value"):
            if key == "valueCoding" and isinstance(value, dict):
                return value.get("code")
            return value
    return None


def designations(concept: dict[str, Any]) -> tuple[Designation, ...]:
    """The ``designation`` elements of a CodeSystem or ValueSet concept
    (https://hl7.org/fhir/R4/codesystem-definitions.html#CodeSystem.concept.designation)."""
    out = []
    for d in concept.get("designation") or ():
        if not isinstance(d, dict) or not isinstance(d.get("value"), str):
            continue
        use = d.get("use")
        if not isinstance(use, dict):
            use = {}
        out.append(Designation(d["value"], d.get("language"), use.get("system"), use.get("code")))
    return tuple(out)


class _System:
    """One version of one CodeSystem resource, indexed on first use."""

    def __init__(self, resource: dict[str, Any]) -> None:
        self.resource = resource
        self.url = canonical_system(str(resource.get("url", "")))
        self.version: str | None = resource.get("version")
        self._lock = threading.Lock()
        self._info: SystemInfo | None = None
        self._concepts: dict[str, Concept] | None = None
        self._order: list[str] = []
        self._parents: dict[str, list[str]] = {}
        self._children: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ index

    def _relation_codes(self) -> tuple[set[str], set[str]]:
        parents, children = set(_PARENT_CODES), set(_CHILD_CODES)
        for p in self.resource.get("property") or ():
            uri, code = str(p.get("uri", "")), p.get("code")
            if not isinstance(code, str):
                continue
            if uri.endswith(_PARENT_URIS):
                parents.add(code)
            elif uri.endswith(_CHILD_URIS):
                children.add(code)
        return parents, children

    def _build(self) -> None:
        parent_codes, child_codes = self._relation_codes()
        concepts: dict[str, Concept] = {}
        parents: dict[str, list[str]] = {}
        children: dict[str, list[str]] = {}

        def link(parent: str, child: str) -> None:
            if parent == child:
                return
            ps = parents.setdefault(child, [])
            if parent not in ps:
                ps.append(parent)
            cs = children.setdefault(parent, [])
            if child not in cs:
                cs.append(child)

        stack: list[tuple[dict[str, Any], str | None]] = [
            (c, None) for c in reversed(self.resource.get("concept") or ())
        ]
        while stack:
            raw, above = stack.pop()
            if not isinstance(raw, dict) or not isinstance(raw.get("code"), str):
                continue
            code = raw["code"]
            props: list[tuple[str, Any]] = []
            inactive = False
            for p in raw.get("property") or ():
                if not isinstance(p, dict) or not isinstance(p.get("code"), str):
                    continue
                name, value = p["code"], _property_value(p)
                props.append((name, value))
                if name in parent_codes and isinstance(value, str):
                    link(value, code)
                elif name in child_codes and isinstance(value, str):
                    link(code, value)
                elif (
                    (name == "status" and value in _INACTIVE_STATUS)
                    or (name == "inactive" and value is True)
                    or name == _END_DATE
                ):
                    inactive = True
            if above is not None:
                link(above, code)
            if code not in concepts:
                concepts[code] = Concept(
                    self.url,
                    code,
                    raw.get("display"),
                    self.version,
                    inactive,
                    designations(raw),
                    tuple(props),
                )
            stack.extend((c, code) for c in reversed(raw.get("concept") or ()))
        self._order = sorted(concepts)
        self._parents = parents
        self._children = children
        self._concepts = concepts

    def index(self) -> dict[str, Concept]:
        """Concepts by code (built once)."""
        concepts = self._concepts
        if concepts is None:
            with self._lock:
                if self._concepts is None:
                    self._build()
            concepts = self._concepts
            assert concepts is not None
        return concepts

    # ------------------------------------------------------------------ answers

    def info(self) -> SystemInfo:
        """What :meth:`PackageSource.system` answers."""
        if self._info is None:
            r = self.resource
            oid = next(
                (
                    i["value"]
                    for i in r.get("identifier") or ()
                    if isinstance(i, dict) and str(i.get("value", "")).startswith("urn:oid:")
                ),
                None,
            )
            concepts = self.index()
            self._info = SystemInfo(
                url=self.url,
                version=self.version,
                name=r.get("name"),
                title=r.get("title"),
                count=len(concepts),
                content=str(r.get("content", "complete")),
                hierarchical=bool(self._parents),
                oid=oid,
            )
        return self._info

    def ordered(self) -> Iterator[Concept]:
        concepts = self.index()
        return (concepts[code] for code in self._order)

    def parents(self, code: str) -> list[str]:
        self.index()
        return list(self._parents.get(code, ()))

    def children(self, code: str) -> list[str]:
        self.index()
        return list(self._children.get(code, ()))


class PackageSource:
    """The CodeSystems, ValueSets and ConceptMaps of a :class:`Definitions` (and of
    ``concept_maps`` given here until the definitions keep them) as a terminology source.

    https://hl7.org/fhir/R4/terminology-service.html
    """

    def __init__(self, defs: Definitions, concept_maps: Iterable[dict[str, Any]] = ()) -> None:
        self.defs = defs
        #: Changes with every new source: expansion caches are keyed by it.
        self.revision = ("packages", next(_revisions))
        self._systems: dict[str, list[_System]] = {}
        for resource in defs.code_systems.values():
            if resource.get("content") == "supplement" or not resource.get("url"):
                continue
            system = _System(resource)
            self._systems.setdefault(system.url, []).append(system)
        maps: dict[str, list[dict[str, Any]]] = {}
        kept = getattr(defs, "concept_maps", None)
        for cm in [*(kept.values() if isinstance(kept, dict) else ()), *concept_maps]:
            if cm.get("resourceType") == "ConceptMap" and cm.get("url"):
                maps.setdefault(str(cm["url"]), []).append(cm)
        self._maps = maps
        self._value_sets_by_id: dict[str, dict[str, Any]] | None = None

    def _get(self, url: str, version: str | None) -> _System | None:
        found = self._systems.get(canonical_system(url))
        if not found:
            return None
        if version is None:
            return found[-1]
        return next((s for s in reversed(found) if s.version == version), None)

    def system(self, url: str, version: str | None = None) -> SystemInfo | None:
        """The version of a code system (https://hl7.org/fhir/R4/codesystem.html)."""
        s = self._get(url, version)
        return s.info() if s else None

    def systems(self) -> list[SystemInfo]:
        """Every code system version held (https://hl7.org/fhir/R4/codesystem.html)."""
        return [s.info() for versions in self._systems.values() for s in versions]

    def concept(self, url: str, code: str, version: str | None = None) -> Concept | None:
        """One concept (https://hl7.org/fhir/R4/codesystem.html#CodeSystem.concept)."""
        s = self._get(url, version)
        return s.index().get(code) if s else None

    def concepts(
        self, url: str, version: str | None = None, words: list[str] | None = None
    ) -> Iterator[Concept]:
        """The concepts held, in code order, matching every filter word
        (https://hl7.org/fhir/R4/valueset-operation-expand.html)."""
        s = self._get(url, version)
        if s is None:
            return iter(())
        if not words:
            return s.ordered()
        return (c for c in s.ordered() if c.matches(words))

    def parents(self, url: str, code: str, version: str | None = None) -> list[str]:
        """Direct is-a parents (https://hl7.org/fhir/R4/codesystem.html#hierarchy)."""
        s = self._get(url, version)
        return s.parents(code) if s else []

    def children(self, url: str, code: str, version: str | None = None) -> list[str]:
        """Direct is-a children (https://hl7.org/fhir/R4/codesystem.html#hierarchy)."""
        s = self._get(url, version)
        return s.children(code) if s else []

    def descendants(self, url: str, code: str, version: str | None = None) -> set[str]:
        """Every code below ``code`` (https://hl7.org/fhir/R4/codesystem.html#hierarchy)."""
        s = self._get(url, version)
        if s is None:
            return set()
        seen: set[str] = set()
        todo = s.children(code)
        while todo:
            child = todo.pop()
            if child not in seen:
                seen.add(child)
                todo.extend(s.children(child))
        seen.discard(code)
        return seen

    def value_set(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        """A ValueSet by canonical URL (https://hl7.org/fhir/R4/valueset.html)."""
        bare, _, pinned = url.partition("|")
        version = version or pinned or None
        vs = self.defs.value_sets.get(bare)
        if vs is None or (version is not None and vs.get("version") != version):
            return None
        return vs

    def value_set_by_id(self, res_id: str) -> dict[str, Any] | None:
        """A ValueSet of the definitions by its ``id`` (instance-level operations)."""
        if self._value_sets_by_id is None:
            self._value_sets_by_id = {
                str(vs.get("id")): vs for vs in self.defs.value_sets.values() if vs.get("id")
            }
        return self._value_sets_by_id.get(res_id)

    def code_system_resource(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        """The CodeSystem resource behind a system (instance-level operations)."""
        s = self._get(url, version)
        return s.resource if s else None

    def code_system_by_id(self, res_id: str) -> dict[str, Any] | None:
        """A CodeSystem of the definitions by its ``id`` (instance-level operations)."""
        return next((cs for cs in self.defs.code_systems.values() if cs.get("id") == res_id), None)

    def concept_map(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        """A ConceptMap by canonical URL (https://hl7.org/fhir/R4/conceptmap.html)."""
        bare, _, pinned = url.partition("|")
        version = version or pinned or None
        found = self._maps.get(bare)
        if not found:
            return None
        if version is None:
            return found[-1]
        return next((cm for cm in reversed(found) if cm.get("version") == version), None)

    def concept_maps(self) -> list[dict[str, Any]]:
        """Every ConceptMap held, latest versions (https://hl7.org/fhir/R4/conceptmap.html)."""
        return [versions[-1] for versions in self._maps.values()]


__all__ = ["PackageSource", "designations"]
