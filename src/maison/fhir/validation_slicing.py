"""Slice matching by discriminator (value, pattern, exists, type) and fixed/pattern comparison.

https://hl7.org/fhir/R4/profiling.html#discriminator
"""

from __future__ import annotations

from typing import Any

from maison.fhir.validation_model import MISSING, ElementRule, Slicing


def matches_pattern(value: Any, pattern: Any) -> bool:
    """True when ``value`` carries everything in ``pattern`` (ElementDefinition.pattern[x])."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(k in value and matches_pattern(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(matches_pattern(i, p) for i in items) for p in pattern)
    return bool(value == pattern)


def values_at(item: Any, path: tuple[str, ...]) -> list[Any]:
    """The values found at a dotted path below an item (lists flattened)."""
    current = [item]
    for seg in path:
        nxt: list[Any] = []
        for c in current:
            if isinstance(c, dict) and seg in c:
                v = c[seg]
                if isinstance(v, list):
                    nxt.extend(v)
                else:
                    nxt.append(v)
        current = nxt
    return current


def _dig(value: Any, path: list[str]) -> Any:
    for seg in path:
        if isinstance(value, list):
            value = value[0] if value else MISSING
        if not isinstance(value, dict) or seg not in value:
            return MISSING
        value = value[seg]
    return value


def _expected(slice_rule: ElementRule, path: tuple[str, ...]) -> Any:
    node: ElementRule | None = slice_rule
    remaining = list(path)
    while node is not None:
        own = node.fixed if node.fixed is not MISSING else node.pattern
        if own is not MISSING:
            return _dig(own, remaining)
        if not remaining:
            return MISSING
        seg = remaining.pop(0)
        child = node.children.get(seg)
        if child is None and seg == "url" and not remaining and "Extension" in node.type_profiles:
            return node.type_profiles["Extension"][0]
        node = child
    return MISSING


def _exists(slice_rule: ElementRule, path: tuple[str, ...]) -> Any:
    node: ElementRule | None = slice_rule
    for seg in path:
        node = node.children.get(seg) if node is not None else None
    if node is None:
        return MISSING
    if node.min >= 1:
        return True
    if node.max == 0:
        return False
    return MISSING


def prepare(slicing: Slicing, slices: list[ElementRule]) -> bool:
    """Compute each slice's discriminator values; False when the slicing cannot be evaluated."""
    if not slicing.supported:
        return False
    for s in slices:
        if len(s.disc_values) == len(slicing.discriminators):
            continue
        values: list[Any] = []
        for d in slicing.discriminators:
            if d.kind == "type":
                values.append(frozenset(s.types))
            elif d.kind == "exists":
                values.append(_exists(s, d.path))
            else:
                values.append(_expected(s, d.path))
        s.disc_values = tuple(values)  # MISSING: this slice does not constrain that path
    return True


def slice_of(item: Any, type_code: str, slicing: Slicing, slices: list[ElementRule]) -> int:
    """Index of the first slice the item matches, or -1."""
    for index, s in enumerate(slices):
        if all(v is MISSING for v in s.disc_values):
            continue  # a slice without discriminator values cannot be recognised
        for d, expected in zip(slicing.discriminators, s.disc_values, strict=True):
            if expected is MISSING:
                continue
            if d.kind == "type":
                ok = type_code in expected
            elif d.kind == "exists":
                ok = bool(values_at(item, d.path)) == expected
            else:
                ok = any(matches_pattern(v, expected) for v in values_at(item, d.path))
            if not ok:
                break
        else:
            return index
    return -1
