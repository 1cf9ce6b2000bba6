"""The comparison harness behind ``hpcore bench``: optimizers x problems x seeds at fixed
budgets, every trial in a CSV, a markdown table and PNG plots; and the halving
anytime study (``--halving``).

Users add problems and optimizers through :mod:`hpcore.bench.registry`
(:func:`register_problem`, :func:`register_optimizer`; see its docstring for the two
small function signatures).  Importing this package imports no peer: Optuna,
scikit-optimize, Hyperopt, torch and matplotlib are imported when used, and a missing
peer is skipped with a message.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hpcore.bench.registry import (AskTell, OptimizerSpec, Problem, Settings, Suggestion,
                                   get_optimizer, get_problem, list_optimizers, list_problems,
                                   register_optimizer, register_problem)

__all__ = ["AskTell", "OptimizerSpec", "Problem", "Settings", "Suggestion", "build_parser",
           "get_optimizer", "get_problem", "list_optimizers", "list_problems", "main",
           "register_optimizer", "register_problem"]

QUICK = {"n_trials": 20, "seeds": 3}
FULL = {"n_trials": 60, "seeds": 10}


def build_parser(prog: str = "hpcore bench") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog, description="Compare hpcore's optimizers with the peers on the bench "
        "problems (CSV of every trial, markdown table, PNG plots).")
    ap.add_argument("--quick", action="store_true",
                    help=f"the quick set: problems tagged 'quick', {QUICK['n_trials']} trials, "
                         f"{QUICK['seeds']} seeds (under 10 minutes on 2 cores)")
    ap.add_argument("--problems", help="comma-separated problem names (default: all, or the "
                                       "quick ones with --quick)")
    ap.add_argument("--optimizers", help="comma-separated optimizer names (default: all)")
    ap.add_argument("--n-trials", type=int, help="budget in trials (curve problems: "
                                                 "n_trials * max_resource epochs)")
    ap.add_argument("--seeds", type=int, help="number of seeds (0..seeds-1)")
    ap.add_argument("--n-initial", type=int, default=10, help="initial design size for all")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads for all")
    ap.add_argument("--jobs", type=int, default=1,
                    help="worker processes running (problem, optimizer) cells side by side "
                         "(default 1; at most one per core, each with --threads threads)")
    ap.add_argument("--out", default="bench_results", help="output folder")
    ap.add_argument("--tag", help="file name part: compare_<tag>.csv (default quick/full)")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted run with the same settings: the cells it "
                         "saved in <out>/compare_<tag>.cells/ are read back, the rest run")
    ap.add_argument("--list", action="store_true", help="list problems and optimizers, exit")
    ap.add_argument("--halving", action="store_true",
                    help="the halving anytime study instead (hpcore.bench.anytime)")
    ap.add_argument("--tasks", help="--halving: comma-separated curve problems "
                                    "(default sgd_digits,mlp_digits,sgd_synth)")
    ap.add_argument("--summarize", action="store_true",
                    help="--halving: only rebuild tables and plot from the saved runs")
    ap.add_argument("--methods", help="--halving: comma-separated methods to rerun on saved "
                                      "seeds whose results predate anytime.REVISION")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hpcore bench`` (``argv``: the arguments after ``bench``)."""
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if args.list:
        for n in list_problems():
            p = get_problem(n)
            print(f"problem   {n:20s} {p.kind:9s} {','.join(p.tags):14s} {p.description}")
        for n in list_optimizers():
            o = get_optimizer(n)
            miss = o.missing()
            print(f"optimizer {n:26s} {o.description}"
                  + (f"  [missing: {', '.join(miss)}]" if miss else ""))
        return 0
    if args.halving:
        from hpcore.bench import anytime

        tasks = args.tasks.split(",") if args.tasks else list(anytime.TASKS)
        for t in tasks:
            get_problem(t)  # unknown names fail here
        anytime.main(tasks, range(args.seeds if args.seeds is not None else 10), out,
                     summarize_only=args.summarize,
                     methods=args.methods.split(",") if args.methods else None)
        return 0
    from hpcore.bench.runner import run_compare

    preset = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    run_compare(problems=args.problems.split(",") if args.problems else None,
                optimizers=args.optimizers.split(",") if args.optimizers else None,
                quick=args.quick,
                n_trials=args.n_trials if args.n_trials is not None else preset["n_trials"],
                seeds=args.seeds if args.seeds is not None else preset["seeds"],
                n_initial=args.n_initial, n_threads=args.threads, n_jobs=args.jobs, out=out,
                tag=args.tag or ("quick" if args.quick else "full"), resume=args.resume,
                argv=list(argv) if argv is not None else sys.argv[1:])
    print(f"hpcore bench: done in {time.perf_counter() - t0:.0f} s; results in {out}/")
    return 0
