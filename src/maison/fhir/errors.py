"""Errors as values with a category, turned into an OperationOutcome at one edge.

https://hl7.org/fhir/R4/operationoutcome.html
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    """What kind of failure an error is; the API maps each to one HTTP status."""

    INVALID = "invalid"  # 400: malformed request or resource
    UNPROCESSABLE = "unprocessable"  # 422: well-formed but fails validation rules
    NOT_FOUND = "not-found"  # 404
    GONE = "gone"  # 410: deleted
    CONFLICT = "conflict"  # 409
    PRECONDITION = "precondition"  # 412: If-Match / conditional with several matches
    UNAUTHORIZED = "unauthorized"  # 401
    FORBIDDEN = "forbidden"  # 403
    NOT_SUPPORTED = "not-supported"  # 400/405: interaction or parameter not supported
    METHOD_NOT_ALLOWED = "method-not-allowed"  # 405
    TOO_LARGE = "too-large"  # 413
    URI_TOO_LONG = "uri-too-long"  # 414
    RANGE = "range"  # 416: a byte range outside the content
    MEDIA_TYPE = "media-type"  # 415
    NOT_ACCEPTABLE = "not-acceptable"  # 406
    TIMEOUT = "timeout"  # 503 (statement timeout)
    INTERNAL = "internal"  # 500: never expected


# OperationOutcome.issue.code (http://hl7.org/fhir/issue-type) for each category
ISSUE_CODE: dict[Category, str] = {
    Category.INVALID: "invalid",
    Category.UNPROCESSABLE: "processing",
    Category.NOT_FOUND: "not-found",
    Category.GONE: "deleted",
    Category.CONFLICT: "conflict",
    Category.PRECONDITION: "conflict",
    Category.UNAUTHORIZED: "login",
    Category.FORBIDDEN: "forbidden",
    Category.NOT_SUPPORTED: "not-supported",
    Category.METHOD_NOT_ALLOWED: "not-supported",
    Category.TOO_LARGE: "too-costly",
    Category.URI_TOO_LONG: "too-costly",
    Category.RANGE: "invalid",
    Category.MEDIA_TYPE: "not-supported",
    Category.NOT_ACCEPTABLE: "not-supported",
    Category.TIMEOUT: "timeout",
    Category.INTERNAL: "exception",
}


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: https://hl7.org/fhir/R4/operationoutcome-definitions.html."""

    severity: str  # fatal | error | warning | information
    code: str  # http://hl7.org/fhir/issue-type
    diagnostics: str
    expression: tuple[str, ...] = ()
    #: machine-readable detail codes, (system, code) pairs (e.g. the access rule applied)
    details: tuple[tuple[str, str], ...] = ()

    def to_fhir(self) -> dict[str, Any]:
        """Render as an OperationOutcome.issue element."""
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
        }
        if self.details:
            out["details"] = {
                "coding": [{"system": system, "code": code} for system, code in self.details]
            }
        out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = list(self.expression)
        return out


@dataclass
class FhirError(Exception):
    """A failure with a category and the issues that explain it to a person."""

    category: Category
    message: str
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # HTTP headers the answer carries

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.issues:
            self.issues = [Issue("error", ISSUE_CODE[self.category], self.message)]

    def outcome(self) -> dict[str, Any]:
        """The OperationOutcome resource for this error."""
        return operation_outcome(self.issues)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """Build an OperationOutcome: https://hl7.org/fhir/R4/operationoutcome.html."""
    if not issues:
        issues = [Issue("information", "informational", "All OK")]
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def invalid(message: str, expression: str | None = None) -> FhirError:
    """A 400 error for malformed input."""
    expr = (expression,) if expression else ()
    return FhirError(Category.INVALID, message, [Issue("error", "invalid", message, expr)])


def not_found(message: str) -> FhirError:
    """A 404 error."""
    return FhirError(Category.NOT_FOUND, message)
