"""The other Annuaire Santé open-data files (diplômes, savoir-faire, MSSanté mailboxes):
header-driven streaming readers, and the pure enrichment of Practitioner / Organization resources.

Files (extractions publiques of the ANS, beside ``PS_LibreAcces_Personne_activite``; ``|``-separated
with a trailing ``|``, one header row, UTF-8 or Windows-1252, plain or zipped):

* ``PS_LibreAcces_Dipl_AutExerc_<ts>.txt``: one row per diploma or exercise authorisation;
* ``PS_LibreAcces_SavoirFaire_<ts>.txt``: one row per savoir-faire (the newer extractions moved
  them out of the activity file);
* ``Extraction_Correspondance_MSSante_<ts>.txt``: one row per MSSanté mailbox (BAL).

Their layouts are in none of the sources we hold (domain-spec §3.2 marks them ❓), so the readers
locate columns by their header names, compared after :func:`normalize_column` (case, accents,
punctuation and spaces ignored), need only a few of them, and ignore unknown extra columns. The
file kind is told by its header, never by its name. Column names relied on, from the published
layouts as publicly described (medium confidence for the exact spelling, hence the tolerant
comparison and the few aliases given in brackets):

* every file: ``Type d'identifiant PP``, ``Identifiant PP``, ``Identification nationale PP``
  (IDNPS = type digit + identifier; required: the IDNPS, or the type and the identifier).
  High confidence: the same names as in the activity file.
* diplômes: ``Code type diplôme obtenu`` [Code type diplôme], ``Libellé type diplôme obtenu``,
  ``Code diplôme obtenu`` [Code diplôme], ``Libellé diplôme obtenu``, ``Code type autorisation``,
  ``Libellé type autorisation``, ``Code discipline autorisation``, ``Libellé discipline
  autorisation``; required: the two diploma codes, or the authorisation type. Medium confidence.
* savoir-faire: ``Code type savoir-faire``, ``Code savoir-faire`` (required) and their
  ``Libellé`` columns, ``Code profession``, ``Code catégorie professionnelle``: the names of the
  activity file, high confidence.
* MSSanté: ``Type de BAL`` [Type BAL], ``Adresse BAL``, ``Identification Structure`` (required),
  ``Type d'identifiant structure``, ``Service de rattachement``; the profession, savoir-faire,
  ``Dématérialisation``, ``Raison sociale structure BAL``… are read but not mapped. Medium
  confidence. The content of ``Identification Structure`` (the IDNST with its type digit, or the
  bare FINESS / SIRET next to ``Type d'identifiant structure``) is not documented anywhere we
  could check: :func:`enrich_organization` accepts both.

Decisions (sources, and how sure):

* diploma → ``Practitioner.qualification[degree]`` as in the guide's examples: coding
  ``TRE_R48-DiplomeEtatFrancais`` (the diploma) then ``TRE_R14-TypeDiplome`` (its type). Only type
  ``DE`` has a table named by the guide (TRE_R48); a diploma of another type keeps its type coding
  and its label as ``text``. High confidence for DE, and for not guessing the other tables.
* exercise authorisation → the ``as-ext-practitioner-authorization`` extension
  (``Practitioner.extension[as-ext-frpractitioner-authorization]``: ``type``, ``field``), which the
  guide maps to the MOS *AutorisationExercice*; the profiles have no authorisation slice of
  ``qualification``. High confidence. Their value sets (JDV_J75, JDV_J76) are named by the guide,
  not the code systems behind them, so the code is kept in a coding without ``system`` (with its
  label as ``display``): set :data:`AUTHORIZATION_TYPE_TABLE` / :data:`AUTHORIZATION_FIELD_TABLE`
  once the NOS tables are confirmed.
* savoir-faire → ``qualification[savoirFaire]`` built by the same code as the activity mapping
  (:func:`maison.services.annuaire.mapping._savoir_faire`), not added twice when the activity rows
  already gave it (same codes, displays ignored). High confidence.
* mailboxes → ``telecom`` in the ``as-mailbox-mss`` shape: the FR Core e-mail type extension
  (TRE_R256 ``MSSANTE``) and ``as-ext-mailbox-mss-metadata`` with ``type`` (TRE_R257) and
  ``service`` (Service de rattachement); ``listeRouge`` and ``responsible`` are forbidden by the DP
  profiles (the open data holds no red-listed box) and ``description`` has no column. PER and CAB
  mailboxes go on the Practitioner, ORG and APP ones on the Organization, as the ANS draft
  *API FHIR MSS* tabulates (interop-ig-fhir-api-messagerie-securisee-sante). A mailbox already in
  ``telecom`` (same address, any case) is replaced in place, others appended. High confidence.
* order: new entries are appended after the existing ones, sorted, so the result does not depend
  on the order of the side rows, and enriching twice gives the bytes of enriching once.

https://annuaire.sante.fr/web/site-pro/extractions-publiques
https://interop.esante.gouv.fr/ig/fhir/annuaire/
"""

from __future__ import annotations

import codecs
import itertools
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Final, Literal, get_args

import orjson

from maison.services.annuaire import mapping as m
from maison.services.annuaire.extraction import (
    ExtractionError,
    RowError,
    _chunks,
    _detect_encoding,
    _lines,
    open_archive,
    open_member,
    pipe_fields,
    rpps_problem,
)

__all__ = [
    "COLUMNS",
    "DIPLOMES_COLUMNS",
    "MSSANTE_COLUMNS",
    "SAVOIR_FAIRE_COLUMNS",
    "ExtractionError",
    "FileKind",
    "RowError",
    "SideKind",
    "SideRow",
    "detect_kind",
    "enrich_organization",
    "enrich_practitioner",
    "kinds_in",
    "normalize_column",
    "organization_keys",
    "read_side_file",
]

#: The kinds of side file; ``activite`` is the main extraction (read by ``extraction``).
SideKind = Literal["diplomes", "savoir_faire", "mssante"]
FileKind = Literal["activite", "diplomes", "savoir_faire", "mssante"]
SIDE_KINDS: Final[tuple[SideKind, ...]] = get_args(SideKind)

#: File name prefixes, followed by ``_<YYYYMMDDhhmm>.txt`` (used by the writers; reading goes by
#: the header).
DIPLOMES_PREFIX: Final = "PS_LibreAcces_Dipl_AutExerc"
SAVOIR_FAIRE_PREFIX: Final = "PS_LibreAcces_SavoirFaire"
MSSANTE_PREFIX: Final = "Extraction_Correspondance_MSSante"
PREFIXES: Final[dict[SideKind, str]] = {
    "diplomes": DIPLOMES_PREFIX,
    "savoir_faire": SAVOIR_FAIRE_PREFIX,
    "mssante": MSSANTE_PREFIX,
}

# --- Column names (as published; compared after normalize_column) -----------------------------
TYPE_ID_PP: Final = m.TYPE_ID_PP
ID_PP: Final = m.ID_PP
IDNAT_PP: Final = m.IDNAT_PP
NOM: Final = m.NOM
PRENOM: Final = m.PRENOM
PROFESSION, PROFESSION_LABEL = m.PROFESSION, m.PROFESSION_LABEL
CATEGORIE, CATEGORIE_LABEL = m.CATEGORIE, m.CATEGORIE_LABEL
TYPE_SF, TYPE_SF_LABEL = m.TYPE_SF, m.TYPE_SF_LABEL
SF, SF_LABEL = m.SF, m.SF_LABEL
TYPE_DIPLOME, TYPE_DIPLOME_LABEL = "Code type diplôme obtenu", "Libellé type diplôme obtenu"
DIPLOME, DIPLOME_LABEL = "Code diplôme obtenu", "Libellé diplôme obtenu"
TYPE_AUTORISATION, TYPE_AUTORISATION_LABEL = "Code type autorisation", "Libellé type autorisation"
DISCIPLINE, DISCIPLINE_LABEL = "Code discipline autorisation", "Libellé discipline autorisation"
TYPE_BAL: Final = "Type de BAL"
ADRESSE_BAL: Final = "Adresse BAL"
TYPE_ID_STRUCTURE: Final = "Type d'identifiant structure"
ID_STRUCTURE: Final = "Identification Structure"
SERVICE: Final = "Service de rattachement"
CIVILITE_EXERCICE: Final = "Civilité d'exercice"
MSS_CATEGORIE: Final = "Catégorie professionnelle"
DEMATERIALISATION: Final = "Dématérialisation"
RAISON_SOCIALE_BAL: Final = "Raison sociale structure BAL"
ENSEIGNE_BAL: Final = "Enseigne commerciale structure BAL"

_PP_COLUMNS: Final = (TYPE_ID_PP, ID_PP, IDNAT_PP, NOM, PRENOM)

#: The published layout of ``PS_LibreAcces_Dipl_AutExerc`` (as the writers produce it).
DIPLOMES_COLUMNS: Final = (
    *_PP_COLUMNS,
    TYPE_DIPLOME,
    TYPE_DIPLOME_LABEL,
    DIPLOME,
    DIPLOME_LABEL,
    TYPE_AUTORISATION,
    TYPE_AUTORISATION_LABEL,
    DISCIPLINE,
    DISCIPLINE_LABEL,
)
#: The published layout of ``PS_LibreAcces_SavoirFaire``.
SAVOIR_FAIRE_COLUMNS: Final = (
    *_PP_COLUMNS,
    PROFESSION,
    PROFESSION_LABEL,
    CATEGORIE,
    CATEGORIE_LABEL,
    TYPE_SF,
    TYPE_SF_LABEL,
    SF,
    SF_LABEL,
)
#: The columns of the MSSanté correspondence extraction that are read (the published file has
#: address columns after these, ignored).
MSSANTE_COLUMNS: Final = (
    TYPE_BAL,
    ADRESSE_BAL,
    TYPE_ID_PP,
    ID_PP,
    IDNAT_PP,
    TYPE_ID_STRUCTURE,
    ID_STRUCTURE,
    SERVICE,
    CIVILITE_EXERCICE,
    NOM,
    PRENOM,
    MSS_CATEGORIE,
    CATEGORIE_LABEL,
    PROFESSION,
    PROFESSION_LABEL,
    SF,
    SF_LABEL,
    DEMATERIALISATION,
    RAISON_SOCIALE_BAL,
    ENSEIGNE_BAL,
)
#: Side kind → the layout its writer produces.
COLUMNS: Final[dict[SideKind, tuple[str, ...]]] = {
    "diplomes": DIPLOMES_COLUMNS,
    "savoir_faire": SAVOIR_FAIRE_COLUMNS,
    "mssante": MSSANTE_COLUMNS,
}
#: Other spellings accepted for a column (published name → aliases).
_ALIASES: Final = {
    TYPE_BAL: ("Type BAL",),
    TYPE_DIPLOME: ("Code type diplôme",),
    TYPE_DIPLOME_LABEL: ("Libellé type diplôme",),
    DIPLOME: ("Code diplôme",),
    DIPLOME_LABEL: ("Libellé diplôme",),
}

#: Mailbox types (TRE_R257-TypeBAL): on the person (PER, CAB) or on a structure (ORG, APP).
PERSON_BAL_TYPES: Final = ("PER", "CAB")
STRUCTURE_BAL_TYPES: Final = ("ORG", "APP")
BAL_TYPES: Final = (*PERSON_BAL_TYPES, *STRUCTURE_BAL_TYPES)

# --- FHIR ------------------------------------------------------------------------------------
AUTHORIZATION_URL: Final = f"{m.IG}as-ext-practitioner-authorization"
MAILBOX_METADATA_URL: Final = f"{m.IG}as-ext-mailbox-mss-metadata"
#: The NOS tables behind JDV_J75-TypeAutorisation-RASS / JDV_J76-DisciplineAutorisation-RASS:
#: not named by the guide, so the codes are kept without a system until they are confirmed.
AUTHORIZATION_TYPE_TABLE: Final[str | None] = None
AUTHORIZATION_FIELD_TABLE: Final[str | None] = None
#: Diploma type (TRE_R14) → the table of its diploma codes, where the guide names one.
DIPLOMA_TABLES: Final = {"DE": "TRE_R48-DiplomeEtatFrancais"}

_NON_ALNUM: Final = re.compile(r"[^0-9a-z]+")
_TYPE_RE: Final = re.compile(r"[0-9]")
# An MSSanté address: a dot-atom local part, then a domain under mssante.fr.
_MAILBOX_RE: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*mssante\.fr",
    re.IGNORECASE,
)
_BAL_PRIORITY: Final = {t: i for i, t in enumerate(BAL_TYPES)}


def normalize_column(name: str) -> str:
    """A header name reduced for comparison: no accents, case-folded, punctuation as spaces.

    ``"Type d'identifiant PP"`` → ``"type d identifiant pp"``.
    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    decomposed = unicodedata.normalize("NFKD", name.replace("\u2019", "'"))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(_NON_ALNUM.sub(" ", bare).split())


def _keys_of(column: str) -> tuple[str, ...]:
    return tuple(normalize_column(n) for n in (column, *_ALIASES.get(column, ())))


# normalised spelling → published name, per kind
_LOOKUP: Final[dict[SideKind, dict[str, str]]] = {
    kind: {key: column for column in columns for key in _keys_of(column)}
    for kind, columns in COLUMNS.items()
}
_MARKERS: Final[dict[SideKind, tuple[str, ...]]] = {
    "mssante": _keys_of(ADRESSE_BAL),
    "diplomes": tuple(
        k for c in (TYPE_DIPLOME, DIPLOME, TYPE_AUTORISATION, DISCIPLINE) for k in _keys_of(c)
    ),
    "savoir_faire": _keys_of(TYPE_SF) + _keys_of(SF),
}
_ACTIVITE_MARKERS: Final = tuple(
    normalize_column(c) for c in (m.MODE, m.RAISON_SOCIALE, m.TECHNICAL_ID)
)
_DESCRIPTIONS: Final[dict[FileKind, str]] = {
    "activite": "PS_LibreAcces_Personne_activite",
    "diplomes": DIPLOMES_PREFIX,
    "savoir_faire": SAVOIR_FAIRE_PREFIX,
    "mssante": MSSANTE_PREFIX,
}


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SideRow:
    """One accepted row of a side file: its kind, 1-based line number (header = 1), the key of
    whom it is about (the Identification nationale PP, or the ``Identification Structure`` of a
    structure mailbox) and its cells keyed by the published column names (stripped; the
    ``Type de BAL`` upper-cased, as it is read case-insensitively).

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """

    kind: SideKind
    line: int
    key: str
    cells: Mapping[str, str]

    @property
    def structure_mailbox(self) -> bool:
        """True for an organisational or applicative mailbox (ORG, APP), keyed by structure.

        https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-ext-mailbox-mss-metadata.html
        """
        return self.kind == "mssante" and self.cells.get(TYPE_BAL) in STRUCTURE_BAL_TYPES

    def cell(self, column: str) -> str:
        """The cell of ``column`` (a published name), ``""`` when the file has no such column.

        https://annuaire.sante.fr/web/site-pro/extractions-publiques
        """
        return self.cells.get(column, "")


# --------------------------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------------------------


def _header_names(raw: bytes, encoding: str) -> tuple[list[str], bool, str]:
    """(column names, whether lines end with a ``|``, the decoded header) of a header line."""
    text = raw.rstrip(b"\r").decode(encoding, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    trailing = text.endswith("|")
    body = text[:-1] if trailing else text
    return body.split("|"), trailing, text


def _classify(names: Sequence[str]) -> FileKind | None:
    present = {normalize_column(n) for n in names}
    if any(k in present for k in _MARKERS["mssante"]):
        return "mssante"
    if all(k in present for k in _ACTIVITE_MARKERS):
        return "activite"
    if any(k in present for k in _MARKERS["diplomes"]):
        return "diplomes"
    if any(k in present for k in _MARKERS["savoir_faire"]):
        return "savoir_faire"
    return None


def _not_side_message(name: str, names: Sequence[str], text: str) -> str:
    preview = text if len(text) <= 120 else text[:120] + "..."
    separator = max((";", ",", "\t", "|"), key=text.count)
    if separator != "|" and text.count(separator) > text.count("|"):
        found = f"a header separated by {separator!r}: {preview!r}"
    else:
        found = f"{len(names)} '|'-separated column(s): {preview!r}"
    return (
        f"{name} is not an Annuaire Santé extraction: expected the '|'-separated header of "
        f"{DIPLOMES_PREFIX} (with {TYPE_DIPLOME!r} or {TYPE_AUTORISATION!r}), "
        f"{SAVOIR_FAIRE_PREFIX} (with {TYPE_SF!r} and {SF!r}), {MSSANTE_PREFIX} (with "
        f"{ADRESSE_BAL!r}) or PS_LibreAcces_Personne_activite; found {found}"
    )


def _index(kind: SideKind, names: Sequence[str], name: str) -> dict[str, int]:
    """Published column name → position, for the columns of ``kind`` the header holds; one
    ExtractionError when a required one is missing."""
    lookup = _LOOKUP[kind]
    index: dict[str, int] = {}
    for position, raw in enumerate(names):
        column = lookup.get(normalize_column(raw))
        if column is not None:
            index.setdefault(column, position)
    missing: list[str] = []
    if IDNAT_PP not in index and not (TYPE_ID_PP in index and ID_PP in index):
        missing.append(f"{IDNAT_PP!r} (or {TYPE_ID_PP!r} and {ID_PP!r})")
    if kind == "diplomes":
        if not ({TYPE_DIPLOME, DIPLOME} <= index.keys() or TYPE_AUTORISATION in index):
            missing.append(f"{TYPE_DIPLOME!r} and {DIPLOME!r} (or {TYPE_AUTORISATION!r})")
    elif kind == "savoir_faire":
        missing.extend(repr(c) for c in (TYPE_SF, SF) if c not in index)
    else:
        missing.extend(repr(c) for c in (TYPE_BAL, ADRESSE_BAL, ID_STRUCTURE) if c not in index)
    if missing:
        raise ExtractionError(
            f"{name} looks like {_DESCRIPTIONS[kind]} but its header lacks "
            f"{', '.join(missing)} (normalised names; found: {' | '.join(names)})"
        )
    return index


def _first_line(stream: IO[bytes], name: str) -> tuple[bytes, str, Iterator[bytes]]:
    """(header line, encoding, the other lines) of a stream; ExtractionError when empty."""
    chunks = _chunks(stream, name)
    first = next(chunks, b"")
    if not first.strip():
        raise ExtractionError(f"{name} is empty: expected the header of an Annuaire extraction")
    encoding = _detect_encoding(first)
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8) :]
    lines = _lines(itertools.chain((first,), chunks))
    return next(lines, b""), encoding, lines


def _kind_of(stream: IO[bytes], name: str) -> FileKind | None:
    header, encoding, _ = _first_line(stream, name)
    names, _, _ = _header_names(header, encoding)
    return _classify(names)


def _text_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return sorted(
        (i for i in archive.infolist() if not i.is_dir() and i.filename.lower().endswith(".txt")),
        key=lambda i: i.filename.rsplit("/")[-1],
    )


def _member_kinds(archive: zipfile.ZipFile, name: str) -> list[tuple[zipfile.ZipInfo, FileKind]]:
    found: list[tuple[zipfile.ZipInfo, FileKind]] = []
    for member in _text_members(archive):
        label = f"{name}:{member.filename}"
        with open_member(archive, member, name) as inner:
            try:
                kind = _kind_of(inner, label)
            except ExtractionError:
                continue  # an empty or unreadable member is not an extraction
        if kind is not None:
            found.append((member, kind))
    return found


def kinds_in(path: str | Path) -> dict[FileKind, str]:
    """The extraction files a ``.txt`` or a ``.zip`` holds: kind → file (member) name, told by
    their headers (the latest by name when a zip holds two of one kind).

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    target = Path(path)
    with open_archive(target) as (archive, handle):
        if archive is None:
            kind = _kind_of(handle, target.name)
            return {} if kind is None else {kind: target.name}
        return {kind: member.filename for member, kind in _member_kinds(archive, target.name)}


def detect_kind(path: str | Path) -> FileKind:
    """What extraction a file is, from its header: ``activite``, ``diplomes``, ``savoir_faire``
    or ``mssante``; one :class:`ExtractionError` when it is none (or a zip holding several).

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    target = Path(path)
    with open_archive(target) as (archive, handle):
        if archive is None:
            header, encoding, _ = _first_line(handle, target.name)
            names, _, text = _header_names(header, encoding)
            kind = _classify(names)
            if kind is None:
                raise ExtractionError(_not_side_message(target.name, names, text))
            return kind
        found = _member_kinds(archive, target.name)
    if not found:
        raise ExtractionError(
            f"{target.name} holds no Annuaire Santé extraction (no .txt member with a known header)"
        )
    kinds = sorted({kind for _, kind in found})
    if len(kinds) > 1:
        held = ", ".join(f"{member.filename} ({kind})" for member, kind in found)
        raise ExtractionError(
            f"{target.name} holds several extractions ({held}): read them one kind at a time"
        )
    return kinds[0]


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_side_file(path: str | Path, kind: SideKind | None = None) -> Iterator[SideRow | RowError]:
    """The rows of a diplômes, savoir-faire or MSSanté extraction (``.txt``, or a ``.zip``),
    streamed and checked; ``kind`` picks the file in a zip holding several (and, if given, must
    be what the header says). Raises one :class:`ExtractionError`, before any row, when the
    file is not such an extraction.

    https://annuaire.sante.fr/web/site-pro/extractions-publiques
    """
    if kind is not None and kind not in SIDE_KINDS:
        raise ValueError(f"unknown kind {kind!r} (expected one of {', '.join(SIDE_KINDS)})")
    target = Path(path)
    with open_archive(target) as (archive, handle):
        if archive is None:
            yield from _read(handle, target.name, kind)
            return
        member = _pick_member(archive, target.name, kind)
        label = f"{target.name}:{member.filename}"
        with open_member(archive, member, target.name) as inner:
            yield from _read(inner, label, kind)


def _pick_member(archive: zipfile.ZipFile, name: str, kind: SideKind | None) -> zipfile.ZipInfo:
    members = _text_members(archive)
    if len(members) == 1:
        return members[0]
    if not members:
        held = ", ".join(i.filename for i in archive.infolist()[:10])
        raise ExtractionError(f"{name} holds no .txt file (it holds: {held or 'nothing'})")
    found = [(member, k) for member, k in _member_kinds(archive, name) if k != "activite"]
    if kind is not None:
        found = [(member, k) for member, k in found if k == kind]
    if len(found) == 1:
        return found[0][0]
    held = ", ".join(i.filename for i in members)
    if not found:
        wanted = _DESCRIPTIONS[kind] if kind else "a diplômes, savoir-faire or MSSanté extraction"
        raise ExtractionError(f"{name} holds no {wanted} (it holds: {held})")
    if kind is not None:
        return found[-1][0]  # two of the wanted kind: the latest by name
    raise ExtractionError(f"{name} holds several extractions ({held}): say which kind to read")


def _read(stream: IO[bytes], name: str, wanted: SideKind | None) -> Iterator[SideRow | RowError]:
    header, encoding, lines = _first_line(stream, name)
    names, trailing, text = _header_names(header, encoding)
    found = _classify(names)
    if found is None:
        raise ExtractionError(_not_side_message(name, names, text))
    if found == "activite":
        raise ExtractionError(
            f"{name} is the activity extraction (PS_LibreAcces_Personne_activite): it is read by "
            "extraction.read_activities, not as a side file"
        )
    if wanted is not None and found != wanted:
        raise ExtractionError(
            f"{name} is a {_DESCRIPTIONS[found]} extraction, not {_DESCRIPTIONS[wanted]}"
        )
    index = _index(found, names, name)
    check = _CHECKS[found]
    for item in pipe_fields(lines, encoding, len(names), trailing=trailing):
        if isinstance(item, RowError):
            yield item
            continue
        number, fields = item
        cells = {column: fields[position].strip() for column, position in index.items()}
        key, problems = check(cells)
        if problems:
            yield RowError(number, "; ".join(problems))
        else:
            yield SideRow(found, number, key, MappingProxyType(cells))


def _person(cells: dict[str, str]) -> tuple[str, list[str]]:
    """(IDNPS, problems) of the person columns: the published IDNPS, else type + identifier."""
    problems: list[str] = []
    kind, ident, national = (cells.get(c, "") for c in (TYPE_ID_PP, ID_PP, IDNAT_PP))
    if kind and not _TYPE_RE.fullmatch(kind):
        problems.append(f"Type d'identifiant PP {kind!r} is not one digit (8 = RPPS, 0 = ADELI)")
    if kind == "8" and ident and (problem := rpps_problem(ident)) is not None:
        problems.append(problem)
    if kind and ident and national and national != kind + ident:
        problems.append(
            f"Identification nationale PP {national!r} is not Type d'identifiant PP + "
            f"Identifiant PP ({kind + ident!r})"
        )
    if (
        national
        and not ident
        and national.startswith("8")
        and (problem := rpps_problem(national[1:])) is not None
    ):
        problems.append(f"Identification nationale PP {national}: its {problem}")
    key = national or (kind + ident if kind and ident else "")
    return key, problems


def _needs_person(cells: dict[str, str]) -> tuple[str, list[str]]:
    key, problems = _person(cells)
    if not key and not problems:
        problems.append(
            "no Identification nationale PP (nor Type d'identifiant PP + Identifiant PP)"
        )
    return key, problems


def _mailbox(cells: dict[str, str]) -> tuple[str, list[str]]:
    problems: list[str] = []
    bal = cells.get(TYPE_BAL, "").upper()
    cells[TYPE_BAL] = bal
    address = cells.get(ADRESSE_BAL, "")
    if not address:
        problems.append("Adresse BAL is empty")
    elif not _MAILBOX_RE.fullmatch(address):
        problems.append(f"Adresse BAL {address!r} is not an MSSanté address (…@….mssante.fr)")
    if bal not in BAL_TYPES:
        problems.append(
            f"Type de BAL {bal!r} is not a known mailbox type (TRE_R257: {', '.join(BAL_TYPES)})"
        )
    if bal in STRUCTURE_BAL_TYPES:
        _, person_problems = _person(cells)
        problems.extend(person_problems)
        key = cells.get(ID_STRUCTURE, "")
        if not key:
            problems.append(f"a {bal} mailbox without Identification Structure")
        return key, problems
    key, person_problems = _person(cells)
    problems.extend(person_problems)
    if not key and not person_problems and bal in PERSON_BAL_TYPES:
        problems.append(f"a {bal} mailbox without Identification nationale PP")
    return key, problems


_CHECKS: Final = {"diplomes": _needs_person, "savoir_faire": _needs_person, "mssante": _mailbox}


# --------------------------------------------------------------------------------------------
# Enrichment
# --------------------------------------------------------------------------------------------

Resource = dict[str, Any]


def _sort_key(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _copy(resource: Mapping[str, Any]) -> Resource:
    """A deep copy of a JSON resource (orjson: many times faster than copy.deepcopy)."""
    out: Resource = orjson.loads(orjson.dumps(resource))
    return out


def _concept_key(concept: Mapping[str, Any]) -> tuple[frozenset[tuple[str, str]], str]:
    """What identifies a CodeableConcept: its (system, code) pairs and its text (not displays)."""
    codings = concept.get("coding") or ()
    pairs = frozenset((c.get("system") or "", c.get("code") or "") for c in codings)
    return pairs, concept.get("text") or ""


def _uncoded(table: str | None, code: str, label: str) -> dict[str, Any]:
    """A CodeableConcept of ``code``: in ``table`` when known, else a coding without system."""
    if not code:
        return {"text": label}
    if table is not None:
        return {"coding": [m._coding(table, code, label)]}
    coding = {"code": code}
    if label:
        coding["display"] = label
    return {"coding": [coding]}


def _degree(row: SideRow) -> dict[str, Any] | None:
    """``qualification[degree]`` of a diploma row, ``None`` when the row names no diploma."""
    kind, code, label = row.cell(TYPE_DIPLOME), row.cell(DIPLOME), row.cell(DIPLOME_LABEL)
    if not (kind or code or label):
        return None
    codings = []
    table = DIPLOMA_TABLES.get(kind)
    if table is not None and code:
        codings.append(m._coding(table, code, label))
    if kind:
        codings.append(m._coding("TRE_R14-TypeDiplome", kind, row.cell(TYPE_DIPLOME_LABEL)))
    concept: dict[str, Any] = {}
    if codings:
        concept["coding"] = codings
    if (table is None or not code) and (label or code):
        concept["text"] = label or code
    return {"code": concept}


def _authorization(row: SideRow) -> dict[str, Any] | None:
    """The ``as-ext-practitioner-authorization`` extension of an authorisation row, if any."""
    kind, label = row.cell(TYPE_AUTORISATION), row.cell(TYPE_AUTORISATION_LABEL)
    field, field_label = row.cell(DISCIPLINE), row.cell(DISCIPLINE_LABEL)
    parts: list[dict[str, Any]] = []
    if kind or label:
        parts.append(
            {"url": "type", "valueCodeableConcept": _uncoded(AUTHORIZATION_TYPE_TABLE, kind, label)}
        )
    if field or field_label:
        concept = _uncoded(AUTHORIZATION_FIELD_TABLE, field, field_label)
        parts.append({"url": "field", "valueCodeableConcept": concept})
    if not parts:
        return None
    return {"url": AUTHORIZATION_URL, "extension": parts}


def _mailbox_point(address: str, bal: str, service: str) -> dict[str, Any]:
    """An ``as-mailbox-mss`` ContactPoint."""
    metadata: list[dict[str, Any]] = [
        {
            "url": "type",
            "valueCodeableConcept": {"coding": [m._coding("TRE_R257-TypeBAL", bal)]},
        }
    ]
    if service:
        metadata.append({"url": "service", "valueString": service})
    return {
        "system": "email",
        "value": address,
        "extension": [
            {
                "url": m.EMAIL_TYPE_URL,
                "valueCoding": m._coding("TRE_R256-TypeMessagerie", "MSSANTE"),
            },
            {"url": MAILBOX_METADATA_URL, "extension": metadata},
        ],
    }


def _mailboxes(rows: Sequence[SideRow]) -> list[dict[str, Any]]:
    """One ContactPoint per address (any case), sorted; for an address on several rows the
    first type in PER, CAB, ORG, APP order and the first non-empty service (sorted)."""
    by_address: dict[str, list[SideRow]] = {}
    for row in rows:
        by_address.setdefault(row.cell(ADRESSE_BAL).casefold(), []).append(row)
    points = []
    for folded in sorted(by_address):
        group = by_address[folded]
        best = min(
            group,
            key=lambda r: (
                _BAL_PRIORITY.get(r.cell(TYPE_BAL), len(BAL_TYPES)),
                r.cell(ADRESSE_BAL),
            ),
        )
        services = sorted(s for r in group if (s := r.cell(SERVICE)))
        points.append(
            _mailbox_point(
                best.cell(ADRESSE_BAL), best.cell(TYPE_BAL), services[0] if services else ""
            )
        )
    return points


def _merge_telecom(resource: Resource, points: list[dict[str, Any]]) -> None:
    """Replace the ``telecom`` e-mail entries of the same addresses in place, append the rest."""
    if not points:
        return
    telecom = list(resource.get("telecom", []))
    at = {
        str(t.get("value", "")).casefold(): i
        for i, t in enumerate(telecom)
        if t.get("system") == "email"
    }
    for point in points:
        index = at.get(point["value"].casefold())
        if index is None:
            telecom.append(point)
        else:
            telecom[index] = point
    resource["telecom"] = telecom


def _append_new(
    resource: Resource,
    key: str,
    new: list[dict[str, Any]],
    identity: Callable[[Mapping[str, Any]], Any] = _sort_key,
) -> None:
    """Append to ``resource[key]`` the entries of ``new`` not already there, sorted."""
    present = list(resource.get(key, []))
    seen = {identity(item) for item in present}
    added: dict[Any, dict[str, Any]] = {}
    for item in new:
        mark = identity(item)
        if mark not in seen:
            added.setdefault(mark, item)
    if added:
        resource[key] = present + sorted(added.values(), key=_sort_key)


def _qualification_identity(qualification: Mapping[str, Any]) -> Any:
    return _concept_key(qualification.get("code") or {})


def _idnps_of(practitioner: Mapping[str, Any]) -> str:
    for identifier in practitioner.get("identifier", ()):
        if identifier.get("system") == m.IDNPS_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    raise ValueError("the Practitioner has no Identification nationale PP identifier (IDNPS)")


def enrich_practitioner(practitioner: Mapping[str, Any], side_rows: Sequence[SideRow]) -> Resource:
    """A new Practitioner with the person's diplomas (``qualification[degree]``), exercise
    authorisations (``as-ext-practitioner-authorization``), savoir-faire
    (``qualification[savoirFaire]``, not twice) and PER / CAB MSSanté mailboxes (``telecom``).

    ``side_rows`` are the rows of this person (their key is his IDNPS, else ValueError); structure
    mailboxes (ORG, APP) among them are left to :func:`enrich_organization`.
    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-dp-practitioner.html
    """
    national = _idnps_of(practitioner)
    rows = [r for r in side_rows if not r.structure_mailbox]
    strangers = sorted({r.key for r in rows if r.key != national})
    if strangers:
        raise ValueError(
            f"side rows of other persons ({', '.join(strangers)}) given for {national}"
        )
    degrees: list[dict[str, Any]] = []
    authorizations: list[dict[str, Any]] = []
    savoir_faire: list[dict[str, Any]] = []
    mailboxes: list[SideRow] = []
    for row in rows:
        if row.kind == "diplomes":
            if (degree := _degree(row)) is not None:
                degrees.append(degree)
            if (authorization := _authorization(row)) is not None:
                authorizations.append(authorization)
        elif row.kind == "savoir_faire":
            code, _ = m._savoir_faire(row.cells)
            if code is not None:
                savoir_faire.append({"code": code})
        elif row.kind == "mssante":
            mailboxes.append(row)
    out = _copy(practitioner)
    _append_new(out, "qualification", degrees, _qualification_identity)
    _append_new(out, "qualification", savoir_faire, _qualification_identity)
    _append_new(out, "extension", authorizations)
    _merge_telecom(out, _mailboxes(mailboxes))
    return out


def _identifier_values(organization: Mapping[str, Any], system: str) -> list[str]:
    return [
        str(i["value"])
        for i in organization.get("identifier", ())
        if i.get("system") == system and i.get("value")
    ]


def organization_keys(organization: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``Identification Structure`` values that may designate this Organization (sorted):
    its IDNST, the IDNST without its type digit (the bare FINESS, SIRET…), its RASS technical id.

    Index the structure mailboxes by :attr:`SideRow.key` and look these up to find the rows to
    give :func:`enrich_organization` (which keeps only those that do designate it).
    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-dp-organization.html
    """
    keys: set[str] = set()
    for national in _identifier_values(organization, m.IDNST_SYSTEM):
        keys.add(national)
        if len(national) > 1:
            keys.add(national[1:])
    keys.update(_identifier_values(organization, m.RPPS_RANG_SYSTEM))
    return tuple(sorted(keys))


def _designates(row: SideRow, organization: Mapping[str, Any]) -> bool:
    """Whether a structure mailbox row names this Organization: its IDNST (with the type digit,
    or bare next to ``Type d'identifiant structure``) or its RASS technical id."""
    national = set(_identifier_values(organization, m.IDNST_SYSTEM))
    value, kind = row.key, row.cell(TYPE_ID_STRUCTURE)
    if value in national or value in _identifier_values(organization, m.RPPS_RANG_SYSTEM):
        return True
    return bool(kind) and kind + value in national


def enrich_organization(organization: Mapping[str, Any], side_rows: Sequence[SideRow]) -> Resource:
    """A new Organization with the ORG / APP MSSanté mailboxes that name it (``telecom``,
    ``as-mailbox-mss``); other rows are ignored, so candidates found by
    :func:`organization_keys` can be passed as they are.

    https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-dp-organization.html
    """
    rows = [r for r in side_rows if r.structure_mailbox and _designates(r, organization)]
    out = _copy(organization)
    _merge_telecom(out, _mailboxes(rows))
    return out
