"""``maison audit``: verify the tamper-evident audit trail, list its AuditEvents, sign its head.

https://profiles.ihe.net/ITI/BALP/ (AuditEvents), https://www.rfc-editor.org/rfc/rfc8032
(checkpoint signatures)
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
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
    or "intact" (exit code 1 when broken); the outcome is kept for ``$audit-status``."""
    from maison.api.admin_operations import record_verification

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
        record_verification(store, report, "cli", from_seq)  # for $audit-status
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


@audit_app.command("report")
def report(
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
    structure: Annotated[
        str | None,
        typer.Option(
            "--structure",
            help="Only accesses from this structure (its FINESS, SIRET or RASS identifier).",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only accesses on or after this day (YYYY-MM-DD).")
    ] = None,
    all_kinds: Annotated[
        bool, typer.Option("--all-kinds", help="Every access, not only the bris de glace ones.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """The data protection officer's report of bris de glace accesses, newest first: when, the
    professional (IDNPS, name, profession), his structure, the patient, the reason, the outcome
    (https://profiles.ihe.net/ITI/BALP/)."""
    start: datetime | None = None
    if since is not None:
        try:
            start = datetime.combine(date.fromisoformat(since), datetime.min.time(), tzinfo=UTC)
        except ValueError:
            console.print(f"[red]--since {since!r} is not a day (YYYY-MM-DD)[/red]", markup=True)
            raise typer.Exit(2) from None
    store, keys = _open(data, state)
    rows: list[dict[str, Any]] = []
    try:
        trail = AuditTrail(store, CheckpointKey.load_or_create(keys))
        for event in trail.newest(None, start):
            if not all_kinds and not is_break_glass(event):
                continue
            line = report_line(event)
            if structure is not None and structure not in line["structure_ids"]:
                continue
            rows.append(line)
    finally:
        store.close()
    if as_json:
        for line in rows:
            typer.echo(json.dumps(line, ensure_ascii=False, sort_keys=True))
        return
    what = "AuditEvents" if all_kinds else "Bris de glace accesses"
    title = f"{what}{f' from {structure}' if structure else ''}{f' since {since}' if since else ''}"
    table = Table(title=f"{title} ({len(rows)})")
    for column in REPORT_COLUMNS:
        table.add_column(column)
    for line in rows:
        table.add_row(
            line["recorded"],
            " ".join(v for v in (line["idnps"], line["name"]) if v),
            line["profession"] or "",
            line["structure"] or "",
            line["patient"] or "",
            line["reason"] or "",
            _OUTCOMES.get(line["outcome"], line["outcome"]),
        )
    out = Console()
    (out if out.is_terminal else Console(width=200)).print(table)  # piped: no narrow wrap


REPORT_COLUMNS = ("when", "professional", "profession", "structure", "patient", "reason", "outcome")
_OUTCOMES = {"0": "success", "4": "refused", "8": "failed"}


def is_break_glass(event: Mapping[str, Any]) -> bool:
    """Whether an AuditEvent records an access under bris de glace: ``purposeOfEvent`` (or an
    agent's ``purposeOfUse``) BTG of v3-ActReason (https://profiles.ihe.net/ITI/BALP/)."""
    from maison.audit.events import ACT_REASON, kind_of

    purposes = list(event.get("purposeOfEvent") or ())
    for agent in event.get("agent") or ():
        purposes.extend(agent.get("purposeOfUse") or ())
    return kind_of(event) == "break-glass" or any(
        coding.get("system") == ACT_REASON and coding.get("code") == "BTG"
        for purpose in purposes
        for coding in purpose.get("coding") or ()
    )


def report_line(event: Mapping[str, Any]) -> dict[str, Any]:
    """One line of the DPO's report: who (IDNPS, name, profession), from which structure, on
    which patient, why, with what outcome (https://profiles.ihe.net/ITI/BALP/)."""
    from maison.audit.events import (
        IDNPS_SYSTEM,
        OBJECT_ROLE,
        ROLE_CLASS,
        STRUCTURE_SYSTEMS,
        TRE_G15,
        kind_of,
        patient_of,
    )

    idnps = name = profession = subject = None
    structure_ids: list[str] = []
    structure: str | None = None
    short = {system: kind for kind, system in STRUCTURE_SYSTEMS.items()}
    for agent in event.get("agent") or ():
        who = agent.get("who") or {}
        ident = who.get("identifier") or {}
        codes = (agent.get("type") or {}).get("coding") or ()
        if agent.get("requestor"):
            if ident.get("system") == IDNPS_SYSTEM:
                idnps = ident.get("value")
            else:
                subject = ident.get("value") or who.get("reference")
            name = agent.get("name") or who.get("display")
            for role in agent.get("role") or ():
                for coding in role.get("coding") or ():
                    if coding.get("system") == TRE_G15:
                        profession = coding.get("code")
        elif any(c.get("system") == ROLE_CLASS and c.get("code") == "PROV" for c in codes):
            value = ident.get("value")
            if value:
                structure_ids.append(str(value))
                kind = short.get(str(ident.get("system")))
                structure = structure or (f"{kind} {value}" if kind else str(value))
    reason = event.get("outcomeDesc")
    if not reason:
        for entity in event.get("entity") or ():
            role = entity.get("role") or {}
            if role.get("system") == OBJECT_ROLE and role.get("code") == "13":
                reason = entity.get("description") or entity.get("name")
    return {
        "seq": event.get("id"),
        "recorded": str(event.get("recorded", "")),
        "kind": kind_of(event),
        "break_glass": is_break_glass(event),
        "idnps": idnps,
        "subject": subject,
        "name": name,
        "profession": profession,
        "structure": structure,
        "structure_ids": structure_ids,
        "patient": patient_of(event),
        "reason": reason,
        "outcome": str(event.get("outcome", "")),
    }
