"""The access history as the patient reads it: who, profession, structure, what, bris de glace
(https://profiles.ihe.net/ITI/BALP/)."""

from __future__ import annotations

from datetime import UTC, datetime

from maison.audit.events import Actor, audit_event
from maison.portal.patient import access_row

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def test_a_doctors_emergency_read_names_him_his_structure_and_the_bris_de_glace() -> None:
    doctor = Actor(
        subject="psc-sub",
        idnps="810014606213",
        profession="10",
        structure={"finess": "750000001"},
        fhir_user="Practitioner/p1",
        client_id="maison-portal",
        name="Jean MARTIN",
    )
    event = audit_event(
        doctor,
        "read",
        recorded=NOW,
        resources=["DocumentReference/d1"],
        patient="Patient/x",
        break_glass=True,
    )
    row = access_row(event)
    assert row["name"] == "Jean MARTIN"
    assert row["structure"] == "750000001"
    assert row["emergency"] is True
    assert row["patient"] is False
    assert row["outcome"] == "autorisé"
    assert row["when"].startswith("2026-11-27T09:30")


def test_the_patients_own_access_is_his_and_a_refusal_says_so() -> None:
    me = Actor(subject="acc-1", fhir_user="Patient/x", client_id="maison-portal")
    row = access_row(
        audit_event(
            me, "denial", recorded=NOW, resources=["DocumentReference/d2"], patient="Patient/y"
        )
    )
    assert row["patient"] is True and row["name"] == "Vous"
    assert row["outcome"] == "refusé"
    assert row["emergency"] is False
