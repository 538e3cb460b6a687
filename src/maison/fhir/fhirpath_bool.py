"""FHIRPath invariants compiled into Python closures (the subset real constraints use).

The expression is parsed with fhirpathpy's parser, then every node of the tree becomes a closure;
anything outside the supported subset makes :func:`compile_invariant` return None so the caller
keeps fhirpathpy for that expression. Collection items are ``(value, type path, companion)``
tuples for FHIR elements (``companion`` is the ``_x`` object of a primitive) and plain Python
values for literals and computed results.

https://hl7.org/fhirpath/N1/
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from fhirpathpy.models import models
from fhirpathpy.parser import parse as _fp_parse

from maison.fhir.fhirpath import _LOCK
from maison.fhir.validation_primitives import html_checks

__all__ = ["CompiledInvariant", "compile_invariant"]

_MODEL: dict[str, Any] = models["r4"]
_PATH2TYPE: dict[str, str] = _MODEL["path2Type"]
_CHOICES: dict[str, list[str]] = _MODEL["choiceTypePaths"]
_ELSEWHERE: dict[str, str] = _MODEL["pathsDefinedElsewhere"]
_PARENT: dict[str, str] = _MODEL["type2Parent"]
_UCUM = "http://unitsofmeasure.org"
_TEMPORAL = frozenset({"date", "dateTime", "instant"})

fp_parse: Any = _fp_parse

Items = list[Any]
# ($this, %resource, %rootResource, %context)
Env = tuple[Items, Items, Items, Items]
Fn = Callable[[Items, Env], Items]
Tri = Callable[[Items, Env], bool | None]
CompiledInvariant = Callable[[Any, str | None, dict[str, Any]], list[Any]]


class UnsupportedError(Exception):
    """The expression uses something outside the compiled subset."""


class EvaluationError(ValueError):
    """The expression is in error on this input (fhirpathpy raises too): the caller decides."""


# --------------------------------------------------------------------------------------
# Items
# --------------------------------------------------------------------------------------


def _value(item: Any) -> Any:
    return item[0] if type(item) is tuple else item


def _node(data: Any, type_path: str | None, companion: Any = None) -> tuple[Any, Any, Any]:
    if type(data) is dict and "resourceType" in data:
        type_path = data["resourceType"]
    return (data, type_path, companion)


@functools.cache
def _member_plan(type_path: str | None, key: str) -> tuple[tuple[str, str], ...]:
    """The JSON fields that can hold member ``key`` (several for a choice) with their types."""
    child = f"{type_path}.{key}" if type_path else f"_.{key}"
    child = _ELSEWHERE.get(child, child)
    types = _CHOICES.get(child)
    if types:
        return tuple((key + t, _PATH2TYPE.get(child + t, child + t)) for t in types)
    if key == "extension":
        child = "Extension"
    return ((key, _PATH2TYPE.get(child, child)),)


def _add(out: Items, value: Any, companion: Any, type_path: str) -> None:
    if type(value) is list or type(companion) is list:
        values = value if type(value) is list else ([] if value is None else [value])
        companions = companion if type(companion) is list else []
        for i in range(max(len(values), len(companions))):
            v = values[i] if i < len(values) else None
            c = companions[i] if i < len(companions) else None
            if v is not None or c is not None:
                out.append(_node(v, type_path, c))
    else:
        out.append(_node(value, type_path, companion))


def _member(key: str) -> Fn:
    if key[:1].isupper():

        def of_type(items: Items, env: Env) -> Items:
            return [
                it
                for it in items
                if type(it) is tuple and type(it[0]) is dict and it[0].get("resourceType") == key
            ]

        return of_type

    def member(items: Items, env: Env) -> Items:
        out: Items = []
        for it in items:
            if type(it) is not tuple:
                continue
            data = it[0]
            if type(data) is dict:
                for field, child_type in _member_plan(it[1], key):
                    v = data.get(field)
                    c = data.get("_" + field)
                    if (v is None or v == []) and c is None:
                        continue
                    _add(out, v, c, child_type)
                    break
            elif type(it[2]) is dict and key in ("extension", "id"):
                v = it[2].get(key)
                if v is not None:
                    _add(out, v, None, "Extension" if key == "extension" else "string")
        return out

    return member


# --------------------------------------------------------------------------------------
# Values: booleans, equality, ordering
# --------------------------------------------------------------------------------------


def _boolean(items: Items) -> bool | None:
    """A Boolean operand: empty is unknown, one Boolean is itself, anything else an error."""
    if not items:
        return None
    if len(items) > 1:
        raise EvaluationError("a Boolean operand has several items")
    v = _value(items[0])
    if v is True or v is False:
        return v
    raise EvaluationError(f"a Boolean operand is not a Boolean: {v!r}")


def _number(v: Any) -> Decimal | int | None:
    if type(v) is bool:
        return None
    if type(v) is float:
        return Decimal(str(v))
    if isinstance(v, int | Decimal):
        return v
    return None


def _is_temporal(item: Any) -> bool:
    return type(item) is tuple and item[1] in _TEMPORAL and type(item[0]) is str


def _equal(a: Any, b: Any) -> bool | None:
    if _is_temporal(a) and _is_temporal(b):
        c = compare_temporal(a[0], b[0])
        return None if c is None else c == 0
    va, vb = _value(a), _value(b)
    if va is None or vb is None:
        return False
    if type(va) is bool or type(vb) is bool:
        return type(va) is type(vb) and bool(va == vb)
    na, nb = _number(va), _number(vb)
    if na is not None and nb is not None:
        return na == nb
    return bool(va == vb)


def _ordering(a: Items, b: Items) -> int | None:
    """-1/0/1 for two singletons, None when the precisions differ (the result is empty)."""
    if len(a) != 1 or len(b) != 1:
        raise EvaluationError("comparison operands must be single items")
    x, y = a[0], b[0]
    if _is_temporal(x) and _is_temporal(y):
        return compare_temporal(x[0], y[0])
    vx, vy = _value(x), _value(y)
    nx, ny = _number(vx), _number(vy)
    if nx is not None and ny is not None:
        return (nx > ny) - (nx < ny)
    if type(vx) is str and type(vy) is str and not _is_temporal(x) and not _is_temporal(y):
        if (type(x) is tuple and x[1] == "time") or (type(y) is tuple and y[1] == "time"):
            raise EvaluationError("time comparison is not compiled")
        return (vx > vy) - (vx < vy)
    raise EvaluationError(f"cannot compare {vx!r} with {vy!r}")


_DATETIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?"
)


@functools.lru_cache(maxsize=8192)
def compare_temporal(a: str, b: str) -> int | None:
    """Order two date/dateTime/instant strings; None when only their precision tells them apart.

    https://hl7.org/fhirpath/N1/#datetime-equality
    """
    ma, mb = _DATETIME.fullmatch(a), _DATETIME.fullmatch(b)
    if ma is None or mb is None:
        raise EvaluationError(f"not a date/time: {a!r} / {b!r}")
    ga, gb = ma.groups(), mb.groups()
    if ga[3] is not None and gb[3] is not None:
        if ga[7] is None or gb[7] is None:
            raise EvaluationError("dateTime without a time zone")
        ua, fa, pa = _utc(ga)
        ub, fb, pb = _utc(gb)
        if pa != pb:
            ua, ub = ua.replace(second=0), ub.replace(second=0)
            return None if ua == ub else (ua > ub) - (ua < ub)
        if ua != ub:
            return (ua > ub) - (ua < ub)
        return (fa > fb) - (fa < fb)
    # at least one is a date: component by component (a date has no time zone)
    for x, y in zip(ga[:3], gb[:3], strict=True):
        if x is None or y is None:
            return 0 if x is None and y is None else None
        if x != y:
            return (x > y) - (x < y)
    return 0 if ga[3] is None and gb[3] is None else None


def _utc(g: tuple[str | None, ...]) -> tuple[datetime, Decimal, int]:
    year, month, day, hour, minute = (int(str(x)) for x in g[:5])
    moment = datetime(year, month, day, hour, minute, int(g[5] or 0))
    tz = str(g[7])
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        moment -= sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    return moment, Decimal(g[6] or "0"), 6 if g[5] is not None else 5


def _distinct_key(item: Any) -> Any:
    v = _value(item)
    if v is None and type(item) is tuple:
        v = item[2]
    if type(v) is bool:
        return ("b", v)
    n = _number(v)
    if n is not None:
        return ("n", Decimal(n).normalize())
    if type(v) is str:
        return ("s", v)
    return ("j", json.dumps(v, sort_keys=True, default=str))


def _distinct(items: Items) -> Items:
    seen: set[Any] = set()
    out: Items = []
    for it in items:
        k = _distinct_key(it)
        if k not in seen:
            seen.add(k)
            out.append(it)
    return out


@functools.cache
def _is_type(type_path: str, wanted: str) -> bool:
    name: str | None = type_path if "." not in type_path else "BackboneElement"
    while name:
        if name == wanted:
            return True
        name = _PARENT.get(name) or _PATH2TYPE.get(name)
    return False


def _type_matches(item: Any, wanted: str) -> bool:
    if type(item) is not tuple:
        return False
    if item[1] is None:
        raise EvaluationError("no type information")
    return _is_type(item[1], wanted)


def _single_string(items: Items) -> str:
    if len(items) == 1:
        v = _value(items[0])
        if type(v) is str:
            return v
    raise EvaluationError("a single string was expected")


# --------------------------------------------------------------------------------------
# Compiler
# --------------------------------------------------------------------------------------


class _Expr:
    """A compiled expression: ``coll`` gives the collection, ``tri`` its Boolean value."""

    __slots__ = ("coll", "tri")

    def __init__(self, coll: Fn, tri: Tri | None = None) -> None:
        self.coll = coll
        if tri is None:

            def from_coll(focus: Items, env: Env) -> bool | None:
                return _boolean(coll(focus, env))

            tri = from_coll
        self.tri = tri


def _from_tri(tri: Tri) -> _Expr:
    def coll(focus: Items, env: Env) -> Items:
        r = tri(focus, env)
        return [] if r is None else [r]

    return _Expr(coll, tri)


def _text(node: dict[str, Any]) -> str:
    return str(node.get("text", "")).replace("`", "")


def _children(node: dict[str, Any]) -> list[dict[str, Any]]:
    children: list[dict[str, Any]] = node.get("children", [])
    return children


def _compile(node: dict[str, Any]) -> _Expr:
    kind = node.get("type")
    ch = _children(node)
    handler = _NODES.get(str(kind))
    if handler is None:
        raise UnsupportedError(f"node {kind}")
    return handler(node, ch)


def _term(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    return _compile(ch[0])


def _invocation_term(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    inv = ch[0]
    if inv.get("type") == "ThisInvocation":

        def this(focus: Items, env: Env) -> Items:
            return env[0]

        return _Expr(this)
    return _invocation(inv, None)


def _invocation_expression(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    left = _compile(ch[0])
    return _invocation(ch[1], left)


def _chain(left: _Expr | None, step: Fn) -> Fn:
    if left is None:
        return step
    first = left.coll

    def chained(focus: Items, env: Env) -> Items:
        return step(first(focus, env), env)

    return chained


def _chain_tri(left: _Expr | None, step: Callable[[Items, Env], bool | None]) -> Tri:
    if left is None:
        return step
    first = left.coll

    def chained(focus: Items, env: Env) -> bool | None:
        return step(first(focus, env), env)

    return chained


def _invocation(inv: dict[str, Any], left: _Expr | None) -> _Expr:
    kind = inv.get("type")
    if kind == "MemberInvocation":
        key = _text(_children(inv)[0])
        return _Expr(_chain(left, _member(key)))
    if kind != "FunctionInvocation":
        raise UnsupportedError(f"invocation {kind}")
    functn = _children(inv)[0]
    parts = _children(functn)
    name = _text(parts[0])
    params = _children(parts[1]) if len(parts) > 1 else []
    builder = _FUNCTIONS.get(name)
    if builder is None:
        raise UnsupportedError(f"function {name}()")
    return builder(left, params)


# -- functions ------------------------------------------------------------------------------


def _arity(params: list[dict[str, Any]], *allowed: int) -> None:
    if len(params) not in allowed:
        raise UnsupportedError("arity")


def _string_literal(param: dict[str, Any]) -> str:
    """The value of a parameter that must be a plain string literal."""
    node = param
    while node.get("type") in ("TermExpression", "LiteralTerm"):
        node = _children(node)[0]
    if node.get("type") != "StringLiteral":
        raise UnsupportedError("a string literal parameter was expected")
    value = _string_value(str(node["text"]))
    return value


def _string_value(text: str) -> str:
    # the same unescaping as fhirpathpy's string literals, so both engines see the same text
    body = re.sub(r"^['\"]|['\"]$", "", text)
    for escaped, plain in _ESCAPES:
        body = body.replace(escaped, plain)
    return re.sub(r"\\(u\d{4})", lambda m: chr(int(m[1][1:], 16)), body)


_ESCAPES = (
    ("\\'", "'"),
    ("\\`", "`"),
    ('\\"', '"'),
    ("\\r", "\r"),
    ("\\n", "\n"),
    ("\\t", "\t"),
    ("\\f", "\f"),
    ("\\\\", "\\"),
)


def _type_name(param: dict[str, Any]) -> str:
    text = _text(param)
    if text.startswith("FHIR."):
        text = text[5:]
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", text):
        raise UnsupportedError(f"type {text}")
    return text


def _f_exists(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
    _arity(params, 0, 1)
    if not params:
        return _from_tri(_chain_tri(left, lambda items, env: len(items) > 0))
    crit = _compile(params[0]).coll

    def exists(items: Items, env: Env) -> bool | None:
        for it in items:
            one = [it]
            r = crit(one, (one, env[1], env[2], env[3]))
            if r and _kept(r[0]):
                return True
        return False

    return _from_tri(_chain_tri(left, exists))


def _kept(v: Any) -> bool:
    """``where`` keeps an item when its criteria's first value is true (a node: present)."""
    if type(v) is tuple:
        return v[0] is not False
    return bool(v)


def _f_where(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
    _arity(params, 1)
    crit = _compile(params[0]).coll

    def where(items: Items, env: Env) -> Items:
        out: Items = []
        for it in items:
            one = [it]
            r = crit(one, (one, env[1], env[2], env[3]))
            if r and _kept(r[0]):
                out.append(it)
        return out

    return _Expr(_chain(left, where))


def _f_select(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
    _arity(params, 1)
    proj = _compile(params[0]).coll

    def select(items: Items, env: Env) -> Items:
        out: Items = []
        for it in items:
            one = [it]
            out.extend(proj(one, (one, env[1], env[2], env[3])))
        return out

    return _Expr(_chain(left, select))


def _f_all(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
    _arity(params, 1)
    crit = _compile(params[0]).coll

    def all_(items: Items, env: Env) -> bool | None:
        for it in items:
            one = [it]
            r = crit(one, (one, env[1], env[2], env[3]))
            if not (len(r) == 1 and _value(r[0]) is True):
                return False
        return True

    return _from_tri(_chain_tri(left, all_))


def _simple(fn: Callable[[Items], Items]) -> Callable[[_Expr | None, list[dict[str, Any]]], _Expr]:
    def build(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
        _arity(params, 0)
        return _Expr(_chain(left, lambda items, env: fn(items)))

    return build


def _simple_tri(
    fn: Callable[[Items], bool | None],
) -> Callable[[_Expr | None, list[dict[str, Any]]], _Expr]:
    def build(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
        _arity(params, 0)
        return _from_tri(_chain_tri(left, lambda items, env: fn(items)))

    return build


def _not(items: Items) -> bool | None:
    if not items:
        return None
    if len(items) > 1:
        raise EvaluationError("not() on several items")
    v = _value(items[0])
    if v is True or v is False:
        return not v
    return False  # a single non-Boolean item counts as true


def _has_value(items: Items) -> bool:
    if len(items) != 1:
        return False
    v = _value(items[0])
    return v is not None and type(v) is not dict and type(v) is not list


def _html(items: Items) -> bool:
    if len(items) != 1:
        return False
    it = items[0]
    v = _value(it)
    if v is None and type(it) is tuple:
        v = it[2]
    return html_checks(v)


def _booleans(items: Items) -> list[bool]:
    out = []
    for it in items:
        v = _value(it)
        if v is not True and v is not False:
            raise EvaluationError("a Boolean was expected")
        out.append(v)
    return out


def _length(items: Items) -> Items:
    if not items:
        return []
    return [len(_single_string(items))]


def _f_string(
    op: Callable[[str, str], bool],
) -> Callable[[_Expr | None, list[dict[str, Any]]], _Expr]:
    def build(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
        _arity(params, 1)
        arg = _string_literal(params[0])

        def step(items: Items, env: Env) -> Items:
            if not items:
                return []
            return [op(_single_string(items), arg)]

        return _Expr(_chain(left, step))

    return build


def _starts_with(s: str, prefix: str) -> bool:
    return bool(s) and s.startswith(prefix)


def _f_matches(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
    _arity(params, 1)
    text = _string_literal(params[0])
    if not text:
        raise UnsupportedError("empty regex")
    try:
        regex = re.compile(text, re.DOTALL)
    except re.error as exc:
        raise UnsupportedError(f"regex: {exc}") from exc

    def matches(items: Items, env: Env) -> Items:
        if not items:
            return []
        return [regex.search(_single_string(items)) is not None]

    return _Expr(_chain(left, matches))


def _f_type(mode: str) -> Callable[[_Expr | None, list[dict[str, Any]]], _Expr]:
    def build(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
        _arity(params, 1)
        return _type_op(left, _type_name(params[0]), mode)

    return build


def _type_op(left: _Expr | None, wanted: str, mode: str) -> _Expr:
    def step(items: Items, env: Env) -> Items:
        if mode == "ofType":
            return [it for it in items if _type_matches(it, wanted)]
        if not items:
            return []
        if len(items) > 1:
            raise EvaluationError(f"{mode} on several items")
        ok = _type_matches(items[0], wanted)
        if mode == "is":
            return [ok]
        return items if ok else []

    return _Expr(_chain(left, step))


def _f_extension(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
    _arity(params, 1)
    url = _string_literal(params[0])

    def extension(items: Items, env: Env) -> Items:
        out: Items = []
        for it in items:
            if type(it) is not tuple:
                continue
            holder = it[0] if type(it[0]) is dict else it[2]
            if type(holder) is not dict:
                continue
            exts = holder.get("extension")
            if type(exts) is not list:
                continue
            for e in exts:
                if type(e) is dict and e.get("url") == url:
                    out.append((e, "Extension", None))
        return out

    return _Expr(_chain(left, extension))


def _f_trace(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
    _arity(params, 0, 1)
    if params:
        _string_literal(params[0])
    return _Expr(_chain(left, lambda items, env: items))


def _f_intersect(left: _Expr | None, params: list[dict[str, Any]]) -> _Expr:
    _arity(params, 1)
    other = _compile(params[0]).coll

    def intersect(items: Items, env: Env) -> Items:
        theirs = other(env[0], env)
        out: Items = []
        for it in items:
            if any(_equal(it, o) is True for o in theirs):
                out.append(it)
        return _distinct(out)

    return _Expr(_chain(left, intersect))


def _all_of(fn: Callable[[list[bool]], bool]) -> Callable[[Items], bool | None]:
    return lambda items: fn(_booleans(items))


_FUNCTIONS: dict[str, Callable[[_Expr | None, list[dict[str, Any]]], _Expr]] = {
    "exists": _f_exists,
    "where": _f_where,
    "select": _f_select,
    "all": _f_all,
    "empty": _simple_tri(lambda items: not items),
    "not": _simple_tri(_not),
    "count": _simple(lambda items: [len(items)]),
    "first": _simple(lambda items: items[:1]),
    "tail": _simple(lambda items: items[1:]),
    "distinct": _simple(_distinct),
    "isDistinct": _simple_tri(lambda items: len(_distinct(items)) == len(items)),
    "hasValue": _simple_tri(_has_value),
    "htmlChecks": _simple_tri(_html),
    "allTrue": _simple_tri(_all_of(all)),
    "anyTrue": _simple_tri(_all_of(any)),
    "allFalse": _simple_tri(_all_of(lambda bs: not any(bs))),
    "anyFalse": _simple_tri(_all_of(lambda bs: not all(bs))),
    "length": _simple(_length),
    "startsWith": _f_string(_starts_with),
    "contains": _f_string(lambda s, sub: sub in s),
    "matches": _f_matches,
    "ofType": _f_type("ofType"),
    "is": _f_type("is"),
    "as": _f_type("as"),
    "extension": _f_extension,
    "trace": _f_trace,
    "intersect": _f_intersect,
}


# -- terms ----------------------------------------------------------------------------------


def _literal(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    lit = ch[0] if ch else None
    if lit is None:
        raise UnsupportedError("literal")
    kind = lit.get("type")
    text = str(lit.get("text", ""))
    value: Any
    if kind == "StringLiteral":
        value = _string_value(text)
    elif kind == "BooleanLiteral":
        value = text == "true"
    elif kind == "NumberLiteral":
        dec = Decimal(text)
        value = int(dec) if "." not in text else dec
    elif kind == "NullLiteral":
        return _Expr(lambda focus, env: [])
    else:
        raise UnsupportedError(f"literal {kind}")
    result = [value]
    return _Expr(lambda focus, env: result)


def _external(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    const = ch[0]
    ident = _children(const)[0] if _children(const) else {}
    if ident.get("type") != "Identifier":
        raise UnsupportedError("external constant")
    name = _text(ident)
    if name == "ucum":
        ucum = [_UCUM]
        return _Expr(lambda focus, env: ucum)
    index = {"resource": 1, "rootResource": 2, "context": 3}.get(name)
    if index is None:
        raise UnsupportedError(f"%{name}")

    def var(focus: Items, env: Env) -> Items:
        value = env[index]
        if value is _MISSING:
            raise EvaluationError(f"%{name} is not defined")
        return value

    return _Expr(var)


_MISSING: Items = []


def _parenthesized(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    return _compile(ch[0])


# -- operators ------------------------------------------------------------------------------


def _op(node: dict[str, Any]) -> str:
    ops: list[str] = node.get("terminalNodeText", [])
    if len(ops) != 1:
        raise UnsupportedError("operator")
    return ops[0]


def _logic(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    op = _op(node)
    a, b = _compile(ch[0]).tri, _compile(ch[1]).tri
    fn: Tri
    if op == "and":

        def fn(focus: Items, env: Env) -> bool | None:
            x = a(focus, env)
            if x is False:
                return False
            y = b(focus, env)
            if y is False:
                return False
            return True if x is True and y is True else None

    elif op == "or":

        def fn(focus: Items, env: Env) -> bool | None:
            x = a(focus, env)
            if x is True:
                return True
            y = b(focus, env)
            if y is True:
                return True
            return False if x is False and y is False else None

    elif op == "xor":

        def fn(focus: Items, env: Env) -> bool | None:
            x = a(focus, env)
            if x is None:
                return None
            y = b(focus, env)
            return None if y is None else x != y

    elif op == "implies":

        def fn(focus: Items, env: Env) -> bool | None:
            x = a(focus, env)
            if x is False:
                return True
            y = b(focus, env)
            if y is True:
                return True
            return False if x is True and y is False else None

    else:
        raise UnsupportedError(op)
    return _from_tri(fn)


def _equality(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    op = _op(node)
    if op not in ("=", "!="):
        raise UnsupportedError(op)
    a, b = _compile(ch[0]).coll, _compile(ch[1]).coll
    negate = op == "!="

    def fn(focus: Items, env: Env) -> bool | None:
        x, y = a(focus, env), b(focus, env)
        if not x or not y:
            return None
        if len(x) != len(y):
            return negate
        result: bool | None = True
        for i, j in zip(x, y, strict=True):
            e = _equal(i, j)
            if e is False:
                return negate
            if e is None:
                result = None
        return None if result is None else not negate

    return _from_tri(fn)


def _inequality(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    op = _op(node)
    test: Callable[[int], bool] = {
        "<": lambda c: c < 0,
        "<=": lambda c: c <= 0,
        ">": lambda c: c > 0,
        ">=": lambda c: c >= 0,
    }[op]
    a, b = _compile(ch[0]).coll, _compile(ch[1]).coll

    def fn(focus: Items, env: Env) -> bool | None:
        x, y = a(focus, env), b(focus, env)
        if not x or not y:
            return None
        c = _ordering(x, y)
        return None if c is None else test(c)

    return _from_tri(fn)


def _membership(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    op = _op(node)
    a, b = _compile(ch[0]).coll, _compile(ch[1]).coll
    if op == "contains":
        a, b = b, a
    elif op != "in":
        raise UnsupportedError(op)

    def fn(focus: Items, env: Env) -> bool | None:
        needle, hay = a(focus, env), b(focus, env)
        if not needle:
            return None
        if not hay:
            return False
        if len(needle) > 1:
            raise EvaluationError(f"{op}: several items")
        return any(_equal(needle[0], h) is True for h in hay)

    return _from_tri(fn)


def _union(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    a, b = _compile(ch[0]).coll, _compile(ch[1]).coll
    return _Expr(lambda focus, env: _distinct(a(focus, env) + b(focus, env)))


def _type_expression(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    op = _op(node)
    if op not in ("is", "as"):
        raise UnsupportedError(op)
    return _type_op(_compile(ch[0]), _type_name(ch[1]), op)


def _additive(node: dict[str, Any], ch: list[dict[str, Any]]) -> _Expr:
    if _op(node) != "+":
        raise UnsupportedError(_op(node))
    a, b = _compile(ch[0]).coll, _compile(ch[1]).coll

    def plus(focus: Items, env: Env) -> Items:
        x, y = a(focus, env), b(focus, env)
        if not x or not y:
            return []
        if len(x) != 1 or len(y) != 1:
            raise EvaluationError("+ on several items")
        vx, vy = _value(x[0]), _value(y[0])
        nx, ny = _number(vx), _number(vy)
        if nx is not None and ny is not None:
            return [nx + ny]
        if type(vx) is str and type(vy) is str:
            return [vx + vy]
        raise EvaluationError("+ operands")

    return _Expr(plus)


_NODES: dict[str, Callable[[dict[str, Any], list[dict[str, Any]]], _Expr]] = {
    "TermExpression": _term,
    "InvocationTerm": _invocation_term,
    "InvocationExpression": _invocation_expression,
    "LiteralTerm": _literal,
    "ExternalConstantTerm": _external,
    "ParenthesizedTerm": _parenthesized,
    "AndExpression": _logic,
    "OrExpression": _logic,
    "XorExpression": _logic,
    "ImpliesExpression": _logic,
    "EqualityExpression": _equality,
    "InequalityExpression": _inequality,
    "MembershipExpression": _membership,
    "UnionExpression": _union,
    "TypeExpression": _type_expression,
    "AdditiveExpression": _additive,
}


def compile_invariant(expression: str) -> CompiledInvariant | None:
    """``f(node, type_name, variables) -> list`` for an expression of the subset, else None.

    ``variables`` holds ``resource`` and ``rootResource``; ``f`` raises :class:`EvaluationError`
    where the expression is in error on its input (as fhirpathpy raises).

    https://hl7.org/fhirpath/N1/#evaluation-model
    """
    try:
        with _LOCK:
            tree = fp_parse(expression)
        children = _children(tree)
        if len(children) != 1:
            return None
        compiled = _compile(children[0]).coll
    except UnsupportedError:
        return None
    except Exception:  # a parse error: fhirpathpy reports it
        return None

    def run(node: Any, type_name: str | None, variables: dict[str, Any]) -> list[Any]:
        focus = [_node(node, type_name)]
        resource = variables.get("resource")
        root = variables.get("rootResource")
        env = (
            focus,
            _MISSING if resource is None else [_node(resource, None)],
            _MISSING if root is None else [_node(root, None)],
            focus,
        )
        return [_value(x) for x in compiled(focus, env)]

    return run
