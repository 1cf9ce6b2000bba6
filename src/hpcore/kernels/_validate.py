"""Input checks shared by the kernel wrappers: each error names the argument."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["real_array"]


def real_array(a: Any, name: str, ndim: int, last: int | None = None, *,
               finite: bool = True) -> np.ndarray:
    """``a`` as a C-contiguous float64 array of ``ndim`` dimensions (all finite unless
    ``finite=False``, for callers that check values themselves).

    ``last`` (optional) is the required size of the last axis (columns of a matrix,
    length of a vector).  Raises ``TypeError`` for non-numeric input and
    ``ValueError`` for a wrong shape or NaN/inf, naming ``name``.
    """
    try:
        arr = np.asarray(a)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is a type error
        raise TypeError(f"{name} must be array-like: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if last is not None and arr.shape[-1] != last:
        what = f"length {last}" if ndim == 1 else f"{last} columns"
        raise ValueError(f"{name} must have {what}, got {arr.shape[-1]}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
