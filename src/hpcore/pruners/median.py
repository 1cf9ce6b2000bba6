"""The median stopping rule (Golovin et al. 2017, "Google Vizier"), a simple baseline."""
from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING, Any

from hpcore.pruners.base import BasePruner

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["MedianPruner"]


class _RunningMedian:
    """Streaming median with two heaps: O(log n) insert, O(1) median."""

    __slots__ = ("lo", "hi")

    def __init__(self) -> None:
        self.lo: list[float] = []  # max-heap (negated) of the smaller half
        self.hi: list[float] = []  # min-heap of the larger half

    def __len__(self) -> int:
        return len(self.lo) + len(self.hi)

    def push(self, x: float) -> None:
        if self.lo and x > -self.lo[0]:
            heapq.heappush(self.hi, x)
        else:
            heapq.heappush(self.lo, -x)
        if len(self.lo) > len(self.hi) + 1:
            heapq.heappush(self.hi, -heapq.heappop(self.lo))
        elif len(self.hi) > len(self.lo):
            heapq.heappush(self.lo, -heapq.heappop(self.hi))

    def median(self) -> float:
        if len(self.lo) > len(self.hi):
            return -self.lo[0]
        return 0.5 * (-self.lo[0] + self.hi[0])


class MedianPruner(BasePruner):
    """Stop a trial whose best value so far is worse than the median of the others' at that step.

    A fold over ``study.reports_since``: each step keeps a running median of the
    (non-NaN) values reported at that step by earlier reports; a report at ``step``
    prunes its trial when ``step >= n_warmup_steps``, at least ``n_startup_trials``
    values are recorded at that step, and the trial's best value so far (NaN: worst)
    is strictly worse than that median.  Costs O(log n) per report.

    Parameters
    ----------
    n_startup_trials : int
        Values needed at a step before it can prune.
    n_warmup_steps : int
        Steps below this never prune.
    """

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0) -> None:
        for name, v in (("n_startup_trials", n_startup_trials), ("n_warmup_steps", n_warmup_steps)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self._owner: Any = None
        self._reset(1.0)

    def __repr__(self) -> str:
        return (f"MedianPruner(n_startup_trials={self.n_startup_trials}, "
                f"n_warmup_steps={self.n_warmup_steps})")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_owner"] = None
        return state

    def _reset(self, sign: float) -> None:
        self._sign = sign
        self._cursor = 0
        self._steps: dict[int, _RunningMedian] = {}
        self._best: dict[int, float] = {}
        self._pruned: set[int] = set()

    def _fold(self, number: int, step: int, value: float) -> None:
        v = self._sign * value  # minimize v
        prev = self._best.get(number)
        best = v if prev is None or (not math.isnan(v) and (math.isnan(prev) or v < prev)) else prev
        self._best[number] = best
        med = self._steps.get(step)
        if (number not in self._pruned and step >= self.n_warmup_steps and med is not None
                and len(med) >= self.n_startup_trials and len(med) > 0
                and (math.isnan(best) or best > med.median())):
            self._pruned.add(number)
        if not math.isnan(v):
            if med is None:
                med = self._steps[step] = _RunningMedian()
            med.push(v)

    def on_report(self, study: "Study", number: int, step: int, value: float) -> bool:
        if self._owner is not study:
            dirs = list(getattr(study, "directions", ["minimize"]))
            if len(dirs) != 1:
                raise ValueError(f"MedianPruner needs a single-objective study, got directions={dirs}")
            self._reset(1.0 if dirs[0] == "minimize" else -1.0)
            self._owner = study
        reports, self._cursor = study.reports_since(self._cursor)
        for t, s, v in reports:
            self._fold(t, s, v)
        return number in self._pruned
