"""A professional adds a PDF to a patient's DMP from the portal: the CI-SIS CDA N1 and its PDSm
DocumentReference the portal builds are fed with ITI-65 through the real API, in process, as
that professional, on a strict DMP server (the NOS value sets and the PDSm guide loaded: the
bundle is validated against the PDSm profiles, the CDA header against the metadata), then
found with ITI-67 and retrieved with ITI-68 byte for byte.

https://interop.esante.gouv.fr/ig/documents/ and https://profiles.ihe.net/ITI/MHD/ITI-65.html
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

from maison.api.app import load_bundles, prepare
from maison.api.http import build_app
from maison.api.services import Services
from maison.api.settings import Settings
from maison.fhir.definitions import default_definitions
from maison.portal.cda_view import pdf_of
from maison.portal.upload import submission
from maison.security.professional import from_userinfo, token_claims
from maison.services.dmp import cda
from maison.services.dmp.cda_build import minimal_pdf
from maison.services.psc.annuaire_lookup import userinfo_for_professional
from support import CORPORA, SHARED

BASE = "http://testserver"
DOCTOR = "10014606213"  # a médecin of the demo Annuaire (README)
ACTIVITY = 1  # his cabinet (SIRET, secteur SA08), as `maison token --rpps … --activity 1`
DMP_GUIDES = ("hl7.fhir.fr.core", "IHE-ITI.MHD", "IG-fhir-partage-de-documents-de-sante")
CONSULTATION: dict[str, Any] = {
    "type_code": "11488-4",
    "type_display": "CR ou fiche de consultation ou de visite",
    "class_code": "10",
    "class_display": "Compte rendu",
}


class Client:
    """The app called in process."""

    def __init__(self, services: Services) -> None:
        self.transport = httpx.ASGITransport(app=build_app(services))

    def call(self, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url=BASE) as c:
                return await c.request(method, path, headers=headers, **kw)

        return anyio.run(go)


@dataclass
class World:
    services: Services
    client: Client
    system: str  # a backend token
    doctor: str  # the médecin's token, his professional context in it
    professional: dict[str, Any]  # the token's professional claim
    practitioner: dict[str, Any]  # his Practitioner, read through the API
    patient: dict[str, Any]  # a demo patient whose DMP is open, read through the API


def _install_reference_data(services: Services) -> None:
    """What `maison terminology load` and `maison ig install` do: the NOS lists of ../shared
    and the PDSm guides (FR Core, MHD, PDSm)."""
    from maison.cli.guides import collect_conformance, install_bundles
    from maison.terminology.loaders.detect import plan
    from maison.terminology.sql_source import SqlTerminology

    nos = [
        *sorted((SHARED / "domain/data/nos").glob("*.csv")),
        *sorted((CORPORA / "nos").glob("*.json")),
    ]
    terminology = SqlTerminology(services.store)
    for unit in plan(nos):
        terminology.load(unit.produce)
    found, _ = collect_conformance([CORPORA / "compiled" / g for g in DMP_GUIDES])
    for bundle, names in install_bundles(found, size=50):
        out = load_bundles(services, [bundle], responses=True)
        for name, entry in zip(names, out, strict=True):
            assert entry["response"]["status"][:3] in ("200", "201"), (name, entry)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = str(tmp_path_factory.mktemp("upload") / "data")
    first = prepare(Settings(data=data, demo=True, public_url=BASE))  # the demo feeds its DMPs
    try:
        _install_reference_data(first)
    finally:
        first.store.close()
    # then a strict DMP server on that data: nothing fed without being checked
    services = prepare(Settings(data=data, demo=True, public_url=BASE, dmp_strict=True))
    try:
        assert services.issuer is not None
        userinfo = userinfo_for_professional(services.store, default_definitions(), DOCTOR)
        context = from_userinfo(userinfo, ACTIVITY)
        claims = token_claims(context)
        doctor = services.issuer.mint(context.national_id, ["user/*.cruds"], BASE, 600, claims)
        system = services.issuer.mint("tester", ["system/*.*"], BASE, 600, {})
        client = Client(services)
        docs = client.call(
            "GET", "/DocumentReference", system, params={"status": "current", "_count": "1"}
        )
        assert docs.status_code == 200, docs.text
        subject = docs.json()["entry"][0]["resource"]["subject"]["reference"]
        patient = client.call("GET", f"/{subject}", doctor)
        assert patient.status_code == 200, patient.text
        practitioner = client.call("GET", f"/Practitioner/{context.national_id}", doctor)
        assert practitioner.status_code == 200, practitioner.text
        yield World(
            services,
            client,
            system,
            doctor,
            claims["professional"],
            practitioner.json(),
            patient.json(),
        )
    finally:
        services.store.close()


@pytest.fixture
def w(world: World) -> World:
    """The module's world, under a short name."""
    return world


def _bundle_for(w: World, **options: Any) -> dict[str, Any]:
    return submission(
        w.patient,
        w.professional,
        options.pop("author", w.practitioner),
        minimal_pdf("CR"),
        title="CR",
        service_date=options.pop("service_date", "2025-11-20"),
        **CONSULTATION,
    )


def _bundle(w: World, pdf: bytes, **options: Any) -> dict[str, Any]:
    kind = {**CONSULTATION, **options}
    return submission(
        w.patient,
        w.professional,
        w.practitioner,
        pdf,
        title=kind.pop("title", "CR de consultation du 20 novembre 2025"),
        service_date=kind.pop("service_date", "2025-11-20T09:30:00+01:00"),
        **kind,
    )


def _entries(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["resource"]["resourceType"]: e for e in bundle["entry"]}


def test_the_submission_is_one_cda_whose_header_agrees_with_its_metadata(w: World) -> None:
    pdf = minimal_pdf("Consultation du 20 novembre 2025")
    bundle = _bundle(w, pdf)
    assert bundle["type"] == "transaction"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["List", "DocumentReference", "Binary"]
    entries = _entries(bundle)
    binary, doc = entries["Binary"]["resource"], entries["DocumentReference"]["resource"]
    xml = base64.b64decode(binary["data"])
    assert binary["contentType"] == "text/xml"
    attachment = doc["content"][0]["attachment"]
    assert attachment["contentType"] == "text/xml"
    assert attachment["url"] == entries["Binary"]["fullUrl"]
    assert attachment["size"] == len(xml)
    assert base64.b64decode(attachment["hash"]) == hashlib.sha1(xml).digest()
    assert doc["content"][0]["format"]["code"] == "urn:ihe:iti:xds-sd:pdf:2008"
    header = cda.parse_header(xml)
    assert isinstance(header, cda.CdaHeader)
    assert cda.check_against(header, doc, w.patient) == []
    assert pdf_of(xml) == pdf
    # the author is the signed-in professional, the custodian his structure
    idnps = w.professional["idnps"]
    assert [(i.root, i.extension) for i in header.authors[0].ids] == [(cda.ID_NAT_PS, idnps)]
    assert header.authors[0].family == w.practitioner["name"][0]["family"]
    assert header.custodian is not None and header.custodian.id is not None
    assert header.custodian.id.extension == "3" + w.professional["structure"]["siret"]
    assert header.patient.main_ins.extension == next(
        i["value"] for i in w.patient["identifier"] if i["system"].startswith("urn:oid:1.2.250")
    )
    assert doc["type"]["coding"][0]["system"].endswith("TRE-A04-Loinc")
    assert doc["category"][0]["coding"][0]["system"].endswith("TRE-A03-ClasseDocument")


def test_a_professional_adds_a_pdf_to_a_patients_dmp(w: World) -> None:
    pdf = minimal_pdf("Compte rendu de consultation - examen clinique normal")
    bundle = _bundle(w, pdf)
    xml = base64.b64decode(_entries(bundle)["Binary"]["resource"]["data"])
    fed = w.client.call("POST", "/", w.doctor, json=bundle)
    assert fed.status_code == 200, fed.text
    body = fed.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"][:3] for e in body["entry"]] == ["201", "201", "201"]
    doc_id = body["entry"][1]["response"]["location"].split("/")[1]
    patient = f"Patient/{w.patient['id']}"
    # ITI-67 as that professional, once the patient consented to his access (oral)
    consent = w.client.call(
        "POST",
        f"/{patient}/$dmp-consent",
        w.doctor,
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "method", "valueCode": "oral"}],
        },
    )
    assert consent.status_code == 200, consent.text
    found = w.client.call(
        "GET",
        "/DocumentReference",
        w.doctor,
        params={"patient": patient, "status": "current", "_count": "50"},
    )
    assert found.status_code == 200, found.text
    mine = [e["resource"] for e in found.json()["entry"] if e["resource"]["id"] == doc_id]
    assert len(mine) == 1
    doc = mine[0]
    sent = _entries(bundle)["DocumentReference"]["resource"]
    assert doc["masterIdentifier"]["value"] == sent["masterIdentifier"]["value"]
    assert doc["type"]["coding"][0]["code"] == "11488-4"
    # ITI-68: the CDA byte for byte, the PDF inside it the one uploaded
    url = doc["content"][0]["attachment"]["url"]
    assert url.startswith("Binary/")
    content = w.client.call("GET", f"/{url}", w.doctor, headers={"Accept": "*/*"})
    assert content.status_code == 200, content.text
    assert content.content == xml
    assert pdf_of(content.content) == pdf


def test_a_pair_outside_ass_x16_is_refused_by_the_server(w: World) -> None:
    before = w.client.call(
        "GET",
        "/DocumentReference",
        w.system,
        params={"patient": f"Patient/{w.patient['id']}", "_summary": "count"},
    ).json()["total"]
    # a consultation report filed as a certificate (class 52): not the class ASS_X16 gives
    bundle = _bundle(w, minimal_pdf("CR"), class_code="52", class_display="Certificat")
    refused = w.client.call("POST", "/", w.doctor, json=bundle)
    assert 400 <= refused.status_code < 500, refused.text
    outcome = refused.json()
    assert outcome["resourceType"] == "OperationOutcome"
    errors = [i["diagnostics"] for i in outcome["issue"] if i["severity"] == "error"]
    assert any("11488-4" in e and "52" in e and "ASS_X16" in e for e in errors), errors
    after = w.client.call(
        "GET",
        "/DocumentReference",
        w.system,
        params={"patient": f"Patient/{w.patient['id']}", "_summary": "count"},
    ).json()["total"]
    assert after == before  # nothing stored


def test_a_file_that_is_not_a_pdf_is_refused(w: World) -> None:
    for data in (b"<html>not a pdf</html>", b"", b"PDF-1.4 without its percent sign"):
        with pytest.raises(ValueError, match=r"^Le fichier n'est pas un PDF\.$"):
            _bundle(w, data)


def test_a_patient_without_ins_is_refused(w: World) -> None:
    patient = copy.deepcopy(w.patient)
    patient["identifier"] = [
        i for i in patient["identifier"] if not i["system"].startswith("urn:oid:1.2.250.1.213")
    ]
    with pytest.raises(ValueError, match="INS"):
        submission(
            patient,
            w.professional,
            w.practitioner,
            minimal_pdf("CR"),
            title="CR",
            service_date="2025-11-20",
            **CONSULTATION,
        )


def test_without_his_practitioner_the_author_is_named_from_the_claim_or_generically(
    w: World,
) -> None:
    bundle = submission(
        w.patient,
        w.professional,
        None,
        minimal_pdf("CR"),
        title="CR",
        service_date="2025-11-20",
        **CONSULTATION,
    )
    entries = _entries(bundle)
    xml = base64.b64decode(entries["Binary"]["resource"]["data"])
    header = cda.parse_header(xml)
    assert isinstance(header, cda.CdaHeader)
    assert header.authors[0].family == "Professionnel de santé"
    doc = entries["DocumentReference"]["resource"]
    assert cda.check_against(header, doc, w.patient) == []
    named = submission(
        w.patient,
        {**w.professional, "family_name": "PASQUIER", "given_name": "Mickaël"},
        None,
        minimal_pdf("CR"),
        title="CR",
        service_date="2025-11-20",
        **CONSULTATION,
    )
    xml = base64.b64decode(_entries(named)["Binary"]["resource"]["data"])
    header = cda.parse_header(xml)
    assert isinstance(header, cda.CdaHeader)
    assert (header.authors[0].given, header.authors[0].family) == ("Mickaël", "PASQUIER")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"structure": {"rass": "R10000147"}}, "ni FINESS ni SIRET"),
        ({"secteur": None}, "secteur d'activité"),
        ({"idnps": None}, "IDNPS"),
    ],
)
def test_what_the_professional_context_must_give(
    w: World, change: dict[str, Any], message: str
) -> None:
    professional = {**w.professional, **change}
    with pytest.raises(ValueError, match=message):
        submission(
            w.patient,
            professional,
            None,
            minimal_pdf("CR"),
            title="CR",
            service_date="2025-11-20",
            **CONSULTATION,
        )


def test_a_practitioner_who_is_not_the_signed_in_professional_is_refused(w: World) -> None:
    other = copy.deepcopy(w.practitioner)
    for ident in other["identifier"]:
        if ident["system"] == "urn:oid:1.2.250.1.71.4.2.1":
            ident["value"] = "810000000009"
    with pytest.raises(ValueError, match="n'est pas celle du professionnel connecté"):
        _bundle_for(w, author=other)


def test_a_service_date_in_the_future_or_malformed_is_refused(w: World) -> None:
    with pytest.raises(ValueError, match="futur"):
        _bundle_for(w, service_date="2999-01-01")
    with pytest.raises(ValueError, match="n'est pas une date"):
        _bundle_for(w, service_date="20/11/2026")


def test_an_establishment_without_secteur_in_the_claim_names_its_facility_type(w: World) -> None:
    """His hospital activity (a FINESS, no secteur in the claim): the portal asks for the
    facility type; the custodian is ``1`` + FINESS, the practice setting ETABLISSEMENT."""
    hospital = {
        **{k: v for k, v in w.professional.items() if k not in ("secteur", "role")},
        "activity": 0,
        "structure": {"finess": "632599957", "siret": "77571277100010"},
    }
    bundle = submission(
        w.patient,
        hospital,
        w.practitioner,
        minimal_pdf("CR"),
        title="CR",
        service_date="2025-11-20",
        facility_type=("SA01", "Etablissement public de santé"),
        **CONSULTATION,
    )
    entries = _entries(bundle)
    header = cda.parse_header(base64.b64decode(entries["Binary"]["resource"]["data"]))
    assert isinstance(header, cda.CdaHeader)
    assert header.custodian is not None and header.custodian.id is not None
    assert header.custodian.id.extension == "1632599957"
    assert header.practice_setting is not None and header.practice_setting.code == "ETABLISSEMENT"
    doc = entries["DocumentReference"]["resource"]
    assert doc["context"]["facilityType"]["coding"][0]["code"] == "SA01"
    assert cda.check_against(header, doc, w.patient) == []
