"""Extended operations (``$name``): each registered with its OperationDefinition, invoked by one
generic handler that checks the input Parameters against that definition.

https://hl7.org/fhir/R4/operations.html
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson

from maison.api.interactions import Context, Result
from maison.fhir.errors import Category, FhirError, Issue, invalid
from maison.security.guard import GuardedTx
from maison.security.principal import Principal

#: Where our own OperationDefinitions live (``src/maison/data/operations/*.json``).
DATA_PACKAGE = "maison.data"

EVERY_CONTEXT = frozenset({"patient", "user", "system"})
#: Operations a patient-facing app may never call (e.g. INSi: it returns other people's INS).
PROFESSIONAL_CONTEXTS = frozenset({"user", "system"})


@dataclass(frozen=True)
class Invocation:
    """One call of an operation: where it was called and its checked input Parameters."""

    ctx: Context
    tx: GuardedTx
    principal: Principal
    resource_type: str | None
    resource_id: str | None
    parameters: dict[str, Any]

    def values(self, name: str) -> list[Any]:
        """The values (``value[x]``, ``resource`` or the parameter itself when it has parts)
        of every input parameter called ``name``."""
        out: list[Any] = []
        for p in self.parameters.get("parameter", []):
            if p.get("name") != name:
                continue
            if "resource" in p:
                out.append(p["resource"])
            elif "part" in p:
                out.append(p)
            else:
                out.extend(v for k, v in p.items() if k.startswith("value"))
        return out

    def value(self, name: str) -> Any:
        """The single value of ``name`` (None when absent; cardinality is already checked)."""
        found = self.values(name)
        return found[0] if found else None


Handler = Callable[[Invocation], Result]


@dataclass(frozen=True)
class Operation:
    """A registered operation: its definition, its handler and the permission it needs.

    ``interaction`` is the FHIR interaction the caller must be allowed on the resource type
    (``read`` for a query such as INSi, ``update`` for a merge) and ``contexts`` the SMART scope
    contexts that may grant it.
    """

    definition: dict[str, Any]
    handler: Handler
    interaction: str
    contexts: frozenset[str] = EVERY_CONTEXT

    @property
    def code(self) -> str:
        """The name after ``$``."""
        return str(self.definition["code"])

    @property
    def affects_state(self) -> bool:
        """Whether the operation writes (then POST only, through the group-commit writer)."""
        return bool(self.definition.get("affectsState"))

    @property
    def url(self) -> str:
        """The canonical URL of the OperationDefinition."""
        return str(self.definition["url"])

    def levels(self) -> set[str]:
        """Where it may be invoked: ``system``, ``type``, ``instance``."""
        d = self.definition
        return {lvl for lvl in ("system", "type", "instance") if d.get(lvl)}


@dataclass
class Registry:
    """The operations this server offers, by code and resource type."""

    operations: list[Operation] = field(default_factory=list)

    def add(self, operation: Operation) -> None:
        """Register one operation."""
        self.operations.append(operation)

    def find(self, code: str, level: str, res_type: str | None) -> Operation | None:
        """The operation called ``code`` at this level (and on this resource type)."""
        for op in self.operations:
            if op.code != code or level not in op.levels():
                continue
            if level == "system" or res_type in op.definition.get("resource", []):
                return op
        return None

    def for_type(self, res_type: str) -> list[Operation]:
        """Type- and instance-level operations on ``res_type`` (for the CapabilityStatement)."""
        return [
            op
            for op in self.operations
            if res_type in op.definition.get("resource", []) and op.levels() - {"system"}
        ]

    def system(self) -> list[Operation]:
        """System-level operations."""
        return [op for op in self.operations if "system" in op.levels()]

    def definition(self, def_id: str) -> dict[str, Any] | None:
        """A registered OperationDefinition by its id (``GET OperationDefinition/[id]``)."""
        return next(
            (op.definition for op in self.operations if op.definition["id"] == def_id), None
        )


def load_definition(name: str) -> dict[str, Any]:
    """One of our OperationDefinitions, e.g. ``Patient-ins-search``."""
    path = resources.files(DATA_PACKAGE) / "operations" / f"{name}.json"
    definition: dict[str, Any] = orjson.loads(path.read_bytes())
    return definition


# ------------------------------------------------------------------------------- input checks

_PRIMITIVE_QUERY = {
    "string",
    "code",
    "uri",
    "canonical",
    "id",
    "date",
    "dateTime",
    "boolean",
    "integer",
    "positiveInt",
    "unsignedInt",
    "decimal",
    "token",
}


def _value_key(fhir_type: str) -> str:
    return "value" + fhir_type[0].upper() + fhir_type[1:]


def _query_value(op: Operation, name: str, text: str, fhir_type: str) -> dict[str, Any]:
    """A GET query value as a Parameters entry of the declared type."""
    value: Any = text
    if fhir_type in ("integer", "positiveInt", "unsignedInt"):
        if not re.fullmatch(r"-?\d{1,10}", text):
            raise invalid(f"${op.code}: parameter '{name}' must be an integer, not '{text[:40]}'")
        value = int(text)
    elif fhir_type == "decimal":
        try:
            value = float(text)
        except ValueError:
            raise invalid(f"${op.code}: parameter '{name}' must be a number") from None
    elif fhir_type == "boolean":
        if text not in ("true", "false"):
            raise invalid(f"${op.code}: parameter '{name}' must be true or false")
        value = text == "true"
    return {"name": name, _value_key("string" if fhir_type == "token" else fhir_type): value}


def parameters_from_query(op: Operation, params: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The input Parameters of a GET invocation: only simple parameters may be sent in the URL
    (https://hl7.org/fhir/R4/operations.html#request)."""
    declared = {p["name"]: p for p in op.definition.get("parameter", []) if p.get("use") == "in"}
    out: list[dict[str, Any]] = []
    for name, text in params:
        if name.startswith("_") and name in ("_format", "_pretty"):
            continue
        spec = declared.get(name)
        if spec is None:
            out.append({"name": name, "valueString": text})  # refused by check_parameters
            continue
        fhir_type = spec.get("type", "string")
        if "part" in spec or fhir_type not in _PRIMITIVE_QUERY:
            raise invalid(
                f"${op.code}: parameter '{name}' is not a simple value; "
                "send the input as a Parameters resource with POST"
            )
        out.append(_query_value(op, name, text, fhir_type))
    return {"resourceType": "Parameters", "parameter": out}


def check_parameters(op: Operation, body: Any) -> dict[str, Any]:
    """The input Parameters, checked against the OperationDefinition: names, cardinality and
    value types; every problem named (https://hl7.org/fhir/R4/operationdefinition.html)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        got = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        raise invalid(f"${op.code} takes a Parameters resource as its body, not {got}")
    given = body.get("parameter", [])
    if not isinstance(given, list) or not all(isinstance(p, dict) for p in given):
        raise invalid(f"${op.code}: Parameters.parameter must be a list of parameters")
    declared = [p for p in op.definition.get("parameter", []) if p.get("use") == "in"]
    issues = _check_level(op, given, declared, "Parameters.parameter")
    if issues:
        raise FhirError(Category.INVALID, issues[0].diagnostics, issues)
    return body


def _check_level(
    op: Operation, given: list[dict[str, Any]], declared: list[dict[str, Any]], where: str
) -> list[Issue]:
    issues: list[Issue] = []
    by_name = {p["name"]: p for p in declared}
    counts: dict[str, int] = {}
    for i, p in enumerate(given):
        name = p.get("name")
        path = f"{where}[{i}]"
        if not isinstance(name, str) or not name:
            issues.append(_issue(f"${op.code}: every parameter needs a name", path))
            continue
        spec = by_name.get(name)
        if spec is None:
            known = ", ".join(sorted(by_name)) or "none"
            issues.append(
                _issue(f"${op.code}: unknown parameter '{name[:64]}' (expected: {known})", path)
            )
            continue
        counts[name] = counts.get(name, 0) + 1
        issues.extend(_check_value(op, p, spec, path))
    for spec in declared:
        name = spec["name"]
        n = counts.get(name, 0)
        low = int(spec.get("min", 0))
        high = spec.get("max", "*")
        if n < low:
            issues.append(_issue(f"${op.code}: parameter '{name}' is required", where))
        elif high != "*" and n > int(high):
            times = "once" if high == "1" else f"{high} times"
            issues.append(
                _issue(f"${op.code}: parameter '{name}' may be given {times}, not {n}", where)
            )
    return issues


def _check_value(op: Operation, p: dict[str, Any], spec: dict[str, Any], path: str) -> list[Issue]:
    name = spec["name"]
    if "part" in spec:
        parts = p.get("part")
        if not isinstance(parts, list):
            return [_issue(f"${op.code}: parameter '{name}' needs parts", path)]
        return _check_level(op, parts, spec["part"], f"{path}.part")
    fhir_type = spec.get("type")
    values = [k for k in p if k.startswith("value")]
    if "resource" in p:
        if values or not isinstance(p["resource"], dict):
            return [_issue(f"${op.code}: parameter '{name}' is malformed", path)]
        rtype = p["resource"].get("resourceType")
        if fhir_type not in ("Resource", "DomainResource", rtype):
            return [
                _issue(f"${op.code}: parameter '{name}' must be a {fhir_type}, not {rtype}", path)
            ]
        return []
    if len(values) != 1:
        return [_issue(f"${op.code}: parameter '{name}' needs one value[x]", path)]
    key = values[0]
    expected = _value_key("string" if fhir_type in (None, "token") else fhir_type)
    if key != expected:
        return [_issue(f"${op.code}: parameter '{name}' must be {expected}, not {key}", path)]
    value = p[key]
    # value formats (dates…) are the handler's to check, with its domain's words
    if fhir_type in ("string", "code", "uri", "id", "date") and not isinstance(value, str):
        return [_issue(f"${op.code}: parameter '{name}' must be text", path)]
    return []


def _issue(message: str, expression: str) -> Issue:
    return Issue("error", "invalid", message, (expression,))


# ------------------------------------------------------------------------------- the handler


def invoke(
    registry: Registry,
    ctx: Context,
    tx: GuardedTx,
    method: str,
    code: str,
    res_type: str | None,
    res_id: str | None,
    params: list[tuple[str, str]],
    body: Any,
) -> Result:
    """The one handler of every registered operation (https://hl7.org/fhir/R4/operations.html)."""
    level = "instance" if res_id else "type" if res_type else "system"
    op = registry.find(code, level, res_type)
    if op is None:
        where = f"{res_type}/{res_id}/" if res_id else f"{res_type}/" if res_type else ""
        raise FhirError(Category.NOT_FOUND, f"No operation {where}${code[:64]} on this server")
    tx.operation(op.code, op.interaction, res_type, op.contexts)
    if method == "GET":
        if op.affects_state:
            raise FhirError(
                Category.METHOD_NOT_ALLOWED, f"${op.code} changes data: invoke it with POST"
            )
        parameters = parameters_from_query(op, params)
    else:
        parameters = body
    parameters = check_parameters(op, parameters)
    return op.handler(Invocation(ctx, tx, tx.principal, res_type, res_id, parameters))


def capability_operations(operations: list[Operation]) -> list[dict[str, Any]]:
    """CapabilityStatement ``operation`` entries for these operations."""
    return [{"name": op.code, "definition": op.url} for op in operations]


__all__ = [
    "EVERY_CONTEXT",
    "PROFESSIONAL_CONTEXTS",
    "Invocation",
    "Operation",
    "Registry",
    "capability_operations",
    "check_parameters",
    "invoke",
    "load_definition",
    "parameters_from_query",
]
