"""Grid search: every combination of a finite space, in a seeded shuffled order."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from hpcore.samplers.base import BaseSampler, StudyExhausted

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["GridSampler"]


class GridSampler(BaseSampler):
    """Exhaustive search over a grid.

    The ``k``-th trial the sampler is asked for evaluates grid point ``perm[k]`` of a
    permutation fixed by ``seed``, where ``k`` counts the trials numbered below it
    whose configuration the sampler chose (:attr:`~hpcore.trial.FrozenTrial.sampled`):
    trials created with their configuration (``ask(params=...)``, re-runs of failed
    trials, enqueued and imported trials) take a trial number but no grid point, so
    the grid is still covered.  Trial numbers are unique across workers and processes
    sharing a storage and keep counting after a resume, and whether a trial is
    sampled is stored when it is created, so every process computes the same ``k``
    and no grid point is handed out twice; the study stops when every point has been
    handed out.  Each process walks the trial numbers once (O(1) amortized per ask).
    An enqueued configuration that is also a grid point is evaluated twice.

    Parameters
    ----------
    values : mapping of name to list, optional
        Explicit grid values per parameter.
    n_points : int, optional
        Points for continuous Floats (log-spaced on a log scale) and the most values
        an Int contributes.  Continuous Floats need ``values`` or ``n_points``.
    seed : int, optional
        Seed of the shuffled order (``shuffle=False`` keeps the natural order).  The
        default is 0, not a random seed: processes sharing one study must agree on
        the order, or they would repeat some points and skip others.
    """

    supports_multi_objective = True

    def __init__(self, values: Mapping[str, Sequence[Any]] | None = None, n_points: int | None = None,
                 seed: int | None = 0, shuffle: bool = True) -> None:
        if seed is None:
            raise ValueError("seed: GridSampler needs a fixed seed (workers sharing a study "
                             "must agree on the order); give an int")
        super().__init__(seed)
        self.values = values
        self.n_points = n_points
        self.shuffle = shuffle
        self._grid: list[dict[str, Any]] | None = None
        self._perm: np.ndarray | None = None
        self._space_id: int | None = None
        self._walk: tuple[Any, int, int] = (None, 0, 0)   # (study key, next number, sampled below)

    def grid(self, study: "Study") -> list[dict[str, Any]]:
        """The grid of ``study``'s space, in the natural order."""
        if self._grid is None or self._space_id != id(study.space):
            self._grid = study.space.grid(self.values, self.n_points)
            n = len(self._grid)
            self._perm = (np.random.default_rng(self.seed).permutation(n) if self.shuffle
                          else np.arange(n))
            self._space_id = id(study.space)
        return self._grid

    def check_study(self, study: "Study") -> None:
        super().check_study(study)
        self.grid(study)  # raise now, naming the parameter, if the space is not finite

    def __len__(self) -> int:
        if self._grid is None:
            raise ValueError("the grid is known once the sampler is attached to a study")
        return len(self._grid)

    def position(self, study: "Study", number: int) -> int:
        """The grid position of trial ``number``: how many trials numbered below it the
        sampler made (walked from where the last call stopped)."""
        lookup = getattr(study, "trial_by_number", None)
        if lookup is None:       # a view without trial lookup (an Optuna study's): numbers
            return number
        key, at, k = self._walk
        if key != (study.name, id(study.space)) or number < at:
            key, at, k = (study.name, id(study.space)), 0, 0
        for m in range(at, number):
            t = lookup(m)
            if t is not None and t.sampled:
                k += 1
        self._walk = (key, number, k)
        return k

    def sample(self, study: "Study", number: int) -> dict[str, Any]:
        grid = self.grid(study)
        k = self.position(study, number)
        if k >= len(grid):
            raise StudyExhausted(f"all {len(grid)} grid points have been handed out")
        return dict(grid[int(self._perm[k])])
