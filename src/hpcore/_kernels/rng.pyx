"""Python access to the counter-based random streams of ``rng.pxd``.

Row ``i`` of every result is stream ``stream_offset + i`` of ``seed``; rows are filled
in parallel, and the numbers do not depend on ``n_threads``.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport uint64_t

from hpcore._kernels._openmp cimport effective_n_threads
from hpcore._kernels.rng cimport Rng, rng_init, rng_uniform, rng_normal

cnp.import_array()


cdef void _fill(double* out, Py_ssize_t n, uint64_t seed, uint64_t stream, bint normal) noexcept nogil:
    # The generator state lives on this call's stack: private to the calling thread.
    cdef Rng r
    cdef Py_ssize_t j
    rng_init(&r, seed, stream)
    if normal:
        for j in range(n):
            out[j] = rng_normal(&r)
    else:
        for j in range(n):
            out[j] = rng_uniform(&r)


def _check(seed, n_streams, n_per_stream, stream_offset):
    for name, v in (("seed", seed), ("n_streams", n_streams), ("n_per_stream", n_per_stream),
                    ("stream_offset", stream_offset)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    if seed >= 2 ** 64 or stream_offset >= 2 ** 64:
        raise ValueError("seed and stream_offset must be < 2**64")


cdef object _streams(seed, Py_ssize_t n_streams, Py_ssize_t n_per_stream, stream_offset,
                     n_threads, bint normal):
    _check(seed, n_streams, n_per_stream, stream_offset)
    out = np.empty((n_streams, n_per_stream), dtype=np.float64)
    cdef double[:, ::1] o = out
    cdef uint64_t s = <uint64_t>int(seed), off = <uint64_t>int(stream_offset)
    cdef int nt = effective_n_threads(n_threads)
    cdef Py_ssize_t i
    if n_per_stream == 0:
        return out
    for i in prange(n_streams, nogil=True, schedule="static", num_threads=nt):
        _fill(&o[i, 0], n_per_stream, s, off + <uint64_t>i, normal)
    return out


def uniform_streams(seed, Py_ssize_t n_streams, Py_ssize_t n_per_stream,
                    stream_offset=0, n_threads=None):
    """Uniform [0, 1) draws, shape ``(n_streams, n_per_stream)``."""
    return _streams(seed, n_streams, n_per_stream, stream_offset, n_threads, 0)


def normal_streams(seed, Py_ssize_t n_streams, Py_ssize_t n_per_stream,
                   stream_offset=0, n_threads=None):
    """Standard normal draws, shape ``(n_streams, n_per_stream)``."""
    return _streams(seed, n_streams, n_per_stream, stream_offset, n_threads, 1)


def uniform_row(uint64_t seed, uint64_t stream, Py_ssize_t n):
    """One stream's first ``n`` uniforms as a 1-d array (the per-trial fast path)."""
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    if n > 0:
        _fill(&o[0], n, seed, stream, 0)
    return out
