"""``maison pki``: a local test PKI shaped like the IGC Santé (root and organisations CAs,
organisation certificates for mutual TLS, server certificates), and a certificate viewer.

https://industriels.esante.gouv.fr/produits-et-services/igc-sante
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from maison.api.settings import DEFAULT_DATA, Settings
from maison.cli.options import DataOpt, StateOpt
from maison.security.pki import (
    CA_BUNDLE,
    ORGANISATION_DAYS,
    ORGANISATIONS_CERT,
    ROOT_CERT,
    SERVER_DAYS,
    CertificateError,
    PkiError,
    WrittenFiles,
    init_authority,
    issue_organisation,
    issue_server,
    load_authority,
    load_certificates,
    organisation_of,
    organisation_stem,
    save_end_entity,
    server_stem,
    verify_chain,
    x5t_s256,
)

pki_app = typer.Typer(
    help="Local TEST PKI (IGC Santé-like): CAs, organisation (mTLS client) and server certificates."
)

DirOpt = Annotated[
    Path | None,
    typer.Option("--dir", help="PKI folder (default: <state folder>/pki, see --data/--state)."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace existing files.")]


def _folder(directory: Path | None, data: str, state: str | None) -> Path:
    if directory is not None:
        return directory.resolve()
    return Settings(data=data, state=state).state_dir / "pki"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _print_files(files: WrittenFiles) -> None:
    typer.echo(f"certificate: {files.certificate}")
    typer.echo(f"key (0600):  {files.key}")
    typer.echo(f"chain:       {files.chain}")


@pki_app.command("init")
def init(
    directory: DirOpt = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an existing CA (its certificates stop working)."),
    ] = False,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Create the test root CA and the organisations CA under it."""
    folder = _folder(directory, data, state)
    try:
        authority = init_authority(folder, force=force)
    except PkiError as error:
        raise _fail(error.message) from None
    typer.echo(
        f"root CA:          {folder / ROOT_CERT}  ({authority.root.subject.rfc4514_string()})"
    )
    typer.echo(
        f"organisations CA: {folder / ORGANISATIONS_CERT}  "
        f"({authority.organisations.certificate.subject.rfc4514_string()})"
    )
    typer.echo(f"trust bundle:     {folder / CA_BUNDLE}")


@pki_app.command("org")
def org(
    name: Annotated[str, typer.Argument(help="The organisation's name (raison sociale).")],
    finess: Annotated[str | None, typer.Option(help="The structure's FINESS number.")] = None,
    siret: Annotated[str | None, typer.Option(help="The structure's SIRET number.")] = None,
    service: Annotated[
        str | None, typer.Option(help="The service named in CN (default: the name).")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Validity in days.")] = ORGANISATION_DAYS,
    directory: DirOpt = None,
    force: ForceOpt = False,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Issue an organisation certificate for mutual-TLS client authentication."""
    folder = _folder(directory, data, state)
    try:
        authority = load_authority(folder)
        issued = issue_organisation(
            authority.organisations, name, finess=finess, siret=siret, service=service, days=days
        )
        identity = organisation_of(issued.certificate)
        files = save_end_entity(authority, issued, folder, organisation_stem(identity), force=force)
    except PkiError as error:
        raise _fail(error.message) from None
    typer.echo(f"organisation: {identity.name} ({identity.kind} {identity.value})")
    _print_files(files)
    typer.echo(f"x5t#S256:    {x5t_s256(issued.certificate)}")


@pki_app.command("server")
def server(
    hostnames: Annotated[list[str], typer.Argument(help="DNS names (the first is the CN).")],
    ip: Annotated[list[str] | None, typer.Option("--ip", help="IP address (repeatable).")] = None,
    days: Annotated[int, typer.Option(min=1, help="Validity in days.")] = SERVER_DAYS,
    directory: DirOpt = None,
    force: ForceOpt = False,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Issue a TLS server certificate for running maison over HTTPS."""
    folder = _folder(directory, data, state)
    try:
        authority = load_authority(folder)
        issued = issue_server(authority.organisations, hostnames, ips=ip or [], days=days)
        files = save_end_entity(authority, issued, folder, server_stem(hostnames[0]), force=force)
    except PkiError as error:
        raise _fail(error.message) from None
    _print_files(files)


def _verdict(cert: x509.Certificate, rest: list[x509.Certificate], folder: Path) -> str:
    """How the PKI folder's CA judges ``cert`` (for client authentication, else server)."""
    try:
        authority = load_authority(folder)
    except PkiError:
        return f"not checked (no CA in {folder})"
    intermediates = [*rest, *authority.chain]
    try:
        verify_chain(cert, intermediates, authority.root)
        return "ok for client authentication (mTLS) with this CA"
    except CertificateError as client_error:
        try:
            verify_chain(
                cert, intermediates, authority.root, purpose=ExtendedKeyUsageOID.SERVER_AUTH
            )
            return "ok for server authentication with this CA"
        except CertificateError:
            return f"refused: {client_error.message}"


@pki_app.command("show")
def show(
    file: Annotated[Path, typer.Argument(help="A PEM (or DER) certificate or chain file.")],
    directory: DirOpt = None,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Print a certificate's subject, issuer, validity, organisation and x5t#S256."""
    try:
        cert, *rest = load_certificates(file)
    except (OSError, CertificateError) as error:
        raise _fail(str(error)) from None
    typer.echo(f"subject:      {cert.subject.rfc4514_string()}")
    typer.echo(f"issuer:       {cert.issuer.rfc4514_string()}")
    typer.echo(f"serial:       {cert.serial_number:x}")
    typer.echo(f"not before:   {cert.not_valid_before_utc.isoformat()}")
    typer.echo(f"not after:    {cert.not_valid_after_utc.isoformat()}")
    try:
        identity = organisation_of(cert)
        typer.echo(
            f"organisation: {identity.name} — {identity.kind} {identity.value} "
            f"(idNat_Struct {identity.id_nat_struct}), service {identity.service}"
        )
    except CertificateError:
        typer.echo("organisation: none (no FINESS/SIRET in the subject)")
    typer.echo(f"x5t#S256:     {x5t_s256(cert)}")
    typer.echo(f"chain:        {_verdict(cert, rest, _folder(directory, data, state))}")
