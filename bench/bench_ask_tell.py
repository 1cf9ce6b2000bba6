"""Per-trial ask+tell latency in memory: RandomSampler and multi-objective GeneticSampler
(NSGA-II), hpcore against Optuna, per call (not amortized).

Run: ``.venv/bin/python bench/bench_ask_tell.py [--n 1000] [--repeats 3] [--no-optuna]``

Space: the 6-parameter mixed space of ``bench_overhead.py`` (log-float, two floats, an
int, a categorical of 3, a float active only under one category).  Objectives: one
(random search) or two (GA) cheap functions of the parameters, outside the timed region.
hpcore: ``Study.ask()`` + ``Study.tell()`` with the default in-memory storage;
Optuna: ``study.ask(distributions)`` (+ the conditional ``suggest_float``) +
``study.tell``, RandomSampler / NSGAIISampler at their defaults, in-memory storage,
logging at WARNING.

Every optimizer runs ``--n`` trials in a fresh study per repeat; the trials are
interleaved round-robin (trial i of every optimizer, then trial i + 1), so all share the
machine's load trial by trial.  Per optimizer: the per-trial median, p90 and max wall
time over all trials of all repeats (the first 5 trials of each study left out: imports
and first-call set-up), and the per-trial median of the thread's CPU time
(``time.thread_time``: time spent running, not waiting for a core on a busy machine,
the load-robust companion of the wall figure).  The 1-minute load average is recorded.
Writes ``bench/results/ask_tell_latency.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overhead import hpcore_space, objective_value, optuna_distributions  # noqa: E402

import hpcore as hp  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SKIP = 5


def two_objectives(p: dict) -> tuple[float, float]:
    a = (math.log10(p["lr"]) + 3.0) ** 2 + p["dropout"]
    return float(a), float(0.1 * p["n_layers"] + p["weight_decay"] + p.get("momentum", 0.0))


def _timed_step(ask, tell, f):
    """One trial per call: ``ask()``, the objective ``f`` (untimed), ``tell``; returns the
    (wall, CPU) seconds of the ask and the tell together."""
    wall, cpu = time.perf_counter, time.thread_time

    def step() -> tuple[float, float]:
        t0, c0 = wall(), cpu()
        tr = ask()
        t1, c1 = wall(), cpu()
        v = f(tr.params)
        t2, c2 = wall(), cpu()
        tell(tr, v)
        t3, c3 = wall(), cpu()
        return (t1 - t0) + (t3 - t2), (c1 - c0) + (c3 - c2)
    return step


def _hp_stepper(kind: str):
    if kind == "random":
        st = hp.Study(hpcore_space(), sampler=hp.RandomSampler(seed=0))
        f = objective_value
    else:
        st = hp.Study(hpcore_space(), sampler=hp.GeneticSampler(seed=0),
                      directions=["minimize", "minimize"])
        f = two_objectives
    return _timed_step(st.ask, st.tell, f)


def _optuna_stepper(kind: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "random":
        st = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        f = objective_value
    else:
        st = optuna.create_study(sampler=optuna.samplers.NSGAIISampler(seed=0),
                                 directions=["minimize", "minimize"])
        f = two_objectives
    dists = optuna_distributions()

    def ask():
        tr = st.ask(dists)
        if tr.params["optimizer"] == "sgd":
            tr.suggest_float("momentum", 0.0, 0.99)
        return tr
    return _timed_step(ask, st.tell, f)


NAMES = {"hp_random": "hpcore RandomSampler", "hp_ga": "hpcore GeneticSampler (2 objectives)",
         "op_random": "Optuna RandomSampler", "op_ga": "Optuna NSGAIISampler (2 objectives)"}


def measure(n: int, repeats: int, optuna: bool) -> dict:
    keys = ["hp_random", "hp_ga"] + (["op_random", "op_ga"] if optuna else [])
    wall: dict[str, list[float]] = {k: [] for k in keys}
    cpu: dict[str, list[float]] = {k: [] for k in keys}
    loads = []
    for _ in range(repeats):
        steps = {"hp_random": _hp_stepper("random"), "hp_ga": _hp_stepper("ga")}
        if optuna:
            steps["op_random"] = _optuna_stepper("random")
            steps["op_ga"] = _optuna_stepper("ga")
        for i in range(n):
            for k in keys:
                w, c = steps[k]()
                if i >= SKIP:
                    wall[k].append(w)
                    cpu[k].append(c)
        loads.append(os.getloadavg()[0])
    out = {}
    for k in keys:
        w = np.asarray(wall[k]) * 1e6
        c = np.asarray(cpu[k]) * 1e6
        out[k] = {"median_us": float(np.median(w)), "p90_us": float(np.quantile(w, 0.9)),
                  "max_us": float(w.max()), "cpu_median_us": float(np.median(c)),
                  "cpu_p90_us": float(np.quantile(c, 0.9)), "trials": len(w)}
    out["loadavg_1min"] = loads
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="trials per study")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-optuna", action="store_true")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    res = measure(args.n, args.repeats, not args.no_optuna)
    cmd = ".venv/bin/python bench/bench_ask_tell.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    loads = res.pop("loadavg_1min")
    rows = ["# ask+tell latency per trial, in memory (per call, not amortized)", "",
            f"Command: `{cmd}`; {args.repeats} repeat(s) of {args.n} trials per optimizer, "
            f"interleaved trial by trial; the first {SKIP} trials of each study left out.  "
            f"Machine: shared 2-core box, load average (1 min) {load0:.1f} at the start, "
            f"{', '.join(f'{v:.1f}' for v in loads)} after each repeat.  python "
            f"{platform.python_version()}.  CPU = the thread's CPU time per call "
            "(time.thread_time; excludes waiting for a core).", "",
            "| optimizer | median µs | p90 µs | max µs | CPU median µs | CPU p90 µs | target |",
            "|---|---|---|---|---|---|---|"]
    targets = {"hp_random": "<= 25", "hp_ga": "<= 100"}
    for k, r in res.items():
        rows.append(f"| {NAMES[k]} | {r['median_us']:.1f} | {r['p90_us']:.1f} | "
                    f"{r['max_us']:.0f} | {r['cpu_median_us']:.1f} | {r['cpu_p90_us']:.1f} | "
                    f"{targets.get(k, '')} |")
    if "op_random" in res:
        rows += ["", f"Optuna / hpcore per-trial medians: RandomSampler "
                 f"{res['op_random']['median_us'] / res['hp_random']['median_us']:.1f}x, "
                 f"NSGA-II vs GeneticSampler "
                 f"{res['op_ga']['median_us'] / res['hp_ga']['median_us']:.1f}x."]
    md = "\n".join(rows) + "\n"
    print(md)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ask_tell_latency.md").write_text(md)
    (RESULTS / "ask_tell_latency.json").write_text(json.dumps(
        {"command": cmd, "n": args.n, "repeats": args.repeats, "load_start": load0,
         "load_after_repeat": loads, "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
