"""Fetch the pinned npm packages (FHIR definitions, the portal's assets) and verify them.

https://hl7.org/fhir/R4/downloads.html
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from maison.fhir.definitions import cache_dir, package_dir, package_pins


class PackageError(RuntimeError):
    """A package could not be fetched or did not match its pinned checksum."""


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_package(key: str, root: Path | None = None) -> Path:
    """Fetch, verify and extract one pinned package unless already cached; return its folder."""
    pin = package_pins()[key]
    folder = package_dir(key, root)
    if (folder / ".verified").exists():
        return folder
    base = root or cache_dir()
    tarballs = base / "tarballs"
    tarballs.mkdir(parents=True, exist_ok=True)
    name = pin["npm"].lstrip("@").replace("/", "-") + f"-{pin['version']}.tgz"
    tgz = tarballs / name
    if not tgz.exists() or sha256(tgz) != pin["sha256"]:
        npm = shutil.which("npm")
        if npm is None:
            raise PackageError(f"npm is needed to fetch {pin['npm']}")
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [npm, "pack", f"{pin['npm']}@{pin['version']}", "--pack-destination", tmp],
                capture_output=True,
                text=True,
                check=False,
            )
            got = Path(tmp) / name
            if proc.returncode != 0 or not got.exists():
                raise PackageError(f"npm pack {pin['npm']}@{pin['version']} failed: {proc.stderr}")
            shutil.move(str(got), tgz)
    digest = sha256(tgz)
    if digest != pin["sha256"]:
        tgz.unlink(missing_ok=True)
        raise PackageError(
            f"{pin['npm']}@{pin['version']}: checksum {digest} does not match {pin['sha256']}"
        )
    tmpdir = Path(tempfile.mkdtemp(dir=tarballs))
    with tarfile.open(tgz) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for dest, member in pin.get("files", {}).items():
            src = tar.extractfile(members[member]) if member in members else None
            if src is None:
                raise PackageError(f"{member} missing from {name}")
            (tmpdir / dest).parent.mkdir(parents=True, exist_ok=True)
            (tmpdir / dest).write_bytes(src.read())
        for dest, prefix in pin.get("trees", {}).items():
            below = [m for m in members.values() if m.isfile() and m.name.startswith(prefix + "/")]
            if not below:
                raise PackageError(f"{prefix}/ missing from {name}")
            for member_info in below:
                relative = PurePosixPath(member_info.name[len(prefix) + 1 :])
                if relative.is_absolute() or ".." in relative.parts:
                    raise PackageError(f"{member_info.name}: unsafe path in {name}")
                target = tmpdir / dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member_info)
                assert src is not None
                target.write_bytes(src.read())
    (tmpdir / ".verified").write_text(digest + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmpdir.rename(folder)
    return folder


def ensure_all(root: Path | None = None) -> list[Path]:
    """Fetch every pinned package."""
    return [ensure_package(k, root) for k in package_pins()]
