"""A professional adds a document to a patient's DMP from the portal: his PDF becomes a CI-SIS
CDA R2 level 1 document (the PDF base64 in a ``nonXMLBody``, IHE XDS-SD) and its PDSm
comprehensive DocumentReference, in an ITI-65 Provide Document Bundle the portal submits
through the API with his own token.

The CDA header is written once (:class:`~maison.services.dmp.cda.CdaHeader`) and both the XML
(:func:`~maison.services.dmp.cda_build.build_n1`) and the DocumentReference
(:func:`~maison.services.dmp.cda_build.document_reference`) are made from it, so the server's
:func:`~maison.services.dmp.cda.check_against` finds nothing to object. On top of what
``document_reference`` gives, the DocumentReference carries what the PDSm profile and the DMP
value sets want, coded as the demo's producer codes them: the type under the NOS TRE_A04 LOINC
system, the class (TRE_A03), the format code of an N1 document (TRE_A11), the confidentiality
under TRE_A08, the entryUUID, the uniqueId type of the masterIdentifier, the source patient.

Decisions:

* the document id and set id are ``2.25.<UUID>`` OIDs (ITU-T X.667: unique without
  registration); the SubmissionSet's ``sourceId`` is a fixed OID of the same kind naming this
  portal, :data:`PORTAL_SOURCE_ID` (a deployment connected to the real DMP needs the OID the ANS
  registers for it);
* the author is the signed-in professional: his IDNPS from the token's ``professional`` claim,
  his names from his Practitioner (else from the claim, else "Professionnel de santé"), his
  TRE_A02 code ``G15_<profession>[/<savoir-faire>]`` (CI-SIS JDV_J01 authorSpecialty), his
  structure as ``representedOrganization``; in the DocumentReference, a contained
  PractitionerRole (specialty, organization) naming the contained Practitioner;
* the custodian is the structure of the chosen activity, by its idNatStruct: ``1`` + FINESS,
  else ``3`` + SIRET (TRE_G07 forms); a structure known only by its RASS technical id cannot be
  named in a CDA (no idNatStruct derivable from it) and is refused;
* the facility type (TRE_R02) defaults to the activity's secteur, and is asked for (a
  ValueError) when the claim has none: PDSm requires it (``designationType``,
  ``facilityType``), a guess would misfile the document; the practice setting
  (TRE_A01) defaults to ``ETABLISSEMENT`` for a health establishment (secteurs SA01 to SA04, or
  an unknown secteur with a FINESS) and ``AMBULATOIRE`` otherwise;
* the type/class pair is not checked here: the server checks it against ASS_X16 and its
  refusal is what the portal shows.

https://interop.esante.gouv.fr/ig/documents/ (CI-SIS structuration minimale, N1),
https://interop.esante.gouv.fr/ig/fhir/pdsm/ and https://profiles.ihe.net/ITI/MHD/ITI-65.html
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from maison.services.dmp.cda import (
    ID_NAT_PS,
    ID_NAT_STRUCT,
    INS_ROOTS,
    Author,
    CdaHeader,
    Coded,
    InstanceId,
    Organization,
    PatientRecord,
    ServiceEvent,
)
from maison.services.dmp.cda_build import (
    MHD_IDENTIFIER,
    build_n1,
    document_reference,
    submission_set,
)
from maison.services.dmp.metadata import nos_url
from maison.services.dmp.provide import (
    DOCUMENT_PROFILE,
)
from maison.terminology.source import NOS_LOINC

PDF_MAGIC: Final = b"%PDF-"
#: The media type of the CDA document in the Binary and the attachment.
CDA_MEDIA_TYPE: Final = "text/xml"
#: XDS-SD format code of a PDF in a CDA (TRE_A11), as the demo's producer sends it.
PDF_FORMAT: Final = "urn:ihe:iti:xds-sd:pdf:2008"
A01: Final = nos_url("TRE_A01-CadreExercice")
A03: Final = nos_url("TRE_A03-ClasseDocument")
A08: Final = nos_url("TRE_A08-HL7Confidentiality")
A11: Final = nos_url("TRE_A11-IheFormatCode")
R02: Final = nos_url("TRE_R02-SecteurActivite")
IDNPS: Final = f"urn:oid:{ID_NAT_PS}"
PDSM_BUNDLE: Final = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
    "pdsm-comprehensive-provide-document-bundle"
)
#: CDA code systems (OIDs): LOINC, HL7 confidentiality, HL7 gender, TRE_A02, TRE_R02, TRE_A01.
LOINC_OID: Final = "2.16.840.1.113883.6.1"
CONFIDENTIALITY_OID: Final = "2.16.840.1.113883.5.25"
TRE_A02_OID: Final = "1.2.250.1.213.1.1.4.5"
TRE_R02_OID: Final = "1.2.250.1.71.4.2.4"
TRE_A01_OID: Final = "1.2.250.1.213.1.1.4.9"
#: The ``sourceId`` of the portal's submission sets: a ``2.25`` OID of a fixed UUID.
PORTAL_SOURCE_ID: Final = (
    f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'https://maison.example.org/portal/dmp-upload').int}"
)
#: Secteurs (TRE_R02) of health establishments: their documents are filed ETABLISSEMENT.
ESTABLISHMENT_SECTEURS: Final = frozenset({"SA01", "SA02", "SA03", "SA04"})
PRACTICE_SETTINGS: Final = {
    "ETABLISSEMENT": "Etablissement de santé",
    "AMBULATOIRE": "Ambulatoire",
}
CONFIDENTIALITY_LABELS: Final = {"N": "Normal", "R": "Restreint", "V": "Très restreint"}
DEFAULT_AUTHOR: Final = "Professionnel de santé"
BIRTH_LIST_GIVEN: Final = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name"
)
INSEE_CODE: Final = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
PARIS: Final = ZoneInfo("Europe/Paris")


def _ins(patient: Mapping[str, Any]) -> InstanceId:
    """The patient's INS (NIR, else NIA, else test, else demo), or a ValueError."""
    found: list[InstanceId] = []
    for ident in patient.get("identifier") or []:
        if not isinstance(ident, Mapping) or ident.get("use") == "old":
            continue
        root = str(ident.get("system") or "").removeprefix("urn:oid:")
        value = ident.get("value")
        if root in INS_ROOTS and isinstance(value, str) and value.strip():
            found.append(InstanceId(root, value.strip()))
    if not found:
        raise ValueError(
            "Le patient n'a pas d'INS (matricule INS) : un document ne peut être ajouté qu'au "
            "DMP d'un patient identifié par son INS."
        )
    return min(found, key=lambda i: INS_ROOTS.index(i.root))


def _name(patient: Mapping[str, Any], use: str) -> Mapping[str, Any] | None:
    names = [n for n in patient.get("name") or [] if isinstance(n, Mapping)]
    return next((n for n in names if n.get("use") == use), None)


def _patient_record(patient: Mapping[str, Any], ins: InstanceId) -> PatientRecord:
    """recordTarget: the INS and the INS traits (birth names, sex, birth date, birthplace)."""
    names = [n for n in patient.get("name") or [] if isinstance(n, Mapping)]
    birth = _name(patient, "official") or (names[0] if names else {})
    given = [str(g) for g in birth.get("given") or [] if g]
    birth_list = next(
        (
            str(e.get("valueString"))
            for e in birth.get("extension") or []
            if isinstance(e, Mapping) and e.get("url") == BIRTH_LIST_GIVEN and e.get("valueString")
        ),
        " ".join(given) or None,
    )
    used = _name(patient, "usual")
    used_given = [str(g) for g in (used or {}).get("given") or [] if g]
    gender = patient.get("gender")
    return PatientRecord(
        ins=(ins,),
        birth_family=str(birth["family"]) if birth.get("family") else None,
        birth_given_names=birth_list,
        first_given=given[0] if given else None,
        used_family=str(used["family"]) if used and used.get("family") else None,
        used_given=used_given[0] if used_given else None,
        sex={"male": "M", "female": "F"}.get(str(gender), "U") if gender else None,
        birth_date=str(patient["birthDate"]) if patient.get("birthDate") else None,
        birthplace_insee=_birthplace(patient),
    )


def _birthplace(patient: Mapping[str, Any]) -> str | None:
    for ext in patient.get("extension") or []:
        if not isinstance(ext, Mapping) or not str(ext.get("url", "")).endswith(
            "patient-birthPlace"
        ):
            continue
        address = ext.get("valueAddress")
        for inner in (address if isinstance(address, Mapping) else {}).get("extension") or []:
            if not isinstance(inner, Mapping) or inner.get("url") != INSEE_CODE:
                continue
            coding = inner.get("valueCoding")
            if isinstance(coding, Mapping):
                code = coding.get("code")
                return str(code) if code else None
    return None


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _idnps(professional: Mapping[str, Any]) -> str:
    idnps = _text(professional.get("idnps"))
    if idnps is None:
        raise ValueError(
            "Le jeton ne porte pas de contexte de professionnel de santé (IDNPS) : seul un "
            "professionnel connecté par Pro Santé Connect peut alimenter un DMP."
        )
    return idnps


def _author_names(
    professional: Mapping[str, Any], author: Mapping[str, Any] | None, idnps: str
) -> tuple[str | None, str]:
    """(given names, family name) of the author: his Practitioner's, else the claim's."""
    if author is not None:
        known = [
            str(i.get("value"))
            for i in author.get("identifier") or []
            if isinstance(i, Mapping) and i.get("system") == IDNPS and i.get("value")
        ]
        if known and idnps not in known:
            raise ValueError(
                f"La fiche du professionnel ({', '.join(known)}) n'est pas celle du "
                f"professionnel connecté ({idnps})."
            )
        names = [n for n in author.get("name") or [] if isinstance(n, Mapping)]
        name = next(
            (n for use in ("official", "usual") for n in names if n.get("use") == use),
            names[0] if names else None,
        )
        if name is not None and _text(name.get("family")):
            given = " ".join(str(g) for g in name.get("given") or [] if g) or None
            return given, str(_text(name.get("family")))
    family = _text(professional.get("family_name"))
    if family is not None:
        return _text(professional.get("given_name")), family
    return None, _text(professional.get("name")) or DEFAULT_AUTHOR


def _specialty(professional: Mapping[str, Any]) -> Coded | None:
    """The author's TRE_A02 code: ``G15_<profession>`` or ``G15_<profession>/<savoir-faire>``."""
    profession = _text(professional.get("profession"))
    if profession is None:
        return None
    skill = _text(professional.get("savoir_faire"))
    code = f"G15_{profession}/{skill}" if skill else f"G15_{profession}"
    return Coded(code, TRE_A02_OID)


def _structure(professional: Mapping[str, Any]) -> InstanceId:
    """The idNatStruct of the chosen activity's structure (``1`` + FINESS, ``3`` + SIRET)."""
    structure = professional.get("structure")
    cells = structure if isinstance(structure, Mapping) else {}
    national = _text(cells.get("idnst"))
    if national is not None:
        return InstanceId(ID_NAT_STRUCT, national)
    finess, siret = _text(cells.get("finess")), _text(cells.get("siret"))
    if finess is not None:
        return InstanceId(ID_NAT_STRUCT, "1" + finess)
    if siret is not None:
        return InstanceId(ID_NAT_STRUCT, "3" + siret)
    raise ValueError(
        "La structure de l'activité choisie n'a ni FINESS ni SIRET : le document ne peut pas "
        "désigner la structure qui le conserve. Choisissez une autre activité."
    )


def _service_date(value: str, today: date) -> str:
    """The service date as FHIR date or dateTime (a time without zone is French time)."""
    text = value.strip()
    try:
        if "T" in text:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=PARIS)
            day, shown = moment.astimezone(PARIS).date(), moment.isoformat(timespec="seconds")
        else:
            day = date.fromisoformat(text)
            shown = day.isoformat()
    except ValueError:
        raise ValueError(f"La date de l'acte {value!r} n'est pas une date (AAAA-MM-JJ).") from None
    if day > today:
        raise ValueError("La date de l'acte ne peut pas être dans le futur.")
    return shown


def _coding(system: str, code: str, display: str | None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def submission(
    patient: dict[str, Any],
    professional: Mapping[str, Any],
    author: dict[str, Any] | None,
    pdf: bytes,
    *,
    type_code: str,
    type_display: str,
    class_code: str,
    class_display: str,
    title: str,
    service_date: str,
    confidentiality: str = "N",
    practice_setting: tuple[str, str] | None = None,
    facility_type: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The ITI-65 Provide Document Bundle of a PDF as a CI-SIS CDA N1 with its PDSm metadata.

    https://interop.esante.gouv.fr/ig/documents/ and https://profiles.ihe.net/ITI/MHD/ITI-65.html
    """
    if not isinstance(pdf, bytes | bytearray) or not bytes(pdf).startswith(PDF_MAGIC):
        raise ValueError("Le fichier n'est pas un PDF.")
    ins = _ins(patient)
    idnps = _idnps(professional)
    if not title.strip():
        raise ValueError("Le titre du document est obligatoire.")
    now = datetime.now(PARIS).replace(microsecond=0)
    created = now.isoformat()
    started = _service_date(service_date, now.date())
    structure = Organization(_structure(professional))
    given, family = _author_names(professional, author, idnps)
    secteur = _text(professional.get("secteur"))
    if facility_type is None and secteur is not None:
        facility_type = (secteur, "")
    if practice_setting is None:
        cells = professional.get("structure")
        finess = isinstance(cells, Mapping) and bool(_text(cells.get("finess")))
        establishment = secteur in ESTABLISHMENT_SECTEURS or (secteur is None and finess)
        setting = "ETABLISSEMENT" if establishment else "AMBULATOIRE"
        practice_setting = (setting, PRACTICE_SETTINGS[setting])
    if facility_type is None:
        raise ValueError(
            "Le secteur d'activité de la structure n'est pas connu pour l'activité choisie : "
            "indiquez le type de structure (secteur d'activité) du document."
        )
    facility = Coded(facility_type[0], TRE_R02_OID, facility_type[1] or None)
    header = CdaHeader(
        id=InstanceId(f"2.25.{uuid.uuid4().int}"),
        code=Coded(type_code, LOINC_OID, type_display or None),
        effective_time=created,
        confidentiality=Coded(
            confidentiality, CONFIDENTIALITY_OID, CONFIDENTIALITY_LABELS.get(confidentiality)
        ),
        patient=_patient_record(patient, ins),
        authors=(
            Author(
                ids=(InstanceId(ID_NAT_PS, idnps),),
                given=given,
                family=family,
                code=_specialty(professional),
                time=created,
                organization=structure,
            ),
        ),
        set_id=InstanceId(f"2.25.{uuid.uuid4().int}"),
        version_number=1,
        title=title.strip(),
        language="fr-FR",
        custodian=structure,
        service_events=(
            ServiceEvent(
                low=started,
                practice_setting=Coded(
                    practice_setting[0], TRE_A01_OID, practice_setting[1] or None
                ),
            ),
        ),
        facility_type=facility,
    )
    xml = build_n1(header, bytes(pdf))
    submission_url, doc_url, bin_url = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    doc = _document(header, xml, bin_url, doc_url, patient, ins)
    doc["type"] = {"coding": [_coding(NOS_LOINC, type_code, type_display)]}
    doc["category"] = [{"coding": [_coding(A03, class_code, class_display)]}]
    source = next(c for c in doc["contained"] if c["id"] == "author-1")
    the_set = submission_set(
        doc["subject"],
        {"reference": "#author"},
        _coding(R02, facility.code, facility.display),
        f"urn:oid:{PORTAL_SOURCE_ID}",
        submission_url,
        [doc_url],
        created,
        [{**source, "id": "author"}],
    )
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [PDSM_BUNDLE]},
        "type": "transaction",
        "entry": [
            {
                "fullUrl": submission_url,
                "resource": the_set,
                "request": {"method": "POST", "url": "List"},
            },
            {
                "fullUrl": doc_url,
                "resource": doc,
                "request": {"method": "POST", "url": "DocumentReference"},
            },
            {
                "fullUrl": bin_url,
                "resource": {
                    "resourceType": "Binary",
                    "contentType": CDA_MEDIA_TYPE,
                    "data": base64.b64encode(xml).decode("ascii"),
                },
                "request": {"method": "POST", "url": "Binary"},
            },
        ],
    }


def _document(
    header: CdaHeader,
    xml: bytes,
    bin_url: str,
    doc_url: str,
    patient: Mapping[str, Any],
    ins: InstanceId,
) -> dict[str, Any]:
    """``document_reference`` of the header, completed as PDSm and the DMP value sets want."""
    doc = document_reference(header, xml, url=bin_url, content_type=CDA_MEDIA_TYPE)
    doc["meta"] = {"profile": [DOCUMENT_PROFILE]}
    doc["masterIdentifier"] = {
        "type": {"coding": [{"system": MHD_IDENTIFIER, "code": "uniqueId"}]},
        **doc["masterIdentifier"],
    }
    doc["identifier"] = [
        {
            "use": "official",
            "type": {"coding": [{"system": MHD_IDENTIFIER, "code": "entryUUID"}]},
            "system": "urn:ietf:rfc:3986",
            "value": doc_url,
        }
    ]
    doc["securityLabel"] = [
        {"coding": [_coding(A08, header.confidentiality.code, header.confidentiality.display)]}
    ]
    doc["content"][0]["format"] = {"system": A11, "code": PDF_FORMAT}
    author = header.authors[0]
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": "author-role",
        "practitioner": {"reference": "#author-1"},
    }
    if author.code is not None:
        role["specialty"] = [
            {"coding": [_coding(str(author.code.fhir_system), author.code.code, None)]}
        ]
    if "custodian" in doc:
        role["organization"] = {"reference": "#custodian"}
    source: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "spi",
        "identifier": [{"system": f"urn:oid:{ins.root}", "value": ins.extension}],
    }
    for key in ("name", "gender", "birthDate"):
        if patient.get(key):
            source[key] = patient[key]
    doc["contained"] = [*doc["contained"], role, source]
    doc["author"] = [{"reference": "#author-role"}]
    doc["context"]["sourcePatientInfo"] = {"reference": "#spi"}
    practice = header.practice_setting
    if practice is not None:
        doc["context"]["practiceSetting"] = {
            "coding": [_coding(A01, practice.code, practice.display)]
        }
    if header.facility_type is not None:
        doc["context"]["facilityType"] = {
            "coding": [_coding(R02, header.facility_type.code, header.facility_type.display)]
        }
    return doc


__all__ = ["PORTAL_SOURCE_ID", "submission"]
