"""The terminology loaders through the SQL store, on SQLite and PostgreSQL (MAISON_TEST_STORE):
the NOS files of ../shared (FHIR JSON, the domain CSV lists, .tabs rebuilt from them, SVS
XML), synthetic LOINC and SNOMED CT RF2 samples written here (no licensed content ships with
the repository), and bad input that must leave nothing written.

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

import csv
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from maison.fhir.definitions import Definitions
from maison.store.sql import SqlStore
from maison.terminology.loaders import LoadError
from maison.terminology.loaders.detect import plan
from maison.terminology.loaders.nos import nos_url
from maison.terminology.source import LOINC, NOS_LOINC, SNOMED, filter_words
from maison.terminology.sql_source import Outcome, SqlTerminology
from support import CORPORA, SHARED, open_sql_store

NOS = CORPORA / "nos"
DOMAIN = SHARED / "domain" / "data" / "nos"
SVS = CORPORA / "TestContenuCDA-3-0" / "jeuxDeValeurs"
G15 = nos_url("TRE_G15-ProfessionSante")
A05 = nos_url("TRE_A05-TypeDocComplementaire")
A03 = nos_url("TRE_A03-ClasseDocument")
J66 = nos_url("JDV_J66-TypeCode-DMP")
J57 = nos_url("JDV_J57-ClassCode-DMP")
X16 = nos_url("ASS_X16-CorrespondanceType-Classe-DMP")


@pytest.fixture
def store(data_url: str, tmp_path: Path, defs: Definitions) -> Iterator[SqlStore]:
    s: SqlStore = open_sql_store(data_url, tmp_path / "state", defs, clock=False)
    yield s
    s.close()


@pytest.fixture
def term(store: SqlStore) -> SqlTerminology:
    return SqlTerminology(store)


def load(term: SqlTerminology, *paths: Path) -> list[Outcome]:
    """Load paths as the CLI does: one transaction per unit."""
    out: list[Outcome] = []
    for unit in plan(list(paths)):
        out += term.load(unit.produce)
    return out


def nothing_written(term: SqlTerminology) -> bool:
    return term.loaded() == []


def codes_of(value_set: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (inc["system"], c["code"])
        for inc in value_set["compose"]["include"]
        for c in inc.get("concept", [])
    }


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


# -- NOS FHIR JSON ---------------------------------------------------------------------------
def test_nos_fhir_json_files_load_field_by_field(term: SqlTerminology) -> None:
    outcomes = load(term, NOS)
    assert {o.status for o in outcomes} == {"created"}
    kinds = sorted(o.resource_type for o in outcomes)
    assert kinds.count("CodeSystem") == 10 and kinds.count("ValueSet") == 8
    assert kinds.count("ConceptMap") == 1

    info = term.system(G15)
    assert info is not None
    assert (info.version, info.count, info.oid, info.content) == (
        "20211217120000",
        30,
        "1.2.250.1.71.1.2.7",
        "complete",
    )
    assert info.name == "TRE_G15-ProfessionSante" and not info.hierarchical
    source = orjson.loads((NOS / "TRE_G15-ProfessionSante-FHIR.json").read_bytes())
    for expected in source["concept"]:
        got = term.concept(G15, expected["code"])
        assert got is not None and got.display == expected["display"]
        assert sorted((d.use_code or "", d.value) for d in got.designations) == sorted(
            (d["use"]["code"], d["value"]) for d in expected.get("designation", [])
        )
        props = [(p["code"], p["valueDateTime"]) for p in expected.get("property", [])]
        assert list(got.properties) == props
        # the NOS retires a code with its dateFin: inactive
        assert got.inactive == any(p == "dateFin" for p, _ in props)
    assert term.concept(G15, "93") is not None and term.concept(G15, "93").inactive  # type: ignore[union-attr]
    assert term.concept(G15, "no-such-code") is None

    j66 = term.value_set(J66)
    assert j66 == orjson.loads((NOS / "ValueSet-JDV-J66-TypeCode-DMP.json").read_bytes())
    assert term.value_set("urn:oid:1.2.250.1.213.1.1.5.7") == j66  # by its OID too
    x04 = term.concept_map(nos_url("ASS_X04-CorrespondanceType-Classe-CISIS"))
    assert x04 is not None and [len(g["element"]) for g in x04["group"]] == [77, 33, 1]
    assert len(term.concept_maps()) == 1


def test_text_filter_on_nos_displays_and_designations(term: SqlTerminology) -> None:
    load(term, NOS / "TRE_G15-ProfessionSante-FHIR.json")
    found = {c.code for c in term.concepts(G15, words=filter_words("MEDEC"))}
    assert "10" in found  # Médecin, accent-insensitive prefix
    every = list(term.concepts(G15))
    for text in ("medecin", "pharm", "sage fem", "infirm"):
        words = filter_words(text)
        assert {c.code for c in term.concepts(G15, words=words)} == {
            c.code for c in every if c.matches(words)
        }


def test_fhir_code_system_hierarchy_and_bundle(term: SqlTerminology, tmp_path: Path) -> None:
    url = "https://example.org/fhir/CodeSystem/nested"
    cs = {
        "resourceType": "CodeSystem",
        "url": url,
        "version": "3",
        "identifier": [{"value": "urn:oid:1.2.3.99"}],
        "content": "complete",
        "property": [{"code": "broader", "uri": "http://hl7.org/fhir/concept-properties#parent",
                      "type": "code"}],
        "concept": [
            {"code": "top", "display": "Top", "concept": [
                {"code": "mid", "display": "Middle",
                 "concept": [{"code": "low", "display": "Low"}]},
            ]},
            {"code": "side", "display": "Side",
             "property": [{"code": "broader", "valueCode": "top"},
                          {"code": "child", "valueCode": "leaf"}]},
            {"code": "leaf", "display": "Leaf",
             "property": [{"code": "status", "valueCode": "retired"}]},
        ],
    }  # fmt: skip
    vs = {
        "resourceType": "ValueSet",
        "url": "https://example.org/fhir/ValueSet/v",
        "status": "active",
    }
    other = {"resourceType": "Patient", "id": "p"}
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": cs}, {"resource": vs}, {"resource": other}],
    }
    path = tmp_path / "bundle.json"
    path.write_bytes(orjson.dumps(bundle))
    outcomes = load(term, path)
    assert [(o.resource_type, o.count) for o in outcomes] == [("CodeSystem", 5), ("ValueSet", 0)]
    info = term.system("urn:oid:1.2.3.99")
    assert info is not None and info.hierarchical and info.version == "3"
    assert term.descendants(url, "top") == {"mid", "low", "side", "leaf"}
    assert term.parents(url, "leaf") == ["side"] and term.children(url, "mid") == ["low"]
    leaf = term.concept(url, "leaf")
    assert leaf is not None and leaf.inactive
    assert ("broader", "top") in (term.concept(url, "side") or leaf).properties


# -- NOS CSV lists ----------------------------------------------------------------------------
def test_j66_and_j57_csv_list_the_codes_of_their_json_value_sets(term: SqlTerminology) -> None:
    outcomes = load(term, DOMAIN / "JDV_J66-TypeCode-DMP.csv", DOMAIN / "JDV_J57-ClassCode-DMP.csv")
    assert [(o.resource_type, o.url, o.version, o.count) for o in outcomes] == [
        ("ValueSet", J66, None, 81),
        ("ValueSet", J57, None, 11),
    ]
    from_csv = term.value_set(J66)
    assert from_csv is not None
    rows = csv_rows(DOMAIN / "JDV_J66-TypeCode-DMP.csv")
    assert codes_of(from_csv) == {(r["system"], r["code"]) for r in rows}
    displays = {
        c["code"]: c["display"] for i in from_csv["compose"]["include"] for c in i["concept"]
    }
    assert displays == {r["code"]: r["display"] for r in rows}
    json_j66 = orjson.loads((NOS / "ValueSet-JDV-J66-TypeCode-DMP.json").read_bytes())
    assert codes_of(from_csv) == codes_of(json_j66)
    json_j57 = orjson.loads((NOS / "ValueSet-JDV-J57-ClassCode-DMP.json").read_bytes())
    assert codes_of(term.value_set(J57) or {}) == codes_of(json_j57)
    # the JSON ValueSet (version 0.1.0) loaded next is kept beside the CSV one, and is the latest
    load(term, NOS / "ValueSet-JDV-J66-TypeCode-DMP.json")
    assert (term.value_set(J66) or {}).get("version") == "0.1.0"
    assert codes_of(term.value_set(J66) or {}) == codes_of(from_csv)


def test_x16_csv_is_a_concept_map_of_every_pair(term: SqlTerminology) -> None:
    [outcome] = load(term, DOMAIN / "ASS_X16-CorrespondanceType-Classe-DMP.csv")
    assert (outcome.resource_type, outcome.url, outcome.status) == ("ConceptMap", X16, "created")
    x16 = term.concept_map(X16)
    assert x16 is not None
    pairs = {
        (g["source"], e["code"], g["target"], t["code"], t.get("display"))
        for g in x16["group"]
        for e in g["element"]
        for t in e["target"]
    }
    rows = csv_rows(DOMAIN / "ASS_X16-CorrespondanceType-Classe-DMP.csv")
    assert len(rows) == 103
    assert pairs == {
        (
            r["source_system"],
            r["type_code"],
            r["target_system"],
            r["class_code"],
            r["class_display"],
        )
        for r in rows
    }
    assert all(
        t["equivalence"] == "equivalent"
        for g in x16["group"]
        for e in g["element"]
        for t in e["target"]
    )


def test_tre_csv_is_a_code_system_with_the_json_codes(term: SqlTerminology) -> None:
    [outcome] = load(term, DOMAIN / "TRE_G15-ProfessionSante.csv")
    assert (outcome.resource_type, outcome.url, outcome.version, outcome.count) == (
        "CodeSystem",
        G15,
        None,
        30,
    )
    from_csv = {c.code: c.display for c in term.concepts(G15)}
    source = orjson.loads((NOS / "TRE_G15-ProfessionSante-FHIR.json").read_bytes())
    assert from_csv == {c["code"]: c["display"] for c in source["concept"]}
    # the JSON release is another version, kept beside the CSV one
    load(term, NOS / "TRE_G15-ProfessionSante-FHIR.json")
    assert sorted(s.version or "" for s in term.systems()) == ["", "20211217120000"]
    assert term.system(G15, "20211217120000") is not None
    assert (term.system(G15) or term).version == "20211217120000"  # type: ignore[union-attr]


# -- NOS .tabs (the official export), rebuilt from the FHIR files -------------------------------
TABS_HEAD = (
    "<OID>;<Type fichier>;<Nom fichier>;<Description>;<URL fichier>;<Date valid>;<Date fin>;"
    "<Date MàJ>"
)


def _tabs_from_tre(json_file: Path, target: Path) -> dict[str, Any]:
    cs = orjson.loads(json_file.read_bytes())
    oid = cs["identifier"][0]["value"][len("urn:oid:") :]
    lines = [
        TABS_HEAD,
        f"{oid};TRE;{cs['name']}.tabs;{cs['description']};https://mos.esante.gouv.fr/NOS/"
        f"{cs['name']};20160519000000;;20200424120000",
        "<OID>;<Code>;<Libellé adapté>;<Libellé court>;<Libellé long>;<Date valid>;<Date fin>;"
        "<Date MàJ>",
    ]
    for c in cs["concept"]:
        names = {d["use"]["code"]: d["value"] for d in c.get("designation", [])}
        dates = {p["code"]: p["valueDateTime"] for p in c.get("property", [])}

        def nos(stamp: str | None) -> str:
            return (
                "" if not stamp else stamp[:19].replace("-", "").replace("T", "").replace(":", "")
            )

        lines.append(
            ";".join(
                [oid, c["code"], names.get("LibelleAdapte", ""), names.get("LibelleCourt", ""),
                 c["display"], nos(dates.get("dateValid")), nos(dates.get("dateFin")),
                 nos(dates.get("dateMaj"))]
            )
        )  # fmt: skip
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cs


def test_tabs_exports_give_what_the_fhir_exports_give(term: SqlTerminology, tmp_path: Path) -> None:
    a07 = _tabs_from_tre(
        NOS / "CodeSystem-TRE-A07-StatutVisibiliteDocument.json",
        tmp_path / "TRE_A07-StatutVisibiliteDocument.tabs",
    )
    j08 = orjson.loads((NOS / "ValueSet-JDV-J08-XdsConfidentialityCode-CISIS.json").read_bytes())
    rows = [
        f"{c['designation'][0]['value'][len('urn:oid:') :]};{c['code']};{c['display']}"
        for inc in j08["compose"]["include"]
        for c in inc["concept"]
    ]
    (tmp_path / "JDV_J08-XdsConfidentialityCode-CISIS.tabs").write_text(
        "\n".join(
            [TABS_HEAD,
             "1.2.250.1.213.1.1.5.463;JDV;JDV_J08-XdsConfidentialityCode-CISIS.tabs;XDS "
             "confidentialityCode - CI-SIS;https://mos.esante.gouv.fr/NOS/"
             "JDV_J08-XdsConfidentialityCode-CISIS;20101116000000;;20200424120000",
             "<OID>;<Code>;<Libellé>", *rows]
        ) + "\n",
        encoding="cp1252",  # older exports are Windows-1252
    )  # fmt: skip
    x16 = csv_rows(DOMAIN / "ASS_X16-CorrespondanceType-Classe-DMP.csv")
    columns = {
        "http://loinc.org": 0,
        A05: 1,
        nos_url("TRE_A12-NomenclatureASTM"): 2,
        A03: 3,
        nos_url("TRE_A10-NomenclatureURN"): 4,
    }
    lines = []
    for r in x16:
        cells = [""] * 5
        cells[columns[r["source_system"]]] = r["type_code"]
        cells[columns[r["target_system"]]] = r["class_code"]
        lines.append(";".join(cells))
    (tmp_path / "ASS_X16-CorrespondanceType-Classe-DMP.tabs").write_text(
        "\n".join(
            [TABS_HEAD,
             "1.2.250.1.213.1.1.5.587;ASS;ASS_X16-CorrespondanceType-Classe-DMP.tabs;Correspondance"
             ";https://mos.esante.gouv.fr/NOS/ASS_X16-CorrespondanceType-Classe-DMP;20210326120000;;"
             "20220930120000",
             "<2.16.840.1.113883.6.1> TRE_A04-LoincTypeDocument;<1.2.250.1.213.1.1.4.12> "
             "TRE_A05-TypeDocComplementaire;<ASTM> TRE_A12-NomenclatureASTM;"
             "<1.2.250.1.213.1.1.4.1> "
             "TRE_A03-ClasseDocument;<URN> TRE_A10-NomenclatureURN",
             *lines, ";;;;"]
        ) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    outcomes = load(term, tmp_path)
    assert [(o.resource_type, o.status) for o in outcomes] == [
        ("CodeSystem", "created"),  # code systems first, whatever the file order
        ("ConceptMap", "created"),
        ("ValueSet", "created"),
    ]
    url = nos_url("TRE_A07-StatutVisibiliteDocument")
    info = term.system(url)
    assert info is not None and (info.version, info.oid, info.count) == (
        "20200424120000",
        "1.2.250.1.213.1.1.4.13",
        5,
    )
    for c in a07["concept"]:
        got = term.concept(url, c["code"])
        assert got is not None and got.display == c["display"]
        assert {(d.use_code, d.value) for d in got.designations} == {
            (d["use"]["code"], d["value"])
            for d in c["designation"]
            if d["use"]["code"] in ("LibelleCourt", "LibelleAdapte")
        }
        assert dict(got.properties)["dateValid"] == next(
            p["valueDateTime"] for p in c["property"] if p["code"] == "dateValid"
        )
    vs = term.value_set(nos_url("JDV_J08-XdsConfidentialityCode-CISIS"))
    assert vs is not None and vs["version"] == "20200424120000"
    assert codes_of(vs) == codes_of(j08)  # the OIDs name the same code systems as the JSON URLs
    cm = term.concept_map(X16)
    assert cm is not None
    pairs = {
        (g["source"], e["code"], g["target"], t["code"])
        for g in cm["group"]
        for e in g["element"]
        for t in e["target"]
    }
    assert pairs == {
        (r["source_system"], r["type_code"], r["target_system"], r["class_code"]) for r in x16
    }


# -- SVS XML --------------------------------------------------------------------------------------
def test_svs_value_sets_nos_extended_and_ci_sis(term: SqlTerminology) -> None:
    load(term, NOS / "CodeSystem-TRE-A05-TypeDocComplementaire.json")
    outcomes = load(
        term, SVS / "JDV_J07_XdsTypeCode_CISIS.xml", SVS / "JDV_AbordVeineuxCentral_CISIS.xml"
    )
    assert [(o.resource_type, o.status) for o in outcomes] == [("ValueSet", "created")] * 2
    j07 = term.value_set(nos_url("JDV_J07-XdsTypeCode-CISIS"))
    assert j07 is not None
    assert (j07["version"], j07["status"], j07["name"]) == (
        "20240927120000",
        "active",
        "JDV_J07-XdsTypeCode-CISIS",
    )
    assert j07["identifier"][0]["value"] == "urn:oid:1.2.250.1.213.1.1.5.471"
    systems = {inc["system"] for inc in j07["compose"]["include"]}
    assert LOINC in systems and A05 in systems  # OIDs as canonical URLs
    assert sum(len(i["concept"]) for i in j07["compose"]["include"]) == 114
    older = orjson.loads((NOS / "ValueSet-JDV-J07-XdsTypeCode-CISIS.json").read_bytes())
    canon = {(LOINC if s == NOS_LOINC else s, c) for s, c in codes_of(older)}
    assert len(canon & codes_of(j07)) > 80  # a later release of the same value set
    a05 = {
        c["code"]: c.get("display")
        for i in j07["compose"]["include"]
        if i["system"] == A05
        for c in i["concept"]
    }
    assert a05["ATTEST-ASS-COMPL"] == "Attestation assurance complémentaire"
    abord = term.value_set("urn:oid:1.2.250.1.213.1.1.5.496")
    assert abord is not None and abord["url"] == "urn:oid:1.2.250.1.213.1.1.5.496"
    assert {i["system"] for i in abord["compose"]["include"]} == {SNOMED}
    assert term.system(SNOMED) is None  # an SVS value set creates no code system


# -- LOINC ---------------------------------------------------------------------------------------
LOINC_HEADER = [
    "LOINC_NUM", "COMPONENT", "PROPERTY", "TIME_ASPCT", "SYSTEM", "SCALE_TYP", "METHOD_TYP",
    "CLASS", "VersionLastChanged", "CHNG_TYPE", "DefinitionDescription", "STATUS",
    "CONSUMER_NAME", "CLASSTYPE", "FORMULA", "EXMPL_ANSWERS", "SURVEY_QUEST_TEXT",
    "SURVEY_QUEST_SRC", "UNITSREQUIRED", "RELATEDNAMES2", "SHORTNAME", "ORDER_OBS",
    "HL7_FIELD_SUBFIELD_ID", "EXTERNAL_COPYRIGHT_NOTICE", "EXAMPLE_UNITS", "LONG_COMMON_NAME",
    "EXAMPLE_UCUM_UNITS", "STATUS_REASON", "STATUS_TEXT", "CHANGE_REASON_PUBLIC",
    "COMMON_TEST_RANK", "COMMON_ORDER_RANK", "HL7_ATTACHMENT_STRUCTURE",
    "EXTERNAL_COPYRIGHT_LINK", "PanelType", "AskAtOrderEntry", "AssociatedObservations",
    "VersionFirstReleased", "ValidHL7AttachmentRequest", "DisplayName",
]  # fmt: skip
# synthetic terms (made-up codes and names in the release's layout)
LOINC_TERMS = [
    ("90001-1", "Synthol", "MCnc", "Pt", "Ser", "Qn", "CHEM", "2.71", "ACTIVE",
     "Synthol SerPl-mCnc", "Synthol [Mass/volume] in Serum"),
    ("90002-9", "Report", "Find", "Pt", "{Setting}", "Doc", "DOC.ONTOLOGY", "2.74", "ACTIVE",
     "Synthetic report", "Synthetic discharge report"),
    ("90003-7", "Oldtest", "MCnc", "Pt", "Bld", "Qn", "CHEM", "2.9", "DEPRECATED",
     "Oldtest Bld", "Oldtest [Mass/volume] in Blood"),
    ("90004-5", "Risky", "Prid", "Pt", "^Patient", "Nom", "SURVEY", "2.73", "DISCOURAGED",
     "Risky", 'Risky assessment, "quoted", with commas'),
]  # fmt: skip


def write_loinc(folder: Path, *, release: str = "2.74", french: bool = True) -> Path:
    table = folder / f"Loinc_{release}" / "LoincTable" / "Loinc.csv"
    table.parent.mkdir(parents=True)
    with table.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        w.writerow(LOINC_HEADER)
        for (
            num,
            comp,
            prop,
            time,
            system,
            scale,
            cls,
            changed,
            status,
            short,
            long_name,
        ) in LOINC_TERMS:
            row = dict.fromkeys(LOINC_HEADER, "")
            row.update(
                LOINC_NUM=num, COMPONENT=comp, PROPERTY=prop, TIME_ASPCT=time, SYSTEM=system,
                SCALE_TYP=scale, CLASS=cls, VersionLastChanged=changed, STATUS=status,
                SHORTNAME=short, LONG_COMMON_NAME=long_name, CLASSTYPE="1",
            )  # fmt: skip
            w.writerow([row[c] for c in LOINC_HEADER])
    if french:
        variant = folder / f"Loinc_{release}" / "AccessoryFiles" / "LinguisticVariants"
        variant.mkdir(parents=True)
        (variant / "frFR18LinguisticVariant.csv").write_text(
            '"LOINC_NUM","COMPONENT","PROPERTY","TIME_ASPCT","SYSTEM","SCALE_TYP","METHOD_TYP",'
            '"CLASS","SHORTNAME","LONG_COMMON_NAME","RELATEDNAMES2",'
            '"LinguisticVariantDisplayName"\r\n'
            '"90001-1","Synthol","Masse/Vol","Ponctuel","Sérum","Qn","","CHIMIE","",'
            '"Synthol [Masse/Volume] Sérum","","Synthol sérique"\r\n'
            '"90002-9","Rapport","Constat","Ponctuel","{Contexte}","Doc","","","","Compte rendu '
            'synthétique de sortie","",""\r\n',
            encoding="utf-8",
        )
        (variant / "deDE15LinguisticVariant.csv").write_text("not read\r\n", encoding="utf-8")
    return folder / f"Loinc_{release}"


def test_loinc_release_with_its_french_variant(term: SqlTerminology, tmp_path: Path) -> None:
    release = write_loinc(tmp_path)
    [outcome] = load(term, release)
    assert (outcome.url, outcome.version, outcome.count, outcome.status) == (
        LOINC,
        "2.74",
        4,
        "created",
    )
    info = term.system(NOS_LOINC)  # the NOS URL of LOINC names the same system
    assert info is not None and (info.url, info.oid, info.content) == (
        LOINC,
        "2.16.840.1.113883.6.1",
        "complete",
    )
    synthol = term.concept(LOINC, "90001-1")
    assert synthol is not None and synthol.display == "Synthol [Mass/volume] in Serum"
    assert not synthol.inactive
    assert dict(synthol.properties) == {
        "COMPONENT": "Synthol", "PROPERTY": "MCnc", "TIME_ASPCT": "Pt", "SYSTEM": "Ser",
        "SCALE_TYP": "Qn", "CLASS": "CHEM", "CLASSTYPE": "1", "STATUS": "ACTIVE",
    }  # fmt: skip
    assert {(d.language, d.use_code, d.value) for d in synthol.designations} == {
        ("en-US", "SHORTNAME", "Synthol SerPl-mCnc"),
        ("fr-FR", "LONG_COMMON_NAME", "Synthol [Masse/Volume] Sérum"),
        ("fr-FR", "LinguisticVariantDisplayName", "Synthol sérique"),
    }
    assert all(d.use_system == LOINC for d in synthol.designations)
    assert term.concept(LOINC, "90003-7").inactive  # type: ignore[union-attr]  # DEPRECATED
    assert term.concept(LOINC, "90004-5").inactive  # type: ignore[union-attr]  # DISCOURAGED
    risky = term.concept(LOINC, "90004-5")
    assert risky is not None and risky.display == 'Risky assessment, "quoted", with commas'
    # French words find concepts too
    assert [c.code for c in term.concepts(LOINC, words=filter_words("serique"))] == ["90001-1"]
    assert [c.code for c in term.concepts(LOINC, words=filter_words("compte rendu"))] == ["90002-9"]
    # the same release again: nothing written; Loinc.csv given alone is another content
    assert [o.status for o in load(term, release)] == ["unchanged"]
    [alone] = load(term, release / "LoincTable" / "Loinc.csv")
    assert (alone.version, alone.status) == ("2.74", "replaced")
    shortname = {d for d in synthol.designations if d.use_code == "SHORTNAME"}
    assert set(term.concept(LOINC, "90001-1").designations) == shortname  # type: ignore[union-attr]


def test_loinc_version_from_the_table_and_variant_given_alone(
    term: SqlTerminology, tmp_path: Path
) -> None:
    release = write_loinc(tmp_path, french=False)
    table = tmp_path / "Loinc.csv"
    shutil.copy(release / "LoincTable" / "Loinc.csv", table)
    [outcome] = load(term, table)
    assert outcome.version == "2.74"  # the highest VersionLastChanged (2.9 < 2.71 < 2.74)
    variant = tmp_path / "frFR18LinguisticVariant.csv"
    variant.write_text('"LOINC_NUM","LONG_COMMON_NAME"\r\n"90001-1","x"\r\n', encoding="utf-8")
    with pytest.raises(LoadError, match=r"with its Loinc\.csv"):
        load(term, variant)


# -- SNOMED CT RF2 -----------------------------------------------------------------------------
_BASE = "id effectiveTime active moduleId "
RF2 = {
    kind: "\t".join((_BASE + columns).split())
    for kind, columns in {
        "concept": "definitionStatusId",
        "description": "conceptId languageCode typeId term caseSignificanceId",
        "relationship": "sourceId destinationId relationshipGroup typeId characteristicTypeId "
        "modifierId",
        "language": "refsetId referencedComponentId acceptabilityId",
    }.items()
}
FSN, SYN, PREF, ACC = (
    "900000000000003001",
    "900000000000013009",
    "900000000000548007",
    "900000000000549004",
)
CORE, FR_MODULE = "900000000000207008", "11000315107"


def write_rf2(folder: Path, *, date: str = "20250101", extra_concepts: int = 0) -> Path:
    """A tiny synthetic SNOMED CT-like snapshot (made-up ids and terms): root 1000 > 2000 >
    {3000, 4000}; 5000 is-a 3000 and 4000; 6000 inactive; an inactive is-a 2000 -> 6000."""
    snap = folder / "SnomedCT_Synthetic" / "Snapshot" / "Terminology"
    snap.mkdir(parents=True)
    refset = folder / "SnomedCT_Synthetic" / "Snapshot" / "Refset" / "Language"
    refset.mkdir(parents=True)
    concepts = [("1000", "1", CORE), ("2000", "1", CORE), ("3000", "1", FR_MODULE),
                ("4000", "1", CORE), ("5000", "1", FR_MODULE), ("6000", "0", CORE)]  # fmt: skip
    concepts += [(str(10_000 + i), "1", CORE) for i in range(extra_concepts)]
    en = [
        ("101", "1", "1000", "en", FSN, "Root concept (root)"),
        ("102", "1", "1000", "en", SYN, "Root concept"),
        ("201", "1", "2000", "en", FSN, "Clinical finding (finding)"),
        ("202", "1", "2000", "en", SYN, "Clinical finding"),
        ("301", "1", "3000", "en", FSN, "Heart disease (disorder)"),
        ("302", "1", "3000", "en", SYN, "Cardiac disease"),
        ("303", "1", "3000", "en", SYN, "Heart disease"),
        ("304", "0", "3000", "en", SYN, "Retired heart term"),
        ("401", "1", "4000", "en", FSN, "Lung disease (disorder)"),
        ("501", "1", "5000", "en", FSN, "Cardiopulmonary disease (disorder)"),
        ("601", "1", "6000", "en", FSN, "Obsolete thing (qualifier value)"),
    ]
    en += [
        (str(1_000_000 + i), "1", str(10_000 + i), "en", FSN, f"Extra {i} (finding)")
        for i in range(extra_concepts)
    ]
    fr = [
        ("1301", "1", "3000", "fr", SYN, "Maladie du cœur"),
        ("1302", "1", "3000", "fr", SYN, "Cardiopathie"),
        ("1501", "1", "5000", "fr", SYN, "Maladie cardio-pulmonaire"),
    ]
    rels = [
        ("9001", "1", "2000", "1000", "116680003"),
        ("9002", "1", "3000", "2000", "116680003"),
        ("9003", "1", "4000", "2000", "116680003"),
        ("9004", "1", "5000", "3000", "116680003"),
        ("9005", "1", "5000", "4000", "116680003"),
        ("9006", "0", "6000", "2000", "116680003"),  # inactive is-a
        ("9007", "1", "5000", "1000", "363698007"),  # not an is-a
        ("9008", "1", "5000", "4000", "116680003"),  # the same is-a stated twice
    ]
    rels += [
        (str(20_000 + i), "1", str(10_000 + i), "1000", "116680003") for i in range(extra_concepts)
    ]
    lang_en = [("a1", "1", "102"), ("a2", "1", "303"), ("a3", "1", "202"), ("a4", "0", "302")]
    lang_fr = [("b1", "1", "1302"), ("b2", "1", "1501")]

    def write(path: Path, header: str, rows: list[str]) -> None:
        path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode("utf-8"))

    write(snap / f"sct2_Concept_Snapshot_FR1000315_{date}.txt", RF2["concept"],
          [f"{i}\t{date}\t{a}\t{m}\t900000000000074008" for i, a, m in concepts])  # fmt: skip
    for lang, rows in (("en", en), ("fr", fr)):
        write(snap / f"sct2_Description_Snapshot-{lang}_FR1000315_{date}.txt", RF2["description"],
              [f"{i}\t{date}\t{a}\t{CORE}\t{c}\t{lg}\t{t}\t{term}\t900000000000448009"
               for i, a, c, lg, t, term in rows])  # fmt: skip
    write(snap / f"sct2_Relationship_Snapshot_FR1000315_{date}.txt", RF2["relationship"],
          [f"{i}\t{date}\t{a}\t{CORE}\t{s}\t{d}\t0\t{t}\t900000000000011006\t900000000000451002"
           for i, a, s, d, t in rels])  # fmt: skip
    write(snap / f"sct2_StatedRelationship_Snapshot_FR1000315_{date}.txt", RF2["relationship"], [])
    write(refset / f"der2_cRefset_LanguageSnapshot-en_FR1000315_{date}.txt", RF2["language"],
          [f"{i}\t{date}\t{a}\t{CORE}\t900000000000509007\t{d}\t{PREF}" for i, a, d in lang_en]
          + [f"x1\t{date}\t1\t{CORE}\t900000000000509007\t302\t{ACC}"])  # fmt: skip
    write(refset / f"der2_cRefset_LanguageSnapshot-fr_FR1000315_{date}.txt", RF2["language"],
          [f"{i}\t{date}\t{a}\t{CORE}\t10031000315102\t{d}\t{PREF}"
           for i, a, d in lang_fr])  # fmt: skip
    return folder / "SnomedCT_Synthetic"


def test_rf2_snapshot_concepts_displays_hierarchy(term: SqlTerminology, tmp_path: Path) -> None:
    release = write_rf2(tmp_path)
    [outcome] = load(term, release)
    version = f"{SNOMED}/{FR_MODULE}/version/20250101"
    assert (outcome.url, outcome.version, outcome.count, outcome.status) == (
        SNOMED,
        version,
        6,
        "created",
    )
    info = term.system("urn:oid:2.16.840.1.113883.6.96")
    assert info is not None and info.hierarchical and info.version == version
    # display: French preferred synonym, else English preferred, else the FSN without its tag
    assert term.concept(SNOMED, "3000").display == "Cardiopathie"  # type: ignore[union-attr]
    assert term.concept(SNOMED, "5000").display == "Maladie cardio-pulmonaire"  # type: ignore[union-attr]
    assert term.concept(SNOMED, "2000").display == "Clinical finding"  # type: ignore[union-attr]
    assert term.concept(SNOMED, "4000").display == "Lung disease"  # type: ignore[union-attr]
    heart = term.concept(SNOMED, "3000")
    assert heart is not None and not heart.inactive
    assert {(d.language, d.use_code, d.value) for d in heart.designations} == {
        ("en", FSN, "Heart disease (disorder)"),
        ("en", SYN, "Cardiac disease"),
        ("en", SYN, "Heart disease"),
        ("fr", SYN, "Maladie du cœur"),
        ("fr", SYN, "Cardiopathie"),
    }  # the inactive description is left out
    assert term.concept(SNOMED, "6000").inactive  # type: ignore[union-attr]
    # the active is-a edges only, a repeated one once
    assert term.parents(SNOMED, "5000") == ["3000", "4000"]
    assert term.children(SNOMED, "2000") == ["3000", "4000"]
    assert term.descendants(SNOMED, "2000") == {"3000", "4000", "5000"}
    assert term.descendants(SNOMED, "1000") == {"2000", "3000", "4000", "5000"}
    assert term.descendants(SNOMED, "5000") == set()
    assert term.parents(SNOMED, "6000") == []
    # text filter on every language, accents folded
    assert {c.code for c in term.concepts(SNOMED, words=filter_words("CŒUR"))} == {"3000"}
    assert {c.code for c in term.concepts(SNOMED, words=filter_words("cardi"))} == {"3000", "5000"}
    # the zipped release is the same content: nothing written
    archive = tmp_path / "release.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(release.rglob("*.txt")):
            z.write(f, f.relative_to(tmp_path).as_posix())
    assert [o.status for o in load(term, archive)] == ["unchanged"]
    # files given one by one form one release
    files = sorted(release.rglob("*.txt"))
    assert [o.status for o in load(term, *files)] == ["unchanged"]


def test_rf2_second_release_kept_beside_the_first(term: SqlTerminology, tmp_path: Path) -> None:
    first = write_rf2(tmp_path / "a")
    second = write_rf2(tmp_path / "b", date="20250601", extra_concepts=3)
    load(term, first)
    [outcome] = load(term, second)
    assert outcome.status == "created" and outcome.count == 9
    versions = sorted(s.version or "" for s in term.systems())
    assert versions == [
        f"{SNOMED}/{FR_MODULE}/version/20250101",
        f"{SNOMED}/{FR_MODULE}/version/20250601",
    ]
    assert term.concept(SNOMED, "10002") is not None  # the latest loaded
    assert term.concept(SNOMED, "10002", versions[0]) is None
    assert term.concept(SNOMED, "3000", versions[0]) is not None
    assert (term.system(SNOMED, f"{SNOMED}/{FR_MODULE}") or term).version == versions[1]  # type: ignore[union-attr]
    assert term.descendants(SNOMED, "1000", versions[0]) == {"2000", "3000", "4000", "5000"}


# -- bad input: a clear error, nothing written ---------------------------------------------------
def test_truncated_zip(term: SqlTerminology, tmp_path: Path) -> None:
    archive = tmp_path / "NOS-Fichiers_Publics-Versions_json_fhir.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(NOS.glob("*.json")):
            z.write(f, f.name)
    data = archive.read_bytes()
    good = tmp_path / "good.zip"
    good.write_bytes(data)
    assert len(load(term, good)) == 19
    term2 = term
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="not a readable zip archive") as err:
        load(term2, cut)
    assert err.value.file == str(cut)


def test_truncated_member_of_a_zip_writes_nothing(term: SqlTerminology, tmp_path: Path) -> None:
    archive = tmp_path / "nos.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(NOS.glob("*.json")):
            text = f.read_bytes()
            z.writestr(f.name, text[: len(text) // 2] if "J66" in f.name else text)
    with pytest.raises(LoadError, match="not valid JSON") as err:
        load(term, archive)
    assert err.value.file is not None and err.value.file.endswith(
        "ValueSet-JDV-J66-TypeCode-DMP.json"
    )
    assert err.value.line is not None and err.value.line > 1
    assert nothing_written(term)  # the code systems read before it are not kept either


def test_truncated_json_file(term: SqlTerminology, tmp_path: Path) -> None:
    cut = tmp_path / "TRE_G15-ProfessionSante-FHIR.json"
    cut.write_bytes((NOS / "TRE_G15-ProfessionSante-FHIR.json").read_bytes()[:5000])
    with pytest.raises(LoadError, match="not valid JSON") as err:
        load(term, cut)
    assert err.value.line is not None and str(cut) in str(err.value)
    assert nothing_written(term)


def test_csv_with_wrong_columns(term: SqlTerminology, tmp_path: Path) -> None:
    bad = tmp_path / "JDV_J99-Exemple-TEST.csv"
    bad.write_text("systeme,code,libelle\nhttp://x,1,un\n", encoding="utf-8")
    with pytest.raises(LoadError, match="needs the columns system, code, display") as err:
        load(term, bad)
    assert err.value.line == 1
    short = tmp_path / "TRE_Z99-Exemple.csv"
    short.write_text("code,display\n1,un\n2\n", encoding="utf-8")
    with pytest.raises(LoadError, match="1 columns where the header has 2") as err:
        load(term, short)
    assert (err.value.file, err.value.line) == (str(short), 3)
    odd = tmp_path / "ASS_Z98-Exemple.csv"
    odd.write_text("source_system,target_system,a,b\nx,y,1,2\n", encoding="utf-8")
    with pytest.raises(LoadError, match="the column after its system"):
        load(term, odd)
    unknown = tmp_path / "notes.csv"
    unknown.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(LoadError, match="unknown format"):
        load(term, unknown)
    assert nothing_written(term)


def test_rf2_with_a_missing_column(term: SqlTerminology, tmp_path: Path) -> None:
    release = write_rf2(tmp_path)
    [descriptions] = release.rglob("sct2_Description_Snapshot-fr*.txt")
    lines = descriptions.read_text(encoding="utf-8").splitlines()
    descriptions.write_text(
        "\n".join(["\t".join(line.split("\t")[:8]) for line in lines]) + "\n", encoding="utf-8"
    )
    with pytest.raises(LoadError, match="lacks caseSignificanceId") as err:
        load(term, release)
    assert (err.value.file, err.value.line) == (str(descriptions), 1)
    assert nothing_written(term)
    # a row short of a field, after the concepts were written: rolled back
    descriptions.write_text(
        "\n".join([RF2["description"], *(lines[1:3]), "\t".join(lines[3].split("\t")[:7])]) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(LoadError, match="7 fields where RF2 description rows have 9") as err:
        load(term, release)
    assert err.value.line == 4
    assert nothing_written(term)


def test_bad_file_in_a_folder_stops_the_folder(term: SqlTerminology, tmp_path: Path) -> None:
    folder = tmp_path / "nos"
    shutil.copytree(NOS, folder)
    (folder / "README.md").unlink()
    (folder / "ValueSet-broken.json").write_text('{"resourceType": "ValueSet", "status": "active"}')
    with pytest.raises(LoadError, match="a ValueSet without url"):
        load(term, folder)
    assert nothing_written(term)


def test_svs_truncated(term: SqlTerminology, tmp_path: Path) -> None:
    cut = tmp_path / "JDV_J07.xml"
    cut.write_bytes((SVS / "JDV_J07_XdsTypeCode_CISIS.xml").read_bytes()[:3000])
    with pytest.raises(LoadError, match="not well-formed XML") as err:
        load(term, cut)
    assert err.value.line is not None
    assert nothing_written(term)
