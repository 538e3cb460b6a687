"""``maison psc``: the test identities of the local Pro Santé Connect side, drawn from the
Annuaire Santé the platform imported, and the PSC userinfo each would sign in with.

https://industriels.esante.gouv.fr/produits-et-services/pro-sante-connect
"""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from maison.api.settings import DEFAULT_DATA, Settings
from maison.cli.options import DataOpt, StateOpt
from maison.fhir.definitions import Definitions, default_definitions
from maison.security.professional import ProfessionalContextError, from_userinfo
from maison.store.sql import SqlStore

psc_app = typer.Typer(help="Pro Santé Connect: the test identities of the imported Annuaire.")
console = Console(stderr=True)


def _store(data: str, state: str | None) -> tuple[SqlStore, Definitions]:
    from maison.api.services import make_store

    defs = default_definitions()
    store = make_store(Settings(data=data, state=state), defs)
    store.migrate()
    return store, defs


@psc_app.command("list")
def list_(
    data: DataOpt = DEFAULT_DATA,
    count: Annotated[int, typer.Option(help="How many professionals to list.")] = 20,
    state: StateOpt = None,
) -> None:
    """List professionals of the imported Annuaire who can sign in (``maison token --rpps``)."""
    from maison.services.psc.annuaire_lookup import list_professionals

    store, defs = _store(data, state)
    try:
        people = list_professionals(store, defs, count)
    finally:
        store.close()
    if not people:
        console.print(
            "[yellow]No active professional in the Annuaire: import an extraction "
            "(maison annuaire import) or start the demo.[/yellow]"
        )
        raise typer.Exit(1)
    table = Table(title="Annuaire Santé: test identities")
    for column in ("IDNPS", "RPPS / ADELI", "name", "profession"):
        table.add_column(column)
    for p in people:
        ids = {
            i.get("type", {}).get("coding", [{}])[0].get("code"): i.get("value")
            for i in p.get("identifier", [])
        }
        name = (p.get("name") or [{}])[0]
        professions = [
            c.get("display") or c.get("code")
            for q in p.get("qualification", [])
            for c in q.get("code", {}).get("coding", [])
            if "TRE_G15" in str(c.get("system"))
        ]
        table.add_row(
            str(p.get("id")),
            str(ids.get("RPPS") or ids.get("ADELI") or ""),
            " ".join([*name.get("given", []), name.get("family", "")]).strip(),
            ", ".join(str(x) for x in professions),
        )
    Console().print(table)


@psc_app.command("userinfo")
def userinfo(
    number: Annotated[str, typer.Argument(help="IDNPS, RPPS or ADELI number.")],
    data: DataOpt = DEFAULT_DATA,
    activity: Annotated[
        int | None, typer.Option(help="Which activity (0-based), when he has several.")
    ] = None,
    state: StateOpt = None,
) -> None:
    """Print the PSC userinfo this professional signs in with, and the activity chosen."""
    from maison.services.psc.annuaire_lookup import userinfo_for_professional

    store, defs = _store(data, state)
    try:
        claims = userinfo_for_professional(store, defs, number)
        context = from_userinfo(claims, activity)
    except ProfessionalContextError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        store.close()
    console.print(f"activity {context.activity.index}: {context.activity.describe()}")
    sys.stdout.write(orjson.dumps(claims, option=orjson.OPT_INDENT_2).decode() + "\n")
