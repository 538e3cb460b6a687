"""Document blob store throughput against the raw disk, measured in the same run.

Writes: ``BlobStore.put`` (AES-256-GCM in 64 KiB chunks, SHA-1 + SHA-256, fsync of file and
folder) of 100 kB, 1 MB and 10 MB blobs, against a plain file write + fsync of the same bytes.
Reads: a full read and 1 MiB range reads of a 10 MB blob, decrypted, against plain file reads
(from the page cache in both cases). Prints a table; not a test.

    .venv/bin/python bench/blobs.py [--dir /var/tmp] [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from maison.store.blobs import BlobStore, FileBackend, MasterKeys

MB = 1_000_000
SIZES = [("100 kB", 100_000), ("1 MB", MB), ("10 MB", 10 * MB)]
PIECE = 256 * 1024  # an upload arrives in pieces, as from an ASGI request body


def _repeat(seconds: float, once: Callable[[], int]) -> tuple[float, int]:
    """Run ``once`` (returning bytes moved) until ``seconds`` pass; (MB/s, runs)."""
    runs = moved = 0
    started = time.perf_counter()
    while True:
        moved += once()
        runs += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and runs >= 3:
            return moved / elapsed / MB, runs


def _raw_write(folder: Path, data: bytes) -> int:
    path = folder / f"raw-{os.urandom(8).hex()}"
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(data)


def _pieces(data: bytes) -> list[bytes]:
    return [data[i : i + PIECE] for i in range(0, len(data), PIECE)]


def main() -> None:
    """Print write and read throughput of the blob store next to the raw disk's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="Folder to write in (default: system temp).")
    parser.add_argument("--seconds", type=float, default=2.0, help="Time per measurement.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="maison-bench-blobs-") as tmp:
        root = Path(tmp)
        raw_dir = root / "raw"
        raw_dir.mkdir()
        store = BlobStore(FileBackend(root / "blobs"), MasterKeys.load_or_create(root / "keys"))
        rows: list[tuple[str, str, float, float, int]] = []
        for label, size in SIZES:
            data = os.urandom(size)
            pieces = _pieces(data)
            raw, _ = _repeat(args.seconds, lambda d=data: _raw_write(raw_dir, d))  # type: ignore[misc]
            enc, runs = _repeat(
                args.seconds,
                lambda p=pieces, n=size: store.put(p, max_bytes=n).size,  # type: ignore[misc]
            )
            rows.append(("write + fsync", label, enc, raw, runs))

        data = os.urandom(10 * MB)
        blob_id = store.put(_pieces(data), max_bytes=len(data)).blob_id
        raw_path = raw_dir / "read-10MB"
        raw_path.write_bytes(data)

        def full_read() -> int:
            return sum(len(p) for p in store.open(blob_id))

        def raw_full_read() -> int:
            with raw_path.open("rb") as f:
                return sum(len(p) for p in iter(lambda: f.read(MB), b""))

        rng = random.Random(7)
        span = 1024 * 1024

        def range_read() -> int:
            start = rng.randrange(0, len(data) - span)
            return sum(len(p) for p in store.open(blob_id, start, start + span))

        def raw_range_read() -> int:
            start = rng.randrange(0, len(data) - span)
            with raw_path.open("rb") as f:
                f.seek(start)
                return len(f.read(span))

        for label, enc_fn, raw_fn in (
            ("read (whole)", full_read, raw_full_read),
            ("read 1 MiB range", range_read, raw_range_read),
        ):
            raw, _ = _repeat(args.seconds, raw_fn)
            enc, runs = _repeat(args.seconds, enc_fn)
            rows.append((label, "10 MB", enc, raw, runs))

    print(f"{'operation':<18} {'blob':>7} {'blob store MB/s':>16} {'raw MB/s':>10} "
          f"{'ratio':>6} {'runs':>6}")  # fmt: skip
    for op, label, enc, raw, runs in rows:
        print(f"{op:<18} {label:>7} {enc:>16,.1f} {raw:>10,.1f} {enc / raw:>6.2f} {runs:>6}")


if __name__ == "__main__":
    main()
