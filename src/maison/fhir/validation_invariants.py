"""FHIRPath invariants (ElementDefinition.constraint) compiled once and evaluated per element.

https://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.constraint
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhirpathpy import compile as _fp_compile
from fhirpathpy.engine.invocations import invocation_registry as fp_registry
from fhirpathpy.engine.invocations.constants import constants as _fp_constants
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models as fp_models
from fhirpathpy.parser import parse as _fp_parse

from maison.fhir.fhirpath_bool import compile_invariant
from maison.fhir.validation_primitives import html_checks

# Checked by the structural walk already (value-or-children, extension url/value, nested
# contained, contained references).
STRUCTURAL_KEYS = frozenset({"ele-1", "ext-1", "dom-2", "dom-3", "ref-1"})
# Functions that evaluate on their input items: parameters inside them cannot see the context.
_ITERATING = frozenset({"where", "select", "all", "exists", "repeat"})
# Functions that can start a path without depending on the context node.
_CONTEXT_FREE = frozenset({"iif", "today", "now"})
_CONTEXT_VARS = frozenset({"resource", "rootResource", "context"})

Compiled = Callable[[Any, str | None, dict[str, Any]], list[Any]]


def _has_value(inputs: list[Any]) -> list[bool]:
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict | list)]


def _no_trace(*_args: Any) -> None:
    return None


def _html_checks(inputs: list[Any]) -> list[bool]:
    return [len(inputs) == 1 and html_checks(inputs[0])]


_OPTIONS: dict[str, Any] = {
    "userInvocationTable": {
        "hasValue": {"fn": _has_value, "arity": {0: []}},
        "htmlChecks": {"fn": _html_checks, "arity": {0: []}},
    },
    "traceFn": _no_trace,
}
_MODEL: dict[str, Any] = fp_models["r4"]
# fhirpathpy is untyped: its entry points, seen as Any
fp_compile: Any = _fp_compile
fp_parse: Any = _fp_parse
_create_node: Any = ResourceNode.create_node
_reset_constants: Any = _fp_constants.reset


def _supported_functions() -> frozenset[str]:
    return frozenset(fp_registry) | frozenset(_OPTIONS["userInvocationTable"])


def compile_fhirpath(expression: str) -> Compiled:
    """Compile a FHIRPath expression into ``f(node, type_name, variables) -> list``.

    https://hl7.org/fhirpath/N1/ (compiled closures first, fhirpathpy for the rest)
    """
    fast = compile_invariant(expression)
    if fast is not None:
        return fast
    return compile_fhirpathpy(expression)


def compile_fhirpathpy(expression: str) -> Compiled:
    """Compile a FHIRPath expression with fhirpathpy only, as :func:`compile_fhirpath` does.

    https://hl7.org/fhirpath/N1/
    """
    fn = fp_compile(expression, _MODEL, _OPTIONS)

    def run(node: Any, type_name: str | None, variables: dict[str, Any]) -> list[Any]:
        data = _create_node(node, type_name) if type_name else node
        _reset_constants()
        result: list[Any] = fn(data, variables)
        return result

    return run


def _walk(
    node: Any, inside_iter: bool, heads: set[str], funcs: set[str], flags: dict[str, bool]
) -> None:
    if isinstance(node, list):
        for n in node:
            _walk(n, inside_iter, heads, funcs, flags)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    children = node.get("children", [])
    if kind == "TermExpression" and children and children[0].get("type") == "InvocationTerm":
        inv = children[0]["children"][0]
        if inv.get("type") == "MemberInvocation":
            heads.add(inv["children"][0].get("text", ""))
        elif inv.get("type") == "FunctionInvocation":
            name = inv["children"][0]["children"][0].get("text", "")
            if name not in _CONTEXT_FREE and not inside_iter:
                flags["context"] = True
        elif not inside_iter:  # $this, $index, $total
            flags["context"] = True
    if kind == "ExternalConstant":
        name = children[0].get("text", "") if children else ""
        if name in _CONTEXT_VARS and not inside_iter:
            flags["context"] = True
    if kind == "Functn":
        name = children[0].get("text", "") if children else ""
        funcs.add(name)
        params = children[1:]
        _walk(params, inside_iter or name in _ITERATING, heads, funcs, flags)
        return
    _walk(children, inside_iter, heads, funcs, flags)


@dataclass(frozen=True, slots=True)
class Invariant:
    """One compiled constraint; ``heads`` enables the empty-context shortcut when not None."""

    key: str
    severity: str
    human: str
    expression: str
    run: Compiled
    heads: frozenset[str] | None
    empty_holds: bool = True  # the result when none of ``heads`` is present


class InvariantCompiler:
    """Compiles constraints once; keeps the keys it had to skip and why."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Invariant | None] = {}
        self.skipped: dict[str, str] = {}
        self._supported = _supported_functions()

    def compile(self, constraint: dict[str, Any], type_name: str | None) -> Invariant | None:
        """An :class:`Invariant` for an ElementDefinition.constraint, or None when skipped."""
        key = str(constraint.get("key", ""))
        expression = constraint.get("expression")
        if key in STRUCTURAL_KEYS or not expression:
            return None
        cache_key = (key, expression)
        if cache_key in self._cache:
            return self._cache[cache_key]
        inv = self._build(key, expression, constraint, type_name)
        self._cache[cache_key] = inv
        return inv

    def _build(
        self, key: str, expression: str, constraint: dict[str, Any], type_name: str | None
    ) -> Invariant | None:
        try:
            ast = fp_parse(expression)
        except Exception as exc:
            self.skipped[key] = f"parse error: {exc}"
            return None
        heads: set[str] = set()
        funcs: set[str] = set()
        flags: dict[str, bool] = {"context": False}
        _walk(ast, False, heads, funcs, flags)
        missing = sorted(f for f in funcs if f not in self._supported)
        if missing:
            self.skipped[key] = "unsupported function(s): " + ", ".join(missing)
            return None
        try:
            run = compile_fhirpath(expression)
        except Exception as exc:
            self.skipped[key] = f"compile error: {exc}"
            return None
        shortcut: frozenset[str] | None = None
        empty_holds = True
        if not flags["context"] and not any(h[:1].isupper() for h in heads):
            try:
                empty = run({}, None, {})
                shortcut = frozenset(heads)
                empty_holds = not (len(empty) == 1 and empty[0] is False)
            except Exception:
                shortcut = None
        return Invariant(
            key=key,
            severity="warning" if constraint.get("severity") == "warning" else "error",
            human=str(constraint.get("human", "")),
            expression=expression,
            run=run,
            heads=shortcut,
            empty_holds=empty_holds,
        )


def needs_evaluation(inv: Invariant, node: Any) -> bool:
    """False when none of the members the invariant reads are present: the result is then
    ``inv.empty_holds``, computed once at compile time."""
    heads = inv.heads
    if heads is None or not isinstance(node, dict):
        return True
    for key in node:
        name = key[1:] if key[:1] == "_" else key
        if name in heads:
            return True
        for h in heads:
            if name.startswith(h) and name[len(h) : len(h) + 1].isupper():
                return True
    return False


def holds(inv: Invariant, node: Any, type_name: str | None, variables: dict[str, Any]) -> bool:
    """Evaluate an invariant: False only when it yields ``false`` (errors count as passing)."""
    try:
        result = inv.run(node, type_name, variables)
    except Exception:
        return True
    return not (len(result) == 1 and result[0] is False)
