"""Optuna's own sampler test classes (``optuna.testing.pytest_samplers``) against the adapter.

Optuna 5.0 ships four classes there: ``BasicSamplerTestCase``,
``RelativeSamplerTestCase``, ``MultiObjectiveSamplerTestCase`` and
``SingleOnlySamplerTestCase`` (no seeded class: reproducibility is checked in
``test_integration_optuna.py``).  Each wrapped sampler runs every class that applies:

- BayesSampler (single objective): basic, relative, single-only (a multi-objective
  study raises ValueError); not multi-objective (it is single-objective).
- GeneticSampler, QMCSampler, RandomSampler: basic, relative, multi-objective; not
  single-only (they serve several objectives).

Small start-up designs (``n_startup_trials=1``, ``population_size=2``) so that the
suites' few trials reach the GP and the genetic operators, not only the start-up points.
"""
from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")
pytest_samplers = pytest.importorskip("optuna.testing.pytest_samplers")

import hpcore as hp  # noqa: E402
from hpcore.integrations.optuna import as_optuna_sampler  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

Basic = pytest_samplers.BasicSamplerTestCase
Relative = pytest_samplers.RelativeSamplerTestCase
MultiObjective = pytest_samplers.MultiObjectiveSamplerTestCase
SingleOnly = pytest_samplers.SingleOnlySamplerTestCase


class TestBayes(Basic, Relative, SingleOnly):
    @pytest.fixture
    def sampler(self):
        return lambda: as_optuna_sampler(hp.BayesSampler(n_startup_trials=1, seed=0))


class TestGenetic(Basic, Relative, MultiObjective):
    @pytest.fixture
    def sampler(self):
        return lambda: as_optuna_sampler(hp.GeneticSampler(population_size=2, seed=0))


class TestQMC(Basic, Relative, MultiObjective):
    @pytest.fixture
    def sampler(self):
        return lambda: as_optuna_sampler(hp.QMCSampler(seed=0))


class TestRandom(Basic, Relative, MultiObjective):
    @pytest.fixture
    def sampler(self):
        return lambda: as_optuna_sampler(hp.RandomSampler(seed=0))
