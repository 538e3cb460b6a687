"""Which loader reads which file: each path given to ``maison terminology load`` (a file, a zip,
a folder) becomes one *unit*, loaded in one transaction; a file's format is read from its
name and first bytes. The files of one release given one by one (the RF2 files of a SNOMED
CT snapshot, Loinc.csv and its linguistic variants) form one unit together.

- ``sct2_*_Snapshot*.txt`` / ``der2_cRefset_LanguageSnapshot*.txt``: SNOMED CT RF2;
- ``Loinc.csv`` (+ ``xxYY…LinguisticVariant.csv``; in a release folder or zip, the French
  ``frFR`` variant): LOINC;
- ``.json``: FHIR CodeSystem / ValueSet / ConceptMap / Bundle;
- ``.xml``: IHE SVS;
- ``.tabs``: the NOS official export;
- ``TRE_/JDV_/ASS_….csv``: NOS CSV lists.

Inside a folder or zip, files of no known format are skipped; a file given by itself must be
of one.

https://hl7.org/fhir/R4/terminology-service.html
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from maison.terminology.loaders import (
    Item,
    LoadError,
    OidResolver,
    fhir_json,
    loinc,
    nos_csv,
    nos_tabs,
    snomed,
    svs,
)
from maison.terminology.loaders.archive import Entry, entries


@dataclass
class Unit:
    """What one transaction loads: a label for messages and the items, produced lazily with an
    OID resolver (https://hl7.org/fhir/R4/terminology-service.html)."""

    label: str
    produce: Callable[[OidResolver | None], Iterator[Item]]
    files: list[str] = field(default_factory=list)


def _first_bytes(entry: Entry, n: int = 512) -> bytes:
    with entry.open() as stream:
        return stream.read(n)


def _order(entry: Entry) -> tuple[int, str]:
    """Code systems first, so the value sets after them find their OIDs."""
    base = entry.base
    first = base.startswith(("TRE_", "CodeSystem-", "CodeSystem_"))
    return (0 if first else 1, entry.name)


def _single_items(entry: Entry, resolve: OidResolver | None, strict: bool) -> Iterator[Item]:
    """The items of one file of a NOS/FHIR kind (none, when not strict, for unknown files)."""
    base = entry.base.lower()
    if base.endswith(".json"):
        doc = fhir_json.parse(entry)
        if strict or (isinstance(doc, dict) and "resourceType" in doc):
            yield from fhir_json.items(doc, entry.name)
    elif base.endswith(".xml"):
        if svs.is_svs(_first_bytes(entry)):
            yield from svs.read(entry, resolve)
        elif strict:
            raise LoadError(
                "XML that is not an IHE SVS value set (FHIR XML is not read)", entry.name
            )
    elif base.endswith(".tabs"):
        yield nos_tabs.read(entry, resolve)
    elif base.endswith(".csv") and nos_csv.nos_name(entry.base):
        yield nos_csv.read(entry)
    elif strict:
        raise LoadError(
            "unknown format (expected FHIR .json, SVS .xml, NOS .tabs or TRE_/JDV_/ASS_ .csv, "
            "a LOINC or SNOMED CT RF2 release)",
            entry.name,
        )


def _snomed_unit(label: str, files: list[Entry]) -> Unit:
    by_kind: dict[str, list[Entry]] = {}
    for e in files:
        kind = snomed.file_kind(e.base)
        if kind:
            by_kind.setdefault(kind, []).append(e)

    def produce(_resolve: OidResolver | None) -> Iterator[Item]:
        yield snomed.release(by_kind, label)

    return Unit(label, produce, [e.name for e in files])


def _loinc_unit(label: str, table: Entry | None, variants: list[Entry]) -> Unit:
    def produce(_resolve: OidResolver | None) -> Iterator[Item]:
        if table is None:
            raise LoadError(
                "a LOINC linguistic variant is loaded with its Loinc.csv (give both)", label
            )
        yield loinc.release(table, variants, label)

    names = ([table.name] if table else []) + [v.name for v in variants]
    return Unit(label, produce, names)


def plan(paths: list[Path]) -> list[Unit]:
    """The units to load for ``paths``, in order (https://hl7.org/fhir/R4/terminology-service.html)."""
    units: list[Unit] = []
    rf2_files: list[Entry] = []
    loinc_table: list[Entry] = []
    loinc_variants: list[Entry] = []
    rf2_at = loinc_at = -1
    for path in paths:
        found = entries(path)
        single = not path.is_dir() and len(found) == 1 and found[0].name == str(path)
        bases = [e.base for e in found]
        if single and snomed.is_rf2(found[0].base):
            rf2_at = len(units) if rf2_at < 0 else rf2_at
            rf2_files.append(found[0])
            continue
        if single and (loinc.is_table(found[0].base) or loinc.variant_language(found[0].base)):
            loinc_at = len(units) if loinc_at < 0 else loinc_at
            (loinc_table if loinc.is_table(found[0].base) else loinc_variants).append(found[0])
            continue
        if any(snomed.file_kind(b) == "concept" for b in bases):
            units.append(_snomed_unit(str(path), [e for e in found if snomed.file_kind(e.base)]))
            continue
        tables = [e for e in found if loinc.is_table(e.base)]
        if tables:
            if len(tables) > 1:
                raise LoadError(f"{len(tables)} Loinc.csv files in one release", str(path))
            french = [e for e in found if loinc.variant_language(e.base) == "fr-FR"]
            units.append(_loinc_unit(str(path), tables[0], french))
            continue
        units.append(_nos_unit(path, found, single))
    if rf2_files:
        label = "SNOMED CT RF2 (" + ", ".join(e.base for e in rf2_files) + ")"
        units.insert(rf2_at, _snomed_unit(label, rf2_files))
    if loinc_table or loinc_variants:
        if len(loinc_table) > 1:
            raise LoadError("give one Loinc.csv per command", loinc_table[1].name)
        label = "LOINC (" + ", ".join(e.base for e in loinc_table + loinc_variants) + ")"
        at = loinc_at + (1 if rf2_files and rf2_at <= loinc_at else 0)
        units.insert(
            at, _loinc_unit(label, loinc_table[0] if loinc_table else None, loinc_variants)
        )
    return units


def _nos_unit(path: Path, found: list[Entry], single: bool) -> Unit:
    ordered = sorted(found, key=_order)

    def produce(resolve: OidResolver | None) -> Iterator[Item]:
        count = 0
        for entry in ordered:
            for item in _single_items(entry, resolve, strict=single):
                count += 1
                yield item
        if count == 0:
            raise LoadError("no CodeSystem, ValueSet or ConceptMap found", str(path))

    return Unit(str(path), produce, [e.name for e in ordered])


__all__ = ["Unit", "plan"]
