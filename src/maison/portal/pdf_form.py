"""The form that adds a PDF to a record (the patient's own document, a professional's report),
checked on the server: a file that is a PDF and not too large, a title, a date not in the future.

https://developer.mozilla.org/docs/Web/HTML/Element/input/file
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from maison.portal.web import Ctx, FormError

#: The largest PDF the portal takes.
MAX_PDF: Final = 20 * 1024 * 1024
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class PdfForm:
    """A checked form: the PDF, its title and date, and the other fields as sent."""

    data: bytes
    title: str
    day: str
    fields: Any


async def read_pdf_form(ctx: Ctx, what: str = "du document") -> PdfForm:
    """The form's PDF, title and date, or a :class:`FormError` saying what to fix (with the
    HTTP status: 400, 413 too large, 415 not a PDF)."""
    form = await ctx.request.form()
    upload = form.get("fichier")
    if upload is None or isinstance(upload, str) or not upload.filename:
        raise FormError("Choisissez le fichier PDF à ajouter.", 400)
    data = await upload.read(MAX_PDF + 1)
    if len(data) > MAX_PDF:
        raise FormError("Le fichier est trop volumineux (20 Mo au plus).", 413)
    if not data.startswith(b"%PDF-"):
        raise FormError("Le fichier n'est pas un PDF.", 415)
    title = str(form.get("titre", "")).strip()
    if not 3 <= len(title) <= 200:
        raise FormError("Donnez un titre au document (3 à 200 caractères).", 400)
    day = str(form.get("date", "")).strip()
    if not _DAY.fullmatch(day) or day > date.today().isoformat():
        raise FormError(f"Indiquez la date {what} (AAAA-MM-JJ, pas dans le futur).", 400)
    return PdfForm(data, title, day, form)
