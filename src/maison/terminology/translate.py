"""``ConceptMap/$translate``: the codes a concept map gives for a code (e.g. the NOS ASS_X04 /
ASS_X16 correspondences: a document type code to its class), or, with ``reverse``, the codes
that map to it.

https://hl7.org/fhir/R4/conceptmap-operation-translate.html
"""

from __future__ import annotations

from typing import Any

from maison.terminology.errors import bad_input, unknown_concept_map
from maison.terminology.source import TerminologySource, canonical_system
from maison.terminology.validate import Coding, codings

#: Equivalences read from the target back to the source
#: (http://hl7.org/fhir/R4/valueset-concept-map-equivalence.html).
_REVERSED = {
    "wider": "narrower",
    "narrower": "wider",
    "subsumes": "specializes",
    "specializes": "subsumes",
}
#: Equivalences that are not a translation.
_NO_MATCH = frozenset({"unmatched", "disjoint"})


def _scope(cm: dict[str, Any], side: str) -> str | None:
    """The source or target value set of a map (``sourceUri``/``sourceCanonical``)."""
    value = cm.get(f"{side}Uri") or cm.get(f"{side}Canonical")
    return str(value).split("|", 1)[0] if value else None


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and canonical_system(a) == canonical_system(b)


def _match(
    equivalence: str,
    system: str | None,
    code: str | None,
    display: str | None,
    version: str | None,
    map_url: str,
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"name": "equivalence", "valueCode": equivalence}]
    if code is not None:
        concept: dict[str, Any] = {}
        if system:
            concept["system"] = system
        if version:
            concept["version"] = version
        concept["code"] = code
        if display:
            concept["display"] = display
        parts.append({"name": "concept", "valueCoding": concept})
    parts.append({"name": "source", "valueUri": map_url})
    return {"name": "match", "part": parts}


def _forward(cm: dict[str, Any], c: Coding, target_system: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    url = str(cm.get("url", ""))
    for group in cm.get("group") or ():
        if not _same(group.get("source"), c.system):
            continue
        if target_system is not None and not _same(group.get("target"), target_system):
            continue
        target = group.get("target")
        found = False
        for element in group.get("element") or ():
            if element.get("code") != c.code:
                continue
            found = True
            for t in element.get("target") or ():
                out.append(
                    _match(
                        str(t.get("equivalence", "equivalent")),
                        target,
                        t.get("code"),
                        t.get("display"),
                        group.get("targetVersion"),
                        url,
                    )
                )
        unmapped = group.get("unmapped")
        if not found and isinstance(unmapped, dict):
            mode = unmapped.get("mode")
            if mode == "provided":
                out.append(_match("equal", target, c.code, None, None, url))
            elif mode == "fixed" and unmapped.get("code"):
                out.append(
                    _match("inexact", target, unmapped["code"], unmapped.get("display"), None, url)
                )
    return out


def _reverse(cm: dict[str, Any], c: Coding, target_system: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    url = str(cm.get("url", ""))
    for group in cm.get("group") or ():
        if not _same(group.get("target"), c.system):
            continue
        if target_system is not None and not _same(group.get("source"), target_system):
            continue
        for element in group.get("element") or ():
            for t in element.get("target") or ():
                if t.get("code") != c.code:
                    continue
                equivalence = str(t.get("equivalence", "equivalent"))
                out.append(
                    _match(
                        _REVERSED.get(equivalence, equivalence),
                        group.get("source"),
                        element.get("code"),
                        element.get("display"),
                        group.get("sourceVersion"),
                        url,
                    )
                )
    return out


def translate(
    source: TerminologySource,
    *,
    url: str | None = None,
    concept_map: dict[str, Any] | None = None,
    concept_map_version: str | None = None,
    code: str | None = None,
    system: str | None = None,
    version: str | None = None,
    coding: dict[str, Any] | None = None,
    codeable_concept: dict[str, Any] | None = None,
    source_value_set: str | None = None,
    target_value_set: str | None = None,
    target_system: str | None = None,
    reverse: bool = False,
) -> dict[str, Any]:
    """The translations of a code by the concept maps named (``url``, ``conceptMap``) or
    chosen by their source and target value sets, as ``Parameters`` (result, message, match:
    equivalence, concept, source) (https://hl7.org/fhir/R4/conceptmap-operation-translate.html)."""
    op = "translate"
    given = codings(
        op,
        code=code,
        system=system,
        version=version,
        coding=coding,
        codeable_concept=codeable_concept,
    )
    if concept_map is not None:
        if concept_map.get("resourceType") != "ConceptMap":
            raise bad_input(op, "conceptMap must be a ConceptMap resource")
        maps = [concept_map]
    elif url:
        found = source.concept_map(url, concept_map_version)
        if found is None:
            raise unknown_concept_map(url)
        maps = [found]
    else:
        maps = source.concept_maps()
        # with reverse, the map is read from its target value set back to its source one
        from_side, to_side = ("target", "source") if reverse else ("source", "target")
        if source_value_set:
            wanted = source_value_set.split("|", 1)[0]
            maps = [cm for cm in maps if _scope(cm, from_side) == wanted]
        if target_value_set:
            wanted = target_value_set.split("|", 1)[0]
            maps = [cm for cm in maps if _scope(cm, to_side) == wanted]
    matches: list[dict[str, Any]] = []
    for c in given:
        if c.system is None or c.code is None:
            continue
        for cm in maps:
            matches.extend(
                _reverse(cm, c, target_system) if reverse else _forward(cm, c, target_system)
            )
    result = any(
        p.get("valueCode") not in _NO_MATCH
        for m in matches
        for p in m["part"]
        if p["name"] == "equivalence"
    )
    out: list[dict[str, Any]] = [{"name": "result", "valueBoolean": result}]
    if not result:
        which = ", ".join(c.label() for c in given)
        where = (
            ", ".join(str(cm.get("url", "(inline)")) for cm in maps)
            if maps
            else "no concept map held for these value sets"
        )
        out.append(
            {
                "name": "message",
                "valueString": f"No {'reverse ' if reverse else ''}translation of {which} "
                f"in {where}",
            }
        )
    out.extend(matches)
    return {"resourceType": "Parameters", "parameter": out}


__all__ = ["translate"]
