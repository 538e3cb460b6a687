"""Health data encrypted at rest: AES-256-GCM on every stored resource body.

https://cryptography.io/en/latest/hazmat/primitives/aead/ (HDS: confidentiality of stored data)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_FORMAT = b"\x01"
_KEY_ID_LEN = 8
_NONCE_LEN = 12


class DataKeyError(RuntimeError):
    """A stored body names a key this server does not have, or the ciphertext is corrupt."""


@dataclass
class Keyring:
    """Data keys by id; new writes use ``current``, old keys stay readable after rotation."""

    keys: dict[bytes, AESGCM]
    current: bytes

    @classmethod
    def from_keys(cls, raw_keys: list[bytes]) -> Keyring:
        """Build a keyring from raw 32-byte keys; the last one encrypts new data."""
        if not raw_keys:
            raise ValueError("at least one data key is needed")
        keys: dict[bytes, AESGCM] = {}
        for raw in raw_keys:
            if len(raw) != 32:
                raise ValueError("data keys are 32 bytes (AES-256)")
            keys[hashlib.sha256(raw).digest()[:_KEY_ID_LEN]] = AESGCM(raw)
        current = hashlib.sha256(raw_keys[-1]).digest()[:_KEY_ID_LEN]
        return cls(keys, current)

    @classmethod
    def load_or_create(cls, folder: Path) -> Keyring:
        """Load the data keys of a state folder (``keys/data-*.key``), creating one if none."""
        kdir = folder / "keys"
        kdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = sorted(kdir.glob("data-*.key"))
        if not files:
            path = kdir / "data-0001.key"
            tmp = kdir / f".data-0001.key.{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32))
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # atomic: loses to a concurrent creator instead of clobbering
            tmp.unlink()
            files = [path]
        return cls.from_keys([f.read_bytes() for f in files])

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt one body; ``aad`` binds it to its resource type, id and version."""
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
