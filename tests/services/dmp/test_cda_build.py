"""Building CI-SIS N1 documents: what is built parses back to the same header (hypothesis),
its DocumentReference raises no mismatch, the PDF comes back out, and the tiny PDF has exact
xref offsets."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from maison.services.dmp.cda import (
    Author,
    CdaHeader,
    Coded,
    InstanceId,
    Organization,
    PatientRecord,
    RelatedDocument,
    ServiceEvent,
    check_against,
    embedded_document,
    parse_header,
)
from maison.services.dmp.cda_build import (
    N1_TEMPLATES,
    build_n1,
    document_reference,
    fhir_to_ts,
    minimal_pdf,
    n1_header,
)

oids = st.lists(st.integers(0, 999), min_size=3, max_size=8).map(
    lambda parts: "1.2." + ".".join(map(str, parts))
)
words = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="-'"),
    min_size=1,
    max_size=12,
)
names = st.lists(words, min_size=1, max_size=3).map(" ".join)
zones = st.sampled_from(["+01:00", "+02:00", "-05:00", "+00:00"])
date_times = st.builds(
    lambda d, h, m, s, z: f"{d.isoformat()}T{h:02d}:{m:02d}:{s:02d}{z}",
    st.dates(),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    zones,
)
ins = st.builds(
    lambda n: f"{n:013d}{97 - n % 97:02d}", st.integers(1_000_000_000_000, 2_999_999_999_999)
)
codes = st.builds(Coded, words, oids, st.none() | names)


def headers() -> st.SearchStrategy[CdaHeader]:
    author = st.builds(
        Author,
        ids=st.tuples(
            st.builds(InstanceId, st.just("1.2.250.1.71.4.2.1"), ins.map(lambda x: x[:12]))
        ),
        given=names,
        family=names,
        prefix=st.none(),
        code=codes,
        time=date_times,
        organization=st.builds(
            Organization, st.builds(InstanceId, st.just("1.2.250.1.71.4.2.2"), words), names
        ),
        device=st.none(),
    )
    patient = st.builds(
        PatientRecord,
        ins=st.tuples(st.builds(InstanceId, st.just("1.2.250.1.213.1.4.8"), ins)),
        other_ids=st.lists(st.builds(InstanceId, oids, words), max_size=2).map(tuple),
        birth_family=names,
        birth_given_names=names,
        first_given=words,
        used_family=st.none() | names,
        used_given=st.none() | words,
        sex=st.sampled_from(["M", "F", "U"]),
        birth_date=st.dates().map(lambda d: d.isoformat()),
        birthplace_insee=st.none() | st.from_regex(r"\A[0-9]{5}\Z"),
    )
    event = st.builds(
        ServiceEvent,
        code=st.none() | codes,
        low=date_times,
        high=st.none() | date_times,
        performer=st.none() | st.builds(InstanceId, oids, words),
        practice_setting=st.builds(Coded, words, st.just("1.2.250.1.213.1.1.4.9"), names),
    )
    return st.builds(
        CdaHeader,
        id=st.builds(InstanceId, oids, st.none() | words),
        code=st.builds(Coded, words, st.just("2.16.840.1.113883.6.1"), names),
        effective_time=date_times,
        confidentiality=st.builds(
            Coded, st.sampled_from(["N", "R", "V"]), st.just("2.16.840.1.113883.5.25")
        ),
        patient=patient,
        authors=st.lists(author, min_size=1, max_size=2).map(tuple),
        set_id=st.builds(InstanceId, oids),
        version_number=st.integers(1, 50),
        title=names,
        language=st.just("fr-FR"),
        custodian=st.builds(
            Organization, st.builds(InstanceId, st.just("1.2.250.1.71.4.2.2"), words), names
        ),
        service_events=st.tuples(event),
        facility_id=st.none() | st.builds(InstanceId, oids, words),
        facility_type=st.builds(Coded, words, st.just("1.2.250.1.71.4.2.4"), names),
        related_documents=st.lists(
            st.builds(RelatedDocument, st.just("RPLC"), st.builds(InstanceId, oids)),
            max_size=1,
        ).map(tuple),
    )


@settings(max_examples=60, deadline=None)
@given(headers(), st.text(max_size=40))
def test_round_trip(header: CdaHeader, text: str) -> None:
    pdf = minimal_pdf(text)
    document = build_n1(header, pdf)
    parsed = parse_header(document)
    assert parsed == n1_header(header)
    assert check_against(parsed, document_reference(header, document, url="Binary/1")) == []
    assert embedded_document(document) == ("application/pdf", pdf)


def test_built_document_is_ci_sis_n1() -> None:
    header = parse_header(build_n1(_sample(), minimal_pdf("x")))
    assert isinstance(header, CdaHeader)
    assert header.template_ids == N1_TEMPLATES
    assert header.body is not None and header.body.kind == "nonXMLBody"


def _sample() -> CdaHeader:
    return CdaHeader(
        id=InstanceId("1.2.250.1.999.1", "doc-1"),
        code=Coded("11488-4", "2.16.840.1.113883.6.1", "CR de consultation"),
        effective_time="2023-02-15T14:30:00+01:00",
        confidentiality=Coded("N", "2.16.840.1.113883.5.25"),
        patient=PatientRecord(
            ins=(InstanceId("1.2.250.1.213.1.4.10", "279035121518989"),),
            birth_family="PAT-TROIS",
            birth_given_names="DOMINIQUE",
            first_given="DOMINIQUE",
            sex="F",
            birth_date="1979-03-28",
        ),
        authors=(Author(ids=(InstanceId("1.2.250.1.71.4.2.1", "801234534765"),)),),
        custodian=Organization(InstanceId("1.2.250.1.71.4.2.2", "1120459876"), "Labo"),
        service_events=(ServiceEvent(low="2023-02-15T14:00:00+01:00"),),
    )


def test_fhir_to_ts() -> None:
    assert fhir_to_ts("2023-02-15T14:30:00+01:00") == "20230215143000+0100"
    assert fhir_to_ts("2023-02-15T14:30:00Z") == "20230215143000+0000"
    assert fhir_to_ts("1979-03-28") == "19790328"


def test_minimal_pdf_xref_offsets_are_exact() -> None:
    pdf = minimal_pdf("Bonjour (Dr) \\ test")
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    startxref = int(re.search(rb"startxref\n(\d+)\n", pdf).group(1))  # type: ignore[union-attr]
    assert pdf[startxref:].startswith(b"xref\n0 6\n")
    entries = re.findall(rb"(\d{10}) 00000 n \n", pdf[startxref:])
    assert len(entries) == 5
    for number, offset in enumerate(entries, start=1):
        assert pdf[int(offset) :].startswith(f"{number} 0 obj\n".encode())
    length = int(re.search(rb"/Length (\d+)", pdf).group(1))  # type: ignore[union-attr]
    stream = pdf.index(b"stream\n") + len(b"stream\n")
    assert pdf[stream + length :].startswith(b"\nendstream")
    assert b"(Bonjour \\(Dr\\) \\\\ test)" in pdf
