"""Documents as the pages show them: ITI-67 searches, ITI-68 content, the visibility labels,
read through the API with the user's token.

https://profiles.ihe.net/ITI/MHD/ITI-67.html, https://profiles.ihe.net/ITI/MHD/ITI-68.html
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from maison.portal.fhir_client import ApiError
from maison.portal.signin import human_name
from maison.portal.web import Ctx, FormError
from maison.services.dmp.lifecycle import VISIBILITY_SYSTEM

MASQUE_PS: Final = "MASQUE_PS"
INVISIBLE_REPRESENTANTS: Final = "INVISIBLE_REPRESENTANTS_LEGAUX"
INVISIBLE_PATIENT: Final = "INVISIBLE_PATIENT"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

#: What each visibility label means, for the person who reads the page.
LABELS: Final = {
    MASQUE_PS: "Masqué aux professionnels",
    INVISIBLE_REPRESENTANTS: "Masqué aux représentants légaux",
    INVISIBLE_PATIENT: "Pas encore visible par le patient",
}


@dataclass(frozen=True)
class DocumentRow:
    """One line of a document list."""

    id: str
    title: str
    type: str
    category: str
    category_code: str
    date: str
    service_date: str
    author: str
    status: str
    labels: tuple[str, ...]
    content_type: str
    size: int | None

    @property
    def masked(self) -> bool:
        """Hidden from professionals."""
        return MASQUE_PS in self.labels


def valid_id(value: str) -> str:
    """A FHIR id from a URL, refused if it cannot be one: https://hl7.org/fhir/R4/datatypes.html#id."""
    if not _ID.fullmatch(value):
        raise FormError("Identifiant de document invalide.", 404)
    return value


def _display(concept: Any) -> tuple[str, str]:
    if not isinstance(concept, dict):
        return "", ""
    for coding in concept.get("coding") or []:
        return str(coding.get("display") or coding.get("code") or ""), str(coding.get("code", ""))
    return str(concept.get("text") or ""), ""


async def name_codes(ctx: Ctx, resources: list[dict[str, Any]]) -> None:
    """Give a display to the type and class codings that came without one, looked up in the
    platform's terminology (``CodeSystem/$lookup``: https://hl7.org/fhir/R4/codesystem-operation-lookup.html)."""
    cache = ctx.web.displays
    for resource in resources:
        for concept in [resource.get("type"), *(resource.get("category") or [])]:
            for coding in (concept or {}).get("coding") or []:
                if coding.get("display") or not coding.get("system") or not coding.get("code"):
                    continue
                key = (str(coding["system"]), str(coding["code"]))
                if key not in cache:
                    cache[key] = await lookup(ctx, *key)
                if cache[key]:
                    coding["display"] = cache[key]


async def lookup(ctx: Ctx, system: str, code: str) -> str:
    """The display of a code (``CodeSystem/$lookup``), empty if the terminology lacks it."""

    try:
        body = await ctx.json("/CodeSystem/$lookup", [("system", system), ("code", code)])
    except ApiError:
        return ""
    for p in body.get("parameter") or []:
        if p.get("name") == "display":
            return str(p.get("valueString") or "")
    return ""


def labels_of(resource: dict[str, Any]) -> tuple[str, ...]:
    """The TRE_A07 visibility codes a document carries."""
    return tuple(
        str(coding.get("code"))
        for label in resource.get("securityLabel") or []
        for coding in label.get("coding") or []
        if coding.get("system") == VISIBILITY_SYSTEM
    )


def author_names(resource: dict[str, Any], included: dict[str, dict[str, Any]]) -> str:
    """The authors of a document, by name when the search included them."""

    names: list[str] = []
    for author in resource.get("author") or []:
        ref = str(author.get("reference") or "")
        found = included.get(ref)
        if found is not None:
            names.append(human_name(found) or str(found.get("name") or ""))
        elif author.get("display"):
            names.append(str(author["display"]))
    return ", ".join(n for n in names if n)


def row_of(resource: dict[str, Any], included: dict[str, dict[str, Any]]) -> DocumentRow:
    """A DocumentReference as a line of the list: https://hl7.org/fhir/R4/documentreference.html."""
    type_display, _ = _display(resource.get("type"))
    categories = resource.get("category") or [{}]
    category, category_code = _display(categories[0])
    attachment = ((resource.get("content") or [{}])[0]).get("attachment") or {}
    period = (resource.get("context") or {}).get("period") or {}
    return DocumentRow(
        id=str(resource.get("id")),
        title=str(attachment.get("title") or resource.get("description") or type_display),
        type=type_display,
        category=category or "Autre",
        category_code=category_code,
        date=str(resource.get("date") or ""),
        service_date=str(period.get("start") or resource.get("date") or ""),
        author=author_names(resource, included),
        status=str(resource.get("status") or ""),
        labels=labels_of(resource),
        content_type=str(attachment.get("contentType") or ""),
        size=attachment.get("size") if isinstance(attachment.get("size"), int) else None,
    )


def filters_of(ctx: Ctx) -> dict[str, str]:
    """The list's filters from the query string, checked (a bad date is an error, not a 500)."""
    q = ctx.request.query_params
    out: dict[str, str] = {}
    category = q.get("categorie", "").strip()
    if category:
        if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", category):
            raise FormError("Catégorie inconnue.")
        out["categorie"] = category
    for key in ("du", "au"):
        value = q.get(key, "").strip()
        if value:
            if not _DATE.fullmatch(value):
                raise FormError("Saisissez les dates au format AAAA-MM-JJ.")
            out[key] = value
    if "du" in out and "au" in out and out["du"] > out["au"]:
        raise FormError("La date de début est après la date de fin.")
    return out


#: Documents per page of a list.
PAGE_SIZE = 50


def page_of(ctx: Ctx) -> int:
    """The list's page number from the query string (1 when absent or not a number)."""
    raw = ctx.request.query_params.get("page", "1")
    return max(1, min(int(raw), 10_000)) if raw.isdigit() else 1


async def search(
    ctx: Ctx, patient: str, filters: dict[str, str], page: int = 1, count: int = PAGE_SIZE
) -> tuple[list[DocumentRow], int]:
    """One page of the patient's current documents the API lets this user see, latest service
    date first as the API sorts them (ITI-67: https://profiles.ihe.net/ITI/MHD/ITI-67.html)."""
    params: list[tuple[str, str]] = [
        ("patient", f"Patient/{patient}"),
        ("status", "current"),
        ("_include", "DocumentReference:author"),
        ("_count", str(count)),
        ("_total", "accurate"),
    ]
    if page > 1:
        params.append(("_offset", str((page - 1) * count)))
    if filters.get("categorie"):
        params.append(("category", filters["categorie"]))
    if filters.get("du"):
        params.append(("date", f"ge{filters['du']}"))
    if filters.get("au"):
        params.append(("date", f"le{filters['au']}T23:59:59Z"))
    bundle = await ctx.json("/DocumentReference", params)
    included: dict[str, dict[str, Any]] = {}
    documents: list[dict[str, Any]] = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "DocumentReference":
            documents.append(resource)
        elif resource.get("resourceType"):
            included[f"{resource['resourceType']}/{resource.get('id')}"] = resource
    await name_codes(ctx, documents)
    rows = [row_of(d, included) for d in documents]
    total = bundle.get("total")
    return rows, int(total) if isinstance(total, int) else len(rows)


async def categories(ctx: Ctx, patient: str) -> list[tuple[str, str]]:
    """The classes of the patient's current documents this user sees, for the filter (one
    search of the ``category`` element only, kept in the session)."""
    assert ctx.session is not None
    key = f"categories:{patient}"
    cached = ctx.session.get(key)
    if isinstance(cached, list):
        return [(str(a), str(b)) for a, b in cached]
    bundle = await ctx.json(
        "/DocumentReference",
        [
            ("patient", f"Patient/{patient}"),
            ("status", "current"),
            ("_elements", "category"),
            ("_count", "1000"),
        ],
    )
    found = [
        e["resource"]
        for e in bundle.get("entry") or []
        if (e.get("resource") or {}).get("resourceType") == "DocumentReference"
    ]
    await name_codes(ctx, found)
    classes = set()
    for resource in found:
        label, code = _display((resource.get("category") or [{}])[0])
        if code:
            classes.add((code, label or code))
    result = sorted(classes, key=lambda c: c[1].lower())
    ctx.session.set(key, [list(c) for c in result])
    return result


async def read(ctx: Ctx, doc_id: str) -> dict[str, Any]:
    """One DocumentReference (403/404 from the API become the error page)."""
    resource = await ctx.json(f"/DocumentReference/{valid_id(doc_id)}")
    await name_codes(ctx, [resource])
    return resource


def binary_path(resource: dict[str, Any]) -> str | None:
    """The API path of a document's content (ITI-68), when it is a Binary of this server."""
    attachment = ((resource.get("content") or [{}])[0]).get("attachment") or {}
    url = str(attachment.get("url") or "")
    match = re.search(r"Binary/([A-Za-z0-9\-.]{1,64})$", url)
    return f"/Binary/{match.group(1)}" if match else None


async def set_label(ctx: Ctx, resource: dict[str, Any], code: str, on: bool) -> None:
    """Add or take away one visibility label with a PDSm PATCH of ``securityLabel`` only
    (https://interop.esante.gouv.fr/ig/fhir/pdsm/): the API decides who may."""
    kept = [
        label
        for label in resource.get("securityLabel") or []
        if not any(
            c.get("system") == VISIBILITY_SYSTEM and c.get("code") in (code, "N")
            for c in label.get("coding") or []
        )
    ]
    if on:
        kept.append({"coding": [{"system": VISIBILITY_SYSTEM, "code": code}]})
    elif not any(
        c.get("system") == VISIBILITY_SYSTEM for label in kept for c in label.get("coding") or []
    ):
        kept.append({"coding": [{"system": VISIBILITY_SYSTEM, "code": "N"}]})
    patch = [{"op": "add" if "securityLabel" not in resource else "replace",
              "path": "/securityLabel", "value": kept}]  # fmt: skip
    version = (resource.get("meta") or {}).get("versionId")
    headers = {"Content-Type": "application/json-patch+json"}
    if version:
        headers["If-Match"] = f'W/"{version}"'
    await ctx.api(
        "PATCH",
        f"/DocumentReference/{valid_id(str(resource.get('id')))}",
        content=orjson.dumps(patch),
        headers=headers,
    )
