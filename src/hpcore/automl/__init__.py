"""AutoML over scikit-learn pipelines: model selection and hyperparameter search.

``AutoML(task, time_budget).fit(X, y)`` searches one conditional space of pipelines
(scaler, feature step, estimator and its hyperparameters) with hpcore's Bayesian
sampler and successive halving, within a wall-clock budget, and refits the best
pipeline (or a greedy ensemble of the best) on all the data.  Needs scikit-learn.
"""
from hpcore.automl.ensemble import caruana_ensemble
from hpcore.automl.estimator import AutoML, search
from hpcore.automl.space import available_estimators, build_pipeline, pipeline_space

__all__ = ["AutoML", "available_estimators", "build_pipeline", "caruana_ensemble",
           "pipeline_space", "search"]
