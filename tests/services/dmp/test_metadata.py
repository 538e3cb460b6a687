"""The DMP's metadata rules over the NOS value sets loaded in the SQL store: a type outside
JDV_J66 (or any metadatum outside its DMP value set) is refused with the value set named, the
class must be the one ASS_X16 gives for the type, an unloaded value set refuses rather than
lets through."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from maison.fhir.definitions import Definitions
from maison.services.dmp.metadata import metadata_issues, nos_url
from maison.terminology.source import LOINC, NOS_LOINC
from maison.terminology.sql_source import SqlTerminology
from support import SHARED, nos_csv_terminology

NOS_CSV = SHARED / "domain" / "data" / "nos"
A03 = nos_url("TRE_A03-ClasseDocument")
A08 = nos_url("TRE_A08-HL7Confidentiality")
A01 = nos_url("TRE_A01-CadreExercice")
DOC: dict[str, Any] = {
    "resourceType": "DocumentReference",
    "status": "current",
    "type": {"coding": [{"system": NOS_LOINC, "code": "11488-4"}]},
    "category": [{"coding": [{"system": A03, "code": "10"}]}],
    "securityLabel": [{"coding": [{"system": A08, "code": "N"}]}],
    "context": {"practiceSetting": {"coding": [{"system": A01, "code": "AMBULATOIRE"}]}},
    "content": [{"attachment": {"contentType": "application/pdf"}}],
}


@pytest.fixture(scope="module")
def term(
    backend: str, tmp_path_factory: pytest.TempPathFactory, defs: Definitions
) -> Iterator[SqlTerminology]:
    from servers import backend_data

    tmp = tmp_path_factory.mktemp("dmp")
    store, loaded = nos_csv_terminology(backend_data(backend, tmp), tmp / "state", defs)
    yield loaded
    store.close()


def _messages(doc: dict[str, Any], term: SqlTerminology) -> list[str]:
    return [i.diagnostics for i in metadata_issues(doc, term)]


def test_dmp_metadata_accepted(term: SqlTerminology) -> None:
    assert _messages(DOC, term) == []
    loinc = copy.deepcopy(DOC)
    loinc["type"]["coding"][0]["system"] = LOINC  # the same LOINC code under its HL7 URL
    assert _messages(loinc, term) == []


def test_a_type_outside_j66_is_refused_with_the_value_set_named(term: SqlTerminology) -> None:
    doc = copy.deepcopy(DOC)
    doc["type"] = {"coding": [{"system": LOINC, "code": "00000-0"}]}
    assert _messages(doc, term) == [
        "DocumentReference.type.coding[0]: http://loinc.org#00000-0 is not in the DMP value set "
        f"JDV_J66-TypeCode-DMP ({nos_url('JDV_J66-TypeCode-DMP')})"
    ]


def test_the_class_must_be_the_one_x16_gives_for_the_type(term: SqlTerminology) -> None:
    doc = copy.deepcopy(DOC)
    doc["category"] = [{"coding": [{"system": A03, "code": "11"}]}]
    assert _messages(doc, term) == [
        "DocumentReference.category: the type 11488-4 belongs to the class 10 according to "
        "ASS_X16-CorrespondanceType-Classe-DMP, not to 11"
    ]


def test_other_metadata_outside_their_value_sets(term: SqlTerminology) -> None:
    doc = copy.deepcopy(DOC)
    doc["securityLabel"] = [{"coding": [{"system": A08, "code": "ZZ"}]}]
    doc["context"]["practiceSetting"] = {"coding": [{"system": A01, "code": "NOPE"}]}
    assert _messages(doc, term) == [
        f"DocumentReference.context.practiceSetting.coding[0]: {A01}#NOPE is not in the DMP "
        f"value set JDV_J04-XdsPracticeSettingCode-CISIS "
        f"({nos_url('JDV_J04-XdsPracticeSettingCode-CISIS')})",
        f"DocumentReference.securityLabel[0].coding[0]: {A08}#ZZ is not in the DMP value set "
        f"JDV_J08-XdsConfidentialityCode-CISIS ({nos_url('JDV_J08-XdsConfidentialityCode-CISIS')})",
    ]


def test_a_value_set_not_loaded_refuses_rather_than_lets_through(term: SqlTerminology) -> None:
    doc = copy.deepcopy(DOC)
    doc["content"][0]["format"] = {
        "system": nos_url("TRE_A06-FormatCodeComplementaire"),
        "code": "x",
    }
    (message,) = _messages(doc, term)
    assert message.startswith(
        "DocumentReference.content[0].format: the DMP value set JDV_J60-FormatCode-DMP"
    )
    assert "is not loaded on this server" in message
