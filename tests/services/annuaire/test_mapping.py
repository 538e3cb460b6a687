"""Annuaire Santé open-data rows → ANS Annuaire resources, checked field by field and against the
guide's profiles (compiled Annuaire guide + the partial FR Core build, loaded in-process)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from maison.fhir.definitions import Definitions
from maison.fhir.errors import Issue
from maison.fhir.validation import Validator
from maison.services.annuaire import mapping as m
from support import CORPORA, SHARED

HEADER_FILE = SHARED / "domain" / "data" / "annuaire" / "PS_LibreAcces_Personne_activite.header.txt"
COMPILED = CORPORA / "compiled"
NOS = CORPORA / "nos"
EXAMPLES = COMPILED / "IG-fhir-annuaire"


def _header() -> list[str]:
    names = HEADER_FILE.read_text(encoding="utf-8").rstrip("\n").split("|")
    assert names[-1] == ""  # the extraction ends every line with a "|"
    return names[:-1]


HEADER = _header()


def row(**cells: str) -> dict[str, str]:
    """A full 56-column row: every column present, "" unless given (keys are column names)."""
    unknown = set(cells) - set(HEADER)
    assert not unknown, unknown
    return {name: cells.get(name, "") for name in HEADER}


def cells(**named: str) -> dict[str, str]:
    """Column values by the mapping's constant names (``IDNAT_PP="8…"``)."""
    return {getattr(m, key): value for key, value in named.items()}


# --- The personas (fictitious) ------------------------------------------------------------------
DR_MARTIN = cells(
    TYPE_ID_PP="8",
    ID_PP="10001234567",
    IDNAT_PP="810001234567",
    CIVILITE_EXERCICE="DR",
    CIVILITE="MME",
    NOM="MARTIN",
    PRENOM="CLAIRE",
    PROFESSION="10",
    PROFESSION_LABEL="Médecin",
    CATEGORIE="C",
    CATEGORIE_LABEL="Civil",
    MODE="L",
    MODE_LABEL="Libéral",
    FONCTION="FON-01",
    FONCTION_LABEL="Titulaire de cabinet",
    GENRE="GENR01",
    GENRE_LABEL="Activité standard",
)
SPECIALITE = cells(
    TYPE_SF="S", TYPE_SF_LABEL="Spécialité ordinale", SF="SM54", SF_LABEL="Médecine générale (SM)"
)
DROIT_COMPLEMENTAIRE = cells(
    TYPE_SF="DEC",
    TYPE_SF_LABEL="Droit d'exercice complémentaire",
    SF="DEC02",
    SF_LABEL="Allergologie et Immunologie clinique (DEC)",
)
CABINET_TILLEULS = {
    **cells(
        SIRET="12345678900011",
        TECHNICAL_ID="C12345678900011",
        ANCIEN_ID_STRUCTURE="312345678900011",
        RAISON_SOCIALE="CABINET MEDICAL DES TILLEULS",
        ENSEIGNE="MAISON MEDICALE DES TILLEULS",
        COMPLEMENT_GEO="BATIMENT A",
        NUMERO_VOIE="12",
        INDICE_VOIE="B",
        TYPE_VOIE="R",
        LIBELLE_VOIE="DES TILLEULS",
        MENTION_DISTRIBUTION="BP 42",
        CODE_POSTAL="44000",
        CODE_COMMUNE="44109",
        LIBELLE_COMMUNE="Nantes",
        CODE_PAYS="99100",
        TELEPHONE="0240000001",
        TELEPHONE_2="0240000002",
        TELECOPIE="0240000003",
        EMAIL="cabinet.tilleuls@medecin.mssante.fr",
        CODE_DEPARTEMENT="44",
        SECTEUR="SA08",
        SECTEUR_LABEL="Cabinet de groupe",
    ),
    "Libellé type de voie (coord. structure)": "Rue",
    "Libellé pays (coord. structure)": "France",
    "Libellé département (coord. structure)": "Loire-Atlantique",
    "Autorité d'enregistrement": "CNOM/CNOM/CNOM",
}
# A second cabinet known only by its RASS technical id (no SIRET, FINESS nor published IDNST).
CABINET_SECONDAIRE = cells(
    TECHNICAL_ID="R10001234567001",
    RAISON_SOCIALE="CABINET SECONDAIRE DU DR MARTIN",
    CODE_POSTAL="44800",
    CODE_COMMUNE="44162",
    LIBELLE_COMMUNE="Saint-Herblain",
    SECTEUR="SA07",
    SECTEUR_LABEL="Cabinet individuel",
)
# The older extractions repeat each activity once per savoir-faire: 2 activities x 2 = 4 rows.
MEDECIN_ROWS = [
    row(**DR_MARTIN, **structure, **savoir_faire)
    for structure in (CABINET_TILLEULS, CABINET_SECONDAIRE)
    for savoir_faire in (SPECIALITE, DROIT_COMPLEMENTAIRE)
]

PHARMACIEN = row(
    **cells(
        TYPE_ID_PP="8",
        ID_PP="10009876543",
        IDNAT_PP="810009876543",
        CIVILITE="MME",
        NOM="BERNARD",
        PRENOM="SOPHIE",
        PROFESSION="21",
        PROFESSION_LABEL="Pharmacien",
        CATEGORIE="C",
        CATEGORIE_LABEL="Civil",
        MODE="S",
        MODE_LABEL="Salarié",
        SIRET="26440000100019",
        FINESS_SITE="440000289",
        FINESS_EJ="440000271",
        TECHNICAL_ID="F440000289",
        ANCIEN_ID_STRUCTURE="1440000289",
        RAISON_SOCIALE="CHU DE NANTES - HOTEL DIEU",
        NUMERO_VOIE="1",
        TYPE_VOIE="PL",
        LIBELLE_VOIE="ALEXIS RICORDEAU",
        BUREAU_CEDEX="44093 NANTES CEDEX 1",
        CODE_POSTAL="44093",
        CODE_COMMUNE="44109",
        TELEPHONE="0240080000",
        SECTEUR="SA01",
        SECTEUR_LABEL="Etablissement public de santé",
        SECTION_PHARMA="H",
        SECTION_PHARMA_LABEL="Pharmacien des établissements de santé",
        FONCTION="FON-05",
        FONCTION_LABEL="Adjoint",
        GENRE="GENR01",
        GENRE_LABEL="Activité standard",
    )
)

INFIRMIER = row(
    **cells(
        TYPE_ID_PP="0",
        ID_PP="446012345",
        IDNAT_PP="0446012345",
        CIVILITE="M",
        NOM="DURAND",
        PRENOM="PAUL",
        PROFESSION="60",
        PROFESSION_LABEL="Infirmier",
        CATEGORIE="C",
        CATEGORIE_LABEL="Civil",
        MODE="L",
        MODE_LABEL="Libéral",
        SIRET="98765432100017",
        TECHNICAL_ID="C98765432100017",
        RAISON_SOCIALE="CABINET INFIRMIER DURAND",
        NUMERO_VOIE="3",
        TYPE_VOIE="AV",
        LIBELLE_VOIE="DE LA GARE",
        CODE_POSTAL="49000",
        CODE_COMMUNE="49007",
        LIBELLE_COMMUNE="Angers",
        EMAIL="ide.durand@example.org",
        SECTEUR="SA07",
        SECTEUR_LABEL="Cabinet individuel",
    )
)

REMPLACANT = row(
    **cells(
        TYPE_ID_PP="8",
        ID_PP="10005555555",
        IDNAT_PP="810005555555",
        CIVILITE_EXERCICE="DR",
        CIVILITE="M",
        NOM="PETIT",
        PRENOM="LUC",
        PROFESSION="10",
        PROFESSION_LABEL="Médecin",
        CATEGORIE="C",
        CATEGORIE_LABEL="Civil",
        MODE="L",
        MODE_LABEL="Libéral",
        FONCTION="FON-22",
        FONCTION_LABEL="Remplaçant, intérimaire, intermittent",
    )
)

PERSONS = {
    "medecin": MEDECIN_ROWS,
    "pharmacien": [PHARMACIEN],
    "infirmier": [INFIRMIER],
    "remplacant": [REMPLACANT],
}

ID_TYPES = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
G15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
R09 = (
    "https://mos.esante.gouv.fr/NOS/TRE_R09-CategorieProfessionnelle/FHIR/"
    "TRE-R09-CategorieProfessionnelle"
)
R38 = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
R04 = "https://mos.esante.gouv.fr/NOS/TRE_R04-TypeSavoirFaire/FHIR/TRE-R04-TypeSavoirFaire"
R97 = "https://mos.esante.gouv.fr/NOS/TRE_R97-DroitExerciceCompl/FHIR/TRE-R97-DroitExerciceCompl"


def _identifier(system: str, code: str, value: str) -> dict[str, Any]:
    return {
        "use": "official",
        "type": {"coding": [{"system": ID_TYPES, "code": code}]},
        "system": system,
        "value": value,
    }


def _by_type(resources: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == rtype]


def _codings(value: Any) -> list[dict[str, Any]]:
    """Every Coding (a dict with system and code) anywhere in a resource."""
    if isinstance(value, list):
        return [c for item in value for c in _codings(item)]
    if not isinstance(value, dict):
        return []
    own = [value] if "system" in value and "code" in value else []
    return own + [c for item in value.values() for c in _codings(item)]


def _json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


# --- The columns and URLs the mapping relies on --------------------------------------------------
def test_every_column_the_mapping_reads_is_in_the_official_header() -> None:
    assert len(HEADER) == 56
    constants = {
        k: v
        for k, v in vars(m).items()
        if k.isupper() and isinstance(v, str) and not re.match(r"(https?|urn):", v)
    }
    columns = {k: v for k, v in constants.items() if k != "IG_VERSION"}
    assert {k: v for k, v in columns.items() if v not in HEADER} == {}
    assert len(columns) >= 50


def test_nos_urls_are_those_of_the_guide_examples_and_of_the_nos_code_systems() -> None:
    assert m.nos("TRE_G15-ProfessionSante") == G15
    assert m.nos("TRE_R09-CategorieProfessionnelle") == R09
    urls = {_json(p)["url"] for p in NOS.glob("*.json") if _json(p)["resourceType"] == "CodeSystem"}
    for table in ("TRE_G15-ProfessionSante", "TRE_R21-Fonction", "TRE_R38-SpecialiteOrdinale"):
        assert m.nos(table) in urls
    example = _json(EXAMPLES / "PractitionerRole-5015602DP.json")
    systems = {c["system"] for code in example["code"] for c in code["coding"]}
    assert systems == {
        m.nos("TRE_R22-GenreActivite"),
        m.nos("TRE_R23-ModeExercice"),
        m.nos("TRE_R21-Fonction"),
    }


def test_codes_of_the_personas_exist_in_the_nos_terminologies_we_hold() -> None:
    """The hand-built rows use real codes (G15, R21, R38, R02: the NOS tables in the corpus)."""
    known: dict[str, set[str]] = {}
    for path in NOS.glob("*.json"):
        doc = _json(path)
        if doc["resourceType"] == "CodeSystem":
            known[doc["url"]] = {c["code"] for c in doc["concept"]}
        elif doc["resourceType"] == "ValueSet":
            for inc in doc["compose"]["include"]:
                known.setdefault(inc["system"], set()).update(
                    c["code"] for c in inc.get("concept", [])
                )
    checked = set()
    for rows in PERSONS.values():
        for resource in m.resources_for_person(rows):
            for coding in _codings(resource):
                if coding.get("system") in known:
                    assert coding["code"] in known[coding["system"]], coding
                    checked.add((coding["system"], coding["code"]))
    assert sorted(code for _, code in checked) == sorted(
        ["10", "21", "60", "SM54", "FON-01", "FON-05", "FON-22", "SA01", "SA07", "SA08"]
    )


# --- Practitioner ----------------------------------------------------------------------------
def test_medecin_practitioner_field_by_field() -> None:
    p = m.practitioner(MEDECIN_ROWS)
    assert p["resourceType"] == "Practitioner"
    assert p["id"] == "810001234567"
    assert p["meta"] == {
        "source": "https://annuaire.esante.gouv.fr",
        "profile": [
            "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner",
            "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
            "as-dp-practitioner|1.2.0-snapshot-2",
        ],
    }
    assert p["active"] is True
    assert p["identifier"] == [
        _identifier("urn:oid:1.2.250.1.71.4.2.1", "IDNPS", "810001234567"),
        _identifier("https://rpps.esante.gouv.fr", "RPPS", "10001234567"),
    ]
    assert p["name"] == [
        {
            "use": "usual",
            "family": "MARTIN",
            "given": ["CLAIRE"],
            "prefix": ["MME"],
            "suffix": ["DR"],
        }
    ]
    assert p["qualification"] == [
        {
            "code": {
                "coding": [
                    {"system": G15, "code": "10", "display": "Médecin"},
                    {"system": R09, "code": "C", "display": "Civil"},
                ]
            }
        },
        {
            "code": {
                "coding": [
                    {
                        "system": R04,
                        "code": "DEC",
                        "display": "Droit d'exercice complémentaire",
                    },
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
                "coding": [
                    {"system": R04, "code": "S", "display": "Spécialité ordinale"},
                    {"system": R38, "code": "SM54", "display": "Médecine générale (SM)"},
                ]
            }
        },
    ]
    assert "telecom" not in p and "address" not in p  # not in the open data (DP forbids both)


def test_adeli_only_infirmier_gets_the_adeli_identifier_and_the_generic_profile() -> None:
    p = m.practitioner([INFIRMIER])
    assert p["id"] == "0446012345"
    assert p["identifier"] == [
        _identifier("urn:oid:1.2.250.1.71.4.2.1", "IDNPS", "0446012345"),
        _identifier("https://adeli.esante.gouv.fr", "ADELI", "446012345"),
    ]
    assert p["meta"]["profile"] == [
        "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner",
        "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-practitioner",
    ]
    assert p["name"] == [{"use": "usual", "family": "DURAND", "given": ["PAUL"], "prefix": ["M"]}]
    assert p["qualification"] == [
        {
            "code": {
                "coding": [
                    {"system": G15, "code": "60", "display": "Infirmier"},
                    {"system": R09, "code": "C", "display": "Civil"},
                ]
            }
        }
    ]


def test_idnps_is_derived_when_the_cell_is_empty_and_rows_of_two_persons_are_refused() -> None:
    assert m.idnps({**INFIRMIER, m.IDNAT_PP: ""}) == "0446012345"
    assert m.idnps({**REMPLACANT, m.IDNAT_PP: ""}) == "810005555555"
    with pytest.raises(ValueError, match="several persons"):
        m.practitioner([PHARMACIEN, INFIRMIER])
    with pytest.raises(ValueError):
        m.practitioner([])
    with pytest.raises(ValueError):
        m.idnps(row())


# --- Organization ------------------------------------------------------------------------------
def test_cabinet_organization_field_by_field() -> None:
    o = m.organization(MEDECIN_ROWS[0])
    assert o is not None
    assert o["id"] == "312345678900011"
    assert o["meta"]["profile"] == [
        "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-organization",
        "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
        "as-dp-organization|1.2.0-snapshot-2",
    ]
    assert o["active"] is True
    assert o["identifier"] == [
        _identifier("urn:oid:1.2.250.1.71.4.2.2", "IDNST", "312345678900011"),
        _identifier("https://sirene.fr", "SIRET", "12345678900011"),
        _identifier("https://rppsrang.esante.gouv.fr", "RPPSRG", "C12345678900011"),
    ]
    assert o["name"] == "CABINET MEDICAL DES TILLEULS"
    assert o["alias"] == ["MAISON MEDICALE DES TILLEULS"]
    org_types = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
    assert o["type"] == [
        {
            "extension": [
                {"url": f"{org_types}as-ext-organization-types", "valueCode": "organizationType"}
            ],
            "coding": [
                {
                    "system": "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-3307",
                    "code": "GEOGRAPHICAL-ENTITY",
                }
            ],
        },
        {
            "extension": [
                {"url": f"{org_types}as-ext-organization-types", "valueCode": "secteurActiviteRASS"}
            ],
            "coding": [
                {
                    "system": m.nos("TRE_R02-SecteurActivite"),
                    "code": "SA08",
                    "display": "Cabinet de groupe",
                }
            ],
        },
    ]
    assert o["telecom"] == [
        {"system": "phone", "value": "0240000001", "rank": 1},
        {"system": "phone", "value": "0240000002", "rank": 2},
        {"system": "fax", "value": "0240000003"},
        {
            "system": "email",
            "value": "cabinet.tilleuls@medecin.mssante.fr",
            "extension": [
                {
                    "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/"
                    "fr-core-contact-point-email-type",
                    "valueCoding": {
                        "system": m.nos("TRE_R256-TypeMessagerie"),
                        "code": "MSSANTE",
                    },
                }
            ],
        },
    ]
    adxp = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-"
    assert o["address"] == [
        {
            "extension": [
                {
                    "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/"
                    "fr-core-address-insee-code",
                    "valueCoding": {"system": m.nos("TRE_R13-Commune"), "code": "44109"},
                }
            ],
            "line": ["BATIMENT A", "12 B R DES TILLEULS", "BP 42"],
            "_line": [
                {"extension": [{"url": f"{adxp}additionalLocator", "valueString": "BATIMENT A"}]},
                {
                    "extension": [
                        {"url": f"{adxp}houseNumber", "valueString": "12"},
                        {"url": f"{adxp}buildingNumberSuffix", "valueString": "B"},
                        {"url": f"{adxp}streetNameType", "valueString": "R"},
                        {"url": f"{adxp}streetNameBase", "valueString": "DES TILLEULS"},
                    ]
                },
                {"extension": [{"url": f"{adxp}postBox", "valueString": "BP 42"}]},
            ],
            "city": "Nantes",
            "district": "44",
            "postalCode": "44000",
            "country": "99100",
            "text": "BATIMENT A, 12 B R DES TILLEULS, BP 42, 44000 Nantes",
        }
    ]
    assert "partOf" not in o


def test_pharmacien_structure_is_a_finess_site_part_of_its_legal_entity() -> None:
    o = m.organization(PHARMACIEN)
    assert o is not None
    assert o["id"] == "1440000289"
    assert o["identifier"] == [
        _identifier("urn:oid:1.2.250.1.71.4.2.2", "IDNST", "1440000289"),
        _identifier("https://finess.esante.gouv.fr", "FINEG", "440000289"),
        _identifier("https://sirene.fr", "SIRET", "26440000100019"),
        _identifier("https://rppsrang.esante.gouv.fr", "RPPSRG", "F440000289"),
    ]
    # the FINESS EJ names another organization (the legal entity): a logical reference
    assert o["partOf"] == {
        "identifier": _identifier("https://finess.esante.gouv.fr", "FINEJ", "440000271")
    }
    assert o["telecom"] == [{"system": "phone", "value": "0240080000", "rank": 1}]
    place = o["address"][0]
    assert place["line"] == ["1 PL ALEXIS RICORDEAU"]
    assert place["city"] == "NANTES CEDEX 1"  # no libellé commune: the bureau cedex
    assert place["postalCode"] == "44093"
    assert place["text"] == "1 PL ALEXIS RICORDEAU, 44093 NANTES CEDEX 1"
    assert "alias" not in o and "district" not in place and "country" not in place


def test_idnst_is_derived_from_finess_siret_or_siren_when_not_published() -> None:
    assert m.idnst(INFIRMIER) == "398765432100017"  # 3 + SIRET
    assert m.idnst({**PHARMACIEN, m.ANCIEN_ID_STRUCTURE: ""}) == "1440000289"  # 1 + FINESS
    siren_only = row(**{m.SIREN: "123456789", m.RAISON_SOCIALE: "SELARL X"})
    assert m.idnst(siren_only) == "2123456789"
    assert m.organization_id(siren_only) == "2123456789"
    o = m.organization(INFIRMIER)
    assert o is not None and o["id"] == "398765432100017"
    assert o["identifier"][0] == _identifier(
        "urn:oid:1.2.250.1.71.4.2.2", "IDNST", "398765432100017"
    )
    assert o["telecom"] == [{"system": "email", "value": "ide.durand@example.org"}]  # not MSS


@pytest.mark.parametrize(
    ("email", "mss"),
    [
        ("cabinet@medecin.mssante.fr", True),
        ("CH.Service@Chu-Nantes.MSSante.fr", True),
        ("contact@mssante.fr", True),
        ("contact@notmssante.fr", False),
        ("mssante.fr@example.org", False),
    ],
)
def test_only_mailboxes_of_the_mssante_domain_are_typed_mssante(email: str, mss: bool) -> None:
    o = m.organization({**INFIRMIER, m.EMAIL: email})
    assert o is not None
    (point,) = o["telecom"]
    assert point["value"] == email
    assert ("extension" in point) is mss


def test_structure_known_only_by_its_technical_id() -> None:
    o = m.organization(MEDECIN_ROWS[2])
    assert o is not None
    assert o["id"] == "rass-R10001234567001"
    assert o["identifier"] == [
        _identifier("https://rppsrang.esante.gouv.fr", "RPPSRG", "R10001234567001")
    ]
    assert o["address"] == [
        {
            "extension": [
                {
                    "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/"
                    "fr-core-address-insee-code",
                    "valueCoding": {"system": m.nos("TRE_R13-Commune"), "code": "44162"},
                }
            ],
            "city": "Saint-Herblain",
            "postalCode": "44800",
            "text": "44800 Saint-Herblain",
        }
    ]


def test_a_row_without_structure_has_no_organization() -> None:
    assert m.organization(REMPLACANT) is None
    assert m.organization_id(REMPLACANT) is None
    # a name alone identifies nothing: no Organization (and so no dangling id)
    assert m.organization(row(**{m.RAISON_SOCIALE: "CABINET SANS IDENTIFIANT"})) is None
    resources = m.resources_for_person([REMPLACANT])
    assert [r["resourceType"] for r in resources] == ["Practitioner", "PractitionerRole"]
    role = resources[1]
    assert "organization" not in role
    assert role["practitioner"] == {"reference": "Practitioner/810005555555"}
    assert role["code"] == [
        {"coding": [{"system": m.nos("TRE_R23-ModeExercice"), "code": "L", "display": "Libéral"}]},
        {
            "coding": [
                {
                    "system": m.nos("TRE_R21-Fonction"),
                    "code": "FON-22",
                    "display": "Remplaçant, intérimaire, intermittent",
                }
            ]
        },
    ]


# --- PractitionerRole --------------------------------------------------------------------------
def test_pharmacien_role_field_by_field() -> None:
    role = m.practitioner_role(PHARMACIEN, "810009876543", "1440000289")
    assert role["id"] == m.practitioner_role_id(PHARMACIEN)
    assert re.fullmatch(r"pr-[0-9a-f]{40}", role["id"])
    assert role["meta"]["profile"] == [
        "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner-role",
        "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-practitionerrole",
    ]
    assert role["active"] is True
    assert role["practitioner"] == {"reference": "Practitioner/810009876543"}
    assert role["organization"] == {"reference": "Organization/1440000289"}
    assert role["code"] == [
        {
            "coding": [
                {
                    "system": m.nos("TRE_R22-GenreActivite"),
                    "code": "GENR01",
                    "display": "Activité standard",
                }
            ]
        },
        {"coding": [{"system": m.nos("TRE_R23-ModeExercice"), "code": "S", "display": "Salarié"}]},
        {"coding": [{"system": m.nos("TRE_R21-Fonction"), "code": "FON-05", "display": "Adjoint"}]},
        {
            "coding": [
                {
                    "system": m.nos("TRE_R06-SectionTableauCNOP"),
                    "code": "H",
                    "display": "Pharmacien des établissements de santé",
                }
            ]
        },
    ]
    assert "specialty" not in role and "identifier" not in role


def test_medecin_resources_one_role_per_activity_with_its_savoir_faire() -> None:
    resources = m.resources_for_person(MEDECIN_ROWS)
    assert [r["resourceType"] for r in resources] == [
        "Practitioner",
        "Organization",
        "Organization",
        "PractitionerRole",
        "PractitionerRole",
    ]
    organizations = _by_type(resources, "Organization")
    assert [o["id"] for o in organizations] == ["312345678900011", "rass-R10001234567001"]
    roles = _by_type(resources, "PractitionerRole")
    assert {r["organization"]["reference"] for r in roles} == {
        "Organization/312345678900011",
        "Organization/rass-R10001234567001",
    }
    for role in roles:
        assert role["practitioner"] == {"reference": "Practitioner/810001234567"}
        assert role["specialty"] == [
            {
                "coding": [
                    {
                        "system": R97,
                        "code": "DEC02",
                        "display": "Allergologie et Immunologie clinique (DEC)",
                    }
                ]
            },
            {"coding": [{"system": R38, "code": "SM54", "display": "Médecine générale (SM)"}]},
        ]
        assert [c["coding"][0]["code"] for c in role["code"]] == ["GENR01", "L", "FON-01"]
    # rows of one activity that differ only by savoir-faire share the role id
    assert m.practitioner_role_id(MEDECIN_ROWS[0]) == m.practitioner_role_id(MEDECIN_ROWS[1])
    assert m.practitioner_role_id(MEDECIN_ROWS[0]) != m.practitioner_role_id(MEDECIN_ROWS[2])


def test_role_id_depends_on_person_structure_mode_and_fonction() -> None:
    base = m.practitioner_role_id(PHARMACIEN)
    for column, value in (
        (m.IDNAT_PP, "810000000001"),
        (m.ANCIEN_ID_STRUCTURE, "1440000999"),
        (m.MODE, "L"),
        (m.FONCTION, "FON-AU"),
        (m.GENRE, "GENR02"),
    ):
        assert m.practitioner_role_id({**PHARMACIEN, column: value}) != base, column
    # what the activity looks like (labels, phones…) does not change which activity it is
    assert m.practitioner_role_id({**PHARMACIEN, m.TELEPHONE: "0100000000"}) == base
    assert m.practitioner_role_id({**PHARMACIEN, m.FONCTION_LABEL: "Autre libellé"}) == base


def test_unknown_savoir_faire_type_keeps_the_label_as_text() -> None:
    odd = row(
        **{
            **DR_MARTIN,
            m.TYPE_SF: "SH",
            m.TYPE_SF_LABEL: "Spécialité de concours hospitalier",
            m.SF: "XX01",
            m.SF_LABEL: "Libellé inconnu",
        }
    )
    p = m.practitioner([odd])
    assert p["qualification"][1] == {
        "code": {
            "text": "Libellé inconnu",
            "coding": [
                {"system": R04, "code": "SH", "display": "Spécialité de concours hospitalier"}
            ],
        }
    }
    assert m.practitioner_role(odd, p["id"], None)["specialty"] == [{"text": "Libellé inconnu"}]


# --- Validation against the installed guide ---------------------------------------------------
@pytest.fixture(scope="module")
def annuaire_validator(defs: Definitions) -> Validator:
    """The base definitions extended with FR Core (partial build) and the Annuaire guide, as the
    server does when both guides are installed (``Services.refresh``)."""
    conformance = [
        _json(p)
        for guide in ("hl7.fhir.fr.core", "IG-fhir-annuaire")
        for p in sorted((COMPILED / guide).glob("*.json"))
        if _json(p)["resourceType"] in ("StructureDefinition", "ValueSet", "CodeSystem")
    ]
    return Validator(defs.extended(conformance))


def _errors(issues: list[Issue]) -> list[str]:
    return [i.diagnostics for i in issues if i.severity in ("error", "fatal")]


@pytest.mark.parametrize("person", sorted(PERSONS))
def test_resources_conform_to_their_declared_profiles(
    annuaire_validator: Validator, person: str
) -> None:
    for resource in m.resources_for_person(PERSONS[person]):
        profiles = resource["meta"]["profile"]
        issues = annuaire_validator.validate(resource, profiles)
        assert _errors(issues) == [], (resource["resourceType"], resource["id"])
        # every declared Annuaire profile is known (checked, not skipped); only the FR Core
        # practitioner-role is absent from the partial FR Core build (a stub upstream)
        unknown = [i.diagnostics for i in issues if i.code == "not-found"]
        assert all("fr-core-practitioner-role" in d for d in unknown), unknown


def test_the_validator_does_check_the_profiles(annuaire_validator: Validator) -> None:
    p = m.practitioner(MEDECIN_ROWS)
    broken = {**p, "identifier": p["identifier"][:1], "gender": "female"}
    errors = _errors(annuaire_validator.validate(broken, p["meta"]["profile"]))
    assert any("'rpps'" in e for e in errors), errors
    assert any("gender" in e for e in errors), errors  # as-dp-practitioner: gender 0..0


def _authority(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(autorité d'enregistrement code, système d'information) of the data-trace extensions."""
    out = []
    for ext in resource.get("extension", []):
        if ext["url"] == m.DATA_TRACE_URL:
            parts = {e["url"]: e for e in ext["extension"]}
            coding = parts["autorite-enregistrement"]["valueCodeableConcept"]["coding"][0]
            assert coding["system"] == m.nos("TRE_R60-AutoriteEnregistrement")
            system = parts.get("systeme-information", {}).get("valueCode", "")
            out.append((coding["code"], system))
    return out


def test_registration_authority_first_level_on_the_person_last_on_the_activity() -> None:
    """``Autorité d'enregistrement`` (one TRE_R60 code per level) in as-ext-data-trace, what
    the ``data-registration-authority`` search reads."""
    rows = [{**r, "Autorité d'enregistrement": "CNOM/CNOM/ARS"} for r in MEDECIN_ROWS]
    resources = m.resources_for_person(rows)
    (person,) = _by_type(resources, "Practitioner")
    assert _authority(person) == [("CNOM", "RPPS")]
    for role in _by_type(resources, "PractitionerRole"):
        assert _authority(role) == [("ARS", "RPPS")]
    nurse = {**INFIRMIER, "Autorité d'enregistrement": "ARS/ARS/ARS"}  # ADELI only: no RPPS SI
    assert _authority(m.practitioner([nurse])) == [("ARS", "")]
    blank = [{**r, "Autorité d'enregistrement": ""} for r in MEDECIN_ROWS]
    assert all("extension" not in r for r in m.resources_for_person(blank))


def test_what_the_open_data_cannot_give(annuaire_validator: Validator) -> None:
    """Why two resources declare the generic profile rather than the DP one."""
    dp = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
    # An ADELI-only person has no RPPS identifier, which as-dp-practitioner requires (1..1).
    nurse = m.practitioner([INFIRMIER])
    errors = _errors(
        annuaire_validator.validate(nurse, [f"{dp}as-dp-practitioner|1.2.0-snapshot-2"])
    )
    assert errors and all("rpps" in e or "as-dp-canonical" in e for e in errors), errors
    # The extraction publishes no situation d'exercice id (idSituationExercice, 1..1 in
    # as-dp-practitionerrole), and the DP role forbids specialty.
    for resource in _by_type(m.resources_for_person(MEDECIN_ROWS), "PractitionerRole"):
        errors = _errors(annuaire_validator.validate(resource, [f"{dp}as-dp-practitionerrole"]))
        assert any("idSituationExercice" in e for e in errors), errors
        assert any("specialty" in e for e in errors), errors


# --- Determinism and change detection ---------------------------------------------------------
def test_same_rows_in_any_order_give_the_same_resources() -> None:
    first = m.resources_for_person(MEDECIN_ROWS)
    again = m.resources_for_person(list(reversed(MEDECIN_ROWS)))
    assert orjson.dumps(first) == orjson.dumps(again)
    assert [m.content_hash(r) for r in first] == [m.content_hash(r) for r in again]
    for resources in (first, *(m.resources_for_person(rows) for rows in PERSONS.values())):
        for resource in resources:
            assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", resource["id"])


def test_a_changed_phone_changes_the_organization_hash_only() -> None:
    before = m.resources_for_person(MEDECIN_ROWS)
    changed = [
        {**r, m.TELEPHONE: "0240999999"} if r[m.TECHNICAL_ID] == "C12345678900011" else r
        for r in MEDECIN_ROWS
    ]
    after = m.resources_for_person(changed)
    assert [r["id"] for r in before] == [r["id"] for r in after]
    differ = [
        r["id"]
        for r, s in zip(before, after, strict=True)
        if m.content_hash(r) != m.content_hash(s)
    ]
    assert differ == ["312345678900011"]


def test_content_hash_ignores_meta_and_sees_everything_else() -> None:
    p = m.practitioner(MEDECIN_ROWS)
    digest = m.content_hash(p)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert m.content_hash({**p, "meta": {"versionId": "7", "lastUpdated": "2025-01-01"}}) == digest
    assert m.content_hash(dict(reversed(list(p.items())))) == digest  # key order is irrelevant
    assert m.content_hash({**p, "active": False}) != digest
    renamed = {**p, "name": [{**p["name"][0], "family": "MARTIN-DUPONT"}]}
    assert m.content_hash(renamed) != digest
