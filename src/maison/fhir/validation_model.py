"""StructureDefinition snapshots compiled into trees of element rules, once per definition.

https://hl7.org/fhir/R4/elementdefinition.html
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maison.fhir.definitions import Definitions
from maison.fhir.validation_invariants import Invariant, InvariantCompiler
from maison.fhir.validation_primitives import fhir_type_code, is_primitive

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
RESOURCE_TYPES = frozenset({"Resource", "DomainResource"})


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class Discriminator:
    """One compiled slicing discriminator: https://hl7.org/fhir/R4/profiling.html#discriminator."""

    kind: str  # value | pattern | type | exists
    path: tuple[str, ...]  # () for $this


@dataclass(eq=False, slots=True)
class Slicing:
    """The slicing of a repeating element: https://hl7.org/fhir/R4/profiling.html#slicing."""

    discriminators: tuple[Discriminator, ...]
    rules: str  # open | closed | openAtEnd
    supported: bool


@dataclass(eq=False, slots=True)
class ElementRule:
    """One ElementDefinition, its children by name and its slices."""

    id: str
    path: str
    name: str
    min: int = 0
    max: int = -1  # -1 = unbounded
    array: bool = True
    types: tuple[str, ...] = ()
    type_profiles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    targets: frozenset[str] | None = None  # allowed Reference target types (None: any)
    choice: bool = False
    children: dict[str, ElementRule] = field(default_factory=dict)
    content_ref: str | None = None
    fixed: Any = MISSING
    pattern: Any = MISSING
    binding: str | None = None  # ValueSet canonical of a required/extensible/preferred binding
    strength: str | None = None  # that binding's strength
    invariants: tuple[Invariant, ...] = ()
    constraint_defs: tuple[dict[str, Any], ...] = ()
    slicing: Slicing | None = None
    slices: list[ElementRule] = field(default_factory=list)
    slice_name: str | None = None
    # discriminator values per slice (aligned with slicing.discriminators)
    disc_values: tuple[Any, ...] = ()
    keys: dict[str, tuple[ElementRule, str]] | None = None  # JSON key -> (rule, type code)
    required: tuple[ElementRule, ...] = ()
    # per type code: the rule describing an item's children and the invariants to evaluate
    resolved: dict[str, tuple[ElementRule | None, tuple[Invariant, ...]]] = field(
        default_factory=dict
    )


def _max(value: Any) -> int:
    return -1 if value in (None, "*") else int(value)


def _type_name(url: str, defs: Definitions) -> str:
    url = url.split("|", 1)[0]
    if url.startswith(CORE_SD) and url[len(CORE_SD) :] in defs.types:
        return url[len(CORE_SD) :]
    sd = defs.structure_definitions.get(url)
    return str(sd.get("type", "")) if sd else ""


def _typed_value(el: dict[str, Any], prefix: str) -> Any:
    for key, value in el.items():
        if key.startswith(prefix) and key[len(prefix) : len(prefix) + 1].isupper():
            return value
    return MISSING


def _rule(el: dict[str, Any], defs: Definitions) -> ElementRule:
    path: str = el["path"]
    last = path.rsplit(".", 1)[-1]
    choice = last.endswith("[x]")
    types: list[str] = []
    profiles: dict[str, tuple[str, ...]] = {}
    targets: set[str] | None = set()
    for t in el.get("type", ()):
        code = fhir_type_code(t)
        if path.count(".") == 1 and el.get("base", {}).get("path") == "Resource.id":
            code = "id"
        types.append(code)
        if t.get("profile"):
            profiles[code] = tuple(t["profile"])
        if code == "Reference" and targets is not None:
            for tp in t.get("targetProfile", ()):
                name = _type_name(tp, defs)
                if not name or name in RESOURCE_TYPES:
                    targets = None
                    break
                targets.add(name)
            else:
                if not t.get("targetProfile"):
                    targets = None
    base_max = el.get("base", {}).get("max", el.get("max"))
    binding = el.get("binding", {})
    checked = binding.get("strength") in ("required", "extensible", "preferred")
    bound_vs = binding.get("valueSet") if checked else None
    content_ref = el.get("contentReference")
    return ElementRule(
        id=el.get("id", path),
        path=path,
        name=last[:-3] if choice else last,
        min=int(el.get("min", 0)),
        max=_max(el.get("max")),
        array=_max(base_max) != 1,
        types=tuple(types),
        type_profiles=profiles,
        targets=frozenset(targets) if targets else None,
        choice=choice,
        content_ref=content_ref.split("#", 1)[1] if content_ref else None,
        fixed=_typed_value(el, "fixed"),
        pattern=_typed_value(el, "pattern"),
        binding=bound_vs,
        strength=binding.get("strength") if bound_vs else None,
        constraint_defs=tuple(el.get("constraint", ())),
        slice_name=el.get("sliceName"),
    )


def _slicing(el: dict[str, Any]) -> Slicing | None:
    spec = el.get("slicing")
    if not spec:
        return None
    discs: list[Discriminator] = []
    supported = True
    for d in spec.get("discriminator", ()):
        kind = d.get("type", "")
        raw = d.get("path", "$this")
        parts = () if raw == "$this" else tuple(raw.split("."))
        if kind not in ("value", "pattern", "type", "exists") or any(
            "(" in p or "[" in p for p in parts
        ):
            supported = False
        if kind == "type" and parts:
            supported = False
        discs.append(Discriminator(kind, parts))
    return Slicing(tuple(discs), spec.get("rules", "open"), supported and bool(discs))


class CompiledDefinition:
    """A StructureDefinition compiled into a rule tree (root, and every rule by element id)."""

    def __init__(self, sd: dict[str, Any], defs: Definitions, invariants: InvariantCompiler):
        self.url: str = sd.get("url", "")
        self.type: str = sd.get("type", "")
        self.by_id: dict[str, ElementRule] = {}
        last_by_path: dict[str, ElementRule] = {}
        root: ElementRule | None = None
        for el in sd.get("snapshot", {}).get("element", ()):
            rule = _rule(el, defs)
            rule.slicing = _slicing(el)
            self.by_id[rule.id] = rule
            path = rule.path
            if "." not in path:
                root = rule
                rule.array = False
                last_by_path[path] = rule
                continue
            parent = last_by_path.get(path.rsplit(".", 1)[0])
            if parent is None:
                continue
            sliced = parent.children.get(rule.name) if rule.slice_name else None
            if sliced is not None:  # a slice (re-slices are kept as slices of the same element)
                rule.array = sliced.array
                rule.choice = sliced.choice
                sliced.slices.append(rule)
            else:
                parent.children[rule.name] = rule
            last_by_path[path] = rule
        if root is None:
            raise ValueError(f"StructureDefinition {self.url} has no snapshot")
        self.root: ElementRule = root
        for rule in self.by_id.values():
            type_name = rule.types[0] if len(rule.types) == 1 else None
            if rule is root:
                type_name = self.type
            compiled = (invariants.compile(c, type_name) for c in rule.constraint_defs)
            rule.invariants = tuple(i for i in compiled if i is not None)
        for rule in self.by_id.values():
            target = self.by_id.get(rule.content_ref) if rule.content_ref else None
            if target is not None:
                rule.children = target.children
                rule.types = target.types
                rule.invariants = target.invariants

    def resolve(self, ref: str) -> ElementRule | None:
        """The rule a contentReference (``#Questionnaire.item``) points at."""
        return self.by_id.get(ref)


def is_complex(code: str) -> bool:
    """True for a complex datatype or backbone (not a primitive, not a resource)."""
    return not is_primitive(code) and code not in RESOURCE_TYPES
