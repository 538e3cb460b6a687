"""The ``maison`` command line: setup, serve, token, db, import.

https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import Progress

from maison.api.settings import DEFAULT_DATA, Settings, server_file
from maison.cli.access import access_app
from maison.cli.annuaire import annuaire_app
from maison.cli.audit import audit_app
from maison.cli.dmp import dmp_app
from maison.cli.ins import ins_app
from maison.cli.keys import keys_app
from maison.cli.options import DataOpt, StateOpt
from maison.cli.patients import patient_app
from maison.cli.pki import pki_app
from maison.cli.psc import psc_app
from maison.cli.smart import smart_app
from maison.cli.terminology import terminology_app
from maison.fhir.errors import FhirError
from maison.store.crypto import DataKeyError

app = typer.Typer(help="maison: the French e-health socle services on a FHIR R4 server.")
db_app = typer.Typer(help="Database schema commands.")
app.add_typer(db_app, name="db")
ig_app = typer.Typer(help="Implementation guides: profiles, value sets, search parameters.")
app.add_typer(ig_app, name="ig")
app.add_typer(ins_app, name="ins")
app.add_typer(annuaire_app, name="annuaire")
app.add_typer(psc_app, name="psc")
app.add_typer(pki_app, name="pki")
app.add_typer(terminology_app, name="terminology")
app.add_typer(keys_app, name="keys")
app.add_typer(patient_app, name="patient")
app.add_typer(smart_app, name="smart")
app.add_typer(dmp_app, name="dmp")
app.add_typer(access_app, name="access")
app.add_typer(audit_app, name="audit")
console = Console(stderr=True)


@app.command()
def setup() -> None:
    """Fetch and verify the pinned FHIR definition packages."""
    from maison.cli.packages import ensure_all

    for folder in ensure_all():
        console.print(f"[green]ok[/green] {folder}")


@app.command()
def serve(
    data: DataOpt = DEFAULT_DATA,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    public_url: Annotated[str | None, typer.Option(help="Base URL as clients see it.")] = None,
    issuer: Annotated[
        str | None, typer.Option(help="External OpenID issuer (default: local dev issuer).")
    ] = None,
    audience: Annotated[str | None, typer.Option(help="Expected token audience.")] = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes (0: one per core, at most 4).")
    ] = 0,
    demo: Annotated[bool, typer.Option(help="Load demo data into an empty store.")] = True,
    max_body: Annotated[int, typer.Option(help="Largest accepted request body (bytes).")] = (
        16 * 1024 * 1024
    ),
    max_document: Annotated[
        int, typer.Option(help="Largest document uploaded raw (POST Binary), in bytes.")
    ] = 512 * 1024 * 1024,
    dmp_strict: Annotated[
        bool | None,
        typer.Option(
            help="Refuse to feed the DMP without its NOS value sets and PDSm guide "
            "(default: refuse unless demo data is loaded)."
        ),
    ] = None,
    regulation_centre: Annotated[
        list[str] | None,
        typer.Option(
            help="A structure (FINESS, SIRET or RASS) whose professionals may use the centre de "
            "régulation (SAMU) mode, X-Access-Mode: centre-de-regulation (repeatable; also "
            "MAISON_REGULATION_CENTRES, comma-separated)."
        ),
    ] = None,
    admin: Annotated[
        list[str] | None,
        typer.Option(
            help="IDNPS of an administrator (identity-vigilance, DPO, operators), granted the "
            "maison:admin scope at sign-in (repeatable; also MAISON_ADMINS, comma-separated)."
        ),
    ] = None,
    emergency_minutes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=240,
            help="How long a bris de glace opens a record, in minutes (default 30; also "
            "MAISON_EMERGENCY_MINUTES).",
        ),
    ] = None,
    state: StateOpt = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    sqlite_synchronous: Annotated[
        str,
        typer.Option(
            help="SQLite fsync policy: FULL (default: every acknowledged write survives power "
            "loss) or NORMAL (survives a crash of maison, not of the machine)."
        ),
    ] = "FULL",
) -> None:
    """Start the FHIR server (sets everything up on first start)."""
    import uvicorn

    from maison.api.app import prepare
    from maison.cli.packages import ensure_all
    from maison.portal.site import create_site

    ensure_all()
    if workers <= 0:
        workers = max(1, min(4, os.cpu_count() or 1))
    settings = Settings(
        data=data,
        host=host,
        port=port,
        public_url=public_url,
        state=state,
        issuer=issuer,
        audience=audience,
        demo=demo,
        max_body_bytes=max_body,
        max_document_bytes=max_document,
        dmp_strict=dmp_strict,
        workers=workers,
        sqlite_synchronous=sqlite_synchronous.upper(),
    )
    if regulation_centre:
        settings.regulation_centres = ",".join(
            [*settings.regulation_ids, *(c.strip() for c in regulation_centre if c.strip())]
        )
    if admin:
        settings.admins = ",".join([*settings.admin_ids, *(a.strip() for a in admin if a.strip())])
    if emergency_minutes is not None:
        settings.emergency_minutes = emergency_minutes
    if settings.sqlite_synchronous not in ("FULL", "NORMAL", "EXTRA"):
        raise typer.BadParameter("--sqlite-synchronous must be FULL, NORMAL or EXTRA")
    services = None
    with console.status("Preparing the store…"):
        if workers > 1:
            # prepare in a short-lived process: the supervisor then holds no definitions
            proc = multiprocessing.get_context("spawn").Process(
                target=_prepare, args=(settings.to_env(),)
            )
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                raise typer.Exit(1)
        else:
            try:
                services = prepare(settings)
            except DataKeyError as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(2) from None
    if settings.issuer is None:
        console.print(
            "[yellow]Development issuer active[/yellow]: get a token with "
            f"`maison token --data {data}`"
        )
    console.print(f"maison FHIR R4 server on {settings.base_url} (data: {data})")
    console.print(f"portal (patients and professionals): {settings.base_url}/portal/")
    if services is None:  # workers build their own services from the settings
        os.environ["MAISON_SETTINGS"] = settings.to_env()
    uvicorn.run(
        "maison.portal.site:app_from_env" if services is None else create_site(settings, services),
        factory=services is None,
        host=host,
        port=port,
        workers=workers if services is None else None,
        log_level=log_level,
        access_log=False,
    )


def _prepare(settings_json: str) -> None:
    """Migrate and load the demo data (run in a child process before the workers start)."""
    from maison.api.app import prepare

    try:
        prepare(Settings(**orjson.loads(settings_json))).store.close()
    except DataKeyError as exc:
        console.print(f"[red]{exc}[/red]")
        raise SystemExit(2) from None


@app.command()
def token(
    data: DataOpt = DEFAULT_DATA,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="SMART scope (repeatable).")
    ] = None,
    subject: Annotated[str, typer.Option(help="Token subject.")] = "dev-user",
    lifetime: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
    patient: Annotated[
        str | None,
        typer.Option(
            help="SMART launch patient: a Patient id, or a matricule INS (15 digits) looked up."
        ),
    ] = None,
    system: Annotated[
        str | None,
        typer.Option(help="A backend client id: a system/ token with that client_id."),
    ] = None,
    rpps: Annotated[
        str | None,
        typer.Option(help="A professional of the imported Annuaire (RPPS, ADELI or IDNPS)."),
    ] = None,
    activity: Annotated[
        int | None, typer.Option(help="With --rpps: which of his activities (0-based).")
    ] = None,
    state: StateOpt = None,
) -> None:
    """Print a development access token signed by the local issuer (last line of output)."""
    from maison.security.issuer import LocalIssuer

    settings = Settings(data=data, state=state)
    info_path = server_file(settings.state_dir)
    if info_path.exists():
        info = orjson.loads(info_path.read_bytes())
    else:
        info = {
            "issuer": settings.issuer_url,
            "audience": settings.base_url,
            "local_issuer": True,
        }
    if not info.get("local_issuer", True):
        console.print("[red]This server trusts an external issuer; get tokens from it.[/red]")
        raise typer.Exit(2)
    issuer = LocalIssuer.load_or_create(settings.state_dir / "keys", info["issuer"])
    if patient is not None and len(patient) == 15 and patient[:13].isdigit():
        patient = _patient_by_ins(settings, patient)
    extra: dict[str, object] = {"patient": patient} if patient else {}
    if system is not None:
        if rpps is not None or patient is not None:
            console.print("[red]--system mints a backend token: no --rpps, no --patient[/red]")
            raise typer.Exit(2)
        extra["client_id"] = system
        subject = system
        scope = scope or ["system/*.*"]
        if any(not s.startswith("system/") for s in scope):
            console.print("[red]a --system token carries system/ scopes only[/red]")
            raise typer.Exit(2)
    if rpps is not None:
        subject, professional = _professional_claims(settings, rpps, activity)
        extra.update(professional)
    elif activity is not None:
        console.print("[red]--activity goes with --rpps[/red]")
        raise typer.Exit(2)
    scopes = scope or (["user/*.cruds"] if rpps else ["system/*.*"])
    jwt = issuer.mint(subject, scopes, info["audience"], lifetime, extra or None)
    console.print(
        f"issuer {info['issuer']}, audience {info['audience']}, scopes {' '.join(scopes)}"
    )
    sys.stdout.write(jwt + "\n")


def _patient_by_ins(settings: Settings, ins: str) -> str:
    """The id of the Patient carrying a matricule INS (NIR, NIA or their test OIDs)."""
    from maison.api.services import make_store
    from maison.fhir.definitions import default_definitions
    from maison.store.interface import Stored, StoreTx

    store = make_store(settings, default_definitions())
    try:
        store.migrate()
        for oid in ("8", "9", "10", "11"):
            system = f"urn:oid:1.2.250.1.213.1.4.{oid}"

            def holders(tx: StoreTx, system: str = system) -> list[Stored]:
                return tx.holders("Patient", "identifier", system, ins)

            held = store.read(holders)
            if held:
                console.print(f"patient {held[0].id} (INS {ins})")
                return str(held[0].id)
    finally:
        store.close()
    console.print(f"[red]no Patient carries the INS {ins}[/red]")
    raise typer.Exit(2)


def _professional_claims(
    settings: Settings, number: str, activity: int | None
) -> tuple[str, dict[str, object]]:
    """(subject, claims) of a professional of the imported Annuaire, his activity chosen and
    cross-checked: what the local PSC provider would assert for him."""
    from maison.api.services import make_store
    from maison.fhir.definitions import default_definitions
    from maison.security.professional import ProfessionalContextError, from_userinfo, token_claims
    from maison.services.psc.annuaire_lookup import check_professional, userinfo_for_professional

    defs = default_definitions()
    store = make_store(settings, defs)
    try:
        store.migrate()
        claims = userinfo_for_professional(store, defs, number)
        context = from_userinfo(claims, activity)
        check_professional(store, defs, context)
    except ProfessionalContextError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        store.close()
    console.print(
        f"professional {context.national_id}, activity {context.activity.index}: "
        f"{context.activity.describe()}"
    )
    return context.national_id, token_claims(context)


@db_app.command("upgrade")
def db_upgrade(data: DataOpt = DEFAULT_DATA, state: StateOpt = None) -> None:
    """Apply schema migrations."""
    from maison.api.services import make_store
    from maison.fhir.definitions import default_definitions

    store = make_store(Settings(data=data, state=state), default_definitions())
    store.migrate()
    console.print("[green]schema up to date[/green]")


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="Bundle JSON files (transaction/batch).")],
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Load transaction or batch Bundles into the store (works while the server runs)."""
    from maison.api.app import load_bundles
    from maison.api.services import build_services

    services = build_services(Settings(data=data, state=state, demo=False))
    services.store.migrate()
    total = 0
    with Progress(console=console) as progress:
        task = progress.add_task("Importing", total=len(files))
        for f in files:
            try:
                total += load_bundles(services, [orjson.loads(f.read_bytes())])
            except FhirError as exc:  # a refused bundle writes nothing: say why, no traceback
                console.print(f"[red]{f}: refused, nothing written from it: {exc.message}[/red]")
                raise typer.Exit(1) from None
            except orjson.JSONDecodeError as exc:
                console.print(f"[red]{f}: not JSON: {exc}[/red]")
                raise typer.Exit(1) from None
            progress.advance(task)
    services.store.analyze()
    console.print(f"{total} resources written")


@ig_app.command("install")
def ig_install(
    paths: Annotated[
        list[Path],
        typer.Argument(help="JSON files, folders of them, or FHIR npm packages (.tgz)."),
    ],
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Install a guide's StructureDefinitions, ValueSets, CodeSystems and SearchParameters
    (works while the server runs: it picks them up within a second)."""
    from maison.api.app import load_bundles
    from maison.api.services import build_services
    from maison.cli.guides import collect_conformance, install_bundles

    found, skipped = collect_conformance(paths)
    if not found:
        console.print(
            "[red]No StructureDefinition, ValueSet, CodeSystem or SearchParameter found[/red]"
        )
        raise typer.Exit(2)
    services = build_services(Settings(data=data, state=state, demo=False))
    services.store.migrate()
    services.store.check_keys("the state folder")
    failures: list[str] = []
    written = 0
    with Progress(console=console) as progress:
        task = progress.add_task("Installing", total=len(found))
        for bundle, names in install_bundles(found, size=50):
            out = load_bundles(services, [bundle], responses=True)
            for name, entry in zip(names, out, strict=True):
                status = entry["response"]["status"]
                if status.startswith(("200", "201")):
                    written += 1
                else:
                    issue = entry["response"].get("outcome", {}).get("issue", [{}])[0]
                    failures.append(f"{name}: {status}: {issue.get('diagnostics', '')}")
            progress.advance(task, len(names))
    console.print(f"{written} conformance resources installed, {skipped} other resources skipped")
    for line in failures:
        console.print(f"[red]refused[/red] {line}")
    bases = sorted(
        {
            base
            for _, res in found
            if res["resourceType"] == "SearchParameter"
            for base in res.get("base", [])
        }
    )
    if bases:
        services.refresh()
        _reindex(services, _concrete(services, bases))
    if failures:
        raise typer.Exit(1)


def _concrete(services: Any, bases: list[str]) -> list[str]:
    """Resource types to reindex for parameters on these bases (Resource: every type)."""
    if any(b in ("Resource", "DomainResource") for b in bases):
        return sorted(services.defs.resource_types)
    return [b for b in bases if services.defs.is_resource_type(b)]


def _reindex(services: Any, types: list[str], batch: int = 500) -> int:
    """Recompute index rows type by type, in batches, with a progress bar."""
    done = 0
    with Progress(console=console) as progress:
        for rtype in types:
            task = progress.add_task(f"Reindexing {rtype}", total=None)
            after: str | None = None
            while True:
                ids = services.store.reindex_ids(rtype, after, batch)
                if not ids:
                    break
                done += services.store.write(
                    lambda tx, ids=ids, rtype=rtype: tx.reindex(rtype, ids)
                )
                after = ids[-1]
                progress.advance(task, len(ids))
            progress.update(task, total=progress.tasks[task].completed)
    services.store.analyze()
    console.print(f"{done} resources reindexed")
    return done


@app.command()
def reindex(
    types: Annotated[
        list[str] | None, typer.Argument(help="Resource types (default: every type).")
    ] = None,
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
) -> None:
    """Recompute search index rows from the current versions (works while the server runs)."""
    from maison.api.services import build_services

    services = build_services(Settings(data=data, state=state, demo=False))
    services.store.migrate()
    services.store.check_keys("the state folder")
    services.refresh()
    unknown = [t for t in types or [] if not services.defs.is_resource_type(t)]
    if unknown:
        console.print(f"[red]Unknown resource type(s): {', '.join(unknown)}[/red]")
        raise typer.Exit(2)
    _reindex(services, types or sorted(services.defs.resource_types))


def main() -> None:
    """Entry point."""
    app()


if __name__ == "__main__":
    main()
