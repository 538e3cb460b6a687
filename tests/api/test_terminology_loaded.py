"""The terminologies loaded with `maison terminology load` answer the API's terminology
operations and the validation of bindings, on a running server (no guide holds them)."""

from __future__ import annotations

import csv
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from servers import MAISON, Server, backend_data, free_port
from support import CORPORA, SHARED

NOS_JSON = CORPORA / "nos"
NOS_CSV = SHARED / "domain" / "data" / "nos"
PDSM = CORPORA / "compiled" / "IG-fhir-partage-de-documents-de-sante"
NOS = "https://mos.esante.gouv.fr/NOS/"
J66 = f"{NOS}JDV_J66-TypeCode-DMP/FHIR/JDV-J66-TypeCode-DMP"
J57 = f"{NOS}JDV_J57-ClassCode-DMP/FHIR/JDV-J57-ClassCode-DMP"
J07 = f"{NOS}JDV_J07-XdsTypeCode-CISIS/FHIR/JDV-J07-XdsTypeCode-CISIS"
X16 = f"{NOS}ASS_X16-CorrespondanceType-Classe-DMP/FHIR/ASS-X16-CorrespondanceType-Classe-DMP"
TRE_A04 = f"{NOS}TRE_A04-Loinc/FHIR/TRE-A04-Loinc"
COMPREHENSIVE = (
    "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
    "pdsm-comprehensive-document-reference"
)


def _maison(srv: Server, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*MAISON, *args, "--data", srv.data, "--state", str(srv.state)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the PDSm guide installed, the NOS files not loaded yet."""
    tmp = tmp_path_factory.mktemp("terminology")
    srv = Server(backend_data(backend, tmp), tmp, free_port(), extra_args=["--no-demo"]).start()
    for guide in ("hl7.fhir.fr.core", "IHE-ITI.MHD", "IG-fhir-partage-de-documents-de-sante"):
        _maison(srv, "ig", "install", str(CORPORA / "compiled" / guide))
    time.sleep(1.5)  # every worker reloads the installed definitions within a second
    yield srv
    srv.stop()


def _csv_codes(name: str) -> set[str]:
    with (NOS_CSV / name).open(encoding="utf-8") as f:
        return {row["code"] for row in csv.DictReader(f)}


def _document(type_code: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(
        (PDSM / "DocumentReference-PDSmSimplifiedExample.json").read_bytes()
    )
    doc.pop("id")
    doc["meta"] = {"profile": [COMPREHENSIVE]}
    doc["type"] = {"coding": [{"system": "http://loinc.org", "code": type_code}]}
    return doc


def _type_warnings(srv: Server, type_code: str) -> list[str]:
    with srv.client() as c:
        r = c.post("/DocumentReference/$validate", json=_document(type_code))
    assert r.status_code == 200, r.text[:500]
    return [
        i.get("diagnostics", "")
        for i in r.json()["issue"]
        if i["severity"] == "warning" and J07 in i.get("diagnostics", "")
    ]


def test_loaded_value_sets_answer_the_operations_and_the_bindings(server: Server) -> None:
    # before the load, the preferred binding of DocumentReference.type (J07) cannot be checked
    assert _type_warnings(server, "00000-0") == []
    files = [*sorted(NOS_JSON.glob("*.json")), *sorted(NOS_CSV.glob("*.csv"))]
    out = _maison(server, "terminology", "load", *map(str, files))
    assert "J66" in out.stdout + out.stderr
    time.sleep(1.5)  # the server sees another process's load within a second
    j66 = _csv_codes("JDV_J66-TypeCode-DMP.csv")
    loinc_type = sorted(c for c in j66 if "-" in c)[0]
    with server.client() as c:
        for system in ("http://loinc.org", TRE_A04):
            r = c.get(
                "/ValueSet/$validate-code",
                params={"url": J66, "system": system, "code": loinc_type},
            )
            assert r.status_code == 200, r.text[:300]
            result = {p["name"]: p for p in r.json()["parameter"]}["result"]
            assert result["valueBoolean"] is True, (system, r.text[:300])
        r = c.get(
            "/ValueSet/$validate-code", params={"url": J57, "system": TRE_A04, "code": loinc_type}
        )
        assert {p["name"]: p for p in r.json()["parameter"]}["result"]["valueBoolean"] is False
        r = c.get("/ValueSet/$expand", params={"url": J57, "count": "1000"})
        assert r.status_code == 200, r.text[:300]
        assert {e["code"] for e in r.json()["expansion"]["contains"]} == _csv_codes(
            "JDV_J57-ClassCode-DMP.csv"
        )
        r = c.get(
            "/ConceptMap/$translate",
            params={"url": X16, "system": "http://loinc.org", "code": "11488-4"},
        )
        assert r.status_code == 200, r.text[:300]
        matches = [p for p in r.json()["parameter"] if p["name"] == "match"]
        concepts = [
            part["valueCoding"]["code"]
            for m in matches
            for part in m["part"]
            if part["name"] == "concept"
        ]
        assert concepts == ["10"], r.text[:500]
    # after it, a type outside J07 is reported with the value set named, one inside is not
    warned = _type_warnings(server, "00000-0")
    assert warned == [
        f"DocumentReference.type: http://loinc.org#00000-0 is not in the preferred value set {J07}"
    ]
    assert _type_warnings(server, "11488-4") == []


ANATOMIE = "http://example.org/fhir/CodeSystem/anatomie"


def test_token_searches_expand_loaded_value_sets_and_hierarchies(
    server: Server, tmp_path: Path
) -> None:
    """``:in`` a loaded JDV finds a LOINC code under either URL; ``:below``/``:above`` follow
    a loaded code system's hierarchy; ``:not-in`` is the complement."""
    system = {
        "resourceType": "CodeSystem",
        "url": ANATOMIE,
        "version": "1",
        "status": "active",
        "content": "complete",
        "hierarchyMeaning": "is-a",
        "concept": [
            {
                "code": "tronc",
                "display": "Tronc",
                "concept": [{"code": "thorax", "display": "Thorax"}],
            },
            {"code": "tete", "display": "Tête"},
        ],
    }
    path = tmp_path / "anatomie.json"
    path.write_bytes(orjson.dumps(system))
    _maison(server, "terminology", "load", str(path), str(NOS_CSV / "JDV_J66-TypeCode-DMP.csv"))
    time.sleep(1.5)
    made: dict[str, str] = {}
    with server.client() as c:
        for name, sys_url, code in (
            ("loinc", "http://loinc.org", "11488-4"),
            ("nos", TRE_A04, "11488-4"),
            ("other", "http://loinc.org", "00000-0"),
            ("thorax", ANATOMIE, "thorax"),
            ("tete", ANATOMIE, "tete"),
        ):
            obs = {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": sys_url, "code": code}]},
            }
            r = c.post("/Observation", json=obs)
            assert r.status_code == 201, r.text[:300]
            made[r.json()["id"]] = name

        def found(params: dict[str, str]) -> set[str]:
            r = c.get("/Observation", params={**params, "_count": "100"})
            assert r.status_code == 200, r.text[:300]
            return {
                made[e["resource"]["id"]]
                for e in r.json().get("entry", [])
                if e["resource"]["id"] in made
            }

        assert found({"code:in": J66}) == {"loinc", "nos"}
        assert "other" in found({"code:not-in": J66}) and not {"loinc", "nos"} & found(
            {"code:not-in": J66}
        )
        assert found({"code:below": f"{ANATOMIE}|tronc"}) == {"thorax"}
        assert found({"code:above": f"{ANATOMIE}|thorax"}) == {"thorax"}
        assert found({"code:below": f"{ANATOMIE}|tete"}) == {"tete"}
        r = c.get("/Observation", params={"code:below": "http://example.org/none|x"})
        assert r.status_code == 400 and "hierarchy" in r.text
