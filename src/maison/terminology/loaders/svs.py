"""IHE Sharing Value Sets (SVS) XML: ``RetrieveValueSetResponse/ValueSet`` (ITI-48) and
``RetrieveMultipleValueSetsResponse/DescribedValueSet`` (ITI-60), each with
``ConceptList/Concept code codeSystem displayName``, as the NOS publishes its value sets
(``NOS-Fichiers_Publics-Versions_xml_svs.zip``, an extended schema adding ``dateValid``,
``dateFin``, ``dateMaj``, ``typeFichier``, ``urlFichier`` attributes) and the CI-SIS its
``jeuxDeValeurs``.

Each value set becomes an extensional FHIR ValueSet (``compose.include`` per code system, the
concepts with their SVS display); the code systems themselves are not created from it (a value
set lists part of a system: a fragment made from it would answer $lookup and $validate-code
for the whole system wrongly). The URL is the NOS canonical URL when the file gives its
``urlFichier``, else ``urn:oid:<id>``; the version is ``version``, else ``dateMaj``, else
``revisionDate``. A concept whose extended ``dateFin`` is set is left out (no longer in the
set); a value set whose ``dateFin`` is set is ``retired``. OIDs name code systems through
:func:`~maison.terminology.loaders.nos.system_for_oid`.

https://profiles.ihe.net/ITI/TF/Volume2/ITI-48.html, https://profiles.ihe.net/ITI/TF/Volume2/ITI-60.html
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lxml import etree

from maison.terminology.loaders import Item, LoadError, OidResolver, ResourceLoad
from maison.terminology.loaders.archive import Entry
from maison.terminology.loaders.nos import nos_datetime, system_for_oid

NS = "urn:ihe:iti:svs:2008"
_VALUE_SETS = (f"{{{NS}}}ValueSet", f"{{{NS}}}DescribedValueSet")
ROOTS = ("RetrieveValueSetResponse", "RetrieveMultipleValueSetsResponse")


def is_svs(start: bytes) -> bool:
    """Whether the first bytes of an XML file are an SVS response."""
    return NS.encode() in start and any(r.encode() in start for r in ROOTS)


def read(entry: Entry, resolve: OidResolver | None = None) -> Iterator[Item]:
    """The value sets of one SVS XML file, streamed (https://profiles.ihe.net/ITI/TF/Volume2/ITI-48.html)."""
    found = 0
    with entry.open() as stream:
        events = etree.iterparse(
            stream,
            events=("end",),
            tag=_VALUE_SETS,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        )
        try:
            for _, element in events:
                found += 1
                yield _value_set(element, entry, resolve)
                element.clear()
        except etree.XMLSyntaxError as exc:
            line = exc.position[0] if exc.position else None
            raise LoadError(f"not well-formed XML ({exc.msg})", entry.name, line) from None
    if not found:
        raise LoadError("an SVS file without ValueSet", entry.name)


def _value_set(element: Any, entry: Entry, resolve: OidResolver | None) -> ResourceLoad:
    line = element.sourceline
    vs_id = (element.get("id") or element.get("ID") or "").strip()
    if not vs_id:
        raise LoadError("a ValueSet without id", entry.name, line)
    display_name = (element.get("displayName") or "").strip()
    name = display_name[: -len(".tabs")] if display_name.endswith(".tabs") else display_name
    page = (element.get("urlFichier") or "").strip()
    name_from_page = page.rstrip("/").rsplit("/", 1)[-1] if page else ""
    url = (
        f"{page.rstrip('/')}/FHIR/{name_from_page.replace('_', '-')}"
        if page
        else f"urn:oid:{vs_id}"
    )
    version = (
        (element.get("version") or "").strip()
        or (element.get("dateMaj") or "").strip()
        or (element.get("revisionDate") or "").strip()
    )
    includes: dict[str, list[dict[str, Any]]] = {}
    for concept in element.iter(f"{{{NS}}}Concept"):
        code = (concept.get("code") or "").strip()
        oid = (concept.get("codeSystem") or "").strip()
        if not code or not oid:
            raise LoadError("a Concept without code or codeSystem", entry.name, concept.sourceline)
        if (concept.get("dateFin") or "").strip():
            continue
        item: dict[str, Any] = {"code": code}
        if (concept.get("displayName") or "").strip():
            item["display"] = concept.get("displayName").strip()
        includes.setdefault(system_for_oid(oid, resolve), []).append(item)
    body: dict[str, Any] = {
        "resourceType": "ValueSet",
        "id": (name_from_page or name or vs_id).replace("_", "-"),
        "url": url,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{vs_id}"}],
    }
    if version:
        body["version"] = version
    if name_from_page or name:
        body["name"] = name_from_page or name
    retired = bool((element.get("dateFin") or "").strip())
    body["status"] = "retired" if retired else "active"
    date = nos_datetime(element.get("dateMaj") or "") or (element.get("revisionDate") or None)
    if date:
        body["date"] = date
    if (element.get("description") or "").strip():
        body["description"] = element.get("description").strip()
    body["compose"] = {"include": [{"system": s, "concept": c} for s, c in includes.items()]}
    return ResourceLoad(body, "svs", entry.name)


__all__ = ["NS", "ROOTS", "is_svs", "read"]
