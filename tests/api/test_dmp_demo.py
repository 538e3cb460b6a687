"""The demo start feeds its patients' DMP through ITI-65 like any producer: CI-SIS CDA N1
documents whose headers agree with their metadata, their content encrypted in the blob store.

https://profiles.ihe.net/ITI/MHD/ITI-65.html
"""

from __future__ import annotations

from pathlib import Path

from maison.api.app import DEMO_DMP_PATIENTS, prepare, system_principal
from maison.api.settings import Settings
from maison.fhir.search import parse_search
from maison.services.demo.documents import DEMO_DOCUMENTS
from maison.services.dmp import cda
from maison.services.dmp.lifecycle import is_dmp_document


def test_the_demo_start_feeds_documents(tmp_path: Path) -> None:
    services = prepare(Settings(data=str(tmp_path / "data"), demo_patients=DEMO_DMP_PATIENTS))
    try:
        query = parse_search(services.defs, "DocumentReference", [("_count", "100")])
        page = services.run(system_principal(), False, lambda tx: tx.search(query))
        docs = [e.resource for e in page.entries if is_dmp_document(e.resource)]
        assert len(docs) == DEMO_DMP_PATIENTS * len(DEMO_DOCUMENTS)
        assert services.dmp is not None
        types = {d["type"]["coding"][0]["code"] for d in docs if d}
        assert types == {kind[0] for kind, *_ in DEMO_DOCUMENTS}
        for doc in docs[:4]:
            assert doc is not None
            blob = doc["content"][0]["attachment"]["url"].split("/")[1]
            content = b"".join(services.dmp.blobs.open(blob))
            header = cda.parse_header(content)
            assert isinstance(header, cda.CdaHeader)
            pid = doc["subject"]["reference"].split("/")[1]
            patient = services.store.read(lambda tx, p=pid: tx.read("Patient", p))
            assert patient is not None and patient.resource is not None
            assert cda.check_against(header, doc, patient.resource) == []
            media, pdf = cda.embedded_document(content)  # type: ignore[misc]
            assert media == "application/pdf" and pdf.startswith(b"%PDF-")
    finally:
        services.store.close()
