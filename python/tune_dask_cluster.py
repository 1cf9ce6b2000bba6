"""Tune an SVM on the digits data set over a Dask cluster.

Starts a ``distributed.LocalCluster`` (two worker processes, one thread each), or
connects to a running scheduler (``--scheduler tcp://host:8786``, e.g. one started by
``dask_jobqueue.SLURMCluster``: see the README, "Running on a cluster"), then runs a
Bayesian search over an SVC's C, gamma and kernel with ``hp.DaskExecutor``: sampling,
storage and pruning stay in this process, each trial (a 3-fold cross-validation) is one
Dask task.  The data set is loaded here once and travels inside the objective, which
the executor sends once per worker (not per trial); each trial's OpenMP/BLAS threads
are capped at its worker's share of the cores.

``--deterministic`` runs in lagged mode (``optimize(..., lag=4)``): the same seed then
gives the same trials however many workers the cluster has.

Run: ``.venv/bin/python python/tune_dask_cluster.py [--quick] [--trials N]
[--deterministic] [--scheduler ADDRESS] [--db PATH]`` (``--quick``: 8 trials on a third
of the data, well under a minute on 2 cores; default 40 trials, about half a minute).
"""
from __future__ import annotations

import argparse
import time

import hpcore as hp


class CVObjective:
    """Mean 3-fold cross-validated accuracy of an SVC on ``(X, y)``.

    A picklable class holding the data: the executor sends it (and the data) to each
    worker once per run, so a trial's task carries only its parameters."""

    def __init__(self, X, y) -> None:
        self.X, self.y = X, y

    def __call__(self, trial: hp.Trial) -> float:
        from sklearn.model_selection import cross_val_score
        from sklearn.svm import SVC

        p = trial.params
        model = SVC(C=p["C"], kernel=p["kernel"], gamma=p["gamma"], degree=p.get("degree", 3))
        return float(cross_val_score(model, self.X, self.y, cv=3, n_jobs=1).mean())


def make_space() -> hp.Space:
    return hp.Space({
        "C": hp.Float(1e-2, 1e3, log=True),
        "gamma": hp.Float(1e-4, 1e0, log=True),
        "kernel": hp.Categorical(["rbf", "poly", "sigmoid"]),
        "degree": hp.Int(2, 4, condition={"kernel": "poly"}),
    })


def main(argv=None) -> hp.Study:
    ap = argparse.ArgumentParser(description="Tune an SVC on digits over a Dask cluster")
    ap.add_argument("--quick", action="store_true", help="8 trials on a third of the data")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--deterministic", action="store_true",
                    help="lagged mode (lag=4): the same trials for any number of workers")
    ap.add_argument("--scheduler", default=None,
                    help="address of a running Dask scheduler (default: a LocalCluster)")
    ap.add_argument("--db", default=None, help="SQLite file for the study (default: memory)")
    args = ap.parse_args(argv)

    from distributed import Client, LocalCluster
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    if args.quick:
        X, y = X[::3], y[::3]
    n_trials = args.trials or (8 if args.quick else 40)
    study = hp.Study(make_space(), sampler=hp.BayesSampler(seed=args.seed, n_startup_trials=5),
                     direction="maximize",
                     storage=None if args.db is None else f"sqlite:///{args.db}",
                     name="dask-svc" if args.db else None)
    options = {"lag": 4} if args.deterministic else {}
    t0 = time.perf_counter()
    if args.scheduler:
        cluster = None
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    try:
        print(f"cluster: {len(client.nthreads())} workers, dashboard {client.dashboard_link}")
        study.optimize(CVObjective(X, y), n_trials=n_trials,
                       executor=hp.DaskExecutor(client), **options)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    elapsed = time.perf_counter() - t0
    states = [t.state.name for t in study.trials]
    print(f"{len(states)} trials in {elapsed:.1f} s "
          f"({states.count('COMPLETE')} complete, {states.count('FAIL')} failed)")
    print(f"best accuracy: {study.best_value:.4f}")
    print(f"best params:   {study.best_params}")
    return study


if __name__ == "__main__":   # needed: Dask's worker processes re-import this script
    main()
