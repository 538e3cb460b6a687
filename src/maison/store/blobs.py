"""Document blobs (PDF, CDA, up to GBs) outside the resource table, encrypted at rest.

Each blob has its own random AES-256-GCM data key, wrapped by a master key in a small
``<id>.key`` object; rotating the master key re-wraps these and never touches the content.
The content is a STREAM-style chunked AEAD (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", https://eprint.iacr.org/2015/189):

* object = ``MAGIC`` + chunk 0 + chunk 1 + … ; chunk *i* = AES-GCM(plaintext[i*C:(i+1)*C]) + tag;
* nonce = 7-byte random per-blob prefix + 4-byte big-endian chunk index + 1-byte last flag, so
  a chunk cannot be moved, and the end cannot be cut off (the new last chunk was sealed as "not
  last"); the AAD binds the format, the blob id and the chunk index, so a chunk cannot be moved to
  another blob either (RFC 5116, https://www.rfc-editor.org/rfc/rfc5116#section-2.1);
* every blob has at least one chunk (an empty blob is one empty last chunk).

The key object is JSON: the blob's size, SHA-1, SHA-256, chunk size and nonce prefix, and the
data key wrapped with AES-256-GCM under the master key, those fields as its AAD. Master keys are
``STATE/keys/blob-master-<kid>.key`` (32 raw bytes, mode 0600); the highest ``kid`` is current.

The encryption does not depend on where objects live: an :class:`ObjectBackend` stores opaque
bytes (:class:`FileBackend` here, ``blob_s3.S3Backend`` for S3-compatible stores).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
import struct
import threading
from base64 import b64encode
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from maison.fhir.errors import Category, FhirError
from maison.store.secret_files import create_secret_file

FORMAT = "maison-blob/1"
MAGIC = b"MSNBLOB\x01"
DEFAULT_CHUNK = 64 * 1024
TAG_LEN = 16
PREFIX_LEN = 7
KEY_SUFFIX = ".key"
MASTER_PREFIX = "blob-master-"
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{4,64}(\.[a-z]{1,8})?$")
_READ_PIECE = 1024 * 1024


# --- errors -----------------------------------------------------------------------------------


class BlobError(FhirError):
    """A blob operation failed; ``reason`` says why to a person (a FHIR error value).

    https://hl7.org/fhir/R4/operationoutcome.html
    """

    default_category: ClassVar[Category] = Category.INTERNAL

    def __init__(self, reason: str, category: Category | None = None) -> None:
        super().__init__(category or self.default_category, reason)

    @property
    def reason(self) -> str:
        """The explanation, in words a person understands."""
        return self.message


class BlobTooLargeError(BlobError):
    """The content is above the size limit (HTTP 413)."""

    default_category = Category.TOO_LARGE


class BlobMismatchError(BlobError):
    """The content does not match the size or hash announced for it (attachment.size/hash)."""

    default_category = Category.UNPROCESSABLE


class BlobNotFoundError(BlobError):
    """No blob has this id (never written, deleted, or an interrupted write)."""

    default_category = Category.NOT_FOUND


class BlobRangeError(BlobError):
    """A byte range outside the blob (HTTP 416, https://www.rfc-editor.org/rfc/rfc7233#section-4.4)."""

    default_category = Category.INVALID

    def __init__(self, reason: str, size: int) -> None:
        super().__init__(reason)
        self.size = size


class BlobCorruptError(BlobError):
    """The stored blob fails authentication: tampered, truncated, swapped or wrong key."""

    default_category = Category.INTERNAL


class BlobKeyError(BlobError):
    """A master key is missing, unreadable, or readable by other users."""

    default_category = Category.INTERNAL


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobInfo:
    """What is known of a stored blob: its id, plaintext size and digests, and its master key."""

    blob_id: str
    size: int
    sha1: bytes
    sha256: bytes
    master_kid: str

    @property
    def sha1_base64(self) -> str:
        """The SHA-1 as FHIR ``Attachment.hash`` carries it: https://hl7.org/fhir/R4/datatypes.html#Attachment."""
        return b64encode(self.sha1).decode()


@dataclass(frozen=True)
class Rotation:
    """The outcome of :meth:`BlobStore.rotate`: the new master, how many keys were re-wrapped,
    the masters retired and those kept because blobs still use them."""

    master_kid: str
    rewrapped: int
    retired: list[str]
    kept: list[str]


# --- object backends --------------------------------------------------------------------------


class ObjectWriter(Protocol):
    """One object being written: invisible until :meth:`commit`, gone after :meth:`abort`."""

    def write(self, data: bytes) -> None:
        """Append bytes."""

    def commit(self) -> None:
        """Make the object visible under its name, durably."""

    def abort(self) -> None:
        """Discard everything written (idempotent)."""


class ObjectBackend(Protocol):
    """Opaque named objects (the blob content and its key object), on disk or in S3."""

    def writer(self, name: str) -> ObjectWriter:
        """Start a streamed write of a new object."""

    def put(self, name: str, data: bytes, *, sync_folder: bool = True) -> None:
        """Write or atomically replace a small object, durably."""

    def get(self, name: str) -> bytes | None:
        """A small object's bytes, or None."""

    def read(self, name: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of an object, in pieces (fewer if the object is shorter)."""

    def size(self, name: str) -> int | None:
        """An object's length, or None if absent."""

    def delete(self, name: str) -> bool:
        """Remove an object durably; False if it was absent."""

    def names(self) -> Iterator[str]:
        """The names of all committed objects."""


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise BlobNotFoundError(f"{name!r} is not a blob object name")
    return name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBackend:
    """Objects as files ``ROOT/ab/<name>`` (256 folders: few enough that a new folder, and its
    parent's fsync, is rare; a million documents make about 4,000 files a folder), fsynced with
    their folder before returning.

    https://man7.org/linux/man-pages/man2/fsync.2.html
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        base = _check_name(name).split(".", 1)[0]
        return self.root / base[:2] / name

    def _folder(self, path: Path) -> Path:
        """Create the object's folder and make each new folder's entry durable."""
        folder = path.parent
        if not folder.is_dir():
            missing = [p for p in (folder, self.root) if not p.is_dir()]
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            for new in missing:
                _fsync_dir(new.parent)
        return folder

    def writer(self, name: str) -> _FileWriter:
        """Start writing ``name`` into a temporary file beside it."""
        path = self._path(name)
        self._folder(path)
        return _FileWriter(path)

    def put(self, name: str, data: bytes, *, sync_folder: bool = True) -> None:
        """Write a temporary file, fsync it, rename it over ``name``, fsync the folder (unless
        ``sync_folder`` is False: a write to the same folder that follows does it)."""
        path = self._path(name)
        folder = self._folder(path)
        tmp = folder / f".{name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        if sync_folder:
            _fsync_dir(folder)

    def get(self, name: str) -> bytes | None:
        """The file's bytes, or None."""
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def read(self, name: str, start: int, end: int) -> Iterator[bytes]:
        """Read ``[start, end)`` in pieces of at most 1 MiB."""
        path = self._path(name)
        with path.open("rb") as f:
            f.seek(start)
            left = end - start
            while left > 0:
                piece = f.read(min(left, _READ_PIECE))
                if not piece:
                    return
                left -= len(piece)
                yield piece

    def size(self, name: str) -> int | None:
        """The file's length, or None."""
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, name: str) -> bool:
        """Unlink the file and fsync its folder."""
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def names(self) -> Iterator[str]:
        """Committed files (temporary files start with a dot), sorted per folder."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir():
                for entry in sorted(folder.iterdir()):
                    if not entry.name.startswith("."):
                        yield entry.name


class _FileWriter:
    """A temporary file linked to its final name on commit (never replacing an object)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.link(self.tmp, self.path)  # FileExistsError rather than replace another blob
        self.tmp.unlink()
        _fsync_dir(self.path.parent)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class MemoryBackend:
    """Objects in a dict: for tests and for the encryption layer's own property tests."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.pending: set[str] = set()

    def writer(self, name: str) -> _MemoryWriter:
        """Start writing ``name``."""
        return _MemoryWriter(self, _check_name(name))

    def put(self, name: str, data: bytes, *, sync_folder: bool = True) -> None:
        """Store or replace ``name``."""
        self.objects[_check_name(name)] = bytes(data)

    def get(self, name: str) -> bytes | None:
        """The bytes of ``name``, or None."""
        return self.objects.get(name)

    def read(self, name: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``[start, end)``."""
        data = self.objects[name][start:end]
        if data:
            yield data

    def size(self, name: str) -> int | None:
        """The length of ``name``, or None."""
        data = self.objects.get(name)
        return None if data is None else len(data)

    def delete(self, name: str) -> bool:
        """Remove ``name``."""
        return self.objects.pop(name, None) is not None

    def names(self) -> Iterator[str]:
        """All names, sorted."""
        yield from sorted(self.objects)


class _MemoryWriter:
    def __init__(self, backend: MemoryBackend, name: str) -> None:
        self.backend, self.name, self.parts = backend, name, bytearray()
        backend.pending.add(name)

    def write(self, data: bytes) -> None:
        self.parts += data

    def commit(self) -> None:
        if self.name in self.backend.objects:
            raise FileExistsError(self.name)
        self.backend.objects[self.name] = bytes(self.parts)
        self.backend.pending.discard(self.name)

    def abort(self) -> None:
        self.parts = bytearray()
        self.backend.pending.discard(self.name)


# --- master keys ------------------------------------------------------------------------------


class MasterKeys:
    """The blob master keys of a key folder; the highest id wraps new data keys.

    https://cryptography.io/en/latest/hazmat/primitives/aead/#cryptography.hazmat.primitives.ciphers.aead.AESGCM
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._keys: dict[str, AESGCM] = {}
        self._lock = threading.Lock()
        self.reload()

    @classmethod
    def load_or_create(cls, folder: Path) -> MasterKeys:
        """The master keys of ``folder`` (``STATE/keys``); a first one is made if none."""
        keys = cls(folder)
        if not keys.ids():
            keys.create()
        return keys

    def _files(self) -> dict[str, Path]:
        if not self.folder.is_dir():
            return {}
        found: dict[str, Path] = {}
        for path in self.folder.glob(f"{MASTER_PREFIX}*.key"):
            kid = path.name[len(MASTER_PREFIX) : -len(".key")]
            if kid.isdigit():
                found[kid] = path
        return found

    def reload(self) -> None:
        """Read the key files again; refuse any that other users could read."""
        keys: dict[str, AESGCM] = {}
        for kid, path in self._files().items():
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise BlobKeyError(
                    f"{path} is readable by other users (mode {mode:o}); chmod 600 it"
                )
            raw = path.read_bytes()
            if len(raw) != 32:
                raise BlobKeyError(f"{path} is not a 32-byte AES-256 key ({len(raw)} bytes)")
            keys[kid] = AESGCM(raw)
        with self._lock:
            self._keys = keys

    def ids(self) -> list[str]:
        """The key ids, oldest first."""
        return sorted(self._keys, key=int)

    def current(self) -> str:
        """The id of the key that wraps new data keys (the newest, also one made by another
        process since this one started)."""
        on_disk = set(self._files())
        if on_disk != set(self._keys):
            self.reload()
        if not self._keys:
            raise BlobKeyError(f"there is no blob master key in {self.folder}")
        return self.ids()[-1]

    def path(self, kid: str) -> Path:
        """The file of key ``kid``."""
        return self.folder / f"{MASTER_PREFIX}{kid}.key"

    def created(self, kid: str) -> datetime:
        """When key ``kid`` was made (its file is written once, so its modification time)."""
        return datetime.fromtimestamp(self.path(kid).stat().st_mtime, UTC)

    def aead(self, kid: str) -> AESGCM:
        """The cipher of key ``kid``; a clear error when this server lacks it."""
        aead = self._keys.get(kid)
        if aead is None:
            self.reload()
            aead = self._keys.get(kid)
        if aead is None:
            raise BlobKeyError(
                f"blob master key {kid} is missing ({self.path(kid)} not found); "
                "restore it from the key backup"
            )
        return aead

    def create(self) -> str:
        """Make a new master key file atomically (0600, fsynced) and return its id."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            existing = [int(k) for k in (*self._files(), *self._keys)]  # ids are never reused
            kid = f"{max(existing, default=0) + 1:04d}"
            if not create_secret_file(self.path(kid), os.urandom(32)):
                continue  # another process made this id: take the next one
            self.reload()
            return kid

    def retire(self, kid: str) -> None:
        """Delete key ``kid`` for good (once no blob uses it)."""
        with contextlib.suppress(FileNotFoundError):
            self.path(kid).unlink()
        _fsync_dir(self.folder)
        self.reload()


# --- the encrypted store ----------------------------------------------------------------------


@dataclass(frozen=True)
class _KeyRecord:
    blob_id: str
    size: int
    sha1: bytes
    sha256: bytes
    chunk: int
    prefix: bytes
    kid: str
    nonce: bytes
    wrapped: bytes

    def bound(self) -> bytes:
        """The fields the wrap authenticates (its AAD)."""
        return orjson.dumps(
            {
                "format": FORMAT,
                "blob": self.blob_id,
                "size": self.size,
                "sha1": self.sha1.hex(),
                "sha256": self.sha256.hex(),
                "chunk": self.chunk,
                "prefix": self.prefix.hex(),
            },
            option=orjson.OPT_SORT_KEYS,
        )

    def to_bytes(self) -> bytes:
        body = orjson.loads(self.bound())
        body.update(kid=self.kid, nonce=self.nonce.hex(), wrapped=self.wrapped.hex())
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)

    @classmethod
    def parse(cls, raw: bytes, blob_id: str) -> _KeyRecord:
        try:
            body: dict[str, Any] = orjson.loads(raw)
            if body["format"] != FORMAT:
                raise BlobCorruptError(
                    f"the key object of blob {blob_id} has format {body['format']}"
                )
            return cls(
                blob_id=str(body["blob"]),
                size=int(body["size"]),
                sha1=bytes.fromhex(body["sha1"]),
                sha256=bytes.fromhex(body["sha256"]),
                chunk=int(body["chunk"]),
                prefix=bytes.fromhex(body["prefix"]),
                kid=str(body["kid"]),
                nonce=bytes.fromhex(body["nonce"]),
                wrapped=bytes.fromhex(body["wrapped"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise BlobCorruptError(
                f"the key object of blob {blob_id} is unreadable ({exc})"
            ) from None


def _random_id() -> str:
    return secrets.token_hex(16)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">I?", index, last)


def _aad(blob_id: str, chunk: int, index: int) -> bytes:
    return b"%s\x00%s\x00%d\x00%d" % (FORMAT.encode(), blob_id.encode(), chunk, index)


def _chunks(size: int, chunk: int) -> int:
    return max(1, -(-size // chunk))


def _object_size(size: int, chunk: int) -> int:
    return len(MAGIC) + size + TAG_LEN * _chunks(size, chunk)


class BlobStore:
    """Encrypted, streamed, range-readable blobs over any :class:`ObjectBackend`.

    https://eprint.iacr.org/2015/189 (STREAM), https://www.rfc-editor.org/rfc/rfc5116
    """

    def __init__(
        self,
        backend: ObjectBackend,
        masters: MasterKeys,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        new_id: Callable[[], str] = _random_id,
    ) -> None:
        if not 1 <= chunk_size <= 1 << 24:
            raise ValueError("chunk_size is between 1 byte and 16 MiB")
        self.backend = backend
        self.masters = masters
        self.chunk_size = chunk_size
        self.new_id = new_id

    # writing

    def put(
        self,
        stream: Iterable[bytes],
        *,
        max_bytes: int,
        expected_size: int | None = None,
        expected_sha1: bytes | None = None,
    ) -> BlobInfo:
        """Encrypt and store a stream; visible only once size and hash checked
        (https://hl7.org/fhir/R4/datatypes.html#Attachment ``size``, ``hash``)."""
        blob_id = self.new_id()
        if not _ID_RE.match(blob_id):
            raise ValueError(f"blob ids are 4 to 64 of [A-Za-z0-9_-], not {blob_id!r}")
        chunk = self.chunk_size
        data_key, prefix = AESGCM.generate_key(256), os.urandom(PREFIX_LEN)
        aead = AESGCM(data_key)
        sha1, sha256 = hashlib.sha1(usedforsecurity=False), hashlib.sha256()
        writer = self.backend.writer(blob_id)
        key_written = False
        try:
            writer.write(MAGIC)
            pending = bytearray()
            index = size = 0
            for piece in stream:
                size += len(piece)
                if size > max_bytes:
                    raise BlobTooLargeError(
                        f"the content is larger than the limit of {max_bytes:,} bytes "
                        f"(reading stopped at {size:,} bytes)"
                    )
                if expected_size is not None and size > expected_size:
                    raise BlobMismatchError(
                        f"attachment.size says {expected_size:,} bytes but the content has "
                        f"more (at least {size:,})"
                    )
                sha1.update(piece)
                sha256.update(piece)
                pending += piece
                # keep the last chunk back: only the end of the stream says it is the last
                pos = 0
                view = memoryview(pending)
                while len(pending) - pos > chunk:
                    nonce = _nonce(prefix, index, False)
                    aad = _aad(blob_id, chunk, index)
                    writer.write(aead.encrypt(nonce, view[pos : pos + chunk], aad))
                    pos += chunk
                    index += 1
                view.release()
                if pos:
                    del pending[:pos]
            nonce = _nonce(prefix, index, True)
            writer.write(aead.encrypt(nonce, bytes(pending), _aad(blob_id, chunk, index)))
            if expected_size is not None and size != expected_size:
                raise BlobMismatchError(
                    f"attachment.size says {expected_size:,} bytes but the content has {size:,}"
                )
            if expected_sha1 is not None and sha1.digest() != expected_sha1:
                raise BlobMismatchError(
                    "attachment.hash (SHA-1) does not match the content: it says "
                    f"{b64encode(expected_sha1).decode()}, the content's is "
                    f"{b64encode(sha1.digest()).decode()}"
                )
            kid = self.masters.current()
            fields = (size, sha1.digest(), sha256.digest(), chunk, prefix, kid)
            record = self._wrap(_KeyRecord(blob_id, *fields, b"", b""), data_key)
            # key first, content last: a visible content object always has its key; the
            # content's commit syncs the folder both live in, so the key's put need not
            self.backend.put(blob_id + KEY_SUFFIX, record.to_bytes(), sync_folder=False)
            key_written = True
            writer.commit()
        except BaseException:
            writer.abort()
            if key_written:
                self.backend.delete(blob_id + KEY_SUFFIX)
            raise
        return BlobInfo(blob_id, size, record.sha1, record.sha256, kid)

    def _wrap(self, record: _KeyRecord, data_key: bytes) -> _KeyRecord:
        nonce = os.urandom(12)
        wrapped = self.masters.aead(record.kid).encrypt(nonce, data_key, record.bound())
        return replace(record, nonce=nonce, wrapped=wrapped)

    # reading

    def _record(self, blob_id: str) -> _KeyRecord:
        if not _ID_RE.match(blob_id):
            raise BlobNotFoundError(f"{blob_id!r} is not a blob id")
        raw = self.backend.get(blob_id + KEY_SUFFIX)
        if raw is None:
            raise BlobNotFoundError(f"there is no blob {blob_id}")
        return _record_of(raw, blob_id)

    def _data_key(self, record: _KeyRecord) -> bytes:
        # record.blob_id is the requested id (_record_of), and the wrap's AAD binds it
        try:
            return self.masters.aead(record.kid).decrypt(
                record.nonce, record.wrapped, record.bound()
            )
        except InvalidTag:
            raise BlobCorruptError(
                f"master key {record.kid} cannot unwrap the data key of blob {record.blob_id}: "
                "the key object was altered, or the master key file is not the original"
            ) from None

    def info(self, blob_id: str) -> BlobInfo:
        """Size, digests and master key of a blob, authenticated by the key wrap."""
        record = self._record(blob_id)
        self._data_key(record)
        return BlobInfo(blob_id, record.size, record.sha1, record.sha256, record.kid)

    def size(self, blob_id: str) -> int:
        """The plaintext size (for ``Content-Length`` and ``Content-Range``)."""
        return self.info(blob_id).size

    def exists(self, blob_id: str) -> bool:
        """Whether the blob's content is stored (a key alone is a write that did not finish)."""
        return bool(_ID_RE.match(blob_id)) and self.backend.size(blob_id) is not None

    def ids(self) -> Iterator[str]:
        """The ids of the stored blobs."""
        for name in self.backend.names():
            if "." not in name:
                yield name

    def open(self, blob_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Plaintext bytes ``[start, end)`` (end exclusive, None: to the end; HTTP ``bytes=a-b``
        is ``open(id, a, b + 1)``), decrypting and authenticating only the chunks covering it
        (https://www.rfc-editor.org/rfc/rfc7233#section-2.1).

        Missing blob, bad key, bad range and wrong object length raise here; a chunk that fails
        authentication raises :class:`BlobCorruptError` while iterating."""
        record = self._record(blob_id)
        aead = AESGCM(self._data_key(record))
        size, chunk = record.size, record.chunk
        stop = size if end is None else min(end, size)
        if start < 0 or stop < start or start > size:
            raise BlobRangeError(
                f"the range {start}-{'' if end is None else end} is outside blob {blob_id} "
                f"of {size:,} bytes",
                size,
            )
        actual = self.backend.size(blob_id)
        if actual is None:
            raise BlobNotFoundError(
                f"blob {blob_id} has a key but no content (an unfinished write)"
            )
        expected = _object_size(size, chunk)
        if actual != expected:
            raise BlobCorruptError(
                f"the content of blob {blob_id} is {actual:,} bytes stored where {expected:,} "
                "are expected: it was truncated or extended"
            )
        return self._decrypt(blob_id, record, aead, start, stop)

    def _decrypt(
        self, blob_id: str, record: _KeyRecord, aead: AESGCM, start: int, stop: int
    ) -> Iterator[bytes]:
        if start == stop:
            return
        chunk, size = record.chunk, record.size
        last = _chunks(size, chunk) - 1
        first, final = start // chunk, (stop - 1) // chunk
        sealed = chunk + TAG_LEN
        lo = len(MAGIC) + first * sealed
        hi = min(len(MAGIC) + (final + 1) * sealed, _object_size(size, chunk))
        buffer = bytearray()
        pos = 0  # where the next chunk starts in buffer (compacted only when refilled)
        index = first
        pieces = self.backend.read(blob_id, lo, hi)
        while index <= final:
            want = (min(size, (index + 1) * chunk) - index * chunk) + TAG_LEN
            while len(buffer) - pos < want:
                piece = next(pieces, None)
                if piece is None:
                    raise BlobCorruptError(f"blob {blob_id} ends inside chunk {index}: truncated")
                del buffer[:pos]
                pos = 0
                buffer += piece
            try:
                with memoryview(buffer) as view:
                    plain = aead.decrypt(
                        _nonce(record.prefix, index, index == last),
                        view[pos : pos + want],
                        _aad(blob_id, chunk, index),
                    )
            except InvalidTag:
                raise BlobCorruptError(
                    f"chunk {index} of blob {blob_id} fails authentication: altered, "
                    "moved, or taken from another blob"
                ) from None
            pos += want
            base = index * chunk
            yield plain[max(start - base, 0) : stop - base]
            index += 1

    def verify(self, blob_id: str) -> BlobInfo:
        """Decrypt a whole blob and check its SHA-256 (a scrub of stored content)."""
        info = self.info(blob_id)
        digest = hashlib.sha256()
        for piece in self.open(blob_id):
            digest.update(piece)
        if digest.digest() != info.sha256:
            raise BlobCorruptError(
                f"blob {blob_id} decrypts, but not to the SHA-256 recorded with its key"
            )
        return info

    def delete(self, blob_id: str) -> bool:
        """Physically remove a blob (content first, then its key); False if it was absent."""
        if not _ID_RE.match(blob_id):
            return False
        had_content = self.backend.delete(blob_id)
        had_key = self.backend.delete(blob_id + KEY_SUFFIX)
        return had_content or had_key

    # keys

    def _key_names(self) -> list[str]:
        return [n for n in self.backend.names() if n.endswith(KEY_SUFFIX)]

    def usage(self) -> dict[str, int]:
        """How many blob data keys each master key id wraps."""
        counts: dict[str, int] = {}
        for name in self._key_names():
            raw = self.backend.get(name)
            if raw is not None:
                kid = _KeyRecord.parse(raw, name[: -len(KEY_SUFFIX)]).kid
                counts[kid] = counts.get(kid, 0) + 1
        return counts

    def rotate(
        self,
        new_master: str | None = None,
        *,
        retire: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> Rotation:
        """Re-wrap every data key under ``new_master`` (None: a new master key) without touching
        content; ``retire`` then deletes the old masters no blob uses any more (NIST SP 800-57
        key rotation, https://csrc.nist.gov/pubs/sp/800/57/pt1/r5/final)."""
        target = self.masters.create() if new_master is None else new_master
        self.masters.aead(target)  # fails now if that key does not exist
        names = self._key_names()
        rewrapped = 0
        for done, name in enumerate(names, 1):
            raw = self.backend.get(name)
            blob_id = name[: -len(KEY_SUFFIX)]
            if raw is not None:
                record = _record_of(raw, blob_id)
                if record.kid != target:
                    data_key = self._data_key(record)
                    new = self._wrap(replace(record, kid=target), data_key)
                    self.backend.put(name, new.to_bytes())  # atomic replace
                    rewrapped += 1
            if progress is not None:
                progress(done, len(names))
        retired: list[str] = []
        kept: list[str] = []
        if retire:
            used = self.usage()  # again: a write that raced the rotation may use an old key
            for kid in self.masters.ids():
                if kid == target:
                    continue
                if used.get(kid):
                    kept.append(kid)
                else:
                    self.masters.retire(kid)
                    retired.append(kid)
        return Rotation(target, rewrapped, retired, kept)


def _record_of(raw: bytes, blob_id: str) -> _KeyRecord:
    record = _KeyRecord.parse(raw, blob_id)
    if record.blob_id != blob_id:
        raise BlobCorruptError(
            f"the key object of blob {blob_id} belongs to blob {record.blob_id} "
            "(a swapped or copied key object)"
        )
    return record


def open_blob_store(
    blob_dir: Path, key_dir: Path, environ: Mapping[str, str] | None = None
) -> BlobStore:
    """The blob store a deployment configures: S3 when ``MAISON_BLOB_S3_BUCKET`` is set, else
    files under ``blob_dir``; master keys in ``key_dir`` (https://boto3.amazonaws.com/v1/documentation/api/latest/guide/configuration.html)."""
    env = os.environ if environ is None else environ
    masters = MasterKeys.load_or_create(key_dir)
    if env.get("MAISON_BLOB_S3_BUCKET"):
        from maison.store.blob_s3 import S3Backend

        return BlobStore(S3Backend.from_env(env), masters)
    return BlobStore(FileBackend(blob_dir), masters)
