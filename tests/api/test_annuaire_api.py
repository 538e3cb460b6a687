"""The Annuaire Santé FHIR API searches, as its documentation describes them, on an imported
extraction and on the guide's examples (issue 5).

One server per backend holds FR Core and the Annuaire guide, a crafted extraction imported twice
with the real CLI (the second, newer file drops one person, adds one and changes one phone), and
the guide's examples. Each documented query is asked by ``GET`` and by ``POST [type]/_search``;
what it should find is computed from the crafted rows (through the mapping) and the example
files by a plain-Python reading of the search parameter, never from ids seen in a run.

Behavioural reference: ``annuaire-sante-fhir-documentation`` (version-1 resource pages; the
parameters are the same in v2) and domain-spec §3.1 (50 results per page, the Practitioner
parameters, ``mailbox-mss:contains=@domaine.mssante.fr``).
https://interop.esante.gouv.fr/ig/fhir/annuaire/
"""

from __future__ import annotations

import subprocess
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from maison.services.annuaire import mapping as m
from maison.services.annuaire.extraction import ACTIVITE_COLUMNS
from maison.services.annuaire.synth import luhn_key, synthesize, write_extraction
from servers import MAISON, Server, backend_data, free_port
from support import CORPORA

Row = dict[str, str]
Res = dict[str, Any]
Key = tuple[str, str]

COMPILED = CORPORA / "compiled"
ANNUAIRE = COMPILED / "IG-fhir-annuaire"
EXAMPLE_TYPES = ("Organization", "Practitioner", "PractitionerRole")
AS = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/"
G15 = m.nos("TRE_G15-ProfessionSante")
R02 = m.nos("TRE_R02-SecteurActivite")
R06 = m.nos("TRE_R06-SectionTableauCNOP")
R21 = m.nos("TRE_R21-Fonction")
R23 = m.nos("TRE_R23-ModeExercice")
R38 = m.nos("TRE_R38-SpecialiteOrdinale")
ORG_TYPE = m.ORGANIZATION_TYPE_CS

# --- the crafted extraction ------------------------------------------------------------------
SYNTH: list[Row] = list(synthesize(150, seed=11))  # ~120 persons: more than a page of 50


def _luhn(body: str) -> str:
    return body + luhn_key(body)


def _siret(siren8: str, nic: str = "0001") -> tuple[str, str]:
    siren = _luhn(siren8)
    return _luhn(siren + nic), siren


def _person(
    kind: str,
    ident: str,
    family: str,
    given: str,
    civilite: str,
    profession: tuple[str, str],
    exercice: str = "",
    savoir_faire: tuple[str, str] = ("", ""),
) -> Row:
    """The person cells (1-17) of a row."""
    return {
        m.TYPE_ID_PP: kind,
        m.ID_PP: ident,
        m.IDNAT_PP: kind + ident,
        m.CIVILITE_EXERCICE: exercice,
        "Libellé civilité exercice": {"DR": "Docteur", "": ""}[exercice],
        m.CIVILITE: civilite,
        "Libellé civilité": {"M": "Monsieur", "MME": "Madame"}[civilite],
        m.NOM: family,
        m.PRENOM: given,
        m.PROFESSION: profession[0],
        m.PROFESSION_LABEL: profession[1],
        m.CATEGORIE: "C",
        m.CATEGORIE_LABEL: "Civil",
        m.TYPE_SF: "S" if savoir_faire[0] else "",
        m.TYPE_SF_LABEL: "Spécialité ordinale" if savoir_faire[0] else "",
        m.SF: savoir_faire[0],
        m.SF_LABEL: savoir_faire[1],
    }


def _structure(
    name: str,
    secteur: tuple[str, str],
    place: tuple[str, str, str, str, str],  # postal code, INSEE code, commune, dép., its label
    technical: str,
    ancien: str,
    *,
    siret: tuple[str, str] = ("", ""),
    finess: str = "",
    finess_ej: str = "",
    phone: str = "",
    email: str = "",
) -> Row:
    """Every structure cell (20-47, 49-50) of a row, so nothing of the template is left."""
    postal, insee, commune, dep, dep_label = place
    return {
        m.SIRET: siret[0],
        m.SIREN: siret[1],
        m.FINESS_SITE: finess,
        m.FINESS_EJ: finess_ej,
        m.TECHNICAL_ID: technical,
        m.RAISON_SOCIALE: name,
        m.ENSEIGNE: "",
        m.COMPLEMENT_DESTINATAIRE: "",
        m.COMPLEMENT_GEO: "",
        m.NUMERO_VOIE: "12",
        m.INDICE_VOIE: "",
        m.TYPE_VOIE: "R",
        "Libellé type de voie (coord. structure)": "Rue",
        m.LIBELLE_VOIE: "DE LA MARINE",
        m.MENTION_DISTRIBUTION: "",
        m.BUREAU_CEDEX: f"{postal} {commune}",
        m.CODE_POSTAL: postal,
        m.CODE_COMMUNE: insee,
        m.LIBELLE_COMMUNE: commune,
        m.CODE_PAYS: "99000",
        "Libellé pays (coord. structure)": "France",
        m.TELEPHONE: phone,
        m.TELEPHONE_2: "",
        m.TELECOPIE: "",
        m.EMAIL: email,
        m.CODE_DEPARTEMENT: dep,
        "Libellé département (coord. structure)": dep_label,
        m.ANCIEN_ID_STRUCTURE: ancien,
        m.SECTEUR: secteur[0],
        m.SECTEUR_LABEL: secteur[1],
    }


def _activity(
    mode: str, fonction: tuple[str, str], authority: str, section: tuple[str, str] = ("", "")
) -> Row:
    """The activity cells of a row (mode, authority, section, fonction, genre)."""
    return {
        m.MODE: mode,
        m.MODE_LABEL: {"L": "Libéral, indépendant, artisan, commerçant", "S": "Salarié"}[mode],
        "Autorité d'enregistrement": "/".join([authority] * 3),
        m.SECTION_PHARMA: section[0],
        m.SECTION_PHARMA_LABEL: section[1],
        m.FONCTION: fonction[0],
        m.FONCTION_LABEL: fonction[1],
        m.GENRE: "GENR01",
        m.GENRE_LABEL: "Activité standard",
    }


def _row(person: Row, structure: Row, activity: Row) -> Row:
    """A synthetic row of the same profession, edited: person, structure and activity."""
    template = next(r for r in SYNTH if r[m.PROFESSION] == person[m.PROFESSION])
    assert {*person, *structure, *activity} == set(ACTIVITE_COLUMNS)  # every cell is known
    return {**template, **person, **structure, **activity}


# the persons (RPPS bodies start 199…: the synthesiser's start 10…)
DUAL_RPPS = _luhn("1998000001")  # a cardiologist with two activities
PHARMA_RPPS = _luhn("1998000002")  # a pharmacist, titulaire of his officine
GONE_RPPS = _luhn("1998000003")  # a nurse alone in his cabinet, gone from the newer file
NEW_RPPS = _luhn("1998000004")  # a midwife who arrives in the newer file
ADELI = "979912345"  # a psychologist known by ADELI only
RENARD_SIRET = _siret("99900001")  # a group practice known by SIRET
PORT_SIRET = _siret("99900002")
GAUTIER_SIRET = _siret("99900003")
PORTO_FINESS, PORTO_EJ = "2A0099991", "2A0099983"  # Corsica: the shape only, no key
GAUTIER_FINESS, GAUTIER_EJ = _luhn("69099991"), _luhn("69099992")
RENARD_MSS = "secretariat@renard-imagerie.mssante.fr"
GAUTIER_PHONE, GAUTIER_NEW_PHONE = "0465710001", "0465710002"

MEDECIN, PHARMACIEN = ("10", "Médecin"), ("21", "Pharmacien")
CARDIO = ("SM04", "Cardiologie et Maladies vasculaires (SM)")
TITULAIRE_CABINET = ("FON-01", "Titulaire de cabinet")
TITULAIRE_OFFICINE = ("FON-03", "Titulaire d'officine")
NON_DEFINIE = ("FON-AU", "Fonction non définie")
SECTION_A = ("A", "Pharmacien titulaire officine")

RENARD = _structure(
    "RENARD IMAGERIE MEDICALE",
    ("SA08", "Cabinet de groupe"),
    ("75011", "75111", "PARIS", "75", "Paris"),
    "R99000001",
    "3" + RENARD_SIRET[0],
    siret=RENARD_SIRET,
    phone="0199000001",
    email=RENARD_MSS,
)
PORTO = _structure(
    "CENTRE HOSPITALIER DE PORTO-VECCHIO",
    ("SA01", "Etablissement public de santé"),
    ("20137", "2A247", "PORTO-VECCHIO", "2A", "Corse-du-Sud"),
    f"F{PORTO_FINESS}01012000",
    "1" + PORTO_FINESS,
    finess=PORTO_FINESS,
    finess_ej=PORTO_EJ,
    phone="0465710000",
)
GAUTIER = _structure(
    "PHARMACIE GAUTIER",
    ("SA33", "Pharmacie d'officine"),
    ("69003", "69383", "LYON", "69", "Rhône"),
    f"F{GAUTIER_FINESS}02022002",
    "1" + GAUTIER_FINESS,
    siret=GAUTIER_SIRET,
    finess=GAUTIER_FINESS,
    finess_ej=GAUTIER_EJ,
    phone=GAUTIER_PHONE,
)
PORT = _structure(
    "CABINET INFIRMIER DU PORT",
    ("SA07", "Cabinet individuel"),
    ("29200", "29019", "BREST", "29", "Finistère"),
    "R99000002",
    "3" + PORT_SIRET[0],
    siret=PORT_SIRET,
)
EMERY = _structure(
    "CABINET ZOE EMERY",
    ("SA07", "Cabinet individuel"),
    ("97200", "97209", "FORT-DE-FRANCE", "972", "Martinique"),
    "R99000003",
    "0" + ADELI,  # a cabinet ADELI: its idNatStruct is the person's IDNPS (domain-spec)
)

DUAL = _person("8", DUAL_RPPS, "LECUYER", "Hélène", "MME", MEDECIN, "DR", CARDIO)
CRAFTED: list[Row] = [
    _row(DUAL, RENARD, _activity("L", TITULAIRE_CABINET, "CNOM")),
    _row(DUAL, PORTO, _activity("S", NON_DEFINIE, "CNOM")),
    _row(
        _person("0", ADELI, "EMERY", "Zoé", "MME", ("93", "Psychologue")),
        EMERY,
        _activity("L", TITULAIRE_CABINET, "ARS"),
    ),
    _row(
        _person("8", PHARMA_RPPS, "GAUTIER", "Jérôme", "M", PHARMACIEN, "DR"),
        GAUTIER,
        _activity("L", TITULAIRE_OFFICINE, "CNOP", SECTION_A),
    ),
    _row(
        _person("8", GONE_RPPS, "LE GOFF", "Maëlle", "MME", ("60", "Infirmier")),
        PORT,
        _activity("L", TITULAIRE_CABINET, "ONI"),
    ),
]
NEW = _row(
    _person("8", NEW_RPPS, "ORSINI", "Letizia", "MME", ("50", "Sage-Femme")),
    PORTO,
    _activity("S", NON_DEFINIE, "CNOSF"),
)
FIRST: list[Row] = SYNTH + CRAFTED
# a month later: the nurse is gone, the midwife arrives, the officine changed its phone
SECOND: list[Row] = [
    {**r, m.TELEPHONE: GAUTIER_NEW_PHONE} if r[m.FINESS_SITE] == GAUTIER_FINESS else r
    for r in FIRST
    if r[m.ID_PP] != GONE_RPPS
] + [NEW]

DUAL_ID, PHARMA_ID = "8" + DUAL_RPPS, "8" + PHARMA_RPPS
GONE_ID, NEW_ID, ADELI_ID = "8" + GONE_RPPS, "8" + NEW_RPPS, "0" + ADELI


def _org_id(structure: Row) -> str:
    oid = m.organization_id(structure)
    assert oid is not None
    return oid


PORTO_ID, RENARD_ID = _org_id(PORTO), _org_id(RENARD)


# --- what the store should hold --------------------------------------------------------------
def _mapped(rows: list[Row]) -> dict[Key, Res]:
    """The resources an import of ``rows`` writes (content only, without meta)."""
    persons: dict[str, list[Row]] = {}
    for row in rows:
        persons.setdefault(row[m.IDNAT_PP], []).append(row)
    out: dict[Key, Res] = {}
    for person in persons.values():
        for res in m.resources_for_person(person):
            key = (res["resourceType"], res["id"])
            body = {k: v for k, v in res.items() if k != "meta"}
            assert out.setdefault(key, body) == body, f"{key}: rows disagree on the structure"
    return out


def _examples() -> dict[Key, Res]:
    docs = (orjson.loads(p.read_bytes()) for p in sorted(ANNUAIRE.glob("*.json")))
    return {(d["resourceType"], d["id"]): d for d in docs if d["resourceType"] in EXAMPLE_TYPES}


BEFORE, AFTER = _mapped(FIRST), _mapped(SECOND)
GONE_KEYS = set(BEFORE) - set(AFTER)  # made inactive by the second import
#: what the second import writes: new, changed, made inactive
DELTA = {k for k in AFTER if BEFORE.get(k) != AFTER[k]} | GONE_KEYS
EXAMPLES = _examples()
#: everything the server holds at the end
UNIVERSE: dict[Key, Res] = {
    **AFTER,
    **{k: {**BEFORE[k], "active": False} for k in GONE_KEYS},
    **EXAMPLES,
}


def _check_crafted() -> None:
    """The crafted numbers are unique in the extraction (no synthetic person or structure
    shares them), so what the queries find is what the test means."""
    for column in (m.ID_PP, m.SIRET, m.FINESS_SITE):
        values = {r[column] for r in SYNTH}
        for r in [*CRAFTED, NEW]:
            assert not r[column] or r[column] not in values, (column, r[column])


_check_crafted()


# --- a plain-Python reading of the search parameters -----------------------------------------
def _fold(s: str) -> str:
    """Case- and accent-insensitive form (FHIR string search)."""
    decomposed = unicodedata.normalize("NFKD", s)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).lower().split())


def _at(value: Any, path: str) -> list[Any]:
    """The values at a dotted path, lists flattened."""
    values = [value]
    for step in path.split("."):
        nxt: list[Any] = []
        for v in values:
            got = v.get(step) if isinstance(v, dict) else None
            nxt.extend(got if isinstance(got, list) else [] if got is None else [got])
        values = nxt
    return values


NAME_PARTS = ("name.family", "name.given", "name.prefix", "name.suffix", "name.text")
Match = Callable[[Res], bool]


def string(paths: str | tuple[str, ...], *values: str, mode: str = "start") -> Match:
    """A string parameter: starts-with (default), ``exact`` or ``contains``; OR of values."""
    where = (paths,) if isinstance(paths, str) else paths

    def match(res: Res) -> bool:
        held = [s for p in where for s in _at(res, p) if isinstance(s, str)]
        for v in values:
            for s in held:
                if mode == "exact" and s == v:
                    return True
                if mode == "start" and _fold(s).startswith(_fold(v)):
                    return True
                if mode == "contains" and _fold(v) in _fold(s):
                    return True
        return False

    return match


def token(path: str, code: str, system: str | None = None) -> Match:
    """A token parameter on Identifier, CodeableConcept, Coding, boolean or code values."""

    def one(v: Any) -> bool:
        if isinstance(v, bool):
            return str(v).lower() == code
        if isinstance(v, str):
            return v == code and system is None
        if not isinstance(v, dict):
            return False
        if "coding" in v:
            return any(one(c) for c in v["coding"])
        value = v.get("value", v.get("code"))
        return value == code and system in (None, v.get("system"))

    return lambda res: any(one(v) for v in _at(res, path))


def ref(path: str, target: str) -> Match:
    """A reference parameter (``Type/id``)."""
    return lambda res: any(r == target for r in _at(res, f"{path}.reference"))


def extension(url: str, part: str) -> Callable[[Res], list[Any]]:
    """``extension.where(url=…).extension.where(url=part).value`` (the Annuaire parameters)."""

    def values(res: Res) -> list[Any]:
        return [
            v
            for e in res.get("extension", [])
            if e.get("url") == url
            for sub in e.get("extension", [])
            if sub.get("url") == part
            for k, v in sub.items()
            if k.startswith("value")
        ]

    return values


def every(*matches: Match) -> Match:
    return lambda res: all(f(res) for f in matches)


def chained(path: str, match: Match) -> Match:
    """A chain (``practitioner.qualification-code=…``): the referenced resource matches."""

    def follow(res: Res) -> bool:
        for target in _at(res, f"{path}.reference"):
            rtype, _, rid = target.partition("/")
            if (rtype, rid) in UNIVERSE and match(UNIVERSE[rtype, rid]):
                return True
        return False

    return follow


#: the reference parameters of the types searched: (source type, code) -> element
REFERENCES = {
    ("PractitionerRole", "organization"): "organization",
    ("PractitionerRole", "practitioner"): "practitioner",
    ("PractitionerRole", "location"): "location",
    ("PractitionerRole", "service"): "healthcareService",
    ("PractitionerRole", "endpoint"): "endpoint",
    ("Organization", "partof"): "partOf",
    ("Organization", "endpoint"): "endpoint",
}


@dataclass(frozen=True)
class Case:
    """A documented query (values from the crafted data) and what it finds."""

    query: str  # "Type?name=value&…", values unencoded
    match: Match  # which resources of the type searched it finds
    note: str = ""

    @property
    def type(self) -> str:
        return self.query.split("?", 1)[0]

    @property
    def params(self) -> list[tuple[str, str]]:
        return [
            (p.split("=", 1)[0], p.split("=", 1)[1]) for p in self.query.split("?", 1)[1].split("&")
        ]

    def expected(self) -> tuple[set[Key], set[Key]]:
        """(matches, included) over everything the server holds."""
        found = {k for k, r in UNIVERSE.items() if k[0] == self.type and self.match(r)}
        included: set[Key] = set()
        for name, value in self.params:
            if name not in ("_include", "_revinclude"):
                continue
            source, code = (self.type, "*") if value == "*" else value.split(":")[:2]
            elements = [e for (s, c), e in REFERENCES.items() if s == source and code in (c, "*")]
            for element in elements:
                if name == "_include":
                    for k in found:
                        for target in _at(UNIVERSE[k], f"{element}.reference"):
                            rtype, _, rid = target.partition("/")
                            if (rtype, rid) in UNIVERSE:
                                included.add((rtype, rid))
                else:
                    targets = {f"{t}/{i}" for t, i in found}
                    included |= {
                        k
                        for k, r in UNIVERSE.items()
                        if k[0] == source and targets & set(_at(r, f"{element}.reference"))
                    }
        return found, included - found


# --- the documented queries ------------------------------------------------------------------
SMARTCARD = extension(f"{AS}as-ext-practitionerrole-smartcard", "number")
AUTHORITY = extension(f"{AS}as-ext-data-trace", "autorite-enregistrement")
CASES = [
    # Practitioner (practitioner.md §3-4, domain-spec §3.1)
    Case(f"Practitioner?identifier={DUAL_RPPS}", token("identifier", DUAL_RPPS)),
    Case(
        f"Practitioner?identifier={m.IDNPS_SYSTEM}|{DUAL_ID}",
        token("identifier", DUAL_ID, m.IDNPS_SYSTEM),
    ),
    Case(f"Practitioner?identifier={ADELI_ID}", token("identifier", ADELI_ID)),
    Case(
        f"Practitioner?identifier={m.ADELI_SYSTEM}|{ADELI}",
        token("identifier", ADELI, m.ADELI_SYSTEM),
    ),
    Case(
        "Practitioner?identifier=810003461033&_revinclude=PractitionerRole:practitioner",
        token("identifier", "810003461033"),
        "an IG example and the roles that point at it",
    ),
    Case(
        f"Practitioner?identifier={DUAL_RPPS}&_revinclude=PractitionerRole:practitioner",
        token("identifier", DUAL_RPPS),
    ),
    Case("Practitioner?family=Lécuyer", string("name.family", "Lécuyer")),
    Case("Practitioner?family=lecu", string("name.family", "lecu")),
    Case("Practitioner?given=HELENE", string("name.given", "HELENE")),
    Case("Practitioner?name=hélène", string(NAME_PARTS, "hélène")),
    Case("Practitioner?name=chatelier", string(NAME_PARTS, "chatelier")),
    Case("Practitioner?family:exact=LECUYER", string("name.family", "LECUYER", mode="exact")),
    Case("Practitioner?family:exact=Lecuyer", string("name.family", "Lecuyer", mode="exact")),
    Case("Practitioner?given:contains=ELEN", string("name.given", "ELEN", mode="contains")),
    Case("Practitioner?active=true", token("active", "true")),
    Case("Practitioner?active=false", token("active", "false"), "the person the newer file drops"),
    Case("Practitioner?qualification-code=SM04", token("qualification.code", "SM04")),
    Case(f"Practitioner?qualification-code={G15}|21", token("qualification.code", "21", G15)),
    Case(
        f"Practitioner?qualification-code={G15}|10&qualification-code={R38}|SM04",
        every(token("qualification.code", "10", G15), token("qualification.code", "SM04", R38)),
    ),
    Case(
        "Practitioner?mailbox-mss:contains=@pro.mssante.fr",
        string("telecom.value", "@pro.mssante.fr", mode="contains"),
    ),
    Case("Practitioner?mailbox-mss=davidchatelier", string("telecom.value", "davidchatelier")),
    Case(
        "Practitioner?data-registration-authority=CNOM",
        lambda r: any(token("x", "CNOM")({"x": v}) for v in AUTHORITY(r)),
    ),
    Case(
        "PractitionerRole?data-registration-authority=CNOM",
        lambda r: any(token("x", "CNOM")({"x": v}) for v in AUTHORITY(r)),
    ),
    # PractitionerRole (practitioner-role.md)
    Case(
        f"PractitionerRole?practitioner={DUAL_ID}", ref("practitioner", f"Practitioner/{DUAL_ID}")
    ),
    Case(
        f"PractitionerRole?practitioner=Practitioner/{DUAL_ID}"
        "&_include=PractitionerRole:organization",
        ref("practitioner", f"Practitioner/{DUAL_ID}"),
    ),
    Case(
        f"PractitionerRole?organization=Organization/{PORTO_ID}"
        "&_include=PractitionerRole:practitioner",
        ref("organization", f"Organization/{PORTO_ID}"),
    ),
    Case(
        "PractitionerRole?organization=158480&_include=PractitionerRole:practitioner"
        "&_include=PractitionerRole:organization",
        ref("organization", "Organization/158480"),
        "IG examples",
    ),
    Case(
        f"PractitionerRole?practitioner={DUAL_ID}&_include=PractitionerRole:*",
        ref("practitioner", f"Practitioner/{DUAL_ID}"),
    ),
    Case(
        "PractitionerRole?practitioner.family=lécuyer&practitioner.given=helene",
        chained(
            "practitioner", every(string("name.family", "lécuyer"), string("name.given", "helene"))
        ),
        "v2 form of the v1 PractitionerRole?family=…&given=… (the name is on the Practitioner)",
    ),
    Case(f"PractitionerRole?role={R06}|A", token("code", "A", R06)),
    Case("PractitionerRole?role=FON-03", token("code", "FON-03")),
    Case(
        f"PractitionerRole?role={R23}|L&role={R21}|FON-01",
        every(token("code", "L", R23), token("code", "FON-01", R21)),
    ),
    Case(f"PractitionerRole?specialty={R38}|SM04", token("specialty", "SM04", R38)),
    Case(
        f"PractitionerRole?specialty=SM04&practitioner.qualification-code={G15}|10"
        f"&organization={RENARD_ID}",
        every(
            token("specialty", "SM04"),
            chained("practitioner", token("qualification.code", "10", G15)),
            ref("organization", f"Organization/{RENARD_ID}"),
        ),
        "v2 form of role=<profession>&specialty=…: the profession is on the Practitioner",
    ),
    Case("PractitionerRole?active=false", token("active", "false")),
    Case(
        f"PractitionerRole?active=true&organization={PORTO_ID}",
        every(token("active", "true"), ref("organization", f"Organization/{PORTO_ID}")),
    ),
    Case(
        "PractitionerRole?number-smartcard=80",
        lambda r: any(_fold(str(v)).startswith("80") for v in SMARTCARD(r)),
        "neither the extraction nor the examples carry a smartcard",
    ),
    # Organization (organization.md, search-params.md)
    Case(f"Organization?identifier={PORTO_FINESS}", token("identifier", PORTO_FINESS)),
    Case(
        f"Organization?identifier={m.FINESS_SYSTEM}|{GAUTIER_FINESS}",
        token("identifier", GAUTIER_FINESS, m.FINESS_SYSTEM),
    ),
    Case(
        f"Organization?identifier={m.SIRENE_SYSTEM}|{RENARD_SIRET[0]}",
        token("identifier", RENARD_SIRET[0], m.SIRENE_SYSTEM),
    ),
    Case(
        f"Organization?identifier={m.IDNST_SYSTEM}|1754567860",
        token("identifier", "1754567860", m.IDNST_SYSTEM),
        "IG examples",
    ),
    Case("Organization?name=renard", string(("name", "alias"), "renard")),
    Case("Organization?name=hopital", string(("name", "alias"), "hopital")),
    Case(
        "Organization?name:contains=imagerie,porto",
        string(("name", "alias"), "imagerie", "porto", mode="contains"),
    ),
    Case(
        "Organization?name:contains=gautier&name:contains=pharma",
        every(
            string(("name", "alias"), "gautier", mode="contains"),
            string(("name", "alias"), "pharma", mode="contains"),
        ),
    ),
    Case(
        "Organization?name:exact=PHARMACIE GAUTIER",
        string(("name", "alias"), "PHARMACIE GAUTIER", mode="exact"),
    ),
    Case(
        "Organization?name:exact=Pharmacie Gautier",
        string(("name", "alias"), "Pharmacie Gautier", mode="exact"),
    ),
    Case("Organization?address-city=porto-vecchio", string("address.city", "porto-vecchio")),
    Case("Organization?address-city=Porto", string("address.city", "Porto")),
    Case("Organization?address-postalcode=201", string("address.postalCode", "201")),
    Case(
        "Organization?address-postalcode:exact=20137,75011",
        string("address.postalCode", "20137", "75011", mode="exact"),
    ),
    Case(
        "Organization?address-insee=2A247",
        lambda res: any(
            e.get("valueCoding", {}).get("code", "").startswith("2A247")
            for a in res.get("address", [])
            for e in a.get("extension", [])
            if e.get("url") == m.INSEE_CODE_URL
        ),
        "the guide's string parameter on the FR Core INSEE code (a Coding)",
    ),
    Case(f"Organization?type={R02}|SA33", token("type", "SA33", R02)),
    Case(
        f"Organization?type={ORG_TYPE}|GEOGRAPHICAL-ENTITY",
        token("type", "GEOGRAPHICAL-ENTITY", ORG_TYPE),
    ),
    Case(f"Organization?type={ORG_TYPE}|LEGAL-ENTITY", token("type", "LEGAL-ENTITY", ORG_TYPE)),
    Case(
        f"Organization?identifier={PORTO_FINESS}&_include=Organization:partof",
        token("identifier", PORTO_FINESS),
        "partOf is a logical reference (the extraction has no legal entity): nothing to include",
    ),
    Case(
        f"Organization?identifier={PORTO_FINESS}&_include=*",
        token("identifier", PORTO_FINESS),
        "organization.md §4.1",
    ),
    Case(
        f"Organization?identifier={PORTO_FINESS}&_revinclude=PractitionerRole:*",
        token("identifier", PORTO_FINESS),
        "practitioner-role.md §4.1",
    ),
    Case(
        f"Organization?partof:identifier={m.FINESS_SYSTEM}|{PORTO_EJ}",
        token("partOf.identifier", PORTO_EJ, m.FINESS_SYSTEM),
    ),
    Case(
        f"Organization?identifier={PORTO_FINESS}&_revinclude=PractitionerRole:organization",
        token("identifier", PORTO_FINESS),
    ),
    Case(
        "Organization?_id=158480,548812&_revinclude=PractitionerRole:organization",
        lambda r: r["id"] in ("158480", "548812"),
        "IG examples",
    ),
    Case(f"Organization?mailbox-mss={RENARD_MSS}", string("telecom.value", RENARD_MSS)),
    Case(
        "Organization?mailbox-mss:contains=@renard-imagerie.mssante.fr",
        string("telecom.value", "@renard-imagerie.mssante.fr", mode="contains"),
    ),
    Case(
        "Organization?mailbox-mss:contains=mssante.fr",
        string("telecom.value", "mssante.fr", mode="contains"),
    ),
    Case("Organization?active=false", token("active", "false")),
]


# --- the server ------------------------------------------------------------------------------
def _maison(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MAISON, *args], capture_output=True, text=True, check=False)


@dataclass
class Annuaire:
    """The running server, its tokens and what the fixture did."""

    server: Server
    admin: str
    since: str  # an instant between the two imports
    loaded: dict[Key, int] = field(default_factory=dict)  # example -> status of its PUT

    def client(self, token: str | None = None) -> httpx.Client:
        client: httpx.Client = self.server.client(token)
        return client


def _import(srv: Server, path: Path) -> None:
    out = _maison(
        "annuaire", "import", str(path), "--data", srv.data, "--state", str(srv.state),
        "--validate", "all",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "with reasons" not in out.stderr, out.stderr[-3000:]  # nothing rejected, all valid


@pytest.fixture(scope="module")
def annuaire(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Annuaire]:
    tmp = tmp_path_factory.mktemp("annuaire-api")
    first = write_extraction(
        FIRST, tmp / "PS_LibreAcces_Personne_activite_202601010300.txt",
        generated_at=datetime(2026, 1, 1, 3, 0),
    )  # fmt: skip
    second = write_extraction(
        SECOND, tmp / "PS_LibreAcces_Personne_activite_202602010300.txt",
        generated_at=datetime(2026, 2, 1, 3, 0),
    )  # fmt: skip
    srv = Server(backend_data(backend, tmp), tmp, free_port(), extra_args=["--no-demo"]).start()
    try:
        for guide in ("hl7.fhir.fr.core", "IG-fhir-annuaire"):
            out = _maison(
                "ig", "install", str(COMPILED / guide), "--data", srv.data, "--state",
                str(srv.state),
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
        time.sleep(1.5)  # every worker reloads the installed definitions within a second
        _import(srv, first)
        admin = srv.mint("system/*.*", "annuaire:admin")
        state = Annuaire(srv, admin, "")
        with srv.client(admin) as c:
            for (rtype, rid), doc in EXAMPLES.items():
                state.loaded[rtype, rid] = c.put(f"/{rtype}/{rid}", json=doc).status_code
        time.sleep(1.1)
        state.since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        time.sleep(0.1)
        _import(srv, second)
        yield state
    finally:
        srv.stop()


# --- helpers ---------------------------------------------------------------------------------
def _pages(c: httpx.Client, first: httpx.Response) -> list[dict[str, Any]]:
    """Every page of a search, following the ``next`` links."""
    pages = []
    r = first
    while True:
        assert r.status_code == 200, r.text[:800]
        bundle = r.json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        pages.append(bundle)
        nxt = next((lk["url"] for lk in bundle.get("link", []) if lk["relation"] == "next"), None)
        if nxt is None or len(pages) > 20:
            return pages
        r = c.get(nxt)


def _found(pages: list[dict[str, Any]]) -> tuple[list[Key], list[Key]]:
    """(matches, included) of the pages, duplicates kept (to be caught)."""
    matches: list[Key] = []
    included: list[Key] = []
    for bundle in pages:
        for e in bundle.get("entry", []):
            key = (e["resource"]["resourceType"], e["resource"]["id"])
            (matches if e["search"]["mode"] == "match" else included).append(key)
    return matches, included


def _get(c: httpx.Client, rtype: str, params: list[tuple[str, str]]) -> httpx.Response:
    """``GET [type]?…``."""
    return c.get(f"/{rtype}?{urlencode(params)}")


def _post(c: httpx.Client, rtype: str, params: list[tuple[str, str]]) -> httpx.Response:
    """``POST [type]/_search`` with the parameters as a form body."""
    return c.post(
        f"/{rtype}/_search",
        content=urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


# --- tests -----------------------------------------------------------------------------------
def test_examples_load_and_the_import_holds_the_mapping(annuaire: Annuaire) -> None:
    """The guide's examples are valid against the installed profiles (the server validates
    them on write); the crafted persons are stored as the mapping gives them."""
    assert set(annuaire.loaded) == set(EXAMPLES)
    assert set(annuaire.loaded.values()) <= {200, 201}, annuaire.loaded
    crafted = {("Practitioner", i) for i in (DUAL_ID, PHARMA_ID, GONE_ID, NEW_ID, ADELI_ID)} | {
        ("Organization", _org_id(s)) for s in (RENARD, PORTO, GAUTIER, PORT, EMERY)
    }
    with annuaire.client() as c:
        for rtype, rid in sorted(crafted):
            r = c.get(f"/{rtype}/{rid}")
            assert r.status_code == 200, (rtype, rid, r.text[:300])
            got = {k: v for k, v in r.json().items() if k != "meta"}
            assert got == UNIVERSE[rtype, rid], (rtype, rid)
            assert r.json()["meta"]["source"] == m.SOURCE
        # the ADELI-only person declares the generic profile, the others the DP one
        adeli = c.get(f"/Practitioner/{ADELI_ID}").json()
        assert m.AS_PRACTITIONER in adeli["meta"]["profile"]
        dual = c.get(f"/Practitioner/{DUAL_ID}").json()
        assert m.DP_PRACTITIONER in dual["meta"]["profile"]


@pytest.mark.parametrize("case", CASES, ids=[c.query for c in CASES])
def test_documented_search(annuaire: Annuaire, case: Case) -> None:
    """The query finds what the crafted data and the examples say, by GET and by POST
    ``_search`` alike, with its includes and an accurate total."""
    matches, included = case.expected()
    with annuaire.client() as c:
        for how, first in (
            ("GET", _get(c, case.type, case.params)),
            ("POST", _post(c, case.type, case.params)),
        ):
            pages = _pages(c, first)
            got, got_included = _found(pages)
            assert len(got) == len(set(got)), (how, "a match on two pages")
            assert set(got) == matches, (how, sorted(set(got) ^ matches))
            assert set(got_included) == included, (how, sorted(set(got_included) ^ included))
            assert pages[0].get("total") == len(matches), how


def test_delta_sync_by_last_updated(annuaire: Annuaire) -> None:
    """``_lastUpdated=ge<instant>`` between the two imports finds what the second import
    created, changed or made inactive, and only that (practitioner.md §4.4)."""
    assert {k[0] for k in DELTA} == {"Practitioner", "PractitionerRole", "Organization"}
    assert ("Practitioner", GONE_ID) in DELTA and ("Practitioner", NEW_ID) in DELTA
    assert ("Organization", _org_id(GAUTIER)) in DELTA
    assert ("Practitioner", DUAL_ID) not in DELTA
    with annuaire.client() as c:
        for rtype in ("Practitioner", "PractitionerRole", "Organization"):
            params = [("_lastUpdated", f"ge{annuaire.since}")]
            for first in (
                _get(c, rtype, params),
                _post(c, rtype, params),
            ):
                got, _ = _found(_pages(c, first))
                assert set(got) == {k for k in DELTA if k[0] == rtype}, rtype


def _practitioners() -> set[Key]:
    return {k for k in UNIVERSE if k[0] == "Practitioner"}


def test_default_page_size_is_the_annuaire_s_50(annuaire: Annuaire) -> None:
    """Without ``_count``, 50 results per page and a ``next`` link (search-params.md §8.1,
    domain-spec §3.1); the pages together hold every Practitioner once."""
    assert len(_practitioners()) > 100
    with annuaire.client() as c:
        for first in (c.get("/Practitioner"), _post(c, "Practitioner", [])):
            pages = _pages(c, first)
            got, _ = _found(pages)
            assert sorted(got) == sorted(_practitioners())
            assert len(pages[0]["entry"]) == 50, len(pages[0]["entry"])
            assert any(lk["relation"] == "next" for lk in pages[0]["link"])


def test_count_200_gives_one_page(annuaire: Annuaire) -> None:
    """``_count=200`` (search-params.md §8.1): every Practitioner on one page, no ``next``."""
    with annuaire.client() as c:
        for r in (
            c.get("/Practitioner", params={"_count": "200"}),
            _post(c, "Practitioner", [("_count", "200")]),
        ):
            bundle = r.json()
            assert {
                (e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]
            } == (_practitioners())
            assert [lk["relation"] for lk in bundle["link"]] == ["self"]
            assert bundle["total"] == len(_practitioners())


def test_total_none(annuaire: Annuaire) -> None:
    """``_total=none`` (search-params.md §8.2): no total, the results still there."""
    with annuaire.client() as c:
        params = [("_total", "none"), ("active", "true"), ("_count", "200")]
        for r in (
            _get(c, "Practitioner", params),
            _post(c, "Practitioner", params),
        ):
            bundle = r.json()
            assert "total" not in bundle
            expected = {k for k in _practitioners() if UNIVERSE[k]["active"] is True}
            assert {("Practitioner", e["resource"]["id"]) for e in bundle["entry"]} == expected


def test_elements_identifier_active(annuaire: Annuaire) -> None:
    """``_elements=identifier,active`` (search-params.md §8.5): only those elements, and the
    SUBSETTED tag."""
    with annuaire.client() as c:
        params = [("_elements", "identifier,active"), ("_count", "200")]
        for r in (
            _get(c, "Practitioner", params),
            _post(c, "Practitioner", params),
        ):
            entries = r.json()["entry"]
            assert len(entries) == len(_practitioners())
            for e in entries:
                res = e["resource"]
                assert set(res) <= {"resourceType", "id", "meta", "identifier", "active"}, res
                assert res["identifier"] == UNIVERSE["Practitioner", res["id"]]["identifier"]
                assert res["active"] == UNIVERSE["Practitioner", res["id"]]["active"]
                assert "SUBSETTED" in {t["code"] for t in res["meta"]["tag"]}


def test_imported_resources_are_read_only_but_for_the_annuaire_admin(
    annuaire: Annuaire,
) -> None:
    """PUT/DELETE are refused on the Annuaire's data (domain-spec §3.1): 403 with an
    OperationOutcome, unless the token holds ``annuaire:admin``. Runs last: it writes."""
    path = f"/Practitioner/{DUAL_ID}"
    with annuaire.client() as c:
        current = c.get(path).json()
        changed = {**current, "name": [{**current["name"][0], "family": "LECUYER-DURAND"}]}
        for r in (c.put(path, json=changed), c.delete(path)):
            assert r.status_code == 403, r.text[:300]
            outcome = r.json()
            assert outcome["resourceType"] == "OperationOutcome"
            assert "annuaire:admin" in outcome["issue"][0]["diagnostics"]
        assert c.get(path).json()["meta"]["versionId"] == current["meta"]["versionId"]
    with annuaire.client(annuaire.admin) as admin:
        r = admin.put(path, json=changed)
        assert r.status_code == 200, r.text[:300]
        assert r.json()["name"][0]["family"] == "LECUYER-DURAND"
        restored = admin.put(path, json={**current, "meta": {**current["meta"]}})
        assert restored.status_code == 200, restored.text[:300]
        assert restored.json()["name"][0]["family"] == "LECUYER"
