"""The access engine alone: the order of the basis rules, the windows, and the search filter
agreeing with the per-document verdict for any document (property)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from maison.security.access import (
    Basis,
    Grant,
    RecordFacts,
    Viewer,
    basis,
    document_filter,
    document_verdict,
)
from maison.security.matrix import load_csv
from maison.security.matrix_store import packaged_matrix
from maison.security.professional import ActingProfessional
from maison.terminology.source import canonical_system

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
A03 = "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
LOINC = "http://loinc.org"
MATRIX = packaged_matrix(canonical_system)


def pro(idnps: str = "810000000001", profession: str = "10", finess: str = "750000001") -> Viewer:
    who = ActingProfessional(
        idnps, None, profession, None, None, None, None, None, {"finess": finess}, 0, "eidas1"
    )
    return Viewer("professional", who, f"Practitioner/{idnps}")


def facts(*grants: Grant, **options: Any) -> RecordFacts:
    return RecordFacts("Patient/p", grants=grants, **options)


def test_order_of_the_rules() -> None:
    me = pro("810000000009")
    mine = frozenset({"810000000009"})
    consent = Grant(
        "consent", "Consent/1", mine, start=NOW - timedelta(hours=1), end=NOW + timedelta(hours=1)
    )
    block = Grant("block", "Consent/2", mine)
    assert basis(facts(consent), me, NOW).rule == "dmp-access:consent"
    # blocked even with consent, and in regulation mode
    assert basis(facts(consent, blocks=(block,)), me, NOW).rule == "dmp-access:blocked"
    samu = Viewer("professional", me.professional, me.fhir_user, regulation=True)
    assert basis(facts(blocks=(block,)), samu, NOW).rule == "dmp-access:blocked"
    assert basis(facts(), samu, NOW).rule == "dmp-access:regulation"
    # an opposition beats the consent, not a bris de glace the patient did not oppose
    emergency = Grant(
        "emergency", "Consent/3", mine, start=NOW, end=NOW + timedelta(minutes=30), reason="coma"
    )
    opposed = facts(consent, consultation_opposed="2026-01-01")
    assert basis(opposed, me, NOW).rule == "dmp-access:opposition"
    both = facts(consent, emergency, consultation_opposed="2026-01-01")
    assert basis(both, me, NOW).emergency
    closed = facts(emergency, consultation_opposed="2026-01-01", emergency_opposed="2026-02-01")
    assert not basis(closed, me, NOW).allowed
    # the state refuses everyone
    assert basis(facts(consent, state_refusal="closed"), me, NOW).rule == "dmp-access:state"


def test_windows_and_teams() -> None:
    me = pro("810000000009", finess="750000077")
    mine = frozenset({"810000000009"})
    ended = Grant(
        "emergency",
        "Consent/4",
        mine,
        start=NOW - timedelta(hours=2),
        end=NOW - timedelta(hours=1),
        reason="x",
    )
    refused = basis(facts(ended), me, NOW)
    assert refused.rule == "dmp-access:expired-emergency" and "ended" in refused.reason
    team = Grant("care-team", "CareTeam/1", structures=frozenset({"750000077"}))
    assert basis(facts(team), me, NOW).rule == "dmp-access:care-team-without-consent"
    consented = Grant(
        "care-team", "CareTeam/1", structures=frozenset({"750000077"}), consent="Consent/9"
    )
    assert basis(facts(consented), me, NOW).rule == "dmp-access:care-team"
    doctor = {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810000000009"}}
    granted = basis(facts(medecin_traitant=doctor), me, NOW)
    assert granted.medecin_traitant and granted.rule == "dmp-access:medecin-traitant"
    assert basis(facts(), me, NOW).rule == "dmp-access:no-relationship"
    assert basis(facts(), Viewer("user"), NOW).rule == "dmp-access:no-professional-context"


# --- the search filter agrees with the verdict ---------------------------------------------------
CLASSES = ["10", "11", "31", "52", "99", "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"]
A10 = "https://mos.esante.gouv.fr/NOS/TRE_A10-NomenclatureURN/FHIR/TRE-A10-NomenclatureURN"
TYPES = ["11488-4", "11502-2", "18748-4", "11369-6"]
LABELS = ["N", "MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"]
# a matrix with type cells too: infirmiers (60) see class 10 but not the lab type, and the
# vaccination type outside any allowed class
TYPED = load_csv(
    "profession,savoir_faire,role,document_type,allowed,status,source\n"
    "60,,,CLASS:10,yes,provisional,test\n"
    "60,,,LOINC:11502-2,no,provisional,test\n"
    "60,,,LOINC:11369-6,yes,provisional,test\n"
    "10,,,CLASS:10,yes,provisional,test\n"
    "10,,,CLASS:11,yes,provisional,test\n"
    "10,,,CLASS:31,yes,provisional,test\n"
    "10,,,CLASS:52,yes,provisional,test\n",
    canonical=canonical_system,
)


def passes(doc: dict[str, Any], wanted: Any) -> bool:
    """The filter evaluated in Python as the SQL does."""
    if wanted.nothing:
        return False
    code = doc["type"]["coding"][0]["code"]
    coding = doc["category"][0]["coding"][0]
    klass = (coding["system"], coding["code"])
    marks = {c["code"] for s in doc.get("securityLabel", []) for c in s["coding"]}
    allowed_types = {t[1] for t in wanted.types_allowed}  # LOINC: matched by code alone
    if wanted.classes is not None and klass not in wanted.classes and code not in allowed_types:
        return False
    if code in {t[1] for t in wanted.types_denied}:
        return False
    return not (marks & set(wanted.exclude_labels) and doc["id"] not in wanted.except_ids)


@settings(max_examples=300, deadline=None)
@given(
    klass=st.sampled_from(CLASSES),
    class_system=st.sampled_from([A03, A10]),
    type_code=st.sampled_from(TYPES),
    labels=st.lists(st.sampled_from(LABELS), max_size=2, unique=True),
    authored=st.booleans(),
    viewer_kind=st.sampled_from(["pro10", "pro60", "pro21", "patient", "representative"]),
    doctor=st.booleans(),
    typed=st.booleans(),
)
def test_the_search_filter_agrees_with_the_verdict(
    klass: str,
    class_system: str,
    type_code: str,
    labels: list[str],
    authored: bool,
    viewer_kind: str,
    doctor: bool,
    typed: bool,
) -> None:
    matrix = TYPED if typed else MATRIX
    author = "810000000009" if authored else "810000000001"
    doc = {
        "id": "d1",
        "type": {"coding": [{"system": LOINC, "code": type_code}]},
        "category": [{"coding": [{"system": class_system, "code": klass}]}],
        "securityLabel": [{"coding": [{"code": code}]} for code in labels],
        "contained": [
            {
                "resourceType": "Practitioner",
                "id": "a",
                "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": author}],
            }
        ],
        "author": [{"reference": "#a"}],
    }
    if viewer_kind.startswith("pro"):
        viewer = pro("810000000009", viewer_kind[3:])
        granted = Basis(True, "dmp-access:consent", "test", medecin_traitant=doctor)
    else:
        viewer = Viewer(viewer_kind, patient="Patient/p")  # type: ignore[arg-type]
        granted = Basis(True, f"dmp-access:{viewer_kind}", "own")
    verdict = document_verdict(doc, viewer, granted, matrix)
    mine = ["d1"] if authored and "MASQUE_PS" in labels else []
    wanted = document_filter(viewer, granted, matrix, mine)
    assert passes(doc, wanted) == verdict.allowed, (verdict, wanted)
