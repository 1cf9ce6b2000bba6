"""hpcore.automl against FLAML's AutoML and a default RandomForest at equal wall time.

For every (dataset, seed) the runs of every method and budget are made back to back
(interleaved, so machine load hits all sides alike), each in a fresh Python process
(`--one`), with one core's worth of work each (n_jobs=1).  The test score is accuracy
(classification) or R^2 (regression) on a held-out 25% split of that seed; the
searches optimize the same metric.  Results are appended to a JSON file after every
run, so a partial run still leaves its numbers; `--report` merges JSON files into a
Markdown table with means, standard errors over seeds and the time-budget overruns.

    .venv/bin/python bench/bench_automl.py --budgets 20 60 --seeds 0 1 2 3 4 \
        --datasets digits wine make_classification --json bench/results/automl_runs_a.json
    .venv/bin/python bench/bench_automl.py --report bench/results/automl_runs_*.json \
        --out bench/results/automl
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

DATASETS = ["breast_cancer", "digits", "wine", "diabetes", "make_classification"]
METHODS = ["hpcore", "flaml", "rf"]


def load(name: str):
    from sklearn import datasets

    if name == "make_classification":
        X, y = datasets.make_classification(n_samples=5000, n_features=25, n_informative=10,
                                            n_redundant=5, n_classes=2, flip_y=0.02,
                                            random_state=0)
        return X, y, "classification"
    loader = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits,
              "wine": datasets.load_wine, "diabetes": datasets.load_diabetes}[name]
    X, y = loader(return_X_y=True)
    return X, y, "regression" if name == "diabetes" else "classification"


def split(name: str, seed: int):
    from sklearn.model_selection import train_test_split

    X, y, task = load(name)
    strat = y if task == "classification" else None
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed,
                                          stratify=strat)
    return Xtr, Xte, ytr, yte, task


def run_one(method: str, name: str, seed: int, budget: float) -> dict:
    """One run in this process: fit on the training split, score on the test split."""
    import numpy as np

    Xtr, Xte, ytr, yte, task = split(name, seed)
    load0 = os.getloadavg()[0]
    info: dict = {}
    t0 = time.monotonic()
    if method == "hpcore":
        from hpcore.automl import AutoML

        m = AutoML(task=task, time_budget=budget, n_jobs=1, seed=seed).fit(Xtr, ytr)
        elapsed = time.monotonic() - t0
        info = {"pipeline": " + ".join(_desc(p) for _, p in m.ensemble_),
                "n_trials": len(m.leaderboard_), "cv_score": m.best_score_,
                "ensemble_gain": getattr(m, "ensemble_gain_", None),
                "refits": [f"{r['pipeline']}: {r['state']} {r['seconds']:.2f}/"
                           f"{r['estimate']:.2f} s" for r in getattr(m, "refits_", [])]}
        pred = m.predict(Xte)
    elif method == "flaml":
        import logging

        from flaml import AutoML as FLAML

        logging.getLogger("flaml.automl").setLevel(logging.ERROR)
        m = FLAML()
        m.fit(Xtr, ytr, task=task, time_budget=budget, metric="accuracy" if
              task == "classification" else "r2", n_jobs=1, seed=seed, verbose=0)
        elapsed = time.monotonic() - t0
        info = {"pipeline": str(m.best_estimator), "cv_score": 1 - m.best_loss}
        pred = m.predict(Xte)
    elif method == "rf":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
        m = cls(random_state=seed, n_jobs=1).fit(Xtr, ytr)
        elapsed = time.monotonic() - t0
        pred = m.predict(Xte)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if task == "classification":
        score = float(np.mean(np.asarray(pred) == yte))
    else:
        from sklearn.metrics import r2_score

        score = float(r2_score(yte, pred))
    return {"method": method, "dataset": name, "seed": seed, "budget": budget,
            "score": score, "elapsed": elapsed,
            "overrun": elapsed - budget if method != "rf" else None,
            "load_start": load0, "load_end": os.getloadavg()[0], **info}


def _desc(params: dict) -> str:
    parts = [params.get("scaler", "none"), params.get("features", "none"), params["estimator"]]
    return ">".join(p for p in parts if p != "none")


def drive(args) -> None:
    runs = []
    if os.path.exists(args.json):
        with open(args.json) as f:
            runs = json.load(f)
    done = {(r["method"], r["dataset"], r["seed"], r["budget"]) for r in runs}
    for seed in args.seeds:                  # seed-major: a cut run covers every dataset
        for name in args.datasets:
            for budget in args.budgets:
                for method in args.methods:
                    b = float(budget)
                    if method == "rf" and budget != args.budgets[0]:
                        continue              # the RandomForest has no budget: once per seed
                    if (method, name, seed, b) in done:
                        continue
                    cmd = [sys.executable, __file__, "--one", method, name, str(seed), str(b)]
                    t0 = time.monotonic()
                    try:
                        p = subprocess.run(cmd, capture_output=True, text=True,
                                           timeout=b * 3 + 120)
                    except subprocess.TimeoutExpired:
                        p = subprocess.CompletedProcess(cmd, -9, "", f"timed out after "
                                                        f"{b * 3 + 120:g} s")
                    if p.returncode != 0:
                        print(f"FAILED {method} {name} {seed} {b}: {p.stderr[-2000:]}",
                              flush=True)
                        r = {"method": method, "dataset": name, "seed": seed, "budget": b,
                             "error": p.stderr[-500:]}
                    else:
                        r = json.loads(p.stdout.strip().splitlines()[-1])
                        r["process_wall"] = time.monotonic() - t0
                    runs.append(r)
                    with open(args.json + ".tmp", "w") as f:
                        json.dump(runs, f, indent=1)
                    os.replace(args.json + ".tmp", args.json)
                    print(json.dumps(r), flush=True)


def _stats(xs):
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, 0
    m = sum(xs) / n
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n) if n > 1 else math.nan
    return m, se, n


def _finite(x) -> float:
    return x if x is not None and math.isfinite(x) else 0.0


def report(paths, out: str) -> None:
    runs = []
    for p in paths:
        with open(p) as f:
            runs += [r for r in json.load(f) if "score" in r]
    budgets = sorted({r["budget"] for r in runs if r["method"] != "rf"})
    names = [d for d in DATASETS if any(r["dataset"] == d for r in runs)]
    summary: dict = {"budgets": {}, "checks": {}}
    lines = ["# hpcore.automl vs FLAML vs a default RandomForest", "",
             "Held-out test accuracy (R^2 for diabetes), 25% split per seed; mean +- standard "
             "error over seeds (n); n_jobs=1 everywhere; each run in a fresh process, the "
             "methods of one (dataset, seed) back to back.  Produced by "
             "`bench/bench_automl.py` (command lines in its docstring).", ""]
    loads = [r["load_start"] for r in runs] + [r["load_end"] for r in runs]
    lines.append(f"Load average (1 min) over the runs: mean {sum(loads) / len(loads):.2f}, "
                 f"max {max(loads):.2f} (2-core machine shared with other work).")
    lines.append("")
    for b in budgets:
        lines += [f"## time_budget = {b:g} s", "",
                  "| dataset | hpcore | FLAML | RandomForest | hpcore - FLAML | hpcore - RF "
                  "| hpcore overrun mean / max (s) | FLAML overrun mean / max (s) |",
                  "|---|---|---|---|---|---|---|---|"]
        per = {}
        for d in names:
            row = {}
            for m in METHODS:
                sel = [r for r in runs if r["dataset"] == d and r["method"] == m
                       and (m == "rf" or r["budget"] == b)]
                sel = sorted(sel, key=lambda r: r["seed"])
                row[m] = {"scores": {r["seed"]: r["score"] for r in sel},
                          "overruns": [r["overrun"] for r in sel if r.get("overrun") is not None]}
            seeds = sorted(set(row["hpcore"]["scores"]) & set(row["flaml"]["scores"])
                           & set(row["rf"]["scores"]))
            if not seeds:
                continue                      # no complete (dataset, seed) yet
            cell = {}
            for m in METHODS:
                cell[m] = _stats([row[m]["scores"][s] for s in seeds])
            dfl = _stats([row["hpcore"]["scores"][s] - row["flaml"]["scores"][s] for s in seeds])
            drf = _stats([row["hpcore"]["scores"][s] - row["rf"]["scores"][s] for s in seeds])
            ov = {m: row[m]["overruns"] for m in ("hpcore", "flaml")}
            per[d] = {"n": len(seeds), "seeds": seeds,
                      **{m: {"mean": cell[m][0], "se": cell[m][1]} for m in METHODS},
                      "hpcore_minus_flaml": {"mean": dfl[0], "se": dfl[1]},
                      "hpcore_minus_rf": {"mean": drf[0], "se": drf[1]},
                      "overrun": {m: {"mean": (sum(v) / len(v)) if v else None,
                                      "max": max(v) if v else None} for m, v in ov.items()}}

            def f(t):
                return f"{t[0]:.4f} +- {t[1]:.4f}" if t[2] > 1 else (
                    f"{t[0]:.4f}" if t[2] else "-")

            def o(v):
                return f"{sum(v) / len(v):+.2f} / {max(v):+.2f}" if v else "-"

            lines.append(f"| {d} (n={len(seeds)}) | {f(cell['hpcore'])} | {f(cell['flaml'])} | "
                         f"{f(cell['rf'])} | {dfl[0]:+.4f} +- {dfl[1]:.4f} | "
                         f"{drf[0]:+.4f} +- {drf[1]:.4f} | {o(ov['hpcore'])} | {o(ov['flaml'])} |")
        avg = {m: sum(per[d][m]["mean"] for d in per) / len(per) for m in METHODS} if per else {}
        lines.append(f"| **mean over datasets** | {avg.get('hpcore', math.nan):.4f} | "
                     f"{avg.get('flaml', math.nan):.4f} | {avg.get('rf', math.nan):.4f} | | | | |")
        lines.append("")
        summary["budgets"][str(b)] = {"datasets": per, "mean_over_datasets": avg}
        checks = {
            "hpcore_mean_ge_flaml_every_dataset": all(
                per[d]["hpcore"]["mean"] >= per[d]["flaml"]["mean"] for d in per),
            "hpcore_ge_rf_minus_se_every_dataset": all(
                per[d]["hpcore"]["mean"] >= per[d]["rf"]["mean"] - _finite(per[d]["rf"]["se"])
                for d in per),
            "hpcore_above_rf_on_average": avg.get("hpcore", 0) > avg.get("rf", 0),
            "max_overrun_s": max((per[d]["overrun"]["hpcore"]["max"] or -1e9) for d in per),
            "overrun_within_max(10%,2s)": all(
                (per[d]["overrun"]["hpcore"]["max"] or 0) <= max(0.1 * b, 2.0) for d in per),
        }
        summary["checks"][str(b)] = checks
        lines.append("Checks: " + ", ".join(f"{k}: {v}" for k, v in checks.items()))
        lines.append("")
    lines += ["## Chosen hpcore pipelines (per run)", ""]
    for r in sorted([r for r in runs if r["method"] == "hpcore"],
                    key=lambda r: (r["dataset"], r["budget"], r["seed"])):
        g = r.get("ensemble_gain")
        eg = (f" [greedy ensemble's OOF gain {g[0]:+.4f} +- {g[1]:.4f}]" if g else "")
        lines.append(f"- {r['dataset']} {r['budget']:g}s seed {r['seed']}: {r['score']:.4f} "
                     f"({r.get('n_trials', '?')} trials) {r.get('pipeline', '')}{eg}")
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(out + ".json", "w") as f:
        json.dump({"summary": summary, "runs": runs}, f, indent=1)
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=4, metavar=("METHOD", "DATASET", "SEED", "BUDGET"))
    ap.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--budgets", nargs="+", type=float, default=[20.0, 60.0])
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--json", default="bench/results/automl_runs.json")
    ap.add_argument("--report", nargs="+", metavar="JSON")
    ap.add_argument("--out", default="bench/results/automl")
    args = ap.parse_args()
    if args.one:
        method, name, seed, budget = args.one
        print(json.dumps(run_one(method, name, int(seed), float(budget))))
    elif args.report:
        report(args.report, args.out)
    else:
        drive(args)


if __name__ == "__main__":
    main()
