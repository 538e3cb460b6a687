"""FINESS establishment extraction: layout, line checks, encodings, zips, the mapping to the
Annuaire Organization (checked field by field and against the installed profiles), the
synthesiser, and the Organization id shared with the RPPS import."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from stdnum import luhn

from maison.fhir.definitions import Definitions
from maison.fhir.validation import Validator
from maison.services.annuaire import finess as f
from maison.services.annuaire import mapping as m
from maison.services.annuaire.extraction import ACTIVITE_COLUMNS, ExtractionError, RowError
from maison.services.annuaire.finess_synth import (
    CATEGORIES,
    GEO_KEYS,
    finess_name,
    synthesize_finess,
    write_finess,
)
from maison.services.annuaire.synth import synthesize
from support import CORPORA

COMPILED = CORPORA / "compiled"
HEADER = "finess;etalab;98;2025-06-30"
MEMBER = "etalab-cs1100507-stock-20250630-0900.csv"
STAMP = datetime(2025, 6, 30, 9, 0)
NOS = "https://mos.esante.gouv.fr/NOS/"
ID_TYPES = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
ORG_TYPES = (
    "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-organization-types"
)
ADXP = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-"


def key(head: str) -> str:
    """An 8-digit head and its Luhn key: a valid FINESS number."""
    return head + luhn.calc_check_digit(head)


SITE = key("01000002")  # 010000024
LEGAL = key("01078005")  # 010780054
SIRET = "73282932000074"  # python-stdnum's example


def cells(**changes: str) -> dict[str, str]:
    """A valid ``structureet`` line's fields, every kind of field filled, then ``changes``."""
    values = {
        "nofinesset": SITE,
        "nofinessej": LEGAL,
        "rs": "CH DE FLEYRIAT",
        "rslongue": "CENTRE HOSPITALIER DE BOURG-EN-BRESSE",
        "complrs": "SITE FLEYRIAT",
        "compldistrib": "BATIMENT A",
        "numvoie": "900",
        "typvoie": "RTE",
        "voie": "DE PARIS",
        "compvoie": "B",
        "lieuditbp": "BP 401",
        "commune": "451",
        "departement": "01",
        "libdepartement": "AIN",
        "ligneacheminement": "01012 BOURG EN BRESSE CEDEX",
        "telephone": "0474454647",
        "telecopie": "0474454015",
        "categetab": "355",
        "libcategetab": "Centre Hospitalier (C.H.)",
        "categagretab": "1102",
        "libcategagretab": "Centres Hospitaliers",
        "siret": SIRET,
        "codeape": "8610Z",
        "codemft": "03",
        "libmft": "ARS établissements Publics de santé dotation globale",
        "codesph": "1",
        "libsph": "Etablissement public de santé",
        "dateouv": "1979-02-13",
        "dateautor": "1979-01-02",
        "datemaj": "2020-02-04",
        "numuai": "0011234A",
    }
    assert set(changes) <= set(values), set(changes) - set(values)
    return values | changes


def structure(**changes: str) -> str:
    return ";".join(["structureet", *cells(**changes).values()])


def geolocation(site: str = SITE, x: str = "870215.1", y: str = "6571590.4") -> str:
    source = "1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,LAMBERT_93"
    return f"geolocalisation;{site};{x};{y};{source};2021-01-20"


def write(
    tmp_path: Path, lines: list[str], *, encoding: str = "cp1252", name: str = MEMBER
) -> Path:
    path = tmp_path / name
    path.write_bytes(("\n".join([HEADER, *lines]) + "\n").encode(encoding))
    return path


def zipped(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def establishments(path: Path) -> list[f.Establishment | RowError]:
    return list(f.read_establishments(path))


def only(path: Path) -> f.Establishment:
    items = establishments(path)
    assert len(items) == 1 and isinstance(items[0], f.Establishment), items
    return items[0]


def errors(items: list[Any]) -> list[tuple[int, str]]:
    return [(i.line, i.message) for i in items if isinstance(i, RowError)]


def extraction_error(path: Path) -> str:
    iterator = f.read_establishments(path)
    with pytest.raises(ExtractionError) as caught:
        next(iterator)  # raised before the first item: nothing is yielded
    return str(caught.value)


# ---------------------------------------------------------------------------------- layout


def test_the_layout_is_the_etalab_one() -> None:
    assert len(f.FINESS_COLUMNS) == 31  # a structureet line: the tag and these 31 fields
    names = [field.name for field in dataclasses.fields(f.Establishment)]
    assert names == ["line", *f.FINESS_COLUMNS]
    assert f.FINESS_COLUMNS[:3] == ("nofinesset", "nofinessej", "rs")
    assert f.FINESS_COLUMNS[-4:] == ("dateouv", "dateautor", "datemaj", "numuai")
    assert f.GEOLOCALISATION_COLUMNS == (
        "nofinesset",
        "coordxet",
        "coordyet",
        "sourcecoordet",
        "datemaj",
    )
    assert inspect.isgeneratorfunction(f.read_establishments)


def test_every_field_is_read(tmp_path: Path) -> None:
    est = only(write(tmp_path, [structure(), geolocation()]))
    assert est == f.Establishment(2, **cells())
    assert est.libmft == "ARS établissements Publics de santé dotation globale"  # cp1252 read


# ---------------------------------------------------------------------------------- mapping


def test_every_field_is_mapped(tmp_path: Path) -> None:
    org = f.organization_from_finess(only(write(tmp_path, [structure()])))
    expected_keys = [
        "resourceType", "id", "meta", "language", "extension", "identifier", "active", "type",
        "name", "alias", "telecom", "address", "partOf",
    ]  # fmt: skip
    assert list(org) == expected_keys
    assert org["resourceType"] == "Organization"
    assert org["id"] == "1" + SITE == "1010000024"
    assert org["meta"] == {
        "source": "https://annuaire.esante.gouv.fr",
        "profile": [
            "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-organization",
            "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
            "as-dp-organization|1.2.0-snapshot-2",
        ],
    }
    assert org["language"] == "fr"
    assert org["active"] is True

    def ident(system: str, code: str, value: str) -> dict[str, Any]:
        return {
            "use": "official",
            "type": {"coding": [{"system": ID_TYPES, "code": code}]},
            "system": system,
            "value": value,
        }

    assert org["identifier"] == [
        ident("urn:oid:1.2.250.1.71.4.2.2", "IDNST", "1" + SITE),
        ident("https://finess.esante.gouv.fr", "FINEG", SITE),
        ident("https://sirene.fr", "SIRET", SIRET),
    ]
    assert org["partOf"] == {"identifier": ident("https://finess.esante.gouv.fr", "FINEJ", LEGAL)}
    # dateouv → usePeriod; codemft/libmft → pricing model (TRE_R74)
    assert org["extension"] == [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/organization-period",
            "valuePeriod": {"start": "1979-02-13"},
        },
        {
            "url": "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
            "as-ext-organization-pricing-model",
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": f"{NOS}TRE_R74-ModeFixationTarifaire/FHIR/"
                        "TRE-R74-ModeFixationTarifaire",
                        "code": "03",
                        "display": "ARS établissements Publics de santé dotation globale",
                    }
                ]
            },
        },
    ]
    # categetab (TRE_R66), codesph (TRE_R73, sphParticipation), codeape (TRE_R75, dotted)
    assert org["type"] == [
        {
            "extension": [{"url": ORG_TYPES, "valueCode": "organizationType"}],
            "coding": [
                {
                    "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-3307",
                    "code": "GEOGRAPHICAL-ENTITY",
                }
            ],
        },
        {
            "coding": [
                {
                    "system": f"{NOS}TRE_R66-CategorieEtablissement/FHIR/"
                    "TRE-R66-CategorieEtablissement",
                    "code": "355",
                    "display": "Centre Hospitalier (C.H.)",
                }
            ]
        },
        {
            "extension": [{"url": ORG_TYPES, "valueCode": "sphParticipation"}],
            "coding": [
                {
                    "system": f"{NOS}TRE_R73-ESPIC/FHIR/TRE-R73-ESPIC",
                    "code": "1",
                    "display": "Etablissement public de santé",
                }
            ],
        },
        {
            "coding": [
                {
                    "system": f"{NOS}TRE_R75-InseeNAFrev2Niveau5/FHIR/TRE-R75-InseeNAFrev2Niveau5",
                    "code": "86.10Z",
                }
            ]
        },
    ]
    # rslongue is the name; rs (shorter) and complrs are aliases
    assert org["name"] == "CENTRE HOSPITALIER DE BOURG-EN-BRESSE"
    assert org["alias"] == ["CH DE FLEYRIAT", "SITE FLEYRIAT"]
    assert org["telecom"] == [
        {"system": "phone", "value": "0474454647", "rank": 1},
        {"system": "fax", "value": "0474454015"},
    ]
    assert org["address"] == [
        {
            "extension": [
                {
                    "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/"
                    "fr-core-address-insee-code",
                    "valueCoding": {
                        "system": f"{NOS}TRE_R13-Commune/FHIR/TRE-R13-Commune",
                        "code": "01451",
                    },
                }
            ],
            "line": ["BATIMENT A", "900 B RTE DE PARIS", "BP 401"],
            "_line": [
                {"extension": [{"url": ADXP + "additionalLocator", "valueString": "BATIMENT A"}]},
                {
                    "extension": [
                        {"url": ADXP + "houseNumber", "valueString": "900"},
                        {"url": ADXP + "buildingNumberSuffix", "valueString": "B"},
                        {"url": ADXP + "streetNameType", "valueString": "RTE"},
                        {"url": ADXP + "streetNameBase", "valueString": "DE PARIS"},
                    ]
                },
                {"extension": [{"url": ADXP + "postBox", "valueString": "BP 401"}]},
            ],
            "city": "BOURG EN BRESSE CEDEX",
            "district": "01",
            "postalCode": "01012",
            "text": "BATIMENT A, 900 B RTE DE PARIS, BP 401, 01012 BOURG EN BRESSE CEDEX",
        }
    ]
    # not mapped: dateautor, datemaj, numuai, the agrégat, libdepartement
    text = json.dumps(org, ensure_ascii=False)
    for absent in ("1979-01-02", "2020-02-04", "0011234A", "1102", "Centres Hospitaliers", "AIN"):
        assert absent not in text, absent


def test_a_sparse_line_maps_to_what_it_has(tmp_path: Path) -> None:
    blank = {c: "" for c in f.FINESS_COLUMNS if c not in ("nofinesset", "rs")}
    org = f.organization_from_finess(only(write(tmp_path, [structure(**blank)])))
    assert org["name"] == "CH DE FLEYRIAT"
    assert "alias" not in org and "partOf" not in org and "address" not in org
    assert "telecom" not in org and "extension" not in org
    assert [i["type"]["coding"][0]["code"] for i in org["identifier"]] == ["IDNST", "FINEG"]
    assert len(org["type"]) == 1  # GEOGRAPHICAL-ENTITY only


def test_lieu_dit_siren_and_an_unusual_ape(tmp_path: Path) -> None:
    line = structure(lieuditbp="LIEU DIT LES PRES", siret=SIRET[:9], codeape="86.90A", rslongue="")
    org = f.organization_from_finess(only(write(tmp_path, [line])))
    assert org["address"][0]["_line"][-1] == {
        "extension": [
            {
                "url": "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
                "as-ext-lieu-dit",
                "valueString": "LIEU DIT LES PRES",
            }
        ]
    }
    assert org["identifier"][-1]["type"]["coding"][0]["code"] == "SIREN"
    assert org["identifier"][-1]["value"] == SIRET[:9]
    assert org["type"][-1]["coding"][0]["code"] == "86.90A"
    assert org["name"] == "CH DE FLEYRIAT" and org["alias"] == ["SITE FLEYRIAT"]


def test_corsica(tmp_path: Path) -> None:
    site = "2A0000012"  # no known key rule for 2A/2B: only the shape is checked
    line = structure(
        nofinesset=site,
        nofinessej="2A0000020",
        commune="004",
        departement="2A",
        libdepartement="CORSE DU SUD",
        ligneacheminement="20000 AJACCIO",
    )
    est = only(write(tmp_path, [line]))
    org = f.organization_from_finess(est)
    assert org["id"] == "12A0000012"
    assert org["address"][0]["extension"][0]["valueCoding"]["code"] == "2A004"
    assert org["address"][0]["district"] == "2A"
    assert (org["address"][0]["city"], org["address"][0]["postalCode"]) == ("AJACCIO", "20000")


@pytest.mark.parametrize(
    ("departement", "commune", "insee", "district"),
    [
        ("9A", "120", "97120", "971"),  # FINESS overseas code + 3-digit commune
        ("9B", "209", "97209", "972"),
        ("9C", "302", "97302", "973"),
        ("9D", "411", "97411", "974"),
        ("9F", "611", "97611", "976"),
        ("971", "20", "97120", "971"),  # INSEE département + 2-digit commune
        ("974", "411", "97411", "974"),
        ("9A", "411", None, "971"),  # a Réunion commune under Guadeloupe: no code
        ("2B", "033", "2B033", "2B"),
        ("75", "056", "75056", "75"),
        ("75", "56", None, "75"),
        ("01", "", None, "01"),
    ],
)
def test_overseas_corsica_and_mainland_insee_codes(
    tmp_path: Path, departement: str, commune: str, insee: str | None, district: str
) -> None:
    assert f.insee_commune(departement, commune) == insee
    line = structure(departement=departement, commune=commune)
    place = f.organization_from_finess(only(write(tmp_path, [line])))["address"][0]
    codes = [e["valueCoding"]["code"] for e in place.get("extension", [])]
    assert codes == ([insee] if insee else [])
    assert place["district"] == district


def test_the_id_is_the_rpps_import_one() -> None:
    row = dict.fromkeys(ACTIVITE_COLUMNS, "")
    row[m.FINESS_SITE] = SITE
    assert f.finess_organization_id(SITE) == m.organization_id(row) == "1" + SITE
    # the RPPS synthesiser publishes the ancien identifiant (1 + FINESS) as the real file does
    with_finess = [r for r in itertools.islice(synthesize(3_000, 1), 3_000) if r[m.FINESS_SITE]]
    assert len(with_finess) > 100
    for r in with_finess:
        assert m.organization_id(r) == f.finess_organization_id(r[m.FINESS_SITE])
        assert m.organization(r)["id"] == f.finess_organization_id(r[m.FINESS_SITE])


def test_same_input_same_bytes(tmp_path: Path) -> None:
    path = write_finess(synthesize_finess(200, 3), tmp_path / "a.csv", generated_at=STAMP)
    first = [orjson.dumps(f.organization_from_finess(e)) for e in f.read_establishments(path)]
    again = [orjson.dumps(f.organization_from_finess(e)) for e in f.read_establishments(path)]
    assert first == again and len(first) == 200


# ---------------------------------------------------------------------------------- bad lines


def test_bad_lines_are_reported_with_their_numbers_and_reading_goes_on(tmp_path: Path) -> None:
    bad_site = SITE[:8] + "5"
    lines = [
        structure(),  # 2
        structure()[: structure().rindex(";")],  # 3: one field short
        structure(nofinesset=bad_site),  # 4
        structure(nofinessej=LEGAL[:8] + "0", siret=SIRET[:13] + "5"),  # 5
        structure(dateouv="1979-02-30", datemaj="hier"),  # 6
        "structures;" + SITE,  # 7
        "",  # blank: skipped
        geolocation(x="abc"),  # 9: not read by read_establishments
        structure(nofinesset="01000003"),  # 10: 8 characters
        structure(rs="CH DESSAI"),  # 11: gets a 0x81 byte, undefined in Windows-1252
        structure(nofinesset=key("01000011")),  # 12
    ]
    path = tmp_path / MEMBER
    raw = ("\n".join([HEADER, *lines]) + "\n").encode("cp1252")
    raw = raw.replace(b"CH DESSAI", b"CH D\x81ESSAI")
    path.write_bytes(raw)
    items = establishments(path)
    assert [i.line for i in items] == [2, 3, 4, 5, 6, 7, 10, 11, 12]
    assert isinstance(items[0], f.Establishment) and isinstance(items[-1], f.Establishment)
    found = dict(errors(items))
    assert found[3] == (
        "31 fields instead of 32 for a structureet line "
        "(structureet and 31 values separated by ';')"
    )
    assert found[4] == (
        f"nofinesset: FINESS {bad_site} has an invalid check digit: 5, expected 4 (Luhn key)"
    )
    assert found[5].startswith(f"nofinessej: FINESS {LEGAL[:8]}0 has an invalid check digit: 0,")
    assert "expected 4 (Luhn key)" in found[5]
    assert f"SIRET {SIRET[:13]}5 has an invalid check digit: 5, expected 4" in found[5]
    assert found[6] == (
        "dateouv '1979-02-30' is not a date (YYYY-MM-DD); datemaj 'hier' is not a date (YYYY-MM-DD)"
    )
    assert found[7] == (
        "unknown record type 'structures': expected a structureet or geolocalisation line"
    )
    assert "is not 9 characters" in found[10]
    assert found[11].startswith("not Windows-1252 text: byte 0x81 at byte ")


def test_a_utf8_file_with_a_windows_1252_line(tmp_path: Path) -> None:
    good = structure(rs="CH DE SAINT-ÉTIENNE")
    path = tmp_path / MEMBER
    bad = structure(rs="CH DE SAINT-ÉTIENNE").encode("cp1252")
    path.write_bytes(b"\n".join([HEADER.encode(), good.encode(), bad, good.encode()]) + b"\n")
    items = establishments(path)
    assert [type(i).__name__ for i in items] == ["Establishment", "RowError", "Establishment"]
    assert items[0].rs == "CH DE SAINT-ÉTIENNE"
    assert items[1].message.startswith("not UTF-8 text: byte 0xC9")


def test_the_encoding_is_detected_past_a_long_ascii_start(tmp_path: Path) -> None:
    ascii_lines = [structure(nofinesset=key(f"01{n:06d}"), libmft="") for n in range(3_000)]
    path = write(tmp_path, [*ascii_lines, structure(rs="CLINIQUE DU CHÂTEAU")])
    assert path.stat().st_size > 1 << 16  # the accent is past the first chunk
    items = establishments(path)
    assert not errors(items) and items[-1].rs == "CLINIQUE DU CHÂTEAU"


def test_double_encoded_text_is_repaired(tmp_path: Path) -> None:
    garbled = "Centre Hospitalier R\u00c3\u00a9gional"  # "Régional" decoded once too often
    path = write(
        tmp_path,
        [structure(libcategetab=garbled, rs="CHÂTEAU", libsph="Ã€ PART")],
        encoding="utf-8",
    )
    est = only(path)
    assert est.libcategetab == "Centre Hospitalier Régional"
    assert est.rs == "CHÂTEAU"  # a genuine Â is kept
    assert est.libsph == "À PART"  # cp1252's "€" stands for byte 0x80


def test_tolerated_variants(tmp_path: Path) -> None:
    lines = [
        structure() + ";",  # a trailing separator
        structure(nofinesset=key("01000011")) + "\r",  # CRLF
        structure(nofinesset=key("01000029"), rslongue='"CLINIQUE A;B"'),  # quoted ";"
        structure(nofinesset=key("01000037"), dateouv="13/02/1979"),  # French date
    ]
    items = establishments(write(tmp_path, lines))
    assert not errors(items), errors(items)
    assert items[2].rslongue == "CLINIQUE A;B"
    assert items[3].dateouv == "1979-02-13"


def test_geolocations(tmp_path: Path) -> None:
    lines = [
        geolocation(site=key("01000011")),  # before its structure: order does not matter
        structure(),
        geolocation(),
        geolocation(x="", y=""),
        geolocation(x="12,5"),
        geolocation(x="abc", site=SITE[:8] + "0"),
        "geolocalisation;" + SITE,
    ]
    path = write(tmp_path, lines)
    items = list(f.read_geolocations(path))
    assert [i.line for i in items] == [2, 4, 5, 6, 7, 8]
    assert items[1] == f.Geolocation(
        4, SITE, 870215.1, 6571590.4, "1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,LAMBERT_93", "2021-01-20"
    )
    assert (items[2].coordxet, items[2].coordyet) == (None, None)
    assert items[3].coordxet == 12.5
    found = dict(errors(items))
    assert "expected 4 (Luhn key)" in found[7] and "coordxet 'abc' is not a number" in found[7]
    assert found[8].startswith("2 fields instead of 6 for a geolocalisation line")
    assert [i.line for i in establishments(path)] == [3]  # geolocations are not establishments


# ---------------------------------------------------------------------------------- files


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "Type d'identifiant PP|Identifiant PP|Identification nationale PP|Nom|\n8|1|81|X|\n",
            "a '|'-separated file (5 columns), such as the Annuaire Santé PS_LibreAcces",
        ),
        ('{"structures": []}\n', "a JSON document (the FINESS+ open-data flows are JSON"),
        ("nofinesset;nofinessej;rs\n010000024;010780054;CH\n", "a CSV with a header row"),
        (structure() + "\n", "a structureet line: the finess;etalab first line is missing"),
        ("hello world\n", "found 'hello world'"),
    ],
)
def test_another_file_is_one_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(content, encoding="utf-8")
    message = extraction_error(path)
    assert message.startswith(
        "x.csv is not a FINESS establishment extraction: expected a first line "
        "'finess;etalab;<n>;<date>'"
    )
    assert expected in message


def test_empty_missing_and_false_zip_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert extraction_error(empty).startswith("empty.csv is empty")
    assert extraction_error(tmp_path / "none.csv").startswith("cannot open")
    fake = tmp_path / "fake.zip"
    fake.write_text(HEADER + "\n")
    assert extraction_error(fake) == "fake.zip is named .zip but is not a zip archive"
    other = zipped(tmp_path / "other.zip", {"a.txt": b"x", "b.csv": b"y", "c.csv": b"z"})
    assert extraction_error(other) == (
        "other.zip holds no etalab-cs1100507-stock*.csv file nor a single .csv "
        "(it holds: a.txt, b.csv, c.csv)"
    )


def test_zip_input_picks_the_latest_extraction(tmp_path: Path) -> None:
    old = ("\n".join([HEADER, structure(rs="OLD")]) + "\n").encode("cp1252")
    new = ("\n".join([HEADER, structure(rs="NEW")]) + "\n").encode("cp1252")
    path = zipped(
        tmp_path / "finess.zip",
        {
            "notice.pdf": b"%PDF",
            "etalab-cs1100507-stock-20240101-0400.csv": old,
            "data/etalab-cs1100507-stock-20250630-0900.csv": new,
        },
    )
    assert only(path).rs == "NEW"
    single = zipped(tmp_path / "single.zip", {"export.csv": new})
    assert only(single).rs == "NEW"


def test_a_truncated_zip_is_a_clear_error(tmp_path: Path) -> None:
    path = write_finess(synthesize_finess(2_000, 1), tmp_path / "x.zip", generated_at=STAMP)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert extraction_error(path).startswith(
        "x.zip is not a readable zip archive (truncated or corrupt:"
    )


def test_zip_damage_mid_stream_names_the_last_line_read(tmp_path: Path) -> None:
    path = write_finess(synthesize_finess(20_000, 1), tmp_path / "x.zip", generated_at=STAMP)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    read: list[Any] = []
    with pytest.raises(ExtractionError) as caught:
        read.extend(f.read_establishments(path))
    message = str(caught.value)
    # zlib either fails, or inflates garbage into a runaway line first: both name the file
    assert message.startswith(f"x.zip:{finess_name(STAMP)}")
    assert "is corrupt or truncated:" in message or "a line is longer than" in message
    assert message.endswith(f"(after line {len(read) + 1})")
    assert caught.value.__suppress_context__
    # what came before the damage was read; the zip's CRC is only checked at the end of the
    # member, so inflated garbage may first show as rejected lines
    assert isinstance(read[0], f.Establishment) and len(read) > 1_000


# ---------------------------------------------------------------------------------- synthesiser


def test_the_synthesised_file_reads_back_without_errors(tmp_path: Path) -> None:
    rows = list(synthesize_finess(1_500, 11))
    path = write_finess(rows, tmp_path / "s.zip", generated_at=STAMP)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [MEMBER]
        raw = archive.read(MEMBER)
    text = raw.decode("cp1252")
    lines = text.splitlines()
    assert lines[0] == HEADER
    kinds = [line.split(";", 1)[0] for line in lines[1:]]
    assert kinds == sorted(kinds, key=lambda k: k != "structureet")  # structures, then geo
    assert kinds.count("structureet") == 1_500
    assert "é".encode("cp1252") in raw
    items = establishments(path)
    assert not errors(items) and len(items) == 1_500
    assert [dataclasses.asdict(i) for i in items] == [
        {"line": n, **{c: r[c] for c in f.FINESS_COLUMNS}} for n, r in enumerate(rows, start=2)
    ]
    geo = list(f.read_geolocations(path))
    assert not errors(geo) and len(geo) == sum(1 for r in rows if "coordxet" in r)
    sites = [r["nofinesset"] for r in rows]
    assert len(set(sites)) == len(sites)
    sirets = [r["siret"] for r in rows if r["siret"]]
    assert len(set(sirets)) == len(sirets)
    assert {r["categetab"] for r in rows} <= set(CATEGORIES)
    assert {r["departement"] for r in rows} >= {"2A", "2B", "9A", "9D", "75"}
    by_legal = {r["nofinessej"] for r in rows}
    assert len(by_legal) < len(rows)  # some entités juridiques have several sites
    for org in map(f.organization_from_finess, items):
        if org["address"][0]["district"].startswith("97"):
            insee = org["address"][0]["extension"][0]["valueCoding"]["code"]
            assert insee[:3] == org["address"][0]["district"]


def test_the_synthesiser_is_deterministic_and_prefix_stable(tmp_path: Path) -> None:
    a = write_finess(synthesize_finess(300, 5), tmp_path / "a.csv", generated_at=STAMP)
    b = write_finess(synthesize_finess(300, 5), tmp_path / "b.csv", generated_at=STAMP)
    assert a.read_bytes() == b.read_bytes()
    assert list(synthesize_finess(100, 5)) == list(synthesize_finess(300, 5))[:100]
    assert list(synthesize_finess(50, 6)) != list(synthesize_finess(50, 5))


def test_the_writer_refuses_a_separator_in_a_value(tmp_path: Path) -> None:
    row = next(synthesize_finess(1, 1)) | {"rs": "A;B"}
    with pytest.raises(ValueError, match="line 2 has a value holding ';'"):
        write_finess([row], tmp_path / "x.csv", generated_at=STAMP)
    assert set(GEO_KEYS) <= set(next(synthesize_finess(1, 1)))


# ---------------------------------------------------------------------------------- profiles


@pytest.fixture(scope="module")
def annuaire_validator(defs: Definitions) -> Validator:
    """The base definitions extended with FR Core (partial build) and the Annuaire guide."""

    def load(path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8"))

    conformance = [
        resource
        for guide in ("hl7.fhir.fr.core", "IG-fhir-annuaire")
        for resource in map(load, sorted((COMPILED / guide).glob("*.json")))
        if resource["resourceType"] in ("StructureDefinition", "ValueSet", "CodeSystem")
    ]
    return Validator(defs.extended(conformance))


def _problems(validator: Validator, resource: dict[str, Any]) -> list[str]:
    issues = validator.validate(resource, resource["meta"]["profile"])
    return [i.diagnostics for i in issues if i.severity in ("error", "fatal")]


def test_mapped_resources_conform_to_the_profiles(
    annuaire_validator: Validator, tmp_path: Path
) -> None:
    crafted = [
        structure(),
        structure(nofinesset=key("01000011"), lieuditbp="LE BOURG", siret=SIRET[:9]),
        structure(nofinesset="2A0000012", departement="2A", commune="004"),
        structure(nofinesset=key("97010001"), departement="9A", commune="120"),
    ]
    path = write(tmp_path, crafted)
    synthetic = write_finess(synthesize_finess(150, 2), tmp_path / "s.csv", generated_at=STAMP)
    for source in (path, synthetic):
        for est in f.read_establishments(source):
            assert isinstance(est, f.Establishment), est
            org = f.organization_from_finess(est)
            assert _problems(annuaire_validator, org) == [], org["id"]


def test_the_validator_does_check_them(annuaire_validator: Validator, tmp_path: Path) -> None:
    org = f.organization_from_finess(only(write(tmp_path, [structure()])))
    broken = {**org, "meta": {**org["meta"], "source": "https://finess.esante.gouv.fr"}}
    broken["contact"] = [{"name": {"text": "X"}}]
    found = _problems(annuaire_validator, broken)
    assert any("meta.source" in e for e in found), found
    assert any("contact" in e for e in found), found
