"""The INSi-compatible téléservice end to end: `maison ins synth|load`, then `Patient/$ins-search`
and `Patient/$ins-verify` over HTTP, and the platform's own INSi answer accepted as the
evidence of a RECUP identity (https://esante.gouv.fr/produits-services/referentiel-ins)."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from maison.services.ins import reference
from maison.services.ins.matricule import compute_key
from maison.services.ins.reference import ReferenceIdentity, synthesize
from servers import MAISON, Server

RELIABILITY = reference.IDENTITY_RELIABILITY


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*MAISON, "ins", *args, "--data", server.data, "--state", str(server.state)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def identities() -> list[ReferenceIdentity]:
    """200 synthetic identities plus two homonyms of the first (same name, date and sex)."""
    found = list(synthesize(200, seed=41))
    first = found[0]
    sex_digit = "1" if first.sexe == "M" else "2"
    yymm = first.date_naissance[2:4] + first.date_naissance[5:7]
    twins = []
    for prenoms, place, order in (
        (("ZOE", "CAMILLE"), "75056", "201"),
        (("ZOE", "LOUISE"), "69123", "202"),
    ):
        first13 = sex_digit + yymm + place + order
        twins.append(
            dataclasses.replace(
                first,
                matricule=first13 + compute_key(first13),
                prenoms=prenoms,
                lieu_naissance=place,
                historique=(),
            )
        )
    return [*found[3:], *twins, first]


@pytest.fixture(scope="module")
def loaded(
    server: Server, identities: list[ReferenceIdentity], tmp_path_factory: pytest.TempPathFactory
) -> Server:
    """The session server with the reference base loaded by the CLI, twice (idempotent)."""
    folder = tmp_path_factory.mktemp("insref")
    path = folder / "ref.csv"
    reference.write(identities, path)
    with path.open("a", encoding="utf-8") as f:
        f.write("123;1.2.250.1.213.1.4.10;DUPONT;JEAN;M;1980-01-01;75056;\n")  # bad matricule
    first = _cli(server, "load", str(path))
    assert first.returncode == 0, first.stderr
    assert "rejected" in first.stderr
    again = _cli(server, "load", str(path))
    assert again.returncode == 0, again.stderr
    rows = [
        line for line in again.stderr.splitlines() if "│" in line and any(c.isdigit() for c in line)
    ]
    assert rows, again.stderr
    created, updated, unchanged, rejected = (
        int(cell.strip().replace(",", "")) for cell in rows[-1].strip("│ ").split("│")
    )
    assert (created, updated, unchanged, rejected) == (0, 0, len(identities), 1)
    rejects = Path(str(path) + ".rejects.txt").read_text()
    assert rejects.startswith(f"line {len(identities) + 2}:")
    return server


@pytest.fixture(scope="module")
def singles(identities: list[ReferenceIdentity]) -> list[ReferenceIdentity]:
    """Identities no other one shares name, birth date and sex with (the synthesis makes
    realistic homonyms too)."""
    seen: dict[tuple[str, str, str], int] = {}
    for i in identities:
        k = (i.nom_naissance, i.date_naissance, i.sexe)
        seen[k] = seen.get(k, 0) + 1
    return [i for i in identities if seen[(i.nom_naissance, i.date_naissance, i.sexe)] == 1]


@pytest.fixture
def pro(loaded: Server) -> Iterator[httpx.Client]:
    """A professional's software without the right to assert INSi results itself."""
    with loaded.client(loaded.mint("user/*.*", subject="pro-a")) as client:
        yield client


def _params(**values: str) -> dict[str, Any]:
    kinds = {"Sexe": "valueCode", "DateNaissance": "valueDate", "LieuNaissance": "valueCode"}
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": k, kinds.get(k, "valueString"): v} for k, v in values.items()],
    }


def _out(body: dict[str, Any], name: str) -> Any:
    for p in body.get("parameter", []):
        if p["name"] == name:
            return (
                p.get("resource")
                or p.get("part")
                or next(v for k, v in p.items() if k.startswith("value"))
            )
    return None


def _traits(i: ReferenceIdentity, prenom: str | None = None) -> dict[str, str]:
    return {
        "NomNaissance": i.nom_naissance,
        "Prenom": prenom or i.prenoms[0],
        "Sexe": i.sexe,
        "DateNaissance": i.date_naissance,
    }


def test_search_finds_one_identity_cr_00(
    pro: httpx.Client, singles: list[ReferenceIdentity]
) -> None:
    who = singles[10]
    r = pro.post("/Patient/$ins-search", json=_params(**_traits(who)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert _out(body, "CodeCR") == "00"
    individu = _out(body, "INDIVIDU")
    ins = next(p for p in individu if p["name"] == "INSACTIF")
    num = next(p["valueString"] for p in ins["part"] if p["name"] == "NumIdentifiant")
    cle = next(p["valueString"] for p in ins["part"] if p["name"] == "Cle")
    assert num + cle == who.matricule
    patient = _out(body, "patient")
    assert patient["resourceType"] == "Patient"
    assert any(i["value"] == who.matricule for i in patient["identifier"])


def test_search_by_get_and_lower_case_is_normalised(
    pro: httpx.Client, singles: list[ReferenceIdentity]
) -> None:
    who = singles[11]
    traits = _traits(who)
    traits["NomNaissance"] = traits["NomNaissance"].lower()
    r = pro.get("/Patient/$ins-search", params=traits)
    assert r.status_code == 200, r.text
    body = r.json()
    assert _out(body, "CodeCR") == "00"
    outcome = _out(body, "issues")
    assert outcome and "normalis" in str(outcome).lower()


def test_search_none_and_several(pro: httpx.Client, identities: list[ReferenceIdentity]) -> None:
    first = identities[-1]
    none = pro.post("/Patient/$ins-search", json=_params(**_traits(first, "XAVIERA")))
    assert _out(none.json(), "CodeCR") == "01"
    several = _traits(first, "ZOE")
    assert _out(pro.post("/Patient/$ins-search", json=_params(**several)).json(), "CodeCR") == "02"
    narrowed = pro.post("/Patient/$ins-search", json=_params(**several, LieuNaissance="69123"))
    body = narrowed.json()
    assert _out(body, "CodeCR") == "00"
    assert "LOUISE" in str(_out(body, "INDIVIDU"))


def test_verify_match_and_mismatch(pro: httpx.Client, singles: list[ReferenceIdentity]) -> None:
    who = singles[12]
    ok = pro.post("/Patient/$ins-verify", json=_params(INS=who.matricule, **_traits(who)))
    assert ok.status_code == 200, ok.text
    assert _out(ok.json(), "CodeCR") == "00"
    assert _out(ok.json(), "verdict") == "match"
    wrong = dict(_traits(who), DateNaissance="1901-01-01")
    bad = pro.post("/Patient/$ins-verify", json=_params(INS=who.matricule, **wrong))
    assert _out(bad.json(), "verdict") == "mismatch"
    assert "DateNaissance" in str(_out(bad.json(), "difference"))


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [
        ({"DateNaissance": "2023-02-30"}, 422, "DateNaissance"),
        ({"Sexe": "X"}, 422, "Sexe"),
        ({"NomNaissance": "DUP0NT"}, 422, "NomNaissance"),
        ({"Prenom": None}, 400, "Prenom"),
        ({"Couleur": "bleu"}, 400, "Couleur"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    pro: httpx.Client,
    singles: list[ReferenceIdentity],
    change: dict[str, str | None],
    status: int,
    needle: str,
) -> None:
    traits: dict[str, str] = {**_traits(singles[13])}
    for k, v in change.items():
        if v is None:
            traits.pop(k)
        else:
            traits[k] = v
    r = pro.post("/Patient/$ins-search", json=_params(**traits))
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert needle in r.text


def test_patients_apps_and_readers_without_rights_are_refused(
    loaded: Server, singles: list[ReferenceIdentity]
) -> None:
    body = _params(**_traits(singles[14]))
    with loaded.client(loaded.mint("patient/*.read", patient="p1")) as app:
        r = app.post("/Patient/$ins-search", json=body)
        assert r.status_code == 403, r.text
    with loaded.client(loaded.mint("user/Observation.read")) as other:
        assert other.post("/Patient/$ins-search", json=body).status_code == 403
    assert httpx.post(f"{loaded.base_url}/Patient/$ins-search", json=body).status_code == 401


def test_capability_and_definitions(pro: httpx.Client) -> None:
    cap = pro.get("/metadata").json()
    patient = next(r for r in cap["rest"][0]["resource"] if r["type"] == "Patient")
    names = {op["name"]: op["definition"] for op in patient["operation"]}
    assert {"ins-search", "ins-verify", "merge", "unmerge", "validate"} <= set(names)
    od = pro.get("/OperationDefinition/Patient-ins-search")
    assert od.status_code == 200
    assert od.json()["url"] == names["ins-search"]
    assert pro.post("/Patient/$nothing", json={"resourceType": "Parameters"}).status_code == 404


def _recup(patient: dict[str, Any]) -> dict[str, Any]:
    """The Patient the INSi answer gives, declared RECUP after today's interrogation."""
    today = datetime.now(UTC).date().isoformat()
    p = {k: v for k, v in patient.items() if k != "extension"}
    others = [e for e in patient.get("extension", []) if e.get("url") != RELIABILITY]
    p["extension"] = [
        *others,
        {
            "url": RELIABILITY,
            "extension": [
                {
                    "url": "identityStatus",
                    "valueCoding": {"system": reference.IDENTITY_STATUS_CS, "code": "RECUP"},
                },
                {
                    "url": "methodCollection",
                    "valueCoding": {"system": reference.METHOD_COLLECTION_CS, "code": "INSI"},
                },
                {"url": "dateInterrogationINSi", "valueDate": today},
            ],
        },
    ]
    return p


def _status(patient: dict[str, Any]) -> str | None:
    for e in patient.get("extension", []):
        if e.get("url") == RELIABILITY:
            for sub in e.get("extension", []):
                if sub.get("url") == "identityStatus":
                    return str(sub["valueCoding"]["code"])
    return None


def test_the_platforms_insi_answer_is_the_evidence_of_recup(
    loaded: Server, pro: httpx.Client, singles: list[ReferenceIdentity]
) -> None:
    who = singles[15]
    # another client that never called INSi may not claim RECUP for this identity
    with loaded.client(loaded.mint("user/*.*", subject="pro-b")) as other:
        found = pro.post("/Patient/$ins-search", json=_params(**_traits(who))).json()
        patient = _recup(_out(found, "patient"))
        refused = other.post("/Patient", json=patient)
        assert refused.status_code == 422, refused.text
        assert "INSi" in refused.text
    # the client that called the platform's INSi may
    created = pro.post("/Patient", json=patient)
    assert created.status_code == 201, created.text
    assert _status(created.json()) == "RECUP"
    # and an INSi answer does not vouch for other traits
    twisted = _recup(_out(found, "patient"))
    twisted["birthDate"] = "1901-01-01"
    assert pro.post("/Patient", json=twisted).status_code == 422
