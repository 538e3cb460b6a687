"""FHIR XML to FHIR JSON, for tests that read the official XML cases.

https://hl7.org/fhir/R4/xml.html and https://hl7.org/fhir/R4/json.html: which elements are
arrays, which are primitives and how a primitive's value is typed all come from the R4
StructureDefinitions (``Definitions.types[name]['snapshot']['element']``).
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from maison.fhir.definitions import Definitions

FHIR_NS = "http://hl7.org/fhir"
SYSTEM = "http://hl7.org/fhirpath/System."
_INTEGERS = {"integer", "positiveInt", "unsignedInt", f"{SYSTEM}Integer"}
_DECIMALS = {"decimal", f"{SYSTEM}Decimal"}
_BOOLEANS = {"boolean", f"{SYSTEM}Boolean"}


def parse_resource(xml: str | bytes, defs: Definitions) -> dict[str, Any]:
    """Parse one FHIR XML resource document into its FHIR JSON form."""
    data = xml.encode() if isinstance(xml, str) else xml
    return resource_to_json(etree.fromstring(data), defs)


def resource_to_json(element: Any, defs: Definitions) -> dict[str, Any]:
    """Convert an lxml element holding a FHIR resource (``<Patient xmlns=...>``) to JSON."""
    resource_type = _local(element.tag)
    if resource_type not in defs.types:
        raise ValueError(f"unknown resource type {resource_type!r}")
    out: dict[str, Any] = {"resourceType": resource_type}
    _fill(out, element, defs, resource_type, resource_type)
    return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _index(defs: Definitions, type_name: str) -> dict[str, dict[str, Any]]:
    snapshot = defs.types[type_name]["snapshot"]["element"]
    return {e["path"]: e for e in snapshot}


def _definition(defs: Definitions, sd: str, path: str, name: str) -> tuple[dict[str, Any], str]:
    """The element definition of child ``name`` and the type code of this occurrence."""
    elements = _index(defs, sd)
    element = elements.get(f"{path}.{name}")
    if element is not None:
        if "contentReference" in element:
            return element, ""
        codes = [t["code"] for t in element.get("type", [])]
        if len(codes) != 1:
            raise ValueError(f"{path}.{name} has {len(codes)} types")
        return element, codes[0]
    prefix = f"{path}."
    for element_path, element in elements.items():
        rest = element_path[len(prefix) :]
        if element_path.startswith(prefix) and rest.endswith("[x]") and "." not in rest:
            base = rest[:-3]
            suffix = name[len(base) :]
            if name.startswith(base) and suffix:
                for t in element.get("type", []):
                    code = t["code"]
                    if code[:1].upper() + code[1:] == suffix:
                        return element, code
    raise ValueError(f"{name!r} is not an element of {path}")


def _is_primitive(code: str) -> bool:
    return code.startswith(SYSTEM) or code[:1].islower()


def _primitive(raw: str | None, code: str) -> Any:
    if raw is None:
        return None
    if code in _BOOLEANS:
        return raw == "true"
    if code in _INTEGERS:
        return int(raw)
    if code in _DECIMALS:
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    return raw


def _fill(out: dict[str, Any], element: Any, defs: Definitions, sd: str, path: str) -> None:
    """Put the attributes and child elements of ``element`` into ``out``."""
    for attribute in ("id", "url"):
        if attribute in element.attrib:
            out[attribute] = element.attrib[attribute]
    collected: dict[str, list[tuple[Any, Any]]] = {}
    repeats: dict[str, bool] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        name = _local(child.tag)
        definition, code = _definition(defs, sd, path, name)
        repeats[name] = definition.get("max") != "1"
        companion: Any = None
        value: Any
        if "contentReference" in definition:
            target = definition["contentReference"].split("#", 1)[-1]
            value = {}
            _fill(value, child, defs, target.split(".", 1)[0], target)
        elif code == "xhtml":
            value = etree.tostring(child, encoding="unicode", with_tail=False)
        elif _is_primitive(code):
            value = _primitive(child.get("value"), code)
            companion = {}
            if code in defs.types:
                _fill(companion, child, defs, code, code)
            elif "id" in child.attrib:
                companion["id"] = child.attrib["id"]
            companion = companion or None
        elif code in ("Resource", "DomainResource"):
            inner = [c for c in child if isinstance(c.tag, str)]
            if len(inner) != 1:
                raise ValueError(f"{path}.{name} must hold exactly one resource")
            value = resource_to_json(inner[0], defs)
        elif code in ("BackboneElement", "Element"):
            value = {}
            _fill(value, child, defs, sd, definition["path"])
        else:
            value = {}
            _fill(value, child, defs, code, code)
        collected.setdefault(name, []).append((value, companion))
    for name, values in collected.items():
        companions = [c for _, c in values]
        if repeats[name]:
            plain = [v for v, _ in values]
            if any(v is not None for v in plain):
                out[name] = plain
            if any(c is not None for c in companions):
                out["_" + name] = companions
        else:
            if len(values) > 1:
                raise ValueError(f"{path}.{name} does not repeat")
            if values[0][0] is not None:
                out[name] = values[0][0]
            if companions[0] is not None:
                out["_" + name] = companions[0]
