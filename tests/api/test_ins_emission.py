"""The matricule INS of a non-qualified identity is never emitted: a document (DocumentReference,
Composition, document Bundle, List) naming a patient by INS is refused unless the platform holds
that identity as qualified (QUAL).

https://esante.gouv.fr/produits-services/referentiel-ins (RNIV)
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from maison.services.demo import synthetic
from maison.services.ins import reference
from maison.services.ins.reference import synthesize
from servers import Server

INS_TEST = f"urn:oid:{reference.OID_TEST}"


def _document(system: str, value: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"identifier": {"system": system, "value": value}},
        "content": [{"attachment": {"contentType": "text/plain", "data": "YQ=="}}],
    }


def test_a_document_names_only_a_qualified_ins(http: httpx.Client, server: Server) -> None:
    provisional = reference.to_patient(next(synthesize(1, seed=uuid.uuid4().int % 2**31)), "PROV")
    created = http.post("/Patient", json=provisional)
    assert created.status_code == 201, created.text
    ins = next(i for i in provisional["identifier"] if i["system"] == INS_TEST)
    refused = http.post("/DocumentReference", json=_document(ins["system"], ins["value"]))
    assert refused.status_code == 422, refused.text
    assert "PROV, not qualified" in refused.text
    # nobody carries it: refused too
    unknown = http.post("/DocumentReference", json=_document(ins["system"], "199999999999999"))
    assert unknown.status_code == 422
    # a qualified identity (a vendor that declares its INSi call and a high-trust document)
    index = 10**6 + uuid.uuid4().int % 10**7  # its own IPP too: one IPP, one patient
    bundle = synthetic.patient_bundle(synthetic.bundle_rng(index, index), index)
    qualified = bundle["entry"][0]["resource"]
    with server.client(server.mint("system/*.*", "ins:assert-insi")) as vendor:
        made = vendor.post("/Patient", json=qualified)
    assert made.status_code == 201, made.text
    q = next(i for i in qualified["identifier"] if i["system"] == INS_TEST)
    accepted = http.post("/DocumentReference", json=_document(q["system"], q["value"]))
    assert accepted.status_code == 201, accepted.text
