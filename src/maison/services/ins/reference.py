"""The reference base of identities behind our INSi-compatible téléservice.

For one person the national INSi returns the matricule INS, the OID of its assigning authority and
the five *traits INS*: nom de naissance, liste des prénoms de naissance (space-separated), sexe
(M/F), date de naissance and lieu de naissance (COG INSEE code). This module holds that record
(:class:`ReferenceIdentity`), synthesises realistic French ones (test data only), reads and writes
them as CSV or JSON Lines with per-row validation, and maps them to and from an FR Core
``fr-core-patient-ins`` Patient.

https://esante.gouv.fr/produits-services/referentiel-ins
https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any, Final

import orjson
from stdnum.exceptions import ValidationError
from stdnum.fr import nir as stdnum_nir

# --------------------------------------------------------------------------------------------
# Identifiers and FHIR URLs (domain-spec §1.2 and §1.6, FR Core 2.x)
# --------------------------------------------------------------------------------------------

OID_NIR: Final = "1.2.250.1.213.1.4.8"
OID_NIA: Final = "1.2.250.1.213.1.4.9"
OID_TEST: Final = "1.2.250.1.213.1.4.10"
OID_DEMO: Final = "1.2.250.1.213.1.4.11"

#: OID -> (FR Core ``fr-core-cs-v2-0203`` code, display of the CodeSystem).
INS_TYPES: Final[dict[str, tuple[str, str]]] = {
    OID_NIR: ("INS-NIR", "NIR définitif"),
    OID_NIA: ("INS-NIA", "NIR temporaire"),
    OID_TEST: ("INS-NIR-TEST", "NIR TEST"),
    OID_DEMO: ("INS-NIR-DEMO", "NIR DEMO"),
}

FR_CORE_PATIENT_INS: Final = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins"
FR_CORE_V2_0203: Final = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
IDENTITY_RELIABILITY: Final = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability"
)
IDENTITY_STATUS_CS: Final = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status"
METHOD_COLLECTION_CS: Final = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-method-collection"
BIRTH_PLACE: Final = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE: Final = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
COMMUNE_CS: Final = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
BIRTH_LIST_GIVEN_NAME: Final = (
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-birth-list-given-name"
)

#: Synthetic birth dates are drawn in the 100 years before this fixed day (no clock).
REFERENCE_DAY: Final = date(2025, 6, 30)

#: Columns of the CSV format, in order (``;``-separated, UTF-8, one header row).
CSV_COLUMNS: Final = (
    "matricule",  # 15 characters: 13 + key (NIR or NIA)
    "oid",  # assigning authority: 1.2.250.1.213.1.4.8 NIR, .9 NIA, .10 test, .11 demo
    "nom_naissance",  # birth name, INSi alphabet (A-Z, space, hyphen, apostrophe)
    "prenoms",  # birth first names separated by one space, first one first
    "sexe",  # M or F
    "date_naissance",  # YYYY-MM-DD, or partial YYYY-MM / YYYY (also read: YYYY-MM-00, YYYY-00-00)
    "lieu_naissance",  # COG INSEE code: commune (2A/2B for Corsica, 97x overseas) or 99xxx country
    "historique",  # previous matricules (INSHISTO), space-separated, may be empty
)

# INSi input constraints (domain-spec §1.5): birth name ^[A-Z\-' ]+$, first name ^[A-Z\-']+$.
_NOM_RE: Final = re.compile(r"[A-Z](?:[A-Z' -]*[A-Z])?")
_PRENOM_RE: Final = re.compile(r"[A-Z](?:[A-Z'-]*[A-Z])?")
_DATE_RE: Final = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_COG_RE: Final = re.compile(
    r"(?:0[1-9]|1\d|2[1-9AB]|[3-8]\d|9[0-5])\d{3}|97[1-8]\d{2}|98[4-9]\d{2}|99\d{3}"
)
_MATRICULE_RE: Final = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}")


@dataclass(frozen=True, slots=True)
class ReferenceIdentity:
    """One identity of the reference base: matricule INS, OID and the five traits INS.

    https://esante.gouv.fr/produits-services/referentiel-ins (traits INS, INSHISTO)
    """

    matricule: str
    oid: str
    nom_naissance: str
    prenoms: tuple[str, ...]
    sexe: str
    date_naissance: str
    lieu_naissance: str
    historique: tuple[str, ...] = ()

    @property
    def premier_prenom(self) -> str:
        """The first birth first name, as the software extracts it from the list.

        https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
        """
        return self.prenoms[0] if self.prenoms else ""

    @property
    def liste_prenoms(self) -> str:
        """The birth first names separated by spaces, as INSi returns them.

        https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-birth-list-given-name.html
        """
        return " ".join(self.prenoms)


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected row of a reference file: its 1-based line number and why.

    https://esante.gouv.fr/produits-services/referentiel-ins
    """

    line: int
    message: str


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def normalize_date(text: str) -> str:
    """A birth date as FHIR ``date``: YYYY-MM-DD, or partial YYYY-MM / YYYY (``00`` = unknown).

    https://hl7.org/fhir/R4/datatypes.html#date
    """
    match = _DATE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"birth date {text!r} is not YYYY-MM-DD, YYYY-MM or YYYY")
    year_s, month_s, day_s = match.groups()
    year = int(year_s)
    if year < 1800:
        raise ValueError(f"birth year {year} is out of range")
    if month_s is None or month_s == "00":
        if day_s not in (None, "00"):
            raise ValueError(f"birth date {text!r} has a day but no month")
        return year_s
    month = int(month_s)
    if not 1 <= month <= 12:
        raise ValueError(f"birth month {month_s} is not 01..12")
    if day_s is None or day_s == "00":
        return f"{year_s}-{month_s}"
    date(year, month, int(day_s))  # raises ValueError on 31 April, 29 February 2023, ...
    return f"{year_s}-{month_s}-{day_s}"


#: Born in Algeria, Morocco or Tunisia before independence: NIR "département" codes 91-96.
_PRE_INDEPENDENCE: Final = {"99352": ("91", "92", "93", "94"), "99350": ("95",), "99351": ("96",)}


def _place_in_matricule(matricule: str, cog: str, year: int) -> bool:
    place = matricule[5:10]
    if place == cog:
        return True
    if cog[:2] in ("2A", "2B") and place[:2] == "20" and place[2:] == cog[2:]:
        return year < 1976  # Corsica was the single département 20 until 1976
    return place[:2] in _PRE_INDEPENDENCE.get(cog, ())


def problems(identity: ReferenceIdentity) -> list[str]:
    """Everything wrong with one identity: key, sexe, date, COG shape, INSi alphabet, coherence.

    https://esante.gouv.fr/produits-services/referentiel-ins (traits INS; NIR key per stdnum)
    """
    found: list[str] = []
    if identity.oid not in INS_TYPES:
        found.append(f"unknown INS OID {identity.oid!r}")
    matricule = identity.matricule
    key_ok = False
    if not _MATRICULE_RE.fullmatch(matricule):
        found.append(f"matricule {matricule!r} is not 13 characters + a 2-digit key")
    else:
        try:
            stdnum_nir.validate(matricule)
            key_ok = True
        except ValidationError:
            found.append(
                f"matricule {matricule} has a wrong key (expected "
                f"{stdnum_nir.calc_check_digits(matricule)})"
            )
    if identity.sexe not in ("M", "F"):
        found.append(f"sexe {identity.sexe!r} is not M or F")
    if not _NOM_RE.fullmatch(identity.nom_naissance):
        found.append(f"nom de naissance {identity.nom_naissance!r} is outside the INSi alphabet")
    if not identity.prenoms:
        found.append("no prénom de naissance")
    for prenom in identity.prenoms:
        if not _PRENOM_RE.fullmatch(prenom):
            found.append(f"prénom {prenom!r} is outside the INSi alphabet")
    year = month = 0
    try:
        normalized = normalize_date(identity.date_naissance)
        if normalized != identity.date_naissance:
            found.append(f"birth date {identity.date_naissance!r} is not normalized")
        year = int(normalized[:4])
        month = int(normalized[5:7]) if len(normalized) >= 7 else 0
    except ValueError as exc:
        found.append(str(exc))
    cog = identity.lieu_naissance
    cog_ok = bool(_COG_RE.fullmatch(cog))
    if not cog_ok:
        found.append(f"lieu de naissance {cog!r} is not a COG code")
    elif cog == "99100":
        found.append("lieu de naissance 99100 is France itself, not a country abroad")
    if key_ok and year:
        found.extend(_coherence(identity, year, month, cog_ok))
    for old in identity.historique:
        if not stdnum_nir.is_valid(old):
            found.append(f"historic matricule {old!r} is invalid")
        elif old == matricule:
            found.append(f"historic matricule {old} is the active one")
    return found


def _coherence(identity: ReferenceIdentity, year: int, month: int, cog_ok: bool) -> list[str]:
    found: list[str] = []
    m = identity.matricule
    if identity.oid == OID_NIA:
        if m[0] not in "78":
            found.append(f"NIA {m} does not start with 7 or 8")
    elif identity.sexe in ("M", "F") and m[0] != ("1" if identity.sexe == "M" else "2"):
        found.append(f"matricule sex digit {m[0]} does not match sexe {identity.sexe}")
    if m[1:3] != f"{year % 100:02d}":
        found.append(f"matricule year {m[1:3]} does not match the birth year {year}")
    if month and m[3:5] != f"{month:02d}":
        found.append(f"matricule month {m[3:5]} does not match the birth month {month:02d}")
    if not month and int(m[3:5]) < 20:
        found.append(f"matricule month {m[3:5]} given for an unknown birth month")
    if cog_ok and not _place_in_matricule(m, identity.lieu_naissance, year):
        found.append(f"matricule place {m[5:10]} does not match the COG {identity.lieu_naissance}")
    return found


# --------------------------------------------------------------------------------------------
# Files: CSV (;) and JSON Lines, optionally gzip-compressed, streamed both ways
# --------------------------------------------------------------------------------------------


def _format_of(path: Path, head: bytes) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "jsonl" if head.lstrip().startswith(b"{") else "csv"


def _open_text(path: Path, mode: str) -> IO[str]:
    if mode == "r":
        with path.open("rb") as probe:
            gz = probe.read(2) == b"\x1f\x8b"
    else:
        gz = path.name.lower().endswith(".gz")
    if gz:
        binary = gzip.GzipFile(path, mode + "b")
        return io.TextIOWrapper(binary, encoding="utf-8", newline="")
    return path.open(mode, encoding="utf-8", newline="")


def write(identities: Iterable[ReferenceIdentity], path: str | Path) -> int:
    """Stream identities to ``path`` (``.csv`` or ``.jsonl``, ``.gz`` allowed); returns the count.

    https://www.rfc-editor.org/rfc/rfc4180 (CSV, here ``;``-separated) and https://jsonlines.org
    """
    target = Path(path)
    name = target.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        fmt = "csv"
    elif name.endswith((".jsonl", ".ndjson")):
        fmt = "jsonl"
    else:
        raise ValueError(f"unknown reference file extension for {target.name!r}: .csv or .jsonl")
    count = 0
    with _open_text(target, "w") as out:
        if fmt == "csv":
            writer = csv.writer(out, delimiter=";", lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            for ident in identities:
                writer.writerow(
                    (
                        ident.matricule,
                        ident.oid,
                        ident.nom_naissance,
                        " ".join(ident.prenoms),
                        ident.sexe,
                        ident.date_naissance,
                        ident.lieu_naissance,
                        " ".join(ident.historique),
                    )
                )
                count += 1
        else:
            for ident in identities:
                record = {
                    "matricule": ident.matricule,
                    "oid": ident.oid,
                    "nom_naissance": ident.nom_naissance,
                    "prenoms": list(ident.prenoms),
                    "sexe": ident.sexe,
                    "date_naissance": ident.date_naissance,
                    "lieu_naissance": ident.lieu_naissance,
                    "historique": list(ident.historique),
                }
                out.write(orjson.dumps(record).decode())
                out.write("\n")
                count += 1
    return count


def _identity_or_error(line: int, fields: dict[str, Any]) -> ReferenceIdentity | RowError:
    missing = [c for c in CSV_COLUMNS[:7] if not fields.get(c)]
    if missing:
        return RowError(line, "missing " + ", ".join(missing))
    prenoms = fields["prenoms"]
    historique = fields.get("historique") or ()
    if isinstance(prenoms, str):
        prenoms = prenoms.split()
    if isinstance(historique, str):
        historique = historique.split()
    scalars = [fields[c] for c in CSV_COLUMNS[:7] if c != "prenoms"]
    if (
        not all(isinstance(v, str) for v in scalars)
        or not isinstance(prenoms, list | tuple)
        or not isinstance(historique, list | tuple)
        or not all(isinstance(p, str) for p in [*prenoms, *historique])
    ):
        return RowError(line, "fields must be strings (prenoms, historique: strings or lists)")
    raw_date = fields["date_naissance"].strip()
    try:
        birth = normalize_date(raw_date)
    except ValueError:
        birth = raw_date  # reported by problems()
    identity = ReferenceIdentity(
        matricule=fields["matricule"].strip().upper(),
        oid=fields["oid"].strip(),
        nom_naissance=fields["nom_naissance"].strip(),
        prenoms=tuple(p.strip() for p in prenoms),
        sexe=fields["sexe"].strip(),
        date_naissance=birth,
        lieu_naissance=fields["lieu_naissance"].strip().upper(),
        historique=tuple(h.strip() for h in historique),
    )
    found = problems(identity)
    return RowError(line, "; ".join(found)) if found else identity


def read(path: str | Path) -> Iterator[ReferenceIdentity | RowError]:
    """Stream a reference file, validating every row; bad rows come out as :class:`RowError`.

    The format (CSV or JSON Lines, plain or gzip) is taken from the extension, else sniffed.
    https://esante.gouv.fr/produits-services/referentiel-ins
    """
    source = Path(path)
    with _open_text(source, "r") as stream:
        head = stream.read(256)
        stream.seek(0)
        if _format_of(source, head.encode()) == "jsonl":
            yield from _read_jsonl(stream)
        else:
            yield from _read_csv(stream)


def _read_jsonl(stream: IO[str]) -> Iterator[ReferenceIdentity | RowError]:
    for line_no, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield RowError(line_no, f"invalid JSON: {exc}")
            continue
        if not isinstance(record, dict):
            yield RowError(line_no, "a line must hold one JSON object")
            continue
        yield _identity_or_error(line_no, record)


def _read_csv(stream: IO[str]) -> Iterator[ReferenceIdentity | RowError]:
    reader = csv.reader(stream, delimiter=";")
    header = next(reader, None)
    if header is None:
        return
    columns = [h.strip().lstrip("\ufeff").lower() for h in header]
    absent = [c for c in CSV_COLUMNS[:7] if c not in columns]
    if absent:
        yield RowError(1, "header lacks column(s) " + ", ".join(absent))
        return
    position = {name: columns.index(name) for name in CSV_COLUMNS if name in columns}
    width = len(columns)
    for row in reader:
        line_no = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            yield RowError(line_no, f"{len(row)} fields instead of {width}")
            continue
        yield _identity_or_error(line_no, {name: row[i] for name, i in position.items()})


# --------------------------------------------------------------------------------------------
# FHIR: FR Core fr-core-patient-ins
# --------------------------------------------------------------------------------------------


def _history_oid(active_oid: str, old: str) -> str:
    if active_oid == OID_NIR and old[:1] in ("7", "8"):
        return OID_NIA
    return active_oid


def to_patient(identity: ReferenceIdentity, identity_status: str = "RECUP") -> dict[str, Any]:
    """The identity as an FR Core INS Patient (INS identifier, official name, birth place).

    Previous matricules (INSHISTO) become identifiers with ``use`` = ``old``.
    https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
    """

    def identifier(oid: str, value: str, use: str) -> dict[str, Any]:
        type_code, type_display = INS_TYPES[oid]
        return {
            "use": use,
            "type": {
                "coding": [{"system": FR_CORE_V2_0203, "code": type_code, "display": type_display}]
            },
            "system": f"urn:oid:{oid}",
            "value": value,
        }

    identifiers = [
        identifier(
            identity.oid, identity.matricule, "temp" if identity.oid == OID_NIA else "official"
        )
    ]
    for old in identity.historique:
        identifiers.append(identifier(_history_oid(identity.oid, old), old, "old"))
    return {
        "resourceType": "Patient",
        "meta": {"profile": [FR_CORE_PATIENT_INS]},
        "extension": [
            {
                "url": IDENTITY_RELIABILITY,
                "extension": [
                    {
                        "url": "identityStatus",
                        "valueCoding": {"system": IDENTITY_STATUS_CS, "code": identity_status},
                    },
                    {
                        "url": "methodCollection",
                        "valueCoding": {"system": METHOD_COLLECTION_CS, "code": "INSI"},
                    },
                ],
            },
            {
                "url": BIRTH_PLACE,
                "valueAddress": {
                    "extension": [
                        {
                            "url": INSEE_CODE,
                            "valueCoding": {"system": COMMUNE_CS, "code": identity.lieu_naissance},
                        }
                    ]
                },
            },
        ],
        "identifier": identifiers,
        "name": [
            {
                "extension": [
                    {"url": BIRTH_LIST_GIVEN_NAME, "valueString": identity.liste_prenoms}
                ],
                "use": "official",
                "family": identity.nom_naissance,
                "given": [identity.premier_prenom],
            }
        ],
        "gender": "male" if identity.sexe == "M" else "female",
        "birthDate": identity.date_naissance,
    }


_OID_OF_SYSTEM: Final = {f"urn:oid:{oid}": oid for oid in INS_TYPES}


def from_patient(patient: dict[str, Any]) -> ReferenceIdentity:
    """The identity carried by an FR Core INS Patient; ``ValueError`` says what is missing.

    https://hl7.fr/ig/fhir/core/StructureDefinition-fr-core-patient-ins.html
    """
    active: tuple[str, str] | None = None
    history: list[str] = []
    for ident in patient.get("identifier") or ():
        oid = _OID_OF_SYSTEM.get(ident.get("system", ""))
        value = ident.get("value")
        if oid is None or not isinstance(value, str):
            continue
        if ident.get("use") == "old":
            history.append(value)
        elif active is None:
            active = (oid, value)
    if active is None:
        raise ValueError("the Patient has no INS identifier (urn:oid:1.2.250.1.213.1.4.8..11)")
    official = next((n for n in patient.get("name") or () if n.get("use") == "official"), None)
    if official is None or not official.get("family"):
        raise ValueError("the Patient has no official name with a family (nom de naissance)")
    listed = next(
        (
            e.get("valueString")
            for e in official.get("extension") or ()
            if e.get("url") == BIRTH_LIST_GIVEN_NAME
        ),
        None,
    )
    prenoms = tuple(listed.split()) if listed else tuple(official.get("given") or ())
    if not prenoms:
        raise ValueError("the Patient official name has no given name")
    gender = patient.get("gender")
    if gender not in ("male", "female"):
        raise ValueError(f"the Patient gender {gender!r} is neither male nor female")
    if not patient.get("birthDate"):
        raise ValueError("the Patient has no birthDate")
    cog = None
    for ext in patient.get("extension") or ():
        if ext.get("url") == BIRTH_PLACE:
            for sub in (ext.get("valueAddress") or {}).get("extension") or ():
                if sub.get("url") == INSEE_CODE:
                    cog = (sub.get("valueCoding") or {}).get("code")
    if not cog:
        raise ValueError("the Patient birthPlace has no INSEE code")
    return ReferenceIdentity(
        matricule=active[1],
        oid=active[0],
        nom_naissance=official["family"],
        prenoms=prenoms,
        sexe="M" if gender == "male" else "F",
        date_naissance=normalize_date(patient["birthDate"]),
        lieu_naissance=cog,
        historique=tuple(history),
    )


# --------------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------------
#
# Uniqueness without memory: the matricule space (sex x birth month x place slot x order group)
# is walked through a seeded Feistel permutation, so the i-th draw is a distinct point and needs
# no set of used numbers. Each place slot owns 36 order numbers: 9 groups of 4, where offset 0 is
# the drawn identity, 1 its same-place companion (twin, homonym of the other sex) and 2 the
# companion of the slot half the table away (homonym born elsewhere). Names, days and first
# names come from a plain seeded random.Random, in generation order.


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in text.replace("\n", ",").split(",") if n.strip()))


# Common French family names, most frequent first for the first few hundred, then a long tail of
# regional (Breton, Alsatian, Occitan, Corsican, Basque, Flemish, Creole) and immigration-origin
# names frequent in France. Written by hand after public frequency rankings (approximate order,
# not an official extract); unaccented, as INSi returns them. ~5% of synthetic names are
# compounds of two of these (hyphen or space), which brings the distinct names to many thousands.
# fmt: off
_FAMILY_TEXT = """
MARTIN,BERNARD,THOMAS,PETIT,ROBERT,RICHARD,DURAND,DUBOIS,MOREAU,LAURENT,SIMON,MICHEL,LEFEBVRE
LEROY,ROUX,DAVID,BERTRAND,MOREL,FOURNIER,GIRARD,BONNET,DUPONT,LAMBERT,FONTAINE,ROUSSEAU,VINCENT
MULLER,LEFEVRE,FAURE,ANDRE,MERCIER,BLANC,GUERIN,BOYER,GARNIER,CHEVALIER,FRANCOIS,LEGRAND
GAUTHIER,GARCIA,PERRIN,ROBIN,CLEMENT,MORIN,NICOLAS,HENRY,ROUSSEL,MATHIEU,GAUTIER,MASSON,MARCHAND
DUVAL,DENIS,DUMONT,MARIE,LEMAIRE,NOEL,MEYER,DUFOUR,MEUNIER,BRUN,BLANCHARD,GIRAUD,JOLY,RIVIERE
LUCAS,BRUNET,GAILLARD,BARBIER,ARNAUD,MARTINEZ,GERARD,ROCHE,RENARD,SCHMITT,ROY,LEROUX,COLIN,VIDAL
CARON,PICARD,ROGER,FABRE,AUBERT,LEMOINE,RENAUD,DUMAS,LACROIX,OLIVIER,PHILIPPE,BOURGEOIS,PIERRE
BENOIT,REY,LECLERC,PAYET,ROLLAND,LECLERCQ,GUILLAUME,LECOMTE,LOPEZ,JEAN,DUPUY,GUILLOT,HUBERT
BERGER,CARPENTIER,SANCHEZ,DUPUIS,MOULIN,LOUIS,DESCHAMPS,HUET,VASSEUR,PEREZ,BOUCHER,FLEURY,ROYER
KLEIN,JACQUET,ADAM,PARIS,POIRIER,MARTY,AUBRY,GUYOT,CARRE,CHARLES,RENAULT,CHARPENTIER,MENARD
MAILLARD,BARON,BERTIN,BAILLY,HERVE,SCHNEIDER,FERNANDEZ,LE GALL,COLLET,LEGER,BOUVIER,JULIEN
PREVOST,MILLET,PERROT,DANIEL,LE ROUX,COUSIN,GERMAIN,BRETON,BESSON,LANGLOIS,REMY,LE GOFF,PELLETIER
LEVEQUE,PERRIER,LEBLANC,BARRE,LEBRUN,MARCHAL,WEBER,MALLET,HAMON,BOULANGER,JACOB,MONNIER,MICHAUD
RODRIGUEZ,GUICHARD,GILLET,ETIENNE,GRONDIN,POULAIN,TESSIER,CHEVALLIER,COLLIN,CHAUVIN,DA SILVA
BOUCHET,GAY,LEMAITRE,BENARD,MARECHAL,HUMBERT,REYNAUD,ANTOINE,HOARAU,PERRET,BARTHELEMY,CORDIER
PICHON,LEJEUNE,GILBERT,LAMY,DELAUNAY,PASQUIER,CARLIER,LAPORTE,GONZALEZ,ALEXANDRE,BOURDON,JOUBERT
NGUYEN,DOS SANTOS,FERREIRA,PEREIRA,RODRIGUES,ALVES,MARTINS,GOMES,LOPES,FERNANDES,GONCALVES
RIBEIRO,CARVALHO,TEIXEIRA,SOUSA,COSTA,MENDES,MONTEIRO,CARDOSO,PINTO,DE OLIVEIRA,DA COSTA
OLIVEIRA,SANTOS,RAMOS,MOREIRA,CORREIA,SOARES,COELHO,MACHADO,NUNES,VIEIRA,NEVES,TAVARES,BARBOSA
LAGARDE,BRUNEAU,LEBON,CHAUVET,BOUTIN,BAUDRY,BAUDOUIN,BERTHELOT,BESNARD,BIGOT,BLONDEL,BOISSON
BONNEAU,BOUQUET,BOURGEOIS,BOUSQUET,BRIAND,BRUNEL,BUISSON,CAMUS,CHAMPION,CHARRIER,CHARTIER
CHAUVEAU,CHEVALLIER,CLAUDE,COLAS,COLLIGNON,COMBES,CORNU,COULON,COURTOIS,CUVELIER,DELATTRE
DELMAS,DEVAUX,DIDIER,DROUET,DUBOST,DUCHENE,DUFOUR,DUHAMEL,DUMOULIN,DUPRE,DURET,FAIVRE,FERRAND
FERRY,FLAMENT,FORESTIER,FOUCHER,FOUQUET,FRANCK,GALLET,GAUDIN,GEOFFROY,GERVAIS,GIBERT,GODARD
GODIN,GOSSELIN,GRAS,GRENIER,GRIMAUD,GROS,GUIBERT,GUILBERT,GUYON,HAMEL,HEBERT,HOUDE,HUGUET,JAMES
JOURDAN,LAINE,LANGLAIS,LAUNAY,LAVAL,LEBRETON,LECOQ,LEDUC,LEFORT,LEGENDRE,LEGROS,LELIEVRE,LEMAIRE
LENOIR,LEPAGE,LEROUX,LESAGE,LEVY,LOISEAU,MAILLOT,MALLET,MARCEL,MARQUES,MARTEL,MAUREL,MAURY,MILLOT
MONTAGNE,MOREL,NAVARRO,NOEL,OGER,PAGES,PARENT,PAUL,PERON,PETITJEAN,PIERRE,PINEAU,POIRIER,PONS
PORCHER,POTIER,POUGET,PRUVOST,RAYNAUD,REGNIER,REYNAUD,RICARD,RIGAUD,RIOU,ROBERT,ROBIN,ROCHER
RONDEAU,ROUSSET,ROUSSELLE,SAUVAGE,SCHMIDT,SERRE,SIMONET,TANGUY,THIBAULT,THIERY,TOUSSAINT,VALLEE
VERDIER,VIAL,VIGNERON,VILLARD,WAGNER,WEISS,ZIMMERMANN,HOFFMANN,FISCHER,HUBER,KELLER,BECKER,WALTER
KOCH,MEYER,SCHWARTZ,LANG,BAUER,HARTMANN,RICHTER,WOLFF,ROTH,FRITSCH,KIEFFER,MEYERHOFFER,BRAUN
SCHAEFFER,SCHMITT,KLEIN,WEBER,FUCHS,HAAS,HERRMANN,JUNG,KRAEMER,LUDWIG,MEISTER,OBERLE,RIEDINGER
LE BRIS,LE CORRE,LE BIHAN,LE GUEN,LE MOAL,LE BRETON,LE FLOCH,LE GUENNEC,LE BERRE,LE BORGNE
LE DANTEC,LE GAL,LE GALLO,LE HIR,LE LAY,LE MEUR,LE PAPE,LE QUERE,LE ROY,LE SAUX,LE TOUX,LE BRAS
LE BOT,LE CAM,LE COZ,LE DOUARIN,LE DREAU,LE FUR,LE GOUIC,LE GUILLOU,LE HENAFF,LE MAO,LE NOC
LE PENNEC,LE ROUZIC,LE TALLEC,LE VOT,LE BLANC,LE BRUN,LE CLERC,LE FEVRE,LE GRAND,LE MOINE
LE NORMAND,LE PAGE,LE PICARD,LE PRINCE,LE BLOND,LE BAIL,LE COQ,LE CORNEC,LE FLOHIC,LE GUYADER
LE BOULCH,LE GAC,LE GOASCOZ,LE MENN,KERGOAT,KERMARREC,KERVELLA,KERBRAT,KERNEIS,JEZEQUEL,MORVAN
GUEGUEN,GUEGAN,TANGUY,CADIOU,CORRE,FLOCH,GOURIOU,HELIAS,MADEC,NICOLAS,PRIGENT,QUEMENER,RIOU
SALAUN,TREGUER,ABGRALL,BOSSER,CARADEC,COATANEA,DERRIEN,GUILLOU,HENAFF,JAOUEN,LAOUENAN,OLLIVIER
D'ALMEIDA,D'ANGELO,D'HONDT,D'AUBIGNE,D'ARCO,D'ANDREA,D'AMICO,D'AMATO,D'ALESSANDRO,D'HAENE
DE SOUSA,DE JESUS,DE SMET,DE LA CRUZ,DE CARVALHO,DE ALMEIDA,DE FREITAS,DE MATOS,DE BRITO
DE SA,DE CASTRO,DE LIMA,DE BACKER,DE VOS,DE WITTE,DE GROOT,DE BRUYN,DE LUCA,DE ROSA,DE SANTIS
DE SIMONE,DE MARCO,DE ANGELIS,DUJARDIN,DUCROCQ,DEBRUYNE,VANDAMME,VERHAEGHE,DEVOS,DEWAELE
VAN DAMME,VAN DE VELDE,VAN HOVE,DEMEYER,DESCAMPS,DECOCK,DELANNOY,DUBRULLE,LEFRANCOIS,LEMIRE
BRIGNON,DESMET,DEGRAVE,DELOBEL,DEBAISIEUX,DESREUMAUX,DUQUESNE,HENNEBELLE,LECLERCQ,MAES,MAHIEU
SANTONI,ALBERTINI,LUCIANI,FILIPPI,PAOLI,ROSSI,BARTOLI,GIACOMETTI,MATTEI,COLONNA,CASANOVA
ORSINI,PIETRI,LECCIA,POLI,SUSINI,FRANCESCHI,MARCHETTI,ANTONIETTI,CECCALDI,CASTELLI,SIMONI
ETCHEVERRY,ETCHEGARAY,ETCHEBERRY,IRIGOYEN,ARRIETA,ELISSALDE,GOYHENECHE,HARISTOY,ITHURRALDE
LARRAMENDY,MENDIBURU,OCAFRAIN,ARAMBURU,ECHEVERRIA,GARAT,LAFITTE,LABORDE,LARROQUE,CAZENAVE
POUYADE,LASSERRE,CASSAGNE,LAGRANGE,LACOSTE,LAFON,LAFONT,LAPEYRE,LARRIEU,LATOUR,LAVERGNE,MARTY
BOYER,ESCOFFIER,FABRE,FAGES,FOURNIER,MAURIN,PUJOL,ROUQUETTE,SABATIER,SEGUY,SICARD,TEISSIER
VIDAL,VIGUIER,ALRIC,AMIEL,ARNAL,ASTRUC,AZEMA,BALDY,BARTHES,BONNAFOUS,BOUSQUET,CABROL,CASTAN
COMBE,COSTES,COUDERC,DELPECH,ESTEVE,FABRY,FALGUIERES,FERRIE,GALTIER,GAUBERT,LACAZE,LAFFONT
MAUREL,MIQUEL,PAGES,RIEU,ROUX,SALLES,SERIEYS,SOULIE,TEYSSEDRE,VAISSIERE,VERGNES,VIALA
PAYET,HOARAU,GRONDIN,FONTAINE,RIVIERE,ROBERT,TECHER,LEBRETON,BOYER,DIJOUX,MAILLOT,NATIVEL
GUEZELLO,SAUTRON,TURPIN,VIRAPIN,CADET,ETHEVE,GRONDIN,HOAREAU,LAURET,MUSSARD,SINAMA,VIRAMA
CLAIRE,CELESTE,ALEXIS,JOSEPH,CHARLES-ANGELE,DORVAL,EUGENE,JEAN-BAPTISTE,JEAN-LOUIS,JEAN-PIERRE
JEAN-CHARLES,JEAN-FRANCOIS,JEAN-MARIE,JEAN-JOSEPH,MARIE-SAINTE,SAINT-LOUIS,SAINT-PRIX
BENALI,BENAMAR,BENSAID,BENABDALLAH,BOUZID,BRAHIMI,BELKACEM,CHERIF,HADDAD,HAMIDI,HAMMOUDI
KACI,KHELIFI,MANSOURI,MEDDAH,MEZIANE,MOKRANI,OUALI,RAHMANI,SAIDI,SLIMANI,TOUATI,ZERROUKI,AMRANI
BOUAZIZ,CHAOUI,DAOUDI,EL AMRANI,EL IDRISSI,EL ALAOUI,BENNANI,BERRADA,CHRAIBI,FASSI,LAHLOU
TAZI,ZIANI,BOUKHARI,BELHADJ,BEN SALAH,BEN AMOR,BEN YOUSSEF,BOUGHANMI,GHARBI,JEBALI,TRABELSI
MEBARKI,AIT AHMED,AIT ALI,AIT OUFELLA,AMARA,ABDELLI,AOUDIA,BOUDJEMA,CHABANE,DJEBBAR,HAMADI
DIALLO,DIOP,NDIAYE,TRAORE,KONE,COULIBALY,CISSE,DIARRA,SYLLA,CAMARA,SOW,BA,FALL,DIAKITE,KEITA
TOURE,SANOGO,BAMBA,OUATTARA,DIABY,DIALLO,DIOUF,GUEYE,MBAYE,SARR,SECK,THIAM,WADE,FOFANA,KANTE
MENSAH,KOUASSI,KOFFI,YAO,KOUAME,NGUEMA,MBA,ONDO,MVOGO,ESSOMBA,ATANGANA,NKOULOU,MBARGA,FOTSO
TRAN,LE,PHAM,HOANG,HUYNH,PHAN,VU,VO,DANG,BUI,DO,HO,NGO,DUONG,LY,WANG,LI,ZHANG,LIU,CHEN,YANG
HUANG,ZHAO,WU,ZHOU,LIN,CHAN,WONG,TANG,YILMAZ,KAYA,DEMIR,SAHIN,CELIK,YILDIZ,AYDIN,OZTURK,ARSLAN
DOGAN,KILIC,ASLAN,CETIN,KARA,KOC,KURT,OZDEMIR,SIMSEK,POLAT,KOWALSKI,NOWAK,WISNIEWSKI,LEWANDOWSKI
KAMINSKI,ZIELINSKI,SZYMANSKI,WOZNIAK,DABROWSKI,KOZLOWSKI,MAZUR,KRAWCZYK,POPESCU,IONESCU,POPA
RUSSO,FERRARI,ESPOSITO,BIANCHI,ROMANO,COLOMBO,RICCI,MARINO,GRECO,BRUNO,GALLO,CONTI,DE LUCA
MANCINI,COSTA,GIORDANO,RIZZO,LOMBARDI,MORETTI,BARBIERI,FONTANA,SANTORO,MARIANI,RINALDI,CARUSO
FERRARA,GALLI,MARTINI,LEONE,LONGO,GENTILE,MARTINELLI,VITALE,LOMBARDO,SERRA,COPPOLA,DE SANTIS
GARCIA,MARTINEZ,LOPEZ,SANCHEZ,PEREZ,GONZALEZ,RODRIGUEZ,FERNANDEZ,GOMEZ,RUIZ,DIAZ,HERNANDEZ
ALVAREZ,JIMENEZ,MORENO,MUNOZ,ALONSO,ROMERO,NAVARRO,GUTIERREZ,TORRES,DOMINGUEZ,VAZQUEZ,RAMIREZ
GIL,SERRANO,BLANCO,MOLINA,SUAREZ,ORTEGA,DELGADO,CASTRO,ORTIZ,RUBIO,MARIN,SANZ,IGLESIAS,MEDINA
ABADIE,ABEL,ACHARD,ADRIEN,AILLAUD,ALBERT,ALLAIN,ALLARD,AMIOT,ANCEL,ANGER,ARCHAMBAULT,ARMAND
ARNOULD,ARNOUX,AUBIN,AUBRUN,AUDIBERT,AUDOUIN,AUGER,AUGIER,AUVRAY,AVRIL,BABIN,BACHELET,BAILLEUL
BARBEAU,BARBOT,BARDET,BARDIN,BARRAULT,BARREAU,BARRET,BARTHE,BASSET,BASTIEN,BATAILLE,BAUDET
BAUDIN,BAZIN,BEAUFILS,BEAUMONT,BECHET,BEGUIN,BELIN,BELLANGER,BELLEC,BERNIER,BERTHIER,BERTON
BESSE,BESSIERE,BIDAULT,BILLARD,BILLON,BINET,BISSON,BLAIN,BLAISE,BLANCHET,BLANCHON,BLONDEAU
BLOT,BODIN,BOILEAU,BOIS,BOISSIER,BONHOMME,BONNARD,BONNEFOY,BONNIN,BORDES,BOREL,BOSSARD,BOUCHARD
BOUDET,BOUDIN,BOULAY,BOULET,BOURDIN,BOURGOIN,BOURRET,BOUTET,BOUTILLIER,BOUVET,BRAULT,BRESSON
BRIERE,BRISSET,BROCHARD,BRUNO,BRUYERE,BUREAU,CAILLAUD,CAILLET,CAMBON,CAMUS,CANTIN,CARLES,CARPENTIER
CARRIER,CASTEL,CAUSSE,CAZALS,CELLIER,CHABERT,CHAMBON,CHAPELLE,CHAPUIS,CHAPUT,CHARBONNIER,CHARDON
CHARLET,CHARLOT,CHARRON,CHASSAGNE,CHATELAIN,CHAUMONT,CHAUSSE,CHAUVEL,CHAUVIERE,CHEMIN,CHENU
CHERON,CHESNEAU,CHOPIN,CHRETIEN,CLAVEL,CLERC,COCHET,COLLARD,COLLINET,COMTE,CONSTANT,COQUELIN
CORBIN,CORDONNIER,CORNET,COSTE,COTTIN,COUDRAY,COULOMB,COURTIN,COUTURIER,CROS,CROUZET,DAMIEN
DANIEL,DARDENNE,DAUPHIN,DAVID,DEBRAY,DEFORGES,DEGOIS,DELABRE,DELACOUR,DELAGE,DELAHAYE,DELAMARE
DELANOE,DELAPORTE,DELARUE,DELCROIX,DELEPINE,DELHAYE,DELORME,DELPIERRE,DEMANGE,DENOYELLE,DERRIEN
DESBOIS,DESCHAMPS,DESJARDINS,DESMARETS,DESPRES,DESROCHES,DEVILLE,DIOT,DOUCET,DROUIN,DUBOC
DUBREUIL,DUCHEMIN,DUCLOS,DUFRESNE,DUGUET,DUMONTIER,DUPIN,DUPRAT,DURIEUX,DUTHEIL,ESNAULT,EVRARD
FABIEN,FAUCHER,FAUCON,FAUVEL,FAVIER,FAVRE,FERNAND,FEVRE,FILLON,FLAMAND,FLEURIOT,FOUCAULT,FOURCADE
FRADIN,FRANCOIS,FREMONT,FRESNEL,FROMENT,GABORIT,GAGNON,GALLAND,GALLOIS,GARAUD,GARDIN,GARREAU
GASCON,GASNIER,GASTON,GAUDRY,GAULTIER,GAUTRON,GENDRE,GENET,GENTIL,GEORGES,GIGNOUX,GILLES,GIRAULT
GOBERT,GOMBERT,GONNET,GOUJON,GOULET,GOURDON,GRANGER,GRAVIER,GREGOIRE,GROSJEAN,GUERIN,GUERY,GUIGNARD
GUILLEMIN,GUILLET,GUILLON,GUITTON,HAMELIN,HARDY,HAUTIER,HEBRARD,HENON,HENRIOT,HERAULT,HERVIEU
HOUEL,HOUSSIN,HUGON,HUGUENIN,ISNARD,JACQUEMIN,JACQUES,JACQUOT,JAMET,JANVIER,JARDIN,JEANNIN,JOLIVET
JOLLY,JOSSE,JOUAN,JOUANNO,JOUVE,JUILLARD,LABBE,LACOUR,LAFARGE,LAFORGE,LAGACHE,LALANDE,LAMOTTE
LANDRY,LANOE,LAPLACE,LARCHER,LAROCHE,LAURENS,LAVIGNE,LEBEAU,LEBLOND,LEBOEUF,LEBOUCHER,LECERF
LECOINTE,LEFRANC,LEGAY,LEGEAY,LEGOUT,LEGRIS,LEGUAY,LEMONNIER,LEPINE,LEPRETRE,LEROYER,LESCURE
LESUEUR,LETELLIER,LEVASSEUR,LHOMME,LIEVIN,LOUVET,LUCE,MABILLE,MACE,MAGNIER,MAHE,MAIGNAN,MALET
MANGIN,MARC,MARCHESSEAU,MARGUERITE,MARIETTE,MAROT,MARQUET,MARTINEAU,MASSE,MASSIN,MATHE,MATHIS
MAUGER,MAURICE,MAZET,MELLET,MENAGER,MERLE,MESNARD,METAYER,MEUNIER,MIGNOT,MILLERET,MOINE,MOLLET
MONTEIL,MORAND,MOREAUX,MORICE,MOTTE,MOUTON,MULOT,NAUD,NEVEU,NICOLLE,NOIROT,NORMAND,OLLIVIER
PAGNIER,PAPIN,PARIS,PASCAL,PATRY,PAULIN,PECHEUR,PELLERIN,PERCHERON,PERIN,PERRAUD,PERRIN,PERROTIN
PETITPAS,PEYRE,PHILIPPON,PICOT,PIED,PILLET,PINEL,PINSON,PIOT,PLANCHE,POINSOT,POIRAUD,POISSON
POLLET,PONCET,POTHIER,POULET,POUPARD,PRAT,PRIEUR,PROUST,PROVOST,QUENTIN,RABIER,RAFFIN,RAGOT
RAYMOND,REBOUL,REGNAULT,RENOUX,REVEL,RIBOT,RICHER,RIGAL,RIGAUD,RIVET,ROBINEAU,ROBLIN,ROCHETTE
ROGIER,ROLLET,ROSSIGNOL,ROUAULT,ROUGIER,ROUILLARD,ROUSSELOT,ROUVIERE,ROUYER,SABOURIN,SALMON
SAMSON,SANTIER,SARRAZIN,SAULNIER,SAUNIER,SAUVAGEOT,SAVARY,SCHOTT,SERGENT,SIBILLE,SOREL,SOULARD
TABARD,TAILLANDIER,TARDY,TEXIER,THEVENET,THEVENIN,THIBAUD,THOMASSIN,TILLIER,TISSOT,TOURNIER
TRAN VAN,TREMBLAY,TRICHET,TRUCHET,TURPIN,VALENTIN,VALETTE,VALLET,VARIN,VASSEUR,VAUTIER,VEILLARD
VERNET,VERON,VIAUD,VIGIER,VILAIN,VINCENT,VIOLET,VIVIER,VOISIN,WALLET,ZELLER,ABRAHAM,ALLEGRE,AMAR
ATTIA,AZOULAY,BENHAMOU,BENSIMON,COHEN,DAHAN,ELBAZ,GUEDJ,HAYAT,LELLOUCHE,SEBAG,SITBON,ZERBIB
BLOCH,DREYFUS,GOLDBERG,KAHN,LEVI,WEIL,HALIMI,BITTON,BENICHOU,TORDJMAN,ABITBOL,AMSELLEM,OHAYON
ARNOLD,ARTHUR,AUDRY,AUFFRET,AUGUSTIN,BAPTISTE,BARBIER,BARTHELEMY,BELLAMY,BERARD,BERENGER
BERNADOTTE,BESSONNET,BILLAUD,BLANQUET,BOCQUET,BONNAUD,BORDIER,BOSC,BOUGIE,BOURGUIGNON,BOUYER
BRAULT,BRETEAU,BROSSARD,BRUGIERE,CABANES,CADOT,CAHUZAC,CANU,CAPELLE,CARDON,CARON,CASSIN,CAUCHOIS
CHABAUD,CHALOPIN,CHAMPAGNE,CHANTREAU,CHAPELAIN,CHARBONNEAU,CHARPY,CHATEAU,CHAUVEAU,CHEVREAU
CLAVIER,CLOUET,CLOUTIER,COINTE,COLLINEAU,CORBEL,CORDEAU,CORNEILLE,COTTET,COUPE,COURBET,COUSTEAU
COUTANT,CREPIN,CROCHET,CUNY,DAGUET,DAMOUR,DANTON,DARRAS,DAUDET,DAVOUST,DEBORDE,DECAUX,DEHAYE
DELAVAL,DELBOS,DELCOURT,DELESTRE,DELMOTTE,DELOR,DEMAY,DENIAU,DESAINT,DESCAMPS,DESFORGES,DESHAYES
DESNOS,DESPLANQUES,DEVAUCHELLE,DOUILLET,DUBUC,DUCASSE,DUCHATEAU,DUCROS,DUFLOT,DUMESNIL,DUPERRON
DURAND-MARTIN,ESCUDIER,FAGOT,FAYOLLE,FEUILLET,FLORENT,FONTENEAU,FORT,FORTIN,FOUCART,FOURRIER,FRERE
GACHET,GAILLOT,GALIPEAU,GARCIN,GARNAUD,GAUCHER,GAUDET,GAVARD,GELIN,GERBAUD,GILLOT,GIRON,GOBIN
GOUPIL,GRANDJEAN,GRELLIER,GRIFFON,GROSSET,GUERIN-DUPONT,GUILLEMET,GUILLERM,HALLEY,HERMANT,HOUSSAYE
JALLET,JAMIN,JOUANNET,JOURDAIN,LABAT,LAMBERTIN,LAMOUR,LAPIERRE,LARDEUX,LASNIER,LAVAUD,LEBAS,LEBEL
LECHAT,LEDOUX,LEFEUVRE,LEHMANN,LELONG,LEMERCIER,LEMESLE,LEPETIT,LEROI,LESTRADE,LEVEAU,LOUBET
MADELAINE,MAILLET,MALARD,MALHERBE,MARAIS,MARCHETTI,MARIN,MARTEAU,MASSIAS,MATHIAS,MAUGIN,MAURIER
MERLIN,MESLIN,MICHELET,MILLIER,MIRAMBEAU,MOISAN,MONCEAU,MONET,MORET,MOUSSET,NAVEAU,NOLLET,OUDIN
PAILLARD,PASTOR,PATUREL,PAYEN,PELISSIER,PERROUD,PETIOT,PIAU,PICHARD,PIERRET,PINAULT,PLANTE,PORTE
PREVOT,QUERE,RABAUD,RAULT,REMOND,RENOU,RIBES,ROBICHON,ROLLIN,ROQUES,ROSIER,ROUSSEAUX,ROUZIER
SAINT-MARTIN,SAUVAGET,SAVIGNAC,SEGUIN,SELLIER,SERVANT,SOUCHET,SUREAU,TALBOT,THUILLIER,TOUZET
TROUVE,VACHER,VALLIER,VASSAL,VERGER,VIDAL-NAQUET,VILLENEUVE,VINET,VOGEL,WATTEAU,MONTAGNIER
"""

# Common first names by decade of birth (most given first), unaccented; then a pool of names of
# families of various origins drawn across all decades, and first names given to both sexes.
_MALE_BY_DECADE: Final = (
    # 1920s
    "JEAN,ANDRE,PIERRE,RENE,ROGER,MARCEL,LOUIS,GEORGES,ROBERT,HENRI,PAUL,MAURICE,RAYMOND,LUCIEN,"
    "FERNAND,JACQUES,EMILE,ALBERT,GASTON,CHARLES,JOSEPH,FRANCIS,LEON,EUGENE,GABRIEL,ROLAND,"
    "GILBERT,JULES,ALFRED,ARMAND,EDMOND,VICTOR,MARIUS,FELIX,ERNEST,MARCEAU,EDOUARD,AUGUSTE",
    # 1930s
    "JEAN,ANDRE,PIERRE,MICHEL,CLAUDE,JACQUES,RENE,ROGER,BERNARD,GEORGES,ROBERT,MARCEL,GERARD,"
    "PAUL,HENRI,LOUIS,RAYMOND,MAURICE,GUY,ROLAND,LUCIEN,GILBERT,DANIEL,YVES,FRANCIS,JEAN-CLAUDE,"
    "SERGE,ALAIN,JEAN-PIERRE,MARC,ANDRE,RENE,CHRISTIAN,JEAN-MARIE,FRANCOIS,HUBERT,ROBERT",
    # 1940s
    "JEAN,MICHEL,ALAIN,PIERRE,JACQUES,CLAUDE,BERNARD,GERARD,DANIEL,ANDRE,JEAN-PIERRE,JEAN-CLAUDE,"
    "GUY,CHRISTIAN,ROGER,ROBERT,SERGE,RENE,YVES,GEORGES,FRANCIS,PATRICK,GILLES,JEAN-LOUIS,"
    "JEAN-PAUL,JEAN-MARIE,MARCEL,JOEL,DIDIER,HENRI,JEAN-JACQUES,JEAN-FRANCOIS,FRANCOIS,PHILIPPE",
    # 1950s
    "JEAN,MICHEL,ALAIN,PATRICK,PHILIPPE,BERNARD,DANIEL,GERARD,CHRISTIAN,JEAN-PIERRE,JEAN-CLAUDE,"
    "JACQUES,CLAUDE,DIDIER,GILLES,ERIC,JEAN-LUC,DOMINIQUE,SERGE,PIERRE,FRANCOIS,JOEL,THIERRY,"
    "JEAN-LOUIS,PASCAL,DENIS,GUY,JEAN-MARC,JEAN-PAUL,YVES,MARC,JEAN-FRANCOIS,HERVE,ANDRE,BRUNO",
    # 1960s
    "PHILIPPE,PATRICK,THIERRY,PASCAL,ERIC,CHRISTOPHE,LAURENT,DIDIER,FREDERIC,BRUNO,OLIVIER,"
    "DOMINIQUE,JEAN-LUC,FRANCK,STEPHANE,JEAN-MARC,MICHEL,ALAIN,FRANCOIS,SERGE,JEAN-FRANCOIS,"
    "HERVE,JOEL,DENIS,JEROME,MARC,JEAN-PIERRE,VINCENT,GILLES,YANNICK,RICHARD,PIERRE,LIONEL,"
    "EMMANUEL,CHRISTIAN,JEAN,PATRICE,FABRICE",
    # 1970s
    "CHRISTOPHE,STEPHANE,SEBASTIEN,FREDERIC,LAURENT,DAVID,OLIVIER,NICOLAS,CEDRIC,JEROME,ERIC,"
    "VINCENT,FRANCK,THIERRY,PASCAL,JULIEN,SYLVAIN,FABRICE,ARNAUD,EMMANUEL,GREGORY,BENOIT,MICKAEL,"
    "SAMUEL,LUDOVIC,YANNICK,ANTHONY,GUILLAUME,DAMIEN,XAVIER,MATHIEU,ALEXANDRE,CYRIL,THOMAS,"
    "PATRICE,RAPHAEL",
    # 1980s
    "NICOLAS,JULIEN,SEBASTIEN,GUILLAUME,ANTHONY,JEREMY,MAXIME,KEVIN,ROMAIN,THOMAS,ALEXANDRE,"
    "MATHIEU,DAVID,CHRISTOPHE,MICKAEL,JONATHAN,BENJAMIN,VINCENT,CEDRIC,JEROME,FLORIAN,ANTOINE,"
    "LOIC,PIERRE,FABIEN,OLIVIER,LUDOVIC,STEPHANE,YOANN,ARNAUD,DAMIEN,FRANCK,SAMUEL,FREDERIC,"
    "ADRIEN,ALEXIS,AURELIEN,JOHANN",
    # 1990s
    "KEVIN,THOMAS,NICOLAS,JULIEN,MAXIME,ALEXANDRE,ANTHONY,QUENTIN,ROMAIN,JEREMY,ANTOINE,FLORIAN,"
    "VALENTIN,GUILLAUME,PIERRE,CLEMENT,HUGO,LUCAS,BENJAMIN,DYLAN,ALEXIS,THEO,MATHIEU,ADRIEN,"
    "JORDAN,LOIC,CORENTIN,BAPTISTE,PAUL,VICTOR,JONATHAN,MATTHIEU,SEBASTIEN,LOUIS,AURELIEN,"
    "SIMON,TANGUY",
    # 2000s
    "LUCAS,THEO,THOMAS,HUGO,MAXIME,ENZO,CLEMENT,ALEXANDRE,MATHIS,QUENTIN,ANTOINE,NATHAN,LOUIS,"
    "PAUL,BAPTISTE,VALENTIN,ROMAIN,NICOLAS,ALEXIS,TOM,LEO,MATTEO,GABRIEL,YANIS,JULES,RAPHAEL,"
    "AXEL,ARTHUR,KILLIAN,DYLAN,EVAN,CORENTIN,BENJAMIN,MATHEO,ETHAN,NOAH,SACHA",
    # 2010s
    "GABRIEL,LOUIS,RAPHAEL,JULES,ADAM,LUCAS,LEO,HUGO,ARTHUR,NATHAN,LIAM,ETHAN,PAUL,NOLAN,SACHA,"
    "TOM,NOAH,MOHAMED,GABIN,TIMEO,AARON,MAEL,THEO,ENZO,MATHIS,CLEMENT,SAMUEL,VICTOR,AXEL,MAXIME,"
    "EDEN,ISAAC,ELIOTT,MATHEO,ROBIN,MARTIN,ANTOINE,ALEXANDRE,ELIO",
    # 2020s
    "GABRIEL,LEO,RAPHAEL,MAEL,LOUIS,NOAH,JULES,ARTHUR,ADAM,LUCAS,ISAAC,SACHA,GABIN,NAEL,EDEN,"
    "AARON,LIAM,HUGO,MALO,MARCEAU,ELIO,TIAGO,ISMAEL,LEON,AMIR,NOE,PAUL,NATHAN,VICTOR,AYDEN,"
    "ANTOINE,TIMEO,SOHAN,CHARLIE,NINO,MILO,IMRAN,ROMEO",
)
_FEMALE_BY_DECADE: Final = (
    # 1920s
    "MARIE,JEANNE,SIMONE,DENISE,YVONNE,MADELEINE,SUZANNE,GERMAINE,MARCELLE,LOUISE,PAULETTE,"
    "ANDREE,RENEE,LUCIENNE,ODETTE,GEORGETTE,MARGUERITE,JACQUELINE,COLETTE,HELENE,RAYMONDE,ALICE,"
    "JULIETTE,ROSE,ANNA,LUCIE,BERTHE,MARTHE,HENRIETTE,ROBERTE,GISELE,FERNANDE,GABRIELLE,THERESE",
    # 1930s
    "JACQUELINE,MONIQUE,SIMONE,DENISE,COLETTE,YVETTE,PAULETTE,ODETTE,SUZANNE,GINETTE,MICHELINE,"
    "GISELE,ANDREE,JEANNINE,YVONNE,MARIE,LILIANE,RENEE,JEANNE,MADELEINE,ARLETTE,RAYMONDE,NICOLE,"
    "JANINE,LUCIENNE,CLAUDINE,GENEVIEVE,HUGUETTE,ANNE-MARIE,MARCELLE,FRANCOISE,THERESE",
    # 1940s
    "MONIQUE,FRANCOISE,JACQUELINE,NICOLE,DANIELLE,MICHELE,CHRISTIANE,ANNIE,COLETTE,JOSIANE,"
    "CLAUDINE,DANIELE,ANNE-MARIE,CHANTAL,MARIE-CLAUDE,MARTINE,DENISE,BERNADETTE,GINETTE,"
    "MICHELINE,ODILE,MARIE-THERESE,ELIANE,YVETTE,GENEVIEVE,SUZANNE,MARIE-FRANCE,EVELYNE,ARLETTE,"
    "LILIANE,SIMONE,ANDREE,HELENE",
    # 1950s
    "MARTINE,CHRISTINE,FRANCOISE,MONIQUE,CHANTAL,BRIGITTE,NICOLE,DOMINIQUE,CATHERINE,"
    "MARIE-CLAUDE,DANIELLE,JOSIANE,SYLVIE,ANNIE,EVELYNE,ELISABETH,MICHELE,PATRICIA,MARIE-FRANCE,"
    "ANNE-MARIE,CHRISTIANE,JOELLE,MARYSE,COLETTE,ODILE,MIREILLE,NADINE,MARIE-CHRISTINE,"
    "MARIE-THERESE,BERNADETTE,HELENE,GENEVIEVE,VERONIQUE,JOCELYNE,DANIELE",
    # 1960s
    "SYLVIE,CATHERINE,ISABELLE,NATHALIE,MARTINE,CHRISTINE,VERONIQUE,PATRICIA,BRIGITTE,CORINNE,"
    "PASCALE,FREDERIQUE,DOMINIQUE,VALERIE,CHANTAL,FRANCOISE,BEATRICE,LAURENCE,MURIEL,NADINE,"
    "ANNE,MARIE-CHRISTINE,EVELYNE,KARINE,ELISABETH,FABIENNE,JOELLE,SANDRINE,SOPHIE,CAROLINE,"
    "AGNES,HELENE,MARIE-PIERRE,SYLVIANE,DELPHINE",
    # 1970s
    "NATHALIE,ISABELLE,SANDRINE,VALERIE,STEPHANIE,CELINE,KARINE,SOPHIE,VIRGINIE,CAROLINE,"
    "SEVERINE,CHRISTELLE,DELPHINE,CORINNE,LAURENCE,EMMANUELLE,AURELIE,CECILE,VERONIQUE,"
    "CATHERINE,SYLVIE,ELODIE,MAGALI,SABRINA,CAROLE,ANNE,LAETITIA,PATRICIA,JULIE,MARIE,FLORENCE,"
    "GAELLE,MURIEL,ESTELLE,AUDREY",
    # 1980s
    "AURELIE,CELINE,JULIE,STEPHANIE,EMILIE,ELODIE,SANDRA,AUDREY,MELANIE,LAETITIA,CAROLINE,"
    "SABRINA,VANESSA,SOPHIE,MARIE,VIRGINIE,JENNIFER,CHARLOTTE,AMELIE,CLAIRE,LAURA,PAULINE,ANAIS,"
    "CAMILLE,MARION,CINDY,JESSICA,ALEXANDRA,LUCIE,CAROLE,ANNE-SOPHIE,DELPHINE,ADELINE,MORGANE,"
    "SARAH,NADIA",
    # 1990s
    "LAURA,MARINE,PAULINE,CAMILLE,JULIE,MANON,SARAH,ANAIS,MARIE,EMILIE,MORGANE,LEA,CHLOE,"
    "AMANDINE,MELANIE,CLARA,CHARLOTTE,ELODIE,MATHILDE,OCEANE,MARION,LUCIE,AUDREY,JUSTINE,"
    "ALEXANDRA,CELIA,EMMA,MARGAUX,AMELIE,JESSICA,CINDY,ELISA,INES,CLAIRE,MELISSA,ALICE",
    # 2000s
    "LEA,MANON,CHLOE,CAMILLE,EMMA,OCEANE,CLARA,SARAH,INES,LAURA,MARIE,JULIE,ANAIS,MATHILDE,LOLA,"
    "MARGAUX,EVA,LUCIE,JADE,ZOE,LILOU,MAELYS,LOUISE,LENA,JUSTINE,ROMANE,MAEVA,LISA,ELISA,ANAELLE,"
    "CLEMENCE,NOEMIE,ALICE,JULIETTE,LOU,CHARLOTTE",
    # 2010s
    "EMMA,JADE,LOUISE,ALICE,CHLOE,LINA,LEA,ROSE,ANNA,MILA,INES,AMBRE,JULIA,MIA,LEONIE,ZOE,MANON,"
    "CAMILLE,LOLA,AGATHE,JEANNE,LUCIE,SARAH,EVA,NINA,ROMANE,LOU,INAYA,CHARLOTTE,JULIETTE,CLARA,"
    "LENA,ADELE,ZELIE,CAPUCINE,LOUNA,MARGAUX,VICTOIRE,CELESTE,STELLA",
    # 2020s
    "JADE,LOUISE,AMBRE,ALBA,EMMA,ROSE,ALICE,ROMY,ANNA,LINA,ALMA,MIA,LENA,IRIS,LEONIE,JULIA,LUNA,"
    "AGATHE,MILA,JEANNE,LOU,EVA,NINA,CHARLOTTE,CAPUCINE,VICTOIRE,MARGAUX,LUCIE,GIULIA,THEA,"
    "OLIVIA,INAYA,HELOISE,APOLLINE,CELESTE,CLEO,SOFIA,ELENA,CAMILLE",
)
_MALE_OTHER: Final = _names(
    "MOHAMED,AHMED,ALI,KARIM,RACHID,MEHDI,SAMIR,NABIL,YOUSSEF,HAMZA,IBRAHIM,MOUSSA,MAMADOU,OMAR,"
    "ABDOULAYE,BILAL,AYOUB,RAYAN,ILYES,KAMEL,FARID,MUSTAPHA,MOURAD,HICHAM,NORDINE,SOFIANE,YASSINE,"
    "KHALID,SAID,ABDELKADER,JOSE,MANUEL,ANTONIO,CARLOS,FRANCISCO,JOAO,PAULO,FERNANDO,LUIS,MIGUEL,"
    "GIUSEPPE,SALVATORE,MARIO,GIOVANNI,DIMITRI,IVAN,SERGEI,MEHMET,MUSTAFA,HUSEYIN,THANH,MINH,"
    "WEI,JUNIOR,JEAN-BAPTISTE,JEAN-CHRISTOPHE,JEAN-PHILIPPE,JEAN-YVES,JEAN-NOEL,JEAN-MICHEL,"
    "JEAN-CHARLES,JEAN-BERNARD,JEAN-GUY,JEAN-LUC,MARC-ANTOINE,PIERRE-ALAIN,PIERRE-YVES,"
    "PAUL-HENRI,LOUIS-MARIE,GUY-MARIE,YVON,YANN,ERWAN,GWENAEL,RONAN,LOIC,GAEL,MAEL,TUDAL,"
    "KILIAN,BRIEUC,CORENTIN,DONATIEN,FIRMIN,GERMAIN,HONORE,LAURENT,MATTHIAS,OSCAR,PHILEMON,"
    "QUENTIN,REMI,SIMEON,TRISTAN,URBAIN,VALERY,XAVIER,ZACHARIE,AUGUSTIN,BENOIT,CYPRIEN,"
    "DAMIEN,EMILIEN,FLORENT,GAETAN,HERMAN,IGOR,JOACHIM,LUDOVIC,MARIUS,NOEL,OLIVIER,PASCAL,"
    "ROMUALD,SEVERIN,THIBAULT,VIANNEY,WILFRIED,ACHILLE,ADOLPHE,AIME,ALBAN,ALPHONSE,AMAURY,"
    "AMBROISE,ANATOLE,ANSELME,ARISTIDE,ARMEL,ARSENE,BALTHAZAR,BARNABE,BASILE,BASTIEN,BERTRAND,"
    "BLAISE,BORIS,CASIMIR,CELESTIN,CESAR,CHRISTIAN,CLOVIS,CONSTANT,CYRILLE,DESIRE,EDGAR,"
    "ELIE,ELOI,ETIENNE,EVARISTE,FABIEN,FERDINAND,FLORIAN,GASPARD,GAUTIER,GEOFFROY,GHISLAIN,"
    "GONTRAN,GREGOIRE,GUSTAVE,HECTOR,HERVE,HILAIRE,HIPPOLYTE,HONORE,ISIDORE,JOSSELIN,JUSTIN,"
    "LAMBERT,LAZARE,LEANDRE,LEONARD,LEOPOLD,LUC,MAGLOIRE,MARTIAL,MAXENCE,MAXIMILIEN,MODESTE,"
    "NARCISSE,NESTOR,OCTAVE,ODILON,PACOME,PROSPER,RAOUL,REGIS,RODOLPHE,SAMSON,SOLAL,STANISLAS,"
    "SULLY,THEODORE,THEOPHILE,TIMOTHEE,VALENTIN,VIRGILE"
)
_FEMALE_OTHER: Final = _names(
    "FATIMA,AICHA,KHADIJA,NADIA,SAMIA,MALIKA,LEILA,YASMINE,MYRIAM,SOUAD,NAIMA,SAMIRA,KARIMA,"
    "AMINA,MARYAM,AWA,FATOUMATA,AMINATA,MARIAM,HAWA,KADIATOU,MARIA,ANA,ROSA,CARMEN,ISABEL,"
    "MANUELA,ANTONIA,FILOMENA,GIOVANNA,FRANCESCA,OLGA,NATALIA,AYSE,FATMA,ZEYNEP,THI,LAN,MEI,"
    "MARIE-JOSE,MARIE-HELENE,MARIE-LAURE,MARIE-NOELLE,MARIE-ODILE,MARIE-PAULE,MARIE-ANNE,"
    "MARIE-LOUISE,MARIE-CHRISTINE,ANNE-LAURE,ANNE-CLAIRE,ANNE-CHARLOTTE,LAURE-ANNE,ROSE-MARIE,"
    "MARIE-ANGE,MARIE-AGNES,MARIE-BEATRICE,MARIE-EVE,MARIE-JEANNE,MARIE-MADELEINE,MARIE-ROSE,"
    "MAIWENN,NOLWENN,GWENAELLE,ENORA,MAELLE,AZILIZ,KLERVI,MORGANE,ROZENN,SOIZIC,ANNAIG,AGATHE,"
    "ADELAIDE,ALINE,AMANDINE,ANGELE,ANTOINETTE,APOLLINE,ARIANE,ARMELLE,AUGUSTINE,AURORE,BLANCHE,"
    "CANDICE,CAPUCINE,CECILIA,CELESTINE,CLEMENTINE,CLOTILDE,CORALIE,DAPHNE,EDITH,ELEONORE,ELSA,"
    "EMELINE,ERNESTINE,ESTHER,EUGENIE,FANNY,FLAVIE,FLORE,GABRIELLE,GAELLE,GERALDINE,GHISLAINE,"
    "HELOISE,HENRIETTE,HORTENSE,IRENE,JOSEPHINE,JUDITH,LEONTINE,LOUISON,LUDIVINE,MADELEINE,"
    "MAGDALENA,MARCELINE,MATHILDE,MAUD,MELINE,MURIELLE,NOELLE,OCTAVIE,OPHELIE,PERRINE,PRISCILLE,"
    "PRUDENCE,REBECCA,ROSALIE,SABINE,SALOME,SEGOLENE,SERAPHINE,SIDONIE,SOLANGE,SOLENE,SUZON,"
    "SYBILLE,TIPHAINE,URSULE,VALENTINE,VICTORINE,VIOLETTE,VIRGINIE,YOLANDE,ZELIE"
)
#: First names given to both sexes (used for the homonyms of the other sex).
_UNISEX: Final = _names("CAMILLE,DOMINIQUE,CLAUDE,SACHA,ALIX,CHARLIE,MORGAN,EDEN,ANDREA,ANGE")
# fmt: on

# Places: (COG, weight). Weights are copies in the slot table (population of births, roughly);
# each COG is one contiguous run of at most 27 copies (27 x 36 orders <= 999). Codes of large
# communes, Paris/Lyon/Marseille arrondissements, Corsica and overseas, written by hand from the
# INSEE COG (real-looking test data: check against the COG before any other use). Each other
# département also gets 20 commune numbers drawn once from a fixed seed.
# fmt: off
_NAMED_PLACES: Final[tuple[tuple[str, int], ...]] = (
    *((f"751{a:02d}", 8) for a in range(1, 21)),  # Paris, per arrondissement
    *((f"132{a:02d}", 4) for a in range(1, 17)),  # Marseille
    *((f"6938{a}", 4) for a in range(1, 10)),  # Lyon
    ("31555", 24), ("06088", 18), ("44109", 16), ("67482", 14), ("34172", 14), ("33063", 14),
    ("59350", 12), ("35238", 12), ("51454", 10), ("76351", 10), ("42218", 10), ("83137", 10),
    ("38185", 10), ("21231", 8), ("49007", 8), ("30189", 8), ("69266", 8), ("63113", 8),
    ("72181", 8), ("13001", 8), ("29019", 8), ("37261", 8), ("80021", 8), ("87085", 8),
    ("74010", 6), ("66136", 6), ("92012", 6), ("57463", 6), ("25056", 6), ("45234", 6),
    ("93066", 6), ("95018", 6), ("76540", 6), ("68224", 6), ("93048", 6), ("14118", 6),
    ("54395", 6), ("59599", 4), ("59512", 4), ("92050", 4), ("94081", 4), ("84007", 4),
    ("94028", 4), ("86194", 4), ("59183", 4), ("93001", 4), ("78646", 4), ("92025", 4),
    ("92004", 4), ("93005", 4), ("92026", 4), ("64445", 4), ("92063", 4), ("34032", 4),
    ("17300", 4), ("94017", 4), ("06004", 4), ("94068", 4), ("06029", 4), ("62193", 4),
    ("93029", 4), ("33281", 4), ("68066", 4), ("92040", 4), ("93051", 4), ("92044", 2),
    ("29232", 4), ("26362", 4), ("18033", 4), ("83126", 2), ("59009", 4), ("10387", 4),
    ("73065", 4), ("56121", 4), ("79191", 4), ("95585", 2), ("49099", 2), ("56260", 4),
    ("44184", 4), ("64102", 4), ("53130", 4), ("16015", 4), ("90010", 4), ("28085", 4),
    ("27229", 4), ("41018", 4), ("36044", 4), ("62041", 4), ("22278", 4), ("35288", 2),
    ("65440", 4), ("81004", 4), ("11069", 4), ("47001", 4), ("24322", 4), ("19031", 4),
    ("82121", 4), ("89024", 4), ("58194", 4), ("71270", 2), ("71076", 4), ("01053", 4),
    ("74012", 2), ("05061", 2), ("04070", 2), ("08105", 4), ("02408", 2), ("02691", 4),
    ("60057", 4), ("60159", 2), ("50129", 4), ("50502", 2), ("61001", 2), ("70550", 2),
    ("88160", 4), ("55029", 2), ("55545", 2), ("57672", 4), ("51108", 4), ("52121", 2),
    ("03185", 2), ("03190", 2), ("03310", 2), ("15014", 2), ("43157", 2), ("12202", 2),
    ("48095", 2), ("46042", 2), ("09122", 2), ("32013", 2), ("40192", 2), ("23096", 2),
    ("19272", 2), ("07186", 2), ("42187", 2), ("38544", 2), ("39300", 2), ("83061", 2),
    ("83069", 2), ("83050", 2), ("13004", 4), ("13056", 2), ("13005", 2), ("13047", 2),
    ("13103", 2), ("34301", 2), ("11262", 2), ("30007", 2), ("84087", 2), ("84031", 2),
    ("95127", 2), ("95500", 2), ("91228", 2), ("77288", 2), ("77284", 2), ("78551", 2),
    ("78361", 2),
    # Corsica (2A, 2B: commune numbers of the former département 20 are disjoint)
    ("2A004", 4), ("2A247", 2), ("2A041", 1), ("2A272", 1), ("2A249", 1),
    ("2B033", 4), ("2B096", 2), ("2B050", 1), ("2B134", 1), ("2B037", 1),
    # Overseas départements
    ("97209", 6), ("97213", 2), ("97229", 2), ("97120", 4), ("97101", 4), ("97105", 2),
    ("97302", 4), ("97311", 2), ("97411", 6), ("97416", 4), ("97415", 4), ("97422", 2),
    ("97611", 4),
)
#: INSEE country codes (99 + 3 digits) of frequent birth countries abroad, with weights
#: (hand-written from the INSEE COG "pays" list; check before any other use).
_COUNTRIES: Final[tuple[tuple[str, int], ...]] = (
    ("99352", 27), ("99350", 24), ("99139", 16), ("99351", 12), ("99127", 8), ("99134", 7),
    ("99208", 6), ("99341", 4), ("99335", 4), ("99326", 3), ("99322", 3), ("99109", 3),
    ("99131", 3), ("99132", 2), ("99114", 3), ("99122", 2), ("99243", 2), ("99216", 2),
    ("99333", 2), ("99397", 2), ("99312", 2), ("99324", 1), ("99123", 1), ("99155", 1),
    ("99205", 1), ("99404", 1), ("99416", 1), ("99140", 1), ("99330", 1), ("99336", 1),
    ("99234", 1), ("99401", 1), ("99436", 1),
)
# fmt: on


def _slot_table() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(COG per slot, copy index per slot): named places, then small communes, then abroad."""
    places: list[tuple[str, int]] = list(_NAMED_PLACES)
    named = {cog for cog, _ in places}
    chooser = random.Random("maison-ins-reference/communes")  # fixed: the table never changes
    highest = {"90": 101, "92": 78, "93": 79, "94": 81}
    for number in range(1, 96):
        dept = f"{number:02d}"
        if dept in ("20", "75"):
            continue  # Corsica and Paris are in the named places only
        picked: set[str] = set()
        while len(picked) < 20:
            cog = f"{dept}{chooser.randint(1, highest.get(dept, 250)):03d}"
            if cog not in named:
                picked.add(cog)
        places.extend((cog, 1) for cog in sorted(picked))
    french = sum(weight for _, weight in places)
    country_total = sum(weight for _, weight in _COUNTRIES)
    abroad_slots = round(french * 0.05 / 0.95)  # ~5% born abroad
    for cog, weight in _COUNTRIES:
        places.append((cog, min(27, max(1, round(abroad_slots * weight / country_total)))))
    cogs: list[str] = []
    copies: list[int] = []
    for cog, weight in places:
        if weight > 27:
            raise AssertionError(f"{cog}: at most 27 copies")  # pragma: no cover
        cogs.extend([cog] * weight)
        copies.extend(range(weight))
    return tuple(cogs), tuple(copies)


_SLOT_COG, _SLOT_COPY = _slot_table()
_SLOTS: Final = len(_SLOT_COG)
_GROUPS: Final = 9  # order groups of 4 per slot: 9 x 4 = 36 order numbers
_MONTHS: Final = 1200  # 100 years of birth months before REFERENCE_DAY
_DOMAIN: Final = 2 * _MONTHS * _SLOTS * _GROUPS


def _weighted_table(names: tuple[str, ...], weights: list[float], size: int) -> tuple[str, ...]:
    """A lookup table of ``size`` entries where each name fills a share ~ its weight."""
    total = sum(weights)
    table: list[str] = []
    acc = 0.0
    for name, weight in zip(names, weights, strict=True):
        acc += weight
        while len(table) < round(acc / total * size):
            table.append(name)
    while len(table) < size:
        table.append(names[-1])
    return tuple(table)


def _family_table() -> tuple[str, ...]:
    names = _names(_FAMILY_TEXT)
    head, tail = list(names[:300]), list(names[300:])
    random.Random("maison-ins-reference/family-tail").shuffle(tail)  # no alphabetical bias
    ordered = tuple(head + tail)
    return _weighted_table(ordered, [1.0 / (rank + 60) for rank in range(len(ordered))], 1 << 16)


def _given_tables(
    by_decade: tuple[str, ...], other: tuple[str, ...]
) -> tuple[tuple[str, ...], ...]:
    """Per decade of birth, a 4096-entry table: the decade's names by rank, neighbours, others."""
    decades = [_names(text) for text in by_decade]
    tables = []
    for index in range(len(decades)):
        weights: dict[str, float] = {}
        for near, share in ((index - 1, 0.25), (index, 1.0), (index + 1, 0.25)):
            if 0 <= near < len(decades):
                for rank, name in enumerate(decades[near]):
                    weights[name] = weights.get(name, 0.0) + share / (rank + 4)
        top = sum(weights.values())
        for name in other:  # ~8% spread over the other names
            weights[name] = weights.get(name, 0.0) + 0.08 * top / len(other)
        tables.append(_weighted_table(tuple(weights), list(weights.values()), 4096))
    return tuple(tables)


_FAMILY_TABLE: Final = _family_table()
_FAMILY_NAMES: Final = tuple(dict.fromkeys(_FAMILY_TABLE))
_GIVEN_TABLES: Final = (
    _given_tables(_MALE_BY_DECADE, _MALE_OTHER),
    _given_tables(_FEMALE_BY_DECADE, _FEMALE_OTHER),
)
#: How many birth first names: 1 (22%), 2 (37.5%), 3 (30%), 4 (11%), as a 64-entry table.
_PRENOM_COUNTS: Final = (1,) * 14 + (2,) * 24 + (3,) * 19 + (4,) * 7


def _month_table() -> tuple[tuple[int, int, int, str, str, int], ...]:
    """Per month index back from REFERENCE_DAY: (year, month, days, 'YYYY-MM', 'YY', decade)."""
    out = []
    first = REFERENCE_DAY.year * 12 + REFERENCE_DAY.month - 1
    for back in range(_MONTHS):
        year, month0 = divmod(first - back, 12)
        month = month0 + 1
        nxt = date(year + (month == 12), month % 12 + 1, 1)
        days = (nxt - date(year, month, 1)).days
        if back == 0:
            days = REFERENCE_DAY.day
        decade = min(max((year - 1920) // 10, 0), 10)
        out.append((year, month, days, f"{year:04d}-{month:02d}", f"{year % 100:02d}", decade))
    return tuple(out)


_MONTH_INFO: Final = _month_table()


def _age_acceptance() -> tuple[int, ...]:
    """Per age in years, the 16-bit threshold under which a draw is kept (a rough pyramid)."""
    out = []
    for age in range(101):
        share = 1.0 if age < 65 else 0.9 if age < 75 else 0.6 if age < 85 else 0.25
        if age >= 95:
            share = 0.05
        out.append(int(share * 65536))
    return tuple(out)


_AGE_KEEP: Final = _age_acceptance()
_MASK64: Final = (1 << 64) - 1


class _Permutation:
    """A seeded bijection of ``range(size)``: 4-round Feistel network with cycle walking."""

    def __init__(self, size: int, seed: int) -> None:
        bits = max(size - 1, 1).bit_length()
        bits += bits % 2
        self.size = size
        self.half = bits // 2
        self.mask = (1 << self.half) - 1
        keys = random.Random(f"maison-ins-reference/permutation/{seed}")
        self.keys = tuple(keys.getrandbits(64) | 1 for _ in range(4))

    def __call__(self, value: int) -> int:
        half, mask, size = self.half, self.mask, self.size
        while True:
            left, right = value >> half, value & mask
            for key in self.keys:
                mixed = ((right ^ key) * 0x9E3779B97F4A7C15) & _MASK64
                left, right = right, left ^ ((mixed >> 29) & mask)
            value = (left << half) | right
            if value < size:
                return value


def _key(first13: str) -> str:
    return first13 + stdnum_nir.calc_check_digits(first13)


def _more_prenoms(
    rng: random.Random, sex: int, decade: int, first: str, count: int
) -> tuple[str, ...]:
    """``first`` then ``count - 1`` more distinct first names (often the grandparents' era)."""
    tables = _GIVEN_TABLES[sex]
    table, elders = tables[decade], tables[max(decade - 3, 0)]
    names = [first]
    for _ in range(count * 3):
        if len(names) == count:
            break
        roll = rng.getrandbits(24)
        if sex and roll >> 20 < 3:  # ~19% of later first names of women: MARIE
            candidate = "MARIE"
        elif (roll >> 12) & 0xFF < 154:  # 60%: the grandparents' decade
            candidate = elders[roll & 0xFFF]
        else:
            candidate = table[roll & 0xFFF]
        if candidate not in names:
            names.append(candidate)
    return tuple(names)


def _draw_prenoms(
    rng: random.Random, sex: int, decade: int, first: str | None, avoid: str | None
) -> tuple[str, ...]:
    table = _GIVEN_TABLES[sex][decade]
    if first is None:
        first = table[rng.getrandbits(12)]
        while first == avoid:
            first = table[rng.getrandbits(12)]
    count = _PRENOM_COUNTS[rng.getrandbits(6)]
    return (first,) if count == 1 else _more_prenoms(rng, sex, decade, first, count)


def _draw_family(rng: random.Random, bits: int) -> str:
    """A family name from 24 random bits; ~5% compound (hyphen 4%, space 1%)."""
    table = _FAMILY_TABLE
    name = table[bits & 0xFFFF]
    roll = bits >> 16
    if roll < 13:
        other = table[rng.getrandbits(16)]
        if other != name and " " not in name and " " not in other:
            name = f"{name}-{other}" if roll < 10 else f"{name} {other}"
    return name


#: Shares (out of 65536) of drawn identities followed by a hard-case companion.
_TWIN_UNDER: Final = 524  # 0.8%: twins, same name/date/place, other first names, any sex
_HOMONYM_SEX_UNDER: Final = _TWIN_UNDER + 66  # 0.1%: same name, first name, date; other sex
_HOMONYM_PLACE_UNDER: Final = _HOMONYM_SEX_UNDER + 197  # 0.3%: same but born elsewhere

_BIRTHS: Final = tuple(
    tuple(f"{ym}-{d:02d}" for d in range(1, days + 1)) for _, _, days, ym, _, _ in _MONTH_INFO
)
_YYMM: Final = tuple(f"{yy}{m:02d}" for _, m, _, _, yy, _ in _MONTH_INFO)
_ORDER_STR: Final = tuple(f"{o:03d}" for o in range(1000))
_SLOT_ORDER: Final = tuple(copy * 36 + 1 for copy in _SLOT_COPY)
_SLOT_PLACE_BEFORE_1976: Final = tuple(
    "20" + cog[2:] if cog[:2] in ("2A", "2B") else cog for cog in _SLOT_COG
)


def synthesize(n: int, seed: int, oid: str = OID_TEST) -> Iterator[ReferenceIdentity]:
    """``n`` realistic, unique, valid French identities for ``seed``, streamed in constant memory.

    About 1.2% come with a hard-case companion right after them: twins (same birth name, date
    and place, other first names), homonyms of the other sex, homonyms born elsewhere.
    https://esante.gouv.fr/produits-services/referentiel-ins
    """
    if oid not in INS_TYPES:
        raise ValueError(f"unknown INS OID {oid!r}")
    if n < 0:
        raise ValueError("n must be >= 0")
    if n > _DOMAIN // 4:
        raise ValueError(f"at most {_DOMAIN // 4} identities per seed")
    return _synthesize(n, seed, oid)


def _synthesize(n: int, seed: int, oid: str) -> Iterator[ReferenceIdentity]:
    permute = _Permutation(_DOMAIN, seed)
    rng = random.Random(f"maison-ins-reference/traits/{seed}")
    getrandbits = rng.getrandbits
    nia = oid == OID_NIA
    sex_digits = "78" if nia else "12"
    slot_cog, slot_old, slot_order, slots = _SLOT_COG, _SLOT_PLACE_BEFORE_1976, _SLOT_ORDER, _SLOTS
    month_info, births, yymm, age_keep = _MONTH_INFO, _BIRTHS, _YYMM, _AGE_KEEP
    order_str, given_tables, counts = _ORDER_STR, _GIVEN_TABLES, _PRENOM_COUNTS
    groups, months, key = _GROUPS, _MONTHS, stdnum_nir.calc_check_digits
    produced = 0
    index = 0

    def build(
        sex: int,
        month_index: int,
        slot: int,
        order: int,
        nom: str,
        prenoms: tuple[str, ...],
        birth: str,
        history: bool,
    ) -> ReferenceIdentity:
        year = month_info[month_index][0]
        place = slot_old[slot] if year < 1976 else slot_cog[slot]
        mm = yymm[month_index] if len(birth) > 4 else yymm[month_index][:2] + "20"
        first13 = f"{sex_digits[sex]}{mm}{place}{order_str[order]}"
        matricule = first13 + key(first13)
        historique: tuple[str, ...] = ()
        if history and not nia:
            old = ("7" if sex == 0 else "8") + matricule[1:13]
            historique = (old + key(old),)
        return ReferenceIdentity(
            matricule, oid, nom, prenoms, "MF"[sex], birth, slot_cog[slot], historique
        )

    while produced < n:
        drawn = permute(index)
        index += 1
        x, group = divmod(drawn, groups)
        x, slot = divmod(x, slots)
        sex, month_index = divmod(x, months)
        mixed = (drawn * 0xD1B54A32D192ED03) & _MASK64
        if (mixed >> 40) & 0xFFFF >= age_keep[month_index // 12]:
            continue
        bits = getrandbits(64)
        days = births[month_index]
        birth = days[((bits & 0xFFFF) * len(days)) >> 16]
        cog = slot_cog[slot]
        abroad = cog[:2] == "99"
        if abroad:
            roll = rng.random()
            if roll < 0.1 and birth[5:7] == "01":
                birth = birth[:4]  # unknown day and month: NIR month 20
            elif roll < 0.12:
                birth = birth[:7]  # unknown day
        history = (mixed >> 24) & 0xFFFF < (1966 if abroad else 131)  # 3% / 0.2%
        companion = (mixed >> 8) & 0xFFFF
        if companion >= _HOMONYM_PLACE_UNDER or produced + 1 == n:
            companion = -1
        elif companion >= _HOMONYM_SEX_UNDER and len(birth) == 4:
            companion = -1  # no homonym born elsewhere for an unknown month (NIR month 20)
        nom = _draw_family(rng, (bits >> 16) & 0xFFFFFF)
        decade = month_info[month_index][5]
        if _TWIN_UNDER <= companion < _HOMONYM_SEX_UNDER:
            first = _UNISEX[int(rng.random() * len(_UNISEX))]
        else:
            first = given_tables[sex][decade][(bits >> 40) & 0xFFF]
        count = counts[(bits >> 52) & 0x3F]
        prenoms = (first,) if count == 1 else _more_prenoms(rng, sex, decade, first, count)
        order = slot_order[slot] + group * 4
        yield build(sex, month_index, slot, order, nom, prenoms, birth, history)
        produced += 1
        if companion < 0:
            continue
        history = rng.random() < 0.002
        if companion < _TWIN_UNDER:
            other_sex = int(rng.random() < 0.5)
            twin = _draw_prenoms(rng, other_sex, decade, None, prenoms[0])
            yield build(other_sex, month_index, slot, order + 1, nom, twin, birth, history)
        elif companion < _HOMONYM_SEX_UNDER:
            other = _draw_prenoms(rng, 1 - sex, decade, prenoms[0], None)
            yield build(1 - sex, month_index, slot, order + 1, nom, other, birth, history)
        else:
            other = _draw_prenoms(rng, sex, decade, prenoms[0], None)
            far = (slot + slots // 2) % slots
            far_order = slot_order[far] + group * 4 + 2
            yield build(sex, month_index, far, far_order, nom, other, birth, history)
        produced += 1
