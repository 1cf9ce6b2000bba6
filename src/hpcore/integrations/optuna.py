"""hpcore's samplers and pruners inside an unchanged Optuna study.

>>> import optuna, hpcore as hp
>>> from hpcore.integrations.optuna import as_optuna_sampler, as_optuna_pruner
>>> study = optuna.create_study(sampler=as_optuna_sampler(hp.BayesSampler(seed=0)),
...                             pruner=as_optuna_pruner(hp.ASHA(1, 27, eta=3)))

Samplers
--------
:func:`as_optuna_sampler` wraps a :class:`~hpcore.BayesSampler`,
:class:`~hpcore.GeneticSampler` (one or several objectives), :class:`~hpcore.QMCSampler`
or :class:`~hpcore.RandomSampler` as an ``optuna.samplers.BaseSampler``:

- *relative sampling* over Optuna's intersection search space
  (``optuna.search_space.IntersectionSearchSpace``, without single-valued
  distributions), converted to an :class:`hpcore.Space` (Float/Int/Categorical with
  their log scales and steps);
- the hpcore sampler reads the Optuna trials through the sampler protocol of
  :mod:`hpcore.samplers.base` (``space``, ``directions``, ``completed_trials()``,
  ``running_trials()``): a :class:`StudyView` fed incrementally, so each suggestion
  converts only the Optuna trials that changed since the previous one (the trials
  below the first unfinished number are never looked at again).  RUNNING trials are
  pending evaluations (the BayesSampler fantasizes them): their relative parameters
  are stored in the trial's system attributes (``hpcore:relative_params``) so other
  threads and processes see them before they are suggested;
- *independent sampling* for every other parameter: a uniform draw keyed by
  ``(seed, trial number, parameter name)`` (log scales and steps respected).

Every draw is a function of the hpcore sampler's seed and the Optuna trial number, so
the same seed gives the same trials, and threads or processes sharing a study (each
trial has its own number) never repeat each other's draws; ``reseed_rng`` therefore
has nothing to reseed (as for Optuna's own ``QMCSampler``, whose sequence must stay
the same in every worker).

Pruners
-------
:func:`as_optuna_pruner` wraps :class:`~hpcore.ASHA`, :class:`~hpcore.Hyperband`,
:class:`~hpcore.SuccessiveHalving` or :class:`~hpcore.MedianPruner`: each
``trial.should_prune()`` feeds the intermediate values reported in the Optuna study
since the previous call (every trial's, in trial then step order) to the hpcore pruner
through the pruner protocol of :mod:`hpcore.pruners.base` (``reports_since``), then
returns its verdict on the trial's last report.  Optuna's report steps are the
pruners' resources.

Optuna is optional: ``pip install "hpcore[optuna]"``.
"""
from __future__ import annotations

import json
import math
import threading
import zlib
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

try:
    import optuna
    from optuna.distributions import (BaseDistribution, CategoricalDistribution,
                                      FloatDistribution, IntDistribution)
    from optuna.trial import TrialState as _OptunaState
except ImportError as _exc:  # pragma: no cover - exercised without optuna installed
    raise ImportError("hpcore.integrations.optuna needs optuna: pip install 'hpcore[optuna]' "
                      "(or pip install optuna)") from _exc

from hpcore.pruners.base import BasePruner as _HPPruner
from hpcore.samplers.base import BaseSampler as _HPSampler
from hpcore.samplers.base import StudyExhausted
from hpcore.space import Categorical, Distribution, Float, Int, Space
from hpcore.trial import FrozenTrial, TrialState

if TYPE_CHECKING:  # pragma: no cover
    from optuna.study import Study as OptunaStudy
    from optuna.trial import FrozenTrial as OptunaFrozenTrial

__all__ = ["HPCoreOptunaPruner", "HPCoreOptunaSampler", "StudyView", "as_optuna_pruner",
           "as_optuna_sampler", "to_hpcore_distribution", "to_hpcore_space",
           "to_optuna_distribution"]

#: System-attribute key prefix of the relative parameters proposed for a trial.
RELATIVE_PARAMS_KEY = "hpcore:relative_params"
_ATTR_CHUNK = 2045          # RDBStorage keeps system attributes below 2046 characters
_FINISHED = (_OptunaState.COMPLETE, _OptunaState.PRUNED, _OptunaState.FAIL)


# ------------------------------------------------------------------ distributions
def to_hpcore_distribution(dist: BaseDistribution, name: str = "x") -> Distribution:
    """An Optuna distribution as an hpcore :class:`~hpcore.Float`, :class:`~hpcore.Int`
    or :class:`~hpcore.Categorical` (log scales and steps kept), validated and bound
    to the parameter name ``name`` (errors name it).

    Raises ``ValueError`` for a single-valued numeric distribution (``low == high``,
    which hpcore does not represent: it is not a search dimension) and ``TypeError``
    for anything that is not a Float/Int/Categorical distribution.
    """
    return Space({name: _unbound(dist, name)}).params[name]


def _unbound(dist: BaseDistribution, name: str) -> Distribution:
    if isinstance(dist, (FloatDistribution, IntDistribution)) and dist.low == dist.high:
        raise ValueError(f"parameter {name!r}: {dist} has low == high, a constant, "
                         "not a search dimension")
    if isinstance(dist, FloatDistribution):
        return Float(dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return Int(dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return Categorical(list(dist.choices))
    raise TypeError(f"parameter {name!r}: expected an Optuna Float/Int/CategoricalDistribution, "
                    f"got {type(dist).__name__}")


def to_optuna_distribution(dist: Distribution) -> BaseDistribution:
    """An hpcore parameter (bound in a :class:`~hpcore.Space`, or a fresh one) as an
    Optuna distribution.  Conditions have no Optuna counterpart (``ValueError``)."""
    if getattr(dist, "condition", None):
        raise ValueError(f"parameter {getattr(dist, 'name', '?')!r}: conditions have no Optuna "
                         "distribution (suggest the parameter only when it is active)")
    if isinstance(dist, Float):
        return FloatDistribution(float(dist.low), float(dist.high), log=bool(dist.log),
                                 step=None if dist.step is None else float(dist.step))
    if isinstance(dist, Int):
        return IntDistribution(int(dist.low), int(dist.high), log=bool(dist.log),
                               step=int(dist.step))
    if isinstance(dist, Categorical):
        return CategoricalDistribution(tuple(dist.choices))
    raise TypeError(f"dist must be an hpcore Float, Int or Categorical, got {type(dist).__name__}")


def to_hpcore_space(search_space: Mapping[str, BaseDistribution]) -> Space:
    """An Optuna search space (``{name: distribution}``) as an :class:`hpcore.Space`."""
    if not isinstance(search_space, Mapping) or not search_space:
        raise ValueError("search_space must be a non-empty mapping {name: distribution}")
    return Space({name: _unbound(d, name) for name, d in search_space.items()})


def _py(v: Any) -> Any:
    """NumPy scalars -> Python numbers (Optuna checks the types it is given)."""
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


# ------------------------------------------------------------------ incremental reads
class _Frontier:
    """Which Optuna trials still need looking at: every trial below ``number`` is
    finished and folded in; ``done`` holds the finished, folded trials above it."""

    def __init__(self) -> None:
        self.number = 0
        self.done: set[int] = set()

    def pending(self, trials: Sequence["OptunaFrozenTrial"]) -> Sequence["OptunaFrozenTrial"]:
        """The trials from the frontier on that are not folded in yet (``trials`` as
        Optuna returns them: by number)."""
        start = self.number
        if start < len(trials) and trials[start].number != start:   # not indexed by number
            trials = sorted(trials, key=lambda t: t.number)
            start = next((i for i, t in enumerate(trials) if t.number >= self.number),
                         len(trials))
        return [t for t in trials[start:] if t.number not in self.done]

    def finish(self, number: int) -> None:
        self.done.add(number)

    def advance(self) -> None:
        while self.number in self.done:
            self.done.discard(self.number)
            self.number += 1


# ------------------------------------------------------------------ the sampler view
class StudyView:
    """What an hpcore sampler reads of a study, taken from an Optuna study.

    Implements the sampler protocol of :mod:`hpcore.samplers.base` -- ``space``,
    ``directions``, ``name``, ``pruner``, ``completed_trials()``, ``finished_trials()``,
    ``running_trials()`` -- over one relative search space.  :meth:`update` folds in
    the Optuna trials from the first one not yet finished, so its cost is the number of
    trials that are new or still running, not the size of the study.  Trials keep their
    Optuna numbers (hpcore samplers key their random streams by trial number).

    Parameters
    ----------
    search_space : mapping of str to optuna distribution
        The relative search space (no single-valued distributions).
    directions : list of {"minimize", "maximize"}
    name : str
    """

    pruner = None   # Optuna's pruner is its own business: no multi-fidelity hints

    def __init__(self, search_space: Mapping[str, BaseDistribution], directions: Sequence[str],
                 name: str) -> None:
        self.search_space = dict(search_space)
        self.space = to_hpcore_space(self.search_space)
        self.directions = list(directions)
        self.name = name
        self._completed: list[FrozenTrial] = []
        self._finished: list[FrozenTrial] = []
        self._running: list[FrozenTrial] = []
        self._frontier = _Frontier()
        self.n_converted = 0               # Optuna trials converted so far (for tests)

    def completed_trials(self) -> list[FrozenTrial]:
        """COMPLETE trials (in the order they were seen), params in the search space."""
        return self._completed

    def finished_trials(self) -> list[FrozenTrial]:
        """COMPLETE and PRUNED trials (in the order they were seen)."""
        return self._finished

    def running_trials(self) -> list[FrozenTrial]:
        """RUNNING and WAITING trials whose parameters in the search space are known."""
        return list(self._running)

    def _params(self, t: "OptunaFrozenTrial", finished: bool) -> dict[str, Any] | None:
        """The trial's values of the search space's parameters, or None if it lacks one
        or suggested it from another distribution."""
        if finished:
            src = t.params
            for name, dist in self.search_space.items():
                if t.distributions.get(name) != dist:
                    return None
        else:
            src = dict(t.system_attrs.get("fixed_params") or {})
            src.update(_stored_relative_params(t))
            src.update(t.params)
            for name, dist in t.distributions.items():
                if name in self.search_space and dist != self.search_space[name]:
                    return None
        out = {}
        for name in self.search_space:
            if name not in src or not self.space.params[name].contains(src[name]):
                return None
            out[name] = src[name]
        return out

    def update(self, trials: Sequence["OptunaFrozenTrial"], current: int) -> None:
        """Fold in ``trials`` (an Optuna study's trials, by number) that finished since
        the last call, and take the pending ones anew; ``current`` (the trial being
        sampled) is neither."""
        running: list[FrozenTrial] = []
        for t in self._frontier.pending(trials):
            n = t.number
            if n == current:
                continue
            if t.state in _FINISHED:
                self._frontier.finish(n)
                self.n_converted += 1
                if t.state == _OptunaState.FAIL:
                    continue
                params = self._params(t, True)
                vals = t.values
                if params is None or vals is None or not all(math.isfinite(v) for v in vals):
                    continue
                state = TrialState.COMPLETE if t.state == _OptunaState.COMPLETE else TrialState.PRUNED
                ft = FrozenTrial(number=n, trial_id=n, state=state, params=params,
                                 values=tuple(float(v) for v in vals))
                self._finished.append(ft)
                if state == TrialState.COMPLETE:
                    self._completed.append(ft)
            else:
                params = self._params(t, False)
                if params is not None:
                    running.append(FrozenTrial(number=n, trial_id=n, state=TrialState.RUNNING,
                                               params=params))
        self._running = running
        self._frontier.advance()


def _stored_relative_params(t: "OptunaFrozenTrial") -> dict[str, Any]:
    chunks = []
    i = 0
    while (part := t.system_attrs.get(f"{RELATIVE_PARAMS_KEY}:{i}")) is not None:
        chunks.append(part)
        i += 1
    if not chunks:
        return {}
    try:
        return json.loads("".join(chunks))
    except ValueError:
        return {}


def _uniform(seed: int, number: int, name: str) -> float:
    """A uniform [0, 1) draw keyed by (seed, trial number, parameter name)."""
    key = zlib.crc32(name.encode("utf-8"))
    return float(np.random.default_rng([seed % 2 ** 63, max(number, 0), key]).random())


def _draw(dist: BaseDistribution, u: float) -> Any:
    """The value of ``dist`` at uniform draw ``u`` (hpcore's random-search mapping)."""
    if dist.single():
        if isinstance(dist, CategoricalDistribution):
            return dist.choices[0]
        return dist.low
    if isinstance(dist, CategoricalDistribution):
        k = min(int(u * len(dist.choices)), len(dist.choices) - 1)
        return dist.choices[k]
    return _py(_hp_dist(dist).decode(u))


_DIST_CACHE: dict[BaseDistribution, Distribution] = {}


def _hp_dist(dist: BaseDistribution) -> Distribution:
    """The hpcore counterpart of ``dist``, converted once (distributions are hashable)."""
    out = _DIST_CACHE.get(dist)
    if out is None:
        if len(_DIST_CACHE) > 4096:
            _DIST_CACHE.clear()
        out = _DIST_CACHE[dist] = to_hpcore_distribution(dist)
    return out


# ------------------------------------------------------------------ sampler
class HPCoreOptunaSampler(optuna.samplers.BaseSampler):
    """An hpcore sampler as an Optuna sampler (see :func:`as_optuna_sampler`)."""

    def __init__(self, sampler: _HPSampler) -> None:
        if not isinstance(sampler, _HPSampler):
            raise TypeError(f"sampler must be an hpcore sampler (hpcore.BaseSampler), got "
                            f"{type(sampler).__name__}")
        self.hp_sampler = sampler
        self._lock = threading.RLock()
        self._study: Any = None
        self._intersection: Any = None
        self._view: StudyView | None = None
        self._n_views = 0

    def __repr__(self) -> str:
        return f"as_optuna_sampler({self.hp_sampler!r})"

    def __getstate__(self) -> dict:
        # the view and the intersection cache are rebuilt from the study: never pickled
        return {"hp_sampler": self.hp_sampler}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["hp_sampler"])

    def __str__(self) -> str:
        return f"hpcore:{type(self.hp_sampler).__name__}"

    @property
    def seed(self) -> int:
        """The hpcore sampler's seed (every draw is keyed by it and the trial number)."""
        return self.hp_sampler.seed

    # -- per-study state ---------------------------------------------------------------
    def _check(self, study: "OptunaStudy") -> None:
        if len(study.directions) > 1 and not self.hp_sampler.supports_multi_objective:
            raise ValueError(f"{type(self.hp_sampler).__name__} is single-objective; this "
                             f"Optuna study has {len(study.directions)} objectives (wrap "
                             "GeneticSampler, RandomSampler or QMCSampler instead)")

    def _bind(self, study: "OptunaStudy") -> None:
        if self._study is not study:
            self._study = study
            self._intersection = optuna.search_space.IntersectionSearchSpace()
            self._view = None

    def _view_for(self, study: "OptunaStudy", search_space: dict) -> StudyView:
        view = self._view
        if view is None or view.search_space != search_space:
            dirs = ["minimize" if d == optuna.study.StudyDirection.MINIMIZE else "maximize"
                    for d in study.directions]
            self._n_views += 1
            view = StudyView(search_space, dirs, f"optuna:{study.study_name}:{self._n_views}")
            self.hp_sampler.check_study(view)
            self._view = view
        return view

    # -- optuna.samplers.BaseSampler ---------------------------------------------------
    def infer_relative_search_space(self, study: "OptunaStudy",
                                    trial: "OptunaFrozenTrial") -> dict[str, BaseDistribution]:
        """Optuna's intersection search space, single-valued distributions left out."""
        self._check(study)
        with self._lock:
            self._bind(study)
            space = self._intersection.calculate(study)
        return {name: d for name, d in space.items() if not d.single()}

    def sample_relative(self, study: "OptunaStudy", trial: "OptunaFrozenTrial",
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """The hpcore sampler's configuration of ``search_space`` for ``trial``."""
        self._check(study)
        search_space = {n: d for n, d in search_space.items() if not d.single()}
        if not search_space:
            return {}
        with self._lock:
            self._bind(study)
            view = self._view_for(study, search_space)
            view.update(study.get_trials(deepcopy=False), trial.number)
            try:
                params = self.hp_sampler.sample(view, trial.number)
            except StudyExhausted:
                return {}
        params = {k: _py(params[k]) for k in search_space if k in params}
        text = json.dumps(params)
        for i in range(0, len(text), _ATTR_CHUNK):
            study._storage.set_trial_system_attr(trial._trial_id,
                                                 f"{RELATIVE_PARAMS_KEY}:{i // _ATTR_CHUNK}",
                                                 text[i:i + _ATTR_CHUNK])
        return params

    def sample_independent(self, study: "OptunaStudy", trial: "OptunaFrozenTrial",
                           param_name: str, param_distribution: BaseDistribution) -> Any:
        """A seeded uniform draw (log scale and step respected), keyed by the trial's
        number and the parameter's name."""
        self._check(study)
        return _draw(param_distribution, _uniform(self.seed, trial.number, param_name))

    def before_trial(self, study: "OptunaStudy", trial: "OptunaFrozenTrial") -> None:
        """Nothing to prepare: the trials are read when a configuration is asked for."""

    def after_trial(self, study: "OptunaStudy", trial: "OptunaFrozenTrial",
                    state: "_OptunaState", values: Sequence[float] | None) -> None:
        """Nothing to record: the finished trial is read from the study at the next
        suggestion (so trials of other processes count the same)."""

    def reseed_rng(self) -> None:
        """Nothing to reseed: draws are keyed by (seed, trial number), so parallel
        workers already differ, and reseeding would break reproducibility."""


# ------------------------------------------------------------------ pruner
class _ReportLog:
    """The pruner protocol of :mod:`hpcore.pruners.base` over an Optuna study: its
    intermediate values as one stream of ``(trial_number, step, value)``."""

    def __init__(self, directions: list[str]) -> None:
        self.directions = directions
        self.reports: list[tuple[int, int, float]] = []
        self._fed: dict[int, int] = {}      # trial number -> number of steps fed
        self._frontier = _Frontier()        # finished trials are fed once, in full

    def reports_since(self, cursor: int) -> tuple[list[tuple[int, int, float]], int]:
        return self.reports[cursor:], len(self.reports)

    def _feed(self, t: "OptunaFrozenTrial") -> None:
        iv = t.intermediate_values
        k = self._fed.get(t.number, 0)
        if len(iv) > k:
            for step in sorted(iv)[k:]:
                v = iv[step]
                self.reports.append((t.number, int(step), float(v)))
            self._fed[t.number] = len(iv)

    def update(self, trials: Sequence["OptunaFrozenTrial"], current: "OptunaFrozenTrial") -> None:
        for t in self._frontier.pending(trials):
            if t.number == current.number:
                continue
            self._feed(t)
            if t.state in _FINISHED:
                self._frontier.finish(t.number)
                self._fed.pop(t.number, None)
        self._feed(current)
        self._frontier.advance()


class HPCoreOptunaPruner(optuna.pruners.BasePruner):
    """An hpcore pruner as an Optuna pruner (see :func:`as_optuna_pruner`)."""

    def __init__(self, pruner: _HPPruner) -> None:
        if not isinstance(pruner, _HPPruner):
            raise TypeError(f"pruner must be an hpcore pruner (hpcore.BasePruner), got "
                            f"{type(pruner).__name__}")
        self.hp_pruner = pruner
        self._lock = threading.RLock()
        self._study: Any = None
        self._log: _ReportLog | None = None

    def __repr__(self) -> str:
        return f"as_optuna_pruner({self.hp_pruner!r})"

    def __getstate__(self) -> dict:
        return {"hp_pruner": self.hp_pruner}    # the report log is rebuilt from the study

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["hp_pruner"])

    def prune(self, study: "OptunaStudy", trial: "OptunaFrozenTrial") -> bool:
        """The hpcore pruner's verdict on ``trial``'s last report."""
        step = trial.last_step
        if step is None:
            return False
        with self._lock:
            if self._study is not study or self._log is None:
                if len(study.directions) != 1:
                    raise ValueError(f"{type(self.hp_pruner).__name__} needs a single-objective "
                                     f"study, got {len(study.directions)} objectives")
                d = "minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE \
                    else "maximize"
                self._study, self._log = study, _ReportLog([d])
            log = self._log
            log.update(study.get_trials(deepcopy=False), trial)
            value = trial.intermediate_values[step]
            return bool(self.hp_pruner.on_report(log, trial.number, int(step), float(value)))


# ------------------------------------------------------------------ entry points
def as_optuna_sampler(sampler: _HPSampler) -> HPCoreOptunaSampler:
    """Run an hpcore sampler inside an Optuna study.

    Parameters
    ----------
    sampler : hpcore.BaseSampler
        A :class:`~hpcore.BayesSampler`, :class:`~hpcore.GeneticSampler` (NSGA-II with
        several objectives), :class:`~hpcore.QMCSampler` or :class:`~hpcore.RandomSampler`.
        Its seed keys every draw (with the trial number).

    Returns
    -------
    optuna.samplers.BaseSampler
        Relative sampling over Optuna's intersection search space with ``sampler``;
        independent seeded uniform draws for the other parameters.
    """
    return HPCoreOptunaSampler(sampler)


def as_optuna_pruner(pruner: _HPPruner) -> HPCoreOptunaPruner:
    """Run an hpcore pruner (:class:`~hpcore.ASHA`, :class:`~hpcore.Hyperband`,
    :class:`~hpcore.SuccessiveHalving`, :class:`~hpcore.MedianPruner`) inside an Optuna
    study; the report steps are its resources.

    Returns
    -------
    optuna.pruners.BasePruner
    """
    return HPCoreOptunaPruner(pruner)
