"""Module-level objectives for the executor tests (spawned and Dask workers import them)."""
from __future__ import annotations

import math
import os
import time

import hpcore as hp

N_STEPS = 5


def space() -> hp.Space:
    return hp.Space({"x": hp.Float(-1.0, 1.0), "k": hp.Int(1, 8),
                     "c": hp.Categorical(["a", "b", "c"])})


def quadratic(trial) -> float:
    """A smooth objective; tags the trial with the worker's pid."""
    p = trial.params
    trial.set_user_attr("pid", os.getpid())
    return (p["x"] - 0.25) ** 2 + 0.01 * p["k"] + {"a": 0.0, "b": 0.1, "c": 0.2}[p["c"]]


def reporting(trial) -> float:
    """Reports x * step for steps 1..N_STEPS and stops when the pruner says so."""
    value = 0.0
    for step in range(1, N_STEPS + 1):
        value = trial.params["x"] * step
        trial.report(step, value)
        if trial.should_prune():
            raise hp.TrialPruned()
    return value


def mixed(trial) -> float:
    """Trial n: n % 4 == 1 raises, n % 4 == 2 returns NaN, otherwise a number."""
    n = trial.number
    if n % 4 == 1:
        raise ValueError(f"boom in trial {n}")
    if n % 4 == 2:
        return math.nan
    return float(n)


def slow_grid(trial) -> float:
    """A grid objective that takes a little time, so that processes interleave."""
    trial.set_user_attr("pid", os.getpid())
    time.sleep(0.01)
    return float(trial.params["i"]) + 0.5 * len(trial.params["s"])


def grid_space() -> hp.Space:
    return hp.Space({"i": hp.Int(0, 9), "s": hp.Categorical(["a", "bb", "ccc"])})


def worker_identity(trial) -> float:
    """Records which process, report connection and thread limit ran the trial."""
    reporter = getattr(trial._reporter, "__self__", None)
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("reporter", id(reporter))
    trial.set_user_attr("omp", os.environ.get("OMP_NUM_THREADS"))
    for step in range(3):
        time.sleep(0.01)
        trial.report(step, trial.params["x"] + step)
    return trial.params["x"]


def crash_on_two(trial) -> float:
    """Kills its worker process at trial 2 (a segfault or OOM kill looks the same)."""
    if trial.number == 2:
        os._exit(3)
    return trial.params["x"]
