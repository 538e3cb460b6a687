"""Synthetic DMP documents: PDSm Provide Document Bundles [ITI-65] (SubmissionSet,
DocumentReferences, Binaries) coded from the DMP's NOS value sets, CI-SIS CDA N1 documents whose
header agrees with their metadata, and the demo's set of documents per patient (a lab report,
a discharge letter, a vaccination history, an imaging report). Used by the demo start, the
tests and the benches.

https://interop.esante.gouv.fr/ig/fhir/pdsm/
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from maison.services.dmp.cda import (
    Author,
    CdaHeader,
    Coded,
    InstanceId,
    Organization,
    PatientRecord,
    ServiceEvent,
)
from maison.services.dmp.cda_build import MHD_IDENTIFIER, build_n1, minimal_pdf, submission_set
from maison.services.dmp.metadata import nos_url
from maison.services.dmp.provide import DOCUMENT_PROFILE
from maison.terminology.source import NOS_LOINC

A03 = nos_url("TRE_A03-ClasseDocument")
A08 = nos_url("TRE_A08-HL7Confidentiality")
A01 = nos_url("TRE_A01-CadreExercice")
A11 = nos_url("TRE_A11-IheFormatCode")
R02 = nos_url("TRE_R02-SecteurActivite")
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
PDF_FORMAT = "urn:ihe:iti:xds-sd:pdf:2008"
#: (type LOINC, class TRE_A03) pairs of ASS_X16.
CONSULTATION = ("11488-4", "10")  # compte rendu de consultation
LAB_REPORT = ("11502-2", "10")  # CR d'examens biologiques
DISCHARGE_LETTER = ("11490-0", "10")  # lettre de liaison à la sortie
VACCINATIONS = ("11369-6", "52")  # historique des vaccinations
IMAGING_REPORT = ("18748-4", "31")  # CR d'imagerie médicale
#: The NOS labels of those codes (JDV_J66 types, JDV_J57 classes), sent as producers send them.
DISPLAYS = {
    "11488-4": "CR ou fiche de consultation ou de visite",
    "11502-2": "CR d'examens biologiques",
    "11490-0": "Lettre de liaison à la sortie d'un établissement de soins",
    "11369-6": "Historique des vaccinations",
    "18748-4": "CR d'imagerie médicale",
    "10": "Compte rendu",
    "31": "Imagerie médicale",
    "52": "Certificat, déclaration",
}


def _coding(system: str, code: str) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if code in DISPLAYS:
        coding["display"] = DISPLAYS[code]
    return coding


def pdf(text: str = "Compte rendu") -> bytes:
    """A small PDF-looking payload (its bytes matter, not its rendering); :func:`cda_document`
    makes real ones."""
    return b"%PDF-1.4\n% maison test document\n" + text.encode() + b"\n%%EOF\n"


def _author() -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": "author",
        "identifier": [{"system": IDNPS, "value": "810000000001"}],
        "name": [{"family": "MEDECIN", "given": ["Alice"]}],
    }


def document(
    patient: str,
    content_url: str,
    data: bytes,
    *,
    type_code: str = CONSULTATION[0],
    class_code: str = CONSULTATION[1],
    label: str = "N",
    service_start: str = "2026-03-01T09:00:00+01:00",
    replaces: str | None = None,
    content_type: str = "application/pdf",
    title: str = "Compte rendu de consultation",
    master: str | None = None,
) -> dict[str, Any]:
    """A PDSm comprehensive DocumentReference of ``data`` for ``patient`` (a reference)."""
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {"profile": [DOCUMENT_PROFILE]},
        "contained": [
            _author(),
            {
                "resourceType": "Patient",
                "id": "spi",
                "identifier": [{"system": "urn:oid:1.2.250.1.999.2", "value": "IPP-0001"}],
            },
        ],
        "masterIdentifier": {
            "type": {"coding": [{"system": MHD_IDENTIFIER, "code": "uniqueId"}]},
            "system": "urn:ietf:rfc:3986",
            "value": master or f"urn:uuid:{uuid.uuid4()}",
        },
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [{"system": MHD_IDENTIFIER, "code": "entryUUID"}]},
                "system": "urn:ietf:rfc:3986",
                "value": f"urn:uuid:{uuid.uuid4()}",
            }
        ],
        "status": "current",
        "type": {"coding": [_coding(NOS_LOINC, type_code)]},
        "category": [{"coding": [_coding(A03, class_code)]}],
        "subject": {"reference": patient},
        "date": "2026-03-01T10:00:00+01:00",
        "author": [{"reference": "#author"}],
        "custodian": {
            "identifier": {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1750000001"}
        },
        "securityLabel": [{"coding": [{"system": A08, "code": label}]}],
        "content": [
            {
                "attachment": {
                    "contentType": content_type,
                    "language": "fr-FR",
                    "url": content_url,
                    "size": len(data),
                    "hash": base64.b64encode(hashlib.sha1(data).digest()).decode(),
                    "title": title,
                    "creation": "2026-03-01T10:00:00+01:00",
                },
                "format": {"system": A11, "code": PDF_FORMAT},
            }
        ],
        "context": {
            "sourcePatientInfo": {"reference": "#spi"},
            "period": {"start": service_start},
            "facilityType": {"coding": [{"system": R02, "code": "SA07"}]},
            "practiceSetting": {"coding": [{"system": A01, "code": "AMBULATOIRE"}]},
        },
    }
    if replaces is not None:
        doc["relatesTo"] = [{"code": "replaces", "target": {"reference": replaces}}]
    return doc


def provide_bundle(
    patient: str, payloads: list[bytes] | None = None, **options: Any
) -> dict[str, Any]:
    """A PDSm Provide Document Bundle of one document per payload for ``patient``."""
    payloads = payloads or [pdf()]
    submission_url = f"urn:uuid:{uuid.uuid4()}"
    docs: list[dict[str, Any]] = []
    binaries: list[dict[str, Any]] = []
    for data in payloads:
        doc_url, bin_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
        docs.append(
            {
                "fullUrl": doc_url,
                "resource": document(patient, bin_url, data, **options),
                "request": {"method": "POST", "url": "DocumentReference"},
            }
        )
        binaries.append(
            {
                "fullUrl": bin_url,
                "resource": {
                    "resourceType": "Binary",
                    "contentType": options.get("content_type", "application/pdf"),
                    "data": base64.b64encode(data).decode(),
                },
                "request": {"method": "POST", "url": "Binary"},
            }
        )
    submission = submission_set(
        {"reference": patient},
        {"reference": "#author"},
        {"system": R02, "code": "SA07"},
        "urn:oid:1.2.250.1.999.1",
        submission_url,
        [d["fullUrl"] for d in docs],
        "2026-03-01T10:00:00+01:00",
        [_author()],
    )
    return {
        "resourceType": "Bundle",
        "meta": {
            "profile": [
                "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
                "pdsm-comprehensive-provide-document-bundle"
            ]
        },
        "type": "transaction",
        "entry": [
            {
                "fullUrl": submission_url,
                "resource": submission,
                "request": {"method": "POST", "url": "List"},
            },
            *docs,
            *binaries,
        ],
    }


def cda_document(
    patient: dict[str, Any],
    ins: str,
    *,
    service_start: str = "2026-03-01T09:00:00+01:00",
    kind: tuple[str, str] = CONSULTATION,
    title: str = "CR de consultation",
    lines: tuple[str, ...] = (),
    ins_system: str = "1.2.250.1.213.1.4.10",
) -> tuple[bytes, str]:
    """A CI-SIS CDA N1 (a PDF inside) whose header agrees with :func:`document` for the
    ``patient`` resource carrying ``ins`` (test OID): its traits, and the masterIdentifier
    value naming it."""
    names = patient.get("name") or [{}]
    birth = next((n for n in names if n.get("use") == "official"), names[0])
    given = birth.get("given") or ["X"]
    doc_id = str(uuid.uuid4().int % 10**20)
    header = CdaHeader(
        id=InstanceId("1.2.250.1.999.3", doc_id),
        code=Coded(kind[0], "2.16.840.1.113883.6.1", title),
        effective_time="2026-03-01T10:00:00+01:00",
        confidentiality=Coded("N", "2.16.840.1.113883.5.25"),
        patient=PatientRecord(
            ins=(InstanceId(ins_system, ins),),
            birth_family=birth.get("family", "X"),
            birth_given_names=" ".join(given),
            first_given=given[0],
            sex={"male": "M", "female": "F"}.get(patient.get("gender", ""), "U"),
            birth_date=patient.get("birthDate", "1970-01-01"),
        ),
        authors=(Author(ids=(InstanceId("1.2.250.1.71.4.2.1", "810000000001"),)),),
        custodian=Organization(InstanceId("1.2.250.1.71.4.2.2", "1750000001"), "Centre"),
        service_events=(
            ServiceEvent(
                low=service_start,
                practice_setting=Coded("AMBULATOIRE", "1.2.250.1.213.1.1.4.9", "Ambulatoire"),
            ),
        ),
        facility_type=Coded("SA07", "1.2.250.1.71.4.2.4", "CHU"),
    )
    text = " - ".join((title, f"Patient {birth.get('family')}", *lines))
    xml = build_n1(header, minimal_pdf(text))
    return xml, f"urn:oid:1.2.250.1.999.3^{doc_id}"


#: The demo's documents per patient: (type/class, title, service date, lines of the report).
DEMO_DOCUMENTS: tuple[tuple[tuple[str, str], str, str, tuple[str, ...]], ...] = (
    (
        LAB_REPORT,
        "CR d'examens biologiques",
        "2026-01-12T08:30:00+01:00",
        ("Hemoglobine 13.9 g/dL", "Glycemie a jeun 5.1 mmol/L", "Creatinine 78 umol/L"),
    ),
    (
        DISCHARGE_LETTER,
        "Lettre de liaison a la sortie",
        "2026-02-03T16:00:00+01:00",
        ("Sejour en cardiologie du 28/01 au 03/02", "Traitement de sortie: bisoprolol 2.5 mg"),
    ),
    (
        VACCINATIONS,
        "Historique des vaccinations",
        "2025-10-20T10:00:00+02:00",
        ("DTP rappel 2021", "Grippe saisonniere 2025", "COVID-19 rappel 2024"),
    ),
    (
        IMAGING_REPORT,
        "CR d'imagerie medicale",
        "2026-02-20T11:15:00+01:00",
        ("Radiographie thoracique de face", "Pas d'anomalie pleuro-parenchymateuse"),
    ),
)


def demo_documents(patient: dict[str, Any], reference: str) -> dict[str, Any] | None:
    """The demo's Provide Document Bundle for one patient (CDA N1 documents of
    :data:`DEMO_DOCUMENTS`), or None when the patient carries no INS to name him by."""
    found = next(
        (
            i
            for i in patient.get("identifier") or []
            if str(i.get("system", "")).startswith("urn:oid:1.2.250.1.213.1.4.")
        ),
        None,
    )
    if found is None:
        return None
    payloads: list[tuple[bytes, str, tuple[str, str], str, str]] = []
    for kind, title, start, lines in DEMO_DOCUMENTS:
        xml, master = cda_document(
            patient,
            found["value"],
            service_start=start,
            kind=kind,
            title=title,
            lines=lines,
            ins_system=found["system"].removeprefix("urn:oid:"),
        )
        payloads.append((xml, master, kind, start, title))
    bundles = [
        provide_bundle(
            reference,
            [xml],
            content_type="text/xml",
            master=master,
            type_code=kind[0],
            class_code=kind[1],
            service_start=start,
            title=title,
        )
        for xml, master, kind, start, title in payloads
    ]
    first = bundles[0]
    for other in bundles[1:]:  # one submission set for the patient's documents
        first["entry"][0]["resource"]["entry"] += other["entry"][0]["resource"]["entry"]
        first["entry"] += other["entry"][1:]
    return first
