"""The sampler interface.

A sampler turns the study's history into the next configuration.  It reads what it
needs from the study (``study.space``, ``study.directions``,
``study.completed_trials()``, ``study.running_trials()``, ``study.trial_by_number(n)``
where the study has it); anything it caches must be derivable from those, so that a
resumed study continues where it was.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["BaseSampler", "StudyExhausted", "check_seed"]


class StudyExhausted(Exception):
    """Raised by a sampler that has nothing left to propose (a finished grid)."""


def check_seed(seed: Any) -> int:
    """Validate a seed; ``None`` draws one from the OS."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2 ** 63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed) % (2 ** 64)


class BaseSampler(ABC):
    """Base class of samplers.

    Subclasses implement :meth:`sample`.  ``supports_multi_objective`` says whether a
    study with several directions is accepted.
    """

    supports_multi_objective: bool = False

    def __init__(self, seed: int | None = None) -> None:
        self.seed = check_seed(seed)

    #: Trials the running :meth:`Study.optimize` call will start (``None``: unknown, e.g.
    #: a time budget or plain ask/tell); set through :meth:`set_budget`.
    n_trials_budget: int | None = None

    def set_budget(self, n_trials: int | None) -> None:
        """Hook: :meth:`Study.optimize` tells the sampler how many trials it will start
        before asking for the first (``None`` when unknown).  Samplers that size
        something from the budget (GeneticSampler's default population) read
        :attr:`n_trials_budget`; others ignore it."""
        if n_trials is not None and (isinstance(n_trials, bool)
                                     or not isinstance(n_trials, (int, np.integer))
                                     or n_trials < 0):
            raise ValueError(f"n_trials must be an int >= 0 or None, got {n_trials!r}")
        self.n_trials_budget = None if n_trials is None else int(n_trials)

    def check_study(self, study: "Study") -> None:
        """Refuse a study this sampler cannot serve (called when the study is made)."""
        if len(study.directions) > 1 and not self.supports_multi_objective:
            raise ValueError(f"{type(self).__name__} is single-objective; this study has "
                             f"{len(study.directions)} objectives (use GeneticSampler (NSGA-II), "
                             "RandomSampler, QMCSampler or GridSampler)")

    @abstractmethod
    def sample(self, study: "Study", number: int) -> dict[str, Any]:
        """Return the configuration for trial ``number`` of ``study``.

        Must be a valid configuration of ``study.space`` (``space.decode`` of a point of
        the unit cube always is).  Raise :class:`StudyExhausted` when there is nothing
        left to propose.
        """

    def sample_batch(self, study: "Study", numbers: Sequence[int]) -> list[dict[str, Any]]:
        """Return the configurations of trials ``numbers`` (RUNNING, created together by
        :meth:`Study.ask_batch`, their params not stored yet), in that order.

        The default calls :meth:`sample` for each number.  When the sampler runs out
        part-way it returns the configurations made so far (:class:`StudyExhausted`
        only when there is none).  Samplers override this to share work across the
        batch (one model fit, one mating round); a sampler that looks at pending trials
        must then account for the batch's earlier configurations itself, since they are
        stored only after this returns.
        """
        out: list[dict[str, Any]] = []
        for number in numbers:
            try:
                out.append(self.sample(study, int(number)))
            except StudyExhausted:
                if not out:
                    raise
                break
        return out

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this sampler, JSON-serializable.

        A study stores them (with the class) so that :func:`hpcore.load_study` resumes
        with the same algorithm.  The default reads each argument of ``__init__`` back
        from the attribute of the same name (``seed`` is the seed in use, so a seed drawn
        from the OS is kept too); override when a class stores its arguments otherwise.
        """
        from hpcore._persist import constructor_params

        return constructor_params(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"
