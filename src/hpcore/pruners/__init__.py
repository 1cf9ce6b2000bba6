"""Pruners: which running trials to stop early."""
from hpcore.pruners.base import BasePruner, NopPruner
from hpcore.pruners.composite import CompositePruner, any_of
from hpcore.pruners.halving import ASHA, Hyperband, SuccessiveHalving, run_budgeted
from hpcore.pruners.median import MedianPruner
from hpcore.pruners.patience import PatiencePruner, ThresholdPruner

__all__ = ["ASHA", "BasePruner", "CompositePruner", "Hyperband", "MedianPruner", "NopPruner",
           "PatiencePruner", "SuccessiveHalving", "ThresholdPruner", "any_of", "run_budgeted"]
