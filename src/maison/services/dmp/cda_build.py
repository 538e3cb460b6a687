"""Building a CI-SIS CDA R2 level 1 document (XDS-SD: a PDF in a ``nonXMLBody``) from a
:class:`~maison.services.dmp.cda.CdaHeader`, the matching PDSm DocumentReference, and a tiny
valid PDF for tests and demo content.

The header is the metadata: what :func:`build_n1` writes, :func:`~maison.services.dmp.cda.
parse_header` reads back to the same value (the templateIds are always the three of an N1
document: HL7 France, CI-SIS, IHE XDS-SD — domain spec §6), and
:func:`~maison.services.dmp.cda.check_against` finds nothing to object between the header and
:func:`document_reference` of it.

https://interop.esante.gouv.fr/ig/documents/ (CI-SIS structuration minimale) and
https://profiles.ihe.net/ITI/TF/Volume3/ch-5.2.html (XDS-SD)
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from lxml import etree

from maison.fhir import base64binary
from maison.services.dmp.cda import (
    CDA_NS,
    V3_CONFIDENTIALITY,
    Author,
    Body,
    CdaHeader,
    Coded,
    InstanceId,
    Organization,
)
from maison.services.dmp.provide import MHD_LIST_TYPES, SUBMISSION_SET_PROFILE

#: templateIds of a CI-SIS N1 document (HL7 France, CI-SIS, IHE XDS-SD).
N1_TEMPLATES: Final = (
    "2.16.840.1.113883.2.8.2.1",
    "1.2.250.1.213.1.1.1.1",
    "1.3.6.1.4.1.19376.1.2.20",
)
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
FORMAT_CODES: Final = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
PDSM_PROFILE: Final = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
    "pdsm-comprehensive-document-reference"
)


def n1_header(header: CdaHeader, media_type: str = "application/pdf") -> CdaHeader:
    """The header as an N1 document has it: the N1 templateIds and a base64 nonXMLBody.

    https://profiles.ihe.net/ITI/TF/Volume3/ch-5.2.html
    """
    return replace(
        header,
        template_ids=N1_TEMPLATES,
        body=Body("nonXMLBody", media_type=media_type, representation="B64"),
    )


def fhir_to_ts(value: str) -> str:
    """A FHIR date/dateTime as an HL7 TS (``2023-02-15T14:30:00+01:00`` → ``20230215143000+0100``).

    https://hl7.org/fhir/R4/datatypes.html#dateTime
    """
    date, _, time = value.partition("T")
    out = date.replace("-", "")
    if not time:
        return out
    zone = ""
    if time.endswith("Z"):
        time, zone = time[:-1], "+0000"
    elif "+" in time or "-" in time:
        cut = max(time.rfind("+"), time.rfind("-"))
        time, zone = time[:cut], time[cut:].replace(":", "")
    return out + time.replace(":", "") + zone


def _el(parent: Any, tag: str, text: str | None = None, **attrs: str | None) -> Any:
    node = etree.SubElement(parent, f"{{{CDA_NS}}}{tag}")
    for key, value in attrs.items():
        if value is not None:
            node.set(key.rstrip("_"), value)
    if text is not None:
        node.text = text
    return node


def _ii(parent: Any, tag: str, ii: InstanceId | None) -> Any:
    if ii is None:
        return _el(parent, tag, nullFlavor="UNK")
    return _el(parent, tag, root=ii.root, extension=ii.extension)


def _coded(parent: Any, tag: str, coded: Coded | None) -> Any:
    if coded is None:
        return _el(parent, tag, nullFlavor="UNK")
    return _el(parent, tag, code=coded.code, codeSystem=coded.system, displayName=coded.display)


def _time(parent: Any, tag: str, value: str | None) -> Any:
    if value is None:
        return _el(parent, tag, nullFlavor="UNK")
    return _el(parent, tag, value=fhir_to_ts(value))


def _person_name(parent: Any, given: str | None, family: str | None, prefix: str | None) -> None:
    name = _el(parent, "name")
    if prefix:
        _el(name, "prefix", prefix)
    if given:
        _el(name, "given", given)
    if family:
        _el(name, "family", family)


def _organization(parent: Any, tag: str, org: Organization | None) -> Any:
    node = _el(parent, tag)
    _ii(node, "id", org.id if org else None)
    if org and org.name:
        _el(node, "name", org.name)
    return node


def _author(doc: Any, author: Author) -> None:
    node = _el(doc, "author")
    _time(node, "time", author.time)
    assigned = _el(node, "assignedAuthor")
    for ii in author.ids or (None,):
        _ii(assigned, "id", ii)
    if author.code is not None:
        _coded(assigned, "code", author.code)
    if author.device is not None:
        device = _el(assigned, "assignedAuthoringDevice")
        _el(device, "softwareName", author.device)
    else:
        _person_name(_el(assigned, "assignedPerson"), author.given, author.family, author.prefix)
    if author.organization is not None:
        _organization(assigned, "representedOrganization", author.organization)


def build_n1(header: CdaHeader, content: bytes, media_type: str = "application/pdf") -> bytes:
    """A CI-SIS CDA R2 N1 document (UTF-8 bytes) embedding ``content`` in base64.

    https://interop.esante.gouv.fr/ig/documents/ (CI-SIS structuration minimale, N1)
    """
    h = n1_header(header, media_type)
    doc = etree.Element(f"{{{CDA_NS}}}ClinicalDocument", nsmap={None: CDA_NS, "xsi": XSI})
    _el(doc, "realmCode", code="FR")
    _el(doc, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    for template in h.template_ids:
        _el(doc, "templateId", root=template)
    _ii(doc, "id", h.id)
    _coded(doc, "code", h.code)
    if h.title is not None:
        _el(doc, "title", h.title)
    _time(doc, "effectiveTime", h.effective_time)
    _coded(doc, "confidentialityCode", h.confidentiality)
    if h.language is not None:
        _el(doc, "languageCode", code=h.language)
    if h.set_id is not None:
        _ii(doc, "setId", h.set_id)
    if h.version_number is not None:
        _el(doc, "versionNumber", value=str(h.version_number))
    # recordTarget
    p = h.patient
    role = _el(_el(doc, "recordTarget"), "patientRole")
    for ii in (*p.ins, *p.other_ids):
        _ii(role, "id", ii)
    person = _el(role, "patient", classCode="PSN")
    name = _el(person, "name")
    if p.birth_family:
        _el(name, "family", p.birth_family, qualifier="BR")
    if p.birth_given_names:
        _el(name, "given", p.birth_given_names)
    if p.first_given:
        _el(name, "given", p.first_given, qualifier="BR")
    if p.used_family:
        _el(name, "family", p.used_family, qualifier="CL")
    if p.used_given:
        _el(name, "given", p.used_given, qualifier="CL")
    if p.sex:
        _el(person, "administrativeGenderCode", code=p.sex, codeSystem="2.16.840.1.113883.5.1")
    if p.birth_date:
        _time(person, "birthTime", p.birth_date)
    if p.birthplace_insee:
        addr = _el(_el(_el(person, "birthplace"), "place"), "addr")
        _el(addr, "county", p.birthplace_insee)
    for author in h.authors:
        _author(doc, author)
    custodian = _el(_el(doc, "custodian"), "assignedCustodian")
    _organization(custodian, "representedCustodianOrganization", h.custodian)
    if h.legal_authenticator is not None:
        legal = _el(doc, "legalAuthenticator")
        _time(legal, "time", h.legal_authenticator.time)
        _el(legal, "signatureCode", code="S")
        entity = _el(legal, "assignedEntity")
        for legal_id in h.legal_authenticator.ids or (None,):
            _ii(entity, "id", legal_id)
        _person_name(
            _el(entity, "assignedPerson"),
            h.legal_authenticator.given,
            h.legal_authenticator.family,
            None,
        )
    for event in h.service_events:
        service = _el(_el(doc, "documentationOf"), "serviceEvent")
        if event.code is not None:
            _coded(service, "code", event.code)
        period = _el(service, "effectiveTime")
        _time(period, "low", event.low)
        if event.high is not None:
            _time(period, "high", event.high)
        if event.performer is not None or event.practice_setting is not None:
            entity = _el(_el(service, "performer", typeCode="PRF"), "assignedEntity")
            _ii(entity, "id", event.performer)
            if event.practice_setting is not None:
                org = _el(entity, "representedOrganization")
                _coded(org, "standardIndustryClassCode", event.practice_setting)
    for related in h.related_documents:
        parent = _el(_el(doc, "relatedDocument", typeCode=related.type_code), "parentDocument")
        _ii(parent, "id", related.parent_id)
    encounter = _el(_el(doc, "componentOf"), "encompassingEncounter")
    period = _el(encounter, "effectiveTime")
    first = h.service_events[0].low if h.service_events else None
    _time(period, "low", first or h.effective_time)
    facility = _el(_el(encounter, "location"), "healthCareFacility")
    if h.facility_id is not None:
        _ii(facility, "id", h.facility_id)
    _coded(facility, "code", h.facility_type)
    text = _el(
        _el(_el(doc, "component"), "nonXMLBody"),
        "text",
        mediaType=media_type,
        representation="B64",
    )
    text.text = base64binary.encode(content)
    return bytes(etree.tostring(doc, xml_declaration=True, encoding="UTF-8"))


def _identifier(ii: InstanceId) -> dict[str, str]:
    return {"system": f"urn:oid:{ii.root}", "value": ii.extension or ii.root}


def master_identifier(ii: InstanceId) -> dict[str, str]:
    """The ``masterIdentifier`` of a CDA id: ``urn:ietf:rfc:3986`` + ``urn:oid:root[^ext]``.

    https://profiles.ihe.net/ITI/MHD/StructureDefinition-IHE.MHD.Comprehensive.DocumentReference.html
    """
    if ii.extension is None and len(ii.root) == 36 and ii.root.count("-") == 4:
        return {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{ii.root.lower()}"}
    return {"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{ii.unique_id}"}


def _concept(coded: Coded) -> dict[str, Any]:
    coding: dict[str, Any] = {"code": coded.code}
    if coded.fhir_system:
        coding["system"] = coded.fhir_system
    if coded.display:
        coding["display"] = coded.display
    return {"coding": [coding]}


def document_reference(
    header: CdaHeader,
    document: bytes,
    *,
    url: str,
    content_type: str = "application/xml",
) -> dict[str, Any]:
    """The PDSm comprehensive DocumentReference of a CDA document whose header is ``header``.

    https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition-pdsm-comprehensive-document-reference.html
    """
    contained: list[dict[str, Any]] = []
    authors: list[dict[str, str]] = []
    for i, author in enumerate(header.authors):
        practitioner: dict[str, Any] = {
            "resourceType": "Practitioner" if author.device is None else "Device",
            "id": f"author-{i + 1}",
            "identifier": [_identifier(ii) for ii in author.ids],
        }
        if author.device is None and (author.family or author.given):
            name: dict[str, Any] = {}
            if author.family:
                name["family"] = author.family
            if author.given:
                name["given"] = author.given.split(" ")
            practitioner["name"] = [name]
        contained.append(practitioner)
        authors.append({"reference": f"#author-{i + 1}"})
    out: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {"profile": [PDSM_PROFILE]},
        "contained": contained,
        "masterIdentifier": master_identifier(header.id),
        "status": "current",
        "type": _concept(header.code),
        "subject": {
            "reference": "Patient?identifier=urn:oid:"
            f"{header.patient.main_ins.root}|{header.patient.main_ins.extension}"
        },
        "date": header.effective_time,
        "author": authors,
        "securityLabel": [
            {"coding": [{"system": V3_CONFIDENTIALITY, "code": header.confidentiality.code}]}
        ],
        "content": [
            {
                "attachment": {
                    "contentType": content_type,
                    "url": url,
                    "size": len(document),
                    "hash": base64.b64encode(hashlib.sha1(document).digest()).decode("ascii"),
                    "creation": header.effective_time,
                    **({"title": header.title} if header.title else {}),
                    **({"language": header.language} if header.language else {}),
                },
                "format": {
                    "system": FORMAT_CODES,
                    "code": "urn:ihe:iti:xds-sd:pdf:2008",
                    "display": "PDF embedded in CDA per XDS-SD profile",
                },
            }
        ],
        "context": {},
    }
    if header.custodian is not None and header.custodian.id is not None:
        custodian: dict[str, Any] = {
            "resourceType": "Organization",
            "id": "custodian",
            "identifier": [_identifier(header.custodian.id)],
        }
        if header.custodian.name:
            custodian["name"] = header.custodian.name
        contained.append(custodian)
        out["custodian"] = {"reference": "#custodian"}
    context: dict[str, Any] = out["context"]
    event = header.service_events[0] if header.service_events else None
    if event is not None and event.low is not None:
        context["period"] = {"start": event.low}
        if event.high is not None:
            context["period"]["end"] = event.high
    if header.facility_type is not None:
        context["facilityType"] = _concept(header.facility_type)
    if header.practice_setting is not None:
        context["practiceSetting"] = _concept(header.practice_setting)
    if header.replaces is not None:
        out["relatesTo"] = [
            {"code": "replaces", "target": {"identifier": master_identifier(header.replaces)}}
        ]
    return out


def minimal_pdf(text: str) -> bytes:
    """A valid one-page PDF showing ``text`` (Helvetica), with exact xref offsets.

    https://opensource.adobe.com/dc-acrobat-sdk-docs/pdfstandards/PDF32000_2008.pdf (7.5)
    """
    safe = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    safe = safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 12 Tf 72 720 Td ({safe}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode()
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


#: The MHD identifier types (uniqueId, entryUUID).
MHD_IDENTIFIER: Final = "https://profiles.ihe.net/ITI/MHD/CodeSystem/IHE.MHD.MHDIdentifierType"


def submission_set(
    subject: Mapping[str, Any],
    source: Mapping[str, Any],
    designation: Mapping[str, Any],
    source_id: str,
    submission_url: str,
    doc_urls: list[str],
    created: str,
    contained: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A producer's PDSm SubmissionSet of the documents ``doc_urls``: its source (the author: a
    contained resource or a reference), its designation type and ``sourceId`` (an OID URN):
    https://profiles.ihe.net/ITI/MHD/StructureDefinition-IHE.MHD.Comprehensive.SubmissionSet.html."""
    extensions: list[dict[str, Any]] = [
        {
            "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId",
            "valueIdentifier": {"value": source_id},
        },
        {
            "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType",
            "valueCodeableConcept": {"coding": [dict(designation)]},
        },
    ]
    out: dict[str, Any] = {
        "resourceType": "List",
        "meta": {"profile": [SUBMISSION_SET_PROFILE]},
        "extension": extensions,
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [{"system": MHD_IDENTIFIER, "code": "uniqueId"}]},
                "system": "urn:ietf:rfc:3986",
                "value": f"urn:oid:2.25.{uuid.uuid4().int}",
            },
            {
                "use": "official",
                "type": {"coding": [{"system": MHD_IDENTIFIER, "code": "entryUUID"}]},
                "system": "urn:ietf:rfc:3986",
                "value": submission_url,
            },
        ],
        "status": "current",
        "mode": "working",
        "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "submissionset"}]},
        "subject": dict(subject),
        "source": dict(source),
        "date": created,
        "entry": [{"item": {"reference": url}} for url in doc_urls],
    }
    if contained:
        out = {**out, "contained": contained}
    return out


__all__ = [
    "MHD_IDENTIFIER",
    "N1_TEMPLATES",
    "build_n1",
    "document_reference",
    "fhir_to_ts",
    "master_identifier",
    "minimal_pdf",
    "n1_header",
    "submission_set",
]
