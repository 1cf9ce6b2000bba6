"""Counter-based random streams (see ``_kernels/rng.pxd``)."""
from __future__ import annotations

import numpy as np

from hpcore._kernels import rng as _rng


def uniform_streams(seed: int, n_streams: int, n_per_stream: int, *, stream_offset: int = 0,
                    n_threads: int | None = None) -> np.ndarray:
    """Uniform [0, 1) numbers; row ``i`` is stream ``stream_offset + i`` of ``seed``.

    The result does not depend on ``n_threads``.
    """
    return _rng.uniform_streams(seed, n_streams, n_per_stream, stream_offset, n_threads)


def normal_streams(seed: int, n_streams: int, n_per_stream: int, *, stream_offset: int = 0,
                   n_threads: int | None = None) -> np.ndarray:
    """Standard normal numbers; row ``i`` is stream ``stream_offset + i`` of ``seed``."""
    return _rng.normal_streams(seed, n_streams, n_per_stream, stream_offset, n_threads)
