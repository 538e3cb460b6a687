"""``maison patient``: Mon espace santé accounts bound to a qualified INS, their TOTP second
factor, and the legal representatives (parents, guardians) who act for a patient.

https://www.rfc-editor.org/rfc/rfc6238 · https://hl7.org/fhir/R4/relatedperson.html
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from maison.api.settings import DEFAULT_DATA, Settings
from maison.cli.options import DataOpt, StateOpt
from maison.security.patient_accounts import KINDS, AccountError, Enrolment, PatientAccounts

patient_app = typer.Typer(help="Patients: Mon espace santé accounts and legal representatives.")
account_app = typer.Typer(help="Patient accounts (password + TOTP), bound to a qualified INS.")
represent_app = typer.Typer(help="Legal representatives (RelatedPerson) acting for a patient.")
patient_app.add_typer(account_app, name="account")
patient_app.add_typer(represent_app, name="represent")
console = Console(stderr=True)

InsOpt = Annotated[str, typer.Option("--ins", help="Matricule INS (15 characters).")]


@contextmanager
def _accounts(data: str, state: str | None) -> Iterator[PatientAccounts]:
    from maison.api.services import make_store
    from maison.fhir.definitions import default_definitions
    from maison.services.ins.accounts import patient_accounts

    store = make_store(Settings(data=data, state=state), default_definitions())
    store.migrate()
    try:
        yield patient_accounts(store)
    except AccountError as err:
        console.print(f"[red]{err.reason}[/red] ({err.code})")
        raise typer.Exit(2) from None
    finally:
        store.close()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    text: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return text


def _show(enrolment: Enrolment) -> None:
    # shown once: the secret is stored encrypted and never printed again (except --dev totp)
    console.print(
        "Add this account to an authenticator app (shown once; no QR code is drawn here: "
        "paste the URI into a QR generator you trust, or type the secret):"
    )
    sys.stdout.write(f"account: {enrolment.account.account_id}\n")
    sys.stdout.write(f"otpauth URI: {enrolment.provisioning_uri}\n")
    sys.stdout.write(f"secret: {enrolment.totp_secret}\n")


@account_app.command("create")
def create(
    ins: InsOpt,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line.")
    ] = False,
) -> None:
    """Open the account of the patient whose qualified identity carries this INS."""
    with _accounts(data, state) as accounts:
        patient_id = accounts.patient_by_ins(ins)
        enrolment = accounts.create(patient_id, _password(password_stdin))
    _show(enrolment)


@account_app.command("list")
def list_(
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
    count: Annotated[int, typer.Option(help="How many accounts to list.")] = 100,
) -> None:
    """List the patient accounts, in INS order."""
    with _accounts(data, state) as accounts:
        found = accounts.listing(count)
    table = Table(title="Patient accounts")
    for column in ("INS", "Patient", "name", "TOTP confirmed", "account"):
        table.add_column(column)
    for a in found:
        table.add_row(
            a.ins, a.patient_id, a.display, "yes" if a.totp_enrolled else "no", a.account_id
        )
    Console().print(table)


@account_app.command("reset-totp")
def reset_totp(ins: InsOpt, data: DataOpt = DEFAULT_DATA, state: StateOpt = None) -> None:
    """Replace the TOTP secret of an account (a lost phone); the old codes stop working."""
    with _accounts(data, state) as accounts:
        enrolment = accounts.reset_totp(accounts.by_ins(ins).account_id)
    _show(enrolment)


@represent_app.command("add")
def represent_add(
    patient: Annotated[str, typer.Option("--patient", help="INS of the represented patient.")],
    representative: Annotated[
        str, typer.Option("--representative", help="INS of the representative (an account).")
    ],
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(KINDS)}.")] = "parent",
    until: Annotated[
        str | None, typer.Option(help="Last valid day (YYYY-MM-DD); a minor's ends at 18.")
    ] = None,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Record a legal representative as a RelatedPerson of the patient."""
    try:
        last = date.fromisoformat(until) if until else None
    except ValueError:
        console.print(f"[red]--until {until!r} is not a date (YYYY-MM-DD)[/red]")
        raise typer.Exit(2) from None
    with _accounts(data, state) as accounts:
        rep = accounts.add_representative(
            accounts.patient_by_ins(patient), accounts.by_ins(representative).account_id, kind, last
        )
    ends = rep.valid_until.isoformat() if rep.valid_until else "no end"
    sys.stdout.write(
        f"RelatedPerson/{rep.related_person_id}: {rep.kind} of Patient/{rep.patient_id} "
        f"until {ends}\n"
    )


@represent_app.command("remove")
def represent_remove(
    patient: Annotated[str, typer.Option("--patient", help="INS of the represented patient.")],
    representative: Annotated[
        str, typer.Option("--representative", help="INS of the representative (an account).")
    ],
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """End a legal representation today (the RelatedPerson is kept, inactive)."""
    with _accounts(data, state) as accounts:
        ended = accounts.remove_representative(
            accounts.patient_by_ins(patient), accounts.by_ins(representative).account_id
        )
    sys.stdout.write(f"{ended} representation(s) ended\n")


@represent_app.command("list")
def represent_list(
    representative: Annotated[
        str, typer.Option("--representative", help="INS of the representative (an account).")
    ],
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """List the records an account may act for today, besides its own."""
    with _accounts(data, state) as accounts:
        found = accounts.represented(accounts.by_ins(representative).account_id)
    table = Table(title="Represented patients")
    for column in ("INS", "Patient", "name", "kind", "until"):
        table.add_column(column)
    for r in found:
        ends = r.valid_until.isoformat() if r.valid_until else ""
        table.add_row(r.ins, r.patient_id, r.display, r.kind, ends)
    Console().print(table)


@patient_app.command("totp")
def totp(
    ins: InsOpt,
    dev: Annotated[
        bool, typer.Option("--dev", help="Required: this reads the secret (development only).")
    ] = False,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Print the current TOTP code of an account (development helper: needs --dev)."""
    if not dev:
        console.print(
            "[red]This reads the account's TOTP secret; it is for development only: "
            "add --dev.[/red]"
        )
        raise typer.Exit(2)
    with _accounts(data, state) as accounts:
        code = accounts.current_code(ins)
    sys.stdout.write(code + "\n")
