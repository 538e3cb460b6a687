"""Options every ``maison`` command that opens the store shares.

https://typer.tiangolo.com/tutorial/parameter-types/
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="Data folder (SQLite inside) or a PostgreSQL URL (postgresql://user@host/db).",
        envvar="MAISON_DATA",
    ),
]
StateOpt = Annotated[
    str | None,
    typer.Option("--state", help="Folder for keys when --data is a URL (default ./maison-data)."),
]


def open_bare_store(data: str, state: str | None, command: str) -> Any:
    """The server's store, migrated, for a command that writes no FHIR resource (terminology,
    audit, access, purge): no definitions are loaded, and an attempt to write a resource says
    which ``command`` should not have (https://docs.sqlalchemy.org/en/20/core/)."""
    from pathlib import Path

    from maison.api.settings import Settings
    from maison.store.crypto import Keyring
    from maison.store.sql import SqlStore, StoreSettings

    def no_index(_body: Any) -> Any:
        raise RuntimeError(f"{command} writes no FHIR resources")

    settings = Settings(data=data, state=state, demo=False)
    if not settings.is_url:
        Path(settings.data).mkdir(parents=True, exist_ok=True)
    store = SqlStore(
        settings.database_url,
        Keyring.load_or_create(settings.state_dir),
        no_index,
        settings=StoreSettings(sqlite_synchronous=settings.sqlite_synchronous),
    )
    store.migrate()
    return store
