"""A DMP CDA R2 document as the portal shows it: the header in French words, the embedded
document of a level-1 (N1) document, and the sections of a structured body with their
narrative block turned into safe HTML.

The header and the N1 body come from :mod:`maison.services.dmp.cda` (hardened lxml parsing:
no DTD, no entities, no network, size limit). What this module adds is the ``structuredBody``:
``component/section`` (nested up to :data:`MAX_SECTION_DEPTH` levels, deeper ones flattened at
the last level) and the narrative block ``section/text`` converted with a whitelist:

* ``paragraph`` → ``p`` (``div`` when it holds a list, a table or a paragraph), ``list`` →
  ``ol`` (``listType="ordered"``) or ``ul``, ``item`` → ``li``, the table elements → the same
  HTML elements, ``content`` → ``span`` (``styleCode`` Bold → ``strong``, Italics/Emphasis →
  ``em``, Underline → ``u``; ``revised="delete"`` is dropped), ``br``, ``sub``, ``sup``;
* ``linkHtml`` → ``a`` only for an absolute http(s) URL (with ``rel="noopener noreferrer"``),
  its text otherwise; ``renderMultiMedia`` → its caption or a placeholder; ``footnote`` → its
  text; ``footnoteRef`` → dropped; anything else (or outside the CDA namespace) → its text.

Every text is escaped with markupsafe and no attribute is copied except ``colspan`` /
``rowspan`` (digits) and the checked ``href``, so a ``script`` element or an ``onclick``
attribute in the document never reaches the page.

https://hl7.org/cda/stds/core/2.0.0/ (narrative block) and
https://interop.esante.gouv.fr/ig/documents/ (CI-SIS volet structuration minimale)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from lxml import etree
from markupsafe import Markup, escape

from maison.fhir.errors import Category
from maison.services.dmp.cda import (
    CDA_NS,
    NS,
    Author,
    CdaError,
    CdaHeader,
    embedded_document,
    format_ins,
    parse_header,
    safe_parser,
)

#: Deepest section level kept as such (1 = the body's sections); deeper ones are flattened.
MAX_SECTION_DEPTH: Final = 6
#: Deepest narrative element rendered as HTML; below it only the text is kept.
MAX_NARRATIVE_DEPTH: Final = 40

CONFIDENTIALITY_LABELS: Final = {
    "N": "Normal",
    "R": "Restreint",
    "V": "Très restreint",
    "L": "Faible",
    "M": "Modéré",
    "U": "Non restreint",
}
SEX_LABELS: Final = {"M": "Masculin", "F": "Féminin", "U": "Inconnu"}
MONTHS: Final = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
MULTIMEDIA_PLACEHOLDER: Final = "[contenu multimédia non affiché]"


# ---------------------------------------------------------------------------------------------
# values


@dataclass(frozen=True, slots=True)
class CdaViewError:
    """Why a document cannot be shown: a short French message, the parser's reason, a category."""

    message: str
    detail: str = ""
    category: Category = Category.UNPROCESSABLE


@dataclass(frozen=True, slots=True)
class PatientView:
    """The patient of the document (``recordTarget``), as shown."""

    name: str
    birth_name: str | None
    birth_date: str | None  # FHIR date
    birth_date_label: str | None  # "28 mars 1979"
    ins: str  # the matricule INS, 15 characters
    ins_label: str  # grouped as on a carte Vitale
    sex: str | None  # M / F / U
    sex_label: str | None


@dataclass(frozen=True, slots=True)
class AuthorView:
    """An author: a person's (or software's) name, profession or role, organization."""

    name: str
    role: str | None
    organization: str | None


@dataclass(frozen=True, slots=True)
class Confidentiality:
    """The ``confidentialityCode`` and its French label."""

    code: str
    label: str


class Embedded(NamedTuple):
    """The document carried by an N1 ``nonXMLBody`` (a PDF, mostly): ``(media_type, content)``,
    also readable by index."""

    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Section:
    """A section of a structured body: title, LOINC code, narrative as safe HTML, subsections."""

    title: str
    code: str | None
    html: Markup
    children: list[Section] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CdaView:
    """What the portal shows of a CDA document."""

    title: str
    type_display: str
    effective_time: str  # FHIR dateTime
    effective_time_label: str  # "1er avril 2021 à 13:47"
    patient: PatientView
    authors: list[AuthorView]
    custodian: str | None
    confidentiality: Confidentiality
    body_kind: str | None  # "nonXMLBody" | "structuredBody" | None
    embedded: Embedded | None
    sections: list[Section]
    notice: str | None = None  # why the N1 body cannot be shown, in French


# ---------------------------------------------------------------------------------------------
# errors in French


def _error(error: CdaError) -> CdaViewError:
    reason = error.reason
    if error.category == Category.TOO_LARGE:
        message = "Le document est trop volumineux pour être affiché."
    elif "DOCTYPE" in reason:
        message = (
            "Le document contient une déclaration DOCTYPE (DTD ou entités), "
            "refusée pour des raisons de sécurité."
        )
    elif "not well-formed" in reason:
        message = "Le fichier n'est pas un document XML valide."
    elif "xsl:stylesheet" in reason:
        message = (
            "Le document est enveloppé dans une feuille de style (document autoprésentable) "
            "et ne peut pas être affiché."
        )
    elif reason.startswith("not a CDA"):
        message = "Le fichier n'est pas un document CDA R2."
    elif "bytes" in reason:
        message = "Le document n'a pas pu être lu."
    else:
        message = "L'en-tête du document CDA est incomplet ou invalide."
    return CdaViewError(message, reason, error.category)


# ---------------------------------------------------------------------------------------------
# header in French words


def french_date(value: str | None) -> str | None:
    """A FHIR date/dateTime in French words (``1er avril 2021 à 13:47``), wall-clock as written.

    https://hl7.org/fhir/R4/datatypes.html#dateTime
    """
    if not value:
        return None
    match = re.match(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}))?)?)?", value)
    if not match:
        return value
    year, month, day, hour, minute = match.groups()
    if month is None or not 1 <= int(month) <= 12:
        return year
    out = f"{MONTHS[int(month) - 1]} {year}"
    if day is not None:
        out = f"{'1er' if int(day) == 1 else int(day)} {out}"
    if hour is not None:
        out += f" à {hour}:{minute}"
    return out


def _join(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


def _patient(header: CdaHeader) -> PatientView:
    p = header.patient
    first = p.first_given or (p.birth_given_names or "").split(" ")[0] or None
    given = p.used_given or first
    family = p.used_family or p.birth_family
    ins = p.main_ins.extension or ""
    return PatientView(
        name=_join(given, family) or "Patient",
        birth_name=p.birth_family,
        birth_date=p.birth_date,
        birth_date_label=french_date(p.birth_date),
        ins=ins,
        ins_label=format_ins(ins),
        sex=p.sex,
        sex_label=SEX_LABELS.get(p.sex) if p.sex else None,
    )


def _author(author: Author) -> AuthorView:
    role = (author.code.display or author.code.code) if author.code else None
    org = author.organization.name if author.organization else None
    return AuthorView(
        name=_join(author.given, author.family) or author.device or "Auteur non nommé",
        role=role,
        organization=org,
    )


# ---------------------------------------------------------------------------------------------
# narrative block → safe HTML

_SPAN = re.compile(r"^\d{1,4}$")
_HTTP_URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f/?#]+[^\s\x00-\x1f\x7f]*$", re.IGNORECASE)
_BLOCKS: Final = frozenset({"list", "table", "paragraph"})
_TABLE_PARTS: Final = frozenset({"thead", "tbody", "tfoot", "tr", "colgroup"})


def _local(node: Any) -> str | None:
    """The local name of a CDA-namespace element, None for anything else."""
    if not isinstance(node.tag, str):
        return None
    qname = etree.QName(node)
    return qname.localname if qname.namespace == CDA_NS else None


def _plain(node: Any) -> Markup:
    return escape("".join(node.itertext()))


def _styled(node: Any, inner: Markup) -> Markup:
    tokens = (node.get("styleCode") or "").lower().split()
    if any("underline" in t for t in tokens):
        inner = Markup("<u>%s</u>") % inner
    if any("italic" in t or t == "emphasis" for t in tokens):
        inner = Markup("<em>%s</em>") % inner
    if any("bold" in t for t in tokens):
        inner = Markup("<strong>%s</strong>") % inner
    return inner


def _mixed(node: Any, depth: int) -> Markup:
    """The node's text and children, tails included."""
    parts = [escape(node.text or "")]
    for child in node:
        parts.append(_render(child, depth + 1))
        parts.append(escape(child.tail or ""))
    return Markup("").join(parts)


def _elements(node: Any, depth: int) -> Markup:
    """Only the children elements (structural containers have no text of their own)."""
    return Markup("").join(_render(child, depth + 1) for child in node)


def _wrap(tag: str, inner: Markup) -> Markup:
    return Markup(f"<{tag}>") + inner + Markup(f"</{tag}>")


def _cell(tag: str, node: Any, depth: int) -> Markup:
    attrs = "".join(
        f' {name}="{value}"'
        for name in ("colspan", "rowspan")
        if (value := (node.get(name) or "").strip()) and _SPAN.match(value)
    )
    return Markup(f"<{tag}{attrs}>") + _styled(node, _mixed(node, depth)) + Markup(f"</{tag}>")


def _safe_href(href: str | None) -> str | None:
    value = (href or "").strip()
    return value if _HTTP_URL.match(value) else None


def _list(node: Any, depth: int) -> Markup:
    tag = "ol" if (node.get("listType") or "").lower() == "ordered" else "ul"
    before: list[Markup] = []
    items: list[Markup] = []
    for child in node:
        name = _local(child)
        if name == "caption":
            before.append(
                Markup('<p class="cda-caption"><strong>%s</strong></p>') % _mixed(child, depth + 1)
            )
        elif name == "item":
            items.append(_wrap("li", _styled(child, _mixed(child, depth + 1))))
        elif isinstance(child.tag, str):
            items.append(_wrap("li", _render(child, depth + 1)))
    return Markup("").join(before) + _wrap(tag, Markup("").join(items))


def _render(node: Any, depth: int) -> Markup:
    """One narrative element as safe HTML (its tail is the caller's)."""
    name = _local(node)
    if name is None:
        return _plain(node) if isinstance(node.tag, str) else Markup("")
    if depth > MAX_NARRATIVE_DEPTH:
        return _plain(node)
    if name == "paragraph":
        block = any(_local(c) in _BLOCKS for c in node)
        return _wrap("div" if block else "p", _styled(node, _mixed(node, depth)))
    if name == "list":
        return _list(node, depth)
    if name == "item":
        return _wrap("div", _styled(node, _mixed(node, depth)))
    if name == "table":
        return _wrap("table", _elements(node, depth))
    if name in _TABLE_PARTS:
        return _wrap(name, _elements(node, depth))
    if name in ("th", "td"):
        return _cell(name, node, depth)
    if name == "col":
        return Markup("<col>")
    if name == "caption":
        parent = node.getparent()
        in_table = parent is not None and _local(parent) == "table"
        return _wrap("caption" if in_table else "strong", _mixed(node, depth))
    if name == "content":
        if (node.get("revised") or "").lower() == "delete":
            return Markup("")
        inner = _mixed(node, depth)
        styled = _styled(node, inner)
        return _wrap("span", inner) if styled is inner else styled
    if name == "br":
        return Markup("<br>")
    if name in ("sub", "sup"):
        return _wrap(name, _mixed(node, depth))
    if name == "linkHtml":
        href = _safe_href(node.get("href"))
        inner = _mixed(node, depth)
        if href is None:
            return inner
        return Markup('<a href="%s" rel="noopener noreferrer">%s</a>') % (href, inner)
    if name == "renderMultiMedia":
        caption = next((c for c in node if _local(c) == "caption"), None)
        text = " ".join("".join(caption.itertext()).split()) if caption is not None else ""
        return escape(text or MULTIMEDIA_PLACEHOLDER)
    if name == "footnote":
        return _wrap("small", _mixed(node, depth))
    if name == "footnoteRef":
        return Markup("")
    return _plain(node)


def narrative_html(text: Any) -> Markup:
    """The safe HTML of a CDA narrative block (an lxml ``section/text`` element).

    https://hl7.org/cda/stds/core/2.0.0/ (4.3.5 Section Narrative Block)
    """
    return Markup(_mixed(text, 0).strip())


# ---------------------------------------------------------------------------------------------
# sections


def _first(node: Any, path: str) -> Any:
    found = node.xpath(path, namespaces=NS)
    return found[0] if found else None


def _subsections(node: Any) -> list[Any]:
    return list(node.xpath("h:component/h:section", namespaces=NS))


def _descendants(node: Any) -> Iterator[Any]:
    """Subsections at any depth, in document order."""
    for sub in _subsections(node):
        yield sub
        yield from _descendants(sub)


def _leaf(node: Any) -> Section:
    """A section without its subsections."""
    title_node = _first(node, "h:title")
    title = " ".join("".join(title_node.itertext()).split()) if title_node is not None else ""
    code_node = _first(node, "h:code")
    code: str | None = None
    display: str | None = None
    if code_node is not None:
        code = (code_node.get("code") or "").strip() or None
        display = (code_node.get("displayName") or "").strip() or None
    text = _first(node, "h:text")
    html = narrative_html(text) if text is not None else Markup("")
    return Section(title or display or "Section", code, html)


def _section(node: Any, level: int) -> Section:
    """A section and its subsections; at the last level kept, deeper ones are flattened."""
    leaf = _leaf(node)
    if level < MAX_SECTION_DEPTH:
        children = [_section(sub, level + 1) for sub in _subsections(node)]
    else:
        children = [_leaf(sub) for sub in _descendants(node)]
    return Section(leaf.title, leaf.code, leaf.html, children)


def _structured_sections(data: bytes) -> list[Section] | CdaViewError:
    """The sections of ``structuredBody`` (the document was already accepted by the header
    parser, which refuses DOCTYPEs and oversized input)."""
    try:
        root = etree.fromstring(bytes(data), safe_parser())
    except etree.XMLSyntaxError as exc:
        return CdaViewError("Le fichier n'est pas un document XML valide.", str(exc))
    body = _first(root, "h:component/h:structuredBody")
    if body is None:
        return []
    return [_section(s, 1) for s in _subsections(body)]


# ---------------------------------------------------------------------------------------------
# the view


def cda_view(data: bytes) -> CdaView | CdaViewError:
    """The view of a CDA R2 document (header, N1 embedded document or N3 sections), or why not.

    https://hl7.org/cda/stds/core/2.0.0/ and
    https://interop.esante.gouv.fr/ig/documents/ (CI-SIS structuration minimale)
    """
    if not isinstance(data, bytes | bytearray):
        return CdaViewError("Le document n'a pas pu être lu.", "not bytes", Category.INVALID)
    if not bytes(data).strip():
        return CdaViewError("Le document est vide.", "no content", Category.INVALID)
    header = parse_header(bytes(data))
    if isinstance(header, CdaError):
        return _error(header)
    kind = header.body.kind if header.body else None
    embedded: Embedded | None = None
    sections: list[Section] = []
    notice: str | None = None
    if kind == "nonXMLBody":
        found = embedded_document(bytes(data))
        if isinstance(found, CdaError):
            notice = "Le document joint ne peut pas être affiché (contenu absent ou illisible)."
        else:
            embedded = Embedded(*found)
    elif kind == "structuredBody":
        parsed = _structured_sections(bytes(data))
        if isinstance(parsed, CdaViewError):
            return parsed
        sections = parsed
    else:
        notice = "Le document n'a pas de contenu affichable."
    type_display = header.code.display or header.code.code
    confidentiality = header.confidentiality
    return CdaView(
        title=header.title or type_display,
        type_display=type_display,
        effective_time=header.effective_time,
        effective_time_label=french_date(header.effective_time) or header.effective_time,
        patient=_patient(header),
        authors=[_author(a) for a in header.authors],
        custodian=header.custodian.name if header.custodian else None,
        confidentiality=Confidentiality(
            confidentiality.code,
            CONFIDENTIALITY_LABELS.get(confidentiality.code)
            or confidentiality.display
            or confidentiality.code,
        ),
        body_kind=kind,
        embedded=embedded,
        sections=sections,
        notice=notice,
    )


def pdf_of(data: bytes) -> bytes | None:
    """The PDF embedded in an N1 document's ``nonXMLBody``, None when there is none.

    https://profiles.ihe.net/ITI/TF/Volume3/ch-5.2.html (XDS-SD)
    """
    if not isinstance(data, bytes | bytearray) or not data:
        return None
    found = embedded_document(bytes(data))
    if isinstance(found, CdaError) or found[0] != "application/pdf":
        return None
    return found[1]


__all__ = [
    "CONFIDENTIALITY_LABELS",
    "MAX_SECTION_DEPTH",
    "AuthorView",
    "CdaView",
    "CdaViewError",
    "Confidentiality",
    "Embedded",
    "PatientView",
    "Section",
    "cda_view",
    "french_date",
    "narrative_html",
    "pdf_of",
]
