"""Tune an SGDClassifier on scikit-learn's digits with Hyperband, epoch by epoch.

Each trial trains with ``partial_fit`` for up to 27 epochs, reports the validation
accuracy after every epoch, and stops when the Hyperband pruner says so.  The same
search is then run without pruning (same sampler seed, hence the same
configurations) to compare the epochs spent and the best accuracy found.

Run: ``python python/tune_sgd_hyperband.py [--iterations N]`` (about a minute on one core
with the default two iterations).
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import hpcore as hp

MAX_EPOCHS = 27

X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=1 / 3, stratify=y,
                                                  random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
CLASSES = np.unique(y_train)

space = hp.Space({
    "alpha": hp.Float(1e-7, 1e-1, log=True),
    "eta0": hp.Float(1e-5, 1.0, log=True),
    "learning_rate": hp.Categorical(["constant", "invscaling", "adaptive", "optimal"]),
    "loss": hp.Categorical(["hinge", "log_loss", "modified_huber", "perceptron"]),
    "penalty": hp.Categorical(["l2", "l1", "elasticnet"]),
})

epochs_spent = 0


def objective(trial: hp.Trial) -> float:
    global epochs_spent
    clf = SGDClassifier(random_state=trial.number, **trial.params)
    accuracy = 0.0
    for epoch in range(1, MAX_EPOCHS + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.partial_fit(X_train, y_train, classes=CLASSES)
        epochs_spent += 1
        accuracy = clf.score(X_val, y_val)
        trial.report(epoch, accuracy)
        if trial.should_prune():
            raise hp.TrialPruned()
    return accuracy


def search(pruner: hp.BasePruner | None, n_trials: int) -> tuple[hp.Study, int, float]:
    global epochs_spent
    epochs_spent = 0
    study = hp.Study(space, sampler=hp.RandomSampler(seed=0), pruner=pruner,
                     direction="maximize")
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    return study, epochs_spent, time.perf_counter() - t0


if __name__ == "__main__":
    # Two Hyperband iterations: the brackets for R = 27, eta = 3 take 27 + 12 + 6 + 4 trials.
    brackets = hp.kernels.hyperband_brackets(1, MAX_EPOCHS, eta=3)
    for b in brackets:
        print(f"bracket s={b.s}: n_i={list(b.n)}  r_i={[int(r) for r in b.r]}")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2,
                        help="Hyperband iterations (each runs every bracket once)")
    n_iterations = parser.parse_args().iterations
    n_trials = n_iterations * sum(b.n[0] for b in brackets)

    hb, hb_epochs, hb_time = search(hp.Hyperband(1, MAX_EPOCHS, eta=3), n_trials)
    n_pruned = sum(t.state == hp.TrialState.PRUNED for t in hb.trials)
    rs, rs_epochs, rs_time = search(None, n_trials)

    print(f"\n{n_trials} configurations, up to {MAX_EPOCHS} epochs each")
    print(f"Hyperband : best val accuracy {hb.best_value:.4f}, {hb_epochs:5d} epochs, "
          f"{n_pruned} trials pruned, {hb_time:.1f} s")
    print(f"no pruning: best val accuracy {rs.best_value:.4f}, {rs_epochs:5d} epochs, "
          f"{rs_time:.1f} s")
    print(f"Hyperband spent {hb_epochs / rs_epochs:.1%} of the epochs")
    print("best configuration:", hb.best_params)
