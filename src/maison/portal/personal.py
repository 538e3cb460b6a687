"""A document the patient adds to his own record (« document déposé par le patient »): a PDF
filed with a DMP type of the patient's own (TRE_A05 ``DOCPAT…``/``EXPPAT…``), its class from
ASS_X16, the patient as author and « Expression personnelle du patient » (TRE_A00
``EXP_PATIENT``) as facility type and practice setting, fed with ITI-65 under his own token.

https://profiles.ihe.net/ITI/MHD/ITI-65.html, https://interop.esante.gouv.fr/ig/fhir/pdsm/
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from starlette.responses import Response
from starlette.routing import Route

from maison.portal.fhir_client import ApiError
from maison.portal.pdf_form import read_pdf_form
from maison.portal.professional import class_of, document_types
from maison.portal.upload import A11, PDSM_BUNDLE, PORTAL_SOURCE_ID
from maison.portal.web import PREFIX, Ctx, FormError, Redirect, Web
from maison.services.dmp.cda_build import MHD_IDENTIFIER, submission_set
from maison.services.dmp.metadata import nos_url
from maison.services.dmp.provide import DOCUMENT_PROFILE

A00: Final = nos_url("TRE_A00-ProducteurDocNonPS")
A08: Final = nos_url("TRE_A08-HL7Confidentiality")
#: The patient's own document types (TRE_A05): deposited by him, or his personal expression.
PATIENT_TYPES: Final = re.compile(r"(DOCPAT|EXPPAT)[_0-9]*")
PARIS: Final = ZoneInfo("Europe/Paris")
#: The raw PDF's format code (TRE_A11): a PDF/A-1 document, as the PDSm examples file PDFs.
PDF_FORMAT: Final = "urn:ihe:iti:xds-sd:pdf:2008"


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def patient_submission(
    patient: str,
    pdf: bytes,
    *,
    type_coding: tuple[str, str, str],
    class_coding: tuple[str, str, str],
    title: str,
    service_date: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ITI-65 transaction of one PDF the patient adds to his record (``patient`` is
    ``Patient/id``): https://profiles.ihe.net/ITI/MHD/ITI-65.html."""
    if not pdf.startswith(b"%PDF-"):
        raise ValueError("Le fichier n'est pas un PDF.")
    created = (now or datetime.now(PARIS)).isoformat(timespec="seconds")
    sub_url, doc_url, bin_url = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    personal = _coding(A00, "EXP_PATIENT", "Expression personnelle du patient")
    document = {
        "resourceType": "DocumentReference",
        "meta": {"profile": [DOCUMENT_PROFILE]},
        "masterIdentifier": {
            "type": {"coding": [{"system": MHD_IDENTIFIER, "code": "uniqueId"}]},
            "system": "urn:ietf:rfc:3986",
            "value": f"urn:oid:2.25.{uuid.uuid4().int}",
        },
        "identifier": [
            {
                "use": "official",
                "type": {"coding": [{"system": MHD_IDENTIFIER, "code": "entryUUID"}]},
                "system": "urn:ietf:rfc:3986",
                "value": doc_url,
            }
        ],
        "status": "current",
        "type": {"coding": [_coding(*type_coding)]},
        "category": [{"coding": [_coding(*class_coding)]}],
        "subject": {"reference": patient},
        "date": created,
        "author": [{"reference": patient}],
        "securityLabel": [{"coding": [_coding(A08, "N", "Normal")]}],
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "language": "fr-FR",
                    "url": bin_url,
                    "size": len(pdf),
                    "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode(),
                    "title": title,
                    "creation": created,
                },
                "format": {"system": A11, "code": PDF_FORMAT},
            }
        ],
        "context": {
            "period": {"start": service_date},
            "facilityType": {"coding": [personal]},
            "practiceSetting": {"coding": [personal]},
        },
    }
    submission = submission_set(
        {"reference": patient},
        {"reference": patient},
        personal,
        f"urn:oid:{PORTAL_SOURCE_ID}",
        sub_url,
        [doc_url],
        created,
    )
    binary = {
        "resourceType": "Binary",
        "contentType": "application/pdf",
        "securityContext": {"reference": patient},  # the record it belongs to
        "data": base64.b64encode(pdf).decode(),
    }
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [PDSM_BUNDLE]},
        "type": "transaction",
        "entry": [
            {
                "fullUrl": sub_url,
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
                "resource": binary,
                "request": {"method": "POST", "url": "Binary"},
            },
        ],
    }


async def patient_types(ctx: Ctx) -> list[tuple[str, str, str]]:
    """The DMP types (JDV_J66) a patient files his own documents under."""

    return [t for t in await document_types(ctx) if PATIENT_TYPES.fullmatch(t[1])]


async def add_page(ctx: Ctx, error: str | None = None, status: int = 200) -> Response:
    """The form that adds one of my documents."""
    return ctx.render(
        "patient/ajout.html", status, title="Ajouter un document", types=await patient_types(ctx),
        error=error,
    )  # fmt: skip


async def add(ctx: Ctx) -> Response:
    """Check the form on the server and feed the document (ITI-65) with my token."""

    assert ctx.session is not None
    pid = str((ctx.session.get("user") or {}).get("patient"))
    try:
        sent = await read_pdf_form(ctx)
    except FormError as error:
        return await add_page(ctx, error.message, error.status)
    form, data, title, day = sent.fields, sent.data, sent.title, sent.day
    types = {f"{s}|{c}": (s, c, d) for s, c, d in await patient_types(ctx)}
    chosen = types.get(str(form.get("type", "")))
    if chosen is None:
        return await add_page(ctx, "Choisissez le type du document dans la liste.", 400)
    klass = await class_of(ctx, chosen[0], chosen[1])
    if klass is None:
        return await add_page(ctx, "La classe de ce type de document est inconnue (ASS_X16).", 422)
    bundle = patient_submission(
        f"Patient/{pid}", data, type_coding=chosen, class_coding=klass, title=title,
        service_date=day,
    )  # fmt: skip
    try:
        await ctx.api("POST", "/", json=bundle)
    except ApiError as error:
        if 400 <= error.status < 500:
            return await add_page(ctx, f"Le document est refusé : {error.message}", error.status)
        raise
    ctx.session.pop(f"categories:{pid}")
    ctx.session.set("notice", f"Votre document « {title} » est ajouté à votre dossier.")
    raise Redirect(f"{PREFIX}/patient/")


def routes(web: Web) -> list[Route]:
    """The patient's own documents."""
    return [
        Route("/patient/ajouter", web.page(add_page, space="patient"), methods=["GET"]),
        Route("/patient/ajouter", web.page(add, space="patient"), methods=["POST"]),
    ]


__all__ = ["patient_submission", "routes"]
