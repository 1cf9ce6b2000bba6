"""HPSearchCV's default sampler against random search (the figure in its docstring).

RBF SVC on scikit-learn's digits, ``C`` in [1e-2, 1e3] and ``gamma`` in [1e-5, 1e-1]
(both log), 3-fold CV accuracy, 20 trials, seeds 0-4; the default sampler
(``sampler=None``: BayesSampler with its defaults) against ``RandomSampler``.  Quality
only, so no timing::

    nice -n 19 .venv/bin/python bench/bench_searchcv_default.py [--seeds 5] [--n-trials 20]
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

import hpcore as hp  # noqa: E402
from hpcore.sklearn import HPSearchCV  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n-trials", type=int, default=20)
    args = ap.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    space = {"C": hp.Float(1e-2, 1e3, log=True), "gamma": hp.Float(1e-5, 1e-1, log=True)}
    best = {"default": [], "random": []}
    for s in range(args.seeds):
        for name, smp in (("default", None), ("random", hp.RandomSampler(seed=s))):
            cv = HPSearchCV(SVC(), space, sampler=smp, n_trials=args.n_trials, cv=3,
                            random_state=s, refit=False).fit(X, y)
            best[name].append(float(cv.best_score_))
    for name, v in best.items():
        v = np.asarray(v)
        print(f"{name}: mean best CV accuracy {v.mean():.4f} +- "
              f"{v.std(ddof=1) / np.sqrt(len(v)):.4f} (SE, {len(v)} seeds): "
              + ", ".join(f"{x:.4f}" for x in v))


if __name__ == "__main__":
    main()
