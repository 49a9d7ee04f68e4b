"""Work started on a helper thread now and waited for later, and the lock hand-over such work wants."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

FAST_SWITCH_INTERVAL_S = 0.0005
"""The interpreter-lock hand-over interval between `begin_fast_switching` and `end_fast_switching` (Python's
default is 5 ms)."""
_fast = {"blocks": 0, "saved": 0.0}
_fast_lock = threading.Lock()


def in_thread(function: Callable[..., T], *args: Any, name: str) -> Future[T]:
    """Run `function(*args)` on a new daemon thread; the future holds what it returned or raised (anything,
    KeyboardInterrupt included, so whoever waits sees why it ended)."""
    done: Future[T] = Future()

    def run() -> None:
        try:
            result = function(*args)
        except BaseException as exc:
            done.set_exception(exc)
        else:
            done.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


def begin_fast_switching() -> None:
    """Until the matching `end_fast_switching` (which another thread may call), threads hand the interpreter lock
    over every 0.5 ms instead of every 5 ms; overlapping spans keep it short until the last one ends.

    For a helper thread that makes many short system calls while another thread computes (a sandbox start while
    the agent's modules load): each call gives up the lock, and taking it back waits for the busy thread's
    interval, so ten calls cost 50 ms at the default (measured: creating the sandbox's cgroups took 16-53 ms
    that way, 0.4 ms alone; the first step came 14 ms sooner with the short interval, the imports no later)."""
    with _fast_lock:
        if _fast["blocks"] == 0:
            _fast["saved"] = sys.getswitchinterval()
            sys.setswitchinterval(FAST_SWITCH_INTERVAL_S)
        _fast["blocks"] += 1


def end_fast_switching() -> None:
    with _fast_lock:
        _fast["blocks"] -= 1
        if _fast["blocks"] == 0:
            sys.setswitchinterval(_fast["saved"])
