"""The side files of the Annuaire Santé open data (diplômes, savoir-faire, MSSanté mailboxes):
header-driven reading, bad lines, wrong files, zip + Windows-1252, the enrichment of Practitioner
and Organization resources field by field and against the installed profiles, idempotence, and
the synthetic side files read back."""

from __future__ import annotations

import random
import zipfile
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any

import orjson
import pytest

from maison.fhir.definitions import Definitions
from maison.fhir.errors import Issue
from maison.fhir.validation import Validator
from maison.services.annuaire import mapping as m
from maison.services.annuaire import side_files as s
from maison.services.annuaire.side_files import ExtractionError, RowError, SideRow
from maison.services.annuaire.side_synth import side_file_name, write_side_files
from maison.services.annuaire.synth import synthesize, write_extraction
from support import CORPORA, SHARED

HEADER_FILE = SHARED / "domain" / "data" / "annuaire" / "PS_LibreAcces_Personne_activite.header.txt"
COMPILED = CORPORA / "compiled"
FSH = CORPORA / "IG-fhir-annuaire" / "input" / "fsh"
STAMP = datetime(2025, 6, 30, 9, 5)

IG = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
R14 = "https://mos.esante.gouv.fr/NOS/TRE_R14-TypeDiplome/FHIR/TRE-R14-TypeDiplome"
R48 = "https://mos.esante.gouv.fr/NOS/TRE_R48-DiplomeEtatFrancais/FHIR/TRE-R48-DiplomeEtatFrancais"
R04 = "https://mos.esante.gouv.fr/NOS/TRE_R04-TypeSavoirFaire/FHIR/TRE-R04-TypeSavoirFaire"
R38 = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
R97 = "https://mos.esante.gouv.fr/NOS/TRE_R97-DroitExerciceCompl/FHIR/TRE-R97-DroitExerciceCompl"
R256 = "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
R257 = "https://mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL"
EMAIL_TYPE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"
METADATA = f"{IG}as-ext-mailbox-mss-metadata"
AUTHORIZATION = f"{IG}as-ext-practitioner-authorization"

# --- Personas (fictitious; RPPS numbers with a valid Luhn key) ------------------------------------
MARTIN = {
    "Type d'identifiant PP": "8",
    "Identifiant PP": "10001234565",
    "Identification nationale PP": "810001234565",
    "Nom d'exercice": "MARTIN",
    "Prénom d'exercice": "Claire",
}
DURAND = {  # ADELI only
    "Type d'identifiant PP": "0",
    "Identifiant PP": "446012345",
    "Identification nationale PP": "0446012345",
    "Nom d'exercice": "DURAND",
    "Prénom d'exercice": "Paul",
}
BAD_KEY = {**MARTIN, "Identifiant PP": "10001234567", "Identification nationale PP": "810001234567"}
CHU_IDNST = "1440000289"


def _header() -> list[str]:
    names: list[str] = HEADER_FILE.read_text(encoding="utf-8").rstrip("\n").split("|")
    return names[:-1]


def activity(**cells: str) -> dict[str, str]:
    """A full 56-column activity row, "" unless given (keys are the published column names)."""
    header = _header()
    assert not set(cells) - set(header), set(cells) - set(header)
    return {name: cells.get(name, "") for name in header}


MARTIN_ROW = activity(
    **{
        **MARTIN,
        "Nom d'exercice": "MARTIN",
        "Prénom d'exercice": "CLAIRE",
        "Code civilité d'exercice": "DR",
        "Code profession": "10",
        "Libellé profession": "Médecin",
        "Code catégorie professionnelle": "C",
        "Libellé catégorie professionnelle": "Civil",
        "Code type savoir-faire": "S",
        "Libellé type savoir-faire": "Spécialité ordinale",
        "Code savoir-faire": "SM54",
        "Libellé savoir-faire": "Médecine générale (SM)",
        "Code mode exercice": "L",
        "Numéro SIRET site": "12345678900011",
        "Ancien identifiant de la structure": "312345678900011",
        "Raison sociale site": "CABINET MEDICAL DES TILLEULS",
        "Code secteur d'activité": "SA08",
    }
)
DURAND_ROW = activity(
    **{
        **DURAND,
        "Code profession": "60",
        "Libellé profession": "Infirmier",
        "Code catégorie professionnelle": "C",
        "Code mode exercice": "L",
    }
)
CHU_ROW = activity(
    **{
        "Type d'identifiant PP": "8",
        "Identifiant PP": "10009876540",
        "Identification nationale PP": "810009876540",
        "Code profession": "21",
        "Code mode exercice": "S",
        "Numéro SIRET site": "26440000100019",
        "Numéro FINESS site": "440000289",
        "Numéro FINESS établissement juridique": "440000271",
        "Identifiant technique de la structure": "F440000289",
        "Ancien identifiant de la structure": CHU_IDNST,
        "Raison sociale site": "CHU DE NANTES - HOTEL DIEU",
        "Adresse e-mail (coord. structure)": "Urgences@chu-nantes.mssante.fr",
        "Téléphone (coord. structure)": "0240080000",
        "Code secteur d'activité": "SA01",
    }
)


def write(
    path: Path,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, str] | str],
    *,
    encoding: str = "utf-8",
    trailing: bool = True,
) -> Path:
    """A side file: the header, then each row (a mapping by column name, or a raw line)."""
    end = "|" if trailing else ""
    lines = ["|".join(columns) + end]
    for row in rows:
        lines.append(
            row if isinstance(row, str) else "|".join(row.get(c, "") for c in columns) + end
        )
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def read(path: Path, kind: s.SideKind | None = None) -> tuple[list[SideRow], list[RowError]]:
    rows: list[SideRow] = []
    errors: list[RowError] = []
    for item in s.read_side_file(path, kind):
        if isinstance(item, RowError):
            errors.append(item)
        else:
            rows.append(item)
    return rows, errors


# --- Crafted files --------------------------------------------------------------------------------
# Diplômes: columns in another order than published, and an unknown extra column.
DIPL_COLUMNS = (
    "Identification nationale PP",
    "Type d'identifiant PP",
    "Identifiant PP",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Date de mise à jour",  # unknown: ignored
    *s.DIPLOMES_COLUMNS[5:],
)
DE05 = {
    "Code type diplôme obtenu": "DE",
    "Libellé type diplôme obtenu": "Diplôme d'Etat français",
    "Code diplôme obtenu": "DE05",
    "Libellé diplôme obtenu": "DE Docteur en médecine",
}
DES = {
    "Code type diplôme obtenu": "DES",
    "Libellé type diplôme obtenu": "Diplôme d'études spécialisées",
    "Code diplôme obtenu": "DSM54",
    "Libellé diplôme obtenu": "DES Médecine générale",
}
AUTORISATION = {
    "Code type autorisation": "AM01",
    "Libellé type autorisation": "Autorisation de plein exercice",
    "Code discipline autorisation": "DAUT26",
    "Libellé discipline autorisation": "Médecine générale",
}
DE09 = {
    "Code type diplôme obtenu": "DE",
    "Libellé type diplôme obtenu": "Diplôme d'Etat français",
    "Code diplôme obtenu": "DE09",
    "Libellé diplôme obtenu": "DE Infirmier",
}
DIPL_ROWS: list[Mapping[str, str] | str] = [
    {**MARTIN, **DE05, "Date de mise à jour": "2024-01-01"},  # 2
    {**MARTIN, **DES},  # 3
    {**MARTIN, **AUTORISATION},  # 4
    {**BAD_KEY, **DE05},  # 5: bad RPPS key
    {**MARTIN, "Identification nationale PP": "810009876540", **DE05},  # 6: IDNPS ≠ type + id
    "810001234565|8|10001234565|MARTIN|Claire|DE|DE05|",  # 7: wrong column count
    {**DURAND, **DE09},  # 8
    {**MARTIN, **DE05},  # 9: the same diploma again
    "",  # 10: blank line, skipped
    {**MARTIN, "Type d'identifiant PP": "R", **DE05},  # 11: type not a digit
]

SF_ROWS: list[Mapping[str, str] | str] = [
    {
        **MARTIN,
        "Code profession": "10",
        "Code type savoir-faire": "S",
        "Libellé type savoir-faire": "Spécialité ordinale",
        "Code savoir-faire": "SM54",
        "Libellé savoir-faire": "Médecine générale (SM)",
    },  # 2: already given by the activity file
    {
        **MARTIN,
        "Code profession": "10",
        "Code type savoir-faire": "DEC",
        "Libellé type savoir-faire": "Droit d'exercice complémentaire",
        "Code savoir-faire": "DEC02",
        "Libellé savoir-faire": "Allergologie et Immunologie clinique (DEC)",
    },  # 3
    {
        **MARTIN,
        "Code type savoir-faire": "SH",
        "Libellé type savoir-faire": "Spécialité de concours hospitalier",
        "Code savoir-faire": "X1",
        "Libellé savoir-faire": "Libellé inconnu",
    },  # 4: a type without known table
    {**BAD_KEY, "Code type savoir-faire": "S", "Code savoir-faire": "SM54"},  # 5
]

MSS_COLUMNS = (*s.MSSANTE_COLUMNS, "Adresse structure BAL", "Code postal structure BAL")
MSS_ROWS: list[Mapping[str, str] | str] = [
    {
        "Type de BAL": "PER",
        "Adresse BAL": "claire.martin@medecin.mssante.fr",
        **MARTIN,
        "Type d'identifiant structure": "3",
        "Identification Structure": "312345678900011",
        "Code profession": "10",
        "Code postal structure BAL": "44000",
    },  # 2
    {
        "Type de BAL": "CAB",
        "Adresse BAL": "cabinet.martin@medecin.mssante.fr",
        **MARTIN,
        "Service de rattachement": "Secrétariat",
    },  # 3
    {
        "Type de BAL": "ORG",
        "Adresse BAL": "urgences@chu-nantes.mssante.fr",
        "Type d'identifiant structure": "1",
        "Identification Structure": CHU_IDNST,
        "Service de rattachement": "SERVICE DES URGENCES",
        "Raison sociale structure BAL": "CHU DE NANTES",
    },  # 4
    {
        "Type de BAL": "APP",
        "Adresse BAL": "resultats@chu-nantes.mssante.fr",
        "Type d'identifiant structure": "1",
        "Identification Structure": "440000289",  # the bare FINESS next to its type
    },  # 5
    {"Type de BAL": "PER", "Adresse BAL": "claire.martin@gmail.com", **MARTIN},  # 6
    {"Type de BAL": "XYZ", "Adresse BAL": "x@medecin.mssante.fr", **MARTIN},  # 7
    {"Type de BAL": "ORG", "Adresse BAL": "accueil@x.mssante.fr"},  # 8: no structure
    {"Type de BAL": "PER", "Adresse BAL": "anonyme@medecin.mssante.fr"},  # 9: no person
    {
        "Type de BAL": "ORG",
        "Adresse BAL": "accueil@clinique.mssante.fr",
        "Type d'identifiant structure": "1",
        "Identification Structure": "1330000001",
    },  # 10: another structure
    {"Type de BAL": "per", "Adresse BAL": "c.martin@pro.mssante.fr", **MARTIN},  # 11
    {"Type de BAL": "PER", "Adresse BAL": "paul.durand@infirmier.mssante.fr", **DURAND},  # 12
    {"Type de BAL": "PER", "Adresse BAL": "a..b@medecin.mssante.fr", **MARTIN},  # 13
]


@pytest.fixture
def dipl(tmp_path: Path) -> Path:
    return write(tmp_path / "PS_LibreAcces_Dipl_AutExerc_202506300905.txt", DIPL_COLUMNS, DIPL_ROWS)


@pytest.fixture
def savoir_faire(tmp_path: Path) -> Path:
    return write(tmp_path / "sf.txt", s.SAVOIR_FAIRE_COLUMNS, SF_ROWS)


@pytest.fixture
def mss(tmp_path: Path) -> Path:
    return write(tmp_path / "mss.txt", MSS_COLUMNS, MSS_ROWS)


def _by_key(*paths: Path) -> dict[str, list[SideRow]]:
    found: dict[str, list[SideRow]] = defaultdict(list)
    for path in paths:
        rows, _ = read(path)
        for row in rows:
            found[row.key].append(row)
    return found


# --- Kinds ----------------------------------------------------------------------------------------
def test_detect_kind_from_the_header_whatever_the_name(
    tmp_path: Path, dipl: Path, savoir_faire: Path, mss: Path
) -> None:
    assert s.detect_kind(dipl) == "diplomes"
    assert s.detect_kind(savoir_faire) == "savoir_faire"
    assert s.detect_kind(mss) == "mssante"
    activite = write_extraction(synthesize(3, seed=1), tmp_path / "whatever.txt")
    assert s.detect_kind(activite) == "activite"
    # Spelling variants: upper case, no accents, typographic apostrophe, no hyphen, "Type BAL".
    variants = write(
        tmp_path / "v.txt",
        ["TYPE BAL", "ADRESSE BAL", "IDENTIFICATION NATIONALE PP", "Identification structure"],
        ["PER|a.b@medecin.mssante.fr|810001234565||"],
    )
    assert s.detect_kind(variants) == "mssante"
    rows, errors = read(variants)
    assert errors == []
    assert rows[0].cells == {
        "Type de BAL": "PER",
        "Adresse BAL": "a.b@medecin.mssante.fr",
        "Identification nationale PP": "810001234565",
        "Identification Structure": "",
    }
    plain = write(
        tmp_path / "sf2.txt",
        [
            "TYPE D\u2019IDENTIFIANT PP",
            "IDENTIFIANT PP",
            "Code type savoir faire",
            "CODE SAVOIR FAIRE",
        ],
        ["8|10001234565|S|SM54"],
        trailing=False,
    )
    rows, errors = read(plain, "savoir_faire")
    assert errors == [] and rows[0].key == "810001234565"
    assert s.normalize_column("Libellé type de voie (coord. structure)") == (
        "libelle type de voie coord structure"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"nom;prenom;rpps\nMARTIN;Claire;10001234565\n", "separated by ';'"),
        (b"Type d'identifiant PP|Identifiant PP|Nom|\n8|10001234565|X|\n", "3 '|'-separated"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not an Annuaire"),
    ],
)
def test_a_file_of_another_kind_stops_with_one_message(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "odd.txt"
    path.write_bytes(content)
    with pytest.raises(ExtractionError, match=expected) as caught:
        list(s.read_side_file(path))
    assert "\n" not in str(caught.value)
    with pytest.raises(ExtractionError, match=expected):
        s.detect_kind(path)


def test_required_columns_kind_mismatch_and_the_activity_file(tmp_path: Path, dipl: Path) -> None:
    lacking = write(tmp_path / "mss.txt", ["Type de BAL", "Adresse BAL", "Identifiant PP"], [])
    with pytest.raises(ExtractionError, match=r"lacks .*Identification Structure"):
        list(s.read_side_file(lacking))
    no_code = write(tmp_path / "sf.txt", [*s.SAVOIR_FAIRE_COLUMNS[:11]], [])  # no Code savoir-faire
    with pytest.raises(ExtractionError, match="looks like PS_LibreAcces_SavoirFaire"):
        list(s.read_side_file(no_code))
    with pytest.raises(ExtractionError, match="not Extraction_Correspondance_MSSante"):
        list(s.read_side_file(dipl, "mssante"))
    activite = write_extraction(synthesize(3, seed=1), tmp_path / "a.txt")
    with pytest.raises(ExtractionError, match="read_activities"):
        list(s.read_side_file(activite))
    with pytest.raises(ValueError, match="unknown kind"):
        list(s.read_side_file(dipl, "activite"))  # type: ignore[arg-type]


# --- Reading --------------------------------------------------------------------------------------
def test_diplomas_rows_and_bad_lines_with_their_numbers(dipl: Path) -> None:
    rows, errors = read(dipl)
    assert [(r.line, r.key) for r in rows] == [
        (2, "810001234565"),
        (3, "810001234565"),
        (4, "810001234565"),
        (8, "0446012345"),
        (9, "810001234565"),
    ]
    assert {r.kind for r in rows} == {"diplomes"}
    assert dict(rows[0].cells) == {**MARTIN, **DE05, **dict.fromkeys(s.DIPLOMES_COLUMNS[9:], "")}
    assert "Date de mise à jour" not in rows[0].cells  # unknown columns are not kept
    assert [(e.line, e.message) for e in errors] == [
        (5, "RPPS 10001234567 has an invalid check digit: 7, expected 5 (Luhn key of 1000123456)"),
        (
            6,
            "Identification nationale PP '810009876540' is not Type d'identifiant PP + "
            "Identifiant PP ('810001234565')",
        ),
        (7, "7 columns instead of 14"),
        (
            11,
            "Type d'identifiant PP 'R' is not one digit (8 = RPPS, 0 = ADELI); Identification "
            "nationale PP '810001234565' is not Type d'identifiant PP + Identifiant PP "
            "('R10001234565')",
        ),
    ]


def test_savoir_faire_rows(savoir_faire: Path) -> None:
    rows, errors = read(savoir_faire)
    assert [(r.line, r.cell("Code savoir-faire")) for r in rows] == [
        (2, "SM54"),
        (3, "DEC02"),
        (4, "X1"),
    ]
    assert [e.line for e in errors] == [5]
    assert rows[1].cell("Code profession") == "10"
    assert rows[2].cell("Code profession") == ""


def test_mailbox_rows_and_bad_lines(mss: Path) -> None:
    rows, errors = read(mss)
    assert [(r.line, r.cell("Type de BAL"), r.key, r.structure_mailbox) for r in rows] == [
        (2, "PER", "810001234565", False),
        (3, "CAB", "810001234565", False),
        (4, "ORG", CHU_IDNST, True),
        (5, "APP", "440000289", True),
        (10, "ORG", "1330000001", True),
        (11, "PER", "810001234565", False),  # the type is read case-insensitively
        (12, "PER", "0446012345", False),
    ]
    assert {e.line: e.message for e in errors} == {
        6: "Adresse BAL 'claire.martin@gmail.com' is not an MSSanté address (…@….mssante.fr)",
        7: "Type de BAL 'XYZ' is not a known mailbox type (TRE_R257: PER, CAB, ORG, APP)",
        8: "a ORG mailbox without Identification Structure",
        9: "a PER mailbox without Identification nationale PP",
        13: "Adresse BAL 'a..b@medecin.mssante.fr' is not an MSSanté address (…@….mssante.fr)",
    }
    assert "Code postal structure BAL" not in rows[0].cells


def test_zip_and_windows_1252(tmp_path: Path) -> None:
    text = write(tmp_path / "mss.txt", MSS_COLUMNS, MSS_ROWS, encoding="cp1252")
    assert "é".encode() not in text.read_bytes()
    archive = tmp_path / "Extraction_Correspondance_MSSante.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(text, "Extraction_Correspondance_MSSante_202506300905.txt")
    assert s.detect_kind(archive) == "mssante"
    rows, errors = read(archive)
    utf8_rows, utf8_errors = read(write(tmp_path / "u.txt", MSS_COLUMNS, MSS_ROWS))
    assert [(r.line, dict(r.cells)) for r in rows] == [(r.line, dict(r.cells)) for r in utf8_rows]
    assert errors == utf8_errors
    # The ANS zip holds several files: pick one by kind; detect_kind cannot choose.
    both = tmp_path / "PS_LibreAcces.zip"
    with zipfile.ZipFile(both, "w") as z:
        z.write(text, "Extraction_Correspondance_MSSante_202506300905.txt")
        z.writestr(
            "PS_LibreAcces_SavoirFaire_202506300905.txt",
            "|".join(s.SAVOIR_FAIRE_COLUMNS) + "|\n8|10001234565|810001234565|||||||S||SM54||\n",
        )
        z.writestr("LISEZ-MOI.txt", "Extraction publique\n")
    assert s.kinds_in(both) == {
        "mssante": "Extraction_Correspondance_MSSante_202506300905.txt",
        "savoir_faire": "PS_LibreAcces_SavoirFaire_202506300905.txt",
    }
    with pytest.raises(ExtractionError, match="several extractions"):
        s.detect_kind(both)
    with pytest.raises(ExtractionError, match="say which kind"):
        list(s.read_side_file(both))
    rows, errors = read(both, "savoir_faire")
    assert errors == [] and [r.cell("Code savoir-faire") for r in rows] == ["SM54"]
    with pytest.raises(ExtractionError, match="holds no PS_LibreAcces_Dipl_AutExerc"):
        list(s.read_side_file(both, "diplomes"))


def test_broken_zips(tmp_path: Path) -> None:
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"not a zip at all")
    with pytest.raises(ExtractionError, match="not a zip archive"):
        list(s.read_side_file(fake))
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("notes.pdf", b"%PDF")
    with pytest.raises(ExtractionError, match=r"holds no \.txt file"):
        list(s.read_side_file(empty))
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.txt", "|".join(s.MSSANTE_COLUMNS) + "|\n" + "PER|a@b.mssante.fr|\n" * 5000)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ExtractionError, match="zip"):
        list(s.read_side_file(truncated))


# --- Enrichment -----------------------------------------------------------------------------------
def test_practitioner_enriched_field_by_field(dipl: Path, savoir_faire: Path, mss: Path) -> None:
    before = m.practitioner([MARTIN_ROW])
    frozen = orjson.dumps(before)
    side = _by_key(dipl, savoir_faire, mss)["810001234565"]
    p = s.enrich_practitioner(before, side)
    assert orjson.dumps(before) == frozen  # a new resource; the given one is untouched
    assert {k: v for k, v in p.items() if k not in ("qualification", "extension", "telecom")} == {
        k: v for k, v in before.items() if k != "qualification"
    }
    assert p["qualification"] == [
        *before["qualification"],  # exercicePro, then SM54 from the activity file
        {
            "code": {
                "coding": [
                    {"system": R48, "code": "DE05", "display": "DE Docteur en médecine"},
                    {"system": R14, "code": "DE", "display": "Diplôme d'Etat français"},
                ]
            }
        },
        {
            "code": {
                "coding": [
                    {"system": R14, "code": "DES", "display": "Diplôme d'études spécialisées"}
                ],
                "text": "DES Médecine générale",
            }
        },
        {
            "code": {
                "coding": [
                    {"system": R04, "code": "DEC", "display": "Droit d'exercice complémentaire"},
                    {
                        "system": R97,
                        "code": "DEC02",
                        "display": "Allergologie et Immunologie clinique (DEC)",
                    },
                ]
            }
        },
        {
            "code": {
                "text": "Libellé inconnu",
                "coding": [
                    {"system": R04, "code": "SH", "display": "Spécialité de concours hospitalier"}
                ],
            }
        },
    ]
    assert [q["code"]["coding"][-1]["code"] for q in before["qualification"]] == ["C", "SM54"]
    assert p["extension"] == [
        {
            "url": AUTHORIZATION,
            "extension": [
                {
                    "url": "type",
                    "valueCodeableConcept": {
                        "coding": [{"code": "AM01", "display": "Autorisation de plein exercice"}]
                    },
                },
                {
                    "url": "field",
                    "valueCodeableConcept": {
                        "coding": [{"code": "DAUT26", "display": "Médecine générale"}]
                    },
                },
            ],
        }
    ]

    def box(address: str, bal: str, service: str = "") -> dict[str, Any]:
        metadata: list[dict[str, Any]] = [
            {"url": "type", "valueCodeableConcept": {"coding": [{"system": R257, "code": bal}]}}
        ]
        if service:
            metadata.append({"url": "service", "valueString": service})
        return {
            "system": "email",
            "value": address,
            "extension": [
                {"url": EMAIL_TYPE, "valueCoding": {"system": R256, "code": "MSSANTE"}},
                {"url": METADATA, "extension": metadata},
            ],
        }

    assert p["telecom"] == [
        box("c.martin@pro.mssante.fr", "PER"),
        box("cabinet.martin@medecin.mssante.fr", "CAB", "Secrétariat"),
        box("claire.martin@medecin.mssante.fr", "PER"),
    ]


def test_adeli_practitioner_and_foreign_rows(dipl: Path, mss: Path) -> None:
    by_key = _by_key(dipl, mss)
    nurse = s.enrich_practitioner(m.practitioner([DURAND_ROW]), by_key["0446012345"])
    assert [q["code"]["coding"][0]["code"] for q in nurse["qualification"]] == ["60", "DE09"]
    assert [t["value"] for t in nurse["telecom"]] == ["paul.durand@infirmier.mssante.fr"]
    assert "extension" not in nurse
    with pytest.raises(ValueError, match=r"other persons \(810001234565\)"):
        s.enrich_practitioner(m.practitioner([DURAND_ROW]), by_key["810001234565"])
    # Structure mailboxes among the rows are left to the Organization.
    chu_rows = by_key[CHU_IDNST]
    assert s.enrich_practitioner(m.practitioner([DURAND_ROW]), chu_rows) == m.practitioner(
        [DURAND_ROW]
    )
    with pytest.raises(ValueError, match="no Identification nationale PP"):
        s.enrich_practitioner({"resourceType": "Practitioner"}, [])


def test_organization_gets_its_org_and_app_mailboxes(mss: Path) -> None:
    org = m.organization(CHU_ROW)
    assert org is not None
    assert s.organization_keys(org) == ("1440000289", "440000289", "F440000289")
    rows, _ = read(mss)
    candidates = [r for r in rows if r.key in s.organization_keys(org)]
    assert [r.line for r in candidates] == [4, 5]
    enriched = s.enrich_organization(org, rows)  # rows of other structures are ignored
    assert enriched == s.enrich_organization(org, candidates)
    metadata = {
        "url": METADATA,
        "extension": [
            {"url": "type", "valueCodeableConcept": {"coding": [{"system": R257, "code": "ORG"}]}},
            {"url": "service", "valueString": "SERVICE DES URGENCES"},
        ],
    }
    mss_type = {"url": EMAIL_TYPE, "valueCoding": {"system": R256, "code": "MSSANTE"}}
    assert enriched["telecom"] == [
        {"system": "phone", "value": "0240080000", "rank": 1},
        # the structure's e-mail of the activity file, same address: completed in place
        {
            "system": "email",
            "value": "urgences@chu-nantes.mssante.fr",
            "extension": [mss_type, metadata],
        },
        {
            "system": "email",
            "value": "resultats@chu-nantes.mssante.fr",
            "extension": [
                mss_type,
                {
                    "url": METADATA,
                    "extension": [
                        {
                            "url": "type",
                            "valueCodeableConcept": {"coding": [{"system": R257, "code": "APP"}]},
                        }
                    ],
                },
            ],
        },
    ]
    assert {k: v for k, v in enriched.items() if k != "telecom"} == {
        k: v for k, v in org.items() if k != "telecom"
    }
    # A person's mailbox keyed like the structure does not go on the Organization.
    per = SideRow("mssante", 99, CHU_IDNST, {"Type de BAL": "PER", "Adresse BAL": "x@y.mssante.fr"})
    assert s.enrich_organization(org, [per]) == org


def test_one_address_twice_gives_one_mailbox() -> None:
    def row(line: int, bal: str, address: str, service: str = "") -> SideRow:
        cells = {"Type de BAL": bal, "Adresse BAL": address, "Service de rattachement": service}
        return SideRow("mssante", line, "810001234565", cells)

    p = s.enrich_practitioner(
        m.practitioner([MARTIN_ROW]),
        [
            row(5, "CAB", "claire.martin@medecin.mssante.fr", "Z"),
            row(2, "PER", "Claire.Martin@medecin.mssante.fr", "B"),
            row(3, "PER", "claire.martin@medecin.mssante.fr", "A"),
        ],
    )
    (point,) = p["telecom"]
    assert point["value"] == "Claire.Martin@medecin.mssante.fr"  # PER first, then by address
    assert point["extension"][1]["extension"] == [
        {"url": "type", "valueCodeableConcept": {"coding": [{"system": R257, "code": "PER"}]}},
        {"url": "service", "valueString": "A"},
    ]


def test_enrichment_is_idempotent_and_independent_of_row_order(
    dipl: Path, savoir_faire: Path, mss: Path
) -> None:
    side = _by_key(dipl, savoir_faire, mss)
    rows = side["810001234565"]
    once = s.enrich_practitioner(m.practitioner([MARTIN_ROW]), rows)
    assert orjson.dumps(s.enrich_practitioner(once, rows)) == orjson.dumps(once)
    shuffled = list(rows)
    random.Random(7).shuffle(shuffled)
    assert orjson.dumps(s.enrich_practitioner(m.practitioner([MARTIN_ROW]), shuffled)) == (
        orjson.dumps(once)
    )
    assert m.content_hash(s.enrich_practitioner(once, shuffled)) == m.content_hash(once)
    org = m.organization(CHU_ROW)
    assert org is not None
    twice = s.enrich_organization(s.enrich_organization(org, side[CHU_IDNST]), side[CHU_IDNST])
    assert orjson.dumps(twice) == orjson.dumps(s.enrich_organization(org, side[CHU_IDNST]))
    assert s.enrich_practitioner(m.practitioner([MARTIN_ROW]), []) == m.practitioner([MARTIN_ROW])


def test_every_nos_table_and_url_used_is_named_by_the_guide() -> None:
    fsh = "\n".join(p.read_text(encoding="utf-8") for p in FSH.rglob("*.fsh"))
    for table in ("TRE_R48-DiplomeEtatFrancais", "TRE_R14-TypeDiplome", "TRE_R257-TypeBAL"):
        assert m.nos(table) in fsh, table
    assert m.nos("TRE_R256-TypeMessagerie") in fsh
    compiled = {p.name for p in (COMPILED / "IG-fhir-annuaire").glob("StructureDefinition-*.json")}
    for url in (s.AUTHORIZATION_URL, s.MAILBOX_METADATA_URL):
        assert f"StructureDefinition-{url.rsplit('/', 1)[1]}.json" in compiled
    assert s.AUTHORIZATION_TYPE_TABLE is None and s.AUTHORIZATION_FIELD_TABLE is None


# --- Validation against the installed guide -------------------------------------------------------
def _json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


@pytest.fixture(scope="module")
def annuaire_validator(defs: Definitions) -> Validator:
    """The base definitions with FR Core (partial build) and the Annuaire guide, as the server
    loads them (the same fixture as test_mapping)."""
    conformance = [
        doc
        for guide in ("hl7.fhir.fr.core", "IG-fhir-annuaire")
        for p in sorted((COMPILED / guide).glob("*.json"))
        if (doc := _json(p))["resourceType"] in ("StructureDefinition", "ValueSet", "CodeSystem")
    ]
    return Validator(defs.extended(conformance))


def _errors(validator: Validator, resource: dict[str, Any]) -> list[str]:
    issues: list[Issue] = validator.validate(resource, resource["meta"]["profile"])
    return [i.diagnostics for i in issues if i.severity in ("error", "fatal")]


def test_enriched_resources_conform_to_their_profiles(
    annuaire_validator: Validator, dipl: Path, savoir_faire: Path, mss: Path
) -> None:
    side = _by_key(dipl, savoir_faire, mss)
    martin = s.enrich_practitioner(m.practitioner([MARTIN_ROW]), side["810001234565"])
    nurse = s.enrich_practitioner(m.practitioner([DURAND_ROW]), side["0446012345"])
    org = m.organization(CHU_ROW)
    assert org is not None
    chu = s.enrich_organization(org, side[CHU_IDNST] + side["440000289"])
    assert len(chu["telecom"]) == 3
    assert any("as-dp-practitioner" in p for p in martin["meta"]["profile"])
    assert any(p.endswith("as-practitioner") for p in nurse["meta"]["profile"])
    for resource in (martin, nurse, chu):
        assert _errors(annuaire_validator, resource) == [], resource["id"]


def test_the_validator_does_check_what_enrichment_adds(
    annuaire_validator: Validator, dipl: Path, mss: Path
) -> None:
    """The extensions' own definitions are checked (the validator does not resolve the telecom
    and qualification slices of the profiles, whose discriminators are ``exists`` / unpatterned
    ``value``: their slice-only rules, e.g. listeRouge 0..0 in as-dp-practitioner, are not)."""
    side = _by_key(dipl, mss)
    martin = s.enrich_practitioner(m.practitioner([MARTIN_ROW]), side["810001234565"])
    point = martin["telecom"][0]
    metadata = {**point["extension"][1], "extension": [{"url": "type", "valueString": "PER"}]}
    broken = {**martin, "telecom": [{**point, "extension": [point["extension"][0], metadata]}]}
    assert any("allowed: CodeableConcept" in e for e in _errors(annuaire_validator, broken))
    (authorization,) = martin["extension"]
    flat = {**martin, "extension": [{**authorization, "valueString": "AM01"}]}
    assert any("maximum cardinality 0" in e for e in _errors(annuaire_validator, flat))
    dated = {
        **martin,
        "qualification": [{**martin["qualification"][0], "period": {"start": "2001"}}],
    }
    assert any("period" in e for e in _errors(annuaire_validator, dated))


# --- Synthetic side files -------------------------------------------------------------------------
ACTIVITY = list(synthesize(4_000, seed=11))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[s.SideKind, Path]:
    folder = tmp_path_factory.mktemp("side")
    return write_side_files(ACTIVITY, folder, seed=11, generated_at=STAMP)


def test_synthetic_files_read_back_without_errors(
    synthetic: dict[s.SideKind, Path], tmp_path: Path
) -> None:
    assert {k: p.name for k, p in synthetic.items()} == {
        "diplomes": "PS_LibreAcces_Dipl_AutExerc_202506300905.txt",
        "savoir_faire": "PS_LibreAcces_SavoirFaire_202506300905.txt",
        "mssante": "Extraction_Correspondance_MSSante_202506300905.txt",
    }
    assert side_file_name("mssante", STAMP) == synthetic["mssante"].name
    persons = {r["Identification nationale PP"]: r for r in ACTIVITY}
    counts: Counter[tuple[str, str]] = Counter()
    for kind, path in synthetic.items():
        assert s.detect_kind(path) == kind
        rows, errors = read(path)
        assert errors == [], errors[:3]
        assert rows
        for row in rows:
            if kind == "diplomes":
                counts[kind, row.cell("Code type diplôme obtenu") or "AUT"] += 1
            elif kind == "savoir_faire":
                counts[kind, row.cell("Code type savoir-faire")] += 1
            else:
                counts[kind, row.cell("Type de BAL")] += 1
            if not row.structure_mailbox:
                person = persons[row.key]  # every row is about a person of the activity file
                if kind == "savoir_faire":
                    assert person["Code profession"] in ("10", "40")
    assert {k for k, n in counts.items() if n} >= {
        ("diplomes", "DE"),
        ("diplomes", "AUT"),
        ("savoir_faire", "S"),
        ("mssante", "PER"),
        ("mssante", "CAB"),
        ("mssante", "ORG"),
        ("mssante", "APP"),
    }
    # Same seed, same bytes; zipped and in Windows-1252, the same rows.
    again = write_side_files(ACTIVITY, tmp_path / "again", seed=11, generated_at=STAMP)
    assert all(again[k].read_bytes() == p.read_bytes() for k, p in synthetic.items())
    zipped = write_side_files(
        ACTIVITY[:500],
        tmp_path / "z",
        seed=11,
        generated_at=STAMP,
        encoding="cp1252",
        compress=True,
    )
    plain = write_side_files(ACTIVITY[:500], tmp_path / "p", seed=11, generated_at=STAMP)
    for kind, path in zipped.items():
        assert path.suffix == ".zip"
        assert [dict(r.cells) for r in read(path)[0]] == [
            dict(r.cells) for r in read(plain[kind])[0]
        ]


def test_synthetic_diplomas_fit_the_profession(synthetic: dict[s.SideKind, Path]) -> None:
    profession = {r["Identification nationale PP"]: r["Code profession"] for r in ACTIVITY}
    expected = {"10": "DE05", "50": "DE06", "70": "DE11", "98": "DE18"}
    rows, _ = read(synthetic["diplomes"])
    for row in rows:
        code = row.cell("Code diplôme obtenu")
        if profession[row.key] in expected and code:
            assert code == expected[profession[row.key]], row
        if profession[row.key] == "60":
            assert code in ("DE09", "DE19", "DE20", "DE21", "DE22")
        if row.cell("Code type autorisation"):
            assert profession[row.key] in ("10", "21", "40", "50")
            assert row.cell("Code type autorisation") in ("AM01", "AM27")


def test_synthetic_persons_and_structures_enriched_and_valid(
    synthetic: dict[s.SideKind, Path], annuaire_validator: Validator
) -> None:
    side = _by_key(*synthetic.values())
    practitioners: list[dict[str, Any]] = []
    organizations: dict[str, dict[str, Any]] = {}
    for national, group in groupby(ACTIVITY, key=lambda r: r["Identification nationale PP"]):
        for resource in m.resources_for_person(list(group)):
            if resource["resourceType"] == "Practitioner":
                practitioners.append(s.enrich_practitioner(resource, side.get(national, [])))
            elif resource["resourceType"] == "Organization":
                organizations.setdefault(resource["id"], resource)
    matched = Counter[str]()
    enriched_orgs = []
    for org in organizations.values():
        candidates = [r for key in s.organization_keys(org) for r in side.get(key, ())]
        enriched = s.enrich_organization(org, candidates)
        if enriched != org:
            enriched_orgs.append(enriched)
        for row in candidates:
            if row.structure_mailbox:
                matched[row.cell("Adresse BAL")] += 1
    structure_boxes = {
        r.cell("Adresse BAL") for rows in side.values() for r in rows if r.structure_mailbox
    }
    assert set(matched) == structure_boxes  # every ORG/APP box found its Organization, once
    assert set(matched.values()) == {1}
    with_boxes = [p for p in practitioners if "telecom" in p]
    with_degrees = [p for p in practitioners if len(p.get("qualification", [])) > 1]
    with_authorization = [p for p in practitioners if "extension" in p]
    assert with_boxes and with_degrees and with_authorization and enriched_orgs
    sample = with_boxes[:15] + with_degrees[:15] + with_authorization[:10] + enriched_orgs[:15]
    for resource in sample:
        assert _errors(annuaire_validator, resource) == [], resource["id"]
