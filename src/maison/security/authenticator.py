"""The seam the API calls to turn an Authorization header into a Principal.

https://www.rfc-editor.org/rfc/rfc6750#section-2.1
"""

from __future__ import annotations

from typing import Protocol

from maison.security.principal import Principal


class Authenticator(Protocol):
    """Authenticates a request; raises FhirError(UNAUTHORIZED) when it cannot."""

    def authenticate(self, authorization_header: str | None, now: float | None = None) -> Principal:
        """The caller behind `Authorization: Bearer ...`: https://www.rfc-editor.org/rfc/rfc6750#section-2.1."""
        ...
