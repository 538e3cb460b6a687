"""The data keyring: a new key is written once, whoever encrypts first, even from several
threads at once (the bulk import writes from two)."""

from __future__ import annotations

import threading
from pathlib import Path

from maison.store.crypto import Keyring


def test_concurrent_first_encryptions_persist_one_key(tmp_path: Path) -> None:
    ring = Keyring.load_or_create(tmp_path)
    assert ring.unsaved is not None
    start = threading.Barrier(8)
    sealed: list[bytes] = []
    errors: list[BaseException] = []

    def first_write(i: int) -> None:
        start.wait()
        try:
            sealed.append(ring.encrypt(f"body {i}".encode(), b"Basic/x/1"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    files = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert files == ["data-0001.key"]  # and no temporary file left behind
    again = Keyring.load_or_create(tmp_path)
    assert sorted(again.decrypt(s, b"Basic/x/1").decode() for s in sealed) == [
        f"body {i}" for i in range(8)
    ]
