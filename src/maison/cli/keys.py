"""``maison keys``: the master keys that wrap the document blobs' data keys; rotate and list them.

https://csrc.nist.gov/pubs/sp/800/57/pt1/r5/final (key rotation: re-wrap, never re-encrypt)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from maison.api.settings import DEFAULT_DATA, Settings
from maison.cli.options import DataOpt, StateOpt
from maison.cli.progress import rate, rate_progress
from maison.store.blobs import BlobError, BlobStore, open_blob_store

keys_app = typer.Typer(
    help="Blob master keys: re-wrap every document's data key under a new master key; list them."
)
console = Console(stderr=True)


def blob_dirs(data: str, state: str | None) -> tuple[Path, Path]:
    """The blob folder (``DATA/blobs``, or ``STATE/blobs`` when --data is a URL) and the key
    folder (``STATE/keys``)."""
    settings = Settings(data=data, state=state, demo=False)
    return settings.blob_dir, settings.state_dir / "keys"


def _open(data: str, state: str | None) -> BlobStore:
    blob_dir, key_dir = blob_dirs(data, state)
    try:
        return open_blob_store(blob_dir, key_dir)
    except BlobError as exc:
        console.print(f"[red]{exc.reason}[/red]", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None


@keys_app.command("rotate")
def rotate(
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
    retire: Annotated[
        bool,
        typer.Option(
            "--retire",
            help="Then delete the old master keys no blob uses any more (back them up first).",
        ),
    ] = False,
    new_key: Annotated[
        bool,
        typer.Option(
            "--new-key/--current-key",
            help="Make a new master key (default), or finish an interrupted rotation with the "
            "current one.",
        ),
    ] = True,
) -> None:
    """Re-wrap every blob data key under a new master key; document content is not rewritten."""
    store = _open(data, state)
    started = time.perf_counter()
    target = None if new_key else store.masters.current()
    try:
        with rate_progress(console) as progress:
            task = progress.add_task("re-wrapping data keys", total=None, rate="")

            def step(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total, rate=rate(done, started, "keys"))

            outcome = store.rotate(target, retire=retire, progress=step)
    except BlobError as exc:
        console.print(f"[red]{exc.reason}[/red]", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None
    elapsed = time.perf_counter() - started
    typer.echo(
        f"{outcome.rewrapped:,} data keys re-wrapped under master key {outcome.master_kid} "
        f"in {elapsed:.2f} s"
    )
    if outcome.retired:
        typer.echo(f"retired master keys: {', '.join(outcome.retired)}")
    if outcome.kept:
        typer.echo(
            f"kept master keys still in use (a write raced the rotation; run it again): "
            f"{', '.join(outcome.kept)}"
        )


@keys_app.command("list")
def list_(data: DataOpt = DEFAULT_DATA, state: StateOpt = None) -> None:
    """List the blob master keys: id, creation date and how many blobs each wraps."""
    store = _open(data, state)
    try:
        usage = store.usage()
    except BlobError as exc:
        console.print(f"[red]{exc.reason}[/red]", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None
    current = store.masters.current()
    table = Table(title="Blob master keys")
    for column in ("key id", "created", "blobs", "status"):
        table.add_column(column, justify="right" if column == "blobs" else "left")
    for kid in store.masters.ids():
        created = store.masters.created(kid).strftime("%Y-%m-%d %H:%M:%S UTC")
        status = "current" if kid == current else ("old" if usage.get(kid) else "unused")
        table.add_row(kid, created, f"{usage.get(kid, 0):,}", status)
    for kid in sorted(set(usage) - set(store.masters.ids())):
        table.add_row(kid, "", f"{usage[kid]:,}", "[red]missing[/red]")
    console.print(table)
