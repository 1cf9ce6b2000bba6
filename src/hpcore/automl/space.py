"""The conditional pipeline space of :mod:`hpcore.automl` and the pipeline builder.

One :class:`hpcore.Space` describes every pipeline ``[scaler] -> [feature step] ->
estimator``: the parameter ``estimator`` picks the model, every model's parameters
are conditional on it, the scaler is active only for scale-sensitive models, and the
feature step (none / PCA / RFE with a linear or tree ranker / SelectKBest) carries its
own conditional size.  Sizes are fractions of the data's width (``n_components``,
``n_features_to_select``, ``k``) and the RBF width is a multiple of scikit-learn's
``gamma="scale"``, so one space fits every data set: a study stored on one data set
warm-starts a search on another.

:func:`build_pipeline` turns a configuration of that space into an unfitted
scikit-learn :class:`~sklearn.pipeline.Pipeline`.
"""
from __future__ import annotations

import importlib.util
from typing import Any, Mapping

import hpcore as hp

__all__ = ["TASKS", "available_estimators", "pipeline_space", "build_pipeline",
           "SCALE_SENSITIVE", "FEATURE_STEPS", "SCALERS"]

TASKS = ("classification", "regression")

SCALERS = ("standard", "minmax", "robust", "none")
FEATURE_STEPS = ("none", "pca", "rfe", "kbest")

#: Estimators whose results depend on the feature scale (the scaler is active for them).
SCALE_SENSITIVE = frozenset({"logreg", "svc", "knn", "mlp", "ridge", "lasso", "elasticnet",
                             "svr"})

_CLASSIFIERS = ("logreg", "svc", "knn", "rf", "et", "hgb", "mlp", "lgbm", "xgb")
_REGRESSORS = ("ridge", "lasso", "elasticnet", "svr", "knn", "rf", "et", "hgb", "mlp",
               "lgbm", "xgb")
_OPTIONAL = {"lgbm": "lightgbm", "xgb": "xgboost"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def available_estimators(task: str) -> tuple[str, ...]:
    """Estimator names of ``task`` in this environment (LightGBM / XGBoost when installed)."""
    _check_task(task)
    names = _CLASSIFIERS if task == "classification" else _REGRESSORS
    return tuple(n for n in names if n not in _OPTIONAL or _installed(_OPTIONAL[n]))


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def pipeline_space(task: str, estimators: tuple[str, ...] | list[str] | None = None) -> hp.Space:
    """The conditional space over pipelines for ``task``.

    Parameters
    ----------
    task : {"classification", "regression"}
    estimators : sequence of str, optional
        Restrict the model choice (default: :func:`available_estimators`).

    Returns
    -------
    hpcore.Space
    """
    _check_task(task)
    avail = available_estimators(task)
    if estimators is None:
        estimators = avail
    else:
        if isinstance(estimators, str) or not hasattr(estimators, "__iter__"):
            raise TypeError("estimators must be a list of estimator names")
        estimators = tuple(estimators)
        if not estimators:
            raise ValueError("estimators must name at least one estimator")
        for e in estimators:
            if e not in avail:
                raise ValueError(f"estimators: {e!r} is not available for {task} "
                                 f"(choose from {list(avail)})")
    est = tuple(estimators)
    F, I, C = hp.Float, hp.Int, hp.Categorical
    p: dict[str, Any] = {"estimator": C(list(est))}

    def on(*names):
        return {"estimator": [n for n in names if n in est]}

    def have(*names):
        return any(n in est for n in names)

    scaled = [e for e in est if e in SCALE_SENSITIVE]
    if scaled:
        p["scaler"] = C(list(SCALERS), condition={"estimator": scaled})
    p["features"] = C(list(FEATURE_STEPS))
    p["pca_frac"] = F(0.05, 1.0, condition={"features": "pca"})
    p["rfe_ranker"] = C(["linear", "tree"], condition={"features": "rfe"})
    p["rfe_frac"] = F(0.1, 1.0, condition={"features": "rfe"})
    p["kbest_frac"] = F(0.05, 1.0, condition={"features": "kbest"})
    if have("logreg"):
        p["logreg_penalty"] = C(["l2", "l1", "elasticnet"], condition=on("logreg"))
        p["logreg_C"] = F(1e-3, 1e3, log=True, condition=on("logreg"))
        p["logreg_l1_ratio"] = F(0.05, 0.95, condition={"logreg_penalty": "elasticnet"})
    if have("ridge"):
        p["ridge_alpha"] = F(1e-4, 1e3, log=True, condition=on("ridge"))
    if have("lasso", "elasticnet"):
        p["lasso_alpha"] = F(1e-5, 10.0, log=True, condition=on("lasso", "elasticnet"))
    if have("elasticnet"):
        p["enet_l1_ratio"] = F(0.05, 0.95, condition=on("elasticnet"))
    if have("svc", "svr"):
        p["svm_C"] = F(1e-2, 1e3, log=True, condition=on("svc", "svr"))
        p["svm_gamma"] = F(1e-3, 1e2, log=True, condition=on("svc", "svr"))
    if have("svr"):
        p["svr_epsilon"] = F(1e-3, 1.0, log=True, condition=on("svr"))
    if have("knn"):
        p["knn_k"] = I(1, 50, log=True, condition=on("knn"))
        p["knn_weights"] = C(["uniform", "distance"], condition=on("knn"))
        p["knn_p"] = C([1, 2], condition=on("knn"))
    if have("rf", "et"):
        p["forest_n_estimators"] = I(10, 500, log=True, condition=on("rf", "et"))
        p["forest_max_features"] = C(["sqrt", "log2", 0.2, 0.35, 0.5, 0.75, 1.0],
                                     condition=on("rf", "et"))
        p["forest_min_samples_leaf"] = I(1, 20, log=True, condition=on("rf", "et"))
        p["forest_bootstrap"] = C([True, False], condition=on("rf", "et"))
        if task == "classification":
            p["forest_criterion"] = C(["gini", "entropy"], condition=on("rf", "et"))
    if have("hgb"):
        p["hgb_learning_rate"] = F(0.01, 1.0, log=True, condition=on("hgb"))
        p["hgb_max_iter"] = I(20, 500, log=True, condition=on("hgb"))
        p["hgb_max_leaf_nodes"] = I(4, 128, log=True, condition=on("hgb"))
        p["hgb_min_samples_leaf"] = I(2, 100, log=True, condition=on("hgb"))
        p["hgb_l2"] = F(1e-6, 10.0, log=True, condition=on("hgb"))
    if have("mlp"):
        p["mlp_layers"] = I(1, 3, condition=on("mlp"))
        p["mlp_units"] = I(16, 256, log=True, condition=on("mlp"))
        p["mlp_activation"] = C(["relu", "tanh", "logistic"], condition=on("mlp"))
        p["mlp_alpha"] = F(1e-6, 1e-1, log=True, condition=on("mlp"))
        p["mlp_solver"] = C(["adam", "sgd"], condition=on("mlp"))
        p["mlp_lr"] = F(1e-4, 1e-1, log=True, condition=on("mlp"))
        p["mlp_lr_schedule"] = C(["constant", "invscaling", "adaptive"],
                                 condition={"mlp_solver": "sgd"})
        p["mlp_momentum"] = F(0.0, 0.99, condition={"mlp_solver": "sgd"})
        p["mlp_batch_size"] = I(16, 256, log=True, condition=on("mlp"))
        p["mlp_early_stopping"] = C([False, True], condition=on("mlp"))
    if have("lgbm", "xgb"):
        p["gbm_n_estimators"] = I(10, 1000, log=True, condition=on("lgbm", "xgb"))
        p["gbm_learning_rate"] = F(0.005, 1.0, log=True, condition=on("lgbm", "xgb"))
        p["gbm_num_leaves"] = I(4, 256, log=True, condition=on("lgbm", "xgb"))
        p["gbm_min_child"] = I(1, 100, log=True, condition=on("lgbm", "xgb"))
        p["gbm_subsample"] = F(0.5, 1.0, condition=on("lgbm", "xgb"))
        p["gbm_colsample"] = F(0.3, 1.0, condition=on("lgbm", "xgb"))
        p["gbm_reg_lambda"] = F(1e-3, 100.0, log=True, condition=on("lgbm", "xgb"))
    return hp.Space(p)


# --------------------------------------------------------------------------- builder
def _frac_count(frac: float, n: int) -> int:
    return max(1, min(n, int(round(frac * n))))


def _make_scaler(name: str):
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    return {"standard": StandardScaler, "minmax": MinMaxScaler,
            "robust": RobustScaler}[name]()


def _logreg(params: Mapping[str, Any], seed: int):
    import sklearn
    from sklearn.linear_model import LogisticRegression

    pen = params["logreg_penalty"]
    ratio = {"l2": 0.0, "l1": 1.0}.get(pen, params.get("logreg_l1_ratio", 0.5))
    solver = "lbfgs" if pen == "l2" else "saga"
    kw: dict[str, Any] = dict(C=params["logreg_C"], solver=solver,
                              max_iter=300 if solver == "lbfgs" else 400, tol=1e-3,
                              random_state=seed)
    major, minor = (int(x) for x in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 8):
        kw["l1_ratio"] = ratio          # `penalty` is deprecated from 1.8 on
    else:                               # pragma: no cover - older scikit-learn
        kw["penalty"] = pen
        if pen == "elasticnet":
            kw["l1_ratio"] = ratio
    return LogisticRegression(**kw)


def _estimator(params: Mapping[str, Any], task: str, n_features: int, seed: int):
    name = params["estimator"]
    clf = task == "classification"
    if name == "logreg":
        return _logreg(params, seed)
    if name == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=params["ridge_alpha"])
    if name == "lasso":
        from sklearn.linear_model import Lasso

        return Lasso(alpha=params["lasso_alpha"], max_iter=3000, tol=1e-3)
    if name == "elasticnet":
        from sklearn.linear_model import ElasticNet

        return ElasticNet(alpha=params["lasso_alpha"], l1_ratio=params["enet_l1_ratio"],
                          max_iter=3000, tol=1e-3)
    if name in ("svc", "svr"):
        from sklearn.svm import SVC, SVR

        # gamma as a multiple of gamma="scale" (1 / (n_features * X.var())) is set by the
        # _ScaledGamma wrapper at fit time, when the data's variance is known
        if name == "svc":
            base = SVC(C=params["svm_C"], kernel="rbf", random_state=seed)
        else:
            base = SVR(C=params["svm_C"], epsilon=params["svr_epsilon"], kernel="rbf")
        from hpcore.automl._models import ScaledGammaSVM

        return ScaledGammaSVM(base, params["svm_gamma"])
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        cls = KNeighborsClassifier if clf else KNeighborsRegressor
        return cls(n_neighbors=params["knn_k"], weights=params["knn_weights"], p=params["knn_p"])
    if name in ("rf", "et"):
        from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor,
                                      RandomForestClassifier, RandomForestRegressor)

        cls = {("rf", True): RandomForestClassifier, ("rf", False): RandomForestRegressor,
               ("et", True): ExtraTreesClassifier, ("et", False): ExtraTreesRegressor}[name, clf]
        kw = dict(n_estimators=params["forest_n_estimators"],
                  max_features=params["forest_max_features"],
                  min_samples_leaf=params["forest_min_samples_leaf"],
                  bootstrap=params["forest_bootstrap"], n_jobs=1, random_state=seed)
        if clf:
            kw["criterion"] = params["forest_criterion"]
        return cls(**kw)
    if name == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if clf else HistGradientBoostingRegressor
        return cls(learning_rate=params["hgb_learning_rate"], max_iter=params["hgb_max_iter"],
                   max_leaf_nodes=params["hgb_max_leaf_nodes"],
                   min_samples_leaf=params["hgb_min_samples_leaf"],
                   l2_regularization=params["hgb_l2"], random_state=seed)
    if name == "mlp":
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        cls = MLPClassifier if clf else MLPRegressor
        kw = dict(hidden_layer_sizes=(params["mlp_units"],) * params["mlp_layers"],
                  activation=params["mlp_activation"], alpha=params["mlp_alpha"],
                  solver=params["mlp_solver"], learning_rate_init=params["mlp_lr"],
                  batch_size=params["mlp_batch_size"],
                  early_stopping=params["mlp_early_stopping"], max_iter=200,
                  random_state=seed)
        if params["mlp_solver"] == "sgd":
            kw.update(learning_rate=params["mlp_lr_schedule"], momentum=params["mlp_momentum"])
        return cls(**kw)
    if name == "lgbm":
        import lightgbm as lgb

        cls = lgb.LGBMClassifier if clf else lgb.LGBMRegressor
        return cls(n_estimators=params["gbm_n_estimators"],
                   learning_rate=params["gbm_learning_rate"],
                   num_leaves=params["gbm_num_leaves"],
                   min_child_samples=params["gbm_min_child"],
                   subsample=params["gbm_subsample"], subsample_freq=1,
                   colsample_bytree=params["gbm_colsample"],
                   reg_lambda=params["gbm_reg_lambda"], n_jobs=1, verbose=-1,
                   random_state=seed)
    if name == "xgb":
        import xgboost as xgb

        cls = xgb.XGBClassifier if clf else xgb.XGBRegressor
        return cls(n_estimators=params["gbm_n_estimators"],
                   learning_rate=params["gbm_learning_rate"],
                   max_leaves=params["gbm_num_leaves"], max_depth=0, grow_policy="lossguide",
                   min_child_weight=float(params["gbm_min_child"]),
                   subsample=params["gbm_subsample"],
                   colsample_bytree=params["gbm_colsample"],
                   reg_lambda=params["gbm_reg_lambda"], tree_method="hist", n_jobs=1,
                   verbosity=0, random_state=seed)
    raise ValueError(f"estimator: unknown estimator {name!r}")


def _feature_step(params: Mapping[str, Any], task: str, n_samples: int, n_features: int,
                  seed: int):
    kind = params["features"]
    if kind == "none":
        return None
    if kind == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=_frac_count(params["pca_frac"], min(n_samples, n_features)),
                   random_state=seed)
    if kind == "kbest":
        from sklearn.feature_selection import SelectKBest, f_classif, f_regression

        return SelectKBest(f_classif if task == "classification" else f_regression,
                           k=_frac_count(params["kbest_frac"], n_features))
    if kind == "rfe":
        from sklearn.feature_selection import RFE

        if params["rfe_ranker"] == "tree":
            from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

            cls = ExtraTreesClassifier if task == "classification" else ExtraTreesRegressor
            ranker = cls(n_estimators=30, n_jobs=1, random_state=seed)
        elif task == "classification":
            from sklearn.linear_model import LogisticRegression

            ranker = LogisticRegression(max_iter=200, tol=1e-3)
        else:
            from sklearn.linear_model import Ridge

            ranker = Ridge(alpha=1.0)
        return RFE(ranker, n_features_to_select=_frac_count(params["rfe_frac"], n_features),
                   step=0.2)
    raise ValueError(f"features: unknown feature step {kind!r}")


def build_pipeline(params: Mapping[str, Any], task: str, n_samples: int, n_features: int,
                   seed: int = 0, impute: bool = False):
    """An unfitted scikit-learn pipeline for one configuration of :func:`pipeline_space`.

    Parameters
    ----------
    params : mapping
        A configuration (e.g. ``trial.params``).
    task : {"classification", "regression"}
    n_samples, n_features : int
        Shape of the training data (feature-step sizes are fractions of them).
    seed : int
        ``random_state`` of every randomized step.
    impute : bool
        Start with a median :class:`~sklearn.impute.SimpleImputer` (data with NaN).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``impute`` (when asked), ``scaler`` (scale-sensitive models), ``features``
        (unless none), ``model``.
    """
    from sklearn.pipeline import Pipeline

    _check_task(task)
    if "estimator" not in params:
        raise ValueError("params: missing 'estimator'")
    steps = []
    if impute:
        from sklearn.impute import SimpleImputer

        steps.append(("impute", SimpleImputer(strategy="median")))
    if params["estimator"] in SCALE_SENSITIVE and params.get("scaler", "none") != "none":
        steps.append(("scaler", _make_scaler(params["scaler"])))
    feat = _feature_step(params, task, n_samples, n_features, seed)
    if feat is not None:
        steps.append(("features", feat))
    steps.append(("model", _estimator(params, task, n_features, seed)))
    return Pipeline(steps)
