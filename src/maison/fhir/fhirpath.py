"""FHIRPath evaluation: fhirpathpy for the full language, compiled closures for the common paths.

https://hl7.org/fhir/R4/fhirpath.html
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from maison.fhir.normalize import parse_reference

__all__ = [
    "FhirPathError",
    "TypedItem",
    "compile_expression",
    "compile_fast",
    "compile_full",
    "compile_typed",
    "evaluate",
    "fhir_variables",
    "resolve_type",
]

log = logging.getLogger(__name__)

R4_MODEL: dict[str, Any] = models["r4"]
_PATH2TYPE: dict[str, str] = R4_MODEL["path2Type"]
_CHOICES: dict[str, list[str]] = R4_MODEL["choiceTypePaths"]
_ELSEWHERE: dict[str, str] = R4_MODEL["pathsDefinedElsewhere"]
_PARENT: dict[str, str] = R4_MODEL["type2Parent"]

PRIMITIVES = frozenset(
    {
        *("boolean", "integer", "string", "decimal", "uri", "url", "canonical", "base64Binary"),
        *("instant", "date", "dateTime", "time", "code", "oid", "id", "markdown"),
        *("unsignedInt", "positiveInt", "uuid", "xhtml"),
    }
)

# fhirpathpy resets module-level constants (now(), today()) and sets TypeInfo.model on every
# evaluation, and its ANTLR parser shares caches: serialise every call into it.
_LOCK = threading.RLock()

Items = list[Any]
TypedItem = tuple[Any, str | None]


class FhirPathError(ValueError):
    """A FHIRPath expression could not be parsed or evaluated."""


_create_node: Callable[[dict[str, Any]], Any] = ResourceNode.create_node


def _resolve(inputs: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in inputs:
        ref = item.get("reference") if isinstance(item, dict) else item
        if not isinstance(ref, str):
            continue
        parsed = parse_reference(ref)
        if parsed and parsed[0] and parsed[1]:
            out.append(_create_node({"resourceType": parsed[0], "id": parsed[1]}))
    return out


def _trace(label: Any, value: Any) -> None:
    log.debug("FHIRPath trace %s: %r", label, value)


_OPTIONS: dict[str, Any] = {
    "userInvocationTable": {"resolve": {"fn": _resolve, "arity": {0: []}}},
    "traceFn": _trace,
}
_NAMED_VARIABLE = re.compile(r"%`(vs|ext)-([^`]+)`")
_VARIABLE_BASES = {
    "vs": "http://hl7.org/fhir/ValueSet/",
    "ext": "http://hl7.org/fhir/StructureDefinition/",
}


def fhir_variables(
    resource: Any, expression: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The FHIR environment variables (%resource, %sct, %loinc, %`vs-*`, %`ext-*`) plus extras.

    https://hl7.org/fhir/R4/fhirpath.html#variables
    """
    env: dict[str, Any] = {
        "resource": resource,
        "rootResource": resource,
        "sct": "http://snomed.info/sct",
        "loinc": "http://loinc.org",
    }
    for kind, name in _NAMED_VARIABLE.findall(expression):
        env[f"{kind}-{name}"] = _VARIABLE_BASES[kind] + name
    if variables:
        env.update(variables)
    return env


def evaluate(
    resource: dict[str, Any], expression: str, variables: dict[str, Any] | None = None
) -> list[Any]:
    """Evaluate a FHIRPath expression on a resource (R4 model, ``resolve()`` on references).

    https://hl7.org/fhirpath/N1/#evaluation-model
    """
    env = fhir_variables(resource, expression, variables)
    try:
        with _LOCK:
            result: list[Any] = fhirpathpy.evaluate(resource, expression, env, R4_MODEL, _OPTIONS)
    except Exception as exc:  # fhirpathpy raises bare Exceptions of every kind
        raise FhirPathError(f"{expression!r}: {exc}") from exc
    _check_error_value(expression, result)
    return result


def _check_error_value(expression: str, result: list[Any]) -> None:
    # fhirpathpy's single() returns an error marker instead of raising
    for item in result:
        if isinstance(item, dict) and item.get("$status") == "error":
            raise FhirPathError(f"{expression!r}: {item.get('$error')}")


def compile_full(expression: str) -> Callable[[dict[str, Any]], list[Any]]:
    """Compile with fhirpathpy only (full language); the result never raises.

    https://hl7.org/fhirpath/N1/
    """
    try:
        with _LOCK:
            fn = fhirpathpy.compile(expression, R4_MODEL, _OPTIONS)
    except Exception as exc:
        raise FhirPathError(f"{expression!r}: {exc}") from exc

    def run(resource: dict[str, Any]) -> list[Any]:
        try:
            with _LOCK:
                out: list[Any] = fn(resource, fhir_variables(resource, expression))
            _check_error_value(expression, out)
        except Exception as exc:
            log.debug("FHIRPath %r failed on %s: %s", expression, resource.get("id"), exc)
            return []
        return out

    return run


@functools.lru_cache(maxsize=16384)
def compile_expression(expression: str) -> Callable[[dict[str, Any]], list[Any]]:
    """Compile an expression once; the result never raises (a failure yields no values).

    https://hl7.org/fhir/R4/searchparameter.html#expression
    """
    fast = compile_fast(expression)
    if fast is not None:
        return fast.values
    return compile_full(expression)


@functools.lru_cache(maxsize=16384)
def compile_typed(expression: str) -> Callable[[dict[str, Any]], list[TypedItem]]:
    """Compile an expression to ``(value, FHIR type or None)`` items, fast path when possible.

    https://hl7.org/fhir/R4/searchparameter.html#expression
    """
    fast = compile_fast(expression)
    if fast is not None:
        return fast.typed
    values = compile_full(expression)

    def typed(resource: dict[str, Any]) -> list[TypedItem]:
        return [(v, None) for v in values(resource)]

    return typed


# --------------------------------------------------------------------------------------
# Static types from the fhirpathpy R4 model
# --------------------------------------------------------------------------------------


def _is_backbone(path: str) -> bool:
    return _has_children(path)


@functools.cache
def _has_children(path: str) -> bool:
    prefix = path + "."
    return any(k.startswith(prefix) for k in _PATH2TYPE)


def _type_name(choice_suffix: str) -> str:
    lowered = choice_suffix[0].lower() + choice_suffix[1:]
    return lowered if lowered in PRIMITIVES else choice_suffix


def is_subtype(type_name: str, ancestor: str) -> bool:
    """True when ``type_name`` is ``ancestor`` or derives from it (Age → Quantity)."""
    seen = 0
    current: str | None = type_name
    while current and seen < 20:
        if current == ancestor:
            return True
        current = _PARENT.get(current)
        seen += 1
    return False


def resolve_type(type_name: str, name: str) -> list[tuple[str, str]]:
    """The JSON keys and FHIR types of child ``name`` of ``type_name`` (several for a choice).

    https://hl7.org/fhir/R4/formats.html#choice
    """
    current: str | None = type_name
    while current:
        path = f"{current}.{name}"
        path = _ELSEWHERE.get(path, path)
        if path in _CHOICES:
            return [(name + t, _type_name(t)) for t in _CHOICES[path]]
        found = _PATH2TYPE.get(path)
        if found is not None:
            if found.startswith("System."):
                found = "string" if found == "System.String" else found[7:].lower()
            return [(name, found)]
        if _is_backbone(path):
            return [(name, path)]
        current = _PARENT.get(current)
    return []


# --------------------------------------------------------------------------------------
# A tokenizer and parser for the common subset of FHIRPath used by SearchParameters
# --------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>\d+(?:\.\d+)?)|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>!=|[.()|\[\]=,]))"
)


class _UnsupportedError(Exception):
    pass


def _tokenize(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = expression.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise _UnsupportedError(text[pos:])
        kind = m.lastgroup
        assert kind is not None
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def _unquote(token: str) -> str:
    body = token[1:-1]
    if "\\" not in body:
        return body
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), body)


@dataclass
class _Branch:
    """One typed path through the expression; steps map a collection to a collection."""

    type: str
    steps: tuple[Callable[[Items], Items], ...]


class _Parser:
    def __init__(self, expression: str) -> None:
        self.tokens = _tokenize(expression)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise _UnsupportedError(f"expected {value or kind} at {tok}")
        self.pos += 1
        return tok[1]

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] == value and tok[0] in ("op", "id")

    def parse(self) -> list[_Branch]:
        branches = self.and_expr()
        if self.peek() is not None:
            raise _UnsupportedError(f"trailing {self.peek()}")
        return branches

    def and_expr(self) -> list[_Branch]:
        left = self.comparison_expr()
        while self.at("and"):
            self.take()
            left = [_Branch("boolean", (_and(left, self.comparison_expr()),))]
        return left

    def comparison_expr(self) -> list[_Branch]:
        branches = self.union()
        if self.at("=") or self.at("!="):
            op = self.take()
            literal = self.literal()
            return [_Branch("boolean", (_compare(branches, op == "=", literal),))]
        return branches

    def literal(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise _UnsupportedError("missing literal")
        self.pos += 1
        if tok[0] == "str":
            return _unquote(tok[1])
        if tok[0] == "num":
            return Decimal(tok[1])
        if tok == ("id", "true") or tok == ("id", "false"):
            return tok[1] == "true"
        raise _UnsupportedError(f"literal {tok}")

    def union(self) -> list[_Branch]:
        branches = self.term()
        while self.at("|"):
            self.take()
            branches = branches + self.term()
        return branches

    def term(self) -> list[_Branch]:
        if self.at("("):
            self.take()
            branches = self.union()
            self.take("op", ")")
        else:
            head = self.take("id")
            if not head[0].isupper() or head in ("as", "is"):
                raise _UnsupportedError(f"head {head}")
            branches = [_Branch(head, (_root_filter(head),))]
        while True:
            if self.at("."):
                self.take()
                branches = self.invocation(branches)
            elif self.at("["):
                self.take()
                index = int(self.take("num"))
                self.take("op", "]")
                branches = [_Branch(b.type, (*b.steps, _index(index))) for b in branches]
                if len(branches) > 1:
                    raise _UnsupportedError("index over a choice")
            else:
                break
        if self.at("as") and self.peek(1) and self.peek(1)[0] == "id":  # type: ignore[index]
            self.take()
            branches = _of_type(branches, self.take("id"))
        return branches

    def invocation(self, branches: list[_Branch]) -> list[_Branch]:
        name = self.take("id")
        if not self.at("("):
            out: list[_Branch] = []
            for b in branches:
                for key, typ in resolve_type(b.type, name):
                    out.append(_Branch(typ, _then_child(b.steps, key)))
            if not out:
                raise _UnsupportedError(f"unknown element {name}")
            return out
        self.take()
        if name in ("as", "ofType"):
            type_name = self.take("id")
            self.take("op", ")")
            return _of_type(branches, type_name)
        if name == "exists":
            self.take("op", ")")
            return [_Branch("boolean", (_exists(branches),))]
        if name == "first":
            self.take("op", ")")
            return [_Branch(b.type, (*b.steps, _index(0))) for b in _single(branches)]
        if name == "extension":
            url = _unquote(self.take("str"))
            self.take("op", ")")
            out = []
            for b in branches:
                for key, typ in resolve_type(b.type, "extension"):
                    cond = _equals(("url",), url)
                    out.append(_Branch(typ, (*_then_child(b.steps, key), _filter(cond))))
            if not out:
                raise _UnsupportedError("extension() on a type without extensions")
            return out
        if name == "where":
            if not branches:
                raise _UnsupportedError("where() on nothing")
            out = []
            end = self.pos
            for b in branches:
                start = self.pos
                cond = self.condition(b.type)
                out.append(_Branch(b.type, (*b.steps, _filter(cond))))
                end = self.pos
                self.pos = start
            self.pos = end
            self.take("op", ")")
            return out
        raise _UnsupportedError(f"function {name}")

    def condition(self, type_name: str) -> Callable[[Any], bool]:
        conds = [self.comparison(type_name)]
        while self.at("and"):
            self.take()
            conds.append(self.comparison(type_name))
        if len(conds) == 1:
            return conds[0]
        return lambda item: all(c(item) for c in conds)

    def comparison(self, type_name: str) -> Callable[[Any], bool]:
        first = self.take("id")
        if first == "resolve" and self.at("("):
            self.take()
            self.take("op", ")")
            if self.take("id") != "is":
                raise _UnsupportedError("resolve() without is")
            target = self.take("id")
            if type_name != "Reference":
                raise _UnsupportedError("resolve() on a non-Reference")
            return _reference_is(target)
        path = [first]
        current = type_name
        for_types = resolve_type(current, first)
        while True:
            if len(for_types) != 1 or for_types[0][0] != path[-1]:
                raise _UnsupportedError(f"condition path {path}")
            current = for_types[0][1]
            if not self.at("."):
                break
            self.take()
            path.append(self.take("id"))
            for_types = resolve_type(current, path[-1])
        op = self.take("op")
        if op not in ("=", "!="):
            raise _UnsupportedError(f"operator {op}")
        literal = self.literal()
        eq = _equals(tuple(path), literal)
        if op == "=":
            return eq
        return _not_equals(tuple(path), literal)


def _run(branches: list[_Branch], items: Items) -> Items:
    out: Items = []
    for branch in branches:
        current = items
        for step in branch.steps:
            current = step(current)
            if not current:
                break
        out.extend(current)
    return out


def _exists(branches: list[_Branch]) -> Callable[[Items], Items]:
    def step(items: Items) -> Items:
        return [bool(_run(branches, items))]

    return step


def _compare(branches: list[_Branch], equal: bool, literal: Any) -> Callable[[Items], Items]:
    def step(items: Items) -> Items:
        values = _run(branches, items)
        if not values:
            return []
        same = len(values) == 1 and _same(values[0], literal)
        return [same if equal else not same]

    return step


def _truth(values: Items) -> bool | None:
    if not values:
        return None
    if len(values) == 1 and isinstance(values[0], bool):
        return values[0]
    if len(values) == 1:
        return True
    raise _UnsupportedError("boolean of a collection")


def _and(left: list[_Branch], right: list[_Branch]) -> Callable[[Items], Items]:
    def step(items: Items) -> Items:
        a, b = _truth(_run(left, items)), _truth(_run(right, items))
        if a is False or b is False:
            return [False]
        if a is None or b is None:
            return []
        return [True]

    return step


def _single(branches: list[_Branch]) -> list[_Branch]:
    if len(branches) != 1:
        raise _UnsupportedError("subsetting over several branches")
    return branches


def _root_filter(type_name: str) -> Callable[[Items], Items]:
    def keep(items: Items) -> Items:
        if len(items) == 1 and type(items[0]) is dict:
            rtype = items[0].get("resourceType")
            if rtype == type_name or is_subtype(str(rtype), type_name):
                return items
            return []
        return [
            r
            for r in items
            if isinstance(r, dict) and is_subtype(str(r.get("resourceType")), type_name)
        ]

    return keep


class _Children:
    """Navigate one or more child names in a row (``name.family``), flattening arrays."""

    __slots__ = ("keys",)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys

    def __call__(self, items: Items) -> Items:
        for key in self.keys:
            out: Items = []
            for item in items:
                if type(item) is dict:
                    value = item.get(key)
                    if value is None:
                        continue
                    if type(value) is list:
                        out.extend([v for v in value if v is not None])
                    else:
                        out.append(value)
            if not out:
                return out
            items = out
        return items


def _then_child(
    steps: tuple[Callable[[Items], Items], ...], key: str
) -> tuple[Callable[[Items], Items], ...]:
    if steps and isinstance(steps[-1], _Children):
        return (*steps[:-1], _Children((*steps[-1].keys, key)))
    return (*steps, _Children((key,)))


def _index(n: int) -> Callable[[Items], Items]:
    def step(items: Items) -> Items:
        return items[n : n + 1]

    return step


def _filter(cond: Callable[[Any], bool]) -> Callable[[Items], Items]:
    def step(items: Items) -> Items:
        return [i for i in items if cond(i)]

    return step


def _path_values(item: Any, path: tuple[str, ...]) -> Items:
    values: Items = [item]
    for key in path:
        values = _Children((key,))(values)
    return values


def _same(value: Any, literal: Any) -> bool:
    if isinstance(literal, Decimal):
        return (
            isinstance(value, int | float | Decimal)
            and not isinstance(value, bool)
            and Decimal(str(value)) == literal
        )
    return type(value) is type(literal) and bool(value == literal)


def _equals(path: tuple[str, ...], literal: Any) -> Callable[[Any], bool]:
    if len(path) == 1:
        key = path[0]

        def eq1(item: Any) -> bool:
            if type(item) is not dict:
                return False
            value = item.get(key)
            if type(value) is list:
                return len(value) == 1 and _same(value[0], literal)
            return value is not None and _same(value, literal)

        return eq1

    def eq(item: Any) -> bool:
        values = _path_values(item, path)
        return len(values) == 1 and _same(values[0], literal)

    return eq


def _not_equals(path: tuple[str, ...], literal: Any) -> Callable[[Any], bool]:
    def ne(item: Any) -> bool:
        values = _path_values(item, path)
        return bool(values) and not (len(values) == 1 and _same(values[0], literal))

    return ne


def _reference_is(target: str) -> Callable[[Any], bool]:
    def check(item: Any) -> bool:
        ref = item.get("reference") if type(item) is dict else None
        if not isinstance(ref, str):
            return False
        parsed = parse_reference(ref)
        return parsed is not None and parsed[0] is not None and is_subtype(parsed[0], target)

    return check


def _of_type(branches: list[_Branch], type_name: str) -> list[_Branch]:
    name = type_name.split(".")[-1]
    known = name in PRIMITIVES if name[0].islower() else name in _PARENT
    if name in {"Resource", "DomainResource"} or not known:
        raise _UnsupportedError(f"type {type_name}")
    if any(is_subtype(name, b.type) and name != b.type for b in branches):
        raise _UnsupportedError(f"{type_name} needs the runtime type")
    if name[0].islower():  # FHIR primitives match exactly: code is not ``as string``
        return [b for b in branches if b.type == name]
    return [b for b in branches if is_subtype(b.type, name)]


# --------------------------------------------------------------------------------------
# Compiled expressions
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FastPath:
    """An expression compiled to closures over JSON dicts: ``values`` and ``typed`` results."""

    expression: str
    branches: tuple[_Branch, ...]

    def typed(self, resource: dict[str, Any]) -> list[TypedItem]:
        """The values with their static FHIR type (union duplicates removed)."""
        try:
            out: list[TypedItem] = []
            for branch in self.branches:
                items: Items = [resource]
                for step in branch.steps:
                    items = step(items)
                    if not items:
                        break
                else:
                    typ = branch.type
                    out.extend((v, typ) for v in items)
            if len(self.branches) > 1 and len(out) > 1:
                out = _dedupe(out)
            return out
        except Exception as exc:  # never raise on odd data
            log.debug("FHIRPath %r failed: %s", self.expression, exc)
            return []

    def values(self, resource: dict[str, Any]) -> list[Any]:
        """The values alone."""
        return [v for v, _ in self.typed(resource)]


def _dedupe(items: list[TypedItem]) -> list[TypedItem]:
    out: list[TypedItem] = []
    for item in items:
        if not any(item[0] == seen[0] and type(item[0]) is type(seen[0]) for seen in out):
            out.append(item)
    return out


@functools.lru_cache(maxsize=16384)
def compile_fast(expression: str) -> FastPath | None:
    """Compile the common SearchParameter shapes to closures, or None when unsupported.

    https://hl7.org/fhir/R4/searchparameter.html#expression
    """
    try:
        branches = _Parser(expression).parse()
    except (_UnsupportedError, ValueError, IndexError) as exc:
        log.debug("FHIRPath %r: no fast path (%s)", expression, exc)
        return None
    return FastPath(expression, tuple(branches))
