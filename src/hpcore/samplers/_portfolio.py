"""MACE, a portfolio of acquisition functions (Lyu et al. 2018; HEBO, Cowen-Rivers et al.
2022, winner of the NeurIPS 2020 black-box optimization challenge).

Instead of maximizing one acquisition, MACE treats log-EI, log-PI and the lower
confidence bound as three objectives and picks a point at random from their Pareto
front: a point no other candidate beats on all three.  Where the three agree (a clear
optimum) the front is small and the choice is nearly that of log-EI; where they
disagree (EI exploiting a narrow basin, LCB exploring elsewhere) the front spans both
and the choice alternates between them.

As in HEBO (``hebo/acquisitions/acq.py`` MACE, ``hebo/optimizers/hebo.py``):

* the incumbent ``tau`` is the posterior mean at the best observed point and EI/PI
  improve on ``tau - eps`` (``eps = 1e-4`` of the standardized targets);
* ``kappa = sqrt(upsilon * 2 * ((2 + d / 2) log t + log(3 pi^2 / (3 delta))))`` with
  ``upsilon = 0.5``, ``delta = 0.01``, ``t`` the number of observations and ``d`` the
  number of parameters (GP-UCB's schedule, Srinivas et al. 2010);
* the posterior mean in LCB and in the EI/PI argument is perturbed by independent
  draws of ``N(0, 2 noise_var)`` (so a noisy model does not over-trust its mean).

HEBO searches the front with NSGA-II (population 100, 100 generations).  Here the
candidates are the local optima of the three acquisitions' own maximizations (the
compiled multi-start L-BFGS with discrete rounding and local search, one run each),
which hold the front's extreme points, and the front is taken over them; the choice
among its points is uniform, as in HEBO.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["MACE_EPS", "mace_kappa", "mace_objectives", "pareto_front", "mace_order"]

MACE_EPS = 1e-4


def mace_kappa(n_obs: int, n_params: int, upsilon: float = 0.5, delta: float = 0.01) -> float:
    """HEBO's LCB weight: ``sqrt(upsilon * 2 * ((2 + d/2) log t + log(pi^2 / delta)))``."""
    if isinstance(n_obs, bool) or not isinstance(n_obs, (int, np.integer)) or n_obs < 1:
        raise ValueError(f"n_obs must be an int >= 1, got {n_obs!r}")
    if isinstance(n_params, bool) or not isinstance(n_params, (int, np.integer)) or n_params < 1:
        raise ValueError(f"n_params must be an int >= 1, got {n_params!r}")
    if not (math.isfinite(upsilon) and upsilon > 0):
        raise ValueError(f"upsilon must be a finite number > 0, got {upsilon!r}")
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ValueError(f"delta must be a number in (0, 1), got {delta!r}")
    t = float(n_obs)
    return math.sqrt(upsilon * 2.0 * ((2.0 + n_params / 2.0) * math.log(t)
                                      + math.log(3.0 * math.pi ** 2 / (3.0 * delta))))


def mace_objectives(mean: np.ndarray, var: np.ndarray, tau: float, kappa: float,
                    noise_var: float, rng: np.random.Generator,
                    eps: float = MACE_EPS) -> np.ndarray:
    """The three objectives, all to MAXIMIZE, as columns: log-EI and log-PI of
    improving on ``tau - eps``, and ``-LCB = -(mean - kappa sd)``; the mean perturbed
    by ``N(0, 2 noise_var)`` (independent draws for LCB and for EI/PI, as HEBO)."""
    from scipy.special import log_ndtr

    from hpcore._kernels.acquisition import log_h_array

    mean = np.asarray(mean, dtype=np.float64)
    sd = np.sqrt(np.maximum(np.asarray(var, dtype=np.float64), np.finfo(np.float64).eps ** 2))
    sd = np.maximum(sd, np.finfo(np.float64).eps)
    ns = math.sqrt(2.0 * max(float(noise_var), 0.0))
    m = len(mean)
    lcb = mean + ns * rng.standard_normal(m) - kappa * sd
    z = (tau - eps - mean - ns * rng.standard_normal(m)) / sd
    log_ei = log_h_array(np.ascontiguousarray(z))[0] + np.log(sd)
    log_pi = log_ndtr(z)
    return np.column_stack([log_ei, log_pi, -lcb])


def pareto_front(F: np.ndarray) -> np.ndarray:
    """Indices (ascending) of the rows of ``F`` no other row dominates (maximization: at
    least as large in every column and larger in one).  Exact duplicates of a front row
    are all kept."""
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:
        raise ValueError(f"F must be a 2-D array, got shape {F.shape}")
    if not np.isfinite(F).all():
        F = np.where(np.isnan(F), -np.inf, F)
    keep = np.ones(len(F), dtype=bool)
    for i in range(len(F)):
        ge = (F >= F[i]).all(axis=1)
        gt = (F > F[i]).any(axis=1)
        if (ge & gt).any():
            keep[i] = False
    return np.flatnonzero(keep)


def mace_order(F: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Candidate order for MACE: the Pareto front of ``F`` in uniformly random order
    (the first one is the proposal; the rest are fall-backs when it is excluded), then
    the other candidates by their first objective (log-EI), best first."""
    front = pareto_front(F)
    rest = np.setdiff1d(np.arange(len(F)), front)
    rest = rest[np.argsort(-F[rest, 0], kind="stable")]
    return np.concatenate([rng.permutation(front), rest]).astype(np.intp)
