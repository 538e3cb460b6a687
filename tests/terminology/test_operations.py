"""The terminology operations in process: on the NOS files of ``../shared`` (JDV value sets,
TRE code systems, the ASS_X04 correspondence) through a :class:`PackageSource`, and on a small
hand-written SNOMED-like hierarchy for ``is-a``, ``descendent-of`` and ``$subsumes``.

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from maison.fhir.definitions import Definitions
from maison.terminology.binding import ServiceBindings
from maison.terminology.compose import Composer, ExpansionCache
from maison.terminology.errors import TerminologyError
from maison.terminology.expand import expand
from maison.terminology.lookup import lookup, subsumes
from maison.terminology.packages import PackageSource
from maison.terminology.source import (
    LOINC,
    NOS_LOINC,
    SNOMED,
    Concept,
    Designation,
    SystemInfo,
    canonical_system,
)
from maison.terminology.translate import translate
from maison.terminology.validate import validate_in_code_system, validate_in_value_set
from support import SHARED

NOS = SHARED / "corpora" / "nos"
CSV = SHARED / "domain" / "data" / "nos"
MOS = "https://mos.esante.gouv.fr/NOS"
J66 = f"{MOS}/JDV_J66-TypeCode-DMP/FHIR/JDV-J66-TypeCode-DMP"
J57 = f"{MOS}/JDV_J57-ClassCode-DMP/FHIR/JDV-J57-ClassCode-DMP"
J04 = f"{MOS}/JDV_J04-XdsPracticeSettingCode-CISIS/FHIR/JDV-J04-XdsPracticeSettingCode-CISIS"
J08 = f"{MOS}/JDV_J08-XdsConfidentialityCode-CISIS/FHIR/JDV-J08-XdsConfidentialityCode-CISIS"
X04 = f"{MOS}/ASS_X04-CorrespondanceType-Classe-CISIS/FHIR/ASS-X04-CorrespondanceType-Classe-CISIS"
A03 = f"{MOS}/TRE_A03-ClasseDocument/FHIR/TRE-A03-ClasseDocument"
A05 = f"{MOS}/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
G15 = f"{MOS}/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


def _rows(name: str) -> list[dict[str, str]]:
    with (CSV / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def nos(defs: Definitions) -> PackageSource:
    """The base R4 definitions plus the NOS value sets and code systems, and ASS_X04."""
    resources = [_json(p) for p in sorted(NOS.glob("*.json"))]
    maps = [r for r in resources if r["resourceType"] == "ConceptMap"]
    return PackageSource(defs.extended(resources), concept_maps=maps)


def _codes(vs: dict[str, Any]) -> list[dict[str, Any]]:
    contains: list[dict[str, Any]] = vs["expansion"].get("contains", [])
    return contains


# ---------------------------------------------------------------------------------- NOS: $expand


@pytest.mark.parametrize(
    ("url", "csv_name"),
    [
        (J66, "JDV_J66-TypeCode-DMP.csv"),
        (J57, "JDV_J57-ClassCode-DMP.csv"),
        (J04, "JDV_J04-XdsPracticeSettingCode-CISIS.csv"),
        (J08, "JDV_J08-XdsConfidentialityCode-CISIS.csv"),
    ],
)
def test_a_jdv_expands_to_exactly_the_codes_its_file_lists(
    nos: PackageSource, url: str, csv_name: str
) -> None:
    out = expand(nos, url=url, now=NOW)
    expected = {(r["system"], r["code"], r["display"]) for r in _rows(csv_name)}
    got = [(c["system"], c["code"], c["display"]) for c in _codes(out)]
    assert len(got) == len(set(got))
    assert set(got) == expected
    assert out["expansion"]["total"] == len(expected)
    assert out["url"] == url
    assert out["expansion"]["timestamp"] == "2026-01-01T00:00:00Z"
    assert "compose" not in out


def test_the_text_filter_ignores_accents_and_case_and_matches_word_starts(
    nos: PackageSource,
) -> None:
    for text in ("évaluation autonomie", "EVALUATION PERTE", "eval perte"):
        out = expand(nos, url=J66, filter=text)
        assert [c["code"] for c in _codes(out)] == ["BIL_AUTO"], text
        assert {"name": "filter", "valueString": text} in out["expansion"]["parameter"]
    both = {c["code"] for c in _codes(expand(nos, url=J66, filter="évaluation"))}
    assert both == {"BIL_AUTO", "34842-5"}  # … d'évaluation …, Grille d'évaluation …
    assert _codes(expand(nos, url=J66, filter="valuation")) == []  # not a word start


def test_paging_gives_total_offset_and_the_page(nos: PackageSource) -> None:
    whole = [c["code"] for c in _codes(expand(nos, url=J66))]
    out = expand(nos, url=J66, offset=5, count=10)
    assert out["expansion"]["total"] == 81
    assert out["expansion"]["offset"] == 5
    assert [c["code"] for c in _codes(out)] == whole[5:15]
    assert _codes(expand(nos, url=J66, offset=80, count=10))[0]["code"] == whole[80]
    assert "contains" not in expand(nos, url=J66, offset=81, count=10)["expansion"]


def test_include_designations(nos: PackageSource) -> None:
    plain = _codes(expand(nos, url=J57, count=1))[0]
    assert "designation" not in plain
    rich = _codes(expand(nos, url=J57, count=1, include_designations=True))[0]
    assert {"use": {"code": "OID"}, "value": "urn:oid:1.2.250.1.213.1.1.4.1"} in rich["designation"]


def test_a_code_system_included_whole_with_inactive_codes(nos: PackageSource) -> None:
    inline = {"resourceType": "ValueSet", "compose": {"include": [{"system": G15}]}}
    out = expand(nos, value_set=inline)
    rows = _rows("TRE_G15-ProfessionSante.csv")
    assert {c["code"] for c in _codes(out)} == {r["code"] for r in rows}
    psy = next(c for c in _codes(out) if c["code"] == "93")  # dateFin: withdrawn
    assert psy["inactive"] is True
    assert {"name": "version", "valueUri": f"{G15}|20211217120000"} in out["expansion"]["parameter"]
    active = expand(nos, value_set=inline, active_only=True)
    assert "93" not in {c["code"] for c in _codes(active)}
    assert active["expansion"]["total"] == len(rows) - 1


def test_an_expansion_over_the_limit_is_too_costly(nos: PackageSource) -> None:
    with pytest.raises(TerminologyError) as err:
        expand(nos, url=J66, max_expansion=50)
    assert err.value.code == "too-costly"
    assert "81" in err.value.message and "count" in err.value.message
    assert len(_codes(expand(nos, url=J66, max_expansion=50, count=50))) == 50
    assert len(_codes(expand(nos, url=J66, max_expansion=50, filter="compte rendu"))) < 50


def test_base_r4_value_sets_expand(nos: PackageSource) -> None:
    out = expand(nos, url="http://hl7.org/fhir/ValueSet/administrative-gender")
    # a code system included whole: its codes in code order
    assert [c["code"] for c in _codes(out)] == ["female", "male", "other", "unknown"]
    assert all(c["system"] == "http://hl7.org/fhir/administrative-gender" for c in _codes(out))


# --------------------------------------------------------------------------- NOS: $validate-code


def _result(parameters: dict[str, Any]) -> bool:
    return next(p["valueBoolean"] for p in parameters["parameter"] if p["name"] == "result")


def _param(parameters: dict[str, Any], name: str) -> Any:
    return next(
        (
            next(v for k, v in p.items() if k.startswith("value"))
            for p in parameters["parameter"]
            if p["name"] == name
        ),
        None,
    )


def test_every_j66_code_is_in_j66_and_not_in_j57(nos: PackageSource) -> None:
    cache = ExpansionCache()
    rows = _rows("JDV_J66-TypeCode-DMP.csv")
    assert len(rows) == 81
    for r in rows:
        yes = validate_in_value_set(
            nos, url=J66, system=r["system"], code=r["code"], display=r["display"], cache=cache
        )
        assert _result(yes), (r, yes)
        assert _param(yes, "message") is None
        assert _param(yes, "display") == r["display"]
        no = validate_in_value_set(nos, url=J57, system=r["system"], code=r["code"], cache=cache)
        assert not _result(no), r
        assert J57 in _param(no, "message")


def test_loinc_under_either_url_is_one_code_system(nos: PackageSource) -> None:
    listed = [r for r in _rows("JDV_J66-TypeCode-DMP.csv") if r["system"] == NOS_LOINC]
    assert len(listed) == 55
    for system in (LOINC, NOS_LOINC, "urn:oid:2.16.840.1.113883.6.1"):
        for r in listed:
            coding = {"system": system, "code": r["code"]}
            assert _result(validate_in_value_set(nos, url=J66, coding=coding)), (system, r)
    # and the other way round: a value set listing them under http://loinc.org
    inline = {
        "resourceType": "ValueSet",
        "compose": {"include": [{"system": LOINC, "concept": [{"code": "11488-4"}]}]},
    }
    assert _result(validate_in_value_set(nos, value_set=inline, system=NOS_LOINC, code="11488-4"))


def test_a_wrong_display_is_a_warning_not_a_refusal(nos: PackageSource) -> None:
    out = validate_in_value_set(
        nos, url=J57, system=A03, code="10", display="Compte-rendu opératoire"
    )
    assert _result(out)
    assert "Compte-rendu opératoire" in _param(out, "message")
    assert "Compte rendu" in _param(out, "message")
    # a designation of the code system (LibelleCourt…) or another case is no warning
    case = validate_in_value_set(nos, url=J57, system=A03, code="10", display="compte  RENDU")
    assert _param(case, "message") is None


def test_a_codeable_concept_is_valid_when_one_coding_is(nos: PackageSource) -> None:
    cc = {"coding": [{"system": A03, "code": "nope"}, {"system": A03, "code": "11"}]}
    out = validate_in_value_set(nos, url=J57, codeable_concept=cc)
    assert _result(out)
    assert _param(out, "display") == "Synthèse"
    bad = {"coding": [{"system": A03, "code": "nope"}]}
    out = validate_in_value_set(nos, url=J57, codeable_concept=bad)
    assert not _result(out)
    assert "Unknown code 'nope'" in _param(out, "message")


def test_code_system_validate_code(nos: PackageSource) -> None:
    ok = validate_in_code_system(nos, url=G15, code="10", display="Médecin")
    assert _result(ok) and _param(ok, "display") == "Médecin"
    assert _param(ok, "message") is None
    warn = validate_in_code_system(nos, url=G15, code="10", display="Dentiste")
    assert _result(warn) and "Dentiste" in _param(warn, "message")
    unknown = validate_in_code_system(nos, url=G15, code="99999")
    assert not _result(unknown) and "99999" in _param(unknown, "message")
    withdrawn = validate_in_code_system(nos, url=G15, code="93")
    assert _result(withdrawn) and "inactive" in _param(withdrawn, "message")
    by_coding = validate_in_code_system(nos, coding={"system": G15, "code": "21"})
    assert _param(by_coding, "display") == "Pharmacien"
    with pytest.raises(TerminologyError) as err:
        validate_in_code_system(nos, url=G15, version="1999", code="10")
    assert err.value.category == "not-found" and "20211217120000" in err.value.message


def test_lookup_gives_name_version_display_designations_and_properties(
    nos: PackageSource,
) -> None:
    out = lookup(nos, system=G15, code="10")
    assert _param(out, "name") == "TRE_G15-ProfessionSante"
    assert _param(out, "version") == "20211217120000"
    assert _param(out, "display") == "Médecin"
    designations = [p for p in out["parameter"] if p["name"] == "designation"]
    assert any(
        {"name": "use", "valueCoding": {"code": "LibelleCourt"}} in d["part"] for d in designations
    )
    props = {
        p["part"][0]["valueCode"]: p["part"][1] for p in out["parameter"] if p["name"] == "property"
    }
    assert props["dateValid"]["valueString"].startswith("20")
    assert props["inactive"] == {"name": "value", "valueBoolean": False}
    only = lookup(nos, coding={"system": G15, "code": "93"}, properties=["inactive"])
    kinds = {p["name"] for p in only["parameter"]}
    assert kinds == {"name", "version", "display", "property"}
    assert only["parameter"][-1]["part"][1] == {"name": "value", "valueBoolean": True}


def test_lookup_of_a_hierarchical_base_code_system(nos: PackageSource) -> None:
    system = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
    out = lookup(nos, system=system, code="unconfirmed", properties=["child"])
    children = [p["part"][1]["valueCode"] for p in out["parameter"] if p["name"] == "property"]
    assert children == ["provisional", "differential"]
    up = lookup(nos, system=system, code="provisional", properties=["parent"])
    assert up["parameter"][-1]["part"] == [
        {"name": "code", "valueCode": "parent"},
        {"name": "value", "valueCode": "unconfirmed"},
        {"name": "description", "valueString": "Unconfirmed"},
    ]
    assert (
        _param(subsumes(nos, system=system, code_a="unconfirmed", code_b="provisional"), "outcome")
        == "subsumes"
    )


# ------------------------------------------------------------------------------- NOS: $translate


def test_translate_with_x04_gives_the_class_of_each_type_code(nos: PackageSource) -> None:
    cm = _json(NOS / "ASS_X04-CorrespondanceType-Classe-CISIS-FHIR.json")
    checked = 0
    for group in cm["group"]:
        for element in group["element"]:
            out = translate(nos, url=X04, system=group["source"], code=element["code"])
            assert _result(out), element
            matches = [p for p in out["parameter"] if p["name"] == "match"]
            concepts = [
                next(x["valueCoding"] for x in m["part"] if x["name"] == "concept") for m in matches
            ]
            assert [c["code"] for c in concepts] == [t["code"] for t in element["target"]]
            assert all(c["system"] == group["target"] for c in concepts)
            assert matches[0]["part"][0] == {"name": "equivalence", "valueCode": "equivalent"}
            assert matches[0]["part"][-1] == {"name": "source", "valueUri": X04}
            checked += 1
    assert checked == 111


def test_translate_agrees_with_the_x16_file_and_takes_loinc_under_its_own_url(
    nos: PackageSource,
) -> None:
    agreed = 0
    for r in _rows("ASS_X16-CorrespondanceType-Classe-DMP.csv"):
        # no url: every concept map held is searched; http://loinc.org is the NOS TRE_A04
        out = translate(nos, system=r["source_system"], code=r["type_code"])
        if not _result(out):
            continue  # a code X16 maps but the older X04 does not
        classes = {
            x["valueCoding"]["code"]
            for p in out["parameter"]
            if p["name"] == "match"
            for x in p["part"]
            if x["name"] == "concept"
        }
        assert classes == {r["class_code"]}, r
        agreed += 1
    assert agreed >= 90


def test_reverse_translate_gives_the_types_of_a_class(nos: PackageSource) -> None:
    out = translate(nos, url=X04, system=A03, code="10", reverse=True)
    assert _result(out)
    codes = {
        (x["valueCoding"]["system"], x["valueCoding"]["code"])
        for p in out["parameter"]
        if p["name"] == "match"
        for x in p["part"]
        if x["name"] == "concept"
    }
    assert (NOS_LOINC, "11488-4") in codes
    none = translate(nos, url=X04, system=A03, code="11488-4")
    assert not _result(none)
    assert "11488-4" in _param(none, "message")


# ------------------------------------------------------------------------------- NOS: bad input


def test_bad_input_is_refused_with_the_reason(nos: PackageSource) -> None:
    cases: list[tuple[Any, str, str]] = [
        (lambda: expand(nos, url="http://example.org/vs/none"), "not-found", "example.org/vs/none"),
        (lambda: expand(nos), "required", "url"),
        (lambda: validate_in_value_set(nos, url=J66), "required", "code"),
        (lambda: validate_in_value_set(nos, url=J66, code="10"), "required", "system"),
        (lambda: validate_in_value_set(nos, system=A03, code="10"), "required", "value set"),
        (
            lambda: lookup(nos, system="http://example.org/cs", code="x"),
            "not-found",
            "example.org/cs",
        ),
        (lambda: lookup(nos, system=G15, code="nope"), "not-found", "nope"),
        (lambda: lookup(nos), "required", "code"),
        (
            lambda: translate(nos, url="http://example.org/cm", system=A03, code="10"),
            "not-found",
            "example.org/cm",
        ),
        (lambda: translate(nos, url=X04), "required", "code"),
        (lambda: expand(nos, url=J66, offset=-1), "invalid", "offset"),
        (
            lambda: expand(
                nos,
                value_set={
                    "resourceType": "ValueSet",
                    "url": "http://example.org/vs/x",
                    "compose": {"include": [{"system": "http://example.org/unheld"}]},
                },
            ),
            "processing",
            "http://example.org/unheld",
        ),
    ]
    for call, code, words in cases:
        with pytest.raises(TerminologyError) as err:
            call()
        assert err.value.code == code, (code, err.value.message)
        assert words in err.value.message, err.value.message


def test_a_value_set_on_an_unknown_system_fails_validation_with_a_message(
    nos: PackageSource,
) -> None:
    vs = {"resourceType": "ValueSet", "compose": {"include": [{"system": "http://x.org/cs"}]}}
    out = validate_in_value_set(nos, value_set=vs, system="http://x.org/cs", code="1")
    assert not _result(out)
    assert "http://x.org/cs" in _param(out, "message")


# ------------------------------------------------------------------- a SNOMED-like hierarchy


ROOT, FINDING, DISEASE, GLUCOSE, DIABETES, TYPE1, TYPE2, HYPERTENSION = (
    "138875005",
    "404684003",
    "64572001",
    "126877002",
    "73211009",
    "46635009",
    "44054006",
    "38341003",
)
PROCEDURE, SURGERY = "71388002", "387713003"
PARENTS: dict[str, list[str]] = {
    FINDING: [ROOT],
    DISEASE: [FINDING],
    GLUCOSE: [DISEASE],
    DIABETES: [DISEASE, GLUCOSE],
    TYPE1: [DIABETES],
    TYPE2: [DIABETES],
    HYPERTENSION: [DISEASE],
    PROCEDURE: [ROOT],
    SURGERY: [PROCEDURE],
}
NAMES = {
    ROOT: "SNOMED CT Concept",
    FINDING: "Clinical finding",
    DISEASE: "Disease",
    GLUCOSE: "Disorder of glucose metabolism",
    DIABETES: "Diabetes mellitus",
    TYPE1: "Type 1 diabetes mellitus",
    TYPE2: "Type 2 diabetes mellitus",
    HYPERTENSION: "Hypertensive disorder",
    PROCEDURE: "Procedure",
    SURGERY: "Surgical procedure",
}
FRENCH = {DIABETES: "Diabète sucré", TYPE2: "Diabète de type 2", HYPERTENSION: "Hypertension"}
VS = "http://example.org/fhir/ValueSet/"


def _vs(
    name: str, *include: dict[str, Any], exclude: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    compose: dict[str, Any] = {"include": list(include)}
    if exclude:
        compose["exclude"] = exclude
    return {"resourceType": "ValueSet", "url": VS + name, "status": "active", "compose": compose}


def _is(op: str, value: str) -> dict[str, Any]:
    return {"system": SNOMED, "filter": [{"property": "concept", "op": op, "value": value}]}


class FakeSnomed:
    """A hand-written in-memory source: ten concepts of a SNOMED-like DAG, a few value sets."""

    def __init__(self) -> None:
        self.revision = 1
        self.calls: dict[str, int] = {}
        self.value_sets = {
            vs["url"]: vs
            for vs in (
                _vs("diabetes", _is("is-a", DIABETES)),
                _vs("below-disease", _is("descendent-of", DISEASE)),
                _vs("not-findings", _is("is-not-a", FINDING)),
                _vs("everything", {"system": SNOMED}),
                _vs(
                    "diabetes-but-type-1",
                    {"valueSet": [VS + "diabetes"]},
                    exclude=[{"system": SNOMED, "concept": [{"code": TYPE1}]}],
                ),
                _vs("glucose-diabetes", {"valueSet": [VS + "diabetes", VS + "below-glucose"]}),
                _vs("below-glucose", _is("descendent-of", GLUCOSE)),
                _vs("a", {"valueSet": [VS + "b"]}),
                _vs("b", {"valueSet": [VS + "c"]}),
                _vs("c", {"valueSet": [VS + "a"]}),
                _vs(
                    "self-in-exclude",
                    {"system": SNOMED},
                    exclude=[{"valueSet": [VS + "self-in-exclude"]}],
                ),
                _vs(
                    "by-parent",
                    {
                        "system": SNOMED,
                        "filter": [{"property": "parent", "op": "=", "value": DISEASE}],
                    },
                ),
                _vs(
                    "in",
                    {
                        "system": SNOMED,
                        "filter": [
                            {"property": "concept", "op": "in", "value": f"{TYPE1},{SURGERY}"}
                        ],
                    },
                ),
                _vs("generalizes", _is("generalizes", TYPE2)),
            )
        }

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def system(self, url: str, version: str | None = None) -> SystemInfo | None:
        if canonical_system(url) != SNOMED or version not in (None, "2025-01"):
            return None
        return SystemInfo(SNOMED, "2025-01", "SNOMED CT", None, len(NAMES), "complete", True)

    def systems(self) -> list[SystemInfo]:
        info = self.system(SNOMED)
        return [info] if info else []

    def concept(self, url: str, code: str, version: str | None = None) -> Concept | None:
        self._count("concept")
        if self.system(url, version) is None or code not in NAMES:
            return None
        french = (Designation(FRENCH[code], "fr"),) if code in FRENCH else ()
        return Concept(SNOMED, code, NAMES[code], "2025-01", False, french)

    def concepts(
        self, url: str, version: str | None = None, words: list[str] | None = None
    ) -> Iterator[Concept]:
        self._count("concepts")
        for code in sorted(NAMES):
            c = self.concept(url, code, version)
            if c is not None and c.matches(words or []):
                yield c

    def parents(self, url: str, code: str, version: str | None = None) -> list[str]:
        return list(PARENTS.get(code, [])) if self.system(url, version) else []

    def children(self, url: str, code: str, version: str | None = None) -> list[str]:
        if not self.system(url, version):
            return []
        return [c for c, ps in PARENTS.items() if code in ps]

    def descendants(self, url: str, code: str, version: str | None = None) -> set[str]:
        out: set[str] = set()
        todo = self.children(url, code, version)
        while todo:
            c = todo.pop()
            if c not in out:
                out.add(c)
                todo.extend(self.children(url, c, version))
        return out

    def value_set(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        self._count("value_set")
        return self.value_sets.get(url)

    def concept_map(self, url: str, version: str | None = None) -> dict[str, Any] | None:
        return None

    def concept_maps(self) -> list[dict[str, Any]]:
        return []


@pytest.fixture
def snomed() -> FakeSnomed:
    return FakeSnomed()


def _expanded(source: Any, name: str, **kwargs: Any) -> list[str]:
    return [c["code"] for c in _codes(expand(source, url=VS + name, **kwargs))]


def test_is_a_descendent_of_is_not_a_and_other_filters(snomed: FakeSnomed) -> None:
    assert set(_expanded(snomed, "diabetes")) == {DIABETES, TYPE1, TYPE2}
    assert set(_expanded(snomed, "below-disease")) == {
        GLUCOSE,
        DIABETES,
        TYPE1,
        TYPE2,
        HYPERTENSION,
    }
    assert set(_expanded(snomed, "not-findings")) == {ROOT, PROCEDURE, SURGERY}
    assert len(_expanded(snomed, "everything")) == 10
    assert set(_expanded(snomed, "by-parent")) == {GLUCOSE, DIABETES, HYPERTENSION}
    assert set(_expanded(snomed, "in")) == {TYPE1, SURGERY}
    assert set(_expanded(snomed, "generalizes")) == {
        TYPE2,
        DIABETES,
        DISEASE,
        GLUCOSE,
        FINDING,
        ROOT,
    }


def test_imports_intersect_and_excludes_remove(snomed: FakeSnomed) -> None:
    assert set(_expanded(snomed, "diabetes-but-type-1")) == {DIABETES, TYPE2}
    # diabetes ∩ below-glucose: the DAG puts diabetes under glucose disorders too
    assert set(_expanded(snomed, "glucose-diabetes")) == {DIABETES, TYPE1, TYPE2}


def test_designations_are_searched_by_the_filter(snomed: FakeSnomed) -> None:
    assert set(_expanded(snomed, "everything", filter="diabete")) == {DIABETES, TYPE1, TYPE2}
    assert _expanded(snomed, "everything", filter="sucre") == [DIABETES]  # sucré, in French
    assert _expanded(snomed, "everything", filter="hyper", display_language="fr") == [HYPERTENSION]
    out = expand(snomed, url=VS + "everything", filter="hyper", display_language="fr")
    assert _codes(out)[0]["display"] == "Hypertension"


def test_validate_code_in_a_hierarchy(snomed: FakeSnomed) -> None:
    for code, expected in ((TYPE2, True), (DIABETES, True), (DISEASE, False), (SURGERY, False)):
        out = validate_in_value_set(snomed, url=VS + "diabetes", system=SNOMED, code=code)
        assert _result(out) is expected, code
    out = validate_in_value_set(snomed, url=VS + "diabetes", system=SNOMED, code="999")
    assert "Unknown code '999'" in _param(out, "message")


def test_membership_without_expanding_a_value_set_too_big(snomed: FakeSnomed) -> None:
    composer = Composer(snomed, ExpansionCache(), limit=2)
    for name, code, expected in (
        ("below-disease", TYPE2, True),
        ("below-disease", DISEASE, False),
        ("not-findings", SURGERY, True),
        ("not-findings", TYPE1, False),
        ("diabetes-but-type-1", TYPE1, False),
        ("diabetes-but-type-1", TYPE2, True),
        ("glucose-diabetes", TYPE1, True),
        ("by-parent", HYPERTENSION, True),
        ("generalizes", FINDING, True),
        ("generalizes", TYPE1, False),
    ):
        vs = snomed.value_sets[VS + name]
        found = composer.contains(vs, composer.key(vs, VS + name, None), SNOMED, code)
        assert (found is not None) is expected, (name, code)
    # too big to return at once, but a text filter is handed to the source
    with pytest.raises(TerminologyError) as err:
        expand(snomed, url=VS + "everything", max_computed=2)
    assert err.value.code == "too-costly"
    assert _expanded(snomed, "everything", filter="surgical", max_computed=2) == [SURGERY]


def test_circular_includes_are_named(snomed: FakeSnomed) -> None:
    for name in ("a", "self-in-exclude"):
        with pytest.raises(TerminologyError) as err:
            expand(snomed, url=VS + name)
        assert err.value.code == "processing"
        assert "Circular" in err.value.message and VS + name in err.value.message
    out = validate_in_value_set(snomed, url=VS + "b", system=SNOMED, code=TYPE1)
    assert not _result(out) and "Circular" in _param(out, "message")


def test_subsumes(snomed: FakeSnomed) -> None:
    def outcome(a: str, b: str) -> str:
        return str(_param(subsumes(snomed, system=SNOMED, code_a=a, code_b=b), "outcome"))

    assert outcome(DIABETES, TYPE2) == "subsumes"
    assert outcome(GLUCOSE, TYPE1) == "subsumes"  # through the second parent
    assert outcome(TYPE2, FINDING) == "subsumed-by"
    assert outcome(TYPE2, TYPE2) == "equivalent"
    assert outcome(TYPE1, TYPE2) == "not-subsumed"
    assert outcome(SURGERY, DIABETES) == "not-subsumed"
    codings = subsumes(
        snomed,
        coding_a={"system": SNOMED, "code": ROOT},
        coding_b={"system": SNOMED, "code": SURGERY},
    )
    assert _param(codings, "outcome") == "subsumes"
    for kwargs, code in (
        ({"system": SNOMED, "code_a": DIABETES}, "required"),
        ({"system": SNOMED, "code_a": DIABETES, "code_b": "nope"}, "not-found"),
        ({"system": "http://example.org/cs", "code_a": "1", "code_b": "2"}, "not-found"),
        (
            {
                "coding_a": {"system": SNOMED, "code": ROOT},
                "coding_b": {"system": LOINC, "code": "1"},
            },
            "invalid",
        ),
    ):
        with pytest.raises(TerminologyError) as err:
            subsumes(snomed, **kwargs)
        assert err.value.code == code, kwargs


def test_lookup_parents_and_children(snomed: FakeSnomed) -> None:
    out = lookup(snomed, system=SNOMED, code=DIABETES)
    props = [
        (p["part"][0]["valueCode"], p["part"][1])
        for p in out["parameter"]
        if p["name"] == "property"
    ]
    assert ("parent", {"name": "value", "valueCode": DISEASE}) in props
    assert ("parent", {"name": "value", "valueCode": GLUCOSE}) in props
    assert ("child", {"name": "value", "valueCode": TYPE1}) in props
    assert _param(out, "display") == "Diabetes mellitus"
    assert _param(
        lookup(snomed, system=SNOMED, code=DIABETES, display_language="fr"), "display"
    ) == ("Diabète sucré")


def test_expansions_are_cached_per_source_revision(snomed: FakeSnomed) -> None:
    cache = ExpansionCache()
    expand(snomed, url=VS + "everything", cache=cache)
    first = snomed.calls.get("concepts", 0)
    for words in ("diab", "surgical", None):
        expand(snomed, url=VS + "everything", filter=words, cache=cache)
        validate_in_value_set(snomed, url=VS + "everything", system=SNOMED, code=TYPE1, cache=cache)
    assert snomed.calls.get("concepts", 0) == first  # answered from the cached expansion
    snomed.revision = 2  # new content: expanded again
    expand(snomed, url=VS + "everything", cache=cache)
    assert snomed.calls["concepts"] == first + 1


def test_binding_checks_of_an_expanded_value_set_read_it_no_more(snomed: FakeSnomed) -> None:
    bindings = ServiceBindings(snomed, ExpansionCache())
    everything = VS + "everything"
    assert bindings.contains(everything, SNOMED, TYPE1) is True
    read = snomed.calls["value_set"]
    for _ in range(3):  # the validator asks at every coding: answered from the expansion
        assert bindings.contains(everything, SNOMED, TYPE1) is True
        assert bindings.contains(everything, SNOMED, "0") is False
        assert bindings.contains(everything, None, DIABETES) is True
    assert snomed.calls["value_set"] == read
    snomed.value_sets[everything] = _vs("everything", _is("is-a", DIABETES))
    snomed.revision = 2  # new content: the value set is read and expanded again
    assert bindings.contains(everything, SNOMED, GLUCOSE) is False
    assert snomed.calls["value_set"] > read
    assert bindings.contains(VS + "not-held", SNOMED, TYPE1) is None


def test_a_source_without_a_revision_is_never_answered_from_the_cache(
    snomed: FakeSnomed,
) -> None:
    snomed.revision = None  # type: ignore[assignment]
    cache = ExpansionCache()
    for _ in range(3):
        expand(snomed, url=VS + "everything", cache=cache)
    assert snomed.calls["concepts"] == 3


def test_package_source_hierarchy_from_properties(defs: Definitions) -> None:
    cs = {
        "resourceType": "CodeSystem",
        "url": "http://example.org/cs/props",
        "version": "1",
        "content": "complete",
        "property": [
            {
                "code": "broader",
                "uri": "http://hl7.org/fhir/concept-properties#parent",
                "type": "code",
            }
        ],
        "concept": [
            {"code": "a", "display": "A"},
            {"code": "b", "display": "B", "property": [{"code": "broader", "valueCode": "a"}]},
            {
                "code": "c",
                "display": "C",
                "property": [{"code": "subsumedBy", "valueCode": "b"}],
                "concept": [{"code": "d", "display": "D"}],
            },
            {"code": "x", "property": [{"code": "status", "valueCode": "retired"}]},
        ],
    }
    source = PackageSource(Definitions(code_systems={cs["url"]: cs}))
    url = str(cs["url"])
    assert source.parents(url, "b") == ["a"]
    assert source.descendants(url, "a") == {"b", "c", "d"}
    assert source.children(url, "c") == ["d"]
    info = source.system(url)
    assert info is not None and info.hierarchical and info.count == 5
    concept = source.concept(url, "x")
    assert concept is not None and concept.inactive
    assert source.system(url, "2") is None
    assert [c.code for c in source.concepts(url)] == ["a", "b", "c", "d", "x"]
