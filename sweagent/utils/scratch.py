"""Host scratch space (workspaces, upload staging) that the next process cleans up after a `kill -9`.

Each process keeps its scratch folders inside one folder of its own, `<base>/oec-proc-<pid>-<random>/`, whose `lock`
file it holds locked (`flock`) for as long as it lives. The kernel drops that lock when the process dies, however it
dies, so a process that can take the lock of such a folder knows its owner is gone and removes it. A folder only
appears under that name once its lock is held (it is made under a hidden name, locked, then renamed), so a live
process's folder can never be taken for a stale one. Locks, unlike pids, mean the same in every pid namespace that
shares the folder (containers, sandboxes), and several processes may clean the same base at once.

Deleting a finished workspace (its git objects included) takes a tenth of a second or more on a busy disk, so it
never waits on a rollout's critical path: `remove_later` hands a folder to a background thread, and at exit the
process renames its whole folder to a `.oec-trash-*` name (instant; it is no longer anyone's scratch folder) and
leaves its deletion to a detached `rm -rf`. Trash that such an `rm` did not finish is removed by the next process's
sweep.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

PREFIX = "oec-proc-"
_NEW_PREFIX = ".oec-proc-new-"
_TRASH_PREFIX = ".oec-trash-"
_LOCK_FILE = "lock"
_guard = threading.Lock()
_owned: dict[tuple[int, Path], Path] = {}
"""(pid, base) -> this process's folder under base; the pid keeps a forked child from using its parent's folder."""


def process_scratch_dir(base: str | Path | None = None) -> Path:
    """This process's scratch folder under `base` (default: the system temp folder), created on first use.

    The first call for a base also removes the folders that dead processes left there.
    """
    base = Path(base or tempfile.gettempdir()).resolve()
    key = (os.getpid(), base)
    with _guard:
        folder = _owned.get(key)
        if folder is None or not folder.is_dir():
            base.mkdir(parents=True, exist_ok=True)
            remove_stale_scratch_dirs(base)
            folder = _owned[key] = _create(base)
        return folder


def _create(base: Path) -> Path:
    staging = Path(tempfile.mkdtemp(prefix=_NEW_PREFIX, dir=base))
    fd = os.open(staging / _LOCK_FILE, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held until this process exits: the descriptor is never closed before then
    folder = base / f"{PREFIX}{os.getpid()}-{staging.name.removeprefix(_NEW_PREFIX)}"
    os.rename(staging, folder)
    atexit.register(_remove_own, folder, os.getpid())
    return folder


def _remove_own(folder: Path, pid: int) -> None:
    if os.getpid() != pid:
        return
    trash = folder.with_name(_TRASH_PREFIX + folder.name)
    try:
        os.rename(folder, trash)
        subprocess.Popen(["rm", "-rf", "--", str(trash)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:  # no rename (gone already) or no `rm`: delete it here
        shutil.rmtree(trash if trash.exists() else folder, ignore_errors=True)


_pending: queue.SimpleQueue[Path] = queue.SimpleQueue()
_remover: threading.Thread | None = None


def remove_later(folder: Path) -> None:
    """Delete `folder` on a background thread; whatever is left of it at exit goes with the process's own folder
    (or, outside one, with the next sweep of its base's trash)."""
    global _remover
    _pending.put(folder)
    with _guard:
        if _remover is None or not _remover.is_alive():
            _remover = threading.Thread(target=_remove_pending, name="oec-scratch-remover", daemon=True)
            _remover.start()


def _remove_pending() -> None:
    while True:
        shutil.rmtree(_pending.get(), ignore_errors=True)


def remove_stale_scratch_dirs(base: str | Path) -> list[Path]:
    """Remove the scratch folders under `base` whose owning process is dead; return them."""
    removed = []
    for trash in Path(base).glob(f"{_TRASH_PREFIX}*"):  # an exit's detached `rm` that did not finish
        shutil.rmtree(trash, ignore_errors=True)
    for folder in sorted(Path(base).glob(f"{PREFIX}*")):
        try:
            fd = os.open(folder / _LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:  # a removal that stopped part-way (a folder is only ever named once locked)
            shutil.rmtree(folder, ignore_errors=True)
            continue
        except OSError:  # not a folder this scheme made, or another user's
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # the owner is alive
            continue
        else:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed
