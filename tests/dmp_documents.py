"""The DMP document builders, for the tests (they live with the demo data:
:mod:`maison.services.demo.documents`)."""

import uuid
from typing import Any

from maison.services.demo.documents import (
    CONSULTATION,
    LAB_REPORT,
    cda_document,
    document,
    pdf,
    provide_bundle,
)

__all__ = [
    "CONSULTATION",
    "INS_TEST",
    "LAB_REPORT",
    "cda_document",
    "document",
    "pdf",
    "provide_bundle",
    "qualified_patient",
]


INS_TEST = "urn:oid:1.2.250.1.213.1.4.10"


def qualified_patient(srv: Any) -> tuple[str, str]:
    """A patient whose INS the platform holds as qualified, created on the running server
    ``srv`` (a :class:`servers.Server`): (reference, INS)."""
    from maison.services.demo import synthetic

    index = 10**6 + uuid.uuid4().int % 10**7
    bundle = synthetic.patient_bundle(synthetic.bundle_rng(index, index), index)
    patient = bundle["entry"][0]["resource"]
    with srv.client(srv.mint("system/*.*", "ins:assert-insi")) as vendor:
        made = vendor.post("/Patient", json=patient)
    assert made.status_code == 201, made.text
    ins = next(i["value"] for i in patient["identifier"] if i["system"] == INS_TEST)
    return f"Patient/{made.json()['id']}", ins


#: The guides a DMP server holds: FR Core, IHE MHD and the ANS PDSm guide (compiled).
DMP_GUIDES = ("hl7.fhir.fr.core", "IHE-ITI.MHD", "IG-fhir-partage-de-documents-de-sante")


def dmp_server(backend: str, tmp: Any) -> Any:
    """A server without demo data holding the DMP's reference data: the PDSm guides and the
    NOS lists of ``../shared`` (the DMP value sets as CSV, the CI-SIS ones as FHIR JSON)."""
    from servers import guide_server, maison_cli
    from support import CORPORA, SHARED

    srv = guide_server(backend, tmp, *(CORPORA / "compiled" / g for g in DMP_GUIDES))
    nos = [
        *sorted((SHARED / "domain/data/nos").glob("*.csv")),
        *sorted((CORPORA / "nos").glob("*.json")),
    ]
    maison_cli(srv, "terminology", "load", *map(str, nos))
    return srv


def doctor_token(
    srv: Any,
    patient: str,
    *scopes: str,
    idnps: str = "810000000009",
    profession: str = "10",
) -> str:
    """A médecin's token (professional context) with the patient's consent to his access for
    this consultation, recorded by himself through ``$dmp-consent``."""
    token = srv.mint_professional(idnps, profession, *scopes)
    with srv.client(srv.mint_professional(idnps, profession)) as c:
        r = c.post(
            f"/{patient}/$dmp-consent",
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "method", "valueCode": "oral"}],
            },
        )
        assert r.status_code == 200, r.text
    return token
