"""Quality per epoch: Hyperband (and friends) vs plain random search on digits.

Task: scikit-learn ``load_digits``, standardized, a stratified 2/3 train, 1/3
validation split; an ``SGDClassifier`` (``--model mlp``: ``MLPClassifier``) trained
with ``partial_fit`` one epoch at a time for up to 27 epochs, reporting validation
accuracy after each epoch (maximize).  Every method samples with
``RandomSampler(seed)``: trial ``n`` gets the same configuration in every method.

Per seed, random search runs ``--iterations * 49`` trials of 27 epochs (``E``
epochs in all; its best validation accuracy is ``S``).  Then each pruner runs

* budget-matched (the acceptance protocol): trials are started while the total
  stays within ``E / 3`` epochs (a trial starts only if 27 more epochs fit), so it
  may try more configurations than random search; it "reaches" random search when
  its best trial that trained all 27 epochs scores ``>= S``;
* same configurations (informative, Hyperband only): the same number of trials as
  random search; epochs spent relative to ``E``.

Usage: ``.venv/bin/python bench/bench_halving_quality.py [--seeds 5] [--model sgd|mlp]
[--tag SUFFIX]``; writes ``bench/results/halving_quality_<model><tag>.json`` and ``.md``.
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


def run(model: str, method: str, seed: int, data, *, n_trials: int | None = None,
        epoch_cap: float | None = None) -> dict:
    """Run ``n_trials`` trials, or start trials while ``epoch_cap`` cannot be exceeded."""
    counter = [0]
    study = hp.Study(SPACES[model], sampler=hp.RandomSampler(seed=seed), pruner=METHODS[method](),
                     direction="maximize")
    objective = make_objective(model, data, counter)
    t0 = time.perf_counter()
    if n_trials is not None:
        study.optimize(objective, n_trials=n_trials)
    else:
        while counter[0] + MAX_EPOCHS <= epoch_cap:
            study.optimize(objective, n_trials=1)
    full = [t for t in study.trials if t.state == hp.TrialState.COMPLETE]
    best = max(full, key=lambda t: (t.values[0], -t.number)) if full else None
    return {"best": best.values[0] if best else float("-inf"), "epochs": counter[0],
            "n_trials": len(study.trials), "n_full": len(full),
            "seconds": time.perf_counter() - t0, "best_trial": best.number if best else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--model", choices=["sgd", "mlp"], default="sgd")
    ap.add_argument("--tag", default="",
                    help="suffix of the result files (e.g. _10seeds), to keep several runs")
    ap.add_argument("--iterations", type=int, default=2,
                    help="Hyperband iterations' worth of trials (49 trials each for R=27, eta=3)")
    args = ap.parse_args()
    period = sum(b.n[0] for b in hp.kernels.hyperband_brackets(1, MAX_EPOCHS, ETA))
    n_trials = args.iterations * period
    data = load_data(0)
    rows: list[dict] = []
    pruners = [m for m in METHODS if m != "random"]
    with threadpool_limits(1):
        for seed in range(args.seeds):
            base = run(args.model, "random", seed, data, n_trials=n_trials)
            cap = base["epochs"] / 3
            budget = {m: run(args.model, m, seed, data, epoch_cap=cap) for m in pruners}
            same = run(args.model, "hyperband", seed, data, n_trials=n_trials)
            for r in list(budget.values()) + [same]:
                r["epoch_ratio"] = r["epochs"] / base["epochs"]
                r["reaches_random_best"] = r["best"] >= base["best"]
                r["gap_to_random_best"] = base["best"] - r["best"]
            rows.append({"seed": seed, "random": base, "budget_matched": budget,
                         "hyperband_same_configs": same})
            print(f"seed {seed}: random {base['best']:.4f}/{base['epochs']}ep  " + "  ".join(
                f"{m} {r['best']:.4f}/{r['epochs']}ep/{r['n_trials']}tr"
                for m, r in budget.items())
                + f"  | hyperband same configs {same['best']:.4f}/{same['epochs']}ep "
                  f"({same['epoch_ratio']:.2f})", flush=True)
    summary = {}
    for m in pruners:
        rs = [r["budget_matched"][m] for r in rows]
        summary[m] = {
            "seeds_reaching_random_best": sum(r["reaches_random_best"] for r in rs),
            "mean_best": float(np.mean([r["best"] for r in rs])),
            "max_gap_to_random_best": float(max(r["gap_to_random_best"] for r in rs)),
            "mean_epoch_ratio": float(np.mean([r["epoch_ratio"] for r in rs])),
            "max_epoch_ratio": float(max(r["epoch_ratio"] for r in rs)),
            "mean_trials": float(np.mean([r["n_trials"] for r in rs])),
        }
    same = [r["hyperband_same_configs"] for r in rows]
    summary_same = {
        "seeds_reaching_random_best": sum(r["reaches_random_best"] for r in same),
        "max_gap_to_random_best": float(max(r["gap_to_random_best"] for r in same)),
        "mean_epoch_ratio": float(np.mean([r["epoch_ratio"] for r in same])),
        "max_epoch_ratio": float(max(r["epoch_ratio"] for r in same)),
    }
    hb = summary["hyperband"]
    accept = hb["seeds_reaching_random_best"] == len(rows) and hb["max_epoch_ratio"] <= 1 / 3
    out = {"model": args.model, "random_trials": n_trials, "max_epochs": MAX_EPOCHS, "eta": ETA,
           "seeds": args.seeds, "rows": rows, "summary_budget_matched": summary,
           "summary_hyperband_same_configs": summary_same,
           "acceptance_hyperband_all_seeds": bool(accept)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"halving_quality_{args.model}{args.tag}.json").write_text(json.dumps(out, indent=2))
    lines = [f"# Digits / {args.model}: best validation accuracy vs total epochs", "",
             f"Random search: {n_trials} trials x {MAX_EPOCHS} epochs per seed (seeds 0.."
             f"{args.seeds - 1}); pruners (eta={ETA}, resources 1..{MAX_EPOCHS}) start trials "
             "while their total stays within 1/3 of random search's epochs.  Same "
             "RandomSampler configurations by trial number everywhere.", "",
             "| method | seeds reaching random's best | mean best acc | max gap to random's best "
             "| mean epochs / random's | max epochs / random's | mean trials |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines.append(f"| random | - | {np.mean([r['random']['best'] for r in rows]):.4f} | 0 | 1 | 1 "
                 f"| {n_trials} |")
    for m, s in summary.items():
        lines.append(f"| {m} | {s['seeds_reaching_random_best']}/{len(rows)} | "
                     f"{s['mean_best']:.4f} | {s['max_gap_to_random_best']:.4f} | "
                     f"{s['mean_epoch_ratio']:.3f} | {s['max_epoch_ratio']:.3f} | "
                     f"{s['mean_trials']:.0f} |")
    lines += ["", f"Hyperband on random search's {n_trials} configurations (no extra trials): "
              f"reaches random's best on {summary_same['seeds_reaching_random_best']}/{len(rows)}"
              f" seeds (max gap {summary_same['max_gap_to_random_best']:.4f}), epochs / "
              f"random's: mean {summary_same['mean_epoch_ratio']:.3f}, max "
              f"{summary_same['max_epoch_ratio']:.3f}.", "",
              "Per seed, budget-matched (best acc / epochs / trials):", "",
              "| seed | random | " + " | ".join(pruners) + " |", "|---:|" + "---|" * (len(pruners) + 1)]
    for r in rows:
        b = r["random"]
        lines.append(f"| {r['seed']} | {b['best']:.4f} / {b['epochs']} / {b['n_trials']} | "
                     + " | ".join(f"{r['budget_matched'][m]['best']:.4f} / "
                                  f"{r['budget_matched'][m]['epochs']} / "
                                  f"{r['budget_matched'][m]['n_trials']}" for m in pruners) + " |")
    lines += ["", f"Acceptance (Hyperband, budget-matched, reaches random's best on every seed "
              f"with <= 1/3 of its epochs): {'HOLDS' if accept else 'DOES NOT HOLD'}", ""]
    (RESULTS / f"halving_quality_{args.model}{args.tag}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
