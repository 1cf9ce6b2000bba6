"""Bayesian optimization: a GP surrogate and an acquisition function (log-EI by default).

The first ``n_startup_trials`` configurations are quasi-random (scrambled Sobol); after
that each suggestion fits a GP (ARD Matern-5/2, compiled kernels) to the completed
trials, encoded in the unit cube, and maximizes the acquisition with the parallel
L-BFGS maximizer of :mod:`hpcore.kernels`, rounding integer and categorical columns, by
default inside a TuRBO-style trust region around the best point
(:mod:`hpcore.samplers._trust`; ``trust_region=False``: the whole space).

Multi-fidelity (BOHB, Falkner et al. 2018): when the study's pruner is
:class:`~hpcore.pruners.SuccessiveHalving`, :class:`~hpcore.pruners.Hyperband` or
:class:`~hpcore.pruners.ASHA` and fewer than ``min_points`` trials have COMPLETE
(full-budget) values, the GP is fitted to the intermediate values of the highest rung
holding at least ``min_points`` finished (COMPLETE or PRUNED) trials, so that the
pruner's promotions feed the model long before many trials run to the end.  As in
BOHB, a fraction ``random_fraction`` of the model-phase trials is uniformly random, and
pruned trials join the model's budget with its worst value
(:mod:`hpcore.samplers._fidelity`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from hpcore.kernels._acquisition import ACQUISITIONS, maximize_acquisition
from hpcore.kernels._gp import (KERNELS, MIN_NOISE_VAR, GPModel, blas_single_thread, gp_fit,
                                gp_predict)
from hpcore.samplers._fidelity import (RungCollector, bohb_training_set, random_pick,
                                       rung_resources)
from hpcore.samplers.base import BaseSampler
from hpcore.samplers.qmc import QMCSampler

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["BayesSampler"]

_PENDING = ("believer", "liar_min", "liar_mean", "liar_max")
_BATCH_STRATEGIES = ("auto", "sequential", "pool")
_SEQUENTIAL_MAX_Q = 16  # batch_strategy="auto": sequential up to this batch size
_TRANSFORMS = (None, "log", "power")
_ACQUISITIONS = tuple(ACQUISITIONS) + ("mace",)
_MAX_LEVELS = 1024   # ordinal columns with more levels are optimized as continuous
_PARALLEL_MIN_OBS = 256
_WARM_MAX_OBS = 100     # beyond, bounded warm refits every refit_every observations
_REFIT_WORK = 2.0e9     # beyond _WARM_MAX_OBS: LML evaluations of a refit ~ _REFIT_WORK / n^3
_REFIT_MAX_EVALS = 30
_LOCAL_MAX_OBS = 2000   # beyond, a local GP on the nearest points to the incumbent
_GRAM_MIN_RATIO = 4     # sample_batch: V^T V of the pool once when q * 4 >= pool size
_GRAM_MAX_POOL = 4096   # ... and the pool is at most this large (the m x m matrix)


def _check_int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


class BayesSampler(BaseSampler):
    """GP-based Bayesian optimization (single objective).

    Parameters
    ----------
    n_startup_trials : int
        Quasi-random (scrambled Sobol) trials before the GP takes over, counted in
        started trials: with pending evaluations (other workers' RUNNING trials, the
        earlier points of a :meth:`sample_batch`) the GP takes over once
        ``n_startup_trials`` trials have been started and at least half of them (and at
        least 2) have finished, the rest pending in its fantasies.  (Counting finished
        trials only, as Optuna's samplers do, rounds of 8 asks before a tell make 16 of
        a 40-trial budget quasi-random.)
    acquisition : {"logei", "ei", "ucb", "pi", "mace"}
        Acquisition function; log-EI (Ament et al., 2023) by default.  ``"mace"``: the
        portfolio of HEBO (:mod:`hpcore.samplers._portfolio`), a random point of the
        Pareto front of log-EI, log-PI and LCB over the local optima of the three (three
        maximizations per ask); the rest of a batch (:meth:`sample_batch`) is then
        scored by log-EI.
    beta : float
        UCB's exploration weight.
    kernel : {"matern52", "rbf"}
    transform : {None, "log", "power"}
        Optional output warping before standardization, for heavy-tailed objectives:
        ``"log"`` is ``log(y - min(y) + eps)``, ``"power"`` a Yeo-Johnson transform
        with its exponent fitted by maximum likelihood.  (Applied to the minimized
        quantity, so it compresses the bad tail.)
    pending : {"believer", "liar_min", "liar_mean", "liar_max"}
        How RUNNING trials are fantasized so parallel workers get different points:
        kriging believer (posterior mean) or a constant liar.  Fantasies are
        conditioned on as noise-free observations (variance ``1e-6 * signal_var``), so
        the posterior variance collapses at and around each pending point and the
        acquisition there drops, whatever noise level the GP has fitted.
    pending_radius : float
        No suggestion lies within this Euclidean distance (in the unit cube of the
        encoded space) of a pending trial: candidates closer are skipped for the next
        best, then a quasi-random point.  Only a finite, nearly exhausted space can
        force a closer point.
    refit_every : int
        Up to 100 observations: full multi-start hyperparameter fit every
        ``max(refit_every, n // 10)`` new observations and one warm-started L-BFGS-B
        run of ``warm_maxiter`` iterations in between.  Beyond: a warm-started L-BFGS-B
        refit cut off after a bounded number of likelihood evaluations
        (``min(30, max(2, 2e9 / n^3))``, so its cost stays about two O(n^3) passes) every
        ``refit_every`` observations, continuing from the last hyperparameters (the
        refits add up to a full optimization over time); between refits each new
        observation extends the Cholesky factor by one block (a triangular solve,
        O(n^2) per observation) instead of refactorizing, so no ask pays for a
        full O(n^3) fit.
    n_restarts : int
        Starts of a full fit besides the warm start.
    warm_maxiter : int
        L-BFGS-B iterations of a warm-started fit.
    n_starts, n_raw_samples : int
        Acquisition maximizer: L-BFGS starts and Sobol points scored to pick them.
    multi_fidelity : bool
        With a rung pruner attached (successive halving, Hyperband, ASHA), fit on the
        highest rung with ``min_points`` observations while fewer than ``min_points``
        trials are COMPLETE (BOHB); ``False`` ignores intermediate values.  Without
        such a pruner this changes nothing.
    min_points : int, optional
        Observations a budget needs before the GP is fitted on it in the
        multi-fidelity mode; default ``d + 2`` for ``d`` parameters (BOHB).  Below it
        on every budget the start-up design goes on.
    random_fraction : float
        Multi-fidelity mode only: the fraction of the trials after the start-up design
        that are sampled uniformly at random (BOHB's ``rho``, default 1/3 as in Falkner
        et al. 2018), decided per trial number by a seeded stream.  Without a rung
        pruner it has no effect.
    max_fantasies : int
        At most this many pending (RUNNING) trials are fantasized, the most recently
        started ones; every pending trial is still excluded and kept ``pending_radius``
        away from.  Fantasizing k pending trials costs O(n^2 k + k^3) per ask and adds k
        rows to every posterior evaluation, which 10,000 RUNNING trials would make the
        whole cost of an ask.
    trust_region : bool
        TuRBO-1's trust region (:mod:`hpcore.samplers._trust`, Eriksson et al. 2019),
        on by default: the acquisition is maximized in a box around the best point of
        the current run, stretched by the GP's lengthscales, doubled after 3
        consecutive improvements, halved after ``max(4, d)`` consecutive failures;
        below ``0.5^7`` it restarts (``trust_restart``).  Its state is a function of
        the completed trials in order (the same after a resume), kept between asks and
        advanced over the new observations only.  The GP is still fitted to every
        observation.  Without a rung pruner only (the multi-fidelity mode ignores it).
        ``False``: the acquisition is maximized over the whole space.  On issue 16's
        quality suite (``bench/results/quality_suite_synthetic.md``), with
        ``trust_restart="incumbent"``, it lowered the mean normalized regret of the
        synthetic half at 10 seeds from 0.445 to 0.327 (budget 40) and 0.366 to 0.149
        (budget 100), significantly worse on no task.
    trust_restart : {"incumbent", "design"}
        When the trust region's side falls below ``0.5^7``: the side reset to 0.8
        around the same best point (the default; no trials spent on a new design), or
        a new run with a new quasi-random design of ``n_startup_trials`` points
        (TuRBO).  On the suite's scikit-learn half, ``"design"`` was significantly
        worse than ``trust_region=False`` on ``mlp_logloss_breast_cancer`` at budget
        100, ``"incumbent"`` on no task (``bench/results/quality_suite.md``).
    batch_strategy : {"auto", "sequential", "pool"}
        How :meth:`sample_batch` fills a batch: ``"sequential"`` proposes each point
        as an :meth:`sample` call would, with the batch's earlier points pending (a
        warm-started refit of the GP and one acquisition maximization per point, the
        earlier points noise-free fantasies: sequential greedy, as BoTorch's
        sequential q-EI); ``"pool"`` fits once, maximizes once for the first point and
        scores a fixed candidate pool with rank-one fantasy updates for the rest (one
        maximization per batch); ``"auto"`` (default): sequential for batches of up to
        16, the pool beyond (hundreds of workers asking at once).  On the quality suite
        in rounds of 8 (16 tasks, budgets 40 / 100, seeds 0-19), sequential had mean
        normalized regret 0.656 / 0.388 against the pool's 0.742 / 0.465 and Optuna
        TPE with constant liar's 0.786 / 0.527 (``bench/results/quality_suite_batch8.md``,
        ``quality_suite_batch8_pool.md``).
    seed : int, optional
    n_threads : int, optional
        OpenMP threads of the kernels.  ``None``: one thread below
        ``_PARALLEL_MIN_OBS`` observations (the work per parallel region is too small to
        pay for waking a thread team), all cores above.

    Notes
    -----
    Approximation beyond 2000 observations (``_LOCAL_MAX_OBS``): the GP is fitted to
    the 2000 observations nearest the incumbent (in the lengthscale-scaled distance of
    the last fit) and the acquisition is maximized in their bounding box, widened by
    10% per side (a trust region around the incumbent, as in TuRBO, Eriksson et al.
    2019), intersected with ``trust_region``'s box.  Evaluated configurations outside
    the local set are still never repeated.  This keeps an ask's cost bounded (the
    exact GP would cost O(n^2) per acquisition evaluation and O(n^3) per refit); its
    effect on search quality at these sizes has not been measured against the exact
    GP.
    """

    def __init__(self, *, n_startup_trials: int = 10, acquisition: str = "logei",
                 beta: float = 2.0, kernel: str = "matern52", transform: str | None = None,
                 pending: str = "believer", pending_radius: float = 1e-3,
                 refit_every: int = 10, n_restarts: int = 2,
                 warm_maxiter: int = 10, n_starts: int = 12, n_raw_samples: int = 512,
                 multi_fidelity: bool = True, min_points: int | None = None,
                 random_fraction: float = 1 / 3, max_fantasies: int = 256,
                 trust_region: bool = True, trust_restart: str = "incumbent",
                 batch_strategy: str = "auto",
                 seed: int | None = None, n_threads: int | None = None) -> None:
        super().__init__(seed)
        self.n_startup_trials = _check_int("n_startup_trials", n_startup_trials, 1)
        if acquisition not in _ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {sorted(_ACQUISITIONS)}, got "
                             f"{acquisition!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
        if transform not in _TRANSFORMS:
            raise ValueError(f"transform must be one of {_TRANSFORMS}, got {transform!r}")
        if pending not in _PENDING:
            raise ValueError(f"pending must be one of {_PENDING}, got {pending!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (
                math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        if isinstance(pending_radius, bool) or not isinstance(pending_radius, (int, float)) \
                or not (math.isfinite(pending_radius) and pending_radius >= 0):
            raise ValueError(f"pending_radius must be a finite number >= 0, got {pending_radius!r}")
        self.pending_radius = float(pending_radius)
        self.acquisition = acquisition
        self.beta = float(beta)
        self.kernel = kernel
        self.transform = transform
        self.pending = pending
        self.refit_every = _check_int("refit_every", refit_every, 1)
        self.n_restarts = _check_int("n_restarts", n_restarts, 0)
        self.warm_maxiter = _check_int("warm_maxiter", warm_maxiter, 1)
        self.n_starts = _check_int("n_starts", n_starts, 1)
        self.n_raw_samples = _check_int("n_raw_samples", n_raw_samples, 0)
        self.n_threads = n_threads
        self.multi_fidelity = bool(multi_fidelity)
        self.min_points = None if min_points is None else _check_int("min_points", min_points, 2)
        if isinstance(random_fraction, bool) or not isinstance(random_fraction, (int, float)) \
                or not 0.0 <= random_fraction <= 1.0:
            raise ValueError(f"random_fraction must be a number in [0, 1], got {random_fraction!r}")
        self.random_fraction = float(random_fraction)
        self.max_fantasies = _check_int("max_fantasies", max_fantasies, 0)
        if not isinstance(trust_region, (bool, np.bool_)):
            raise ValueError(f"trust_region must be a bool, got {trust_region!r}")
        self.trust_region = bool(trust_region)
        from hpcore.samplers._trust import RESTARTS

        if trust_restart not in RESTARTS:
            raise ValueError(f"trust_restart must be one of {RESTARTS}, got {trust_restart!r}")
        self.trust_restart = trust_restart
        if batch_strategy not in _BATCH_STRATEGIES:
            raise ValueError(f"batch_strategy must be one of {_BATCH_STRATEGIES}, got "
                             f"{batch_strategy!r}")
        self.batch_strategy = batch_strategy
        #: The trust region of the last proposal (``trust_region=True``), else ``None``.
        self.last_trust_region = None
        #: Rung index of the data of the last GP fit: ``None`` when it was the COMPLETE
        #: trials' values (or no GP was fitted); ``L`` for rung ``L``'s intermediate values.
        self.last_fit_rung: int | None = None
        #: Trial numbers of the last GP fit's training set (empty when none was fitted).
        self.last_fit_numbers: list[int] = []
        self._startup = QMCSampler("sobol", seed=self.seed)
        self._random = None
        self._reset(None)

    def __repr__(self) -> str:
        return (f"BayesSampler(acquisition={self.acquisition!r}, n_startup_trials="
                f"{self.n_startup_trials}, seed={self.seed})")

    def __getstate__(self) -> dict:
        # the rung collector's encoder refers to the study: caches are rebuilt, not pickled
        state = self.__dict__.copy()
        state.update(_key=None, _rungs=None)
        return state

    # -- cache of encoded observations ---------------------------------------------------
    def _reset(self, key) -> None:
        self._key = key
        self._n_seen = 0                      # prefix of completed_trials() consumed
        self._X = np.empty((0, 0))
        self._y = np.empty(0)
        self._numbers: list[int] = []
        self._theta: np.ndarray | None = None
        self._n_at_full_fit = 0
        self._n_at_refit = 0
        self._chol: GPModel | None = None     # factor of the last fit's data, for appends
        self._layout = None
        self._rungs: RungCollector | None = None
        self._rung_theta: dict[int, tuple[np.ndarray | None, int]] = {}
        self._pend_cache: dict[tuple[int, int], np.ndarray] = {}
        self._pend_key = None
        self._tr_state = None                 # trust region after _y[:_tr_state.n] ...
        self._tr_last = None                  # ... and _y[_tr_state.n - 1]

    def _space_layout(self, space):
        """Imputation values, ordinal levels and categorical blocks of the space."""
        from hpcore.space import Categorical, Float, Int

        d = space.n_dims
        impute = np.full(d, 0.5)
        discrete: dict[int, np.ndarray] = {}
        blocks: list[tuple[int, int]] = []
        for name, dist in space.params.items():
            sl = space.column_slice(name)
            if isinstance(dist, Categorical):
                impute[sl] = 0.0
                blocks.append((sl.start, sl.stop))
            elif isinstance(dist, Int) or (isinstance(dist, Float) and dist.step is not None):
                if dist.n_levels <= _MAX_LEVELS:
                    discrete[sl.start] = np.array([dist.encode(v) for v in dist.levels()])
        return impute, discrete, blocks

    def _sync(self, study: "Study") -> None:
        key = (id(study), getattr(study, "name", None))
        done = study.completed_trials()
        if key != self._key or len(done) < self._n_seen:
            self._reset(key)
            self._layout = self._space_layout(study.space)
            res = rung_resources(getattr(study, "pruner", None)) if self.multi_fidelity else None
            if res is not None and hasattr(study, "finished_trials"):
                sign = 1.0 if study.directions[0] == "minimize" else -1.0
                self._rungs = RungCollector(res, sign, lambda t: self._encode(study, t.params))
        new = done[self._n_seen:]
        if not new:
            return
        sign = 1.0 if study.directions[0] == "minimize" else -1.0
        impute = self._layout[0]
        rows, ys = [], []
        for t in new:
            v = None if t.values is None else t.values[0]
            if v is None or not math.isfinite(v):
                continue
            x = study.space.encode(t.params)
            rows.append(np.where(np.isnan(x), impute, x))
            ys.append(sign * float(v))
            self._numbers.append(t.number)
        self._n_seen = len(done)
        if rows:
            R = np.array(rows)
            self._X = R if self._X.size == 0 else np.vstack([self._X, R])
            self._y = np.concatenate([self._y, ys])

    def _encode(self, study: "Study", params: dict) -> np.ndarray:
        x = study.space.encode(params)
        return np.where(np.isnan(x), self._layout[0], x)

    # -- targets ---------------------------------------------------------------------------
    def _targets(self, y: np.ndarray | None = None) -> np.ndarray:
        y = self._y if y is None else y
        if self.transform == "log":
            span = float(y.max() - y.min())
            y = np.log(y - y.min() + 1e-3 * (span if span > 0 else 1.0))
        elif self.transform == "power":
            from scipy.stats import yeojohnson

            sd = y.std()
            if sd > 0 and len(y) > 2:
                y = yeojohnson((y - y.mean()) / sd)[0]
        sd = y.std()
        return (y - y.mean()) / (sd if sd > 0 else 1.0)

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, study: "Study", number: int) -> dict[str, Any]:
        self._sync(study)
        if self._rungs is not None:
            return self._sample_multi_fidelity(study, number)
        n_design = self._design_left(study, {number})
        if n_design:
            self.last_fit_rung, self.last_fit_numbers = None, []
            return self._startup.sample(study, number)
        if len(self._y) >= self.n_startup_trials and self._restart_design(study):
            cfg = self._startup.sample(study, number)
            # a finite space may map the quasi-random point onto an evaluated one
            if self._key_of(self._encode(study, cfg)) not in set(_row_keys(self._X)):
                self.last_fit_rung, self.last_fit_numbers = None, []
                return cfg
        self.last_fit_rung, self.last_fit_numbers = None, list(self._numbers)
        with blas_single_thread():
            return self._propose(study, number)

    def _design_left(self, study: "Study", batch) -> int:
        """Start-up trials still to place before the GP: ``n_startup_trials`` less the
        trials started so far (finished, and RUNNING ones with params outside
        ``batch``); pending trials do not count while fewer than half of
        ``n_startup_trials`` (and than 2) have finished."""
        n_done = len(self._y)
        if n_done >= self.n_startup_trials:
            return 0
        if n_done < max(2, (self.n_startup_trials + 1) // 2):
            return self.n_startup_trials - n_done
        n_pend = sum(1 for t in study.running_trials() if t.number not in batch and t.params)
        return max(0, self.n_startup_trials - n_done - n_pend)

    def _trust(self, study: "Study"):
        """``trust_region``: the :class:`~hpcore.samplers._trust.TrustState` after
        ``self._y``, advanced over the observations added since the last call (O(1)
        when none were); from scratch after a ``_reset``, or when the kept state is not
        a prefix of ``self._y`` (its length and last value) or was built with other
        parameters."""
        from hpcore.samplers._trust import advance

        n_init, d = self.n_startup_trials, max(1, len(study.space.params))
        fail_tol = max(4, d)
        st, y = self._tr_state, self._y
        if st is not None and (st.n > len(y) or (st.n_init, st.fail_tol, st.restart) !=
                               (n_init, fail_tol, self.trust_restart)
                               or (st.n and y[st.n - 1] != self._tr_last)):
            st = None
        if st is None or st.n < len(y):
            st = advance(st, y[0 if st is None else st.n:], n_init, d, fail_tol,
                         self.trust_restart)
            self._tr_state, self._tr_last = st, (y[st.n - 1] if st.n else None)
        self.last_trust_region = st.region
        return st

    def _restart_design(self, study: "Study") -> bool:
        """``trust_region``: whether the current run (after a restart) is still in its
        quasi-random design."""
        if not self.trust_region:
            return False
        return self._trust(study).region.n_run < self.n_startup_trials

    def _trust_box(self, study: "Study", model: GPModel, box):
        """``trust_region``: the current run's box (intersected with ``box``, the local
        GP's, when given) and its centre; categorical blocks span [0, 1]."""
        from hpcore.samplers._trust import trust_box

        st = self._trust(study)       # kept from this ask's _restart_design: no replay
        d = self._X.shape[1]
        if st.n - st.run_start < self.n_startup_trials:
            # a restarted run's design hit evaluated points (a finite space): no region yet
            center = self._X[st.best_all_index]
            return (np.column_stack([np.zeros(d), np.ones(d)]) if box is None else box), center
        center = self._X[st.best_index]
        tb = trust_box(center, np.exp(model.theta[:d]), st.length)
        for a, b in self._layout[2]:
            tb[a:b] = (0.0, 1.0)
        if box is not None:
            lo, hi = np.maximum(tb[:, 0], box[:, 0]), np.minimum(tb[:, 1], box[:, 1])
            ok = lo <= hi
            tb[ok, 0], tb[ok, 1] = lo[ok], hi[ok]
        return tb, center

    def _sample_multi_fidelity(self, study: "Study", number: int) -> dict[str, Any]:
        """BOHB's rule: the highest budget with ``min_points`` observations (the full
        budget, COMPLETE trials, when it has them), trials pruned below it at its worst
        value, and a ``random_fraction`` of uniformly random trials
        (:func:`~hpcore.samplers._fidelity.bohb_training_set`)."""
        rungs = self._rungs
        rungs.update(study.finished_trials())
        m = self.min_points if self.min_points is not None else len(study.space.params) + 2
        data = bohb_training_set(rungs, self._X, self._y, m)
        if data is None:
            self.last_fit_rung, self.last_fit_numbers = None, []
            return self._startup.sample(study, number)
        if random_pick(self.seed, number, self.random_fraction):
            self.last_fit_rung, self.last_fit_numbers = None, []
            if self._random is None:
                from hpcore.samplers.random import RandomSampler

                self._random = RandomSampler(seed=self.seed)
            return self._random.sample(study, number)
        L, X, y_raw = data
        top = len(rungs.resources) - 1
        self.last_fit_rung = None if L == top else L
        self.last_fit_numbers = list(self._numbers) if self.last_fit_rung is None \
            else list(rungs.rung(L)[2])
        # hyperparameter warm starts are kept per budget: each is its own data set
        saved = (self._theta, self._n_at_full_fit, self._n_at_refit, self._chol)
        self._theta, self._n_at_full_fit = self._rung_theta.get(L, (None, 0))
        self._n_at_refit, self._chol = self._n_at_full_fit, None
        try:
            with blas_single_thread():
                return self._propose(study, number, X, y_raw,
                                     np.array(rungs.finished_rows))
        finally:
            self._rung_theta[L] = (self._theta, self._n_at_full_fit)
            self._theta, self._n_at_full_fit, self._n_at_refit, self._chol = saved

    def _threads(self, n: int) -> int | None:
        if self.n_threads is not None:
            return self.n_threads
        return 1 if n < _PARALLEL_MIN_OBS else None

    def _fit(self, X: np.ndarray, y: np.ndarray, number: int) -> GPModel:
        """Up to ``_WARM_MAX_OBS`` observations: full multi-start fit every
        ``max(refit_every, n // 10)`` new observations, a warm-started L-BFGS-B run in
        between.  Beyond: a warm-started refit of a bounded number of iterations every
        ``refit_every`` observations; in between the previous Cholesky factor is
        extended by the new rows (O(n^2) each) at the same hyperparameters."""
        n = len(y)
        nt = self._threads(n)
        seed = (self.seed * 1_000_003 + number) % (2 ** 63)
        if self._theta is None and n > _WARM_MAX_OBS:
            # cold start on many observations: hyperparameters from a full fit on a
            # random subset of 2 * _WARM_MAX_OBS of them (O(subset^3) per evaluation),
            # then one factorization of all; the bounded refits refine them later
            rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
            sub = np.sort(rng.choice(n, min(n, 2 * _WARM_MAX_OBS), replace=False))
            theta = gp_fit(X[sub], y[sub], kernel=self.kernel, n_restarts=max(self.n_restarts, 1),
                           seed=seed, n_threads=nt, maxiter=200).theta
            model = gp_fit(X, y, kernel=self.kernel, theta0=theta, optimize=False, n_threads=nt)
            self._n_at_full_fit = self._n_at_refit = n
        elif self._theta is None or (n <= _WARM_MAX_OBS and n - self._n_at_full_fit
                                     >= max(self.refit_every, n // 10)):
            model = gp_fit(X, y, kernel=self.kernel, theta0=self._theta,
                           n_restarts=max(self.n_restarts, 1), seed=seed, n_threads=nt,
                           maxiter=200)
            self._n_at_full_fit = self._n_at_refit = n
        elif n <= _WARM_MAX_OBS:
            model = gp_fit(X, y, kernel=self.kernel, theta0=self._theta, n_restarts=0,
                           maxiter=self.warm_maxiter, seed=seed, n_threads=nt)
            self._n_at_refit = n
        elif abs(n - self._n_at_refit) >= self.refit_every:
            evals = int(min(_REFIT_MAX_EVALS, max(2, _REFIT_WORK / float(n) ** 3)))
            model = gp_fit(X, y, kernel=self.kernel, optimize=False, n_threads=nt,
                           theta0=self._bounded_refit(X, y, evals, nt))
            self._n_at_refit = n
        else:
            model = self._extended(X, y, nt)
        self._theta = model.theta
        self._chol = model
        return model

    def _bounded_refit(self, X: np.ndarray, y: np.ndarray, max_evals: int,
                       nt: int | None) -> np.ndarray:
        """Warm-started L-BFGS-B on the log marginal likelihood + priors, stopped after
        ``max_evals`` evaluations; the best hyperparameters seen."""
        from scipy.optimize import minimize

        from hpcore.kernels._gp import default_bounds, gp_log_marginal_likelihood

        b = default_bounds(X.shape[1])
        theta0 = np.clip(self._theta, b[:, 0], b[:, 1])
        best = [theta0, math.inf]
        count = [0]

        def neg(t: np.ndarray):
            if count[0] >= max_evals:
                raise _Budget
            count[0] += 1
            try:
                v, g = gp_log_marginal_likelihood(X, y, t, kernel=self.kernel, prior=True,
                                                  n_threads=nt)
            except np.linalg.LinAlgError:
                return 1e25, np.zeros_like(t)
            if not math.isfinite(v):
                return 1e25, np.zeros_like(t)
            if -v < best[1]:
                best[0], best[1] = np.array(t, dtype=np.float64), -v
            return -v, -g

        try:
            minimize(neg, theta0, jac=True, method="L-BFGS-B", bounds=b,
                     options={"maxiter": self.warm_maxiter})
        except _Budget:
            pass
        return best[0]

    def _extended(self, X: np.ndarray, y: np.ndarray, nt: int | None) -> GPModel:
        """The model at the current hyperparameters on ``(X, y)``: the cached factor
        extended by the rows it lacks when it covers a prefix of ``X``, else a fresh
        factorization."""
        old = self._chol
        m = 0 if old is None else len(old.y)
        if (old is not None and m <= len(X) and np.array_equal(old.theta, self._theta)
                and np.array_equal(old.X, X[:m])):
            diag = np.full(len(X) - m, old.noise_var + old.jitter)
            try:
                return _append_rows(old, X[m:], y, diag, nt)
            except np.linalg.LinAlgError:
                pass
        return gp_fit(X, y, kernel=self.kernel, theta0=self._theta, optimize=False,
                      n_threads=nt)

    def _local(self, X: np.ndarray, y: np.ndarray):
        """Beyond ``_LOCAL_MAX_OBS`` observations: the ``_LOCAL_MAX_OBS`` nearest the
        incumbent (lengthscale-scaled distance) and the trust-region box around them."""
        if len(y) <= _LOCAL_MAX_OBS:
            return X, y, None
        d = X.shape[1]
        w = np.ones(d) if self._theta is None else np.exp(-2.0 * self._theta[:d])
        inc = X[int(np.argmin(y))]
        dist = ((X - inc) ** 2) @ w
        idx = np.sort(np.argpartition(dist, _LOCAL_MAX_OBS - 1)[:_LOCAL_MAX_OBS])
        Xl = X[idx]
        lo, hi = Xl.min(axis=0), Xl.max(axis=0)
        pad = 0.1 * (hi - lo)
        box = np.column_stack([np.clip(lo - pad, 0.0, 1.0), np.clip(hi + pad, 0.0, 1.0)])
        _, discrete, blocks = self._layout
        for j in discrete:
            box[j] = (0.0, 1.0)
        for a, b in blocks:
            box[a:b] = (0.0, 1.0)
        # the cached factor is reused (_extended) only while the local set is the same
        # rows in the same order (a new observation outside the nearest ones); else the
        # set is refactorized
        return np.ascontiguousarray(Xl), y[idx], box

    def sample_batch(self, study: "Study", numbers) -> list[dict[str, Any]]:
        """The configurations of trials ``numbers``: each point is proposed with the
        batch's earlier points fantasized as pending trials (as RUNNING trials of other
        workers are) and kept ``pending_radius`` apart (``batch_strategy``: each point
        from its own warm refit and maximization, or one fit and a candidate pool).

        The start-up design and the multi-fidelity mode (a rung pruner, too few COMPLETE
        trials) go trial by trial (:meth:`BaseSampler.sample_batch`)."""
        numbers = [int(n) for n in numbers]
        self._sync(study)
        if self._rungs is not None or len(numbers) < 2:
            return super().sample_batch(study, numbers)
        n_design = self._design_left(study, set(numbers))
        if n_design >= len(numbers) or (len(self._y) >= self.n_startup_trials
                                        and self._restart_design(study)):
            return super().sample_batch(study, numbers)
        # the start-up design's last points, then the GP's with them as pending trials
        out = [self._startup.sample(study, n) for n in numbers[:n_design]]
        extra = np.array([self._encode(study, c) for c in out]) if out else None
        rest = numbers[n_design:]
        self.last_fit_rung, self.last_fit_numbers = None, list(self._numbers)
        with blas_single_thread():
            if self.batch_strategy == "pool" or (self.batch_strategy == "auto"
                                                 and len(rest) > _SEQUENTIAL_MAX_Q):
                return out + self._propose_many(study, rest, extra_pending=extra)
            # as len(rest) asks would: each point from its own (warm-started) fit and
            # maximization, with the batch's earlier points pending
            for number in rest:
                cfg = self._propose(study, number, extra_pending=extra)
                out.append(cfg)
                u = self._encode(study, cfg)[None, :]
                extra = u if extra is None else np.vstack([extra, u])
            return out

    def _propose(self, study: "Study", number: int, X: np.ndarray | None = None,
                 y_raw: np.ndarray | None = None, evaluated: np.ndarray | None = None,
                 extra_pending: np.ndarray | None = None) -> dict[str, Any]:
        return self._propose_many(study, [number], X, y_raw, evaluated, extra_pending)[0]

    def _propose_many(self, study: "Study", numbers: list[int], X: np.ndarray | None = None,
                      y_raw: np.ndarray | None = None,
                      evaluated: np.ndarray | None = None,
                      extra_pending: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Fit on ``(X, y_raw)`` (default: the COMPLETE trials) once and maximize the
        acquisition away from ``evaluated`` configurations (default ``X``) and pending
        trials (the RUNNING ones and the encoded rows ``extra_pending``, e.g. a batch's
        start-up points), once per number; each proposal joins the fantasized pending
        points of the next."""
        space = study.space
        own = X is None
        if own:
            X, y = self._X, self._targets()
        else:
            y = self._targets(y_raw)
        exclude = X if evaluated is None else evaluated
        X, y, box = self._local(X, y)
        model = self._fit(X, y, numbers[0])
        nt = self._threads(len(y))
        f_best = float(y.min())
        batch = set(numbers)
        pend = [t for t in study.running_trials() if t.number not in batch and t.params]
        d = X.shape[1]
        Xp = np.empty((0, d))
        liar = None if self.pending == "believer" else {
            "liar_min": y.min(), "liar_mean": y.mean(), "liar_max": y.max()}[self.pending]
        if pend or extra_pending is not None:
            Xp = self._pending_rows(study, pend) if pend else Xp
            fant = Xp
            if len(pend) > self.max_fantasies:
                # the most recently started ones: fantasizing k pending trials costs
                # O(n^2 k + k^3) and grows every later posterior evaluation by k
                idx = np.argsort([t.number for t in pend], kind="stable")
                fant = Xp[np.sort(idx[-self.max_fantasies:])]
            if extra_pending is not None:
                Xp = np.vstack([Xp, extra_pending])
                fant = np.vstack([fant, extra_pending])
            if len(fant):
                model = self._fantasize(model, fant, liar, nt)
            exclude = np.vstack([exclude, Xp])
        _, discrete, blocks = self._layout
        k = min(5, len(y))
        x_best = X[np.argsort(y, kind="stable")[:k]]
        # trust_region: search the run's box first; when every candidate there is an
        # evaluated (or pending) configuration (a finite space), the whole space next
        searches = [(box, x_best)]
        if own and self.trust_region:
            tbox, center = self._trust_box(study, model, box)
            searches.insert(0, (tbox, center[None, :]))
        seen = set(_row_keys(exclude))
        seed = (self.seed + 7919 * numbers[0]) % (2 ** 63)
        cfg = None
        for sbox, sbest in searches:
            if self.acquisition == "mace":
                xs = self._mace(model, X, y, sbox, discrete, blocks, sbest, exclude, seed, nt,
                                len(space.params))
            else:
                xs, _ = maximize_acquisition(
                    model, kind=self.acquisition, f_best=f_best, beta=self.beta, bounds=sbox,
                    discrete=discrete, categorical=blocks, n_starts=self.n_starts,
                    n_raw_samples=self.n_raw_samples, x_best=sbest, exclude=exclude,
                    seed=seed, return_all=True, n_threads=nt)
            for x in xs:
                c = space.decode(x)
                u = self._encode(study, c)
                if self._key_of(u) not in seen and self._apart(u, Xp):
                    cfg = c
                    break
            if cfg is not None:
                box = sbox
                break
        if cfg is None:
            # every candidate maps onto an evaluated configuration or next to a pending
            # one: fall back to quasi-random (only a nearly exhausted finite space can
            # then clash)
            cfg = self._startup.sample(study, numbers[0])
            u = self._encode(study, cfg)
        out = [cfg]
        if len(numbers) > 1:
            seen.add(self._key_of(u))
            out += self._greedy_batch(study, numbers[1:], model, f_best, xs, u, box, Xp,
                                      seen, liar, nt)
        return out

    def _mace(self, model: GPModel, X: np.ndarray, y: np.ndarray, box, discrete, blocks,
              x_best: np.ndarray, exclude: np.ndarray, seed: int, nt: int | None,
              n_params: int) -> np.ndarray:
        """MACE (:mod:`hpcore.samplers._portfolio`): the local optima of log-EI, PI and
        LCB (one maximization each, improving on ``tau - eps``, ``tau`` the posterior
        mean at the incumbent), ordered as the Pareto front of the three in a seeded
        random order, then the rest by log-EI."""
        from hpcore.samplers._portfolio import mace_objectives, mace_order

        C, tau, kappa = self._mace_candidates(model, X, y, box, discrete, blocks, x_best,
                                              exclude, seed, nt, n_params)
        if len(C) == 0:
            return C
        mean, var = gp_predict(model, C, n_threads=nt)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
        F = mace_objectives(mean, var, tau, kappa, model.noise_var, rng)
        return C[mace_order(F, rng)]

    def _mace_candidates(self, model: GPModel, X: np.ndarray, y: np.ndarray, box, discrete,
                         blocks, x_best: np.ndarray, exclude: np.ndarray, seed: int,
                         nt: int | None, n_params: int):
        """MACE's candidates (the distinct local optima of the three maximizations, in
        the order found), ``tau`` and ``kappa``."""
        from hpcore.samplers._portfolio import MACE_EPS, mace_kappa

        tau = float(gp_predict(model, X[int(np.argmin(y))][None, :], n_threads=nt)[0][0])
        kappa = mace_kappa(len(y), max(1, n_params))
        parts = []
        for k, (kind, beta) in enumerate((("logei", self.beta), ("pi", self.beta),
                                          ("ucb", kappa * kappa))):
            xs, _ = maximize_acquisition(
                model, kind=kind, f_best=tau - MACE_EPS, beta=beta, bounds=box,
                discrete=discrete, categorical=blocks, n_starts=self.n_starts,
                n_raw_samples=self.n_raw_samples, x_best=x_best, exclude=exclude,
                seed=(seed + 104723 * k) % (2 ** 63), return_all=True, n_threads=nt)
            parts.append(xs)
        C = np.vstack(parts)
        if len(C):
            _, first = np.unique(np.round(C, 9), axis=0, return_index=True)
            C = np.ascontiguousarray(C[np.sort(first)])
        return C, tau, kappa

    def _greedy_batch(self, study: "Study", numbers: list[int], model: GPModel,
                      f_best: float, optima: np.ndarray, u0: np.ndarray, box, Xp: np.ndarray,
                      seen: set, liar: float | None, nt: int | None) -> list[dict[str, Any]]:
        """The rest of a batch after its first point ``u0`` (the acquisition's maximum):
        sequential kriging believer (or constant liar) over a candidate pool, each
        accepted point a noise-free fantasy of the next.

        Pool: the maximizer's local optima ``optima``, ``q`` Gaussian perturbations of
        them (std 0.05 of the box) and ``n_raw_samples`` scrambled Sobol points, snapped
        to the discrete levels.  One triangular solve gives every candidate's posterior
        (O(n^2 m)); each fantasy then updates all of them by one rank-one step of the
        Cholesky factor (O(m (n + f)) for f fantasies so far), so a batch of q costs one
        acquisition maximization plus O(n^2 m + q m n) instead of q maximizations.
        """
        from scipy.linalg import solve_triangular
        from scipy.special import ndtr

        from hpcore._kernels import gp as _gpk
        from hpcore._kernels.acquisition import log_h_array
        from hpcore.kernels._acquisition import _Columns, _sobol
        from hpcore.kernels._random import normal_streams

        space = study.space
        _, discrete, blocks = self._layout
        d = model.X.shape[1]
        q = len(numbers)
        cols = _Columns(d, box, discrete, blocks)
        span = cols.upper - cols.lower
        seed = (self.seed + 7919 * numbers[0] + 104729) % (2 ** 63)
        parts = [np.asarray(optima, dtype=np.float64).reshape(-1, d)]
        if len(parts[0]):
            eps = normal_streams(int(seed), q, d, stream_offset=1 << 41, n_threads=1)
            base = parts[0][np.arange(q) % len(parts[0])]
            parts.append(base + 0.05 * span * eps)
        if self.n_raw_samples:
            parts.append(cols.lower + span * _sobol(d, self.n_raw_samples, seed))
        C = cols.snap(np.vstack(parts))
        cfgs: list[dict[str, Any] | None] = [None] * len(C)
        if any(getattr(dist, "condition", None) for dist in space.params.values()):
            # inactive columns as the GP sees them (imputed): decode + encode each point
            cfgs = [space.decode(c) for c in C]
            C = np.array([self._encode(study, c) for c in cfgs])
        # drop repeats and evaluated/pending configurations
        keep, kset = [], set()
        for i, kk in enumerate(_row_keys(C)):
            if kk not in seen and kk not in kset:
                kset.add(kk)
                keep.append(i)
        C = np.ascontiguousarray(C[keep])
        cfgs = [cfgs[i] for i in keep]
        L, sig = model.L, model.signal_var
        fnoise = MIN_NOISE_VAR * sig + model.jitter
        Kc = _gpk.kernel_matrix(model.X, C, model.inv_l2, sig, model.kind, nt)      # (n, m)
        V = solve_triangular(L, Kc, lower=True, check_finite=False)                  # (n, m)
        b = solve_triangular(L, model.y, lower=True, check_finite=False)             # L^-1 y
        mu = V.T @ b
        var = sig - np.einsum("ij,ij->j", V, V)
        qmax = len(numbers)
        # each accepted pool candidate i needs v_i^T V (a pass over the n x m V): for
        # many fantasies, all of them at once as the Gram matrix V^T V (one BLAS-3 product)
        G = V.T @ V if qmax * _GRAM_MIN_RATIO >= len(C) and len(C) <= _GRAM_MAX_POOL else None
        W = np.empty((qmax, len(C)))       # fantasy rows of every candidate's whitened vector
        Vf = np.empty((len(b), qmax))      # each fantasy's data part L^-1 k(X, u_j)
        Lff = np.zeros((qmax, qmax))       # the fantasies' block of the Cholesky factor
        bf = np.empty(qmax)                # the fantasies' whitened targets
        Uf = np.empty((qmax, d))
        pos = {kk: i for i, kk in enumerate(_row_keys(C))}
        alive = np.ones(len(C), dtype=bool)
        out: list[dict[str, Any]] = []
        u = u0
        for f, number in enumerate(numbers):
            # condition on the last accepted point u (a noise-free fantasy, number f)
            i = pos.get(self._key_of(u))
            if i is not None:       # a pool candidate: its whitened vector is known
                vu, wu = V[:, i], W[:f, i]
                vV = G[i] if G is not None else vu @ V
            else:
                ku = _gpk.kernel_matrix(model.X, u[None, :], model.inv_l2, sig, model.kind,
                                        nt)[:, 0]
                vu = solve_triangular(L, ku, lower=True, check_finite=False)
                if f:
                    kf = _gpk.kernel_matrix(Uf[:f], u[None, :], model.inv_l2, sig, model.kind,
                                            nt)[:, 0]
                    wu = solve_triangular(Lff[:f, :f], kf - Vf[:, :f].T @ vu, lower=True,
                                          check_finite=False)
                else:
                    wu = np.empty(0)
                vV = vu @ V
            du = math.sqrt(max(sig + fnoise - vu @ vu - wu @ wu, 1e-12 * sig))
            mean_u = vu @ b + wu @ bf[:f]
            yu = mean_u if liar is None else liar
            bnew = (yu - mean_u) / du
            kuc = _gpk.kernel_matrix(u[None, :], C, model.inv_l2, sig, model.kind, nt)[0]
            r = (kuc - vV - wu @ W[:f]) / du
            W[f] = r
            Vf[:, f] = vu
            Lff[f, :f] = wu
            Lff[f, f] = du
            bf[f] = bnew
            Uf[f] = u
            var = var - r * r
            mu = mu + r * bnew
            np.maximum(var, 1e-14 * sig, out=var)
            sd = np.sqrt(var)
            z = (f_best - mu) / sd
            if self.acquisition in ("logei", "mace"):    # MACE: the pool by log-EI
                acq = log_h_array(np.ascontiguousarray(z))[0] + np.log(sd)
            elif self.acquisition == "ei":
                acq = sd * np.exp(log_h_array(np.ascontiguousarray(z))[0])
            elif self.acquisition == "ucb":
                acq = -mu + math.sqrt(self.beta) * sd
            else:
                acq = ndtr(z)
            acq = np.where(alive, acq, -np.inf)
            cfg = None
            for i in np.argsort(-acq, kind="stable"):
                if not alive[i]:
                    break
                alive[i] = False
                c = cfgs[i] if cfgs[i] is not None else space.decode(C[i])
                cu = self._encode(study, c)
                kk = self._key_of(cu)
                if kk not in seen and self._apart(cu, Xp) and self._apart(cu, Uf[:f + 1]):
                    cfg, u = c, cu
                    break
            if cfg is None:      # the pool is used up: quasi-random
                cfg = self._startup.sample(study, number)
                u = self._encode(study, cfg)
            seen.add(self._key_of(u))
            out.append(cfg)
        return out

    def _fantasize(self, model: GPModel, Xp: np.ndarray, liar: float | None,
                   nt: int | None) -> GPModel:
        """``model`` conditioned on noise-free fantasies at ``Xp`` (kriging believer:
        the posterior mean; else the constant ``liar``)."""
        if liar is None:
            yp = gp_predict(model, Xp, n_threads=nt)[0]
        else:
            yp = np.full(len(Xp), liar)
        # fantasies are noise-free: the posterior variance collapses around them
        diag = np.full(len(Xp), MIN_NOISE_VAR * model.signal_var + model.jitter)
        try:
            return _append_rows(model, Xp, np.concatenate([model.y, yp]), diag, nt)
        except np.linalg.LinAlgError:
            return gp_fit(np.vstack([model.X, Xp]), np.concatenate([model.y, yp]),
                          kernel=self.kernel, theta0=model.theta, optimize=False,
                          n_threads=nt)

    def _pending_rows(self, study: "Study", pend) -> np.ndarray:
        """Encoded rows of the pending trials ``pend``, cached by trial number (with
        thousands of RUNNING trials, encoding them all on every ask would dominate it)."""
        old = self._pend_cache if self._pend_key == self._key else {}
        cache = {}
        rows = []
        for t in pend:
            k = (t.number, len(t.params))     # a running trial's params may still grow
            r = old.get(k)
            if r is None:
                r = self._encode(study, t.params)
            cache[k] = r
            rows.append(r)
        self._pend_cache, self._pend_key = cache, self._key
        return np.array(rows)

    def _apart(self, u: np.ndarray, Xp: np.ndarray) -> bool:
        """Whether ``u`` is farther than ``pending_radius`` from every pending row."""
        if len(Xp) == 0:
            return True
        return bool(np.sqrt(((Xp - u) ** 2).sum(axis=1)).min() > self.pending_radius)

    @staticmethod
    def _key_of(x: np.ndarray) -> bytes:
        return np.round(x, 9).tobytes()


def _row_keys(M: np.ndarray) -> list[bytes]:
    """``BayesSampler._key_of`` of every row of ``M`` (one rounding and one byte string
    for the whole matrix, sliced per row)."""
    R = np.ascontiguousarray(np.round(np.asarray(M, dtype=np.float64), 9))
    if R.ndim != 2 or len(R) == 0:
        return []
    w = R.shape[1] * 8
    b = R.tobytes()
    return [b[i * w:(i + 1) * w] for i in range(len(R))]


class _Budget(Exception):
    """A bounded refit ran out of likelihood evaluations."""


def _append_rows(model: GPModel, Xn: np.ndarray, y: np.ndarray, diag: np.ndarray,
                 n_threads: int | None) -> GPModel:
    """``model`` conditioned on the extra inputs ``Xn`` (targets: the tail of ``y``,
    whose head replaces ``model.y``) with per-row noise ``diag``: the Cholesky factor
    grows by one block, ``L21 = (L11^{-1} K12)^T`` (a triangular solve, O(n^2 k)) and
    ``L22 = chol(K22 + diag - L21 L21^T)``, instead of an O(n^3) refactorization.

    Raises ``numpy.linalg.LinAlgError`` when the Schur complement is not positive
    definite."""
    from scipy.linalg import solve_triangular
    from scipy.linalg.blas import dtrsv

    from hpcore._kernels import gp as _gpk

    n, k = len(model.y), len(Xn)
    X = model.X
    if k:
        Xn = np.ascontiguousarray(Xn, dtype=np.float64)
        K12 = _gpk.kernel_matrix(model.X, Xn, model.inv_l2, model.signal_var, model.kind,
                                 n_threads)
        K22 = _gpk.kernel_matrix(Xn, Xn, model.inv_l2, model.signal_var, model.kind,
                                 n_threads)
        K22[np.diag_indices(k)] += diag
        B = solve_triangular(model.L, K12, lower=True, check_finite=False)
        L22 = np.linalg.cholesky(K22 - B.T @ B)
        L = np.empty((n + k, n + k))
        L[:n, :n] = model.L
        L[:n, n:] = 0.0
        L[n:, :n] = B.T
        L[n:, n:] = L22
        X = np.vstack([model.X, Xn])
    else:
        L = model.L
    y = np.ascontiguousarray(y, dtype=np.float64)
    # alpha = L^-T L^-1 y on the Fortran view of L (L.T, upper): no copy of the factor
    alpha = dtrsv(L.T, dtrsv(L.T, y, lower=0, trans=1), lower=0, trans=0)
    lml = float(-0.5 * y @ alpha - np.log(np.diag(L)).sum() - 0.5 * len(y) * math.log(2 * math.pi))
    return GPModel(X=X, y=y, theta=model.theta, kernel=model.kernel, L=L, alpha=alpha,
                   jitter=model.jitter, log_marginal_likelihood=lml, n_evals=0)
