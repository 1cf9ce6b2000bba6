"""AutoML on tabular data: pick and tune a scikit-learn pipeline within a time budget.

Searches scaler / feature step (PCA, RFE, SelectKBest) / estimator (logistic
regression with L1/L2/elastic-net, SVC, KNN, forests, gradient boosting, an MLP, and
LightGBM/XGBoost when installed) on scikit-learn's breast-cancer data, prints the
leaderboard, the chosen pipeline or ensemble and its held-out accuracy next to a
default RandomForest's, then shows the MLOps loop: re-tune on new data starting from
the previous best (`warm_start`) and retrain without searching (`refit`).

Run: ``python python/automl_tabular.py [--budget SECONDS] [--quick]`` (60 s by default;
``--quick``: 6 s, for `make demo` and the tests).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from hpcore.automl import AutoML


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds for the search")
    ap.add_argument("--quick", action="store_true", help="a 6-second search")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    budget = 6.0 if args.quick else args.budget

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y,
                                              random_state=args.seed)
    # the first half of the training rows now, the rest "next month"
    half = len(X_tr) // 2
    t0 = time.monotonic()
    automl = AutoML(task="classification", time_budget=budget, seed=args.seed)
    automl.fit(X_tr[:half], y_tr[:half])
    print(f"searched {len(automl.leaderboard_)} pipelines in {time.monotonic() - t0:.1f} s "
          f"(budget {budget:g} s)")
    lb = automl.leaderboard_
    cols = ["number", "pipeline", "state", "score", "fidelity", "fit_time"]
    print(lb[cols].head(8).to_string(index=False) if hasattr(lb, "to_string") else lb[:8])
    print("ensemble:", ", ".join(f"{w:.2f} x {p['estimator']}" for w, p in automl.ensemble_))
    rf = RandomForestClassifier(random_state=args.seed).fit(X_tr[:half], y_tr[:half])
    print(f"test accuracy: hpcore {automl.score(X_te, y_te):.4f}, "
          f"default RandomForest {np.mean(rf.predict(X_te) == y_te):.4f}")

    # new data arrives: re-tune starting from the previous best pipelines ...
    retuned = AutoML(time_budget=budget, seed=args.seed, warm_start=automl).fit(X_tr, y_tr)
    # ... or just retrain the chosen pipeline(s) without searching
    automl.refit(X_tr, y_tr)
    print(f"after new data: re-tuned {retuned.score(X_te, y_te):.4f}, "
          f"refitted {automl.score(X_te, y_te):.4f} test accuracy")


if __name__ == "__main__":
    main()
