"""pytest-benchmark: ask+tell overhead of hpcore vs Optuna (RandomSampler), small n.

Each benchmark round runs ``N`` ask+tell cycles on a fresh study (the study is made in
the untimed setup), so the reported time divided by ``N_MEM`` / ``N_SQL`` (the same
for both libraries within a group) is the cost per trial.  The
full comparison at 1,000 and 10,000 trials is ``bench/bench_overhead.py``.
"""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_overhead as bo  # noqa: E402
import hpcore as hp  # noqa: E402

pytest.importorskip("pytest_benchmark")
optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

N_MEM = 200  # trials per round in memory
N_SQL = 20   # trials per round with SQLite (Optuna's costs tens of ms per trial)


def _hpcore_loop(study: hp.Study, n: int) -> None:
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, bo.objective_value(trial.params))


def _optuna_loop(study, n: int) -> None:
    dists = bo.optuna_distributions()
    for _ in range(n):
        trial = study.ask(dists)
        if trial.params["optimizer"] == "sgd":
            trial.suggest_float("momentum", 0.0, 0.99)
        study.tell(trial, bo.objective_value(trial.params))


def _run(benchmark, setup, loop, n: int, rounds: int = 5) -> None:
    benchmark.extra_info["trials_per_round"] = n
    benchmark.pedantic(loop, setup=lambda: ((setup(), n), {}), rounds=rounds, iterations=1)


@pytest.mark.benchmark(group="ask+tell overhead: memory")
def test_hpcore_memory(benchmark):
    _run(benchmark, lambda: hp.Study(bo.hpcore_space(), sampler=hp.RandomSampler(seed=0)),
         _hpcore_loop, N_MEM)


@pytest.mark.benchmark(group="ask+tell overhead: memory")
def test_optuna_memory(benchmark):
    _run(benchmark, lambda: optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)),
         _optuna_loop, N_MEM)


@pytest.mark.benchmark(group="ask+tell overhead: SQLite")
def test_hpcore_sqlite(benchmark, tmp_path):
    count = iter(range(10**6))
    _run(benchmark,
         lambda: hp.Study(bo.hpcore_space(), sampler=hp.RandomSampler(seed=0),
                          storage=f"sqlite:///{tmp_path}/hp{next(count)}.db"),
         _hpcore_loop, N_SQL, rounds=10)


@pytest.mark.benchmark(group="ask+tell overhead: SQLite")
def test_optuna_sqlite(benchmark, tmp_path):
    count = iter(range(10**6))
    _run(benchmark,
         lambda: optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0),
                                     storage=f"sqlite:///{tmp_path}/op{next(count)}.db"),
         _optuna_loop, N_SQL, rounds=3)
