"""The DMP's document sharing (Gestionnaire de partage) on this server: IHE MHD ITI-65 Provide
Document Bundle and ITI-105 Simplified Publish as PDSm profiles them, with the documents'
content stored encrypted outside the resource table, and ITI-68 Retrieve Document.

What a feed goes through, in order, before anything is acknowledged:

1. the bundle's shape (:mod:`maison.services.dmp.provide`): one SubmissionSet, every new
   document's content a Binary of the bundle with the attachment's size and SHA-1;
2. the DMP metadata rules (:mod:`maison.services.dmp.metadata`): J66/J57/J60/J61/J04/J08 and
   the ASS_X16 type→class correspondence, against the NOS loaded in the terminology service;
3. the PDSm profiles (the DocumentReference is stamped with the PDSm comprehensive profile and
   validated against it when the guide is installed);
4. CDA documents: the header against the metadata (:mod:`maison.services.dmp.cda`);
5. the content written to the blob store (size and SHA-1 checked again while streaming), then
   one store transaction for every resource, the replaced documents made ``superseded`` in the
   same transaction. If the transaction fails, the content written for it is deleted.

Without the DMP's reference data (the NOS value sets, the PDSm guide), a strict server refuses
to feed (it cannot check); a demo server feeds with a warning saying what was not checked.

https://profiles.ihe.net/ITI/MHD/ITI-65.html, https://profiles.ihe.net/ITI/MHD/ITI-105.html,
https://profiles.ihe.net/ITI/MHD/ITI-68.html, https://interop.esante.gouv.fr/ig/fhir/pdsm/
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from maison.api import bundles
from maison.api import interactions as ix
from maison.fhir import base64binary
from maison.fhir.errors import Category, FhirError, Issue, invalid
from maison.services.dmp import cda, lifecycle, provide
from maison.services.dmp.metadata import metadata_issues
from maison.store.blobs import BlobStore
from maison.store.interface import StoreTx
from maison.terminology.service import expansion_cache
from maison.terminology.source import TerminologySource

log = logging.getLogger("maison.dmp")

MHD_LIST_TYPES = provide.MHD_LIST_TYPES
#: Content types of CDA R2 documents (CI-SIS: text/xml).
CDA_TYPES = frozenset(
    {"text/xml", "application/xml", "application/hl7-v3+xml", "application/cda+xml"}
)
#: Largest document returned inline (base64) when a client asks for the Binary as FHIR JSON;
#: larger ones are retrieved raw (ITI-68).
MAX_INLINE_BINARY = 8 * 1024 * 1024


@dataclass
class DocumentSharing:
    """ITI-65 / ITI-105 / ITI-68 on this server: https://interop.esante.gouv.fr/ig/fhir/pdsm/."""

    blobs: BlobStore
    terminology: Callable[[], TerminologySource]
    has_profile: Callable[[str], bool]
    strict: bool  # refuse to feed without the DMP's reference data (else: warn)
    new_id: Callable[[], str]
    #: the identity status (FR Core code) of the Patient carrying an INS, None when unknown
    identity: Callable[[str, str], str | None] = lambda _system, _value: None
    #: the Patient a document's subject names (a reference or a logical identifier), to
    #: compare with a CDA header; None when it cannot be read
    patient: Callable[[Mapping[str, Any]], dict[str, Any] | None] = lambda _subject: None
    #: refuses a feed whose patient's DMP is closed, opposed to feeding or merged; else the
    #: Patient/[id] its reference names (None when unknown)
    feeding: Callable[[str | None], str | None] = lambda _patient: None

    # --- checks shared by ITI-65 and ITI-105 -----------------------------------------------
    def _document_issues(self, doc: dict[str, Any], where: str) -> list[Issue]:
        """The DMP metadata rules and the PDSm profile on one DocumentReference; raises on an
        error, returns the warnings."""
        warnings: list[Issue] = []
        errors: list[Issue] = []
        for issue in metadata_issues(doc, self.terminology(), expansion_cache()):
            moved = Issue(
                issue.severity,
                issue.code,
                issue.diagnostics,
                tuple(f"{where}.{e.removeprefix('DocumentReference.')}" for e in issue.expression)
                or (where,),
            )
            unloaded = issue.code == "not-supported" and issue.severity == "error"
            if issue.severity != "error":
                warnings.append(moved)
            elif unloaded and not self.strict:
                warnings.append(
                    Issue(
                        "warning",
                        "not-supported",
                        moved.diagnostics + " — not checked",
                        moved.expression,
                    )
                )
            else:
                errors.append(moved)
        if not self.has_profile(provide.DOCUMENT_PROFILE):
            message = (
                "the PDSm guide is not installed, so the document cannot be checked against "
                "PDSm_ComprehensiveDocumentReference (maison ig install of the PDSm guide)"
            )
            if self.strict:
                errors.append(Issue("error", "not-supported", message, (where,)))
            else:
                warnings.append(
                    Issue("warning", "not-supported", message + " — not checked", (where,))
                )
        if errors:
            raise FhirError(
                Category.UNPROCESSABLE, f"{where}: {errors[0].diagnostics}", errors + warnings
            )
        return warnings

    # --- ITI-65 ----------------------------------------------------------------------------
    def provide_bundle(
        self,
        ctx: ix.Context,
        run: bundles.Runner,
        bundle: dict[str, Any],
        minimal: bool,
        lenient: bool,
    ) -> ix.Result:
        """Provide Document Bundle [ITI-65]: https://profiles.ihe.net/ITI/MHD/ITI-65.html."""
        plan = provide.plan(bundle)
        named = self.feeding(plan.patient)  # before anything is stored
        known = {plan.patient: named} if plan.patient and named else None
        entries: list[Any] = [dict(e) for e in bundle["entry"]]
        warnings: list[Issue] = []
        for i in plan.documents:
            doc = _with_profile(entries[i]["resource"], provide.DOCUMENT_PROFILE)
            warnings += self._document_issues(doc, f"Bundle.entry[{i}].resource")
            entries[i] = {**entries[i], "resource": doc}
        for payload in plan.payloads:
            self._check_cda(payload, entries[payload.document_index]["resource"])
        for upload in plan.uploads:
            entries.append(self._attach(ctx, run, upload, entries))
        stored: list[str] = []
        new_ids: dict[int, str] = {}
        try:
            for payload in plan.payloads:
                info = self.blobs.put(
                    [payload.data],
                    max_bytes=provide.MAX_INLINE_BYTES,
                    expected_size=payload.size,
                    expected_sha1=payload.sha1,
                )
                stored.append(info.blob_id)
                doc_url = entries[payload.document_index].get("fullUrl")
                # created under its content's id (random, just drawn): no look-up needed
                entries[payload.binary_index] = {
                    "fullUrl": entries[payload.binary_index]["fullUrl"],
                    "resource": _binary(info.blob_id, payload.content_type, doc_url),
                    "request": {"method": "POST", "url": "Binary"},
                }
                new_ids[payload.binary_index] = info.blob_id
            after = _supersede(ctx, plan, entries)
            out = bundles.transaction(
                ctx,
                run,
                self.new_id,
                {**bundle, "entry": entries},
                minimal,
                lenient,
                after,
                known,
                new_ids,
            )
        except BaseException:
            for blob_id in stored:  # nothing acknowledged: the content goes too
                try:
                    self.blobs.delete(blob_id)
                except Exception:  # the orphan is harmless; `maison dmp purge` finds it
                    log.exception("could not delete the content of a refused feed")
            raise
        out.setdefault("meta", {})["profile"] = [
            "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.ProvideDocumentBundleResponse"
        ]
        return ix.Result(200, out, issues=warnings)

    def _attach(
        self,
        ctx: ix.Context,
        run: bundles.Runner,
        upload: provide.Upload,
        entries: list[Any],
    ) -> dict[str, Any]:
        """The entry making an uploaded Binary the content of its new document, once its
        size, SHA-1 and type match the attachment and no document holds it yet."""
        where = f"Bundle.entry[{upload.document_index}]"
        stored = run(lambda tx: ix.read(ctx, tx, "Binary", upload.binary_id), False)
        binary = stored.resource or {}
        if binary.get("securityContext"):
            raise _refused(where, f"Binary/{upload.binary_id} is already a document's content")
        if not self.blobs.exists(upload.binary_id):
            raise _refused(where, f"Binary/{upload.binary_id} has no uploaded content")
        info = self.blobs.info(upload.binary_id)
        problem = provide.check_sizes(info.size, info.sha1, upload.size, upload.sha1)
        if problem is not None:
            raise _refused(where, problem)
        if binary.get("contentType") != upload.content_type:
            raise _refused(
                where,
                f"the uploaded Binary is {binary.get('contentType')!r}, the attachment says "
                f"{upload.content_type!r}",
            )
        if upload.content_type.split(";")[0].strip().lower() in CDA_TYPES:
            data = b"".join(self.blobs.open(upload.binary_id))
            payload = provide.Payload(
                upload.document_index,
                upload.document_index,
                upload.content_type,
                data,
                upload.size,
                upload.sha1,
            )
            self._check_cda(payload, entries[upload.document_index]["resource"])
        doc_url = entries[upload.document_index].get("fullUrl")
        return {
            "fullUrl": f"{ctx.base_url}/Binary/{upload.binary_id}",
            "resource": _binary(upload.binary_id, upload.content_type, doc_url),
            "request": {"method": "PUT", "url": f"Binary/{upload.binary_id}"},
        }

    def _check_cda(self, payload: provide.Payload, doc: dict[str, Any]) -> None:
        """A CDA document's header against its metadata, and its patient's INS qualified in
        the platform (CI-SIS structuration minimale; RNIV)."""
        if payload.content_type.split(";")[0].strip().lower() not in CDA_TYPES:
            return
        where = f"Bundle.entry[{payload.document_index}]"
        header = cda.parse_header(payload.data)
        if isinstance(header, cda.CdaError):
            message = f"{where}: the CDA document is refused: {header.reason}"
            raise FhirError(
                header.category,
                message,
                [Issue("error", "invalid", message, (f"Bundle.entry[{payload.binary_index}]",))],
            )
        subject = doc.get("subject")
        patient = self.patient(subject) if isinstance(subject, Mapping) else None
        mismatches = cda.check_against(header, doc, patient)
        if mismatches:
            issues = [
                Issue(
                    "error",
                    "business-rule",
                    f"the CDA header and the metadata differ on the {m.field}: "
                    f"{m.in_cda!r} in the CDA, {m.in_metadata!r} in the DocumentReference",
                    (f"{where}.resource.{m.element.removeprefix('DocumentReference.')}",),
                )
                for m in mismatches
            ]
            fields = ", ".join(m.field for m in mismatches)
            raise FhirError(
                Category.UNPROCESSABLE,
                f"{where}: the CDA header and the DocumentReference differ on: {fields}",
                issues,
            )
        problem = cda.patient_issue(header, self.identity)
        if problem is not None:
            raise FhirError(problem.category, f"{where}: {problem.reason}")

    # --- ITI-105 ---------------------------------------------------------------------------
    def simplified_publish(
        self, ctx: ix.Context, run: bundles.Runner, doc: dict[str, Any]
    ) -> ix.Result:
        """Simplified Publish [ITI-105]: one DocumentReference carrying its document in
        ``attachment.data``, stored as a Provide Document Bundle would be
        (https://profiles.ihe.net/ITI/MHD/ITI-105.html)."""
        contents = doc.get("content")
        if not isinstance(contents, list) or len(contents) != 1:
            raise invalid("A Simplified Publish carries exactly one content with its data")
        attachment = contents[0].get("attachment") if isinstance(contents[0], Mapping) else None
        if not isinstance(attachment, Mapping) or not isinstance(attachment.get("data"), str):
            raise invalid("A Simplified Publish carries its document in attachment.data")
        doc_url, bin_url = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
        bare = {k: v for k, v in attachment.items() if k != "data"}
        meta = dict(doc.get("meta") or {})
        meta["profile"] = [
            p for p in meta.get("profile") or [] if p not in provide.SIMPLIFIED_PROFILES
        ]
        document = {
            **{k: v for k, v in doc.items() if k != "id"},
            "meta": meta,
            "content": [{**contents[0], "attachment": {**bare, "url": bin_url}}],
        }
        submission = {
            "resourceType": "List",
            "status": "current",
            "mode": "working",
            "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "submissionset"}]},
            "subject": doc.get("subject"),
            "entry": [{"item": {"reference": doc_url}}],
        }
        if isinstance(doc.get("date"), str):
            submission["date"] = doc["date"]
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                    "resource": submission,
                    "request": {"method": "POST", "url": "List"},
                },
                {
                    "fullUrl": doc_url,
                    "resource": document,
                    "request": {"method": "POST", "url": "DocumentReference"},
                },
                {
                    "fullUrl": bin_url,
                    "resource": {
                        "resourceType": "Binary",
                        "contentType": attachment.get("contentType"),
                        "data": attachment["data"],
                    },
                    "request": {"method": "POST", "url": "Binary"},
                },
            ],
        }
        try:
            result = self.provide_bundle(ctx, run, bundle, False, False)
        except FhirError as error:  # name the DocumentReference, not our bundle's entries
            raise FhirError(
                error.category,
                error.message.replace("Bundle.entry[1].resource", "DocumentReference")
                .replace("Bundle.entry[1]: ", "")
                .replace("Bundle.entry[2]: ", "the document: "),
                error.issues,
            ) from None
        assert result.resource is not None
        created = result.resource["entry"][1]
        ref = created["response"]["location"].split("/_history/")[0]
        rtype, rid = ref.split("/")
        read = run(lambda tx: ix.read(ctx, tx, rtype, rid), False)
        return ix.Result(201, read.resource, read.stored, location=True, issues=result.issues)

    # --- ITI-68 ----------------------------------------------------------------------------
    def inline(self, binary: dict[str, Any]) -> dict[str, Any]:
        """A stored Binary as FHIR JSON with its content in ``data``, for a client that asks
        for the resource rather than the raw document (https://hl7.org/fhir/R4/binary.html#rest)."""
        blob_id = str(binary.get("id"))
        if not self.blobs.exists(blob_id):
            return binary
        size = self.blobs.size(blob_id)
        if size > MAX_INLINE_BINARY:
            raise FhirError(
                Category.TOO_LARGE,
                f"The document is {size:,} bytes: retrieve it raw (Accept: "
                f"{binary.get('contentType', '*/*')}) rather than as FHIR JSON",
            )
        data = b"".join(self.blobs.open(blob_id))
        return {**binary, "data": base64binary.encode(data)}


def _with_profile(resource: dict[str, Any], profile: str) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    profiles = [p for p in meta.get("profile") or [] if isinstance(p, str)]
    if profile not in profiles:
        profiles.append(profile)
    meta["profile"] = profiles
    return {**resource, "meta": meta}


def _binary(blob_id: str, content_type: str, document: Any) -> dict[str, Any]:
    """The Binary resource of a stored document: its content lives in the blob store under the
    same id (https://hl7.org/fhir/R4/binary.html)."""
    binary: dict[str, Any] = {"resourceType": "Binary", "id": blob_id, "contentType": content_type}
    if isinstance(document, str) and document:
        binary["securityContext"] = {"reference": document}
    return binary


def _supersede(ctx: ix.Context, plan: provide.ProvidePlan, entries: list[Any]) -> bundles.After:
    """The replaced documents become ``superseded`` in the feed's transaction, after checking
    each is a current document of the same patient (MHD ITI-65 replace; DMP TD2.1)."""

    def after(tx: StoreTx, results: dict[int, ix.Result]) -> None:
        for index, target in plan.replaces:
            new = results[index].resource or {}
            rtype, _, rid = target.rpartition("/")
            rtype = rtype.rsplit("/", 1)[-1]
            where = f"Bundle.entry[{index}].resource.relatesTo"
            if rtype != "DocumentReference" or not rid:
                raise _refused(where, f"relatesTo.target {target!r} is not a DocumentReference")
            old = tx.read("DocumentReference", rid)
            if old is None or old.deleted or old.resource is None:
                raise _refused(
                    where, f"the replaced document {target} is not known", Category.NOT_FOUND
                )
            if _subject(old.resource) != _subject(new):
                raise _refused(
                    where,
                    f"the replaced document {target} belongs to another patient "
                    f"({_subject(old.resource)}, not {_subject(new)})",
                )
            if f"DocumentReference/{rid}" in plan.patched:
                continue  # the bundle PATCHes it itself (the MHD replace example)
            if old.resource.get("status") != "current":
                raise _refused(
                    where,
                    f"the replaced document {target} is {old.resource.get('status')}, not "
                    "current: only a current document can be replaced",
                )
            ix.update(
                ctx,
                tx,
                "DocumentReference",
                rid,
                lifecycle.superseded(old.resource),
                f'W/"{old.version}"',
            )

    return after


def _subject(resource: Mapping[str, Any]) -> str | None:
    subject = resource.get("subject")
    ref = subject.get("reference") if isinstance(subject, Mapping) else None
    return ref if isinstance(ref, str) else None


def _refused(where: str, message: str, category: Category = Category.UNPROCESSABLE) -> FhirError:
    return FhirError(category, message, [Issue("error", "business-rule", message, (where,))])
