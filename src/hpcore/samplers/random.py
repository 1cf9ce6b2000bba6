"""Random search: independent uniform draws, keyed by (seed, trial number)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpcore._kernels.rng import uniform_row
from hpcore.samplers.base import BaseSampler

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["RandomSampler"]


class RandomSampler(BaseSampler):
    """Uniform random search (log-uniform on log scales), respecting conditions.

    Trial ``n`` draws from random stream ``n`` of ``seed``, so the same seed gives the
    same configurations whatever the number of workers or the order they finish in.
    """

    supports_multi_objective = True

    def sample(self, study: "Study", number: int) -> dict[str, Any]:
        u = uniform_row(self.seed, number, len(study.space))
        return study.space.decode_random(u)
