"""The administration operations (``maison:admin`` only): ``Patient/$identity-vigilance``,
``$audit-status`` and ``$annuaire-imports``, called in process with the administrator's token
(https://hl7.org/fhir/R4/operationdefinition.html)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from maison.api.admin_operations import (
    VERIFY_META,
    display,
    last_verification,
    record_verification,
)
from maison.api.app import prepare
from maison.api.http import build_app
from maison.api.services import Services
from maison.api.settings import Settings
from maison.audit.chain import Break, VerifyReport
from maison.security.admin import ADMIN_SCOPE
from maison.services.annuaire.importer import KEPT_RUNS, import_runs, record_import
from maison.services.ins.vigilance import Candidate

BASE = "http://testserver"
HELENE = {
    "resourceType": "Patient",
    "name": [{"use": "official", "family": "Dupont-Lefèvre", "given": ["Hélène", "Marie"]}],
    "gender": "female",
    "birthDate": "1975-04-12",
}
HELENE_AGAIN = {
    "resourceType": "Patient",
    "name": [{"use": "official", "family": "DUPONT LEFEVRE", "given": ["HELENE", "MARIE"]}],
    "gender": "female",
    "birthDate": "1975-04-12",
}
SOMEONE_ELSE = {
    "resourceType": "Patient",
    "name": [{"use": "official", "family": "Martin", "given": ["Paul"]}],
    "gender": "male",
    "birthDate": "1990-01-01",
}


class Client:
    """The app called in process."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.transport = httpx.ASGITransport(app=build_app(services))

    def call(self, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url=BASE) as c:
                return await c.request(method, path, headers=headers, **kw)

        return anyio.run(go)

    def get(self, path: str, token: str, **kw: Any) -> httpx.Response:
        return self.call("GET", path, token, **kw)

    def token(self, scopes: list[str], subject: str = "tester", **claims: Any) -> str:
        assert self.services.issuer is not None
        return self.services.issuer.mint(subject, scopes, BASE, 600, claims)

    def admin(self) -> str:
        """A backend token that also holds the administration scope."""
        return self.token(["system/*.*", ADMIN_SCOPE], "admin-tester")

    def system(self) -> str:
        """A backend token without the administration scope."""
        return self.token(["system/*.*"], "backend")


def _settings(data_url: str, tmp_path: Path, demo: bool) -> Settings:
    return Settings(
        data=data_url, state=str(tmp_path / "state"), demo=demo, demo_patients=3, public_url=BASE
    )


@pytest.fixture
def client(data_url: str, tmp_path: Path) -> Iterator[Client]:
    services = prepare(_settings(data_url, tmp_path, demo=False))
    try:
        yield Client(services)
    finally:
        services.store.close()


@pytest.fixture
def demo(data_url: str, tmp_path: Path) -> Iterator[Client]:
    services = prepare(_settings(data_url, tmp_path, demo=True))
    try:
        yield Client(services)
    finally:
        services.store.close()


def _parts(parameter: dict[str, Any], name: str) -> list[Any]:
    """The values of the parts called ``name``."""
    out: list[Any] = []
    for part in parameter.get("part", []):
        if part["name"] == name:
            out.extend(v for k, v in part.items() if k.startswith("value"))
    return out


def _params(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    assert body["resourceType"] == "Parameters", body
    return [p for p in body.get("parameter", []) if p["name"] == name]


def _value(body: dict[str, Any], name: str) -> Any:
    (found,) = _params(body, name)
    return next(v for k, v in found.items() if k.startswith("value"))


def _create(client: Client, resource: dict[str, Any]) -> str:
    r = client.call("POST", "/Patient", client.system(), content=orjson.dumps(resource))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _entries(services: Services) -> int:
    from maison.store.audit_log import head_of

    head = head_of(services.store.engine)
    return head.seq if head else 0


OPERATIONS = ("/Patient/$identity-vigilance", "/$audit-status", "/$annuaire-imports")


# ----------------------------------------------------------------------------- access


@pytest.mark.parametrize("path", OPERATIONS)
def test_only_an_administrator_may_call_them(client: Client, path: str) -> None:
    pid = _create(client, SOMEONE_ELSE)
    assert client.get(path, client.admin()).status_code == 200
    pro_admin = client.token(["openid", "fhirUser", "user/*.cruds", ADMIN_SCOPE], "pro-admin")
    assert client.get(path, pro_admin).status_code == 200

    before = _entries(client.services)
    refused = client.get(path, client.system())
    assert refused.status_code == 403, refused.text
    assert ADMIN_SCOPE in refused.text and "administrators" in refused.text
    assert _entries(client.services) > before  # the denial is in the trail

    patient = client.token(["launch/patient", "patient/*.rs"], "someone", patient=pid)
    assert client.get(path, patient).status_code == 403
    patient_admin = client.token(["patient/*.rs", ADMIN_SCOPE], "someone", patient=pid)
    assert client.get(path, patient_admin).status_code == 403  # never through a patient's app
    assert client.get(path, "not-a-token").status_code == 401
    alone = client.get(path, client.token([ADMIN_SCOPE], "admin-alone"))
    assert alone.status_code == 403  # a user/ or system/ read scope is needed too
    assert "refused" in alone.text


def test_the_capability_statement_lists_them(client: Client) -> None:
    cap = client.get("/metadata", client.system()).json()
    rest = cap["rest"][0]
    system = {op["name"]: op["definition"] for op in rest.get("operation", [])}
    assert {"audit-status", "annuaire-imports"} <= system.keys()
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert "identity-vigilance" in {op["name"] for op in patient["operation"]}
    for def_id in ("Patient-identity-vigilance", "audit-status", "annuaire-imports"):
        r = client.get(f"/OperationDefinition/{def_id}", client.system())
        assert r.status_code == 200, r.text
        assert " / " in r.json()["description"]  # French, then English


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("threshold=abc", 400),
        ("threshold=1.5", 422),
        ("threshold=-0.1", 422),
        ("_count=abc", 400),
        ("_count=0", 422),
        ("_count=1001", 422),
        ("_count=1&_count=2", 400),
        ("homonyms=maybe", 400),
        ("nonsense=1", 400),
    ],
)
def test_bad_vigilance_parameters_are_refused(client: Client, query: str, status: int) -> None:
    r = client.get(f"/Patient/$identity-vigilance?{query}", client.admin())
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/$annuaire-imports?_count=-1", 422),
        ("/$annuaire-imports?_count=x", 400),
        ("/$audit-status?verify=yes", 400),
        ("/$audit-status?threshold=1", 400),
    ],
)
def test_bad_parameters_of_the_system_operations(client: Client, path: str, status: int) -> None:
    r = client.get(path, client.admin())
    assert r.status_code == status, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


# ----------------------------------------------------------------------------- vigilance


def test_vigilance_finds_a_planted_duplicate(client: Client) -> None:
    a = _create(client, HELENE)
    b = _create(client, HELENE_AGAIN)
    _create(client, SOMEONE_ELSE)
    r = client.get("/Patient/$identity-vigilance", client.admin())
    assert r.status_code == 200, r.text
    body = r.json()
    assert _value(body, "patients") == 3
    assert _value(body, "threshold") == 0.8
    pairs = _params(body, "pair")
    assert _value(body, "pairs") == len(pairs) == 1
    (pair,) = pairs
    refs = _parts(pair, "patient")
    assert {ref["reference"] for ref in refs} == {f"Patient/{a}", f"Patient/{b}"}
    displays = {ref["display"] for ref in refs}
    assert displays == {
        "DUPONT-LEFÈVRE Hélène, né(e) le 12/04/1975",
        "DUPONT LEFEVRE HELENE, né(e) le 12/04/1975",
    }
    (score,) = _parts(pair, "score")
    assert 0.8 <= score <= 1.0
    assert _parts(pair, "kind") == ["DPOT"]
    reasons = _parts(pair, "reason")
    assert "same birth name up to accents/case/hyphens" in reasons
    assert "same birth date" in reasons

    # the patients it names are on their record's trail, with the administrator's reason
    trail = client.services.audit
    assert trail is not None
    events = trail.for_patient(f"Patient/{a}")
    assert any("$identity-vigilance" in str(e.get("outcomeDesc")) for e in events), events
    assert not any(
        "$identity-vigilance" in str(e.get("outcomeDesc"))
        for e in trail.for_patient(f"Patient/{_create(client, SOMEONE_ELSE)}")
    )

    high = client.get("/Patient/$identity-vigilance?threshold=1&_count=1", client.admin())
    assert high.status_code == 200, high.text
    assert _value(high.json(), "threshold") == 1.0


def test_pairs_come_by_decreasing_score_and_count_bounds_them(client: Client) -> None:
    _create(client, HELENE)
    _create(client, HELENE_AGAIN)
    typo = {**HELENE, "birthDate": "1975-04-13"}  # one day apart: a lower score
    _create(client, typo)
    body = client.get("/Patient/$identity-vigilance", client.admin()).json()
    scores = [_parts(p, "score")[0] for p in _params(body, "pair")]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    one = client.get("/Patient/$identity-vigilance?_count=1", client.admin()).json()
    assert len(_params(one, "pair")) == 1 and _value(one, "pairs") == 3


def test_vigilance_reports_collisions_and_anomalies(client: Client) -> None:
    fictitious = {
        **SOMEONE_ELSE,
        "extension": [
            {
                "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {
                            "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0445",
                            "code": "PROV",
                        },
                    }
                ],
            }
        ],
    }
    _create(client, fictitious)
    body = client.get("/Patient/$identity-vigilance", client.admin()).json()
    assert _value(body, "anomalies") == len(_params(body, "anomaly"))
    for anomaly in _params(body, "anomaly"):
        assert _parts(anomaly, "patient")[0]["reference"].startswith("Patient/")
        assert _parts(anomaly, "reason")


def test_display_of_partial_and_missing_traits() -> None:
    full = Candidate("1", "Durand", ("Léa",), "2001-02-03", "female", None, None)
    assert display(full) == "DURAND Léa, né(e) le 03/02/2001"
    month = Candidate("2", "Durand", (), "2001-02", None, None, None)
    assert display(month) == "DURAND, né(e) le 02/2001"
    nothing = Candidate("3", None, (), None, None, None, None)
    assert display(nothing) == "nom inconnu, date de naissance inconnue"
    assert display(None) is None


# ----------------------------------------------------------------------------- audit status


def _verification(body: dict[str, Any]) -> dict[str, list[Any]]:
    (found,) = _params(body, "last-verification")
    return {p["name"]: _parts(found, p["name"]) for p in found["part"]}


def test_audit_status_before_and_after_a_verification(client: Client, tmp_path: Path) -> None:
    from maison.cli.audit import verify

    _create(client, SOMEONE_ELSE)
    before = client.get("/$audit-status", client.admin())
    assert before.status_code == 200, before.text
    body = before.json()
    assert _value(body, "entries") >= 1
    head = _params(body, "head")[0]
    assert _parts(head, "seq") == [_value(body, "entries")]
    assert len(_parts(head, "hash")[0]) == 16
    never = _verification(body)
    assert never["outcome"] == ["never"]
    assert "maison audit verify" in never["problem"][0]

    settings = client.services.settings
    verify(data=settings.data, state=str(tmp_path / "state"), from_seq=1)
    recorded = last_verification(client.services.store)
    assert recorded is not None and recorded["outcome"] == "intact" and recorded["by"] == "cli"

    after = client.get("/$audit-status", client.admin()).json()
    done = _verification(after)
    assert done["outcome"] == ["intact"] and done["by"] == ["cli"]
    assert done["checked"][0] >= 1 and done["checked"] == done["last"]
    assert "problem" not in done
    assert done["unverified"][0] >= 0

    checked = client.get("/$audit-status?verify=true", client.admin()).json()
    again = _verification(checked)
    assert again["outcome"] == ["intact"] and again["by"] == ["api"]
    assert again["checked"][0] > done["checked"][0]  # the calls since were traced


def test_audit_status_reports_a_broken_chain_and_checkpoints(client: Client) -> None:
    trail = client.services.audit
    assert trail is not None
    _create(client, SOMEONE_ELSE)
    trail.checkpoint()
    broken = VerifyReport(checked=4, first=1, last=4, seconds=0.01)
    broken.broken = Break(5, "hash", "hash mismatch at seq 5: the entry was edited")
    record_verification(client.services.store, broken, "cli")
    body = client.get("/$audit-status", client.admin()).json()
    found = _verification(body)
    assert found["outcome"] == ["broken"]
    assert found["problem"] == ["hash mismatch at seq 5: the entry was edited"]
    assert found["problem-seq"] == [5] and found["problem-kind"] == ["hash"]
    (mark,) = _params(body, "checkpoint")
    assert _parts(mark, "seq")[0] >= 1 and _parts(mark, "time") and _parts(mark, "key")

    client.services.store.set_meta(VERIFY_META, "not json")
    assert _verification(client.get("/$audit-status", client.admin()).json())["outcome"] == [
        "never"
    ]


def test_a_large_trail_is_verified_by_the_cli(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maison.api import admin_operations

    monkeypatch.setattr(admin_operations, "MAX_API_VERIFY", 0)
    _create(client, SOMEONE_ELSE)
    r = client.get("/$audit-status?verify=true", client.admin())
    assert r.status_code == 422, r.text
    assert "maison audit verify" in r.text


# ----------------------------------------------------------------------------- imports


def test_the_demo_start_imports_are_listed(demo: Client) -> None:
    r = demo.get("/$annuaire-imports", demo.admin())
    assert r.status_code == 200, r.text
    body = r.json()
    imports = _params(body, "import")
    assert _value(body, "total") == len(imports) == 2
    newest, oldest = imports  # the activity extraction was imported after the FINESS one
    assert _parts(newest, "kind") == ["annuaire"] and _parts(oldest, "kind") == ["finess"]
    for run in imports:
        assert _parts(run, "outcome") == ["ok"]
        assert _parts(run, "created")[0] > 0
        assert _parts(run, "updated") == [0] and _parts(run, "rejected") == [0]
        assert _parts(run, "duration")[0] >= 0
        assert all("/" not in f for f in _parts(run, "file"))  # base names only
        assert _parts(run, "time")[0] >= _parts(oldest, "time")[0]
    assert _parts(newest, "file")[0] == "extraction.txt"
    assert len(_parts(newest, "file")) > 1  # the side files
    assert _parts(oldest, "file") == ["f.csv"]
    one = demo.get("/$annuaire-imports?_count=1", demo.admin()).json()
    assert len(_params(one, "import")) == 1 and _value(one, "total") == 2


def test_the_history_is_bounded_and_records_failures(client: Client, tmp_path: Path) -> None:
    from maison.services.annuaire.extraction import ExtractionError
    from maison.services.annuaire.importer import import_finess

    store = client.services.store
    for n in range(KEPT_RUNS + 5):
        assert record_import(store, {"time": "2026-01-01T00:00:00Z", "kind": "finess", "n": n})
    runs = import_runs(store)
    assert len(runs) == KEPT_RUNS and runs[0]["n"] == KEPT_RUNS + 4

    bad = tmp_path / "not-finess.csv"
    bad.write_text("hello;world\n", encoding="utf-8")
    with pytest.raises(ExtractionError):
        import_finess(store, bad)
    failed = import_runs(store)[0]
    assert failed["outcome"] == "failed" and failed["files"] == ["not-finess.csv"]
    body = client.get("/$annuaire-imports?_count=2", client.admin()).json()
    first = _params(body, "import")[0]
    assert _parts(first, "outcome") == ["failed"] and _parts(first, "error")
    assert _value(body, "total") == KEPT_RUNS


def test_no_import_yet(client: Client) -> None:
    body = client.get("/$annuaire-imports", client.admin()).json()
    assert _value(body, "total") == 0 and not _params(body, "import")
