"""Module-level objectives and samplers for tests/test_deterministic.py (spawned and
Dask workers import this module)."""
from __future__ import annotations

import os
import random
import time

import hpcore as hp
from hpcore.samplers.base import BaseSampler


def space() -> hp.Space:
    return hp.Space({"x": hp.Float(-1.0, 1.0), "y": hp.Float(1e-3, 1.0, log=True),
                     "k": hp.Int(0, 4), "c": hp.Categorical(["a", "b", "c"])})


def shuffled_quadratic(trial) -> float:
    """A value that depends only on the parameters, after a sleep of 0-40 ms drawn
    from the OS (not from the trial), so trials finish in an arbitrary order."""
    time.sleep(random.Random(os.urandom(8)).uniform(0.0, 0.04))
    p = trial.params
    return ((p["x"] - 0.3) ** 2 + (p["y"] - 0.05) ** 2 + 0.05 * p["k"]
            + {"a": 0.0, "b": 0.1, "c": 0.2}[p["c"]])


class RecordingSampler(BaseSampler):
    """Random proposals; records, per trial, what the sampler was shown and what the
    real study held at that moment."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.seen: dict[int, tuple] = {}
        self._random = hp.RandomSampler(seed=seed)

    def sample(self, study, number):
        real = getattr(study, "study", study)
        still_running = sorted(t.number for t in real.running_trials() if t.number != number)
        self.seen[number] = ([t.number for t in study.completed_trials()],
                             [t.number for t in study.running_trials()],
                             still_running)
        return self._random.sample(study, number)
