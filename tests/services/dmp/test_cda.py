"""CDA R2 header reading and checks: every TestContenuCDA example parses or is refused for a
true reason, the domain sample's values, one mismatch per DocumentReference field, the patient's
INS (qualified / not / unknown / bad key), and the hardened parser's refusals."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from maison.fhir.errors import Category
from maison.services.dmp.cda import (
    CdaError,
    CdaHeader,
    InstanceId,
    check_against,
    embedded_document,
    parse_header,
    patient_issue,
    same_time,
    ts_to_fhir,
)
from maison.services.dmp.cda_build import document_reference
from maison.terminology.source import NOS_LOINC
from support import CORPORA, SHARED

EXAMPLES = CORPORA / "TestContenuCDA-3-0" / "ExemplesCDA"
SAMPLE = (
    SHARED / "domain" / "data" / "cda" / "cda-header-example-ANS-DOC_NON_STRUCTURE_CDA-R2-N1.xml"
)
ALL = sorted(EXAMPLES.glob("*.xml"))
SELF_PRESENTING = {
    "BIO-CR-BIO_2021.01_Auto-Presentable.xml",
    "BIO-CR-BIO_2021.01_Auto-Presentable_avec-image.xml",
    "CANCER-PPS_2022.01_Autopresentable.xml",
}
BAD_ZONE = {  # legalAuthenticator/time "20240106113623+100": a 3-digit time zone
    "BIO-TROD_2024.01_Angine.xml",
    "BIO-TROD_2024.01_COVID-19.xml",
    "BIO-TROD_2024.01_COVID-19_Grippe-A_Grippe-B.xml",
    "BIO-TROD_2024.01_Cystite.xml",
}
N1 = {
    "BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.xml",
    "DOC_NON_STRUCTURE_CDA-R2-N1.xml",
    "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml",
    "TLM-CR_2022.01.xml",
}

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="TestContenuCDA corpus absent")


def _header(path: Path = SAMPLE) -> CdaHeader:
    header = parse_header(path.read_bytes())
    assert isinstance(header, CdaHeader), header
    return header


# --- the official examples ----------------------------------------------------------------


def test_corpus_counts() -> None:
    """94 examples: 83 N3 and 4 N1 parse; 3 self-presenting stylesheets and 4 BIO-TROD
    documents with a malformed time zone are refused."""
    assert len(ALL) == 94
    kinds: dict[str, int] = {}
    for path in ALL:
        header = parse_header(path.read_bytes())
        kind = "refused" if isinstance(header, CdaError) else str(header.body and header.body.kind)
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds == {"structuredBody": 83, "nonXMLBody": 4, "refused": 7}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_example_parses_or_is_refused_with_its_reason(path: Path) -> None:
    header = parse_header(path.read_bytes())
    if path.name in SELF_PRESENTING:
        assert isinstance(header, CdaError)
        assert header.reason.startswith("not a CDA R2 document: root element is xsl:stylesheet")
        return
    if path.name in BAD_ZONE:
        assert isinstance(header, CdaError)
        assert "legalAuthenticator/time" in header.reason
        assert "+HHMM" in header.reason
        return
    assert isinstance(header, CdaHeader), header
    assert header.patient.ins and header.authors
    assert header.effective_time[4] == "-" and header.effective_time.endswith(":00")
    assert header.body is not None
    if path.name in N1:
        assert header.body.kind == "nonXMLBody"
        assert (header.body.media_type, header.body.representation) == ("application/pdf", "B64")
        assert "1.3.6.1.4.1.19376.1.2.20" in header.template_ids
    else:
        assert header.body.kind == "structuredBody"
        assert header.body.section_count >= 1


@pytest.mark.parametrize("name", sorted(N1))
def test_embedded_pdf_of_the_n1_examples(name: str) -> None:
    result = embedded_document((EXAMPLES / name).read_bytes())
    assert isinstance(result, tuple), result
    media_type, content = result
    assert media_type == "application/pdf"
    assert content.startswith(b"%PDF-") and b"%%EOF" in content[-1024:]


def test_embedded_document_of_a_structured_body_is_refused() -> None:
    result = embedded_document((EXAMPLES / "VSM_1.4_2022.01.xml").read_bytes())
    assert isinstance(result, CdaError)
    assert "no nonXMLBody" in result.reason and "structuredBody" in result.reason


def test_embedded_document_refuses_other_representations_and_bad_base64() -> None:
    data = SAMPLE.read_bytes()
    txt = data.replace(b'representation="B64">(removed)', b'representation="TXT">hello')
    result = embedded_document(txt)
    assert isinstance(result, CdaError) and "only B64" in result.reason
    result = embedded_document(data)  # "(removed)" is not base64
    assert isinstance(result, CdaError) and "not valid base64" in result.reason


def test_embedded_document_is_size_capped() -> None:
    result = embedded_document((EXAMPLES / "TLM-CR_2022.01.xml").read_bytes(), max_bytes=1000)
    assert isinstance(result, CdaError) and result.category is Category.TOO_LARGE


# --- the domain sample --------------------------------------------------------------------


def test_domain_sample_values() -> None:
    h = _header()
    assert h.id == InstanceId("1.3.6.1.4.1.19376.1.2.20.1")
    assert h.set_id == InstanceId("F5CAAF6A-8047-46F1-89B8-A500B3161CB7")
    assert h.version_number == 1
    assert (h.code.code, h.code.system) == ("11502-2", "2.16.840.1.113883.6.1")
    assert h.title == "Compte rendu d'examens biologiques"
    assert h.effective_time == "2021-04-01T13:47:45+02:00"
    assert (h.confidentiality.code, h.confidentiality.system) == ("N", "2.16.840.1.113883.5.25")
    assert h.language == "fr-FR"
    p = h.patient
    assert p.ins == (InstanceId("1.2.250.1.213.1.4.10", "279035121518989"),)
    assert p.other_ids == (InstanceId("1.2.3.4.567.8.9.10", "1234567890121"),)
    assert (p.birth_family, p.birth_given_names, p.used_family, p.used_given) == (
        "PAT-TROIS",
        "DOMINIQUE",
        "PAT-TROIS",
        "DOMINIQUE",
    )
    assert (p.sex, p.birth_date, p.birthplace_insee) == ("F", "1979-03-28", "63220")
    (author,) = h.authors
    assert author.ids == (InstanceId("1.2.250.1.71.4.2.1", "801234534765"),)
    assert (author.given, author.family) == ("Marcel", "CAMPARINI")
    assert author.code is not None and author.code.code == "G15_10/SM03"
    assert author.time == "2021-01-04T16:05:27+01:00"
    assert author.organization is not None
    assert author.organization.id == InstanceId("1.2.250.1.71.4.2.2", "1120459876")
    assert h.custodian is not None and h.custodian.name == "Laboratoire des charmes"
    assert h.legal_authenticator is not None
    assert h.legal_authenticator.ids == (InstanceId("1.2.250.1.71.4.2.1", "807505123456"),)
    (event,) = h.service_events
    assert (event.low, event.high) == ("2021-01-04T13:47:00+01:00", "2021-01-04T13:55:00+01:00")
    assert event.performer == InstanceId("1.2.250.1.71.4.2.1", "801234567893")
    assert h.practice_setting is not None and h.practice_setting.code == "AMBULATOIRE"
    assert h.facility_type is not None and h.facility_type.code == "SA07"
    assert h.replaces is None
    assert h.body is not None and h.body.kind == "nonXMLBody"


def test_replacement_example_reads_the_parent_id() -> None:
    replacing = [
        h
        for h in (parse_header(p.read_bytes()) for p in ALL)
        if isinstance(h, CdaHeader) and h.replaces is not None
    ]
    assert replacing
    assert all(h.related_documents[0].type_code == "RPLC" for h in replacing)


@pytest.mark.parametrize(
    ("ts", "fhir"),
    [
        ("20230215143000+0100", "2023-02-15T14:30:00+01:00"),
        ("202302091130+0100", "2023-02-09T11:30:00+01:00"),
        ("20200701134745", "2020-07-01T13:47:45"),
        ("19790328", "1979-03-28"),
        ("197903", "1979-03"),
        ("20230215143000.123-0500", "2023-02-15T14:30:00.123-05:00"),
    ],
)
def test_timestamps(ts: str, fhir: str) -> None:
    assert ts_to_fhir(ts) == fhir


def test_same_time_across_zones() -> None:
    assert same_time("2021-04-01T13:47:45+02:00", "2021-04-01T11:47:45Z")
    assert not same_time("2021-04-01T13:47:45+02:00", "2021-04-01T13:47:45+01:00")
    assert same_time("2021-04-01", "2021-04-01T13:47:45+02:00")


# --- refusals -----------------------------------------------------------------------------


def test_malformed_xml() -> None:
    result = parse_header(b"<ClinicalDocument xmlns='urn:hl7-org:v3'>\n<id>\n</ClinicalDocument>")
    assert isinstance(result, CdaError) and result.category is Category.INVALID
    assert result.reason.startswith("the document is not well-formed XML (line 3, column")


def test_billion_laughs_is_refused_without_expansion() -> None:
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
            for i in range(1, 10)
        )
        + b"]><ClinicalDocument xmlns='urn:hl7-org:v3'>&lol9;</ClinicalDocument>"
    )
    result = parse_header(lol)
    assert isinstance(result, CdaError) and "DOCTYPE" in result.reason


def test_external_entity_is_refused() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<ClinicalDocument xmlns='urn:hl7-org:v3'><title>&x;</title></ClinicalDocument>"
    )
    result = parse_header(xxe)
    assert isinstance(result, CdaError) and "DOCTYPE" in result.reason


def test_non_cda_root() -> None:
    result = parse_header(b"<Bundle xmlns='http://hl7.org/fhir'/>")
    assert isinstance(result, CdaError)
    assert result.reason.startswith("not a CDA R2 document: root element is Bundle")


def test_missing_record_target() -> None:
    data = SAMPLE.read_bytes()
    start, end = data.index(b"<recordTarget>"), data.index(b"</recordTarget>") + 15
    result = parse_header(data[:start] + data[end:])
    assert isinstance(result, CdaError) and "no recordTarget" in result.reason


def test_record_target_without_ins() -> None:
    data = SAMPLE.read_bytes().replace(b'root="1.2.250.1.213.1.4.10"', b'root="1.2.3.4"')
    result = parse_header(data)
    assert isinstance(result, CdaError) and result.reason.startswith("recordTarget has no INS")


# --- check_against ------------------------------------------------------------------------

A07 = (
    "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/"
    "TRE-A07-StatutVisibiliteDocument"
)


def _doc_ref() -> dict[str, Any]:
    return document_reference(_header(), SAMPLE.read_bytes(), url="Binary/1")


def _fields(doc: dict[str, Any], patient: dict[str, Any] | None = None) -> list[str]:
    return [m.field for m in check_against(_header(), doc, patient)]


def test_consistent_metadata_have_no_mismatch() -> None:
    assert _fields(_doc_ref()) == []


def test_loinc_systems_are_one_and_visibility_codes_are_ignored() -> None:
    doc = _doc_ref()
    doc["type"]["coding"][0]["system"] = NOS_LOINC
    doc["securityLabel"].append({"coding": [{"system": A07, "code": "MASQUE_PS"}]})
    assert _fields(doc) == []
    doc["type"]["coding"][0]["system"] = "urn:oid:2.16.840.1.113883.6.1"
    assert _fields(doc) == []


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = doc
    for step in parents:
        node = node[int(step)] if step.isdigit() else node[step]
    if value is None:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("masterIdentifier.value", "urn:oid:1.2.3.4", "document unique id"),
        ("masterIdentifier", None, "document unique id"),
        ("type.coding.0.code", "11488-4", "document type"),
        ("type.coding.0.system", "http://snomed.info/sct", "document type"),
        ("securityLabel.0.coding.0.code", "R", "confidentiality"),
        ("content.0.attachment.creation", "2021-04-01T13:47:45+01:00", "document creation time"),
        ("content.0.attachment.language", "en-GB", "document language"),
        ("context.period.start", "2021-01-04T13:48:00+01:00", "start of the act (service event)"),
        ("context.period", None, "start of the act (service event)"),
        ("context.period.end", "2021-01-05T13:55:00+01:00", "end of the act (service event)"),
        (
            "context.facilityType.coding.0.code",
            "SA01",
            "healthcare facility type (secteur d'activité)",
        ),
        (
            "context.practiceSetting.coding.0.code",
            "ETABLISSEMENT",
            "practice setting (cadre d'exercice)",
        ),
        (
            "subject.reference",
            "Patient?identifier=urn:oid:1.2.250.1.213.1.4.10|279035121518990",
            "patient INS",
        ),
        ("contained.0.identifier.0.value", "899700218896", "author"),
        ("author", [{"reference": "PractitionerRole/opaque"}], "author"),
        ("contained.1.identifier.0.value", "1750512345", "custodian"),
        ("custodian", None, "custodian"),
        (
            "relatesTo",
            [{"code": "replaces", "target": {"reference": "DocumentReference/x"}}],
            "replaced document",
        ),
    ],
)
def test_one_change_names_exactly_that_field(path: str, value: Any, field: str) -> None:
    doc = _doc_ref()
    _set(doc, path, value)
    assert _fields(doc) == [field]


def test_optional_elements_may_be_absent() -> None:
    doc = _doc_ref()
    for key in ("facilityType", "practiceSetting"):
        del doc["context"][key]
    del doc["context"]["period"]["end"]
    del doc["content"][0]["attachment"]["creation"]
    assert _fields(doc) == []


def test_mismatch_says_both_values() -> None:
    doc = _doc_ref()
    doc["securityLabel"] = [{"coding": [{"system": A07, "code": "V"}]}]
    (mismatch,) = check_against(_header(), doc, None)
    assert mismatch.element == "securityLabel"
    assert "N" in mismatch.in_cda and "V" in mismatch.in_metadata
    assert str(mismatch).startswith("confidentiality: the CDA says N")


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "279035121518989"}],
        "name": [{"use": "official", "family": "PAT-TROIS", "given": ["DOMINIQUE"]}],
        "gender": "female",
        "birthDate": "1979-03-28",
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {
                    "extension": [
                        {
                            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/"
                            "fr-core-address-insee-code",
                            "valueCoding": {"code": "63220"},
                        }
                    ]
                },
            }
        ],
    }


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("name.0.family", "PAT-QUATRE", "patient birth name"),
        ("name.0.given", ["CLAUDE"], "patient first birth first name"),
        ("birthDate", "1979-03-29", "patient birth date"),
        ("gender", "male", "patient sex"),
        (
            "extension.0.valueAddress.extension.0.valueCoding.code",
            "75056",
            "patient birthplace (INSEE code)",
        ),
        ("identifier.0.value", "279035121518990", "patient INS"),
    ],
)
def test_patient_traits(path: str, value: Any, field: str) -> None:
    patient = _patient()
    assert _fields(_doc_ref(), patient) == []
    _set(patient, path, value)
    assert _fields(_doc_ref(), patient) == [field]


def test_pdsm4dmp_example_against_the_sample_names_the_differences() -> None:
    import json

    doc = json.loads(
        (
            CORPORA
            / "compiled"
            / "IG-FHIR-PDSM4DMP-EEDS"
            / "DocumentReference-example-annexe-docref-cda.json"
        ).read_text()
    )
    fields = set(_fields(copy.deepcopy(doc)))
    assert {"document unique id", "document type", "patient INS", "author"} <= fields
    assert "confidentiality" not in fields  # N in v3-Confidentiality on both sides


# --- patient_issue ------------------------------------------------------------------------


def test_qualified_ins_is_accepted() -> None:
    seen: list[tuple[str, str]] = []

    def find(system: str, value: str) -> str:
        seen.append((system, value))
        return "qualifiée"

    assert patient_issue(_header(), find) is None
    assert seen == [("urn:oid:1.2.250.1.213.1.4.10", "279035121518989")]
    assert patient_issue(_header(), lambda s, v: "QUAL") is None


@pytest.mark.parametrize("status", ["récupérée", "validée", "provisoire", "RECUP"])
def test_not_qualified_ins_is_refused(status: str) -> None:
    issue = patient_issue(_header(), lambda s, v: status)
    assert isinstance(issue, CdaError)
    word = "récupérée" if status == "RECUP" else status
    assert issue.reason == (
        "the CDA's patient INS 2 79 03 51 215 189 89 is not qualified in the platform "
        f"(status: {word})"
    )


def test_unknown_ins_is_refused() -> None:
    issue = patient_issue(_header(), lambda s, v: None)
    assert isinstance(issue, CdaError) and "is not known to the platform" in issue.reason


def test_ins_with_a_wrong_key_is_refused_before_lookup() -> None:
    header = _header(EXAMPLES / "CSE-CS9_2025.01.xml")  # 221042545611404: wrong key
    issue = patient_issue(header, lambda s, v: pytest.fail("looked up"))
    assert isinstance(issue, CdaError)
    assert "2 21 04 25 456 114 04" in issue.reason and "key does not match" in issue.reason
