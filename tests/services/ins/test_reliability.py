"""RNIV identity statuses: every transition, with and without each kind of evidence."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from maison.fhir.errors import Category
from maison.services.ins.matricule import FR_CORE_V2_0203, SYSTEMS, Kind, compute_key
from maison.services.ins.reliability import (
    IDENTITY_STATUS_CS,
    LEGACY_STATUS_CS,
    METHOD_COLLECTION_CS,
    RELIABILITY_URL,
    VALIDATION_MODE_CS,
    Decision,
    InsiEvidence,
    check_patient_write,
    check_status,
    insi_call_allowed,
    may_emit_ins,
    read_reliability,
)
from maison.services.ins.traits import (
    BIRTH_LIST_GIVEN_NAME_URL,
    BIRTH_PLACE_URL,
    INSEE_CODE_URL,
    traits_from_insi,
)
from support import CORPORA

TODAY = date(2025, 6, 1)
FR_CORE = CORPORA / "compiled" / "hl7.fhir.fr.core"
NIR = SYSTEMS[Kind.NIR]
MATRICULE = "295109912611193"  # woman born in October 1995 abroad (99126)
OTHER_MATRICULE = "2951099126112" + compute_key("2951099126112")
COMMENT_CS = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status-comment"


def reliability(
    status: str | None,
    *,
    method: str | None = None,
    insi_date: str | None = None,
    mode: str | None = None,
    validation_date: str | None = None,
    comments: tuple[str, ...] = (),
) -> dict[str, Any]:
    subs: list[dict[str, Any]] = []
    if status is not None:
        coding = {"system": IDENTITY_STATUS_CS, "code": status}
        subs.append({"url": "identityStatus", "valueCoding": coding})
    if method is not None:
        coding = {"system": METHOD_COLLECTION_CS, "code": method}
        subs.append({"url": "methodCollection", "valueCoding": coding})
    if insi_date is not None:
        subs.append({"url": "dateInterrogationINSi", "valueDate": insi_date})
    if mode is not None:
        subs.append(
            {"url": "validationMode", "valueCoding": {"system": VALIDATION_MODE_CS, "code": mode}}
        )
    if validation_date is not None:
        subs.append({"url": "validationDate", "valueDate": validation_date})
    for code in comments:
        concept = {"coding": [{"system": COMMENT_CS, "code": code}]}
        subs.append({"url": "comment", "valueCodeableConcept": concept})
    return {"url": RELIABILITY_URL, "extension": subs}


def patient(
    rel: dict[str, Any] | None = None,
    *,
    birth_date: str = "1995-10-12",
    matricule: str | None = MATRICULE,
    given_list: str = "Marie Cécile",
) -> dict[str, Any]:
    extensions: list[dict[str, Any]] = [] if rel is None else [rel]
    extensions.append(
        {
            "url": BIRTH_PLACE_URL,
            "valueAddress": {
                "country": "GR",
                "extension": [{"url": INSEE_CODE_URL, "valueCoding": {"code": "99126"}}],
            },
        }
    )
    identifiers: list[dict[str, Any]] = [
        {"use": "usual", "system": "https://hospital.example/ipp", "value": "IPP-1"}
    ]
    if matricule is not None:
        identifiers.append(
            {
                "use": "official",
                "type": {"coding": [{"system": FR_CORE_V2_0203, "code": "INS-NIR"}]},
                "system": NIR,
                "value": matricule,
            }
        )
    return {
        "resourceType": "Patient",
        "id": "p1",
        "extension": extensions,
        "identifier": identifiers,
        "name": [
            {
                "use": "official",
                "family": "Durand",
                "given": ["Marie"],
                "extension": [{"url": BIRTH_LIST_GIVEN_NAME_URL, "valueString": given_list}],
            }
        ],
        "gender": "female",
        "birthDate": birth_date,
    }


def insi(
    cr: str = "00", birth_date: str = "1995-10-12", matricule: str = MATRICULE
) -> InsiEvidence:
    traits = traits_from_insi("DURAND", "MARIE CECILE", "F", birth_date, "99126")
    return InsiEvidence(cr, "2025-05-30", NIR, matricule, traits)


# --- evidence kinds: (fields of the new reliability extension, platform record, right) -------


@dataclass(frozen=True)
class Evidence:
    fields: dict[str, Any]
    platform: InsiEvidence | None = None
    may_assert: bool = False


EVIDENCE = {
    "none": Evidence({}),
    "insi-platform": Evidence({}, insi()),
    "insi-declared-right": Evidence({"method": "INSI", "insi_date": "2025-05-30"}, None, True),
    "cv-declared-right": Evidence({"method": "CV", "insi_date": "2025-05-30"}, None, True),
    "insi-declared-noright": Evidence({"method": "INSI", "insi_date": "2025-05-30"}),
    "document": Evidence({"mode": "CN", "validation_date": "2025-05-30"}),
    "document-minor": Evidence({"mode": "LECV", "validation_date": "2025-05-30"}),
    "both": Evidence({"mode": "PA", "validation_date": "2025-05-30"}, insi()),
    "av-right": Evidence({"method": "AV"}, None, True),
    "av-noright": Evidence({"method": "AV"}),
}
STATUSES = ["none", "PROV", "RECUP", "VALI", "QUAL"]

# One grid per evidence kind. Rows: the stored status ("none" = creation); columns: the status
# the client sends ("none" = no reliability status). A = accepted as sent; R:x = refused with a
# message containing x; D:S = stored with status S and a warning.
GRIDS = {
    "none": """
        none   A A R:INSi      R:document  R:INSi
        PROV   A A R:INSi      R:document  R:document
        RECUP  A A A           R:document  R:document
        VALI   A A R:INSi      A           R:INSi
        QUAL   A A A           A           A
    """,
    "insi-platform": """
        none   A A A           R:document  R:document
        PROV   A A A           R:document  R:document
        RECUP  A A A           R:document  R:document
        VALI   A A A           A           A
        QUAL   A A A           A           A
    """,
    "insi-declared-right": """
        none   A A A           R:document  R:document
        PROV   A A A           R:document  R:document
        RECUP  A A A           R:document  R:document
        VALI   A A A           A           A
        QUAL   A A A           A           A
    """,
    "cv-declared-right": """
        none   A A A           R:document  R:document
        PROV   A A A           R:document  R:document
        RECUP  A A A           R:document  R:document
        VALI   A A A           A           A
        QUAL   A A A           A           A
    """,
    "insi-declared-noright": """
        none   A A R:may-not   R:document  R:may-not
        PROV   A A R:may-not   R:document  R:may-not
        RECUP  A A A           R:document  R:document
        VALI   A A R:may-not   A           R:may-not
        QUAL   A A A           A           A
    """,
    "document": """
        none   A A R:INSi      A           R:INSi
        PROV   A A R:INSi      A           R:INSi
        RECUP  A A A           A           A
        VALI   A A R:INSi      A           R:INSi
        QUAL   A A A           A           A
    """,
    "document-minor": """
        none   A A R:INSi      A           R:INSi
        PROV   A A R:INSi      A           R:INSi
        RECUP  A A A           A           A
        VALI   A A R:INSi      A           R:INSi
        QUAL   A A A           A           A
    """,
    "both": """
        none   A A A           A           A
        PROV   A A A           A           A
        RECUP  A A A           A           A
        VALI   A A A           A           A
        QUAL   A A A           A           A
    """,
    "av-right": """
        none   A A A           A           A
        PROV   A A A           A           A
        RECUP  A A A           A           A
        VALI   A A A           A           A
        QUAL   A A A           A           A
    """,
    "av-noright": """
        none   A A R:may-not   R:document  R:may-not
        PROV   A A R:may-not   R:document  R:may-not
        RECUP  A A A           R:document  R:document
        VALI   A A R:may-not   A           R:may-not
        QUAL   A A A           A           A
    """,
}

# A strict trait (birthDate) changes in the same write; the evidence is the stored one (no new
# INSi call, no new document check). Creation cannot change a trait, so there is no "none" row.
TRAIT_CHANGE_GRID = """
    PROV   A A R:INSi      R:document  R:INSi
    RECUP  A A D:PROV      R:document  R:document
    VALI   A A R:INSi      D:PROV      R:INSi
    QUAL   A A D:PROV      D:PROV      D:PROV
"""
_STORED_INSI = {"method": "INSI", "insi_date": "2024-01-15"}
_STORED_DOCUMENT = {"mode": "CN", "validation_date": "2024-01-15"}
STORED_EVIDENCE: dict[str, dict[str, Any]] = {
    "PROV": {},
    "RECUP": _STORED_INSI,
    "VALI": _STORED_DOCUMENT,
    "QUAL": {**_STORED_INSI, **_STORED_DOCUMENT},
}


def _cases(grid: str, evidence: str) -> list[tuple[str, str, str, str]]:
    cases = []
    for line in grid.strip().splitlines():
        old, *cells = line.split()
        assert len(cells) == len(STATUSES), line
        for new, expected in zip(STATUSES, cells, strict=True):
            cases.append((evidence, old, new, expected))
    return cases


TRANSITIONS = [case for name, grid in GRIDS.items() for case in _cases(grid, name)]


def _check(expected: str, decision: Decision, sent: dict[str, Any], claimed: str | None) -> None:
    kind, _, detail = expected.partition(":")
    errors = [i.diagnostics for i in decision.issues if i.severity == "error"]
    if kind == "A":
        assert decision.outcome == "accepted", decision.issues
        assert decision.status == claimed and decision.resource == sent
        assert errors == []
    elif kind == "D":
        assert decision.outcome == "downgraded", decision.issues
        assert decision.status == detail and decision.claimed == claimed
        assert decision.resource is not None
        assert read_reliability(decision.resource).status == detail
        assert any("downgraded to " + detail in i.diagnostics for i in decision.issues)
        assert all(i.severity != "error" for i in decision.issues)
    else:
        assert decision.outcome == "refused" and decision.resource is None
        needle = "may not assert" if detail == "may-not" else detail
        assert any(needle in e for e in errors), errors
        error = decision.error
        assert error is not None and error.category is Category.UNPROCESSABLE


def _old(status: str) -> dict[str, Any] | None:
    if status == "none":
        return None
    return patient(reliability(status, **STORED_EVIDENCE.get(status, {})))


@pytest.mark.parametrize(("evidence", "old", "new", "expected"), TRANSITIONS)
def test_transition(evidence: str, old: str, new: str, expected: str) -> None:
    ev = EVIDENCE[evidence]
    claimed = None if new == "none" else new
    rel = None if claimed is None and not ev.fields else reliability(claimed, **ev.fields)
    sent = patient(rel)
    # The stored version carries only its status: the evidence of this write is ev's.
    stored = None if old == "none" else patient(reliability(old))
    before = copy.deepcopy(sent)
    decision = check_status(sent, stored, ev.platform, ev.may_assert, today=TODAY)
    assert sent == before  # never mutated
    if expected.startswith("A") and decision.resource is not None:
        assert decision.resource is not sent
    _check(expected, decision, sent, claimed)


@pytest.mark.parametrize(
    ("evidence", "old", "new", "expected"), _cases(TRAIT_CHANGE_GRID, "stored")
)
def test_transition_with_a_strict_trait_change(
    evidence: str, old: str, new: str, expected: str
) -> None:
    claimed = None if new == "none" else new
    stored = _old(old)
    assert stored is not None
    fields = STORED_EVIDENCE[old] if claimed is not None else {}
    rel = reliability(claimed, **fields) if claimed is not None else None
    sent = patient(rel, birth_date="1995-10-13")
    decision = check_status(sent, stored, None, True, today=TODAY)
    _check(expected, decision, sent, claimed)
    if decision.outcome == "downgraded":
        assert any("birthDate changed" in i.diagnostics for i in decision.issues)


# --- trait and matricule changes with new evidence ------------------------------------------

QUAL_STORED = STORED_EVIDENCE["QUAL"]


@pytest.mark.parametrize(
    ("old", "fields", "platform", "expected"),
    [
        # new document check after the change: the document criterion holds again
        ("QUAL", {**QUAL_STORED, "validation_date": "2025-05-30"}, None, "D:VALI"),
        # the platform called INSi with the new traits
        ("QUAL", QUAL_STORED, insi(birth_date="1995-10-13"), "D:RECUP"),
        # both again
        (
            "QUAL",
            {**QUAL_STORED, "mode": "PA", "validation_date": "2025-05-30"},
            insi(birth_date="1995-10-13"),
            "A",
        ),
        # a client with the right declares a new INSi call
        ("QUAL", {**QUAL_STORED, "insi_date": "2025-05-30"}, None, "D:RECUP"),
        # an INSi answer for the old traits does not support the new ones
        ("QUAL", QUAL_STORED, insi(), "D:PROV"),
        ("RECUP", {**QUAL_STORED, "validation_date": "2025-05-30"}, None, "D:VALI"),
    ],
)
def test_trait_change_with_new_evidence(
    old: str, fields: dict[str, Any], platform: InsiEvidence | None, expected: str
) -> None:
    stored = patient(reliability(old, **STORED_EVIDENCE[old]))
    sent = patient(reliability("QUAL", **fields), birth_date="1995-10-13")
    _check(expected, check_status(sent, stored, platform, True, today=TODAY), sent, "QUAL")


def test_accent_or_case_only_change_keeps_qual() -> None:
    stored = patient(reliability("QUAL", **QUAL_STORED), given_list="Marie Cécile")
    sent = patient(reliability("QUAL", **QUAL_STORED), given_list="MARIE CECILE")
    _check("A", check_status(sent, stored, None, False, today=TODAY), sent, "QUAL")


def test_matricule_change_voids_the_insi_criterion() -> None:
    stored = patient(reliability("QUAL", **QUAL_STORED))
    sent = patient(reliability("QUAL", **QUAL_STORED), matricule=OTHER_MATRICULE)
    decision = check_status(sent, stored, None, True, today=TODAY)
    _check("D:VALI", decision, sent, "QUAL")
    assert any("the matricule INS changed" in i.diagnostics for i in decision.issues)


def test_matricule_removed_from_a_recup_identity() -> None:
    stored = patient(reliability("RECUP", **STORED_EVIDENCE["RECUP"]))
    sent = patient(reliability("RECUP", **STORED_EVIDENCE["RECUP"]), matricule=None)
    _check("D:PROV", check_status(sent, stored, None, True, today=TODAY), sent, "RECUP")


# --- DOUT / FICT ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "comments", "expected"),
    [
        ("PROV", ("DOUT",), "A"),
        ("PROV", ("FICT",), "A"),
        ("PROV", ("DOUT", "HOMA"), "A"),
        (None, ("DOUT",), "R:must have status PROV, not none"),
        ("RECUP", ("DOUT",), "R:attribute DOUT"),
        ("VALI", ("DOUT",), "R:attribute DOUT"),
        ("QUAL", ("FICT",), "R:attribute FICT"),
        ("PROV", ("DOUT", "FICT"), "R:cannot be combined"),
    ],
)
def test_doubtful_and_fictitious_identities(
    status: str | None, comments: tuple[str, ...], expected: str
) -> None:
    ev = EVIDENCE["both"]
    sent = patient(reliability(status, comments=comments, **ev.fields))
    _check(expected, check_status(sent, None, ev.platform, True, today=TODAY), sent, status)


def test_insi_call_allowed() -> None:
    assert insi_call_allowed(patient(reliability("PROV"))) is None
    assert insi_call_allowed(patient()) is None
    issue = insi_call_allowed(patient(reliability("PROV", comments=("FICT",))))
    assert issue is not None and "may not be called" in issue.diagnostics
    assert issue.expression == ("Patient.extension[0]",)


# --- evidence that does not hold ------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "platform", "right", "fragment"),
    [
        (reliability("RECUP"), insi(cr="01"), False, "CR 01 (no identity found)"),
        (reliability("RECUP"), insi(cr="02"), False, "CR 02 (several identities found)"),
        (reliability("RECUP"), insi(birth_date="1995-10-11"), False, "birthDate differs"),
        (
            reliability("RECUP"),
            insi(matricule=OTHER_MATRICULE),
            False,
            "does not carry the matricule",
        ),
        (
            reliability("RECUP", method="INSI", insi_date="2025-06-02"),
            None,
            True,
            "is in the future",
        ),
        (reliability("RECUP", insi_date="2025-05-30"), None, True, "methodCollection INSI or CV"),
        (
            reliability("RECUP", method="SM", insi_date="2025-05-30"),
            None,
            True,
            "methodCollection INSI or CV",
        ),
        (reliability("VALI", mode="XX", validation_date="2025-05-30"), None, False, "high-trust"),
        (reliability("VALI", mode="CN"), None, False, "validationDate"),
        (reliability("VALI", mode="CN", validation_date="2025-02-30"), None, False, "calendar"),
        (reliability("FOO"), None, False, "not one of PROV, RECUP, VALI, QUAL"),
    ],
)
def test_evidence_that_does_not_hold(
    rel: dict[str, Any], platform: InsiEvidence | None, right: bool, fragment: str
) -> None:
    sent = patient(rel)
    decision = check_status(sent, None, platform, right, today=TODAY)
    claimed = read_reliability(sent).status
    _check("R:" + fragment, decision, sent, claimed)


def test_recup_needs_a_matricule_on_the_patient() -> None:
    sent = patient(reliability("RECUP", method="INSI", insi_date="2025-05-30"), matricule=None)
    decision = check_status(sent, None, None, True, today=TODAY)
    _check("R:carries no matricule INS", decision, sent, "RECUP")


def test_two_statuses_are_refused() -> None:
    sent = patient(reliability("PROV"))
    sent["extension"].append(reliability("VALI", mode="CN", validation_date="2025-05-30"))
    _check("R:exactly one", check_status(sent, None, None, False, today=TODAY), sent, "PROV")


def test_extra_reliability_extension_without_status_is_warned() -> None:
    sent = patient(reliability("PROV"))
    sent["extension"].append(reliability(None, comments=("HOMA",)))
    decision = check_status(sent, None, None, False, today=TODAY)
    assert decision.outcome == "accepted"
    assert any("only Patient.extension[0] is read" in i.diagnostics for i in decision.issues)
    assert read_reliability(sent).comments == ("HOMA",)


def test_legacy_status_codesystem_is_read_with_a_warning() -> None:
    rel = reliability("VALI", mode="CN", validation_date="2025-05-30")
    rel["extension"][0]["valueCoding"]["system"] = LEGACY_STATUS_CS
    sent = patient(rel)
    decision = check_status(sent, None, None, False, today=TODAY)
    assert decision.outcome == "accepted" and decision.status == "VALI"
    assert any(LEGACY_STATUS_CS in i.diagnostics for i in decision.issues)


def test_status_as_a_value_is_refused() -> None:
    sent = patient({"url": RELIABILITY_URL, "valueCode": "QUAL"})
    decision = check_status(sent, None, None, False, today=TODAY)
    assert decision.outcome == "refused"
    assert any("complex extension" in i.diagnostics for i in decision.issues)


# --- traits are enforced when the identity is above PROV or carries an INS ------------------


def test_qualified_identity_with_a_missing_trait_is_refused() -> None:
    ev = EVIDENCE["both"]
    sent = patient(reliability("QUAL", **ev.fields))
    del sent["extension"][1]["valueAddress"]["extension"]
    decision = check_status(sent, None, ev.platform, False, today=TODAY)
    _check("R:" + INSEE_CODE_URL, decision, sent, "QUAL")


def test_provisional_identity_with_ins_and_bad_traits_is_refused() -> None:
    sent = patient(reliability("PROV"))
    sent["gender"] = "unknown"
    _check(
        "R:cannot carry an INS", check_status(sent, None, None, False, today=TODAY), sent, "PROV"
    )


def test_plain_patient_without_ins_is_not_held_to_ins_traits() -> None:
    sent = {"resourceType": "Patient", "name": [{"family": "Smith", "given": ["J."]}]}
    decision = check_status(sent, None, None, False, today=TODAY)
    assert (decision.outcome, decision.status, decision.issues) == ("accepted", None, ())


def test_downgraded_resource_is_a_new_dict() -> None:
    stored = patient(reliability("QUAL", **QUAL_STORED))
    sent = patient(reliability("QUAL", **QUAL_STORED), birth_date="1995-10-13")
    before = copy.deepcopy(sent)
    decision = check_status(sent, stored, None, False, today=TODAY)
    assert sent == before
    assert decision.resource is not None
    coding = decision.resource["extension"][0]["extension"][0]["valueCoding"]
    assert coding == {
        "system": IDENTITY_STATUS_CS,
        "code": "PROV",
        "display": "Identité provisoire",
    }
    assert (
        decision.resource["extension"][0]["extension"][1:] == sent["extension"][0]["extension"][1:]
    )


# --- emission, whole write ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "matricule", "expected"),
    [
        ("QUAL", MATRICULE, True),
        ("RECUP", MATRICULE, False),
        ("VALI", MATRICULE, False),
        ("PROV", MATRICULE, False),
        (None, MATRICULE, False),
        ("QUAL", None, False),
    ],
)
def test_may_emit_ins(status: str | None, matricule: str | None, expected: bool) -> None:
    rel = None if status is None else reliability(status)
    assert may_emit_ins(patient(rel, matricule=matricule)) is expected


def test_check_patient_write_refuses_a_wrong_key_first() -> None:
    sent = patient(reliability("PROV"), matricule="295109912611194")
    decision = check_patient_write(sent, None, None, False, today=TODAY)
    assert decision.outcome == "refused"
    error = decision.error
    assert error is not None
    assert error.message == (
        "Patient.identifier[1].value: the key of matricule INS 295109912611194 is 94, expected 93"
    )


def test_check_patient_write_accepts_a_qualified_identity() -> None:
    ev = EVIDENCE["both"]
    sent = patient(reliability("QUAL", **ev.fields))
    decision = check_patient_write(sent, None, ev.platform, False, today=TODAY)
    assert (decision.outcome, decision.status, decision.issues) == ("accepted", "QUAL", ())
    assert decision.resource is not None and may_emit_ins(decision.resource)


# --- FR Core examples -----------------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FR_CORE / f"Patient-{name}.json").read_text("utf-8"))
    return data


def test_fr_core_ins_example_reads_qual() -> None:
    rel = read_reliability(_load("FRCorePatientINSExample"), TODAY)
    assert (rel.status, rel.index, rel.status_index, rel.issues) == ("QUAL", 0, 0, ())
    assert rel.method is None and rel.insi_date is None and rel.comments == ()


def test_fr_core_rniv_example_reads_prov_with_its_attributes() -> None:
    example = _load("FRCorePatientINSExampleRNIV")
    rel = read_reliability(example, TODAY)
    assert (rel.status, rel.comments, rel.issues) == ("PROV", ("DOUA", "DESA"), ())
    assert not rel.doubtful and not rel.fictitious
    assert insi_call_allowed(example) is None and not may_emit_ins(example)
    # the FSH also sets a lastUpdated sub-extension that the extension does not define
    fsh = copy.deepcopy(example)
    fsh["extension"][0]["extension"].insert(
        0, {"url": "lastUpdated", "valueDateTime": "2025-01-15T09:30:00+01:00"}
    )
    rel = read_reliability(fsh, TODAY)
    assert rel.status == "PROV"
    assert [i.severity for i in rel.issues] == ["warning"]


def test_fr_core_ins_example_bare_qual_claim_is_refused() -> None:
    # The example claims QUAL with no evidence (and an invalid key): the server does not trust it.
    decision = check_patient_write(_load("FRCorePatientINSExample"), None, None, False, today=TODAY)
    assert decision.outcome == "refused"
    messages = [i.diagnostics for i in decision.issues if i.severity == "error"]
    assert any("is 44, expected 12" in m for m in messages)
    assert any("needs a successful INSi retrieval" in m for m in messages)
