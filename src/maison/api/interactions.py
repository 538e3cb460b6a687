"""One generic handler per FHIR RESTful interaction, shared by HTTP requests and Bundle entries.

https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from maison.fhir.definitions import Definitions
from maison.fhir.errors import Category, FhirError, Issue, invalid, operation_outcome
from maison.fhir.patch import apply_patch
from maison.fhir.search import (
    SearchQuery,
    SearchTerminology,
    compartment_criterion,
    encode_cursor,
    parse_search,
    parse_system_search,
)
from maison.fhir.summary import elements, summarize
from maison.store.interface import Stored, StoreTx

Validate = Callable[[dict[str, Any]], list[Issue]]
# A business rule on writes of one type: (new, current or None) -> (resource to store, notes);
# a refusal raises. Registered by the composition root (e.g. the INS rules on Patient).
WriteRule = Callable[[dict[str, Any], dict[str, Any] | None], tuple[dict[str, Any], list[Issue]]]


@dataclass(frozen=True)
class UniqueClaim:
    """A token value a resource claims for itself alone (e.g. one matricule INS, one person):
    a second resource of the type claiming it is refused with ``hint``."""

    code: str  # token search parameter, e.g. "identifier"
    system: str
    value: str
    label: str  # what it is, for people: "the matricule INS"
    hint: str  # what to do about a collision


# The unique claims of a resource of one type. Registered by the composition root.
UniqueClaims = Callable[[dict[str, Any]], list[UniqueClaim]]

# Who holds a token value: (type, search parameter code, system, value) -> current resources.
Holders = Callable[[str, str, str, str], list[Stored]]
# A business check on a write that looks at other resources (e.g. an INS named in a document
# must belong to a qualified identity); a refusal raises. Registered by the composition root.
WriteCheck = Callable[[dict[str, Any], Holders], None]
# Whether the current version of a resource of one type may be deleted; a refusal raises.
DeleteRule = Callable[[dict[str, Any]], None]
# A service's rule on searches of one type (e.g. MHD ITI-67: the patient is required; results
# by service date): the search parameters as they will run; a refusal raises.
SearchRule = Callable[[list[tuple[str, str]]], list[tuple[str, str]]]


@dataclass
class Context:
    """What a handler needs: definitions, validation, the base URL for links."""

    defs: Definitions
    validate: Validate
    base_url: str
    lenient: bool = False
    rules: dict[str, WriteRule] = field(default_factory=dict)
    unique: dict[str, UniqueClaims] = field(default_factory=dict)
    checks: dict[str, WriteCheck] = field(default_factory=dict)
    deletes: dict[str, DeleteRule] = field(default_factory=dict)
    searches: dict[str, SearchRule] = field(default_factory=dict)
    #: expands token :in/:not-in/:below/:above (None: the definitions' value sets only)
    terms: SearchTerminology | None = None
    #: work on a resource about to be written that may be done before its write unit (the
    #: store's index extraction), given the body as it will be stored, its id set
    ahead: Callable[[dict[str, Any]], None] | None = None


@dataclass
class Result:
    """The outcome of one interaction, rendered later as an HTTP response or a Bundle entry."""

    status: int
    resource: dict[str, Any] | None = None
    stored: Stored | None = None
    location: bool = False
    issues: list[Issue] = field(default_factory=list)


def check_type(ctx: Context, res_type: str) -> None:
    """Refuse an unknown resource type in a URL."""
    if not ctx.defs.is_resource_type(res_type):
        raise FhirError(Category.NOT_FOUND, f"Unknown resource type '{res_type}'")


def check_id(res_id: str) -> None:
    """Refuse an id that is not a FHIR id (https://hl7.org/fhir/R4/datatypes.html#id)."""
    if not (1 <= len(res_id) <= 64) or any(
        not (c.isascii() and (c.isalnum() or c in "-.")) for c in res_id
    ):
        raise invalid(f"'{res_id[:80]}' is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})")


def prepare(ctx: Context, res_type: str, body: Any, res_id: str | None) -> dict[str, Any]:
    """Check a resource body against the URL and validate it; errors carry the reason."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object holding a FHIR resource")
    rt = body.get("resourceType")
    if not isinstance(rt, str):
        raise invalid("The resource has no resourceType")
    if rt != res_type:
        raise invalid(f"The resource is a {rt} but the URL is for {res_type}")
    if res_id is None:
        body = {k: v for k, v in body.items() if k != "id"}
    else:
        if "id" not in body:
            raise invalid(f"An update needs the resource id in the body ({res_type}.id)")
        if body["id"] != res_id:
            raise invalid(f"The resource id '{body['id']}' does not match the URL id '{res_id}'")
    issues = ctx.validate(body)
    errors = [i for i in issues if i.severity in ("error", "fatal")]
    if errors:
        raise FhirError(
            Category.UNPROCESSABLE,
            f"The {res_type} is not valid: {errors[0].diagnostics}",
            issues,
        )
    checked: dict[str, Any] = body
    return checked


def parse_if_match(value: str | None) -> int | None:
    """``W/"3"`` → 3 (https://hl7.org/fhir/R4/http.html#concurrency)."""
    if value is None:
        return None
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    v = v.strip('"')
    if not v.isdigit():
        raise invalid(f'If-Match must be a version ETag such as W/"3", not {value[:40]!r}')
    return int(v)


def _matches(ctx: Context, tx: StoreTx, res_type: str, query: str, what: str) -> list[Stored]:
    params = parse_qsl(query, keep_blank_values=True)
    if not params:
        raise invalid(f"{what} needs search criteria")
    q = parse_search(ctx.defs, res_type, params, lenient=False, terms=ctx.terms)
    q.count, q.total = 2, "none"
    return tx.search(q).entries


def read(ctx: Context, tx: StoreTx, res_type: str, res_id: str) -> Result:
    """read: https://hl7.org/fhir/R4/http.html#read."""
    check_type(ctx, res_type)
    stored = tx.read(res_type, res_id)
    if stored is None:
        raise FhirError(Category.NOT_FOUND, f"{res_type}/{res_id} is not known")
    if stored.deleted:
        raise FhirError(Category.GONE, f"{res_type}/{res_id} was deleted")
    return Result(200, stored.resource, stored)


def vread(ctx: Context, tx: StoreTx, res_type: str, res_id: str, vid: str) -> Result:
    """vread: https://hl7.org/fhir/R4/http.html#vread."""
    check_type(ctx, res_type)
    if not vid.isdigit():
        raise FhirError(
            Category.NOT_FOUND, f"Version '{vid[:20]}' of {res_type}/{res_id} is not known"
        )
    stored = tx.vread(res_type, res_id, int(vid))
    if stored is None:
        raise FhirError(Category.NOT_FOUND, f"Version {vid} of {res_type}/{res_id} is not known")
    if stored.deleted:
        raise FhirError(Category.GONE, f"Version {vid} of {res_type}/{res_id} is a deletion")
    return Result(200, stored.resource, stored)


def create(
    ctx: Context,
    tx: StoreTx,
    res_type: str,
    body: Any,
    if_none_exist: str | None = None,
    res_id: str | None = None,
    fresh: bool = False,
) -> Result:
    """create and conditional create: https://hl7.org/fhir/R4/http.html#create."""
    check_type(ctx, res_type)
    resource = prepare(ctx, res_type, body, None)
    if if_none_exist:
        found = _matches(ctx, tx, res_type, if_none_exist.lstrip("?"), "If-None-Exist")
        if len(found) > 1:
            raise FhirError(
                Category.PRECONDITION,
                f"If-None-Exist '{if_none_exist}' matches several {res_type} resources",
            )
        if found:
            return Result(200, found[0].resource, found[0])
    notes: list[Issue] = []
    rule = ctx.rules.get(res_type)
    if rule is not None:
        resource, notes = rule(resource, None)
    check_unique(ctx, tx, res_type, None, resource)
    stored = tx.create(res_type, resource, res_id, fresh)
    return Result(201, stored.resource, stored, location=True, issues=notes)


def check_unique(
    ctx: Context, tx: StoreTx, res_type: str, res_id: str | None, resource: dict[str, Any]
) -> None:
    """Run the type's write check, then refuse a write whose unique claims another resource of
    the type already holds (409)."""
    check = ctx.checks.get(res_type)
    if check is not None:
        check(
            resource,
            lambda rtype, code, system, value: tx.holders(rtype, code, system, value, res_type),
        )
    claims = ctx.unique.get(res_type)
    if claims is None:
        return
    for claim in claims(resource):
        others = [  # the index knows the value, not the use: ask the claims of each holder
            h.id
            for h in tx.holders(res_type, claim.code, claim.system, claim.value)
            if h.id != res_id and h.resource is not None and claim in claims(h.resource)
        ]
        if others:
            message = (
                f"{claim.label} {claim.value} is already carried by {res_type}/{others[0]}: "
                f"{claim.hint}"
            )
            raise FhirError(
                Category.CONFLICT,
                message,
                [Issue("error", "duplicate", message, (f"{res_type}.identifier",))],
            )


def update(
    ctx: Context,
    tx: StoreTx,
    res_type: str,
    res_id: str,
    body: Any,
    if_match: str | None = None,
) -> Result:
    """update (and update-as-create): https://hl7.org/fhir/R4/http.html#update."""
    check_type(ctx, res_type)
    check_id(res_id)
    resource = prepare(ctx, res_type, body, res_id)
    notes: list[Issue] = []
    rule = ctx.rules.get(res_type)
    if rule is not None:
        current = tx.replaced(res_type, res_id)
        old = current.resource if current is not None and not current.deleted else None
        resource, notes = rule(resource, old)
    check_unique(ctx, tx, res_type, res_id, resource)
    stored, created = tx.update(res_type, res_id, resource, parse_if_match(if_match))
    return Result(201 if created else 200, stored.resource, stored, location=created, issues=notes)


def conditional_update(
    ctx: Context, tx: StoreTx, res_type: str, query: str, body: Any, if_match: str | None = None
) -> Result:
    """Conditional update: https://hl7.org/fhir/R4/http.html#cond-update."""
    check_type(ctx, res_type)
    found = _matches(ctx, tx, res_type, query, "A conditional update")
    if len(found) > 1:
        raise FhirError(
            Category.PRECONDITION, f"The conditional update matches several {res_type} resources"
        )
    if found:
        target = found[0].id
        if isinstance(body, dict) and body.get("id") not in (None, target):
            raise invalid(
                f"The resource id '{body.get('id')}' does not match the resource found ({target})"
            )
        body = {**body, "id": target} if isinstance(body, dict) else body
        return update(ctx, tx, res_type, target, body, if_match)
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        return update(ctx, tx, res_type, body["id"], body, if_match)
    return create(ctx, tx, res_type, body)


def patch(
    ctx: Context,
    tx: StoreTx,
    res_type: str,
    res_id: str,
    content_type: str,
    body: Any,
    if_match: str | None = None,
) -> Result:
    """patch: https://hl7.org/fhir/R4/http.html#patch."""
    current = read(ctx, tx, res_type, res_id)
    assert current.resource is not None and current.stored is not None
    expected = parse_if_match(if_match)
    if expected is not None and expected != current.stored.version:
        raise FhirError(
            Category.PRECONDITION,
            f"Version conflict on {res_type}/{res_id}: If-Match asked for version {expected} "
            f"but the current version is {current.stored.version}",
        )
    patched = apply_patch(current.resource, content_type, body, definitions=ctx.defs)
    if patched.get("resourceType") != res_type or patched.get("id") != res_id:
        raise FhirError(Category.UNPROCESSABLE, "A patch may not change resourceType or id")
    return update(ctx, tx, res_type, res_id, patched, f'W/"{current.stored.version}"')


def conditional_patch(
    ctx: Context, tx: StoreTx, res_type: str, query: str, content_type: str, body: Any
) -> Result:
    """Conditional patch: https://hl7.org/fhir/R4/http.html#patch."""
    check_type(ctx, res_type)
    found = _matches(ctx, tx, res_type, query, "A conditional patch")
    if len(found) != 1:
        raise FhirError(
            Category.PRECONDITION if found else Category.NOT_FOUND,
            f"The conditional patch matches {'several' if found else 'no'} {res_type} resources",
        )
    return patch(ctx, tx, res_type, found[0].id, content_type, body)


def delete(ctx: Context, tx: StoreTx, res_type: str, res_id: str) -> Result:
    """delete: https://hl7.org/fhir/R4/http.html#delete (history is kept)."""
    check_type(ctx, res_type)
    rule = ctx.deletes.get(res_type)
    if rule is not None:
        current = tx.read(res_type, res_id)
        if current is not None and not current.deleted and current.resource is not None:
            rule(current.resource)
    stored = tx.delete(res_type, res_id)
    return Result(
        200,
        None,
        stored,
        issues=[
            Issue(
                "information",
                "informational",
                f"{res_type}/{res_id} deleted" if stored else f"{res_type}/{res_id} was not there",
            )
        ],
    )


def conditional_delete(ctx: Context, tx: StoreTx, res_type: str, query: str) -> Result:
    """Conditional delete (single match): https://hl7.org/fhir/R4/http.html#3.1.0.7.1."""
    check_type(ctx, res_type)
    found = _matches(ctx, tx, res_type, query, "A conditional delete")
    if len(found) > 1:
        raise FhirError(
            Category.PRECONDITION, f"The conditional delete matches several {res_type} resources"
        )
    if not found:
        return Result(
            200, issues=[Issue("information", "informational", "No resource matched; none deleted")]
        )
    return delete(ctx, tx, res_type, found[0].id)


def search(
    ctx: Context,
    tx: StoreTx,
    res_type: str,
    params: list[tuple[str, str]],
    lenient: bool,
    compartment: tuple[str, str] | None = None,
) -> Result:
    """search, also within a compartment, or across types when ``res_type`` is empty:
    https://hl7.org/fhir/R4/http.html#search."""
    rule = ctx.searches.get(res_type) if compartment is None else None
    if rule is not None:
        params = rule(params)
    if res_type:
        check_type(ctx, res_type)
        query = parse_search(
            ctx.defs, res_type, params, lenient=lenient or ctx.lenient, terms=ctx.terms
        )
        base = f"{ctx.base_url}/{res_type}"
    else:
        query = parse_system_search(
            ctx.defs, params, lenient=lenient or ctx.lenient, terms=ctx.terms
        )
        base = ctx.base_url
    if compartment is not None:
        check_type(ctx, compartment[0])
        query.criteria.append(compartment_criterion(ctx.defs, *compartment, res_type))
        base = f"{ctx.base_url}/{compartment[0]}/{compartment[1]}/{res_type}"
    page = tx.search(query)

    def shaped(resource: dict[str, Any] | None) -> dict[str, Any] | None:
        if resource is None:
            return None
        if query.elements is not None:
            return elements(ctx.defs, resource, query.elements)
        return summarize(ctx.defs, resource, query.summary)

    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    kept = [(k, v) for k, v in params if k not in ("_offset", "_cursor") and k not in query.ignored]
    links = [{"relation": "self", "url": _url(base, params_without_ignored(params, query))}]
    if page.has_more and page.last is not None:
        # keyset: stays right while resources are written between pages, sorted or not
        nxt = [*kept, ("_cursor", encode_cursor(page.last))]
        links.append({"relation": "next", "url": _url(base, nxt)})
    if query.offset > 0:
        prev = [*kept, ("_offset", str(max(0, query.offset - query.count)))]
        links.append({"relation": "previous", "url": _url(base, prev)})
    bundle["link"] = links
    bundle["entry"] = [
        {
            "fullUrl": f"{ctx.base_url}/{s.type}/{s.id}",
            "resource": shaped(s.resource),
            "search": {"mode": "match"},
        }
        for s in page.entries
    ] + [
        {
            "fullUrl": f"{ctx.base_url}/{s.type}/{s.id}",
            "resource": s.resource,
            "search": {"mode": "include"},
        }
        for s in page.included
    ]
    return Result(200, bundle)


def history(
    ctx: Context,
    tx: StoreTx,
    res_type: str | None,
    res_id: str | None,
    params: list[tuple[str, str]],
) -> Result:
    """history (instance, type, system): https://hl7.org/fhir/R4/http.html#history."""
    if res_type:
        check_type(ctx, res_type)
    count, since, before = 50, None, None
    for k, v in params:
        if k == "_count":
            if not v.isdigit():
                raise invalid("_count must be a non-negative integer")
            count = max(1, min(int(v), 1000))
        elif k == "_since":
            from maison.fhir.indexing import date_range

            rng = date_range(v)
            if rng is None:
                raise invalid(f"_since must be a FHIR instant, got {v[:40]!r}")
            since = rng[0]
        elif k == "_before":
            if not v.isdigit():
                raise invalid("_before must be a history cursor (an integer)")
            before = int(v)
        elif k not in ("_format", "_pretty"):
            raise invalid(f"Parameter '{k}' is not supported on history")
    page = tx.history(res_type, res_id, since, count, before)
    path = "/".join(p for p in (res_type, res_id, "_history") if p)
    base = f"{ctx.base_url}/{path}"
    kept = [(k, v) for k, v in params if k != "_before"]
    links = [{"relation": "self", "url": _url(base, params)}]
    if page.next_cursor is not None:
        links.append(
            {"relation": "next", "url": _url(base, [*kept, ("_before", str(page.next_cursor))])}
        )
    entries = []
    for s in page.entries:
        entry: dict[str, Any] = {"fullUrl": f"{ctx.base_url}/{s.type}/{s.id}"}
        if s.resource is not None:
            entry["resource"] = s.resource
        entry["request"] = {
            "method": s.method,
            "url": s.type if s.method == "POST" else f"{s.type}/{s.id}",
        }
        entry["response"] = {
            "status": {"POST": "201", "PUT": "200", "DELETE": "204"}.get(s.method, "200"),
            "etag": f'W/"{s.version}"',
            "lastModified": s.last_updated,
        }
        entries.append(entry)
    bundle = {
        "resourceType": "Bundle",
        "type": "history",
        "total": page.total,
        "link": links,
        "entry": entries,
    }
    return Result(200, bundle)


def validate_op(ctx: Context, res_type: str, body: Any) -> Result:
    """$validate: https://hl7.org/fhir/R4/resource-operation-validate.html."""
    check_type(ctx, res_type)
    resource = body
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        resource = next(
            (p.get("resource") for p in body.get("parameter", []) if p.get("name") == "resource"),
            None,
        )
    if not isinstance(resource, dict):
        raise invalid("$validate needs a resource (or a Parameters with a 'resource' parameter)")
    if resource.get("resourceType") != res_type:
        raise invalid(
            f"The resource is a {resource.get('resourceType')} but the URL is for {res_type}"
        )
    issues = ctx.validate(resource)
    return Result(200, operation_outcome(issues))


def params_without_ignored(
    params: list[tuple[str, str]], query: SearchQuery
) -> list[tuple[str, str]]:
    """The request's parameters minus those ignored under ``handling=lenient``."""
    return [(k, v) for k, v in params if k not in query.ignored]


def _url(base: str, params: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return f"{base}?{urlencode(params)}" if params else base


def http_date(instant: str) -> str:
    """A FHIR instant as an HTTP-date for Last-Modified."""
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return format_datetime(moment, usegmt=True)


def etag(stored: Stored) -> str:
    """The weak ETag of a version (https://hl7.org/fhir/R4/http.html#versioning)."""
    return f'W/"{stored.version}"'


__all__ = ["Context", "Result", "SearchQuery"]
