"""``ValueSet/$expand``: the codes of a value set as a ValueSet with an ``expansion``, text
filtered (accent-insensitive word prefixes), paged, with designations on request.

https://hl7.org/fhir/R4/valueset-operation-expand.html
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from maison.terminology.compose import (
    MAX_COMPUTED,
    Composer,
    Entry,
    Expansion,
    ExpansionCache,
    value_set_label,
)
from maison.terminology.errors import bad_input, missing, too_costly
from maison.terminology.source import TerminologySource, filter_words

#: The most codes one ``$expand`` returns without ``count`` (beyond: too-costly).
MAX_EXPANSION: Final = 10_000
#: ValueSet elements not repeated in an expansion (the narrative would describe the definition).
_LEFT_OUT: Final = frozenset({"text", "compose", "expansion", "meta", "contained"})


def _language_display(entry: Entry, language: str | None) -> str | None:
    if language:
        lang = language.lower()
        for d in entry.designations:
            if d.language and (
                d.language.lower() == lang or d.language.lower().startswith(lang + "-")
            ):
                return d.value
    return entry.display


def _contains(entry: Entry, include_designations: bool, language: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"system": entry.system}
    if entry.version:
        out["version"] = entry.version
    if entry.abstract:
        out["abstract"] = True
    if entry.inactive:
        out["inactive"] = True
    out["code"] = entry.code
    display = _language_display(entry, language)
    if display is not None:
        out["display"] = display
    if include_designations and entry.designations:
        out["designation"] = [d.as_fhir() for d in entry.designations]
    return out


def expand(
    source: TerminologySource,
    *,
    url: str | None = None,
    value_set: dict[str, Any] | None = None,
    value_set_version: str | None = None,
    filter: str | None = None,
    offset: int | None = None,
    count: int | None = None,
    include_designations: bool = False,
    active_only: bool = False,
    display_language: str | None = None,
    cache: ExpansionCache | None = None,
    now: datetime | None = None,
    max_expansion: int = MAX_EXPANSION,
    max_computed: int = MAX_COMPUTED,
) -> dict[str, Any]:
    """The value set named by ``url`` (or given as ``value_set``) with its expansion
    (https://hl7.org/fhir/R4/valueset-operation-expand.html)."""
    if offset is not None and offset < 0:
        raise bad_input("expand", "offset cannot be negative")
    if count is not None and count < 0:
        raise bad_input("expand", "count cannot be negative")
    composer = Composer(source, cache, max_computed)
    if value_set is not None:
        if value_set.get("resourceType") != "ValueSet":
            raise bad_input("expand", "valueSet must be a ValueSet resource")
        vs = value_set
        key = composer.key(vs, None, None)
    elif url:
        bare, _, pinned = url.partition("|")
        version = value_set_version or pinned or None
        vs = composer.resolve(bare, version)
        key = composer.key(vs, bare, version)
    else:
        raise missing("expand", "give the value set to expand: url (or valueSet, or ValueSet/[id])")
    words = filter_words(filter)
    expansion, entries = composer.evaluate(vs, key, words)
    if active_only:
        entries = [e for e in entries if not e.inactive]
    total = len(entries)
    start = offset or 0
    if count is None:
        if total - start > max_expansion:
            raise too_costly(
                f"The expansion of {value_set_label(vs)} has {total:,} codes"
                + (f" matching '{filter}'" if words else "")
                + f", more than the {max_expansion:,} returned at once: give a text filter or "
                "page it with count and offset"
            )
        page = entries[start:]
    else:
        page = entries[start : start + min(count, max_expansion)]
    return _resource(
        vs,
        page,
        total,
        now or datetime.now(UTC),
        _parameters(
            expansion,
            filter=filter if words else None,
            offset=offset,
            count=count,
            include_designations=include_designations,
            active_only=active_only,
            display_language=display_language,
        ),
        paged=offset is not None or count is not None,
        offset=start,
        include_designations=include_designations,
        display_language=display_language,
    )


def _parameters(
    expansion: Expansion,
    *,
    filter: str | None,
    offset: int | None,
    count: int | None,
    include_designations: bool,
    active_only: bool,
    display_language: str | None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if filter:
        out.append({"name": "filter", "valueString": filter})
    if offset is not None:
        out.append({"name": "offset", "valueInteger": offset})
    if count is not None:
        out.append({"name": "count", "valueInteger": count})
    if include_designations:
        out.append({"name": "includeDesignations", "valueBoolean": True})
    if active_only:
        out.append({"name": "activeOnly", "valueBoolean": True})
    if display_language:
        out.append({"name": "displayLanguage", "valueCode": display_language})
    for system, version in sorted(expansion.used.items()):
        if version:
            out.append({"name": "version", "valueUri": f"{system}|{version}"})
    for name, value in expansion.notes:
        out.append({"name": name, "valueUri": value})
    return out


def _resource(
    vs: dict[str, Any],
    page: list[Entry],
    total: int,
    now: datetime,
    parameters: list[dict[str, Any]],
    *,
    paged: bool,
    offset: int,
    include_designations: bool,
    display_language: str | None,
) -> dict[str, Any]:
    out = {k: v for k, v in vs.items() if k not in _LEFT_OUT}
    out["resourceType"] = "ValueSet"
    body: dict[str, Any] = {
        "timestamp": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "total": total,
    }
    if paged:
        body["offset"] = offset
    if parameters:
        body["parameter"] = parameters
    if page:
        body["contains"] = [_contains(e, include_designations, display_language) for e in page]
    out["expansion"] = body
    return out


__all__ = ["MAX_EXPANSION", "expand"]
