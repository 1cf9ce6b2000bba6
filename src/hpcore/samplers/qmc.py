"""Quasi-random search: scrambled Sobol, Halton or Latin hypercube (``scipy.stats.qmc``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from hpcore.samplers.base import BaseSampler

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["QMCSampler"]

_METHODS = ("sobol", "halton", "lhs")


class QMCSampler(BaseSampler):
    """Low-discrepancy sampling of the search space.

    Trial ``n`` takes point ``n`` of one scrambled sequence fixed by ``seed`` (Sobol,
    Halton), or point ``n % block`` of Latin-hypercube block ``n // block`` (each block
    of ``block`` consecutive trials is a Latin hypercube of its own).  Points are
    generated a block at a time and cached; the cache is a pure function of the seed,
    so a resumed study continues the same sequence.

    Parameters
    ----------
    method : {"sobol", "halton", "lhs"}
    seed : int, optional
    block : int
        Points generated at once (Sobol: a power of two keeps the balance properties).
    """

    supports_multi_objective = True

    def __init__(self, method: str = "sobol", seed: int | None = None, block: int = 256) -> None:
        super().__init__(seed)
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 2:
            raise ValueError(f"block must be an int >= 2, got {block!r}")
        if method == "sobol" and block & (block - 1):
            raise ValueError(f"block must be a power of two for Sobol, got {block}")
        self.method = method
        self.block = int(block)
        self._blocks: dict[int, np.ndarray] = {}
        self._engine = None
        self._engine_next = 0
        self._d = None

    def __repr__(self) -> str:
        return f"QMCSampler(method={self.method!r}, seed={self.seed})"

    def _make_engine(self, d: int):
        from scipy.stats import qmc  # scipy.stats is slow to import: only when used

        rng = np.random.default_rng(self.seed)
        if self.method == "sobol":
            return qmc.Sobol(d, scramble=True, rng=rng)
        if self.method == "halton":
            return qmc.Halton(d, scramble=True, rng=rng)
        return None

    def _block(self, k: int, d: int) -> np.ndarray:
        pts = self._blocks.get(k)
        if pts is not None:
            return pts
        if self.method == "lhs":
            from scipy.stats import qmc

            pts = qmc.LatinHypercube(d, rng=np.random.default_rng([self.seed, k])).random(self.block)
        else:
            if self._engine is None or self._d != d or k < self._engine_next:
                self._engine, self._engine_next, self._d = self._make_engine(d), 0, d
            if k > self._engine_next:
                self._engine.fast_forward((k - self._engine_next) * self.block)
            pts = self._engine.random(self.block)
            self._engine_next = k + 1
        if len(self._blocks) > 64:  # bounded memory on long studies
            self._blocks.pop(next(iter(self._blocks)))
        self._blocks[k] = pts
        return pts

    def sample(self, study: "Study", number: int) -> dict[str, Any]:
        d = len(study.space)
        pts = self._block(number // self.block, d)
        return study.space.decode_random(pts[number % self.block])
