"""Counter-based random streams (see ``_kernels/rng.pxd``)."""
from __future__ import annotations

import numpy as np

from hpcore._kernels import rng as _rng

_MAX = 2 ** 62


def _check(seed, n_streams, n_per_stream, stream_offset) -> None:
    for name, v in (("seed", seed), ("n_streams", n_streams), ("n_per_stream", n_per_stream),
                    ("stream_offset", stream_offset)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if not 0 <= v < (2 ** 64 if name == "seed" else _MAX):
            raise ValueError(f"{name} must be in [0, {'2**64' if name == 'seed' else '2**62'}), "
                             f"got {v}")
    if int(n_streams) * int(n_per_stream) > _MAX:
        raise ValueError(f"n_streams * n_per_stream = {int(n_streams) * int(n_per_stream)} "
                         "numbers is too many")


def uniform_streams(seed: int, n_streams: int, n_per_stream: int, *, stream_offset: int = 0,
                    n_threads: int | None = None) -> np.ndarray:
    """Uniform [0, 1) numbers; row ``i`` is stream ``stream_offset + i`` of ``seed``.

    The result does not depend on ``n_threads``.
    """
    _check(seed, n_streams, n_per_stream, stream_offset)
    return _rng.uniform_streams(seed, n_streams, n_per_stream, stream_offset, n_threads)


def normal_streams(seed: int, n_streams: int, n_per_stream: int, *, stream_offset: int = 0,
                   n_threads: int | None = None) -> np.ndarray:
    """Standard normal numbers; row ``i`` is stream ``stream_offset + i`` of ``seed``."""
    _check(seed, n_streams, n_per_stream, stream_offset)
    return _rng.normal_streams(seed, n_streams, n_per_stream, stream_offset, n_threads)
