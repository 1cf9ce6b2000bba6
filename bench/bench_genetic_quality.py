"""Solution quality of GeneticSampler (GA and NSGA-II) against random search and pymoo.

Run: ``.venv/bin/python bench/bench_genetic_quality.py [--seeds 10]``

Part 1: Rastrigin-10 (on [-5.12, 5.12]^10) and Ackley-10 (on [-32.768, 32.768]^10),
500 evaluations, GeneticSampler (defaults: population 50, SBX eta 15, polynomial
mutation eta 20) vs RandomSampler, both driven through ``hpcore.Study`` ask/tell.

Part 2: ZDT1 and ZDT2 (30 variables, pymoo's problem definitions), 5,000 evaluations:
GeneticSampler(population_size=100) through ``hpcore.Study`` ask/tell with two
directions (NSGA-II), against pymoo's NSGA2(pop_size=100) with its default operators,
100 + 49 x 100 = 5,000 evaluations each.  Hypervolume with reference point (1.1, 1.1),
of (a) the non-dominated set of every evaluated point, (b) the final population.

Threads: OMP_NUM_THREADS=1 and threadpoolctl limits of 1 for both sides (the sampler's
kernels run with n_threads=1 anyway).  Writes bench/results/genetic_quality.{json,md}.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from scipy.stats import ttest_ind  # noqa: E402

import hpcore as hp  # noqa: E402
from hpcore.kernels import nondominated_sort  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def rastrigin(x: np.ndarray) -> float:
    return float(10 * len(x) + np.sum(x * x - 10 * np.cos(2 * np.pi * x)))


def ackley(x: np.ndarray) -> float:
    d = len(x)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.sum(x * x) / d))
                 - np.exp(np.sum(np.cos(2 * np.pi * x)) / d) + 20 + np.e)


def hypervolume_2d(F: np.ndarray, ref=(1.1, 1.1)) -> float:
    F = np.asarray(F, dtype=float)
    F = F[(F[:, 0] < ref[0]) & (F[:, 1] < ref[1])]
    if len(F) == 0:
        return 0.0
    F = F[nondominated_sort(F) == 0]
    F = F[np.lexsort((F[:, 1], F[:, 0]))]
    edges = np.r_[F[1:, 0], ref[0]]
    return float(np.sum((edges - F[:, 0]) * (ref[1] - F[:, 1])))


def run_single(fn, bound: float, d: int, n: int, sampler) -> float:
    names = [f"x{i}" for i in range(d)]
    study = hp.Study(hp.Space({k: hp.Float(-bound, bound) for k in names}), sampler=sampler)
    for _ in range(n):
        t = study.ask()
        study.tell(t, fn(np.array([t.params[k] for k in names])))
    return study.best_value


def part1(seeds: int) -> list[dict]:
    rows = []
    for name, fn, bound in (("rastrigin-10", rastrigin, 5.12), ("ackley-10", ackley, 32.768)):
        ga, rs, times = [], [], []
        for s in range(seeds):
            t0 = time.perf_counter()
            ga.append(run_single(fn, bound, 10, 500, hp.GeneticSampler(seed=s)))
            times.append(time.perf_counter() - t0)
            rs.append(run_single(fn, bound, 10, 500, hp.RandomSampler(seed=s)))
        ga, rs = np.array(ga), np.array(rs)
        rows.append({"problem": name, "evaluations": 500, "seeds": seeds,
                     "genetic_mean": ga.mean(), "genetic_std": ga.std(),
                     "random_mean": rs.mean(), "random_std": rs.std(),
                     "genetic_wins": int((ga < rs).sum()),
                     "genetic_seconds_per_run": float(np.mean(times))})
        print(f"{name:13s} GA {ga.mean():8.3f} +- {ga.std():6.3f}   random {rs.mean():8.3f} +- "
              f"{rs.std():6.3f}   GA better in {int((ga < rs).sum())}/{seeds} seeds", flush=True)
    return rows


def hpcore_nsga2(problem, n_eval: int, seed: int) -> tuple[float, float, float]:
    n_var = problem.n_var
    names = [f"x{i}" for i in range(n_var)]
    sampler = hp.GeneticSampler(population_size=100, seed=seed)
    study = hp.Study(hp.Space({k: hp.Float(0.0, 1.0) for k in names}), sampler=sampler,
                     directions=["minimize", "minimize"])
    t0 = time.perf_counter()
    for _ in range(n_eval):
        t = study.ask()
        x = np.array([[t.params[k] for k in names]])
        study.tell(t, tuple(float(v) for v in problem.evaluate(x)[0]))
    dt = time.perf_counter() - t0
    F_all = np.array([t.values for t in study.completed_trials()])
    sampler.sample(study, n_eval)               # absorbs the last offspring into the population
    return hypervolume_2d(F_all), hypervolume_2d(np.array(sampler._pop_f)), dt


def pymoo_nsga2(problem, n_eval: int, seed: int) -> tuple[float, float, float]:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.optimize import minimize

    seen = []

    class Recorder(Problem):
        def __init__(self):
            super().__init__(n_var=problem.n_var, n_obj=2, xl=problem.xl, xu=problem.xu)

        def _evaluate(self, x, out, *args, **kwargs):
            out["F"] = problem.evaluate(x)
            seen.append(out["F"])

    t0 = time.perf_counter()
    res = minimize(Recorder(), NSGA2(pop_size=100), ("n_eval", n_eval), seed=seed, verbose=False)
    dt = time.perf_counter() - t0
    F_all = np.vstack(seen)
    assert len(F_all) == n_eval, len(F_all)
    return hypervolume_2d(F_all), hypervolume_2d(res.pop.get("F")), dt


def part2(seeds: int, n_eval: int) -> list[dict]:
    from pymoo.problems import get_problem

    rows = []
    for name in ("zdt1", "zdt2"):
        problem = get_problem(name)            # 30 variables
        ours = np.array([hpcore_nsga2(problem, n_eval, s) for s in range(seeds)])
        peer = np.array([pymoo_nsga2(problem, n_eval, s) for s in range(seeds)])
        row = {"problem": name, "evaluations": n_eval, "seeds": seeds,
               "hpcore_hv_all_mean": ours[:, 0].mean(), "hpcore_hv_all_std": ours[:, 0].std(),
               "pymoo_hv_all_mean": peer[:, 0].mean(), "pymoo_hv_all_std": peer[:, 0].std(),
               "hpcore_hv_pop_mean": ours[:, 1].mean(), "pymoo_hv_pop_mean": peer[:, 1].mean(),
               "hpcore_seconds_per_run": ours[:, 2].mean(),
               "pymoo_seconds_per_run": peer[:, 2].mean()}
        row["hv_all_ratio"] = row["hpcore_hv_all_mean"] / row["pymoo_hv_all_mean"]
        # seed-to-seed spread is large (ZDT2: ~40% of the mean), so say how precise the
        # ratio is: its standard error (delta method) and Welch's t-test of equal means
        row["hv_all_ratio_se"] = row["hv_all_ratio"] * float(np.sqrt(
            (ours[:, 0].std(ddof=1) / ours[:, 0].mean()) ** 2 / seeds
            + (peer[:, 0].std(ddof=1) / peer[:, 0].mean()) ** 2 / seeds))
        row["welch_p"] = float(ttest_ind(ours[:, 0], peer[:, 0], equal_var=False).pvalue)
        row["hv_pop_ratio"] = row["hpcore_hv_pop_mean"] / row["pymoo_hv_pop_mean"]
        rows.append(row)
        print(f"{name}: HV(all evaluations) hpcore {row['hpcore_hv_all_mean']:.4f} +- "
              f"{row['hpcore_hv_all_std']:.4f}  pymoo {row['pymoo_hv_all_mean']:.4f} +- "
              f"{row['pymoo_hv_all_std']:.4f}  ratio {row['hv_all_ratio']:.4f} +- "
              f"{row['hv_all_ratio_se']:.4f} (Welch p {row['welch_p']:.2f});  "
              f"HV(final population) ratio {row['hv_pop_ratio']:.4f};  seconds/run hpcore "
              f"{row['hpcore_seconds_per_run']:.2f} pymoo {row['pymoo_seconds_per_run']:.2f}",
              flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--zdt-seeds", type=int, default=None)
    ap.add_argument("--zdt-evals", type=int, default=5000)
    args = ap.parse_args()
    with threadpool_limits(1):
        single = part1(args.seeds)
        multi = part2(args.zdt_seeds or args.seeds, args.zdt_evals)
    out = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "threads": "OMP_NUM_THREADS=1, threadpool_limits(1), both sides",
           "driver": "hpcore through Study ask/tell; pymoo through pymoo.optimize.minimize",
           "single_objective": single, "multi_objective": multi}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "genetic_quality.json").write_text(json.dumps(out, indent=2, default=float))
    lines = ["# GeneticSampler quality", "", f"Threads: {out['threads']}. Driver: {out['driver']}.",
             "", "| problem | evals | seeds | GeneticSampler best (mean +- std) | random best "
             "(mean +- std) | GA better |", "|---|---|---|---|---|---|"]
    for r in single:
        lines.append(f"| {r['problem']} | {r['evaluations']} | {r['seeds']} | "
                     f"{r['genetic_mean']:.3f} +- {r['genetic_std']:.3f} | {r['random_mean']:.3f} "
                     f"+- {r['random_std']:.3f} | {r['genetic_wins']}/{r['seeds']} |")
    lines += ["", "| problem | evals | seeds | HV all evals hpcore | HV all evals pymoo | ratio "
              "+- SE | Welch p | HV final pop hpcore | HV final pop pymoo | ratio |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in multi:
        lines.append(f"| {r['problem']} | {r['evaluations']} | {r['seeds']} | "
                     f"{r['hpcore_hv_all_mean']:.4f} +- {r['hpcore_hv_all_std']:.4f} | "
                     f"{r['pymoo_hv_all_mean']:.4f} +- {r['pymoo_hv_all_std']:.4f} | "
                     f"{r['hv_all_ratio']:.4f} +- {r['hv_all_ratio_se']:.4f} | "
                     f"{r['welch_p']:.2f} | {r['hpcore_hv_pop_mean']:.4f} | "
                     f"{r['pymoo_hv_pop_mean']:.4f} | {r['hv_pop_ratio']:.4f} |")
    (RESULTS / "genetic_quality.md").write_text("\n".join(lines) + "\n")
    print("wrote", RESULTS / "genetic_quality.md")


if __name__ == "__main__":
    main()
