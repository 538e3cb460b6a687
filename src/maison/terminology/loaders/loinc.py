"""LOINC from its official release: ``LoincTable/Loinc.csv`` (comma-separated, quoted, one
row per LOINC term, columns named in the header: LOINC_NUM, COMPONENT, PROPERTY, TIME_ASPCT,
SYSTEM, SCALE_TYP, METHOD_TYP, CLASS, …, STATUS, …, SHORTNAME, …, LONG_COMMON_NAME, …) and,
when given, linguistic variant files
(``AccessoryFiles/LinguisticVariants/frFR<n>LinguisticVariant.csv``: LOINC_NUM, the same
parts, SHORTNAME, LONG_COMMON_NAME, RELATEDNAMES2, LinguisticVariantDisplayName), whose
names become designations in their language.

Display = LONG_COMMON_NAME (English); designations: SHORTNAME (en-US) and, per variant,
LONG_COMMON_NAME / LinguisticVariantDisplayName / SHORTNAME in its language, each with
``use`` = ``http://loinc.org|<column>``; properties: the six parts, CLASS, CLASSTYPE,
ORDER_OBS and STATUS; STATUS DEPRECATED or DISCOURAGED makes a concept inactive. The version
is the release's (``Loinc_2.77`` in the path), else the highest VersionLastChanged.

https://loinc.org/kb/users-guide/, https://terminology.hl7.org/CodeSystem-v3-loinc.html
(LOINC in FHIR: ``http://loinc.org``)
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from typing import Final

from maison.terminology.loaders import (
    ConceptRow,
    DesignationRow,
    LoadError,
    Row,
    SystemLoad,
    SystemMeta,
)
from maison.terminology.loaders.archive import Entry
from maison.terminology.source import LOINC, Designation

TAG = "loinc/1"
REQUIRED: Final = ("LOINC_NUM", "LONG_COMMON_NAME", "STATUS")
PROPERTIES: Final = (
    "COMPONENT",
    "PROPERTY",
    "TIME_ASPCT",
    "SYSTEM",
    "SCALE_TYP",
    "METHOD_TYP",
    "CLASS",
    "CLASSTYPE",
    "ORDER_OBS",
    "STATUS",
)
VARIANT_NAMES: Final = ("LONG_COMMON_NAME", "LinguisticVariantDisplayName", "SHORTNAME")
INACTIVE: Final = frozenset({"DEPRECATED", "DISCOURAGED"})
_VARIANT_RE = re.compile(r"([a-z]{2})([A-Z]{2})\d*LinguisticVariant\.csv", re.IGNORECASE)
_RELEASE_RE = re.compile(r"Loinc_(\d+\.\d+)", re.IGNORECASE)


def is_table(base: str) -> bool:
    """Whether a file is the LOINC table (``Loinc.csv``)."""
    return base.lower() == "loinc.csv"


def variant_language(base: str) -> str | None:
    """``fr-FR`` for ``frFR18LinguisticVariant.csv`` (None: not a linguistic variant file)."""
    match = _VARIANT_RE.fullmatch(base)
    return f"{match.group(1).lower()}-{match.group(2).upper()}" if match else None


def _csv_rows(entry: Entry) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a LOINC CSV file, streamed."""
    with entry.open() as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        try:
            for fields in reader:
                yield reader.line_num, fields
        except UnicodeDecodeError as exc:
            raise LoadError(f"not UTF-8 text: {exc}", entry.name) from None
        except csv.Error as exc:
            raise LoadError(f"bad CSV: {exc}", entry.name, reader.line_num) from None


def _header(
    entry: Entry, rows: Iterator[tuple[int, list[str]]], needed: tuple[str, ...]
) -> dict[str, int]:
    first = next(rows, None)
    if first is None:
        raise LoadError("empty file", entry.name)
    header = {name.strip(): i for i, name in enumerate(first[1])}
    missing = [c for c in needed if c not in header]
    if missing:
        raise LoadError(f"not a LOINC file: no column {', '.join(missing)}", entry.name, 1)
    return header


def _scan(entry: Entry, hasher: hashlib._Hash) -> tuple[int, str | None]:
    """Hash the file's bytes; count its rows and find its highest VersionLastChanged."""
    rows = 0
    best: tuple[int, ...] | None = None
    best_text: str | None = None
    with entry.open() as stream:
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)
    if not is_table(entry.base):
        return 0, None
    it = _csv_rows(entry)
    header = _header(entry, it, REQUIRED)
    i_version = header.get("VersionLastChanged")
    for _, fields in it:
        rows += 1
        if i_version is not None and i_version < len(fields):
            text = fields[i_version].strip()
            try:
                key = tuple(int(p) for p in text.split("."))
            except ValueError:
                continue
            if best is None or key > best:
                best, best_text = key, text
    return rows, best_text


def release(table: Entry, variants: list[Entry], label: str) -> SystemLoad:
    """The LOINC code system version of a Loinc.csv and its linguistic variants
    (https://loinc.org/kb/users-guide/)."""
    hasher = hashlib.sha256(TAG.encode() + b"\0")
    total, version = _scan(table, hasher)
    for variant in variants:
        hasher.update(b"\0" + variant.base.encode() + b"\0")
        _scan(variant, hasher)
    named = _RELEASE_RE.search(table.name)
    if named:
        version = named.group(1)
    meta = SystemMeta(
        url=LOINC,
        version=version,
        kind="loinc",
        name="LOINC",
        title="LOINC",
        oid="2.16.840.1.113883.6.1",
    )

    def rows() -> Iterator[Row]:
        yield from _table_rows(table)
        for variant in variants:
            yield from _variant_rows(variant)

    return SystemLoad(meta, hasher.hexdigest(), rows, label, total)


def _table_rows(entry: Entry) -> Iterator[Row]:
    it = _csv_rows(entry)
    header = _header(entry, it, REQUIRED)
    i_code, i_name, i_status = (header[c] for c in REQUIRED)
    i_short = header.get("SHORTNAME")
    props = [(p, header[p]) for p in PROPERTIES if p in header]
    width = len(header)
    for line, fields in it:
        if len(fields) != width:
            if not any(f.strip() for f in fields):
                continue
            raise LoadError(f"{len(fields)} columns where the header has {width}", entry.name, line)
        code = fields[i_code].strip()
        if not code:
            raise LoadError("empty LOINC_NUM", entry.name, line)
        status = fields[i_status].strip().upper()
        designations: tuple[Designation, ...] = ()
        if i_short is not None and fields[i_short].strip():
            designations = (Designation(fields[i_short].strip(), "en-US", LOINC, "SHORTNAME"),)
        yield ConceptRow(
            code,
            fields[i_name].strip() or None,
            status in INACTIVE,
            tuple((p, fields[i].strip()) for p, i in props if fields[i].strip()),
            designations,
        )


def _variant_rows(entry: Entry) -> Iterator[Row]:
    language = variant_language(entry.base)
    it = _csv_rows(entry)
    header = _header(entry, it, ("LOINC_NUM",))
    columns = [(c, header[c]) for c in VARIANT_NAMES if c in header]
    if not columns:
        raise LoadError(
            f"a linguistic variant file gives one of {', '.join(VARIANT_NAMES)}", entry.name, 1
        )
    i_code = header["LOINC_NUM"]
    width = len(header)
    for line, fields in it:
        if len(fields) != width:
            if not any(f.strip() for f in fields):
                continue
            raise LoadError(f"{len(fields)} columns where the header has {width}", entry.name, line)
        code = fields[i_code].strip()
        if not code:
            raise LoadError("empty LOINC_NUM", entry.name, line)
        seen: set[str] = set()
        for column, i in columns:
            value = fields[i].strip()
            if value and value not in seen:
                seen.add(value)
                yield DesignationRow(code, value, language, LOINC, column)


__all__ = ["INACTIVE", "PROPERTIES", "TAG", "is_table", "release", "variant_language"]
