"""``CodeSystem/$lookup`` (what the server knows of a code: display, designations, properties,
parents and children) and ``CodeSystem/$subsumes`` (how two codes relate in the ``is-a``
hierarchy).

https://hl7.org/fhir/R4/codesystem-operation-lookup.html
https://hl7.org/fhir/R4/codesystem-operation-subsumes.html
"""

from __future__ import annotations

from typing import Any

from maison.fhir.errors import Category
from maison.terminology.errors import TerminologyError, bad_input, missing, unknown_code_system
from maison.terminology.source import (
    Concept,
    SystemInfo,
    TerminologySource,
    ancestors,
    canonical_system,
)
from maison.terminology.validate import Coding, codings


def _value(value: Any, code_like: bool = False) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, int):
        return {"valueInteger": value}
    if isinstance(value, float):
        return {"valueDecimal": value}
    return {"valueCode" if code_like else "valueString": str(value)}


def _property(code: str, value: Any, description: str | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "code", "valueCode": code},
        {"name": "value", **_value(value, code_like=code in ("parent", "child", "status"))},
    ]
    if description:
        parts.append({"name": "description", "valueString": description})
    return {"name": "property", "part": parts}


def _target(source: TerminologySource, operation: str, c: Coding) -> tuple[SystemInfo, Concept]:
    if c.system is None:
        raise missing(operation, f"the code '{c.code}' needs its system (parameter 'system')")
    info = source.system(c.system, c.version)
    if info is None:
        held = source.system(c.system) if c.version else None
        raise unknown_code_system(c.system, c.version, held.version if held else None)
    assert c.code is not None
    concept = source.concept(c.system, c.code, c.version)
    if concept is None:
        raise TerminologyError(
            Category.NOT_FOUND,
            "not-found",
            f"Unknown code '{c.code}' in the code system {c.system}"
            + (f" version {info.version}" if info.version else ""),
        )
    return info, concept


def lookup(
    source: TerminologySource,
    *,
    code: str | None = None,
    system: str | None = None,
    version: str | None = None,
    coding: dict[str, Any] | None = None,
    properties: list[str] | None = None,
    display_language: str | None = None,
) -> dict[str, Any]:
    """What the server knows of a code, as ``Parameters`` (name, version, display,
    designation, property: the concept's own, ``inactive``, ``parent`` and ``child``)
    (https://hl7.org/fhir/R4/codesystem-operation-lookup.html)."""
    if code is None and coding is None:
        raise missing("lookup", "give the code to look up: code and system, or coding")
    (c,) = codings("lookup", code=code, system=system, version=version, coding=coding)
    info, concept = _target(source, "lookup", c)
    wanted = set(properties) if properties else None

    def asked(name: str) -> bool:
        return wanted is None or name in wanted

    display = concept.display or concept.code
    if display_language:
        lang = display_language.lower().split("-")[0]
        display = next(
            (
                d.value
                for d in concept.designations
                if d.language and d.language.lower().split("-")[0] == lang
            ),
            display,
        )
    out: list[dict[str, Any]] = [
        {"name": "name", "valueString": info.title or info.name or info.url}
    ]
    if info.version:
        out.append({"name": "version", "valueString": info.version})
    out.append({"name": "display", "valueString": display})
    if asked("designation"):
        for d in concept.designations:
            parts: list[dict[str, Any]] = []
            if d.language:
                parts.append({"name": "language", "valueCode": d.language})
            if d.use_code:
                use = {"code": d.use_code}
                if d.use_system:
                    use = {"system": d.use_system, **use}
                parts.append({"name": "use", "valueCoding": use})
            parts.append({"name": "value", "valueString": d.value})
            out.append({"name": "designation", "part": parts})
    for name, value in concept.properties:
        if asked(name) and value is not None:
            out.append(_property(name, value))
    if asked("inactive"):
        out.append(_property("inactive", concept.inactive))
    assert c.system is not None
    if asked("parent"):
        for parent in source.parents(c.system, concept.code, c.version):
            held = source.concept(c.system, parent, c.version)
            out.append(_property("parent", parent, held.display if held else None))
    if asked("child"):
        for child in source.children(c.system, concept.code, c.version):
            held = source.concept(c.system, child, c.version)
            out.append(_property("child", child, held.display if held else None))
    return {"resourceType": "Parameters", "parameter": out}


def subsumes(
    source: TerminologySource,
    *,
    code_a: str | None = None,
    code_b: str | None = None,
    system: str | None = None,
    version: str | None = None,
    coding_a: dict[str, Any] | None = None,
    coding_b: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """How code A relates to code B: ``equivalent``, ``subsumes`` (A is above B),
    ``subsumed-by`` or ``not-subsumed``, as ``Parameters`` (outcome)
    (https://hl7.org/fhir/R4/codesystem-operation-subsumes.html)."""
    op = "subsumes"
    if code_a is None and coding_a is None:
        raise missing(op, "give code A: codeA (with system) or codingA")
    if code_b is None and coding_b is None:
        raise missing(op, "give code B: codeB (with system) or codingB")
    (a,) = codings(op, code=code_a, system=system, version=version, coding=coding_a)
    (b,) = codings(op, code=code_b, system=system, version=version, coding=coding_b)
    if a.system and b.system and canonical_system(a.system) != canonical_system(b.system):
        raise bad_input(
            op, f"codes A and B are in different code systems ({a.system} and {b.system})"
        )
    if system is not None:
        for c in (a, b):
            if c.system and canonical_system(c.system) != canonical_system(system):
                raise bad_input(op, f"the coding {c.label()} is not of the code system {system}")
    info, concept_a = _target(source, op, a)
    _, concept_b = _target(source, op, b)
    url, ver = info.url, info.version if (a.version or b.version or version) else None
    if concept_a.code == concept_b.code:
        outcome = "equivalent"
    elif concept_a.code in ancestors(source, url, concept_b.code, ver):
        outcome = "subsumes"
    elif concept_b.code in ancestors(source, url, concept_a.code, ver):
        outcome = "subsumed-by"
    else:
        outcome = "not-subsumed"
    return {"resourceType": "Parameters", "parameter": [{"name": "outcome", "valueCode": outcome}]}


__all__ = ["lookup", "subsumes"]
