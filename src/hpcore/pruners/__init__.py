"""Pruners: which running trials to stop early."""
from hpcore.pruners.base import BasePruner, NopPruner

__all__ = ["BasePruner", "NopPruner"]
