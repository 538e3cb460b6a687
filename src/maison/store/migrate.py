"""Schema migrations with Alembic, run on the store's own engine.

https://alembic.sqlalchemy.org/en/latest/api/commands.html
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(connection: object) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the latest)."""
    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new migration from the difference between schema.py and the database."""
    with engine.begin() as conn:
        command.revision(_config(conn), message=message, autogenerate=True)
