"""The SQL terminology store, on SQLite and PostgreSQL (MAISON_TEST_STORE): reads as a
TerminologySource, versions side by side, idempotent and atomic loads, the is-a hierarchy and
text filters.

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from maison.fhir.definitions import Definitions
from maison.store.schema import term_concept, term_designation, term_parent
from maison.store.sql import SqlStore
from maison.terminology.loaders import (
    ConceptRow,
    DesignationRow,
    Item,
    LoadError,
    ParentRow,
    ResourceLoad,
    Row,
    SystemLoad,
    SystemMeta,
)
from maison.terminology.source import (
    LOINC,
    NOS_LOINC,
    Concept,
    Designation,
    TerminologySource,
    filter_words,
)
from maison.terminology.sql_source import BATCH, PAGE, Outcome, SqlTerminology, search_text
from support import open_sql_store

CS = "https://example.org/fhir/CodeSystem/synthetic"


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s: SqlStore = open_sql_store(data_url, tmp_path / "state", defs, clock=False)
    yield s
    s.close()


@pytest.fixture
def term(store: SqlStore) -> SqlTerminology:
    return SqlTerminology(store)


def system(
    rows: list[Row],
    *,
    url: str = CS,
    version: str | None = "1",
    content: str = "complete",
    **kw: Any,
) -> SystemLoad:
    digest = hashlib.sha256(repr((url, version, rows)).encode()).hexdigest()
    meta = SystemMeta(url, version, "fhir", name=kw.pop("name", "Synthetic"), content=content, **kw)
    return SystemLoad(meta, digest, lambda: iter(rows), "test", len(rows))


def load(term: SqlTerminology, *items: Item) -> list[Outcome]:
    return term.load(lambda _resolve: iter(items))


def counts(store: SqlStore) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (term_concept, term_designation, term_parent)
        )


def test_is_a_terminology_source(term: SqlTerminology) -> None:
    source: TerminologySource = term  # the protocol, checked by mypy
    assert source.system(CS) is None and source.systems() == []
    assert source.concept(CS, "a") is None and list(source.concepts(CS)) == []
    assert source.value_set("https://example.org/vs") is None and source.concept_maps() == []


def test_concept_round_trip(term: SqlTerminology) -> None:
    rows: list[Row] = [
        ConceptRow(
            "A1",
            "Hémoglobine glyquée",
            properties=(("dateValid", "2020-01-01T00:00:00+01:00"), ("rank", 3), ("flag", True)),
            designations=(
                Designation("HbA1c", "fr", None, "LibelleCourt"),
                Designation(
                    "Glycated haemoglobin", "en", "http://snomed.info/sct", "900000000000013009"
                ),
            ),
        ),
        ConceptRow("B2", "Retired", inactive=True),
        ConceptRow("C3", None),
    ]
    [outcome] = load(term, system(rows, name="Synth", title="Synthetic", oid="1.2.3.4"))
    assert outcome == Outcome("CodeSystem", CS, "1", "Synth", "created", 3, "test")
    info = term.system(CS)
    assert info is not None
    assert (info.url, info.version, info.name, info.title, info.count, info.oid) == (
        CS, "1", "Synth", "Synthetic", 3, "1.2.3.4",
    )  # fmt: skip
    assert info.content == "complete" and not info.hierarchical
    a1 = term.concept(CS, "A1")
    assert a1 is not None
    assert (a1.system, a1.code, a1.display, a1.version, a1.inactive) == (
        CS, "A1", "Hémoglobine glyquée", "1", False,
    )  # fmt: skip
    assert set(a1.designations) == set(rows[0].designations)  # type: ignore[union-attr]
    assert a1.properties == (
        ("dateValid", "2020-01-01T00:00:00+01:00"), ("rank", 3), ("flag", True),
    )  # fmt: skip
    assert term.concept(CS, "B2").inactive  # type: ignore[union-attr]
    assert term.concept(CS, "C3") == Concept(CS, "C3", None, "1")
    assert term.concept(CS, "zz") is None and term.concept(CS + "x", "A1") is None
    assert term.url_for_oid("1.2.3.4") == CS
    assert term.system("urn:oid:1.2.3.4") == info  # a system is also found by its OID


def test_same_content_again_writes_nothing(term: SqlTerminology, store: SqlStore) -> None:
    item = system([ConceptRow("a", "A"), ConceptRow("b", "B")])
    assert [o.status for o in load(term, item)] == ["created"]
    before = [(s.url, s.version) for s in term.systems()], term.loaded()

    def never() -> Iterator[Row]:
        raise AssertionError("rows read for content already loaded")

    again = SystemLoad(item.meta, item.digest, never, "again")
    assert [(o.status, o.count) for o in load(term, again)] == [("unchanged", 2)]
    assert ([(s.url, s.version) for s in term.systems()], term.loaded()) == before  # loaded_at too
    assert counts(store) == (2, 0, 0)


def test_same_version_other_content_is_replaced(term: SqlTerminology, store: SqlStore) -> None:
    load(
        term, system([ConceptRow("a", "A", designations=(Designation("x"),)), ConceptRow("b", "B")])
    )
    [outcome] = load(
        term, system([ConceptRow("a", "A2"), ConceptRow("c", "C"), ParentRow("c", "a")])
    )
    assert (outcome.status, outcome.count) == ("replaced", 2)
    assert [c.code for c in term.concepts(CS)] == ["a", "c"]
    assert term.concept(CS, "a") == Concept(CS, "a", "A2", "1")
    assert term.concept(CS, "b") is None
    assert len(term.systems()) == 1 and (term.system(CS) or term).hierarchical  # type: ignore[union-attr]
    assert counts(store) == (2, 0, 1)


def test_versions_side_by_side(term: SqlTerminology) -> None:
    clock = [0.0]
    reader = SqlTerminology(term._store, clock=lambda: clock[0])  # another process's view
    load(term, system([ConceptRow("a", "A v1")], version="1"))
    assert (reader.system(CS) or term).version == "1"  # type: ignore[union-attr]
    load(term, system([ConceptRow("a", "A v2"), ConceptRow("b", "B")], version="2"))
    assert (reader.system(CS) or term).version == "1"  # type: ignore[union-attr]  # cached
    clock[0] += 1.5
    assert (reader.system(CS) or term).version == "2"  # type: ignore[union-attr]  # a second later
    assert (term.concept(CS, "a") or term).display == "A v2"  # type: ignore[union-attr]
    assert (term.concept(CS, "a", "1") or term).display == "A v1"  # type: ignore[union-attr]
    assert term.concept(CS, "b", "1") is None and term.concept(CS, "a", "3") is None
    assert sorted(s.version or "" for s in term.systems()) == ["1", "2"]
    # loading v1 again changes nothing, not even which version is the latest
    assert [o.status for o in load(term, system([ConceptRow("a", "A v1")], version="1"))] == [
        "unchanged"
    ]
    assert (term.system(CS) or term).version == "2"  # type: ignore[union-attr]
    # a fragment loaded later does not hide the complete version
    load(term, system([ConceptRow("a", "A")], version="frag", content="fragment"))
    assert (term.system(CS) or term).version == "2"  # type: ignore[union-attr]
    assert (term.system(CS, "frag") or term).content == "fragment"  # type: ignore[union-attr]
    # a version without a name ('' in the store) is None to readers
    load(term, system([ConceptRow("z", "Z")], url=CS + "/nov", version=None))
    assert (term.system(CS + "/nov") or term).version is None  # type: ignore[union-attr]
    assert (term.concept(CS + "/nov", "z") or term).version is None  # type: ignore[union-attr]


def test_a_failed_load_leaves_nothing(term: SqlTerminology, store: SqlStore) -> None:
    load(term, system([ConceptRow("keep", "Kept")], url=CS + "/kept"))

    def broken() -> Iterator[Row]:
        for i in range(3 * BATCH):  # several batches are written before the error
            yield ConceptRow(f"c{i:05d}", f"Concept {i}", designations=(Designation(f"d{i}"),))
            yield ParentRow(f"c{i:05d}", "c00000")
        raise LoadError("bad row", "broken.txt", 42)

    vs = ResourceLoad(
        {"resourceType": "ValueSet", "url": "https://example.org/vs", "status": "active"}, "fhir"
    )
    meta = SystemMeta(CS, "1", "fhir")
    with pytest.raises(LoadError, match=r"broken\.txt, line 42: bad row"):
        load(
            term,
            vs,
            system([ConceptRow("a", "A")], url=CS + "/other"),
            SystemLoad(meta, "h", broken),
        )
    assert [s.url for s in term.systems()] == [CS + "/kept"]
    assert term.value_set("https://example.org/vs") is None
    assert counts(store) == (1, 0, 0)


def test_duplicate_codes_are_a_load_error(term: SqlTerminology, store: SqlStore) -> None:
    rows: list[Row] = [ConceptRow(f"c{i}", None) for i in range(BATCH + 10)]
    rows.append(ConceptRow("c3", "again"))
    with pytest.raises(LoadError, match="refused by the database") as err:
        load(term, system(rows))
    assert err.value.file == "test"
    assert counts(store) == (0, 0, 0) and term.systems() == []


def test_hierarchy(term: SqlTerminology) -> None:
    edges = [("b", "a"), ("c", "a"), ("d", "b"), ("d", "c"), ("e", "d"), ("d", "b"), ("f", "e")]
    rows: list[Row] = [ConceptRow(code, code.upper()) for code in "abcdefg"]
    rows += [ParentRow(child, parent) for child, parent in edges]
    rows.append(ParentRow("a", "f"))  # a cycle: still answers
    load(term, system(rows))
    assert (term.system(CS) or term).hierarchical  # type: ignore[union-attr]
    assert term.parents(CS, "d") == ["b", "c"]
    assert term.children(CS, "a") == ["b", "c"]
    assert term.children(CS, "g") == [] and term.parents(CS, "g") == []
    assert term.descendants(CS, "d") == {"e", "f", "a", "b", "c"}
    assert term.descendants(CS, "g") == set()
    assert term.descendants(CS + "/unknown", "a") == set()


def test_nested_parents_from_concept_rows(term: SqlTerminology) -> None:
    rows: list[Row] = [
        ConceptRow("root", "Root"),
        ConceptRow("kid", "Kid", parents=("root",)),
        ConceptRow("grandkid", "Grandkid", parents=("kid", "root")),
    ]
    load(term, system(rows))
    assert term.parents(CS, "grandkid") == ["kid", "root"]
    assert term.descendants(CS, "root") == {"kid", "grandkid"}


def test_descendants_of_a_mid_level_concept_in_a_big_hierarchy(term: SqlTerminology) -> None:
    rng = random.Random(7)
    n = 30_000
    rows: list[Row] = [ConceptRow(str(i), f"Concept {i}") for i in range(n)]
    parent_of: dict[int, list[int]] = {0: []}
    for i in range(1, n):
        parents = {rng.randrange(max(0, i - 2000), i)}  # a bushy, deep tree
        if i % 3 == 0:
            parents.add(rng.randrange(0, i))  # and some second parents
        parent_of[i] = sorted(parents)
        rows += [ParentRow(str(i), str(p)) for p in parents]
    load(term, system(rows))
    children: dict[int, list[int]] = {}
    for c, ps in parent_of.items():
        for p in ps:
            children.setdefault(p, []).append(c)

    def below(code: int) -> set[str]:
        seen: set[int] = set()
        todo = list(children.get(code, []))
        while todo:
            c = todo.pop()
            if c not in seen:
                seen.add(c)
                todo.extend(children.get(c, []))
        return {str(c) for c in seen}

    mid = next(i for i in range(n // 2, n) if 200 <= len(below(i)) <= 5000)
    t0 = time.perf_counter()
    got = term.descendants(CS, str(mid))
    elapsed = time.perf_counter() - t0
    assert got == below(mid)
    assert elapsed < 1.0, f"{len(got)} descendants in {elapsed:.3f} s"


def test_text_filter_is_concept_matches(term: SqlTerminology) -> None:
    names = [
        "Hémoglobine glyquée", "Hemoglobin A1c", "Glucose [Masse/Volume]", "Œdème aigu",
        "Compte rendu d'hospitalisation", "CR d'imagerie", "Électrocardiogramme", "EEG",
        "Prise en charge", "L'hémoglobine", "Insuffisance cardiaque", "Cardiopathie_ischémique",
    ]  # fmt: skip
    rows: list[Row] = [
        ConceptRow(f"k{i:02d}", name, designations=(Designation(name.upper() + " syn"),))
        for i, name in enumerate(names)
    ]
    rows.append(ConceptRow("x", None, designations=(Designation("Synonyme seulement", "fr"),)))
    load(term, system(rows))
    every = list(term.concepts(CS))
    assert len(every) == len(rows)
    for text in (
        "hemo",
        "HÉMO",
        "gly hemo",
        "oedeme",
        "œdeme",
        "compte rendu",
        "d",
        "l hemo",
        "ischem",
        "cardiopathie ischemique",
        "syn",
        "seul",
        "zzz",
        "1c",
        "a1",
    ):
        words = filter_words(text)
        expected = sorted(c.code for c in every if c.matches(words))
        assert sorted(c.code for c in term.concepts(CS, words=words)) == expected, text
    assert [c.code for c in term.concepts(CS, words=filter_words("seulement"))] == ["x"]
    assert search_text(["Œdème  aigu", None, "oedème"]) == " oedeme aigu"  # as fold() does


def test_concepts_page_through_in_code_order(term: SqlTerminology) -> None:
    codes = [f"{i:x}" for i in range(2 * PAGE + 17)] + ["Z", "zz", "é", "10-2", "10.1"]
    rows: list[Row] = [
        ConceptRow(c, f"n {c}", designations=(Designation(f"d {c}"),)) for c in codes
    ]
    load(term, system(rows))
    got = list(term.concepts(CS))
    assert [c.code for c in got] == sorted(codes)  # byte order on both databases
    assert all(c.designations == (Designation(f"d {c.code}"),) for c in got)
    assert len(list(term.concepts(CS, words=["n"]))) == len(codes)


def test_designations_read_apart_complete_displays(term: SqlTerminology) -> None:
    def pick(ds: Any) -> str | None:
        preferred = [d.value for d in ds if d.preferred]
        return preferred[0] if preferred else None

    rows: list[Row] = [
        ConceptRow("1", None),
        ConceptRow("2", "Given"),
        ConceptRow("3", None),
        DesignationRow("1", "Not this", "en"),
        DesignationRow("1", "Préféré", "fr", preferred=True),
        DesignationRow("2", "Autre nom", "fr"),
        DesignationRow("3", "Only one", "en"),
    ]
    meta = SystemMeta(CS, "1", "snomed")
    load(term, SystemLoad(meta, "d1", lambda: iter(rows), "t", None, pick))
    assert (term.concept(CS, "1") or term).display == "Préféré"  # type: ignore[union-attr]
    assert (term.concept(CS, "2") or term).display == "Given"  # type: ignore[union-attr]
    assert (term.concept(CS, "3") or term).display is None  # type: ignore[union-attr]  # pick: none
    assert [c.code for c in term.concepts(CS, words=filter_words("autre"))] == ["2"]
    assert [c.code for c in term.concepts(CS, words=filter_words("prefere"))] == ["1"]


def test_value_sets_and_concept_maps(term: SqlTerminology) -> None:
    url = "https://example.org/fhir/ValueSet/vs"

    def vs(version: str | None, codes: list[str]) -> ResourceLoad:
        body: dict[str, Any] = {
            "resourceType": "ValueSet",
            "url": url,
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.9"}],
            "status": "active",
            "compose": {"include": [{"system": CS, "concept": [{"code": c} for c in codes]}]},
        }
        if version:
            body["version"] = version
        return ResourceLoad(body, "fhir", "vs.json")

    cm = ResourceLoad(
        {"resourceType": "ConceptMap", "url": "https://example.org/cm", "version": "1",
         "group": [{"source": CS, "target": LOINC, "element": [{"code": "a", "target": [
             {"code": "1-8", "equivalence": "equivalent"}]}]}]},
        "fhir",
    )  # fmt: skip
    outcomes = load(term, vs("1", ["a", "b"]), vs("2", ["a"]), cm)
    assert [(o.resource_type, o.version, o.status, o.count) for o in outcomes] == [
        ("ValueSet", "1", "created", 2),
        ("ValueSet", "2", "created", 1),
        ("ConceptMap", "1", "created", 1),
    ]
    assert (term.value_set(url) or {}).get("version") == "2"
    assert (term.value_set(url, "1") or {}).get("version") == "1"
    assert term.value_set(url, "9") is None
    assert (term.value_set("urn:oid:1.2.9") or {}).get("version") == "2"
    assert term.concept_map("https://example.org/cm") == cm.body
    assert term.concept_maps() == [cm.body]
    again = load(term, vs("1", ["a", "b"]), vs("1", ["a", "b", "c"]), vs(None, ["z"]))
    assert [o.status for o in again] == ["unchanged", "replaced", "created"]
    assert len((term.value_set(url, "1") or {})["compose"]["include"][0]["concept"]) == 3
    assert (term.value_set(url) or {}).get("version") is None  # the latest loaded
    cm2 = ResourceLoad({**cm.body, "version": "2"}, "fhir")
    load(term, cm2)
    assert term.concept_maps() == [cm2.body]  # the latest version of each map
    listed = [(x.resource_type, x.version, x.count) for x in term.loaded()]
    assert listed == [
        ("ValueSet", None, 1), ("ValueSet", "1", 3), ("ValueSet", "2", 1),
        ("ConceptMap", "1", 1), ("ConceptMap", "2", 1),
    ]  # fmt: skip


def test_aliases(term: SqlTerminology) -> None:
    load(
        term,
        system([ConceptRow("1-8", "One")], url=LOINC, version="2.77", oid="2.16.840.1.113883.6.1"),
    )
    for url in (LOINC, NOS_LOINC, "urn:oid:2.16.840.1.113883.6.1", f"{LOINC}|2.77"):
        found = term.concept(url, "1-8")
        assert found is not None and found.system == LOINC, url


def _vs(url: str, *imports: str) -> ResourceLoad:
    body: dict[str, Any] = {"resourceType": "ValueSet", "url": url, "status": "active"}
    include: dict[str, Any] = {"system": CS, "concept": [{"code": "a"}]}
    if imports:
        include = {"valueSet": list(imports)}
    body["compose"] = {"include": [include]}
    return ResourceLoad(body, "fhir", url.rsplit("/", 1)[-1])


def test_circular_value_set_imports_are_refused_and_nothing_is_written(
    term: SqlTerminology,
) -> None:
    """A circle through value sets already stored is found too; a diamond is not a circle."""
    base = "https://example.org/fhir/ValueSet/"
    load(term, _vs(f"{base}d"), _vs(f"{base}b", f"{base}d"), _vs(f"{base}c", f"{base}d"))
    load(term, _vs(f"{base}a", f"{base}b", f"{base}c"))  # a diamond: fine
    with pytest.raises(LoadError) as err:
        load(
            term,
            _vs(f"{base}x", f"{base}y"),
            _vs(f"{base}y", f"{base}z"),
            _vs(f"{base}z", f"{base}x|2"),
        )
    assert "circular value set imports" in str(err.value)
    assert f"{base}x -> {base}y -> {base}z -> {base}x" in str(err.value)
    assert term.value_set(f"{base}x") is None and term.value_set(f"{base}y") is None
    # replacing d so that it imports a: a -> b -> d -> a
    with pytest.raises(LoadError) as err:
        load(term, _vs(f"{base}d", f"{base}a"))
    assert "circular" in str(err.value)
    assert term.value_set(f"{base}d")["compose"]["include"][0]["system"] == CS
