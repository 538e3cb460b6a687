"""Streaming reader of the Annuaire Santé open-data file ``PS_LibreAcces_Personne_activite``.

The extraction (published as a zip, mirrored on data.gouv.fr) holds one header row, then one row
per activity (situation d'exercice) of a health professional: 56 columns separated by ``|``, every
row ending with a ``|``. A person with several activities is on several rows sharing one
*Identification nationale PP* (IDNPS = type digit + identifier: ``8`` + RPPS, ``0`` + ADELI).
Recent files are UTF-8, older ones Windows-1252 / ISO-8859-1: the encoding is detected from the
first bytes (the header itself holds accented letters).

Rows are read one at a time (never the whole file), checked, and yielded as :class:`Row` or, with
a reason a person understands, :class:`RowError`. A file that is not this extraction at all
(another layout, a CSV, a corrupt zip) raises one :class:`ExtractionError`.

The sibling files (``PS_LibreAcces_Personne_SavoirFaire_*``, ``PS_LibreAcces_Dipl_AutExerc_*``)
are not read: their layout was not found in any source we could check.

https://annuaire.sante.fr/web/site-pro/extractions-publiques
"""

from __future__ import annotations

import codecs
import functools
import itertools
import re
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Final

from stdnum import luhn
from stdnum.fr import siret as stdnum_siret

#: The 56 columns of ``PS_LibreAcces_Personne_activite_<YYYYMMDDhhmm>.txt``, in file order (the
#: public layout of the Annuaire Santé extraction; rows are keyed by these exact names).
ACTIVITE_COLUMNS: Final = (
    "Type d'identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Code civilité d'exercice",
    "Libellé civilité exercice",
    "Code civilité",
    "Libellé civilité",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Code profession",
    "Libellé profession",
    "Code catégorie professionnelle",
    "Libellé catégorie professionnelle",
    "Code type savoir-faire",
    "Libellé type savoir-faire",
    "Code savoir-faire",
    "Libellé savoir-faire",
    "Code mode exercice",
    "Libellé mode exercice",
    "Numéro SIRET site",
    "Numéro SIREN site",
    "Numéro FINESS site",
    "Numéro FINESS établissement juridique",
    "Identifiant technique de la structure",
    "Raison sociale site",
    "Enseigne commerciale site",
    "Complément destinataire (coord. structure)",
    "Complément point géographique (coord. structure)",
    "Numéro Voie (coord. structure)",
    "Indice répétition voie (coord. Structure)",
    "Code type de voie (coord. structure)",
    "Libellé type de voie (coord. structure)",
    "Libellé Voie (coord. structure)",
    "Mention distribution (coord. structure)",
    "Bureau cedex (coord. structure)",
    "Code postal (coord. structure)",
    "Code commune (coord. structure)",
    "Libellé commune (coord. structure)",
    "Code pays (coord. structure)",
    "Libellé pays (coord. structure)",
    "Téléphone (coord. structure)",
    "Téléphone 2 (coord. structure)",
    "Télécopie (coord. structure)",
    "Adresse e-mail (coord. structure)",
    "Code département (coord. structure)",
    "Libellé département (coord. structure)",
    "Ancien identifiant de la structure",
    "Autorité d'enregistrement",
    "Code secteur d'activité",
    "Libellé secteur d'activité",
    "Code section tableau pharmaciens",
    "Libellé section tableau pharmaciens",
    "Code fonction",
    "Libellé fonction",
    "Code genre d'activité",
    "Libellé genre d'activité",
)

#: File name prefix of the extraction, followed by ``_<YYYYMMDDhhmm>.txt``.
ACTIVITE_PREFIX: Final = "PS_LibreAcces_Personne_activite"

#: ``Type d'identifiant PP``: 8 = RPPS, 0 = ADELI (the IDNPS is this digit + the identifier).
TYPE_RPPS: Final = "8"
TYPE_ADELI: Final = "0"

_TYPE: Final = ACTIVITE_COLUMNS[0]
_IDENTIFIANT: Final = ACTIVITE_COLUMNS[1]
_IDNPS: Final = ACTIVITE_COLUMNS[2]
_PROFESSION: Final = ACTIVITE_COLUMNS[9]
_SIRET: Final = ACTIVITE_COLUMNS[19]
_SIREN: Final = ACTIVITE_COLUMNS[20]
_FINESS_SITE: Final = ACTIVITE_COLUMNS[21]
_FINESS_EJ: Final = ACTIVITE_COLUMNS[22]
_TECHNIQUE: Final = ACTIVITE_COLUMNS[23]

_CHUNK: Final = 1 << 16  # bytes read at a time; the encoding is detected on the first chunk
_MAX_LINE: Final = 1 << 20  # a "line" longer than this is not a text extraction
_ENCODING_LABELS: Final = {"utf-8": "UTF-8", "cp1252": "Windows-1252"}
_MEMBER_RE: Final = re.compile(re.escape(ACTIVITE_PREFIX) + r"[^/]*\.txt", re.IGNORECASE)
_RPPS_RE: Final = re.compile(r"[0-9]{11}")
_SIREN_RE: Final = re.compile(r"[0-9]{9}")
_SIRET_RE: Final = re.compile(r"[0-9]{14}")
_PROFESSION_RE: Final = re.compile(r"[0-9]{2}")
_TYPE_RE: Final = re.compile(r"[0-9]")
# FINESS: 9 characters, a 2-character département (digits, or 2A/2B for Corsica) and 7 digits.
_FINESS_RE: Final = re.compile(r"(?:[0-9]{2}|2[AB])[0-9]{7}")


class ExtractionError(Exception):
    """The file cannot be read as the extraction at all (layout, encoding, zip); one message.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected row: its 1-based line number (the header is line 1) and why.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class Row:
    """One activity row: its line number and its cells keyed by the official column names.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """

    line: int
    values: Mapping[str, str]

    @property
    def rpps(self) -> str | None:
        """The RPPS number when the identifier type is 8 (RPPS), else None (ADELI).

        https://annuaire.sante.fr/web/site-pro/extractions-publiques
        """
        if self.values[_TYPE] == TYPE_RPPS:
            return self.values[_IDENTIFIANT] or None
        return None

    @property
    def idnps(self) -> str:
        """The Identification nationale PP (type digit + identifier), the person's national id.

        https://annuaire.sante.fr/web/site-pro/extractions-publiques
        """
        return self.values[_IDNPS]

    @property
    def person_key(self) -> str:
        """What groups the activities of one person: the IDNPS.

        https://annuaire.sante.fr/web/site-pro/extractions-publiques
        """
        return self.values[_IDNPS]

    @property
    def profession_code(self) -> str:
        """The profession code (NOS TRE_G15-ProfessionSante, e.g. 10 Médecin).

        https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante
        """
        return self.values[_PROFESSION]

    @property
    def structure_key(self) -> str | None:
        """The best identifier of the activity's structure: FINESS site, else SIRET, else the
        Identifiant technique de la structure (None when all are empty).

        https://annuaire.sante.fr/web/site-pro/extractions-publiques
        """
        kind = self.structure_key_type
        if kind is None:
            return None
        return self.values[_STRUCTURE_KEY_COLUMNS[kind]]

    @property
    def structure_key_type(self) -> str | None:
        """Which identifier :attr:`structure_key` is, as an FR Core v2-0203 code: FINEG (FINESS
        site), SIRET, or INTRN (Identifiant technique de la structure); None when none.

        https://hl7.fr/ig/fhir/core/CodeSystem-fr-core-cs-v2-0203.html
        """
        for kind, column in _STRUCTURE_KEY_COLUMNS.items():
            if self.values[column]:
                return kind
        return None


_STRUCTURE_KEY_COLUMNS: Final = {"FINEG": _FINESS_SITE, "SIRET": _SIRET, "INTRN": _TECHNIQUE}


# --------------------------------------------------------------------------------------------
# Identifier checks (each returns None, or the reason the value is wrong)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 12)  # a person's rows are consecutive
def rpps_problem(value: str) -> str | None:
    """Why ``value`` is not an RPPS number (11 digits, the last a Luhn key of the first 10).

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    if not _RPPS_RE.fullmatch(value):
        return f"RPPS {value!r} is not 11 digits"
    expected = luhn.calc_check_digit(value[:10])
    if value[10] != expected:
        return (
            f"RPPS {value} has an invalid check digit: {value[10]}, "
            f"expected {expected} (Luhn key of {value[:10]})"
        )
    return None


@functools.lru_cache(maxsize=1 << 16)  # structures recur on many rows
def finess_problem(value: str) -> str | None:
    """Why ``value`` is not a FINESS number (9 characters, Luhn key when all digits).

    The key is the Luhn digit of the first 8 characters: every public all-digit FINESS we could
    check (CHU de Nancy 540002698, AP-HP 750712184, ...) passes it. For Corsica (2A/2B) no
    reliable rule was found (one third-party validator maps 2A/2B to 21/22), so only the shape
    is checked there.
    https://finess.esante.gouv.fr
    """
    if not _FINESS_RE.fullmatch(value):
        return (
            f"FINESS {value!r} is not 9 characters: a département (2 digits, 2A or 2B) "
            "then 7 digits"
        )
    if value.isdigit() and not luhn.is_valid(value):
        return (
            f"FINESS {value} has an invalid check digit: {value[8]}, "
            f"expected {luhn.calc_check_digit(value[:8])} (Luhn key)"
        )
    return None


@functools.lru_cache(maxsize=1 << 16)  # structures recur on many rows
def siren_problem(value: str) -> str | None:
    """Why ``value`` is not a SIREN number (9 digits, the last a Luhn key).

    https://www.sirene.fr
    """
    if not _SIREN_RE.fullmatch(value):
        return f"SIREN {value!r} is not 9 digits"
    if not luhn.is_valid(value):
        return (
            f"SIREN {value} has an invalid check digit: {value[8]}, "
            f"expected {luhn.calc_check_digit(value[:8])} (Luhn key)"
        )
    return None


@functools.lru_cache(maxsize=1 << 16)  # structures recur on many rows
def siret_problem(value: str) -> str | None:
    """Why ``value`` is not a SIRET number (SIREN + NIC, Luhn over 14 digits; python-stdnum).

    https://www.sirene.fr
    """
    if not _SIRET_RE.fullmatch(value):
        return f"SIRET {value!r} is not 14 digits"
    if stdnum_siret.is_valid(value):
        return None
    if (problem := siren_problem(value[:9])) is not None:
        return f"SIRET {value}: its {problem}"
    if value.startswith("356000000"):  # La Poste: its own rule (sum of the digits, modulo 5)
        return f"SIRET {value} (La Poste) fails its check"
    return (
        f"SIRET {value} has an invalid check digit: {value[13]}, "
        f"expected {luhn.calc_check_digit(value[:13])} (Luhn key)"
    )


def _problems(values: Mapping[str, str], known: Collection[str] | None) -> list[str]:
    """Every reason to reject one row whose column count is right."""
    found: list[str] = []
    kind = values[_TYPE]
    ident = values[_IDENTIFIANT]
    if not _TYPE_RE.fullmatch(kind):
        found.append(f"Type d'identifiant PP {kind!r} is not one digit (8 = RPPS, 0 = ADELI)")
    if not ident:
        found.append("Identifiant PP is empty")
    elif kind == TYPE_RPPS and (problem := rpps_problem(ident)) is not None:
        found.append(problem)
    idnps = values[_IDNPS]
    if kind and ident and idnps != kind + ident:
        found.append(
            f"Identification nationale PP {idnps!r} is not Type d'identifiant PP + "
            f"Identifiant PP ({kind + ident!r})"
        )
    code = values[_PROFESSION]
    if not _PROFESSION_RE.fullmatch(code):
        found.append(f"Code profession {code!r} is not 2 digits")
    elif known is not None and code not in known:
        found.append(f"Code profession {code!r} is not a known profession (TRE_G15)")
    for column in (_FINESS_SITE, _FINESS_EJ):
        if (value := values[column]) and (problem := finess_problem(value)) is not None:
            found.append(f"{column}: {problem}")
    siret = values[_SIRET]
    if siret and (problem := siret_problem(siret)) is not None:
        found.append(problem)
    siren = values[_SIREN]
    if siren:
        if (problem := siren_problem(siren)) is not None:
            found.append(problem)
        elif siret and not siret.startswith(siren):
            found.append(f"SIREN {siren} is not the first 9 digits of SIRET {siret}")
    return found


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_activities(
    path: str | Path, *, known_professions: Collection[str] | None = None
) -> Iterator[Row | RowError]:
    """The rows of an extraction (``.txt``, or a ``.zip`` holding one), streamed and checked.

    ``known_professions`` (TRE_G15 codes), when given, also rejects rows of other professions.
    Raises :class:`ExtractionError` (before any row) when the file is not this extraction.
    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    known = frozenset(known_professions) if known_professions is not None else None
    with _open_extraction(Path(path)) as (stream, name):
        yield from _read(stream, name, known)


def scan_persons(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line, raw Identification nationale PP) of every data line, unchecked: a fast first
    pass (the header is checked, the rows are not split or decoded further) for what only
    needs to know who is where. Raises :class:`ExtractionError` like :func:`read_activities`.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    with _open_extraction(Path(path)) as (stream, name):
        encoding, lines = _text_lines(stream, name)
        _check_header(next(lines, b""), encoding, name)
        position = ACTIVITE_COLUMNS.index(_IDNPS)
        for number, raw in enumerate(lines, start=2):
            if raw.strip():
                cells = raw.split(b"|", position + 1)
                yield number, cells[position] if len(cells) > position else b""


def _open_extraction(path: Path) -> AbstractContextManager[tuple[IO[bytes], str]]:
    """The binary stream of the extraction text and a name for messages."""
    return open_text(path, _member)


@contextmanager
def open_text(
    path: Path, member_of: Callable[[zipfile.ZipFile, str], zipfile.ZipInfo]
) -> Iterator[tuple[IO[bytes], str]]:
    """The binary stream of a published text file, given as such or inside a zip (the member
    ``member_of`` picks), and a name for messages; every failure is an ExtractionError.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    with open_archive(path) as (archive, handle):
        if archive is None:
            yield handle, path.name
            return
        member = member_of(archive, path.name)
        with open_member(archive, member, path.name) as inner:
            yield inner, f"{path.name}:{member.filename}"


@contextmanager
def open_archive(path: Path) -> Iterator[tuple[zipfile.ZipFile | None, IO[bytes]]]:
    """(the zip archive, or None for a plain file; the open file), failures as
    ExtractionError (https://annuaire.sante.fr/web/site-pro/extractions-publiques)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ExtractionError(f"cannot open {path}: {exc.strerror or exc}") from None
    with handle:
        magic = handle.read(4)
        handle.seek(0)
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
            if path.suffix.lower() == ".zip":
                raise ExtractionError(f"{path.name} is named .zip but is not a zip archive")
            yield None, handle
            return
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ExtractionError(
                f"{path.name} is not a readable zip archive (truncated or corrupt: {exc})"
            ) from None
        with archive:
            yield archive, handle


@contextmanager
def open_member(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str
) -> Iterator[IO[bytes]]:
    """One member of a zip, failures as ExtractionError (an unsupported compression method
    raises NotImplementedError in zipfile) (https://docs.python.org/3/library/zipfile.html)."""
    try:
        inner = archive.open(member)
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise ExtractionError(
            f"{name}: cannot open {member.filename} (corrupt or encrypted: {exc})"
        ) from None
    with inner:
        yield inner


def _member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    """The extraction file in the zip (the latest by name if several)."""
    infos = archive.infolist()
    candidates = sorted(
        (i for i in infos if not i.is_dir() and _MEMBER_RE.fullmatch(i.filename.rsplit("/")[-1])),
        key=lambda i: i.filename.rsplit("/")[-1],
    )
    if not candidates:
        held = ", ".join(i.filename for i in infos[:10]) + (", ..." if len(infos) > 10 else "")
        raise ExtractionError(
            f"{name} holds no {ACTIVITE_PREFIX}*.txt file (it holds: {held or 'nothing'})"
        )
    return candidates[-1]


def _chunks(stream: IO[bytes], name: str) -> Iterator[bytes]:
    """The stream in chunks; zip damage found while inflating becomes an ExtractionError."""
    while True:
        try:
            chunk = stream.read(_CHUNK)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
            raise ExtractionError(f"{name} is corrupt or truncated: {exc}") from None
        if not chunk:
            return
        yield chunk


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Physical lines (without the ``\\n``) from chunks, holding at most one partial line."""
    rest = b""
    for chunk in chunks:
        parts = (rest + chunk if rest else chunk).split(b"\n")
        rest = parts.pop()
        if len(rest) > _MAX_LINE:
            raise ExtractionError(
                f"a line is longer than {_MAX_LINE} bytes: this is not a text extraction"
            )
        yield from parts
    if rest:
        yield rest


def _detect_encoding(first: bytes) -> str:
    """UTF-8 when most lines of the first chunk holding non-ASCII bytes are UTF-8, else cp1252.

    Counting lines (the header always has accented letters) keeps one stray Windows-1252 line
    near the top from switching a UTF-8 file, and the other way round.
    """
    if first.startswith(codecs.BOM_UTF8):
        return "utf-8"
    lines = first.split(b"\n")
    if len(lines) > 1:
        lines.pop()  # possibly cut by the chunk boundary
    valid = invalid = 0
    for line in lines:
        if line.isascii():
            continue
        try:
            codecs.getincrementaldecoder("utf-8")().decode(line, final=False)
        except UnicodeDecodeError:
            invalid += 1
        else:
            valid += 1
    return "utf-8" if valid >= invalid else "cp1252"  # cp1252 also reads ISO-8859-1 text


def _normalized(name: str) -> str:
    return " ".join(name.split()).casefold()


_EXPECTED_HEADER: Final = tuple(_normalized(c) for c in ACTIVITE_COLUMNS)


def _check_header(raw: bytes, encoding: str, name: str) -> None:
    """Raise one ExtractionError unless the header is the 56-column layout (case-insensitive)."""
    text = raw.rstrip(b"\r").decode(encoding, errors="replace")
    body = text[:-1] if text.endswith("|") else text
    names = body.split("|")
    if tuple(_normalized(n) for n in names) == _EXPECTED_HEADER:
        return
    width = len(ACTIVITE_COLUMNS)
    expected = (
        f"the {width}-column '|'-separated header of {ACTIVITE_PREFIX} "
        f"({ACTIVITE_COLUMNS[0]}|{ACTIVITE_COLUMNS[1]}|...|{ACTIVITE_COLUMNS[-1]}|)"
    )
    preview = text if len(text) <= 120 else text[:120] + "..."
    if len(names) == width:
        index = next(i for i, n in enumerate(names) if _normalized(n) != _EXPECTED_HEADER[i])
        found = f"column {index + 1} named {names[index]!r} instead of {ACTIVITE_COLUMNS[index]!r}"
    else:
        separator = max((";", ",", "\t", "|"), key=text.count)
        if separator != "|" and text.count(separator) > text.count("|"):
            count = text.count(separator) + 1
            found = f"a header separated by {separator!r} ({count} columns): {preview!r}"
        else:
            found = f"{len(names)} '|'-separated column(s): {preview!r}"
    raise ExtractionError(
        f"{name} is not a {ACTIVITE_PREFIX} extraction: expected {expected}, found {found}"
    )


def _text_lines(stream: IO[bytes], name: str) -> tuple[str, Iterator[bytes]]:
    """(encoding, physical lines from the header on) of an extraction stream."""
    chunks = _chunks(stream, name)
    first = next(chunks, b"")
    if not first:
        raise ExtractionError(f"{name} is empty: expected the header of {ACTIVITE_PREFIX}")
    encoding = _detect_encoding(first)
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8) :]
    return encoding, _lines(itertools.chain((first,), chunks))


def pipe_fields(
    lines: Iterable[bytes], encoding: str, width: int, *, trailing: bool = True
) -> Iterator[tuple[int, list[str]] | RowError]:
    """(line number, fields) of each non-blank data line after the header (line 1) of a
    ``|``-separated extraction, its trailing ``|`` dropped (``trailing``); a line that does not
    decode or has not ``width`` fields is a RowError.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    label = _ENCODING_LABELS[encoding]
    for number, raw in enumerate(lines, start=2):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw.strip():
            continue
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            yield RowError(
                number,
                f"not {label} text: byte 0x{raw[exc.start]:02X} at byte {exc.start + 1} "
                f"cannot be decoded (the file was read as {label}, detected from its start)",
            )
            continue
        fields = (text[:-1] if trailing and text.endswith("|") else text).split("|")
        if len(fields) != width:
            yield RowError(number, f"{len(fields)} columns instead of {width}")
            continue
        yield number, fields


def _read(stream: IO[bytes], name: str, known: Collection[str] | None) -> Iterator[Row | RowError]:
    encoding, lines = _text_lines(stream, name)
    _check_header(next(lines, b""), encoding, name)
    for item in pipe_fields(lines, encoding, len(ACTIVITE_COLUMNS)):
        if isinstance(item, RowError):
            yield item
            continue
        number, fields = item
        values = dict(zip(ACTIVITE_COLUMNS, fields, strict=True))
        problems = _problems(values, known)
        if problems:
            yield RowError(number, "; ".join(problems))
        else:
            yield Row(number, MappingProxyType(values))
