"""Metrics of :mod:`hpcore.automl`, computed from predictions (class probabilities for
classification), greater is better, so that out-of-fold predictions can be scored and
averaged into an ensemble without refitting anything."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["METRICS", "ROW_METRICS", "get_metric"]


def _labels(P: np.ndarray) -> np.ndarray:
    return np.argmax(P, axis=1)


def _accuracy(y, P):
    return float(np.mean(_labels(P) == y))


def _balanced_accuracy(y, P):
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, _labels(P)))


def _f1_macro(y, P):
    from sklearn.metrics import f1_score

    return float(f1_score(y, _labels(P), average="macro"))


def _roc_auc(y, P):
    from sklearn.metrics import roc_auc_score

    if P.shape[1] == 2:
        return float(roc_auc_score(y, P[:, 1]))
    Q = np.clip(P, 1e-12, None)
    Q = Q / Q.sum(axis=1, keepdims=True)
    return float(roc_auc_score(y, Q, multi_class="ovr", labels=np.arange(P.shape[1])))


def _neg_log_loss(y, P):
    Q = np.clip(P, 1e-15, None)
    Q = Q / Q.sum(axis=1, keepdims=True)
    return float(np.mean(np.log(Q[np.arange(len(y)), y.astype(int)])))


def _r2(y, p):
    ss = float(np.sum((y - y.mean()) ** 2))
    res = float(np.sum((y - p) ** 2))
    return 1.0 - res / ss if ss > 0 else (1.0 if res == 0 else 0.0)


def _neg_mse(y, p):
    return -float(np.mean((y - p) ** 2))


def _neg_rmse(y, p):
    return -float(np.sqrt(np.mean((y - p) ** 2)))


def _neg_mae(y, p):
    return -float(np.mean(np.abs(y - p)))


#: name -> (task, function(y, prediction) -> score, greater is better)
METRICS: dict[str, tuple[str, Callable]] = {
    "accuracy": ("classification", _accuracy),
    "balanced_accuracy": ("classification", _balanced_accuracy),
    "f1_macro": ("classification", _f1_macro),
    "roc_auc": ("classification", _roc_auc),
    "neg_log_loss": ("classification", _neg_log_loss),
    "r2": ("regression", _r2),
    "neg_mean_squared_error": ("regression", _neg_mse),
    "neg_root_mean_squared_error": ("regression", _neg_rmse),
    "neg_mean_absolute_error": ("regression", _neg_mae),
}


def _rows_accuracy(y, P):
    return (_labels(P) == y).astype(float)


def _rows_log_loss(y, P):
    Q = np.clip(P, 1e-15, None)
    Q = Q / Q.sum(axis=1, keepdims=True)
    return np.log(Q[np.arange(len(y)), y.astype(int)])


def _rows_r2(y, p):
    ss = float(np.sum((y - y.mean()) ** 2))
    if ss <= 0:
        return None                           # degenerate: no per-row split of R^2
    return 1.0 - len(y) * (y - p) ** 2 / ss


def _rows_mse(y, p):
    return -((y - p) ** 2)


def _rows_mae(y, p):
    return -np.abs(y - p)


#: name -> function(y, prediction) -> per-row contributions whose mean is the metric
#: (for the metrics that are a mean over rows; R^2 is one for a fixed ``y``), or None
#: where it cannot be split.  The others (balanced accuracy, F1, ROC AUC, RMSE, user
#: callables) are not a mean over rows.
ROW_METRICS: dict[str, Callable] = {
    "accuracy": _rows_accuracy,
    "neg_log_loss": _rows_log_loss,
    "r2": _rows_r2,
    "neg_mean_squared_error": _rows_mse,
    "neg_mean_absolute_error": _rows_mae,
}


class _UserMetric:
    """A user's ``metric(y_true, y_pred) -> float`` (labels for classification)."""

    def __init__(self, fn: Callable, task: str) -> None:
        self.fn, self.task = fn, task

    def __call__(self, y, P):
        pred = _labels(P) if self.task == "classification" else P
        return float(self.fn(y, pred))


def get_metric(metric: Any, task: str) -> tuple[Callable, str]:
    """``(score_fn, name)`` for ``metric``: a name of :data:`METRICS` (``None``: accuracy
    or r2) or a picklable callable ``metric(y_true, y_pred) -> float``, greater is better."""
    if metric is None:
        metric = "accuracy" if task == "classification" else "r2"
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)} or a callable, "
                             f"got {metric!r}")
        mtask, fn = METRICS[metric]
        if mtask != task:
            raise ValueError(f"metric {metric!r} is a {mtask} metric, but task={task!r}")
        return fn, metric
    if callable(metric):
        return _UserMetric(metric, task), getattr(metric, "__name__", "custom")
    raise TypeError(f"metric must be a str, a callable or None, got {type(metric).__name__}")
