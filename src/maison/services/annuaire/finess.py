"""Streaming reader of the public FINESS establishment extraction, and its mapping to the ANS
Annuaire ``Organization`` (entité géographique, profile ``as-dp-organization``).

The Ministry publishes on data.gouv.fr « FINESS Extraction du Fichier des établissements »:
``etalab-cs1100507-stock-<YYYYMMDD>-<HHMM>.csv`` (also zipped), ``;``-separated, not quoted.
Its first line is ``finess;etalab;<n>;<date>``; then one ``structureet`` line per établissement
(32 fields: the tag, then the 31 of :data:`FINESS_COLUMNS`), and ``geolocalisation`` lines
(the tag, then :data:`GEOLOCALISATION_COLUMNS`). Lines are read one at a time (never the whole
file) and yielded as :class:`Establishment` / :class:`Geolocation` or, with a reason a person
understands, :class:`RowError`; a file that is not this extraction raises one
:class:`ExtractionError` before anything is yielded.

Layout, and how sure:

* the 31 ``structureet`` fields after the tag, and their order: high. Four independent public
  readers of the file (R, Python, JavaScript, SQL) list exactly these names in this order (one
  calls the last date ``maj``); none lists another. A trailing ``;`` (one empty extra field) is
  tolerated.
* the first line ``finess;etalab;<n>;<date>``: high for ``finess;etalab``, which is all that is
  checked; what ``<n>`` counts is unknown.
* ``geolocalisation;nofinesset;coordxet;coordyet;sourcecoordet;datemaj``: high. Coordinates are
  Lambert 93 in mainland France, but not overseas (``sourcecoordet`` names the projection, e.g.
  ``…,LAMBERT_93``), and one reader found these lines interleaved with the ``structureet`` lines
  rather than after them: the readers here do not depend on the order.
* encoding: Windows-1252 / ISO-8859-1 historically; UTF-8 is detected as in
  :mod:`~maison.services.annuaire.extraction`. One reader reports recent UTF-8 files holding
  double-encoded text (``Ã©`` for ``é``): a field that decodes back cleanly is repaired.
* dates ``YYYY-MM-DD`` (high); ``DD/MM/YYYY`` is also accepted and normalised (one reader
  guards against it).
* ``commune`` is the 3-digit commune part of the INSEE code: high for mainland and Corsica
  (``2A`` + ``004`` = ``2A004``). Overseas, FINESS writes the département ``9A`` (Guadeloupe) …
  ``9F`` (Mayotte) with a 3-digit commune (``9A`` + ``120`` = ``97120``): medium, from memory of
  the FINESS nomenclature; the ``971`` + 2-digit form is accepted too (:func:`insee_commune`).
* ``siret``: 14 digits (Luhn key checked); a 9-digit valid SIREN is accepted too (the FINESS XML
  flow has been seen carrying one in its ``siret`` element) and mapped as a SIREN.

Mapping (:func:`organization_from_finess`), and how sure:

* id ``1`` + FINESS, the id :func:`mapping.organization_id` gives a ``Personne_activite`` row of
  that ``Numéro FINESS site`` (unless that row publishes another *ancien identifiant*): both
  imports write one resource. Identifiers IDNST (``1`` + FINESS), FINEG, SIRET (or SIREN); the
  entité juridique (``nofinessej``) is a logical ``partOf`` by its FINEJ identifier, as in
  :mod:`mapping`. High.
* ``name`` = ``rslongue`` else ``rs``; ``alias`` = ``rs`` when it differs, then ``complrs``
  (the profile's ``complementRaisonSociale``). Medium: a later guide maps an EG's short name to
  ``name`` and the long one to ``alias``.
* ``type``: GEOGRAPHICAL-ENTITY; ``categetab`` in TRE_R66-CategorieEtablissement (slice
  ``categorieEtablissementRASS``, which carries no organization-types extension: the guide's
  code system has no code for it), high; ``codesph`` in TRE_R73-ESPIC (slice
  ``sphParticipation``): medium-high, the TRE's codes (0 Non concerné, 1 Etablissement public de
  santé, … 6 ESPIC) are FINESS's; ``codeape`` as TRE_R75-InseeNAFrev2Niveau5, written ``86.10Z``
  as in the Annuaire API documentation: medium. ``categagretab`` is not mapped: no slice, and
  the agrégat tables (TRE_R63/R64, third-party list only) were not checked.
* ``codemft`` → ``as-ext-organization-pricing-model`` in TRE_R74-ModeFixationTarifaire (same
  codes and labels as FINESS: 03 « ARS établissements Publics de santé dotation globale »),
  high; ``dateouv`` → ``organization-period`` start (« date d'ouverture »), high.
* address (``as-address-extended``): ``compldistrib`` as additionalLocator (medium),
  numéro + ``compvoie`` + type + voie as one line with its ADXP parts, ``lieuditbp`` as postBox
  when it reads ``BP …``/``CS …``/``TSA …``, else ``as-ext-lieu-dit``; ``ligneacheminement``
  split into postalCode and city (CEDEX kept, as in the guide's example); INSEE commune code
  (FR Core insee-code extension, TRE_R13) and ``district`` = INSEE département code.
* telecom: ``telephone`` (phone, rank 1) and ``telecopie`` (fax).
* ``meta``: the profiles of :mod:`mapping`; ``meta.source`` is the Annuaire's, as there:
  ``as-dp-organization`` fixes it to ``https://annuaire.esante.gouv.fr``.
* not mapped: ``dateautor`` (no element: ``as-ext-organization-authorization-deadline`` is a
  lapse, not a date of authorisation), ``datemaj`` (``meta.lastUpdated`` is the server's),
  ``numuai``, the labels except as ``display``, and the geolocation: the FHIR ``geolocation``
  extension wants WGS84 degrees, the file gives projected metres (several projections); it
  would belong on a Location anyway.

https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
"""

from __future__ import annotations

import codecs
import copy
import csv
import itertools
import re
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any, Final

from maison.services.annuaire import mapping as m
from maison.services.annuaire.extraction import (
    _ENCODING_LABELS,
    ExtractionError,
    RowError,
    _chunks,
    _detect_encoding,
    _lines,
    finess_problem,
    open_text,
    siren_problem,
    siret_problem,
)
from maison.services.annuaire.mapping import (
    DP_ORGANIZATION,
    FINESS_SITE,
    FINESS_SYSTEM,
    FR_ORGANIZATION,
    IDNST_SYSTEM,
    IG,
    INSEE_CODE_URL,
    SIRENE_SYSTEM,
    SOURCE,
    _coding,
    _identifier,
    _line,
    idnst,
    organization_id,
)

__all__ = [
    "DATASET",
    "FINESS_COLUMNS",
    "GEOLOCALISATION",
    "GEOLOCALISATION_COLUMNS",
    "MEMBER_PREFIX",
    "STRUCTURE",
    "Establishment",
    "ExtractionError",
    "Geolocation",
    "RowError",
    "finess_organization_id",
    "insee_commune",
    "insee_departement",
    "organization_from_finess",
    "read_establishments",
    "read_geolocations",
]

#: The data.gouv.fr page of the extraction.
DATASET: Final = (
    "https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/"
)

#: The 31 fields of a ``structureet`` line after its tag, in file order.
FINESS_COLUMNS: Final = (
    "nofinesset",
    "nofinessej",
    "rs",
    "rslongue",
    "complrs",
    "compldistrib",
    "numvoie",
    "typvoie",
    "voie",
    "compvoie",
    "lieuditbp",
    "commune",
    "departement",
    "libdepartement",
    "ligneacheminement",
    "telephone",
    "telecopie",
    "categetab",
    "libcategetab",
    "categagretab",
    "libcategagretab",
    "siret",
    "codeape",
    "codemft",
    "libmft",
    "codesph",
    "libsph",
    "dateouv",
    "dateautor",
    "datemaj",
    "numuai",
)
#: The 5 fields of a ``geolocalisation`` line after its tag, in file order.
GEOLOCALISATION_COLUMNS: Final = ("nofinesset", "coordxet", "coordyet", "sourcecoordet", "datemaj")
#: File name prefix, followed by ``-<YYYYMMDD>-<HHMM>.csv``.
MEMBER_PREFIX: Final = "etalab-cs1100507-stock"

STRUCTURE: Final = "structureet"
GEOLOCALISATION: Final = "geolocalisation"
_WIDTHS: Final = {STRUCTURE: len(FINESS_COLUMNS), GEOLOCALISATION: len(GEOLOCALISATION_COLUMNS)}
_DATES: Final = ("dateouv", "dateautor", "datemaj")
_SAMPLE: Final = 1 << 22  # bytes looked at, at most, to find a non-ASCII line (encoding)
_MEMBER_RE: Final = re.compile(re.escape(MEMBER_PREFIX) + r"[^/]*\.csv", re.IGNORECASE)
_ISO_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_FR_DATE: Final = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})")
_NUMBER: Final = re.compile(r"-?[0-9]+(?:[.,][0-9]+)?")


@dataclass(frozen=True, slots=True)
class Establishment:
    """One ``structureet`` line: its line number (the ``finess;etalab`` line is 1) and its 31
    fields under the file's own names, stripped; dates normalised to ``YYYY-MM-DD``.

    https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
    """

    line: int
    nofinesset: str
    nofinessej: str
    rs: str
    rslongue: str
    complrs: str
    compldistrib: str
    numvoie: str
    typvoie: str
    voie: str
    compvoie: str
    lieuditbp: str
    commune: str
    departement: str
    libdepartement: str
    ligneacheminement: str
    telephone: str
    telecopie: str
    categetab: str
    libcategetab: str
    categagretab: str
    libcategagretab: str
    siret: str
    codeape: str
    codemft: str
    libmft: str
    codesph: str
    libsph: str
    dateouv: str
    dateautor: str
    datemaj: str
    numuai: str


@dataclass(frozen=True, slots=True)
class Geolocation:
    """One ``geolocalisation`` line: the établissement's coordinates in the projection that
    ``sourcecoordet`` names (Lambert 93 in mainland France), ``None`` when not given.

    https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
    """

    line: int
    nofinesset: str
    coordxet: float | None
    coordyet: float | None
    sourcecoordet: str
    datemaj: str


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_establishments(path: str | Path) -> Iterator[Establishment | RowError]:
    """The ``structureet`` lines of an extraction (``.csv``, or a ``.zip`` holding one), streamed
    and checked; ``geolocalisation`` lines are skipped.

    Raises :class:`ExtractionError` (before any line) when the file is not this extraction.
    https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
    """
    for item in _scan(Path(path), STRUCTURE):
        yield item if isinstance(item, RowError) else _establishment(*item)


def read_geolocations(path: str | Path) -> Iterator[Geolocation | RowError]:
    """The ``geolocalisation`` lines of an extraction, streamed and checked.

    https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
    """
    for item in _scan(Path(path), GEOLOCALISATION):
        yield item if isinstance(item, RowError) else _geolocation(*item)


def _scan(path: Path, wanted: str) -> Iterator[tuple[int, list[str]] | RowError]:
    """(line number, fields after the tag) of the ``wanted`` lines, or why a line is rejected."""
    with _open(path) as (stream, name):
        chunks = _chunks(stream, name)
        sample = _sample(chunks)
        if not sample or not sample[0]:
            raise ExtractionError(f"{name} is empty: expected a FINESS extraction ({DATASET})")
        head = b"".join(sample)
        encoding = _detect_encoding(head)
        if sample[0].startswith(codecs.BOM_UTF8):
            sample[0] = sample[0][len(codecs.BOM_UTF8) :]
        lines = _lines(itertools.chain(sample, chunks))
        _check_header(next(lines, b""), encoding, name)
        number = 1
        try:
            for number, raw in enumerate(lines, start=2):
                found = _fields(number, raw, encoding, wanted)
                if found is not None:
                    yield found
        except ExtractionError as exc:  # zip damage or a runaway line, met while reading
            told = str(exc) if str(exc).startswith(name) else f"{name}: {exc}"
            raise ExtractionError(f"{told} (after line {number})") from None


def _sample(chunks: Iterator[bytes]) -> list[bytes]:
    """The first chunks: up to the first one holding a non-ASCII byte (or ``_SAMPLE`` bytes), so
    that the encoding is detected from accented text even after a long ASCII start."""
    taken: list[bytes] = []
    size = 0
    for chunk in chunks:
        taken.append(chunk)
        size += len(chunk)
        if not chunk.isascii() or size >= _SAMPLE:
            break
    return taken


def _fields(
    number: int, raw: bytes, encoding: str, wanted: str
) -> tuple[int, list[str]] | RowError | None:
    """One physical line: its fields if it is a ``wanted`` line, None to skip it, or an error."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw.strip():
        return None
    tag = raw.split(b";", 1)[0].strip().decode("ascii", errors="replace").lower()
    if tag not in _WIDTHS:
        shown = raw.split(b";", 1)[0][:40].decode(encoding, errors="replace")
        return RowError(
            number,
            f"unknown record type {shown!r}: expected a {STRUCTURE} or {GEOLOCALISATION} line",
        )
    if tag != wanted:
        return None
    label = _ENCODING_LABELS[encoding]
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        return RowError(
            number,
            f"not {label} text: byte 0x{raw[exc.start]:02X} at byte {exc.start + 1} "
            f"cannot be decoded (the file was read as {label}, detected from its start)",
        )
    width = _WIDTHS[tag] + 1
    fields = text.split(";")
    if len(fields) == width + 1 and not fields[-1].strip():
        fields.pop()  # a trailing ";"
    if len(fields) != width and '"' in text:  # a quoted field holding a ";"?
        quoted = next(csv.reader([text], delimiter=";"))
        if len(quoted) == width:
            fields = quoted
    if len(fields) != width:
        return RowError(
            number,
            f"{len(fields)} fields instead of {width} for a {tag} line "
            f"({tag} and {width - 1} values separated by ';')",
        )
    return number, [_repaired(f.strip()) for f in fields[1:]]


def _repaired(value: str) -> str:
    """``value``, or its repair when it is UTF-8 text decoded once too often (``Ã©`` → ``é``).

    Safe on clean text: a genuine ``Â`` or ``Ã`` is followed by a letter that makes the
    round trip fail, and the value is then kept as it is.
    """
    if "Ã" not in value and "Â" not in value:
        return value
    for single in ("cp1252", "latin-1"):
        try:
            return value.encode(single).decode("utf-8")
        except UnicodeError:
            continue
    return value


def _check_header(raw: bytes, encoding: str, name: str) -> None:
    """Raise one ExtractionError unless the first line is ``finess;etalab;…``."""
    text = raw.rstrip(b"\r").decode(encoding, errors="replace")
    fields = [f.strip().lower() for f in text.split(";")]
    if fields[:2] == ["finess", "etalab"]:
        return
    preview = text if len(text) <= 100 else text[:100] + "..."
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        found = "a JSON document (the FINESS+ open-data flows are JSON, not this extraction)"
    elif "|" in text and text.count("|") > text.count(";"):
        found = (
            f"a '|'-separated file ({text.count('|') + 1} columns), such as the Annuaire Santé "
            f"PS_LibreAcces extraction: {preview!r}"
        )
    elif fields[0] in _WIDTHS:
        found = f"a {fields[0]} line: the finess;etalab first line is missing"
    elif "nofinesset" in fields:
        found = f"a CSV with a header row of column names (not the etalab layout): {preview!r}"
    else:
        found = repr(preview)
    raise ExtractionError(
        f"{name} is not a FINESS establishment extraction: expected a first line "
        f"'finess;etalab;<n>;<date>' ({DATASET}), found {found}"
    )


def _open(path: Path) -> AbstractContextManager[tuple[IO[bytes], str]]:
    """The binary stream of the extraction text and a name for messages."""
    return open_text(path, _member)


def _member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    """The extraction in the zip: the latest ``etalab-cs1100507-stock*.csv``, else its only
    ``.csv``."""
    files = [i for i in archive.infolist() if not i.is_dir()]

    def base(info: zipfile.ZipInfo) -> str:
        return info.filename.rsplit("/")[-1]

    named = sorted((i for i in files if _MEMBER_RE.fullmatch(base(i))), key=base)
    if named:
        return named[-1]
    csvs = [i for i in files if base(i).lower().endswith(".csv")]
    if len(csvs) == 1:
        return csvs[0]
    held = ", ".join(i.filename for i in files[:10]) + (", ..." if len(files) > 10 else "")
    raise ExtractionError(
        f"{name} holds no {MEMBER_PREFIX}*.csv file nor a single .csv "
        f"(it holds: {held or 'nothing'})"
    )


def _date(value: str) -> str | None:
    """``value`` as ``YYYY-MM-DD`` (from that form or ``DD/MM/YYYY``), None if not a date."""
    if match := _ISO_DATE.fullmatch(value):
        year, month, day = match.groups()
    elif match := _FR_DATE.fullmatch(value):
        day, month, year = match.groups()
    else:
        return None
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def _site_problems(values: dict[str, str]) -> list[str]:
    """What is wrong with a line's ``nofinesset`` (empty, or a bad FINESS key)."""
    site = values["nofinesset"]
    if not site:
        return ["nofinesset is empty"]
    problem = finess_problem(site)
    return [f"nofinesset: {problem}"] if problem is not None else []


def _establishment(number: int, cells: list[str]) -> Establishment | RowError:
    values = dict(zip(FINESS_COLUMNS, cells, strict=True))
    problems = _site_problems(values)
    legal = values["nofinessej"]
    if legal and (problem := finess_problem(legal)) is not None:
        problems.append(f"nofinessej: {problem}")
    siret = values["siret"]
    if siret:
        if len(siret) == 9 and siret.isdigit():
            if (problem := siren_problem(siret)) is not None:
                problems.append(f"siret holds 9 digits, not a valid SIREN either: {problem}")
        elif (problem := siret_problem(siret)) is not None:
            problems.append(problem)
    for column in _DATES:
        if values[column]:
            normal = _date(values[column])
            if normal is None:
                problems.append(f"{column} {values[column]!r} is not a date (YYYY-MM-DD)")
            else:
                values[column] = normal
    if problems:
        return RowError(number, "; ".join(problems))
    return Establishment(number, **values)


def _coordinate(value: str) -> float | None:
    return float(value.replace(",", ".")) if value else None


def _geolocation(number: int, cells: list[str]) -> Geolocation | RowError:
    values = dict(zip(GEOLOCALISATION_COLUMNS, cells, strict=True))
    problems = _site_problems(values)
    for column in ("coordxet", "coordyet"):
        if values[column] and not _NUMBER.fullmatch(values[column]):
            problems.append(f"{column} {values[column]!r} is not a number")
    when = values["datemaj"]
    normal = _date(when) if when else ""
    if normal is None:
        problems.append(f"datemaj {when!r} is not a date (YYYY-MM-DD)")
    if problems:
        return RowError(number, "; ".join(problems))
    return Geolocation(
        number,
        values["nofinesset"],
        _coordinate(values["coordxet"]),
        _coordinate(values["coordyet"]),
        values["sourcecoordet"],
        normal or "",
    )


# --------------------------------------------------------------------------------------------
# Mapping to the Annuaire Organization
# --------------------------------------------------------------------------------------------

#: FINESS département codes of the overseas départements → their INSEE code.
OVERSEAS: Final = {"9A": "971", "9B": "972", "9C": "973", "9D": "974", "9E": "975", "9F": "976"}
LIEU_DIT_URL: Final = f"{IG}as-ext-lieu-dit"
ORGANIZATION_PERIOD_URL: Final = "http://hl7.org/fhir/StructureDefinition/organization-period"
PRICING_MODEL_URL: Final = f"{IG}as-ext-organization-pricing-model"
_POSTAL_LINE: Final = re.compile(r"([0-9]{5})\s+(.*)")
_POST_BOX: Final = re.compile(r"(?:BP|B\.P\.|CS|TSA)\s*[0-9]", re.IGNORECASE)
_APE: Final = re.compile(r"([0-9]{2})\.?([0-9]{2})([A-Z])")
_MAINLAND: Final = re.compile(r"[0-9]{2}|2[AB]")
_OVERSEAS_INSEE: Final = re.compile(r"97[1-6]")


def insee_departement(departement: str) -> str:
    """The INSEE code of a FINESS département code (``9A`` → ``971`` … ``9F`` → ``976``).

    https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
    """
    code = departement.strip().upper()
    return OVERSEAS.get(code, code)


def insee_commune(departement: str, commune: str) -> str | None:
    """The 5-character INSEE commune code (COG) of a line's ``departement`` and ``commune``,
    None when they do not make one (``2A``+``004`` → ``2A004``; ``9A``+``120`` and ``971``+``20``
    → ``97120``).

    https://www.data.gouv.fr/fr/datasets/finess-extraction-du-fichier-des-etablissements/
    """
    dep = insee_departement(departement)
    com = commune.strip()
    if not com.isdigit():
        return None
    if _OVERSEAS_INSEE.fullmatch(dep):
        if len(com) == 3 and com[0] == dep[2]:
            return "97" + com
        return dep + com if len(com) == 2 else None
    if _MAINLAND.fullmatch(dep) and len(com) == 3:
        return dep + com
    return None


def finess_organization_id(nofinesset: str) -> str:
    """The Organization id of the établissement: the id :func:`mapping.organization_id` gives a
    ``PS_LibreAcces_Personne_activite`` row of that ``Numéro FINESS site`` (``1`` + FINESS), so
    both imports name one resource.

    https://hl7.org/fhir/R4/datatypes.html#id
    """
    found = organization_id({FINESS_SITE: nofinesset})
    if found is None:
        raise ValueError("an établissement without nofinesset has no Organization id")
    return found


def _postal(ligne: str) -> tuple[str, str]:
    """(postal code, city) of a ligne d'acheminement ``"01440 VIRIAT"``; ("", line) otherwise."""
    if match := _POSTAL_LINE.fullmatch(ligne):
        return match.group(1), match.group(2).strip()
    return "", ligne


def _address(est: Establishment) -> dict[str, Any] | None:
    lines: list[tuple[str, dict[str, Any]]] = []
    if est.compldistrib:
        lines.append(_line(est.compldistrib, [("additionalLocator", est.compldistrib)]))
    street = [
        (part, value)
        for part, value in (
            ("houseNumber", est.numvoie),
            ("buildingNumberSuffix", est.compvoie),
            ("streetNameType", est.typvoie),
            ("streetNameBase", est.voie),
        )
        if value
    ]
    if street:
        lines.append(_line(" ".join(v for _, v in street), street))
    if est.lieuditbp:
        if _POST_BOX.match(est.lieuditbp):
            lines.append(_line(est.lieuditbp, [("postBox", est.lieuditbp)]))
        else:
            lieu_dit = {"extension": [{"url": LIEU_DIT_URL, "valueString": est.lieuditbp}]}
            lines.append((est.lieuditbp, lieu_dit))
    out: dict[str, Any] = {}
    insee = insee_commune(est.departement, est.commune)
    if insee is not None:
        code = _coding("TRE_R13-Commune", insee)
        out["extension"] = [{"url": INSEE_CODE_URL, "valueCoding": code}]
    if lines:
        out["line"] = [text for text, _ in lines]
        out["_line"] = [ext for _, ext in lines]
    postal, city = _postal(est.ligneacheminement)
    for key, value in (
        ("city", city),
        ("district", insee_departement(est.departement) if est.departement else ""),
        ("postalCode", postal),
    ):
        if value:
            out[key] = value
    if not out:
        return None
    last = [est.ligneacheminement] if est.ligneacheminement else []
    text = ", ".join([*(t for t, _ in lines), *last])
    if text:
        out["text"] = text
    return out


def _types(est: Establishment) -> list[dict[str, Any]]:
    typed = m.organization_type
    types = [copy.deepcopy(m.GEOGRAPHICAL_ENTITY)]
    if est.categetab:  # slice categorieEtablissementRASS: no organization-types code exists
        category = _coding("TRE_R66-CategorieEtablissement", est.categetab, est.libcategetab)
        types.append({"coding": [category]})
    if est.codesph:
        types.append(typed("sphParticipation", _coding("TRE_R73-ESPIC", est.codesph, est.libsph)))
    if match := _APE.fullmatch(est.codeape):
        activity = "{}.{}{}".format(*match.groups())
        types.append({"coding": [_coding("TRE_R75-InseeNAFrev2Niveau5", activity)]})
    return types


def organization_from_finess(est: Establishment) -> dict[str, Any]:
    """The établissement (entité géographique) as an ``as-dp-organization`` Organization.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-dp-organization.html
    """
    site = est.nofinesset
    national = idnst({FINESS_SITE: site})
    if national is None:
        raise ValueError("an établissement without nofinesset cannot be mapped")
    identifiers = [
        _identifier(IDNST_SYSTEM, "IDNST", national),
        _identifier(FINESS_SYSTEM, "FINEG", site),
    ]
    if len(est.siret) == 14:
        identifiers.append(_identifier(SIRENE_SYSTEM, "SIRET", est.siret))
    elif len(est.siret) == 9:
        identifiers.append(_identifier(SIRENE_SYSTEM, "SIREN", est.siret))
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": finess_organization_id(site),
        "meta": {"source": SOURCE, "profile": [FR_ORGANIZATION, DP_ORGANIZATION]},
        "language": "fr",
    }
    extensions: list[dict[str, Any]] = []
    if est.dateouv:
        extensions.append({"url": ORGANIZATION_PERIOD_URL, "valuePeriod": {"start": est.dateouv}})
    if est.codemft:
        pricing = _coding("TRE_R74-ModeFixationTarifaire", est.codemft, est.libmft)
        extensions.append({"url": PRICING_MODEL_URL, "valueCodeableConcept": {"coding": [pricing]}})
    if extensions:
        resource["extension"] = extensions
    resource["identifier"] = identifiers
    resource["active"] = True
    resource["type"] = _types(est)
    name = est.rslongue or est.rs
    if name:
        resource["name"] = name
    aliases = [a for a in dict.fromkeys((est.rs, est.complrs)) if a and a != name]
    if aliases:
        resource["alias"] = aliases
    telecom: list[dict[str, Any]] = []
    if est.telephone:
        telecom.append({"system": "phone", "value": est.telephone, "rank": 1})
    if est.telecopie:
        telecom.append({"system": "fax", "value": est.telecopie})
    if telecom:
        resource["telecom"] = telecom
    place = _address(est)
    if place is not None:
        resource["address"] = [place]
    if est.nofinessej and est.nofinessej != site:
        resource["partOf"] = {"identifier": _identifier(FINESS_SYSTEM, "FINEJ", est.nofinessej)}
    return resource
