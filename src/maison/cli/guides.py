"""Reading implementation-guide material for installation: JSON files, folders, npm packages.

https://hl7.org/fhir/R4/packages.html (FHIR npm packages: ``package/*.json``)
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from maison.fhir.definitions import CONFORMANCE_TYPES


def _resources_in(doc: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(doc, dict):
        return
    if doc.get("resourceType") == "Bundle":
        for entry in doc.get("entry") or []:
            if isinstance(entry, dict):
                yield from _resources_in(entry.get("resource"))
    elif isinstance(doc.get("resourceType"), str):
        yield doc


def _documents(path: Path) -> Iterator[tuple[str, Any]]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix in (".json", ".tgz"):
                yield from _documents(child)
    elif path.name.endswith(".tgz") or path.name.endswith(".tar.gz"):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith(".json"):
                    f = tar.extractfile(member)
                    if f is not None:
                        try:
                            yield f"{path.name}:{member.name}", orjson.loads(f.read())
                        except orjson.JSONDecodeError:
                            continue
    elif path.suffix == ".json":
        try:
            yield str(path), orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            return


def _id_for(resource: dict[str, Any]) -> str:
    rid = resource.get("id")
    if isinstance(rid, str) and re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", rid):
        return rid
    tail = str(resource.get("url") or resource.get("name") or "resource").rstrip("/")
    slug = re.sub(r"[^A-Za-z0-9\-.]", "-", tail.rsplit("/", 1)[-1])[:64].strip("-.")
    return slug or "resource"


def collect_conformance(paths: list[Path]) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """The conformance resources found under ``paths`` (named by source), and how many other
    resources (examples…) were skipped."""
    found: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    skipped = 0
    for path in paths:
        for name, doc in _documents(path):
            for resource in _resources_in(doc):
                if resource["resourceType"] not in CONFORMANCE_TYPES:
                    skipped += 1
                    continue
                res = {**resource, "id": _id_for(resource)}
                found[(res["resourceType"], res["id"])] = (name, res)
    return list(found.values()), skipped


def install_bundles(
    found: list[tuple[str, dict[str, Any]]], size: int
) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Batch Bundles of PUTs (ids kept, so installing again updates in place)."""
    for start in range(0, len(found), size):
        chunk = found[start : start + size]
        entries = [
            {
                "resource": res,
                "request": {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"},
            }
            for _, res in chunk
        ]
        yield {"resourceType": "Bundle", "type": "batch", "entry": entries}, [n for n, _ in chunk]
