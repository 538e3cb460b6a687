"""The HTTP edge: Starlette routes, body limits, content types, Prefer, and rendering Results.

https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.from_thread
import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from maison.api import bundles, operations
from maison.api import interactions as ix
from maison.api.audit_read import audit_search, audit_write_refusal
from maison.api.audit_trace import CURRENT, RequestInfo
from maison.api.capability import capability_statement
from maison.api.errors import status_of
from maison.api.exchange_routes import exchange_routes
from maison.api.psc_routes import psc_routes
from maison.api.services import Services
from maison.api.smart_routes import smart_routes
from maison.fhir.errors import Category, FhirError, Issue, invalid, operation_outcome
from maison.security.binding import (
    CERT_HEADER,
    bound_thumbprint,
    check_binding,
    presented_thumbprint,
)
from maison.security.guard import GuardedTx
from maison.security.principal import Principal
from maison.security.scopes import authorize
from maison.services.dmp import provide
from maison.store.interface import StoreTx

log = logging.getLogger("maison.api")

FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
XML_TYPES = ("application/fhir+xml", "application/xml", "text/xml", "xml")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
MAX_QUERY = 8192


def fhir_response(
    status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None
) -> Response:
    """A FHIR JSON response."""
    content = orjson.dumps(body) if body is not None else b""
    h = dict(headers or {})
    if body is not None:
        h["content-type"] = FHIR_JSON
    return Response(content, status_code=status, headers=h)


def error_response(error: FhirError, token_sent: bool = True) -> Response:
    """An error value as an OperationOutcome response (the only place this happens)."""
    status = status_of(error)
    headers: dict[str, str] = dict(error.headers)
    if status == 413:  # the rest of the body is not wanted: the client stops sending
        headers["connection"] = "close"
    if status == 401:  # RFC 6750 §3.1: no error code when no token was sent
        headers["www-authenticate"] = (
            'Bearer realm="maison", error="invalid_token"'
            if token_sent
            else 'Bearer realm="maison"'
        )
    return fhir_response(status, error.outcome(), headers)


def _prefer(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in request.headers.get("prefer", "").replace(";", ",").split(","):
        k, _, v = part.strip().partition("=")
        if k:
            out[k.lower()] = v.strip().strip('"')
    return out


def _media(value: str | None) -> str | None:
    return value.split(";")[0].strip().lower() if value else None


def _check_accept(request: Request, params: list[tuple[str, str]]) -> None:
    fmt = next((v for k, v in params if k == "_format"), None)
    if fmt and any(x in fmt.lower() for x in XML_TYPES) and "json" not in fmt.lower():
        raise FhirError(Category.NOT_ACCEPTABLE, "This server speaks FHIR JSON only (_format)")
    accept = request.headers.get("accept", "")
    if accept and "json" not in accept and "*/*" not in accept and "application/*" not in accept:
        raise FhirError(
            Category.NOT_ACCEPTABLE,
            f"This server answers in application/fhir+json; Accept was '{accept[:80]}'",
        )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise FhirError(
            Category.TOO_LARGE, f"The request body is larger than the limit of {limit} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FhirError(
                Category.TOO_LARGE, f"The request body is larger than the limit of {limit} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise invalid("The request has no body; a FHIR JSON resource was expected")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"The body is not valid JSON: {exc}") from None


class FhirEndpoint:
    """Routes FHIR REST requests to the generic interaction handlers."""

    def __init__(self, services: Services) -> None:
        self.s = services

    def context(self, request: Request, principal: Principal) -> ix.Context:
        """The per-request handler context."""
        return self.s.context(self.s.settings.public_url or str(request.base_url), principal)

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except FhirError as err:
            if err.category in (Category.UNAUTHORIZED, Category.FORBIDDEN):
                # the reason only: the messages never carry the token itself
                log.info(
                    "access refused on %s %s: %s",
                    request.method,
                    request.url.path[:200],
                    err.message[:300],
                )
            return error_response(err, bool(request.headers.get("authorization")))
        except Exception:  # never a bare 500: log it, answer with an OperationOutcome
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            return error_response(
                FhirError(Category.INTERNAL, "Internal error; it has been logged")
            )

    async def _handle(self, request: Request) -> Response:
        if self.s.refresh_due():
            await run_in_threadpool(self.s.refresh)
        header = request.headers.get("authorization")
        auth = self.s.authenticator
        # a cache hit costs no I/O; a miss may fetch the issuer's keys, so it leaves the loop
        principal = auth.cached(header)
        if principal is None:
            principal = await run_in_threadpool(auth.authenticate, header)
        if bound_thumbprint(principal.claims) is not None:  # RFC 8705: its certificate too
            presented = presented_thumbprint(
                request.headers.get(CERT_HEADER), self.s.settings.trust_client_cert_header
            )
            check_binding(principal.claims, presented)
        method = request.method
        CURRENT.set(
            RequestInfo(
                request.client.host if request.client else None,
                (request.headers.get("x-request-id") or uuid.uuid4().hex)[:64],
                method,
                request.url.path[:300],
                request.url.query[:1000] or None,
                request.headers.get("x-access-mode"),
            )
        )
        if (
            method == "POST"
            and request.url.path.strip("/") == "Binary"
            and self.s.dmp is not None
            and _media(request.headers.get("content-type")) not in (*JSON_TYPES, None)
        ):  # a raw document, streamed to the blob store
            return await self._upload(request, principal)
        if len(request.url.query) > MAX_QUERY:
            raise FhirError(
                Category.URI_TOO_LONG,
                f"The query string is longer than {MAX_QUERY} characters; "
                "send long searches as POST [type]/_search with a form body",
            )
        segments = [s for s in request.url.path.split("/") if s]
        params = parse_qsl(request.url.query, keep_blank_values=True)
        if "\x00" in request.url.path or any("\x00" in k or "\x00" in v for k, v in params):
            raise invalid("NUL characters are not allowed in URLs or search values")
        if (
            method in ("GET", "HEAD")
            and len(segments) == 2
            and segments[0] == "Binary"
            and self.s.dmp is not None
        ):  # ITI-68: the document itself, unless the client asks for the FHIR resource
            return await self._retrieve(request, principal, segments[1], params)
        if segments and segments[0] == "AuditEvent" and self.s.audit is not None:
            return await self._audit(request, principal, segments, params)
        _check_accept(request, params)
        prefer = _prefer(request)
        ctype = _media(request.headers.get("content-type"))
        body: Any = None
        if method in ("POST", "PUT", "PATCH"):
            raw = await _read_body(request, self.s.settings.max_body_bytes)
            if ctype == "application/x-www-form-urlencoded":
                if not (method == "POST" and segments and segments[-1] == "_search"):
                    raise FhirError(
                        Category.MEDIA_TYPE, "Form bodies are only accepted by POST [type]/_search"
                    )
                params = params + parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
            elif method == "POST" and segments and segments[-1] == "_search":
                pass
            else:
                allowed = JSON_TYPES + (
                    ("application/json-patch+json",) if method == "PATCH" else ()
                )
                if ctype is not None and ctype not in allowed:
                    raise FhirError(
                        Category.MEDIA_TYPE,
                        f"Content-Type '{ctype}' is not supported; send application/fhir+json",
                    )
                body = _parse_json(raw)
        ctx = self.context(request, principal)
        bundle_work, unit, write = self._route(
            ctx, principal, method, segments, params, request, body, ctype, prefer
        )
        result: ix.Result | None
        recording = None  # a read's trail, written while its answer renders
        if bundle_work is not None:
            result = await run_in_threadpool(bundle_work)
        elif write:  # straight to the group-commit writer: no thread-pool hop
            result = await self.s.run_write(principal, unit)
        else:
            result, recording = await run_in_threadpool(self.s.run_read, principal, unit)
        if result is None:
            raise _unsupported(self.s, method, segments)
        response = self._render(ctx, result, prefer, method)
        if recording is not None:
            await asyncio.wrap_future(recording)  # traced before the answer leaves
        return response

    async def _audit(
        self,
        request: Request,
        principal: Principal,
        segments: list[str],
        params: list[tuple[str, str]],
    ) -> Response:
        """The access history, read from the audit trail; never written through the API
        (https://hl7.org/fhir/R4/auditevent.html)."""
        trail = self.s.audit
        assert trail is not None
        if request.method not in ("GET", "HEAD") or len(segments) > 2:
            status, body = audit_write_refusal(request.method)
            return fhir_response(status, body, {"allow": "GET"})
        base = (self.s.settings.public_url or str(request.base_url)).rstrip("/")
        res_id = segments[1] if len(segments) == 2 else None
        status, body = await run_in_threadpool(audit_search, trail, principal, params, base, res_id)
        return fhir_response(status, body)

    async def _upload(self, request: Request, principal: Principal) -> Response:
        """Create a Binary from a raw document body, streamed to the encrypted blob store and
        refused as soon as it passes the configured limit, never held whole in memory
        (https://hl7.org/fhir/R4/binary.html#rest); a DocumentReference then names it."""
        dmp = self.s.dmp
        assert dmp is not None
        authorize(principal, "create", "Binary")  # before reading a byte of the body
        limit = self.s.settings.max_document_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FhirError(
                Category.TOO_LARGE, f"The document is larger than the limit of {limit:,} bytes"
            )
        content_type = request.headers.get("content-type", "application/octet-stream")
        stream = request.stream().__aiter__()

        async def next_chunk() -> bytes | None:
            try:
                return await stream.__anext__()
            except StopAsyncIteration:
                return None

        def chunks() -> Iterator[bytes]:
            while (chunk := anyio.from_thread.run(next_chunk)) is not None:
                yield chunk

        info = await anyio.to_thread.run_sync(lambda: dmp.blobs.put(chunks(), max_bytes=limit))
        ctx = self.context(request, principal)
        binary = {"resourceType": "Binary", "contentType": content_type.split(";")[0].strip()}
        try:
            result = await self.s.run_write(
                principal,
                lambda tx: ix.create(ctx, tx, "Binary", binary, res_id=info.blob_id, fresh=True),
            )
        except BaseException:
            await run_in_threadpool(dmp.blobs.delete, info.blob_id)
            raise
        headers = {"x-content-sha1": info.sha1_base64, "x-content-size": str(info.size)}
        response = self._render(ctx, result, _prefer(request), "POST")
        response.headers.update(headers)
        return response

    async def _retrieve(
        self, request: Request, principal: Principal, res_id: str, params: list[tuple[str, str]]
    ) -> Response:
        """Retrieve Document [ITI-68]: the Binary's content, raw, whole or by one byte range;
        as a FHIR Binary (content inline) when the client asks for FHIR JSON
        (https://profiles.ihe.net/ITI/MHD/ITI-68.html, https://hl7.org/fhir/R4/binary.html#rest)."""
        dmp = self.s.dmp
        assert dmp is not None
        ctx = self.context(request, principal)
        result = await run_in_threadpool(
            self.s.run, principal, False, lambda tx: ix.read(ctx, tx, "Binary", res_id)
        )
        binary = result.resource or {}
        stored = result.stored
        headers = {"etag": ix.etag(stored)} if stored is not None else {}
        if _wants_fhir(request, params):
            body = await run_in_threadpool(dmp.inline, binary)
            return fhir_response(200, None if request.method == "HEAD" else body, headers)
        content_type = str(binary.get("contentType") or "application/octet-stream")
        blobs = dmp.blobs
        if not await run_in_threadpool(blobs.exists, res_id):
            raw = base64.b64decode(binary.get("data") or "")  # a Binary stored before the DMP
            return Response(raw, media_type=content_type, headers=headers)
        size = await run_in_threadpool(blobs.size, res_id)
        span = _byte_range(request.headers.get("range"), size)
        headers["accept-ranges"] = "bytes"
        headers["content-disposition"] = "inline"
        if span is None:
            start, end, status = 0, size, 200
        else:
            start, end, status = span[0], span[1], 206
            headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
        headers["content-length"] = str(end - start)
        if request.method == "HEAD":
            return Response(b"", status_code=status, media_type=content_type, headers=headers)
        chunks = await run_in_threadpool(blobs.open, res_id, start, end)
        return StreamingResponse(
            chunks, status_code=status, media_type=content_type, headers=headers
        )

    def _route(
        self,
        ctx: ix.Context,
        principal: Principal,
        method: str,
        seg: list[str],
        params: list[tuple[str, str]],
        request: Request,
        body: Any,
        ctype: str | None,
        prefer: dict[str, str],
    ) -> tuple[Callable[[], ix.Result] | None, Unit, bool]:
        """The work a request asks for: a whole bundle, or one unit on a store transaction."""
        s = self.s
        h = request.headers
        lenient = prefer.get("handling") == "lenient"
        query = request.url.query
        n = len(seg)
        if n == 0 and method in ("GET", "HEAD"):
            return None, lambda tx: ix.search(ctx, tx, "", params, lenient), False
        if n == 1 and seg[0] == "_search" and method == "POST":
            return None, lambda tx: ix.search(ctx, tx, "", params, lenient), False
        if n == 0:
            if method != "POST":
                raise FhirError(
                    Category.METHOD_NOT_ALLOWED,
                    f"{method} on the base URL is not a FHIR interaction",
                )
            if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
                raise invalid("POST to the base URL takes a batch or transaction Bundle")
            minimal = prefer.get("return") == "minimal"
            run = s.runner(principal)
            dmp = s.dmp
            if dmp is not None and provide.is_provide_bundle(body):  # MHD ITI-65
                return (
                    lambda: dmp.provide_bundle(ctx, run, body, minimal, lenient),
                    _nothing,
                    True,
                )
            if body.get("type") == "transaction":
                return (
                    lambda: ix.Result(
                        200, bundles.transaction(ctx, run, s.store.new_id, body, minimal, lenient)
                    ),
                    _nothing,
                    True,
                )
            return (
                lambda: ix.Result(200, bundles.batch(ctx, run, body, minimal, lenient)),
                _nothing,
                True,
            )

        if (
            n == 1
            and method == "POST"
            and seg[0] == "DocumentReference"
            and s.dmp is not None
            and provide.is_simplified_publish(body)
        ):  # MHD ITI-105
            dmp, run = s.dmp, s.runner(principal)
            return lambda: dmp.simplified_publish(ctx, run, body), _nothing, True

        op_code, op_type, op_id = _operation_target(seg)
        if op_code is not None:
            level = "instance" if op_id else "type" if op_type else "system"
            found = s.operations.find(op_code, level, op_type)
            if op_type is not None:
                ix.check_type(ctx, op_type)

            def invoke(tx: StoreTx) -> ix.Result:
                if not isinstance(tx, GuardedTx):  # every unit runs on the guarded store
                    raise FhirError(Category.INTERNAL, "operation outside the guarded store")
                return operations.invoke(
                    s.operations, ctx, tx, method, op_code, op_type, op_id, params, body
                )

            writes = found is not None and found.affects_state and method == "POST"
            return None, invoke, writes

        def handle(tx: StoreTx) -> ix.Result | None:
            rtype = seg[0]
            if n == 1 and rtype == "_history" and method == "GET":
                return ix.history(ctx, tx, None, None, params)
            if n == 1:
                if method in ("GET", "HEAD"):
                    return ix.search(ctx, tx, rtype, params, lenient)
                if method == "POST":
                    return ix.create(ctx, tx, rtype, body, h.get("if-none-exist"))
                if method == "PUT" and query:
                    return ix.conditional_update(ctx, tx, rtype, query, body, h.get("if-match"))
                if method == "DELETE" and query:
                    return ix.conditional_delete(ctx, tx, rtype, query)
                if method == "PATCH" and query:
                    return ix.conditional_patch(ctx, tx, rtype, query, ctype or "", body)
            elif n == 2:
                second = seg[1]
                if second == "_search" and method == "POST":
                    return ix.search(ctx, tx, rtype, params, lenient)
                if second == "_history" and method == "GET":
                    return ix.history(ctx, tx, rtype, None, params)
                if second == "$validate" and method == "POST":
                    return ix.validate_op(ctx, rtype, body)
                if method in ("GET", "HEAD"):
                    if rtype == "OperationDefinition":
                        ours = s.operations.definition(second)
                        if ours is not None:  # our operations' definitions, served as data
                            return ix.Result(200, ours)
                    return ix.read(ctx, tx, rtype, second)
                if method == "PUT":
                    return ix.update(ctx, tx, rtype, second, body, h.get("if-match"))
                if method == "DELETE":
                    return ix.delete(ctx, tx, rtype, second)
                if method == "PATCH":
                    return ix.patch(ctx, tx, rtype, second, ctype or "", body, h.get("if-match"))
            elif n == 3 and seg[2] == "_history" and method == "GET":
                return ix.history(ctx, tx, rtype, seg[1], params)
            elif n == 3 and method in ("GET", "HEAD") and rtype in s.defs.compartments:
                return ix.search(ctx, tx, seg[2], params, lenient, (rtype, seg[1]))
            elif n == 4 and seg[2] == "_history" and method in ("GET", "HEAD"):
                return ix.vread(ctx, tx, rtype, seg[1], seg[3])
            return None

        reading = method in ("GET", "HEAD") or (n == 2 and seg[1] in ("_search", "$validate"))
        return None, handle, not reading

    def _render(
        self, ctx: ix.Context, result: ix.Result, prefer: dict[str, str], method: str
    ) -> Response:
        headers: dict[str, str] = {}
        s = result.stored
        if s is not None:
            headers["etag"] = ix.etag(s)
            headers["last-modified"] = ix.http_date(s.last_updated)
            if result.location:
                headers["location"] = f"{ctx.base_url}/{s.type}/{s.id}/_history/{s.version}"
        ret = prefer.get("return")
        body: dict[str, Any] | None
        if method in ("POST", "PUT", "PATCH") and ret == "minimal":
            body = None
        elif method in ("POST", "PUT", "PATCH") and ret == "OperationOutcome":
            body = operation_outcome(result.issues)
        elif result.resource is not None:
            body = result.resource
        else:
            body = operation_outcome(result.issues) if result.issues else None
        if method == "HEAD":
            body = None
        return fhir_response(result.status, body, headers)


Unit = Callable[[StoreTx], "ix.Result | None"]


def _operation_target(seg: list[str]) -> tuple[str | None, str | None, str | None]:
    """(code, resource type, id) when the path invokes an ``$operation`` other than
    ``$validate`` (https://hl7.org/fhir/R4/operations.html#invoking)."""
    n = len(seg)
    if n == 1 and seg[0].startswith("$"):
        return seg[0][1:], None, None
    if n == 2 and seg[1].startswith("$") and seg[1] != "$validate":
        return seg[1][1:], seg[0], None
    if n == 3 and seg[2].startswith("$"):
        return seg[2][1:], seg[0], seg[1]
    return None, None, None


def _wants_fhir(request: Request, params: list[tuple[str, str]]) -> bool:
    """Whether a Binary read asks for the FHIR resource rather than the raw content
    (https://hl7.org/fhir/R4/binary.html#rest)."""
    fmt = next((v for k, v in params if k == "_format"), "")
    accept = request.headers.get("accept", "")
    return "json" in fmt.lower() or any(t in accept for t in JSON_TYPES)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as [start, end) within ``size``; None for the whole content; a
    range outside the content raises 416 (https://www.rfc-editor.org/rfc/rfc7233#section-2.1).
    Several ranges are answered with the whole content, as RFC 7233 §3.1 allows."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    try:
        if not dash:
            raise ValueError
        if first == "":  # suffix: the last N bytes
            n = int(last)
            if n <= 0:
                raise ValueError
            start, end = max(0, size - n), size
        else:
            start = int(first)
            end = size if last == "" else min(int(last) + 1, size)
            if start < 0 or end <= start:
                raise ValueError
    except ValueError:
        raise FhirError(
            Category.RANGE,
            f"Range '{header[:60]}' cannot be served: the document has {size:,} bytes",
            headers={"content-range": f"bytes */{size}"},
        ) from None
    if start >= size:
        raise FhirError(
            Category.RANGE,
            f"Range '{header[:60]}' starts beyond the document's {size:,} bytes",
            headers={"content-range": f"bytes */{size}"},
        )
    return start, end


def _nothing(_tx: StoreTx) -> None:
    return None


def _unsupported(s: Services, method: str, seg: list[str]) -> FhirError:
    """The error for a request no interaction handles."""
    if seg and not s.defs.is_resource_type(seg[0]) and seg[0] != "_history":
        return FhirError(Category.NOT_FOUND, f"Unknown resource type '{seg[0][:64]}'")
    return FhirError(
        Category.METHOD_NOT_ALLOWED,
        f"{method} {'/'.join(seg)[:120]} is not a supported FHIR interaction",
    )


def build_app(services: Services) -> Starlette:
    """The ASGI application (https://hl7.org/fhir/R4/http.html)."""
    endpoint = FhirEndpoint(services)

    async def metadata(request: Request) -> Response:
        base = services.settings.public_url or str(request.base_url)
        return fhir_response(
            200,
            capability_statement(
                services.defs, base.rstrip("/"), services.operations, services.oauth_uris(base)
            ),
        )

    async def health(_request: Request) -> Response:
        try:
            await run_in_threadpool(services.store.ping)
        except Exception:
            log.exception("health check failed")
            return fhir_response(503, {"status": "unavailable"})
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    def public_json(
        make: Callable[[Request], dict[str, Any] | None],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            doc = make(request)
            if doc is None:
                return error_response(FhirError(Category.NOT_FOUND, "Not available"))
            return Response(orjson.dumps(doc), media_type="application/json")

        return handler

    def base_of(request: Request) -> str:
        return (services.settings.public_url or str(request.base_url)).rstrip("/")

    routes = [
        Route("/metadata", metadata, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route(
            "/.well-known/openid-configuration",
            public_json(lambda r: services.openid_configuration(base_of(r))),
            methods=["GET"],
        ),
        Route(
            "/auth/.well-known/openid-configuration",
            public_json(lambda r: services.openid_configuration(base_of(r))),
            methods=["GET"],
        ),
        Route("/.well-known/jwks.json", public_json(lambda r: services.jwks()), methods=["GET"]),
        Route(
            "/.well-known/smart-configuration",
            public_json(lambda r: services.smart_configuration(base_of(r))),
            methods=["GET"],
        ),
        *psc_routes(services),  # the local Pro Santé Connect provider: public, like discovery
        *exchange_routes(services),  # token exchange and introspection (RFC 8693, RFC 7662)
        *smart_routes(services),  # SMART authorization server: authorize, launch, revoke
        Route("/", endpoint.handle, methods=ALL_METHODS),
        Route("/{path:path}", endpoint.handle, methods=ALL_METHODS),
    ]
    return Starlette(routes=routes)


__all__ = ["Issue", "build_app", "error_response", "fhir_response"]
