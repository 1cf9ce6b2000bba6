"""Greedy ensemble selection with replacement (Caruana et al., ICML 2004).

Starting from the best single model, repeatedly add (with replacement) the library
member whose inclusion maximizes the score of the averaged out-of-fold predictions;
the ensemble is the prefix of that sequence with the best score (ties to the shorter
one, so it never scores below the best single model on the selection data).

That score is measured on the rows the ensemble was selected on, so on small data a
gain of a row or two is selection noise (Caruana et al. 2004 and 2006 report that
ensemble selection overfits small hillclimb sets).  :func:`ensemble_gain` measures the
gain over the single model with its standard error, paired over rows, and
:func:`prefer_ensemble` keeps the ensemble only when the gain exceeds that error (the
one-standard-error rule for choosing the simpler of two models).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["caruana_ensemble", "ensemble_gain", "prefer_ensemble"]


def caruana_ensemble(predictions: Sequence[np.ndarray], y: np.ndarray,
                     score: Callable[[np.ndarray, np.ndarray], float], *,
                     n_iterations: int = 50) -> tuple[np.ndarray, float]:
    """Weights of a greedy ensemble over ``predictions``.

    Parameters
    ----------
    predictions : sequence of arrays
        Out-of-fold predictions of each library member, all of one shape: ``(n,)`` for
        regression or ``(n, n_classes)`` class probabilities.
    y : array of shape (n,)
        Targets.
    score : callable
        ``score(y, averaged_prediction) -> float``, greater is better.
    n_iterations : int
        Greedy steps (>= 1).

    Returns
    -------
    weights : ndarray of shape (n_members,)
        Non-negative, summing to 1 (selection counts / total).
    best_score : float
        Score of the weighted average on ``y``.
    """
    if len(predictions) == 0:
        raise ValueError("predictions: the library is empty")
    if isinstance(n_iterations, bool) or not isinstance(n_iterations, (int, np.integer)) \
            or n_iterations < 1:
        raise ValueError(f"n_iterations must be an int >= 1, got {n_iterations!r}")
    P = [np.asarray(p, dtype=float) for p in predictions]
    shape = P[0].shape
    for i, p in enumerate(P):
        if p.shape != shape:
            raise ValueError(f"predictions[{i}] has shape {p.shape}, expected {shape}")
        if len(p) != len(y):
            raise ValueError(f"predictions[{i}] has {len(p)} rows, y has {len(y)}")
    single = [score(y, p) for p in P]
    first = int(np.argmax(single))
    counts = np.zeros(len(P), dtype=np.int64)
    counts[first] = 1
    total = P[first].copy()
    best_score, best_counts = single[first], counts.copy()
    for it in range(2, n_iterations + 1):
        trial_scores = [score(y, (total + p) / it) for p in P]
        j = int(np.argmax(trial_scores))      # ties: the lower index (the better member)
        total += P[j]
        counts[j] += 1
        if trial_scores[j] > best_score + 1e-12:
            best_score, best_counts = trial_scores[j], counts.copy()
    return best_counts / best_counts.sum(), float(best_score)


def ensemble_gain(y: np.ndarray, ensemble: np.ndarray, single: np.ndarray,
                  score: Callable[[np.ndarray, np.ndarray], float], *,
                  per_row: Callable | None = None, n_boot: int = 200,
                  seed: int = 0) -> tuple[float, float]:
    """Gain of ``ensemble`` over ``single`` on ``y`` and its standard error.

    Both are predictions of the same rows (out-of-fold), so the error is that of the
    paired difference: a row both get right (or wrong) carries no evidence either way.

    Parameters
    ----------
    y : array of shape (n,)
        Targets.
    ensemble, single : arrays of one shape
        Predictions (``(n,)`` values or ``(n, n_classes)`` probabilities).
    score : callable
        ``score(y, prediction) -> float``, greater is better.
    per_row : callable, optional
        ``per_row(y, prediction) -> (n,)`` contributions whose mean is ``score`` (a
        metric that is a mean over rows), or returning None.  Then the gain is the mean
        of the per-row differences ``d`` and its error ``std(d, ddof=1) / sqrt(n)``.
        Otherwise the error is the standard deviation of the gain over ``n_boot``
        bootstrap resamples of the rows (seeded by ``seed``), times ``sqrt(n / (n-1))``.
    n_boot : int
        Bootstrap resamples (>= 2) when ``per_row`` is None.
    seed : int
        Seeds the bootstrap.

    Returns
    -------
    gain : float
        ``score(y, ensemble) - score(y, single)``.
    se : float
        Its standard error (0 for fewer than 2 rows).
    """
    y = np.asarray(y)
    E, S = np.asarray(ensemble, dtype=float), np.asarray(single, dtype=float)
    if E.shape != S.shape:
        raise ValueError(f"single has shape {S.shape}, ensemble has {E.shape}")
    if len(E) != len(y):
        raise ValueError(f"ensemble has {len(E)} rows, y has {len(y)}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ValueError(f"n_boot must be an int >= 2, got {n_boot!r}")
    n = len(y)
    gain = float(score(y, E)) - float(score(y, S))
    if n < 2:
        return gain, 0.0
    if per_row is not None:
        re, rs = per_row(y, E), per_row(y, S)
        if re is not None and rs is not None:
            d = np.asarray(re, dtype=float) - np.asarray(rs, dtype=float)
            return gain, float(np.std(d, ddof=1) / np.sqrt(n))
    rng = np.random.default_rng([int(seed), 13])
    gains = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        try:
            gains[b] = float(score(y[idx], E[idx])) - float(score(y[idx], S[idx]))
        except ValueError:                     # e.g. ROC AUC of a one-class resample
            gains[b] = np.nan
    gains = gains[np.isfinite(gains)]
    if len(gains) < 2:
        return gain, float("inf")
    # the bootstrap variance of a mean is the plug-in variance / n, (n - 1) / n of the
    # unbiased one used above: rescaled, both give the same error for a mean metric
    return gain, float(np.std(gains, ddof=1) * np.sqrt(n / (n - 1)))


def prefer_ensemble(gain: float, se: float) -> bool:
    """Whether an ensemble whose gain over the best single model is ``gain +- se`` is
    worth keeping: ``gain > se``.

    The one-standard-error rule (Breiman et al. 1984, *Classification and Regression
    Trees*, sec. 3.4.3; Hastie, Tibshirani and Friedman, *The Elements of Statistical
    Learning*, sec. 7.10): between models whose estimated scores differ by less than the
    estimate's standard error, take the simpler one, here the single pipeline.  The gain
    is measured on the rows the ensemble was selected on, so it is biased upwards; a
    gain within its own noise is no evidence that the ensemble generalizes better.
    For accuracy, with ``b`` rows that only the ensemble gets right and ``w`` that only
    the single model gets right, ``gain > se`` needs roughly ``b - w > sqrt(b + w)``
    whatever the number of rows: one row better and none worse gives ``gain == se``
    exactly (not enough), two better and none worse is enough, 3 better and 2 worse is
    not.  A tie (``gain == se`` up to rounding) keeps the single model."""
    return bool(np.isfinite(gain) and gain > 0.0 and gain > se * (1.0 + 1e-9) + 1e-12)
