"""Options every ``maison`` command that opens the store shares.

https://typer.tiangolo.com/tutorial/parameter-types/
"""

from __future__ import annotations

from typing import Annotated

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
