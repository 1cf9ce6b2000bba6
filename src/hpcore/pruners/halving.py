"""Successive halving, Hyperband and ASHA pruners on compiled rung tables.

Each pruner's state is a fold over ``study.reports_since(cursor)``: on every call it
folds the reports stored since its cursor (its own, other threads', other
processes' on a shared SQLite study, or a resumed study's history) into a
:class:`~hpcore.kernels.RungBook`, then answers for the reporting trial.  Decisions
are therefore a pure function of the report stream in storage order; each report
costs O(log n) (a treap insertion and rank query in C).

Rung levels follow Li et al. (2018): ``r_L = max_resource * eta**(L - s_max)``,
``s_max = floor(log_eta(max_resource / min_resource))``.  A trial enters a rung at
its first report with ``step >= r_L``.

Budget-driven objectives (which read ``trial.budget`` and cannot report as they go)
use :func:`run_budgeted`, synchronous successive halving / Hyperband that re-runs the
promoted configurations at larger budgets.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from hpcore.kernels._halving import (hyperband_brackets, make_rung_book, rung_levels,
                                     top_k)
from hpcore.pruners.base import BasePruner

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["ASHA", "Hyperband", "SuccessiveHalving", "run_budgeted"]


class _RungPruner(BasePruner):
    """Common fold: catch up with the study's reports, then answer from the RungBook."""

    _kind = ""

    def __init__(self, min_resource: float, max_resource: float, eta: int = 3) -> None:
        self.levels = rung_levels(min_resource, max_resource, eta)  # validates
        self.min_resource = min_resource
        self.max_resource = max_resource
        self.eta = int(eta)
        self._owner: Any = None
        self._book: Any = None
        self._cursor = 0

    @property
    def rung_resources(self) -> list[float]:
        """The rung resources ``r_0 < r_1 < ... <= max_resource``."""
        return [float(r) for r in self.levels]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(min_resource={self.min_resource!r}, "
                f"max_resource={self.max_resource!r}, eta={self.eta})")

    def __getstate__(self) -> dict:
        # The compiled book is rebuilt from storage: never pickled.
        state = self.__dict__.copy()
        state.update(_owner=None, _book=None, _cursor=0)
        return state

    def _make_book(self, direction: str):
        raise NotImplementedError

    @property
    def book(self):
        """The compiled rung tables (``None`` before the first report)."""
        return self._book

    def _catch_up(self, study: "Study") -> None:
        if self._owner is not study or self._book is None:
            dirs = list(getattr(study, "directions", ["minimize"]))
            if len(dirs) != 1:
                raise ValueError(f"{type(self).__name__} needs a single-objective study, "
                                 f"got directions={dirs}")
            self._book = self._make_book(dirs[0])
            self._owner = study
            self._cursor = 0
        reports, cursor = study.reports_since(self._cursor)
        self._cursor = cursor
        if len(reports) == 1:
            t, s, v = reports[0]
            self._book.report(t, s, v)
        elif reports:
            arr = np.array(reports, dtype=np.float64)
            self._book.report_many(np.ascontiguousarray(arr[:, 0], dtype=np.int64),
                                   np.ascontiguousarray(arr[:, 1], dtype=np.int64),
                                   np.ascontiguousarray(arr[:, 2]))

    def on_report(self, study: "Study", number: int, step: int, value: float) -> bool:
        self._catch_up(study)
        return bool(self._book.is_pruned(number))


class SuccessiveHalving(_RungPruner):
    """Synchronous successive halving (Jamieson & Talwalkar 2016) as a pruner.

    Consecutive trial numbers form cohorts of ``n_configs`` (default ``eta**s_max``,
    Hyperband's most aggressive bracket).  In each cohort, rung ``i`` promotes
    exactly ``n_{i+1} = floor(n_configs / eta**(i+1))`` trials, the best of the
    ``n_i``.  Trials cannot pause, so promotions are provisional: a trial goes on
    while it is in the promoted set of the results seen so far in every rung it
    reached, and is stopped at its first report at which its rank in one of them is
    ``>= n_{i+1}`` (ranks only grow as a rung fills).  Provisionally promoted trials
    enter the next rung, so it can hold more than ``n_{i+1}`` trials; the cohort's
    budget is then larger than synchronous successive halving's (which
    :func:`run_budgeted` implements exactly, by re-running configurations).

    Parameters
    ----------
    min_resource, max_resource : float
        Resource (report step) of the first and last rung.
    eta : int
        Reduction factor (>= 2).
    n_configs : int, optional
        Cohort size (>= ``eta**s_max``).
    """

    def __init__(self, min_resource: float, max_resource: float, eta: int = 3,
                 n_configs: int | None = None) -> None:
        super().__init__(min_resource, max_resource, eta)
        s_max = len(self.levels) - 1
        self.n_configs = int(eta) ** s_max if n_configs is None else n_configs
        make_rung_book("sh", min_resource, max_resource, eta, n_configs=self.n_configs)

    def _make_book(self, direction: str):
        return make_rung_book("sh", self.min_resource, self.max_resource, self.eta,
                              direction=direction, n_configs=self.n_configs)


class Hyperband(_RungPruner):
    """Hyperband (Li et al. 2018) as a pruner.

    Brackets ``s = s_max .. 0`` are those of :func:`hpcore.kernels.hyperband_brackets`.
    Every ``sum(n_s)`` consecutive trials form one Hyperband iteration in which bracket
    ``s`` receives ``n_s`` trials (its configuration budget), placed by a fixed
    pseudo-random permutation of ``seed``: the assignment is deterministic, in the
    brackets' proportions, and interleaved.

    Inside a bracket, trials start at resource ``r_s`` and by default are promoted
    asynchronously as in :class:`ASHA` (the asynchronous Hyperband of Li et al. 2020,
    like Optuna's ``HyperbandPruner``): a pruner cannot pause trials, and this spends
    the fewest epochs.  ``asynchronous=False`` runs each bracket's cohort of ``n_s``
    trials as :class:`SuccessiveHalving` with the paper's rung quotas ``n_i`` instead
    (provisional promotions: more epochs when trials run one after another).  For the
    exact synchronous algorithm, which re-runs promoted configurations at larger
    budgets, see :func:`run_budgeted`.
    """

    def __init__(self, min_resource: float, max_resource: float, eta: int = 3, *,
                 asynchronous: bool = True, seed: int = 0) -> None:
        super().__init__(min_resource, max_resource, eta)
        self.asynchronous = bool(asynchronous)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.seed = int(seed)
        self.brackets = hyperband_brackets(min_resource, max_resource, eta)

    def _make_book(self, direction: str):
        return make_rung_book("hyperband", self.min_resource, self.max_resource, self.eta,
                              direction=direction, asynchronous=self.asynchronous,
                              seed=self.seed)

    def bracket_of(self, number: int) -> int:
        """The bracket ``s`` of trial ``number``."""
        book = self._book if self._book is not None else self._make_book("minimize")
        return self.brackets[book.bracket_of(number)].s


class ASHA(_RungPruner):
    """Asynchronous successive halving (Li et al. 2020), stopping form.

    When a trial reaches a rung holding ``count`` results (its own included), it
    continues iff fewer than ``max(1, count // eta)`` of them are strictly better:
    a result equal to the ``k``-th best continues, whatever the order in which tied
    results arrived (Optuna's ``SuccessiveHalvingPruner`` decides the same way, and on
    the same configurations makes the same decisions).  Nothing waits for a rung to
    fill and the decision is final.  NaN ranks last.  (Every rung pruner here ranks a
    trial by the number of strictly better entries.)
    """

    def _make_book(self, direction: str):
        return make_rung_book("asha", self.min_resource, self.max_resource, self.eta,
                              direction=direction)


# --------------------------------------------------------------------------- budgeted
def run_budgeted(study: "Study", objective: Callable[[Any], float], *, min_resource: float,
                 max_resource: float, eta: int = 3, n_iterations: int = 1,
                 hyperband: bool = True) -> list[dict[str, Any]]:
    """Synchronous successive halving / Hyperband for objectives that read ``trial.budget``.

    Each bracket samples ``n_0`` fresh configurations (one study trial each) at
    budget ``r_0``, keeps the best ``n_{i+1}`` (NaN and failures worst, ties to the
    earlier trial) and re-runs them as new trials with the same parameters at budget
    ``r_{i+1}`` -- like scikit-learn's ``HalvingRandomSearchCV``.  Every evaluation is
    a COMPLETE (or FAIL) trial with user attributes ``budget``, ``bracket``, ``rung``
    and ``config`` (the trial number where the configuration was first sampled).

    Parameters
    ----------
    study : Study
        A single-objective study; its sampler proposes the fresh configurations.
    objective : callable
        ``objective(trial) -> float``, spending ``trial.budget``.
    min_resource, max_resource, eta
        As for :class:`Hyperband`.
    n_iterations : int
        Number of Hyperband iterations (each runs every bracket once), or of
        successive-halving runs with ``hyperband=False``.
    hyperband : bool
        All brackets (True) or only the most aggressive one (plain successive halving).

    Returns
    -------
    list of dict
        One per bracket run: ``s``, ``n``, ``r``, ``trials`` (numbers per rung) and
        ``best`` (the trial number of the best top-rung evaluation).
    """
    if len(study.directions) != 1:
        raise ValueError("run_budgeted needs a single-objective study")
    if isinstance(n_iterations, bool) or not isinstance(n_iterations, (int, np.integer)) \
            or n_iterations < 1:
        raise ValueError(f"n_iterations must be an int >= 1, got {n_iterations!r}")
    if not callable(objective):
        raise TypeError("objective must be callable")
    direction = study.directions[0]
    brackets = hyperband_brackets(min_resource, max_resource, eta)
    if not hyperband:
        brackets = brackets[:1]
    runs = []
    for _ in range(n_iterations):
        for b in brackets:
            runs.append(_run_bracket(study, objective, b, direction))
    return runs


def _evaluate(study: "Study", objective: Callable, params: dict[str, Any] | None,
              budget: float, attrs: dict[str, Any]) -> tuple:
    from hpcore.trial import TrialState

    trial = study.ask(params=params, budget=budget)
    attrs = dict(attrs, budget=budget)
    if attrs.get("config") is None:
        attrs["config"] = trial.number
    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    try:
        result = objective(trial)
    except Exception as exc:  # noqa: BLE001 - a failed evaluation ranks last
        frozen = study.tell(trial, exc)
    else:
        frozen = study.tell(trial, result)
    value = frozen.values[0] if frozen.state == TrialState.COMPLETE else math.nan
    return trial.number, value, trial.params, attrs["config"]


def _run_bracket(study, objective, bracket, direction) -> dict[str, Any]:
    numbers: list[list[int]] = []
    cand: list[tuple[dict | None, int | None]] = [(None, None)] * bracket.n[0]
    best = None
    for i, (n_i, r_i) in enumerate(zip(bracket.n, bracket.r)):
        r = int(r_i) if float(r_i).is_integer() else float(r_i)
        evals = [_evaluate(study, objective, p, r,
                           {"bracket": bracket.s, "rung": i, "config": c}) for p, c in cand[:n_i]]
        numbers.append([e[0] for e in evals])
        values = np.array([e[1] for e in evals])
        if i + 1 < len(bracket.n):
            keep = top_k(values, bracket.n[i + 1], direction)
            cand = [(evals[j][2], evals[j][3]) for j in keep]
        else:
            j = top_k(values, 1, direction)
            best = evals[int(j[0])][0] if len(j) and not np.isnan(values[j[0]]) else None
    return {"s": bracket.s, "n": bracket.n, "r": bracket.r, "trials": numbers, "best": best}
