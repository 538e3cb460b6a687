"""Health data encrypted at rest: AES-256-GCM on every stored resource body.

https://cryptography.io/en/latest/hazmat/primitives/aead/ (HDS: confidentiality of stored data)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_FORMAT = b"\x01"
_KEY_ID_LEN = 8
_NONCE_LEN = 12


class DataKeyError(RuntimeError):
    """A stored body names a key this server does not have, or the ciphertext is corrupt."""


@dataclass
class Keyring:
    """Data keys by id; new writes use ``current``, old keys stay readable after rotation.

    A keyring made for an empty key folder holds a new key in memory only: it is written to the
    folder by :meth:`persist` (or the first :meth:`encrypt`), once the store has checked that it
    does not already hold data encrypted with other keys.
    """

    keys: dict[bytes, AESGCM]
    current: bytes
    folder: Path | None = None
    unsaved: bytes | None = None  # the raw new key, until persisted
    # one persist at a time: concurrent writer threads may all find the key unsaved
    _persisting: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_keys(cls, raw_keys: list[bytes], folder: Path | None = None) -> Keyring:
        """Build a keyring from raw 32-byte keys; the last one encrypts new data."""
        if not raw_keys:
            raise ValueError("at least one data key is needed")
        keys: dict[bytes, AESGCM] = {}
        for raw in raw_keys:
            if len(raw) != 32:
                raise ValueError("data keys are 32 bytes (AES-256)")
            keys[_key_id(raw)] = AESGCM(raw)
        return cls(keys, _key_id(raw_keys[-1]), folder)

    @classmethod
    def load_or_create(cls, folder: Path) -> Keyring:
        """The data keys of a state folder (``keys/data-*.key``); a new one if there are none."""
        kdir = folder / "keys"
        files = sorted(kdir.glob("data-*.key")) if kdir.is_dir() else []
        if files:
            return cls.from_keys([f.read_bytes() for f in files], kdir)
        raw = os.urandom(32)
        ring = cls.from_keys([raw], kdir)
        ring.unsaved = raw
        return ring

    def persist(self) -> None:
        """Write a new key to its folder (atomically; a concurrent creator's key wins)."""
        with self._persisting:
            self._persist()

    def _persist(self) -> None:
        if self.unsaved is None or self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.folder / "data-0001.key"
        tmp = self.folder / f".data-0001.key.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.unsaved)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        tmp.unlink()
        winner = Keyring.load_or_create(self.folder.parent)
        self.keys, self.current, self.unsaved = winner.keys, winner.current, None

    def key_ids(self) -> list[str]:
        """The ids (hex) of the keys this keyring can decrypt with."""
        return [kid.hex() for kid in self.keys]

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt one body; ``aad`` binds it to its resource type, id and version."""
        if self.unsaved is not None:
            self.persist()
        nonce = os.urandom(_NONCE_LEN)
        sealed = self.keys[self.current].encrypt(nonce, plaintext, aad)
        return _FORMAT + self.current + nonce + sealed

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt one body written by :meth:`encrypt`."""
        if blob[:1] != _FORMAT:
            raise DataKeyError("unknown storage format")
        kid = blob[1 : 1 + _KEY_ID_LEN]
        start = 1 + _KEY_ID_LEN
        nonce = blob[start : start + _NONCE_LEN]
        aes = self.keys.get(kid)
        if aes is None:
            raise DataKeyError("stored data was encrypted with a key this server does not have")
        return aes.decrypt(nonce, blob[start + _NONCE_LEN :], aad)


def _key_id(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()[:_KEY_ID_LEN]
