"""A local test PKI shaped like the IGC Santé: root CA, organisations CA, organisation (client
authentication) and server certificates, chain verification and the RFC 8705 thumbprint.

https://industriels.esante.gouv.fr/produits-et-services/igc-sante

Everything it issues is a TEST certificate: every subject says so (``maison TEST`` in the CA
names and ``O``, ``… TEST`` in the organisation certificates' ``CN``). Keys are ECDSA P-256,
signatures ECDSA with SHA-256, profiles per RFC 5280.

What mirrors the IGC Santé, and how sure we are:

* Hierarchy (high confidence): the IGC Santé "gamme élémentaire" has a root
  ``AC RACINE IGC-SANTE ELEMENTAIRE`` and, under it, intermediate CAs per domain, among them
  ``AC IGC-SANTE ELEMENTAIRE ORGANISATIONS`` which issues the organisation certificates (ORG
  offer: ``AUTH_CLI`` for mutual-TLS client authentication, ``SIGN`` for the seal) and the
  server certificates (SERV offer: ``SSL_SERV``). The test chain's DNs, as public client code
  pins them: ``CN=TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS,OU=IGC-SANTE TEST,OU=0002
  187512751,O=ASIP-SANTE,C=FR`` and ``CN=TEST AC RACINE IGC-SANTE ELEMENTAIRE,…``. Ours:
  ``CN=AC RACINE maison TEST`` and ``CN=AC ORGANISATIONS maison TEST``, both
  ``OU=IGC maison TEST,O=maison TEST,C=FR`` (no ``OU=0002 <SIREN>``: that is the ANS's own
  ISO 6523 identifier, which we do not have).
* Organisation identity in the subject (medium confidence): the ANS guide "sécurisation des
  API REST" says an authorization server maps the ORG AUTH_CLI certificate's subject DN to its
  client, with ``OU`` = the structure's identifier and ``CN`` = the service (domain-spec §2).
  We write ``OU`` as the structure's national identifier *idNat_Struct* (TRE_G07 type prefix +
  number: ``1`` + FINESS, ``3`` + SIRET), the identifier the Annuaire Santé publishes under
  ``urn:oid:1.2.250.1.71.4.2.2`` — so the caller can be looked up in the Annuaire directly.
  ``O`` carries the structure's name (raison sociale), ``C=FR``. Not confirmed against the
  IGC Santé "gabarits des certificats" document itself (not readable from here): whether
  ``OU`` holds the prefixed idNat_Struct or the bare number is the one provisional choice;
  :func:`organisation_of` accepts both (a bare 9-character FINESS or 14-digit SIRET too).
* Not mirrored: certificate policy OIDs, CRL/OCSP distribution points, the ``ST``/``L``
  attributes of real ORG certificates, and RSA keys (the IGC Santé issues RSA 2048; P-256 is
  this project's choice, as for its token keys).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

TEST_MARK = "TEST"
PKI_ORGANISATION = "maison TEST"
PKI_UNIT = "IGC maison TEST"
ROOT_CN = "AC RACINE maison TEST"
ORGANISATIONS_CN = "AC ORGANISATIONS maison TEST"

#: idNat_Struct type prefixes (TRE_G07-TypeIdentifiantStructure): 1 FINESS, 3 SIRET.
ID_NAT_STRUCT_PREFIX: dict[str, str] = {"FINESS": "1", "SIRET": "3"}
#: The FHIR identifier system of idNat_Struct (as the Annuaire Santé publishes it).
IDNST_SYSTEM = "urn:oid:1.2.250.1.71.4.2.2"

IdentifierKind = Literal["FINESS", "SIRET"]

_FINESS = re.compile(r"^(?:\d{2}|2A|2B)\d{7}$")
_SIRET = re.compile(r"^\d{14}$")

# File names inside a PKI folder.
ROOT_CERT = "root-ca.pem"
ROOT_KEY = "root-ca.key"
ORGANISATIONS_CERT = "organisations-ca.pem"
ORGANISATIONS_KEY = "organisations-ca.key"
CA_BUNDLE = "ca-bundle.pem"  # the root then the intermediate: what a relying party trusts

ROOT_DAYS = 3650
ORGANISATIONS_DAYS = 1825
ORGANISATION_DAYS = 365
SERVER_DAYS = 397

_E = TypeVar("_E", bound=x509.ExtensionType)

_PURPOSES = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
}

_HANDLED_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)


class CertificateError(Exception):
    """A certificate refused by a relying party, with the reason: https://www.rfc-editor.org/rfc/rfc5280#section-6."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PkiError(Exception):
    """A PKI folder operation refused (existing CA, missing CA, bad identifier): https://industriels.esante.gouv.fr/produits-et-services/igc-sante."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class OrganisationIdentity:
    """Who an organisation certificate names: the structure's identifier, name and service."""

    kind: IdentifierKind
    value: str
    name: str
    service: str | None = None

    @property
    def id_nat_struct(self) -> str:
        """The structure's idNat_Struct (TRE_G07 prefix + number): https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-organization.html."""
        return ID_NAT_STRUCT_PREFIX[self.kind] + self.value


# --- issuing ------------------------------------------------------------------------------------
def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 private key: https://www.rfc-editor.org/rfc/rfc5480#section-2.1.1.1."""
    return ec.generate_private_key(ec.SECP256R1())


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, PKI_ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, PKI_UNIT),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: datetime,
    days: int,
) -> x509.CertificateBuilder:
    if days < 1:
        raise ValueError("a certificate lasts at least one day")
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _end_entity_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def create_root(
    *, now: datetime | None = None, days: int = ROOT_DAYS, common_name: str = ROOT_CN
) -> Issued:
    """A self-signed root CA (pathlen 1): https://www.rfc-editor.org/rfc/rfc5280#section-4.2.1.9."""
    key = new_key()
    name = _ca_name(common_name)
    cert = (
        _builder(name, name, key, key, _now(now), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def create_intermediate(
    root: Issued,
    *,
    now: datetime | None = None,
    days: int = ORGANISATIONS_DAYS,
    common_name: str = ORGANISATIONS_CN,
) -> Issued:
    """The organisations CA under the root (pathlen 0), as the IGC Santé's ORGANISATIONS AC: https://industriels.esante.gouv.fr/produits-et-services/igc-sante."""
    key = new_key()
    cert = (
        _builder(_ca_name(common_name), root.certificate.subject, key, root.key, _now(now), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .sign(root.key, hashes.SHA256())
    )
    return Issued(cert, key)


def organisation_identifier(
    finess: str | None = None, siret: str | None = None
) -> tuple[IdentifierKind, str]:
    """Check that exactly one FINESS (9 characters) or SIRET (14 digits) is given: https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-organization.html."""
    if (finess is None) == (siret is None):
        raise PkiError("give exactly one structure identifier: a FINESS or a SIRET")
    if finess is not None:
        value = finess.strip().upper()
        if not _FINESS.match(value):
            raise PkiError(f"FINESS {finess!r}: expected 9 characters (2 digits or 2A/2B, then 7)")
        return "FINESS", value
    assert siret is not None
    value = siret.strip().replace(" ", "")
    if not _SIRET.match(value):
        raise PkiError(f"SIRET {siret!r}: expected 14 digits")
    return "SIRET", value


def _test_marked(text: str) -> str:
    """``text`` ending with the word TEST (any case), added when missing."""
    return text if re.search(r"\bTEST$", text, re.IGNORECASE) else f"{text} {TEST_MARK}"


def issue_organisation(
    ca: Issued,
    name: str,
    *,
    finess: str | None = None,
    siret: str | None = None,
    service: str | None = None,
    days: int = ORGANISATION_DAYS,
    now: datetime | None = None,
) -> Issued:
    """An organisation certificate for client authentication (like ORG AUTH_CLI).

    Subject: ``OU`` = idNat_Struct, ``O`` = name, ``CN`` = service + TEST;
    https://industriels.esante.gouv.fr/produits-et-services/igc-sante
    """
    kind, value = organisation_identifier(finess, siret)
    if not name.strip():
        raise PkiError("the organisation needs a name")
    identity = OrganisationIdentity(kind, value, name.strip())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, identity.name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, identity.id_nat_struct),
            x509.NameAttribute(NameOID.COMMON_NAME, _test_marked(service or identity.name)),
        ]
    )
    key = new_key()
    cert = (
        _builder(subject, ca.certificate.subject, key, ca.key, _now(now), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_end_entity_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue_server(
    ca: Issued,
    hostnames: Sequence[str],
    *,
    ips: Sequence[str] = (),
    days: int = SERVER_DAYS,
    now: datetime | None = None,
) -> Issued:
    """A TLS server certificate (SERV SSL_SERV-like) with DNS/IP subjectAltNames: https://www.rfc-editor.org/rfc/rfc5280#section-4.2.1.6."""
    if not hostnames:
        raise PkiError("a server certificate needs at least one host name")
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    for ip in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise PkiError(f"{ip!r} is not an IP address") from None
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, PKI_ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"SERVEUR {TEST_MARK}"),
            x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
        ]
    )
    key = new_key()
    cert = (
        _builder(subject, ca.certificate.subject, key, ca.key, _now(now), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_end_entity_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


# --- reading ------------------------------------------------------------------------------------
def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def organisation_of(cert: x509.Certificate) -> OrganisationIdentity:
    """The structure an organisation certificate names: https://industriels.esante.gouv.fr/produits-et-services/igc-sante.

    ``OU`` = idNat_Struct (or a bare FINESS/SIRET), ``O`` = name, ``CN`` = service.
    """
    subject = cert.subject
    units = [
        a.value if isinstance(a.value, str) else a.value.decode("utf-8", "replace")
        for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    ]
    name = _attribute(subject, NameOID.ORGANIZATION_NAME)
    service = _attribute(subject, NameOID.COMMON_NAME)
    for unit in units:
        found = _parse_structure_id(unit.strip())
        if found is not None:
            if not name:
                raise CertificateError(
                    f"{subject.rfc4514_string()}: no organisation name (O) in the subject"
                )
            return OrganisationIdentity(found[0], found[1], name, service)
    raise CertificateError(
        f"{subject.rfc4514_string()}: no structure identifier (OU = idNat_Struct, "
        "1 + FINESS or 3 + SIRET) in the subject"
    )


def _parse_structure_id(unit: str) -> tuple[IdentifierKind, str] | None:
    upper = unit.upper()
    if len(upper) == 10 and upper.startswith("1") and _FINESS.match(upper[1:]):
        return "FINESS", upper[1:]
    if len(upper) == 15 and upper.startswith("3") and _SIRET.match(upper[1:]):
        return "SIRET", upper[1:]
    if _FINESS.match(upper):  # a bare number, as some issuers write it
        return "FINESS", upper
    if _SIRET.match(upper):
        return "SIRET", upper
    return None


def x5t_s256(cert: x509.Certificate) -> str:
    """The certificate's SHA-256 thumbprint for ``cnf.x5t#S256`` (base64url, no padding): https://www.rfc-editor.org/rfc/rfc8705#section-3.1."""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def describe(cert: x509.Certificate) -> str:
    """A certificate's subject for messages (RFC 4514 string): https://www.rfc-editor.org/rfc/rfc4514."""
    return cert.subject.rfc4514_string()


# --- verifying ----------------------------------------------------------------------------------
def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_dates(cert: x509.Certificate, now: datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateError(
            f"{describe(cert)}: not valid before {cert.not_valid_before_utc.isoformat()}"
        )
    if now > cert.not_valid_after_utc:
        raise CertificateError(
            f"{describe(cert)}: expired on {cert.not_valid_after_utc.isoformat()}"
        )


def _check_critical(cert: x509.Certificate) -> None:
    for extension in cert.extensions:
        if extension.critical and extension.oid not in _HANDLED_CRITICAL:
            raise CertificateError(
                f"{describe(cert)}: unknown critical extension {extension.oid.dotted_string}"
            )


def _check_ca(cert: x509.Certificate, below: int) -> None:
    """``below``: how many intermediate CAs sit between this CA and the end entity."""
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise CertificateError(f"{describe(cert)}: not a CA (basicConstraints cA is false)")
    if constraints.path_length is not None and below > constraints.path_length:
        raise CertificateError(
            f"{describe(cert)}: path length {below} exceeds its pathLenConstraint "
            f"{constraints.path_length}"
        )
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        raise CertificateError(f"{describe(cert)}: keyUsage does not allow keyCertSign")


def _check_signed(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        raise CertificateError(
            f"{describe(cert)}: bad signature (not signed by {describe(issuer)})"
        ) from None
    except (ValueError, TypeError) as error:
        raise CertificateError(f"{describe(cert)}: {error}") from None


def _check_end_entity(cert: x509.Certificate, purpose: x509.ObjectIdentifier) -> None:
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise CertificateError(f"{describe(cert)}: a CA certificate, not an end entity")
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None and not usage.digital_signature:
        raise CertificateError(f"{describe(cert)}: keyUsage does not allow digitalSignature")
    extended = _extension(cert, x509.ExtendedKeyUsage)
    wanted = _PURPOSES.get(purpose, purpose.dotted_string)
    if extended is None or purpose not in extended:
        raise CertificateError(
            f"{describe(cert)}: extendedKeyUsage does not include {wanted} "
            f"({purpose.dotted_string})"
        )


def verify_chain(
    cert: x509.Certificate,
    intermediates: Iterable[x509.Certificate],
    root: x509.Certificate,
    *,
    now: datetime | None = None,
    purpose: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
) -> None:
    """Check ``cert`` chains to ``root``, else raise CertificateError: https://www.rfc-editor.org/rfc/rfc5280#section-6.1.

    Checked on every link: signature, validity dates, unknown critical extensions; on the CAs:
    basicConstraints cA, pathLenConstraint, keyCertSign; on ``cert``: not a CA,
    digitalSignature, and ``purpose`` in its extendedKeyUsage.

    The extended key usage is required (RFC 5280 would read its absence as "any purpose"). No
    revocation checking: the test PKI publishes no CRL.
    """
    moment = _now(now)
    pool = list(intermediates)
    _check_end_entity(cert, purpose)
    path = [cert]
    current = cert
    while True:
        if current.issuer == root.subject:
            _check_signed(current, root)
            path.append(root)
            break
        candidates = [c for c in pool if c.subject == current.issuer and c not in path]
        if not candidates:
            raise CertificateError(
                f"{describe(cert)}: not issued by a trusted CA (no trusted issuer named "
                f"{current.issuer.rfc4514_string()})"
            )
        issuer = candidates[0]
        _check_signed(current, issuer)
        path.append(issuer)
        current = issuer
    _check_signed(root, root)  # the trust anchor is self-signed
    for position, link in enumerate(path):
        _check_dates(link, moment)
        _check_critical(link)
        if position > 0:
            _check_ca(link, below=position - 1)


# --- PKI folder ---------------------------------------------------------------------------------
def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically with ``mode`` (never readable by others first)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def certificate_pem(cert: x509.Certificate) -> bytes:
    """A certificate in PEM: https://www.rfc-editor.org/rfc/rfc7468#section-5."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """An unencrypted PKCS #8 private key in PEM (test keys, file mode 0600): https://www.rfc-editor.org/rfc/rfc7468#section-10."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_issued(
    issued: Issued, cert_path: Path, key_path: Path, chain: Sequence[x509.Certificate] = ()
) -> None:
    """Write a certificate (0644, followed by ``chain``) and its key (0600) as PEM: https://www.rfc-editor.org/rfc/rfc7468."""
    _write(key_path, key_pem(issued.key), 0o600)
    body = certificate_pem(issued.certificate) + b"".join(certificate_pem(c) for c in chain)
    _write(cert_path, body, 0o644)


def parse_certificates(data: bytes, source: str = "data") -> list[x509.Certificate]:
    """The certificates of PEM text, or of one DER certificate: https://www.rfc-editor.org/rfc/rfc7468#section-5.

    Raises CertificateError naming ``source`` when ``data`` holds no certificate.
    """
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as error:
        raise CertificateError(f"{source}: not a certificate ({error})") from None


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM (or single DER) file: https://www.rfc-editor.org/rfc/rfc7468#section-5."""
    return parse_certificates(path.read_bytes(), str(path))


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """A PEM private key written by this module: https://www.rfc-editor.org/rfc/rfc7468#section-10."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: not an EC private key")
    return key


@dataclass(frozen=True)
class Authority:
    """A PKI folder's root certificate and its organisations CA (certificate and key)."""

    root: x509.Certificate
    organisations: Issued

    @property
    def chain(self) -> list[x509.Certificate]:
        """The intermediate, as it follows an end-entity certificate in a chain file."""
        return [self.organisations.certificate]


def init_authority(
    directory: Path, *, force: bool = False, now: datetime | None = None
) -> Authority:
    """Create the root and organisations CAs: https://industriels.esante.gouv.fr/produits-et-services/igc-sante.

    Existing CA files are never replaced without ``force``.
    """
    existing = [
        directory / n
        for n in (ROOT_CERT, ROOT_KEY, ORGANISATIONS_CERT, ORGANISATIONS_KEY)
        if (directory / n).exists()
    ]
    if existing and not force:
        raise PkiError(
            f"a CA already exists in {directory} ({existing[0].name}): refusing to replace it "
            "(every certificate it issued would stop verifying); use --force to replace it"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = create_root(now=now)
    organisations = create_intermediate(root, now=now)
    write_issued(root, directory / ROOT_CERT, directory / ROOT_KEY)
    write_issued(organisations, directory / ORGANISATIONS_CERT, directory / ORGANISATIONS_KEY)
    bundle = certificate_pem(root.certificate) + certificate_pem(organisations.certificate)
    _write(directory / CA_BUNDLE, bundle, 0o644)
    return Authority(root.certificate, organisations)


def load_authority(directory: Path) -> Authority:
    """The CAs of a PKI folder made by :func:`init_authority`: https://industriels.esante.gouv.fr/produits-et-services/igc-sante."""
    missing = [
        n
        for n in (ROOT_CERT, ORGANISATIONS_CERT, ORGANISATIONS_KEY)
        if not (directory / n).exists()
    ]
    if missing:
        raise PkiError(f"no CA in {directory} (missing {missing[0]}): run `maison pki init`")
    root = load_certificates(directory / ROOT_CERT)[0]
    cert = load_certificates(directory / ORGANISATIONS_CERT)[0]
    return Authority(root, Issued(cert, load_key(directory / ORGANISATIONS_KEY)))


@dataclass(frozen=True)
class WrittenFiles:
    """Where an issued certificate went: certificate, key and chain (certificate + CA)."""

    certificate: Path
    key: Path
    chain: Path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "cert"


def _refuse_overwrite(files: WrittenFiles, force: bool) -> None:
    if force:
        return
    for path in (files.certificate, files.key, files.chain):
        if path.exists():
            raise PkiError(f"{path} already exists: use --force to replace it")


def save_end_entity(
    authority: Authority, issued: Issued, directory: Path, stem: str, *, force: bool = False
) -> WrittenFiles:
    """Write ``<stem>.pem``, ``<stem>.key`` (0600), ``<stem>-chain.pem``: https://www.rfc-editor.org/rfc/rfc8446#section-4.4.2.

    The chain file holds the certificate then the intermediate, as a TLS peer sends them.
    """
    stem = _slug(stem)
    files = WrittenFiles(
        directory / f"{stem}.pem", directory / f"{stem}.key", directory / f"{stem}-chain.pem"
    )
    _refuse_overwrite(files, force)
    write_issued(issued, files.certificate, files.key)
    chain = certificate_pem(issued.certificate) + b"".join(
        certificate_pem(c) for c in authority.chain
    )
    _write(files.chain, chain, 0o644)
    return files


def organisation_stem(identity: OrganisationIdentity) -> str:
    """The file stem of an organisation's files, ``org-<idNat_Struct>``: https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition-as-organization.html."""
    return f"org-{identity.id_nat_struct}"


def server_stem(hostname: str) -> str:
    """The file stem of a server's files, ``server-<first host name>``: https://www.rfc-editor.org/rfc/rfc5280#section-4.2.1.6."""
    return f"server-{hostname}"
