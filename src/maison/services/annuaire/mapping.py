"""Annuaire Santé open data (``PS_LibreAcces_Personne_activite``) → ANS Annuaire FHIR resources.

One row of the extraction is one *situation d'exercice* (activity) of one person; a person has
as many rows as activities (and, in the files that still carry savoir-faire, as many as
activities x savoir-faire). :func:`resources_for_person` turns all the rows of one person
(same ``Identification nationale PP``) into one Practitioner, the Organizations of the
structures where he works and one PractitionerRole per activity. Everything is pure and
deterministic: the rows are put in a canonical order first, ids are derived from national
identifiers, so the same extraction gives the same resources, byte for byte.

Decisions (sources, and how sure):

* profiles: the public API serves the *Donnée Publique* profiles (``as-dp-*``, listed by the
  guide's ``AsServerDPCapabilityStatement``); the open data is that same public data, so
  Practitioner and Organization declare ``as-dp-practitioner`` / ``as-dp-organization`` (with
  the ``fr-core-*`` canonical they require). Where the open data cannot meet a DP constraint
  the resource declares the generic parent profile instead (same shape, fewer obligations):
  a person known only by ADELI gets ``as-practitioner`` (``as-dp-practitioner`` requires an
  RPPS identifier), and every PractitionerRole gets ``as-practitionerrole``, because
  ``as-dp-practitionerrole`` requires ``identifier[idSituationExercice]`` (the RPPS activity
  id), which the extraction does not publish, and forbids ``specialty``. High confidence.
* savoir-faire: the guide puts it on ``Practitioner.qualification[savoirFaire]`` (type TRE_R04
  + code in the TRE of that type: S → TRE_R38, C → TRE_R39, CEX → TRE_R40, DNQ → TRE_R42,
  CAPA → TRE_R43, PAC → TRE_R44, FQ → TRE_R45, DEC → TRE_R97, OP → TRE_G13, SST → TRE_R359,
  the tables included by JDV_J107-EnsembleSavoirFaire-RASS); it is also copied to
  ``PractitionerRole.specialty`` (allowed by the generic profile) so roles can be searched by
  specialty. Types without a known table (SH, CM) keep the label as ``text``.
* PractitionerRole.code: genre d'activité (TRE_R22), mode d'exercice (TRE_R23), fonction
  (TRE_R21, codes ``FON-*``) and the pharmacists' section (TRE_R06), as the guide's examples;
  the profession stays on the Practitioner (``qualification[exercicePro]``), as in the guide.
* structure: the row describes the *site* (entité géographique): its FINESS is typed FINEG,
  its SIRET/SIREN are typed SIRET/SIREN (system ``https://sirene.fr``, FR Core), its RASS
  technical id (``Identifiant technique de la structure``, e.g. ``F`` + FINESS) is the
  ``rppsRang`` identifier (``https://rppsrang.esante.gouv.fr``, type RPPSRG as in the guide's
  examples). The FINESS of the legal entity identifies another organization: it becomes a
  logical ``partOf`` reference (identifier only), not an identifier of the site.
* IDNST (idNatStruct, ``urn:oid:1.2.250.1.71.4.2.2``): the extraction publishes it as
  ``Ancien identifiant de la structure`` (``1250000700`` for FINESS 250000700, ``3`` + SIRET
  for cabinets); when that cell is empty it is derived (TRE_G07, domain-spec §3.1): ``1`` +
  FINESS site, else ``3`` + SIRET, else ``2`` + SIREN. The ``4`` (cabinet RPPS) and ``0``
  (cabinet ADELI) forms are only known through the published cell: the extraction gives no
  cabinet number to derive them from.
* address: ``line`` entries in postal order (complément destinataire, complément point
  géographique, numéro + indice + type + libellé de voie, mention de distribution), each with
  its ISO 21090 ADXP extensions as in ``as-address-extended``; ``city`` = libellé commune (else
  the bureau cedex without its postal code); INSEE commune code in the FR Core
  ``fr-core-address-insee-code`` extension (TRE_R13-Commune, as the guide's examples).
* an e-mail address under ``mssante.fr`` is an MSSanté mailbox: it carries the FR Core e-mail
  type extension (TRE_R256 MSSANTE) of ``as-mailbox-mss``; the mailbox type (TRE_R257) is not
  in the extraction. High confidence (every MSSanté domain is a sub-domain of mssante.fr).
* a person with rows of two professions gets two ``exercicePro`` qualifications, which the
  profiles cap at 0..1: left visible rather than hidden (one profession per person is the rule).
* ``Autorité d'enregistrement`` (``CNOM/CNOM/CNOM``: one TRE_R60 code per level, the same
  three in every sample seen, the PSC userinfo one included) goes in ``as-ext-data-trace``
  (``autorite-enregistrement``, what ``data-registration-authority`` searches): the first level
  on the Practitioner, the last on the PractitionerRole of the activity; ``systeme-information``
  ``RPPS`` for persons with an RPPS number. Medium confidence on which level is which: the
  published layout does not name them.
* not mapped: the ``Libellé`` columns except as coding ``display``.

https://interop.esante.gouv.fr/ig/fhir/annuaire/
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

Row = Mapping[str, str]
Resource = dict[str, Any]

# --- Column names of PS_LibreAcces_Personne_activite (the ones used here) ----------------------
TYPE_ID_PP = "Type d'identifiant PP"
ID_PP = "Identifiant PP"
IDNAT_PP = "Identification nationale PP"
CIVILITE_EXERCICE = "Code civilité d'exercice"
CIVILITE = "Code civilité"
NOM = "Nom d'exercice"
PRENOM = "Prénom d'exercice"
PROFESSION, PROFESSION_LABEL = "Code profession", "Libellé profession"
CATEGORIE, CATEGORIE_LABEL = "Code catégorie professionnelle", "Libellé catégorie professionnelle"
TYPE_SF, TYPE_SF_LABEL = "Code type savoir-faire", "Libellé type savoir-faire"
SF, SF_LABEL = "Code savoir-faire", "Libellé savoir-faire"
MODE, MODE_LABEL = "Code mode exercice", "Libellé mode exercice"
SIRET = "Numéro SIRET site"
SIREN = "Numéro SIREN site"
FINESS_SITE = "Numéro FINESS site"
FINESS_EJ = "Numéro FINESS établissement juridique"
TECHNICAL_ID = "Identifiant technique de la structure"
RAISON_SOCIALE = "Raison sociale site"
ENSEIGNE = "Enseigne commerciale site"
COMPLEMENT_DESTINATAIRE = "Complément destinataire (coord. structure)"
COMPLEMENT_GEO = "Complément point géographique (coord. structure)"
NUMERO_VOIE = "Numéro Voie (coord. structure)"
INDICE_VOIE = "Indice répétition voie (coord. Structure)"
TYPE_VOIE = "Code type de voie (coord. structure)"
LIBELLE_VOIE = "Libellé Voie (coord. structure)"
MENTION_DISTRIBUTION = "Mention distribution (coord. structure)"
BUREAU_CEDEX = "Bureau cedex (coord. structure)"
CODE_POSTAL = "Code postal (coord. structure)"
CODE_COMMUNE = "Code commune (coord. structure)"
LIBELLE_COMMUNE = "Libellé commune (coord. structure)"
CODE_PAYS = "Code pays (coord. structure)"
TELEPHONE = "Téléphone (coord. structure)"
TELEPHONE_2 = "Téléphone 2 (coord. structure)"
TELECOPIE = "Télécopie (coord. structure)"
EMAIL = "Adresse e-mail (coord. structure)"
CODE_DEPARTEMENT = "Code département (coord. structure)"
ANCIEN_ID_STRUCTURE = "Ancien identifiant de la structure"
AUTORITE = "Autorité d'enregistrement"
SECTEUR, SECTEUR_LABEL = "Code secteur d'activité", "Libellé secteur d'activité"
SECTION_PHARMA, SECTION_PHARMA_LABEL = (
    "Code section tableau pharmaciens",
    "Libellé section tableau pharmaciens",
)
FONCTION, FONCTION_LABEL = "Code fonction", "Libellé fonction"
GENRE, GENRE_LABEL = "Code genre d'activité", "Libellé genre d'activité"

# --- Canonical URLs ------------------------------------------------------------------------------
IG = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
IG_VERSION = "1.2.0-snapshot-2"
FR_CORE = "https://hl7.fr/ig/fhir/core/StructureDefinition/"
SOURCE = "https://annuaire.esante.gouv.fr"
DP_PRACTITIONER = f"{IG}as-dp-practitioner|{IG_VERSION}"
AS_PRACTITIONER = f"{IG}as-practitioner"
DP_ORGANIZATION = f"{IG}as-dp-organization|{IG_VERSION}"
AS_PRACTITIONER_ROLE = f"{IG}as-practitionerrole"
FR_PRACTITIONER = f"{FR_CORE}fr-core-practitioner"
FR_ORGANIZATION = f"{FR_CORE}fr-core-organization"
FR_PRACTITIONER_ROLE = f"{FR_CORE}fr-core-practitioner-role"
INSEE_CODE_URL = f"{FR_CORE}fr-core-address-insee-code"
EMAIL_TYPE_URL = f"{FR_CORE}fr-core-contact-point-email-type"
ORGANIZATION_TYPES_URL = f"{IG}as-ext-organization-types"
ADXP = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-"
DATA_TRACE_URL = f"{IG}as-ext-data-trace"

ID_TYPES = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
ORGANIZATION_TYPE_CS = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-3307"
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
IDNST_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
ADELI_SYSTEM = "https://adeli.esante.gouv.fr"
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
SIRENE_SYSTEM = "https://sirene.fr"
RPPS_RANG_SYSTEM = "https://rppsrang.esante.gouv.fr"

#: Type d'identifiant PP → (identifier system, FR Core identifier type) for ``Identifiant PP``.
PP_IDENTIFIERS = {"8": (RPPS_SYSTEM, "RPPS"), "0": (ADELI_SYSTEM, "ADELI")}

#: Type de savoir-faire (TRE_R04) → the terminology of the savoir-faire code.
SAVOIR_FAIRE_TABLES = {
    "S": "TRE_R38-SpecialiteOrdinale",
    "C": "TRE_R39-Competence",
    "CEX": "TRE_R40-CompetenceExclusive",
    "DNQ": "TRE_R42-DESCnonQualifiant",
    "CAPA": "TRE_R43-CapaciteSavoirFaire",
    "PAC": "TRE_R44-QualificationPAC",
    "FQ": "TRE_R45-FonctionQualifiee",
    "DEC": "TRE_R97-DroitExerciceCompl",
    "OP": "TRE_G13-OrientationParticuliere",
    "SST": "TRE_R359-SurspecialiteTransversale",
}

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_LEADING_POSTAL_CODE = re.compile(r"^\d{5}\s+")
_MSSANTE = re.compile(r"@([A-Za-z0-9-]+\.)*mssante\.fr$", re.IGNORECASE)


def nos(table: str) -> str:
    """The FHIR URL of a NOS terminology (``TRE_R09-CategorieProfessionnelle`` →
    ``https://mos.esante.gouv.fr/NOS/TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-…``).

    https://interop.esante.gouv.fr/ig/nos/
    """
    return f"https://mos.esante.gouv.fr/NOS/{table}/FHIR/{table.replace('_', '-')}"


# --- small builders ----------------------------------------------------------------------------
def _cell(row: Row, column: str) -> str:
    return (row.get(column) or "").strip()


def _coding(table: str, code: str, display: str = "") -> dict[str, str]:
    coding = {"system": nos(table), "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(row: Row, table: str, column: str, label: str) -> dict[str, Any] | None:
    code = _cell(row, column)
    return {"coding": [_coding(table, code, _cell(row, label))]} if code else None


def _identifier(system: str, type_code: str, value: str) -> dict[str, Any]:
    return {
        "use": "official",
        "type": {"coding": [{"system": ID_TYPES, "code": type_code}]},
        "system": system,
        "value": value,
    }


def _fhir_id(value: str, prefix: str = "") -> str:
    """``prefix + value`` when that is a valid FHIR id, else ``prefix`` + a hash of ``value``."""
    candidate = f"{prefix}{value}"
    if _FHIR_ID.fullmatch(candidate):
        return candidate
    return f"{prefix}h{hashlib.sha256(value.encode()).hexdigest()[:40]}"


def _canonical(rows: Sequence[Row]) -> list[Row]:
    """The rows in an order that does not depend on the extraction's."""
    if len(rows) < 2:  # most persons have one activity: no sort key to build
        return list(rows)
    # the values in column-name order (the rows of one extraction share their columns)
    columns = sorted(set().union(*rows))
    return sorted(rows, key=lambda r: tuple(r.get(c) or "" for c in columns))


def data_trace(row: Row, level: int, rpps: bool) -> dict[str, Any] | None:
    """The ``as-ext-data-trace`` extension from one level (0 first, -1 last) of the row's
    ``Autorité d'enregistrement`` (TRE_R60), None when that level is empty.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-ext-data-trace.html
    """
    levels = [part.strip() for part in _cell(row, AUTORITE).split("/")]
    code = levels[level] if levels else ""
    if not code:
        return None
    parts: list[dict[str, Any]] = [
        {
            "url": "autorite-enregistrement",
            "valueCodeableConcept": {"coding": [_coding("TRE_R60-AutoriteEnregistrement", code)]},
        }
    ]
    if rpps:
        parts.append({"url": "systeme-information", "valueCode": "RPPS"})
    return {"url": DATA_TRACE_URL, "extension": parts}


# --- Practitioner ------------------------------------------------------------------------------
def idnps(row: Row) -> str:
    """The national PS identifier of a row: the published cell, else ``8`` + RPPS / ``0`` + ADELI.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-practitioner.html
    """
    value = _cell(row, IDNAT_PP)
    if value:
        return value
    kind, number = _cell(row, TYPE_ID_PP), _cell(row, ID_PP)
    if kind in PP_IDENTIFIERS and number:
        return kind + number
    raise ValueError("row without Identification nationale PP")


def practitioner_id(row: Row) -> str:
    """The Practitioner id: the IDNPS itself (a hash of it if it is not a valid FHIR id).

    https://hl7.org/fhir/R4/datatypes.html#id
    """
    return _fhir_id(idnps(row))


def _savoir_faire(row: Row) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(qualification code, role specialty) of the row's savoir-faire, if any."""
    kind, code, label = _cell(row, TYPE_SF), _cell(row, SF), _cell(row, SF_LABEL)
    if not code:
        return None, None
    table = SAVOIR_FAIRE_TABLES.get(kind)
    codings = []
    if kind:
        codings.append(_coding("TRE_R04-TypeSavoirFaire", kind, _cell(row, TYPE_SF_LABEL)))
    if table is None:
        qualification: dict[str, Any] = {"text": label or code}
        if codings:
            qualification["coding"] = codings
        return qualification, {"text": label or code}
    coding = _coding(table, code, label)
    return {"coding": [*codings, coding]}, {"coding": [coding]}


def practitioner(rows: Sequence[Row]) -> Resource:
    """The Practitioner (exercice professionnel) of one person, from all his rows.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-dp-practitioner.html
    """
    if not rows:
        raise ValueError("a Practitioner needs at least one row")
    ordered = _canonical(rows)
    national = idnps(ordered[0])
    if any(idnps(r) != national for r in ordered):
        raise ValueError("rows of several persons (different Identification nationale PP)")
    first = ordered[0]
    identifiers = [_identifier(IDNPS_SYSTEM, "IDNPS", national)]
    kind, number = _cell(first, TYPE_ID_PP), _cell(first, ID_PP)
    if kind in PP_IDENTIFIERS and number:
        system, type_code = PP_IDENTIFIERS[kind]
        identifiers.append(_identifier(system, type_code, number))
    has_rpps = any(i["system"] == RPPS_SYSTEM for i in identifiers)
    resource: Resource = {
        "resourceType": "Practitioner",
        "id": practitioner_id(first),
        "meta": {
            "source": SOURCE,
            "profile": [FR_PRACTITIONER, DP_PRACTITIONER if has_rpps else AS_PRACTITIONER],
        },
        "language": "fr",
        "identifier": identifiers,
        "active": True,
    }
    trace = data_trace(first, 0, has_rpps)
    if trace is not None:
        resource["extension"] = [trace]
    named = next((r for r in ordered if _cell(r, NOM) or _cell(r, PRENOM)), None)
    if named is not None:
        name: dict[str, Any] = {"use": "usual"}
        if _cell(named, NOM):
            name["family"] = _cell(named, NOM)
        if _cell(named, PRENOM):
            name["given"] = [_cell(named, PRENOM)]
        if _cell(named, CIVILITE):
            name["prefix"] = [_cell(named, CIVILITE)]
        if _cell(named, CIVILITE_EXERCICE):
            name["suffix"] = [_cell(named, CIVILITE_EXERCICE)]
        resource["name"] = [name]
    professions: dict[tuple[str, str], dict[str, Any]] = {}
    savoir_faire: dict[tuple[str, str], dict[str, Any]] = {}
    for row in ordered:
        profession, category = _cell(row, PROFESSION), _cell(row, CATEGORIE)
        codings = []
        if profession:
            codings.append(
                _coding("TRE_G15-ProfessionSante", profession, _cell(row, PROFESSION_LABEL))
            )
        if category:
            codings.append(
                _coding("TRE_R09-CategorieProfessionnelle", category, _cell(row, CATEGORIE_LABEL))
            )
        if codings:
            professions.setdefault((profession, category), {"code": {"coding": codings}})
        code, _ = _savoir_faire(row)
        if code is not None:
            savoir_faire.setdefault((_cell(row, TYPE_SF), _cell(row, SF)), {"code": code})
    qualifications = list(professions.values()) + list(savoir_faire.values())
    if qualifications:
        resource["qualification"] = qualifications
    return resource


# --- Organization ------------------------------------------------------------------------------
def idnst(row: Row) -> str | None:
    """The structure's idNatStruct: the published ``Ancien identifiant de la structure``, else
    ``1`` + FINESS site, ``3`` + SIRET or ``2`` + SIREN (TRE_G07); ``None`` without any.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-organization.html
    """
    published = _cell(row, ANCIEN_ID_STRUCTURE)
    if published:
        return published
    for prefix, column in (("1", FINESS_SITE), ("3", SIRET), ("2", SIREN)):
        if _cell(row, column):
            return prefix + _cell(row, column)
    return None


def structure_key(row: Row) -> str | None:
    """The key of the row's structure (``idnst:…`` or ``rass:…`` for the RASS technical id),
    ``None`` when the row names no identified structure.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-organization.html
    """
    national = idnst(row)
    if national:
        return f"idnst:{national}"
    technical = _cell(row, TECHNICAL_ID)
    return f"rass:{technical}" if technical else None


def organization_id(row: Row) -> str | None:
    """The Organization id of the row's structure: its IDNST, else ``rass-`` + technical id.

    https://hl7.org/fhir/R4/datatypes.html#id
    """
    key = structure_key(row)
    if key is None:
        return None
    kind, value = key.split(":", 1)
    return _fhir_id(value) if kind == "idnst" else _fhir_id(value, "rass-")


def _line(text: str, parts: list[tuple[str, str]]) -> tuple[str, dict[str, Any]]:
    return text, {"extension": [{"url": ADXP + part, "valueString": v} for part, v in parts]}


def address(row: Row) -> dict[str, Any] | None:
    """The structure's address (``as-address-extended``), ``None`` when the row has none.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-address-extended.html
    """
    lines: list[tuple[str, dict[str, Any]]] = []
    # "Complément destinataire" names the recipient of one activity (a service, a person): it
    # is not the shared structure's, so it stays off the Organization (else whichever activity
    # is read first would decide it, and an unrelated departure would change the hospital)
    for column, part in ((COMPLEMENT_GEO, "additionalLocator"),):
        if _cell(row, column):
            lines.append(_line(_cell(row, column), [(part, _cell(row, column))]))
    street = [
        (part, _cell(row, column))
        for column, part in (
            (NUMERO_VOIE, "houseNumber"),
            (INDICE_VOIE, "buildingNumberSuffix"),
            (TYPE_VOIE, "streetNameType"),
            (LIBELLE_VOIE, "streetNameBase"),
        )
        if _cell(row, column)
    ]
    if street:
        lines.append(_line(" ".join(v for _, v in street), street))
    if _cell(row, MENTION_DISTRIBUTION):
        mention = _cell(row, MENTION_DISTRIBUTION)
        lines.append(_line(mention, [("postBox", mention)]))
    out: dict[str, Any] = {}
    if _cell(row, CODE_COMMUNE):
        out["extension"] = [
            {
                "url": INSEE_CODE_URL,
                "valueCoding": _coding("TRE_R13-Commune", _cell(row, CODE_COMMUNE)),
            }
        ]
    if lines:
        out["line"] = [text for text, _ in lines]
        out["_line"] = [ext for _, ext in lines]
    city = _cell(row, LIBELLE_COMMUNE) or _LEADING_POSTAL_CODE.sub("", _cell(row, BUREAU_CEDEX))
    for key, value in (
        ("city", city),
        ("district", _cell(row, CODE_DEPARTEMENT)),
        ("postalCode", _cell(row, CODE_POSTAL)),
        ("country", _cell(row, CODE_PAYS)),
    ):
        if value:
            out[key] = value
    if not out:
        return None
    last = _cell(row, BUREAU_CEDEX) or " ".join(
        v for v in (_cell(row, CODE_POSTAL), _cell(row, LIBELLE_COMMUNE)) if v
    )
    text = ", ".join([*(t for t, _ in lines), *([last] if last else [])])
    if text:
        out["text"] = text
    return out


def _telecom(row: Row) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for column, system, rank in (
        (TELEPHONE, "phone", 1),
        (TELEPHONE_2, "phone", 2),
        (TELECOPIE, "fax", None),
        (EMAIL, "email", None),
    ):
        value = _cell(row, column)
        if not value or (system, value) in seen:
            continue
        seen.add((system, value))
        point: dict[str, Any] = {"system": system, "value": value}
        if rank is not None:
            point["rank"] = rank
        if system == "email" and _MSSANTE.search(value):
            point["extension"] = [
                {
                    "url": EMAIL_TYPE_URL,
                    "valueCoding": _coding("TRE_R256-TypeMessagerie", "MSSANTE"),
                }
            ]
        out.append(point)
    return out


def organization_type(slice_name: str, coding: dict[str, str]) -> dict[str, Any]:
    """An ``Organization.type`` in the slice ``slice_name`` of ``as-organization`` (the
    as-ext-organization-types extension names it).

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-organization.html
    """
    return {
        "extension": [{"url": ORGANIZATION_TYPES_URL, "valueCode": slice_name}],
        "coding": [coding],
    }


#: The type every site (entité géographique) carries.
GEOGRAPHICAL_ENTITY: Final = organization_type(
    "organizationType", {"system": ORGANIZATION_TYPE_CS, "code": "GEOGRAPHICAL-ENTITY"}
)


def _organization_types(row: Row) -> list[dict[str, Any]]:
    typed = organization_type
    types = [copy.deepcopy(GEOGRAPHICAL_ENTITY)]
    if _cell(row, SECTEUR):
        sector = _coding("TRE_R02-SecteurActivite", _cell(row, SECTEUR), _cell(row, SECTEUR_LABEL))
        types.append(typed("secteurActiviteRASS", sector))
    return types


def organization(row: Row) -> Resource | None:
    """The structure (entité géographique) of the row's activity, ``None`` without structure.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-dp-organization.html
    """
    oid = organization_id(row)
    if oid is None:
        return None
    identifiers = []
    national = idnst(row)
    if national:
        identifiers.append(_identifier(IDNST_SYSTEM, "IDNST", national))
    for column, system, type_code in (
        (FINESS_SITE, FINESS_SYSTEM, "FINEG"),
        (SIRET, SIRENE_SYSTEM, "SIRET"),
        (SIREN, SIRENE_SYSTEM, "SIREN"),
        (TECHNICAL_ID, RPPS_RANG_SYSTEM, "RPPSRG"),
    ):
        if _cell(row, column):
            identifiers.append(_identifier(system, type_code, _cell(row, column)))
    resource: Resource = {
        "resourceType": "Organization",
        "id": oid,
        "meta": {"source": SOURCE, "profile": [FR_ORGANIZATION, DP_ORGANIZATION]},
        "language": "fr",
        "identifier": identifiers,
        "active": True,
        "type": _organization_types(row),
    }
    if _cell(row, RAISON_SOCIALE):
        resource["name"] = _cell(row, RAISON_SOCIALE)
    if _cell(row, ENSEIGNE):
        resource["alias"] = [_cell(row, ENSEIGNE)]
    telecom = _telecom(row)
    if telecom:
        resource["telecom"] = telecom
    place = address(row)
    if place is not None:
        resource["address"] = [place]
    legal = _cell(row, FINESS_EJ)
    if legal and legal != _cell(row, FINESS_SITE):
        resource["partOf"] = {"identifier": _identifier(FINESS_SYSTEM, "FINEJ", legal)}
    return resource


# --- PractitionerRole --------------------------------------------------------------------------
def _fonction(row: Row) -> dict[str, Any] | None:
    code, label = _cell(row, FONCTION), _cell(row, FONCTION_LABEL)
    if not code:
        return None
    if code.startswith("FON-"):
        return {"coding": [_coding("TRE_R21-Fonction", code, label)]}
    return {"text": label or code}


def practitioner_role_id(row: Row) -> str:
    """The PractitionerRole id: a hash of (IDNPS, structure, mode, fonction, genre, section),
    so that re-importing the same activity gives the same id.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-practitionerrole.html
    """
    parts = [
        idnps(row),
        structure_key(row) or "",
        *(_cell(row, c) for c in (MODE, FONCTION, GENRE, SECTION_PHARMA)),
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"pr-{digest[:40]}"


def practitioner_role(row: Row, practitioner_id: str, organization_id: str | None) -> Resource:
    """The PractitionerRole (situation d'exercice) of one row.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-practitionerrole.html
    """
    resource: Resource = {
        "resourceType": "PractitionerRole",
        "id": practitioner_role_id(row),
        "meta": {"source": SOURCE, "profile": [FR_PRACTITIONER_ROLE, AS_PRACTITIONER_ROLE]},
        "language": "fr",
        "active": True,
        "practitioner": {"reference": f"Practitioner/{practitioner_id}"},
    }
    trace = data_trace(row, -1, _cell(row, TYPE_ID_PP) == "8")
    if trace is not None:
        resource["extension"] = [trace]
    if organization_id is not None:
        resource["organization"] = {"reference": f"Organization/{organization_id}"}
    codes = [
        _concept(row, "TRE_R22-GenreActivite", GENRE, GENRE_LABEL),
        _concept(row, "TRE_R23-ModeExercice", MODE, MODE_LABEL),
        _fonction(row),
        _concept(row, "TRE_R06-SectionTableauCNOP", SECTION_PHARMA, SECTION_PHARMA_LABEL),
    ]
    present = [c for c in codes if c is not None]
    if present:
        resource["code"] = present
    _, specialty = _savoir_faire(row)
    if specialty is not None:
        resource["specialty"] = [specialty]
    return resource


def _merge_role(into: Resource, other: Resource) -> None:
    """Rows of one activity that differ only by savoir-faire: union of the specialties."""
    for specialty in other.get("specialty", []):
        if specialty not in into.setdefault("specialty", []):
            into["specialty"].append(specialty)


def resources_for_person(rows: Sequence[Row]) -> list[Resource]:
    """Practitioner, the Organizations (once each) and the PractitionerRoles of one person.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-dp-practitioner.html
    """
    ordered = _canonical(rows)
    person = practitioner(ordered)
    organizations: dict[str, Resource] = {}
    roles: dict[str, Resource] = {}
    for row in ordered:
        structure = organization(row)
        if structure is not None:
            organizations.setdefault(structure["id"], structure)
        role = practitioner_role(row, person["id"], structure["id"] if structure else None)
        if role["id"] in roles:
            _merge_role(roles[role["id"]], role)
        else:
            roles[role["id"]] = role
    return [
        person,
        *(organizations[k] for k in sorted(organizations)),
        *(roles[k] for k in sorted(roles)),
    ]


def content_hash(resource: Mapping[str, Any]) -> str:
    """A stable SHA-256 of the resource without ``meta``: equal hashes mean unchanged content.

    https://hl7.org/fhir/R4/resource.html#Meta
    """
    body = {k: v for k, v in resource.items() if k != "meta"}
    # the bytes of json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False), 14x
    # faster: the importer hashes every resource of the extraction on every run
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
