"""``maison dmp purge``: the administrator's job that physically deletes the documents of the
closed DMPs whose retention period is over — their DocumentReferences, Lists (SubmissionSets,
Folders) and Binaries, every version and index row, and the documents' encrypted content in the
blob store. Nothing else is ever physically deleted: the Patient, his Consents and the audit
trail stay.

https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/ (closure; retention of a closed DMP: 10 years)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from maison.api.dmp_operations import status_of
from maison.api.settings import DEFAULT_DATA, Settings
from maison.cli.options import DataOpt, StateOpt, open_bare_store
from maison.cli.progress import rate, rate_progress
from maison.services.dmp import record
from maison.store.blobs import BlobStore, open_blob_store
from maison.store.sql import SqlStore, SqlTx

dmp_app = typer.Typer(help="The DMP: purge the closed DMPs whose retention period is over.")
console = Console(stderr=True)
#: The reference search parameters naming the patient of what a purge removes.
DOCUMENTS = {"DocumentReference": ("subject", "patient"), "List": ("subject", "patient")}
PAGE = 500


@dmp_app.callback()
def dmp() -> None:
    """The DMP: purge the closed DMPs whose retention period is over."""


@dataclass
class PurgePlan:
    """What the purge of one closed DMP removes."""

    patient: str
    closed_at: str | None
    purge_after: date | None
    resources: list[tuple[str, str]] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)

    def count(self, res_type: str) -> int:
        """How many resources of the type it removes."""
        return sum(1 for t, _ in self.resources if t == res_type)


def _binary_id(url: Any) -> str | None:
    if not isinstance(url, str) or "Binary/" not in url:
        return None
    tail = url.split("Binary/", 1)[1].split("/")[0]
    return tail or None


def plan_purge(tx: SqlTx, patient_id: str, today: date, retention_years: int) -> PurgePlan | None:
    """The purge of the patient's DMP if it is closed and its retention is over on ``today``,
    else None (https://interop.esante.gouv.fr/ig/fhir/pdsm4dmp/)."""
    patient = tx.read("Patient", patient_id)
    if patient is None or patient.deleted or patient.resource is None:
        return None
    if record.closure_date(patient.resource) is None:
        return None
    status = status_of(tx, patient, retention_years)
    if not record.purge_due(status, today):
        return None
    plan = PurgePlan(f"Patient/{patient_id}", status.closed_at, status.purge_after)
    binaries: set[str] = set()
    for rtype, rid in tx.referencing("Patient", patient_id, DOCUMENTS):
        plan.resources.append((rtype, rid))
        if rtype != "DocumentReference":
            continue
        doc = tx.read(rtype, rid)
        for content in (doc.resource or {}).get("content") or [] if doc is not None else []:
            attachment = content.get("attachment") if isinstance(content, dict) else None
            blob = _binary_id(attachment.get("url")) if isinstance(attachment, dict) else None
            if blob is not None:
                binaries.add(blob)
    plan.resources += [("Binary", b) for b in sorted(binaries)]
    plan.blobs = sorted(binaries)
    return plan if plan.resources else None  # already purged


def _open(data: str, state: str | None) -> tuple[SqlStore, BlobStore]:
    """The store (no definitions: the purge indexes nothing) and the blob store the server
    uses (``Settings.blob_dir``, keys in ``STATE/keys``)."""
    settings = Settings(data=data, state=state, demo=False)
    store = open_bare_store(data, state, "maison dmp purge")
    return store, open_blob_store(settings.blob_dir, settings.state_dir / "keys")


def _patient_ids(store: SqlStore) -> list[str]:
    ids: list[str] = []
    after: str | None = None
    while page := store.reindex_ids("Patient", after, PAGE):
        ids += page
        after = page[-1]
    return ids


def _purge_one(store: SqlStore, blobs: BlobStore, plan: PurgePlan) -> int:
    """Remove the plan's resources in one transaction, then the content; the blobs left (a
    failure after the commit) are orphans nothing references. Returns the blobs removed."""

    def unit(tx: SqlTx) -> int:
        return sum(tx.purge(rtype, rid) for rtype, rid in plan.resources)

    store.write(unit)
    return sum(1 for blob in plan.blobs if blobs.delete(blob))


@dmp_app.command("purge")
def purge(
    data: DataOpt = DEFAULT_DATA,
    state: StateOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be purged; delete nothing.")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option("--now", help="The day to purge as of (YYYY-MM-DD; default: today, UTC)."),
    ] = None,
    retention_years: Annotated[
        int, typer.Option("--retention-years", help="How long a closed DMP is kept.")
    ] = record.RETENTION_YEARS,
) -> None:
    """Physically delete the documents of the closed DMPs whose retention period is over."""
    try:
        today = date.fromisoformat(now[:10]) if now else datetime.now(UTC).date()
    except ValueError:
        raise typer.BadParameter(f"--now must be a date YYYY-MM-DD, not {now!r}") from None
    if retention_years < 0:
        raise typer.BadParameter("--retention-years must not be negative")
    store, blobs = _open(data, state)
    try:
        plans = _scan(store, today, retention_years)
        removed = 0
        if not dry_run and plans:
            with rate_progress(console) as progress:
                task = progress.add_task("purging DMPs", total=len(plans), rate="")
                started = time.perf_counter()
                for i, plan in enumerate(plans, 1):
                    removed += _purge_one(store, blobs, plan)
                    progress.update(task, completed=i, rate=rate(i, started, "DMPs"))
    finally:
        store.close()
    _report(plans, today, dry_run, removed)


def _scan(store: SqlStore, today: date, retention_years: int) -> list[PurgePlan]:
    ids = _patient_ids(store)
    plans: list[PurgePlan] = []
    with rate_progress(console) as progress:
        task = progress.add_task("closed DMPs", total=len(ids), rate="")
        started = time.perf_counter()
        for start in range(0, len(ids), PAGE):
            page = ids[start : start + PAGE]

            def look(tx: SqlTx, page: list[str] = page) -> list[PurgePlan]:
                found = (plan_purge(tx, pid, today, retention_years) for pid in page)
                return [p for p in found if p is not None]

            plans += store.read(look)
            done = start + len(page)
            progress.update(task, completed=done, rate=rate(done, started, "patients"))
    return plans


def _report(plans: list[PurgePlan], today: date, dry_run: bool, blobs_removed: int) -> None:
    out = Console()
    verb = "would purge" if dry_run else "purged"
    if not plans:
        out.print(
            f"nothing to purge as of {today}: no closed DMP past its retention period",
            soft_wrap=True,
        )
        return
    table = Table(title=f"DMP purge as of {today}{' (dry run)' if dry_run else ''}")
    for column in ("patient", "closed", "kept until", "documents", "lists", "binaries"):
        table.add_column(column)
    for p in plans:
        table.add_row(
            escape(p.patient),
            escape((p.closed_at or "")[:10]),
            str(p.purge_after or ""),
            str(p.count("DocumentReference")),
            str(p.count("List")),
            str(p.count("Binary")),
        )
    out.print(table)
    docs = sum(p.count("DocumentReference") for p in plans)
    out.print(
        f"{verb} {len(plans)} DMP(s): {docs} document(s), "
        f"{sum(p.count('List') for p in plans)} list(s), "
        f"{sum(p.count('Binary') for p in plans)} binaries"
        + ("" if dry_run else f", {blobs_removed} content blob(s) deleted"),
        soft_wrap=True,
    )


if __name__ == "__main__":  # until it is registered in `maison` (python -m maison.cli.dmp)
    dmp_app()
