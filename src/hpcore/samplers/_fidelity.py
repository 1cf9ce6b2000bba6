"""Multi-fidelity observations for model-based samplers (BOHB, Falkner et al. 2018).

When a study's pruner is a rung pruner (:class:`~hpcore.pruners.SuccessiveHalving`,
:class:`~hpcore.pruners.Hyperband`, :class:`~hpcore.pruners.ASHA`), most trials stop
early and few reach the full budget.  A :class:`RungCollector` records, for every
finished (COMPLETE or PRUNED) trial, its intermediate value at each rung resource
``r_L`` -- the value reported at the first step ``>= r_L``, which is where the pruners
put a trial into rung ``L`` -- so that a sampler can fit its model on the highest
rung with enough observations (BOHB's rule: at least ``d + 2`` for ``d`` parameters).

Reads are incremental: a cursor into ``study.finished_trials()``, so each update
costs O(new trials x their reports).

:func:`bohb_training_set` and :func:`random_pick` are the rest of BOHB's
configuration generator, for a GP instead of BOHB's TPE:

* a fraction ``random_fraction`` of the model-phase trials (BOHB's ``rho``, 1/3 in
  Falkner et al. 2018 and in hpbandster) is sampled uniformly at random, decided per
  trial number by a seeded stream (reproducible, independent of the order of asks);
* the model's budget is the highest rung with ``min_points`` observations, the full
  budget once ``min_points`` trials are COMPLETE;
* finished trials that stopped below that budget (pruned, failed) join its training
  set with the worst value observed on it.  They have no value there, but the pruner
  ranked them below the trials it promoted; left out (as BOHB's per-budget model
  does), a deterministic acquisition maximizer proposes the same region again after
  every pruning -- on ``sgd_digits`` 100 of 120 BOHB-style trials were near-copies
  of a handful of pruned configurations.  Optuna's TPE, its BOHB analogue with
  ``HyperbandPruner``, likewise counts pruned trials among the bad ones.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["RungCollector", "bohb_training_set", "random_pick", "rung_resources"]

_REL_TOL = 1e-12   # as the rung tables: step >= r_L * (1 - 1e-12) enters rung L


def rung_resources(pruner: Any) -> list[float] | None:
    """Resources of the pruner's rungs, lowest first (its public
    :attr:`~hpcore.pruners.base.BasePruner.rung_resources`), or ``None`` when
    ``pruner`` is ``None`` or has no rungs."""
    res = getattr(pruner, "rung_resources", None) if pruner is not None else None
    return None if res is None else [float(r) for r in res]


def rung_values(intermediate_values: dict[int, float],
                resources: Sequence[float]) -> list[float | None]:
    """Value at each rung: the report at the first step ``>= r_L`` (``None`` if the
    trial never reached ``r_L``)."""
    out: list[float | None] = [None] * len(resources)
    if not intermediate_values:
        return out
    steps = sorted(intermediate_values)
    j = 0
    for L, r in enumerate(resources):
        thr = r * (1.0 - _REL_TOL)
        while j < len(steps) and steps[j] < thr:
            j += 1
        if j == len(steps):
            break
        out[L] = float(intermediate_values[steps[j]])
    return out


def _is_complete(t: Any) -> bool:
    state = getattr(t, "state", None)
    return getattr(state, "name", None) == "COMPLETE"


class RungCollector:
    """Per-rung observations (encoded configuration, signed value) of finished trials.

    Parameters
    ----------
    resources : sequence of float
        Rung resources, lowest first (:func:`rung_resources`).
    sign : float
        ``+1`` to minimize, ``-1`` to maximize: stored values are always minimized.
    encode : callable
        ``encode(trial) -> 1-D array``: the sampler's representation of a trial's
        configuration (unit cube for the GP, genes for the GA).
    """

    def __init__(self, resources: Sequence[float], sign: float,
                 encode: Callable[[Any], np.ndarray]) -> None:
        self.resources = [float(r) for r in resources]
        self.sign = float(sign)
        self._encode = encode
        self._n_seen = 0
        n = len(self.resources)
        self._rows: list[list[np.ndarray]] = [[] for _ in range(n)]
        self._vals: list[list[float]] = [[] for _ in range(n)]
        self._nums: list[list[int]] = [[] for _ in range(n)]
        self._arr: list[tuple[np.ndarray, np.ndarray] | None] = [None] * n
        self.finished_rows: list[np.ndarray] = []     # every finished trial, encoded
        # per finished trial: highest rung reached (-1: none; n rungs for COMPLETE trials)
        self.top_rungs: list[int] = []

    @property
    def n_seen(self) -> int:
        return self._n_seen

    def update(self, finished: Sequence[Any]) -> None:
        """Fold ``finished[n_seen:]`` (the study's finished trials, in finish order)."""
        if len(finished) < self._n_seen:
            raise ValueError("finished: the list shrank; build a new RungCollector")
        for t in finished[self._n_seen:]:
            x = None
            top = -1
            for L, v in enumerate(rung_values(t.intermediate_values, self.resources)):
                if v is None or not math.isfinite(v):
                    continue
                if x is None:
                    x = self._encode(t)
                self._rows[L].append(x)
                self._vals[L].append(self.sign * v)
                self._nums[L].append(t.number)
                self._arr[L] = None
                top = L
            self.finished_rows.append(x if x is not None else self._encode(t))
            # a COMPLETE trial ran to the end: never counted as stopped below a rung
            self.top_rungs.append(len(self.resources) if _is_complete(t) else top)
        self._n_seen = len(finished)

    def counts(self) -> list[int]:
        """Number of observations per rung."""
        return [len(v) for v in self._vals]

    def highest_rung(self, min_points: int) -> int | None:
        """The highest rung with at least ``min_points`` observations (BOHB's rule),
        or ``None``."""
        for L in range(len(self.resources) - 1, -1, -1):
            if len(self._vals[L]) >= min_points:
                return L
        return None

    def rung(self, L: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """``(X, y, numbers)`` of rung ``L``: encoded configurations, minimized values
        and trial numbers, in finish order."""
        if self._arr[L] is None:
            rows = self._rows[L]
            X = np.array(rows, dtype=np.float64) if rows else np.empty((0, 0))
            self._arr[L] = (X, np.array(self._vals[L], dtype=np.float64))
        X, y = self._arr[L]
        return X, y, self._nums[L]

    def stopped_below(self, L: int) -> np.ndarray:
        """Encoded configurations of the PRUNED trials that never reached rung ``L``, in
        finish order; ``(0, d)`` when there are none."""
        rows = [x for x, top in zip(self.finished_rows, self.top_rungs) if top < L]
        if rows:
            return np.array(rows, dtype=np.float64)
        d = len(self.finished_rows[0]) if self.finished_rows else 0
        return np.empty((0, d))


def random_pick(seed: int, number: int, fraction: float) -> bool:
    """Whether trial ``number`` is one of the ``fraction`` of uniformly random trials
    (BOHB's ``rho``): a draw from the stream keyed by ``(seed, number)``."""
    if fraction <= 0.0:
        return False
    return bool(np.random.default_rng([int(seed), int(number), 0xB0B]).random() < fraction)


def bohb_training_set(rungs: RungCollector, X_full: np.ndarray, y_full: np.ndarray,
                      min_points: int) -> tuple[int, np.ndarray, np.ndarray] | None:
    """``(level, X, y)``: the training set of the model at BOHB's budget, or ``None``
    while no budget has ``min_points`` observations.

    ``level`` is the top rung index when the full budget (``X_full``, ``y_full``: the
    COMPLETE trials, minimized values) has ``min_points`` rows, else the highest rung
    with ``min_points`` observations.  Finished trials that never reached ``level``
    are appended with the worst (largest) value of that budget."""
    top = len(rungs.resources) - 1
    if len(y_full) >= min_points:
        level, X, y = top, X_full, y_full
    else:
        L = rungs.highest_rung(min_points)
        if L is None:
            return None
        X, y, _ = rungs.rung(L)
        level = L
    below = rungs.stopped_below(level)
    if len(below):
        X = np.vstack([X, below])
        y = np.concatenate([y, np.full(len(below), float(np.max(y)))])
    return level, X, y
