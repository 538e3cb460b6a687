"""Batch and transaction processing over the generic interaction handlers.

https://hl7.org/fhir/R4/http.html#transaction
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from maison.api import interactions as ix
from maison.fhir.bundle import (
    Entry,
    entry_error,
    parse_entries,
    rewrite_references,
    transaction_order,
)
from maison.fhir.errors import Category, FhirError, Issue, invalid, operation_outcome
from maison.fhir.search import parse_search
from maison.store.interface import StoreTx

# run(fn, write) executes fn on a store transaction (group-committed when writing).
Runner = Callable[[Callable[[StoreTx], Any], bool], Any]
# Writes of an MHD transaction module after a transaction's entries, in the same unit:
# (transaction, results by entry index) -> None; a refusal raises.
After = Callable[[StoreTx, dict[int, "ix.Result"]], None]

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    413: "Payload Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def split_url(url: str) -> tuple[list[str], str]:
    """An entry's request.url as path segments and query string (relative to the base)."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    segments = [s for s in path.split("/") if s] if path else []
    return segments, parts.query


def _type_of(ctx: ix.Context, segments: list[str], entry: Entry) -> str:
    if not segments:
        raise invalid(f"Bundle.entry[{entry.index}].request.url has no resource type")
    ix.check_type(ctx, segments[0])
    return segments[0]


def _run_entry(
    ctx: ix.Context,
    tx: StoreTx,
    *,
    entry: Entry,
    resolve: Callable[[str], str | None] | None,
    assigned: dict[int, str],
    prefer_lenient: bool,
    urls: Mapping[str, str] | None = None,
) -> ix.Result:
    segments, query = split_url(entry.url)
    body = entry.resource
    if body is not None and resolve is not None:
        body = rewrite_references(body, resolve, urls)
    m = entry.method
    if m in ("GET", "HEAD"):
        rtype = _type_of(ctx, segments, entry)
        params = parse_qsl(query, keep_blank_values=True)
        if len(segments) == 1:
            return ix.search(ctx, tx, rtype, params, prefer_lenient)
        if len(segments) == 2 and segments[1] == "_history":
            return ix.history(ctx, tx, rtype, None, params)
        if len(segments) == 2:
            return ix.read(ctx, tx, rtype, segments[1])
        if len(segments) == 3 and segments[2] == "_history":
            return ix.history(ctx, tx, rtype, segments[1], params)
        if len(segments) == 4 and segments[2] == "_history":
            return ix.vread(ctx, tx, rtype, segments[1], segments[3])
        raise invalid(f"Unsupported GET url '{entry.url}'")
    rtype = _type_of(ctx, segments, entry)
    if m == "POST":
        if len(segments) != 1:
            raise invalid(f"A POST entry's url must be a resource type, not '{entry.url}'")
        if entry.index in assigned:
            return ix.create(ctx, tx, rtype, body, res_id=assigned[entry.index], fresh=True)
        return ix.create(ctx, tx, rtype, body, entry.if_none_exist)
    if m == "PUT":
        if len(segments) == 2:
            return ix.update(ctx, tx, rtype, segments[1], body, entry.if_match)
        if len(segments) == 1 and query:
            return ix.conditional_update(ctx, tx, rtype, query, body, entry.if_match)
        raise invalid(f"A PUT entry's url must be Type/id or Type?criteria, not '{entry.url}'")
    if m == "PATCH":
        ctype = (
            "application/fhir+json"
            if isinstance(body, dict) and body.get("resourceType") == "Parameters"
            else "application/json-patch+json"
        )
        if len(segments) == 2:
            return ix.patch(ctx, tx, rtype, segments[1], ctype, body, entry.if_match)
        if len(segments) == 1 and query:
            return ix.conditional_patch(ctx, tx, rtype, query, ctype, body)
        raise invalid(f"A PATCH entry's url must be Type/id or Type?criteria, not '{entry.url}'")
    # DELETE
    if len(segments) == 2:
        return ix.delete(ctx, tx, rtype, segments[1])
    if len(segments) == 1 and query:
        return ix.conditional_delete(ctx, tx, rtype, query)
    raise invalid(f"A DELETE entry's url must be Type/id or Type?criteria, not '{entry.url}'")


def _search_one(ctx: ix.Context, tx: StoreTx, rtype: str, query: str, what: str) -> str | None:
    q = parse_search(ctx.defs, rtype, parse_qsl(query, keep_blank_values=True), terms=ctx.terms)
    q.count, q.total = 2, "none"
    found = tx.search(q).entries
    if len(found) > 1:
        raise FhirError(
            Category.PRECONDITION, f"{what} '{rtype}?{query}' matches several resources"
        )
    return found[0].id if found else None


def _plan_transaction(
    ctx: ix.Context, tx: StoreTx, entries: list[Entry], new_id: Callable[[int], str]
) -> tuple[dict[str, str], dict[int, str], dict[int, ix.Result]]:
    """Give every POST/PUT entry its final identity before anything is written."""
    mapping: dict[str, str] = {}
    assigned: dict[int, str] = {}
    preset: dict[int, ix.Result] = {}
    for e in entries:
        if e.method not in ("POST", "PUT"):
            continue
        try:
            segments, query = split_url(e.url)
            rtype = _type_of(ctx, segments, e)
            target: str | None = None
            if e.method == "POST":
                if e.if_none_exist:
                    existing = _search_one(
                        ctx, tx, rtype, e.if_none_exist.lstrip("?"), "ifNoneExist"
                    )
                    if existing:
                        found = ix.read(ctx, tx, rtype, existing)
                        preset[e.index] = found
                        target = existing
                if target is None:
                    target = new_id(e.index)
                    assigned[e.index] = target
            elif len(segments) == 2:
                target = segments[1]
            elif query:
                target = _search_one(ctx, tx, rtype, query, "Conditional update")
                if target is None and isinstance(e.resource, dict):
                    rid = e.resource.get("id")
                    target = rid if isinstance(rid, str) else new_id(e.index)
                    e.url = f"{rtype}/{target}"
                    e.resource = {**e.resource, "id": target}
                elif target is not None:
                    e.url = f"{rtype}/{target}"
                    if isinstance(e.resource, dict):
                        e.resource = {**e.resource, "id": target}
        except FhirError as err:
            raise entry_error(e, err) from None
        if e.full_url and target:
            mapping[e.full_url] = f"{rtype}/{target}"
    return mapping, assigned, preset


def _resolver(ctx: ix.Context, tx: StoreTx, mapping: dict[str, str]) -> Callable[[str], str | None]:
    cache: dict[str, str] = {}

    def resolve(ref: str) -> str | None:
        if ref in mapping:
            return mapping[ref]
        if ref.startswith(("urn:uuid:", "urn:oid:")):
            raise invalid(f"Reference '{ref}' does not match any fullUrl in the transaction")
        if "?" in ref and ref[:1].isupper() and "/" not in ref.split("?")[0]:
            if ref not in cache:
                rtype, _, query = ref.partition("?")
                ix.check_type(ctx, rtype)
                found = _search_one(ctx, tx, rtype, query, "Conditional reference")
                if found is None:
                    raise FhirError(
                        Category.PRECONDITION, f"Conditional reference '{ref}' matches nothing"
                    )
                cache[ref] = f"{rtype}/{found}"
            return cache[ref]
        return None

    return resolve


def _copy(e: Entry) -> Entry:
    """A fresh Entry: planning rewrites url/resource, and a retried unit must start clean."""
    return Entry(
        e.index,
        e.method,
        e.url,
        e.full_url,
        e.resource,
        e.if_none_exist,
        e.if_match,
        e.if_none_match,
    )


def entry_response(ctx: ix.Context, result: ix.Result, minimal: bool) -> dict[str, Any]:
    """A Bundle.entry of a batch/transaction-response."""
    response: dict[str, Any] = {"status": f"{result.status} {REASONS.get(result.status, '')}"}
    entry: dict[str, Any] = {}
    s = result.stored
    if s is not None:
        entry["fullUrl"] = f"{ctx.base_url}/{s.type}/{s.id}"
        response["location"] = f"{s.type}/{s.id}/_history/{s.version}"
        response["etag"] = f'W/"{s.version}"'
        response["lastModified"] = s.last_updated
    if result.resource is not None and not minimal:
        entry["resource"] = result.resource
    if result.issues:
        response["outcome"] = operation_outcome(result.issues)
    entry["response"] = response
    return entry


class _EntryIds:
    """The id of each new resource of a transaction, by entry: the same at every attempt of
    the unit and in the validation done before it."""

    def __init__(self, new_id: Callable[[], str], preset: Mapping[int, str] | None) -> None:
        self._new = new_id
        self._ids: dict[int, str] = dict(preset or {})

    def __call__(self, index: int) -> str:
        found = self._ids.get(index)
        if found is None:
            found = self._ids[index] = self._new()
        return found


class _UnforeseenError(Exception):
    """A reference only the store can resolve: that body is validated in the unit."""


class ValidatedAhead:
    """Validation done before a write unit, by body: validating is pure work on the body, so
    it runs outside the store's serialised writer, and the unit finds the result of each body
    it validates when its references resolved as foreseen (else it validates itself)."""

    def __init__(self, validate: ix.Validate) -> None:
        self._validate = validate
        self._done: dict[bytes, list[Issue]] = {}

    @staticmethod
    def _key(body: dict[str, Any]) -> bytes | None:
        try:
            return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            return None

    def ahead(self, body: dict[str, Any]) -> None:
        """Validate ``body`` now and keep the result for the unit."""
        key = self._key(body)
        if key is not None and key not in self._done:
            self._done[key] = self._validate(body)

    def __call__(self, body: dict[str, Any]) -> list[Issue]:
        key = self._key(body)
        done = self._done.get(key) if key is not None else None
        return list(done) if done is not None else self._validate(body)


def _validate_ahead(
    ctx: ix.Context,
    entries: list[Entry],
    ids: Callable[[int], str],
    known: Mapping[str, str],
    memo: ValidatedAhead,
) -> None:
    """Validate, before the unit, the POST and PUT Type/id bodies as the unit will see them:
    their references rewritten to the ids the unit will give, and conditional references to
    what the caller already resolved (``known``). Bodies naming anything else are left to the
    unit; an error here is left to the unit too, which raises it with its entry."""
    mapping: dict[str, str] = {}
    foreseen: list[tuple[Entry, str | None]] = []
    for e in entries:
        if e.method not in ("POST", "PUT") or not isinstance(e.resource, dict):
            continue
        segments, query = split_url(e.url)
        if not segments or not ctx.defs.is_resource_type(segments[0]):
            continue
        if e.method == "POST" and len(segments) == 1 and not e.if_none_exist:
            target = created = ids(e.index)
        elif e.method == "PUT" and len(segments) == 2 and not query:
            target, created = segments[1], None
        else:
            continue
        if e.full_url:
            mapping[e.full_url] = f"{segments[0]}/{target}"
        foreseen.append((e, created))

    def resolve(ref: str) -> str | None:
        if ref in mapping:
            return mapping[ref]
        if ref in known:
            return known[ref]
        if ref.startswith(("urn:uuid:", "urn:oid:")) or (
            "?" in ref and ref[:1].isupper() and "/" not in ref.split("?")[0]
        ):
            raise _UnforeseenError(ref)
        return None

    for e, created in foreseen:
        try:
            body = rewrite_references(e.resource, resolve, mapping)
            if created is not None:
                body = {k: v for k, v in body.items() if k != "id"}
            memo.ahead(body)
            if ctx.ahead is not None:
                ctx.ahead(body if created is None else {**body, "id": created})
        except (_UnforeseenError, FhirError):
            continue


def transaction(
    ctx: ix.Context,
    run: Runner,
    new_id: Callable[[], str],
    bundle: dict[str, Any],
    minimal: bool,
    lenient: bool,
    after: After | None = None,
    known: Mapping[str, str] | None = None,
    new_ids: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """Process a transaction: all entries succeed together or nothing is written. ``after``
    (an MHD transaction module's own writes, e.g. superseding replaced documents) runs in the
    same store transaction once every entry is written; ``known`` gives conditional references
    the caller already resolved (``Patient?identifier=…`` → ``Patient/id``), only so that their
    bodies are validated before the unit (the unit resolves them again); ``new_ids`` gives the
    id a POST entry creates (by entry index), one the caller just drew at random (a blob's)."""
    entries = parse_entries(bundle)
    if bundle.get("type") != "transaction":
        raise invalid("Not a transaction")
    ids = _EntryIds(new_id, new_ids)
    memo = ValidatedAhead(ctx.validate)
    _validate_ahead(ctx, entries, ids, known or {}, memo)
    uctx = dataclasses.replace(ctx, validate=memo)

    def work(tx: StoreTx) -> dict[int, ix.Result]:
        results: dict[int, ix.Result] = {}
        ordered = transaction_order([_copy(e) for e in entries])
        mapping, assigned, preset = _plan_transaction(uctx, tx, ordered, ids)
        resolve = _resolver(uctx, tx, mapping)
        for e in ordered:
            if e.index in preset:
                results[e.index] = preset[e.index]
                continue
            try:
                results[e.index] = _run_entry(
                    uctx,
                    tx,
                    entry=e,
                    resolve=resolve,
                    assigned=assigned,
                    prefer_lenient=lenient,
                    urls=mapping,
                )
            except FhirError as err:
                raise entry_error(e, err) from None
        if after is not None:
            after(tx, results)
        return results

    results: dict[int, ix.Result] = run(work, True)
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [entry_response(ctx, results[e.index], minimal) for e in entries],
    }


def batch(
    ctx: ix.Context,
    run: Runner,
    bundle: dict[str, Any],
    minimal: bool,
    lenient: bool,
) -> dict[str, Any]:
    """Process a batch: each entry on its own; a failed entry does not stop the others."""
    entries = parse_entries(bundle)
    out: list[dict[str, Any]] = []
    for e in entries:
        try:
            write = e.method not in ("GET", "HEAD")
            result = run(
                partial(
                    _run_entry, ctx, entry=e, resolve=None, assigned={}, prefer_lenient=lenient
                ),
                write,
            )
            out.append(entry_response(ctx, result, minimal))
        except FhirError as err:
            from maison.api.errors import status_of

            status = status_of(err)
            issues = err.issues or [Issue("error", "exception", err.message)]
            out.append(
                {
                    "response": {
                        "status": f"{status} {REASONS.get(status, '')}",
                        "outcome": operation_outcome(issues),
                    }
                }
            )
    return {"resourceType": "Bundle", "type": "batch-response", "entry": out}
