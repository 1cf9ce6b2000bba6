"""Optimizer adapters (registered on import): every hpcore sampler, with and without each
halving pruner, and the peers of the ``bench`` extra.

Settings, fixed for all (see :class:`~hpcore.bench.registry.Settings`): the same seed;
the same initial design size ``n_initial`` wherever an optimizer has one (hpcore
BayesSampler ``n_startup_trials``, GeneticSampler ``population_size``; Optuna TPE /
GPSampler / CMA-ES ``n_startup_trials``, NSGA-II ``population_size``; scikit-optimize
``n_initial_points``; Hyperopt TPE ``n_startup_jobs``); everything else at the
package's defaults.  Pruners, all with the literature's settings (Li et al. 2018/2020,
Falkner et al. 2018, Optuna's defaults): minimum resource 1 epoch, maximum
``max_resource`` epochs, reduction factor 3.

Peers are imported inside their factories, so ``import hpcore.bench`` needs none of
them; a peer whose package is missing is skipped by the harness with a message.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from hpcore.bench.registry import AskTell, Settings, Suggestion, register_optimizer
from hpcore.space import Categorical, Float, Int

__all__ = ["HpcoreAskTell", "HyperoptAskTell", "OptunaAskTell", "SkoptAskTell", "ETA",
           "MIN_RESOURCE"]

ETA = 3
MIN_RESOURCE = 1


# ----------------------------------------------------------------------------- hpcore
class _HpSuggestion(Suggestion):
    __slots__ = ()

    def report(self, step: int, value: float) -> bool:
        self.handle.report(int(step), float(value))
        return self.handle.should_prune()


class HpcoreAskTell(AskTell):
    """An hpcore :class:`~hpcore.Study` driven by ask/tell (public API only)."""

    def __init__(self, space, sampler, pruner=None) -> None:
        import hpcore as hp

        self._hp = hp
        self.study = hp.Study(space, sampler=sampler, pruner=pruner, direction="minimize")

    def ask(self) -> Suggestion:
        trial = self.study.ask()
        return _HpSuggestion(dict(trial.params), trial)

    def tell(self, suggestion: Suggestion, value: float, pruned: bool = False) -> None:
        if pruned:
            self.study.tell(suggestion.handle, state=self._hp.TrialState.PRUNED)
        else:
            self.study.tell(suggestion.handle, float(value))


def _hp_pruner(kind: str | None, s: Settings):
    import hpcore as hp

    if kind is None:
        return None
    R = s.max_resource
    if kind == "sh":
        return hp.SuccessiveHalving(MIN_RESOURCE, R, ETA)
    if kind == "hyperband":
        return hp.Hyperband(MIN_RESOURCE, R, ETA, seed=s.seed)
    if kind == "asha":
        return hp.ASHA(MIN_RESOURCE, R, ETA)
    raise ValueError(f"pruner: unknown hpcore pruner {kind!r}")


_HP_SAMPLERS: dict[str, Callable[[Settings], Any]] = {
    "random": lambda s: __import__("hpcore").RandomSampler(seed=s.seed),
    "qmc": lambda s: __import__("hpcore").QMCSampler("sobol", seed=s.seed),
    "bayes": lambda s: __import__("hpcore").BayesSampler(n_startup_trials=s.n_initial,
                                                         seed=s.seed, n_threads=s.n_threads),
    "genetic": lambda s: __import__("hpcore").GeneticSampler(max(2, s.n_initial), seed=s.seed),
}


def _hp_factory(sampler: str, pruner: str | None):
    def make(space, s: Settings) -> AskTell:
        return HpcoreAskTell(space, _HP_SAMPLERS[sampler](s), _hp_pruner(pruner, s))
    return make


def _grid_factory(space, s: Settings) -> AskTell:
    import hpcore as hp

    return HpcoreAskTell(space, hp.GridSampler(seed=s.seed))


# ----------------------------------------------------------------------------- optuna
class _OptunaSuggestion(Suggestion):
    __slots__ = ()

    def report(self, step: int, value: float) -> bool:
        self.handle.report(float(value), int(step))
        return self.handle.should_prune()


class OptunaAskTell(AskTell):
    """An Optuna study driven by ask/tell; ``ask`` includes the ``suggest_*`` calls
    (where define-by-run samplers do their work).

    ``params_source``: an optional callable returning the next configuration, enqueued
    before each ask (``study.enqueue_trial``) -- to run Optuna's pruners on exactly the
    configurations another optimizer proposes.
    """

    def __init__(self, space, sampler, pruner=None, seed: int = 0,
                 params_source: Callable[[], dict] | None = None) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.space = space
        self.study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner,
                                         study_name=f"hpcore-bench-{seed}")
        self.params_source = params_source

    def _suggest(self, trial) -> dict[str, Any]:
        out = {}
        for name in self.space.names:
            d = self.space[name]
            if isinstance(d, Categorical):
                out[name] = trial.suggest_categorical(name, list(d.choices))
            elif isinstance(d, Int):
                out[name] = trial.suggest_int(name, d.low, d.high, log=d.log)
            else:
                out[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
        return out

    def ask(self) -> Suggestion:
        if self.params_source is not None:
            self.study.enqueue_trial(self.params_source())
        trial = self.study.ask()
        return _OptunaSuggestion(self._suggest(trial), trial)

    def tell(self, suggestion: Suggestion, value: float, pruned: bool = False) -> None:
        if pruned:
            self.study.tell(suggestion.handle, state=self._optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(suggestion.handle, float(value))


def _optuna_sampler(kind: str, s: Settings):
    import optuna

    smp = optuna.samplers
    if kind == "tpe":
        return smp.TPESampler(n_startup_trials=s.n_initial, seed=s.seed)
    if kind == "gp":
        return smp.GPSampler(n_startup_trials=s.n_initial, seed=s.seed)
    if kind == "cmaes":
        return smp.CmaEsSampler(n_startup_trials=s.n_initial, seed=s.seed,
                                warn_independent_sampling=False)
    if kind == "nsga2":
        return smp.NSGAIISampler(population_size=max(2, s.n_initial), seed=s.seed)
    if kind == "random":
        return smp.RandomSampler(seed=s.seed)
    raise ValueError(f"sampler: unknown Optuna sampler {kind!r}")


def _optuna_pruner(kind: str | None, s: Settings):
    import optuna

    if kind is None:
        return None
    if kind == "sh":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=MIN_RESOURCE,
                                                      reduction_factor=ETA)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=MIN_RESOURCE,
                                              max_resource=s.max_resource, reduction_factor=ETA)
    if kind == "median":
        return optuna.pruners.MedianPruner()
    raise ValueError(f"pruner: unknown Optuna pruner {kind!r}")


def _optuna_factory(sampler: str, pruner: str | None):
    def make(space, s: Settings) -> AskTell:
        return OptunaAskTell(space, _optuna_sampler(sampler, s), _optuna_pruner(pruner, s),
                             seed=s.seed)
    return make


# ----------------------------------------------------------------------------- skopt
class SkoptAskTell(AskTell):
    """scikit-optimize's ``Optimizer`` (GP, its defaults) by ask/tell; most of its work
    happens in ``tell`` (the model fit), which the harness times as suggestion time."""

    def __init__(self, space, s: Settings) -> None:
        from skopt import Optimizer
        from skopt.space import Categorical as SkCat
        from skopt.space import Integer, Real

        dims = []
        self.names = list(space.names)
        for name in self.names:
            d = space[name]
            prior = "log-uniform" if getattr(d, "log", False) else "uniform"
            if isinstance(d, Categorical):
                dims.append(SkCat(list(d.choices), name=name))
            elif isinstance(d, Int):
                dims.append(Integer(d.low, d.high, prior=prior, name=name))
            else:
                dims.append(Real(d.low, d.high, prior=prior, name=name))
        self.opt = Optimizer(dims, base_estimator="GP", n_initial_points=s.n_initial,
                             random_state=s.seed)

    def ask(self) -> Suggestion:
        x = self.opt.ask()
        params = {n: (v.item() if isinstance(v, np.generic) else v) for n, v in zip(self.names, x)}
        return Suggestion(params, x)

    def tell(self, suggestion: Suggestion, value: float, pruned: bool = False) -> None:
        self.opt.tell(suggestion.handle, float(value))


# ----------------------------------------------------------------------------- hyperopt
class HyperoptAskTell(AskTell):
    """Hyperopt's TPE by ask/tell, with the same calls ``fmin`` makes (``new_trial_ids``,
    ``tpe.suggest``, ``insert_trial_docs``, then the finished document)."""

    def __init__(self, space, s: Settings) -> None:
        import functools

        from hyperopt import Trials, base, hp, tpe
        from hyperopt.pyll import scope

        self._base = base
        self.names = list(space.names)
        self.space = space
        hspace = {}
        for name in self.names:
            d = space[name]
            if isinstance(d, Categorical):
                hspace[name] = hp.choice(name, list(d.choices))
            elif isinstance(d, Int):
                if d.log:
                    hspace[name] = scope.int(hp.qloguniform(name, math.log(d.low),
                                                            math.log(d.high), 1))
                else:
                    hspace[name] = scope.int(hp.quniform(name, d.low, d.high, 1))
            elif d.log:
                hspace[name] = hp.loguniform(name, math.log(d.low), math.log(d.high))
            else:
                hspace[name] = hp.uniform(name, d.low, d.high)
        self.hspace = hspace
        self.domain = base.Domain(lambda p: 0.0, hspace)
        self.trials = Trials()
        self.algo = functools.partial(tpe.suggest, n_startup_jobs=s.n_initial)
        self.rstate = np.random.default_rng(s.seed)

    def ask(self) -> Suggestion:
        from hyperopt import space_eval

        ids = self.trials.new_trial_ids(1)
        self.trials.refresh()
        docs = self.algo(ids, self.domain, self.trials, self.rstate.integers(2 ** 31 - 1))
        self.trials.insert_trial_docs(docs)
        self.trials.refresh()
        doc = docs[0]
        vals = {k: v[0] for k, v in doc["misc"]["vals"].items() if len(v)}
        raw = space_eval(self.hspace, vals)
        params = {}
        for name in self.names:
            d, v = self.space[name], raw[name]
            if isinstance(d, Int):
                v = int(min(max(int(v), d.low), d.high))
            elif isinstance(d, Float):
                v = float(min(max(float(v), d.low), d.high))
            elif isinstance(v, np.generic):
                v = v.item()
            params[name] = v
        return Suggestion(params, doc["tid"])

    def tell(self, suggestion: Suggestion, value: float, pruned: bool = False) -> None:
        base = self._base
        for doc in self.trials._dynamic_trials:
            if doc["tid"] == suggestion.handle:
                doc["state"] = base.JOB_STATE_DONE
                doc["result"] = {"loss": float(value), "status": base.STATUS_OK}
                break
        self.trials.refresh()


# ----------------------------------------------------------------------------- registry
def _register() -> None:
    descr = {"random": "RandomSampler", "qmc": "QMCSampler (scrambled Sobol)",
             "bayes": "BayesSampler (GP, log-EI)", "genetic": "GeneticSampler"}
    pr_descr = {"sh": "SuccessiveHalving", "hyperband": "Hyperband", "asha": "ASHA"}
    for smp in ("random", "qmc", "bayes", "genetic"):
        register_optimizer(f"hpcore-{smp}", _hp_factory(smp, None), family="hpcore",
                           description=f"hpcore {descr[smp]}")
        for pr in ("sh", "hyperband", "asha"):
            register_optimizer(f"hpcore-{smp}+{pr}", _hp_factory(smp, pr), pruner=pr,
                               family="hpcore",
                               description=f"hpcore {descr[smp]} + {pr_descr[pr]}(1, R, 3)")
    register_optimizer("hpcore-grid", _grid_factory, finite_only=True, family="hpcore",
                       description="hpcore GridSampler (finite spaces)")
    odescr = {"tpe": "TPESampler", "gp": "GPSampler", "cmaes": "CmaEsSampler",
              "nsga2": "NSGAIISampler", "random": "RandomSampler"}
    req = {"gp": ("optuna", "torch"), "cmaes": ("optuna", "cmaes")}
    for smp in ("tpe", "gp", "cmaes", "nsga2", "random"):
        register_optimizer(f"optuna-{smp}", _optuna_factory(smp, None),
                           requires=req.get(smp, ("optuna",)), family="optuna",
                           description=f"Optuna {odescr[smp]}")
    for smp in ("tpe", "random"):
        for pr, pd in (("sh", "SuccessiveHalvingPruner"), ("hyperband", "HyperbandPruner")):
            register_optimizer(f"optuna-{smp}+{pr}", _optuna_factory(smp, pr), pruner=pr,
                               requires=("optuna",), family="optuna",
                               description=f"Optuna {odescr[smp]} + {pd}(1, R, 3)")
    register_optimizer("skopt-gp", SkoptAskTell, requires=("skopt",), family="skopt",
                       description="scikit-optimize Optimizer(GP, gp_hedge)")
    register_optimizer("hyperopt-tpe", HyperoptAskTell, requires=("hyperopt",),
                       family="hyperopt", description="Hyperopt tpe.suggest")


_register()
