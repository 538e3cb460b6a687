"""The professional context of a request: who (IDNPS, RPPS/ADELI, names), which profession and
savoir-faire, which activity (structure, secteur, rôle), at which level of assurance.

It is read from a Pro Santé Connect userinfo (:func:`from_userinfo`), built the other way from
the Annuaire Santé FHIR resources for the local PSC-compatible provider (:func:`userinfo_for`),
and cross-checked with the Annuaire (:func:`check_against_annuaire`). Pure: no I/O.

Decisions (and how sure):

* claim names and shapes are those of the PSC sandbox userinfo
  (``../shared/domain/data/psc/userinfo-example-bas.json``): ``SubjectNameID`` is the IDNPS,
  ``SubjectRefPro.exercices[]`` one per profession with its ``activities[]``. Medium confidence
  (a third-party fixture, not the official page).
* RPPS and ADELI come from the IDNPS (``8`` + RPPS, ``0`` + ADELI; domain-spec §3.1), else from
  ``otherIds`` entries whose ``origine`` is ``RPPS`` / ``ADELI``. High confidence on the first,
  low on the ``origine`` names (the sample only shows ``EDIT``).
* level of assurance: the ``acr`` claim when present (``eidas1`` is the only value PSC
  announces), else derived from ``Palier_Authentification``: ``APPPRIP3`` (the code every PSC
  sample carries, CPS or e-CPS) is read as ``eidas1``. Other codes give no level. Medium
  confidence: the table of paliers is not published next to the userinfo doc.
* ``codeRole`` is the fonction (TRE_R21, ``FON-*``) of the activity, which the Annuaire puts in
  ``PractitionerRole.code``; ``SubjectRole`` holds ``profession^OID`` (TRE_G15), one per
  exercice. Medium confidence.
* an activity is chosen by its index (0-based) in the order of ``exercices[].activities[]``;
  with exactly one, it is chosen; without any, the context is refused (no structure, no
  secteur: nothing an access decision could rest on).

https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

# --- identifiers and terminologies (the Annuaire's, kept in step with its mapping) -------------
IDNPS_SYSTEM: Final = "urn:oid:1.2.250.1.71.4.2.1"
RPPS_SYSTEM: Final = "https://rpps.esante.gouv.fr"
ADELI_SYSTEM: Final = "https://adeli.esante.gouv.fr"
#: OID suffixes of the userinfo's ``code^OID`` claims, as PSC sends them.
PROFESSION_OID: Final = "1.2.250.1.213.1.1.5.5"
SECTEUR_OID: Final = "1.2.250.1.71.4.2.4"
PALIER_OID: Final = "1.2.250.1.213.1.5.1.1.1"
PSI_LOCALE: Final = "1.2.250.1.213.1.3.1.1"
#: The palier PSC gives to CPS and e-CPS authentications (every sample seen).
STRONG_PALIER: Final = "APPPRIP3"
#: ``Palier_Authentification`` code → eIDAS level of assurance (``acr``).
PALIER_ACR: Final = {STRONG_PALIER: "eidas1"}

_NOS_TABLE = re.compile(r"/NOS/(T[A-Z]{2}_[A-Z]?\d+)-")
_ADXP = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-"
_INSEE_CODE_URL = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
_ORGANIZATION_TYPES_URL = (
    "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-organization-types"
)


class ProfessionalContextError(ValueError):
    """The userinfo cannot give a professional context, or the Annuaire refuses it.

    https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        #: invalid (malformed userinfo), choice (an activity must be chosen), unknown,
        #: inactive, activity (the chosen activity is not an active one in the Annuaire)
        self.reason = reason


@dataclass(frozen=True)
class Activity:
    """One situation d'exercice offered by PSC (``exercices[].activities[]``) with its
    exercice's profession.

    https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
    """

    index: int  # 0-based, in the userinfo's order: what --activity / activity= takes
    profession: str | None  # TRE_G15 (codeProfession of the exercice)
    category: str | None  # TRE_R09 (codeCategorieProfessionnelle)
    savoir_faire_type: str | None  # TRE_R04
    savoir_faire: str | None  # code in the table of that type
    mode: str | None  # TRE_R23 (L, S, B)
    secteur: str | None  # TRE_R02 (SA07…)
    role: str | None  # TRE_R21 fonction (codeRole)
    genre: str | None  # TRE_R22 (GENR01…)
    section_pharmacien: str | None  # TRE_R06
    finess_site: str | None
    finess_ej: str | None
    siret: str | None
    siren: str | None
    rass_id: str | None  # identifiantTechniqueDeLaStructure
    idnst: str | None  # ancienIdentifiantDeLaStructure
    name: str | None  # raisonSocialeSite
    postal_code: str | None = None
    city: str | None = None  # bureauCedex
    civility_of_practice: str | None = None  # codeCiviliteDexercice of the exercice

    def describe(self) -> str:
        """One line naming the activity (index, structure, secteur, rôle), for messages."""
        structure = self.name or self.idnst or self.rass_id or "sans structure"
        parts = [f"{self.index}: {structure}"]
        for label, value in (
            ("secteur", self.secteur),
            ("rôle", self.role),
            ("mode", self.mode),
            ("profession", self.profession),
        ):
            if value:
                parts.append(f"{label} {value}")
        return ", ".join(parts)


@dataclass(frozen=True)
class OtherId:
    """An entry of the userinfo's ``otherIds``."""

    identifier: str
    origin: str | None
    quality: int | None


@dataclass(frozen=True)
class ProfessionalContext:
    """Who the professional is, which activity he acts in, and how he authenticated.

    https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
    """

    national_id: str  # IDNPS (SubjectNameID)
    rpps: str | None
    adeli: str | None
    subject: str | None  # sub
    family_name: str | None
    given_name: str | None
    civility: str | None  # codeCivilite
    activity: Activity  # the chosen one; its profession, savoir-faire and structure
    activities: tuple[Activity, ...]  # every activity PSC offered
    acr: str | None  # level of assurance (eidas1)
    authentication_level: str | None  # Palier_Authentification code (APPPRIP3)
    other_ids: tuple[OtherId, ...] = ()

    @property
    def civility_of_practice(self) -> str | None:
        """codeCiviliteDexercice (DR, PR…) of the chosen activity's exercice."""
        return self.activity.civility_of_practice

    @property
    def profession(self) -> str | None:
        """TRE_G15 profession of the chosen activity's exercice."""
        return self.activity.profession

    @property
    def category(self) -> str | None:
        """TRE_R09 category of the chosen activity's exercice."""
        return self.activity.category

    @property
    def savoir_faire(self) -> tuple[str | None, str | None]:
        """(TRE_R04 type, code) of the chosen activity's exercice."""
        return self.activity.savoir_faire_type, self.activity.savoir_faire


# --- userinfo → context ------------------------------------------------------------------------
def _text(value: Any, where: str) -> str | None:
    """A string claim, None when absent or empty; anything else is malformed."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or _huge(value):
        raise ProfessionalContextError(
            f"malformed userinfo: {where} must be a string, not {type(value).__name__}"
        )
    text = str(value).strip()
    return text or None


def _huge(value: str | int) -> bool:
    """An integer too long to be a code (and to print: Python limits int→str digits)."""
    return isinstance(value, int) and not -(10**64) < value < 10**64


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProfessionalContextError(
            f"malformed userinfo: {where} must be an object, not {type(value).__name__}"
        )
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ProfessionalContextError(
            f"malformed userinfo: {where} must be a list, not {type(value).__name__}"
        )
    return value


def _code(value: Any, where: str) -> str | None:
    """The code of a ``code^OID`` claim."""
    text = _text(value, where)
    return text.split("^", 1)[0].strip() or None if text else None


def _activities(claims: Mapping[str, Any]) -> list[Activity]:
    ref_pro = claims.get("SubjectRefPro")
    if ref_pro is None:
        return []
    ref = _object(ref_pro, "SubjectRefPro")
    out: list[Activity] = []
    for e, raw_exercice in enumerate(_list(ref.get("exercices"), "SubjectRefPro.exercices")):
        where = f"SubjectRefPro.exercices[{e}]"
        exercice = _object(raw_exercice, where)
        common = {
            "profession": _text(exercice.get("codeProfession"), f"{where}.codeProfession"),
            "category": _text(
                exercice.get("codeCategorieProfessionnelle"),
                f"{where}.codeCategorieProfessionnelle",
            ),
            "savoir_faire_type": _text(
                exercice.get("codeTypeSavoirFaire"), f"{where}.codeTypeSavoirFaire"
            ),
            "savoir_faire": _text(exercice.get("codeSavoirFaire"), f"{where}.codeSavoirFaire"),
            "civility_of_practice": _text(
                exercice.get("codeCiviliteDexercice"), f"{where}.codeCiviliteDexercice"
            ),
        }
        for a, raw_activity in enumerate(_list(exercice.get("activities"), f"{where}.activities")):
            at = f"{where}.activities[{a}]"
            act = _object(raw_activity, at)

            def cell(name: str, act: Mapping[str, Any] = act, at: str = at) -> str | None:
                return _text(act.get(name), f"{at}.{name}")

            out.append(
                Activity(
                    index=len(out),
                    **common,
                    mode=cell("codeModeExercice"),
                    secteur=cell("codeSecteurDactivite"),
                    role=cell("codeRole"),
                    genre=cell("codeGenreActivite"),
                    section_pharmacien=cell("codeSectionPharmacien"),
                    finess_site=cell("numeroFinessSite"),
                    finess_ej=cell("numeroFinessetablissementJuridique"),
                    siret=cell("numeroSiretSite"),
                    siren=cell("numeroSirenSite"),
                    rass_id=cell("identifiantTechniqueDeLaStructure"),
                    idnst=cell("ancienIdentifiantDeLaStructure"),
                    name=cell("raisonSocialeSite"),
                    postal_code=cell("codePostal"),
                    city=cell("bureauCedex"),
                )
            )
    return out


def _other_ids(claims: Mapping[str, Any]) -> tuple[OtherId, ...]:
    out = []
    for i, raw in enumerate(_list(claims.get("otherIds"), "otherIds")):
        entry = _object(raw, f"otherIds[{i}]")
        identifier = _text(entry.get("identifiant"), f"otherIds[{i}].identifiant")
        if identifier is None:
            continue
        quality = entry.get("qualite")
        if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int)):
            raise ProfessionalContextError(
                f"malformed userinfo: otherIds[{i}].qualite must be an integer"
            )
        origin = _text(entry.get("origine"), f"otherIds[{i}].origine")
        out.append(OtherId(identifier, origin, quality))
    return tuple(out)


def choose_activity(activities: Sequence[Activity], activity: int | None, who: str) -> Activity:
    """The activity to act in: the one given by index, or the only one.

    https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
    """
    listing = "; ".join(a.describe() for a in activities)
    if not activities:
        raise ProfessionalContextError(
            f"the professional {who} has no activity (SubjectRefPro.exercices[].activities[] "
            "is empty): an activity in a structure is needed to act",
            "choice",
        )
    if activity is None:
        if len(activities) == 1:
            return activities[0]
        raise ProfessionalContextError(
            f"the professional {who} has {len(activities)} activities: choose one by its "
            f"number (activity=N, --activity N): {listing}",
            "choice",
        )
    if isinstance(activity, bool) or not isinstance(activity, int):
        raise ProfessionalContextError(f"the activity number must be an integer, not {activity!r}")
    if not 0 <= activity < len(activities):
        raise ProfessionalContextError(
            f"no activity {activity} for the professional {who}: the numbers are 0 to "
            f"{len(activities) - 1}: {listing}",
            "choice",
        )
    return activities[activity]


def from_userinfo(claims: Mapping[str, Any], activity: int | None = None) -> ProfessionalContext:
    """The professional context of a PSC userinfo, in the activity chosen by its index.

    Raises :class:`ProfessionalContextError` (never anything else) on malformed claims, or when
    the activity is not chosen among several, or out of range.
    https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
    """
    body = _object(claims, "the userinfo")
    national = _text(body.get("SubjectNameID"), "SubjectNameID")
    if national is None:
        raise ProfessionalContextError(
            "malformed userinfo: no SubjectNameID (the national id of the professional, IDNPS)"
        )
    # every claim checked first: a malformed userinfo is "invalid", whatever the choice
    activities = _activities(body)
    other_ids = _other_ids(body)
    rpps = national[1:] if national.startswith("8") and len(national) > 1 else None
    adeli = national[1:] if national.startswith("0") and len(national) > 1 else None
    for other in other_ids:
        origin = (other.origin or "").upper()
        if rpps is None and origin == "RPPS":
            rpps = other.identifier
        if adeli is None and origin == "ADELI":
            adeli = other.identifier
    palier = _code(body.get("Palier_Authentification"), "Palier_Authentification")
    acr = _text(body.get("acr"), "acr") or PALIER_ACR.get(palier or "")
    for i, role in enumerate(_list(body.get("SubjectRole"), "SubjectRole")):
        _text(role, f"SubjectRole[{i}]")
    names = {
        key: _text(body.get(claim), claim)
        for key, claim in (
            ("subject", "sub"),
            ("family_name", "family_name"),
            ("given_name", "given_name"),
            ("civility", "codeCivilite"),
        )
    }
    chosen = choose_activity(activities, activity, national)
    return ProfessionalContext(
        national_id=national,
        rpps=rpps,
        adeli=adeli,
        **names,
        activity=chosen,
        activities=tuple(activities),
        acr=acr,
        authentication_level=palier,
        other_ids=other_ids,
    )


# --- Annuaire resources → userinfo -------------------------------------------------------------
def _nos_table(system: Any) -> str | None:
    """``TRE_R22`` for ``https://mos.esante.gouv.fr/NOS/TRE_R22-GenreActivite/FHIR/…``."""
    match = _NOS_TABLE.search(system) if isinstance(system, str) else None
    return match.group(1) if match else None


def _codings(concept: Any) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, Mapping)]


def _coded(concepts: Any, table: str) -> str:
    """The first code of ``table`` among the codings of ``concepts`` ('' if none)."""
    for concept in concepts or []:
        for coding in _codings(concept):
            if _nos_table(coding.get("system")) == table and coding.get("code"):
                return str(coding["code"])
    return ""


def _identifier(resource: Mapping[str, Any], type_code: str, system: str | None = None) -> str:
    for ident in resource.get("identifier") or []:
        types = {str(c.get("code")) for c in _codings(ident.get("type"))}
        if (type_code in types or (system is not None and ident.get("system") == system)) and (
            ident.get("value")
        ):
            return str(ident["value"])
    return ""


def _address_cells(organization: Mapping[str, Any]) -> dict[str, str]:
    cells = dict.fromkeys(
        (
            "complementPointGeographique",
            "numeroVoie",
            "indiceRepetitionVoie",
            "codeTypeDeVoie",
            "libelleVoie",
            "mentionDistribution",
            "bureauCedex",
            "codePostal",
            "codeCommune",
            "codePays",
            "codeDepartement",
        ),
        "",
    )
    addresses = organization.get("address") or []
    if not addresses or not isinstance(addresses[0], Mapping):
        return cells
    place = addresses[0]
    parts = {
        "additionalLocator": "complementPointGeographique",
        "houseNumber": "numeroVoie",
        "buildingNumberSuffix": "indiceRepetitionVoie",
        "streetNameType": "codeTypeDeVoie",
        "streetNameBase": "libelleVoie",
        "postBox": "mentionDistribution",
    }
    for line in place.get("_line") or []:
        for ext in (line or {}).get("extension") or []:
            url = str(ext.get("url", ""))
            if url.startswith(_ADXP) and url[len(_ADXP) :] in parts:
                cells[parts[url[len(_ADXP) :]]] = str(ext.get("valueString", ""))
    for ext in place.get("extension") or []:
        if ext.get("url") == _INSEE_CODE_URL:
            cells["codeCommune"] = str((ext.get("valueCoding") or {}).get("code", ""))
    cells["codePostal"] = str(place.get("postalCode", ""))
    cells["codePays"] = str(place.get("country", ""))
    cells["codeDepartement"] = str(place.get("district", ""))
    cells["bureauCedex"] = " ".join(v for v in (cells["codePostal"], place.get("city", "")) if v)
    return cells


def _telecom_cells(organization: Mapping[str, Any]) -> dict[str, str]:
    cells = dict.fromkeys(("telephone", "telephone2", "telecopie", "adresseEMail"), "")
    for point in organization.get("telecom") or []:
        system, value = point.get("system"), str(point.get("value", ""))
        if system == "phone":
            key = "telephone2" if point.get("rank") == 2 else "telephone"
            cells[key] = cells[key] or value
        elif system == "fax":
            cells["telecopie"] = cells["telecopie"] or value
        elif system == "email":
            cells["adresseEMail"] = cells["adresseEMail"] or value
    return cells


def _secteur(organization: Mapping[str, Any]) -> str:
    return _coded(organization.get("type"), "TRE_R02")


def _organization_of(
    role: Mapping[str, Any], organizations: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any]:
    reference = str((role.get("organization") or {}).get("reference", ""))
    if not reference:
        return {}
    local = reference.rsplit("/", 1)[-1]
    return organizations.get(reference) or organizations.get(local) or {}


def _activity_claims(role: Mapping[str, Any], organization: Mapping[str, Any]) -> dict[str, Any]:
    codes = role.get("code")
    part_of = (organization.get("partOf") or {}).get("identifier") or {}
    alias = organization.get("alias") or [""]
    return {
        "codeModeExercice": _coded(codes, "TRE_R23"),
        "codeSecteurDactivite": _secteur(organization),
        "codeSectionPharmacien": _coded(codes, "TRE_R06"),
        "codeRole": _coded(codes, "TRE_R21"),
        "codeGenreActivite": _coded(codes, "TRE_R22"),
        "numeroSiretSite": _identifier(organization, "SIRET"),
        "numeroSirenSite": _identifier(organization, "SIREN"),
        "numeroFinessSite": _identifier(organization, "FINEG"),
        "numeroFinessetablissementJuridique": str(part_of.get("value", "")),
        "identifiantTechniqueDeLaStructure": _identifier(organization, "RPPSRG"),
        "raisonSocialeSite": str(organization.get("name", "")),
        "enseigneCommercialeSite": str(alias[0]),
        "complementDestinataire": "",
        **_address_cells(organization),
        **_telecom_cells(organization),
        "ancienIdentifiantDeLaStructure": _identifier(organization, "IDNST"),
        "autoriteDenregistrement": "",
    }


def _qualifications(practitioner: Mapping[str, Any]) -> tuple[list[tuple[str, str]], str, str]:
    """([(profession, category)], savoir-faire type, savoir-faire code) of the Practitioner."""
    professions: list[tuple[str, str]] = []
    sf_type = sf_code = ""
    for qualification in practitioner.get("qualification") or []:
        codings = _codings((qualification or {}).get("code"))
        tables = {_nos_table(c.get("system")): str(c.get("code", "")) for c in codings}
        if "TRE_G15" in tables:
            professions.append((tables["TRE_G15"], tables.get("TRE_R09", "")))
        elif "TRE_R04" in tables and not sf_type:
            sf_type = tables["TRE_R04"]
            sf_code = next((v for k, v in tables.items() if k not in ("TRE_R04", None)), "")
    return professions, sf_type, sf_code


def userinfo_for(
    practitioner: Mapping[str, Any],
    roles: Sequence[Mapping[str, Any]],
    organizations: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The PSC userinfo claims of an Annuaire professional (its active roles as activities),
    same names and shapes as PSC's, for the local PSC-compatible provider.

    ``organizations`` is keyed by ``Organization/id`` or by id.
    https://interop.esante.gouv.fr/ig/fhir/annuaire/
    """
    national = _identifier(practitioner, "IDNPS", IDNPS_SYSTEM)
    if not national:
        raise ProfessionalContextError(
            f"the Practitioner {practitioner.get('id')!r} has no IDNPS identifier",
        )
    rpps = _identifier(practitioner, "RPPS", RPPS_SYSTEM)
    adeli = _identifier(practitioner, "ADELI", ADELI_SYSTEM)
    names = practitioner.get("name") or [{}]
    name = names[0] if isinstance(names[0], Mapping) else {}
    family = str(name.get("family", ""))
    given = str((name.get("given") or [""])[0])
    civility = str((name.get("prefix") or [""])[0])
    civility_of_practice = str((name.get("suffix") or [""])[0])
    professions, sf_type, sf_code = _qualifications(practitioner)
    active = sorted(
        (r for r in roles if r.get("active") is not False),
        key=lambda r: str(r.get("id", "")),
    )
    activities = [_activity_claims(r, _organization_of(r, organizations)) for r in active]
    exercices = [
        {
            "codeProfession": profession,
            "codeCategorieProfessionnelle": category,
            "codeCiviliteDexercice": civility_of_practice,
            "nomDexercice": family,
            "prenomDexercice": given,
            "codeTypeSavoirFaire": sf_type,
            "codeSavoirFaire": sf_code,
            # a person has one profession (the rule): his activities go to the first exercice
            "activities": activities if i == 0 else [],
        }
        for i, (profession, category) in enumerate(professions or [("", "")])
    ]
    first = activities[0] if activities else {}
    other_ids = [{"identifiant": national, "origine": "IDNPS", "qualite": 1}]
    if rpps:
        other_ids.append({"identifiant": rpps, "origine": "RPPS", "qualite": 1})
    if adeli:
        other_ids.append({"identifiant": adeli, "origine": "ADELI", "qualite": 1})
    secteur = first.get("codeSecteurDactivite", "")
    return {
        "sub": f"f:{uuid.uuid5(uuid.NAMESPACE_URL, IDNPS_SYSTEM + '|' + national)}:{national}",
        "preferred_username": national,
        "SubjectNameID": national,
        "given_name": given,
        "family_name": family,
        "codeCivilite": civility,
        "UITVersion": "1.0",
        "Palier_Authentification": f"{STRONG_PALIER}^{PALIER_OID}",
        "PSI_Locale": PSI_LOCALE,
        "SubjectRole": [f"{p}^{PROFESSION_OID}" for p, _ in professions if p],
        "SubjectOrganization": first.get("raisonSocialeSite", ""),
        "SubjectOrganizationID": first.get("identifiantTechniqueDeLaStructure", ""),
        "Secteur_Activite": f"{secteur}^{SECTEUR_OID}" if secteur else "",
        "codeGenreActivite": first.get("codeGenreActivite", ""),
        "Mode_Acces_Raison": "",
        "Acces_Regulation_Medicale": "FAUX",
        "otherIds": other_ids,
        "SubjectRefPro": {"exercices": exercices},
    }


# --- the cross-check with the Annuaire -----------------------------------------------------------
def _organization_ids(activity: Activity) -> set[str]:
    """The Organization ids the Annuaire import gives the activity's structure."""
    ids = set()
    national = activity.idnst or next(
        (
            prefix + value
            for prefix, value in (
                ("1", activity.finess_site),
                ("3", activity.siret),
                ("2", activity.siren),
            )
            if value
        ),
        None,
    )
    if national:
        ids.add(national)
    if activity.rass_id:
        ids.add(f"rass-{activity.rass_id}")
    return ids


def _same_activity(activity: Activity, role: Mapping[str, Any]) -> bool:
    reference = str((role.get("organization") or {}).get("reference", ""))
    structure = reference.rsplit("/", 1)[-1] if reference else None
    wanted = _organization_ids(activity)
    if (structure is None) != (not wanted) or (structure is not None and structure not in wanted):
        return False
    codes = role.get("code")
    for table, value in (
        ("TRE_R23", activity.mode),
        ("TRE_R22", activity.genre),
        ("TRE_R21", activity.role),
        ("TRE_R06", activity.section_pharmacien),
    ):
        known = _coded(codes, table)
        if value and known and value != known:
            return False
    return True


def check_against_annuaire(
    context: ProfessionalContext,
    practitioner: Mapping[str, Any] | None,
    roles: Sequence[Mapping[str, Any]],
) -> None:
    """Refuse a professional the Annuaire does not know, no longer lists as active, or whose
    chosen activity is not one of his active situations d'exercice there.

    Raises :class:`ProfessionalContextError` with ``reason`` unknown, inactive or activity.
    https://interop.esante.gouv.fr/ig/fhir/annuaire/
    """
    who = context.national_id
    if practitioner is None:
        raise ProfessionalContextError(
            f"the professional {who} is unknown to the Annuaire Santé: no Practitioner carries "
            "this IDNPS; access is refused (import a current extraction if he was just "
            "registered)",
            "unknown",
        )
    known = _identifier(practitioner, "IDNPS", IDNPS_SYSTEM)
    if known and known != who:
        raise ProfessionalContextError(
            f"the Practitioner {practitioner.get('id')!r} is {known}, not the professional {who}",
            "unknown",
        )
    if practitioner.get("active") is False:
        raise ProfessionalContextError(
            f"the professional {who} is no longer active in the Annuaire Santé (Practitioner "
            f"{practitioner.get('id')} active: false): access is refused",
            "inactive",
        )
    chosen = context.activity
    matching = [r for r in roles if _same_activity(chosen, r)]
    if any(r.get("active") is not False for r in matching):
        return
    state = (
        "is no longer active in the Annuaire Santé"
        if matching
        else "is not one of his situations d'exercice in the Annuaire Santé"
    )
    current = sum(1 for r in roles if r.get("active") is not False)
    raise ProfessionalContextError(
        f"the activity {chosen.describe()} of the professional {who} {state} "
        f"({current} active there): choose another activity",
        "activity",
    )


# --- the professional context carried by a platform access token -------------------------------
#: The claim of platform access tokens that carries the professional context.
PROFESSIONAL_CLAIM: Final = "professional"


@dataclass(frozen=True)
class ActingProfessional:
    """The professional context a platform access token carries: what access decisions need
    (profession, savoir-faire, structure, secteur, rôle, level of assurance).

    https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
    """

    national_id: str  # IDNPS
    rpps: str | None
    profession: str | None  # TRE_G15
    category: str | None  # TRE_R09
    savoir_faire_type: str | None  # TRE_R04
    savoir_faire: str | None
    secteur: str | None  # TRE_R02
    role: str | None  # TRE_R21
    structure: Mapping[str, str]  # finess / siret / rass of the chosen activity
    activity: int
    acr: str | None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> ActingProfessional | None:
        """The context of a validated token's claims; None when the token carries none (or a
        malformed one: never trusted half-read)."""
        body = claims.get(PROFESSIONAL_CLAIM)
        if not isinstance(body, Mapping):
            return None
        national = body.get("idnps")
        activity = body.get("activity")
        structure = body.get("structure") or {}
        if (
            not isinstance(national, str)
            or not national
            or isinstance(activity, bool)
            or not isinstance(activity, int)
            or not isinstance(structure, Mapping)
            or not all(isinstance(v, str) for v in structure.values())
        ):
            return None

        def text(name: str) -> str | None:
            value = body.get(name)
            return value if isinstance(value, str) and value else None

        acr = claims.get("acr")
        return cls(
            national_id=national,
            rpps=text("rpps"),
            profession=text("profession"),
            category=text("category"),
            savoir_faire_type=text("savoir_faire_type"),
            savoir_faire=text("savoir_faire"),
            secteur=text("secteur"),
            role=text("role"),
            structure=dict(structure),
            activity=activity,
            acr=acr if isinstance(acr, str) else None,
        )


def structure_ids(activity: Activity) -> dict[str, str]:
    """The identifiers of an activity's structure (FINESS, SIRET, RASS id), those it has."""
    cells = {
        "finess": activity.finess_site or activity.finess_ej,
        "siret": activity.siret,
        "rass": activity.rass_id,
    }
    return {k: v for k, v in cells.items() if v}


def token_claims(context: ProfessionalContext) -> dict[str, Any]:
    """The claims a platform access token carries for a professional in his chosen activity
    (read back by :meth:`ActingProfessional.from_claims`).

    https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
    """
    act = context.activity
    professional: dict[str, Any] = {
        "idnps": context.national_id,
        "activity": act.index,
        "structure": structure_ids(act),
    }
    cells = {
        "rpps": context.rpps,
        "profession": act.profession,
        "category": act.category,
        "savoir_faire_type": act.savoir_faire_type,
        "savoir_faire": act.savoir_faire,
        "secteur": act.secteur,
        "role": act.role,
    }
    professional.update({k: v for k, v in cells.items() if v})
    claims: dict[str, Any] = {
        "SubjectNameID": context.national_id,
        "fhirUser": f"Practitioner/{context.national_id}",
        "acr": context.acr or "eidas1",
        PROFESSIONAL_CLAIM: professional,
    }
    return claims
