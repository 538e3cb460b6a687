"""The terminology content the loaders put in the SQL store, read as a
:class:`~maison.terminology.source.TerminologySource`, and the writing side the loaders use.

A code system version is a ``term_system`` row with its concepts, designations and is-a
edges; ValueSets and ConceptMaps are stored as their JSON bodies. Several versions of one URL
live side by side; without a version, a read takes the most recently loaded one (a complete
one before a fragment). A load (:meth:`SqlTerminology.load`) runs in one transaction: nothing
of it is visible until it all is, and an error leaves nothing behind. It is idempotent: an
item whose URL, version and content hash are already stored writes nothing (``unchanged``);
the same URL and version with other content is replaced in the same transaction.

Each concept carries ``text_folded``: the folded words of its display and designations, so a
text filter (:func:`~maison.terminology.source.filter_words`) is ``LIKE '% word%'`` per word
in SQL, with the semantics of :meth:`~maison.terminology.source.Concept.matches`.

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import Connection, Table, bindparam, delete, insert, select, text, update
from sqlalchemy.exc import DataError, IntegrityError

from maison.store.schema import (
    term_concept,
    term_designation,
    term_parent,
    term_resource,
    term_system,
)
from maison.store.sql import SqlStore, format_instant
from maison.terminology.loaders import (
    ConceptRow,
    DesignationRow,
    Item,
    LoadError,
    OidResolver,
    ResourceLoad,
    SystemLoad,
    oid_of,
)
from maison.terminology.source import (
    Concept,
    Designation,
    SystemInfo,
    canonical_system,
    fold,
)

#: (item label, phase "reading"/"indexing", rows done, rows expected or None)
Progress = Callable[[str, str, int, int | None], None]
BATCH: Final = 5000  # rows per INSERT/COPY
PAGE: Final = 1000  # concepts per read page
_WORD = re.compile(r"[^\W_]+")  # a run of str.isalnum() characters, as source._words splits

_c, _d, _p, _s, _r = (
    term_concept.c,
    term_designation.c,
    term_parent.c,
    term_system.c,
    term_resource.c,
)
_CONCEPT = select(_c.display, _c.inactive, _c.properties).where(
    _c.system_id == bindparam("sid"), _c.code == bindparam("code")
)
_DESIGNATIONS = select(_d.language, _d.use_system, _d.use_code, _d.value).where(
    _d.system_id == bindparam("sid"), _d.code == bindparam("code")
)
_PARENTS = (
    select(_p.parent)
    .where(_p.system_id == bindparam("sid"), _p.child == bindparam("code"))
    .order_by(_p.parent)
)
_CHILDREN = (
    select(_p.child)
    .where(_p.system_id == bindparam("sid"), _p.parent == bindparam("code"))
    .order_by(_p.child)
)
_DESCENDANTS = text(
    "WITH RECURSIVE below(code) AS ("
    " SELECT child FROM term_parent WHERE system_id = :sid AND parent = :code"
    " UNION"
    " SELECT p.child FROM term_parent p JOIN below b ON p.parent = b.code"
    " WHERE p.system_id = :sid"
    ") SELECT code FROM below"
)


def search_text(texts: Iterable[str | None]) -> str:
    """`` word1 word2…``: the folded words of ``texts``, each once, each after a space
    (https://hl7.org/fhir/R4/valueset-operation-expand.html, ``filter``)."""
    words: dict[str, None] = {}
    for t in texts:
        if t:
            folded = t.lower() if t.isascii() else fold(t)
            words.update(dict.fromkeys(_WORD.findall(folded)))
    return " " + " ".join(words) if words else ""


@dataclass(frozen=True)
class Outcome:
    """What a load did with one item (https://hl7.org/fhir/R4/terminology-service.html)."""

    resource_type: str  # CodeSystem | ValueSet | ConceptMap
    url: str
    version: str | None
    name: str | None
    status: str  # created | replaced | unchanged
    count: int  # concepts of a code system; codes a value set lists; source codes a map maps
    label: str = ""


@dataclass(frozen=True)
class Loaded:
    """One stored code system version, value set or concept map (``maison terminology list``)."""

    resource_type: str
    url: str
    version: str | None
    name: str | None
    kind: str
    count: int
    loaded_at: str


@dataclass(frozen=True)
class _System:
    id: int
    url: str
    version: str
    name: str | None
    title: str | None
    kind: str
    content: str
    oid: str | None
    hierarchical: bool
    count: int
    loaded_at: str

    def info(self) -> SystemInfo:
        return SystemInfo(
            url=self.url,
            version=self.version or None,
            name=self.name,
            title=self.title,
            count=self.count,
            content=self.content,
            hierarchical=self.hierarchical,
            oid=self.oid,
        )


@dataclass
class _Index:
    """The stored code system versions, newest first per URL and per OID."""

    by_url: dict[str, list[_System]] = field(default_factory=dict)
    by_oid: dict[str, list[_System]] = field(default_factory=dict)
    every: list[_System] = field(default_factory=list)

    @classmethod
    def of(cls, rows: Sequence[Any]) -> _Index:
        index = cls()
        systems = [_System(*row) for row in rows]
        systems.sort(key=lambda s: (s.loaded_at, s.id), reverse=True)
        for s in systems:
            index.by_url.setdefault(s.url, []).append(s)
            if s.oid:
                index.by_oid.setdefault(s.oid, []).append(s)
        index.every = sorted(systems, key=lambda s: (s.url, s.version))
        return index


def _latest(candidates: list[_System]) -> _System:
    """The newest complete version, else the newest one."""
    return next((s for s in candidates if s.content == "complete"), candidates[0])


def _version_of(body: dict[str, Any]) -> str:
    version = body.get("version")
    return str(version) if version not in (None, "") else ""


def _listed(body: dict[str, Any]) -> int:
    if body.get("resourceType") == "ConceptMap":
        return sum(len(g.get("element") or []) for g in body.get("group") or [])
    compose = body.get("compose") or {}
    return sum(len(i.get("concept") or []) for i in compose.get("include") or [])


class SqlTerminology:
    """Code systems, value sets and concept maps held in the SQL store
    (https://hl7.org/fhir/R4/terminology-service.html).

    The list of code system versions is cached for ``cache_seconds``: a load made by another
    process shows within that delay (this instance's own loads at once).
    """

    def __init__(
        self,
        store: SqlStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = 1.0,
    ) -> None:
        """Read and write through ``store``'s engine (https://hl7.org/fhir/R4/terminology-service.html)."""
        self._store = store
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._index: _Index | None = None
        self._index_until = 0.0
        self._revision: Hashable = ()
        #: (type, url or urn:oid:…) -> [(id, version)], newest first: a value set this store
        #: does not hold is answered without a query (the validator asks for every binding)
        self._held: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self._bodies: dict[int, bytes | str] = {}  # stored JSON bodies by id, until the refresh

    # -- reading ---------------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[Connection]:
        """A read-only connection (no SQLite write lock, no PostgreSQL BEGIN)."""
        with self._store.engine.connect() as conn:
            if self._store.dialect == "sqlite":
                yield conn.execution_options(maison_write=False)
            else:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def _systems(self) -> _Index:
        now = self._clock()
        if self._index is None or now >= self._index_until:
            with self._conn() as conn:
                rows = conn.execute(
                    select(
                        _s.id,
                        _s.url,
                        _s.version,
                        _s.name,
                        _s.title,
                        _s.kind,
                        _s.content,
                        _s.oid,
                        _s.hierarchical,
                        _s.concept_count,
                        _s.loaded_at,
                    )
                ).all()
                resources = conn.execute(
                    select(
                        _r.id,
                        _r.res_type,
                        _r.url,
                        _r.version,
                        _r.oid,
                        _r.loaded_at,
                        _r.content_hash,
                    ).order_by(_r.loaded_at.desc(), _r.id.desc())
                ).all()
            self._index = _Index.of(rows)
            self._revision = (
                tuple((s.id, s.loaded_at, s.count) for s in self._index.every),
                tuple(sorted((int(r.id), str(r.content_hash)) for r in resources)),
            )
            held: dict[tuple[str, str], list[tuple[int, str]]] = {}
            for r in resources:  # newest first
                entry = (int(r.id), str(r.version))
                held.setdefault((str(r.res_type), str(r.url)), []).append(entry)
                if r.oid:
                    held.setdefault((str(r.res_type), f"urn:oid:{r.oid}"), []).append(entry)
            self._held = held
            self._bodies = {}
            self._index_until = now + self._cache_seconds
        return self._index

    @property
    def revision(self) -> Hashable:
        """What changes whenever a code system, value set or concept map is loaded (the
        expansion cache's key; https://hl7.org/fhir/R4/terminology-service.html)."""
        self._systems()
        return self._revision

    def _invalidate(self) -> None:
        self._index = None

    def _resolve(self, url: str, version: str | None) -> _System | None:
        index = self._systems()
        canon = canonical_system(url)
        candidates = index.by_url.get(canon)
        if not candidates and canon.startswith("urn:oid:"):
            candidates = index.by_oid.get(canon[len("urn:oid:") :])
        if not candidates:
            return None
        if not version:
            return _latest(candidates)
        exact = [s for s in candidates if s.version == version]
        if exact:
            return exact[0]
        # a SNOMED CT edition without its /version/…: the latest of that edition
        edition = [s for s in candidates if s.version.startswith(version.rstrip("/") + "/version/")]
        return edition[0] if edition else None

    def system(self, url: str, version: str | None = None) -> SystemInfo | None:
        """The stored version of a code system (https://hl7.org/fhir/R4/codesystem.html)."""
        found = self._resolve(url, version)
        return found.info() if found else None

    def systems(self) -> list[SystemInfo]:
        """Every stored code system version (https://hl7.org/fhir/R4/codesystem.html)."""
        return [s.info() for s in self._systems().every]

    def url_for_oid(self, oid: str) -> str | None:
        """The canonical URL of the stored code system with that OID
        (https://hl7.org/fhir/R4/terminologies-systems.html)."""
        found = self._systems().by_oid.get(oid)
        return found[0].url if found else None

    def concept(self, url: str, code: str, version: str | None = None) -> Concept | None:
        """One concept with its designations and properties
        (https://hl7.org/fhir/R4/codesystem-operation-lookup.html)."""
        found = self._resolve(url, version)
        if found is None:
            return None
        params = {"sid": found.id, "code": code}
        with self._conn() as conn:
            row = conn.execute(_CONCEPT, params).first()
            if row is None:
                return None
            designations = conn.execute(_DESIGNATIONS, params).all()
        return Concept(
            system=found.url,
            code=code,
            display=row.display,
            version=found.version or None,
            inactive=bool(row.inactive),
            designations=tuple(
                Designation(d.value, d.language, d.use_system, d.use_code) for d in designations
            ),
            properties=_properties(row.properties),
        )

    def concepts(
        self, url: str, version: str | None = None, words: list[str] | None = None
    ) -> Iterator[Concept]:
        """The concepts in code order, those whose display or a designation has a word starting
        with each of ``words`` when given (https://hl7.org/fhir/R4/valueset-operation-expand.html)."""
        found = self._resolve(url, version)
        if found is None:
            return
        conds: list[Any] = [_c.system_id == found.id]
        for word in words or []:
            conds.append(_c.text_folded.like(f"% {word}%"))
        last: str | None = None
        while True:
            page_conds = [*conds, _c.code > last] if last is not None else conds
            with self._conn() as conn:
                rows = conn.execute(
                    select(_c.code, _c.display, _c.inactive, _c.properties)
                    .where(*page_conds)
                    .order_by(_c.code)
                    .limit(PAGE)
                ).all()
                by_code: dict[str, list[Designation]] = {}
                if rows:
                    codes = [r.code for r in rows]
                    for d in conn.execute(
                        select(_d.code, _d.language, _d.use_system, _d.use_code, _d.value).where(
                            _d.system_id == found.id, _d.code.in_(codes)
                        )
                    ):
                        by_code.setdefault(d.code, []).append(
                            Designation(d.value, d.language, d.use_system, d.use_code)
                        )
            for r in rows:
                yield Concept(
                    system=found.url,
                    code=r.code,
                    display=r.display,
                    version=found.version or None,
                    inactive=bool(r.inactive),
                    designations=tuple(by_code.get(r.code, ())),
                    properties=_properties(r.properties),
                )
            if len(rows) < PAGE:
                return
            last = rows[-1].code

    def parents(self, url: str, code: str, version: str | None = None) -> list[str]:
        """The direct is-a parents of a code (https://hl7.org/fhir/R4/codesystem.html#hierarchy)."""
        return self._codes(_PARENTS, url, code, version)

    def children(self, url: str, code: str, version: str | None = None) -> list[str]:
        """The direct is-a children of a code (https://hl7.org/fhir/R4/codesystem.html#hierarchy)."""
        return self._codes(_CHILDREN, url, code, version)

    def descendants(self, url: str, code: str, version: str | None = None) -> set[str]:
        """Every code below ``code`` (transitive is-a; one recursive query)
        (https://hl7.org/fhir/R4/valueset.html#filters, ``is-a`` / ``descendent-of``)."""
        return set(self._codes(_DESCENDANTS, url, code, version)) - {code}

    def _codes(self, query: Any, url: str, code: str, version: str | None) -> list[str]:
        found = self._resolve(url, version)
        if found is None or not found.hierarchical:
            return []
        with self._conn() as conn:
            return [str(r[0]) for r in conn.execute(query, {"sid": found.id, "code": code})]

    def value_set(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        """A stored ValueSet; ``urn:oid:`` URLs also find it by identifier
        (https://hl7.org/fhir/R4/valueset.html)."""
        return self._resource("ValueSet", url, version)

    def concept_map(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        """A stored ConceptMap (https://hl7.org/fhir/R4/conceptmap.html)."""
        return self._resource("ConceptMap", url, version)

    def concept_maps(self) -> list[dict[str, Any]]:
        """The latest version of every stored ConceptMap (https://hl7.org/fhir/R4/conceptmap.html)."""
        with self._conn() as conn:
            rows = conn.execute(
                select(_r.url, _r.body)
                .where(_r.res_type == "ConceptMap")
                .order_by(_r.url, _r.loaded_at.desc(), _r.id.desc())
            ).all()
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for row in rows:
            if row.url not in seen:
                seen.add(row.url)
                out.append(orjson.loads(row.body))
        return out

    def _resource(self, res_type: str, url: str, version: str | None) -> dict[str, Any] | None:
        self._systems()  # refreshes what is held when due
        candidates = self._held.get((res_type, url), [])
        found = next((i for i, v in candidates if not version or v == version), None)
        if found is None:
            return None
        raw = self._bodies.get(found)
        if raw is None:
            with self._conn() as conn:
                raw = conn.execute(select(_r.body).where(_r.id == found)).scalar_one_or_none()
            if raw is None:  # replaced meanwhile: known again after the refresh
                self._invalidate()
                return None
            self._bodies[found] = raw
        # the stored JSON parsed afresh: a caller's own copy, ten times cheaper than deepcopy
        body: dict[str, Any] = orjson.loads(raw)
        return body

    def loaded(self) -> list[Loaded]:
        """Every stored code system version, value set and concept map, by type and URL
        (https://hl7.org/fhir/R4/terminology-service.html)."""
        out = [
            Loaded("CodeSystem", s.url, s.version or None, s.name, s.kind, s.count, s.loaded_at)
            for s in self._systems().every
        ]
        with self._conn() as conn:
            rows = conn.execute(
                select(
                    _r.res_type, _r.url, _r.version, _r.name, _r.kind, _r.body, _r.loaded_at
                ).order_by(_r.res_type.desc(), _r.url, _r.version)
            ).all()
        for row in rows:
            count = _listed(orjson.loads(row.body))
            out.append(
                Loaded(
                    row.res_type,
                    row.url,
                    row.version or None,
                    row.name,
                    row.kind,
                    count,
                    row.loaded_at,
                )
            )
        return out

    # -- writing ---------------------------------------------------------------------------
    def load(
        self,
        produce: Callable[[OidResolver], Iterable[Item]],
        progress: Progress | None = None,
    ) -> list[Outcome]:
        """Load the items ``produce`` yields, all in one transaction: a :class:`LoadError`
        (or any error) leaves nothing written (https://hl7.org/fhir/R4/terminology-service.html)."""
        store = self._store
        writer: _Writer | None = None
        dbapi = store.engine.dialect.loaded_dbapi  # COPY runs on the driver's own cursor
        refused = (IntegrityError, DataError, dbapi.IntegrityError, dbapi.DataError)
        try:
            with store.write_lock(), store.engine.connect() as conn:
                if store.dialect == "sqlite":
                    conn = conn.execution_options(maison_write=True)
                with conn.begin():
                    if store.dialect == "postgresql":  # big loads outlast the 30 s of a request
                        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                    writer = _Writer(conn, store.dialect, format_instant(store.clock()), progress)

                    def resolve(oid: str) -> str | None:
                        assert writer is not None
                        return writer.oids.get(oid) or self.url_for_oid(oid)

                    for item in produce(resolve):
                        writer.write(item)
                    outcomes = writer.outcomes
                    _refuse_circular_imports(conn, outcomes)
        except refused as exc:
            label = writer.current if writer else ""
            reason = getattr(exc, "orig", None) or exc
            raise LoadError(f"refused by the database: {reason}", label or None) from None
        finally:
            self._invalidate()
        return outcomes


def _imports(body: dict[str, Any]) -> list[str]:
    """The value sets a value set's compose imports (include and exclude), versions cut."""
    compose = body.get("compose") or {}
    parts = [*compose.get("include", ()), *compose.get("exclude", ())]
    return [str(u).split("|", 1)[0] for p in parts for u in p.get("valueSet", ())]


def _refuse_circular_imports(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    """A value set this load wrote that imports itself through other stored value sets is
    refused with the circle named (the load then writes nothing)
    (https://hl7.org/fhir/R4/valueset.html#compositions)."""
    loaded = {o.url for o in outcomes if o.resource_type == "ValueSet"}
    if not loaded:
        return
    graph: dict[str, list[str]] = {}
    for url, body in conn.execute(select(_r.url, _r.body).where(_r.res_type == "ValueSet")):
        graph.setdefault(str(url), []).extend(_imports(orjson.loads(body)))
    done: set[str] = set()  # explored without a circle
    for start in sorted(loaded):
        if start in done:
            continue
        path = [start]
        todo: list[tuple[str, int]] = [(start, 0)]
        on_path = {start}
        # depth-first, iterative: (value set, index of the next import to follow)
        while todo:
            url, i = todo[-1]
            targets = graph.get(url, [])
            if i >= len(targets):
                todo.pop()
                on_path.discard(url)
                path.pop()
                done.add(url)
                continue
            todo[-1] = (url, i + 1)
            nxt = targets[i]
            if nxt in on_path:
                circle = " -> ".join([*path[path.index(nxt) :], nxt])
                raise LoadError(f"circular value set imports: {circle}", start)
            if nxt in graph and nxt not in done:
                todo.append((nxt, 0))
                on_path.add(nxt)
                path.append(nxt)


def _properties(raw: str | None) -> tuple[tuple[str, Any], ...]:
    if not raw:
        return ()
    return tuple((str(k), v) for k, v in orjson.loads(raw))


class _Writer:
    """The statements of one load transaction."""

    def __init__(self, conn: Connection, dialect: str, now: str, progress: Progress | None) -> None:
        self.conn = conn
        self.pg = dialect == "postgresql"
        self.now = now
        self.progress = progress
        self.oids: dict[str, str] = {}  # code systems written by this load, by OID
        self.outcomes: list[Outcome] = []
        self.current = ""
        self._staged: set[str] = set()

    def write(self, item: Item) -> None:
        self.current = item.label
        if isinstance(item, SystemLoad):
            self.outcomes.append(self._system(item))
        else:
            self.outcomes.append(self._resource(item))

    # -- code systems ----------------------------------------------------------------------
    def _system(self, item: SystemLoad) -> Outcome:
        meta = item.meta
        version = meta.version or ""
        existing = self.conn.execute(
            select(_s.id, _s.content_hash, _s.concept_count).where(
                _s.url == meta.url, _s.version == version
            )
        ).first()
        if meta.oid:
            self.oids[meta.oid] = meta.url

        def outcome(status: str, count: int) -> Outcome:
            return Outcome(
                "CodeSystem", meta.url, meta.version, meta.name, status, count, item.label
            )

        if existing is not None and existing.content_hash == item.digest:
            return outcome("unchanged", int(existing.concept_count))
        values = {
            "url": meta.url,
            "version": version,
            "name": meta.name,
            "title": meta.title,
            "kind": meta.kind,
            "content": meta.content,
            "oid": meta.oid,
            "hierarchical": False,
            "concept_count": 0,
            "content_hash": item.digest,
            "loaded_at": self.now,
            "header": orjson.dumps(meta.header).decode() if meta.header else None,
        }
        if existing is not None:
            sid = int(existing.id)
            for table in (term_concept, term_designation, term_parent):
                self.conn.execute(delete(table).where(table.c.system_id == sid))
            self.conn.execute(update(term_system).where(_s.id == sid).values(**values))
            status = "replaced"
        else:
            result = self.conn.execute(insert(term_system).values(**values))
            key = result.inserted_primary_key
            assert key is not None
            sid = int(key[0])
            status = "created"
        count, edges, late = self._stream(sid, item)
        if late:
            self._finalize(sid, item, count)
        self.conn.execute(
            update(term_system)
            .where(_s.id == sid)
            .values(concept_count=count, hierarchical=edges > 0)
        )
        return outcome(status, count)

    def _stream(self, sid: int, item: SystemLoad) -> tuple[int, int, bool]:
        """Insert the rows in batches; (concepts, edges, whether displays or search texts are
        to be completed from designations read apart)."""
        concepts: list[tuple[Any, ...]] = []
        designations: list[tuple[Any, ...]] = []
        parents: list[tuple[Any, ...]] = []
        count = edges = done = 0
        late = False
        for row in item.rows():
            done += 1
            if type(row) is ConceptRow:
                count += 1
                props = orjson.dumps(row.properties).decode() if row.properties else None
                texts = [row.display, *(d.value for d in row.designations)]
                concepts.append(
                    (sid, row.code, row.display, search_text(texts), row.inactive, props)
                )
                for d in row.designations:
                    designations.append(
                        (sid, row.code, d.language, d.use_system, d.use_code, d.value, False)
                    )
                for parent in row.parents:
                    parents.append((sid, row.code, parent))
                    edges += 1
                if row.display is None:
                    late = True
            elif type(row) is DesignationRow:
                late = True
                designations.append(
                    (
                        sid,
                        row.code,
                        row.language,
                        row.use_system,
                        row.use_code,
                        row.value,
                        row.preferred,
                    )
                )
            else:
                parents.append((sid, row.child, row.parent))  # type: ignore[union-attr]
                edges += 1
            if len(concepts) >= BATCH:
                self._concepts(concepts)
                concepts = []
            if len(designations) >= BATCH:
                self._designations(designations)
                designations = []
            if len(parents) >= BATCH:
                self._parents(parents)
                parents = []
            if self.progress is not None and done % BATCH == 0:
                self.progress(item.label, "reading", done, item.total)
        self._concepts(concepts)
        self._designations(designations)
        self._parents(parents)
        if self.progress is not None:
            self.progress(item.label, "reading", done, max(done, item.total or 0))
        return count, edges, late

    def _finalize(self, sid: int, item: SystemLoad, total: int) -> None:
        """Complete displays and search texts from the designations, page by page in code
        order (designations read apart from their concepts: SNOMED CT descriptions, LOINC
        linguistic variants)."""
        choose = item.display_from
        last: str | None = None
        done = 0
        while True:
            conds: list[Any] = [_c.system_id == sid]
            if last is not None:
                conds.append(_c.code > last)
            rows = self.conn.execute(
                select(_c.code, _c.display).where(*conds).order_by(_c.code).limit(BATCH)
            ).all()
            if not rows:
                break
            first, last = rows[0].code, rows[-1].code
            by_code: dict[str, list[DesignationRow]] = {}
            for d in self.conn.execute(
                select(
                    _d.code, _d.value, _d.language, _d.use_system, _d.use_code, _d.preferred
                ).where(_d.system_id == sid, _d.code >= first, _d.code <= last)
            ):
                by_code.setdefault(d.code, []).append(
                    DesignationRow(
                        d.code, d.value, d.language, d.use_system, d.use_code, bool(d.preferred)
                    )
                )
            fixes: list[tuple[Any, ...]] = []
            for code, display in rows:
                mine = by_code.get(code, [])
                if display is None and mine:
                    display = choose(mine) if choose else mine[0].value
                fixes.append((code, display, search_text([display, *(d.value for d in mine)])))
            self._fix(sid, fixes)
            done += len(rows)
            if self.progress is not None:
                self.progress(item.label, "indexing", done, total or None)
            if len(rows) < BATCH:
                break

    # -- value sets and concept maps -------------------------------------------------------
    def _resource(self, item: ResourceLoad) -> Outcome:
        body = item.body
        res_type = str(body.get("resourceType"))
        url = str(body.get("url"))
        version = _version_of(body)
        name = body.get("name")

        def outcome(status: str) -> Outcome:
            return Outcome(res_type, url, version or None, name, status, _listed(body), item.label)

        existing = self.conn.execute(
            select(_r.id, _r.content_hash).where(
                _r.res_type == res_type, _r.url == url, _r.version == version
            )
        ).first()
        if existing is not None and existing.content_hash == item.digest:
            return outcome("unchanged")
        values = {
            "res_type": res_type,
            "url": url,
            "version": version,
            "name": name if isinstance(name, str) else None,
            "title": body.get("title") if isinstance(body.get("title"), str) else None,
            "oid": oid_of(body),
            "kind": item.kind,
            "body": orjson.dumps(body).decode(),
            "content_hash": item.digest,
            "loaded_at": self.now,
        }
        if existing is not None:
            self.conn.execute(update(term_resource).where(_r.id == existing.id).values(**values))
            return outcome("replaced")
        self.conn.execute(insert(term_resource).values(**values))
        return outcome("created")

    # -- bulk statements -------------------------------------------------------------------
    def _concepts(self, rows: list[tuple[Any, ...]]) -> None:
        cols = ("system_id", "code", "display", "text_folded", "inactive", "properties")
        self._insert(term_concept, cols, rows)

    def _designations(self, rows: list[tuple[Any, ...]]) -> None:
        cols = ("system_id", "code", "language", "use_system", "use_code", "value", "preferred")
        self._insert(term_designation, cols, rows)

    def _parents(self, rows: list[tuple[Any, ...]]) -> None:
        """Edges, a repeated one kept once (RF2 may state an is-a twice)."""
        if not rows:
            return
        cols = ("system_id", "child", "parent")
        if not self.pg:
            self._executemany("INSERT OR IGNORE INTO term_parent", cols, rows)
            return
        self._stage(
            "term_parent_stage",
            'system_id integer, child text COLLATE "C", parent text COLLATE "C"',
            cols,
            rows,
        )
        self.conn.exec_driver_sql(
            "INSERT INTO term_parent (system_id, child, parent) SELECT DISTINCT system_id, child, "
            "parent FROM term_parent_stage ON CONFLICT DO NOTHING"
        )

    def _fix(self, sid: int, rows: list[tuple[Any, ...]]) -> None:
        """Set display and text_folded of concepts given as (code, display, text_folded)."""
        if not rows:
            return
        if not self.pg:
            self.conn.exec_driver_sql(
                "UPDATE term_concept SET display = ?, text_folded = ? "
                "WHERE system_id = ? AND code = ?",
                [(display, folded, sid, code) for code, display, folded in rows],
            )
            return
        self._stage(
            "term_fix_stage",
            'code text COLLATE "C", display text, text_folded text',
            ("code", "display", "text_folded"),
            rows,
        )
        self.conn.exec_driver_sql(
            "UPDATE term_concept c SET display = f.display, text_folded = f.text_folded "
            f"FROM term_fix_stage f WHERE c.system_id = {int(sid)} AND c.code = f.code"
        )

    def _insert(self, table: Table, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """COPY on PostgreSQL, executemany on SQLite."""
        if not rows:
            return
        if not self.pg:
            self._executemany(f"INSERT INTO {table.name}", cols, rows)
            return
        self._copy(table.name, cols, rows)

    def _executemany(self, head: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(cols))
        self.conn.exec_driver_sql(f"{head} ({', '.join(cols)}) VALUES ({marks})", rows)

    def _copy(self, table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        raw: Any = self.conn.connection.dbapi_connection
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _stage(
        self, name: str, columns: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """Fill a temporary table of this transaction (PostgreSQL) with ``rows``."""
        if name not in self._staged:
            self.conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({columns}) ON COMMIT DROP")
            self._staged.add(name)
        else:
            self.conn.exec_driver_sql(f"TRUNCATE {name}")
        self._copy(name, cols, rows)


__all__ = ["Loaded", "Outcome", "Progress", "SqlTerminology", "search_text"]
