"""Batch and transaction Bundle mechanics: entry order and reference resolution.

https://hl7.org/fhir/R4/http.html#transaction
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from maison.fhir.errors import FhirError, invalid

# Processing order of a transaction (https://hl7.org/fhir/R4/http.html#trules).
METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class Entry:
    """One Bundle.entry with its request, as the processor sees it."""

    index: int
    method: str
    url: str
    full_url: str | None
    resource: dict[str, Any] | None
    if_none_exist: str | None
    if_match: str | None
    if_none_match: str | None


def parse_entries(bundle: dict[str, Any]) -> list[Entry]:
    """Check a batch/transaction Bundle's shape and return its entries."""
    btype = bundle.get("type")
    if btype not in ("batch", "transaction"):
        raise invalid(
            f"Bundle.type must be 'batch' or 'transaction' to be processed, not {btype!r}",
            "Bundle.type",
        )
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise invalid("Bundle.entry must be an array", "Bundle.entry")
    entries: list[Entry] = []
    seen: set[str] = set()
    for i, e in enumerate(raw):
        where = f"Bundle.entry[{i}]"
        if not isinstance(e, dict):
            raise invalid(f"{where} must be an object", where)
        req = e.get("request")
        if not isinstance(req, dict):
            raise invalid(f"{where}.request is required in a {btype}", f"{where}.request")
        method = req.get("method")
        url = req.get("url")
        if method not in METHOD_ORDER:
            raise invalid(
                f"{where}.request.method must be one of GET, HEAD, POST, PUT, PATCH, DELETE",
                f"{where}.request.method",
            )
        if not isinstance(url, str) or not url:
            raise invalid(f"{where}.request.url is required", f"{where}.request.url")
        res = e.get("resource")
        if res is not None and not isinstance(res, dict):
            raise invalid(f"{where}.resource must be an object", f"{where}.resource")
        if method in ("POST", "PUT") and res is None:
            raise invalid(f"{where}: a {method} entry needs a resource", f"{where}.resource")
        full_url = e.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            raise invalid(f"{where}.fullUrl must be a string", f"{where}.fullUrl")
        if full_url and btype == "transaction" and method in ("POST", "PUT"):
            if full_url in seen:
                raise invalid(f"Duplicate fullUrl {full_url} in the transaction", where)
            seen.add(full_url)
        entries.append(
            Entry(
                i,
                method,
                url,
                full_url,
                res,
                _opt_str(req.get("ifNoneExist")),
                _opt_str(req.get("ifMatch")),
                _opt_str(req.get("ifNoneMatch")),
            )
        )
    return entries


def _opt_str(v: object) -> str | None:
    return v if isinstance(v, str) and v else None


def transaction_order(entries: list[Entry]) -> list[Entry]:
    """Entries in the order a transaction processes them (stable within a method)."""
    return sorted(entries, key=lambda e: (METHOD_ORDER[e.method], e.index))


def rewrite_references(
    node: Any, resolve: Callable[[str], str | None], urls: Mapping[str, str] | None = None
) -> Any:
    """Replace every Reference.reference for which ``resolve`` returns a new value, and every
    ``url`` element (e.g. ``Attachment.url``) naming an entry's fullUrl found in ``urls``
    (https://hl7.org/fhir/R4/bundle.html#references)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                new = resolve(v)
                out[k] = new if new is not None else v
            elif k == "url" and isinstance(v, str) and urls is not None and v in urls:
                out[k] = urls[v]
            else:
                out[k] = rewrite_references(v, resolve, urls)
        return out
    if isinstance(node, list):
        return [rewrite_references(v, resolve, urls) for v in node]
    return node


def collect_references(node: Any, into: list[str]) -> list[str]:
    """Every Reference.reference string in a resource (contained ones included)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                into.append(v)
            else:
                collect_references(v, into)
    elif isinstance(node, list):
        for v in node:
            collect_references(v, into)
    return into


def entry_error(entry: Entry, error: FhirError) -> FhirError:
    """Prefix an error's message with the entry it came from."""
    msg = f"Bundle.entry[{entry.index}] ({entry.method} {entry.url}): {error.message}"
    return FhirError(error.category, msg)
