"""TuRBO's trust region (Eriksson et al. 2019, "Scalable global optimization via local
Bayesian optimization", TuRBO-1), for :class:`~hpcore.samplers.bayes.BayesSampler`.

The acquisition is maximized in a box around the best point of the current run, of
side ``L`` in the unit cube, stretched per dimension by the GP's lengthscales
(``L_i = L * l_i / (prod_j l_j)^(1/d)``).  ``L`` starts at 0.8; after ``succ_tol = 3``
consecutive successes (an observation below ``best - 1e-3 |best|``) it doubles (at most
1.6), after ``fail_tol = max(4, d)`` consecutive failures it halves; below
``L_min = 0.5^7`` the run restarts: a new quasi-random design of ``n_init`` points,
whose best is the next centre.

The state is replayed from the sequence of observations (completed trials in order)
on every ask instead of being kept, so it is the same after a resume, and for any
number of workers given the same completed sequence.  As TuRBO-1 with batch size 1
(each observation updates the counters).  Unlike TuRBO, the GP is fitted to all
observations, not only the current run's (the trust region restricts the search, the
model keeps what the earlier runs learned), and the acquisition is the sampler's own
(log-EI by default) instead of Thompson sampling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TrustRegion", "replay", "trust_box"]

L_INIT, L_MIN, L_MAX = 0.8, 0.5 ** 7, 1.6
SUCC_TOL = 3


@dataclass(frozen=True)
class TrustRegion:
    length: float       # side L in the unit cube (before the lengthscale stretch)
    run_start: int      # index of the current run's first observation
    n_run: int          # observations of the current run so far
    restarts: int       # restarts so far


RESTARTS = ("design", "incumbent")


def replay(y: np.ndarray, n_init: int, d: int, fail_tol: int | None = None,
           restart: str = "design") -> TrustRegion:
    """The trust region after the minimized values ``y`` (in observation order); the
    first ``n_init`` of every run are its design (they set the run's best, no counter).

    ``restart``: what happens when the side falls below ``L_MIN``: ``"design"``
    (TuRBO) starts a new run with a new design of ``n_init`` points; ``"incumbent"``
    keeps the run (its best stays the centre) and only resets the side to ``L_INIT``
    (no observations spent on a new design)."""
    if restart not in RESTARTS:
        raise ValueError(f"restart must be one of {RESTARTS}, got {restart!r}")
    if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise ValueError(f"n_init must be an int >= 1, got {n_init!r}")
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be an int >= 1, got {d!r}")
    ft = max(4, int(d)) if fail_tol is None else int(fail_tol)
    if ft < 1:
        raise ValueError(f"fail_tol must be >= 1, got {fail_tol!r}")
    y = np.asarray(y, dtype=np.float64)
    L, start, succ, fail, restarts = L_INIT, 0, 0, 0, 0
    best = math.inf
    for i, v in enumerate(y):
        if i - start < n_init:           # the run's design
            best = min(best, v)
            continue
        if v < best - 1e-3 * abs(best):
            succ, fail = succ + 1, 0
        else:
            succ, fail = 0, fail + 1
        best = min(best, v)
        if succ == SUCC_TOL:
            L, succ = min(2.0 * L, L_MAX), 0
        elif fail == ft:
            L, fail = L / 2.0, 0
        if L < L_MIN:
            if restart == "design":      # a new run, its design from the next observation
                L, start, succ, fail, best = L_INIT, i + 1, 0, 0, math.inf
            else:                        # the same run and centre, the side reset
                L, succ, fail = L_INIT, 0, 0
            restarts += 1
    return TrustRegion(L, start, len(y) - start, restarts)


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
