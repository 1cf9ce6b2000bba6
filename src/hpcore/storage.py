"""Trial storage: in memory, or SQLite (stdlib ``sqlite3``) for durable, shared studies.

Reads are incremental.  Every change to a trial, and every intermediate report, takes
the next value of the study's sequence counter; a reader asks for what changed since
the last sequence number it saw (``trials_since`` / ``reports_since``), so the cost of
keeping a study up to date is proportional to what changed, never to the study's size.

SQLite runs in WAL mode; every write is one ``BEGIN IMMEDIATE`` transaction with a long
busy timeout (plus a retry loop), so several processes can share one study file
without "database is locked" errors.  A finished trial is committed before ``tell``
returns: a crash (even SIGKILL) loses no finished trial.

Reliability (see ``ARCHITECTURE.md``):

- The file format is versioned (``PRAGMA user_version``, :mod:`hpcore._schema`): an old
  file is migrated on open, a newer one is refused, ``read_only=True`` (or the URL
  ``sqlite:///path.db?mode=ro``) opens a file for analysis, even in a read-only directory.
- Heartbeats: a RUNNING trial carries the time its process last said it was alive
  (:meth:`BaseStorage.record_heartbeat`); :meth:`BaseStorage.fail_stale_trials` turns
  those older than a grace period into FAIL "stale: process gone" and queues their
  configuration for a re-run (:meth:`BaseStorage.start_trial` takes it), keeping a link.
- A study stores its sampler and pruner as JSON (``get_study_algorithms``).
"""
from __future__ import annotations

import bisect
import json
import math
import os
import random
import sqlite3
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from typing import Any, NamedTuple, Sequence

from hpcore._schema import StorageVersionError, check_version, file_version, initialize
from hpcore.trial import FrozenTrial, TrialState

__all__ = ["BaseStorage", "InMemoryStorage", "SQLiteStorage", "get_storage", "StudyNotFound",
           "StorageVersionError", "NewTrial", "STALE_ERROR"]

_RUNNING = TrialState.RUNNING

#: How the error of a trial failed by the stale sweep begins.
STALE_ERROR = "stale: process gone"


class StudyNotFound(KeyError):
    """No study of that name in the storage (a ``KeyError``); nothing was written."""

    def __str__(self) -> str:   # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else "study not found"


class NewTrial(NamedTuple):
    """A trial just created by :meth:`BaseStorage.start_trial`.

    ``params`` is ``None`` when the caller must still sample and store them; it is the
    configuration when the trial was created with it (given, or taken from the retry
    queue, in which case ``system_attrs`` holds ``retry_of`` and ``attempt``).
    """

    trial_id: int
    number: int
    datetime_start: float
    params: dict | None
    system_attrs: dict


def _retry_entry(number: int, params: dict, system_attrs: dict,
                 retries: int) -> tuple[dict, dict, float | None] | None:
    """What to queue when trial ``number`` failed and may be re-run (``None``: do not).

    ``attempt`` counts re-runs of one configuration (0 for the first run), so
    ``retries=n`` runs a configuration at most ``1 + n`` times.
    """
    attempt = int(system_attrs.get("attempt", 0) or 0)
    if not params or attempt >= retries:
        return None
    attrs: dict[str, Any] = {"retry_of": int(number), "attempt": attempt + 1}
    budget = system_attrs.get("budget")
    if budget is not None:
        attrs["budget"] = budget
    return dict(params), attrs, budget


def _stale_error(age: float, grace: float) -> str:
    return f"{STALE_ERROR} (last heartbeat {age:.1f} s ago, grace period {grace:g} s)"


def _is_stale(state: int, error: str | None) -> bool:
    """Whether a stored trial was failed by the stale sweep."""
    return state == TrialState.FAIL and (error or "").startswith(STALE_ERROR)


def check_batch_size(n: Any, name: str = "q") -> int:
    """A batch size: an int >= 1 (``TypeError`` / ``ValueError`` naming ``name``)."""
    import numbers

    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 1, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    return int(n)


def _check_interval(name: str, v: Any, allow_none: bool = True) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number of seconds > 0"
                         f"{' or None' if allow_none else ''}, got {v!r}")
    return float(v)


def _check_finished(trial: FrozenTrial) -> TrialState:
    """The state of a trial to import: COMPLETE, PRUNED or FAIL (else ``ValueError``)."""
    state = TrialState(trial.state)
    if state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
        raise ValueError(f"trial {trial.number}: only finished trials can be added, "
                         f"got state {state.name}")
    return state


class BaseStorage(ABC):
    """Interface every storage implements.  ``study_id`` keys a study."""

    url: str | None = None
    #: Seconds between a process's heartbeats (``None``: no heartbeats, no stale sweep).
    heartbeat_interval: float | None = None
    #: A RUNNING trial whose heartbeat is older than this many seconds is stale.
    grace_period: float | None = None
    #: Whether writes are refused (analysis of a file).
    read_only: bool = False

    @abstractmethod
    def get_or_create_study(self, name: str, directions: list[str] | None,
                            space: dict | None) -> tuple[int, list[str], dict | None]:
        """Create study ``name`` or open it; returns ``(study_id, directions, space)``.

        When it exists, ``directions`` (if given) must match the stored ones; a new
        study with ``directions=None`` minimizes one objective.
        """

    def get_study(self, name: str) -> tuple[int, list[str], dict | None]:
        """Open study ``name`` without creating it: ``(study_id, directions, space)``.

        Raises :class:`StudyNotFound` (and writes nothing) when there is none.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement get_study")

    @abstractmethod
    def set_study_space(self, study_id: int, space: dict) -> None:
        """Record the study's search space (done once, when first known)."""

    def get_study_algorithms(self, study_id: int) -> tuple[dict | None, dict | None]:
        """The stored ``(sampler, pruner)`` configs (``{"class", "params"}``; ``None``: none)."""
        return None, None

    def set_study_algorithms(self, study_id: int, sampler: dict | None,
                             pruner: dict | None) -> None:
        """Store the study's sampler and/or pruner config (a ``None`` leaves it as it is)."""

    @abstractmethod
    def create_trial(self, study_id: int, system_attrs: dict | None = None) -> tuple[int, int, float]:
        """Add a RUNNING trial; returns ``(trial_id, number, datetime_start)``.

        Numbers are 0, 1, 2, ... per study, unique across processes.
        """

    def start_trial(self, study_id: int, system_attrs: dict | None = None,
                    params: dict | None = None, *, take_queued: bool = False,
                    budget: float | None = None) -> NewTrial:
        """Create a RUNNING trial, in one transaction with its ``params`` when given.

        With ``take_queued=True`` (and no ``params``) the oldest configuration queued for
        a re-run whose budget is ``budget`` becomes the trial instead (its ``params`` and
        ``system_attrs`` are returned).  Storages without a queue inherit this version.
        """
        tid, number, now = self.create_trial(study_id, system_attrs)
        if params is not None:
            try:
                self.set_trial_params(tid, params)
            except BaseException:
                self.discard_trial(tid)
                raise
        return NewTrial(tid, number, now, params, dict(system_attrs or {}))

    @abstractmethod
    def set_trial_params(self, trial_id: int, params: dict) -> None: ...

    def record_heartbeat(self, trial_ids: Sequence[int]) -> None:
        """Say that the process running these trials is alive (no sequence bump)."""

    def fail_stale_trials(self, study_id: int, grace_period: float, retries: int = 0) -> list[int]:
        """FAIL every RUNNING trial whose heartbeat is older than ``grace_period`` seconds.

        The error starts with ``"stale: process gone"``.  A failed trial with params whose
        ``attempt`` is below ``retries`` has its configuration queued for a re-run.  Returns
        the numbers of the trials failed, in number order.
        """
        return []

    def fail_and_requeue(self, trial_id: int, error: str, retries: int) -> bool:
        """FAIL a RUNNING trial and queue its configuration as :meth:`fail_stale_trials`
        does, in one transaction.  Returns whether it was queued."""
        self.finish_trial(trial_id, TrialState.FAIL, None, error)
        return False

    # -- batches (issue 18): several trials per transaction ------------------------------
    def start_trials(self, study_id: int, n: int, system_attrs: dict | None = None, *,
                     take_queued: bool = False, budget: float | None = None) -> list[NewTrial]:
        """Create ``n`` RUNNING trials as ``n`` calls of :meth:`start_trial` without
        params would (queued configurations first, oldest first, when ``take_queued``),
        in one transaction where the storage has them (:class:`SQLiteStorage`: one
        ``BEGIN IMMEDIATE``).  Returns them in number order."""
        return [self.start_trial(study_id, system_attrs, None, take_queued=take_queued,
                                 budget=budget) for _ in range(n)]

    def set_trials_params(self, items: Sequence[tuple[int, dict]]) -> None:
        """Store ``(trial_id, params)`` for several RUNNING trials (one transaction where
        the storage has them; ``ValueError`` naming a finished trial, and nothing is
        stored)."""
        for trial_id, params in items:
            self.set_trial_params(trial_id, params)

    def finish_trials(self, items: Sequence[tuple[int, TrialState, tuple[float, ...] | None,
                                                  str | None, int | None]]) -> list[int]:
        """Finish several RUNNING trials: ``(trial_id, state, values, error, retries)``
        each, ``retries`` ``None`` for :meth:`finish_trial`, an int for
        :meth:`fail_and_requeue` (a FAIL whose configuration may be re-run).

        One transaction where the storage has them.  A trial the stale sweep already
        failed (error starting ``"stale: process gone"``) is skipped; the positions of
        the skipped items are returned.  Any other trial that is not RUNNING raises
        ``ValueError`` naming it (the transactional storages then store nothing)."""
        skipped = []
        for i, (tid, state, values, error, retries) in enumerate(items):
            try:
                if retries is None:
                    self.finish_trial(tid, state, values, error)
                else:
                    self.fail_and_requeue(tid, error or "failed", retries)
            except ValueError:
                stored = self.get_trial(tid)
                if not _is_stale(stored.state, stored.error):
                    raise
                skipped.append(i)
        return skipped

    # -- warm starts: queue a configuration, import a finished trial (issue 15) --------
    def enqueue_params(self, study_id: int, params: dict, system_attrs: dict | None = None) -> None:
        """Queue ``params`` (a validated configuration) at the end of the study's queue,
        the one re-runs use: the next :meth:`start_trial` with ``take_queued=True`` (and
        the budget ``system_attrs.get("budget")``) takes the oldest entry, exactly once
        however many processes ask."""
        raise NotImplementedError(f"{type(self).__name__} has no queue")

    def n_queued(self, study_id: int) -> int:
        """Number of configurations waiting in the study's queue."""
        raise NotImplementedError(f"{type(self).__name__} has no queue")

    def add_finished_trial(self, study_id: int, trial: FrozenTrial) -> tuple[int, int]:
        """Insert a finished (COMPLETE, PRUNED or FAIL) copy of ``trial`` -- params,
        values, intermediate values (as reports, which pruners fold), user and system
        attributes, times, error -- under the study's next number, in one transaction.
        Returns ``(trial_id, number)``."""
        raise NotImplementedError(f"{type(self).__name__} cannot import trials")

    @abstractmethod
    def discard_trial(self, trial_id: int) -> None:
        """Remove a trial that never ran (its sampler had nothing to propose)."""

    @abstractmethod
    def report(self, trial_id: int, step: int, value: float) -> None:
        """Store an intermediate value of a RUNNING trial."""

    @abstractmethod
    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None: ...

    @abstractmethod
    def finish_trial(self, trial_id: int, state: TrialState, values: tuple[float, ...] | None,
                     error: str | None = None) -> None:
        """Finish a RUNNING trial (one transaction).  ``ValueError`` if already finished."""

    @abstractmethod
    def trials_since(self, study_id: int, seq: int) -> tuple[list[FrozenTrial], int]:
        """Trials changed after sequence number ``seq``, and the newest sequence number."""

    @abstractmethod
    def reports_since(self, study_id: int, seq: int) -> tuple[list[tuple[int, int, float]], int]:
        """Reports ``(trial_number, step, value)`` made after ``seq``, in order, and the
        newest sequence number seen."""

    @abstractmethod
    def get_trial(self, trial_id: int) -> FrozenTrial: ...

    def close(self) -> None:
        """Release resources (connections)."""

    def study_summaries(self) -> list[dict[str, Any]]:
        """Every study, by ``study_id``: ``{"study_id", "name", "directions",
        "n_trials", "states" (state name -> count), "best_values" (the best value
        per objective of a single-objective study, else ``None``), "datetime_start"}``
        (for :func:`hpcore.list_studies`).  One aggregate query, no trial rows read."""
        raise NotImplementedError(f"{type(self).__name__} does not list its studies")


def get_storage(storage: "BaseStorage | str | None", *, create: bool = True) -> BaseStorage:
    """``None`` -> in memory; ``"sqlite:///path.db"`` -> SQLite; a storage passes through.

    A SQLite URL may end in a query: ``?mode=ro`` (read-only), ``heartbeat_interval=``,
    ``grace_period=``, ``timeout=`` (seconds), e.g. ``sqlite:///runs.db?mode=ro``.
    ``create=False`` refuses to create a missing file (``FileNotFoundError``).
    """
    if storage is None:
        return InMemoryStorage()
    if isinstance(storage, BaseStorage):
        return storage
    if isinstance(storage, str):
        if storage.startswith("sqlite:///"):
            path, _, query = storage[len("sqlite:///"):].partition("?")
            return SQLiteStorage(path, create=create, **_url_options(storage, query))
        raise ValueError(f"storage: unsupported URL {storage!r} (use 'sqlite:///path.db')")
    raise TypeError(f"storage must be None, a URL string or a BaseStorage, got {type(storage).__name__}")


def _url_options(url: str, query: str) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key == "mode":
            if value not in ("ro", "rw", "rwc"):
                raise ValueError(f"storage: mode must be 'ro', 'rw' or 'rwc' in {url!r}, got {value!r}")
            opts["read_only"] = value == "ro"
        elif key in ("heartbeat_interval", "grace_period", "timeout"):
            if value.lower() in ("", "none") and key != "timeout":
                opts[key] = None
                continue
            try:
                opts[key] = float(value)
            except ValueError:
                raise ValueError(f"storage: {key} must be a number of seconds in {url!r}, "
                                 f"got {value!r}") from None
        else:
            raise ValueError(f"storage: unknown URL option {key!r} in {url!r} (known: mode, "
                             "heartbeat_interval, grace_period, timeout)")
    return opts


def _check_directions(name: str, stored: list[str], given: list[str] | None) -> None:
    if given is not None and list(given) != list(stored):
        raise ValueError(f"study {name!r} exists with directions {stored}, not {list(given)}")


# ---------------------------------------------------------------------------- memory
class InMemoryStorage(BaseStorage):
    """Storage in this process's memory: fastest, lost when the process ends.

    Thread-safe (one lock), so a study's report server threads may share it.  Nothing
    outlives the process, so heartbeats are off by default (``heartbeat_interval=None``);
    the retry queue and :meth:`fail_stale_trials` work as in :class:`SQLiteStorage`.
    """

    def __init__(self, *, heartbeat_interval: float | None = None,
                 grace_period: float | None = None) -> None:
        self.heartbeat_interval = _check_interval("heartbeat_interval", heartbeat_interval)
        self.grace_period = _check_interval("grace_period", grace_period)
        self._heartbeat: dict[int, float] = {}        # RUNNING trial_id -> last heartbeat
        self._queue: list[list[tuple[dict, dict, float | None]]] = []   # per study
        self._lock = threading.RLock()
        self._studies: dict[str, int] = {}
        self._study_meta: list[dict] = []
        self._trials: list[FrozenTrial | None] = []   # by trial_id
        self._study_of: list[int] = []                # by trial_id
        self._log: list[list[int]] = []               # per study: trial_id changed at seq i+1
        self._reports: list[list[tuple[int, int, float]]] = []  # per study, seq = index + 1
        self._report_seq: list[list[int]] = []

    def get_or_create_study(self, name, directions, space):
        with self._lock:
            if name in self._studies:
                sid = self._studies[name]
                meta = self._study_meta[sid]
                _check_directions(name, meta["directions"], directions)
                return sid, list(meta["directions"]), meta["space"]
            if directions is None:
                directions = ["minimize"]
            sid = len(self._study_meta)
            self._studies[name] = sid
            self._study_meta.append({"directions": list(directions), "space": space, "n": 0,
                                     "sampler": None, "pruner": None})
            self._queue.append([])
            self._log.append([])
            self._reports.append([])
            self._report_seq.append([])
            return sid, list(directions), space

    def get_study(self, name):
        with self._lock:
            if name not in self._studies:
                raise StudyNotFound(f"no study named {name!r} in this InMemoryStorage "
                                    f"(it has {sorted(self._studies)})")
            sid = self._studies[name]
            meta = self._study_meta[sid]
            return sid, list(meta["directions"]), meta["space"]

    def set_study_space(self, study_id, space):
        with self._lock:
            self._study_meta[study_id]["space"] = space

    def get_study_algorithms(self, study_id):
        with self._lock:
            meta = self._study_meta[study_id]
            return meta["sampler"], meta["pruner"]

    def set_study_algorithms(self, study_id, sampler, pruner):
        with self._lock:
            meta = self._study_meta[study_id]
            if sampler is not None:
                meta["sampler"] = json.loads(json.dumps(sampler))
            if pruner is not None:
                meta["pruner"] = json.loads(json.dumps(pruner))

    def _bump(self, study_id: int, trial_id: int) -> None:
        # the study's sequence number is len(log): every change appends one entry
        self._log[study_id].append(trial_id)

    def create_trial(self, study_id, system_attrs=None):
        with self._lock:
            t = self._new_trial(study_id, system_attrs)
            return t.trial_id, t.number, t.datetime_start

    def _new_trial(self, study_id: int, system_attrs: dict | None) -> FrozenTrial:
        """Append a RUNNING trial (caller holds the lock); returns the stored object."""
        meta = self._study_meta[study_id]
        number = meta["n"]
        meta["n"] = number + 1
        trials = self._trials
        tid = len(trials)
        now = time.time()
        t = FrozenTrial(number, tid, _RUNNING, {}, None, {}, now, None, {},
                        dict(system_attrs) if system_attrs else {}, None)
        trials.append(t)
        self._study_of.append(study_id)
        self._heartbeat[tid] = now
        self._log[study_id].append(tid)
        return t

    # -- the Study's fast path (exactly InMemoryStorage: see Study._mem) -----------------
    # Study.ask / tell write through these when nothing else changed the study since the
    # Study's cursor: the Study then applies its own change to its cache and moves its
    # cursor past it, instead of reading the change back through trials_since.  Each one
    # does what the public method does (same checks, same log entries).
    def _fast_start(self, study_id: int, cursor: int,
                    system_attrs: dict | None) -> FrozenTrial | None:
        """``start_trial(study_id, system_attrs, take_queued=True)`` when the study's log
        is at ``cursor`` and its queue is empty (else ``None``, nothing done): the stored
        RUNNING trial (the caller must not change it)."""
        with self._lock:
            log = self._log[study_id]
            if len(log) != cursor or self._queue[study_id]:
                return None
            return self._new_trial(study_id, system_attrs)

    def _fast_running(self, trial_id: int, cursor: int) -> tuple[FrozenTrial, list, bool]:
        """The RUNNING trial (raising as the public setters do), its study's log, and
        whether that log was at ``cursor`` (caller holds the lock)."""
        t = self._trials[trial_id] if 0 <= trial_id < len(self._trials) else None
        if t is None or t.state != _RUNNING:
            t = self._running(trial_id)
        log = self._log[self._study_of[trial_id]]
        return t, log, len(log) == cursor

    def _fast_set_params(self, trial_id: int, params: dict, cursor: int) -> tuple[dict, bool]:
        """``set_trial_params``; returns the stored params and whether the study's log was
        at ``cursor`` before this change (so ``cursor + 1`` is after it)."""
        with self._lock:
            t, log, at = self._fast_running(trial_id, cursor)
            t.params = stored = dict(params)
            log.append(trial_id)
            return stored, at

    def _fast_finish(self, trial_id: int, state: TrialState, values: tuple[float, ...] | None,
                     error: str | None, cursor: int) -> tuple[FrozenTrial, bool]:
        """``finish_trial``; returns the stored (finished, shared) trial and whether the
        study's log was at ``cursor`` before this change."""
        with self._lock:
            t, log, at = self._fast_running(trial_id, cursor)
            t.state = state if type(state) is TrialState else TrialState(state)
            t.values = values if values is None or type(values) is tuple else tuple(values)
            t.error = error
            t.datetime_complete = time.time()
            self._heartbeat.pop(trial_id, None)
            log.append(trial_id)
            return t, at

    def start_trial(self, study_id, system_attrs=None, params=None, *, take_queued=False,
                    budget=None):
        with self._lock:
            queue = self._queue[study_id]
            if params is None and take_queued:
                for i, (qparams, qattrs, qbudget) in enumerate(queue):
                    if qbudget == budget:
                        del queue[i]
                        tid, number, now = self.create_trial(study_id, qattrs)
                        self._trials[tid].params = dict(qparams)
                        orig = (self._by_number(study_id, qattrs["retry_of"])
                                if "retry_of" in qattrs else None)   # enqueued: no link
                        if orig is not None:
                            orig = self._replaced(orig)
                            orig.system_attrs["retried_by"] = number
                            self._bump(study_id, orig.trial_id)
                        return NewTrial(tid, number, now, dict(qparams), dict(qattrs))
            tid, number, now = self.create_trial(study_id, system_attrs)
            if params is not None:
                self._trials[tid].params = dict(params)
            return NewTrial(tid, number, now, None if params is None else dict(params),
                            dict(system_attrs or {}))

    def start_trials(self, study_id, n, system_attrs=None, *, take_queued=False, budget=None):
        with self._lock:
            return [self.start_trial(study_id, system_attrs, None, take_queued=take_queued,
                                     budget=budget) for _ in range(n)]

    def set_trials_params(self, items):
        with self._lock:
            for trial_id, _ in items:   # all checked first: nothing stored on an error
                self._running(trial_id)
            for trial_id, params in items:
                self.set_trial_params(trial_id, params)

    def finish_trials(self, items):
        with self._lock:
            skipped, seen = [], set()
            for i, (tid, *_rest) in enumerate(items):   # checked first, as one transaction
                t = self._get(tid)
                if tid in seen:
                    raise ValueError(f"trial {t.number} appears twice in one batch")
                seen.add(tid)
                if t.state != TrialState.RUNNING:
                    if not _is_stale(t.state, t.error):
                        raise ValueError(f"trial {t.number} is already finished ({t.state.name})")
                    skipped.append(i)
            skip = set(skipped)
            for i, (tid, state, values, error, retries) in enumerate(items):
                if i in skip:
                    continue
                if retries is None:
                    self.finish_trial(tid, state, values, error)
                else:
                    self._fail_requeue(self._trials[tid], error or "failed", retries)
            return skipped

    def _by_number(self, study_id: int, number: int) -> FrozenTrial | None:
        # only on a retry (rare): a scan of this study's log is acceptable there
        for tid in self._log[study_id]:
            t = self._trials[tid] if tid >= 0 else None
            if t is not None and t.number == number:
                return t
        return None

    def record_heartbeat(self, trial_ids):
        now = time.time()
        with self._lock:
            for tid in trial_ids:
                if tid in self._heartbeat:
                    self._heartbeat[tid] = now

    def _fail_requeue(self, t: FrozenTrial, error: str, retries: int) -> bool:
        sid = self._study_of[t.trial_id]
        self.finish_trial(t.trial_id, TrialState.FAIL, None, error)
        entry = _retry_entry(t.number, t.params, t.system_attrs, retries)
        if entry is not None:
            self._queue[sid].append(entry)
        return entry is not None

    def fail_stale_trials(self, study_id, grace_period, retries=0):
        now = time.time()
        with self._lock:
            stale = []
            for tid, beat in self._heartbeat.items():
                if now - beat > grace_period and self._study_of[tid] == study_id:
                    stale.append((self._trials[tid], now - beat))
            stale.sort(key=lambda ta: ta[0].number)
            for t, age in stale:
                self._fail_requeue(t, _stale_error(age, grace_period), retries)
            return [t.number for t, _ in stale]

    def fail_and_requeue(self, trial_id, error, retries):
        with self._lock:
            return self._fail_requeue(self._running(trial_id), error, retries)

    # -- warm starts (issue 15) ----------------------------------------------------------
    def enqueue_params(self, study_id, params, system_attrs=None):
        attrs = dict(system_attrs or {})
        with self._lock:
            self._queue[study_id].append((dict(params), attrs, attrs.get("budget")))

    def n_queued(self, study_id):
        with self._lock:
            return len(self._queue[study_id])

    def add_finished_trial(self, study_id, trial):
        state = _check_finished(trial)
        with self._lock:
            tid, number, now = self.create_trial(study_id, trial.system_attrs)
            self._heartbeat.pop(tid, None)
            t = self._trials[tid]
            t.params = dict(trial.params)
            t.values = None if trial.values is None else tuple(trial.values)
            t.user_attrs = dict(trial.user_attrs)
            t.error = trial.error
            t.datetime_start = trial.datetime_start if trial.datetime_start is not None else now
            t.datetime_complete = (trial.datetime_complete if trial.datetime_complete is not None
                                   else now)
            log = self._log[study_id]
            for step, value in sorted(trial.intermediate_values.items()):
                t.intermediate_values[int(step)] = float(value)
                log.append(-1)
                self._reports[study_id].append((number, int(step), float(value)))
                self._report_seq[study_id].append(len(log))
            t.state = state
            self._bump(study_id, tid)
            return tid, number

    def _get(self, trial_id: int) -> FrozenTrial:
        t = self._trials[trial_id] if 0 <= trial_id < len(self._trials) else None
        if t is None:
            raise KeyError(f"no trial with trial_id {trial_id}")
        return t

    def _replaced(self, t: FrozenTrial) -> FrozenTrial:
        """The stored trial to change: a finished one may be shared with a study's cache
        (see :meth:`trials_since`), so it is copied and the copy stored."""
        if t.state == TrialState.RUNNING:
            return t
        t = _copy_trial(t)
        self._trials[t.trial_id] = t
        return t

    def _running(self, trial_id: int) -> FrozenTrial:
        t = self._get(trial_id)
        if t.state != _RUNNING:
            raise ValueError(f"trial {t.number} is already finished ({t.state.name})")
        return t

    def set_trial_params(self, trial_id, params):
        with self._lock:
            t = self._running(trial_id)
            t.params = dict(params)
            self._bump(self._study_of[trial_id], trial_id)

    def discard_trial(self, trial_id):
        with self._lock:
            self._trials[trial_id] = None
            self._heartbeat.pop(trial_id, None)
            self._bump(self._study_of[trial_id], trial_id)

    def report(self, trial_id, step, value):
        with self._lock:
            t = self._running(trial_id)
            t.intermediate_values[step] = value
            sid = self._study_of[trial_id]
            log = self._log[sid]
            log.append(-1)
            self._reports[sid].append((t.number, step, value))
            self._report_seq[sid].append(len(log))

    def set_trial_user_attr(self, trial_id, key, value):
        with self._lock:
            t = self._replaced(self._get(trial_id))
            t.user_attrs[key] = value
            self._bump(self._study_of[trial_id], trial_id)

    def finish_trial(self, trial_id, state, values, error=None):
        with self._lock:
            t = self._running(trial_id)
            t.state = state if type(state) is TrialState else TrialState(state)
            t.values = values if values is None or type(values) is tuple else tuple(values)
            t.error = error
            t.datetime_complete = time.time()
            self._heartbeat.pop(trial_id, None)
            self._bump(self._study_of[trial_id], trial_id)

    def trials_since(self, study_id, seq):
        with self._lock:
            log = self._log[study_id]
            if seq >= len(log):
                return [], len(log)
            seen: set[int] = set()
            out = []
            # newest change last, as SQLite's ORDER BY seq gives it
            for tid in reversed(log[seq:]):
                if tid < 0 or tid in seen:
                    continue
                seen.add(tid)
                t = self._trials[tid]
                if t is not None:
                    # a finished trial is never changed in place (a change replaces the
                    # object: _replaced), so the study's cache shares it; a RUNNING one
                    # is copied (reports go on changing it)
                    out.append(t if t.state != _RUNNING else _copy_trial(t))
            out.reverse()
            return out, len(log)

    def reports_since(self, study_id, seq):
        with self._lock:
            seqs = self._report_seq[study_id]
            lo = bisect.bisect_right(seqs, seq)   # reports are appended in seq order
            return self._reports[study_id][lo:], len(self._log[study_id])

    def get_trial(self, trial_id):
        with self._lock:
            return _copy_trial(self._get(trial_id))

    def study_summaries(self):
        with self._lock:
            per: list[dict[str, Any]] = []
            for name, sid in sorted(self._studies.items(), key=lambda kv: kv[1]):
                dirs = list(self._study_meta[sid]["directions"])
                per.append({"study_id": sid, "name": name, "directions": dirs, "n_trials": 0,
                            "states": {}, "best_values": None, "datetime_start": None})
            for tid, t in enumerate(self._trials):
                if t is None:
                    continue
                row = per[self._study_of[tid]]
                row["n_trials"] += 1
                row["states"][t.state.name] = row["states"].get(t.state.name, 0) + 1
                if t.datetime_start is not None and (row["datetime_start"] is None
                                                     or t.datetime_start < row["datetime_start"]):
                    row["datetime_start"] = t.datetime_start
                if t.state == TrialState.COMPLETE and len(row["directions"]) == 1 and t.values:
                    v, best = t.values[0], row["best_values"]
                    if best is None or (v < best[0] if row["directions"][0] == "minimize"
                                        else v > best[0]):
                        row["best_values"] = (v,)
            return per


def _copy_trial(t: FrozenTrial) -> FrozenTrial:
    # the constructor is ~4x faster than dataclasses.replace on this hot path
    return FrozenTrial(t.number, t.trial_id, t.state, dict(t.params), t.values,
                       dict(t.intermediate_values), t.datetime_start, t.datetime_complete,
                       dict(t.user_attrs), dict(t.system_attrs), t.error)


# ---------------------------------------------------------------------------- SQLite
_KEYS: dict[str, str] = {}


def _shared_keys(d: dict) -> dict:
    """``d`` with its keys replaced by one shared string object per name (json.loads
    makes new key strings for every row: ~50 bytes per parameter per trial)."""
    if len(_KEYS) > 100_000:    # unbounded only for a pathological number of names
        _KEYS.clear()
    keys = _KEYS
    return {keys.setdefault(k, k): v for k, v in d.items()}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=True)


class SQLiteStorage(BaseStorage):
    """A study file shared by any number of processes.

    Parameters
    ----------
    path : str
        The database file (created if missing, unless ``create=False`` or read-only).
    timeout : float
        Seconds a writer waits for the lock before retrying (it retries, with
        jittered back-off, for up to ``10 * timeout`` seconds in all).
    synchronous : {"NORMAL", "FULL"}
        SQLite's ``synchronous`` pragma.  In WAL mode ``NORMAL`` is durable against
        process crashes (the case that matters for a study); ``FULL`` also survives
        power loss at the cost of an fsync per transaction.
    heartbeat_interval : float or None
        Seconds between the heartbeats a study's process writes for its RUNNING trials
        (default 10).  ``None`` turns heartbeats and the stale sweep off.
    grace_period : float, optional
        A RUNNING trial whose last heartbeat is older than this is FAIL "stale: process
        gone" at the next sweep (default ``6 * heartbeat_interval``, 60 s).
    read_only : bool
        Open for reading only (URL form ``sqlite:///path.db?mode=ro``); writes raise
        ``PermissionError``.  Works in a read-only directory: where SQLite cannot create
        the ``-shm`` file beside the database the file is opened ``immutable`` (no
        locking: what another process writes meanwhile may not be seen).
    create : bool
        Create the file when it does not exist (``False``: ``FileNotFoundError``).

    Opening a file of an older format migrates it (:mod:`hpcore._schema`); a newer one
    raises :class:`~hpcore._schema.StorageVersionError` and is left untouched.
    """

    def __init__(self, path: str, *, timeout: float = 30.0, synchronous: str = "NORMAL",
                 heartbeat_interval: float | None = 10.0, grace_period: float | None = None,
                 read_only: bool = False, create: bool = True) -> None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ValueError("SQLiteStorage: path must be a non-empty file path")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        self.heartbeat_interval = _check_interval("heartbeat_interval", heartbeat_interval)
        grace = _check_interval("grace_period", grace_period)
        if grace is None and self.heartbeat_interval is not None:
            grace = 6.0 * self.heartbeat_interval
        if grace is not None and self.heartbeat_interval is not None and grace <= self.heartbeat_interval:
            raise ValueError(f"grace_period ({grace}) must be longer than heartbeat_interval "
                             f"({self.heartbeat_interval}), or live trials would be failed")
        self.grace_period = grace
        self.path = os.fspath(path)
        self.read_only = bool(read_only)
        self.url = "sqlite:///" + self.path + ("?mode=ro" if self.read_only else "")
        self.timeout = float(timeout)
        self.synchronous = synchronous
        self._local = threading.local()
        self._pid = os.getpid()
        self._immutable = False
        if (self.read_only or not create) and not os.path.exists(self.path):
            raise FileNotFoundError(f"storage: SQLite file {self.path!r} does not exist"
                                    + (" (read-only: not created)" if self.read_only else ""))
        conn = self._conn()
        if self.read_only:
            check_version(conn, self.path)
        else:
            with_retry(lambda: initialize(conn, self.path), self.timeout)
        self._has_v1 = not self.read_only or file_version(conn) >= 1   # ro may read a v0 file

    def __getstate__(self):
        return {"path": self.path, "timeout": self.timeout, "synchronous": self.synchronous,
                "heartbeat_interval": self.heartbeat_interval, "grace_period": self.grace_period,
                "read_only": self.read_only}

    def __setstate__(self, state):
        path = state.pop("path")
        self.__init__(path, **state)

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            return sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=True)
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        if not self._immutable:
            conn = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=True)
            try:   # a WAL file needs its -shm: fails in a read-only directory without one
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError:
                conn.close()
                self._immutable = True
        return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=self.timeout,
                               isolation_level=None, check_same_thread=True)

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread and per process (never shared across a fork).
        conn = getattr(self._local, "conn", None)
        if conn is None or self._pid != os.getpid():
            self._pid = os.getpid()
            try:
                conn = self._connect()
                if self.read_only:
                    conn.execute("PRAGMA query_only=ON")
                else:
                    with_retry(lambda: conn.execute("PRAGMA journal_mode=WAL"), self.timeout)
                    conn.execute(f"PRAGMA synchronous={self.synchronous}")
                    conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise ValueError(f"storage: cannot open SQLite file {self.path!r}: {exc}") from exc
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _write(self, fn):
        """Run ``fn(conn)`` in one IMMEDIATE transaction, retrying on lock contention.

        Any error (also one raised by ``COMMIT``, e.g. a full disk) rolls back: nothing of
        ``fn``'s work is left half-done."""
        if self.read_only:
            raise PermissionError(f"storage: {self.path!r} is open read-only (mode=ro)")
        conn = self._conn()

        def attempt():
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:  # pragma: no cover - nothing more to undo
                        pass
                raise
            return result

        return with_retry(attempt, self.timeout)

    @staticmethod
    def _next_seq(c: sqlite3.Connection, study_id: int) -> int:
        c.execute("UPDATE studies SET seq = seq + 1 WHERE study_id = ?", (study_id,))
        return c.execute("SELECT seq FROM studies WHERE study_id = ?", (study_id,)).fetchone()[0]

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        conn = self._conn()
        return with_retry(lambda: conn.execute(sql, args).fetchall(), self.timeout)

    def get_study(self, name):
        rows = self._read("SELECT study_id, directions, space FROM studies WHERE name = ?", (name,))
        if not rows:
            names = [r[0] for r in self._read("SELECT name FROM studies ORDER BY study_id LIMIT 21")]
            more = ", ..." if len(names) > 20 else ""
            raise StudyNotFound(f"no study named {name!r} in {self.path!r} (it has "
                                f"{', '.join(map(repr, names[:20])) or 'no study'}{more})")
        sid, dirs, space = rows[0]
        return sid, json.loads(dirs), (json.loads(space) if space else None)

    def get_or_create_study(self, name, directions, space):
        try:   # an existing study opens without the write lock (and in read-only mode)
            sid, stored, stored_space = self.get_study(name)
        except StudyNotFound:
            if self.read_only:
                raise PermissionError(f"storage: {self.path!r} is open read-only (mode=ro): "
                                      f"study {name!r} does not exist and cannot be created") from None
        else:
            _check_directions(name, stored, directions)
            return sid, stored, stored_space

        def fn(c):
            row = c.execute("SELECT study_id, directions, space FROM studies WHERE name = ?",
                            (name,)).fetchone()
            if row is not None:
                stored = json.loads(row[1])
                _check_directions(name, stored, directions)
                return row[0], stored, (json.loads(row[2]) if row[2] else None)
            new_dirs = list(directions) if directions is not None else ["minimize"]
            cur = c.execute("INSERT INTO studies (name, directions, space) VALUES (?, ?, ?)",
                            (name, json.dumps(new_dirs), json.dumps(space) if space is not None else None))
            return cur.lastrowid, new_dirs, space

        return self._write(fn)

    def set_study_space(self, study_id, space):
        self._write(lambda c: c.execute("UPDATE studies SET space = ? WHERE study_id = ?",
                                        (json.dumps(space), study_id)))

    def get_study_algorithms(self, study_id):
        if not self._has_v1:
            return None, None
        rows = self._read("SELECT sampler, pruner FROM studies WHERE study_id = ?", (study_id,))
        if not rows:
            raise KeyError(f"no study with study_id {study_id}")
        return tuple(json.loads(v) if v else None for v in rows[0])

    def set_study_algorithms(self, study_id, sampler, pruner):
        def fn(c):
            if sampler is not None:
                c.execute("UPDATE studies SET sampler = ? WHERE study_id = ?",
                          (_dumps(sampler), study_id))
            if pruner is not None:
                c.execute("UPDATE studies SET pruner = ? WHERE study_id = ?",
                          (_dumps(pruner), study_id))

        self._write(fn)

    def _insert_trial(self, c, study_id: int, now: float, system_attrs: dict | None,
                      params: dict | None) -> tuple[int, int]:
        c.execute("UPDATE studies SET n_trials = n_trials + 1 WHERE study_id = ?", (study_id,))
        number = c.execute("SELECT n_trials - 1 FROM studies WHERE study_id = ?",
                           (study_id,)).fetchone()[0]
        seq = self._next_seq(c, study_id)
        cur = c.execute(
            "INSERT INTO trials (study_id, number, state, params, datetime_start, system_attrs, "
            "seq, heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (study_id, number, int(TrialState.RUNNING), _dumps(params or {}), now,
             _dumps(system_attrs or {}), seq, now))
        return cur.lastrowid, number

    def create_trial(self, study_id, system_attrs=None):
        now = time.time()
        tid, number = self._write(lambda c: self._insert_trial(c, study_id, now, system_attrs, None))
        return tid, number, now

    _QUEUED = ("SELECT queue_id, params, system_attrs FROM queue WHERE study_id = ? AND "
               "budget IS ? ORDER BY queue_id LIMIT ?")

    def _take_queued(self, c, study_id: int, now: float, row) -> NewTrial:
        """Turn the queue entry ``row`` into a RUNNING trial (in the caller's transaction)."""
        qparams, qattrs = json.loads(row[1]), json.loads(row[2])
        c.execute("DELETE FROM queue WHERE queue_id = ?", (row[0],))
        tid, number = self._insert_trial(c, study_id, now, qattrs, qparams)
        orig = c.execute("SELECT trial_id, system_attrs FROM trials WHERE study_id = ? "
                         "AND number = ?", (study_id, qattrs["retry_of"])).fetchone() \
            if "retry_of" in qattrs else None    # an enqueued row has no link
        if orig is not None:   # the link back: original -> its re-run
            attrs = json.loads(orig[1])
            attrs["retried_by"] = number
            c.execute("UPDATE trials SET system_attrs = ?, seq = ? WHERE trial_id = ?",
                      (_dumps(attrs), self._next_seq(c, study_id), orig[0]))
        return NewTrial(tid, number, now, qparams, qattrs)

    def start_trial(self, study_id, system_attrs=None, params=None, *, take_queued=False,
                    budget=None):
        now = time.time()

        def fn(c):
            if params is None and take_queued:
                row = c.execute(self._QUEUED, (study_id, budget, 1)).fetchone()
                if row is not None:
                    return self._take_queued(c, study_id, now, row)
            tid, number = self._insert_trial(c, study_id, now, system_attrs, params)
            return NewTrial(tid, number, now, None if params is None else dict(params),
                            dict(system_attrs or {}))

        return self._write(fn)

    def start_trials(self, study_id, n, system_attrs=None, *, take_queued=False, budget=None):
        n = check_batch_size(n, "n")
        now = time.time()
        attrs = _dumps(system_attrs or {})

        def fn(c):
            out = []
            if take_queued:
                for row in c.execute(self._QUEUED, (study_id, budget, n)).fetchall():
                    out.append(self._take_queued(c, study_id, now, row))
            m = n - len(out)
            if m:   # the rest in bulk: m numbers and m sequence numbers at once
                c.execute("UPDATE studies SET n_trials = n_trials + ?, seq = seq + ? "
                          "WHERE study_id = ?", (m, m, study_id))
                top_n, top_seq = c.execute("SELECT n_trials, seq FROM studies WHERE "
                                           "study_id = ?", (study_id,)).fetchone()
                base, seq0 = top_n - m, top_seq - m
                c.executemany(
                    "INSERT INTO trials (study_id, number, state, params, datetime_start, "
                    "system_attrs, seq, heartbeat) VALUES (?, ?, ?, '{}', ?, ?, ?, ?)",
                    [(study_id, base + i, int(TrialState.RUNNING), now, attrs, seq0 + i + 1, now)
                     for i in range(m)])
                rows = c.execute("SELECT trial_id, number FROM trials WHERE study_id = ? AND "
                                 "number >= ? AND number < ? ORDER BY number",
                                 (study_id, base, base + m)).fetchall()
                out += [NewTrial(tid, number, now, None, dict(system_attrs or {}))
                        for tid, number in rows]
            return out

        return self._write(fn)

    def record_heartbeat(self, trial_ids):
        ids = [int(t) for t in trial_ids]
        if not ids:
            return
        now = time.time()

        def fn(c):
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                c.execute("UPDATE trials SET heartbeat = ? WHERE state = 0 AND trial_id IN (%s)"
                          % ",".join("?" * len(chunk)), (now, *chunk))

        self._write(fn)

    def _fail_requeue(self, c, study_id: int, trial_id: int, number: int, params: str,
                      system_attrs: str, error: str, retries: int) -> bool:
        c.execute("UPDATE trials SET state = ?, error = ?, datetime_complete = ?, seq = ? "
                  "WHERE trial_id = ?", (int(TrialState.FAIL), error, time.time(),
                                         self._next_seq(c, study_id), trial_id))
        entry = _retry_entry(number, json.loads(params), json.loads(system_attrs), retries)
        if entry is not None:
            qparams, qattrs, budget = entry
            c.execute("INSERT INTO queue (study_id, params, system_attrs, budget, created) "
                      "VALUES (?, ?, ?, ?, ?)",
                      (study_id, _dumps(qparams), _dumps(qattrs), budget, time.time()))
        return entry is not None

    # state = 0 is a literal so that SQLite uses the partial index trials_running
    _STALE = ("SELECT trial_id, number, params, system_attrs, heartbeat FROM trials "
              "WHERE study_id = ? AND state = 0 AND heartbeat < ? ORDER BY number")

    def fail_stale_trials(self, study_id, grace_period, retries=0):
        grace = _check_interval("grace_period", grace_period, allow_none=False)
        if not self._has_v1:
            return []
        cutoff = time.time() - grace
        if not self._read(self._STALE, (study_id, cutoff)):   # the usual case: no write lock
            return []

        def fn(c):
            now = time.time()
            rows = c.execute(self._STALE, (study_id, cutoff)).fetchall()
            for tid, number, params, attrs, beat in rows:
                self._fail_requeue(c, study_id, tid, number, params, attrs,
                                   _stale_error(now - beat, grace), retries)
            return [r[1] for r in rows]

        return self._write(fn)

    def fail_and_requeue(self, trial_id, error, retries):
        def fn(c):
            sid, number = self._check_running(c, trial_id)
            params, attrs = c.execute("SELECT params, system_attrs FROM trials WHERE trial_id = ?",
                                      (trial_id,)).fetchone()
            return self._fail_requeue(c, sid, trial_id, number, params, attrs, error, retries)

        return self._write(fn)

    # -- warm starts (issue 15) ----------------------------------------------------------
    def enqueue_params(self, study_id, params, system_attrs=None):
        attrs = dict(system_attrs or {})
        self._write(lambda c: c.execute(
            "INSERT INTO queue (study_id, params, system_attrs, budget, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (study_id, _dumps(params), _dumps(attrs), attrs.get("budget"), time.time())))

    def n_queued(self, study_id):
        if not self._has_v1:
            return 0
        return int(self._read("SELECT COUNT(*) FROM queue WHERE study_id = ?", (study_id,))[0][0])

    def add_finished_trial(self, study_id, trial):
        state = _check_finished(trial)
        now = time.time()
        start = trial.datetime_start if trial.datetime_start is not None else now
        end = trial.datetime_complete if trial.datetime_complete is not None else now
        vals = None if trial.values is None else _dumps([float(v) for v in trial.values])

        def fn(c):
            tid, number = self._insert_trial(c, study_id, start, trial.system_attrs, trial.params)
            for step, value in sorted(trial.intermediate_values.items()):
                value = float(value)
                c.execute("INSERT INTO reports (trial_id, study_id, number, step, value, seq) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          (tid, study_id, number, int(step), None if math.isnan(value) else value,
                           self._next_seq(c, study_id)))
            c.execute("UPDATE trials SET state = ?, vals = ?, error = ?, datetime_complete = ?, "
                      "user_attrs = ?, heartbeat = NULL, seq = ? WHERE trial_id = ?",
                      (int(state), vals, trial.error, end, _dumps(dict(trial.user_attrs)),
                       self._next_seq(c, study_id), tid))
            return tid, number

        return self._write(fn)

    def _check_running(self, c, trial_id) -> tuple[int, int]:
        row = c.execute("SELECT study_id, number, state FROM trials WHERE trial_id = ?",
                        (trial_id,)).fetchone()
        if row is None:
            raise KeyError(f"no trial with trial_id {trial_id}")
        if row[2] != TrialState.RUNNING:
            raise ValueError(f"trial {row[1]} is already finished ({TrialState(row[2]).name})")
        return row[0], row[1]

    def set_trial_params(self, trial_id, params):
        def fn(c):
            sid, _ = self._check_running(c, trial_id)
            c.execute("UPDATE trials SET params = ?, seq = ? WHERE trial_id = ?",
                      (_dumps(params), self._next_seq(c, sid), trial_id))

        self._write(fn)

    def discard_trial(self, trial_id):
        def fn(c):
            c.execute("DELETE FROM reports WHERE trial_id = ?", (trial_id,))
            c.execute("DELETE FROM trials WHERE trial_id = ?", (trial_id,))

        self._write(fn)

    def report(self, trial_id, step, value):
        def fn(c):
            sid, number = self._check_running(c, trial_id)
            # idempotent: a task re-run by a cluster after a worker died reports again
            c.execute("INSERT INTO reports (trial_id, study_id, number, step, value, seq) "
                      "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (trial_id, step) DO UPDATE SET "
                      "value = excluded.value, seq = excluded.seq",
                      (trial_id, sid, number, step, None if math.isnan(value) else value,
                       self._next_seq(c, sid)))

        self._write(fn)

    def set_trial_user_attr(self, trial_id, key, value):
        def fn(c):
            row = c.execute("SELECT study_id, user_attrs FROM trials WHERE trial_id = ?",
                            (trial_id,)).fetchone()
            if row is None:
                raise KeyError(f"no trial with trial_id {trial_id}")
            attrs = json.loads(row[1])
            attrs[key] = value
            c.execute("UPDATE trials SET user_attrs = ?, seq = ? WHERE trial_id = ?",
                      (_dumps(attrs), self._next_seq(c, row[0]), trial_id))

        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"user attribute {key!r} is not JSON-serializable: {exc}") from None
        self._write(fn)

    def finish_trial(self, trial_id, state, values, error=None):
        def fn(c):
            sid, _ = self._check_running(c, trial_id)
            c.execute("UPDATE trials SET state = ?, vals = ?, error = ?, datetime_complete = ?, "
                      "seq = ? WHERE trial_id = ?",
                      (int(state), _dumps(list(values)) if values is not None else None, error,
                       time.time(), self._next_seq(c, sid), trial_id))

        self._write(fn)

    def _bump_many(self, c, study_id: int, k: int) -> int:
        """Reserve ``k`` sequence numbers of the study; returns the first."""
        c.execute("UPDATE studies SET seq = seq + ? WHERE study_id = ?", (k, study_id))
        return c.execute("SELECT seq FROM studies WHERE study_id = ?",
                         (study_id,)).fetchone()[0] - k + 1

    def _rows_of(self, c, trial_ids) -> dict[int, tuple]:
        """``trial_id -> (study_id, number, state, error)`` (``KeyError`` naming a missing one)."""
        found: dict[int, tuple] = {}
        ids = list(trial_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for row in c.execute("SELECT trial_id, study_id, number, state, error FROM trials "
                                 "WHERE trial_id IN (%s)" % ",".join("?" * len(chunk)), chunk):
                found[row[0]] = row[1:]
        for tid in ids:
            if tid not in found:
                raise KeyError(f"no trial with trial_id {tid}")
        return found

    def set_trials_params(self, items):
        items = [(int(tid), params) for tid, params in items]
        if not items:
            return

        def fn(c):
            rows = self._rows_of(c, [tid for tid, _ in items])
            by_study: dict[int, list] = {}
            for tid, params in items:
                sid, number, state, _ = rows[tid]
                if state != TrialState.RUNNING:
                    raise ValueError(f"trial {number} is already finished ({TrialState(state).name})")
                by_study.setdefault(sid, []).append((tid, params))
            for sid, group in by_study.items():
                seq0 = self._bump_many(c, sid, len(group))
                c.executemany("UPDATE trials SET params = ?, seq = ? WHERE trial_id = ?",
                              [(_dumps(p), seq0 + i, tid) for i, (tid, p) in enumerate(group)])

        self._write(fn)

    def finish_trials(self, items):
        items = list(items)
        if not items:
            return []

        def fn(c):
            rows = self._rows_of(c, [int(it[0]) for it in items])
            skipped, plain, seen = [], {}, set()
            for i, (tid, state, values, error, retries) in enumerate(items):
                sid, number, st, err = rows[int(tid)]
                if int(tid) in seen:
                    raise ValueError(f"trial {number} appears twice in one batch")
                seen.add(int(tid))
                if st != TrialState.RUNNING:
                    if not _is_stale(st, err):
                        raise ValueError(f"trial {number} is already finished ({TrialState(st).name})")
                    skipped.append(i)
                elif retries is None:
                    plain.setdefault(sid, []).append(
                        (int(state), _dumps(list(values)) if values is not None else None,
                         error, int(tid)))
                else:
                    params, attrs = c.execute("SELECT params, system_attrs FROM trials WHERE "
                                              "trial_id = ?", (int(tid),)).fetchone()
                    self._fail_requeue(c, sid, int(tid), number, params, attrs,
                                       error or "failed", retries)
            now = time.time()
            for sid, group in plain.items():
                seq0 = self._bump_many(c, sid, len(group))
                c.executemany("UPDATE trials SET state = ?, vals = ?, error = ?, "
                              "datetime_complete = ?, seq = ? WHERE trial_id = ?",
                              [(st, v, e, now, seq0 + i, tid)
                               for i, (st, v, e, tid) in enumerate(group)])
            return skipped

        return self._write(fn)

    _COLS = ("trial_id, number, state, params, vals, datetime_start, datetime_complete, "
             "user_attrs, system_attrs, error")

    def _rows_to_trials(self, conn, rows) -> list[FrozenTrial]:
        trials = [FrozenTrial(number=r[1], trial_id=r[0], state=TrialState(r[2]),
                              params=_shared_keys(json.loads(r[3])),
                              values=tuple(json.loads(r[4])) if r[4] is not None else None,
                              datetime_start=r[5], datetime_complete=r[6],
                              user_attrs=json.loads(r[7]), system_attrs=json.loads(r[8]),
                              error=r[9]) for r in rows]
        finished = {t.trial_id: t for t in trials if t.state != TrialState.RUNNING}
        ids = list(finished)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = ("SELECT trial_id, step, value FROM reports WHERE trial_id IN (%s)"
                 % ",".join("?" * len(chunk)))
            for tid, step, value in conn.execute(q, chunk):
                finished[tid].intermediate_values[step] = math.nan if value is None else value
        return trials

    def _snapshot(self, study_id: int, query):
        """Run ``query(conn, top)`` in one read transaction; ``top`` is the study's newest
        sequence number, so the reader's cursor never runs ahead of what it read."""
        conn = self._conn()

        def read():
            conn.execute("BEGIN")
            try:
                top = conn.execute("SELECT seq FROM studies WHERE study_id = ?",
                                   (study_id,)).fetchone()[0]
                return query(conn, top), top
            finally:
                conn.execute("COMMIT")

        return with_retry(read, self.timeout)

    def trials_since(self, study_id, seq):
        def query(conn, top):
            rows = conn.execute(f"SELECT {self._COLS} FROM trials WHERE study_id = ? AND seq > ? "
                                "AND seq <= ? ORDER BY seq", (study_id, seq, top)).fetchall()
            return self._rows_to_trials(conn, rows)

        return self._snapshot(study_id, query)

    def reports_since(self, study_id, seq):
        def query(conn, top):
            rows = conn.execute("SELECT number, step, value FROM reports WHERE study_id = ? "
                                "AND seq > ? AND seq <= ? ORDER BY seq",
                                (study_id, seq, top)).fetchall()
            return [(n, s, math.nan if v is None else v) for n, s, v in rows]

        return self._snapshot(study_id, query)

    def get_trial(self, trial_id):
        conn = self._conn()
        rows = with_retry(lambda: conn.execute(f"SELECT {self._COLS} FROM trials WHERE trial_id = ?",
                                               (trial_id,)).fetchall(), self.timeout)
        if not rows:
            raise KeyError(f"no trial with trial_id {trial_id}")
        t = self._rows_to_trials(conn, rows)[0]
        if t.state == TrialState.RUNNING:
            for step, value in conn.execute("SELECT step, value FROM reports WHERE trial_id = ?",
                                            (trial_id,)):
                t.intermediate_values[step] = math.nan if value is None else value
        return t

    def study_summaries(self):
        conn = self._conn()

        def read():
            conn.execute("BEGIN")
            try:
                studies = conn.execute("SELECT study_id, name, directions FROM studies "
                                       "ORDER BY study_id").fetchall()
                counts = conn.execute("SELECT study_id, state, COUNT(*), MIN(datetime_start) "
                                      "FROM trials GROUP BY study_id, state").fetchall()
                try:
                    best = conn.execute(
                        "SELECT study_id, MIN(json_extract(vals, '$[0]')), "
                        "MAX(json_extract(vals, '$[0]')) FROM trials WHERE state = ? "
                        "AND vals IS NOT NULL GROUP BY study_id",
                        (int(TrialState.COMPLETE),)).fetchall()
                except sqlite3.OperationalError:  # an SQLite built without JSON1
                    best = []
                    for sid, vals in conn.execute("SELECT study_id, vals FROM trials WHERE state = ?"
                                                  " AND vals IS NOT NULL",
                                                  (int(TrialState.COMPLETE),)):
                        v = json.loads(vals)[0]
                        best.append((sid, v, v))
                return studies, counts, best
            finally:
                conn.execute("COMMIT")

        studies, counts, best = with_retry(read, self.timeout)
        per: dict[int, dict[str, Any]] = {}
        for sid, name, dirs in studies:
            per[sid] = {"study_id": sid, "name": name, "directions": json.loads(dirs),
                        "n_trials": 0, "states": {}, "best_values": None, "datetime_start": None}
        for sid, state, n, start in counts:
            row = per[sid]
            row["n_trials"] += n
            row["states"][TrialState(state).name] = n
            if start is not None and (row["datetime_start"] is None or start < row["datetime_start"]):
                row["datetime_start"] = start
        lo_hi: dict[int, tuple[float, float]] = {}
        for sid, lo, hi in best:
            if lo is None:
                continue
            old = lo_hi.get(sid)
            lo_hi[sid] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
        for sid, (lo, hi) in lo_hi.items():
            row = per[sid]
            if len(row["directions"]) == 1:
                row["best_values"] = (float(lo) if row["directions"][0] == "minimize" else float(hi),)
        return list(per.values())


def with_retry(fn, timeout: float):
    """Call ``fn`` and retry on SQLite lock/busy errors with jittered back-off."""
    deadline = time.monotonic() + 10 * timeout
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            msg = str(exc).lower()
            if ("locked" not in msg and "busy" not in msg) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)

