"""Search query parsing: FHIR search parameters into typed criteria the store compiles to SQL.

https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from maison.fhir.definitions import Definitions, SearchParam
from maison.fhir.errors import Category, FhirError, Issue
from maison.fhir.validation_terminology import ValueSetExpander

# Result parameters handled by the search engine itself, not by the index tables.
RESULT_PARAMS = frozenset(
    {
        "_count",
        "_offset",
        "_cursor",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_format",
        "_pretty",
        "_include",
        "_revinclude",
        "_include:iterate",
        "_revinclude:iterate",
    }
)
SORTABLE = frozenset({"string", "token", "date", "number", "quantity", "uri", "reference"})
SUPPORTED_TYPES = frozenset(
    {"token", "string", "reference", "uri", "date", "number", "quantity", "composite"}
)
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
MAX_COUNT = 1000
#: Page size when the client gives no _count: the Annuaire Santé API's (FHIR leaves it to the
#: server; https://hl7.org/fhir/R4/search.html#count).
DEFAULT_COUNT = 50


@dataclass(frozen=True)
class TokenValue:
    """``[system]|[code]`` or ``code``: https://hl7.org/fhir/R4/search.html#token."""

    system: str | None
    code: str | None
    any_system: bool  # True when no '|' was given


@dataclass(frozen=True)
class ReferenceValue:
    """``Type/id``, ``id`` or an absolute URL: https://hl7.org/fhir/R4/search.html#reference."""

    type: str | None
    id: str | None
    url: str | None


@dataclass(frozen=True)
class DateValue:
    """A prefixed date and the instant range its precision covers."""

    prefix: str
    low: str
    high: str


@dataclass(frozen=True)
class NumberValue:
    """A prefixed number (and, for quantities, a unit): https://hl7.org/fhir/R4/search.html#number."""

    prefix: str
    value: float
    low: float  # implicit range from the precision written: 5.4 -> [5.35, 5.45)
    high: float
    system: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class CompositeValue:
    """``a$b``: one value per component, each with its component's parameter type.

    https://hl7.org/fhir/R4/search.html#composite
    """

    parts: tuple[tuple[str, str | TokenValue | ReferenceValue | DateValue | NumberValue], ...]


Value = str | TokenValue | ReferenceValue | DateValue | NumberValue | CompositeValue


@dataclass(frozen=True)
class Criterion:
    """One search parameter occurrence: its values are ORed; criteria are ANDed."""

    code: str
    type: str  # a search-parameter type, or "has" for a reverse chain
    modifier: str | None
    values: tuple[Value, ...]
    param: SearchParam | None = None
    # chained (type, criterion) pairs: the referenced resource must match one of them
    chain: tuple[tuple[str, Criterion], ...] = ()


@dataclass(frozen=True)
class Include:
    """``_include=Source:param[:Target]`` (or ``_revinclude``), optionally ``:iterate``.

    https://hl7.org/fhir/R4/search.html#include
    """

    source: str
    code: str | None  # None for "*": every reference parameter
    target: str | None
    iterate: bool = False


@dataclass(frozen=True)
class SortKey:
    """One ``_sort`` key: https://hl7.org/fhir/R4/search.html#sort."""

    code: str
    type: str
    descending: bool


@dataclass
class SearchQuery:
    """A parsed search on one resource type."""

    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    total: str = "accurate"
    summary_count: bool = False
    ignored: list[str] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    summary: str = "false"
    elements: frozenset[str] | None = None
    after: Cursor | None = None  # keyset paging: where the previous page ended
    # system-level search (https://hl7.org/fhir/R4/http.html#search): the types searched and
    # each one's criteria (``criteria`` is then unused); empty for a type-level search
    types: tuple[str, ...] = ()
    per_type: dict[str, list[Criterion]] = field(default_factory=dict)
    explicit_types: bool = False  # the types were named by _type


def _split_composite_or(raw: str) -> list[str]:
    """Split OR values on unescaped commas, keeping escapes for the ``$`` split."""
    out, buf, i = [], [], 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw):
            buf.append(raw[i : i + 2])
            i += 2
            continue
        if raw[i] == ",":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(raw[i])
        i += 1
    out.append("".join(buf))
    return out


def _split_values(raw: str) -> list[str]:
    """Split on commas not escaped with a backslash (https://hl7.org/fhir/R4/search.html#escaping)."""
    out: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            buf.append(raw[i + 1])
            i += 2
            continue
        if c == ",":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    out.append("".join(buf))
    return out


def _token(raw: str) -> TokenValue:
    if "|" in raw:
        system, _, code = raw.partition("|")
        return TokenValue(system or None, code or None, False)
    return TokenValue(None, raw, True)


def _reference(raw: str, param: SearchParam, type_modifier: str | None) -> ReferenceValue:
    if raw.startswith(("http://", "https://", "urn:")):
        parts = raw.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2][:1].isupper() and not raw.startswith("urn:"):
            return ReferenceValue(parts[-2], parts[-1], raw)
        return ReferenceValue(None, None, raw)
    if "/" in raw:
        rtype, _, rid = raw.partition("/")
        return ReferenceValue(rtype, rid.split("/")[0], None)
    if type_modifier:
        return ReferenceValue(type_modifier, raw, None)
    if len(param.target) == 1:
        return ReferenceValue(param.target[0], raw, None)
    return ReferenceValue(None, raw, None)


def _date(raw: str, code: str) -> DateValue:
    from maison.fhir.indexing import date_range

    prefix = "eq"
    if raw[:2] in DATE_PREFIXES:
        prefix, raw = raw[:2], raw[2:]
    rng = date_range(raw)
    if rng is None:
        raise FhirError(
            Category.INVALID,
            f"Search parameter '{code}': '{raw}' is not a valid FHIR date or dateTime",
        )
    return DateValue(prefix, rng[0], rng[1])


def _number(raw: str, code: str, quantity: bool) -> NumberValue:
    from maison.fhir.normalize import number_range

    prefix = "eq"
    if raw[:2] in DATE_PREFIXES:
        prefix, raw = raw[:2], raw[2:]
    system = unit = None
    if quantity and "|" in raw:
        raw, system, unit = [*raw.split("|", 2), "", ""][:3]
    rng = number_range(raw) if raw and not raw.lower().startswith(("inf", "nan", "+")) else None
    if rng is None:
        kind = "quantity" if quantity else "number"
        raise FhirError(
            Category.INVALID, f"Search parameter '{code}': '{raw}' is not a valid {kind}"
        )
    return NumberValue(prefix, rng[0], rng[1], rng[2], system or None, unit or None)


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last resource's sort values, type and id (keyset paging)."""

    values: tuple[str | float | None, ...]
    type: str
    id: str


def encode_cursor(cursor: Cursor) -> str:
    """An opaque paging cursor after a resource (https://hl7.org/fhir/R4/http.html#paging)."""
    raw = orjson.dumps([2, list(cursor.values), cursor.type, cursor.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str, sort_keys: int) -> Cursor:
    """The position a cursor made by :func:`encode_cursor` points after; it must come from
    a search with as many sort keys."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        version, values, rtype, rid = data
        ok = (
            version == 2
            and isinstance(values, list)
            and len(values) == sort_keys
            and all(v is None or isinstance(v, str | int | float) for v in values)
            and isinstance(rtype, str)
            and isinstance(rid, str)
            and rid
        )
    except (ValueError, TypeError, orjson.JSONDecodeError):
        ok = False
    if not ok:
        raise FhirError(Category.INVALID, "_cursor is not a paging cursor of this search")
    return Cursor(tuple(values), rtype, rid)


def _int_param(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise FhirError(Category.INVALID, f"{name} must be an integer, got '{raw}'") from None
    if value < minimum:
        raise FhirError(Category.INVALID, f"{name} must be at least {minimum}, got {value}")
    return value


MAX_CHAIN = 4
_MODIFIERS: dict[str, set[str | None]] = {
    "string": {None, "exact", "contains"},
    "token": {None, "not", "text", "of-type", "in", "not-in", "below", "above"},
    "reference": {None, "identifier"},
    "uri": {None, "below", "above"},
    "date": {None},
    "number": {None},
    "quantity": {None},
    "composite": {None},
}


def searchable(param: SearchParam) -> bool:
    """Whether this server answers a search parameter: a supported type and an expression to
    index (``_text``, ``_content`` and ``_query`` have none in R4)."""
    if param.code in ("_id", "_lastUpdated"):
        return True
    return param.type in SUPPORTED_TYPES and bool(param.expression)


class _UnknownParameterError(Exception):
    """A parameter this server does not know for the type (400, or ignored when lenient)."""


def _split_dollar(raw: str) -> list[str]:
    """Split a composite value on ``$`` not escaped with a backslash."""
    parts, buf, i = [], [], 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw):
            buf.append(raw[i : i + 2])
            i += 2
            continue
        if raw[i] == "$":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(raw[i])
        i += 1
    parts.append("".join(buf))
    return parts


def _composite(defs: Definitions, param: SearchParam, raw: str) -> CompositeValue:
    """``code$value`` for a composite parameter: https://hl7.org/fhir/R4/search.html#composite."""
    from maison.fhir.indexing import fold

    pieces = _split_dollar(raw)
    if len(pieces) != len(param.components):
        raise FhirError(
            Category.INVALID,
            f"Search parameter '{param.code}' is composite: give {len(param.components)} "
            f"values separated by '$', not {raw!r}",
        )
    parts: list[tuple[str, str | TokenValue | ReferenceValue | DateValue | NumberValue]] = []
    for (definition, _), piece in zip(param.components, pieces, strict=True):
        sp = defs.search_parameters.get(definition) or {}
        kind = sp.get("type", "")
        piece = re.sub(r"\\(.)", r"\1", piece)
        if not piece:
            raise FhirError(Category.INVALID, f"'{param.code}': empty component in {raw!r}")
        value: str | TokenValue | ReferenceValue | DateValue | NumberValue
        if kind == "token":
            value = _token(piece)
        elif kind == "string":
            value = fold(piece)
        elif kind == "date":
            value = _date(piece, param.code)
        elif kind in ("number", "quantity"):
            value = _number(piece, param.code, kind == "quantity")
        elif kind == "reference":
            target = SearchParam(sp.get("code", ""), kind, "", None, definition)
            value = _reference(piece, target, None)
        elif kind == "uri":
            value = piece
        else:
            raise _UnknownParameterError(
                f"Composite parameter '{param.code}': component {definition} is not supported"
            )
        parts.append((kind, value))
    return CompositeValue(tuple(parts))


MAX_VALUE_SET_CODES = 5000
_EXPANDERS: dict[int, tuple[Definitions, ValueSetExpander]] = {}


class SearchTerminology(Protocol):
    """What token searches ask of a terminology service: the codes of a value set
    (``:in``/``:not-in``) and of a hierarchy (``:below``/``:above``), each (system, code) pair
    under every URL its system is known by.

    https://hl7.org/fhir/R4/search.html#token
    """

    def value_set_codes(self, url: str) -> frozenset[tuple[str, str]] | None:
        """The value set's codes; None when the value set is unknown."""
        ...

    def subsumed(self, system: str, code: str, below: bool) -> frozenset[tuple[str, str]] | None:
        """The code and every code below it (``below``) or above it; None when the code
        system is not held with a hierarchy."""
        ...


def _value_set_codes(
    defs: Definitions, name: str, raw: str, terms: SearchTerminology | None = None
) -> tuple[TokenValue, ...]:
    """The codes of the value sets named by ``:in`` / ``:not-in``, expanded by the terminology
    service, or else from the value sets and code systems of the definitions
    (https://hl7.org/fhir/R4/search.html#modifiers)."""
    held = _EXPANDERS.get(id(defs))
    if held is None or held[0] is not defs:
        if len(_EXPANDERS) > 8:
            _EXPANDERS.clear()
        held = _EXPANDERS[id(defs)] = (defs, ValueSetExpander(defs))
    codes: set[tuple[str, str]] = set()
    for url in _split_values(raw):
        if not url:
            raise FhirError(Category.INVALID, f"{name}: empty value set URL")
        expansion = terms.value_set_codes(url) if terms is not None else held[1].expand(url)
        if expansion is None:
            raise FhirError(
                Category.INVALID,
                f"{name}: the value set {url[:200]} cannot be expanded on this server (it is "
                "not installed, or it uses filters or code systems that are not loaded)",
            )
        codes |= expansion
    return _token_values(
        codes,
        f"{name}: the value set has {len(codes)} codes; searches take value sets of at most "
        f"{MAX_VALUE_SET_CODES}",
    )


def _token_values(codes: set[tuple[str, str]], too_many: str) -> tuple[TokenValue, ...]:
    """The (system, code) pairs a search matches, in order; ``too_many`` refuses more than
    :data:`MAX_VALUE_SET_CODES` (https://hl7.org/fhir/R4/search.html#token)."""
    if len(codes) > MAX_VALUE_SET_CODES:
        raise FhirError(Category.INVALID, too_many)
    return tuple(TokenValue(system, code, False) for system, code in sorted(codes))


def _subsumed_codes(
    name: str, raw: str, below: bool, terms: SearchTerminology | None
) -> tuple[TokenValue, ...]:
    """``:below`` / ``:above`` on a token: the code and the codes under (or over) it in its
    code system's hierarchy, from the terminology service
    (https://hl7.org/fhir/R4/search.html#token)."""
    codes: set[tuple[str, str]] = set()
    for value in _split_values(raw):
        system, bar, code = value.partition("|")
        if not bar or not system or not code:
            raise FhirError(
                Category.INVALID, f"{name} takes system|code (the hierarchy of one code system)"
            )
        found = terms.subsumed(system, code, below) if terms is not None else None
        if found is None:
            raise FhirError(
                Category.INVALID,
                f"{name}: the code system {system[:200]} is not loaded with a hierarchy on "
                "this server (maison terminology load)",
            )
        codes |= found
    return _token_values(
        codes,
        f"{name}: {len(codes)} codes {'below' if below else 'above'} it; such searches take at "
        f"most {MAX_VALUE_SET_CODES}: search from a narrower code",
    )


def _criterion(
    defs: Definitions,
    rtype: str,
    name: str,
    raw: str,
    depth: int,
    terms: SearchTerminology | None = None,
) -> Criterion:
    """One ``name=raw`` pair (possibly chained or reverse-chained) as a Criterion."""
    from maison.fhir.indexing import fold

    if depth > MAX_CHAIN:
        raise FhirError(Category.INVALID, f"'{name}': chains are limited to {MAX_CHAIN} levels")
    if name.startswith("_has:"):
        return _has(defs, rtype, name, raw, depth, terms)
    known = defs.search_params(rtype)
    head, dot, tail = name.partition(".")
    code, _, modifier = head.partition(":")
    param = known.get(code)
    if param is None or not searchable(param):
        if param is None:
            raise _UnknownParameterError(
                f"Search parameter '{code}' is not a known search parameter for {rtype}"
            )
        raise _UnknownParameterError(
            f"Search parameter '{code}' ({param.type}) is not supported by this server"
            + ("" if param.expression else " (it has no FHIRPath expression to index)")
        )
    if dot:
        return _chain(defs, param, modifier or None, tail, raw, depth, terms)
    mod = modifier or None
    type_modifier = None
    if mod == "missing":
        if param.type == "composite":
            raise FhirError(Category.INVALID, f"{name}: :missing is not defined on composites")
        if raw not in ("true", "false"):
            raise FhirError(Category.INVALID, f"{name} must be true or false")
        return Criterion(code, param.type, mod, (raw,), param)
    if param.type == "reference" and mod and mod[:1].isupper():
        if not defs.is_resource_type(mod):
            raise FhirError(Category.INVALID, f"{name}: '{mod}' is not a resource type")
        type_modifier, mod = mod, None
    if mod not in _MODIFIERS[param.type]:
        raise FhirError(
            Category.INVALID,
            f"Modifier ':{mod}' is not supported on search parameter '{code}' ({param.type})",
        )
    if mod in ("in", "not-in"):
        return Criterion(code, param.type, mod, _value_set_codes(defs, name, raw, terms), param)
    if param.type == "token" and mod in ("below", "above"):
        codes = _subsumed_codes(name, raw, mod == "below", terms)
        return Criterion(code, param.type, "in", codes, param)
    values: list[Value] = []
    for v in _split_values(raw) if param.type != "composite" else _split_composite_or(raw):
        if param.type == "composite":
            values.append(_composite(defs, param, v))
        elif param.type == "string":
            values.append(v if mod == "exact" else fold(v))
        elif mod == "of-type":
            parts = v.split("|")
            if len(parts) != 3 or not all(parts):
                raise FhirError(
                    Category.INVALID,
                    f"{name}: :of-type takes type-system|type-code|value, not {v!r}",
                )
            values.append(TokenValue(parts[0], f"{parts[1]}|{parts[2]}", False))
        elif param.type == "token" or (param.type == "reference" and mod == "identifier"):
            values.append(fold(v) if mod == "text" else _token(v))
        elif param.type == "reference":
            values.append(_reference(v, param, type_modifier))
        elif param.type == "date":
            values.append(_date(v, code))
        elif param.type in ("number", "quantity"):
            values.append(_number(v, code, param.type == "quantity"))
        else:
            values.append(v)
    if any(v == "" for v in values):
        raise FhirError(Category.INVALID, f"Search parameter '{code}' has an empty value")
    return Criterion(code, param.type, mod, tuple(values), param)


def _chain(
    defs: Definitions,
    param: SearchParam,
    modifier: str | None,
    tail: str,
    raw: str,
    depth: int,
    terms: SearchTerminology | None = None,
) -> Criterion:
    """``subject:Patient.name=x``: https://hl7.org/fhir/R4/search.html#chaining."""
    if param.type != "reference":
        raise FhirError(
            Category.INVALID,
            f"Cannot chain through '{param.code}': it is a {param.type} parameter, not a reference",
        )
    if modifier is not None and not defs.is_resource_type(modifier):
        raise FhirError(Category.INVALID, f"'{param.code}:{modifier}': not a resource type")
    candidates = [modifier] if modifier else list(param.target) or sorted(defs.resource_types)
    next_code = tail.split(".", 1)[0].split(":", 1)[0]
    types = [
        t for t in candidates if next_code.startswith("_has") or next_code in defs.search_params(t)
    ]
    if not types:
        raise FhirError(
            Category.INVALID,
            f"No resource type that '{param.code}' can refer to has a search parameter "
            f"'{next_code}'",
        )
    inner = tuple((t, _criterion(defs, t, tail, raw, depth + 1, terms)) for t in types)
    return Criterion(param.code, "reference", None, (), param, chain=inner)


def _has(
    defs: Definitions,
    rtype: str,
    name: str,
    raw: str,
    depth: int,
    terms: SearchTerminology | None = None,
) -> Criterion:
    """``_has:Observation:patient:code=x``: https://hl7.org/fhir/R4/search.html#has."""
    parts = name.split(":", 3)
    if len(parts) < 4 or not all(parts[1:]):
        raise FhirError(
            Category.INVALID, f"'{name}': _has takes the form _has:Type:reference:parameter"
        )
    _, htype, hcode, rest = parts
    if not defs.is_resource_type(htype):
        raise FhirError(Category.INVALID, f"'{name}': '{htype}' is not a resource type")
    ref = defs.search_params(htype).get(hcode)
    if ref is None or ref.type != "reference":
        raise FhirError(
            Category.INVALID, f"'{name}': '{hcode}' is not a reference parameter of {htype}"
        )
    if ref.target and rtype not in ref.target:
        raise FhirError(Category.INVALID, f"'{name}': {htype}.{hcode} cannot refer to a {rtype}")
    inner = _criterion(defs, htype, rest, raw, depth + 1, terms)
    return Criterion(hcode, "has", None, (), ref, chain=((htype, inner),))


def _include(defs: Definitions, name: str, value: str, searched: str | None) -> Include:
    if value == "*" and searched and not name.startswith("_revinclude"):
        value = f"{searched}:*"  # every reference of the searched type (as the Annuaire API)
    parts = value.split(":")
    if value == "*":
        raise FhirError(Category.INVALID, f"{name}=*: name the source type (Type:*)")
    if len(parts) not in (2, 3) or not all(parts):
        raise FhirError(
            Category.INVALID, f"{name}={value!r}: expected SourceType:parameter[:TargetType]"
        )
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    for t in (source, target):
        if t is not None and not defs.is_resource_type(t):
            raise FhirError(Category.INVALID, f"{name}={value}: '{t}' is not a resource type")
    if code != "*":
        param = defs.search_params(source).get(code)
        if param is None or param.type != "reference":
            raise FhirError(
                Category.INVALID,
                f"{name}={value}: '{code}' is not a reference parameter of {source}",
            )
    return Include(source, None if code == "*" else code, target, name.endswith(":iterate"))


def _sort_key(defs: Definitions, rtype: str, key: str) -> SortKey:
    descending = key.startswith("-")
    code = key[1:] if descending else key
    if code in ("_id", "_lastUpdated"):
        return SortKey(code, "column", descending)
    param = defs.search_params(rtype).get(code)
    if param is None or param.type not in SORTABLE:
        raise FhirError(
            Category.INVALID, f"_sort: '{code}' is not a sortable search parameter of {rtype}"
        )
    return SortKey(code, param.type, descending)


def compartment_criterion(
    defs: Definitions, compartment: str, owner_id: str, rtype: str
) -> Criterion:
    """Membership of ``compartment/owner_id`` for resources of ``rtype``, per the
    CompartmentDefinition: https://hl7.org/fhir/R4/compartmentdefinition.html."""
    members = defs.compartments.get(compartment)
    if members is None:
        raise FhirError(Category.NOT_FOUND, f"There is no {compartment} compartment")
    codes = members.get(rtype) or []
    if not codes:
        raise FhirError(
            Category.INVALID, f"{rtype} resources are not part of the {compartment} compartment"
        )
    if compartment == rtype:
        return Criterion("_id", "token", None, (TokenValue(None, owner_id, True),))
    ref = ReferenceValue(compartment, owner_id, None)
    known = defs.search_params(rtype)
    inner = tuple(
        (rtype, Criterion(code, "reference", None, (ref,), known[code]))
        for code in codes
        if code in known
    )
    return Criterion(f"compartment:{compartment}", "any", None, (), None, chain=inner)


def parse_search(
    defs: Definitions,
    resource_type: str,
    params: list[tuple[str, str]],
    lenient: bool = False,
    terms: SearchTerminology | None = None,
) -> SearchQuery:
    """Parse query parameters into a :class:`SearchQuery`; ``terms`` expands ``:in``,
    ``:not-in``, ``:below`` and ``:above`` on tokens (https://hl7.org/fhir/R4/search.html)."""

    query = SearchQuery(resource_type)
    unknown: list[Issue] = []
    cursor_raw: str | None = None
    for name, raw in params:
        if "\x00" in name or "\x00" in raw:
            raise FhirError(Category.INVALID, "NUL characters are not allowed in search values")
        if name in RESULT_PARAMS:
            if name == "_count":
                query.count = min(_int_param("_count", raw, 0), MAX_COUNT)
            elif name == "_offset":
                query.offset = _int_param("_offset", raw, 0)
            elif name == "_cursor":
                cursor_raw = raw
            elif name == "_total":
                if raw not in ("none", "estimate", "accurate"):
                    raise FhirError(Category.INVALID, "_total must be none, estimate or accurate")
                query.total = raw
            elif name == "_summary":
                from maison.fhir.summary import SUMMARY_MODES

                if raw not in SUMMARY_MODES:
                    raise FhirError(
                        Category.INVALID, "_summary must be true, text, data, count or false"
                    )
                query.summary_count = raw == "count"
                query.summary = raw
            elif name == "_elements":
                from maison.fhir.summary import parse_elements

                query.elements = parse_elements(defs, resource_type, raw)
            elif name.startswith(("_include", "_revinclude")):
                for value in _split_values(raw):
                    inc = _include(defs, name, value, resource_type)
                    (query.revincludes if name.startswith("_rev") else query.includes).append(inc)
            elif name == "_sort":
                query.sort.extend(_sort_key(defs, resource_type, k) for k in raw.split(","))
            continue
        try:
            query.criteria.append(_criterion(defs, resource_type, name, raw, 0, terms))
        except _UnknownParameterError as exc:
            unknown.append(Issue("error" if not lenient else "warning", "not-supported", str(exc)))
            query.ignored.append(name)
    if unknown and not lenient:
        raise FhirError(Category.INVALID, unknown[0].diagnostics, unknown)
    if cursor_raw is not None:
        query.after = decode_cursor(cursor_raw, len(query.sort))
    return query


def parse_system_search(
    defs: Definitions,
    params: list[tuple[str, str]],
    lenient: bool = False,
    terms: SearchTerminology | None = None,
) -> SearchQuery:
    """Parse a system-level search ``[base]?…``, across the types named by ``_type`` or,
    without it, across every type with the parameters all types share
    (https://hl7.org/fhir/R4/search.html#all)."""
    named = [t.strip() for k, v in params if k == "_type" for t in v.split(",") if t.strip()]
    for t in named:
        if not defs.is_resource_type(t):
            raise FhirError(Category.INVALID, f"_type: '{t[:64]}' is not a resource type")
    types = list(dict.fromkeys(named)) or sorted(defs.resource_types)
    rest = [(k, v) for k, v in params if k != "_type"]
    queries: list[SearchQuery] = []
    for t in types:
        try:
            queries.append(parse_search(defs, t, rest, lenient, terms))
        except FhirError as exc:
            if named or exc.category is not Category.INVALID:
                raise
            raise FhirError(
                Category.INVALID,
                f"{exc.message}; without _type, a "
                "system-level search takes only the parameters every type has "
                "(_id, _lastUpdated, _tag, _profile, _security, _source)",
            ) from None
    query = queries[0]
    query.resource_type = ""
    query.types = tuple(types)
    query.explicit_types = bool(named)
    query.per_type = {t: q.criteria for t, q in zip(types, queries, strict=True)}
    query.criteria = []
    return query
