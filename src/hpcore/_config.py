"""Build and runtime configuration: version, OpenMP, thread count."""
from __future__ import annotations

import sys

from hpcore._version import __version__

__all__ = ["__version__", "show_config"]


def show_config(file=None) -> dict:
    """Print (and return) the version, whether OpenMP is on and the kernels' thread count."""
    from hpcore._kernels import _openmp

    info = {
        "version": __version__,
        "python": sys.version.split()[0],
        "openmp": _openmp.openmp_enabled(),
        "n_threads": _openmp.effective_n_threads(None),
    }
    try:
        import numpy as np
        import scipy

        info["numpy"] = np.__version__
        info["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover - numpy/scipy are hard dependencies
        pass
    out = file if file is not None else sys.stdout
    for key, value in info.items():
        print(f"{key:>10}: {value}", file=out)
    return info
