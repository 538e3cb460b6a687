"""Blob objects in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, OVH, Scaleway…).

Only opaque bytes live here; the encryption is :class:`maison.store.blobs.BlobStore`'s, the same
as on disk. Large objects go up as multipart uploads, aborted if the write fails, so nothing is
visible before :meth:`_S3Writer.commit` (https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from maison.store.blobs import BlobNotFoundError

#: S3's smallest part (except the last): https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
MIN_PART = 5 * 1024 * 1024
DEFAULT_PART = 16 * 1024 * 1024
_READ_PIECE = 1024 * 1024


def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3Backend:
    """Objects ``<prefix><name>`` in one bucket, through a boto3 S3 client.

    https://boto3.amazonaws.com/v1/documentation/api/latest/reference/services/s3.html
    """

    def __init__(
        self, client: Any, bucket: str, prefix: str = "", part_size: int = DEFAULT_PART
    ) -> None:
        if part_size < MIN_PART:
            raise ValueError(f"S3 parts are at least {MIN_PART:,} bytes")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Backend:
        """Configure from ``MAISON_BLOB_S3_BUCKET``, ``MAISON_BLOB_S3_ENDPOINT`` (empty: AWS),
        ``MAISON_BLOB_S3_PREFIX`` and the standard AWS variables (``AWS_ACCESS_KEY_ID``,
        ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``…), read by boto3 itself
        (https://boto3.amazonaws.com/v1/documentation/api/latest/guide/configuration.html)."""
        import boto3

        env = os.environ if environ is None else environ
        bucket = env.get("MAISON_BLOB_S3_BUCKET", "")
        if not bucket:
            raise ValueError("MAISON_BLOB_S3_BUCKET is not set")
        endpoint = env.get("MAISON_BLOB_S3_ENDPOINT") or None
        client = boto3.client("s3", endpoint_url=endpoint)
        return cls(client, bucket, env.get("MAISON_BLOB_S3_PREFIX", ""))

    def _key(self, name: str) -> str:
        return self.prefix + name

    def writer(self, name: str) -> _S3Writer:
        """Start an upload of ``name`` (one PUT if small, else multipart)."""
        return _S3Writer(self, self._key(name))

    def put(self, name: str, data: bytes, *, sync_folder: bool = True) -> None:
        """One PUT: S3 replaces an object atomically and durably before answering."""
        self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)

    def get(self, name: str) -> bytes | None:
        """The object's bytes, or None."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except self.client.exceptions.NoSuchKey:
            return None
        body: bytes = response["Body"].read()
        return body

    def read(self, name: str, start: int, end: int) -> Iterator[bytes]:
        """A ranged GET of ``[start, end)``, streamed in 1 MiB pieces (RFC 7233 ``Range``)."""
        if end <= start:
            return
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=self._key(name), Range=f"bytes={start}-{end - 1}"
            )
        except self.client.exceptions.NoSuchKey:
            raise BlobNotFoundError(f"there is no blob object {name}") from None
        body = response["Body"]
        try:
            yield from body.iter_chunks(_READ_PIECE)
        finally:
            body.close()

    def size(self, name: str) -> int | None:
        """The object's length from a HEAD request, or None."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except self.client.exceptions.ClientError as exc:
            if _missing(exc):
                return None
            raise
        length: int = response["ContentLength"]
        return length

    def delete(self, name: str) -> bool:
        """Delete the object; False if it was absent."""
        if self.size(name) is None:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        return True

    def names(self) -> Iterator[str]:
        """All object names under the prefix, in key order."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]


class _S3Writer:
    """Buffers one part; the first full part starts a multipart upload."""

    def __init__(self, backend: S3Backend, key: str) -> None:
        self.backend = backend
        self.key = key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def _client(self) -> Any:
        return self.backend.client

    def _send_part(self, data: bytes) -> None:
        client, bucket = self._client(), self.backend.bucket
        if self.upload_id is None:
            started = client.create_multipart_upload(Bucket=bucket, Key=self.key)
            self.upload_id = str(started["UploadId"])
        number = len(self.parts) + 1
        sent = client.upload_part(
            Bucket=bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        self.parts.append({"ETag": sent["ETag"], "PartNumber": number})

    def write(self, data: bytes) -> None:
        self.buffer += data
        size = self.backend.part_size
        while len(self.buffer) >= 2 * size:  # keep one part back: the last may not be short
            self._send_part(bytes(self.buffer[:size]))
            del self.buffer[:size]

    def commit(self) -> None:
        client, bucket = self._client(), self.backend.bucket
        if self.upload_id is None:
            client.put_object(Bucket=bucket, Key=self.key, Body=bytes(self.buffer))
        else:
            self._send_part(bytes(self.buffer))
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
        self.buffer = bytearray()

    def abort(self) -> None:
        if self.upload_id is not None:
            self._client().abort_multipart_upload(
                Bucket=self.backend.bucket, Key=self.key, UploadId=self.upload_id
            )
            self.upload_id = None
        self.buffer = bytearray()
