"""Samplers: how the next configuration is chosen."""
from hpcore.samplers.base import BaseSampler, StudyExhausted
from hpcore.samplers.bayes import BayesSampler
from hpcore.samplers.genetic import GeneticSampler
from hpcore.samplers.grid import GridSampler
from hpcore.samplers.qmc import QMCSampler
from hpcore.samplers.random import RandomSampler

__all__ = ["BaseSampler", "BayesSampler", "GeneticSampler", "GridSampler", "QMCSampler",
           "RandomSampler", "StudyExhausted"]
