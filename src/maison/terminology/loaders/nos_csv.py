"""Simple CSV lists of NOS content, one file per terminology, named after it:
``TRE_<code>-<label>.csv`` (``code,display``: a CodeSystem), ``JDV_<code>-<label>.csv``
(``system,code,display[,oid_of_system]``: a ValueSet) and ``ASS_<code>-<label>.csv``
(``source_system,<source code>,target_system,<target code>[,<target display>]``: a ConceptMap,
e.g. ASS_X16 document type -> class). Canonical URLs follow the NOS rule
``https://mos.esante.gouv.fr/NOS/<name>/FHIR/<name with _ replaced by ->``.

https://interop.esante.gouv.fr/ig/nos/ (NOS naming), https://hl7.org/fhir/R4/valueset.html,
https://hl7.org/fhir/R4/conceptmap.html
"""

from __future__ import annotations

import csv
import hashlib
from typing import Any

from maison.terminology.loaders import (
    ConceptRow,
    Item,
    LoadError,
    ResourceLoad,
    Row,
    SystemLoad,
    SystemMeta,
)
from maison.terminology.loaders.archive import Entry, decode
from maison.terminology.loaders.nos import NAME_RE, nos_url

TAG = "nos-csv/1"


def nos_name(base: str) -> str | None:
    """The NOS name of a file (``JDV_J66-TypeCode-DMP.csv``: ``JDV_J66-TypeCode-DMP``)."""
    stem = base.rsplit(".", 1)[0]
    return stem if NAME_RE.fullmatch(stem) else None


def read(entry: Entry) -> Item:
    """The code system, value set or concept map of one NOS CSV list
    (https://interop.esante.gouv.fr/ig/nos/)."""
    name = nos_name(entry.base)
    if name is None:
        raise LoadError("not named after a NOS terminology (TRE_…, JDV_… or ASS_….csv)", entry.name)
    data = entry.read_bytes()
    rows = list(csv.reader(decode(data, entry.name).splitlines()))
    if not rows:
        raise LoadError("empty file", entry.name)
    header = [h.strip() for h in rows[0]]
    body = [(n, r) for n, r in enumerate(rows[1:], start=2) if any(c.strip() for c in r)]
    for line, row in body:
        if len(row) != len(header):
            raise LoadError(
                f"{len(row)} columns where the header has {len(header)}", entry.name, line
            )
    kind = name[:3]
    if kind == "TRE":
        return _code_system(name, header, body, entry, data)
    if kind == "JDV":
        return _value_set(name, header, body, entry)
    return _concept_map(name, header, body, entry)


def _need(header: list[str], columns: tuple[str, ...], entry: Entry, what: str) -> list[int]:
    missing = [c for c in columns if c not in header]
    if missing:
        raise LoadError(
            f"a {what} list needs the columns {', '.join(columns)}; the header "
            f"({', '.join(header)}) lacks {', '.join(missing)}",
            entry.name,
            1,
        )
    return [header.index(c) for c in columns]


def _code(value: str, entry: Entry, line: int) -> str:
    value = value.strip()
    if not value:
        raise LoadError("empty code", entry.name, line)
    return value


def _code_system(
    name: str, header: list[str], body: list[tuple[int, list[str]]], entry: Entry, data: bytes
) -> SystemLoad:
    i_code, i_display = _need(header, ("code", "display"), entry, "code system (TRE)")
    concepts: list[Row] = []
    seen: set[str] = set()
    for line, row in body:
        code = _code(row[i_code], entry, line)
        if code in seen:
            raise LoadError(f"code {code!r} appears twice", entry.name, line)
        seen.add(code)
        concepts.append(ConceptRow(code, row[i_display].strip() or None))
    meta = SystemMeta(nos_url(name), None, "nos", name=name)
    digest = hashlib.sha256(TAG.encode() + b"\0" + data).hexdigest()
    return SystemLoad(meta, digest, lambda: iter(concepts), entry.name, len(concepts))


def _value_set(
    name: str, header: list[str], body: list[tuple[int, list[str]]], entry: Entry
) -> ResourceLoad:
    i_system, i_code, i_display = _need(
        header, ("system", "code", "display"), entry, "value set (JDV)"
    )
    i_oid = header.index("oid_of_system") if "oid_of_system" in header else None
    includes: dict[str, list[dict[str, Any]]] = {}
    for line, row in body:
        system = row[i_system].strip()
        if not system:
            raise LoadError("empty system", entry.name, line)
        concept: dict[str, Any] = {"code": _code(row[i_code], entry, line)}
        if row[i_display].strip():
            concept["display"] = row[i_display].strip()
        if i_oid is not None and row[i_oid].strip():
            oid = row[i_oid].strip()
            concept["designation"] = [{"use": {"code": "OID"}, "value": f"urn:oid:{oid}"}]
        includes.setdefault(system, []).append(concept)
    body_json = {
        "resourceType": "ValueSet",
        "id": name.replace("_", "-"),
        "url": nos_url(name),
        "name": name,
        "status": "active",
        "compose": {"include": [{"system": s, "concept": c} for s, c in includes.items()]},
    }
    return ResourceLoad(body_json, "nos", entry.name)


def _concept_map(
    name: str, header: list[str], body: list[tuple[int, list[str]]], entry: Entry
) -> ResourceLoad:
    i_src, i_tgt = _need(header, ("source_system", "target_system"), entry, "correspondence (ASS)")
    i_src_code, i_tgt_code = i_src + 1, i_tgt + 1
    if i_src_code in (i_tgt, len(header)) or i_tgt_code in (i_src, len(header)):
        raise LoadError(
            "a correspondence (ASS) list gives each code in the column after its system "
            f"(source_system,<code>,target_system,<code>); the header is {', '.join(header)}",
            entry.name,
            1,
        )
    i_tgt_display = i_tgt_code + 1
    if i_tgt_display >= len(header) or not header[i_tgt_display].endswith("display"):
        i_tgt_display = -1
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for line, row in body:
        source, target = row[i_src].strip(), row[i_tgt].strip()
        if not source or not target:
            raise LoadError("empty source_system or target_system", entry.name, line)
        mapped: dict[str, Any] = {"code": _code(row[i_tgt_code], entry, line)}
        if i_tgt_display >= 0 and row[i_tgt_display].strip():
            mapped["display"] = row[i_tgt_display].strip()
        mapped["equivalence"] = "equivalent"  # as the NOS FHIR exports of ASS_ tables
        code = _code(row[i_src_code], entry, line)
        groups.setdefault((source, target), {}).setdefault(code, []).append(mapped)
    body_json = {
        "resourceType": "ConceptMap",
        "id": name.replace("_", "-"),
        "url": nos_url(name),
        "name": name,
        "status": "active",
        "group": [
            {
                "source": source,
                "target": target,
                "element": [{"code": c, "target": t} for c, t in elements.items()],
            }
            for (source, target), elements in groups.items()
        ],
    }
    return ResourceLoad(body_json, "nos", entry.name)


__all__ = ["TAG", "nos_name", "read"]
