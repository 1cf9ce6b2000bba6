"""Quality per epoch: Hyperband (and friends) vs plain random search on digits.

Task: scikit-learn ``load_digits``, standardized, a stratified 2/3 train, 1/3
validation split; an ``SGDClassifier`` (``--model mlp``: ``MLPClassifier``) trained
with ``partial_fit`` one epoch at a time for up to 27 epochs, reporting validation
accuracy after each epoch (maximize).  The same ``RandomSampler(seed)`` proposes the
same configurations to every method (trial ``n`` gets configuration ``n``), so the
question is how many epochs each pruner spends to find the best final score among
them.

For every seed, the script reports per method: the best validation accuracy of a
trial that trained all 27 epochs, the total epochs spent, and the ratio to random
search's epochs.  Acceptance: Hyperband reaches random search's best score with at
most one third of its epochs.

Usage: ``.venv/bin/python bench/bench_halving_quality.py [--seeds 5] [--model sgd|mlp]``;
writes ``bench/results/halving_quality_<model>.json`` and ``.md``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import SGDClassifier  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import hpcore as hp  # noqa: E402

MAX_EPOCHS, ETA = 27, 3
RESULTS = Path(__file__).resolve().parent / "results"

SPACES = {
    "sgd": {
        "alpha": hp.Float(1e-7, 1e-1, log=True),
        "eta0": hp.Float(1e-5, 1.0, log=True),
        "learning_rate": hp.Categorical(["constant", "invscaling", "adaptive", "optimal"]),
        "loss": hp.Categorical(["hinge", "log_loss", "modified_huber", "perceptron"]),
        "penalty": hp.Categorical(["l2", "l1", "elasticnet"]),
    },
    "mlp": {
        "hidden": hp.Int(8, 256, log=True),
        "alpha": hp.Float(1e-6, 1e-1, log=True),
        "learning_rate_init": hp.Float(1e-5, 1e-1, log=True),
        "batch_size": hp.Int(16, 256, log=True),
    },
}


def load_data(seed: int = 0):
    X, y = load_digits(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=1 / 3, stratify=y, random_state=seed)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xva), ytr, yva


def make_model(model: str, p: dict, number: int):
    if model == "sgd":
        return SGDClassifier(alpha=p["alpha"], eta0=p["eta0"], learning_rate=p["learning_rate"],
                             loss=p["loss"], penalty=p["penalty"], random_state=number)
    return MLPClassifier(hidden_layer_sizes=(p["hidden"],), alpha=p["alpha"],
                         learning_rate_init=p["learning_rate_init"], batch_size=p["batch_size"],
                         random_state=number)


def make_objective(model: str, data, counter: list[int]):
    Xtr, Xva, ytr, yva = data
    classes = np.unique(ytr)

    def objective(trial):
        clf = make_model(model, trial.params, trial.number)
        score = 0.0
        for epoch in range(1, MAX_EPOCHS + 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.partial_fit(Xtr, ytr, classes=classes)
            counter[0] += 1
            score = float(clf.score(Xva, yva))
            trial.report(epoch, score)
            if trial.should_prune():
                raise hp.TrialPruned()
        return score

    return objective


METHODS = {
    "random": lambda: None,
    "hyperband": lambda: hp.Hyperband(1, MAX_EPOCHS, ETA),  # default: asynchronous brackets
    "hyperband_sync": lambda: hp.Hyperband(1, MAX_EPOCHS, ETA, asynchronous=False),
    "asha": lambda: hp.ASHA(1, MAX_EPOCHS, ETA),
    "successive_halving": lambda: hp.SuccessiveHalving(1, MAX_EPOCHS, ETA),
    "median": lambda: hp.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
}


def run(model: str, method: str, seed: int, n_trials: int, data) -> dict:
    counter = [0]
    study = hp.Study(SPACES[model], sampler=hp.RandomSampler(seed=seed), pruner=METHODS[method](),
                     direction="maximize")
    t0 = time.perf_counter()
    study.optimize(make_objective(model, data, counter), n_trials=n_trials)
    full = [t for t in study.trials if t.state == hp.TrialState.COMPLETE]
    return {"best": max(t.values[0] for t in full), "epochs": counter[0],
            "n_full": len(full), "seconds": time.perf_counter() - t0,
            "best_trial": max(full, key=lambda t: (t.values[0], -t.number)).number}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--model", choices=["sgd", "mlp"], default="sgd")
    ap.add_argument("--iterations", type=int, default=2,
                    help="Hyperband iterations' worth of trials (49 trials each for R=27, eta=3)")
    args = ap.parse_args()
    period = sum(b.n[0] for b in hp.kernels.hyperband_brackets(1, MAX_EPOCHS, ETA))
    n_trials = args.iterations * period
    data = load_data(0)
    rows = []
    with threadpool_limits(1):
        for seed in range(args.seeds):
            res = {m: run(args.model, m, seed, n_trials, data) for m in METHODS}
            base = res["random"]
            for m, r in res.items():
                r["epoch_ratio"] = r["epochs"] / base["epochs"]
                r["reaches_random_best"] = r["best"] >= base["best"]
                r["gap_to_random_best"] = base["best"] - r["best"]
            rows.append({"seed": seed, **res})
            print(f"seed {seed}: " + "  ".join(
                f"{m} {r['best']:.4f}/{r['epochs']}ep ({r['epoch_ratio']:.2f})"
                for m, r in res.items()), flush=True)
    summary = {}
    for m in METHODS:
        summary[m] = {
            "seeds_reaching_random_best": sum(r[m]["reaches_random_best"] for r in rows),
            "mean_best": float(np.mean([r[m]["best"] for r in rows])),
            "max_gap_to_random_best": float(max(r[m]["gap_to_random_best"] for r in rows)),
            "mean_epoch_ratio": float(np.mean([r[m]["epoch_ratio"] for r in rows])),
            "max_epoch_ratio": float(max(r[m]["epoch_ratio"] for r in rows)),
        }
    hb = summary["hyperband"]
    accept = hb["seeds_reaching_random_best"] == len(rows) and hb["max_epoch_ratio"] <= 1 / 3
    out = {"model": args.model, "n_trials": n_trials, "max_epochs": MAX_EPOCHS, "eta": ETA,
           "seeds": args.seeds, "rows": rows, "summary": summary,
           "acceptance_hyperband_all_seeds": bool(accept)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"halving_quality_{args.model}.json").write_text(json.dumps(out, indent=2))
    lines = [f"# Digits / {args.model}: best validation accuracy vs total epochs",
             "", f"{n_trials} trials per run (same RandomSampler configurations for every "
             f"method), up to {MAX_EPOCHS} epochs, eta={ETA}, seeds 0..{args.seeds - 1}.", "",
             "| method | seeds reaching random's best | mean best acc | max gap to random's best "
             "| mean epochs / random's | max epochs / random's |", "|---|---:|---:|---:|---:|---:|"]
    for m, s in summary.items():
        lines.append(f"| {m} | {s['seeds_reaching_random_best']}/{len(rows)} | "
                     f"{s['mean_best']:.4f} | {s['max_gap_to_random_best']:.4f} | "
                     f"{s['mean_epoch_ratio']:.3f} | {s['max_epoch_ratio']:.3f} |")
    lines += ["", "Per seed (best acc / epochs):", "",
              "| seed | " + " | ".join(METHODS) + " |", "|---:|" + "---|" * len(METHODS)]
    for r in rows:
        lines.append(f"| {r['seed']} | " + " | ".join(
            f"{r[m]['best']:.4f} / {r[m]['epochs']}" for m in METHODS) + " |")
    lines += ["", f"Acceptance (Hyperband reaches random's best on every seed with <= 1/3 of "
              f"its epochs): {'HOLDS' if accept else 'DOES NOT HOLD'}", ""]
    (RESULTS / f"halving_quality_{args.model}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
