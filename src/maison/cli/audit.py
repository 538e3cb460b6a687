"""``maison audit``: verify the tamper-evident audit trail, list its AuditEvents, sign its head.

https://profiles.ihe.net/ITI/BALP/ (AuditEvents), https://www.rfc-editor.org/rfc/rfc8032
(checkpoint signatures)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from maison.api.settings import DEFAULT_DATA, Settings
from maison.audit.chain import AuditTrail, CheckpointKey, verify_chain
from maison.cli.options import DataOpt, StateOpt, open_bare_store
from maison.cli.progress import rate, rate_progress
from maison.store.sql import SqlStore

audit_app = typer.Typer(
    help="The audit trail: verify its hash chain and signed checkpoints, list AuditEvents."
)
console = Console(stderr=True)


def _open(data: str, state: str | None) -> tuple[SqlStore, Path]:
    """The store the server uses (no definitions: nothing is indexed) and its key folder."""
    store = open_bare_store(data, state, "maison audit")
    return store, Settings(data=data, state=state, demo=False).state_dir / "keys"


@audit_app.command("verify")
def verify(
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
    from_seq: Annotated[
        int, typer.Option("--from", min=1, help="Start at this entry (trusting the one before).")
    ] = 1,
) -> None:
    """Walk the chain in order; print the entries checked, the rate, and the first broken link
    or "intact" (exit code 1 when broken)."""
    store, keys = _open(data, state)
    try:
        key = CheckpointKey.load(keys)
    except FileNotFoundError as exc:
        store.close()
        console.print(f"[red]{exc}[/red]: run with the --state folder of the server", markup=True)
        raise typer.Exit(1) from None
    started = time.perf_counter()
    try:
        with rate_progress(console) as progress:
            task = progress.add_task("verifying the audit chain", total=None, rate="")

            def step(done: int, total: int) -> None:
                progress.update(
                    task, completed=done, total=total, rate=rate(done, started, "entries")
                )

            report = verify_chain(store, key, step, from_seq)
    finally:
        store.close()
    typer.echo(
        f"{report.checked:,} entries checked ({report.first or '-'}..{report.last or '-'}), "
        f"{report.checkpoints:,} signed checkpoints, in {report.seconds:.2f} s "
        f"({report.rate:,.0f} entries/s)"
    )
    for note in report.notes:
        typer.echo(f"note: {note}")
    if report.broken is not None:
        typer.echo(
            f"BROKEN at seq {report.broken.seq} ({report.broken.kind}): {report.broken.message}"
        )
        raise typer.Exit(1)
    if report.last_hash is not None:
        typer.echo(f"intact; head hash {report.last_hash.hex()}")
    else:
        typer.echo("intact (empty)")


@audit_app.command("show")
def show(
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Only this record (Patient/123).")
    ] = None,
    count: Annotated[int, typer.Option("--count", min=1, help="How many, newest first.")] = 20,
) -> None:
    """List the newest AuditEvents (of one patient's record): when, what, who, outcome."""
    store, keys = _open(data, state)
    try:
        trail = AuditTrail(store, CheckpointKey.load_or_create(keys))
        events = trail.for_patient(patient, count=count)
    finally:
        store.close()
    table = Table(title=f"AuditEvents{f' of {patient}' if patient else ''}")
    for column in ("seq", "recorded", "kind", "outcome", "who", "patient", "what", "reason"):
        table.add_column(column, justify="right" if column == "seq" else "left")
    for event in events:
        table.add_row(*_row(event))
    console.print(table)


@audit_app.command("checkpoint")
def checkpoint(data: DataOpt = DEFAULT_DATA, state: StateOpt = None) -> None:
    """Sign the current head now, so that entries up to it cannot be cut off unseen."""
    store, keys = _open(data, state)
    try:
        seq = AuditTrail(store, CheckpointKey.load_or_create(keys)).checkpoint()
    finally:
        store.close()
    typer.echo(f"checkpoint signed at seq {seq}" if seq else "nothing new since the last one")


def _row(event: dict[str, Any]) -> list[str]:
    from maison.audit.events import kind_of, patient_of

    who = ""
    for agent in event.get("agent") or ():
        if agent.get("requestor"):
            ident = (agent.get("who") or {}).get("identifier") or {}
            who = str(ident.get("value") or (agent.get("who") or {}).get("reference") or "")
    what, reason = [], ""
    for entity in event.get("entity") or ():
        role = (entity.get("role") or {}).get("code")
        if role in ("3", "4"):
            what.append(str((entity.get("what") or {}).get("reference", "")))
        if role == "13":
            reason = str(entity.get("name") or entity.get("description") or "")
    return [
        str(event.get("id", "")),
        str(event.get("recorded", "")),
        kind_of(event),
        str(event.get("outcome", "")),
        who,
        patient_of(event) or "",
        ", ".join(what),
        reason,
    ]
