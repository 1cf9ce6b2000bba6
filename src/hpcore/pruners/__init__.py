"""Pruners: which running trials to stop early."""
from hpcore.pruners.base import BasePruner, NopPruner
from hpcore.pruners.halving import ASHA, Hyperband, SuccessiveHalving, run_budgeted
from hpcore.pruners.median import MedianPruner

__all__ = ["ASHA", "BasePruner", "Hyperband", "MedianPruner", "NopPruner", "SuccessiveHalving",
           "run_budgeted"]
