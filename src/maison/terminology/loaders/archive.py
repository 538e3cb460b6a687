"""The files a load reads: a plain file, the members of a zip archive, the files of a folder;
read errors (truncated or corrupt archives) become :class:`LoadError`.

https://docs.python.org/3/library/zipfile.html (the NOS, LOINC and SNOMED CT releases are zips)
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from maison.terminology.loaders import LoadError

_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError)


@dataclass(frozen=True)
class Entry:
    """One file to read: ``name`` as messages show it (``release.zip!dir/file.txt``),
    ``base`` its own name (https://docs.python.org/3/library/zipfile.html)."""

    name: str
    base: str
    size: int
    opener: Callable[[], AbstractContextManager[IO[bytes]]]

    def open(self) -> AbstractContextManager[IO[bytes]]:
        """The file's bytes as a stream; read errors raise :class:`LoadError`."""
        return self.opener()

    def read_bytes(self) -> bytes:
        """The whole file (for the small ones: JSON resources, NOS lists)."""
        with self.open() as stream:
            return stream.read()


class _Guarded(io.RawIOBase):
    """A stream whose read errors (a truncated member, a bad CRC) are :class:`LoadError`."""

    def __init__(self, inner: IO[bytes], name: str) -> None:
        self._inner = inner
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(buffer))
        except _READ_ERRORS as exc:
            raise LoadError(f"cannot read (truncated or corrupt: {exc})", self._name) from None
        n = len(data)
        buffer[:n] = data
        return n


def _plain(path: Path, name: str) -> Callable[[], AbstractContextManager[IO[bytes]]]:
    @contextmanager
    def opener() -> Iterator[IO[bytes]]:
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise LoadError(f"cannot open: {exc.strerror or exc}", name) from None
        with handle:
            yield io.BufferedReader(_Guarded(handle, name), 1 << 16)

    return opener


def _member(path: Path, member: str, name: str) -> Callable[[], AbstractContextManager[IO[bytes]]]:
    @contextmanager
    def opener() -> Iterator[IO[bytes]]:
        try:
            archive = zipfile.ZipFile(path)
            inner = archive.open(member)
        except (*_READ_ERRORS, NotImplementedError) as exc:
            raise LoadError(f"cannot open (corrupt or encrypted: {exc})", name) from None
        with archive, inner:
            yield io.BufferedReader(_Guarded(inner, name), 1 << 16)

    return opener


def is_zip(path: Path) -> bool:
    """Whether ``path`` starts like a zip archive (whatever its name)."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return False


def zip_entries(path: Path) -> list[Entry]:
    """The files of a zip archive, in name order (https://docs.python.org/3/library/zipfile.html)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
    except (*_READ_ERRORS, NotImplementedError) as exc:
        raise LoadError(
            f"not a readable zip archive (truncated or corrupt: {exc})", str(path)
        ) from None
    out: list[Entry] = []
    for info in sorted(infos, key=lambda i: i.filename):
        name = f"{path}!{info.filename}"
        base = info.filename.rsplit("/", 1)[-1]
        out.append(Entry(name, base, info.file_size, _member(path, info.filename, name)))
    return out


def entries(path: Path) -> list[Entry]:
    """The files behind a path: itself, a zip's members, or a folder's files (zips in it
    opened too), in name order (https://docs.python.org/3/library/zipfile.html)."""
    if path.is_dir():
        out: list[Entry] = []
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            out.extend(entries(child))
        return out
    if not path.exists():
        raise LoadError("no such file or folder", str(path))
    if is_zip(path):
        return zip_entries(path)
    if path.suffix.lower() == ".zip":
        raise LoadError("named .zip but not a zip archive", str(path))
    return [Entry(str(path), path.name, path.stat().st_size, _plain(path, str(path)))]


def decode(data: bytes, name: str) -> str:
    """Text of a small file: UTF-8 (BOM allowed), else Windows-1252 as older NOS exports."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise LoadError(f"neither UTF-8 nor Windows-1252 text: {exc}", name) from None


def text_lines(entry: Entry) -> Iterator[str]:
    """The lines of a big UTF-8 text file, streamed, line ends removed."""
    with entry.open() as stream:
        reader = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        try:
            for line in reader:
                yield line.rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise LoadError(f"not UTF-8 text: {exc}", entry.name) from None


__all__ = ["Entry", "decode", "entries", "is_zip", "text_lines", "zip_entries"]
