"""Warm-start configurations: each estimator's library defaults, cheap ones first.

A search starts by evaluating these (one per estimator in the space, in the order
below), so its first trials are scikit-learn's defaults -- a default
HistGradientBoosting / RandomForest / scaled LogisticRegression or SVC is a strong
pipeline on most tabular data -- and the Bayesian search refines from there.
"""
from __future__ import annotations

from typing import Any

import hpcore as hp

__all__ = ["default_configs", "DEFAULTS", "LARGE_ROWS"]

_NONE = {"features": "none"}

#: Library defaults per estimator (space parameter names, see :mod:`hpcore.automl.space`).
DEFAULTS: dict[str, dict[str, Any]] = {
    "logreg": {"scaler": "standard", "logreg_penalty": "l2", "logreg_C": 1.0},
    "ridge": {"scaler": "standard", "ridge_alpha": 1.0},
    "knn": {"scaler": "standard", "knn_k": 5, "knn_weights": "uniform", "knn_p": 2},
    "svc": {"scaler": "standard", "svm_C": 1.0, "svm_gamma": 1.0},
    "svr": {"scaler": "standard", "svm_C": 1.0, "svm_gamma": 1.0, "svr_epsilon": 0.1},
    "rf": {"forest_n_estimators": 100, "forest_max_features": "sqrt",
           "forest_min_samples_leaf": 1, "forest_bootstrap": True, "forest_criterion": "gini"},
    "et": {"forest_n_estimators": 100, "forest_max_features": "sqrt",
           "forest_min_samples_leaf": 1, "forest_bootstrap": False, "forest_criterion": "gini"},
    "hgb": {"hgb_learning_rate": 0.1, "hgb_max_iter": 100, "hgb_max_leaf_nodes": 31,
            "hgb_min_samples_leaf": 20, "hgb_l2": 1e-6},
    "lgbm": {"gbm_n_estimators": 100, "gbm_learning_rate": 0.1, "gbm_num_leaves": 31,
             "gbm_min_child": 20, "gbm_subsample": 1.0, "gbm_colsample": 1.0,
             "gbm_reg_lambda": 1e-3},
    "lasso": {"scaler": "standard", "lasso_alpha": 0.01},
    "elasticnet": {"scaler": "standard", "lasso_alpha": 0.01, "enet_l1_ratio": 0.5},
    "mlp": {"scaler": "standard", "mlp_layers": 1, "mlp_units": 100, "mlp_activation": "relu",
            "mlp_alpha": 1e-4, "mlp_solver": "adam", "mlp_lr": 1e-3, "mlp_batch_size": 200,
            "mlp_early_stopping": True},
}

# Small data: cheap and strong first; the forests and boosters after the linear/kernel
# models (each of them takes well under a second there).
_ORDER = ("logreg", "ridge", "svc", "svr", "knn", "rf", "hgb", "et", "lgbm", "lasso",
          "elasticnet", "mlp")
# Larger data (from LARGE_ROWS training rows): the kernel SVM's fit grows
# quadratically and a full-depth RandomForest costs seconds per fold, while the
# histogram boosters stay cheap and are the strongest defaults on such data (on the
# 3750 x 25 make_classification set of bench/bench_automl.py, one core: 5-fold CV of
# LightGBM 2.8 s / 0.947, HistGradientBoosting 5.9 s / 0.946, ExtraTrees 5.7 s / 0.943,
# RandomForest 8 s / 0.941, SVC 3.8 s / 0.929): boosters, then the forests, then the rest.
_ORDER_LARGE = ("logreg", "ridge", "lgbm", "hgb", "et", "knn", "lasso", "elasticnet",
                "rf", "svc", "svr", "mlp")
#: Training rows from which the large-data order is used.
LARGE_ROWS = 2500


def default_configs(space: hp.Space, n_rows: int | None = None) -> list[dict[str, Any]]:
    """The default configuration of every estimator ``space`` offers, validated against
    it, in evaluation order (parameters the space lacks are dropped: e.g. the forests'
    ``criterion`` in a regression space).  ``n_rows``: the training rows; from
    :data:`LARGE_ROWS` on, the boosters and forests come before the kernel models."""
    est = space["estimator"].choices
    out = []
    order = _ORDER_LARGE if n_rows is not None and n_rows >= LARGE_ROWS else _ORDER
    for name in order:
        if name not in est:
            continue
        cfg = {"estimator": name, **_NONE,
               **{k: v for k, v in DEFAULTS[name].items() if k in space.params}}
        cfg = {k: v for k, v in cfg.items() if space.is_active(k, cfg)}
        out.append(space.validate(cfg))
    return out
