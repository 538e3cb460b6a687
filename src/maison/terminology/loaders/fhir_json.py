"""FHIR JSON terminology resources: CodeSystem, ValueSet and ConceptMap files, Bundles of them,
and the zips the NOS publishes them in (``NOS-Fichiers_Publics-Versions_json_fhir.zip``).

A CodeSystem becomes a code system version (nested concepts and ``parent`` properties give its
is-a edges); a concept is inactive when its ``inactive`` property is true, its ``status``
retired/inactive, or when it carries the NOS ``dateFin`` (end of validity) property. A
CodeSystem published under another URL of a system (the NOS TRE_A04 URL of LOINC) is stored
under the canonical URL as a ``fragment``, so it never hides a full release.

https://hl7.org/fhir/R4/codesystem.html, https://hl7.org/fhir/R4/valueset.html,
https://hl7.org/fhir/R4/conceptmap.html, https://interop.esante.gouv.fr/ig/nos/
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from maison.terminology.loaders import (
    ConceptRow,
    Item,
    LoadError,
    ParentRow,
    ResourceLoad,
    Row,
    SystemLoad,
    SystemMeta,
    digest_of,
    oid_of,
)
from maison.terminology.loaders.archive import Entry
from maison.terminology.source import Designation, canonical_system

TAG = "fhir-json/1"
TERMINOLOGY_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
_INACTIVE_STATUS = frozenset({"retired", "inactive"})


def parse(entry: Entry) -> Any:
    """The JSON document of a file, syntax errors as :class:`LoadError` with their line."""
    data = entry.read_bytes()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise LoadError(f"not valid JSON ({exc.msg})", entry.name, line) from None


def read(entry: Entry, kind: str = "fhir") -> Iterator[Item]:
    """The CodeSystems, ValueSets and ConceptMaps of a JSON file (a resource or a Bundle);
    other resources are skipped (https://hl7.org/fhir/R4/bundle.html)."""
    yield from items(parse(entry), entry.name, kind)


def items(doc: Any, label: str, kind: str = "fhir") -> Iterator[Item]:
    """The terminology resources of a parsed JSON document (https://hl7.org/fhir/R4/bundle.html)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise LoadError("not a FHIR resource (no resourceType)", label)
    rtype = doc["resourceType"]
    if rtype == "Bundle":
        for n, entry in enumerate(doc.get("entry") or []):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(res, dict) and res.get("resourceType") in TERMINOLOGY_TYPES:
                yield from items(res, f"{label} entry[{n}]", kind)
    elif rtype == "CodeSystem":
        yield code_system(doc, label, kind)
    elif rtype in ("ValueSet", "ConceptMap"):
        if not isinstance(doc.get("url"), str) or not doc["url"]:
            raise LoadError(f"a {rtype} without url", label)
        yield ResourceLoad(doc, kind, label)


def code_system(cs: dict[str, Any], label: str, kind: str = "fhir") -> SystemLoad:
    """A CodeSystem resource as a code system version to load
    (https://hl7.org/fhir/R4/codesystem.html)."""
    url = cs.get("url")
    if not isinstance(url, str) or not url:
        raise LoadError("a CodeSystem without url", label)
    canonical = canonical_system(url)
    content = str(cs.get("content") or "complete")
    if canonical != url and content == "complete":
        content = "fragment"  # a publication of part of another system under its own URL
    concepts = cs.get("concept") or []
    if not isinstance(concepts, list):
        raise LoadError("CodeSystem.concept is not a list", label)
    # checked now: a bad CodeSystem fails before anything runs
    rows = _rows(concepts, label, *_relation_codes(cs))
    header = {k: v for k, v in cs.items() if k not in ("concept", "text")}
    meta = SystemMeta(
        url=canonical,
        version=_str(cs.get("version")),
        kind=kind,
        name=_str(cs.get("name")),
        title=_str(cs.get("title")),
        content=content,
        oid=oid_of(cs),
        header=header,
    )
    return SystemLoad(meta, digest_of(cs, TAG), lambda: iter(rows), label, len(rows))


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _relation_codes(cs: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The property codes giving a concept's parents and children: ``parent``/``subsumedBy``
    and ``child``, and those the CodeSystem declares with their concept-properties URIs
    (https://hl7.org/fhir/R4/codesystem-concept-properties.html)."""
    parents, children = {"parent", "subsumedBy"}, {"child"}
    for p in cs.get("property") or []:
        if not isinstance(p, dict) or not isinstance(p.get("code"), str):
            continue
        uri = str(p.get("uri", ""))
        if uri.endswith(("#parent", "#subsumedBy")):
            parents.add(p["code"])
        elif uri.endswith("#child"):
            children.add(p["code"])
    return parents, children


def _rows(
    concepts: list[Any], label: str, parent_codes: set[str], child_codes: set[str]
) -> list[Row]:
    out: list[Row] = []
    edges: list[Row] = []  # from ``child`` properties: after every concept
    seen: set[str] = set()
    todo: list[tuple[Any, str | None, str]] = [
        (c, None, f"concept[{n}]") for n, c in enumerate(concepts)
    ]
    todo.reverse()
    while todo:
        concept, parent, where = todo.pop()
        if not isinstance(concept, dict):
            raise LoadError(f"{where} is not an object", label)
        code = concept.get("code")
        if not isinstance(code, str) or not code.strip():
            raise LoadError(f"{where} has no code", label)
        if code in seen:
            raise LoadError(f"{where}: code {code!r} appears twice", label)
        seen.add(code)
        properties: list[tuple[str, Any]] = []
        parents: list[str] = [parent] if parent else []
        inactive = False
        for prop in concept.get("property") or []:
            if not isinstance(prop, dict) or not isinstance(prop.get("code"), str):
                raise LoadError(f"{where} ({code}): a property without code", label)
            value = _value(prop)
            name = prop["code"]
            properties.append((name, value))
            if name in parent_codes and isinstance(value, str) and value != code:
                parents.append(value)
            elif name in child_codes and isinstance(value, str) and value != code:
                edges.append(ParentRow(value, code))
            if (
                (name == "inactive" and value is True)
                or (name == "status" and value in _INACTIVE_STATUS)
                or (name == "dateFin" and value)
            ):
                inactive = True
        designations = []
        for d in concept.get("designation") or []:
            if not isinstance(d, dict) or not isinstance(d.get("value"), str):
                raise LoadError(f"{where} ({code}): a designation without value", label)
            use: dict[str, Any] = d["use"] if isinstance(d.get("use"), dict) else {}
            designations.append(
                Designation(d["value"], _str(d.get("language")), use.get("system"), use.get("code"))
            )
        display = concept.get("display")
        out.append(
            ConceptRow(
                code,
                display if isinstance(display, str) else None,
                inactive,
                tuple(properties),
                tuple(designations),
                tuple(dict.fromkeys(parents)),
            )
        )
        children = concept.get("concept") or []
        for n, child in reversed(list(enumerate(children))):
            todo.append((child, code, f"{where}.concept[{n}]"))
    return out + edges


def _value(prop: dict[str, Any]) -> Any:
    for key, value in prop.items():
        if key.startswith("value"):
            if isinstance(value, dict):  # valueCoding
                return value.get("code")
            return value
    return None


__all__ = ["TAG", "TERMINOLOGY_TYPES", "code_system", "items", "parse", "read"]
