"""`hpcore demo`: tune a real scikit-learn model with every method hpcore has.

An RBF SVC on scikit-learn's digits, 3-fold cross-validated accuracy, tuned by each
available sampler with the same trial budget; prints a table and writes a
convergence plot.  The default budget (16 trials per method: a 4 x 4 grid) takes about
20 s on two cores; ``full=True`` (``hpcore demo --full``) runs 64 trials per method
(an 8 x 8 grid), about four times as long.
"""
from __future__ import annotations

import math
import os
import time

import hpcore as hp

N_TRIALS = 16        # the default, short demo: a 4 x 4 grid, 16 trials for every method
N_TRIALS_FULL = 64   # --full: an 8 x 8 grid


def svc_space() -> hp.Space:
    return hp.Space({
        "C": hp.Float(1e-1, 1e3, log=True),
        "gamma": hp.Float(1e-4, 1.0, log=True),
    })


def svc_objective(trial: hp.Trial) -> float:
    """3-fold CV accuracy of an RBF SVC on digits (module level: picklable for workers)."""
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    X, y = _digits()
    model = SVC(C=trial.params["C"], gamma=trial.params["gamma"])
    return float(cross_val_score(model, X, y, cv=3).mean())


_DATA: dict = {}


def _digits():
    if not _DATA:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        _DATA["xy"] = (X / 16.0, y)
    return _DATA["xy"]


def methods(seed: int, n_trials: int = N_TRIALS) -> list[tuple[str, hp.BaseSampler, int]]:
    """(name, sampler, n_jobs) for every method this build of hpcore offers.

    The grid has ``floor(sqrt(n_trials))`` log-spaced points per parameter, so with a
    square ``n_trials`` every method gets the same number of trials.
    """
    side = max(2, math.isqrt(n_trials))
    out: list[tuple[str, hp.BaseSampler, int]] = [
        ("grid", hp.GridSampler(n_points=side, seed=seed), 1),
        ("random (2 processes)", hp.RandomSampler(seed=seed), 2),
        ("sobol", hp.QMCSampler("sobol", seed=seed), 1),
    ]
    if hasattr(hp, "BayesSampler"):
        out.append(("bayes (GP, log-EI)",
                    hp.BayesSampler(seed=seed, n_startup_trials=min(8, n_trials // 2)), 1))
    if hasattr(hp, "GeneticSampler"):
        # at least two generations in the short demo
        out.append(("genetic", hp.GeneticSampler(seed=seed, population_size=max(4, min(10, n_trials // 2))), 1))
    return out


def run(out_dir: str = "demo_out", seed: int = 0, full: bool = False,
        n_trials: int | None = None) -> dict[str, hp.Study]:
    """Run the demo; returns the studies by method name.

    Parameters
    ----------
    out_dir : str
        Folder for the study file (``demo.db``) and ``convergence.png``.
    seed : int
        Seed of every sampler.
    full : bool
        The long version: ``N_TRIALS_FULL`` (64) trials per method instead of
        ``N_TRIALS`` (16).
    n_trials : int, optional
        Trials per method; overrides ``full``.  At least 4.
    """
    if n_trials is None:
        n_trials = N_TRIALS_FULL if full else N_TRIALS
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 4:
        raise ValueError(f"n_trials: need an int >= 4, got {n_trials!r}")
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("the demo needs scikit-learn: pip install 'hpcore[sklearn,plot]'") from exc
    os.makedirs(out_dir, exist_ok=True)
    hp.show_config()
    print(f"\nTuning an RBF SVC on digits (3-fold CV accuracy), {n_trials} trials per method"
          + ("" if full or n_trials != N_TRIALS else " (`hpcore demo --full`: 64)") + "\n")
    studies: dict[str, hp.Study] = {}
    rows = []
    for name, sampler, n_jobs in methods(seed, n_trials):
        study = hp.Study(svc_space(), sampler=sampler, direction="maximize",
                         storage=f"sqlite:///{os.path.join(out_dir, 'demo.db')}",
                         name=f"svc-{name}-{time.time_ns()}")
        t0 = time.perf_counter()
        study.optimize(svc_objective, n_trials=n_trials, n_jobs=n_jobs)
        elapsed = time.perf_counter() - t0
        studies[name] = study
        best = study.best_trial
        rows.append((name, best.values[0], best.params["C"], best.params["gamma"], best.number,
                     len(study.trials), elapsed))
        print(f"  {name:<22} best accuracy {best.values[0]:.4f}  ({elapsed:5.1f} s)", flush=True)
    print()
    header = f"{'method':<22} {'accuracy':>9} {'C':>10} {'gamma':>10} {'found at':>9} {'trials':>7} {'seconds':>8}"
    print(header)
    print("-" * len(header))
    for name, acc, c, g, num, n, sec in sorted(rows, key=lambda r: -r[1]):
        print(f"{name:<22} {acc:>9.4f} {c:>10.4g} {g:>10.3g} {num:>9d} {n:>7d} {sec:>8.1f}")
    try:
        from hpcore.plot import plot_convergence

        path = os.path.join(out_dir, "convergence.png")
        plot_convergence(studies, path, title="RBF SVC on digits: best CV accuracy",
                         ylabel="best 3-fold CV accuracy")
        print(f"\nconvergence plot: {path}")
    except ImportError:
        print("\n(matplotlib not installed: no plot)")
    return studies
