"""The one place where error values become HTTP statuses and OperationOutcome bodies.

https://hl7.org/fhir/R4/http.html#Status-Codes
"""

from __future__ import annotations

from maison.fhir.errors import Category, FhirError

STATUS: dict[Category, int] = {
    Category.INVALID: 400,
    Category.UNPROCESSABLE: 422,
    Category.NOT_FOUND: 404,
    Category.GONE: 410,
    Category.CONFLICT: 409,
    Category.PRECONDITION: 412,
    Category.UNAUTHORIZED: 401,
    Category.FORBIDDEN: 403,
    Category.NOT_SUPPORTED: 400,
    Category.METHOD_NOT_ALLOWED: 405,
    Category.TOO_LARGE: 413,
    Category.URI_TOO_LONG: 414,
    Category.RANGE: 416,
    Category.MEDIA_TYPE: 415,
    Category.NOT_ACCEPTABLE: 406,
    Category.TIMEOUT: 503,
    Category.INTERNAL: 500,
}


def status_of(error: FhirError) -> int:
    """The HTTP status for an error category."""
    return STATUS[error.category]
