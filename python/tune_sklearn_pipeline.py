"""Tune an existing scikit-learn pipeline with HPSearchCV, a drop-in for GridSearchCV.

The pipeline (scaling -> PCA -> RBF SVC on scikit-learn's digits) is left as it is; only
the search object changes.  Four searches on the same 5-fold splits:

1. ``GridSearchCV`` over a 4 x 4 x 3 grid (the baseline);
2. ``HPSearchCV`` with the same grid: the same best parameters and scores;
3. ``HPSearchCV`` over continuous log-scaled ranges with Bayesian optimization;
4. the same with successive halving on the number of training samples (as
   ``HalvingRandomSearchCV``) and twice the candidates, since most of them stop on a
   subsample; stored in SQLite: interrupted or re-run, it resumes.

Each is scored on a held-out test split.  Run:
``python python/tune_sklearn_pipeline.py [--quick] [--trials N] [--db PATH]``
(``--quick``: a smaller grid, 3 folds and fewer trials; well under a minute).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import hpcore as hp
from hpcore.sklearn import HPSearchCV


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grid, 3 folds, few trials")
    ap.add_argument("--trials", type=int, default=None, help="trials of the Bayesian searches")
    ap.add_argument("--db", default=None, help="SQLite file of the resumable search")
    args = ap.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    if args.quick:
        X, y = X[:900], y[:900]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA(random_state=0)),
                     ("svc", SVC())])
    cv = StratifiedKFold(3 if args.quick else 5, shuffle=True, random_state=0)
    if args.quick:
        grid = {"pca__n_components": [20, 40], "svc__C": [1.0, 10.0],
                "svc__gamma": [1e-3, 1e-2]}
    else:
        grid = {"pca__n_components": [10, 20, 30, 40], "svc__C": [0.1, 1.0, 10.0, 100.0],
                "svc__gamma": [1e-3, 1e-2, 1e-1]}
    n_trials = args.trials or (8 if args.quick else 30)
    space = {"pca__n_components": hp.Int(5, 40),
             "svc__C": hp.Float(1e-2, 1e3, log=True),
             "svc__gamma": hp.Float(1e-5, 1e0, log=True)}
    db = args.db or os.path.join(tempfile.mkdtemp(prefix="hpcore-"), "pipeline.db")

    searches = {
        "GridSearchCV": GridSearchCV(pipe, grid, cv=cv),
        "HPSearchCV grid": HPSearchCV(pipe, grid, cv=cv),
        "HPSearchCV bayes": HPSearchCV(pipe, space, n_trials=n_trials, cv=cv, random_state=0),
        "HPSearchCV bayes+halving": HPSearchCV(
            pipe, space, n_trials=2 * n_trials, cv=cv, random_state=0,
            pruner=hp.SuccessiveHalving(1, 9, eta=3), resource="n_samples",
            storage=f"sqlite:///{db}", study_name="digits-svc"),
    }
    rows = {}
    print(f"{'search':26s} {'fits':>5s} {'seconds':>8s} {'cv score':>9s} {'test':>6s}  best params")
    for name, search in searches.items():
        t0 = time.perf_counter()
        search.fit(X_train, y_train)
        seconds = time.perf_counter() - t0
        test = search.score(X_test, y_test)
        res = search.cv_results_
        fits = len(res["params"]) * search.n_splits_
        params = ", ".join(f"{k.split('__')[-1]}={v:.3g}" for k, v in
                           sorted(search.best_params_.items()) if k != "n_resources")
        print(f"{name:26s} {fits:5d} {seconds:8.2f} {search.best_score_:9.4f} {test:6.3f}  {params}")
        rows[name] = search.best_score_
    assert searches["HPSearchCV grid"].best_params_ == searches["GridSearchCV"].best_params_

    halving = searches["HPSearchCV bayes+halving"]
    states = [t.state.name for t in halving.study_.trials]
    print(f"\nhalving: {states.count('PRUNED')} of {len(states)} candidates stopped on a "
          f"subsample; rows per level: "
          + ", ".join(f"{int(r)}/9: {int((halving.cv_results_['n_resources'] == r).sum())}"
                      for r in sorted(set(halving.cv_results_['n_resources']))))
    # fitting again resumes the stored study: no new trial, the same result
    again = HPSearchCV(**halving.get_params(deep=False)).fit(X_train, y_train)
    print(f"resumed from {db}: {len(again.study_.trials)} stored trials, "
          f"best cv score {again.best_score_:.4f}")
    return rows


if __name__ == "__main__":
    main()
