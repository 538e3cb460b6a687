"""Certificate-bound tokens at the resource server (RFC 8705 §3): the bound thumbprint, the
certificate a trusted proxy forwards, and the refusals."""

from __future__ import annotations

from urllib.parse import quote, unquote

import pytest

from maison.fhir.errors import Category, FhirError
from maison.security import pki
from maison.security.binding import bound_thumbprint, check_binding, presented_thumbprint


@pytest.fixture(scope="module")
def certificates() -> tuple[str, str]:
    """Two organisation certificates of the test CA, as a proxy forwards them."""
    ca = pki.create_intermediate(pki.create_root())
    one = pki.issue_organisation(ca, "Clinique A", finess="750000001").certificate
    two = pki.issue_organisation(ca, "Clinique B", siret="12345678901234").certificate
    return quote(pki.certificate_pem(one).decode()), quote(pki.certificate_pem(two).decode())


def test_only_a_trusted_proxy_header_gives_a_thumbprint(certificates: tuple[str, str]) -> None:
    one, _ = certificates
    assert presented_thumbprint(one, trusted=False) is None
    thumb = presented_thumbprint(one, trusted=True)
    (cert,) = pki.parse_certificates(unquote(one).encode())
    assert thumb == pki.x5t_s256(cert)
    assert presented_thumbprint("not%20a%20certificate", trusted=True) is None
    assert presented_thumbprint(None, trusted=True) is None


def test_a_bound_token_needs_its_certificate(certificates: tuple[str, str]) -> None:
    one, two = certificates
    thumb = presented_thumbprint(one, trusted=True)
    claims = {"sub": "810001234567", "cnf": {"x5t#S256": thumb}}
    assert bound_thumbprint(claims) == thumb
    check_binding(claims, thumb)  # its own certificate: accepted
    for presented in (None, presented_thumbprint(two, trusted=True)):
        with pytest.raises(FhirError) as err:
            check_binding(claims, presented)
        assert err.value.category == Category.UNAUTHORIZED
        assert "RFC 8705" in str(err.value)
    unbound = {"sub": "810001234567"}
    assert bound_thumbprint(unbound) is None
    check_binding(unbound, None)  # an unbound token needs no certificate
    assert bound_thumbprint({"cnf": {"jkt": "x"}}) is None and bound_thumbprint({"cnf": 3}) is None
