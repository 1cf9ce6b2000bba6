"""Random search: independent uniform draws, keyed by (seed, trial number)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpcore._kernels.random_config import RandomDecoder
from hpcore.samplers.base import BaseSampler

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.space import Space
    from hpcore.study import Study

__all__ = ["RandomSampler"]


def random_decoder(space: "Space") -> RandomDecoder:
    """The compiled ``space.decode_random`` (built from the space's plan, kept on the
    space: a space does not change after it is made)."""
    dec = space.__dict__.get("_random_decoder_cache")
    if dec is None:
        dec = RandomDecoder(space._random_plan, len(space),
                            None if space._order_is_params else list(space.params))
        space.__dict__["_random_decoder_cache"] = dec
    return dec


class RandomSampler(BaseSampler):
    """Uniform random search (log-uniform on log scales), respecting conditions.

    Trial ``n`` draws from random stream ``n`` of ``seed``, so the same seed gives the
    same configurations whatever the number of workers or the order they finish in.
    The configuration is ``space.decode_random(uniform_row(seed, n, len(space)))``,
    computed in one compiled call (:class:`~hpcore._kernels.random_config.RandomDecoder`).
    """

    supports_multi_objective = True

    def sample(self, study: "Study", number: int) -> dict[str, Any]:
        space = study.space
        dec = space.__dict__.get("_random_decoder_cache")
        if dec is None:
            dec = random_decoder(space)
        return dec.sample(self.seed, number)
