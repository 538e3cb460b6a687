"""Document blobs: streamed STREAM-style encryption, range reads, tamper detection, size and
hash checks that leave nothing behind, and master key rotation that never rewrites content.

https://eprint.iacr.org/2015/189
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maison.fhir.errors import Category
from maison.store.blobs import (
    MAGIC,
    TAG_LEN,
    BlobCorruptError,
    BlobKeyError,
    BlobMismatchError,
    BlobNotFoundError,
    BlobRangeError,
    BlobStore,
    BlobTooLargeError,
    FileBackend,
    MasterKeys,
    MemoryBackend,
    open_blob_store,
)

CHUNK = 16


def _store(tmp: Path, chunk: int = CHUNK) -> BlobStore:
    return BlobStore(
        FileBackend(tmp / "blobs"), MasterKeys.load_or_create(tmp / "keys"), chunk_size=chunk
    )


def _memory(keys: Path, chunk: int) -> BlobStore:
    return BlobStore(MemoryBackend(), MasterKeys.load_or_create(keys), chunk_size=chunk)


def _pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        yield data[pos : pos + size]
        pos += size
    if pos < len(data):
        yield data[pos:]


def _read(store: BlobStore, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.open(blob_id, start, end))


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _content_path(tmp: Path, blob_id: str) -> Path:
    return tmp / "blobs" / blob_id[:2] / blob_id


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


# --- round trips and ranges (property tests) ---------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=3000),
    chunk=st.integers(1, 64),
    sizes=st.lists(st.integers(0, 200), max_size=20),
)
def test_any_bytes_round_trip_however_they_are_streamed(
    key_dir: Path, data: bytes, chunk: int, sizes: list[int]
) -> None:
    store = _memory(key_dir, chunk)
    info = store.put(_pieces(data, sizes), max_bytes=len(data))
    assert info.size == len(data)
    assert info.sha1 == hashlib.sha1(data).digest()
    assert info.sha256 == hashlib.sha256(data).digest()
    assert _read(store, info.blob_id) == data
    assert store.size(info.blob_id) == len(data)
    stored = store.backend.size(info.blob_id)
    assert stored == len(MAGIC) + len(data) + TAG_LEN * max(1, -(-len(data) // chunk))


@settings(max_examples=25, deadline=None)
@given(
    length=st.integers(0, 1_100_000),
    chunk=st.sampled_from([1024, 4096, 10_000]),
    seed=st.integers(0, 2**32),
    piece=st.integers(1, 300_000),
)
def test_up_to_a_megabyte_round_trips(
    key_dir: Path, length: int, chunk: int, seed: int, piece: int
) -> None:
    data = random.Random(seed).randbytes(length)
    store = _memory(key_dir, chunk)
    info = store.put(_pieces(data, [piece] * (length // piece + 1)), max_bytes=length)
    assert _read(store, info.blob_id) == data
    assert store.verify(info.blob_id).sha256 == hashlib.sha256(data).digest()


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=700),
    chunk=st.integers(1, 50),
    bounds=st.tuples(st.integers(0, 800), st.integers(0, 800) | st.none()),
)
def test_any_range_read_is_the_slice(
    key_dir: Path, data: bytes, chunk: int, bounds: tuple[int, int | None]
) -> None:
    store = _memory(key_dir, chunk)
    blob_id = store.put([data], max_bytes=len(data)).blob_id
    start, end = bounds
    stop = len(data) if end is None else min(end, len(data))
    if start > len(data) or stop < start:
        with pytest.raises(BlobRangeError) as err:
            store.open(blob_id, start, end)
        assert err.value.size == len(data)
        return
    assert _read(store, blob_id, start, end) == data[start:end]


def test_a_range_decrypts_only_the_chunks_it_covers(key_dir: Path) -> None:
    reads: list[tuple[int, int]] = []

    class Spy(MemoryBackend):
        def read(self, name: str, start: int, end: int) -> Iterator[bytes]:
            reads.append((start, end))
            return super().read(name, start, end)

    store = BlobStore(Spy(), MasterKeys.load_or_create(key_dir), chunk_size=100)
    data = os.urandom(1000)
    blob_id = store.put([data], max_bytes=1000).blob_id
    assert _read(store, blob_id, 250, 420) == data[250:420]
    sealed = 100 + TAG_LEN
    assert reads == [(len(MAGIC) + 2 * sealed, len(MAGIC) + 5 * sealed)]  # chunks 2, 3, 4


def test_files_round_trip_with_ranges_and_survive_a_reopen(tmp_path: Path) -> None:
    store = _store(tmp_path, chunk=1000)
    data = os.urandom(10_500)
    info = store.put(_pieces(data, [3000] * 4), max_bytes=20_000)
    again = _store(tmp_path, chunk=7)  # the chunk size of a blob is in its key object
    assert _read(again, info.blob_id) == data
    assert _read(again, info.blob_id, 999, 1001) == data[999:1001]
    assert _read(again, info.blob_id, 10_499) == data[10_499:]
    assert _read(again, info.blob_id, 10_500) == b""
    assert list(again.ids()) == [info.blob_id]
    assert again.exists(info.blob_id) and not again.exists("0" * 32)
    assert again.info(info.blob_id) == info
    assert info.sha1_base64 == base64.b64encode(hashlib.sha1(data).digest()).decode()
    content = _content_path(tmp_path, info.blob_id)
    assert stat.S_IMODE(content.stat().st_mode) == 0o600
    assert data[:64] not in content.read_bytes()


def test_an_empty_blob_is_one_authenticated_chunk(tmp_path: Path) -> None:
    store = _store(tmp_path)
    info = store.put(iter(()), max_bytes=0, expected_size=0)
    assert info.size == 0 and _read(store, info.blob_id) == b""
    path = _content_path(tmp_path, info.blob_id)
    assert path.stat().st_size == len(MAGIC) + TAG_LEN
    path.write_bytes(MAGIC)  # the empty last chunk removed
    with pytest.raises(BlobCorruptError):
        store.open(info.blob_id)


def test_delete_removes_content_and_key(tmp_path: Path) -> None:
    store = _store(tmp_path)
    blob_id = store.put([b"purge me"], max_bytes=100).blob_id
    assert store.delete(blob_id)
    assert not store.delete(blob_id)
    assert _files(tmp_path / "blobs") == []
    with pytest.raises(BlobNotFoundError) as err:
        store.open(blob_id)
    assert err.value.category is Category.NOT_FOUND
    with pytest.raises(BlobNotFoundError):
        store.open("../../etc/passwd")


# --- size, hash and limit checks leave nothing behind ------------------------------------------


def test_size_mismatch_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(BlobMismatchError) as err:
        store.put([b"0123456789", b"ab"], max_bytes=100, expected_size=10)
    assert "attachment.size says 10 bytes but the content has more" in err.value.reason
    with pytest.raises(BlobMismatchError) as err:
        store.put([b"0123456789"], max_bytes=100, expected_size=12)
    assert err.value.reason == "attachment.size says 12 bytes but the content has 10"
    assert err.value.category is Category.UNPROCESSABLE
    assert _files(tmp_path / "blobs") == []


def test_hash_mismatch_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data = os.urandom(100)
    with pytest.raises(BlobMismatchError) as err:
        store.put([data], max_bytes=100, expected_sha1=hashlib.sha1(b"other").digest())
    assert err.value.reason.startswith("attachment.hash (SHA-1) does not match the content")
    assert _files(tmp_path / "blobs") == []
    good = store.put([data], max_bytes=100, expected_sha1=hashlib.sha1(data).digest())
    assert _read(store, good.blob_id) == data


def test_over_limit_input_stops_being_read_past_the_limit(tmp_path: Path) -> None:
    store = _store(tmp_path)
    consumed = 0

    def endless() -> Iterator[bytes]:
        nonlocal consumed
        while True:
            consumed += 1000
            yield b"x" * 1000

    with pytest.raises(BlobTooLargeError) as err:
        store.put(endless(), max_bytes=10_000)
    assert consumed <= 10_000 + 1000
    assert "larger than the limit of 10,000 bytes" in err.value.reason
    assert err.value.category is Category.TOO_LARGE
    assert _files(tmp_path / "blobs") == []


def test_a_failing_source_leaves_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)

    def broken() -> Iterator[bytes]:
        yield b"a" * 100
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put(broken(), max_bytes=1000)
    assert _files(tmp_path / "blobs") == []


# --- tampering ---------------------------------------------------------------------------------


@pytest.fixture
def two(tmp_path: Path) -> tuple[BlobStore, str, str, bytes, bytes]:
    store = _store(tmp_path)
    a, b = os.urandom(5 * CHUNK + 3), os.urandom(5 * CHUNK + 3)
    return store, store.put([a], max_bytes=999).blob_id, store.put([b], max_bytes=999).blob_id, a, b


def _sealed_chunk(i: int) -> slice:
    start = len(MAGIC) + i * (CHUNK + TAG_LEN)
    return slice(start, start + CHUNK + TAG_LEN)


def test_a_flipped_byte_is_detected(
    tmp_path: Path, two: tuple[BlobStore, str, str, bytes, bytes]
) -> None:
    store, a, _, _, _ = two
    path = _content_path(tmp_path, a)
    raw = bytearray(path.read_bytes())
    raw[len(MAGIC) + CHUNK + TAG_LEN + 3] ^= 0x01  # in chunk 1
    path.write_bytes(bytes(raw))
    assert _read(store, a, 0, CHUNK) != b""  # chunk 0 is intact and still reads
    with pytest.raises(BlobCorruptError) as err:
        _read(store, a)
    assert "chunk 1 of blob" in err.value.reason and "fails authentication" in err.value.reason


def test_a_truncated_blob_is_detected(
    tmp_path: Path, two: tuple[BlobStore, str, str, bytes, bytes]
) -> None:
    store, a, _, _, _ = two
    path = _content_path(tmp_path, a)
    raw = path.read_bytes()
    path.write_bytes(raw[: _sealed_chunk(5).start])  # the whole last chunk gone
    with pytest.raises(BlobCorruptError) as err:
        store.open(a, 0, CHUNK)
    assert "truncated" in err.value.reason


def test_dropping_the_last_chunk_is_detected_by_the_last_chunk_flag(tmp_path: Path) -> None:
    """Even with the key object's size re-wrapped to match (as only a master key holder could),
    chunk 4 was sealed as "not last", so a blob cut after it does not authenticate (STREAM)."""
    store = _store(tmp_path)
    data = os.urandom(6 * CHUNK)
    blob_id = store.put([data], max_bytes=999).blob_id
    path = _content_path(tmp_path, blob_id)
    path.write_bytes(path.read_bytes()[: _sealed_chunk(4).stop])
    record = store._record(blob_id)
    data_key = store._data_key(record)
    forged = store._wrap(replace(record, size=5 * CHUNK), data_key)
    store.backend.put(blob_id + ".key", forged.to_bytes())
    assert _read(store, blob_id, 0, 4 * CHUNK) == data[: 4 * CHUNK]  # earlier chunks still read
    with pytest.raises(BlobCorruptError) as err:
        _read(store, blob_id, 4 * CHUNK)
    assert "chunk 4 of blob" in err.value.reason


def test_swapped_chunks_are_detected(
    tmp_path: Path, two: tuple[BlobStore, str, str, bytes, bytes]
) -> None:
    store, a, _, _, _ = two
    path = _content_path(tmp_path, a)
    raw = bytearray(path.read_bytes())
    c1, c2 = raw[_sealed_chunk(1)], raw[_sealed_chunk(2)]
    raw[_sealed_chunk(1)], raw[_sealed_chunk(2)] = c2, c1
    path.write_bytes(bytes(raw))
    with pytest.raises(BlobCorruptError):
        _read(store, a, CHUNK, 2 * CHUNK)


def test_a_chunk_from_another_blob_is_detected(
    tmp_path: Path, two: tuple[BlobStore, str, str, bytes, bytes]
) -> None:
    store, a, b, _, _ = two
    pa, pb = _content_path(tmp_path, a), _content_path(tmp_path, b)
    raw = bytearray(pa.read_bytes())
    raw[_sealed_chunk(2)] = pb.read_bytes()[_sealed_chunk(2)]
    pa.write_bytes(bytes(raw))
    with pytest.raises(BlobCorruptError):
        _read(store, a, 2 * CHUNK, 3 * CHUNK)


def test_whole_contents_swapped_between_blobs_are_detected(
    tmp_path: Path, two: tuple[BlobStore, str, str, bytes, bytes]
) -> None:
    store, a, b, _, _ = two
    pa, pb = _content_path(tmp_path, a), _content_path(tmp_path, b)
    ra, rb = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(rb)
    pb.write_bytes(ra)
    for blob_id in (a, b):
        with pytest.raises(BlobCorruptError):
            _read(store, blob_id)


def test_swapped_key_objects_are_detected(
    tmp_path: Path, two: tuple[BlobStore, str, str, bytes, bytes]
) -> None:
    store, a, b, _, _ = two
    ka = _content_path(tmp_path, a).with_name(a + ".key")
    kb = _content_path(tmp_path, b).with_name(b + ".key")
    ra, rb = ka.read_bytes(), kb.read_bytes()
    ka.write_bytes(rb)
    kb.write_bytes(ra)
    with pytest.raises(BlobCorruptError) as err:
        store.open(a)
    assert f"belongs to blob {b}" in err.value.reason
    # and edited to name the right blob, the wrap's AAD still refuses it
    ka.write_bytes(rb.replace(b.encode(), a.encode()))
    with pytest.raises(BlobCorruptError) as err:
        store.open(a)
    assert "cannot unwrap the data key" in err.value.reason


def test_an_edited_size_in_the_key_object_is_detected(
    tmp_path: Path, two: tuple[BlobStore, str, str, bytes, bytes]
) -> None:
    store, a, _, data, _ = two
    key = _content_path(tmp_path, a).with_name(a + ".key")
    key.write_bytes(key.read_bytes().replace(f'"size": {len(data)}'.encode(), b'"size": 16'))
    with pytest.raises(BlobCorruptError):
        store.open(a)


def test_a_wrong_master_key_is_a_clear_error(
    tmp_path: Path, two: tuple[BlobStore, str, str, bytes, bytes]
) -> None:
    _, a, _, _, _ = two
    master = tmp_path / "keys" / "blob-master-0001.key"
    master.write_bytes(os.urandom(32))
    store = _store(tmp_path)
    with pytest.raises(BlobCorruptError) as err:
        store.open(a)
    assert "master key 0001 cannot unwrap the data key" in err.value.reason


def test_a_missing_master_key_is_a_clear_error(
    tmp_path: Path, two: tuple[BlobStore, str, str, bytes, bytes]
) -> None:
    _, a, _, _, _ = two
    store = _store(tmp_path)
    (tmp_path / "keys" / "blob-master-0001.key").rename(tmp_path / "elsewhere.key")
    store.masters.create()  # 0002; the blob still needs 0001
    with pytest.raises(BlobKeyError) as err:
        store.open(a)
    assert "blob master key 0001 is missing" in err.value.reason


# --- master keys -------------------------------------------------------------------------------


def test_master_keys_are_private_and_refused_otherwise(tmp_path: Path) -> None:
    keys = MasterKeys.load_or_create(tmp_path / "keys")
    path = keys.path(keys.current())
    assert keys.current() == "0001"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert [p.name for p in (tmp_path / "keys").iterdir()] == [path.name]  # no temp file left
    path.chmod(0o640)
    with pytest.raises(BlobKeyError) as err:
        MasterKeys(tmp_path / "keys")
    assert "readable by other users (mode 640)" in err.value.reason


def test_a_key_made_by_another_process_becomes_current(tmp_path: Path) -> None:
    store = _store(tmp_path)
    other = MasterKeys(tmp_path / "keys")
    assert other.create() == "0002"
    assert store.put([b"new"], max_bytes=10).master_kid == "0002"


def test_open_blob_store_picks_files_unless_s3_is_configured(tmp_path: Path) -> None:
    store = open_blob_store(tmp_path / "blobs", tmp_path / "keys", environ={})
    assert isinstance(store.backend, FileBackend)
    assert store.masters.ids() == ["0001"]


# --- rotation ----------------------------------------------------------------------------------


def test_rotation_rewraps_keys_without_touching_content(tmp_path: Path) -> None:
    store = _store(tmp_path, chunk=1000)
    blobs = {store.put([os.urandom(n)], max_bytes=10_000).blob_id: n for n in (0, 10, 5000)}
    datas = {b: _read(store, b) for b in blobs}
    before = {
        b: (_content_path(tmp_path, b).read_bytes(), _content_path(tmp_path, b).stat().st_mtime_ns)
        for b in blobs
    }
    keys_before = {b: _content_path(tmp_path, b).with_name(b + ".key").read_bytes() for b in blobs}
    seen: list[tuple[int, int]] = []

    outcome = store.rotate(progress=lambda done, total: seen.append((done, total)))
    assert (outcome.master_kid, outcome.rewrapped, outcome.retired) == ("0002", 3, [])
    assert seen[-1] == (3, 3)
    for b in blobs:
        path = _content_path(tmp_path, b)
        assert (path.read_bytes(), path.stat().st_mtime_ns) == before[b]
        assert path.with_name(b + ".key").read_bytes() != keys_before[b]
        assert store.info(b).master_kid == "0002"
    assert store.usage() == {"0002": 3}
    assert store.masters.ids() == ["0001", "0002"]

    again = store.rotate(store.masters.current(), retire=True)  # nothing left to re-wrap
    assert (again.rewrapped, again.retired, again.kept) == (0, ["0001"], [])
    assert not (tmp_path / "keys" / "blob-master-0001.key").exists()
    reopened = _store(tmp_path)
    for b in blobs:
        assert _read(reopened, b) == datas[b]
        assert _content_path(tmp_path, b).stat().st_mtime_ns == before[b][1]


def test_retire_keeps_a_master_that_a_racing_write_still_uses(tmp_path: Path) -> None:
    store = _store(tmp_path)
    old = store.put([b"before"], max_bytes=10).blob_id
    stale = MasterKeys(tmp_path / "keys")  # a server that has not seen the new master yet
    stale.current = lambda: "0001"  # type: ignore[method-assign]
    racer = BlobStore(store.backend, stale, chunk_size=CHUNK)
    late: list[str] = []

    def race(done: int, total: int) -> None:
        if done == total:  # after the listing, before the retirement check
            late.append(racer.put([b"late"], max_bytes=10).blob_id)

    outcome = store.rotate(retire=True, progress=race)
    assert (outcome.rewrapped, outcome.retired, outcome.kept) == (1, [], ["0001"])
    assert store.usage() == {"0001": 1, "0002": 1}
    again = store.rotate(outcome.master_kid, retire=True)
    assert (again.rewrapped, again.retired, again.kept) == (1, ["0001"], [])
    assert _read(store, late[0]) == b"late" and _read(store, old) == b"before"
