"""Reading the trail through the API (``AuditEvent`` search and read, writes refused) and the
DPO's ``maison audit report`` of bris de glace accesses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from maison.api.audit_read import audit_search, audit_write_refusal
from maison.audit.chain import AuditTrail
from maison.audit.events import Actor, audit_event
from maison.cli.audit import audit_app
from maison.security.principal import Principal
from maison.store.sql import SqlStore

BASE = "https://maison.test/fhir"
WHEN = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DOCTOR = Actor(
    subject="s1", idnps="810002909371", profession="10", structure={"finess": "750000001"}
)
URGENTIST = Actor(
    subject="s2",
    idnps="810003333333",
    profession="10",
    structure={"finess": "130000002"},
    name="Dr Jeanne Martin",
)
BTG_REASON = "patient inconscient aux urgences, pronostic vital engagé"

PATIENT_P1 = {
    "sub": "acc-1",
    "iss": "https://maison.test",
    "scope": "openid patient/*.rs",
    "patient": "p1",
    "fhirUser": "Patient/p1",
}
REPRESENTATIVE_P1 = {
    "sub": "acc-3",
    "iss": "https://maison.test",
    "scope": "patient/AuditEvent.rs",
    "patient": "p1",
    "fhirUser": "RelatedPerson/r1",
    "representative": {"kind": "parent", "for": "Patient/p1", "self": "Patient/p3"},
}
DPO = {"sub": "dpo", "iss": "https://maison.test", "scope": "system/AuditEvent.read"}
DPO_V2 = {"sub": "dpo", "iss": "https://maison.test", "scope": "system/AuditEvent.s"}
PROFESSIONAL = {
    "sub": "810002909371",
    "iss": "https://maison.test",
    "scope": "user/*.rs",
    "professional": {"idnps": "810002909371", "activity": 0, "structure": {"finess": "750"}},
}


def _who(claims: dict[str, Any], **more: Any) -> Principal:
    return Principal.from_claims({**claims, **more})


@pytest.fixture
def trail(store: SqlStore, tmp_path: Path) -> AuditTrail:
    """Seqs: 1 read p1, 2 read p2, 3 break-glass p1, 4 read p1 under BTG, 5 denial p2,
    6 search p1 (a day later)."""
    t = AuditTrail.open(store, tmp_path / "state")
    t.record(
        [
            audit_event(
                DOCTOR,
                "read",
                recorded=WHEN + timedelta(seconds=1),
                patient="Patient/p1",
                resources=["Observation/o1"],
                reason={"rule": "matrix.allow", "text": "médecin traitant"},
            ),
            audit_event(
                DOCTOR,
                "read",
                recorded=WHEN + timedelta(seconds=2),
                patient="Patient/p2",
                resources=["Observation/o2"],
                reason={"rule": "matrix.allow"},
            ),
            audit_event(
                URGENTIST,
                "break-glass",
                recorded=WHEN + timedelta(seconds=3),
                patient="Patient/p1",
                reason={"rule": "break-glass", "text": BTG_REASON},
            ),
            audit_event(
                URGENTIST,
                "read",
                recorded=WHEN + timedelta(seconds=4),
                patient="Patient/p1",
                resources=["DocumentReference/d1"],
                break_glass=True,
                reason={"rule": "break-glass"},
            ),
            audit_event(
                DOCTOR,
                "denial",
                recorded=WHEN + timedelta(seconds=5),
                patient="Patient/p2",
                reason={"rule": "matrix.deny", "text": "hors équipe de soins"},
            ),
            audit_event(
                DOCTOR,
                "search",
                recorded=WHEN + timedelta(days=1),
                patient="Patient/p1",
                query="Observation?patient=p1",
                reason={"rule": "matrix.allow"},
            ),
        ]
    )
    return t


def _ids(body: dict[str, Any]) -> list[str]:
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset", body
    return [e["resource"]["id"] for e in body["entry"]]


def _diagnostics(body: dict[str, Any]) -> str:
    assert body["resourceType"] == "OperationOutcome", body
    return str(body["issue"][0]["diagnostics"])


def test_a_patient_sees_only_the_accesses_to_his_record(trail: AuditTrail) -> None:
    me = _who(PATIENT_P1)
    status, body = audit_search(trail, me, [], BASE)
    assert status == 200 and _ids(body) == ["6", "4", "3", "1"]  # newest first
    entry = body["entry"][0]
    assert entry["fullUrl"] == f"{BASE}/AuditEvent/6"
    assert entry["search"] == {"mode": "match"}
    assert entry["resource"]["resourceType"] == "AuditEvent"
    assert body["link"][0]["relation"] == "self"
    assert body["link"][0]["url"].startswith(f"{BASE}/AuditEvent?patient=Patient%2Fp1")
    for value in ("Patient/p1", "p1"):
        assert _ids(audit_search(trail, me, [("patient", value)], BASE)[1]) == ["6", "4", "3", "1"]
    status, body = audit_search(trail, me, [("patient", "Patient/p2")], BASE)
    assert status == 403
    assert _diagnostics(body) == "you may only read the accesses to your own record"
    assert body["issue"][0]["code"] == "forbidden"


def test_a_legal_representative_reads_the_record_he_acts_for(trail: AuditTrail) -> None:
    rep = _who(REPRESENTATIVE_P1)
    assert _ids(audit_search(trail, rep, [], BASE)[1]) == ["6", "4", "3", "1"]
    assert audit_search(trail, rep, [("patient", "p2")], BASE)[0] == 403
    other = {**REPRESENTATIVE_P1["representative"], "for": "Patient/p2"}  # type: ignore[dict-item]
    status, body = audit_search(trail, _who(REPRESENTATIVE_P1, representative=other), [], BASE)
    assert status == 403 and "represents Patient/p2" in _diagnostics(body)


def test_a_patient_token_needs_a_scope_covering_auditevent(trail: AuditTrail) -> None:
    narrow = _who(PATIENT_P1, scope="patient/Observation.rs")
    status, body = audit_search(trail, narrow, [], BASE)
    assert status == 403 and "patient/AuditEvent.rs" in _diagnostics(body)


def test_the_dpo_reads_any_record(trail: AuditTrail) -> None:
    for claims in (DPO, DPO_V2):
        dpo = _who(claims)
        assert _ids(audit_search(trail, dpo, [("patient", "Patient/p2")], BASE)[1]) == ["5", "2"]
        assert _ids(audit_search(trail, dpo, [("patient", "p1")], BASE)[1]) == ["6", "4", "3", "1"]
        status, body = audit_search(trail, dpo, [], BASE)  # no patient: the whole trail is no
        assert status == 400 and "patient parameter is required" in _diagnostics(body)
        status, body = audit_search(trail, dpo, [], BASE, "2")
        assert status == 200 and body["id"] == "2" and body["resourceType"] == "AuditEvent"


@pytest.mark.parametrize(
    "claims",
    [
        {**PROFESSIONAL, "professional": None},  # a user/ token without a professional context
        {**DPO, "scope": "system/*.*"},  # a wildcard backend is not the DPO's tool
        {**DPO, "scope": "system/AuditEvent.c"},
        {**DPO, "scope": "patient/*.rs"},  # patient scopes without a launch patient
    ],
)
def test_anyone_else_is_refused_with_the_reason(trail: AuditTrail, claims: Any) -> None:
    who = _who(claims)
    for resource_id in (None, "1"):
        status, body = audit_search(trail, who, [("patient", "p1")], BASE, resource_id)
        assert status == 403
        assert "read by its patient, his legal representatives, and the data protection" in (
            _diagnostics(body)
        )


def test_count_and_date(trail: AuditTrail) -> None:
    dpo = _who(DPO)
    p1 = ("patient", "p1")

    def ids(*params: tuple[str, str]) -> list[str]:
        status, body = audit_search(trail, dpo, [p1, *params], BASE)
        assert status == 200, body
        return _ids(body)

    assert ids(("_count", "2")) == ["6", "4"]
    assert ids(("_count", "0")) == []
    assert ids(("_count", "100000")) == ["6", "4", "3", "1"]  # capped at 500
    assert ids(("date", "ge2026-03-02")) == ["6"]
    assert ids(("date", "ge2026-03-01T10:00:03Z")) == ["6", "4", "3"]
    assert ids(("date", "gt2026-03-01T10:00:03Z")) == ["6", "4"]
    assert ids(("date", "gt2026-03-01")) == ["6"]  # after the whole day
    assert ids(("date", "ge2026-03-01T11:00:03+01:00")) == ["6", "4", "3"]
    assert ids(("date", "ge2026-03"), ("_count", "1"), ("_format", "json")) == ["6"]
    body = audit_search(trail, dpo, [p1, ("date", "ge2026-03-02")], BASE)[1]
    assert "date=ge2026-03-02T00%3A00%3A00.000000Z" in body["link"][0]["url"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ([("action", "R")], "parameter 'action' is not supported"),
        ([("patient:missing", "true")], "parameter 'patient:missing' is not supported"),
        ([("_count", "ten")], "_count must be an integer"),
        ([("_count", "-1")], "_count must be at least 0"),
        ([("date", "2026-03-01")], "date takes a ge or gt prefix"),
        ([("date", "le2026-03-01")], "date takes a ge or gt prefix"),
        ([("date", "ge2026-13-45")], "is not a FHIR date"),
        ([("patient", "Practitioner/x")], "patient must be Patient/[id] or an id"),
        ([("patient", "p1"), ("patient", "p2")], "'patient' is given more than once"),
    ],
)
def test_bad_parameters_are_400(
    trail: AuditTrail, params: list[tuple[str, str]], says: str
) -> None:
    for who in (_who(DPO), _who(PATIENT_P1)):
        extra = [] if any(k.startswith("patient") for k, _ in params) else [("patient", "p1")]
        status, body = audit_search(trail, who, [*extra, *params], BASE)
        assert status == 400 and says in _diagnostics(body), body
        assert body["issue"][0]["code"] == "invalid"


def test_read_by_id_never_reveals_another_record(trail: AuditTrail) -> None:
    me = _who(PATIENT_P1)
    status, body = audit_search(trail, me, [], BASE, "3")
    assert status == 200 and body["id"] == "3"
    assert body["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    missing = audit_search(trail, me, [], BASE, "999")
    other = audit_search(trail, me, [], BASE, "2")  # p2's entry
    assert missing[0] == other[0] == 404
    assert _diagnostics(other[1]) == "AuditEvent/2 is not known"
    for bad in ("0", "abc", "-1", "1" * 30):
        assert audit_search(trail, me, [], BASE, bad)[0] == 404
    status, body = audit_search(trail, me, [("patient", "p1")], BASE, "3")
    assert status == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_are_refused(method: str) -> None:
    status, body = audit_write_refusal(method)
    assert status == 405
    assert "AuditEvents are written by the platform only; they cannot be created, changed or " in (
        _diagnostics(body)
    )
    assert body["issue"][0]["code"] == "not-supported"


# -- maison audit report -------------------------------------------------------------------------
runner = CliRunner()


def _lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_report_lists_the_break_glass_accesses(
    trail: AuditTrail, data_url: str, tmp_path: Path
) -> None:
    args = ["--data", data_url, "--state", str(tmp_path / "state")]
    result = runner.invoke(audit_app, ["report", *args, "--json"])
    assert result.exit_code == 0, result.output
    lines = _lines(result.output)
    assert [line["seq"] for line in lines] == ["4", "3"]
    btg = lines[1]
    assert btg["kind"] == "break-glass" and btg["break_glass"] is True
    assert (btg["idnps"], btg["name"], btg["profession"]) == (
        "810003333333",
        "Dr Jeanne Martin",
        "10",
    )
    assert btg["structure"] == "finess 130000002" and btg["patient"] == "Patient/p1"
    assert btg["reason"] == BTG_REASON and btg["outcome"] == "0"

    result = runner.invoke(audit_app, ["report", *args])  # the Rich table
    assert result.exit_code == 0, result.output
    assert "810003333333" in result.output and "Dr Jeanne Martin" in result.output
    assert "patient inconscient" in result.output and "Patient/p1" in result.output

    by = {
        s: _lines(runner.invoke(audit_app, ["report", *args, "--json", "--structure", s]).output)
        for s in ("130000002", "750000001")
    }
    assert [line["seq"] for line in by["130000002"]] == ["4", "3"]
    assert by["750000001"] == []

    every = runner.invoke(audit_app, ["report", *args, "--json", "--all-kinds"]).output
    assert [line["seq"] for line in _lines(every)] == ["6", "5", "4", "3", "2", "1"]
    mine = ["report", *args, "--json", "--all-kinds", "--structure", "750000001"]
    assert [line["seq"] for line in _lines(runner.invoke(audit_app, mine).output)] == [
        "6",
        "5",
        "2",
        "1",
    ]
    later = ["report", *args, "--json", "--all-kinds", "--since", "2026-03-02"]
    assert [line["seq"] for line in _lines(runner.invoke(audit_app, later).output)] == ["6"]
    assert (
        _lines(
            runner.invoke(audit_app, ["report", *args, "--json", "--since", "2026-03-02"]).output
        )
        == []
    )
    bad = runner.invoke(audit_app, ["report", *args, "--since", "yesterday"])
    assert bad.exit_code == 2


def test_newest_streams_in_pages(trail: AuditTrail) -> None:
    assert [e["id"] for e in trail.newest(page=2)] == ["6", "5", "4", "3", "2", "1"]
    assert [e["id"] for e in trail.newest("Patient/p2", page=1)] == ["5", "2"]
    since = WHEN + timedelta(seconds=4)
    assert [e["id"] for e in trail.newest(None, since, page=1)] == ["6", "5", "4"]
    assert trail.entry(3) is not None and trail.entry(7) is None
