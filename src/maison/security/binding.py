"""Certificate-bound access tokens at the resource server (RFC 8705 §3): a token whose
``cnf`` names a client certificate thumbprint (``x5t#S256``) is only accepted from a request
that presents that certificate. The certificate reaches the application from a trusted
TLS-terminating proxy (``X-Client-Cert``, URL-encoded PEM as nginx's
``$ssl_client_escaped_cert``), and only when the operator says the proxy is trusted.

https://www.rfc-editor.org/rfc/rfc8705#section-3
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from maison.fhir.errors import Category, FhirError
from maison.security import pki

#: The header a trusted TLS proxy forwards the client certificate in.
CERT_HEADER = "x-client-cert"
_MAX_HEADER = 64 * 1024


def bound_thumbprint(claims: Mapping[str, Any]) -> str | None:
    """The ``x5t#S256`` a token is bound to, None for an unbound token
    (https://www.rfc-editor.org/rfc/rfc8705#section-3.1)."""
    cnf = claims.get("cnf")
    value = cnf.get("x5t#S256") if isinstance(cnf, Mapping) else None
    return value if isinstance(value, str) and value else None


def presented_thumbprint(header: str | None, trusted: bool) -> str | None:
    """The ``x5t#S256`` of the certificate a trusted proxy forwarded, None when there is none
    or the proxy is not trusted (https://www.rfc-editor.org/rfc/rfc8705#section-3.1)."""
    if not trusted or not header or not header.strip() or len(header) > _MAX_HEADER:
        return None
    try:
        certs = pki.parse_certificates(unquote(header).encode("ascii"), "the client certificate")
    except (pki.CertificateError, pki.PkiError, ValueError):
        return None
    return pki.x5t_s256(certs[0]) if certs else None


def check_binding(claims: Mapping[str, Any], presented: str | None) -> None:
    """Refuse a certificate-bound token used without its certificate (401, the reason said;
    https://www.rfc-editor.org/rfc/rfc8705#section-3)."""
    bound = bound_thumbprint(claims)
    if bound is None:
        return
    if presented is None:
        raise FhirError(
            Category.UNAUTHORIZED,
            "This access token is bound to a client certificate (RFC 8705): the request must "
            "come over mutual TLS with that certificate",
        )
    if not hmac.compare_digest(bound, presented):
        raise FhirError(
            Category.UNAUTHORIZED,
            "The client certificate of this request is not the one the access token is bound "
            "to (RFC 8705)",
        )


__all__ = ["CERT_HEADER", "bound_thumbprint", "check_binding", "presented_thumbprint"]
