"""Tune an SVM on the digits data set over a Dask cluster.

Starts a ``distributed.LocalCluster`` (two worker processes, one thread each), then
runs a random search over an SVC's C, gamma and kernel with ``hp.DaskExecutor``:
sampling and storage stay in this process, each trial (a 3-fold cross-validation) is
one Dask task.  On a real cluster, connect a ``Client`` to its scheduler instead and
pass ``host=`` an address of this machine that the workers can reach.

Run: ``.venv/bin/python python/tune_dask_cluster.py`` (about half a minute on 2 cores).
"""
from __future__ import annotations

import time

import hpcore as hp


def objective(trial: hp.Trial) -> float:
    """Mean 3-fold cross-validated accuracy of an SVC on the digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    p = trial.params
    model = SVC(C=p["C"], kernel=p["kernel"], gamma=p["gamma"],
                degree=p.get("degree", 3))
    return float(cross_val_score(model, X / 16.0, y, cv=3, n_jobs=1).mean())


def main(n_trials: int = 40, seed: int = 0) -> hp.Study:
    from distributed import Client, LocalCluster

    space = hp.Space({
        "C": hp.Float(1e-2, 1e3, log=True),
        "gamma": hp.Float(1e-4, 1e0, log=True),
        "kernel": hp.Categorical(["rbf", "poly", "sigmoid"]),
        "degree": hp.Int(2, 4, condition={"kernel": "poly"}),
    })
    study = hp.Study(space, sampler=hp.RandomSampler(seed=seed), direction="maximize")
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        print(f"cluster: {len(client.nthreads())} workers, dashboard {client.dashboard_link}")
        study.optimize(objective, n_trials=n_trials, executor=hp.DaskExecutor(client))
    elapsed = time.perf_counter() - t0
    states = [t.state.name for t in study.trials]
    print(f"{len(states)} trials in {elapsed:.1f} s "
          f"({states.count('COMPLETE')} complete, {states.count('FAIL')} failed)")
    print(f"best accuracy: {study.best_value:.4f}")
    print(f"best params:   {study.best_params}")
    return study


if __name__ == "__main__":
    main()
