"""IHE MHD Provide Document Bundle [ITI-65] as the ANS PDSm guide profiles it, for the DMP.

A Provide Document Bundle is a ``transaction`` holding one SubmissionSet ``List``, one or more
``DocumentReference``, the ``Binary`` each new document's ``attachment.url`` points at, and
optional Folder ``List``s (PDSm_ComprehensiveProvideDocumentBundle). This module reads such a
bundle and says, before anything is written, what the Document Recipient must store and check:

* the bundle's shape: exactly one SubmissionSet; every DocumentReference in it; every new
  document's content a ``Binary`` of the bundle (PDSm: "doit pointer vers une ressource Binary
  présente dans le bundle"), each Binary the content of exactly one document, with the
  attachment's ``contentType``;
* one patient: the SubmissionSet, the documents and the folders name the same ``subject``;
* the content: ``attachment.size`` and ``attachment.hash`` (base64 SHA-1, both required by
  PDSm) match the Binary's bytes — checked again while the bytes are stored;
* the replacements: ``relatesTo`` ``replaces`` targets, which the Recipient makes
  ``superseded`` in the same transaction.

Pure: no I/O. The DMP metadata rules (value sets, type→class) are in :mod:`metadata`.

https://profiles.ihe.net/ITI/MHD/ITI-65.html and
https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition-pdsm-comprehensive-provide-document-bundle.html
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from maison.fhir import base64binary
from maison.fhir.errors import Category, FhirError, Issue

MHD_LIST_TYPES: Final = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
PROVIDE_PROFILES: Final = frozenset(
    {
        "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.ProvideBundle",
        "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Minimal.ProvideBundle",
        "https://profiles.ihe.net/ITI/MHD/StructureDefinition/"
        "IHE.MHD.UnContained.Comprehensive.ProvideBundle",
        "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
        "pdsm-comprehensive-provide-document-bundle",
    }
)
#: The PDSm profiles each resource of a Provide Document Bundle is validated against.
PDSM: Final = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
DOCUMENT_PROFILE: Final = f"{PDSM}pdsm-comprehensive-document-reference"
SUBMISSION_SET_PROFILE: Final = f"{PDSM}pdsm-submissionset-comprehensive"
FOLDER_PROFILE: Final = f"{PDSM}pdsm-folder-comprehensive"
SIMPLIFIED_PROFILE: Final = f"{PDSM}pdsm-simplified-publish"
#: Largest Binary.data (decoded) a bundle may carry inline; larger documents are refused with
#: the limit named (the HTTP body limit applies first).
MAX_INLINE_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True)
class Payload:
    """The content of one new document: a Binary of the bundle, to store outside the
    resource table."""

    binary_index: int  # Bundle.entry index of the Binary
    document_index: int  # Bundle.entry index of the DocumentReference pointing at it
    content_type: str
    data: bytes
    size: int | None  # attachment.size
    sha1: bytes | None  # attachment.hash, decoded


@dataclass(frozen=True)
class Upload:
    """A new document whose content was streamed beforehand (``POST Binary`` with the raw
    document, for documents too large to travel base64 in JSON): its attachment names the
    uploaded ``Binary/<id>``, which must not be any other document's content yet."""

    document_index: int
    binary_id: str
    content_type: str
    size: int | None
    sha1: bytes | None


@dataclass
class ProvidePlan:
    """What a Provide Document Bundle asks the Document Recipient to do."""

    submission_set: int
    documents: list[int]
    folders: list[int]
    payloads: list[Payload]
    patient: str | None  # the subject reference every resource names
    replaces: list[tuple[int, str]] = field(default_factory=list)  # (document, target ref)
    patched: set[str] = field(default_factory=set)  # DocumentReference refs the bundle PATCHes
    uploads: list[Upload] = field(default_factory=list)  # content streamed beforehand


def _list_code(resource: Mapping[str, Any]) -> str | None:
    code = resource.get("code")
    for coding in code.get("coding", []) if isinstance(code, Mapping) else []:
        if isinstance(coding, Mapping) and coding.get("system") == MHD_LIST_TYPES:
            value = coding.get("code")
            return value if isinstance(value, str) else None
    return None


def _profiles(resource: Mapping[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, Mapping) else None
    return [p for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


def is_provide_bundle(bundle: Any) -> bool:
    """Whether a transaction Bundle is an ITI-65 Provide Document Bundle: it declares an MHD or
    PDSm ProvideBundle profile, or holds a SubmissionSet List (https://profiles.ihe.net/ITI/MHD/ITI-65.html)."""
    if not isinstance(bundle, Mapping) or bundle.get("type") != "transaction":
        return False
    if PROVIDE_PROFILES & set(_profiles(bundle)):
        return True
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if (
            isinstance(resource, Mapping)
            and resource.get("resourceType") == "List"
            and _list_code(resource) == "submissionset"
        ):
            return True
    return False


SIMPLIFIED_PROFILES: Final = frozenset(
    {
        SIMPLIFIED_PROFILE,
        "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.SimplifiedPublish.DocumentReference",
    }
)


def is_simplified_publish(resource: Any) -> bool:
    """Whether a POSTed DocumentReference is an ITI-105 Simplified Publish: it declares the
    PDSm or MHD Simplified Publish profile (https://profiles.ihe.net/ITI/MHD/ITI-105.html)."""
    return (
        isinstance(resource, Mapping)
        and resource.get("resourceType") == "DocumentReference"
        and bool(SIMPLIFIED_PROFILES & set(_profiles(resource)))
    )


def _refuse(
    index: int, where: str, message: str, category: Category = Category.INVALID
) -> NoReturn:
    path = f"Bundle.entry[{index}].resource{where}"
    raise FhirError(
        category,
        f"Bundle.entry[{index}]: {message}",
        [
            Issue(
                "error",
                "invalid" if category is Category.INVALID else "processing",
                message,
                (path,),
            )
        ],
    )


def _subject(resource: Mapping[str, Any]) -> str | None:
    """The patient a resource names: its reference, or ``system|value`` of a logical one."""
    subject = resource.get("subject")
    if not isinstance(subject, Mapping):
        return None
    ref = subject.get("reference")
    if isinstance(ref, str):
        return ref
    ident = subject.get("identifier")
    if isinstance(ident, Mapping) and isinstance(ident.get("value"), str):
        return f"{ident.get('system', '')}|{ident['value']}"
    return None


def decode_hash(value: Any) -> bytes | None:
    """``attachment.hash`` (base64Binary of a SHA-1) decoded; None when absent; raises
    ValueError when it is not 20 bytes of base64 (https://hl7.org/fhir/R4/datatypes.html#Attachment)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("attachment.hash must be a base64 string")
    try:
        raw = base64binary.decode(value)
    except (binascii.Error, ValueError):
        raise ValueError("attachment.hash is not valid base64") from None
    if len(raw) != 20:
        raise ValueError(f"attachment.hash is {len(raw)} bytes; a SHA-1 is 20 bytes")
    return raw


def check_content(data: bytes, size: int | None, sha1: bytes | None) -> str | None:
    """Why ``data`` does not match its attachment's ``size`` and ``hash``, or None
    (https://hl7.org/fhir/R4/datatypes.html#Attachment)."""
    return check_sizes(len(data), hashlib.sha1(data).digest(), size, sha1)


def check_sizes(
    actual_size: int, actual_sha1: bytes, size: int | None, sha1: bytes | None
) -> str | None:
    """Why a document of ``actual_size`` bytes and SHA-1 ``actual_sha1`` does not match its
    attachment's ``size`` and ``hash``, or None (https://hl7.org/fhir/R4/datatypes.html#Attachment)."""
    if size is not None and size != actual_size:
        return f"attachment.size says {size:,} bytes but the document has {actual_size:,}"
    if sha1 is not None and actual_sha1 != sha1:
        return "attachment.hash (SHA-1) does not match the document's content"
    return None


def plan(bundle: Mapping[str, Any]) -> ProvidePlan:
    """Read a Provide Document Bundle into what must be stored and checked; raises FhirError
    (400 or 422) naming the failing entry (https://profiles.ihe.net/ITI/MHD/ITI-65.html#2365412-expected-actions)."""
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise FhirError(Category.INVALID, "The Provide Document Bundle has no entries")
    submission: list[int] = []
    documents: list[int] = []
    folders: list[int] = []
    binaries: dict[str, int] = {}
    patched: set[str] = set()
    by_index: dict[int, Mapping[str, Any]] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            continue
        resource = entry.get("resource")
        request = entry.get("request")
        method = request.get("method") if isinstance(request, Mapping) else None
        url = request.get("url") if isinstance(request, Mapping) else None
        if method == "PATCH" and isinstance(url, str) and url.startswith("DocumentReference/"):
            patched.add(url.split("?")[0])
            continue
        if not isinstance(resource, Mapping):
            continue
        by_index[i] = resource
        kind = resource.get("resourceType")
        if kind == "List":
            code = _list_code(resource)
            if code == "submissionset":
                submission.append(i)
            elif code == "folder":
                folders.append(i)
            else:
                _refuse(
                    i,
                    ".code",
                    "a List of a Provide Document Bundle is a SubmissionSet or a Folder "
                    f"(code submissionset or folder of {MHD_LIST_TYPES})",
                )
        elif kind == "DocumentReference":
            documents.append(i)
        elif kind == "Binary":
            full_url = entry.get("fullUrl")
            if not isinstance(full_url, str) or not full_url:
                _refuse(i, "", "a Binary of a Provide Document Bundle needs a fullUrl")
            binaries[str(full_url)] = i
    if len(submission) != 1:
        raise FhirError(
            Category.INVALID,
            f"A Provide Document Bundle holds exactly one SubmissionSet List; this one has "
            f"{len(submission)}",
        )
    if not documents:
        raise FhirError(
            Category.INVALID, "A Provide Document Bundle holds at least one DocumentReference"
        )
    patient = _subject(by_index[submission[0]])
    for i in [*documents, *folders]:
        subject = _subject(by_index[i])
        if subject is None:
            _refuse(i, ".subject", "the document or folder names no patient (subject)")
        if patient is not None and subject != patient:
            _refuse(
                i,
                ".subject",
                f"the patient {subject} is not the SubmissionSet's {patient}: a Provide "
                "Document Bundle is about one patient",
                Category.UNPROCESSABLE,
            )
        patient = patient or subject
    payloads: list[Payload] = []
    uploads: list[Upload] = []
    used: dict[str, int] = {}
    replaces: list[tuple[int, str]] = []
    for i in documents:
        doc = by_index[i]
        for relation in doc.get("relatesTo") or []:
            target = relation.get("target") if isinstance(relation, Mapping) else None
            ref = target.get("reference") if isinstance(target, Mapping) else None
            if relation.get("code") == "replaces" and isinstance(ref, str):
                replaces.append((i, ref))
        contents = doc.get("content")
        if not isinstance(contents, list) or not contents:
            _refuse(i, ".content", "the document has no content")
        for c, content in enumerate(contents):
            attachment = content.get("attachment") if isinstance(content, Mapping) else None
            if not isinstance(attachment, Mapping):
                _refuse(i, f".content[{c}].attachment", "the content has no attachment")
                continue
            url = attachment.get("url")
            where = f".content[{c}].attachment"
            uploaded = _uploaded(url)
            if uploaded is not None:  # content streamed beforehand (POST Binary, raw)
                uploads.append(_upload(i, uploaded, attachment, where))
                continue
            if not isinstance(url, str) or url not in binaries:
                _refuse(
                    i,
                    f"{where}.url",
                    f"attachment.url {url!r} does not point at a Binary of the bundle: a new "
                    "document's content travels in the Provide Document Bundle (PDSm)",
                )
            url = str(url)
            if url in used:
                _refuse(
                    i,
                    f"{where}.url",
                    f"the Binary {url} is already the content of Bundle.entry[{used[url]}]",
                )
            used[url] = i
            b = binaries[url]
            payloads.append(_payload(b, by_index[b], i, attachment, where))
    unused = set(binaries) - set(used)
    if unused:
        b = binaries[sorted(unused)[0]]
        _refuse(b, "", "this Binary is the content of no DocumentReference of the bundle")
    return ProvidePlan(
        submission_set=submission[0],
        documents=documents,
        folders=folders,
        payloads=payloads,
        patient=patient,
        replaces=replaces,
        patched=patched,
        uploads=uploads,
    )


def _uploaded(url: Any) -> str | None:
    """The Binary id of an ``attachment.url`` naming a stored Binary (``Binary/<id>``)."""
    if not isinstance(url, str) or not url.startswith("Binary/"):
        return None
    rid = url.removeprefix("Binary/")
    ok = 0 < len(rid) <= 64 and all(c.isascii() and (c.isalnum() or c in "-.") for c in rid)
    return rid if ok else None


def _declared(
    doc: int, attachment: Mapping[str, Any], where: str
) -> tuple[str, int | None, bytes | None]:
    """An attachment's ``contentType`` (required), ``size`` and decoded SHA-1 ``hash``."""
    content_type = attachment.get("contentType")
    if not isinstance(content_type, str) or not content_type:
        _refuse(doc, f"{where}.contentType", "attachment.contentType is required")
    size = attachment.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        _refuse(doc, f"{where}.size", "attachment.size must be a non-negative integer")
    try:
        sha1 = decode_hash(attachment.get("hash"))
    except ValueError as error:
        _refuse(doc, f"{where}.hash", str(error))
    return content_type, size, sha1


def _upload(doc: int, binary_id: str, attachment: Mapping[str, Any], where: str) -> Upload:
    content_type, size, sha1 = _declared(doc, attachment, where)
    return Upload(doc, binary_id, content_type, size, sha1)


def _payload(
    b: int, binary: Mapping[str, Any], doc: int, attachment: Mapping[str, Any], where: str
) -> Payload:
    content_type, size, sha1 = _declared(doc, attachment, where)
    if binary.get("contentType") != content_type:
        _refuse(
            b,
            ".contentType",
            f"the Binary's contentType {binary.get('contentType')!r} is not the attachment's "
            f"{content_type!r}",
        )
    raw = binary.get("data")
    if not isinstance(raw, str):
        _refuse(b, ".data", "the Binary carries no data")
    if len(raw) > MAX_INLINE_BYTES * 4 // 3 + 4:
        _refuse(
            b,
            ".data",
            f"the document is larger than the {MAX_INLINE_BYTES:,} bytes a bundle may carry",
            Category.TOO_LARGE,
        )
    try:
        data = base64binary.decode(raw)
    except (binascii.Error, ValueError):
        _refuse(b, ".data", "Binary.data is not valid base64")
    problem = check_content(data, size, sha1)
    if problem is not None:
        _refuse(doc, f"{where}", problem, Category.UNPROCESSABLE)
    return Payload(b, doc, content_type, data, size, sha1)


def find_documents_query(
    params: list[tuple[str, str]], require_patient: bool, service_date: str = "period-start"
) -> list[tuple[str, str]]:
    """A Find Document References [ITI-67] query as it runs: a professional's names the patient
    (MHD: ``patient`` or ``patient.identifier`` is required; the DMP is consulted one patient
    at a time), and results come by service date (``service_date``: the PDSm ``period-start``
    parameter), latest first, unless ``_sort`` says otherwise (https://profiles.ihe.net/ITI/MHD/ITI-67.html#2367411-query-search-parameters)."""
    named = any(k.split(":")[0].split(".")[0] in ("patient", "subject") for k, _ in params)
    if require_patient and not named and not any(k == "_id" for k, _ in params):
        message = (
            "Find Document References (ITI-67) names the patient: add patient=Patient/… or "
            "patient.identifier=urn:oid:1.2.250.1.213.1.4.8|<INS> (and status=current)"
        )
        raise FhirError(Category.INVALID, message, [Issue("error", "required", message)])
    if not any(k == "_sort" for k, _ in params):
        params = [*params, ("_sort", f"-{service_date}")]
    return params
