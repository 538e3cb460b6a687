"""Search criteria compiled to SQL on the generic index tables (EXISTS sub-queries).

https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
)

from maison.fhir.errors import Category, FhirError
from maison.fhir.search import (
    Criterion,
    DateValue,
    NumberValue,
    ReferenceValue,
    SortKey,
    TokenValue,
)
from maison.store.schema import INDEX_TABLES, idx_reference, resource, resource_history


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


def criterion(c: Criterion, row: FromClause = resource) -> ColumnElement[bool]:
    """One criterion as a SQL condition on a resource row (the searched one, or a chained one)."""
    r = row.c
    if c.type == "has":
        return _reverse_chain(c, row)
    if c.type == "any":  # one of several criteria (compartment membership)
        return or_(*(criterion(inner, row) for _, inner in c.chain))
    if c.chain:
        return _forward_chain(c, row)
    if c.code == "_id" and c.modifier in (None, "not"):
        ids = [v.code for v in c.values if isinstance(v, TokenValue) and v.code]
        cond = r.res_id.in_(ids)
        return not_(cond) if c.modifier == "not" else cond
    if c.code == "_lastUpdated" and c.modifier is None:
        # a stored instant is the range [t, t]
        return or_(*(_date_match(v, r.last_updated, r.last_updated) for v in c.values))
    if c.code == "_lastUpdated":
        raise FhirError(
            Category.INVALID, f"Modifier ':{c.modifier}' is not allowed on _lastUpdated"
        )
    if c.code == "_id":
        raise FhirError(Category.INVALID, f"Modifier ':{c.modifier}' is not allowed on _id")
    kind = "token" if c.modifier == "identifier" else c.type
    table = INDEX_TABLES[kind].alias()
    # :identifier and :of-type have their own token rows (see maison.fhir.indexing)
    code = f"{c.code}:{c.modifier}" if c.modifier in ("identifier", "of-type") else c.code
    t = table.c
    link = and_(t.res_type == r.res_type, t.res_id == r.res_id, t.code == code)
    if c.modifier == "missing":
        present = exists().where(link)
        return not_(present) if c.values[0] == "true" else present
    matches = [_value_match(kind, c.modifier, v, table) for v in c.values]
    found = exists().where(link, or_(*matches))
    return not_(found) if c.modifier == "not" else found


def _forward_chain(c: Criterion, row: FromClause) -> ColumnElement[bool]:
    """The resource referred to by ``c.code`` matches the chained criterion
    (https://hl7.org/fhir/R4/search.html#chaining)."""
    ref = idx_reference.alias()
    target = resource.alias()
    return exists().where(
        ref.c.res_type == row.c.res_type,
        ref.c.res_id == row.c.res_id,
        ref.c.code == c.code,
        target.c.res_type == ref.c.target_type,
        target.c.res_id == ref.c.target_id,
        target.c.deleted == false(),
        or_(*(and_(target.c.res_type == t, criterion(inner, target)) for t, inner in c.chain)),
    )


def _reverse_chain(c: Criterion, row: FromClause) -> ColumnElement[bool]:
    """Some resource of another type refers to this one and matches the inner criterion
    (https://hl7.org/fhir/R4/search.html#has)."""
    ((htype, inner),) = c.chain
    ref = idx_reference.alias()
    other = resource.alias()
    return exists().where(
        other.c.res_type == htype,
        other.c.deleted == false(),
        ref.c.res_type == other.c.res_type,
        ref.c.res_id == other.c.res_id,
        ref.c.code == c.code,
        ref.c.target_type == row.c.res_type,
        ref.c.target_id == row.c.res_id,
        criterion(inner, other),
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


def order_by(keys: list[SortKey]) -> list[ColumnElement[Any]]:
    """ORDER BY for ``_sort`` (https://hl7.org/fhir/R4/search.html#sort): each key is the
    smallest (ascending) or largest (descending) indexed value of the resource; resources
    without a value come last; the id breaks ties so pages are stable."""
    r = resource.c
    if not keys:
        return [r.last_updated.desc(), r.res_id]
    out: list[ColumnElement[Any]] = []
    for key in keys:
        if key.type == "column":
            col: Any = r.res_id if key.code == "_id" else r.last_updated
        else:
            table = INDEX_TABLES[key.type].alias()
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
        out.append((col.desc() if key.descending else col.asc()).nulls_last())
    out.append(r.res_id.asc())
    return out
