"""Key files: written once, atomically, readable by their owner only (0600), durable with their
folder before anyone relies on them.

https://man7.org/linux/man-pages/man2/link.2.html (link(2) fails with EEXIST: the first writer
wins a race), https://man7.org/linux/man-pages/man2/fsync.2.html
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


def fsync_folder(folder: Path) -> None:
    """Make the folder's entries (a new or renamed file) durable: https://man7.org/linux/man-pages/man2/fsync.2.html."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_secret_file(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file ``path`` (mode 0600, fsynced, then linked into place and
    the folder fsynced); False, writing nothing, when ``path`` already exists — another
    process won the race and its file is the one to use
    (https://man7.org/linux/man-pages/man2/link.2.html)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_folder(path.parent)
    return True


def check_private(path: Path) -> None:
    """Refuse a key file others can read (raises PermissionError saying what to do):
    https://man7.org/linux/man-pages/man2/chmod.2.html."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")


def load_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """The URL-safe secret kept in ``path``, created (0600, durable) on first use; concurrent
    first uses agree on one (https://man7.org/linux/man-pages/man2/link.2.html)."""
    if not path.exists():
        create_secret_file(path, secrets.token_urlsafe(nbytes).encode())
    check_private(path)
    return path.read_text().strip()
