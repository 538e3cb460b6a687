"""A professional reads his own access log: ``GET AuditEvent`` with a professional's ``user/``
token answers the entries whose requesting agent is his IDNPS (reads, refusals, bris de
glace…), never another's, never a record's history; found through the ``requestor_idnps``
index of the trail (https://profiles.ihe.net/ITI/BALP/, https://hl7.org/fhir/R4/auditevent.html).

Runs on the backend under test (``MAISON_TEST_STORE``), in process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from sqlalchemy import inspect, select, update

from maison.api.app import prepare
from maison.api.http import build_app
from maison.api.services import Services
from maison.api.settings import Settings
from maison.audit.chain import AuditTrail
from maison.audit.events import IDNPS_SYSTEM, Actor, audit_event, requestor_of
from maison.store.audit_log import audit_log, head_of
from maison.store.sql import SqlStore

BASE = "http://testserver"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
DOCTOR = "810000000101"  # the professional whose log is read
COLLEAGUE = "810000000202"  # another professional
BTG_REASON = "patient inconscient aux urgences, pronostic vital engagé"


def _patient(family: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": ["Alice"]}],
        "gender": "female",
        "birthDate": "1980-02-03",
    }


def _observation(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "glycémie"},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
    }


def _parameters(name: str, kind: str, value: str) -> bytes:
    return orjson.dumps({"resourceType": "Parameters", "parameter": [{"name": name, kind: value}]})


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

    def get(self, path: str, token: str, **kw: Any) -> httpx.Response:
        return self.call("GET", path, token, **kw)

    def post(self, path: str, token: str, **kw: Any) -> httpx.Response:
        return self.call("POST", path, token, **kw)


@dataclass
class World:
    """Two records (A, B, one Observation each), and the accesses of two doctors to them."""

    services: Services
    client: Client
    patients: dict[str, str]
    observations: dict[str, str]

    def token(self, scopes: list[str], subject: str = "tester", **claims: Any) -> str:
        assert self.services.issuer is not None
        return self.services.issuer.mint(subject, scopes, BASE, 600, claims)

    def professional(self, idnps: str, *scopes: str) -> str:
        """A token carrying a professional context, as ``tests/servers.py`` mints them."""
        body = {
            "idnps": idnps,
            "activity": 0,
            "structure": {"finess": "750000001"},
            "profession": "10",
        }
        return self.token(
            list(scopes or ("user/*.cruds",)),
            idnps,
            SubjectNameID=idnps,
            fhirUser=f"Practitioner/{idnps}",
            acr="eidas1",
            professional=body,
        )

    def patient(self, key: str) -> str:
        pid = self.patients[key]
        return self.token(
            ["patient/*.rs"], f"patient-{key}", patient=pid, fhirUser=f"Patient/{pid}"
        )

    def entries(self) -> int:
        head = head_of(self.services.store.engine)
        return head.seq if head else 0


@pytest.fixture
def world(data_url: str, tmp_path: Path) -> Iterator[World]:
    settings = Settings(data=data_url, state=str(tmp_path / "state"), demo=False, public_url=BASE)
    services = prepare(settings)
    assert services.issuer is not None and services.audit is not None
    client = Client(services)
    w = World(services, client, {}, {})
    admin = w.token(["system/*.*"])
    try:
        for key in ("A", "B"):
            created = client.post("/Patient", admin, content=orjson.dumps(_patient(f"P{key}")))
            assert created.status_code == 201, created.text
            w.patients[key] = created.json()["id"]
            obs = client.post(
                "/Observation", admin, content=orjson.dumps(_observation(w.patients[key]))
            )
            assert obs.status_code == 201, obs.text
            w.observations[key] = obs.json()["id"]
        doctor, colleague = w.professional(DOCTOR), w.professional(COLLEAGUE)
        a, b = w.patients["A"], w.patients["B"]
        # the doctor: refused on A (no relationship yet), then A consents, then he reads
        refused = client.get(f"/Observation/{w.observations['A']}", doctor)
        assert refused.status_code == 403, refused.text
        consent = _parameters("method", "valueCode", "oral")
        r = client.post(f"/Patient/{a}/$dmp-consent", doctor, content=consent, headers=FHIR_JSON)
        assert r.status_code == 200, r.text
        assert client.get(f"/Observation/{w.observations['A']}", doctor).status_code == 200
        # then a bris de glace on B, and a read under it
        btg = _parameters("reason", "valueString", BTG_REASON)
        r = client.post(f"/Patient/{b}/$bris-de-glace", doctor, content=btg, headers=FHIR_JSON)
        assert r.status_code == 200, r.text
        assert client.get(f"/Observation/{w.observations['B']}", doctor).status_code == 200
        # a colleague: consent and read on A, refused on B
        r = client.post(f"/Patient/{a}/$dmp-consent", colleague, content=consent, headers=FHIR_JSON)
        assert r.status_code == 200, r.text
        assert client.get(f"/Observation/{w.observations['A']}", colleague).status_code == 200
        assert client.get(f"/Observation/{w.observations['B']}", colleague).status_code == 403
        yield w
    finally:
        services.store.close()


def _bundle(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset", body
    return [e["resource"] for e in body["entry"]]


def _ids(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["id"]) for e in events]


def _kind(event: dict[str, Any]) -> str:
    return str(event["subtype"][-1]["code"])


def _patient_of(event: dict[str, Any]) -> str | None:
    for entity in event.get("entity") or ():
        if (entity.get("role") or {}).get("code") == "1":
            return str(entity["what"]["reference"])
    return None


def _whats(event: dict[str, Any]) -> set[str]:
    return {
        str(entity["what"]["reference"])
        for entity in event.get("entity") or ()
        if "reference" in (entity.get("what") or {})
    }


def _diagnostics(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["diagnostics"])


# -- the professional's own log ------------------------------------------------------------
def test_a_doctor_reads_his_own_accesses_with_their_outcome(world: World) -> None:
    w = world
    mine = _bundle(w.client.get("/AuditEvent", w.professional(DOCTOR), params={"_count": "500"}))
    assert mine and all(requestor_of(e) == DOCTOR for e in mine)
    assert _ids(mine) == sorted(_ids(mine), reverse=True)  # newest first
    a, b = (f"Patient/{w.patients[k]}" for k in ("A", "B"))
    kinds = [(_kind(e), _patient_of(e), e["outcome"]) for e in mine]
    assert ("denial", a, "4") in kinds  # the refusal, with its outcome
    assert ("consent", a, "0") in kinds
    observation_a = f"Observation/{w.observations['A']}"
    read_a = [e for e in mine if _kind(e) == "read" and observation_a in _whats(e)]
    assert len(read_a) == 1 and read_a[0]["outcome"] == "0"  # the read allowed by the consent
    denied = [e for e in mine if _kind(e) == "denial" and observation_a in _whats(e)]
    assert len(denied) == 1 and denied[0]["outcome"] == "4"  # the one refused before it
    refused = next(e for e in mine if _kind(e) == "denial")
    assert refused["outcomeDesc"]  # the reason stays in the entry
    glass = [e for e in mine if _kind(e) == "break-glass"]
    assert len(glass) == 1 and _patient_of(glass[0]) == b and glass[0]["outcome"] == "0"
    assert BTG_REASON in glass[0]["outcomeDesc"]
    observation_b = f"Observation/{w.observations['B']}"
    under_btg = [e for e in mine if _kind(e) == "read" and observation_b in _whats(e)]
    assert len(under_btg) == 1 and under_btg[0]["outcome"] == "0"
    assert under_btg[0]["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    agent = next(a for a in mine[0]["agent"] if a.get("requestor"))
    assert agent["who"]["identifier"] == {"system": IDNPS_SYSTEM, "value": DOCTOR}


def test_another_professionals_accesses_are_not_in_his_log(world: World) -> None:
    w = world
    doctor = _bundle(w.client.get("/AuditEvent", w.professional(DOCTOR), params={"_count": "500"}))
    colleague = _bundle(
        w.client.get("/AuditEvent", w.professional(COLLEAGUE), params={"_count": "500"})
    )
    assert colleague and all(requestor_of(e) == COLLEAGUE for e in colleague)
    assert not set(_ids(doctor)) & set(_ids(colleague))
    # the colleague's refusal on B is his, not the doctor's
    b = f"Patient/{w.patients['B']}"
    assert any(_kind(e) == "denial" and _patient_of(e) == b for e in colleague)
    assert not any(_kind(e) == "denial" and _patient_of(e) == b for e in doctor)
    # by id: his own entry is read, another's answers 404 as a missing one
    token = w.professional(DOCTOR)
    own = w.client.get(f"/AuditEvent/{doctor[0]['id']}", token)
    assert own.status_code == 200 and own.json()["id"] == doctor[0]["id"]
    other = w.client.get(f"/AuditEvent/{colleague[0]['id']}", token)
    missing = w.client.get("/AuditEvent/999999", token)
    assert other.status_code == missing.status_code == 404
    assert _diagnostics(other) == f"AuditEvent/{colleague[0]['id']} is not known"


def test_patient_narrows_to_one_record_among_his_accesses(world: World) -> None:
    w = world
    token = w.professional(DOCTOR)
    every = _bundle(w.client.get("/AuditEvent", token, params={"_count": "500"}))
    for key in ("A", "B"):
        ref = f"Patient/{w.patients[key]}"
        for value in (ref, w.patients[key]):
            response = w.client.get("/AuditEvent", token, params={"patient": value})
            events = _bundle(response)
            assert events and {_patient_of(e) for e in events} == {ref}
            assert _ids(events) == [int(e["id"]) for e in every if _patient_of(e) == ref]
            assert "patient=Patient%2F" in response.json()["link"][0]["url"]
    # a record he never accessed: nothing, and no other's accesses to it
    other = w.client.get("/AuditEvent", token, params={"patient": "Patient/unknown"})
    assert _bundle(other) == []
    bad = w.client.get("/AuditEvent", token, params={"patient": "Practitioner/x"})
    assert bad.status_code == 400


def test_count_pages_and_date_bounds(world: World) -> None:
    w = world
    token = w.professional(DOCTOR)

    def ids(*params: tuple[str, str]) -> list[int]:
        return _ids(_bundle(w.client.get("/AuditEvent", token, params=list(params))))

    every = ids(("_count", "500"))
    assert len(every) >= 5
    assert ids(("_count", "2")) == every[:2]
    assert ids(("_count", "0")) == []
    assert ids() == every  # the default page (50) holds them all
    page = w.client.get("/AuditEvent", token, params={"_count": "2"}).json()
    assert page["link"][0]["url"].endswith("_count=2")
    # date=le keeps the accesses recorded until then (seq orders the page, not recorded: the
    # events of one request may be recorded out of seq order)
    events = _bundle(w.client.get("/AuditEvent", token, params={"_count": "500"}))
    middle = sorted(e["recorded"] for e in events)[len(events) // 2]
    until = [int(e["id"]) for e in events if e["recorded"] <= middle]
    assert ids(("date", f"le{middle}"), ("_count", "500")) == until
    before = [int(e["id"]) for e in events if e["recorded"] < middle]
    assert ids(("date", f"lt{middle}"), ("_count", "500")) == before
    since = [int(e["id"]) for e in events if e["recorded"] >= middle]
    assert ids(("date", f"ge{middle}"), ("_count", "500")) == since
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    assert ids(("date", "ge" + (now + hour).strftime(fmt))) == []
    assert ids(("date", "le" + (now - 24 * hour).strftime(fmt))) == []
    assert ids(("date", "lt2000-01-01"), ("_count", "500")) == []
    both = [
        ("date", "ge" + (now - hour).strftime(fmt)),
        ("date", "le" + (now + hour).strftime(fmt)),
    ]
    assert ids(*both, ("_count", "500")) == every
    response = w.client.get("/AuditEvent", token, params=both)
    assert "date=ge" in response.json()["link"][0]["url"]
    assert "date=le" in response.json()["link"][0]["url"]
    for params, says in (
        ([("date", "ge2026-01-01"), ("date", "gt2026-02-01")], "two lower (ge, gt) bounds"),
        ([("date", "le2026-01-01"), ("date", "lt2026-02-01")], "two upper (le, lt) bounds"),
        ([("date", "2026-01-01")], "date takes a ge, gt, le or lt prefix"),
        ([("date", "le2026-13-45")], "is not a FHIR date"),
        ([("_count", "ten")], "_count must be an integer"),
        ([("action", "R")], "parameter 'action' is not supported"),
        ([("_count", "1"), ("_count", "2")], "'_count' is given more than once"),
    ):
        bad = w.client.get("/AuditEvent", token, params=params)
        assert bad.status_code == 400 and says in _diagnostics(bad), bad.text


# -- nothing else widened ----------------------------------------------------------------------
def test_the_patients_reading_is_unchanged(world: World) -> None:
    w = world
    a = f"Patient/{w.patients['A']}"
    mine = _bundle(w.client.get("/AuditEvent", w.patient("A"), params={"_count": "500"}))
    assert {_patient_of(e) for e in mine} == {a}
    assert {requestor_of(e) for e in mine} >= {DOCTOR, COLLEAGUE}  # everyone's accesses to A
    dpo = w.token(["system/AuditEvent.rs"])
    assert mine == _bundle(w.client.get("/AuditEvent", dpo, params={"patient": a, "_count": "500"}))
    other = w.client.get("/AuditEvent", w.patient("A"), params={"patient": w.patients["B"]})
    assert other.status_code == 403
    le = w.client.get("/AuditEvent", w.patient("A"), params={"date": "le2026-01-01"})
    assert le.status_code == 400 and "date takes a ge or gt prefix" in _diagnostics(le)


def test_reading_his_log_is_not_traced(world: World) -> None:
    w = world
    before = w.entries()
    token = w.professional(DOCTOR)
    _bundle(w.client.get("/AuditEvent", token))
    _bundle(w.client.get("/AuditEvent", token, params={"patient": w.patients["A"]}))
    assert w.entries() == before


@pytest.mark.parametrize(
    ("scopes", "professional", "says"),
    [
        (["user/Observation.rs"], True, "user/ scopes do not cover AuditEvent"),
        (["user/AuditEvent.c"], True, "user/ scopes do not cover AuditEvent"),
        (["system/AuditEvent.rs"], False, None),  # the DPO's tool: still any record's
        (["user/*.cruds"], False, "a professional reads his own accesses"),
        (["system/*.*"], False, "read by its patient, his legal representatives"),
    ],
)
def test_who_else_reads_what(
    world: World, scopes: list[str], professional: bool, says: str | None
) -> None:
    w = world
    token = w.professional(DOCTOR, *scopes) if professional else w.token(scopes)
    response = w.client.get("/AuditEvent", token)
    if says is None:  # the DPO's tool without patient=: 400, the whole trail is not listed
        assert response.status_code == 400 and "patient parameter is required" in response.text
        return
    assert response.status_code == 403 and says in _diagnostics(response), response.text
    assert w.client.get("/AuditEvent/1", token).status_code == 403


@pytest.mark.parametrize("scope", ["user/AuditEvent.rs", "user/AuditEvent.s", "user/*.read"])
def test_narrow_user_scopes_covering_auditevent_suffice(world: World, scope: str) -> None:
    w = world
    events = _bundle(w.client.get("/AuditEvent", w.professional(DOCTOR, scope)))
    assert events and all(requestor_of(e) == DOCTOR for e in events)


def test_a_patient_scope_still_confines_a_professional_token(world: World) -> None:
    w = world
    assert w.services.issuer is not None
    pid = w.patients["B"]
    token = w.token(
        ["patient/*.rs", "user/*.rs"],
        DOCTOR,
        patient=pid,
        professional={"idnps": DOCTOR, "activity": 0, "structure": {"finess": "750000001"}},
    )
    events = _bundle(w.client.get("/AuditEvent", token, params={"_count": "500"}))
    assert {_patient_of(e) for e in events} == {f"Patient/{pid}"}  # B's history, as before
    assert {requestor_of(e) for e in events} >= {DOCTOR, COLLEAGUE}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_stay_refused(world: World, method: str) -> None:
    w = world
    path = "/AuditEvent" if method == "POST" else "/AuditEvent/1"
    body = orjson.dumps({"resourceType": "AuditEvent"})
    response = w.client.call(method, path, w.professional(DOCTOR), content=body, headers=FHIR_JSON)
    assert response.status_code == 405


# -- the store: the requestor index --------------------------------------------------------
WHEN = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
PRO_1 = Actor(subject="s1", idnps=DOCTOR, profession="10", structure={"finess": "750000001"})
PRO_2 = Actor(subject="s2", idnps=COLLEAGUE, profession="10", structure={"finess": "130000002"})
NOT_A_PRO = Actor(subject="acc-1", fhir_user="Patient/p1")


@pytest.fixture
def trail(store: SqlStore, tmp_path: Path) -> AuditTrail:
    """Seqs: 1 PRO_1 read p1, 2 PRO_2 read p1, 3 PRO_1 denial p2, 4 the patient reads p1,
    5 PRO_1 break-glass p2, 6 a system event (no actor), 7 PRO_1 search p1 (a day later)."""
    t = AuditTrail.open(store, tmp_path / "state")
    t.record(
        [
            audit_event(PRO_1, "read", recorded=WHEN, patient="Patient/p1"),
            audit_event(PRO_2, "read", recorded=WHEN + timedelta(seconds=1), patient="Patient/p1"),
            audit_event(
                PRO_1, "denial", recorded=WHEN + timedelta(seconds=2), patient="Patient/p2"
            ),
            audit_event(
                NOT_A_PRO, "read", recorded=WHEN + timedelta(seconds=3), patient="Patient/p1"
            ),
            audit_event(
                PRO_1,
                "break-glass",
                recorded=WHEN + timedelta(seconds=4),
                patient="Patient/p2",
                reason={"rule": "break-glass", "text": BTG_REASON},
            ),
            audit_event(None, "admin", recorded=WHEN + timedelta(seconds=5)),
            audit_event(
                PRO_1,
                "search",
                recorded=WHEN + timedelta(days=1),
                patient="Patient/p1",
                query="Observation?patient=p1",
            ),
        ]
    )
    return t


def _column(store: SqlStore) -> dict[int, str | None]:
    t = audit_log.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.seq, t.requestor_idnps).order_by(t.seq)).all()
    return {int(r.seq): r.requestor_idnps for r in rows}


def _set(store: SqlStore, seq: int, value: str | None) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(requestor_idnps=value))


def test_the_migration_adds_the_indexed_column(store: SqlStore) -> None:
    inspector = inspect(store.engine)
    columns = {c["name"]: c for c in inspector.get_columns("audit_log")}
    assert columns["requestor_idnps"]["nullable"]
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("audit_log")}
    assert indexes["ix_audit_log_requestor"] == ["requestor_idnps", "seq"]
    store.migrate()  # idempotent


def test_append_fills_the_requestor_column(trail: AuditTrail, store: SqlStore) -> None:
    assert _column(store) == {
        1: DOCTOR,
        2: COLLEAGUE,
        3: DOCTOR,
        4: None,  # a patient's access: no IDNPS
        5: DOCTOR,
        6: None,  # no requesting agent
        7: DOCTOR,
    }
    assert trail.verify().intact


def test_for_requestor_newest_first_by_patient_and_dates(trail: AuditTrail) -> None:
    def ids(*args: Any, **kw: Any) -> list[int]:
        return _ids(trail.for_requestor(*args, **kw))

    assert ids(DOCTOR) == [7, 5, 3, 1]
    assert ids(COLLEAGUE) == [2]
    assert ids("810009999999") == []
    assert ids(DOCTOR, "Patient/p2") == [5, 3]
    assert ids(DOCTOR, "Patient/p1", count=1) == [7]
    assert ids(DOCTOR, count=0) == []
    assert ids(DOCTOR, since=WHEN + timedelta(seconds=2)) == [7, 5, 3]
    assert ids(DOCTOR, until=WHEN + timedelta(seconds=2)) == [3, 1]
    assert ids(DOCTOR, since=WHEN + timedelta(seconds=1), until=WHEN + timedelta(hours=1)) == [5, 3]
    glass = trail.for_requestor(DOCTOR, "Patient/p2", count=1)[0]
    assert glass["id"] == "5" and glass["outcomeDesc"] == BTG_REASON


def test_entries_without_the_column_are_not_listed_and_the_chain_holds(
    trail: AuditTrail, store: SqlStore
) -> None:
    _set(store, 1, None)  # as an entry written before the migration
    assert _ids(trail.for_requestor(DOCTOR)) == [7, 5, 3]
    assert trail.verify().intact  # the column is outside the chain's canonical entry


def test_an_edited_index_column_never_shows_anothers_access(
    trail: AuditTrail, store: SqlStore
) -> None:
    _set(store, 2, DOCTOR)  # the colleague's read, its index pointed at the doctor
    assert _ids(trail.for_requestor(DOCTOR)) == [7, 5, 3, 1]  # checked against the body
    assert _ids(trail.for_requestor(COLLEAGUE)) == []  # hidden from him, never shown to another
