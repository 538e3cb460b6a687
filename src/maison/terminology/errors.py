"""The one error type of the terminology operations: a category (hence an HTTP status at the
API edge) and a FHIR issue code, with a message a person understands.

https://hl7.org/fhir/R4/terminology-service.html (errors as OperationOutcome)
"""

from __future__ import annotations

from maison.fhir.errors import Category, FhirError, Issue


class TerminologyError(FhirError):
    """A terminology operation that cannot answer: unknown value set or code system, circular
    includes, missing parameters, too costly an expansion
    (https://hl7.org/fhir/R4/valueset-operation-expand.html)."""

    def __init__(
        self, category: Category, code: str, message: str, expression: str | None = None
    ) -> None:
        expr = (expression,) if expression else ()
        super().__init__(category, message, [Issue("error", code, message, expr)])

    @property
    def code(self) -> str:
        """The ``OperationOutcome.issue.code`` (http://hl7.org/fhir/issue-type)."""
        return self.issues[0].code


def missing(operation: str, what: str) -> TerminologyError:
    """A required input is absent (https://hl7.org/fhir/R4/operations.html)."""
    return TerminologyError(Category.INVALID, "required", f"${operation}: {what}")


def bad_input(operation: str, what: str) -> TerminologyError:
    """An input makes no sense (https://hl7.org/fhir/R4/operations.html)."""
    return TerminologyError(Category.INVALID, "invalid", f"${operation}: {what}")


def unknown_value_set(url: str, version: str | None = None) -> TerminologyError:
    """The value set is not held (https://hl7.org/fhir/R4/valueset.html)."""
    which = f"{url}|{version}" if version else url
    return TerminologyError(
        Category.NOT_FOUND,
        "not-found",
        f"The value set {which} is not known to this server (install it with "
        "`maison ig install` or `maison terminology load`)",
    )


def unknown_code_system(
    url: str, version: str | None = None, held: str | None = None
) -> TerminologyError:
    """The code system (or this version of it) is not held (https://hl7.org/fhir/R4/codesystem.html)."""
    if version:
        message = f"Version {version} of the code system {url} is not known to this server"
        if held:
            message += f" (held: {held})"
    else:
        message = (
            f"The code system {url} is not known to this server (load it with "
            "`maison terminology load` or install the guide that defines it)"
        )
    return TerminologyError(Category.NOT_FOUND, "not-found", message)


def unknown_concept_map(url: str) -> TerminologyError:
    """The concept map is not held (https://hl7.org/fhir/R4/conceptmap.html)."""
    return TerminologyError(
        Category.NOT_FOUND, "not-found", f"The concept map {url} is not known to this server"
    )


def too_costly(message: str) -> TerminologyError:
    """An expansion bigger than the server returns at once
    (https://hl7.org/fhir/R4/valueset-operation-expand.html)."""
    return TerminologyError(Category.UNPROCESSABLE, "too-costly", message)


def cannot_expand(message: str) -> TerminologyError:
    """A value set whose definition cannot be evaluated (circular includes, a system held
    without its concepts, an unsupported filter): https://hl7.org/fhir/R4/valueset.html#compositions."""
    return TerminologyError(Category.UNPROCESSABLE, "processing", message)


def not_supported(message: str) -> TerminologyError:
    """A filter or option this server does not implement
    (https://hl7.org/fhir/R4/valueset.html#compositions)."""
    return TerminologyError(Category.NOT_SUPPORTED, "not-supported", message)


__all__ = [
    "TerminologyError",
    "bad_input",
    "cannot_expand",
    "missing",
    "not_supported",
    "too_costly",
    "unknown_code_system",
    "unknown_concept_map",
    "unknown_value_set",
]
