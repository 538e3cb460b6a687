"""The DMP of a patient as pure rules: its state from the Patient and his Consents, and what a
feed or a consultation is told (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/, TD0.2)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maison.services.dmp import record
from maison.services.dmp.record import Kind, State

PATIENT: dict[str, Any] = {"resourceType": "Patient", "id": "p1", "active": True}
DOCTOR = {
    "reference": "Practitioner/d1",
    "identifier": {"system": record.IDNPS, "value": "810000000123"},
}


def _consent(kind: Kind, permit: bool, at: str, cid: str = "c") -> dict[str, Any]:
    return {**record.consent_resource("p1", kind, permit, at), "id": cid}


def _opened(at: str = "2026-01-02T10:00:00Z") -> dict[str, Any]:
    return _consent(Kind.OPENING, True, at, "open")


def test_never_opened() -> None:
    status = record.dmp_status(PATIENT, [])
    assert status.state is State.NEVER_OPENED and not status.exists and not status.is_open
    assert record.feeding_refusal(status) is None  # Mon espace santé: opened unless opposed
    assert "never opened" in (record.feeding_refusal(status, require_opening=True) or "")
    assert "never opened" in (record.consultation_refusal(status, None) or "")


def test_opened_then_fed_and_consulted() -> None:
    status = record.dmp_status(PATIENT, [_opened()])
    assert status.state is State.OPEN and status.exists and status.is_open
    assert status.opened_at == "2026-01-02T10:00:00Z"
    assert record.feeding_refusal(status) is None
    assert record.consultation_refusal(status, "810000000001") is None


def test_closed_keeps_documents_ten_years() -> None:
    patient = record.closed_patient(PATIENT, "2026-01-03T08:00:00+01:00", "décès")
    assert patient["active"] is False
    status = record.dmp_status(patient, [_opened()])
    assert status.state is State.CLOSED and status.exists and not status.is_open
    assert status.closed_at == "2026-01-03T08:00:00+01:00"
    assert status.purge_after == date(2036, 1, 3)
    assert record.feeding_refusal(status) == (
        "the patient's DMP is closed since 2026-01-03: nothing can be fed into it"
    )
    refusal = record.consultation_refusal(status, None) or ""
    assert "closed since 2026-01-03" in refusal and "2036-01-03" in refusal
    assert not record.purge_due(status, date(2036, 1, 2))
    assert record.purge_due(status, date(2036, 1, 3))
    assert record.dmp_status(patient, [], retention_years=2).purge_after == date(2028, 1, 3)


def test_reopened_clears_the_closure() -> None:
    closed = record.closed_patient(PATIENT, "2026-01-03", None)
    reopened = record.reopened_patient(closed)
    assert "extension" not in reopened and reopened["active"] is True
    assert record.dmp_status(reopened, [_opened()]).state is State.OPEN


def test_a_merged_record_is_inactive() -> None:
    status = record.dmp_status({**PATIENT, "active": False}, [_opened()])
    assert status.state is State.INACTIVE
    assert "inactive" in (record.feeding_refusal(status) or "")
    assert "inactive" in (record.consultation_refusal(status, None) or "")


def test_opposition_to_feeding_and_its_lifting() -> None:
    opposed = _consent(Kind.FEEDING, False, "2026-02-01T09:00:00Z", "f1")
    status = record.dmp_status(PATIENT, [_opened(), opposed])
    assert status.feeding_opposed_since == "2026-02-01T09:00:00Z"
    assert record.feeding_refusal(status) == (
        "the patient opposed the feeding of his DMP on 2026-02-01: nothing can be fed until "
        "he lifts it"
    )
    assert record.consultation_refusal(status, None) is None  # feeding only
    lifted = _consent(Kind.FEEDING, True, "2026-03-01T09:00:00Z", "f2")
    assert record.feeding_refusal(record.dmp_status(PATIENT, [_opened(), opposed, lifted])) is None
    # an inactive (superseded) decision counts for nothing
    assert (
        record.dmp_status(PATIENT, [{**opposed, "status": "inactive"}]).feeding_opposed_since
        is None
    )


def test_opposition_to_consultation_blocks_even_the_medecin_traitant() -> None:
    patient = record.with_medecin_traitant(PATIENT, DOCTOR)
    opposed = _consent(Kind.CONSULTATION, False, "2026-02-01T09:00:00Z")
    status = record.dmp_status(patient, [_opened(), opposed])
    assert status.medecin_traitant == DOCTOR
    assert record.feeding_refusal(status) is None
    doctor = record.consultation_refusal(status, "810000000123") or ""
    assert "even by his médecin traitant DMP" in doctor and "bris de glace" in doctor
    other = record.consultation_refusal(status, "810000000999") or ""
    assert "by any professional" in other


def test_medecin_traitant_is_recognised_by_idnps_or_fhir_user() -> None:
    assert record.is_professional(DOCTOR, "810000000123")
    assert not record.is_professional(DOCTOR, "810000000124")
    assert record.is_professional(DOCTOR, None, "Practitioner/d1")
    assert not record.is_professional(None, "810000000123")
    cleared = record.with_medecin_traitant(record.with_medecin_traitant(PATIENT, DOCTOR), None)
    assert record.dmp_status(cleared, []).medecin_traitant is None


def test_the_consent_shape() -> None:
    consent = record.consent_resource(
        "p1",
        Kind.CONSULTATION,
        False,
        "2026-02-01",
        performer={"reference": "RelatedPerson/r1"},
        method="written",
        source={"reference": "DocumentReference/form"},
    )
    assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
    codes = [c["coding"][0]["code"] for c in consent["category"]]
    assert codes == ["59284-0", "dmp-consultation"]
    assert consent["provision"] == {
        "type": "deny",
        "action": [{"coding": [{"system": record.ACTION_SYSTEM, "code": "access"}]}],
    }
    assert consent["performer"] == [{"reference": "RelatedPerson/r1"}]
    assert consent["policyRule"]["coding"][0]["code"] == "OPTOUT"
    assert consent["verification"][0]["verifiedWith"] == {"reference": "RelatedPerson/r1"}
    assert consent["sourceReference"] == {"reference": "DocumentReference/form"}
    assert consent["extension"] == [{"url": record.COLLECTION_METHOD, "valueCode": "written"}]
    assert record.decision_of(consent) == record.Decision(
        Kind.CONSULTATION, False, "2026-02-01", None
    )


@pytest.mark.parametrize(
    "consent",
    [
        {"resourceType": "Consent", "status": "active"},
        {"resourceType": "Observation"},
        {**record.consent_resource("p1", Kind.FEEDING, True, "2026-01-01"), "provision": {}},
        {
            **record.consent_resource("p1", Kind.FEEDING, True, "2026-01-01"),
            "category": [{"coding": [{"system": record.DECISION_SYSTEM, "code": "other"}]}],
        },
    ],
)
def test_other_consents_are_not_dmp_decisions(consent: dict[str, Any]) -> None:
    assert record.decision_of(consent) is None


instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
)


@given(st.lists(st.tuples(st.sampled_from(list(Kind)), st.booleans(), instants), max_size=12))
def test_the_newest_decision_of_each_kind_decides(
    decisions: list[tuple[Kind, bool, str]],
) -> None:
    consents = [_consent(k, p, at, f"c{i}") for i, (k, p, at) in enumerate(decisions)]
    status = record.dmp_status(PATIENT, consents)
    for kind, since in (
        (Kind.FEEDING, status.feeding_opposed_since),
        (Kind.CONSULTATION, status.consultation_opposed_since),
    ):
        mine = [(at, p) for k, p, at in decisions if k is kind]
        newest = max(at for at, _ in mine) if mine else None
        opposed = newest is not None and any(at == newest and not p for at, p in mine)
        if not opposed:
            # ties between a permit and a deny at one instant: either may decide
            assert since is None or any(at == newest and p for at, p in mine)
        else:
            assert since == newest or any(at == newest and p for at, p in mine)
    assert (record.feeding_refusal(status) is None) == (status.feeding_opposed_since is None)


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2080, 12, 31)),
    st.integers(min_value=0, max_value=20),
)
def test_purge_comes_exactly_after_the_retention(closed: date, years: int) -> None:
    patient = record.closed_patient(PATIENT, closed.isoformat(), None)
    status = record.dmp_status(patient, [], retention_years=years)
    assert status.purge_after == record.add_years(closed, years)
    assert status.purge_after is not None
    assert record.purge_due(status, status.purge_after)
    assert not record.purge_due(status, date.fromordinal(status.purge_after.toordinal() - 1))


@given(st.text(max_size=30))
def test_parse_instant_never_raises(text: str) -> None:
    record.parse_instant(text)
