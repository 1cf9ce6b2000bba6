"""Heartbeats: one daemon thread per Study object that has asked for trials.

Every ``interval`` seconds the thread (1) stamps ``heartbeat = now`` on the RUNNING
trials this Study object created and has not finished (one UPDATE, no sequence bump,
so other processes' caches are not disturbed), and (2) runs the stale sweep of the
study: RUNNING trials of any process whose heartbeat is older than the grace period
become FAIL "stale: process gone" and their configurations are queued for a re-run.
The sweep reads a partial index over RUNNING trials, so it costs the same at 10 and at
10^5 trials, and it runs in this thread, never on the ask/tell path.  ``ask``/``tell``
only add and remove a trial id in a set.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.storage import BaseStorage

__all__ = ["Heartbeat"]

logger = logging.getLogger("hpcore")


class Heartbeat:
    """Keeps this process's trials of one study alive, and fails other processes' dead ones.

    Parameters
    ----------
    storage : BaseStorage
        The study's storage.
    study_id : int
        The study.
    interval : float
        Seconds between beats (and sweeps).
    grace_period : float
        Age after which another process's RUNNING trial is stale.
    retries : int
        Re-runs allowed per configuration (queued by the sweep).
    """

    def __init__(self, storage: "BaseStorage", study_id: int, interval: float,
                 grace_period: float, retries: int) -> None:
        self.storage = storage
        self.study_id = study_id
        self.interval = float(interval)
        self.grace_period = float(grace_period)
        self.retries = int(retries)
        self._owned: dict[int, None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._warned = False

    # -- the ask/tell side: O(1) ------------------------------------------------------
    def add(self, trial_id: int) -> None:
        """A trial this process runs (until :meth:`discard`)."""
        with self._lock:
            self._owned[trial_id] = None

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._owned.pop(trial_id, None)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (once; again in a forked child, whose parent's trials it drops)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._owned.clear()
            self._lock = threading.Lock()
            self._thread = None
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="hpcore-heartbeat", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread (idempotent).  Trials still owned stop beating: if this process
        keeps running them, another process may fail them after the grace period."""
        self._stop.set()
        t = self._thread
        if t is not None and t.is_alive() and t is not threading.current_thread():
            t.join(timeout)

    # -- the thread ---------------------------------------------------------------------
    def beat(self) -> None:
        """Stamp the owned RUNNING trials now."""
        with self._lock:
            ids = list(self._owned)
        if ids:
            self.storage.record_heartbeat(ids)

    def sweep(self) -> list[int]:
        """Fail the study's stale trials now; returns their numbers."""
        numbers = self.storage.fail_stale_trials(self.study_id, self.grace_period, self.retries)
        if numbers:
            logger.warning("trials %s had no heartbeat for %g s: FAIL (stale: process gone)%s",
                           numbers, self.grace_period,
                           ", configurations queued for a re-run" if self.retries else "")
        return numbers

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.beat()
                    self.sweep()
                    self._warned = False
                except Exception as exc:  # noqa: BLE001 - keep beating through a bad moment
                    if not self._warned:
                        logger.warning("heartbeat of study %s failed (will retry): %s: %s",
                                       self.study_id, type(exc).__name__, exc)
                        self._warned = True
        finally:
            from hpcore.storage import SQLiteStorage

            if isinstance(self.storage, SQLiteStorage):
                self.storage.close()   # this thread's connection only (one per thread)


def heartbeat_settings(storage: "BaseStorage", interval: float | None,
                       grace_period: float | None) -> tuple[float | None, float | None]:
    """The ``(interval, grace_period)`` a Study uses: its own when given, else the storage's.

    ``grace_period`` defaults to ``6 * interval``; it must exceed the interval.
    """
    from hpcore.storage import _check_interval

    iv = _check_interval("heartbeat_interval", interval)
    gp = _check_interval("grace_period", grace_period)
    if iv is None:
        iv = storage.heartbeat_interval
    if gp is None:
        gp = storage.grace_period if storage.grace_period is not None else (
            None if iv is None else 6.0 * iv)
    if iv is not None and gp is not None and gp <= iv:
        raise ValueError(f"grace_period ({gp}) must be longer than heartbeat_interval ({iv}), "
                         "or live trials would be failed")
    return iv, gp


def check_retries(retries: object) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    return int(retries)
