"""Thread-count helpers shared by every kernel wrapper."""
from hpcore._kernels._openmp import effective_n_threads, openmp_enabled

__all__ = ["effective_n_threads", "openmp_enabled"]
