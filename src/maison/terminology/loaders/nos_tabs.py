"""The official NOS export ``<name>.tabs`` (``NOS-Fichiers_Publics.zip``): despite the name,
semicolon-separated text. Line 1 heads the file's description (``<OID>;<Type fichier>;<Nom
fichier>;<Description>;<URL fichier>;<Date valid>;<Date fin>;<Date MàJ>``), line 2 gives it;
line 3 heads the rows:

- TRE (a CodeSystem): ``<OID>;<Code>;<Libellé adapté>;<Libellé court>;<Libellé long>;<Date
  valid>;<Date fin>;<Date MàJ>`` (some add columns): display = libellé long, designations
  LibelleCourt/LibelleAdapte, properties dateValid/dateFin/dateMaj as the NOS FHIR exports
  write them; a concept with a dateFin is inactive;
- JDV (a ValueSet): ``<OID>;<Code>;<Libellé>``: the OID names the code system of each row;
- ASS (a ConceptMap): one column per terminology, headed ``<OID> TRE_name`` (or ``<OID>``);
  each row maps its first non-empty cell to each other non-empty one, one group per pair
  of columns.

The version is the file's <Date MàJ> (the NOS release timestamp, as in the FHIR exports).

https://interop.esante.gouv.fr/ig/nos/ (downloads: "Ensemble des NOS au format CSV (.tabs)")
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

from maison.terminology.loaders import (
    ConceptRow,
    Item,
    LoadError,
    OidResolver,
    ResourceLoad,
    Row,
    SystemLoad,
    SystemMeta,
)
from maison.terminology.loaders.archive import Entry, decode
from maison.terminology.loaders.nos import nos_datetime, nos_url, system_for_oid
from maison.terminology.source import Designation

TAG = "nos-tabs/1"
FILE_HEADER = "<OID>;<Type fichier>;<Nom fichier>"
_ASS_COLUMN = re.compile(r"<([^>]*)>\s*(\S*)")


def _key(header: str) -> str:
    """A column heading compared without brackets, case or accents."""
    text = unicodedata.normalize("NFKD", header.strip().strip("<>").casefold())
    return "".join(c for c in text if not unicodedata.combining(c))


def is_tabs(text_start: str) -> bool:
    """Whether a file starts like a NOS .tabs export."""
    return text_start.lstrip("\ufeff").startswith(FILE_HEADER)


def read(entry: Entry, resolve: OidResolver | None = None) -> Item:
    """The code system, value set or concept map of one .tabs file
    (https://interop.esante.gouv.fr/ig/nos/)."""
    data = entry.read_bytes()
    lines = decode(data, entry.name).splitlines()
    if not lines or not is_tabs(lines[0]):
        raise LoadError(f"not a NOS .tabs export (line 1 is not {FILE_HEADER}…)", entry.name, 1)
    if len(lines) < 3:
        raise LoadError("truncated: no column header line", entry.name, len(lines))
    described = dict(zip([_key(h) for h in lines[0].split(";")], lines[1].split(";"), strict=False))
    kind = described.get("type fichier", "").strip().upper()
    name = described.get("nom fichier", "").strip()
    name = name[: -len(".tabs")] if name.endswith(".tabs") else name
    if kind not in ("TRE", "JDV", "ASS") or not name:
        raise LoadError("line 2 gives no TRE/JDV/ASS type or no file name", entry.name, 2)
    page = described.get("url fichier", "").strip()
    url = f"{page}/FHIR/{name.replace('_', '-')}" if page else nos_url(name)
    version = described.get("date maj", "").strip() or None
    oid = described.get("oid", "").strip() or None
    retired = bool(described.get("date fin", "").strip())
    header = lines[2].split(";")
    rows = [(n, line.split(";")) for n, line in enumerate(lines[3:], start=4)]
    rows = [(n, r) for n, r in rows if any(c.strip() for c in r)]
    for n, row in rows:
        if len(row) > len(header):
            raise LoadError(
                f"{len(row)} fields where the header (line 3) has {len(header)}", entry.name, n
            )
        row.extend([""] * (len(header) - len(row)))
    common: dict[str, Any] = {
        "url": url,
        "name": name,
        "status": "retired" if retired else "active",
    }
    if version:
        common["version"] = version
    if oid:
        common["identifier"] = [{"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{oid}"}]
    if described.get("description", "").strip():
        common["description"] = described["description"].strip()
    if kind == "TRE":
        return _code_system(common, header, rows, entry, data, oid)
    if kind == "JDV":
        return _value_set(common, header, rows, entry, resolve)
    return _concept_map(common, header, rows, entry, resolve)


def _code_system(
    common: dict[str, Any],
    header: list[str],
    rows: list[tuple[int, list[str]]],
    entry: Entry,
    data: bytes,
    oid: str | None,
) -> SystemLoad:
    keys = [_key(h) for h in header]
    if "code" not in keys:
        raise LoadError(
            f"a TRE export heads a <Code> column (line 3: {';'.join(header)})", entry.name, 3
        )
    i_code = keys.index("code")
    named = {
        "libelle long": "display",
        "libelle court": "LibelleCourt",
        "libelle adapte": "LibelleAdapte",
        "date valid": "dateValid",
        "date fin": "dateFin",
        "date maj": "dateMaj",
    }
    concepts: list[Row] = []
    seen: set[str] = set()
    for line, row in rows:
        code = row[i_code].strip()
        if not code:
            raise LoadError("empty code", entry.name, line)
        if code in seen:
            raise LoadError(f"code {code!r} appears twice", entry.name, line)
        seen.add(code)
        display: str | None = None
        designations: list[Designation] = []
        properties: list[tuple[str, Any]] = []
        for key, head, value in zip(keys, header, row, strict=True):
            value = value.strip()
            if not value or key in ("oid", "code"):
                continue
            target = named.get(key)
            if target == "display":
                display = value
            elif target in ("LibelleCourt", "LibelleAdapte"):
                designations.append(Designation(value, use_code=target))
            elif target is not None:
                properties.append((target, nos_datetime(value)))
            else:
                properties.append((head.strip().strip("<>"), value))
        if display is None:  # no libellé long column: the adapted, else the short label
            display = next((d.value for d in designations), None)
        inactive = any(p == "dateFin" for p, _ in properties)
        concepts.append(ConceptRow(code, display, inactive, tuple(properties), tuple(designations)))
    meta = SystemMeta(
        url=common["url"],
        version=common.get("version"),
        kind="nos",
        name=common["name"],
        title=common.get("description"),
        oid=oid,
    )
    digest = hashlib.sha256(TAG.encode() + b"\0" + data).hexdigest()
    return SystemLoad(meta, digest, lambda: iter(concepts), entry.name, len(concepts))


def _value_set(
    common: dict[str, Any],
    header: list[str],
    rows: list[tuple[int, list[str]]],
    entry: Entry,
    resolve: OidResolver | None,
) -> ResourceLoad:
    keys = [_key(h) for h in header]
    if "oid" not in keys or "code" not in keys:
        raise LoadError(
            f"a JDV export heads <OID>;<Code>;<Libellé> (line 3: {';'.join(header)})", entry.name, 3
        )
    i_oid, i_code = keys.index("oid"), keys.index("code")
    i_label = next((i for i, k in enumerate(keys) if k.startswith("libelle")), None)
    includes: dict[str, list[dict[str, Any]]] = {}
    for line, row in rows:
        code, oid = row[i_code].strip(), row[i_oid].strip()
        if not code or not oid:
            raise LoadError("empty OID or code", entry.name, line)
        concept: dict[str, Any] = {"code": code}
        if i_label is not None and row[i_label].strip():
            concept["display"] = row[i_label].strip()
        concept["designation"] = [{"use": {"code": "OID"}, "value": f"urn:oid:{oid}"}]
        includes.setdefault(system_for_oid(oid, resolve), []).append(concept)
    body = {
        "resourceType": "ValueSet",
        "id": common["name"].replace("_", "-"),
        **common,
        "compose": {"include": [{"system": s, "concept": c} for s, c in includes.items()]},
    }
    return ResourceLoad(body, "nos", entry.name)


def _concept_map(
    common: dict[str, Any],
    header: list[str],
    rows: list[tuple[int, list[str]]],
    entry: Entry,
    resolve: OidResolver | None,
) -> ResourceLoad:
    systems: list[str] = []
    for head in header:
        match = _ASS_COLUMN.fullmatch(head.strip())
        if not match:
            raise LoadError(
                f"an ASS export heads each column <OID> [TRE_name] (line 3: {head!r})",
                entry.name,
                3,
            )
        systems.append(system_for_oid(match.group(1), resolve, match.group(2) or None))
    if len(systems) < 2:
        raise LoadError("an ASS export has at least two columns", entry.name, 3)
    groups: dict[tuple[int, int], dict[str, list[dict[str, Any]]]] = {}
    for line, row in rows:
        filled = [(i, v.strip()) for i, v in enumerate(row) if v.strip()]
        if len(filled) < 2:
            raise LoadError("a correspondence needs a source and a target code", entry.name, line)
        (i_src, source), targets = filled[0], filled[1:]
        for i_tgt, target in targets:
            mapped = {"code": target, "equivalence": "equivalent"}
            groups.setdefault((i_src, i_tgt), {}).setdefault(source, []).append(mapped)
    body = {
        "resourceType": "ConceptMap",
        "id": common["name"].replace("_", "-"),
        **common,
        "group": [
            {
                "source": systems[i_src],
                "target": systems[i_tgt],
                "element": [{"code": c, "target": t} for c, t in elements.items()],
            }
            for (i_src, i_tgt), elements in sorted(groups.items())
        ],
    }
    return ResourceLoad(body, "nos", entry.name)


__all__ = ["FILE_HEADER", "TAG", "is_tabs", "read"]
