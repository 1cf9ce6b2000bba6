"""OpenMP helpers: whether OpenMP is compiled in, and how many threads a kernel uses."""
import os


def openmp_enabled() -> bool:
    """True when the kernels were compiled with OpenMP."""
    return bool(HP_OPENMP_ENABLED)


def _cpu_count() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, n)


cpdef int effective_n_threads(object n_threads=None) except -1:
    """Number of threads a kernel will use for ``n_threads``.

    ``None``, ``0`` or ``-1`` mean all cores: OpenMP's default (which honours
    ``OMP_NUM_THREADS``), capped by the CPUs this process may run on.  ``-k`` for
    ``k > 1`` means all cores but ``k - 1`` (joblib's convention).  Without OpenMP the
    answer is always 1.
    """
    cdef int n, n_cpu
    if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int)):
        if not (hasattr(n_threads, "__index__") and not isinstance(n_threads, bool)):
            raise TypeError(f"n_threads must be an int or None, got {type(n_threads).__name__}")
        n_threads = int(n_threads)
    if not HP_OPENMP_ENABLED:
        return 1
    n_cpu = _cpu_count()
    if n_threads is None or n_threads == 0 or n_threads == -1:
        if "OMP_NUM_THREADS" in os.environ:
            return max(1, omp_get_max_threads())
        return max(1, min(omp_get_max_threads(), n_cpu))
    n = n_threads
    if n > 0:
        return n
    return max(1, n_cpu + 1 + n)


def set_num_threads(int n):
    """Set OpenMP's default thread count for this process (no-op without OpenMP)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if HP_OPENMP_ENABLED:
        omp_set_num_threads(n)
