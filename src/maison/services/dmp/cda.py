"""CDA R2 documents for the DMP: the CI-SIS header read with a hardened lxml parser, the PDF of
an N1 document, the header checked against the DocumentReference that carries it, and the
patient's INS checked against the platform's identities.

Reading (:func:`parse_header`): the XML is parsed without DTD loading, entity resolution,
network access or huge-tree mode; a document that declares a DOCTYPE is refused (no entity
expansion, no billion laughs). The root must be ``{urn:hl7-org:v3}ClinicalDocument``; a
self-presenting ("autoprésentable") example whose root is an ``xsl:stylesheet`` wrapping the
CDA is refused as such. Required to read a header: ``id``, ``code``, ``effectiveTime``,
``confidentialityCode``, exactly one ``recordTarget`` whose ``patientRole/id`` carries an INS
(roots ``1.2.250.1.213.1.4.8`` NIR, ``.9`` NIA, ``.10`` test NIR, ``.11`` demo NIR — domain spec
§1.2), and at least one ``author`` (CI-SIS structuration minimale cardinalities). Times are
returned as FHIR ``dateTime`` strings: ``20230215143000+0100`` becomes
``2023-02-15T14:30:00+01:00``; a time without seconds gets ``:00``; a time without a zone keeps
no offset (FHIR wants one: such values are compared on their wall-clock text).

Comparing (:func:`check_against`), decisions:

* CDA ``effectiveTime`` is the document's creation time (XDS ``creationTime``), which PDSm
  carries in ``content.attachment.creation``; ``DocumentReference.date`` is, per PDSm, the
  creation date *of the DocumentReference resource*, so it is not compared.
* ``serviceEvent/effectiveTime`` low/high ↔ ``context.period`` start/end.
* Code systems: CDA OIDs are mapped to their FHIR URLs (:data:`SYSTEM_OF_OID`), then both sides
  go through :func:`maison.terminology.source.canonical_system`, so ``http://loinc.org``, the NOS
  TRE_A04 URL and ``urn:oid:2.16.840.1.113883.6.1`` are one system. A coding without a system
  is compared on its code.
* Confidentiality: the HL7 codes (N, R, V, and L, M, U) of ``securityLabel`` under
  ``v3-Confidentiality``, TRE_A08, ``urn:oid:2.16.840.1.113883.5.25`` or TRE_A07 (the PDSm
  example writes N there) must be exactly the CDA's code. The DMP visibility codes of TRE_A07
  (``MASQUE_PS``, ``INVISIBLE_PATIENT``, ``INVISIBLE_REPRESENTANTS_LEGAUX``) are not in the CDA
  header and are ignored.
* ``masterIdentifier`` ↔ CDA ``id``: accepted forms are ``urn:ietf:rfc:3986`` with
  ``urn:oid:<root>`` (MHD examples, root-only ids) or ``urn:uuid:<root>``, a value
  ``[urn:oid:]<root>^<extension>`` (the XDS uniqueId text), or system ``urn:oid:<root>`` with
  value ``<extension>``.
* Elements the PDSm/MHD comprehensive profile requires (``masterIdentifier``, ``type``,
  ``securityLabel``, ``subject``, ``author``, ``custodian``, ``context.period.start``) are
  reported when absent; optional ones (``attachment.creation``, ``period.end``,
  ``facilityType``, ``practiceSetting``, ``attachment.language``) are compared only when present.
  ``relatesTo`` (replaces) is required when the CDA replaces a document, and a ``replaces``
  without a CDA ``relatedDocument`` is reported too.
* Authors and custodian are compared on identifiers read from contained resources (``#id``),
  logical references (``identifier``), conditional references (``Type?identifier=s|v``) or the
  optional ``resolve`` callable for literal references. An author or custodian whose identifiers
  cannot be read is reported (the consistency cannot be confirmed), except a ``relatesTo``
  target, which usually points at the old DocumentReference by id.
* Patient: the CDA INS must be among the subject's INS identifiers (``patient`` argument, else
  the subject reference); with ``patient`` given, the strict traits (birth name, first birth
  first name, birth date, sex, birthplace INSEE code) are compared too.

https://interop.esante.gouv.fr/ig/documents/ (CI-SIS structuration minimale, CDA header) and
https://interop.esante.gouv.fr/ig/fhir/pdsm/ (PDSm DocumentReference)
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree
from stdnum.fr import nir as stdnum_nir

from maison.fhir import base64binary
from maison.fhir.errors import Category
from maison.terminology.source import LOINC, canonical_system

CDA_NS: Final = "urn:hl7-org:v3"
NS: Final = {"h": CDA_NS}
XSL_NS: Final = "http://www.w3.org/1999/XSL/Transform"

INS_NIR: Final = "1.2.250.1.213.1.4.8"
INS_NIA: Final = "1.2.250.1.213.1.4.9"
INS_NIR_TEST: Final = "1.2.250.1.213.1.4.10"
INS_NIR_DEMO: Final = "1.2.250.1.213.1.4.11"
#: INS roots, in the order a patient's INS is picked (domain spec §1.2).
INS_ROOTS: Final = (INS_NIR, INS_NIA, INS_NIR_TEST, INS_NIR_DEMO)
ID_NAT_PS: Final = "1.2.250.1.71.4.2.1"
ID_NAT_STRUCT: Final = "1.2.250.1.71.4.2.2"

NOS: Final = "https://mos.esante.gouv.fr/NOS/"
V3_CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
V3_GENDER: Final = "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender"
TRE_A07: Final = f"{NOS}TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument"
TRE_A07_EXAMPLE: Final = (
    f"{NOS}TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument"
)
TRE_A08: Final = f"{NOS}TRE_A08-HL7Confidentiality/FHIR/TRE-A08-HL7Confidentiality"
#: CDA codeSystem OIDs -> the FHIR URL of the same code system.
SYSTEM_OF_OID: Final[dict[str, str]] = {
    "2.16.840.1.113883.6.1": LOINC,
    "2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "2.16.840.1.113883.5.25": V3_CONFIDENTIALITY,
    "2.16.840.1.113883.5.1": V3_GENDER,
    "1.2.250.1.71.4.2.4": f"{NOS}TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite",
    "1.2.250.1.213.1.1.4.9": f"{NOS}TRE_A01-CadreExercice/FHIR/TRE-A01-CadreExercice",
    "1.2.250.1.213.1.1.4.12": f"{NOS}TRE_A05-TypeDocComplementaire/FHIR/"
    "TRE-A05-TypeDocComplementaire",
    "1.2.250.1.213.1.1.4.6": f"{NOS}TRE_A00-ProducteurDocNonPS/FHIR/TRE-A00-ProducteurDocNonPS",
    "1.2.250.1.213.1.1.4.5": f"{NOS}TRE_A02-ProfessionSavFaire-CISIS/FHIR/"
    "TRE-A02-ProfessionSavFaire-CISIS",
}
#: Systems whose N/R/V codes are the HL7 confidentiality codes of the CDA header.
CONFIDENTIALITY_SYSTEMS: Final = frozenset(
    {V3_CONFIDENTIALITY, TRE_A08, "urn:oid:2.16.840.1.113883.5.25", TRE_A07, TRE_A07_EXAMPLE}
)
HL7_CONFIDENTIALITY: Final = frozenset({"U", "L", "M", "N", "R", "V"})
GENDER_OF_SEX: Final = {"M": "male", "F": "female", "U": "unknown"}
#: Largest CDA read, and largest embedded document returned, in bytes.
MAX_CDA_BYTES: Final = 64 * 1024 * 1024
MAX_EMBEDDED_BYTES: Final = 32 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# values


@dataclass(frozen=True, slots=True)
class CdaError:
    """Why a CDA document is refused, with the category of the refusal."""

    reason: str
    category: Category = Category.UNPROCESSABLE


@dataclass(frozen=True, slots=True)
class InstanceId:
    """An HL7 II: ``root`` (OID or UUID) and optional ``extension``."""

    root: str
    extension: str | None = None

    @property
    def unique_id(self) -> str:
        """The XDS uniqueId text: ``root^extension`` or ``root``."""
        return f"{self.root}^{self.extension}" if self.extension else self.root

    def __str__(self) -> str:
        return self.unique_id


@dataclass(frozen=True, slots=True)
class Coded:
    """An HL7 CD/CE: code, code system OID and display name."""

    code: str
    system: str | None = None
    display: str | None = None

    @property
    def fhir_system(self) -> str | None:
        """The FHIR URL of the code system (``urn:oid:`` when not known)."""
        if self.system is None:
            return None
        return SYSTEM_OF_OID.get(self.system, f"urn:oid:{self.system}")

    def __str__(self) -> str:
        shown = f"{self.code} ({self.display})" if self.display else self.code
        return f"{shown} [{self.system}]" if self.system else shown


@dataclass(frozen=True, slots=True)
class Organization:
    """An organization of the header: id (idNatStruct…) and name."""

    id: InstanceId | None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """``recordTarget/patientRole``: INS ids, other ids and the INS traits (domain spec §1.7)."""

    ins: tuple[InstanceId, ...]
    other_ids: tuple[InstanceId, ...] = ()
    birth_family: str | None = None
    birth_given_names: str | None = None  # the list of birth first names, space-separated
    first_given: str | None = None  # given@qualifier=BR
    used_family: str | None = None
    used_given: str | None = None
    sex: str | None = None  # administrativeGenderCode M/F/U
    birth_date: str | None = None  # FHIR date
    birthplace_insee: str | None = None  # birthplace/place/addr/county

    @property
    def main_ins(self) -> InstanceId:
        """The INS the document is filed under: NIR, else NIA, else test, else demo."""
        return min(self.ins, key=lambda i: INS_ROOTS.index(i.root))


@dataclass(frozen=True, slots=True)
class Author:
    """``author/assignedAuthor``: ids, name or device, profession, time, organization."""

    ids: tuple[InstanceId, ...]
    given: str | None = None
    family: str | None = None
    prefix: str | None = None
    code: Coded | None = None  # profession/specialty TRE_A02 (or TRE_A00 for systems)
    time: str | None = None
    organization: Organization | None = None
    device: str | None = None  # assignedAuthoringDevice softwareName


@dataclass(frozen=True, slots=True)
class LegalAuthenticator:
    """``legalAuthenticator``: who signed, when."""

    ids: tuple[InstanceId, ...]
    given: str | None = None
    family: str | None = None
    time: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceEvent:
    """``documentationOf/serviceEvent``: the act, its period, performer, practice setting."""

    code: Coded | None = None
    low: str | None = None
    high: str | None = None
    performer: InstanceId | None = None
    practice_setting: Coded | None = None  # standardIndustryClassCode, TRE_A01


@dataclass(frozen=True, slots=True)
class RelatedDocument:
    """``relatedDocument``: RPLC (replaces) etc. and the parent document's id."""

    type_code: str
    parent_id: InstanceId


@dataclass(frozen=True, slots=True)
class Body:
    """The document body: ``nonXMLBody`` (N1) or ``structuredBody`` (N3)."""

    kind: str  # "nonXMLBody" | "structuredBody"
    media_type: str | None = None
    representation: str | None = None
    section_titles: tuple[str, ...] = ()

    @property
    def section_count(self) -> int:
        """How many top-level sections the structured body has."""
        return len(self.section_titles)


@dataclass(frozen=True, slots=True)
class CdaHeader:
    """The CI-SIS CDA header elements the DMP compares with a document's metadata."""

    id: InstanceId
    code: Coded
    effective_time: str
    confidentiality: Coded
    patient: PatientRecord
    authors: tuple[Author, ...]
    template_ids: tuple[str, ...] = ()
    set_id: InstanceId | None = None
    version_number: int | None = None
    title: str | None = None
    language: str | None = None
    custodian: Organization | None = None
    legal_authenticator: LegalAuthenticator | None = None
    service_events: tuple[ServiceEvent, ...] = ()
    facility_id: InstanceId | None = None
    facility_type: Coded | None = None  # healthCareFacility/code, TRE_R02
    related_documents: tuple[RelatedDocument, ...] = ()
    body: Body | None = None

    @property
    def practice_setting(self) -> Coded | None:
        """The first service event's practice setting (standardIndustryClassCode)."""
        return next((e.practice_setting for e in self.service_events if e.practice_setting), None)

    @property
    def replaces(self) -> InstanceId | None:
        """The id of the document this one replaces (relatedDocument RPLC)."""
        return next((r.parent_id for r in self.related_documents if r.type_code == "RPLC"), None)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A header element that differs from the DocumentReference, named for a person."""

    field: str
    in_cda: str
    in_metadata: str
    element: str = ""  # the DocumentReference element (FHIRPath-like)

    def __str__(self) -> str:
        return f"{self.field}: the CDA says {self.in_cda}, the metadata say {self.in_metadata}"


# ---------------------------------------------------------------------------------------------
# parsing


class _RefusedError(Exception):
    """Internal: a reason to refuse, turned into a :class:`CdaError` at the API edge."""

    def __init__(self, reason: str, category: Category = Category.UNPROCESSABLE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.category = category


def safe_parser() -> etree.XMLParser:
    """An lxml parser that resolves no entity, loads no DTD and reaches no network:
    https://lxml.de/FAQ.html#how-do-i-use-lxml-safely-as-a-web-service-endpoint."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _declares_doctype(data: bytes) -> bool:
    """Whether the prolog (before the root element) has a DOCTYPE: checked before parsing, so
    entities are never declared. Linear: skips whitespace, PIs and comments."""
    i, size = 0, len(data)
    while i < size:
        if data[i : i + 1].isspace():
            i += 1
        elif data.startswith(b"<?", i):
            end = data.find(b"?>", i + 2)
            i = size if end < 0 else end + 2
        elif data.startswith(b"<!--", i):
            end = data.find(b"-->", i + 4)
            i = size if end < 0 else end + 3
        else:
            return data.startswith(b"<!DOCTYPE", i)
    return False


_DOCTYPE_REASON = (
    "the document declares a DOCTYPE; a CDA document must not (DTDs and entity declarations "
    "are refused)"
)


def _parse_xml(data: bytes, max_bytes: int = MAX_CDA_BYTES) -> Any:
    if not isinstance(data, bytes | bytearray):
        raise _RefusedError("a CDA document must be given as bytes", Category.INVALID)
    if len(data) > max_bytes:
        raise _RefusedError(
            f"the document is {len(data)} bytes, more than the {max_bytes} accepted",
            Category.TOO_LARGE,
        )
    if _declares_doctype(bytes(data).removeprefix(b"\xef\xbb\xbf")):
        raise _RefusedError(_DOCTYPE_REASON, Category.INVALID)
    try:
        root = etree.fromstring(bytes(data), safe_parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno, 0)
        raise _RefusedError(
            f"the document is not well-formed XML (line {line}, column {column}: {exc.msg})",
            Category.INVALID,
        ) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise _RefusedError(_DOCTYPE_REASON, Category.INVALID)
    if root.tag == f"{{{XSL_NS}}}stylesheet":
        raise _RefusedError(
            "not a CDA R2 document: root element is xsl:stylesheet (a self-presenting "
            "document that wraps the ClinicalDocument in a stylesheet; send the "
            "ClinicalDocument itself)"
        )
    if root.tag != f"{{{CDA_NS}}}ClinicalDocument":
        qname = etree.QName(root)
        where = f" in namespace {qname.namespace}" if qname.namespace else " (no namespace)"
        raise _RefusedError(
            f"not a CDA R2 document: root element is {qname.localname}{where}, "
            f"expected ClinicalDocument in {CDA_NS}"
        )
    return root


def _text(node: Any) -> str | None:
    if node is None:
        return None
    text = "".join(node.itertext()).strip()
    return " ".join(text.split()) or None


def _first(node: Any, path: str) -> Any:
    found = node.xpath(path, namespaces=NS)
    return found[0] if found else None


def _ii(node: Any) -> InstanceId | None:
    if node is None or node.get("nullFlavor") or not node.get("root"):
        return None
    return InstanceId(node.get("root").strip(), (node.get("extension") or "").strip() or None)


def _ids(node: Any, path: str) -> tuple[InstanceId, ...]:
    return tuple(i for i in (_ii(n) for n in node.xpath(path, namespaces=NS)) if i)


def _coded(node: Any) -> Coded | None:
    if node is None or not node.get("code"):
        return None
    return Coded(node.get("code"), node.get("codeSystem"), node.get("displayName"))


_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(?:(\d{2})(\d{2})?(\d{2})?(\.\d{1,9})?)?([+-]\d{4}|Z)?$")


def ts_to_fhir(value: str) -> str:
    """An HL7 TS (``20230215143000+0100``) as a FHIR dateTime (``2023-02-15T14:30:00+01:00``).

    https://hl7.org/cda/stds/core/2.0.0/ (datatypes, TS) and
    https://hl7.org/fhir/R4/datatypes.html#dateTime
    """
    match = _TS.match(value.strip())
    if not match:
        bad_zone = re.search(r"[+-]\d*$", value.strip())
        if bad_zone and len(bad_zone.group()) != 5:
            raise ValueError(f"{value!r}: the time zone must be written +HHMM or -HHMM")
        raise ValueError(f"{value!r} is not an HL7 TS")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if hour is not None and day is None:
        raise ValueError(f"{value!r} is not an HL7 TS")
    out = year
    if month:
        out += f"-{month}"
    if day:
        out += f"-{day}"
    if hour is not None:
        out += f"T{hour}:{minute or '00'}:{second or '00'}{fraction or ''}"
    if zone and hour is not None:
        out += "+00:00" if zone == "Z" else f"{zone[:3]}:{zone[3:]}"
    return out


def _time(node: Any, what: str, *, required: bool = False) -> str | None:
    if node is None or node.get("nullFlavor") or not node.get("value"):
        if required:
            raise _RefusedError(f"the header has no {what}")
        return None
    try:
        return ts_to_fhir(node.get("value"))
    except ValueError as exc:
        raise _RefusedError(f"{what} is not an HL7 timestamp ({exc})") from None


def _name(node: Any) -> tuple[str | None, str | None, str | None]:
    """(given, family, prefix) of a person name without qualifiers."""
    if node is None:
        return None, None, None
    given = [_text(g) for g in node.xpath("h:given", namespaces=NS)]
    family = [_text(f) for f in node.xpath("h:family", namespaces=NS)]
    return (
        " ".join(g for g in given if g) or None,
        " ".join(f for f in family if f) or None,
        _text(_first(node, "h:prefix")),
    )


def _organization(node: Any) -> Organization | None:
    if node is None:
        return None
    return Organization(_ii(_first(node, "h:id")), _text(_first(node, "h:name")))


def _patient(doc: Any) -> PatientRecord:
    targets = doc.xpath("h:recordTarget", namespaces=NS)
    if not targets:
        raise _RefusedError("the header has no recordTarget (the patient)")
    if len(targets) > 1:
        raise _RefusedError(
            f"the header has {len(targets)} recordTarget elements; a DMP document is about "
            "exactly one patient"
        )
    role = _first(targets[0], "h:patientRole")
    if role is None:
        raise _RefusedError("recordTarget has no patientRole")
    ids = _ids(role, "h:id")
    ins = tuple(i for i in ids if i.root in INS_ROOTS and i.extension)
    if not ins:
        raise _RefusedError(
            "recordTarget has no INS (patientRole/id with root 1.2.250.1.213.1.4.8 NIR, "
            ".9 NIA, .10 or .11 and the matricule as extension)"
        )
    person = _first(role, "h:patient")
    fields: dict[str, str | None] = {}
    if person is not None:
        name = _first(person, "h:name")
        if name is not None:
            fields["birth_family"] = _text(_first(name, "h:family[@qualifier='BR']"))
            if fields["birth_family"] is None:
                fields["birth_family"] = _text(_first(name, "h:family[not(@qualifier)]"))
            plain = [_text(g) for g in name.xpath("h:given[not(@qualifier)]", namespaces=NS)]
            fields["birth_given_names"] = " ".join(g for g in plain if g) or None
            fields["first_given"] = _text(_first(name, "h:given[@qualifier='BR']"))
            fields["used_family"] = _text(_first(name, "h:family[@qualifier='CL']"))
            fields["used_given"] = _text(_first(name, "h:given[@qualifier='CL']"))
        sex = _coded(_first(person, "h:administrativeGenderCode"))
        fields["sex"] = sex.code if sex else None
        fields["birth_date"] = _time(_first(person, "h:birthTime"), "birthTime")
        fields["birthplace_insee"] = _text(_first(person, "h:birthplace/h:place/h:addr/h:county"))
    return PatientRecord(ins=ins, other_ids=tuple(i for i in ids if i not in ins), **fields)


def _author(node: Any) -> Author:
    assigned = _first(node, "h:assignedAuthor")
    if assigned is None:
        raise _RefusedError("an author has no assignedAuthor")
    given, family, prefix = _name(_first(assigned, "h:assignedPerson/h:name"))
    return Author(
        ids=_ids(assigned, "h:id"),
        given=given,
        family=family,
        prefix=prefix,
        code=_coded(_first(assigned, "h:code")),
        time=_time(_first(node, "h:time"), "author/time"),
        organization=_organization(_first(assigned, "h:representedOrganization")),
        device=_text(_first(assigned, "h:assignedAuthoringDevice/h:softwareName")),
    )


def _service_event(node: Any) -> ServiceEvent:
    entity = _first(node, "h:performer/h:assignedEntity")
    return ServiceEvent(
        code=_coded(_first(node, "h:code")),
        low=_time(_first(node, "h:effectiveTime/h:low"), "serviceEvent low time"),
        high=_time(_first(node, "h:effectiveTime/h:high"), "serviceEvent high time"),
        performer=_ii(_first(entity, "h:id")) if entity is not None else None,
        practice_setting=_coded(
            _first(entity, "h:representedOrganization/h:standardIndustryClassCode")
        )
        if entity is not None
        else None,
    )


def _body(doc: Any) -> Body | None:
    non_xml = _first(doc, "h:component/h:nonXMLBody/h:text")
    if non_xml is not None:
        return Body(
            "nonXMLBody",
            media_type=non_xml.get("mediaType"),
            representation=non_xml.get("representation") or "TXT",
        )
    structured = _first(doc, "h:component/h:structuredBody")
    if structured is not None:
        titles = tuple(
            _text(_first(s, "h:title")) or ""
            for s in structured.xpath("h:component/h:section", namespaces=NS)
        )
        return Body("structuredBody", section_titles=titles)
    return None


def _header(doc: Any) -> CdaHeader:
    doc_id = _ii(_first(doc, "h:id"))
    if doc_id is None:
        raise _RefusedError("the header has no document id (ClinicalDocument/id@root)")
    code = _coded(_first(doc, "h:code"))
    if code is None:
        raise _RefusedError("the header has no document type (ClinicalDocument/code@code)")
    effective = _time(_first(doc, "h:effectiveTime"), "effectiveTime", required=True)
    assert effective is not None
    confidentiality = _coded(_first(doc, "h:confidentialityCode"))
    if confidentiality is None:
        raise _RefusedError("the header has no confidentialityCode")
    patient = _patient(doc)
    authors = tuple(_author(a) for a in doc.xpath("h:author", namespaces=NS))
    if not authors:
        raise _RefusedError("the header has no author")
    version = _first(doc, "h:versionNumber")
    try:
        version_number = int(version.get("value")) if version is not None else None
    except (TypeError, ValueError):
        raise _RefusedError(f"versionNumber {version.get('value')!r} is not an integer") from None
    legal = _first(doc, "h:legalAuthenticator")
    legal_authenticator = None
    if legal is not None:
        given, family, _ = _name(_first(legal, "h:assignedEntity/h:assignedPerson/h:name"))
        legal_authenticator = LegalAuthenticator(
            ids=_ids(legal, "h:assignedEntity/h:id"),
            given=given,
            family=family,
            time=_time(_first(legal, "h:time"), "legalAuthenticator/time"),
        )
    facility = _first(doc, "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility")
    related = tuple(
        RelatedDocument(r.get("typeCode") or "", parent)
        for r in doc.xpath("h:relatedDocument", namespaces=NS)
        if (parent := _ii(_first(r, "h:parentDocument/h:id"))) is not None
    )
    language = _first(doc, "h:languageCode")
    return CdaHeader(
        id=doc_id,
        code=code,
        effective_time=effective,
        confidentiality=confidentiality,
        patient=patient,
        authors=authors,
        template_ids=tuple(
            t.get("root") for t in doc.xpath("h:templateId", namespaces=NS) if t.get("root")
        ),
        set_id=_ii(_first(doc, "h:setId")),
        version_number=version_number,
        title=_text(_first(doc, "h:title")),
        language=language.get("code") if language is not None else None,
        custodian=_organization(
            _first(doc, "h:custodian/h:assignedCustodian/h:representedCustodianOrganization")
        ),
        legal_authenticator=legal_authenticator,
        service_events=tuple(
            _service_event(e) for e in doc.xpath("h:documentationOf/h:serviceEvent", namespaces=NS)
        ),
        facility_id=_ii(_first(facility, "h:id")) if facility is not None else None,
        facility_type=_coded(_first(facility, "h:code")) if facility is not None else None,
        related_documents=related,
        body=_body(doc),
    )


def parse_header(data: bytes, *, max_bytes: int = MAX_CDA_BYTES) -> CdaHeader | CdaError:
    """The CI-SIS header of a CDA R2 document, or why it is refused.

    https://hl7.org/cda/stds/core/2.0.0/ and ANS CI-SIS volet structuration minimale
    https://esante.gouv.fr/interoperabilite/ci-sis/espace-publication
    """
    try:
        return _header(_parse_xml(data, max_bytes))
    except _RefusedError as refused:
        return CdaError(refused.reason, refused.category)


def embedded_document(
    data: bytes, *, max_bytes: int = MAX_EMBEDDED_BYTES
) -> tuple[str, bytes] | CdaError:
    """The media type and bytes of an N1 document's ``nonXMLBody`` (base64, size-capped).

    https://profiles.ihe.net/ITI/TF/Volume3/ch-5.2.html (XDS-SD) and
    https://hl7.org/cda/stds/core/2.0.0/ (nonXMLBody)
    """
    try:
        doc = _parse_xml(data, max(MAX_CDA_BYTES, max_bytes * 2))
    except _RefusedError as refused:
        return CdaError(refused.reason, refused.category)
    text = _first(doc, "h:component/h:nonXMLBody/h:text")
    if text is None:
        structured = _first(doc, "h:component/h:structuredBody") is not None
        kind = "a structuredBody (N3)" if structured else "none"
        return CdaError(f"the document has no nonXMLBody to extract (its body: {kind})")
    if _first(text, "h:reference") is not None:
        return CdaError("the nonXMLBody refers to an external file instead of embedding it")
    representation = text.get("representation") or "TXT"
    if representation != "B64":
        return CdaError(
            f"the nonXMLBody representation is {representation}; only B64 (base64) is accepted"
        )
    media_type = text.get("mediaType") or "text/plain"
    encoded = "".join((text.text or "").split())
    if len(encoded) * 3 // 4 > max_bytes:
        return CdaError(
            f"the embedded document is larger than the {max_bytes} bytes accepted",
            Category.TOO_LARGE,
        )
    try:
        content = base64binary.decode(encoded)
    except (binascii.Error, ValueError) as exc:
        return CdaError(f"the nonXMLBody is not valid base64 ({exc})")
    if not content:
        return CdaError("the nonXMLBody is empty")
    if media_type == "application/pdf" and not content.startswith(b"%PDF-"):
        return CdaError("the nonXMLBody says application/pdf but its content is not a PDF")
    return media_type, content


# ---------------------------------------------------------------------------------------------
# comparison with the DocumentReference


def _codings(concept: Any) -> list[dict[str, Any]]:
    if isinstance(concept, dict):
        return [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    return []


def _same_code(coded: Coded, coding: dict[str, Any]) -> bool:
    if coding.get("code") != coded.code:
        return False
    system, mine = coding.get("system"), coded.fhir_system
    if not isinstance(system, str) or mine is None:
        return True
    return canonical_system(system) == canonical_system(mine)


def _show_codings(codings: list[dict[str, Any]]) -> str:
    if not codings:
        return "absent"
    return ", ".join(f"{c.get('code')} [{c.get('system', 'no system')}]" for c in codings)


_FHIR_DT = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _instant(value: str) -> tuple[str, int | None]:
    """(local wall-clock text, offset in minutes or None) for comparison."""
    match = _FHIR_DT.match(value)
    if not match:
        return value, None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    local = "-".join(p for p in (year, month, day) if p)
    if hour is not None:
        frac = (fraction or "").rstrip("0").rstrip(".")
        local += f"T{hour}:{minute}:{second or '00'}{frac}"
    if not zone:
        return local, None
    if zone == "Z":
        return local, 0
    sign = -1 if zone[0] == "-" else 1
    return local, sign * (int(zone[1:3]) * 60 + int(zone[4:6]))


def same_time(a: str, b: str) -> bool:
    """Whether two FHIR dateTimes name the same moment (to the precision of the shorter).

    https://hl7.org/fhir/R4/datatypes.html#dateTime
    """
    from datetime import datetime, timedelta, timezone

    (la, za), (lb, zb) = _instant(a), _instant(b)
    if "T" in la and "T" in lb and za is not None and zb is not None:

        def aware(local: str, offset: int) -> datetime:
            return datetime.fromisoformat(local).replace(tzinfo=timezone(timedelta(minutes=offset)))

        try:
            return aware(la, za) == aware(lb, zb)
        except ValueError:
            return False
    if "T" in la and "T" in lb:
        return la == lb
    short = min(len(la), len(lb))
    return la[:short] == lb[:short]


def _resolve_ref(
    doc_ref: dict[str, Any],
    ref: Any,
    resolve: Callable[[str], dict[str, Any] | None] | None,
) -> dict[str, Any] | None:
    if not isinstance(ref, dict):
        return None
    target = ref.get("reference")
    if isinstance(target, str) and target.startswith("#"):
        for res in doc_ref.get("contained") or []:
            if isinstance(res, dict) and res.get("id") == target[1:]:
                return res
        return None
    if isinstance(target, str) and "?" not in target and resolve is not None:
        return resolve(target)
    return None


def _ref_identifiers(
    doc_ref: dict[str, Any],
    ref: Any,
    resolve: Callable[[str], dict[str, Any] | None] | None,
    depth: int = 0,
) -> list[tuple[str, str]] | None:
    """(system, value) identifiers a reference names, or None when none can be read."""
    if not isinstance(ref, dict):
        return None
    found: list[tuple[str, str]] = []
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        found.append((str(ident.get("system") or ""), str(ident["value"])))
    target = ref.get("reference")
    if isinstance(target, str) and "?identifier=" in target:
        token = target.split("?identifier=", 1)[1].split("&", 1)[0]
        system, _, value = token.rpartition("|")
        if value:
            found.append((system, value))
    resource = _resolve_ref(doc_ref, ref, resolve)
    if resource is not None:
        for ident in resource.get("identifier") or []:
            if isinstance(ident, dict) and ident.get("value"):
                found.append((str(ident.get("system") or ""), str(ident["value"])))
        if depth == 0:  # a PractitionerRole names its practitioner
            for key in ("practitioner",):
                more = _ref_identifiers(doc_ref, resource.get(key), resolve, depth + 1)
                found.extend(more or [])
    return found or None


def _oid(system: str) -> str:
    return system[len("urn:oid:") :] if system.startswith("urn:oid:") else system


def _ii_in(ii: InstanceId, identifiers: Iterable[tuple[str, str]]) -> bool:
    return any(_oid(s) == ii.root and v == ii.extension for s, v in identifiers) or (
        ii.extension is None and any(v in (ii.root, f"urn:oid:{ii.root}") for _, v in identifiers)
    )


def _show_ii(ii: InstanceId | None) -> str:
    if ii is None:
        return "absent"
    names = {
        ID_NAT_PS: "idNatPS",
        ID_NAT_STRUCT: "idNatStruct",
        INS_NIR: "INS-NIR",
        INS_NIA: "INS-NIA",
        INS_NIR_TEST: "INS-NIR test",
        INS_NIR_DEMO: "INS-NIR demo",
    }
    if ii.extension is None:
        return ii.root
    return f"{ii.extension} ({names.get(ii.root, ii.root)})"


def _show_ids(ids: Iterable[tuple[str, str]] | None) -> str:
    if not ids:
        return "no identifier that can be read"
    return ", ".join(f"{v} ({s or 'no system'})" for s, v in ids)


def master_identifier_matches(ii: InstanceId, identifier: dict[str, Any]) -> bool:
    """Whether a ``masterIdentifier`` names the CDA document id (forms in the module doc).

    https://profiles.ihe.net/ITI/MHD/StructureDefinition-IHE.MHD.Comprehensive.DocumentReference.html
    """
    system = str(identifier.get("system") or "")
    value = str(identifier.get("value") or "")
    if ii.extension is None:
        return value in (f"urn:oid:{ii.root}", f"urn:uuid:{ii.root.lower()}", ii.root) or (
            value.lower() == f"urn:uuid:{ii.root.lower()}"
        )
    if _oid(system) == ii.root and value == ii.extension:
        return True
    return value in (ii.unique_id, f"urn:oid:{ii.unique_id}")


def _patient_identifiers(
    doc_ref: dict[str, Any],
    patient: dict[str, Any] | None,
    resolve: Callable[[str], dict[str, Any] | None] | None,
) -> list[tuple[str, str]] | None:
    if patient is not None:
        ids = [
            (str(i.get("system") or ""), str(i["value"]))
            for i in patient.get("identifier") or []
            if isinstance(i, dict) and i.get("value") and i.get("use") != "old"
        ]
        return ids or None
    return _ref_identifiers(doc_ref, doc_ref.get("subject"), resolve)


def _official_name(patient: dict[str, Any]) -> dict[str, Any]:
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    return next((n for n in names if n.get("use") == "official"), names[0] if names else {})


def _birthplace_insee(patient: dict[str, Any]) -> str | None:
    for ext in patient.get("extension") or []:
        if not isinstance(ext, dict) or not str(ext.get("url", "")).endswith("patient-birthPlace"):
            continue
        for inner in (ext.get("valueAddress") or {}).get("extension") or []:
            coding = inner.get("valueCoding") if isinstance(inner, dict) else None
            if isinstance(coding, dict) and coding.get("code"):
                return str(coding["code"])
    return None


def _trait_mismatches(record: PatientRecord, patient: dict[str, Any]) -> Iterator[Mismatch]:
    name = _official_name(patient)
    family = name.get("family")
    if record.birth_family and family and _fold(record.birth_family) != _fold(str(family)):
        yield Mismatch("patient birth name", record.birth_family, str(family), "Patient.name")
    given = (name.get("given") or [None])[0]
    first = record.first_given or (record.birth_given_names or "").split(" ")[0] or None
    if first and given and _fold(first) != _fold(str(given)):
        yield Mismatch("patient first birth first name", first, str(given), "Patient.name.given")
    birth_date = patient.get("birthDate")
    if record.birth_date and birth_date and record.birth_date[:10] != birth_date:
        yield Mismatch("patient birth date", record.birth_date, str(birth_date), "birthDate")
    gender = patient.get("gender")
    if record.sex and gender and GENDER_OF_SEX.get(record.sex) != gender:
        yield Mismatch("patient sex", record.sex, str(gender), "Patient.gender")
    insee = _birthplace_insee(patient)
    if record.birthplace_insee and insee and record.birthplace_insee != insee:
        yield Mismatch(
            "patient birthplace (INSEE code)", record.birthplace_insee, insee, "Patient.birthPlace"
        )


def _fold(text: str) -> str:
    return " ".join(text.upper().split())


def _confidentiality_codes(doc_ref: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for label in doc_ref.get("securityLabel") or []
        for c in _codings(label)
        if c.get("code") in HL7_CONFIDENTIALITY
        and (not c.get("system") or str(c.get("system")) in CONFIDENTIALITY_SYSTEMS)
    ]


def _check_coded(
    what: str, coded: Coded | None, concept: Any, element: str, *, required: bool
) -> Iterator[Mismatch]:
    codings = _codings(concept)
    if coded is None:
        if codings:
            yield Mismatch(what, "absent", _show_codings(codings), element)
        return
    if not codings:
        if required:
            yield Mismatch(what, str(coded), "absent", element)
        return
    if not any(_same_code(coded, c) for c in codings):
        yield Mismatch(what, str(coded), _show_codings(codings), element)


def _check_ids(
    what: str,
    cda: list[InstanceId],
    ids: list[tuple[str, str]] | None,
    element: str,
    persons_only: bool = False,
) -> Iterator[Mismatch]:
    shown = ", ".join(_show_ii(i) for i in cda) or "absent"
    if ids is None:
        yield Mismatch(what, shown, _show_ids(ids), element)
        return
    missing = [i for i in cda if not _ii_in(i, ids)]
    extra = [
        (s, v)
        for s, v in ids
        if persons_only
        and _oid(s) == ID_NAT_PS
        and not any(i.root == ID_NAT_PS and i.extension == v for i in cda)
    ]
    if missing or extra:
        yield Mismatch(what, shown, _show_ids(ids), element)


def check_against(
    header: CdaHeader,
    doc_ref: dict[str, Any],
    patient: dict[str, Any] | None = None,
    *,
    resolve: Callable[[str], dict[str, Any] | None] | None = None,
) -> list[Mismatch]:
    """Where the CDA header and its PDSm DocumentReference disagree (empty: they agree).

    https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition-pdsm-comprehensive-document-reference.html
    """
    out: list[Mismatch] = []
    # document id
    master = doc_ref.get("masterIdentifier")
    if not isinstance(master, dict) or not master.get("value"):
        out.append(
            Mismatch("document unique id", header.id.unique_id, "absent", "masterIdentifier")
        )
    elif not master_identifier_matches(header.id, master):
        out.append(
            Mismatch(
                "document unique id",
                header.id.unique_id,
                f"{master.get('value')} ({master.get('system', 'no system')})",
                "masterIdentifier",
            )
        )
    out.extend(
        _check_coded("document type", header.code, doc_ref.get("type"), "type", required=True)
    )
    # confidentiality
    labels = _confidentiality_codes(doc_ref)
    if {str(c.get("code")) for c in labels} != {header.confidentiality.code}:
        out.append(
            Mismatch(
                "confidentiality",
                str(header.confidentiality),
                _show_codings(labels),
                "securityLabel",
            )
        )
    # document creation time
    for i, content in enumerate(doc_ref.get("content") or []):
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if not isinstance(attachment, dict):
            continue
        creation = attachment.get("creation")
        if isinstance(creation, str) and not same_time(header.effective_time, creation):
            out.append(
                Mismatch(
                    "document creation time",
                    header.effective_time,
                    creation,
                    f"content[{i}].attachment.creation",
                )
            )
        language = attachment.get("language")
        if header.language and isinstance(language, str) and language != header.language:
            out.append(
                Mismatch(
                    "document language",
                    header.language,
                    language,
                    f"content[{i}].attachment.language",
                )
            )
    # act period
    context = doc_ref.get("context") if isinstance(doc_ref.get("context"), dict) else {}
    assert isinstance(context, dict)
    period = context.get("period") if isinstance(context.get("period"), dict) else {}
    assert isinstance(period, dict)
    event = header.service_events[0] if header.service_events else ServiceEvent()
    for what, cda_value, key, required in (
        ("start of the act (service event)", event.low, "start", True),
        ("end of the act (service event)", event.high, "end", False),
    ):
        meta_value = period.get(key)
        if cda_value is None and meta_value is None:
            continue
        if meta_value is None:
            if required:
                out.append(Mismatch(what, cda_value or "absent", "absent", f"context.period.{key}"))
        elif cda_value is None or not same_time(cda_value, str(meta_value)):
            out.append(
                Mismatch(what, cda_value or "absent", str(meta_value), f"context.period.{key}")
            )
    out.extend(
        _check_coded(
            "healthcare facility type (secteur d'activité)",
            header.facility_type,
            context.get("facilityType"),
            "context.facilityType",
            required=False,
        )
    )
    out.extend(
        _check_coded(
            "practice setting (cadre d'exercice)",
            header.practice_setting,
            context.get("practiceSetting"),
            "context.practiceSetting",
            required=False,
        )
    )
    # patient
    patient_ids = _patient_identifiers(doc_ref, patient, resolve)
    ins_ids = [(s, v) for s, v in patient_ids or [] if _oid(s) in INS_ROOTS]
    if not ins_ids:
        out.append(
            Mismatch(
                "patient INS",
                _show_ii(header.patient.main_ins),
                "no INS can be read from the subject",
                "subject",
            )
        )
    elif not any(_ii_in(i, ins_ids) for i in header.patient.ins):
        out.append(
            Mismatch(
                "patient INS",
                ", ".join(_show_ii(i) for i in header.patient.ins),
                _show_ids(ins_ids),
                "subject",
            )
        )
    if patient is not None:
        out.extend(_trait_mismatches(header.patient, patient))
    # authors
    author_ids: list[tuple[str, str]] = []
    readable = False
    for ref in doc_ref.get("author") or []:
        ids = _ref_identifiers(doc_ref, ref, resolve)
        if ids is not None:
            readable = True
            author_ids.extend(ids)
    cda_people = [a.ids[0] for a in header.authors if a.ids]
    out.extend(
        _check_ids(
            "author",
            cda_people,
            author_ids if readable else None,
            "author",
            persons_only=True,
        )
    )
    # custodian
    custodian_ids = _ref_identifiers(doc_ref, doc_ref.get("custodian"), resolve)
    cda_custodian = [header.custodian.id] if header.custodian and header.custodian.id else []
    if cda_custodian or custodian_ids is not None:
        out.extend(_check_ids("custodian", cda_custodian, custodian_ids, "custodian"))
    # replaced document
    replaces = [
        r
        for r in doc_ref.get("relatesTo") or []
        if isinstance(r, dict) and r.get("code") == "replaces"
    ]
    parent = header.replaces
    if parent is not None and not replaces:
        out.append(Mismatch("replaced document", parent.unique_id, "absent", "relatesTo"))
    elif parent is None and replaces:
        out.append(Mismatch("replaced document", "absent", "a replaces relation", "relatesTo"))
    elif parent is not None:
        target = replaces[0].get("target")
        ident = target.get("identifier") if isinstance(target, dict) else None
        resolved = _resolve_ref(doc_ref, target, resolve)
        if isinstance(resolved, dict) and isinstance(resolved.get("masterIdentifier"), dict):
            ident = resolved["masterIdentifier"]
        if isinstance(ident, dict) and not master_identifier_matches(parent, ident):
            out.append(
                Mismatch(
                    "replaced document",
                    parent.unique_id,
                    str(ident.get("value")),
                    "relatesTo.target",
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# the patient's INS in the platform

#: FR Core identity status codes and the French words the platform uses.
STATUS_WORDS: Final = {
    "QUAL": "qualifiée",
    "VALI": "validée",
    "RECUP": "récupérée",
    "PROV": "provisoire",
}


def format_ins(matricule: str) -> str:
    """A matricule INS grouped as written on a carte Vitale (``2 79 03 51 215 189 89``).

    https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
    """
    if len(matricule) == 15:
        return str(stdnum_nir.format(matricule))
    return matricule


def patient_issue(
    header: CdaHeader, find_identity: Callable[[str, str], str | None]
) -> CdaError | None:
    """Why the CDA's patient cannot be filed (None: its INS is qualified in the platform).

    ``find_identity(system, matricule)`` returns the identity status (``qualifiée``,
    ``validée``, ``récupérée``, ``provisoire`` or the FR Core code) or None when unknown.
    https://esante.gouv.fr/identite-nationale-de-sante (RNIV: an INS is used only qualified)
    """
    ins = header.patient.main_ins
    matricule = ins.extension or ""
    shown = format_ins(matricule)
    try:
        stdnum_nir.validate(matricule)
    except Exception as exc:
        return CdaError(
            f"the CDA's patient INS {shown} is not a valid matricule INS ({_key_reason(exc)})"
        )
    status = find_identity(f"urn:oid:{ins.root}", matricule)
    if status is None:
        return CdaError(f"the CDA's patient INS {shown} is not known to the platform")
    word = STATUS_WORDS.get(status, status)
    if word != "qualifiée":
        return CdaError(
            f"the CDA's patient INS {shown} is not qualified in the platform (status: {word})"
        )
    return None


def _key_reason(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "InvalidChecksum":
        return "its key does not match the 13 first characters"
    if name == "InvalidLength":
        return "it does not have 15 characters"
    if name == "InvalidFormat":
        return "it has characters a matricule cannot have"
    return str(exc) or name


__all__ = [
    "Author",
    "Body",
    "CdaError",
    "CdaHeader",
    "Coded",
    "InstanceId",
    "LegalAuthenticator",
    "Mismatch",
    "Organization",
    "PatientRecord",
    "RelatedDocument",
    "ServiceEvent",
    "check_against",
    "embedded_document",
    "format_ins",
    "master_identifier_matches",
    "parse_header",
    "patient_issue",
    "same_time",
    "ts_to_fhir",
]
