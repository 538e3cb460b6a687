"""Blobs in an S3-compatible store (moto's in-process S3): the same encryption as on disk,
multipart uploads for large blobs, nothing left behind on failure, rotation without rewrites.

https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from maison.store.blob_s3 import MIN_PART, S3Backend  # noqa: E402
from maison.store.blobs import (  # noqa: E402
    BlobCorruptError,
    BlobMismatchError,
    BlobStore,
    BlobTooLargeError,
    MasterKeys,
    open_blob_store,
)

BUCKET = "maison-test-blobs"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-3",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto.mock_aws():
        client = boto3.client("s3")
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
        )
        yield client


def _store(client: Any, keys: Path, chunk: int = 64 * 1024) -> BlobStore:
    backend = S3Backend(client, BUCKET, prefix="blobs/", part_size=MIN_PART)
    return BlobStore(backend, MasterKeys.load_or_create(keys), chunk_size=chunk)


def _objects(client: Any) -> list[str]:
    listed = client.list_objects_v2(Bucket=BUCKET)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def _uploads(client: Any) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def test_small_blob_round_trips_with_ranges(s3: Any, tmp_path: Path) -> None:
    store = _store(s3, tmp_path / "keys", chunk=100)
    data = os.urandom(1234)
    info = store.put([data[:500], data[500:]], max_bytes=2000, expected_size=1234)
    assert info.sha256 == hashlib.sha256(data).digest()
    assert _objects(s3) == [f"blobs/{info.blob_id}", f"blobs/{info.blob_id}.key"]
    assert b"".join(store.open(info.blob_id)) == data
    assert b"".join(store.open(info.blob_id, 99, 301)) == data[99:301]
    assert b"".join(store.open(info.blob_id, 1233)) == data[1233:]
    assert list(store.ids()) == [info.blob_id]
    assert store.size(info.blob_id) == 1234 and store.exists(info.blob_id)
    stored = s3.get_object(Bucket=BUCKET, Key=f"blobs/{info.blob_id}")["Body"].read()
    assert data[:32] not in stored


def test_large_blob_goes_up_in_parts_and_reads_back_in_ranges(s3: Any, tmp_path: Path) -> None:
    store = _store(s3, tmp_path / "keys")
    data = os.urandom(2 * MIN_PART + 123_456)
    info = store.put(
        (data[i : i + 1_000_000] for i in range(0, len(data), 1_000_000)),
        max_bytes=len(data),
        expected_sha1=hashlib.sha1(data).digest(),
    )
    head = s3.head_object(Bucket=BUCKET, Key=f"blobs/{info.blob_id}")
    assert head["ETag"].strip('"').endswith("-2")  # a multipart object of two parts
    assert _uploads(s3) == []
    mid = MIN_PART - 77
    assert b"".join(store.open(info.blob_id, mid, mid + 200_000)) == data[mid : mid + 200_000]
    assert hashlib.sha256(b"".join(store.open(info.blob_id))).digest() == info.sha256


def test_failures_leave_no_object_and_no_pending_upload(s3: Any, tmp_path: Path) -> None:
    store = _store(s3, tmp_path / "keys")
    big = os.urandom(MIN_PART)
    with pytest.raises(BlobMismatchError):
        store.put([big, big, big], max_bytes=10 * MIN_PART, expected_sha1=b"\0" * 20)
    with pytest.raises(BlobTooLargeError):
        store.put(iter([big] * 10), max_bytes=3 * MIN_PART)
    with pytest.raises(BlobMismatchError):
        store.put([b"abc"], max_bytes=10, expected_size=2)
    assert _objects(s3) == [] and _uploads(s3) == []


def test_tampering_in_the_bucket_is_detected(s3: Any, tmp_path: Path) -> None:
    store = _store(s3, tmp_path / "keys", chunk=100)
    a = store.put([os.urandom(500)], max_bytes=999).blob_id
    b = store.put([os.urandom(500)], max_bytes=999).blob_id
    raw = bytearray(s3.get_object(Bucket=BUCKET, Key=f"blobs/{a}")["Body"].read())
    raw[200] ^= 1
    s3.put_object(Bucket=BUCKET, Key=f"blobs/{a}", Body=bytes(raw))
    with pytest.raises(BlobCorruptError):
        b"".join(store.open(a))
    key_b = s3.get_object(Bucket=BUCKET, Key=f"blobs/{b}.key")["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=f"blobs/{a}.key", Body=key_b)
    with pytest.raises(BlobCorruptError) as err:
        store.open(a)
    assert f"belongs to blob {b}" in err.value.reason


def test_rotation_rewrites_only_key_objects(s3: Any, tmp_path: Path) -> None:
    store = _store(s3, tmp_path / "keys", chunk=100)
    datas = {store.put([os.urandom(n)], max_bytes=999).blob_id: n for n in (0, 1, 300)}
    modified = {b: s3.head_object(Bucket=BUCKET, Key=f"blobs/{b}")["LastModified"] for b in datas}
    contents = {b: b"".join(store.open(b)) for b in datas}
    outcome = store.rotate(retire=True)
    assert (outcome.rewrapped, outcome.retired) == (3, ["0001"])
    for b in datas:
        assert s3.head_object(Bucket=BUCKET, Key=f"blobs/{b}")["LastModified"] == modified[b]
        assert b"".join(store.open(b)) == contents[b]
    assert store.usage() == {"0002": 3}
    assert store.delete(next(iter(datas)))
    assert len(_objects(s3)) == 4


def test_the_backend_is_configured_from_the_environment(s3: Any, tmp_path: Path) -> None:
    env = {"MAISON_BLOB_S3_BUCKET": BUCKET, "MAISON_BLOB_S3_PREFIX": "docs/"}
    store = open_blob_store(tmp_path / "unused", tmp_path / "keys", environ=env)
    assert isinstance(store.backend, S3Backend) and store.backend.prefix == "docs/"
    blob_id = store.put([b"hello"], max_bytes=10).blob_id
    assert _objects(s3) == [f"docs/{blob_id}", f"docs/{blob_id}.key"]
    assert not (tmp_path / "unused").exists()
    with pytest.raises(ValueError, match="MAISON_BLOB_S3_BUCKET"):
        S3Backend.from_env({})
