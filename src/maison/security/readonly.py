"""Resources kept by an external source (the Annuaire Santé import) are read-only through the
API: only a client holding that source's administrator scope may change or delete them.

https://hl7.org/fhir/R4/resource.html#tag (the import tag marks them)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maison.fhir.errors import Category, FhirError
from maison.security.principal import Principal

#: The CodeSystem of the tags that name the source a resource is imported from.
IMPORT_TAG_SYSTEM = "https://maison.example.org/fhir/CodeSystem/import"

#: Import tag code -> (the administrator scope that may change those resources, what they are).
READ_ONLY_SOURCES: dict[str, tuple[str, str]] = {
    "annuaire": ("annuaire:admin", "imported from the Annuaire Santé (the national directory)"),
    "finess": ("annuaire:admin", "imported from the FINESS extraction (the national directory)"),
}


def source_of(resource: Mapping[str, Any] | None) -> str | None:
    """The read-only source a resource is tagged with, if any."""
    if not isinstance(resource, Mapping):
        return None
    meta = resource.get("meta")
    tags = meta.get("tag") if isinstance(meta, Mapping) else None
    for tag in tags if isinstance(tags, list) else ():
        if (
            isinstance(tag, Mapping)
            and tag.get("system") == IMPORT_TAG_SYSTEM
            and tag.get("code") in READ_ONLY_SOURCES
        ):
            return str(tag["code"])
    return None


def check_change(
    principal: Principal,
    interaction: str,
    res_type: str,
    new: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
) -> None:
    """Refuse (403) a change to, or a resource claiming, a read-only source without its
    administrator scope (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""
    for resource in (current, new):
        source = source_of(resource)
        if source is None:
            continue
        scope, what = READ_ONLY_SOURCES[source]
        if scope not in principal.other_scopes:
            raise FhirError(
                Category.FORBIDDEN,
                f"{interaction} on {res_type} refused: this resource is {what} and read-only; "
                f"re-import the extraction, or use a token with the scope {scope}",
            )
