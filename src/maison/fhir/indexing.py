"""Search-index extraction: SearchParameter expressions → rows for the generic index tables.

https://hl7.org/fhir/R4/search.html#ptypes
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from maison.fhir.definitions import Definitions, SearchParam, split_union
from maison.fhir.fhirpath import TypedItem, compile_typed
from maison.fhir.normalize import (
    DATE_MAX,
    DATE_MIN,
    date_range,
    fold,
    number_range,
    parse_reference,
)

__all__ = ["IndexValues", "Indexer", "date_range", "fold"]

log = logging.getLogger(__name__)

StringRow = tuple[str, str | None, str | None]
TokenRow = tuple[str, str | None, str | None, str | None]
DateRow = tuple[str, str, str]
NumberRow = tuple[str, float, float, float]
QuantityRow = tuple[str, str | None, str | None, float | None, float | None, float | None]
ReferenceRow = tuple[str, str | None, str | None, str | None]
UriRow = tuple[str, str]

MONEY_SYSTEM = "urn:iso:std:iso:4217"
_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
_QUANTITY_TYPES = frozenset(
    {"Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity", "MoneyQuantity"}
)
_URL_TYPES = frozenset({"canonical", "uri", "url", "oid", "uuid"})
_HEAD_RE = re.compile(r"^\s*\(?\s*(Resource|DomainResource)\b")
_AS_RE = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9_.]*)\s+as\s+([A-Za-z][A-Za-z0-9_]*)\s*\)")


@dataclass(slots=True)
class IndexValues:
    """The index rows of one resource, one list per search-parameter type.

    https://hl7.org/fhir/R4/search.html#ptypes
    """

    string: list[StringRow] = field(default_factory=list)
    token: list[TokenRow] = field(default_factory=list)
    date: list[DateRow] = field(default_factory=list)
    number: list[NumberRow] = field(default_factory=list)
    quantity: list[QuantityRow] = field(default_factory=list)
    reference: list[ReferenceRow] = field(default_factory=list)
    uri: list[UriRow] = field(default_factory=list)
    # composite parameters: (component type, group, row) — one row per component value,
    # coded ``code$i``; the rows of one repetition share a group number
    composite: list[tuple[str, int, tuple[Any, ...]]] = field(default_factory=list)


Emitter = Callable[[str, Any, "str | None", IndexValues], None]


@dataclass(frozen=True, slots=True)
class _Plan:
    code: str
    emit: Emitter
    run: Callable[[dict[str, Any]], list[TypedItem]]


def expression_for_type(param: SearchParam, resource_type: str) -> str | None:
    """The parameter expression as evaluated on one resource type.

    ``Resource.``/``DomainResource.`` heads are made concrete (fhirpathpy does not match a
    Patient against ``Resource``), and ``(path as Type)`` becomes ``path.ofType(Type)``: FHIRPath
    ``as`` fails on several items, while search means "every item of that type".
    """
    if not param.expression:
        return None
    parts = split_union(param.expression)
    out = []
    for part in parts:
        part = _HEAD_RE.sub(lambda m: m[0].replace(m[1], resource_type), part)
        out.append(_AS_RE.sub(r"\1.ofType(\2)", part))
    return " | ".join(out)


class Indexer:
    """Extract index rows from resources; compiled lazily per resource type, then cached.

    https://hl7.org/fhir/R4/search.html#ptypes
    """

    def __init__(self, defs: Definitions) -> None:
        self._defs = defs
        self._plans: dict[str, tuple[_Plan, ...]] = {}
        self._lock = threading.Lock()

    def plans(self, resource_type: str) -> tuple[_Plan, ...]:
        """The compiled extraction plan of a resource type (empty for unknown types)."""
        plans = self._plans.get(resource_type)
        if plans is None:
            with self._lock:
                plans = self._plans.get(resource_type)
                if plans is None:
                    plans = self._build(resource_type)
                    self._plans[resource_type] = plans
        return plans

    def _build(self, resource_type: str) -> tuple[_Plan, ...]:
        if not self._defs.is_resource_type(resource_type):
            return ()
        out: list[_Plan] = []
        for code, param in sorted(self._defs.search_params(resource_type).items()):
            if param.type == "composite":
                composite = self._composite(param, resource_type)
                if composite is not None:
                    out.append(composite)
                continue
            emit = _EMITTERS.get(param.type)
            expression = expression_for_type(param, resource_type)
            if emit is None or expression is None:
                continue
            try:
                run = compile_typed(expression)
            except ValueError as exc:
                log.warning("search parameter %s.%s not indexed: %s", resource_type, code, exc)
                continue
            out.append(_Plan(code, emit, run))
        return tuple(out)

    def _composite(self, param: SearchParam, resource_type: str) -> _Plan | None:
        """A composite parameter's plan: each repetition of its expression is one group, and
        each component's values are emitted as rows ``code$i`` of the component's type
        (https://hl7.org/fhir/R4/search.html#composite)."""
        expression = expression_for_type(param, resource_type)
        comps: list[tuple[Emitter, list[str]]] = []
        for definition, comp_expression in param.components:
            sp = self._defs.search_parameters.get(definition)
            emit = _EMITTERS.get(sp.get("type", "")) if sp else None
            if emit is None or not comp_expression:
                log.warning("composite %s.%s not indexed", resource_type, param.code)
                return None
            comps.append((emit, split_union(comp_expression)))
        if expression is None or not comps:
            return None
        parts = [(p, compile_typed(p)) for p in split_union(expression)]
        compiled: dict[str, Callable[[dict[str, Any]], list[TypedItem]]] = {}

        def run_path(path: str, resource: dict[str, Any]) -> list[TypedItem]:
            fn = compiled.get(path)
            if fn is None:
                fn = compiled.setdefault(path, compile_typed(path))
            return fn(resource)

        code = param.code

        def emit_group(c: str, value: Any, typ: str | None, out: IndexValues) -> None:
            group, rows = value
            for kind, row in rows:
                out.composite.append((kind, group, row))

        def run(resource: dict[str, Any]) -> list[TypedItem]:
            groups: list[TypedItem] = []
            group = 0
            for part, items in parts:
                for j in range(len(items(resource))):
                    scratch = IndexValues()
                    for i, (emit, comp_parts) in enumerate(comps):
                        for cp in comp_parts:
                            cp = cp.strip()
                            if cp.startswith("%resource."):
                                path = f"{resource_type}.{cp[len('%resource.') :]}"
                            else:
                                path = f"{part.strip()}[{j}].{cp}"
                            for value, typ in run_path(path, resource):
                                emit(f"{code}${i}", value, typ, scratch)
                    rows = [
                        (kind, row) for kind in _EMITTER_KINDS for row in getattr(scratch, kind)
                    ]
                    # a repetition lacking a component can never match: no rows for it (an
                    # Observation with a valueQuantity has no code-value-concept/date/string)
                    if len({row[0] for _, row in rows}) < len(comps):
                        continue
                    groups.append(((group, rows), None))
                    group += 1
            return groups

        return _Plan(code, emit_group, run)

    def extract(self, resource: dict[str, Any]) -> IndexValues:
        """Evaluate every applicable search parameter and normalise the values into rows."""
        values = IndexValues()
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(rtype, str):
            return values
        for plan in self.plans(rtype):
            try:
                for value, typ in plan.run(resource):
                    plan.emit(plan.code, value, typ, values)
            except Exception as exc:  # odd data never breaks a write
                log.debug("index %s.%s failed: %s", rtype, plan.code, exc)
        for name in values.__slots__:
            rows = getattr(values, name)
            if len(rows) > 1:
                setattr(values, name, list(dict.fromkeys(rows)))
        return values


# --------------------------------------------------------------------------------------
# Emitters, one per search-parameter type
# --------------------------------------------------------------------------------------


def _shape(value: Any) -> str | None:
    """Guess the FHIR type of a value produced without static type information."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if not isinstance(value, dict):
        return None
    keys = value.keys()
    if "resourceType" in keys:
        return "Resource"
    if "reference" in keys or ("identifier" in keys and "display" in keys):
        return "Reference"
    if "coding" in keys or (keys and keys <= {"text", "id", "extension"}):
        return "CodeableConcept"
    if "currency" in keys:
        return "Money"
    if "low" in keys or "high" in keys:
        return "Range"
    if "start" in keys or "end" in keys:
        return "Period"
    if "event" in keys or "repeat" in keys:
        return "Timing"
    if keys & {"family", "given", "prefix", "suffix"}:
        return "HumanName"
    if keys & {"line", "city", "district", "state", "postalCode", "country"}:
        return "Address"
    if "value" in keys:
        if isinstance(value.get("value"), int | float | Decimal) or "comparator" in keys:
            return "Quantity"
        if value.get("system") in _CONTACT_SYSTEMS and not keys & {"type", "assigner"}:
            return "ContactPoint"
        return "Identifier"
    if "code" in keys or "system" in keys:
        return "Coding"
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _folded(value: Any) -> str | None:
    return fold(value) if isinstance(value, str) and value else None


def _emit_string(code: str, value: Any, typ: str | None, out: IndexValues) -> None:
    if isinstance(value, str):
        out.string.append((code, fold(value), value))
        return
    typ = typ or _shape(value)
    if not isinstance(value, dict):
        return
    if typ == "HumanName":
        keys: tuple[str, ...] = ("family", "given", "prefix", "suffix", "text")
    elif typ == "Address":
        keys = ("line", "city", "district", "state", "postalCode", "country", "text")
    elif typ == "Coding":
        # a guide's string parameter on a coded value (the Annuaire's address-insee on the FR
        # Core INSEE code extension): its code and display, as text
        keys = ("code", "display")
    else:
        return
    for key in keys:
        part = value.get(key)
        for s in part if isinstance(part, list) else (part,):
            if isinstance(s, str) and s:
                out.string.append((code, fold(s), s))


def _coding_row(code: str, coding: Any) -> TokenRow | None:
    if not isinstance(coding, dict):
        return None
    system, value = _text(coding.get("system")), _text(coding.get("code"))
    display = _folded(coding.get("display"))
    if system is None and value is None and display is None:
        return None
    return (code, system, value, display)


def _emit_token(code: str, value: Any, typ: str | None, out: IndexValues) -> None:
    if isinstance(value, bool):
        out.token.append((code, None, "true" if value else "false", None))
        return
    if isinstance(value, str):
        if value:
            out.token.append((code, None, value, None))
        return
    if isinstance(value, int | float | Decimal):
        out.token.append((code, None, str(value), None))
        return
    if not isinstance(value, dict):
        return
    typ = typ or _shape(value)
    if typ == "CodeableConcept":
        for coding in _as_list(value.get("coding")):
            row = _coding_row(code, coding)
            if row:
                out.token.append(row)
        text = _folded(value.get("text"))
        if text:
            out.token.append((code, None, None, text))
    elif typ == "Coding":
        row = _coding_row(code, value)
        if row:
            out.token.append(row)
    elif typ == "Identifier":
        _emit_identifier(code, value, out)
    elif typ == "ContactPoint":
        v = _text(value.get("value"))
        if v:
            out.token.append((code, None, v, None))
    elif typ == "Reference":
        identifier = value.get("identifier")
        if isinstance(identifier, dict):
            _emit_identifier(code, identifier, out)


def _emit_identifier(code: str, ident: dict[str, Any], out: IndexValues) -> None:
    system, value = _text(ident.get("system")), _text(ident.get("value"))
    itype = ident.get("type")
    itype = itype if isinstance(itype, dict) else {}
    if system is None and value is None:
        return
    out.token.append((code, system, value, _folded(itype.get("text"))))
    if value is None:
        return
    for coding in _as_list(itype.get("coding")):
        if isinstance(coding, dict) and _text(coding.get("code")):
            out.token.append(
                (code + ":of-type", _text(coding.get("system")), f"{coding['code']}|{value}", None)
            )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def _emit_date(code: str, value: Any, typ: str | None, out: IndexValues) -> None:
    if isinstance(value, str):
        rng = date_range(value)
        if rng:
            out.date.append((code, rng[0], rng[1]))
        return
    if not isinstance(value, dict):
        return
    typ = typ or _shape(value)
    if typ == "Period":
        _emit_period(code, value, out)
    elif typ == "Timing":
        ranges = [r for r in map(date_range, _as_list(value.get("event"))) if r]
        if ranges:
            out.date.append((code, min(r[0] for r in ranges), max(r[1] for r in ranges)))
            return
        repeat = value.get("repeat")
        if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
            _emit_period(code, repeat["boundsPeriod"], out)


def _emit_period(code: str, period: dict[str, Any], out: IndexValues) -> None:
    start, end = period.get("start"), period.get("end")
    low = date_range(start) if isinstance(start, str) else None
    high = date_range(end) if isinstance(end, str) else None
    if low is None and high is None:
        return
    out.date.append((code, low[0] if low else DATE_MIN, high[1] if high else DATE_MAX))


def _emit_number(code: str, value: Any, typ: str | None, out: IndexValues) -> None:
    rng = number_range(value) if not isinstance(value, str) else None
    if rng:
        out.number.append((code, *rng))


def _emit_quantity(code: str, value: Any, typ: str | None, out: IndexValues) -> None:
    if not isinstance(value, dict):
        return
    typ = typ or _shape(value)
    if typ == "Money":
        rng = number_range(value.get("value"))
        if rng:
            out.quantity.append((code, MONEY_SYSTEM, _text(value.get("currency")), *rng))
    elif typ in _QUANTITY_TYPES:
        rng = number_range(value.get("value"))
        if rng:
            unit = _text(value.get("code")) or _text(value.get("unit"))
            out.quantity.append((code, _text(value.get("system")), unit, *rng))
    elif typ == "Range":
        low, high = value.get("low"), value.get("high")
        low = low if isinstance(low, dict) else {}
        high = high if isinstance(high, dict) else {}
        lo, hi = number_range(low.get("value")), number_range(high.get("value"))
        if lo is None and hi is None:
            return
        bound = low if lo else high
        unit = _text(bound.get("code")) or _text(bound.get("unit"))
        out.quantity.append(
            (
                code,
                _text(bound.get("system")),
                unit,
                None,
                lo[0] if lo else None,
                hi[0] if hi else None,
            )
        )


def _emit_reference(code: str, value: Any, typ: str | None, out: IndexValues) -> None:
    if isinstance(value, str):
        if value and (typ in _URL_TYPES or typ is None or typ == "string"):
            out.reference.append((code, None, None, value))
        return
    if not isinstance(value, dict):
        return
    typ = typ or _shape(value)
    if typ != "Reference":
        return
    ref = value.get("reference")
    if isinstance(ref, str):
        parsed = parse_reference(ref)
        if parsed is not None:
            out.reference.append((code, *parsed))
    identifier = value.get("identifier")
    if isinstance(identifier, dict):
        system, ivalue = _text(identifier.get("system")), _text(identifier.get("value"))
        if system or ivalue:
            out.token.append((code + ":identifier", system, ivalue, None))


def _emit_uri(code: str, value: Any, typ: str | None, out: IndexValues) -> None:
    if isinstance(value, str) and value:
        out.uri.append((code, value))


_EMITTERS: dict[str, Emitter] = {
    "string": _emit_string,
    "token": _emit_token,
    "date": _emit_date,
    "number": _emit_number,
    "quantity": _emit_quantity,
    "reference": _emit_reference,
    "uri": _emit_uri,
}
_EMITTER_KINDS = tuple(_EMITTERS)
