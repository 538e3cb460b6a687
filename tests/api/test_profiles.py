"""Installed guides: profiles named in meta.profile are validated like the base definitions."""

from __future__ import annotations

import copy
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from servers import MAISON, Server, free_port
from support import CORPORA

FR_CORE = CORPORA / "compiled" / "hl7.fhir.fr.core"
INS_PROFILE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"


@pytest.fixture
def fresh_server(data_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = Server(data_url, tmp_path, free_port(), extra_args=["--no-demo"]).start()
    yield srv
    srv.stop()


def _ins_patients() -> tuple[dict[str, Any], dict[str, Any]]:
    good = orjson.loads((FR_CORE / "Patient-FRCorePatientINSExample.json").read_bytes())
    good.pop("id", None)
    assert good["meta"]["profile"] == [INS_PROFILE]
    bad = copy.deepcopy(good)
    bad["extension"] = [e for e in bad["extension"] if not e["url"].endswith("birthPlace")]
    return good, bad


def _install(srv: Server, *paths: Path) -> subprocess.CompletedProcess[str]:
    args = [
        *MAISON,
        "ig",
        "install",
        *map(str, paths),
        "--data",
        srv.data,
        "--state",
        str(srv.state),
    ]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def test_ig_install_while_running_turns_on_profile_validation(fresh_server: Server) -> None:
    good, bad = _ins_patients()
    with fresh_server.client() as c:
        # unknown profile: a warning, not a refusal
        r = c.post("/Patient/$validate", json=bad)
        assert r.status_code == 200
        assert not [i for i in r.json()["issue"] if i["severity"] == "error"]
        # the INS rules apply whatever guides are installed: the birthplace is a strict trait
        r = c.post("/Patient", json=bad)
        assert r.status_code == 422 and "birthPlace" in r.text

        out = _install(fresh_server, FR_CORE)
        assert out.returncode == 0, out.stderr
        assert "conformance resources installed" in out.stderr

        def profile_errors() -> set[bool]:
            return {
                any(
                    i["severity"] == "error"
                    for i in c.post("/Patient/$validate", json=bad).json()["issue"]
                )
                for _ in range(4)
            }

        deadline = time.monotonic() + 10
        while True:  # every worker picks the guide up within about a second
            seen = profile_errors()
            if seen == {True} or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert seen == {True}
        r = c.post("/Patient/$validate", json=bad)
        assert "birthPlace" in r.text
    # the FR Core example passes the profile but its INS has a wrong key (and a month 45):
    # refused with the key it should have
    with fresh_server.client(fresh_server.mint("system/*.*", "ins:assert-insi")) as c:
        assert not [
            i
            for i in c.post("/Patient/$validate", json=good).json()["issue"]
            if i["severity"] == "error"
        ]
        r = c.post("/Patient", json=good)
        assert r.status_code == 422 and "is 44, expected 12" in r.text, r.text[:500]
    with fresh_server.client() as c:
        # installed definitions are resources of the store, readable like any other
        sd = c.get("/StructureDefinition", params={"url": INS_PROFILE}).json()
        assert sd["total"] == 1

    again = _install(fresh_server, FR_CORE)  # idempotent: PUT with the guide's ids
    assert again.returncode == 0, again.stderr


def test_ig_install_refuses_a_folder_without_definitions(
    fresh_server: Server, tmp_path: Path
) -> None:
    folder = tmp_path / "empty-guide"
    folder.mkdir()
    (folder / "Patient-x.json").write_text('{"resourceType": "Patient"}')
    out = _install(fresh_server, folder)
    assert out.returncode == 2
    assert "No StructureDefinition" in out.stderr


def test_installed_search_parameter_reindexes_existing_resources(
    fresh_server: Server, tmp_path: Path
) -> None:
    with fresh_server.client() as c:
        for family in ("Lefèvre", "Noël"):
            c.post(
                "/Patient",
                json={
                    "resourceType": "Patient",
                    "name": [{"family": family}],
                    "birthDate": "1980-01-01",
                },
            )
        assert c.get("/Patient", params={"family-initial": "L"}).status_code == 400  # unknown
        guide = tmp_path / "guide"
        guide.mkdir()
        sp = {
            "resourceType": "SearchParameter",
            "id": "patient-family-initial",
            "url": "https://example.org/fhir/SearchParameter/patient-family-initial",
            "name": "FamilyInitial",
            "status": "active",
            "description": "The family name, searched from its first letters",
            "code": "family-initial",
            "base": ["Patient"],
            "type": "string",
            "expression": "Patient.name.family",
        }
        (guide / "SearchParameter-patient-family-initial.json").write_bytes(orjson.dumps(sp))
        out = _install(fresh_server, guide)
        assert out.returncode == 0, out.stderr
        assert "2 resources reindexed" in out.stderr
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = c.get("/Patient", params={"family-initial": "lef"})
            if r.status_code == 200:
                break
            time.sleep(0.3)
        assert r.status_code == 200 and r.json()["total"] == 1  # older resources were reindexed
        assert "family-initial" in c.get("/metadata").text
