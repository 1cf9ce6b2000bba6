"""hpcore: C-accelerated hyperparameter optimization.

The public API, re-exported; nothing else lives here.
"""
from hpcore._config import __version__, show_config
from hpcore._export import best_trials_table
from hpcore._summary import StudySummary, list_studies
from hpcore.executors._signals import Terminated
from hpcore.executors.local import ProcessExecutor, WorkerStartupError
from hpcore.pruners import (ASHA, BasePruner, CompositePruner, Hyperband, MedianPruner, NopPruner,
                            PatiencePruner, SuccessiveHalving, ThresholdPruner, any_of)
from hpcore.samplers import (BaseSampler, BayesSampler, GeneticSampler, GridSampler, QMCSampler,
                             RandomSampler, StudyExhausted)
from hpcore.space import Categorical, Float, Int, Space
from hpcore.storage import (BaseStorage, InMemoryStorage, SQLiteStorage, StorageVersionError,
                            StudyNotFound)
from hpcore.study import Study, load_study
from hpcore.trial import FrozenTrial, Trial, TrialPruned, TrialState

__all__ = [
    "ASHA",
    "BasePruner",
    "BaseSampler",
    "BayesSampler",
    "BaseStorage",
    "Categorical",
    "CompositePruner",
    "DaskExecutor",
    "Float",
    "FrozenTrial",
    "GeneticSampler",
    "GridSampler",
    "Hyperband",
    "InMemoryStorage",
    "Int",
    "MedianPruner",
    "NopPruner",
    "PatiencePruner",
    "ProcessExecutor",
    "QMCSampler",
    "RandomSampler",
    "SQLiteStorage",
    "Space",
    "Study",
    "SuccessiveHalving",
    "StudyExhausted",
    "StudyNotFound",
    "StorageVersionError",
    "StudySummary",
    "Terminated",
    "Trial",
    "TrialPruned",
    "TrialState",
    "WorkerStartupError",
    "ThresholdPruner",
    "__version__",
    "any_of",
    "best_trials_table",
    "list_studies",
    "load_study",
    "show_config",
]


def __getattr__(name: str):
    # DaskExecutor is resolved on first use, so `import hpcore` never imports dask.
    if name == "DaskExecutor":
        from hpcore.executors.dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'hpcore' has no attribute {name!r}")
