"""Issue 16's quality suite: optimizers x problems x seeds at budgets 40 and 100 on the
``hpcore bench`` harness (registry + :func:`hpcore.bench.runner.run_one`).

Run (quality, not timing: under ``nice -n 19``, in the background)::

    nice -n 19 .venv/bin/python bench/bench_quality_suite.py run --workers 2 --seeds 10 \\
        --deadline 14:25          # stop taking new runs at 14:25 UTC
    .venv/bin/python bench/bench_quality_suite.py report    # any time, from what finished

The runs folder is not committed; ``report`` copies every run into
``bench/results/<name>_runs.json``, and on a fresh checkout
``bench_quality_suite.py unpack bench/results/quality_suite_runs.json --runs DIR`` writes
them back so that workers add to them instead of starting over.

Problems: ``hpcore.bench.problems.QUALITY_SUITE`` (10 scikit-learn 3-fold CV tasks with
mixed integer / categorical / log spaces on datasets scikit-learn ships, 6 synthetic
functions: multimodal and noisy ones).  The MLP and the SVC on breast cancer are scored
by CV log-loss (``*_logloss_breast_cancer``): by error rate they saturated.

Candidate variants of BayesSampler (``VARIANTS``, each one option changed; ``--optimizers``
selects them): ``hpcore-bayes+power`` (Yeo-Johnson output transform), ``+mace`` (HEBO's
acquisition portfolio), ``+mace+power``, ``+mace-s4`` (MACE with 4 starts per
acquisition), ``+tr`` (TuRBO-1 trust region), ``+tr-inc`` (the trust region restarted
around the same best point instead of a new design).

Optimizers, each at its package's defaults (the harness's ``n_initial`` = 10 equals every
default start-up size used here):

* ``hpcore-bayes``: BayesSampler() (10 Sobol start-up trials, GP + log-EI).  The stored
  runs of that name were made before commit 0771a3c, with the previous default
  (no trust region); since 0771a3c BayesSampler's default is ``trust_region=True,
  trust_restart="incumbent"``, i.e. the candidate ``hpcore-bayes+tr-inc`` (bit-identical
  proposals), so ``report --default hpcore-bayes+tr-inc`` labels that candidate as the
  default and ``hpcore-bayes`` as "no trust region";
* ``hpcore-genetic``: GeneticSampler() with ``set_budget(n_trials)`` as Study.optimize
  does, so its population is sized from the budget (min(50, max(8, n_trials // 5)):
  8 at 40 trials, 20 at 100) -- it therefore gets its own 40-trial runs;
* ``hpcore-random``: RandomSampler (the regret's reference);
* ``optuna-tpe``: TPESampler(), ``optuna-gp``: GPSampler() (greenlet installed),
  ``optuna-nsga2``: NSGAIISampler() (population 50, its default);
* ``skopt-gp``: scikit-optimize ``Optimizer(base_estimator="GP")``: the same set-up as
  ``gp_minimize`` (gp_hedge, lbfgs acquisition search, 10,000 points, 5 restarts, GP with
  a Gaussian noise term).

Budget 40 is the first 40 trials of the 100-trial runs for every optimizer that is not
told the budget (all but GeneticSampler).  scikit-optimize costs about 1-2 s per call at
100 observations on one thread, so it is scheduled as 40-trial runs first (its budget-40
figure) and 100-trial runs after, as time allows (a 100-trial run replaces the 40-trial
run of its seed: its first 40 trials are the same, every optimizer being deterministic
given its seed).

Threads: OMP/OPENBLAS/MKL set to 1 before any import, threadpoolctl limits of 1 and
``torch.set_num_threads(1)`` around every run (the harness's ``pin_threads`` and
``run_one``).  Each (optimizer, problem, seed, budget) run is a JSON file under
``--runs`` (default ``.agents/artifacts/qual16/runs``), claimed by an exclusive create,
so several workers share the queue, a stopped run resumes, and ``report`` reads whatever
finished.  The scikit-learn objectives are deterministic (fixed folds, random_state=0),
so each worker caches their values by configuration (repeated configurations are not
re-trained; the values are the same).

Normalized regret (per budget B): ``(final_B - best_B) / (ref_B - best_B)``; ``best_B``
is the best (noise-free) value any optimizer reached within B trials at any seed on that
problem (0), ``ref_B`` the median over seeds of hpcore-random's final best at B (1).
Mean over seeds per problem, then mean over problems.  Mann-Whitney U (two-sided) of
final bests per problem against optuna-tpe.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RUNS = ROOT / ".agents" / "artifacts" / "qual16" / "runs"
BUDGETS = (40, 100)
CAP = 2.0   # the capped variant: each run's regret at most CAP (saturated problems)
OPTIMIZERS = ("hpcore-bayes", "hpcore-genetic", "hpcore-random", "optuna-tpe", "optuna-gp",
              "skopt-gp", "optuna-nsga2")
CANDIDATES = ("hpcore-bayes+power", "hpcore-bayes+mace", "hpcore-bayes+mace+power",
              "hpcore-bayes+tr", "hpcore-bayes+mace-s4", "hpcore-bayes+tr-inc")
CHEAP = ("hpcore-bayes", "optuna-tpe", "hpcore-random", "hpcore-genetic", "optuna-nsga2",
         "optuna-gp")
VARIANTS: dict[str, object] = {}   # name -> factory(space, settings): candidate changes


def _bayes_power(space, s):
    """Candidate: BayesSampler with the Yeo-Johnson output transform (``transform="power"``,
    an existing option) -- the proposed default."""
    import hpcore as hp
    from hpcore.bench import optimizers as O

    return O.HpcoreAskTell(space, hp.BayesSampler(seed=s.seed, n_threads=1, transform="power"))


VARIANTS["hpcore-bayes+power"] = _bayes_power


def _bayes_variant(**kw):
    """Candidate: BayesSampler with the options ``kw`` (one default changed)."""
    def make(space, s):
        import hpcore as hp
        from hpcore.bench import optimizers as O

        return O.HpcoreAskTell(space, hp.BayesSampler(seed=s.seed, n_threads=1, **kw))
    return make


# MACE acquisition portfolio (HEBO); with HEBO's Yeo-Johnson output transform too
VARIANTS["hpcore-bayes+mace"] = _bayes_variant(acquisition="mace")
VARIANTS["hpcore-bayes+mace+power"] = _bayes_variant(acquisition="mace", transform="power")
# MACE at about the cost of one maximization: 4 L-BFGS starts per acquisition, not 12
VARIANTS["hpcore-bayes+mace-s4"] = _bayes_variant(acquisition="mace", n_starts=4)
# TuRBO-1's trust region (local search with restarts, for multimodal functions)
VARIANTS["hpcore-bayes+tr"] = _bayes_variant(trust_region=True)
# ... restarting around the same best point (side reset) instead of a new design
VARIANTS["hpcore-bayes+tr-inc"] = _bayes_variant(trust_region=True, trust_restart="incumbent")


# ----------------------------------------------------------------------------- optimizers
def _register() -> None:
    """Suite-specific factories (defaults of each package) under the suite's names."""
    from hpcore.bench import optimizers as O
    from hpcore.bench.registry import get_optimizer, register_optimizer

    get_optimizer("hpcore-random")  # registers the built-ins first

    def genetic(space, s):
        import hpcore as hp

        smp = hp.GeneticSampler(seed=s.seed)
        smp.set_budget(s.n_trials)  # what Study.optimize(n_trials=...) does
        return O.HpcoreAskTell(space, smp)

    def bayes(space, s):
        import hpcore as hp

        return O.HpcoreAskTell(space, hp.BayesSampler(seed=s.seed, n_threads=1))

    def tpe(space, s):
        import optuna

        return O.OptunaAskTell(space, optuna.samplers.TPESampler(seed=s.seed), seed=s.seed)

    def gp(space, s):
        import optuna

        return O.OptunaAskTell(space, optuna.samplers.GPSampler(seed=s.seed), seed=s.seed)

    def nsga2(space, s):
        import optuna

        return O.OptunaAskTell(space, optuna.samplers.NSGAIISampler(seed=s.seed), seed=s.seed)

    for name, make, fam, req in (
            ("q16:hpcore-bayes", bayes, "hpcore", ()),
            ("q16:hpcore-genetic", genetic, "hpcore", ()),
            ("q16:optuna-tpe", tpe, "optuna", ("optuna",)),
            ("q16:optuna-gp", gp, "optuna", ("optuna", "torch")),
            ("q16:optuna-nsga2", nsga2, "optuna", ("optuna",))):
        register_optimizer(name, make, family=fam, requires=req, replace=True)
    for name, make in VARIANTS.items():
        register_optimizer(f"q16:{name}", make, family="hpcore", replace=True)


def _spec(name: str):
    from hpcore.bench.registry import get_optimizer

    if name in ("hpcore-random", "skopt-gp"):
        return get_optimizer(name)
    return get_optimizer(f"q16:{name}")


# ----------------------------------------------------------------------------- tasks
CORE = ("hpcore-bayes", "optuna-tpe", "hpcore-random")
EXPENSIVE = ("optuna-gp", "skopt-gp")
GA = ("hpcore-genetic", "optuna-nsga2")


def tasks(n_seeds: int, optimizers=OPTIMIZERS, problems=None):
    """The queue, in rounds, so that a run stopped early has every optimizer at some
    seeds and the cheap comparisons at the most:

    0. seed 0: everyone on everything (scikit-optimize as 40-trial runs);
    1. seeds 1-9 of the synthetic problems for the core (Bayes, TPE, random), the GA pair
       (GeneticSampler at 100 and 40 trials, NSGA-II) and candidate variants (cheap:
       no training);
    2. seeds 1-4 of the scikit-learn tasks for the same;
    3. seeds 1-2 of Optuna GP, seed 1 of scikit-optimize (40 trials);
    4. seeds 5-9 of the scikit-learn tasks for the core, GA pair and variants;
    5. the rest of Optuna GP and of scikit-optimize's 40-trial runs;
    6. scikit-optimize's 100-trial runs.

    Within a round: seed, then optimizer, then problem."""
    from hpcore.bench.problems import QUALITY_SUITE
    from hpcore.bench.registry import get_problem

    probs = list(problems or QUALITY_SUITE)
    synth = [p for p in probs if get_problem(p).kind != "sklearn"]
    skl = [p for p in probs if get_problem(p).kind == "sklearn"]
    rest = tuple(o for o in optimizers if o not in CORE + GA + ("optuna-gp", "skopt-gp"))
    cheap = CORE + GA + rest
    rounds = [(range(0, 1), cheap + ("optuna-gp", "skopt-gp"), probs, 40),
              (range(1, n_seeds), cheap, synth, 40),
              (range(1, 5), cheap, skl, 40),
              (range(1, 3), ("optuna-gp",), probs, 40), (range(1, 2), ("skopt-gp",), probs, 40),
              (range(5, n_seeds), cheap, skl, 40),
              (range(3, n_seeds), ("optuna-gp",), probs, 40),
              (range(2, n_seeds), ("skopt-gp",), probs, 40),
              (range(0, n_seeds), ("skopt-gp",), probs, 100)]
    out, seen = [], set()
    for seeds, opts, plist, skopt_n in rounds:
        for seed in seeds:
            if seed >= n_seeds:
                continue
            for o in opts:
                if o not in optimizers:
                    continue
                for p in plist:
                    ns = [skopt_n] if o == "skopt-gp" else [100]
                    if o == "hpcore-genetic":
                        ns = [100, 40]
                    for n in ns:
                        if (o, p, seed, n) not in seen:
                            seen.add((o, p, seed, n))
                            out.append((o, p, seed, n))
    return out


def _key(o, p, seed, n):
    return f"{o}__{p}__s{seed}__n{n}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _claim(runs: Path, key: str) -> bool:
    if (runs / f"{key}.json").exists():
        return False
    claim = runs / f"{key}.claim"
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            pid = int(claim.read_text() or "0")
        except (OSError, ValueError):
            return False
        if pid and not _alive(pid):  # its worker died: take it over
            claim.unlink(missing_ok=True)
            return _claim(runs, key)
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def claimed_runs(runs: Path, queue, deadline: float | None):
    """Yield ``(task, key)`` for each task of ``queue`` (``(optimizer, problem, seed,
    n_trials)``) this process claims, until ``deadline`` (epoch seconds) passes or a
    ``STOP`` file appears in ``runs``.  The caller saves the run with :func:`save_run`."""
    for task in queue:
        if deadline is not None and time.time() > deadline:
            print(f"[{os.getpid()}] deadline reached", flush=True)
            return
        if (runs / "STOP").exists():
            print(f"[{os.getpid()}] STOP file: exiting", flush=True)
            return
        key = _key(*task)
        if _claim(runs, key):
            yield task, key


def save_run(runs: Path, key: str, rec: dict) -> None:
    """Write a finished run atomically (temporary file, rename) and release its claim."""
    tmp = runs / f"{key}.json.tmp"
    tmp.write_text(json.dumps(rec))
    tmp.rename(runs / f"{key}.json")
    (runs / f"{key}.claim").unlink(missing_ok=True)


def add_queue_options(sp, runs_default: Path) -> None:
    """The options every subcommand over a runs folder shares."""
    sp.add_argument("--runs", default=str(runs_default))
    sp.add_argument("--seeds", type=int, default=10)
    sp.add_argument("--optimizers", default=None)
    sp.add_argument("--problems", default=None)
    sp.add_argument("--deadline", default=None, help="HH:MM UTC: take no new run after")


_CACHE: dict = {}


def _cached(problem):
    """The problem with its (deterministic) scikit-learn objective cached by config."""
    if problem.kind != "sklearn":
        return problem
    fn = problem.objective

    def objective(params, rng, fn=fn, name=problem.name):
        k = (name, repr(sorted(params.items())))
        if k not in _CACHE:
            _CACHE[k] = fn(params, rng)
        return _CACHE[k]
    return dataclasses.replace(problem, objective=objective)


def worker(args) -> None:
    from hpcore.bench.registry import get_problem
    from hpcore.bench.runner import pin_threads, run_one

    pin_threads(1)
    warnings.filterwarnings("ignore")
    _register()
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    opts = tuple(args.optimizers.split(",")) if args.optimizers else OPTIMIZERS + CANDIDATES
    probs = args.problems.split(",") if args.problems else None
    deadline = _deadline(args.deadline)
    queue = tasks(args.seeds, opts, probs)
    if getattr(args, "queue", None):  # an explicit queue: lines "optimizer problem seed n"
        queue = [(o, p, int(seed), int(n)) for o, p, seed, n in
                 (ln.split() for ln in Path(args.queue).read_text().splitlines()
                  if ln.strip() and not ln.startswith("#"))]
    if args.reverse:
        queue = queue[::-1]
    if args.cheap_first:  # the expensive peers' runs after every other run
        queue = ([t for t in queue if t[0] not in EXPENSIVE]
                 + [t for t in queue if t[0] in EXPENSIVE])
    for (o, p, seed, n), key in claimed_runs(runs, queue, deadline):
        if o == "skopt-gp" and n == 40 and (runs / f"{_key(o, p, seed, 100)}.json").exists():
            (runs / f"{key}.claim").unlink(missing_ok=True)
            continue
        t0, c0 = time.time(), time.process_time()
        rows = run_one(_cached(get_problem(p)), _spec(o), seed, n, n_initial=10, n_threads=1)
        rec = {"optimizer": o, "problem": p, "seed": seed, "n_trials": n,
               "best_so_far": [r["best_so_far"] for r in rows],
               "value": [r["value"] for r in rows],
               "suggest_time": [r["suggest_time"] for r in rows],
               "objective_time_s": float(sum(r["objective_time"] for r in rows)),
               "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0,
               "loadavg_end": os.getloadavg()[0], "finished_utc": _now()}
        save_run(runs, key, rec)
        print(f"[{os.getpid()}] {key}: final {rec['best_so_far'][-1]:.6g} "
              f"({rec['wall_s']:.1f} s wall, load {rec['loadavg_end']:.2f})", flush=True)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _deadline(s: str | None):
    if not s:
        return None
    h, m = map(int, s.split(":"))
    now = datetime.now(timezone.utc)
    return now.replace(hour=h, minute=m, second=0, microsecond=0).timestamp()


def run(args) -> None:
    """Start ``--workers`` worker processes on the shared queue and wait for them."""
    cmd = [sys.executable, __file__, "worker", "--seeds", str(args.seeds), "--runs", args.runs]
    for flag in ("deadline", "optimizers", "problems"):
        if getattr(args, flag):
            cmd += [f"--{flag}", getattr(args, flag)]
    procs = []
    for i in range(args.workers):
        procs.append(subprocess.Popen(cmd + (["--reverse"] if args.split and i % 2 else [])))
        time.sleep(2)
    for pr in procs:
        pr.wait()


def unpack(args) -> None:
    """Write the runs of a committed ``*_runs.json`` back as run files under ``--runs``
    (the runs folder is not committed: a fresh checkout resumes from the report's copy).
    A run file already there is kept."""
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    new = 0
    for r in json.loads(Path(args.source).read_text()):
        f = runs / f"{_key(r['optimizer'], r['problem'], r['seed'], r['n_trials'])}.json"
        if not f.exists():
            f.write_text(json.dumps(r))
            new += 1
    print(f"{new} run files written under {runs}")


# ----------------------------------------------------------------------------- report
def load_runs(runs: Path) -> list[dict]:
    out = []
    for f in sorted(runs.glob("*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return out


def finals_at(recs: list[dict], budget: int) -> dict:
    """(optimizer, problem) -> {seed: best after ``budget`` trials}.  GeneticSampler: its
    own runs of that budget; the others: the first ``budget`` trials of their longest run."""
    out: dict = {}
    chosen: dict = {}
    for r in recs:
        o, p, s, n = r["optimizer"], r["problem"], r["seed"], r["n_trials"]
        if n < budget or len(r["best_so_far"]) < budget:
            continue
        if o == "hpcore-genetic" or o.startswith("ga:"):
            if n != budget:
                continue
        k = (o, p, s)
        if k in chosen and chosen[k] >= n:
            continue
        chosen[k] = n
        out.setdefault((o, p), {})[s] = float(r["best_so_far"][budget - 1])
    return out


def mwu_p(a, b) -> float:
    """Two-sided Mann-Whitney U p-value of samples ``a`` and ``b``; 1.0 when they hold the
    same values (scipy's statistic is undefined there).  Callers apply their own minimum
    sample sizes."""
    from scipy.stats import mannwhitneyu

    if len(a) == len(b) and np.allclose(sorted(a), sorted(b)):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def summarize(recs: list[dict], budget: int, problems: list[str], optimizers: list[str],
              seeds: list[int] | None = None) -> dict:
    fin = finals_at(recs, budget)
    if seeds is not None:
        fin = {k: {s: v for s, v in d.items() if s in seeds} for k, d in fin.items()}
    per: dict = {}
    for p in problems:
        allv = [v for (o, q), d in fin.items() if q == p for v in d.values()]
        ref_runs = fin.get(("hpcore-random", p), {})
        if not allv or not ref_runs:
            continue
        best = min(allv)
        ref = float(np.median(list(ref_runs.values())))
        den = ref - best
        e = {"best_seen": best, "reference": ref, "optimizers": {}}
        for o in optimizers:
            d = fin.get((o, p))
            if not d:
                continue
            seeds_o = sorted(d)
            fv = np.array([d[s] for s in seeds_o])
            reg = (fv - best) / den if den > 0 else np.full(len(fv), np.nan)
            e["optimizers"][o] = {"seeds": seeds_o, "finals": fv.tolist(),
                                  "median_final": float(np.median(fv)),
                                  "mean_regret": float(np.mean(reg)) if den > 0 else math.nan,
                                  "mean_regret_capped": (float(np.mean(np.minimum(reg, CAP)))
                                                         if den > 0 else math.nan)}
        tpe = e["optimizers"].get("optuna-tpe")
        for o, oe in e["optimizers"].items():
            oe["p_vs_tpe"] = math.nan
            if tpe is None or o == "optuna-tpe" or len(oe["finals"]) < 2:
                continue
            oe["p_vs_tpe"] = mwu_p(oe["finals"], tpe["finals"])
        per[p] = e
    overall = {}
    for o in optimizers:
        regs = [per[p]["optimizers"][o]["mean_regret"] for p in per
                if o in per[p]["optimizers"] and not math.isnan(per[p]["optimizers"][o]
                                                                  ["mean_regret"])]
        n_seeds = [len(per[p]["optimizers"][o]["seeds"]) for p in per if o in per[p]["optimizers"]]
        worse = [p for p in per if o in per[p]["optimizers"] and "optuna-tpe" in
                 per[p]["optimizers"] and per[p]["optimizers"][o]["p_vs_tpe"] < 0.05
                 and per[p]["optimizers"][o]["median_final"]
                 > per[p]["optimizers"]["optuna-tpe"]["median_final"]]
        better = [p for p in per if o in per[p]["optimizers"] and "optuna-tpe" in
                  per[p]["optimizers"] and per[p]["optimizers"][o]["p_vs_tpe"] < 0.05
                  and p not in worse]
        capped = [per[p]["optimizers"][o]["mean_regret_capped"] for p in per
                  if o in per[p]["optimizers"] and not math.isnan(per[p]["optimizers"][o]
                                                                    ["mean_regret"])]
        overall[o] = {"mean_regret": float(np.mean(regs)) if regs else math.nan,
                      "mean_regret_capped": float(np.mean(capped)) if capped else math.nan,
                      "n_problems": len(regs), "n_runs": int(sum(n_seeds)),
                      "seeds_min": min(n_seeds) if n_seeds else 0,
                      "seeds_max": max(n_seeds) if n_seeds else 0,
                      "sig_worse_than_tpe": worse, "sig_better_than_tpe": better}
    return {"budget": budget, "problems": per, "optimizers": overall}


def _common_seeds(recs, budget, problems, optimizers) -> list[int]:
    fin = finals_at(recs, budget)
    common = None
    for o in optimizers:
        for p in problems:
            s = set(fin.get((o, p), {}))
            common = s if common is None else common & s
    return sorted(common or [])


def paired(s: dict, a: str, b: str) -> dict:
    """Mean normalized regret of ``a`` and ``b`` over the (problem, seed) pairs both ran
    (the normalization from every run): per problem over the common seeds, then over
    the problems with any."""
    ra, rb, probs, n = [], [], [], 0
    for p, e in s["problems"].items():
        oa, ob = e["optimizers"].get(a), e["optimizers"].get(b)
        den = e["reference"] - e["best_seen"]
        if oa is None or ob is None or not den > 0:
            continue
        fa, fb = dict(zip(oa["seeds"], oa["finals"])), dict(zip(ob["seeds"], ob["finals"]))
        common = sorted(set(fa) & set(fb))
        if not common:
            continue
        ra.append(np.mean([(fa[k] - e["best_seen"]) / den for k in common]))
        rb.append(np.mean([(fb[k] - e["best_seen"]) / den for k in common]))
        probs.append(p)
        n += len(common)
    return {"a": float(np.mean(ra)) if ra else math.nan,
            "b": float(np.mean(rb)) if rb else math.nan, "problems": probs, "n_pairs": n}


def versus_default(s: dict, cand: str, default: str = "hpcore-bayes") -> dict:
    """A candidate against the default on one budget's summary ``s``: mean regrets over
    the (problem, seed) pairs both ran (:func:`paired`) and the problems where the final
    bests differ at p < 0.05 (two-sided Mann-Whitney U, at least 2 seeds each), split by
    which median is lower."""
    pr = paired(s, default, cand)
    better, worse = [], []
    for p, e in s["problems"].items():
        od, oc = e["optimizers"].get(default), e["optimizers"].get(cand)
        if od is None or oc is None or len(od["finals"]) < 2 or len(oc["finals"]) < 2:
            continue
        a, b = oc["finals"], od["finals"]
        if mwu_p(a, b) < 0.05:
            (better if np.median(a) < np.median(b) else worse).append(p)
    return {"default": pr["a"], "candidate": pr["b"], "n_pairs": pr["n_pairs"],
            "better": better, "worse": worse}


def acceptance(S: dict, M: dict, bayes: str = "hpcore-bayes",
               genetic: bool | None = None) -> list[dict]:
    """The issue's checks from the summaries ``S[budget]`` (all seeds) and ``M[budget]``
    (seeds every optimizer finished on every problem); ``bayes``: whose figures;
    ``genetic``: add GeneticSampler's checks (default: when ``bayes`` is hpcore-bayes)."""
    out = []

    def reg(d, o):
        return d["optimizers"].get(o, {}).get("mean_regret", math.nan)

    for b in BUDGETS:
        s, m = S.get(b), M.get(b)
        if s is None:
            continue
        bay, tpe = reg(s, bayes), reg(s, "optuna-tpe")
        out.append({"check": f"B{b}: Bayes mean regret <= 0.85 x TPE's",
                    "value": f"{bay:.3f} vs 0.85 x {tpe:.3f} = {0.85 * tpe:.3f}",
                    "holds": bool(bay <= 0.85 * tpe)})
        pr = paired(s, bayes, "optuna-tpe")
        out.append({"check": f"B{b}: the same on the (problem, seed) pairs both ran",
                    "value": f"{pr['a']:.3f} vs 0.85 x {pr['b']:.3f} = {0.85 * pr['b']:.3f} "
                             f"({pr['n_pairs']} pairs)",
                    "holds": bool(pr["a"] <= 0.85 * pr["b"])})
        for peer in ("skopt-gp", "optuna-gp"):
            pr = paired(s, bayes, peer)
            out.append({"check": f"B{b}: Bayes mean regret < {peer}'s (on the (problem, "
                                 f"seed) pairs both ran)",
                        "value": f"{pr['a']:.3f} vs {pr['b']:.3f} ({pr['n_pairs']} pairs, "
                                 f"{len(pr['problems'])} problems)",
                        "holds": bool(pr["a"] < pr["b"]) if pr["n_pairs"] else None,
                        "pairs": pr["n_pairs"]})
        worse = s["optimizers"].get(bayes, {}).get("sig_worse_than_tpe", [])
        out.append({"check": f"B{b}: Bayes significantly worse than TPE (MWU p<0.05) on <= 1 task",
                    "value": f"{len(worse)}: {', '.join(worse) or '-'}",
                    "holds": len(worse) <= 1})
    s = S.get(100)
    if genetic is None:
        genetic = bayes == "hpcore-bayes"
    if s is not None and genetic:
        ga, rnd, ns = (reg(s, "hpcore-genetic"), reg(s, "hpcore-random"),
                       reg(s, "optuna-nsga2"))
        out.append({"check": "B100: GeneticSampler beats random search (mean regret)",
                    "value": f"{ga:.3f} vs {rnd:.3f}", "holds": bool(ga < rnd)})
        out.append({"check": "B100: GeneticSampler beats Optuna NSGAIISampler() (mean regret)",
                    "value": f"{ga:.3f} vs {ns:.3f}", "holds": bool(ga < ns)})
    return out


def _label(o: str, default: str) -> str:
    """Display name of optimizer ``o`` when ``default`` holds BayesSampler's default."""
    if default == "hpcore-bayes+tr-inc":
        if o == default:
            return "hpcore-bayes (default: trust region, incumbent restart)"
        if o == "hpcore-bayes":
            return "hpcore-bayes (no trust region)"
    return o


def _holds(h) -> str:
    return "not measured" if h is None else ("yes" if h else "NO")


def _fmt(x, nd=3):
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def report(args) -> None:
    from hpcore.bench.problems import QUALITY_SUITE
    from hpcore.bench.registry import get_problem

    runs = Path(args.runs)
    recs = load_runs(runs)
    problems = [p for p in (args.problems.split(",") if args.problems else QUALITY_SUITE)]
    base = list(args.optimizers.split(",")) if args.optimizers else list(OPTIMIZERS)
    extra = sorted({r["optimizer"] for r in recs} - set(base))
    optimizers = base + extra
    S, M = {}, {}
    for b in BUDGETS:
        S[b] = summarize(recs, b, problems, optimizers)
        common = _common_seeds(recs, b, problems, [o for o in base if o != "skopt-gp"]
                               + (["skopt-gp"] if "skopt-gp" in base else []))
        M[b] = summarize(recs, b, problems, optimizers, seeds=common) if common else None
        if M[b] is not None:
            M[b]["seeds"] = common
    acc = acceptance(S, M, bayes=args.default, genetic=True)
    def L(o):
        return _label(o, args.default)
    cand = {c: acceptance(S, M, bayes=c) for c in extra + ["hpcore-bayes"]
            if c != args.default and c in optimizers}
    head = [
        "# Quality suite (issue 16): BayesSampler, GeneticSampler and peers at budgets 40 "
        "and 100", "",
        (f"Commands: {args.command_note}; " if args.command_note else
         f"Command: `nice -n 19 .venv/bin/python bench/bench_quality_suite.py run --workers 2 "
         f"--seeds 10 --deadline {args.deadline_note}` then `.venv/bin/python "
         f"bench/bench_quality_suite.py report`; ")
        + f"{runs_summary(recs)}  Python {platform.python_version()}; "
        f"{_versions()}; {_code_note(runs)}.", "",
        "Protocol: see the docstring of `bench/bench_quality_suite.py`.  Each optimizer at "
        "its package's defaults; 1 thread for all.  Budget 40 = the first 40 trials of the "
        "100-trial runs for every optimizer not told the budget; GeneticSampler is told it "
        "(population from n_trials) and has its own 40-trial runs.  Normalized regret per "
        "budget: 0 = the best value anyone reached within that budget, 1 = hpcore-random's "
        "median final best at that budget; mean over seeds, then over problems (a problem "
        "where random's median already equals the best seen has no regret and is left out "
        "of the averages).  p = two-sided Mann-Whitney U against optuna-tpe's final bests.",
        ""]
    lines = list(head)
    if args.default != "hpcore-bayes":
        lines += [f"BayesSampler's default at this commit is the configuration run as "
                  f"`{args.default}`; the rows `hpcore-bayes` are the previous default.  The "
                  f"acceptance checks below are for `{args.default}`.", ""]
    lines += [f"## Acceptance checks (issue 16), Bayes = {L(args.default)}", "",
              "| check | figure | holds |", "|---|---|---|"]
    lines += [f"| {a['check']} | {a['value']} | {_holds(a['holds'])} |" for a in acc]
    for c, ca in cand.items():
        if args.default != "hpcore-bayes" and c != "hpcore-bayes":
            continue    # the other candidates: their rows in the table below and the JSON
        lines += ["", f"`{L(c)}` in place of the default (same runs of the peers):",
                  "", "| check | figure | holds |", "|---|---|---|"]
        lines += [f"| {a['check']} | {a['value']} | {_holds(a['holds'])} |" for a in ca]
    versus = [c for c in extra + ["hpcore-bayes"] if c != args.default and c in optimizers]
    if versus:
        lines += ["", f"## Candidates against the default ({L(args.default)})", "",
                  "Per budget: mean normalized regret of the default and the candidate over the "
                  "(problem, seed) pairs both ran, and the problems where the candidate's final "
                  "bests differ from the default's at p < 0.05 (two-sided Mann-Whitney U; "
                  "better / worse by median).", "",
                  "| candidate | budget | default | candidate | pairs | significantly better "
                  "than the default | significantly worse than the default |",
                  "|---|---:|---:|---:|---:|---|---|"]
        for c in versus:
            for b in BUDGETS:
                vd = versus_default(S[b], c, default=args.default)
                lines.append(f"| {L(c)} | {b} | {_fmt(vd['default'])} | {_fmt(vd['candidate'])} "
                             f"| {vd['n_pairs']} | {', '.join(vd['better']) or '-'} | "
                             f"{', '.join(vd['worse']) or '-'} |")
    # per-problem columns: the default first, then the base optimizers, then the candidates
    cols = [args.default] + [o for o in optimizers if o != args.default]
    for b in BUDGETS:
        s = S[b]
        lines += ["", f"## Budget {b}: mean normalized regret", "",
                  "| optimizer | mean regret (all seeds) | capped at 2 | problems | seeds per "
                  "problem | mean regret (matched seeds) | significantly worse than TPE | "
                  "significantly better than TPE |", "|---|---:|---:|---:|---:|---:|---|---|"]
        m = M[b]
        order = sorted(s["optimizers"], key=lambda o: np.nan_to_num(
            s["optimizers"][o]["mean_regret"], nan=9e9))
        for o in order:
            e = s["optimizers"][o]
            mr = m["optimizers"][o]["mean_regret"] if m and o in m["optimizers"] else math.nan
            sd = (f"{e['seeds_min']}" if e["seeds_min"] == e["seeds_max"]
                  else f"{e['seeds_min']}-{e['seeds_max']}")
            lines.append(f"| {L(o)} | {_fmt(e['mean_regret'])} | {_fmt(e['mean_regret_capped'])} "
                         f"| {e['n_problems']} | {sd} | "
                         f"{_fmt(mr)} | {', '.join(e['sig_worse_than_tpe']) or '-'} | "
                         f"{', '.join(e['sig_better_than_tpe']) or '-'} |")
        if m:
            lines += ["", f"Matched seeds (every optimizer finished every problem): "
                      f"{m['seeds']}."]
        else:
            lines += ["", "Matched seeds: none yet (some optimizer lacks a seed on some "
                      "problem)."]
        lines += ["", f"### Budget {b}, per problem: mean normalized regret (p vs TPE)", "",
                  "Cells: mean normalized regret (p vs TPE) [seeds].", "",
                  "| problem | best seen | random median | "
                  + " | ".join(L(o) for o in cols) + " |",
                  "|---|---:|---:|" + "---:|" * len(cols)]
        for p in problems:
            e = s["problems"].get(p)
            if e is None:
                continue
            cells = []
            for o in cols:
                oe = e["optimizers"].get(o)
                if oe is None:
                    cells.append("-")
                    continue
                pv = "" if math.isnan(oe["p_vs_tpe"]) else f" ({oe['p_vs_tpe']:.2g})"
                cells.append(f"{_fmt(oe['mean_regret'], 2)}{pv} [{len(oe['seeds'])}]")
            lines.append(f"| {p} | {e['best_seen']:.5g} | {e['reference']:.5g} | "
                         + " | ".join(cells) + " |")
    lines += ["", "## Problems", "", "| problem | kind | parameters | description |",
              "|---|---|---|---|"]
    for p in problems:
        pr = get_problem(p)
        kinds = ", ".join(f"{k}: {_dist(v)}" for k, v in pr.space.items())
        lines.append(f"| {p} | {pr.kind} | {kinds} | {pr.description} |")
    out = Path(args.out)
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    (out / f"{args.name}.json").write_text(json.dumps(
        {"acceptance": acc, "candidates": cand, "budgets": {str(b): S[b] for b in BUDGETS},
         "matched": {str(b): M[b] for b in BUDGETS}, **run_stats(recs)}, indent=1,
        default=float))
    (out / f"{args.name}_runs.json").write_text(json.dumps(
        [{k: (v if k not in ("best_so_far", "value") else [float(f"{x:.7g}") for x in v])
          for k, v in r.items() if k != "suggest_time"} for r in recs]))
    print("\n".join(lines[:40]))


def run_stats(recs: list[dict]) -> dict:
    """When the last run finished, the runs' CPU time and the load they ran at."""
    loads = [r["loadavg_end"] for r in recs]
    return {"n_runs": len(recs), "cpu_hours": sum(r["cpu_s"] for r in recs) / 3600,
            "last_run": max((r["finished_utc"] for r in recs), default="-"),
            "load_median": float(np.median(loads)) if loads else math.nan,
            "load_max": max(loads) if loads else math.nan}


def runs_summary(recs: list[dict], what: str = "runs") -> str:
    """:func:`run_stats` as a sentence for a report's header."""
    st = run_stats(recs)
    return (f"{st['n_runs']} {what} finished (last at {st['last_run']}), "
            f"{st['cpu_hours']:.2f} CPU-hours; 1-minute load average at the end of each run: "
            f"median {st['load_median']:.2f}, max {st['load_max']:.2f} (a shared 2-core "
            f"machine; quality figures do not depend on load).")


def _dist(d) -> str:
    from hpcore.space import Categorical, Int

    if isinstance(d, Categorical):
        return "cat(" + "/".join(map(str, d.choices)) + ")"
    kind = "int" if isinstance(d, Int) else "float"
    return f"{kind}[{d.low:g}, {d.high:g}{', log' if d.log else ''}]"


def _code_note(runs: Path) -> str:
    """Which hpcore the runs imported: ``run_git.txt`` beside the runs folder (the HEAD and
    ``git status`` of the snapshot the workers ran from), else the current HEAD."""
    f = runs.parent / "run_git.txt"
    if f.exists():
        text = f.read_text()
        if text.startswith("note:"):    # a free-text description of the snapshots
            return "hpcore: " + " ".join(text[5:].split())
        lines = text.split()
        return (f"hpcore: a copy of the working tree taken when the run started (HEAD "
                f"{lines[0][:7]} plus the uncommitted changes recorded in "
                f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}; bayes.py = HEAD's)")
    return f"hpcore at git {_git()}"


def _git() -> str:
    try:
        h = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                           capture_output=True).stdout.strip()
        return h or "?"
    except OSError:
        return "?"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("numpy", "scipy", "scikit-learn", "optuna", "torch", "greenlet",
                "scikit-optimize"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("unpack", help="restore run files from a committed *_runs.json")
    sp.add_argument("source", help="e.g. bench/results/quality_suite_runs.json")
    sp.add_argument("--runs", default=str(RUNS))
    for name in ("run", "worker", "report"):
        sp = sub.add_parser(name)
        add_queue_options(sp, RUNS)
        if name == "run":
            sp.add_argument("--workers", type=int, default=2)
            sp.add_argument("--split", action="store_true",
                            help="odd workers take the queue from its end")
        if name == "worker":
            sp.add_argument("--reverse", action="store_true")
            sp.add_argument("--queue", default=None,
                            help="file of runs to take in order, one 'optimizer problem seed "
                                 "n_trials' a line (replaces the built-in queue)")
            sp.add_argument("--cheap-first", action="store_true",
                            help="take Optuna GP's and scikit-optimize's runs last")
        if name == "report":
            sp.add_argument("--out", default=str(RESULTS))
            sp.add_argument("--deadline-note", default="14:25")
            sp.add_argument("--name", default="quality_suite",
                            help="output file stem under --out")
            sp.add_argument("--default", default="hpcore-bayes",
                            help="the optimizer name whose runs are BayesSampler's current "
                                 "default (the acceptance checks are for it)")
            sp.add_argument("--command-note", default=None,
                            help="the run commands, as written into the header")
    args = ap.parse_args(argv)
    {"run": run, "worker": worker, "report": report, "unpack": unpack}[args.cmd](args)


if __name__ == "__main__":
    main()
