"""Deterministic (lagged) parallel runs: ``Study.optimize(..., deterministic=True, lag=q)``.

In a plain parallel run the sampler's suggestion for trial ``n`` depends on which
trials happen to have finished when ``n`` is asked, and in what order their results
were folded into the sampler's caches (BayesSampler's encoded observations, its refit
schedule and Cholesky appends, GeneticSampler's population and offspring pool, the
pending set that BayesSampler fantasizes).  All of that is wall-clock dependent.

Lagged mode removes the dependence with a fixed lag ``q``:

- The sampler asked for trial ``n`` sees a :class:`LaggedView` of the study, not the
  study: exactly the finished (COMPLETE / PRUNED) trials numbered below ``n - q``, in
  number order, and trials ``n-q .. n-1`` as pending (RUNNING, with their parameters),
  whatever their real state.  The view's lists only grow at their end, as the study's
  own caches do, so the samplers' incremental caches consume it unchanged: their state
  after trial ``n`` is then a function of the ordered history and the trial numbers only
  (BayesSampler's refit schedule counts observations, which the view fixes per trial
  number; seeds are keyed by trial number).
- The dispatch loop asks trial ``n`` only once every trial below ``n - q`` that this run
  started has been told (:class:`_LagBudget` holds ``may_start`` back).  A worker waits
  only while trial ``n-q-1`` (or an older one) is still running.

So for a seeded sampler and an objective whose value depends only on the parameters
(or the trial number), the same ``lag`` gives the same trials, parameter for parameter
and value for value, inline, with any number of process workers and on Dask.  The
default lag is the executor's number of parallel slots (``n_jobs``, a Dask cluster's
threads, 1 inline): results then repeat for the same number of workers; pass the same
``lag=q`` explicitly to get identical trials across worker counts (a worker count above
``q + 1`` cannot all be busy; below, the sampler just sees less recent data).

What lagged mode does not cover (a ``UserWarning`` is given for the first):

- Pruners: a pruner judges a report against the reports other trials have made *by
  then*, which depends on timing; once a trial is pruned (or not) differently, its
  value and everything after it may differ.  With a pruner the sampler still sees the
  lagged view, but only runs in which every pruning decision came out the same are
  identical.
- Trials lost with their worker (re-queued re-runs get new numbers), other processes
  writing to the same study at the same time, and objectives that are not
  deterministic.  Trials that existed before the run count as finished history.
"""
from __future__ import annotations

import numbers
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Callable, Sequence

from hpcore.samplers.base import BaseSampler, StudyExhausted
from hpcore.trial import FrozenTrial, Trial, TrialState

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["LaggedView", "check_lag", "default_lag", "run_lagged"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# one view per Study object: a sampler reused across optimize calls keeps its caches
# (they key on the view's identity), and the history it sees stays one ordered list
_VIEWS: "weakref.WeakKeyDictionary[Study, LaggedView]" = weakref.WeakKeyDictionary()


def check_lag(lag: Any) -> int | None:
    """``lag`` as an int >= 0 (or ``None``); ``TypeError``/``ValueError`` naming it."""
    if lag is None:
        return None
    if isinstance(lag, bool) or not isinstance(lag, numbers.Integral):
        raise TypeError(f"lag must be an int >= 0 or None, got {type(lag).__name__}")
    if lag < 0:
        raise ValueError(f"lag must be >= 0, got {lag}")
    return int(lag)


def default_lag(executor: Any) -> int:
    """The default lag for ``executor``: its number of parallel slots (1 inline)."""
    if executor is None:
        return 1
    slots = getattr(executor, "parallel_slots", None)
    if callable(slots):
        return max(1, int(slots()))
    n = getattr(executor, "n_jobs", None)
    if isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1:
        return int(n)
    raise ValueError(f"lag: the number of parallel slots of {type(executor).__name__} is "
                     "unknown; give lag= explicitly")


class LaggedView:
    """What a sampler sees of ``study`` when it is asked for trial ``n`` (horizon
    ``h = n - lag``): finished trials numbered below ``h`` in number order, and trials
    ``h .. n-1`` as pending.

    The samplers' protocol (``space``, ``directions``, ``pruner``, ``name``,
    ``completed_trials()``, ``finished_trials()``, ``running_trials()``, ``trials``)
    is answered from the view; any other attribute is the study's.
    """

    def __init__(self, study: "Study") -> None:
        self._study_ref = weakref.ref(study)
        self.lag = 0
        self.number = 0            # the trial being sampled
        self._horizon = 0          # trials below it are in the lists
        self._cursor = 0           # prefix of study.finished_trials() folded
        self._done: dict[int, FrozenTrial] = {}     # finished, not yet below the horizon
        self._params: dict[int, dict] = {}          # parameters of trials at/above the horizon
        self._completed: list[FrozenTrial] = []
        self._finished: list[FrozenTrial] = []

    # -- the study's static parts ----------------------------------------------------------
    @property
    def study(self) -> "Study":
        study = self._study_ref()
        if study is None:  # pragma: no cover - the view lives only while its study does
            raise RuntimeError("the study of this view is gone")
        return study

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.study, name)

    def __repr__(self) -> str:
        return f"LaggedView({self.study.name!r}, lag={self.lag}, trial={self.number})"

    # -- moving the horizon ---------------------------------------------------------------
    def start(self, lag: int, trials: Sequence[FrozenTrial]) -> None:
        """Begin a run with ``lag``; ``trials`` are the study's trials now (by number)."""
        if lag != self.lag or self._horizon > (trials[-1].number + 1 if trials else 0):
            self._rewind()
        self.lag = lag
        for t in trials:
            if t.params and t.number >= self._horizon:
                self._params[t.number] = dict(t.params)

    def _rewind(self) -> None:
        """Start the lists again (new list objects: samplers see a shorter history and
        rebuild their caches from it)."""
        self._horizon = 0
        self._cursor = 0
        self._done = {}
        self._completed = []
        self._finished = []

    def note_params(self, number: int, params: dict) -> None:
        self._params[number] = dict(params)

    def advance(self, number: int) -> None:
        """Show the study as trial ``number``'s sampler must see it."""
        study = self.study
        finished = study.finished_trials()
        for t in finished[self._cursor:]:
            if t.number >= self._horizon:
                self._done[t.number] = t
        self._cursor = len(finished)
        horizon = max(0, number - self.lag)
        if horizon < self._horizon:
            raise RuntimeError(f"lagged run: trial {number} asked after its horizon "
                               f"passed {self._horizon}")
        for h in range(self._horizon, horizon):
            t = self._done.pop(h, None)
            self._params.pop(h, None)
            if t is None:          # FAIL (or not a trial of this study any more)
                continue
            self._finished.append(t)
            if t.state == TrialState.COMPLETE:
                self._completed.append(t)
        self._horizon = max(self._horizon, horizon)
        self.number = number

    # -- the sampler protocol ---------------------------------------------------------------
    def completed_trials(self) -> list[FrozenTrial]:
        """COMPLETE trials below the horizon, in number order (do not modify)."""
        return self._completed

    def finished_trials(self) -> list[FrozenTrial]:
        """COMPLETE and PRUNED trials below the horizon, in number order (do not modify)."""
        return self._finished

    def running_trials(self) -> list[FrozenTrial]:
        """Trials from the horizon up to (not including) the one being sampled, as
        RUNNING, in number order, whatever their real state."""
        return [FrozenTrial(number=k, trial_id=-1, state=TrialState.RUNNING,
                            params=dict(self._params[k]))
                for k in range(self._horizon, self.number) if k in self._params]

    @property
    def trials(self) -> list[FrozenTrial]:
        """The finished history and the pending window, by number."""
        return sorted(self._finished + self.running_trials(), key=lambda t: t.number)

    def get_trials(self, states=None) -> list[FrozenTrial]:
        trials = self.trials
        if states is None:
            return trials
        states = set(states)
        return [t for t in trials if t.state in states]


class _LaggedSampler(BaseSampler):
    """Hands the sampler the lagged view instead of the study (only during a run)."""

    def __init__(self, inner: BaseSampler, view: LaggedView, gate: "_Gate") -> None:
        self.inner, self.view, self.gate = inner, view, gate
        self.seed = inner.seed
        self.supports_multi_objective = inner.supports_multi_objective
        self.n_trials_budget = inner.n_trials_budget

    def sample(self, study: "Study", number: int) -> dict[str, Any]:
        self.gate.check_number(number)
        self.view.advance(number)
        return self.inner.sample(self.view, number)

    def set_budget(self, n_trials):
        self.inner.set_budget(n_trials)

    def get_params(self) -> dict[str, Any]:
        return self.inner.get_params()

    def __repr__(self) -> str:
        return repr(self.inner)


class _Gate:
    """Which trials of this run are untold, and the number the next ask will get."""

    def __init__(self, lag: int, next_number: int) -> None:
        self.lag = lag
        self.next = next_number
        self.untold: set[int] = set()
        self._warned = False

    def ready(self) -> bool:
        """Whether trial ``next`` may be asked: every trial of this run below
        ``next - lag`` is told."""
        return not self.untold or min(self.untold) >= self.next - self.lag

    def check_number(self, number: int) -> None:
        if number != self.next and not self._warned:
            self._warned = True
            warnings.warn(f"deterministic run: trial {number} was expected to be number "
                          f"{self.next}; another process adds trials to this study, so the "
                          "run is not reproducible", RuntimeWarning, stacklevel=4)

    def asked(self, number: int) -> None:
        self.untold.add(number)
        self.next = max(self.next, number + 1)

    def told(self, number: int) -> None:
        self.untold.discard(number)


class _LagBudget:
    """The run budget, holding ``may_start`` back until the next trial's horizon is
    finished (the dispatch loop then waits for results, as for a busy pool)."""

    def __init__(self, inner: Any, gate: _Gate) -> None:
        self._inner, self._gate = inner, gate

    def may_start(self) -> bool:
        return self._inner.may_start() and self._gate.ready()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _LaggedStudy:
    """The study as the executor sees it: ``ask`` / ``tell`` also keep the gate."""

    def __init__(self, study: "Study", gate: _Gate, view: LaggedView) -> None:
        self._study, self._gate, self._view = study, gate, view

    def ask(self, *args: Any, **kwargs: Any) -> Trial:
        trial = self._study.ask(*args, **kwargs)
        self._gate.asked(trial.number)
        self._view.note_params(trial.number, trial.params)
        return trial

    def ask_batch(self, q: int, budget: Any = None) -> list[Trial]:
        """Up to ``q`` trials, asked one at a time while the lag allows (at least one):
        each trial's view must show the batch's earlier trials as pending, and trial
        ``n`` may start only once the trials below ``n - lag`` are told."""
        if isinstance(q, bool) or not isinstance(q, numbers.Integral) or q < 1:
            raise ValueError(f"q must be an int >= 1, got {q!r}")
        kw = {} if budget is None else {"budget": budget}
        out = [self.ask(**kw)]
        while len(out) < q and self._gate.ready():
            try:
                out.append(self.ask(**kw))
            except StudyExhausted:
                break
        return out

    def tell(self, trial: Any, *args: Any, **kwargs: Any) -> FrozenTrial:
        number = int(trial) if isinstance(trial, numbers.Integral) else trial.number
        try:
            frozen = self._study.tell(trial, *args, **kwargs)
        except BaseException:
            # told anyway (e.g. failed as stale elsewhere) or still RUNNING: ask storage
            try:
                running = any(t.number == number for t in self._study.running_trials())
            except Exception:  # noqa: BLE001 - the tell's error is the one to see
                running = True
            if not running:
                self._gate.told(number)
            raise
        self._gate.told(number)
        return frozen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def run_lagged(study: "Study", objective: Callable, budget: Any, callbacks: Sequence,
               progress: Any, executor: Any, deterministic: Any, lag: Any) -> None:
    """``Study.optimize`` in lagged mode (see the module docstring)."""
    if not isinstance(deterministic, bool):
        raise TypeError(f"deterministic must be a bool, got {type(deterministic).__name__}")
    lag = check_lag(lag)
    if lag is None:
        lag = default_lag(executor)
    from hpcore.pruners.base import NopPruner

    if not isinstance(study.pruner, NopPruner):
        warnings.warn(f"deterministic run with {type(study.pruner).__name__}: pruning "
                      "decisions depend on the reports other trials have made by then, so "
                      "runs with different workers (or timing) can differ from the first "
                      "trial pruned differently on", UserWarning, stacklevel=3)
    trials = study.trials
    view = _VIEWS.get(study)
    if view is None:
        view = _VIEWS[study] = LaggedView(study)
    view.start(lag, trials)
    gate = _Gate(lag, trials[-1].number + 1 if trials else 0)
    inner = study.sampler
    study.sampler = _LaggedSampler(inner, view, gate)
    try:
        lagged = _LaggedStudy(study, gate, view)
        run = _LagBudget(budget, gate)
        if executor is not None:
            executor.run(lagged, objective, run, callbacks, progress)
            return
        while run.may_start():   # inline: trial n-1 is told before n is asked
            try:
                trial = lagged.ask()
            except StudyExhausted:
                break
            budget.started()
            frozen = study._run_inline(objective, trial)
            gate.told(trial.number)
            study.after_trial(frozen, callbacks, progress)
    finally:
        study.sampler = inner
