"""Process lifetime: SIGTERM handled like Ctrl-C, and workers that follow their parent.

``handle_sigterm()`` turns SIGTERM into a :class:`Terminated` exception raised in the
main thread, so that whatever runs a study (the inline loop, an executor's dispatch
loop) fails its running trials with ``"terminated (SIGTERM)"`` and unwinds with the
storage consistent, as it does for Ctrl-C.  ``watch_parent()`` makes a worker process
exit as soon as the process that started it is gone, so no worker outlives a killed
study.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

__all__ = ["Terminated", "handle_sigterm", "interruption_error", "watch_parent"]

#: Exit status of a process stopped by SIGTERM (the shell's convention, 128 + 15).
TERMINATED_EXIT_CODE = 128 + int(getattr(signal, "SIGTERM", 15))


class Terminated(SystemExit):
    """Raised in the main thread when the process receives SIGTERM during ``optimize``.

    A ``SystemExit`` (code 143): uncaught, the interpreter exits quietly with that
    status after the study has failed its running trials.
    """

    def __init__(self) -> None:
        super().__init__(TERMINATED_EXIT_CODE)

    def __str__(self) -> str:
        return "terminated (SIGTERM)"


def interruption_error(exc: BaseException) -> str:
    """The error stored on a trial that ``exc`` stopped from outside the objective."""
    if isinstance(exc, Terminated):
        return "terminated (SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    return f"aborted: {type(exc).__name__}: {exc}"


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def handle_sigterm() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread.

    Does nothing outside the main thread, on platforms without SIGTERM handlers, or
    when the program installed its own SIGTERM handler (that one is left alone).
    Nested uses are harmless; the previous handler is restored on exit.
    """
    sig = getattr(signal, "SIGTERM", None)
    if sig is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(sig)
    except (ValueError, OSError):  # pragma: no cover - exotic embedding
        yield
        return
    if previous not in (signal.SIG_DFL, None) and previous is not _raise_terminated:
        yield
        return
    signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)


def watch_parent(parent_pid: int, interval: float = 0.25) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit(1)``) once
    ``parent_pid`` is no longer its parent (the parent died: the process was
    re-parented, as POSIX does).  On Windows, where a process is not re-parented, the
    worker instead ends when its pipe to the parent closes."""
    def _watch() -> None:
        ev = threading.Event()
        while not ev.wait(interval):
            if os.getppid() != parent_pid:
                os._exit(1)

    t = threading.Thread(target=_watch, name="hpcore-parent-watch", daemon=True)
    t.start()
    return t
