"""Issue 16's batch check on the quality suite: batches of 8, BayesSampler against
Optuna's TPE with constant liar.

Run (quality, not timing: under ``nice -n 19``, one worker)::

    nice -n 19 .venv/bin/python bench/bench_quality_batch.py run --seeds 10 --deadline 20:50
    .venv/bin/python bench/bench_quality_batch.py report

``report`` also writes every batch run to ``bench/results/<name>_runs.json``;
``bench_quality_suite.py unpack bench/results/quality_suite_batch8_runs.json --runs DIR``
restores them on a fresh checkout.

Protocol (as Bayesmark runs batches): each round asks 8 trials before any tell, evaluates
them, then tells all 8.  Budget 100 = 12 full rounds plus a last round of 4 (exactly 100
evaluations); budget 40 = the first 5 rounds of the same runs.  Optimizers:

* ``hpcore-bayes@8``: ``BayesSampler(trust_region=True, trust_restart="incumbent",
  seed=s, n_threads=1)`` (BayesSampler's default since 0771a3c), each round one
  ``Study.ask_batch(8)`` (with the default ``batch_strategy="auto"`` since e1e3dad:
  each point as an ask would, a warm refit and a maximization with the batch's
  earlier points pending as kriging-believer fantasies, kept ``pending_radius`` =
  1e-3 apart; before, one fit and a candidate pool), then ``Study.tell`` for each
  trial;
* ``optuna-tpe-cl@8``: ``TPESampler(constant_liar=True, seed=s)``, ``study.ask()`` 8
  times (with the ``suggest_*`` calls), then ``study.tell`` 8 times (Optuna's
  recommended batch set-up).

Start-up: every package's default (10 trials), as in ``bench_quality_suite.py`` (its
``n_initial=10``), each counted its package's way: Optuna counts *finished* trials, so
TPE-CL spends the first two rounds (16 trials) on random start-up; BayesSampler counts
*started* trials once half its design has finished (since 3563004: the second round is
its design's last 2 points and 6 from the GP; before, 16 trials as TPE-CL).

Problems, objective caching (the scikit-learn objectives are deterministic), the run files
and their claims, noise streams (keyed by (seed, problem, trial index)) and the regret's
normalization are those of ``bench/bench_quality_suite.py`` (imported).  Normalization
per budget: 0 = the best value anyone reached within the budget on the problem, over the
batch runs here and every sequential run of ``--peer-runs`` (the suite's runs dir), 1 =
the median over seeds of the sequential ``hpcore-random`` runs in ``--peer-runs`` (random
search does not depend on batching).  The sequential runs of ``hpcore-bayes+tr-inc`` and
``optuna-tpe`` are shown beside the batch runs for context.

Near-duplicates: within each batch of 8 of every run, the pairs at Euclidean distance
<= 1e-3 in the space's unit-cube encoding (``Space.encode``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_quality_suite as Q  # noqa: E402  (sets the thread variables first)

import numpy as np  # noqa: E402

ROOT = Q.ROOT
RUNS = ROOT / ".agents" / "artifacts" / "batch16" / "runs"
PEER_RUNS = ROOT / ".agents" / "artifacts" / "qual16b" / "runs"
Q_BATCH = 8
DUP_RADIUS = 1e-3
BAYES, TPE_CL = "hpcore-bayes@8", "optuna-tpe-cl@8"
OPTIMIZERS = (BAYES, TPE_CL)
CONTEXT = ("hpcore-bayes+tr-inc", "optuna-tpe")     # sequential runs, from --peer-runs
TARGET = 0.85


# ----------------------------------------------------------------------------- runs
def _make(name: str, space, seed: int):
    """(ask_round(k) -> list of (params, handle), tell(handle, value))."""
    if name == BAYES:
        import hpcore as hp

        study = hp.Study(space, sampler=hp.BayesSampler(
            trust_region=True, trust_restart="incumbent", seed=seed, n_threads=1),
            direction="minimize")

        def ask(k):
            return [(dict(t.params), t) for t in study.ask_batch(k)]

        def tell(h, v):
            study.tell(h, float(v))
        return ask, tell
    if name == TPE_CL:
        import optuna

        from hpcore.bench.optimizers import OptunaAskTell

        opt = OptunaAskTell(space, optuna.samplers.TPESampler(constant_liar=True, seed=seed),
                            seed=seed)

        def ask(k):
            return [(s.params, s) for s in (opt.ask() for _ in range(k))]

        def tell(h, v):
            opt.tell(h, float(v))
        return ask, tell
    raise KeyError(f"optimizer: unknown batch optimizer {name!r}; known: {OPTIMIZERS}")


def _pairs_within(U: np.ndarray) -> tuple[int, float]:
    """Pairs of rows of ``U`` at distance <= DUP_RADIUS, and the minimum distance."""
    D = np.sqrt(((U[:, None, :] - U[None, :, :]) ** 2).sum(-1))
    iu = np.triu_indices(len(U), 1)
    d = D[iu]
    return int((d <= DUP_RADIUS).sum()), float(d.min()) if len(d) else math.nan


def run_batch(problem, name: str, seed: int, n_trials: int, q: int = Q_BATCH) -> dict:
    """One run: rounds of ``q`` asks, then ``q`` evaluations, then ``q`` tells."""
    from threadpoolctl import threadpool_limits

    from hpcore.bench.runner import _noise_rng, _torch_threads

    space = problem.hp_space()
    truth = problem.true_value
    best, t = np.inf, 0
    bsf, vals, ask_s, dups, mind = [], [], [], [], []
    with threadpool_limits(1):
        _torch_threads(1)
        ask, tell = _make(name, space, seed)
        while t < n_trials:
            k = min(q, n_trials - t)
            t0 = time.perf_counter()
            batch = ask(k)
            ask_s.append(time.perf_counter() - t0)
            U = np.array([space.encode(p) for p, _ in batch], dtype=float)
            U = np.nan_to_num(U, nan=0.5)
            nd, md = _pairs_within(U)
            dups.append(nd)
            mind.append(md)
            ys = []
            for i, (p, _) in enumerate(batch):
                v = float(problem.objective(p, _noise_rng(problem.name, seed, t + i)))
                ys.append(v)
                tv = float(truth(p)) if truth is not None else v
                best = min(best, tv)
                vals.append(v)
                bsf.append(best)
            for (_, h), v in zip(batch, ys):
                tell(h, v)
            t += len(batch)
    return {"best_so_far": bsf, "value": vals, "ask_round_s": ask_s,
            "dup_pairs_per_round": dups, "min_dist_per_round": mind,
            "finite_space": bool(all(d.is_finite() for d in space.params.values()))}


def tasks(n_seeds: int, optimizers=OPTIMIZERS, problems=None, first_seed: int = 0):
    """Synthetic half at every seed first (cheap), then the scikit-learn half seed by
    seed, both optimizers per seed (matched pairs); seeds ``first_seed ..
    first_seed + n_seeds - 1`` (fresh seeds check a choice made on the first ones)."""
    from hpcore.bench.problems import QUALITY_SUITE
    from hpcore.bench.registry import get_problem

    probs = list(problems or QUALITY_SUITE)
    synth = [p for p in probs if get_problem(p).kind != "sklearn"]
    skl = [p for p in probs if get_problem(p).kind == "sklearn"]
    seeds = range(first_seed, first_seed + n_seeds)
    out = [(o, p, s, 100) for s in seeds for p in synth for o in optimizers]
    out += [(o, p, s, 100) for s in seeds for p in skl for o in optimizers]
    return out


def worker(args) -> None:
    from hpcore.bench.registry import get_problem
    from hpcore.bench.runner import pin_threads

    pin_threads(1)
    warnings.filterwarnings("ignore")
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    opts = tuple(args.optimizers.split(",")) if args.optimizers else OPTIMIZERS
    probs = args.problems.split(",") if args.problems else None
    deadline = Q._deadline(args.deadline)
    for (o, p, seed, n), key in Q.claimed_runs(runs, tasks(args.seeds, opts, probs,
                                                                   args.first_seed), deadline):
        t0, c0 = time.time(), time.process_time()
        rec = {"optimizer": o, "problem": p, "seed": seed, "n_trials": n, "batch": Q_BATCH}
        rec.update(run_batch(Q._cached(get_problem(p)), o, seed, n))
        rec.update({"wall_s": time.time() - t0, "cpu_s": time.process_time() - c0,
                    "loadavg_end": os.getloadavg()[0], "finished_utc": Q._now()})
        Q.save_run(runs, key, rec)
        print(f"[{os.getpid()}] {key}: final {rec['best_so_far'][-1]:.6g} dups "
              f"{sum(rec['dup_pairs_per_round'])} ({rec['cpu_s']:.1f} s CPU, "
              f"{rec['wall_s']:.1f} s wall, load {rec['loadavg_end']:.2f})", flush=True)


# ----------------------------------------------------------------------------- report
def _mwu(a, b) -> float:
    return math.nan if len(a) < 2 or len(b) < 2 else Q.mwu_p(a, b)


def _pairs_checked(r: dict) -> int:
    """Within-batch pairs of run ``r``: full rounds of Q_BATCH, then its last round."""
    rounds, n = len(r["dup_pairs_per_round"]), len(r["best_so_far"])
    last = n - Q_BATCH * (rounds - 1)
    return (rounds - 1) * Q_BATCH * (Q_BATCH - 1) // 2 + last * (last - 1) // 2


def report(args) -> None:
    from hpcore.bench.problems import QUALITY_SUITE

    recs = Q.load_runs(Path(args.runs))
    peers = [r for r in Q.load_runs(Path(args.peer_runs)) if r["optimizer"] not in OPTIMIZERS]
    problems = list(args.problems.split(",") if args.problems else QUALITY_SUITE)
    shown = list(OPTIMIZERS) + list(CONTEXT)
    S = {b: Q.summarize(recs + peers, b, problems, shown) for b in Q.BUDGETS}
    out_json = {"budgets": {}, "n_runs": len(recs), "batch": Q_BATCH}
    code = ("hpcore: " + args.code_note) if args.code_note else Q._code_note(Path(args.runs))
    lines = [
        "# Quality suite (issue 16) with batches of 8: BayesSampler against TPE with "
        "constant liar", "",
        f"Command: `nice -n 19 .venv/bin/python bench/bench_quality_batch.py run --seeds 10 "
        f"--deadline {args.deadline_note}` (one worker) then `.venv/bin/python "
        f"bench/bench_quality_batch.py report`; {code}; "
        f"{Q.runs_summary(recs, 'batch runs')}  {Q._versions()}.", "",
        "Protocol: see the docstring of `bench/bench_quality_batch.py`.  Each round asks 8 "
        "trials before any tell, evaluates them, tells all 8; budget 100 = 12 rounds of 8 "
        "plus a last round of 4 (exactly 100 evaluations), budget 40 = the first 5 rounds. "
        "`hpcore-bayes@8` = `BayesSampler(trust_region=True, trust_restart=\"incumbent\")` "
        "through `Study.ask_batch(8)`; `optuna-tpe-cl@8` = `TPESampler(constant_liar=True)`, "
        "8 `ask()` then 8 `tell()`.  Normalized regret: 0 = the best value anyone reached "
        "within the budget (these batch runs and every sequential run of the suite's runs "
        f"dir `{Path(args.peer_runs).relative_to(ROOT) if Path(args.peer_runs).is_relative_to(ROOT) else args.peer_runs}`), "
        "1 = the median of the sequential hpcore-random runs' final bests there; mean over "
        "seeds per problem, then over problems.  p = two-sided Mann-Whitney U of the final "
        "bests, Bayes@8 against TPE-CL@8.  The sequential `hpcore-bayes+tr-inc` and "
        "`optuna-tpe` (suite runs, their own seeds) are shown for context only.", ""]
    acc = []
    for b in Q.BUDGETS:
        s = S[b]
        ov = s["optimizers"]
        rb, rt = ov.get(BAYES, {}).get("mean_regret", math.nan), \
            ov.get(TPE_CL, {}).get("mean_regret", math.nan)
        pr = Q.paired(s, BAYES, TPE_CL)
        per = {}
        for p, e in s["problems"].items():
            ob, ot = e["optimizers"].get(BAYES), e["optimizers"].get(TPE_CL)
            if ob is None or ot is None:
                continue
            per[p] = {"seeds_bayes": len(ob["seeds"]), "seeds_tpe_cl": len(ot["seeds"]),
                      "median_bayes": ob["median_final"], "median_tpe_cl": ot["median_final"],
                      "regret_bayes": ob["mean_regret"], "regret_tpe_cl": ot["mean_regret"],
                      "p": _mwu(ob["finals"], ot["finals"]),
                      "best_seen": e["best_seen"], "reference": e["reference"]}
        worse = [p for p, v in per.items() if v["p"] < 0.05 and v["median_bayes"] > v["median_tpe_cl"]]
        better = [p for p, v in per.items() if v["p"] < 0.05 and p not in worse]
        ratio = pr["a"] / pr["b"] if pr["b"] > 0 else math.nan
        acc.append({"budget": b, "bayes": rb, "tpe_cl": rt, "paired_bayes": pr["a"],
                    "paired_tpe_cl": pr["b"], "pairs": pr["n_pairs"],
                    "problems": len(pr["problems"]), "ratio": ratio,
                    "holds": bool(ratio <= TARGET), "sig_better": better, "sig_worse": worse})
        out_json["budgets"][str(b)] = {"summary": s, "per_problem": per, "check": acc[-1]}
    lines += ["## Acceptance (issue 16): Bayes@8 regret <= 0.85 x TPE-CL@8's", "",
              "| budget | Bayes@8 | TPE-CL@8 | ratio | holds | (problem, seed) pairs | problems "
              "| Bayes@8 significantly better (p<0.05) | significantly worse |",
              "|---:|---:|---:|---:|---|---:|---:|---|---|"]
    for a in acc:
        lines.append(f"| {a['budget']} | {Q._fmt(a['paired_bayes'])} | "
                     f"{Q._fmt(a['paired_tpe_cl'])} | {Q._fmt(a['ratio'])} | "
                     f"{'yes' if a['holds'] else 'NO'} | {a['pairs']} | {a['problems']} | "
                     f"{', '.join(a['sig_better']) or '-'} | {', '.join(a['sig_worse']) or '-'} |")
    lines += ["", "Mean normalized regret over the (problem, seed) pairs both batch optimizers "
              "ran (every batch run is one of a matched pair: both optimizers run each "
              "seed)."]
    for b in Q.BUDGETS:
        s = S[b]
        lines += ["", f"## Budget {b}: mean normalized regret, all runs", "",
                  "| optimizer | mean regret | capped at 2 | problems | seeds per problem |",
                  "|---|---:|---:|---:|---:|"]
        for o in shown:
            e = s["optimizers"].get(o)
            if e is None or not e["n_problems"]:
                continue
            sd = (f"{e['seeds_min']}" if e["seeds_min"] == e["seeds_max"]
                  else f"{e['seeds_min']}-{e['seeds_max']}")
            tag = " (sequential, context)" if o in CONTEXT else ""
            lines.append(f"| {o}{tag} | {Q._fmt(e['mean_regret'])} | "
                         f"{Q._fmt(e['mean_regret_capped'])} | {e['n_problems']} | {sd} |")
        per = out_json["budgets"][str(b)]["per_problem"]
        lines += ["", f"### Budget {b}, per problem", "",
                  "| problem | best seen | random median | seeds (Bayes@8 / TPE-CL@8) | median "
                  "final Bayes@8 | median final TPE-CL@8 | regret Bayes@8 | regret TPE-CL@8 | "
                  "p (MWU) | regret tr-inc (seq.) | regret TPE (seq.) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in problems:
            v = per.get(p)
            if v is None:
                continue
            e = s["problems"][p]["optimizers"]
            ctx = [Q._fmt(e[o]["mean_regret"], 2) if o in e else "-" for o in CONTEXT]
            lines.append(f"| {p} | {v['best_seen']:.5g} | {v['reference']:.5g} | "
                         f"{v['seeds_bayes']} / {v['seeds_tpe_cl']} | {v['median_bayes']:.5g} | "
                         f"{v['median_tpe_cl']:.5g} | {Q._fmt(v['regret_bayes'], 2)} | "
                         f"{Q._fmt(v['regret_tpe_cl'], 2)} | {v['p']:.2g} | "
                         + " | ".join(ctx) + " |")
    # near-duplicates within batches
    lines += ["", f"## Near-duplicate pairs within each batch (distance <= {DUP_RADIUS:g} in "
              "the unit-cube encoding)", "",
              "Per optimizer and problem: runs, batches, pairs checked, near-duplicate pairs, "
              "the smallest within-batch distance seen (finite space: every parameter "
              "integer or categorical).", "",
              "| optimizer | problem | finite space | runs | batches | pairs | near-duplicate "
              "pairs | min distance |", "|---|---|---|---:|---:|---:|---:|---:|"]
    dup = {}
    for o in OPTIMIZERS:
        for p in problems:
            rs = [r for r in recs if r["optimizer"] == o and r["problem"] == p]
            if not rs:
                continue
            nb = sum(len(r["dup_pairs_per_round"]) for r in rs)
            npairs = sum(_pairs_checked(r) for r in rs)
            nd = sum(sum(r["dup_pairs_per_round"]) for r in rs)
            md = min(min(r["min_dist_per_round"]) for r in rs)
            dup[f"{o}|{p}"] = {"runs": len(rs), "batches": nb, "pairs": npairs, "dups": nd,
                               "min_dist": md}
            lines.append(f"| {o} | {p} | {'yes' if rs[0]['finite_space'] else 'no'} | "
                         f"{len(rs)} | {nb} | {npairs} | {nd} | {md:.3g} |")
    out_json["duplicates"] = dup
    tot = {o: sum(v["dups"] for k, v in dup.items() if k.startswith(o + "|")) for o in OPTIMIZERS}
    lines += ["", "Total near-duplicate pairs: " + ", ".join(f"{o} {n}" for o, n in tot.items())
              + "."]
    out = Path(args.out)
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    out_json.update({"acceptance": acc, **Q.run_stats(recs),
                     "dup_totals": tot})
    (out / f"{args.name}.json").write_text(json.dumps(out_json, indent=1, default=float))
    (out / f"{args.name}_runs.json").write_text(json.dumps(recs, default=float))
    print("\n".join(lines[:30]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("run", "report"):
        sp = sub.add_parser(name)
        Q.add_queue_options(sp, RUNS)
        if name == "run":
            sp.add_argument("--first-seed", type=int, default=0)
        if name == "report":
            sp.add_argument("--peer-runs", default=str(PEER_RUNS))
            sp.add_argument("--out", default=str(Q.RESULTS))
            sp.add_argument("--name", default="quality_suite_batch8")
            sp.add_argument("--deadline-note", default="20:50")
            sp.add_argument("--code-note", default=None,
                            help="which hpcore the runs imported (default: run_git.txt "
                                 "beside the runs folder, else the current HEAD)")
    args = ap.parse_args(argv)
    {"run": worker, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
