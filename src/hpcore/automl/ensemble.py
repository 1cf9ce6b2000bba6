"""Greedy ensemble selection with replacement (Caruana et al., ICML 2004).

Starting from the best single model, repeatedly add (with replacement) the library
member whose inclusion maximizes the score of the averaged out-of-fold predictions;
the ensemble is the prefix of that sequence with the best score (ties to the shorter
one, so it never scores below the best single model on the selection data).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["caruana_ensemble"]


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
