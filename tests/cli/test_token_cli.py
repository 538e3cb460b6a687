"""`maison token --patient INS` (the Patient carrying the INS becomes the launch patient) and
`maison token --system CLIENT` (a backend's system/ token), as a tester uses them."""

from __future__ import annotations

from pathlib import Path

from test_psc_cli import _claims, _run

from maison.api.app import prepare
from maison.api.settings import Settings
from maison.cli.main import app

INS_TEST = "urn:oid:1.2.250.1.213.1.4.10"


def test_token_for_a_patient_by_ins_and_for_a_backend(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    services = prepare(Settings(data=data, demo_patients=2))
    try:
        from maison.api.app import system_principal
        from maison.fhir.search import parse_search

        query = parse_search(services.defs, "Patient", [("_count", "1")])
        page = services.run(system_principal(), False, lambda tx: tx.search(query))
        patient = page.entries[0]
        assert patient.resource is not None
        ins = next(i["value"] for i in patient.resource["identifier"] if i["system"] == INS_TEST)
    finally:
        services.store.close()
    code, out, text = _run(
        app, "token", "--data", data, "--patient", ins, "--scope", "patient/*.rs"
    )
    assert code == 0, text
    claims = _claims(out.strip().splitlines()[-1])
    assert claims["patient"] == patient.id and claims["scope"] == "patient/*.rs"
    code, out, text = _run(app, "token", "--data", data, "--patient", "199999999999999")
    assert code == 2 and "no Patient carries the INS" in text
    code, out, text = _run(app, "token", "--data", data, "--system", "lab-producer")
    assert code == 0, text
    claims = _claims(out.strip().splitlines()[-1])
    assert claims["client_id"] == "lab-producer" and claims["sub"] == "lab-producer"
    assert claims["scope"] == "system/*.*"
    code, out, text = _run(app, "token", "--data", data, "--system", "x", "--scope", "user/*.rs")
    assert code == 2 and "system/ scopes only" in text
