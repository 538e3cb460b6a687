"""Search criteria compiled to SQL on the generic index tables (EXISTS sub-queries).

https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

import functools
import threading
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    tuple_,
    union,
)

from maison.fhir.errors import Category, FhirError
from maison.fhir.search import (
    CompositeValue,
    Criterion,
    Cursor,
    DateValue,
    NumberValue,
    ReferenceValue,
    SearchQuery,
    SortKey,
    TokenValue,
)
from maison.store.schema import INDEX_TABLES, idx_reference, resource, resource_history

#: Aliases above this number in one statement are built afresh instead of pooled.
POOLED_ALIASES = 128
_pool: dict[str, list[Any]] = {}
_pool_lock = threading.Lock()
_numbering = threading.local()


def new_statement() -> None:
    """Number the aliases of the statement about to be built from 0 again. Each table's
    aliases are pooled by number, their column collections built once: making them anew for
    every criterion (``Alias.c``) was half of the time spent building a search."""
    _numbering.next = 0


def _alias(table: Any) -> Any:
    """An alias of ``table`` that no other part of the statement being built uses (the
    ``n``-th of the statement, since :func:`new_statement`), taken from the pool; a fresh
    one while a criterion kept for other statements is built."""
    if getattr(_numbering, "fresh", False):
        return table.alias()
    n = getattr(_numbering, "next", 0)
    _numbering.next = n + 1
    if n >= POOLED_ALIASES:
        return table.alias()
    pool = _pool.get(table.name)
    if pool is None or n >= len(pool):
        with _pool_lock:
            pool = _pool.setdefault(table.name, [])
            while len(pool) <= n:
                made = table.alias(f"{table.name}_{len(pool)}")
                made.c  # noqa: B018 - the column collection, built once
                pool.append(made)
    return pool[n]


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Search parameters answered from columns of the resource table, not from index rows.
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})

# The current version's row with its body.
CURRENT = resource.join(
    resource_history,
    and_(
        resource_history.c.res_type == resource.c.res_type,
        resource_history.c.res_id == resource.c.res_id,
        resource_history.c.version == resource.c.version,
    ),
)


def _date_match(v: object, low: Any, high: Any) -> ColumnElement[bool]:
    """Stored range [low, high] against a prefixed date (https://hl7.org/fhir/R4/search.html#prefix)."""
    assert isinstance(v, DateValue)
    within = and_(low >= v.low, high <= v.high)
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": within,
        "ne": not_(within),
        "gt": high > v.high,
        "lt": low < v.low,
        "ge": or_(high > v.high, within),
        "le": or_(low < v.low, within),
        "sa": low > v.high,
        "eb": high < v.low,
        "ap": and_(low <= v.high, high >= v.low),
    }
    return conditions[v.prefix]


def selectivity(c: Criterion) -> int:
    """How much a criterion usually narrows the result, from 0 (a range or a negation: never
    drives the plan) to 5 (one resource's references or ids)."""
    if c.modifier in ("not", "missing", "contains", "text", "above", "not-in"):
        return 0
    if c.code == "_id" or (c.type == "reference" and not c.chain):
        return 5
    if c.type in ("has", "any") or c.chain:
        return 4
    if c.type == "token" and (c.code.endswith("identifier") or c.modifier == "identifier"):
        return 5
    if c.type == "date" and all(
        isinstance(v, DateValue) and v.prefix == "eq" and v.low[:10] == v.high[:10]
        for v in c.values
    ):
        return 4  # one day (a birth date): a few resources, unlike a range or a year
    return {"string": 3, "uri": 2, "composite": 2, "token": 1}.get(c.type, 0)


def plan(criteria: list[Criterion]) -> list[bool]:
    """For each criterion, whether it is probed per row (True) or drives the plan as an
    uncorrelated sub-query (False): the most selective one drives, the others are probed;
    with no selective criterion at all, every one is a sub-query (index range scans)."""
    ranks = [selectivity(c) for c in criteria]
    if not ranks or max(ranks) == 0:
        return [False] * len(criteria)
    driver = ranks.index(max(ranks))
    return [i != driver for i in range(len(criteria))]


def _shape(c: Criterion) -> Criterion:
    """A criterion without its type-specific definitions, to compare across types."""
    return replace(c, param=None, chain=tuple((t, _shape(i)) for t, i in c.chain))


def system_conditions(query: SearchQuery) -> ColumnElement[bool]:
    """The condition of a system-level search (https://hl7.org/fhir/R4/http.html#search).
    Criteria that read the same on every type (the common parameters) are compiled once,
    correlated with the row's own type; otherwise one branch per type."""
    types = list(query.types)
    r = resource.c
    per_type = [query.per_type.get(t, []) for t in types]
    shapes = [[_shape(c) for c in crits] for crits in per_type]
    if all(s == shapes[0] for s in shapes):
        crits = per_type[0]
        conds: list[ColumnElement[bool]] = [r.res_type.in_(types)]
        conds.extend(
            criterion(c, r.res_type, correlated=probe)
            for c, probe in zip(crits, plan(crits), strict=True)
        )
        return and_(*conds)
    return or_(
        *(
            and_(
                r.res_type == t,
                *(
                    criterion(c, t, correlated=probe)
                    for c, probe in zip(crits, plan(crits), strict=True)
                ),
            )
            for t, crits in zip(types, per_type, strict=True)
        )
    )


def criterion(c: Criterion, rtype: Any, correlated: bool = False) -> ColumnElement[bool]:
    """One criterion as a condition on the searched resource row. Uncorrelated membership
    (``res_id IN (SELECT …)``) lets the planner start from a selective index; ``correlated``
    (a per-row probe, NOT EXISTS for negations) suits ranges and negations once a selective
    criterion drives the plan. The conditions of a resource type's criteria are kept (the
    last :data:`KEPT_CRITERIA` used), each with aliases of its own: ``status=current`` or
    the classes a profession may read come back in search after search, and building a
    condition costs more than running it."""
    if isinstance(rtype, str):
        try:
            return _kept(c, rtype, correlated)
        except TypeError:  # a value that cannot be a key: built for this statement only
            pass
    return _criterion(c, rtype, correlated)


#: How many built criteria are kept (least recently used dropped first).
KEPT_CRITERIA = 512


@functools.lru_cache(maxsize=KEPT_CRITERIA)
def _kept(c: Criterion, rtype: str, correlated: bool) -> ColumnElement[bool]:
    was = getattr(_numbering, "fresh", False)
    _numbering.fresh = True
    try:
        return _criterion(c, rtype, correlated)
    finally:
        _numbering.fresh = was


def _criterion(c: Criterion, rtype: Any, correlated: bool = False) -> ColumnElement[bool]:
    if correlated and (probe := _chain_probe(c, rtype)) is not None:
        return probe
    if correlated and c.type == "any":  # one of several criteria, each probed on the row
        return or_(*(criterion(inner, rtype, correlated=True) for _, inner in c.chain))
    negated, ids = _positive(c, rtype)
    if not correlated:
        return resource.c.res_id.not_in(ids) if negated else resource.c.res_id.in_(ids)
    column = ids.selected_columns[0]
    probe = exists(ids.where(column == resource.c.res_id))
    return not_(probe) if negated else probe


def _chain_probe(c: Criterion, rtype: Any) -> ColumnElement[bool] | None:
    """A chained criterion checked row by row (it does not drive the plan): the row's own
    reference, then the target's own index rows, both read by id, in sub-queries PostgreSQL
    may not flatten (``OFFSET 0``). Flattened, the planner started from the target side on
    a misestimate (5 rows for 5,000 organizations of a city) and looped over it: 0.9 to 87 s
    at 1M resources where this takes under a millisecond per row. None when ``c`` is not a
    plain chain (https://hl7.org/fhir/R4/search.html#chaining)."""
    if c.type in ("has", "any") or len(c.chain) != 1 or c.modifier is not None:
        return None
    target, inner = c.chain[0]
    if inner.chain or inner.type in ("has", "any", "composite") or inner.code in COLUMN_PARAMS:
        return None
    negated, ids = _positive(inner, target, by_id=True)
    if negated:
        return None
    ref = _alias(idx_reference)
    hit = exists(ids.where(ids.selected_columns[0] == ref.c.target_id).offset(0))
    return exists(
        select(ref.c.res_id)
        .where(
            ref.c.res_type == rtype,
            ref.c.res_id == resource.c.res_id,
            ref.c.code == c.code,
            ref.c.target_type == target,
            hit,
        )
        .offset(0)
    )


def matching_ids(c: Criterion, rtype: Any) -> Select[Any]:
    """SELECT of the ids of live ``rtype`` resources that match ``c`` (used inside chains)."""
    negated, ids = _positive(c, rtype)
    if not negated:
        return ids
    r = _alias(resource).c
    return select(r.res_id).where(r.res_type == rtype, r.deleted == false(), r.res_id.not_in(ids))


def _positive(c: Criterion, rtype: Any, by_id: bool = False) -> tuple[bool, Select[Any]]:
    """(negated, ids): the ids matching ``c`` without its negation (``:not``,
    ``:missing=true``), and whether the criterion wants the complement. Index rows exist only
    for the current version of live resources, so no join with the resource table is needed.
    ``by_id``: the ids will be probed one at a time, so the parameter code is compared in a
    form no value index can serve (the row's own index rows are read by id instead)."""
    if c.type == "has":
        return False, _reverse_chain(c, rtype)
    if c.type == "any":  # one of several criteria (compartment membership)
        union_all = union(*(matching_ids(inner, rtype) for _, inner in c.chain))
        return False, union_all.subquery().select()
    if c.chain:
        return False, _forward_chain(c, rtype)
    if c.type == "composite":
        return False, _composite(c, rtype)
    r = _alias(resource).c
    live = [r.res_type == rtype, r.deleted == false()]
    if c.code == "_id" and c.modifier in (None, "not"):
        ids = [v.code for v in c.values if isinstance(v, TokenValue) and v.code]
        return c.modifier == "not", select(r.res_id).where(*live, r.res_id.in_(ids))
    if c.code == "_lastUpdated" and c.modifier is None:
        # a stored instant is the range [t, t]
        dates = or_(*(_date_match(v, r.last_updated, r.last_updated) for v in c.values))
        return False, select(r.res_id).where(*live, dates)
    if c.code in ("_lastUpdated", "_id"):
        raise FhirError(Category.INVALID, f"Modifier ':{c.modifier}' is not allowed on {c.code}")
    kind = "token" if c.modifier == "identifier" else c.type
    table = _alias(INDEX_TABLES[kind])
    # :identifier and :of-type have their own token rows (see maison.fhir.indexing)
    code = f"{c.code}:{c.modifier}" if c.modifier in ("identifier", "of-type") else c.code
    t = table.c
    rows = [t.res_type == rtype, (t.code + literal("")) == code if by_id else t.code == code]
    if c.modifier == "missing":
        return c.values[0] == "true", select(t.res_id).where(*rows)
    if c.modifier in ("in", "not-in"):  # codes of a value set: (system, code) pairs
        pairs = [(v.system, v.code) for v in c.values if isinstance(v, TokenValue)]
        # a ``code`` element carries no system: its code is read in the value set's systems
        bare = sorted({code for _, code in pairs if code})
        found = (
            or_(tuple_(t.system, t.value).in_(pairs), and_(t.system.is_(None), t.value.in_(bare)))
            if pairs
            else false()
        )
        return c.modifier == "not-in", select(t.res_id).where(*rows, found)
    if kind == "token" and c.modifier in (None, "not") and len(c.values) > 1:
        grouped = _by_system(c.values)
        if grouped is not None:  # system|a,system|b,…: one IN per system (cheaper to plan)
            either = or_(*(and_(t.system == sys, t.value.in_(codes)) for sys, codes in grouped))
            return c.modifier == "not", select(t.res_id).where(*rows, either)
    matches = [_value_match(kind, c.modifier, v, table) for v in c.values]
    return c.modifier == "not", select(t.res_id).where(*rows, or_(*matches))


def _by_system(values: tuple[Any, ...]) -> list[tuple[str, list[str]]] | None:
    """Token values that all name a system and a code, as (system, codes) groups; None
    otherwise."""
    groups: dict[str, list[str]] = {}
    for v in values:
        if not isinstance(v, TokenValue) or v.any_system or not v.system or not v.code:
            return None
        groups.setdefault(v.system, []).append(v.code)
    return sorted(groups.items())


def _composite(c: Criterion, rtype: Any) -> Select[Any]:
    """Resources where one repetition of the composite matches every component: the
    component rows are joined on their group (https://hl7.org/fhir/R4/search.html#composite)."""
    branches = []
    for v in c.values:
        assert isinstance(v, CompositeValue)
        tables = [_alias(INDEX_TABLES[kind]) for kind, _ in v.parts]
        first = tables[0]
        joined: Any = first
        conds = [first.c.res_type == rtype, first.c.code == f"{c.code}$0"]
        for i, ((kind, value), table) in enumerate(zip(v.parts, tables, strict=True)):
            if i:
                joined = joined.join(
                    table,
                    and_(
                        table.c.res_type == first.c.res_type,
                        table.c.res_id == first.c.res_id,
                        table.c.grp == first.c.grp,
                        table.c.code == f"{c.code}${i}",
                    ),
                )
            conds.append(_value_match(kind, None, value, table))
        branches.append(select(first.c.res_id).select_from(joined).where(*conds))
    if len(branches) == 1:
        return branches[0]
    return union(*branches).subquery().select()


def _forward_chain(c: Criterion, rtype: Any) -> Select[Any]:
    """Resources whose reference ``c.code`` points at a resource matching the chained
    criterion (https://hl7.org/fhir/R4/search.html#chaining). One branch per possible target
    type, combined by UNION: an OR of them keeps PostgreSQL from starting at the (selective)
    inner criterion and walks every reference instead (7 s against 5 ms at 1M resources)."""
    branches = []
    for target, inner in c.chain:
        ref = _alias(idx_reference)
        branches.append(
            select(ref.c.res_id).where(
                ref.c.res_type == rtype,
                ref.c.code == c.code,
                ref.c.target_type == target,
                ref.c.target_id.in_(matching_ids(inner, target)),
            )
        )
    if len(branches) == 1:
        return branches[0]
    return union(*branches).subquery().select()


def _reverse_chain(c: Criterion, rtype: Any) -> Select[Any]:
    """Resources referred to (by ``c.code``) from some resource of another type that matches
    the inner criterion (https://hl7.org/fhir/R4/search.html#has)."""
    ((htype, inner),) = c.chain
    ref = _alias(idx_reference)
    return select(ref.c.target_id).where(
        ref.c.res_type == htype,
        ref.c.code == c.code,
        ref.c.target_type == rtype,
        ref.c.res_id.in_(matching_ids(inner, htype)),
    )


def _value_match(
    kind: str, modifier: str | None, v: object, table: FromClause
) -> ColumnElement[bool]:
    t = table.c
    if kind == "token":
        if modifier == "text" and isinstance(v, str):
            return t.text_folded.like(f"%{like_escape(v)}%", escape="\\")
        assert isinstance(v, TokenValue)
        if v.any_system:
            return t.value == v.code
        if v.code is None:
            return t.system == v.system
        if v.system is None:
            return and_(t.system.is_(None), t.value == v.code)
        return and_(t.system == v.system, t.value == v.code)
    if kind == "string":
        assert isinstance(v, str)
        if modifier == "exact":
            return t.value == v
        if modifier == "contains":
            return t.value_folded.like(f"%{like_escape(v)}%", escape="\\")
        return t.value_folded.like(f"{like_escape(v)}%", escape="\\")
    if kind == "reference":
        assert isinstance(v, ReferenceValue)
        if v.id is not None:
            local = t.target_id == v.id
            if v.type:
                local = and_(local, t.target_type == v.type)
            return or_(local, t.url == v.url) if v.url else local
        return t.url == v.url
    if kind == "uri":
        assert isinstance(v, str)
        if modifier == "below":
            return t.value.like(f"{like_escape(v)}%", escape="\\")
        if modifier == "above":
            return literal(v).like(t.value + "%")
        return t.value == v
    if kind == "date":
        return _date_match(v, t.low, t.high)
    if kind in ("number", "quantity"):
        assert isinstance(v, NumberValue)
        cond = _number_match(v, t.value, t.low, t.high)
        if kind == "quantity" and v.code is not None:
            cond = and_(cond, t.unit == v.code)
        if kind == "quantity" and v.system is not None:
            cond = and_(cond, t.system == v.system)
        return cond
    raise FhirError(Category.NOT_SUPPORTED, f"Search on {kind} parameters is not supported yet")


def _number_match(v: NumberValue, value: Any, low: Any, high: Any) -> ColumnElement[bool]:
    """A stored number (or Range bounds) against a prefixed search number.

    https://hl7.org/fhir/R4/search.html#prefix — eq/ne/ap use the implicit range of the
    search value (``5.4`` matches 5.35 up to 5.45); gt/lt/ge/le compare with the value itself.
    """
    lo = func.coalesce(value, low)
    hi = func.coalesce(value, high)
    within = and_(lo >= v.low, hi < v.high)
    margin = abs(v.value) * 0.1
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": within,
        "ne": not_(within),
        "gt": hi > v.value,
        "lt": lo < v.value,
        "ge": hi >= v.value,
        "le": lo <= v.value,
        "sa": lo > v.value,
        "eb": hi < v.value,
        "ap": and_(lo <= v.value + margin, hi >= v.value - margin),
    }
    return conditions[v.prefix]


# The index column each sortable type orders by: (ascending, descending) aggregate source.
_SORT_COLUMNS: dict[str, tuple[str, str]] = {
    "string": ("value_folded", "value_folded"),
    "token": ("value", "value"),
    "date": ("low", "high"),
    "number": ("value", "value"),
    "quantity": ("value", "value"),
    "uri": ("value", "value"),
    "reference": ("target_id", "target_id"),
}


def sort_columns(keys: list[SortKey]) -> list[tuple[ColumnElement[Any], bool]]:
    """Each ``_sort`` key as (column, descending): the smallest (ascending) or largest
    (descending) indexed value of the resource (https://hl7.org/fhir/R4/search.html#sort)."""
    r = resource.c
    out: list[tuple[ColumnElement[Any], bool]] = []
    for key in keys:
        if key.type == "column":
            col: Any = r.res_id if key.code == "_id" else r.last_updated
        else:
            table = _alias(INDEX_TABLES[key.type])
            asc_col, desc_col = _SORT_COLUMNS[key.type]
            agg = func.max if key.descending else func.min
            col = (
                select(agg(table.c[desc_col if key.descending else asc_col]))
                .where(
                    table.c.res_type == r.res_type,
                    table.c.res_id == r.res_id,
                    table.c.code == key.code,
                )
                .scalar_subquery()
            )
        out.append((col, key.descending))
    return out


def order_by(columns: list[tuple[ColumnElement[Any], bool]], system: bool) -> list[Any]:
    """ORDER BY for the sort columns: resources without a value come last; the id (and, for
    a system-level search, the type) breaks ties so pages are stable under updates."""
    r = resource.c
    out: list[Any] = [(c.desc() if d else c.asc()).nulls_last() for c, d in columns]
    out.append(r.res_id.asc())
    if system:
        out.append(r.res_type.asc())
    return out


def after(
    columns: list[tuple[ColumnElement[Any], bool]], cursor: Cursor, system: bool
) -> ColumnElement[bool]:
    """Rows strictly after the cursor in :func:`order_by` order (keyset paging: exact while
    resources are written between pages, unlike an offset)."""
    r = resource.c
    keys: list[tuple[Any, bool, Any, bool]] = [
        (c, d, v, True) for (c, d), v in zip(columns, cursor.values, strict=True)
    ]
    keys.append((r.res_id, False, cursor.id, False))
    if system:
        keys.append((r.res_type, False, cursor.type, False))
    branches: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for col, descending, value, nullable in keys:
        if value is None:  # nulls last: only other nulls follow, compared on the next key
            equal.append(col.is_(None))
            continue
        beyond = col < value if descending else col > value
        branches.append(and_(*equal, or_(beyond, col.is_(None)) if nullable else beyond))
        equal.append(col == value)
    return or_(*branches) if branches else false()
