"""`maison ins synth` and `maison ins vigilance` as a cellule d'identitovigilance runs them
(`maison ins load` is exercised with the téléservice in tests/api/test_insi_http.py).

https://esante.gouv.fr/produits-services/referentiel-ins
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import orjson

from maison.services.ins import reference
from maison.services.ins.reference import RowError, read, synthesize
from servers import MAISON


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    return subprocess.run([*MAISON, *args], capture_output=True, text=True, env=env, check=False)


def test_synth_writes_valid_identities_under_the_test_oid(tmp_path: Path) -> None:
    out = tmp_path / "ref.jsonl"
    done = _run("ins", "synth", "300", "--out", str(out), "--seed", "5")
    assert done.returncode == 0, done.stderr
    rows = list(read(out))
    assert len(rows) == 300
    assert not [r for r in rows if isinstance(r, RowError)]  # every key and trait checks out
    assert {r.oid for r in rows if not isinstance(r, RowError)} == {reference.OID_TEST}
    again = tmp_path / "again.jsonl"
    assert _run("ins", "synth", "300", "--out", str(again), "--seed", "5").returncode == 0
    assert again.read_bytes() == out.read_bytes()  # same seed, same identities


def test_synth_refuses_a_real_nir_oid(tmp_path: Path) -> None:
    done = _run("ins", "synth", "10", "--out", str(tmp_path / "x.csv"), "--oid", reference.OID_NIR)
    assert done.returncode == 2
    assert "never" in done.stderr
    assert not (tmp_path / "x.csv").exists()


def _entry(patient: dict[str, Any]) -> dict[str, Any]:
    return {"resource": patient, "request": {"method": "POST", "url": "Patient"}}


def test_vigilance_reports_duplicates_and_anomalies(tmp_path: Path) -> None:
    people = list(synthesize(40, seed=9))
    patients = [reference.to_patient(p, "PROV") for p in people[:30]]
    # a duplicate of the first without its INS, birth name typed in lower case with accents
    twin = reference.to_patient(people[0], "PROV")
    twin.pop("identifier")
    twin["name"][0]["family"] = people[0].nom_naissance.lower().replace("E", "é")
    twin.pop("meta", None)
    patients.append(twin)
    # an identity flagged doubtful (DOUT)
    doubtful = reference.to_patient(dataclasses.replace(people[35]), "PROV")
    for ext in doubtful["extension"]:
        if ext["url"] == reference.IDENTITY_RELIABILITY:
            ext["extension"].append(
                {
                    "url": "comment",
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status-comment",
                                "code": "DOUT",
                            }
                        ]
                    },
                }
            )
    patients.append(doubtful)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entry(p) for p in patients],
    }
    path = tmp_path / "bundle.json"
    path.write_bytes(orjson.dumps(bundle))
    data = str(tmp_path / "data")
    loaded = _run("import", str(path), "--data", data)
    assert loaded.returncode == 0, loaded.stderr
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps({**bundle, "entry": [_entry({**twin, "identifier": []})]}))
    refused = _run("import", str(bad), "--data", data)
    assert refused.returncode == 1
    said = " ".join(refused.stderr.split())
    assert "Traceback" not in said and "must not be empty" in said
    report = _run("ins", "vigilance", "--data", data)
    assert report.returncode == 0, report.stderr
    text = " ".join(report.stderr.split())
    assert f"{len(patients)} patients read" in text.replace(",", "")
    assert "Potential duplicates and collisions (1)" in text, text
    assert "douteuse" in text
    assert "must not be emitted" in text  # INS stored on PROV identities
