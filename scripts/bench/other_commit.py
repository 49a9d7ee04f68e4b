"""Another commit's tree importable beside this one, so a benchmark can compare two commits in one run."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def other_commit_python(rev: str) -> Iterator[tuple[str, str]]:
    """(python, packages): an interpreter whose `sweagent` is `rev`'s (a temporary git worktree, first on the path of
    a throwaway venv that sees this venv's packages) and the folder of those packages, which a sandbox server of
    that tree must be shown read-only (the sandbox does not follow the .pth)."""
    with tempfile.TemporaryDirectory(prefix="oec-bench-rev-") as scratch:
        tree, venv = Path(scratch, "tree"), Path(scratch, "venv")
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
        try:
            subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
            # Path lines of a .pth are plain sys.path entries: the old tree wins, and the .pth files in this venv's
            # packages (the one that puts this checkout on the path among them) are never read.
            packages = sysconfig.get_paths()["purelib"]
            (site / "oec_bench.pth").write_text(f"{tree}\n{packages}\n")
            yield str(venv / "bin" / "python"), packages
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
