"""``maison smart``: the SMART on FHIR apps and backend services the platform's authorization
server knows, registered in the store (besides ``MAISON_SMART_CLIENTS`` and the built-in
public ``maison-smart-dev``).

https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from maison.api.settings import DEFAULT_DATA, Settings
from maison.cli.options import DataOpt, StateOpt
from maison.store.sql import SqlStore

smart_app = typer.Typer(help="SMART on FHIR: register apps and backend services, list them.")
console = Console(stderr=True)


def _store(data: str, state: str | None) -> SqlStore:
    from maison.api.services import make_store
    from maison.fhir.definitions import default_definitions

    store = make_store(Settings(data=data, state=state), default_definitions())
    store.migrate()
    return store


@smart_app.command("register")
def register(
    client_id: Annotated[str, typer.Option("--client-id", help="The app's client_id.")],
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--redirect-uri", help="A redirect URI (exact match); repeat for several."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope", help="Scopes it may be granted (e.g. 'openid launch patient/*.rs')."
        ),
    ] = None,
    jwks: Annotated[
        Path | None, typer.Option("--jwks", help="A JSON file with its public JWK Set.")
    ] = None,
    jwks_uri: Annotated[
        str | None, typer.Option("--jwks-uri", help="Where it publishes its JWK Set (https).")
    ] = None,
    confidential: Annotated[
        bool,
        typer.Option(
            "--confidential", help="A symmetric confidential client: a secret is generated."
        ),
    ] = False,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Register (or replace) a SMART client; with --confidential, print its secret last."""
    from maison.services.smart.clients import ClientError, client_from_json
    from maison.services.smart.clients import register as save

    spec: dict[str, Any] = {
        "redirect_uris": list(redirect_uri or []),
        "scope": " ".join(" ".join(scope or []).split()),
    }
    try:
        if jwks is not None:
            spec["jwks"] = orjson.loads(jwks.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        console.print(f"[red]cannot read the JWK Set {jwks}: {exc}[/red]")
        raise typer.Exit(2) from None
    if jwks_uri is not None:
        spec["jwks_uri"] = jwks_uri
    secret = secrets.token_urlsafe(32) if confidential else None
    if secret is not None:
        spec["secret"] = secret
    spec["public"] = not (confidential or jwks is not None or jwks_uri is not None)
    store = _store(data, state)
    try:
        client = client_from_json(client_id, spec)
        save(store, client)
    except ClientError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        store.close()
    kind = "confidential" if secret else "backend/asymmetric" if client.asymmetric else "public"
    console.print(f"[green]registered[/green] {client_id} ({kind}), scope: {client.scope}")
    if secret is not None:
        console.print("its client secret (shown once):")
        sys.stdout.write(secret + "\n")


@smart_app.command("list")
def list_(data: DataOpt = DEFAULT_DATA, state: StateOpt = None) -> None:
    """List the SMART clients (built in, environment ``MAISON_SMART_CLIENTS``, registered)."""
    import os

    from maison.services.smart.clients import ClientError, ClientRegistry

    store = _store(data, state)
    try:
        clients = ClientRegistry(store, os.environ.get("MAISON_SMART_CLIENTS")).all()
    except ClientError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        store.close()
    table = Table(title="SMART clients")
    for column in ("client_id", "kind", "redirect URIs", "scope"):
        table.add_column(column)
    for cid, c in sorted(clients.items()):
        kind = "asymmetric" if c.asymmetric else "symmetric" if c.secret else "public"
        table.add_row(cid, kind, " ".join(c.redirect_uris), c.scope)
    Console().print(table)
