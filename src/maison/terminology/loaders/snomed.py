"""SNOMED CT from an RF2 snapshot release (a folder or the release zip): tab-separated UTF-8
files with a header line.

- ``sct2_Concept_Snapshot*.txt``: id, effectiveTime, active, moduleId, definitionStatusId;
- ``sct2_Description_Snapshot*.txt`` (one per language, e.g. ``-fr`` and ``-en``): id,
  effectiveTime, active, moduleId, conceptId, languageCode, typeId (FSN 900000000000003001,
  synonym 900000000000013009), term, caseSignificanceId; active ones become designations;
- ``sct2_Relationship_Snapshot*.txt``: id, effectiveTime, active, moduleId, sourceId,
  destinationId, relationshipGroup, typeId, characteristicTypeId, modifierId; the active
  ``116680003 |Is a|`` rows are the hierarchy (stated relationship files are not read);
- ``der2_cRefset_LanguageSnapshot*.txt`` (optional): id, effectiveTime, active, moduleId,
  refsetId, referencedComponentId, acceptabilityId; descriptions an active row marks
  preferred (900000000000548007) are their language's preferred terms.

Display (the rule): the preferred synonym of a language reference set, French before English;
else the fully specified name without its semantic tag; else any synonym (French first).
Version: ``http://snomed.info/sct/<edition module>/version/<effectiveTime>``: the highest
concept effectiveTime, and the module holding most concepts outside the international
core and model modules (the international edition's 900000000000207008 when none).

https://confluence.ihtsdotools.org/display/DOCRELFMT (RF2),
https://hl7.org/fhir/R4/snomedct.html (SNOMED CT in FHIR: versions, designations)
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Final

from maison.terminology.loaders import (
    ConceptRow,
    DesignationRow,
    LoadError,
    ParentRow,
    Row,
    SystemLoad,
    SystemMeta,
)
from maison.terminology.loaders.archive import Entry, text_lines
from maison.terminology.source import SNOMED

TAG = "snomed-rf2/1"
IS_A: Final = "116680003"
FSN: Final = "900000000000003001"
SYNONYM: Final = "900000000000013009"
PREFERRED: Final = "900000000000548007"
CORE_MODULE: Final = "900000000000207008"
MODEL_MODULE: Final = "900000000000012004"

HEADERS: Final[dict[str, tuple[str, ...]]] = {
    "concept": ("id", "effectiveTime", "active", "moduleId", "definitionStatusId"),
    "description": (
        "id",
        "effectiveTime",
        "active",
        "moduleId",
        "conceptId",
        "languageCode",
        "typeId",
        "term",
        "caseSignificanceId",
    ),
    "relationship": (
        "id",
        "effectiveTime",
        "active",
        "moduleId",
        "sourceId",
        "destinationId",
        "relationshipGroup",
        "typeId",
        "characteristicTypeId",
        "modifierId",
    ),
    "language": (
        "id",
        "effectiveTime",
        "active",
        "moduleId",
        "refsetId",
        "referencedComponentId",
        "acceptabilityId",
    ),
}


def file_kind(base: str) -> str | None:
    """Which RF2 snapshot file ``base`` is (concept, description, relationship, language)."""
    if not base.endswith(".txt"):
        return None
    if base.startswith("sct2_Concept_Snapshot"):
        return "concept"
    if base.startswith("sct2_Description_Snapshot"):
        return "description"
    if base.startswith("sct2_Relationship_Snapshot"):
        return "relationship"
    if base.startswith("der2_cRefset_LanguageSnapshot"):
        return "language"
    return None


def is_rf2(base: str) -> bool:
    """Whether a file belongs to an RF2 release (read or not): ``sct2_*`` / ``der2_*`` text."""
    return base.endswith(".txt") and base.startswith(("sct2_", "der2_"))


def _rows(entry: Entry, kind: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of an RF2 file after its header, which must be the standard one."""
    expected = HEADERS[kind]
    lines = text_lines(entry)
    header = next(lines, None)
    if header is None:
        raise LoadError("empty file", entry.name)
    if tuple(header.split("\t")) != expected:
        got = header.split("\t")
        missing = [c for c in expected if c not in got]
        what = f"lacks {', '.join(missing)}" if missing else f"is {', '.join(got)}"
        raise LoadError(
            f"not an RF2 {kind} file: its header {what} (expected {', '.join(expected)})",
            entry.name,
            1,
        )
    width = len(expected)
    for n, line in enumerate(lines, start=2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != width:
            raise LoadError(
                f"{len(fields)} fields where RF2 {kind} rows have {width}", entry.name, n
            )
        yield n, fields


def release(files: dict[str, list[Entry]], label: str) -> SystemLoad:
    """The SNOMED CT version of an RF2 snapshot: files by kind (concept, description,
    relationship, language) (https://confluence.ihtsdotools.org/display/DOCRELFMT)."""
    if len(files.get("concept", [])) != 1:
        found = len(files.get("concept", []))
        raise LoadError(
            f"an RF2 snapshot has one sct2_Concept_Snapshot file ({found} found)", label
        )
    if not files.get("description"):
        raise LoadError("an RF2 snapshot needs its sct2_Description_Snapshot file(s)", label)
    hasher = hashlib.sha256(TAG.encode())
    total = 0
    ordered = [
        (k, e)
        for k in ("language", "concept", "description", "relationship")
        for e in files.get(k, [])
    ]
    for _, entry in sorted(ordered, key=lambda ke: ke[1].base):
        hasher.update(b"\0" + entry.base.encode() + b"\0")
        with entry.open() as stream:
            while chunk := stream.read(1 << 20):
                hasher.update(chunk)
                total += chunk.count(b"\n")
    concept_file = files["concept"][0]
    modules: Counter[str] = Counter()
    latest = ""
    for _, fields in _rows(concept_file, "concept"):
        modules[fields[3]] += 1
        latest = max(latest, fields[1])
    edition = next(
        (m for m, _ in modules.most_common() if m not in (CORE_MODULE, MODEL_MODULE)), CORE_MODULE
    )
    meta = SystemMeta(
        url=SNOMED,
        version=f"{SNOMED}/{edition}/version/{latest}",
        kind="snomed",
        name="SNOMED CT",
        title="SNOMED CT",
        oid="2.16.840.1.113883.6.96",
    )

    def rows() -> Iterator[Row]:
        preferred = _preferred(files.get("language", []))
        for _, fields in _rows(concept_file, "concept"):
            yield ConceptRow(fields[0], None, fields[2] != "1")
        for entry in files["description"]:
            for n, fields in _rows(entry, "description"):
                if fields[2] != "1":
                    continue
                try:
                    described = int(fields[0])
                except ValueError:
                    raise LoadError(f"bad description id {fields[0]!r}", entry.name, n) from None
                yield DesignationRow(
                    fields[4],
                    fields[7],
                    fields[5] or None,
                    SNOMED,
                    fields[6],
                    _member(preferred, described),
                )
        for entry in files.get("relationship", []):
            for _, fields in _rows(entry, "relationship"):
                if fields[2] == "1" and fields[7] == IS_A:
                    yield ParentRow(fields[4], fields[5])

    return SystemLoad(meta, hasher.hexdigest(), rows, label, total, display)


def display(designations: Sequence[DesignationRow]) -> str | None:
    """The display of a concept from its designations (the rule in the module docstring)."""
    best: tuple[int, int, str] | None = None
    for d in designations:
        language = (d.language or "").split("-")[0]
        lang_rank = {"fr": 0, "en": 1}.get(language, 2)
        if d.use_code == FSN:
            key = (1, lang_rank, strip_semantic_tag(d.value))
        elif d.preferred:
            key = (0, lang_rank, d.value)
        else:
            key = (2, lang_rank, d.value)
        if best is None or key < best:
            best = key
    return best[2] if best else None


def _preferred(entries: list[Entry]) -> array[int]:
    """The ids of the descriptions some language reference set marks preferred, sorted (8
    bytes each: a million preferred terms take 8 MB)."""
    ids: array[int] = array("q")
    for entry in entries:
        for n, fields in _rows(entry, "language"):
            if fields[2] == "1" and fields[6] == PREFERRED:
                try:
                    ids.append(int(fields[5]))
                except ValueError:
                    raise LoadError(
                        f"bad referencedComponentId {fields[5]!r}", entry.name, n
                    ) from None
    return array("q", sorted(ids))


def _member(ids: array[int], value: int) -> bool:
    i = bisect_left(ids, value)
    return i < len(ids) and ids[i] == value


def strip_semantic_tag(fsn: str) -> str:
    """``Myocardial infarction (disorder)`` -> ``Myocardial infarction`` (https://confluence.ihtsdotools.org/display/DOCEG)."""
    if fsn.endswith(")") and " (" in fsn:
        return fsn[: fsn.rindex(" (")]
    return fsn


__all__ = [
    "FSN",
    "HEADERS",
    "IS_A",
    "PREFERRED",
    "SYNONYM",
    "display",
    "file_kind",
    "is_rf2",
    "release",
    "strip_semantic_tag",
]
