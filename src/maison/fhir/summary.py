"""Subsetting search results: ``_summary`` and ``_elements``.

https://hl7.org/fhir/R4/search.html#summary and https://hl7.org/fhir/R4/search.html#elements
"""

from __future__ import annotations

import functools
from typing import Any

from maison.fhir.definitions import Definitions
from maison.fhir.errors import Category, FhirError

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
SUMMARY_MODES = frozenset({"true", "text", "data", "count", "false"})
_ALWAYS = frozenset({"resourceType", "id", "meta"})


@functools.cache
def _top_level(defs: Definitions, rtype: str) -> tuple[frozenset[str], frozenset[str]]:
    """(summary element names, mandatory element names) of a type; ``x[x]`` kept as ``x``."""
    sd = defs.types.get(rtype, {})
    summary, mandatory = set(), set()
    for el in sd.get("snapshot", {}).get("element", []):
        path = el.get("path", "")
        if path.count(".") != 1:
            continue
        name = path.split(".", 1)[1].removesuffix("[x]")
        if el.get("isSummary"):
            summary.add(name)
        if el.get("min", 0) > 0:
            mandatory.add(name)
    return frozenset(summary), frozenset(mandatory)


def _element_name(key: str, names: frozenset[str]) -> str:
    base = key[1:] if key.startswith("_") else key
    if base in names:
        return base
    for n in names:  # choice types: valueQuantity -> value
        if base.startswith(n) and base[len(n) : len(n) + 1].isupper():
            return n
    return base


def _tagged(resource: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    kept["meta"] = meta
    return kept


def summarize(defs: Definitions, resource: dict[str, Any], mode: str) -> dict[str, Any]:
    """The resource as ``_summary=mode`` asks (https://hl7.org/fhir/R4/search.html#summary)."""
    if mode == "false":
        return resource
    rtype = resource.get("resourceType", "")
    summary, mandatory = _top_level(defs, rtype)
    if mode == "data":
        return _tagged(resource, {k: v for k, v in resource.items() if k != "text"})
    if mode == "text":
        keep = _ALWAYS | mandatory | {"text"}
    else:  # "true"
        keep = _ALWAYS | summary
    names = summary | mandatory | {"text"}
    kept = {k: v for k, v in resource.items() if _element_name(k, names) in keep}
    return _tagged(resource, kept)


def elements(defs: Definitions, resource: dict[str, Any], wanted: frozenset[str]) -> dict[str, Any]:
    """Only the named top-level elements plus the mandatory ones
    (https://hl7.org/fhir/R4/search.html#elements)."""
    rtype = resource.get("resourceType", "")
    summary, mandatory = _top_level(defs, rtype)
    names = summary | mandatory | wanted
    keep = _ALWAYS | mandatory | wanted
    kept = {k: v for k, v in resource.items() if _element_name(k, names) in keep}
    return _tagged(resource, kept)


def parse_elements(defs: Definitions, rtype: str, raw: str) -> frozenset[str]:
    """Check an ``_elements`` list against the type's top-level elements."""
    sd = defs.types.get(rtype, {})
    known = {
        el["path"].split(".", 1)[1].removesuffix("[x]")
        for el in sd.get("snapshot", {}).get("element", [])
        if el.get("path", "").count(".") == 1
    }
    wanted = frozenset(e.strip() for e in raw.split(",") if e.strip())
    unknown = sorted(w for w in wanted if w.split(".", 1)[0] not in known)
    if unknown:
        raise FhirError(
            Category.INVALID, f"_elements: {', '.join(unknown)} not elements of {rtype}"
        )
    return frozenset(w.split(".", 1)[0] for w in wanted)
