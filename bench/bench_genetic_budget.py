"""GeneticSampler's budget-sized default population against the old default (50) and
random search, on synthetic functions at small budgets.

Run: ``.venv/bin/python bench/bench_genetic_budget.py`` (10 seeds, budgets 40 and 100).
Reports the median over seeds of the best value found (lower is better) and writes
``bench/results/genetic_budget.md``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

import hpcore as hp

RESULTS = Path(__file__).resolve().parent / "results"


def sphere(x):
    return float((x ** 2).sum())


def rastrigin(x):
    return float(10 * len(x) + (x ** 2 - 10 * np.cos(2 * np.pi * x)).sum())


def rosenbrock(x):
    return float((100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum())


PROBLEMS = {"sphere-6": (sphere, 6, 5.12), "rastrigin-6": (rastrigin, 6, 5.12),
            "rosenbrock-4": (rosenbrock, 4, 2.048)}


def run(make, f, d, r, budget, seed):
    space = hp.Space({f"x{i}": hp.Float(-r, r) for i in range(d)})
    st = hp.Study(space, sampler=make(seed))
    st.optimize(lambda t: f(np.array([t.params[f"x{i}"] for i in range(d)])), n_trials=budget)
    return st.best_value


def main() -> None:
    seeds = range(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
    makers = {"GA budget-sized (new default)": lambda s: hp.GeneticSampler(seed=s),
              "GA population 50 (old default)": lambda s: hp.GeneticSampler(population_size=50, seed=s),
              "random": lambda s: hp.RandomSampler(seed=s)}
    rows = ["# GeneticSampler default population vs the old default and random search", "",
            f"Command: `.venv/bin/python bench/bench_genetic_budget.py {len(seeds)}`; median "
            f"best value over {len(seeds)} seeds (lower is better); load average at the end "
            "{load}.", "",
            "| problem | budget | " + " | ".join(makers) + " |",
            "|---|---|" + "---|" * len(makers)]
    for name, (f, d, r) in PROBLEMS.items():
        for budget in (40, 100):
            meds = [np.median([run(m, f, d, r, budget, s) for s in seeds]) for m in makers.values()]
            rows.append(f"| {name} | {budget} | " + " | ".join(f"{v:.3g}" for v in meds) + " |")
            print(rows[-1], flush=True)
    text = "\n".join(rows).replace("{load}", "%.1f" % os.getloadavg()[0]) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "genetic_budget.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
