"""Work started on a helper thread now and waited for later."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


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
