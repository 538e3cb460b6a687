"""The habilitation matrix as data: the shipped file, decisions (most specific cell, LOINC
aliases, default deny with its reason), every validation error with its line, and properties
(any file loads or gives errors; decide is total).

https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from maison.security.matrix import (
    LOINC,
    TRE_A03,
    TRE_A05,
    Matrix,
    MatrixError,
    Vocabulary,
    decide,
    diff,
    load_csv,
)
from maison.security.matrix_store import (
    ActiveMatrix,
    activate,
    active_matrix,
    packaged_csv,
    rollback,
)
from maison.terminology.source import NOS_LOINC, canonical_system

HEADER = "profession,savoir_faire,role,document_type,allowed,status,source\n"
CR = {"system": TRE_A03, "code": "10"}  # class Compte rendu
CONSULT = {"system": LOINC, "code": "11488-4"}  # CR de consultation (class 10)
G15 = ["10", "21", "40", "50", "60", "70", "80", "91", "93"]


@dataclass(frozen=True)
class Pro:
    profession: str | None
    savoir_faire_type: str | None = None
    savoir_faire: str | None = None
    role: str | None = None


def _load(text: str, vocabulary: Vocabulary | None = None) -> Matrix | list[MatrixError]:
    return load_csv(text, canonical=canonical_system, vocabulary=vocabulary)


def _matrix(rows: str) -> Matrix:
    m = _load(HEADER + rows)
    assert isinstance(m, Matrix), m
    return m


def _errors(rows: str, vocabulary: Vocabulary | None = None, header: str = HEADER) -> list[Any]:
    result = _load(header + rows, vocabulary)
    assert isinstance(result, list), "expected errors"
    return result


# --- the shipped file ----------------------------------------------------------------------------
def test_the_shipped_matrix_loads_with_its_full_structure() -> None:
    m = _load(packaged_csv())
    assert isinstance(m, Matrix), m
    professions = {c.profession for c in m.cells}
    classes = {c.code for c in m.cells}
    assert len(professions) == 29 and "93" not in professions  # psychologue: ended in TRE_G15
    assert len(classes) == 11
    assert len(m.cells) == len(professions) * len(classes)  # every profession x class
    assert m.provisional == len(m.cells)  # nothing official until the annex is transcribed
    assert all(c.source for c in m.cells)
    assert {c.profession for c in m.cells if c.allowed} == {"10"}
    assert m.version == hashlib.sha256(m.to_csv().encode()).hexdigest()


def test_the_version_is_the_normalized_content() -> None:
    a = _matrix("10,,,CLASS:10,yes,provisional,x\n21,,,LOINC:11488-4,no,provisional,y\n")
    b = _matrix("21 , , ,loinc:11488-4, NO ,Provisional,y\n\n10,,,CLASS:10,Yes,provisional,x\n")
    c = _matrix("10,,,CLASS:10,yes,official,x\n21,,,LOINC:11488-4,no,provisional,y\n")
    assert a.version == b.version != c.version
    assert diff(a, c).changed == 1 and diff(a, c).total == 1
    assert diff(None, a).added == 2


# --- decisions -----------------------------------------------------------------------------------
def test_a_medecin_may_read_every_class() -> None:
    m = _matrix_shipped()
    for code in ("10", "11", "31", "42", "43", "44", "45", "52", "60", "90"):
        d = decide(m, Pro("10"), CONSULT, {"system": TRE_A03, "code": code})
        assert d.allowed, d
        assert d.cell is not None and d.cell.status == "provisional" and d.cell.source
        assert d.rule_id == f"habilitation-matrix:10/*/*/CLASS:{code}"


def _matrix_shipped() -> Matrix:
    m = _load(packaged_csv())
    assert isinstance(m, Matrix)
    return m


def test_a_profession_the_file_denies() -> None:
    d = decide(_matrix_shipped(), Pro("70"), CONSULT, CR)
    assert not d.allowed
    assert d.cell is not None and d.cell.line > 1 and not d.cell.allowed
    assert "denies profession 70" in d.reason and f"line {d.cell.line}" in d.reason


def _source(d: Any) -> str | None:
    return d.cell.source if d.cell is not None else None


def test_the_most_specific_cell_wins() -> None:
    m = _matrix(
        "60,,,CLASS:10,no,provisional,class row\n"
        "60,,,LOINC:11488-4,yes,provisional,type row\n"
        "60,,FON-05,LOINC:11488-4,no,provisional,role row\n"
        "60,S:SM54,,CLASS:10,yes,provisional,savoir-faire class row\n"
        "60,S:SM54,FON-05,LOINC:11488-4,no,provisional,most specific\n"
    )
    assert _source(decide(m, Pro("60"), CONSULT, CR)) == "type row"  # type > class
    assert _source(decide(m, Pro("60"), {"system": LOINC, "code": "34133-9"}, CR)) == ("class row")
    assert _source(decide(m, Pro("60", role="FON-05"), CONSULT, CR)) == "role row"
    assert _source(decide(m, Pro("60", "S", "SM54"), CONSULT, CR)) == "savoir-faire class row"
    d = decide(m, Pro("60", "S", "SM54", "FON-05"), CONSULT, CR)
    assert d.cell is not None and d.cell.source == "most specific" and not d.allowed


def test_the_loinc_aliases_are_one_system() -> None:
    m = _matrix("21,,,LOINC:11488-4,yes,provisional,s\n")
    for system in (LOINC, NOS_LOINC, "urn:oid:2.16.840.1.113883.6.1", f"{LOINC}|2.77"):
        assert decide(m, Pro("21"), {"system": system, "code": "11488-4"}).allowed, system
    assert not decide(m, Pro("21"), {"system": TRE_A05, "code": "11488-4"}).allowed


def test_default_deny_says_why() -> None:
    m = _matrix("10,,,CLASS:10,yes,provisional,s\n")
    d = decide(m, Pro("50"), CONSULT, CR)
    assert not d.allowed and d.cell is None
    assert d.rule_id == "habilitation-matrix:default-deny"
    assert d.reason.startswith("no cell of the matrix allows profession 50 for type ")
    assert "11488-4" in d.reason
    no_profession = decide(m, Pro(None), CONSULT, CR)
    assert not no_profession.allowed and "no profession" in no_profession.reason
    assert not decide(m, None, CONSULT, CR).allowed


# --- validation errors ---------------------------------------------------------------------------
def _one(errors: list[MatrixError], kind: str, line: int) -> MatrixError:
    found = [e for e in errors if e.kind == kind and e.line == line]
    assert found, errors
    return found[0]


def test_unknown_and_missing_columns() -> None:
    errors = _errors("", header="profession,document_type,allowed,status,source,colour\n")
    assert "unknown column(s) 'colour'" in _one(errors, "columns", 1).reason
    errors = _errors("", header="profession,document_type,status,source\n")
    assert "missing column(s) allowed" in _one(errors, "columns", 1).reason
    assert _errors("", header="")[0].reason.startswith("the file is empty")


def test_a_row_with_the_wrong_number_of_fields() -> None:
    errors = _errors("10,,,CLASS:10,yes,provisional,a, b\n")
    assert "8 fields where the header has 7" in _one(errors, "columns", 2).reason


def test_duplicates_and_contradictions_name_both_lines() -> None:
    errors = _errors(
        "10,,,CLASS:10,yes,provisional,a\n"
        "21,,,CLASS:10,no,provisional,b\n"
        "10,,,class:10,yes,official,c\n"
        "21,,,CLASS:10,yes,provisional,d\n"
    )
    assert "duplicate: line 2" in _one(errors, "duplicate", 4).reason
    assert "contradiction: line 3 says denied" in _one(errors, "contradiction", 5).reason


def test_bad_values_each_with_its_line_and_column() -> None:
    errors = _errors(
        "10,,,CLASS:10,maybe,provisional,a\n"
        "10,,,CLASS:11,yes,draft,a\n"
        "10,,,SNOMED:123,yes,provisional,a\n"
        "10,,,11488-4,yes,provisional,a\n"
        "10,SM54,,CLASS:31,yes,provisional,a\n"
        ",,,CLASS:42,yes,provisional,a\n"
        "10,,,CLASS:43,yes,provisional,\n"
    )
    assert _one(errors, "value", 2).column == "allowed"
    assert _one(errors, "value", 3).column == "status"
    assert "unknown code system 'SNOMED'" in _one(errors, "value", 4).reason
    assert "write ALIAS:CODE" in _one(errors, "value", 5).reason
    assert "TYPE:CODE" in _one(errors, "value", 6).reason
    assert [e.column for e in errors if e.line == 7] == ["profession"]
    assert [e.column for e in errors if e.line == 8] == ["source"]
    assert str(_one(errors, "value", 2)).startswith("line 2, column allowed: ")


def test_codes_unknown_to_the_nos() -> None:
    vocab = Vocabulary(
        professions=frozenset({"10", "21"}),
        types=frozenset({(LOINC, "11488-4")}),
        classes=frozenset({(TRE_A03, "10")}),
    )
    errors = _errors(
        "10,,,CLASS:10,yes,provisional,a\n"
        "99,,,CLASS:10,yes,provisional,a\n"
        "21,,,LOINC:99999-9,yes,provisional,a\n"
        "21,,,CLASS:77,yes,provisional,a\n",
        vocab,
    )
    assert "'99' is not a code of TRE_G15" in _one(errors, "unknown-code", 3).reason
    assert "not a type of JDV_J66" in _one(errors, "unknown-code", 4).reason
    assert "not a class of JDV_J57" in _one(errors, "unknown-code", 5).reason
    assert all(e.line != 2 for e in errors)
    assert Vocabulary().unchecked() and not vocab.unchecked()


def test_a_line_number_counts_quoted_newlines() -> None:
    errors = _errors('10,,,CLASS:10,yes,provisional,"two\nlines"\n10,,,CLASS:11,bad,official,a\n')
    assert _one(errors, "value", 4).column == "allowed"


# --- properties ----------------------------------------------------------------------------------
_field = st.one_of(
    st.sampled_from(["", "10", "21", "CLASS:10", "LOINC:11488-4", "yes", "no", "official"]),
    st.sampled_from(["provisional", "S:SM54", "FON-05", "TRE_A05:SYNTH", "CLASS:", ":x", '"']),
    st.text(max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_field, min_size=0, max_size=9), max_size=8), st.booleans())
def test_any_file_loads_or_gives_errors(rows: list[list[str]], header: bool) -> None:
    lines = [",".join(r) for r in rows]
    text = (HEADER if header else "") + "\n".join(lines)
    result = _load(text)
    assert isinstance(result, Matrix | list)
    if isinstance(result, list):
        assert result and all(isinstance(e, MatrixError) and e.line >= 1 for e in result)


_coding = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "system": st.one_of(st.sampled_from([LOINC, TRE_A03, NOS_LOINC]), st.text(), st.none()),
            "code": st.one_of(st.sampled_from(["10", "11488-4"]), st.integers(), st.text()),
        }
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.sampled_from(G15), st.text(max_size=3)),
    st.one_of(st.none(), st.text(max_size=3)),
    st.one_of(st.none(), st.text(max_size=3)),
    _coding,
    _coding,
)
def test_decide_is_total(
    profession: str | None, sf: str | None, role: str | None, type_: Any, class_: Any
) -> None:
    m = _matrix(
        "10,,,CLASS:10,yes,provisional,a\n60,S:SM54,FON-05,LOINC:11488-4,yes,provisional,b\n"
    )
    d = decide(m, Pro(profession, "S", sf, role), type_, class_)
    assert d.reason and d.rule_id
    assert d.allowed == (d.cell is not None and d.cell.allowed)


# --- storage and the running server's view ------------------------------------------------------
class _Meta:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.reads = 0

    def get_meta(self, key: str) -> str | None:
        self.reads += 1
        return self.values.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self.values[key] = value

    def swap_meta(self, key: str, expected: str | None, value: str) -> str | None:
        current = self.values.get(key)
        if current == expected:
            self.values[key] = value
        return current


def test_activate_rollback_and_the_server_view() -> None:
    meta = _Meta()
    now = [0.0]
    active = ActiveMatrix(meta, canonical_system, clock=lambda: now[0], refresh_seconds=1.0)
    packaged = active.current()
    assert packaged.version == _matrix_shipped().version
    text = packaged_csv().replace("70,,,CLASS:10,no", "70,,,CLASS:10,yes")
    done = activate(meta, text, canonical=canonical_system, loaded_by="dpo", loaded_at="t1")
    assert done.previous == packaged.version and done.changes.changed == 1
    assert active.current().version == packaged.version  # not yet due
    now[0] = 1.5
    assert active.current().version == done.matrix.version
    assert decide(active.current(), Pro("70"), CONSULT, CR).allowed
    assert active_matrix(meta, canonical_system).loaded_by == "dpo"
    back = rollback(
        meta, packaged.version[:10], canonical=canonical_system, loaded_by="dpo", loaded_at="t2"
    )
    assert back.matrix.version == packaged.version and back.changes.total == 1
    now[0] = 3.0
    assert not decide(active.current(), Pro("70"), CONSULT, CR).allowed
