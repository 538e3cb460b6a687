"""The FHIR R4 definitions registry, loaded as data from a pinned package.

https://hl7.org/fhir/R4/downloads.html (definitions: StructureDefinitions, SearchParameters,
ValueSets, CodeSystems, the Patient CompartmentDefinition).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

PACKAGES_FILE = Path(__file__).resolve().parent.parent / "data" / "packages.json"
# Resource types that change what the server knows (installed with an implementation guide).
CONFORMANCE_TYPES = frozenset(
    {"StructureDefinition", "ValueSet", "CodeSystem", "ConceptMap", "SearchParameter"}
)
BASE_PACKAGE = "r4-core"


def cache_dir() -> Path:
    """Where fetched definition packages live (``MAISON_CACHE`` or ``~/.cache/maison``)."""
    env = os.environ.get("MAISON_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "maison"


def package_pins() -> dict[str, Any]:
    """The pinned packages (name, version, checksum) from ``data/packages.json``."""
    pins: dict[str, Any] = orjson.loads(PACKAGES_FILE.read_bytes())["packages"]
    return pins


def package_dir(key: str = BASE_PACKAGE, root: Path | None = None) -> Path:
    """The folder where the extracted files of a pinned package are cached."""
    pin = package_pins()[key]
    return (root or cache_dir()) / "packages" / f"{key}-{pin['version']}"


@dataclass(frozen=True)
class SearchParam:
    """One search parameter as it applies to one resource type.

    https://hl7.org/fhir/R4/searchparameter.html
    """

    code: str
    type: str  # number|date|string|token|reference|composite|quantity|uri|special
    base: str  # the resource type it is applied to (or Resource / DomainResource)
    expression: str | None  # the part of the FHIRPath expression for this base
    url: str
    target: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()
    components: tuple[tuple[str, str], ...] = ()  # (definition url, expression)
    multiple_or: bool = True
    multiple_and: bool = True


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath expression on its top-level ``|`` operators."""
    parts: list[str] = []
    depth = 0
    quote = False
    start = 0
    i = 0
    while i < len(expression):
        c = expression[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == "'":
                quote = False
        elif c == "'":
            quote = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
        i += 1
    parts.append(expression[start:].strip())
    return [p for p in parts if p]


def _head_identifier(part: str) -> str:
    s = part.lstrip("( ")
    name = []
    for c in s:
        if c.isalnum() or c == "_":
            name.append(c)
        else:
            break
    return "".join(name)


def expression_for(expression: str | None, base: str, bases: list[str]) -> str | None:
    """The part of a multi-base SearchParameter expression that applies to ``base``."""
    if not expression:
        return None
    if len(bases) == 1:
        return expression
    parts = split_union(expression)
    if not any(_head_identifier(p)[:1].isupper() for p in parts):
        return expression  # written relative to the resource (as some guides do): every base
    typed = [p for p in parts if _head_identifier(p) == base]
    return " | ".join(typed) if typed else None


@dataclass(eq=False)
class Definitions:
    """All definitions known to the server: base R4 plus installed guides."""

    fhir_version: str = "4.0.1"
    structure_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by url
    types: dict[str, dict[str, Any]] = field(default_factory=dict)  # base SD by type name
    resource_types: set[str] = field(default_factory=set)
    value_sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    code_systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    concept_maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    search_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)  # by url
    _params: dict[str, dict[str, SearchParam]] = field(default_factory=dict)
    compartments: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    operation_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, resource: dict[str, Any], excluded: Iterable[str] = ()) -> None:
        """Register one conformance resource (StructureDefinition, SearchParameter, …)."""
        rt = resource.get("resourceType")
        if rt == "Bundle":
            for entry in resource.get("entry", []):
                if "resource" in entry:
                    self.add(entry["resource"], excluded)
            return
        url = resource.get("url", "")
        if rt == "StructureDefinition":
            self.structure_definitions[url] = resource
            if resource.get("derivation") == "specialization" or (
                resource.get("abstract") and ("baseDefinition" not in resource)
            ):
                self.types[resource["type"]] = resource
                if resource.get("kind") == "resource" and not resource.get("abstract"):
                    self.resource_types.add(resource["type"])
            elif resource.get("kind") == "logical" and "baseDefinition" not in resource:
                self.types[resource["type"]] = resource
        elif rt == "SearchParameter":
            if resource.get("id") in set(excluded):
                return
            self.search_parameters[url] = resource
            self._index_param(resource)
        elif rt == "ValueSet":
            self.value_sets[url] = resource
        elif rt == "CodeSystem":
            self.code_systems[url] = resource
        elif rt == "ConceptMap":
            self.concept_maps[url] = resource
        elif rt == "CompartmentDefinition":
            code = resource.get("code", "")
            self.compartments[code] = {
                r["code"]: list(r.get("param", [])) for r in resource.get("resource", [])
            }
        elif rt == "OperationDefinition":
            self.operation_definitions[url] = resource

    def _index_param(self, sp: dict[str, Any]) -> None:
        bases: list[str] = list(sp.get("base", []))
        comps = tuple(
            (c.get("definition", ""), c.get("expression", "")) for c in sp.get("component", [])
        )
        for base in bases:
            param = SearchParam(
                code=sp["code"],
                type=sp["type"],
                base=base,
                expression=expression_for(sp.get("expression"), base, bases),
                url=sp.get("url", ""),
                target=tuple(sp.get("target", [])),
                modifiers=tuple(sp.get("modifier", [])),
                chains=tuple(sp.get("chain", [])),
                components=comps,
                multiple_or=sp.get("multipleOr", True),
                multiple_and=sp.get("multipleAnd", True),
            )
            self._params.setdefault(base, {})[param.code] = param

    def extended(self, resources: Iterable[dict[str, Any]]) -> Definitions:
        """A copy of these definitions plus more conformance resources (an installed guide's);
        ``self`` is left unchanged (https://hl7.org/fhir/R4/profiling.html)."""
        out = Definitions(
            fhir_version=self.fhir_version,
            structure_definitions=dict(self.structure_definitions),
            types=dict(self.types),
            resource_types=set(self.resource_types),
            value_sets=dict(self.value_sets),
            code_systems=dict(self.code_systems),
            concept_maps=dict(self.concept_maps),
            search_parameters=dict(self.search_parameters),
            _params={base: dict(params) for base, params in self._params.items()},
            compartments=dict(self.compartments),
            operation_definitions=dict(self.operation_definitions),
        )
        for resource in resources:
            if resource.get("resourceType") == "StructureDefinition" and (
                resource.get("derivation") == "specialization"
            ):
                continue  # a guide never redefines a base type
            out.add(resource)
        return out

    def search_params(self, resource_type: str) -> dict[str, SearchParam]:
        """Every search parameter that applies to a resource type, common ones included."""
        out: dict[str, SearchParam] = {}
        out.update(self._params.get("Resource", {}))
        if resource_type not in ("Bundle", "Binary", "Parameters"):
            out.update(self._params.get("DomainResource", {}))
        out.update(self._params.get(resource_type, {}))
        return out

    def is_resource_type(self, name: str) -> bool:
        """True when ``name`` is a concrete resource type."""
        return name in self.resource_types


def _load_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


class DefinitionsMissingError(RuntimeError):
    """The pinned definitions package has not been fetched (run ``maison setup``)."""


def load_definitions(root: Path | None = None) -> Definitions:
    """Load the base R4 definitions from the package cache."""
    pin = package_pins()[BASE_PACKAGE]
    folder = package_dir(BASE_PACKAGE, root)
    marker = folder / ".verified"
    if not marker.exists():
        raise DefinitionsMissingError(
            f"FHIR R4 definitions not found in {folder}: run `maison setup` first"
        )
    defs = Definitions(fhir_version=pin["fhirVersion"])
    excluded = pin.get("excludeSearchParameters", [])
    for name in (
        "profiles-types.json",
        "profiles-resources.json",
        "search-parameters.json",
        "valuesets.json",
        "extension-definitions.json",
        "compartmentdefinition-patient.json",
    ):
        defs.add(_load_json(folder / name), excluded)
    return defs


@functools.cache
def default_definitions() -> Definitions:
    """The process-wide base definitions (loaded once)."""
    return load_definitions()
