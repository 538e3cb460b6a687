"""`maison keys list|rotate` as an operator runs them (through Typer's test runner).

https://csrc.nist.gov/pubs/sp/800/57/pt1/r5/final
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from typer.testing import CliRunner

from maison.cli.keys import blob_dirs, keys_app
from maison.store.blobs import BlobStore, FileBackend, MasterKeys

runner = CliRunner()


def _app() -> typer.Typer:
    """The sub-app as `maison` mounts it (``app.add_typer(keys_app, name="keys")``)."""
    app = typer.Typer()
    app.add_typer(keys_app, name="keys")
    return app


def _invoke(*args: str) -> tuple[int, str]:
    env = {"COLUMNS": "200", "MAISON_BLOB_S3_BUCKET": ""}
    result = runner.invoke(_app(), ["keys", *args], env=env)
    return result.exit_code, result.output


def _store(data: Path) -> BlobStore:
    blob_dir, key_dir = blob_dirs(str(data), None)
    return BlobStore(FileBackend(blob_dir), MasterKeys.load_or_create(key_dir))


def test_list_then_rotate_then_retire(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = _store(data)
    ids = [store.put([os.urandom(n)], max_bytes=10_000).blob_id for n in (1, 100, 5000)]
    contents = {b: b"".join(store.open(b)) for b in ids}
    assert (data / "keys" / "blob-master-0001.key").exists()
    assert (data / "blobs" / ids[0][:2] / ids[0]).exists()

    code, text = _invoke("list", "--data", str(data))
    assert code == 0, text
    assert "0001" in text and "current" in text and " 3 " in text

    code, text = _invoke("rotate", "--data", str(data))
    assert code == 0, text
    assert "3 data keys re-wrapped under master key 0002 in" in text
    code, text = _invoke("list", "--data", str(data))
    assert "unused" in text  # 0001 wraps nothing now, and is still there

    code, text = _invoke("rotate", "--current-key", "--retire", "--data", str(data))
    assert code == 0, text
    assert "0 data keys re-wrapped under master key 0002" in text
    assert "retired master keys: 0001" in text
    assert sorted(p.name for p in (data / "keys").iterdir()) == ["blob-master-0002.key"]
    reopened = _store(data)
    assert {b: b"".join(reopened.open(b)) for b in ids} == contents


def test_state_folder_holds_the_keys_when_data_is_a_url(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, text = _invoke(
        "list", "--data", "postgresql://nobody@127.0.0.1/none", "--state", str(state)
    )
    assert code == 0, text
    assert (state / "keys" / "blob-master-0001.key").exists()
    assert blob_dirs("postgresql://x/y", str(state)) == (
        state.resolve() / "blobs",
        state.resolve() / "keys",
    )


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _store(data)
    (data / "keys" / "blob-master-0001.key").chmod(0o644)
    code, text = _invoke("rotate", "--data", str(data))
    assert code == 1
    assert "readable by other users (mode 644); chmod 600 it" in text
    assert sorted(p.name for p in (data / "keys").iterdir()) == ["blob-master-0001.key"]
