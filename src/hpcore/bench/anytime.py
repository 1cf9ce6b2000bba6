"""Halving quality judged by anytime performance: best validation accuracy vs cumulative
epochs, hpcore's pruners against Optuna's and against random search with full training.

Set-up, fixed before any run (the literature's settings, not tuned on results):

* Tasks: the harness's learning-curve problems ``sgd_digits``, ``mlp_digits`` and
  ``sgd_synth`` (see :mod:`hpcore.bench.problems`); 27 epochs is a full training.
* Pruners: minimum resource 1 epoch, maximum 27, reduction factor eta = 3 -- Hyperband's
  and BOHB's standard set-up (Li et al. 2018, Falkner et al. 2018: R = 27, eta = 3 gives
  4 brackets; ASHA, Li et al. 2020, uses the same rungs), which is also Optuna's
  ``HyperbandPruner`` default (min_resource 1, reduction factor 3); Optuna's
  ``SuccessiveHalvingPruner`` gets min_resource 1, reduction factor 3 (its default is 4)
  and min_early_stopping_rate 0, so both libraries prune with the same rungs.
* Random search with full training runs ``2 * 49 = 98`` trials (two Hyperband
  iterations' worth of configurations for R = 27, eta = 3): ``E = 98 * 27 = 2646``
  epochs per seed.  Every other method starts trials while a full training still fits
  in ``E / 3`` epochs.
* Same sampler: every random-sampling method evaluates hpcore ``RandomSampler(seed)``'s
  configurations in the same order (trial ``n`` gets stream ``n``), Optuna's pruners
  included (the configurations are enqueued into an Optuna study with its
  ``RandomSampler``), so the methods differ only in their pruning.  BOHB-style is
  ``BayesSampler(n_startup_trials=10, seed)`` + ``Hyperband(1, 27, 3)`` (its
  multi-fidelity defaults: model on the highest budget with ``d + 2`` points, a random
  fraction of 1/3, pruned trials at the budget's worst value).
* The incumbent ("best") is the best validation accuracy among trials trained for all
  27 epochs (the model a user would deploy); before the first such trial it is
  undefined.
* Seeds 0..9 (``--seeds``).  Epoch counts do not depend on the machine's load.

Usage: ``hpcore bench --halving [--tasks sgd_digits,mlp_digits,sgd_synth] [--seeds 10]``
(or ``--summarize`` to rebuild the tables from the saved runs; ``--methods m1,m2`` reruns
only those methods on saved seeds whose entries predate this module's ``REVISION``,
keeping the others' saved results -- for a change that can only affect those methods;
curves then come from a cold cache, so only their seconds column differs).  Writes
``halving_anytime_<task>.json`` (every run's trajectory, resumable by seed) and
``halving_anytime.md`` / ``halving_anytime_<task>.md`` / ``halving_anytime.png``.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from hpcore.bench.registry import OptimizerSpec, Settings, get_problem

__all__ = ["METHODS", "TASKS", "main", "run_task_seed", "summarize"]

TASKS = ("sgd_digits", "mlp_digits", "sgd_synth")
R, ETA, MIN_R = 27, 3, 1
N_RANDOM = 98
N_INITIAL = 10
METHODS = ("random", "hpcore-sh", "hpcore-hyperband", "hpcore-asha", "hpcore-bohb",
           "optuna-sh", "optuna-hyperband")
LABELS = {"random": "random search (full training)", "hpcore-sh": "hpcore SuccessiveHalving",
          "hpcore-hyperband": "hpcore Hyperband", "hpcore-asha": "hpcore ASHA",
          "hpcore-bohb": "hpcore BOHB-style (Bayes + Hyperband)",
          "optuna-sh": "Optuna SuccessiveHalvingPruner", "optuna-hyperband": "Optuna HyperbandPruner"}
FRACTIONS = (1 / 27, 1 / 9, 1 / 3, 1.0)
#: Code revision recorded with each method's result: 2 = tied rung values share a rank
#: (hpcore pruners) and BOHB-style's random fraction + pruned trials at the budget's worst.
REVISION = 2


def _make(method: str):
    def make(space, s: Settings):
        import hpcore as hp
        from hpcore.bench.optimizers import HpcoreAskTell, OptunaAskTell

        if method == "random":
            return HpcoreAskTell(space, hp.RandomSampler(seed=s.seed))
        if method == "hpcore-sh":
            return HpcoreAskTell(space, hp.RandomSampler(seed=s.seed),
                                 hp.SuccessiveHalving(MIN_R, R, ETA))
        if method == "hpcore-hyperband":
            return HpcoreAskTell(space, hp.RandomSampler(seed=s.seed),
                                 hp.Hyperband(MIN_R, R, ETA, seed=s.seed))
        if method == "hpcore-asha":
            return HpcoreAskTell(space, hp.RandomSampler(seed=s.seed), hp.ASHA(MIN_R, R, ETA))
        if method == "hpcore-bohb":
            return HpcoreAskTell(space, hp.BayesSampler(n_startup_trials=N_INITIAL, seed=s.seed,
                                                        n_threads=1),
                                 hp.Hyperband(MIN_R, R, ETA, seed=s.seed))
        import optuna

        source = hp.Study(space, sampler=hp.RandomSampler(seed=s.seed))
        if method == "optuna-sh":
            pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=MIN_R,
                                                            reduction_factor=ETA)
        elif method == "optuna-hyperband":
            pruner = optuna.pruners.HyperbandPruner(min_resource=MIN_R, max_resource=R,
                                                    reduction_factor=ETA)
        else:
            raise ValueError(f"method: unknown method {method!r}")
        return OptunaAskTell(space, optuna.samplers.RandomSampler(seed=s.seed), pruner,
                             seed=s.seed, params_source=lambda: dict(source.ask().params))
    return make


def _spec(method: str) -> OptimizerSpec:
    return OptimizerSpec(method, _make(method), requires=("optuna",) if "optuna" in method else (),
                         pruner=None if method == "random" else method, family=method.split("-")[0])


def _best_at(rows: list[dict], budget: float) -> float:
    vals = [r["value"] for r in rows if r["state"] == "complete" and r["cum_epochs"] <= budget]
    return 1.0 - min(vals) if vals else float("nan")


def run_task_seed(task: str, seed: int, methods=METHODS, log=print) -> dict[str, Any]:
    """All methods on one task at one seed (curves cached across methods)."""
    from hpcore.bench.runner import CurveCache, run_one

    problem = get_problem(task)
    cache = CurveCache(problem)
    E = N_RANDOM * R
    out: dict[str, Any] = {"task": task, "seed": seed, "E": E, "methods": {}}
    for m in methods:
        t0 = time.perf_counter()
        cap = E if m == "random" else E / 3
        rows = run_one(problem, _spec(m), seed, N_RANDOM, n_initial=N_INITIAL, n_threads=1,
                       cache=cache, epoch_cap=cap)
        traj = [[r["cum_epochs"], (1.0 - r["best_so_far"]) if math.isfinite(r["best_so_far"])
                 else None] for r in rows]
        out["methods"][m] = {
            "best_at": {f"{f:.6f}": _best_at(rows, f * E) for f in FRACTIONS},
            "epochs": rows[-1]["cum_epochs"] if rows else 0, "n_trials": len(rows),
            "n_full": sum(r["state"] == "complete" for r in rows),
            "seconds": time.perf_counter() - t0, "traj": traj, "revision": REVISION}
        log(f"{task} seed {seed} {m:17s} best@E/3 {out['methods'][m]['best_at'][f'{1/3:.6f}']:.4f}"
            f"  epochs {out['methods'][m]['epochs']}  trials {len(rows)}"
            f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    out["epochs_computed"] = cache.computed
    return out


def _path(out: Path, task: str) -> Path:
    return out / f"halving_anytime_{task}.json"


def _load(out: Path, task: str) -> dict[str, Any]:
    p = _path(out, task)
    return json.loads(p.read_text()) if p.exists() else {}


def run(tasks, seeds, out: Path, log=print, methods=None) -> None:
    """Every method on each (task, seed) not saved yet; with ``methods``, also those
    methods on saved seeds whose entries are older than :data:`REVISION` (one call per
    seed, so they share its curve cache), merged into the saved seed."""
    out.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for seed in seeds:
            done = _load(out, task)
            if str(seed) in done:
                continue
            res = run_task_seed(task, seed, log=log)
            done = _load(out, task)  # re-read: resumable
            done[str(seed)] = res
            _path(out, task).write_text(json.dumps(done))
    for m in methods or ():
        if m not in METHODS:
            raise ValueError(f"methods: unknown method {m!r} (one of {', '.join(METHODS)})")
    for task in tasks:
        for seed in seeds:
            saved = _load(out, task)[str(seed)]["methods"]
            todo = [m for m in methods or () if saved.get(m, {}).get("revision", 1) < REVISION]
            if not todo:
                continue
            res = run_task_seed(task, seed, methods=todo, log=log)
            done = _load(out, task)
            done[str(seed)]["methods"].update(res["methods"])
            _path(out, task).write_text(json.dumps(done))


# ----------------------------------------------------------------------------- summary
def _stats(x: list[float]) -> tuple[float, float]:
    a = np.asarray(x, dtype=float)
    return float(np.mean(a)), float(np.std(a, ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0


def summarize(out: Path, tasks=TASKS, log=print) -> dict[str, Any]:
    """Tables (markdown), acceptance and the anytime plot from the saved runs."""
    from scipy.stats import mannwhitneyu

    third = f"{1 / 3:.6f}"
    full = f"{1.0:.6f}"
    summary: dict[str, Any] = {"tasks": {}}
    lines = ["# Halving quality: anytime best validation accuracy vs cumulative epochs", "",
             "Command: `hpcore bench --halving --seeds N` (seeds 0..N-1; resumable, so "
             "`--tasks T --seeds M` (M > N) adds seeds N..M-1 to task T only: each task's heading "
             "gives its seed count; set-up in "
             "`src/hpcore/bench/anytime.py`'s docstring: R = 27 epochs, eta = 3, minimum "
             "resource 1; random search 98 full trainings = E epochs; every other method "
             "stops starting trials once a full training would exceed E/3; the same "
             "RandomSampler configurations in every random-sampling method).  Best = best "
             "validation accuracy among trials trained for all 27 epochs.  Epoch counts do not "
             "depend on machine load; the seconds column is wall time on a shared 2-core "
             "machine.", ""]
    accept_rows = []
    bohb_wins = 0
    n_tasks = 0
    for task in tasks:
        runs = _load(out, task)
        if not runs:
            continue
        n_tasks += 1
        seeds = sorted(runs, key=int)
        E = runs[seeds[0]]["E"]
        per = {m: [runs[s]["methods"][m] for s in seeds if m in runs[s]["methods"]]
               for m in METHODS}
        rnd_full = [r["best_at"][full] for r in per["random"]]
        mu_full, se_full = _stats(rnd_full)
        t = {"n_seeds": len(seeds), "E": E, "random_full_mean": mu_full,
             "random_full_se": se_full, "methods": {}}
        lines += [f"## {task} ({len(seeds)} seeds; E = {E} epochs)", "",
                  f"Random search at E: mean best {mu_full:.4f} +- {se_full:.4f} (standard "
                  "error over seeds).", "",
                  "| method | mean best @E/27 | @E/9 | @E/3 (+- s.e.) | >= random@E - s.e. "
                  "| Mann-Whitney p vs random@E | mean epochs / E | mean trials | mean full "
                  "trainings | mean s |", "|---|---:|---:|---:|:---:|---:|---:|---:|---:|---:|"]
        for m in METHODS:
            rs = per[m]
            if not rs:
                continue
            at = {f: [r["best_at"][f"{f:.6f}"] for r in rs] for f in FRACTIONS}
            mu, se = _stats(at[1 / 3])
            ok = mu >= mu_full - se_full
            p = float(mannwhitneyu(at[1 / 3], rnd_full, alternative="two-sided").pvalue) \
                if len(rs) > 1 and m != "random" else float("nan")
            t["methods"][m] = {"mean_third": mu, "se_third": se, "within_se_of_random_full": ok,
                               "p_vs_random_full": p,
                               "mean_at": {f"{f:.6f}": float(np.nanmean(at[f])) for f in FRACTIONS},
                               "per_seed_third": at[1 / 3]}
            lines.append(f"| {LABELS[m]} | {np.nanmean(at[1 / 27]):.4f} | "
                         f"{np.nanmean(at[1 / 9]):.4f} | {mu:.4f} +- {se:.4f} | "
                         f"{'yes' if ok else 'no'} | {p:.3g} | "
                         f"{np.mean([r['epochs'] for r in rs]) / E:.3f} | "
                         f"{np.mean([r['n_trials'] for r in rs]):.0f} | "
                         f"{np.mean([r['n_full'] for r in rs]):.1f} | "
                         f"{np.mean([r['seconds'] for r in rs]):.0f} |")
        M = t["methods"]
        checks = {}
        for ours, peer in (("hpcore-asha", "optuna-sh"), ("hpcore-hyperband", "optuna-hyperband")):
            if ours in M:
                checks[f"{ours} within 1 s.e. of random@E"] = M[ours]["within_se_of_random_full"]
            if ours in M and peer in M:
                checks[f"{ours} >= {peer} @E/3"] = M[ours]["mean_third"] >= M[peer]["mean_third"]
                t.setdefault("p_vs_optuna", {})[ours] = float(mannwhitneyu(
                    M[ours]["per_seed_third"], M[peer]["per_seed_third"],
                    alternative="two-sided").pvalue)
        if "hpcore-bohb" in M and "hpcore-hyperband" in M:
            win = M["hpcore-bohb"]["mean_third"] > M["hpcore-hyperband"]["mean_third"]
            checks["hpcore-bohb > hpcore-hyperband (Random + Hyperband) @E/3"] = win
            bohb_wins += int(win)
        t["checks"] = checks
        lines += ["", "Checks: " + "; ".join(f"{k}: {'yes' if v else 'NO'}"
                                              for k, v in checks.items()) + "."]
        if t.get("p_vs_optuna"):
            lines.append("Mann-Whitney U (two-sided, per-seed bests at E/3) of hpcore against "
                         "Optuna's corresponding pruner: " + "; ".join(
                             f"{k} p = {v:.3g}" for k, v in t["p_vs_optuna"].items()) + ".")
        lines.append("")
        accept_rows.append((task, checks))
        summary["tasks"][task] = t
        _write_task_table(out, task, runs, seeds, E)
    all_ok = all(v for _, c in accept_rows for k, v in c.items() if "bohb" not in k)
    bohb_ok = bohb_wins >= 2
    summary["acceptance"] = {"asha_hyperband_all_tasks": all_ok and n_tasks >= 3,
                             "bohb_wins": bohb_wins, "bohb_ok": bohb_ok and n_tasks >= 3}
    lines += ["## Acceptance", "",
              f"- ASHA and Hyperband at E/3 within one standard error of random search's "
              f"full-budget mean best, and at least Optuna's corresponding pruner "
              f"(ASHA vs SuccessiveHalvingPruner, Hyperband vs HyperbandPruner), on every task: "
              f"**{'HOLDS' if summary['acceptance']['asha_hyperband_all_tasks'] else 'DOES NOT HOLD'}**",
              f"- BOHB-style beats Random + Hyperband on mean best at E/3 on at least 2 of 3 "
              f"tasks: **{'HOLDS' if summary['acceptance']['bohb_ok'] else 'DOES NOT HOLD'}** "
              f"({bohb_wins} of {n_tasks})", "",
              "Per-seed tables: `halving_anytime_<task>.md`; trajectories: "
              "`halving_anytime_<task>.json`; plot: `halving_anytime.png`.", ""]
    (out / "halving_anytime.md").write_text("\n".join(lines))
    (out / "halving_anytime_summary.json").write_text(json.dumps(summary, indent=1))
    _plot(out, tasks)
    log("\n".join(lines))
    return summary


def _write_task_table(out: Path, task: str, runs: dict, seeds: list[str], E: int) -> None:
    third, full = f"{1 / 3:.6f}", f"{1.0:.6f}"
    ms = [m for m in METHODS if m in runs[seeds[0]]["methods"]]
    lines = [f"# {task}: best validation accuracy per seed (epochs / trials)", "",
             f"E = {E} epochs (random search, 98 full trainings); every other method at E/3.",
             "", "| seed | random @E | random @E/3 | " + " | ".join(m for m in ms if m != "random")
             + " |", "|---:|" + "---|" * (len(ms) + 1)]
    for s in seeds:
        mm = runs[s]["methods"]
        r = mm["random"]
        cells = [f"{r['best_at'][full]:.4f} / {r['epochs']} / {r['n_trials']}",
                 f"{r['best_at'][third]:.4f}"]
        cells += [f"{mm[m]['best_at'][third]:.4f} / {mm[m]['epochs']} / {mm[m]['n_trials']}"
                  for m in ms if m != "random"]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    (out / f"halving_anytime_{task}.md").write_text("\n".join(lines) + "\n")


def _curve_on_grid(traj: list, grid: np.ndarray) -> np.ndarray:
    xs = np.array([p[0] for p in traj], dtype=float)
    ys = np.array([np.nan if p[1] is None else p[1] for p in traj], dtype=float)
    idx = np.searchsorted(xs, grid, side="right") - 1
    out = np.where(idx >= 0, ys[np.clip(idx, 0, None)], np.nan)
    return np.where(grid <= (xs[-1] if len(xs) else 0), out, np.nan)


def _plot(out: Path, tasks) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - plot extra missing
        return
    present = [t for t in tasks if _load(out, t)]
    if not present:
        return
    fig, axes = plt.subplots(1, len(present), figsize=(6 * len(present), 4.5), squeeze=False)
    for ax, task in zip(axes[0], present):
        runs = _load(out, task)
        seeds = sorted(runs, key=int)
        E = runs[seeds[0]]["E"]
        grid = np.linspace(R, E, 200)
        for m in METHODS:
            trajs = [runs[s]["methods"][m]["traj"] for s in seeds if m in runs[s]["methods"]]
            if not trajs:
                continue
            # up to the epochs every seed reached, so the mean is over all seeds
            end = min(tr[-1][0] for tr in trajs if tr)
            Y = np.array([_curve_on_grid(tr, grid) for tr in trajs])
            Y[:, grid > end] = np.nan
            with np.errstate(all="ignore"):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mu = np.nanmean(Y, axis=0)
                    se = np.nanstd(Y, axis=0, ddof=1) / np.sqrt(np.sum(~np.isnan(Y), axis=0))
            ax.plot(grid, mu, label=LABELS[m], lw=1.4)
            ax.fill_between(grid, mu - se, mu + se, alpha=0.15)
        ax.axvline(E / 3, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("cumulative epochs")
        ax.set_ylabel("best validation accuracy (mean +- s.e.)")
        ax.set_title(f"{task} ({len(seeds)} seeds)")
        lo = np.nanmin([runs[s]["methods"]["random"]["best_at"][f"{1.0:.6f}"] for s in seeds])
        hi = np.nanmax([r["best_at"][f"{1 / 3:.6f}"] for s in seeds
                        for r in runs[s]["methods"].values()])
        ax.set_ylim(lo - 0.02, hi + 0.2 * (hi - lo) + 1e-3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "halving_anytime.png", dpi=110)
    plt.close(fig)


def main(tasks, seeds, out: Path, summarize_only: bool = False, log=print,
         methods=None) -> None:
    from hpcore.bench.runner import pin_threads

    pin_threads(1)
    if not summarize_only:
        run(tasks, seeds, out, log=log, methods=methods)
    summarize(out, TASKS, log=log)
