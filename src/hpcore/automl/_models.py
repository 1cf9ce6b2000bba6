"""Small estimator helpers of :mod:`hpcore.automl`: the scale-free RBF SVM and
class-probability extraction for models without ``predict_proba``."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, clone

__all__ = ["ScaledGammaSVM", "class_scores"]


class ScaledGammaSVM(BaseEstimator):
    """An RBF SVC/SVR whose ``gamma`` is ``gamma_mult`` times scikit-learn's ``"scale"``.

    ``"scale"`` is ``1 / (n_features * X.var())`` of the data the model is fitted on, so
    ``gamma_mult = 1`` is scikit-learn's default and the space need not know the data.

    Parameters
    ----------
    svm : sklearn.svm.SVC or SVR
        The unfitted model (its ``gamma`` is overwritten).
    gamma_mult : float
        Multiple of ``gamma="scale"`` (> 0).
    """

    def __init__(self, svm=None, gamma_mult: float = 1.0) -> None:
        self.svm = svm
        self.gamma_mult = gamma_mult

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        if not self.gamma_mult > 0:
            raise ValueError(f"gamma_mult must be > 0, got {self.gamma_mult!r}")
        var = float(X.var()) if X.size else 0.0
        scale = 1.0 / (X.shape[1] * var) if var > 0 else 1.0
        self.svm_ = clone(self.svm).set_params(gamma=self.gamma_mult * scale)
        self.svm_.fit(X, y)
        if hasattr(self.svm_, "classes_"):
            self.classes_ = self.svm_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return self.svm_.predict(np.asarray(X, dtype=float))

    def decision_function(self, X):
        return self.svm_.decision_function(np.asarray(X, dtype=float))

    def score(self, X, y):
        return self.svm_.score(np.asarray(X, dtype=float), y)


def class_scores(model, X, n_classes: int, classes: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities of a fitted classifier, shape ``(n, n_classes)``, columns in
    the order of ``classes`` (the full problem's classes; a model that saw fewer gets 0
    for the missing ones).  Models without ``predict_proba`` (the SVC) get a softmax of
    their decision function (a sigmoid for two classes): scores that rank like
    probabilities and average sensibly in an ensemble."""
    if hasattr(model, "predict_proba"):
        try:
            P = np.asarray(model.predict_proba(X), dtype=float)
        except AttributeError:       # e.g. a Pipeline whose last step lacks it
            P = None
    else:
        P = None
    if P is None:
        D = np.asarray(model.decision_function(X), dtype=float)
        if D.ndim == 1:
            p1 = 1.0 / (1.0 + np.exp(-np.clip(D, -50, 50)))
            P = np.column_stack([1.0 - p1, p1])
        else:
            Z = D - D.max(axis=1, keepdims=True)
            E = np.exp(Z * 3.0)
            P = E / E.sum(axis=1, keepdims=True)
    model_classes = getattr(model, "classes_", None)
    if classes is None or model_classes is None or (
            len(model_classes) == n_classes and np.array_equal(model_classes, classes)):
        return P
    out = np.zeros((P.shape[0], n_classes))
    idx = np.searchsorted(classes, model_classes)
    out[:, idx] = P
    return out
