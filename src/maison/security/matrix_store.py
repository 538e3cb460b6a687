"""Where the active habilitation matrix lives: the packaged CSV by default; a corrected one
loaded with ``maison access matrix load`` in the store's meta table, every version kept so a
rollback is one command; and :class:`ActiveMatrix`, which a running server asks per request
(one small meta read per ``refresh_seconds``, the matrix re-parsed only when its version
changed).

Keys: ``access:matrix`` holds the pointer (JSON: version, loaded_at, loaded_by, previous,
history); ``access:matrix:<version>`` the CSV text of each version ever activated.

https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Protocol

from maison.security.matrix import (
    Canonical,
    Matrix,
    MatrixDiff,
    MatrixError,
    Vocabulary,
    diff,
    load_csv,
)

KEY: Final = "access:matrix"
PACKAGED_BY: Final = "maison (packaged default)"


class MetaStore(Protocol):
    """The store's key-value meta table (``SqlStore`` has it)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def swap_meta(self, key: str, expected: str | None, value: str) -> str | None: ...


class MatrixStoreError(ValueError):
    """A matrix cannot be activated or rolled back; ``errors`` when the file is invalid.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """

    def __init__(self, message: str, errors: list[MatrixError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


def packaged_csv() -> str:
    """The habilitation matrix shipped with maison (provisional content, full structure).

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    return (resources.files("maison") / "data" / "habilitation-matrix.csv").read_text("utf-8")


def _parse(text: str, canonical: Canonical, where: str) -> Matrix:
    parsed = load_csv(text, canonical=canonical)
    if isinstance(parsed, list):
        raise MatrixStoreError(f"the {where} habilitation matrix is invalid", parsed)
    return parsed


def packaged_matrix(canonical: Canonical) -> Matrix:
    """The packaged matrix (raises :class:`MatrixStoreError` if the shipped file is broken).

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    return _parse(packaged_csv(), canonical, "packaged").stamped(None, PACKAGED_BY)


def pointer(store: MetaStore) -> dict[str, Any] | None:
    """The record of the active stored matrix (None: the packaged one is active).

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    raw = store.get_meta(KEY)
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


def stored_text(store: MetaStore, version: str) -> str | None:
    """The CSV text of a version ever activated."""
    raw = store.get_meta(f"{KEY}:{version}")
    return None if raw is None else str(json.loads(raw)["csv"])


def active_matrix(store: MetaStore, canonical: Canonical) -> Matrix:
    """The active matrix: the stored one, else the packaged one.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    record = pointer(store)
    if record is None:
        return packaged_matrix(canonical)
    text = stored_text(store, str(record["version"]))
    if text is None:
        raise MatrixStoreError(f"the stored matrix version {record['version']} has no content")
    return _parse(text, canonical, "stored").stamped(
        record.get("loaded_at"), record.get("loaded_by")
    )


def active_text(store: MetaStore) -> str:
    """The CSV text of the active matrix (as it was loaded)."""
    record = pointer(store)
    if record is None:
        return packaged_csv()
    return stored_text(store, str(record["version"])) or ""


@dataclass(frozen=True, slots=True)
class Activation:
    """What an activation did: the new version, the one it replaced, and the cells changed.

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """

    matrix: Matrix
    previous: str
    changes: MatrixDiff


def _activate(
    store: MetaStore,
    text: str,
    matrix: Matrix,
    *,
    loaded_by: str,
    loaded_at: str,
    canonical: Canonical,
) -> Activation:
    raw = store.get_meta(KEY)
    record = json.loads(raw) if raw is not None else None
    old = active_matrix(store, canonical)
    history: list[str] = list(record.get("history", [])) if isinstance(record, dict) else []
    if not history:  # the packaged matrix becomes a version one can roll back to
        packaged = packaged_matrix(canonical)
        store.set_meta(
            f"{KEY}:{packaged.version}",
            json.dumps({"csv": packaged_csv(), "loaded_by": PACKAGED_BY, "loaded_at": None}),
        )
        history.append(packaged.version)
    if stored_text(store, matrix.version) is None:
        store.set_meta(
            f"{KEY}:{matrix.version}",
            json.dumps({"csv": text, "loaded_by": loaded_by, "loaded_at": loaded_at}),
        )
    if matrix.version in history:
        history.remove(matrix.version)
    history.append(matrix.version)
    new_record = {
        "version": matrix.version,
        "loaded_at": loaded_at,
        "loaded_by": loaded_by,
        "previous": old.version,
        "history": history,
    }
    found = store.swap_meta(KEY, raw, json.dumps(new_record))
    if found != raw:
        raise MatrixStoreError(
            "the active matrix was changed by someone else meanwhile: nothing activated, "
            "run the command again"
        )
    stamped = matrix.stamped(loaded_at, loaded_by)
    return Activation(stamped, old.version, diff(old, stamped))


def activate(
    store: MetaStore,
    text: str,
    *,
    canonical: Canonical,
    loaded_by: str,
    loaded_at: str,
    vocabulary: Vocabulary | None = None,
) -> Activation:
    """Validate a matrix CSV and make it the active one (raises :class:`MatrixStoreError` with
    every error when it is invalid; nothing is changed then).

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    parsed = load_csv(text, canonical=canonical, vocabulary=vocabulary)
    if isinstance(parsed, list):
        raise MatrixStoreError("the matrix is invalid: nothing activated", parsed)
    return _activate(
        store, text, parsed, loaded_by=loaded_by, loaded_at=loaded_at, canonical=canonical
    )


def history(store: MetaStore, canonical: Canonical) -> list[str]:
    """Every version ever activated, oldest first (the packaged one when nothing was loaded).

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    record = pointer(store)
    if record is None:
        return [packaged_matrix(canonical).version]
    return [str(v) for v in record.get("history", [])]


def rollback(
    store: MetaStore,
    version: str,
    *,
    canonical: Canonical,
    loaded_by: str,
    loaded_at: str,
) -> Activation:
    """Activate again a version activated before (its full id or a unique prefix of 8+).

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """
    wanted = version.strip().lower()
    known = history(store, canonical)
    matches = [v for v in known if v == wanted or (len(wanted) >= 8 and v.startswith(wanted))]
    if len(matches) != 1:
        listing = ", ".join(v[:12] for v in known) or "none"
        what = "no" if not matches else "more than one"
        raise MatrixStoreError(
            f"{what} matrix version matches '{version}' (versions: {listing}); give 8 or more "
            "characters of one"
        )
    text = stored_text(store, matches[0])
    if text is None:
        if matches[0] != packaged_matrix(canonical).version:
            raise MatrixStoreError(f"the content of version {matches[0]} is not stored")
        text = packaged_csv()
    matrix = _parse(text, canonical, "stored")
    return _activate(
        store, text, matrix, loaded_by=loaded_by, loaded_at=loaded_at, canonical=canonical
    )


class ActiveMatrix:
    """The matrix a server decides with, following what ``maison access matrix load`` stores:
    :meth:`current` is cheap (a clock read) and re-reads the pointer every ``refresh_seconds``;
    a broken stored matrix keeps the last good one (never a silent allow-all).

    https://www.legifrance.gouv.fr/jorf/id/JORFTEXT000048256185
    """

    def __init__(
        self,
        store: MetaStore,
        canonical: Canonical,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float = 1.0,
    ) -> None:
        self._store = store
        self._canonical = canonical
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._raw: str | None = None
        self._matrix = packaged_matrix(canonical)
        self._next = 0.0
        self.last_error: str | None = None

    def current(self) -> Matrix:
        """The active matrix (refreshed when due)."""
        if self._clock() >= self._next:
            self.refresh()
        return self._matrix

    def refresh(self) -> None:
        """Read the pointer now; re-parse only when the active version changed."""
        self._next = self._clock() + self._refresh_seconds
        raw = self._store.get_meta(KEY)
        if raw == self._raw:
            return
        try:
            matrix = active_matrix(self._store, self._canonical)
        except (MatrixStoreError, ValueError, KeyError) as exc:
            self.last_error = str(exc)
            return
        self._matrix = matrix
        self._raw = raw
        self.last_error = None


__all__ = [
    "KEY",
    "Activation",
    "ActiveMatrix",
    "MatrixStoreError",
    "MetaStore",
    "activate",
    "active_matrix",
    "active_text",
    "history",
    "packaged_csv",
    "packaged_matrix",
    "pointer",
    "rollback",
    "stored_text",
]
