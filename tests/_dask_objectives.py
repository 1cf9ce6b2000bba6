"""Module-level objectives for tests/test_dask_practice.py (Dask workers import them)."""
from __future__ import annotations

import os

import numpy as np

#: How often a Blob was unpickled in this process.
LOADS = {"n": 0}


class Blob:
    """Data an objective captures; counts its unpickling per process."""

    def __init__(self, n: int) -> None:
        self.data = np.arange(n, dtype=np.float64)

    def __getstate__(self):
        return {"data": self.data}

    def __setstate__(self, state):
        LOADS["n"] += 1
        self.data = state["data"]


class DataObjective:
    """An objective holding a data set (as a fitted-model objective holds X, y)."""

    def __init__(self, n: int) -> None:
        self.blob = Blob(n)

    def __call__(self, trial) -> float:
        trial.set_user_attr("pid", os.getpid())
        return float(trial.params["x"]) + float(self.blob.data[:3].sum())


def loads() -> int:
    return LOADS["n"]


def thread_report(trial) -> float:
    """Records the thread pools' sizes (threadpoolctl) and our kernels' default thread
    count inside the trial."""
    from threadpoolctl import threadpool_info

    from hpcore.kernels import effective_n_threads

    trial.set_user_attr("pools", sorted((p["internal_api"], p["num_threads"])
                                        for p in threadpool_info()))
    trial.set_user_attr("kernel_threads", effective_n_threads())
    trial.set_user_attr("pid", os.getpid())
    return float(trial.params["x"])
