"""The local test PKI: chains that verify, certificates that must not, the organisation identity
a relying party reads, the RFC 8705 thumbprint, and a real mutual-TLS handshake.

https://www.rfc-editor.org/rfc/rfc5280#section-6 · https://www.rfc-editor.org/rfc/rfc8705
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import stat
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from maison.security.pki import (
    CA_BUNDLE,
    ORGANISATIONS_KEY,
    ROOT_CERT,
    ROOT_KEY,
    Authority,
    CertificateError,
    Issued,
    PkiError,
    create_intermediate,
    create_root,
    init_authority,
    issue_organisation,
    issue_server,
    load_authority,
    load_certificates,
    organisation_of,
    organisation_stem,
    parse_certificates,
    save_end_entity,
    server_stem,
    verify_chain,
    x5t_s256,
)

FINESS = "750712184"  # AP-HP (a real FINESS EJ: only its shape matters here)
SIRET = "26750045200011"


@dataclass
class Hierarchy:
    root: Issued
    organisations: Issued
    intermediates: list[x509.Certificate] = field(default_factory=list)


@pytest.fixture(scope="module")
def pki() -> Hierarchy:
    root = create_root()
    organisations = create_intermediate(root)
    return Hierarchy(root, organisations, [organisations.certificate])


@pytest.fixture(scope="module")
def other() -> Hierarchy:
    root = create_root(common_name="AC RACINE AUTRE TEST")
    organisations = create_intermediate(root, common_name="AC ORGANISATIONS AUTRE TEST")
    return Hierarchy(root, organisations, [organisations.certificate])


def _verify(cert: x509.Certificate, pki: Hierarchy, **kwargs: object) -> None:
    verify_chain(cert, pki.intermediates, pki.root.certificate, **kwargs)  # type: ignore[arg-type]


# --- hierarchy ----------------------------------------------------------------------------------
def test_names_mark_test_and_mirror_the_igc_sante(pki: Hierarchy) -> None:
    root, ca = pki.root.certificate, pki.organisations.certificate
    assert root.subject.rfc4514_string() == (
        "CN=AC RACINE maison TEST,OU=IGC maison TEST,O=maison TEST,C=FR"
    )
    assert ca.subject.rfc4514_string() == (
        "CN=AC ORGANISATIONS maison TEST,OU=IGC maison TEST,O=maison TEST,C=FR"
    )
    assert ca.issuer == root.subject


def test_ca_extensions_follow_rfc_5280(pki: Hierarchy) -> None:
    for issued, pathlen in ((pki.root, 1), (pki.organisations, 0)):
        cert = issued.certificate
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca
        assert constraints.value.path_length == pathlen
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        assert not usage.value.digital_signature
        assert isinstance(cert.public_key(), type(issued.key.public_key()))
        assert cert.signature_hash_algorithm is not None
        assert cert.signature_hash_algorithm.name == "sha256"
    ski = pki.root.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = pki.organisations.certificate.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier
    )
    assert aki.value.key_identifier == ski.value.digest


def test_organisation_certificate_chain_verifies_and_names_the_structure(
    pki: Hierarchy,
) -> None:
    org = issue_organisation(
        pki.organisations, "Centre hospitalier de Test", finess=FINESS, service="DMP"
    )
    cert = org.certificate
    _verify(cert, pki)
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "1" + FINESS
    )
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "DMP TEST"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    identity = organisation_of(cert)
    assert (identity.kind, identity.value) == ("FINESS", FINESS)
    assert identity.name == "Centre hospitalier de Test"
    assert identity.service == "DMP TEST"
    assert identity.id_nat_struct == "1" + FINESS


def test_organisation_of_gives_back_a_siret(pki: Hierarchy) -> None:
    cert = issue_organisation(pki.organisations, "Cabinet Durand", siret=SIRET).certificate
    identity = organisation_of(cert)
    assert (identity.kind, identity.value, identity.id_nat_struct) == ("SIRET", SIRET, "3" + SIRET)
    assert identity.service == "Cabinet Durand TEST"  # CN: the name, marked TEST


def test_validity_period_is_the_number_of_days_given(pki: Hierarchy) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cert = issue_organisation(
        pki.organisations, "Test", finess=FINESS, days=30, now=now
    ).certificate
    assert cert.not_valid_after_utc == now + timedelta(days=30)
    assert cert.not_valid_before_utc <= now


def test_an_identifier_is_required_and_checked(pki: Hierarchy) -> None:
    with pytest.raises(PkiError, match="exactly one"):
        issue_organisation(pki.organisations, "Test")
    with pytest.raises(PkiError, match="exactly one"):
        issue_organisation(pki.organisations, "Test", finess=FINESS, siret=SIRET)
    with pytest.raises(PkiError, match="FINESS"):
        issue_organisation(pki.organisations, "Test", finess="12345")
    with pytest.raises(PkiError, match="SIRET"):
        issue_organisation(pki.organisations, "Test", siret="1234567890123X")


def test_organisation_of_refuses_a_subject_without_a_structure(pki: Hierarchy) -> None:
    server = issue_server(pki.organisations, ["api.test"]).certificate
    with pytest.raises(CertificateError, match="no structure identifier"):
        organisation_of(server)


# --- refusals -----------------------------------------------------------------------------------
def test_a_certificate_from_another_ca_is_refused(pki: Hierarchy, other: Hierarchy) -> None:
    stranger = issue_organisation(other.organisations, "Intrus", finess=FINESS).certificate
    with pytest.raises(CertificateError, match="not issued by a trusted CA") as caught:
        _verify(stranger, pki)
    assert "AC ORGANISATIONS AUTRE TEST" in caught.value.message
    # Even when the foreign intermediate is handed over, it does not lead to our root.
    with pytest.raises(CertificateError, match="not issued by a trusted CA"):
        verify_chain(stranger, other.intermediates + pki.intermediates, pki.root.certificate)


def test_an_impostor_ca_with_our_ca_name_is_refused(pki: Hierarchy) -> None:
    impostor_root = create_root()  # same names as ours, another key
    impostor = create_intermediate(impostor_root)
    cert = issue_organisation(impostor, "Intrus", finess=FINESS).certificate
    with pytest.raises(CertificateError, match="bad signature"):
        _verify(cert, pki)


def test_an_expired_certificate_is_refused(pki: Hierarchy) -> None:
    past = datetime.now(UTC) - timedelta(days=40)
    expired = issue_organisation(
        pki.organisations, "Test", finess=FINESS, days=10, now=past
    ).certificate
    with pytest.raises(CertificateError, match="expired on"):
        _verify(expired, pki)
    assert expired.not_valid_after_utc < datetime.now(UTC)


def test_a_not_yet_valid_certificate_is_refused(pki: Hierarchy) -> None:
    future = datetime.now(UTC) + timedelta(days=3)
    cert = issue_organisation(pki.organisations, "Test", finess=FINESS, now=future).certificate
    with pytest.raises(CertificateError, match="not valid before"):
        _verify(cert, pki)


def test_an_expired_ca_is_refused(pki: Hierarchy) -> None:
    past = datetime.now(UTC) - timedelta(days=40)
    old_ca = create_intermediate(pki.root, now=past, days=10)
    cert = issue_organisation(old_ca, "Test", finess=FINESS).certificate
    with pytest.raises(CertificateError, match=r"AC ORGANISATIONS maison TEST.*expired"):
        verify_chain(cert, [old_ca.certificate], pki.root.certificate)


def test_a_server_certificate_is_refused_for_client_auth(pki: Hierarchy) -> None:
    server = issue_server(pki.organisations, ["api.test"], ips=["127.0.0.1"]).certificate
    with pytest.raises(CertificateError, match="does not include clientAuth"):
        _verify(server, pki)
    _verify(server, pki, purpose=ExtendedKeyUsageOID.SERVER_AUTH)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["api.test"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_an_organisation_certificate_is_refused_for_server_auth(pki: Hierarchy) -> None:
    org = issue_organisation(pki.organisations, "Test", finess=FINESS).certificate
    with pytest.raises(CertificateError, match="does not include serverAuth"):
        _verify(org, pki, purpose=ExtendedKeyUsageOID.SERVER_AUTH)


def test_a_tampered_signature_is_refused(pki: Hierarchy) -> None:
    org = issue_organisation(pki.organisations, "Test", finess=FINESS).certificate
    der = bytearray(org.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature value (ECDSA s)
    tampered = x509.load_der_x509_certificate(bytes(der))
    assert tampered.tbs_certificate_bytes == org.tbs_certificate_bytes
    with pytest.raises(CertificateError, match="bad signature"):
        _verify(tampered, pki)


def test_a_ca_certificate_is_not_accepted_as_a_client(pki: Hierarchy) -> None:
    with pytest.raises(CertificateError, match="a CA certificate, not an end entity"):
        _verify(pki.organisations.certificate, pki)


def test_an_end_entity_cannot_act_as_a_ca(pki: Hierarchy) -> None:
    fake_ca = issue_organisation(pki.organisations, "Test", finess=FINESS)
    child = issue_organisation(fake_ca, "Child", finess=FINESS).certificate
    with pytest.raises(CertificateError, match="not a CA"):
        verify_chain(child, [fake_ca.certificate, *pki.intermediates], pki.root.certificate)


def test_path_length_is_enforced(pki: Hierarchy) -> None:
    deeper = create_intermediate(pki.organisations, common_name="AC SOUS-ORGANISATIONS TEST")
    cert = issue_organisation(deeper, "Test", finess=FINESS).certificate
    with pytest.raises(CertificateError, match="pathLenConstraint"):
        verify_chain(cert, [deeper.certificate, *pki.intermediates], pki.root.certificate)


# --- RFC 8705 thumbprint ------------------------------------------------------------------------
def test_x5t_s256_equals_an_independent_computation(pki: Hierarchy) -> None:
    org = issue_organisation(pki.organisations, "Test", finess=FINESS).certificate
    pem = org.public_bytes(serialization.Encoding.PEM).decode("ascii")
    der = ssl.PEM_cert_to_DER_cert(pem)
    expected = base64.b64encode(hashlib.sha256(der).digest()).decode()
    expected = expected.replace("+", "-").replace("/", "_").rstrip("=")
    assert x5t_s256(org) == expected
    assert len(expected) == 43 and "=" not in x5t_s256(org)


def test_parse_certificates_reads_der_and_pem_and_refuses_junk(pki: Hierarchy) -> None:
    cert = pki.organisations.certificate
    assert parse_certificates(cert.public_bytes(serialization.Encoding.DER)) == [cert]
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, pki.root.certificate))
    assert parse_certificates(pem) == [cert, pki.root.certificate]
    with pytest.raises(CertificateError, match="header: not a certificate"):
        parse_certificates(b"junk", "header")


# --- PKI folder ---------------------------------------------------------------------------------
def test_folder_init_writes_private_keys_0600_and_refuses_to_replace_a_ca(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    authority = init_authority(folder)
    for name in (ROOT_KEY, ORGANISATIONS_KEY):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert len(load_certificates(folder / CA_BUNDLE)) == 2
    before = (folder / ROOT_CERT).read_bytes()
    with pytest.raises(PkiError, match=r"already exists.*--force"):
        init_authority(folder)
    assert (folder / ROOT_CERT).read_bytes() == before
    loaded = load_authority(folder)
    assert loaded.root == authority.root
    assert loaded.organisations.certificate == authority.organisations.certificate
    replaced = init_authority(folder, force=True)
    assert replaced.root != authority.root


def test_folder_without_ca_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="maison pki init"):
        load_authority(tmp_path)


def test_saved_organisation_files_verify_and_keep_the_key_private(tmp_path: Path) -> None:
    authority = init_authority(tmp_path)
    org = issue_organisation(authority.organisations, "Test", finess=FINESS)
    files = save_end_entity(
        authority, org, tmp_path, organisation_stem(organisation_of(org.certificate))
    )
    assert files.key.name == f"org-1{FINESS}.key"
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    leaf, *chain = load_certificates(files.chain)
    verify_chain(leaf, chain, load_certificates(tmp_path / ROOT_CERT)[0])
    with pytest.raises(PkiError, match="already exists"):
        save_end_entity(authority, org, tmp_path, organisation_stem(organisation_of(leaf)))


# --- a real mutual-TLS handshake ----------------------------------------------------------------
@dataclass
class Seen:
    peer_der: bytes | None = None
    error: BaseException | None = None


def _files(authority: Authority, issued: Issued, folder: Path, stem: str) -> tuple[str, str]:
    files = save_end_entity(authority, issued, folder, stem, force=True)
    return str(files.chain), str(files.key)


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> tuple[Seen, BaseException | None]:
    seen = Seen()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(10)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen.peer_der = tls.getpeercert(binary_form=True)
                tls.sendall(tls.recv(4))
        except (OSError, ssl.SSLError) as error:
            seen.error = error

    thread = threading.Thread(target=serve)
    thread.start()
    client_error: BaseException | None = None
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"ping")
            if tls.recv(4) != b"ping":
                client_error = ConnectionError("no echo")
    except (OSError, ssl.SSLError) as error:
        client_error = error
    thread.join(15)
    listener.close()
    return seen, client_error


def _server_context(authority: Authority, folder: Path) -> ssl.SSLContext:
    server = issue_server(authority.organisations, ["localhost"], ips=["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_files(authority, server, folder, server_stem("localhost")))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(folder / ROOT_CERT))
    return context


def _client_context(authority: Authority, org: Issued, folder: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the server name and chain
    context.load_verify_locations(cafile=str(folder / ROOT_CERT))
    context.load_cert_chain(*_files(authority, org, folder, "client"))
    return context


def test_mutual_tls_with_an_organisation_certificate(tmp_path: Path) -> None:
    authority = init_authority(tmp_path)
    org = issue_organisation(authority.organisations, "Clinique Test", siret=SIRET)
    seen, client_error = _handshake(
        _server_context(authority, tmp_path), _client_context(authority, org, tmp_path)
    )
    assert client_error is None and seen.error is None, (client_error, seen.error)
    assert seen.peer_der is not None
    peer = x509.load_der_x509_certificate(seen.peer_der)
    assert peer == org.certificate
    assert organisation_of(peer).id_nat_struct == "3" + SIRET
    assert x5t_s256(peer) == x5t_s256(org.certificate)


def test_mutual_tls_refuses_a_certificate_from_another_ca(tmp_path: Path) -> None:
    authority = init_authority(tmp_path / "ours")
    foreign = init_authority(tmp_path / "theirs")
    intruder = issue_organisation(foreign.organisations, "Intrus", finess=FINESS)
    seen, client_error = _handshake(
        _server_context(authority, tmp_path / "ours"),
        _client_context(foreign, intruder, tmp_path / "ours"),
    )
    assert seen.peer_der is None
    assert isinstance(seen.error, ssl.SSLError)
    assert "certificate verify failed" in str(seen.error)
    assert client_error is not None  # the server aborted the handshake
