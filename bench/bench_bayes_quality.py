"""Solution quality of BayesSampler against random search, Optuna's GPSampler and
scikit-optimize's gp_minimize.

Run: ``.venv/bin/python bench/bench_bayes_quality.py [--methods hpcore,random,optuna,skopt]
[--functions branin,hartmann6,ackley10] [--seeds 10] [--n-evals 100]``

Functions (minimized): Branin on [-5, 10] x [0, 15] (min 0.397887), Hartmann-6 on [0, 1]^6
(min -3.32237), Ackley-10 on [-32.768, 32.768]^10 (min 0).  Each (method, function,
seed) run records the best value after 50 and after 100 evaluations; runs are appended to
``bench/results/bayes_quality_runs_<method>.json`` as they finish (so a long peer run can
go in the background and be resumed), and the summary (medians over seeds) is written to
``bench/results/bayes_quality.{json,md}`` from every run file present.

Settings: hpcore BayesSampler defaults (10 Sobol start-up trials, Matern-5/2 GP, log-EI);
hpcore RandomSampler; Optuna GPSampler defaults (10 start-up trials, torch CPU);
skopt ``gp_minimize`` defaults (gp_hedge, 10 initial points, lbfgs acquisition optimizer
with n_points=10000) except ``n_restarts_optimizer=2`` (default 5) to keep the shared
machine's budget.  Threads: OMP_NUM_THREADS=1, threadpoolctl limits of 1 and
``torch.set_num_threads(1)`` for every method.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import hpcore as hp  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CHECKPOINTS = (50, 100)

_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                 [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin_x(x: np.ndarray) -> float:
    x1, x2 = x
    return float((x2 - 5.1 / (4 * math.pi ** 2) * x1 ** 2 + 5 / math.pi * x1 - 6) ** 2
                 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10)


def hartmann6_x(x: np.ndarray) -> float:
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (np.asarray(x) - _H_P) ** 2, axis=1))))


def ackley_x(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    d = len(x)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.sum(x * x) / d))
                 - np.exp(np.sum(np.cos(2 * np.pi * x)) / d) + 20 + np.e)


# name -> (function of a vector, bounds per dimension, known minimum)
FUNCTIONS = {
    "branin": (branin_x, [(-5.0, 10.0), (0.0, 15.0)], 0.397887),
    "hartmann6": (hartmann6_x, [(0.0, 1.0)] * 6, -3.32237),
    "ackley10": (ackley_x, [(-32.768, 32.768)] * 10, 0.0),
}


def hartmann6_space() -> hp.Space:
    return hp.Space({f"x{i}": hp.Float(0.0, 1.0) for i in range(6)})


def hartmann6(params: dict) -> float:
    return hartmann6_x(np.array([params[f"x{i}"] for i in range(6)]))


def _trace_best(values: list[float]) -> dict[str, float]:
    best = np.minimum.accumulate(np.asarray(values, dtype=float))
    return {str(k): float(best[k - 1]) for k in CHECKPOINTS if k <= len(best)}


def run_hpcore(fn, bounds, seed: int, n: int, random: bool = False) -> list[float]:
    space = hp.Space({f"x{i}": hp.Float(lo, hi) for i, (lo, hi) in enumerate(bounds)})
    sampler = (hp.RandomSampler(seed=seed) if random
               else hp.BayesSampler(seed=seed, n_threads=1))
    st = hp.Study(space, sampler=sampler)
    vals = []
    for _ in range(n):
        t = st.ask()
        v = fn(np.array([t.params[f"x{i}"] for i in range(len(bounds))]))
        st.tell(t, v)
        vals.append(v)
    return vals


def run_optuna(fn, bounds, seed: int, n: int) -> list[float]:
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=seed))
    vals = []

    def obj(trial):
        x = np.array([trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)])
        v = fn(x)
        vals.append(v)
        return v

    st.optimize(obj, n_trials=n)
    return vals


def run_skopt(fn, bounds, seed: int, n: int) -> list[float]:
    from skopt import gp_minimize

    res = gp_minimize(lambda x: fn(np.asarray(x)), bounds, n_calls=n, random_state=seed,
                      n_restarts_optimizer=2)
    return [float(v) for v in res.func_vals]


RUNNERS = {
    "hpcore": lambda fn, b, s, n: run_hpcore(fn, b, s, n),
    "random": lambda fn, b, s, n: run_hpcore(fn, b, s, n, random=True),
    "optuna": run_optuna,
    "skopt": run_skopt,
}


def _runs_path(method: str) -> Path:
    return RESULTS / f"bayes_quality_runs_{method}.json"


def _load(method: str) -> dict:
    p = _runs_path(method)
    return json.loads(p.read_text()) if p.exists() else {}


def summarize() -> dict:
    out: dict = {"checkpoints": list(CHECKPOINTS), "functions": {}}
    for fname, (_, _, fmin) in FUNCTIONS.items():
        rows = {}
        for method in RUNNERS:
            runs = [r for k, r in _load(method).items() if k.startswith(fname + "|")]
            if not runs:
                continue
            row = {"n_seeds": len(runs),
                   "median_time_s": float(np.median([r["time_s"] for r in runs]))}
            for c in CHECKPOINTS:
                vals = [r["best"][str(c)] for r in runs if str(c) in r["best"]]
                if vals:
                    row[f"median_best@{c}"] = float(np.median(vals))
                    row[f"values@{c}"] = vals
            rows[method] = row
        out["functions"][fname] = {"known_min": fmin, "methods": rows}
    return out


def write_summary(summary: dict) -> None:
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "threads": "OMP_NUM_THREADS=1, threadpoolctl 1, torch 1"}
    summary = {**summary, "meta": meta}
    (RESULTS / "bayes_quality.json").write_text(json.dumps(summary, indent=1))
    lines = ["# BayesSampler quality (median best value over seeds; lower is better)", "",
             "Command: `.venv/bin/python bench/bench_bayes_quality.py` (see its docstring "
             "for the settings); 1 thread for every method.", "",
             "| function | method | seeds | median best @50 | median best @100 | median run time (s) |",
             "|---|---|---|---|---|---|"]
    for fname, f in summary["functions"].items():
        for m, r in f["methods"].items():
            lines.append(f"| {fname} (min {f['known_min']}) | {m} | {r['n_seeds']} | "
                         f"{r.get('median_best@50', float('nan')):.5f} | "
                         f"{r.get('median_best@100', float('nan')):.5f} | "
                         f"{r['median_time_s']:.1f} |")
    (RESULTS / "bayes_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="hpcore,random,optuna,skopt")
    ap.add_argument("--functions", default="branin,hartmann6,ackley10")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-start", type=int, default=0, help="first seed (to split peers' runs)")
    ap.add_argument("--n-evals", type=int, default=100)
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if not args.summary_only:
        for seed in range(args.seed_start, args.seeds):
            for fname in args.functions.split(","):
                fn, bounds, _ = FUNCTIONS[fname]
                for method in args.methods.split(","):
                    runs = _load(method)
                    key = f"{fname}|{seed}|{args.n_evals}"
                    if key in runs:
                        continue
                    t0 = time.perf_counter()
                    with threadpool_limits(1):
                        vals = RUNNERS[method](fn, bounds, seed, args.n_evals)
                    runs = _load(method)
                    runs[key] = {"best": _trace_best(vals), "time_s": time.perf_counter() - t0}
                    tmp = _runs_path(method).with_suffix(".json.tmp")
                    tmp.write_text(json.dumps(runs, indent=1))
                    tmp.replace(_runs_path(method))
                    print(f"{method:7s} {fname:10s} seed {seed}: best@{args.n_evals} = "
                          f"{runs[key]['best'].get(str(args.n_evals))}  "
                          f"({runs[key]['time_s']:.1f} s)", flush=True)
    write_summary(summarize())


if __name__ == "__main__":
    main()
