"""TuRBO's trust region (Eriksson et al. 2019, "Scalable global optimization via local
Bayesian optimization", TuRBO-1), for :class:`~hpcore.samplers.bayes.BayesSampler`.

The acquisition is maximized in a box around the best point of the current run, of
side ``L`` in the unit cube, stretched per dimension by the GP's lengthscales
(``L_i = L * l_i / (prod_j l_j)^(1/d)``).  ``L`` starts at 0.8; after ``succ_tol = 3``
consecutive successes (an observation below ``best - 1e-3 |best|``) it doubles (at most
1.6), after ``fail_tol = max(4, d)`` consecutive failures it halves; below
``L_min = 0.5^7`` the run restarts: a new quasi-random design of ``n_init`` points,
whose best is the next centre.

The state is a function of the sequence of observations (completed trials in order)
only, so it is the same after a resume, and for any number of workers given the same
completed sequence.  :func:`advance` steps a :class:`TrustState` over new observations
in O(1) each (the sampler keeps the state between asks and starts again from ``None``
only when its observation sequence was reset); :func:`replay` is the same over a whole
sequence.  As TuRBO-1 with batch size 1 (each observation updates the counters).
Unlike TuRBO, the GP is fitted to all observations, not only the current run's (the
trust region restricts the search, the model keeps what the earlier runs learned), and
the acquisition is the sampler's own (log-EI by default) instead of Thompson sampling.
The ``"incumbent"`` restart (BayesSampler's default) is not TuRBO's: it resets the side
around the same best point instead of spending a new design.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TrustRegion", "TrustState", "advance", "replay", "trust_box"]

L_INIT, L_MIN, L_MAX = 0.8, 0.5 ** 7, 1.6
SUCC_TOL = 3


@dataclass(frozen=True)
class TrustRegion:
    length: float       # side L in the unit cube (before the lengthscale stretch)
    run_start: int      # index of the current run's first observation
    n_run: int          # observations of the current run so far
    restarts: int       # restarts so far


RESTARTS = ("design", "incumbent")


@dataclass(frozen=True)
class TrustState:
    """The state machine after the first ``n`` observations, for the parameters
    ``(n_init, fail_tol, restart)`` it was built with (:func:`advance`)."""
    n_init: int
    fail_tol: int
    restart: str
    n: int = 0              # observations consumed
    length: float = L_INIT
    run_start: int = 0
    succ: int = 0
    fail: int = 0
    best: float = math.inf  # the current run's best value ...
    best_index: int = -1    # ... and its first index (-1: the run has none yet)
    restarts: int = 0
    best_all: float = math.inf  # the best of all observations ...
    best_all_index: int = -1    # ... and its first index

    @property
    def region(self) -> TrustRegion:
        return TrustRegion(self.length, self.run_start, self.n - self.run_start,
                           self.restarts)


def _params(n_init, d, fail_tol, restart) -> tuple[int, int, str]:
    if restart not in RESTARTS:
        raise ValueError(f"restart must be one of {RESTARTS}, got {restart!r}")
    if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise ValueError(f"n_init must be an int >= 1, got {n_init!r}")
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be an int >= 1, got {d!r}")
    ft = max(4, int(d)) if fail_tol is None else int(fail_tol)
    if ft < 1:
        raise ValueError(f"fail_tol must be >= 1, got {fail_tol!r}")
    return int(n_init), ft, restart


def advance(state: TrustState | None, y_new: np.ndarray, n_init: int, d: int,
            fail_tol: int | None = None, restart: str = "design") -> TrustState:
    """The state after the minimized values ``y_new`` that follow ``state``'s ``n``
    observations, in O(len(y_new)); ``advance(advance(None, a), b)`` is
    ``advance(None, a + b)``, and ``.region`` is :func:`replay`'s result.

    Parameters
    ----------
    state : TrustState or None
        The state after the earlier observations; ``None``: no observation yet.
    y_new : array_like
        The next minimized values, in observation order.
    n_init, d, fail_tol, restart
        As in :func:`replay`; they must be the ones ``state`` was built with.

    Raises
    ------
    ValueError
        A bad ``n_init``, ``d``, ``fail_tol`` or ``restart``, or ``state`` built with
        other ones.
    """
    n_init, ft, restart = _params(n_init, d, fail_tol, restart)
    if state is None:
        state = TrustState(n_init, ft, restart)
    elif (state.n_init, state.fail_tol, state.restart) != (n_init, ft, restart):
        raise ValueError(f"state was built with (n_init, fail_tol, restart) = "
                         f"{(state.n_init, state.fail_tol, state.restart)}, got "
                         f"{(n_init, ft, restart)}")
    y_new = np.asarray(y_new, dtype=np.float64).ravel()
    if y_new.size == 0:
        return state
    L, start, succ, fail, restarts = state.length, state.run_start, state.succ, \
        state.fail, state.restarts
    best, bi = state.best, state.best_index
    best_all, ai = state.best_all, state.best_all_index
    n0 = state.n
    for k, v in enumerate(y_new.tolist()):
        i = n0 + k
        if v < best_all:
            best_all, ai = v, i
        if i - start < n_init:           # the run's design
            if v < best:
                best, bi = v, i
            continue
        if v < best - 1e-3 * abs(best):
            succ, fail = succ + 1, 0
        else:
            succ, fail = 0, fail + 1
        if v < best:
            best, bi = v, i
        if succ == SUCC_TOL:
            L, succ = min(2.0 * L, L_MAX), 0
        elif fail == ft:
            L, fail = L / 2.0, 0
        if L < L_MIN:
            if restart == "design":      # a new run, its design from the next observation
                L, start, succ, fail, best, bi = L_INIT, i + 1, 0, 0, math.inf, -1
            else:                        # the same run and centre, the side reset
                L, succ, fail = L_INIT, 0, 0
            restarts += 1
    return TrustState(n_init, ft, restart, n0 + y_new.size, L, start, succ, fail, best, bi,
                      restarts, best_all, ai)


def replay(y: np.ndarray, n_init: int, d: int, fail_tol: int | None = None,
           restart: str = "design") -> TrustRegion:
    """The trust region after the minimized values ``y`` (in observation order); the
    first ``n_init`` of every run are its design (they set the run's best, no counter).

    ``restart``: what happens when the side falls below ``L_MIN``: ``"design"``
    (TuRBO) starts a new run with a new design of ``n_init`` points; ``"incumbent"``
    keeps the run (its best stays the centre) and only resets the side to ``L_INIT``
    (no observations spent on a new design).  ``advance(None, y, ...).region``."""
    return advance(None, y, n_init, d, fail_tol, restart).region


def trust_box(center: np.ndarray, lengthscales: np.ndarray, length: float) -> np.ndarray:
    """``(d, 2)`` box around ``center`` of sides ``length * l_i / geomean(l)``, clipped
    to the unit cube."""
    c = np.asarray(center, dtype=np.float64)
    ls = np.asarray(lengthscales, dtype=np.float64)
    if c.ndim != 1 or ls.shape != c.shape:
        raise ValueError(f"center and lengthscales must be 1-D of one length, got "
                         f"{c.shape} and {ls.shape}")
    if not (np.isfinite(ls).all() and (ls > 0).all()):
        raise ValueError("lengthscales must be finite and > 0")
    if not (math.isfinite(length) and length > 0):
        raise ValueError(f"length must be a finite number > 0, got {length!r}")
    w = ls / math.exp(float(np.mean(np.log(ls))))
    half = 0.5 * length * w
    return np.column_stack([np.clip(c - half, 0.0, 1.0), np.clip(c + half, 0.0, 1.0)])
