"""The pruner interface.

Every ``trial.report(step, value)`` is written to storage first; then the study asks
``pruner.on_report(study, number, step, value)`` whether that trial should stop.  A
pruner's state must be a fold over the study's stored reports: catch up with
``study.reports_since(cursor)`` (all reports of every process, in storage order, each
``(trial_number, step, value)``), so a resumed study, or one shared by several
processes, keeps its rungs.  Per-report work must stay O(log n) in the number of trials.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["BasePruner", "NopPruner"]


class BasePruner(ABC):
    """Base class of pruners."""

    @abstractmethod
    def on_report(self, study: "Study", number: int, step: int, value: float) -> bool:
        """Return True when trial ``number`` should stop after reporting ``value`` at ``step``."""

    @property
    def rung_resources(self) -> list[float] | None:
        """Resources of the pruner's rungs, lowest first, for samplers that model
        intermediate values per rung (BOHB); ``None`` for a pruner without rungs."""
        return None

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this pruner, JSON-serializable.

        Stored with the study (see :meth:`BaseSampler.get_params`); the default reads each
        argument of ``__init__`` back from the attribute of the same name.
        """
        from hpcore._persist import constructor_params

        return constructor_params(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NopPruner(BasePruner):
    """Never prunes (the default)."""

    def on_report(self, study: "Study", number: int, step: int, value: float) -> bool:
        return False
