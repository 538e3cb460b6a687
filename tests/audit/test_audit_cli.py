"""``maison audit verify|show|checkpoint`` on a store holding a trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from typer.testing import CliRunner

from maison.audit.chain import AuditTrail
from maison.audit.events import Actor, audit_event
from maison.cli.audit import audit_app
from maison.store.audit_log import audit_log
from support import open_sql_store

runner = CliRunner()
WHEN = datetime(2026, 3, 1, tzinfo=UTC)


def _trail(data_url: str, state: Path, defs: Any, count: int) -> None:
    store = open_sql_store(data_url, state, defs)
    try:
        trail = AuditTrail.open(store, state, checkpoint_every=5)
        actor = Actor(subject="s", idnps="810002909371", profession="10")
        trail.record(
            audit_event(
                actor,
                "read",
                recorded=WHEN + timedelta(seconds=n),
                patient=f"Patient/p{n % 2}",
                resources=[f"DocumentReference/d{n}"],
                reason={"rule": "matrix.allow"},
            )
            for n in range(1, count + 1)
        )
    finally:
        store.close()


def test_verify_show_and_tamper(data_url: str, tmp_path: Path, defs: Any) -> None:
    state = tmp_path / "state"
    _trail(data_url, state, defs, 12)
    args = ["--data", data_url, "--state", str(state)]
    result = runner.invoke(audit_app, ["verify", *args])
    assert result.exit_code == 0, result.output
    assert "12 entries checked" in result.output and "intact" in result.output
    assert "2 signed checkpoints" in result.output
    result = runner.invoke(audit_app, ["verify", *args, "--from", "6"])
    assert result.exit_code == 0 and "7 entries checked (6..12)" in result.output

    result = runner.invoke(audit_app, ["show", *args, "--patient", "Patient/p1", "--count", "3"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(audit_app, ["checkpoint", *args])
    assert result.exit_code == 0 and "checkpoint signed at seq 12" in result.output

    store = open_sql_store(data_url, state, defs)
    try:
        with store.engine.begin() as conn:
            conn.execute(update(audit_log).where(audit_log.c.seq == 8).values(kind="search"))
    finally:
        store.close()
    result = runner.invoke(audit_app, ["verify", *args])
    assert result.exit_code == 1
    assert "BROKEN at seq 8 (hash): hash mismatch at seq 8" in result.output


def test_verify_without_the_key_fails(data_url: str, tmp_path: Path) -> None:
    result = runner.invoke(audit_app, ["verify", "--data", data_url, "--state", str(tmp_path)])
    assert result.exit_code == 1
