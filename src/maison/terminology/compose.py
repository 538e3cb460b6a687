"""Evaluating ``ValueSet.compose``: the codes a value set holds (its expansion) and whether it
holds one code (membership), over a :class:`TerminologySource`.

Includes are unions, excludes are removed; an include's system part (a concept list, filters,
or the whole system) is intersected with each value set it imports. Filters: ``is-a``,
``descendent-of``, ``is-not-a``, ``generalizes``, ``in``, ``not-in``, ``=`` and ``regex`` on
``concept``/``code``; ``=``, ``in``, ``not-in``, ``regex`` and ``exists`` on properties; ``=`` on
``parent``/``child``. Full expansions are cached per value set and content revision of the
source (:class:`ExpansionCache`); a value set too big to expand at once is filtered in the
source (text filter pushed down) and answered code by code for membership.

https://hl7.org/fhir/R4/valueset.html#compositions
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson

from maison.terminology.errors import (
    TerminologyError,
    cannot_expand,
    not_supported,
    too_costly,
    unknown_value_set,
)
from maison.terminology.packages import designations
from maison.terminology.source import (
    ChainedSource,
    Concept,
    Designation,
    SystemInfo,
    TerminologySource,
    ancestors,
    canonical_system,
    fold,
)

#: The most codes one value set is expanded to in memory (and cached); beyond, only filtered.
MAX_COMPUTED: Final = 100_000
#: Above this many candidates, a text filter is applied by the source rather than code by code.
_PUSHDOWN: Final = 1_000


@dataclass(frozen=True, slots=True)
class Entry:
    """One code of an expansion (https://hl7.org/fhir/R4/valueset-definitions.html#ValueSet.expansion.contains)."""

    system: str  # as the value set names it
    code: str
    display: str | None = None
    version: str | None = None
    inactive: bool = False
    abstract: bool = False
    designations: tuple[Designation, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """(canonical system, code): what identifies the code whatever URL names its system."""
        return canonical_system(self.system), self.code

    def text(self) -> str:
        """The folded words of the display and designations, each preceded by a space, so that
        ``" " + word in text`` says whether a word starts one of them."""
        texts = [self.display or "", *(d.value for d in self.designations)]
        words = "".join(c if c.isalnum() else " " for c in fold(" ".join(texts))).split()
        return " " + " ".join(words)


def _matches(text: str, words: list[str]) -> bool:
    return all(" " + w in text for w in words)


class Expansion:
    """The codes of a value set in order, indexed by (canonical system, code)
    (https://hl7.org/fhir/R4/valueset.html#expansion)."""

    __slots__ = ("_texts", "entries", "index", "notes", "used")

    def __init__(
        self,
        entries: list[Entry],
        used: dict[str, str | None] | None = None,
        notes: list[tuple[str, str]] | None = None,
    ) -> None:
        self.entries = entries
        self.index: dict[tuple[str, str], Entry] = {}
        for e in entries:
            self.index.setdefault(e.key, e)
        #: code system versions used (canonical URL -> version)
        self.used: dict[str, str | None] = used or {}
        #: (expansion parameter name, value): e.g. ("warning-fragment", "system|version")
        self.notes: list[tuple[str, str]] = notes or []
        self._texts: list[str] | None = None

    def get(self, system: str, code: str) -> Entry | None:
        """The entry of a code (its system under any alias), None when not in the value set."""
        return self.index.get((canonical_system(system), code))

    def matching(self, words: list[str] | None) -> list[Entry]:
        """The entries whose display or a designation has a word starting with each filter
        word (https://hl7.org/fhir/R4/valueset-operation-expand.html, ``filter``)."""
        if not words:
            return self.entries
        texts = self._texts
        if texts is None:
            texts = self._texts = [e.text() for e in self.entries]
        return [e for e, t in zip(self.entries, texts, strict=True) if _matches(t, words)]


class _TooBigError(Exception):
    """More codes than the composer's limit: expand with a filter, or answer by membership."""


_TOO_BIG: Final = "too-big"
CacheValue = Expansion | str


class ExpansionCache:
    """Full expansions by (source revision, value set url, version), least recently used out
    first, bounded by the number of codes held (https://hl7.org/fhir/R4/valueset.html#expansion)."""

    def __init__(self, max_codes: int = 200_000) -> None:
        self.max_codes = max_codes
        self._items: OrderedDict[Hashable, CacheValue] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    @staticmethod
    def _weight(value: CacheValue) -> int:
        return len(value.entries) + 1 if isinstance(value, Expansion) else 1

    def get(self, key: Hashable) -> CacheValue | None:
        """The cached expansion (or the mark of a value set too big to expand)."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: CacheValue) -> None:
        """Keep an expansion, dropping the least recently used beyond the bound."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= self._weight(old)
            self._items[key] = value
            self._size += self._weight(value)
            while self._size > self.max_codes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._size -= self._weight(dropped)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self._size = 0


def content_revision(source: TerminologySource) -> Hashable | None:
    """What changes when a source's content changes: its ``revision`` attribute (the chained
    sources' together); None when a source has none, and then nothing it answers is cached
    (https://hl7.org/fhir/R4/terminology-service.html)."""
    if isinstance(source, ChainedSource):
        parts = tuple(content_revision(s) for s in source.sources)
        return None if any(p is None for p in parts) else parts
    revision: Hashable | None = getattr(source, "revision", None)
    return revision


def value_set_label(vs: dict[str, Any]) -> str:
    """How messages name a value set: its url (and version), else its name or id."""
    url = vs.get("url")
    if url:
        return f"{url}|{vs['version']}" if vs.get("version") else str(url)
    return str(vs.get("name") or vs.get("id") or "(inline value set)")


def _split_canonical(canonical: str, version: str | None = None) -> tuple[str, str | None]:
    bare, _, pinned = canonical.partition("|")
    return bare, (version or pinned or None)


def _abstract(concept: Concept) -> bool:
    return any(p == "notSelectable" and v in (True, "true") for p, v in concept.properties)


def _same(value: Any, wanted: str) -> bool:
    if isinstance(value, bool):
        return wanted.lower() == ("true" if value else "false")
    return str(value) == wanted


def _codes(value: str) -> set[str]:
    return {v.strip() for v in value.split(",") if v.strip()}


def _regex(value: str, label: str) -> re.Pattern[str]:
    try:
        return re.compile(value)
    except re.error as exc:
        raise cannot_expand(f"The value set {label} has an invalid regex filter: {exc}") from None


Predicate = Callable[[str, Concept | None], bool]


class Composer:
    """Evaluates value set definitions over a source, with an optional expansion cache
    (https://hl7.org/fhir/R4/valueset.html#compositions)."""

    def __init__(
        self,
        source: TerminologySource,
        cache: ExpansionCache | None = None,
        limit: int = MAX_COMPUTED,
    ) -> None:
        self.source = source
        self.limit = limit
        self.revision = content_revision(source)
        #: no cache for a source that cannot say when its content changed
        self.cache = cache if self.revision is not None else None
        #: the concepts an include lists, by code (by id of the include: it lives as long as
        #: the value set this composer reads)
        self._listed_codes: dict[int, dict[str, dict[str, Any]]] = {}

    # ------------------------------------------------------------------ value sets

    def resolve(self, canonical: str, version: str | None = None) -> dict[str, Any]:
        """The value set a canonical names (``url|version`` accepted), or a not-found error."""
        url, version = _split_canonical(canonical, version)
        vs = self.source.value_set(url, version)
        if vs is None:
            raise unknown_value_set(url, version)
        return vs

    def key(self, vs: dict[str, Any], url: str | None, version: str | None) -> Hashable:
        """The cache key of a value set: its url and version when it was named by them, else a
        digest of the resource (an inline value set)."""
        if url:
            return (self.revision, url, version)
        digest = hashlib.sha256(orjson.dumps(vs, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return (self.revision, "#", digest)

    def evaluate(
        self, vs: dict[str, Any], key: Hashable, words: list[str] | None
    ) -> tuple[Expansion, list[Entry]]:
        """The expansion of a value set (full and cached when it fits the limit, else computed
        with the text filter given to the source) and its entries matching ``words``."""
        label = value_set_label(vs)
        cached = self.cache.get(key) if self.cache is not None else None
        if isinstance(cached, Expansion):
            return cached, cached.matching(words)
        if cached is None:
            try:
                full = self._expand(vs, None, (_ident(vs),))
            except _TooBigError:
                if self.cache is not None:
                    self.cache.put(key, _TOO_BIG)
            else:
                if self.cache is not None:
                    self.cache.put(key, full)
                return full, full.matching(words)
        if not words:
            raise too_costly(too_big_message(label, self.limit))
        try:
            part = self._expand(vs, words, (_ident(vs),))
        except _TooBigError:
            raise too_costly(
                f"More than {self.limit:,} codes of the value set {label} match the filter "
                f"'{' '.join(words)}': give a longer one"
            ) from None
        return part, part.matching(words)

    def contains(
        self, vs: dict[str, Any], key: Hashable, system: str, code: str, stack: tuple[str, ...] = ()
    ) -> Entry | None:
        """The entry of ``system``/``code`` in the value set, None when it is not in it
        (https://hl7.org/fhir/R4/valueset-operation-validate-code.html)."""
        ident = _ident(vs)
        if ident in stack:
            raise _circular((*stack, ident))
        cached = self.cache.get(key) if self.cache is not None else None
        if isinstance(cached, Expansion):
            return cached.get(system, code)
        if cached is None:
            try:
                full = self._expand(vs, None, (*stack, ident))
            except _TooBigError:
                if self.cache is not None:
                    self.cache.put(key, _TOO_BIG)
            else:
                if self.cache is not None:
                    self.cache.put(key, full)
                return full.get(system, code)
        return self._member(vs, system, code, (*stack, ident))

    def _contains_url(
        self, canonical: str, system: str, code: str, stack: tuple[str, ...]
    ) -> Entry | None:
        url, version = _split_canonical(canonical)
        vs = self._imported(url, version, stack)
        return self.contains(vs, self.key(vs, url, version), system, code, stack)

    def _imported(self, url: str, version: str | None, stack: tuple[str, ...]) -> dict[str, Any]:
        vs = self.source.value_set(url, version)
        if vs is None:
            which = f"{url}|{version}" if version else url
            raise cannot_expand(
                f"The value set {stack[-1]} imports the value set {which}, "
                "which is not known to this server"
            )
        return vs

    # ------------------------------------------------------------------ expansion

    def _expand(
        self, vs: dict[str, Any], words: list[str] | None, stack: tuple[str, ...]
    ) -> Expansion:
        compose = vs.get("compose")
        label = stack[-1]
        if not isinstance(compose, dict):
            contains = (vs.get("expansion") or {}).get("contains")
            if contains is None:
                raise cannot_expand(
                    f"The value set {label} has neither a compose nor an expansion to read"
                )
            return Expansion(self._listed(contains))
        used: dict[str, str | None] = {}
        notes: list[tuple[str, str]] = []
        found: dict[tuple[str, str], Entry] = {}
        for part in compose.get("include") or ():
            for entry in self._part(part, words, stack, used, notes):
                found.setdefault(entry.key, entry)
            if len(found) > self.limit:
                raise _TooBigError(label)
        excludes = list(compose.get("exclude") or ())
        if excludes:
            kept = {}
            for k, entry in found.items():
                if not any(
                    self._part_contains(x, entry.system, entry.code, stack) for x in excludes
                ):
                    kept[k] = entry
            found = kept
        entries = list(found.values())
        if compose.get("inactive") is False:
            entries = [e for e in entries if not e.inactive]
        return Expansion(entries, used, notes)

    def _listed(self, contains: Iterable[dict[str, Any]]) -> list[Entry]:
        out: list[Entry] = []
        stack = list(reversed(list(contains)))
        while stack:
            c = stack.pop()
            if c.get("code") is not None:
                out.append(
                    Entry(
                        str(c.get("system", "")),
                        str(c["code"]),
                        c.get("display"),
                        c.get("version"),
                        bool(c.get("inactive")),
                        bool(c.get("abstract")),
                        designations(c),
                    )
                )
            stack.extend(reversed(c.get("contains") or ()))
        return out

    def _part(
        self,
        part: dict[str, Any],
        words: list[str] | None,
        stack: tuple[str, ...],
        used: dict[str, str | None],
        notes: list[tuple[str, str]],
    ) -> list[Entry]:
        imports = [str(u) for u in part.get("valueSet") or ()]
        system = part.get("system")
        if system:
            entries = self._system_part(part, str(system), words, stack, used, notes)
            for canonical in imports:
                entries = [
                    e for e in entries if self._contains_url(canonical, e.system, e.code, stack)
                ]
            return entries
        if not imports:
            raise cannot_expand(f"The value set {stack[-1]} has an include with no system")
        first, *others = imports
        url, version = _split_canonical(first)
        if url in stack:
            raise _circular((*stack, url))
        vs = self._imported(url, version, stack)
        key = self.key(vs, url, version)
        if words is None:
            cached = self.cache.get(key) if self.cache is not None else None
            if cached == _TOO_BIG:
                raise _TooBigError(url)
            if isinstance(cached, Expansion):
                sub = cached
            else:
                sub = self._expand(vs, None, (*stack, url))
                if self.cache is not None:
                    self.cache.put(key, sub)
        else:
            cached = self.cache.get(key) if self.cache is not None else None
            if isinstance(cached, Expansion):
                sub = Expansion(cached.matching(words), cached.used, cached.notes)
            else:
                sub = self._expand(vs, words, (*stack, url))
        used.update(sub.used)
        notes.extend(n for n in sub.notes if n not in notes)
        entries = list(sub.entries)
        for canonical in others:
            entries = [e for e in entries if self._contains_url(canonical, e.system, e.code, stack)]
        return entries

    def _system_part(
        self,
        part: dict[str, Any],
        system: str,
        words: list[str] | None,
        stack: tuple[str, ...],
        used: dict[str, str | None],
        notes: list[tuple[str, str]],
    ) -> list[Entry]:
        version = part.get("version")
        source = self.source
        info = source.system(system, version)
        listed = part.get("concept")
        if listed:
            # the value set enumerates its codes: it is the authority on them; the code system,
            # when held, adds what it knows (status, designations, a missing display)
            if info is not None:
                used[info.url] = info.version
            out = []
            for c in listed:
                code = c.get("code") if isinstance(c, dict) else None
                if not isinstance(code, str):
                    continue
                out.append(_listed_entry(source, system, code, c, info, version))
            return out
        if info is None:
            other = source.system(system) if version else None
            if other is not None:
                raise cannot_expand(
                    f"The value set {stack[-1]} needs version {version} of the code system "
                    f"{system}; this server holds version {other.version}"
                )
            raise cannot_expand(
                f"The value set {stack[-1]} includes codes of the code system {system}, "
                "which is not known to this server (load it with `maison terminology load` "
                "or install the guide that defines it)"
            )
        used[info.url] = info.version
        if info.content not in ("complete", "fragment", "example"):
            raise cannot_expand(
                f"The value set {stack[-1]} includes the code system {system}, of which this "
                f"server holds only the definition (content '{info.content}'), not the concepts"
            )
        if info.content != "complete":
            note = (f"warning-{info.content}", f"{info.url}|{info.version or ''}".rstrip("|"))
            if note not in notes:
                notes.append(note)
        filters = [f for f in part.get("filter") or () if isinstance(f, dict)]
        if filters:
            return self._filtered(system, version, info.count, filters, words, stack[-1])
        if words is None and info.count > self.limit:
            raise _TooBigError(stack[-1])
        return self._entries(system, source.concepts(system, version, words), words)

    def _entries(
        self, system: str, concepts: Iterable[Concept | None], words: list[str] | None
    ) -> list[Entry]:
        out: list[Entry] = []
        limit = self.limit
        for c in concepts:
            if c is None:
                continue
            out.append(
                Entry(
                    system, c.code, c.display, c.version, c.inactive, _abstract(c), c.designations
                )
            )
            if len(out) > limit:
                raise _TooBigError(system)
        return out

    def _filtered(
        self,
        system: str,
        version: str | None,
        size: int,
        filters: list[dict[str, Any]],
        words: list[str] | None,
        label: str,
    ) -> list[Entry]:
        source = self.source
        sets: list[set[str]] = []
        predicates: list[Predicate] = []
        for f in filters:
            code_set, predicate = self._filter(system, version, f, label)
            if code_set is not None:
                sets.append(code_set)
            if predicate is not None:
                predicates.append(predicate)
        candidates: Iterator[Concept | None]
        if sets:
            codes = set.intersection(*sets)
            if words and len(codes) > _PUSHDOWN:
                candidates = (c for c in source.concepts(system, version, words) if c.code in codes)
            else:
                if words is None and len(codes) > self.limit:
                    raise _TooBigError(label)
                candidates = (source.concept(system, code, version) for code in sorted(codes))
        else:
            if words is None and size > self.limit:
                raise _TooBigError(label)
            candidates = source.concepts(system, version, words)
        if predicates:
            candidates = (
                c for c in candidates if c is not None and all(p(c.code, c) for p in predicates)
            )
        return self._entries(system, candidates, words)

    def _filter(
        self, system: str, version: str | None, f: dict[str, Any], label: str
    ) -> tuple[set[str] | None, Predicate | None]:
        """One filter as a set of codes it selects, or a test of each concept."""
        prop, op, value = f.get("property"), f.get("op"), f.get("value")
        if not isinstance(prop, str) or not isinstance(op, str) or not isinstance(value, str):
            raise cannot_expand(f"The value set {label} has a filter without property, op or value")
        source = self.source
        if prop in ("concept", "code"):
            if op == "is-a":
                below = source.descendants(system, value, version)
                if source.concept(system, value, version) is not None:
                    below.add(value)
                return below, None
            if op == "descendent-of":
                return source.descendants(system, value, version), None
            if op == "is-not-a":
                out = source.descendants(system, value, version) | {value}
                return None, lambda code, _c: code not in out
            if op == "generalizes":
                return ancestors(source, system, value, version) | {value}, None
            if op == "=":
                return {value}, None
            if op == "in":
                return _codes(value), None
            if op == "not-in":
                excluded = _codes(value)
                return None, lambda code, _c: code not in excluded
            if op == "regex":
                pattern = _regex(value, label)
                return None, lambda code, _c: pattern.fullmatch(code) is not None
        elif prop == "parent" and op == "=":
            return set(source.children(system, value, version)), None
        elif prop == "child" and op == "=":
            return set(source.parents(system, value, version)), None
        else:
            if op == "=":
                return None, lambda _code, c: _has(c, prop, lambda v: _same(v, value))
            if op == "in":
                wanted = _codes(value)
                return None, lambda _code, c: _has(c, prop, lambda v: str(v) in wanted)
            if op == "not-in":
                banned = _codes(value)
                return None, lambda _code, c: not _has(c, prop, lambda v: str(v) in banned)
            if op == "regex":
                pattern = _regex(value, label)
                return None, lambda _code, c: _has(
                    c, prop, lambda v: pattern.fullmatch(str(v)) is not None
                )
            if op == "exists":
                present = value.lower() == "true"
                return None, lambda _code, c: _has(c, prop, lambda _v: True) == present
        raise not_supported(
            f"The value set {label} uses the filter '{prop} {op}', "
            "which this server does not evaluate"
        )

    # ------------------------------------------------------------------ membership

    def _member(
        self, vs: dict[str, Any], system: str, code: str, stack: tuple[str, ...]
    ) -> Entry | None:
        compose = vs.get("compose")
        if not isinstance(compose, dict):
            contains = (vs.get("expansion") or {}).get("contains")
            if contains is None:
                raise cannot_expand(
                    f"The value set {stack[-1]} has neither a compose nor an expansion to read"
                )
            return Expansion(self._listed(contains)).get(system, code)
        found = None
        for part in compose.get("include") or ():
            found = self._part_contains(part, system, code, stack)
            if found is not None:
                break
        if found is None:
            return None
        if compose.get("inactive") is False and found.inactive:
            return None
        for part in compose.get("exclude") or ():
            if self._part_contains(part, system, code, stack) is not None:
                return None
        return found

    def _part_contains(
        self, part: dict[str, Any], system: str, code: str, stack: tuple[str, ...]
    ) -> Entry | None:
        found: Entry | None = None
        named = part.get("system")
        if named:
            named = str(named)
            if canonical_system(named) != canonical_system(system):
                return None
            found = self._system_member(part, named, code, stack[-1])
            if found is None:
                return None
        imports = [str(u) for u in part.get("valueSet") or ()]
        for canonical in imports:
            url, _ = _split_canonical(canonical)
            if url in stack:
                raise _circular((*stack, url))
            inner = self._contains_url(canonical, system, code, stack)
            if inner is None:
                return None
            found = found or inner
        return found

    def _system_member(
        self, part: dict[str, Any], system: str, code: str, label: str
    ) -> Entry | None:
        version = part.get("version")
        source = self.source
        info = source.system(system, version)
        listed = part.get("concept")
        if listed:
            codes = self._listed_codes.get(id(part))
            if codes is None:
                codes = {str(c["code"]): c for c in listed if isinstance(c, dict) and "code" in c}
                self._listed_codes[id(part)] = codes
            c = codes.get(code)
            if c is not None:
                return _listed_entry(source, system, code, c, info, version)
            return None
        if info is None:
            raise cannot_expand(
                f"The value set {label} includes codes of the code system {system}, "
                "which is not known to this server"
            )
        held = source.concept(system, code, version)
        if held is None:
            return None
        for f in part.get("filter") or ():
            if isinstance(f, dict) and not self._filter_holds(system, version, f, held, label):
                return None
        return Entry(
            system,
            code,
            held.display,
            held.version,
            held.inactive,
            _abstract(held),
            held.designations,
        )

    def _filter_holds(
        self, system: str, version: str | None, f: dict[str, Any], held: Concept, label: str
    ) -> bool:
        prop, op, value = f.get("property"), f.get("op"), f.get("value")
        code = held.code
        source = self.source
        if prop in ("concept", "code") and op in ("is-a", "descendent-of", "is-not-a"):
            above = ancestors(source, system, code, version)
            if op == "is-a":
                return code == value or value in above
            if op == "descendent-of":
                return value in above
            return not (code == value or value in above)
        if prop in ("concept", "code") and op == "generalizes" and isinstance(value, str):
            return code == value or code in ancestors(source, system, value, version)
        if prop == "parent" and op == "=":
            return value in source.parents(system, code, version)
        if prop == "child" and op == "=":
            return value in source.children(system, code, version)
        code_set, predicate = self._filter(system, version, f, label)
        if code_set is not None and code not in code_set:
            return False
        return predicate is None or predicate(code, held)


def _listed_entry(
    source: TerminologySource,
    system: str,
    code: str,
    listed: dict[str, Any],
    info: SystemInfo | None,
    version: str | None,
) -> Entry:
    """The entry of a code a value set lists, completed by what the code system says of it
    when held (status, designations, a missing display)."""
    held = source.concept(system, code, version) if info is not None else None
    return Entry(
        system,
        code,
        listed.get("display") or (held.display if held else None),
        info.version if info is not None else version,
        held.inactive if held else False,
        _abstract(held) if held else False,
        designations(listed) + (held.designations if held else ()),
    )


def _has(concept: Concept | None, prop: str, test: Callable[[Any], bool]) -> bool:
    return concept is not None and any(p == prop and test(v) for p, v in concept.properties)


def _ident(vs: dict[str, Any]) -> str:
    """How the stack of value sets being evaluated names one (includes cycle detection)."""
    return str(vs.get("url") or value_set_label(vs))


def _circular(chain: tuple[str, ...]) -> TerminologyError:
    return cannot_expand(
        "Circular value set includes: " + " -> ".join(chain) + "; a value set cannot include itself"
    )


def too_big_message(label: str, limit: int) -> str:
    """What a person is told when a value set is too big to expand at once."""
    return (
        f"The value set {label} has more than {limit:,} codes: give a text filter (filter) "
        "and page the result (count, offset)"
    )


__all__ = [
    "MAX_COMPUTED",
    "Composer",
    "Entry",
    "Expansion",
    "ExpansionCache",
    "content_revision",
    "too_big_message",
    "value_set_label",
]
