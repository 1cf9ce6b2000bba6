"""Driver throughput at cluster scale, by discrete-event simulation (issue 18).

A real :class:`hpcore.Study` (real sampler, pruner and storage: in memory or SQLite)
is driven by *simulated* workers: no processes, no objective code.  Each trial's
duration (the time a full run takes) is drawn from a log-normal distribution (median
``--median`` s, default 60, shape ``--sigma``, default 0.5); a study with a rung
pruner (ASHA) reports once at each rung, at the fraction ``r_L / max_resource`` of
that duration, and a pruned trial ends there.

The clock is virtual, but every driver operation is charged at its measured cost:

* the driver is single-threaded.  When a worker's event (a finished trial, or a report
  waiting for the pruner's verdict) comes at virtual time ``t``, the driver starts on
  it at ``max(t, driver_free)``;
* the driver's calls (``ask``/``tell``/``report``, or ``ask_batch``/``tell_batch``)
  are timed with ``time.perf_counter`` (wall time, so a loaded machine only makes the
  driver look slower) and that wall time ``d`` advances the clock: ``driver_free =
  start + d``; the waiting worker resumes (runs its next trial, or goes on after its
  report) at ``start + d``.  Workers that finish while the driver is busy wait idle;
* what is *not* charged: drawing durations and objective values (the simulated
  cluster's work) and the simulator's own event heap; nor the dispatch layer's IPC
  (a real executor adds its pickling and sockets on top).

Modes: ``seq`` handles one event at a time with the per-trial API (``tell`` then
``ask``: what :class:`~hpcore.executors.DaskExecutor` does today); ``batch`` takes every
event already waiting when the driver becomes free, answers reports one by one, folds
the finished trials in one ``Study.tell_batch`` and asks their replacements with one
``Study.ask_batch(q)`` (q = the number of idle workers, at most ``--max-batch``).

Utilisation = busy worker-time / (workers x horizon), where a run is cut at the
virtual horizon ``--horizon`` (default 3 x median): busy time after the horizon is not
counted, nor the idle tail of a finite budget, so the figure measures the driver's
cost, not the end of a study.  At t = 0 every worker waits for its first ask (the
start-up asks are charged like any other).

Run::

    .venv/bin/python bench/bench_simulation.py              # the table in results/
    .venv/bin/python bench/bench_simulation.py --quick      # 100 and 1,000 workers only
    .venv/bin/python bench/bench_simulation.py --bayes-only # BayesSampler at 2,000 obs
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # pin before numpy/OpenMP load
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import heapq  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import hpcore as hp  # noqa: E402
from hpcore.trial import TrialState  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_overhead import hpcore_space as space  # noqa: E402  (the 6-parameter space)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_MD = os.path.join(HERE, "results", "simulation.md")
RESULTS_JSON = os.path.join(HERE, "results", "simulation.json")


def final_value(p: dict) -> float:
    """The simulated objective (the cluster's work: never charged to the driver)."""
    return ((math.log10(p["lr"]) + 3.0) ** 2 + (p["dropout"] - 0.2) ** 2
            + 0.01 * p["n_layers"] + 0.1 * (p["optimizer"] != "adam"))


def curve_value(p: dict, step: float, number: int) -> float:
    """Intermediate value at ``step``: the final value plus a decaying gap."""
    return final_value(p) + 1.0 / math.sqrt(step) + 0.01 * ((number * 2654435761) % 97) / 97


ASHA_ARGS = dict(min_resource=1, max_resource=27, eta=3)


def make_sampler(name: str, seed: int):
    if name == "random":
        return hp.RandomSampler(seed=seed)
    if name == "genetic":
        return hp.GeneticSampler(population_size=50, seed=seed)
    if name == "bayes":
        return hp.BayesSampler(seed=seed)
    raise ValueError(name)


def make_storage(kind: str, tmp: str, tag: str):
    if kind == "memory":
        return None
    return hp.SQLiteStorage(os.path.join(tmp, f"{tag}.db"))


class _Worker:
    __slots__ = ("trial", "duration", "checkpoints", "next_cp")

    def __init__(self) -> None:
        self.trial = None
        self.duration = 0.0
        self.checkpoints: list[tuple[float, int]] = []
        self.next_cp = 0


def simulate(study: hp.Study, n_workers: int, horizon: float, median: float, sigma: float,
             mode: str, max_batch: int, seed: int, wall_limit: float,
             rungs: list[float] | None) -> dict[str, Any]:
    """One simulated run; returns the measured figures."""
    rng = np.random.default_rng(seed)
    max_res = rungs[-1] if rungs else None
    workers = [_Worker() for _ in range(n_workers)]
    heap: list[tuple[float, int, int]] = []     # (virtual time, tie-breaker, worker)
    tie = 0
    busy = 0.0
    op_wall: list[float] = []     # per driver call (one event in seq, one batch in batch)
    op_size: list[int] = []
    driver_wall = driver_cpu = 0.0
    n_asks = n_tells = n_reports = n_pruned = 0
    pc, cpu = time.perf_counter, time.process_time
    real_start = pc()
    truncated = False

    def begin(w: int, t: float, trial) -> None:
        """Worker ``w`` starts ``trial`` at virtual time ``t``."""
        nonlocal tie
        wk = workers[w]
        wk.trial = trial
        wk.duration = float(median * math.exp(sigma * rng.standard_normal()))
        if rungs:
            wk.checkpoints = [(wk.duration * r / max_res, int(r)) for r in rungs[:-1]]
        wk.next_cp = 0
        resume(w, t)

    def resume(w: int, t: float) -> None:
        """Worker ``w`` runs from ``t`` to its next checkpoint or its end."""
        nonlocal tie, busy
        wk = workers[w]
        done_before = wk.checkpoints[wk.next_cp - 1][0] if wk.next_cp else 0.0
        nxt = wk.checkpoints[wk.next_cp][0] if wk.next_cp < len(wk.checkpoints) else wk.duration
        t_end = t + (nxt - done_before)
        busy += max(0.0, min(t_end, horizon) - min(t, horizon))
        tie += 1
        heapq.heappush(heap, (t_end, tie, w))

    def event_of(w: int):
        """What worker ``w`` hands the driver: ('report', step, value) or ('done', value)."""
        wk = workers[w]
        p = wk.trial.params
        if wk.next_cp < len(wk.checkpoints):
            step = wk.checkpoints[wk.next_cp][1]
            wk.next_cp += 1
            return ("report", step, curve_value(p, step, wk.trial.number))
        return ("done", final_value(p) if not rungs else curve_value(p, max_res, wk.trial.number))

    def charge(t0w: float, t0c: float, size: int) -> float:
        nonlocal driver_wall, driver_cpu
        d = pc() - t0w
        driver_wall += d
        driver_cpu += cpu() - t0c
        op_wall.append(d)
        op_size.append(size)
        return d

    clock = 0.0      # when the driver is next free
    # start-up: every worker waits for its first trial
    if mode == "seq":
        for w in range(n_workers):
            t0w, t0c = pc(), cpu()
            tr = study.ask()
            clock += charge(t0w, t0c, 1)
            n_asks += 1
            begin(w, clock, tr)
    else:
        idle = list(range(n_workers))
        while idle:
            q = min(len(idle), max_batch)
            t0w, t0c = pc(), cpu()
            trs = study.ask_batch(q)
            clock += charge(t0w, t0c, q)
            n_asks += q
            for w, tr in zip(idle[:q], trs):
                begin(w, clock, tr)
            idle = idle[q:]

    while heap:
        if pc() - real_start > wall_limit:
            truncated = True
            break
        t_ev = heap[0][0]
        if t_ev >= horizon:
            break
        start = max(clock, t_ev)
        if start >= horizon:
            break
        if mode == "seq":
            _, _, w = heapq.heappop(heap)
            ev = event_of(w)
            t0w, t0c = pc(), cpu()
            tr = workers[w].trial
            new = None
            if ev[0] == "report":
                n_reports += 1
                if study.report(tr, ev[1], ev[2]):
                    study.tell(tr, state=TrialState.PRUNED)
                    n_pruned += 1
                    n_tells += 1
                    new = study.ask()
                    n_asks += 1
            else:
                study.tell(tr, ev[1])
                n_tells += 1
                new = study.ask()
                n_asks += 1
            clock = start + charge(t0w, t0c, 1)
            if new is None:
                resume(w, clock)
            else:
                begin(w, clock, new)
            continue
        # batch: every event waiting at `start`
        waiting = []
        while heap and heap[0][0] <= start:
            waiting.append(heapq.heappop(heap)[2])
        events = [(w, event_of(w)) for w in waiting]
        t0w, t0c = pc(), cpu()
        go_on, told, outcomes, states = [], [], [], []
        for w, ev in events:
            tr = workers[w].trial
            if ev[0] == "report":
                n_reports += 1
                if study.report(tr, ev[1], ev[2]):
                    told.append(w)
                    outcomes.append(None)
                    states.append(TrialState.PRUNED)
                    n_pruned += 1
                else:
                    go_on.append(w)
            else:
                told.append(w)
                outcomes.append(ev[1])
                states.append(None)
        if told:
            study.tell_batch([workers[w].trial for w in told], outcomes, states=states)
            n_tells += len(told)
        new_trials = []
        for i in range(0, len(told), max_batch):
            new_trials += study.ask_batch(min(max_batch, len(told) - i))
        n_asks += len(new_trials)
        clock = start + charge(t0w, t0c, len(events))
        for w in go_on:
            resume(w, clock)
        for w, tr in zip(told, new_trials):
            begin(w, clock, tr)

    end_virtual = min(horizon, clock) if truncated else horizon
    ow = np.array(op_wall) if op_wall else np.zeros(1)
    return {
        "workers": n_workers, "mode": mode, "horizon_s": end_virtual, "truncated": truncated,
        "utilisation": busy / (n_workers * horizon) if not truncated else float("nan"),
        "asks": n_asks, "tells": n_tells, "reports": n_reports, "pruned": n_pruned,
        "driver_wall_s": driver_wall, "driver_cpu_s": driver_cpu,
        "driver_busy_frac": driver_wall / end_virtual,
        "asks_tells_per_driver_s": (n_asks + n_tells) / driver_wall if driver_wall else 0.0,
        "asks_tells_per_virtual_s": (n_asks + n_tells) / end_virtual,
        "op_median_ms": float(np.median(ow) * 1e3), "op_p90_ms": float(np.quantile(ow, 0.9) * 1e3),
        "op_max_ms": float(ow.max() * 1e3),
        "mean_op_size": float(np.mean(op_size)) if op_size else 0.0,
        "real_s": pc() - real_start,
    }


def run_cell(sampler: str, pruner: bool, storage: str, n_workers: int, mode: str, args,
             tmp: str) -> dict[str, Any]:
    st = make_storage(storage, tmp, f"{sampler}-{pruner}-{n_workers}-{mode}")
    pr = hp.ASHA(**ASHA_ARGS) if pruner else None
    study = hp.Study(space(), sampler=make_sampler(sampler, args.seed), pruner=pr, storage=st)
    gc.collect()
    try:
        res = simulate(study, n_workers, args.horizon, args.median, args.sigma, mode,
                       args.max_batch, args.seed, args.wall_limit,
                       pr.rung_resources if pr else None)
    finally:
        study.close()
    res.update(sampler=sampler, pruner="ASHA" if pruner else "none", storage=storage)
    return res


def bayes_rate(args, n_obs: int = 2000, qs=(1, 64, 256, 1024), pending: int = 0,
               repeats: int = 3) -> list[dict]:
    """Suggestions per second of BayesSampler at ``n_obs`` observations: per call
    (median over ``repeats`` calls), ask() vs ask_batch(q)."""
    sp = space()
    rng = np.random.default_rng(args.seed)
    rows = []
    base = hp.Study(sp, sampler=hp.RandomSampler(seed=args.seed))
    for _ in range(n_obs):
        t = base.ask()
        base.tell(t, final_value(t.params) + 0.01 * rng.standard_normal())
    prefill = base.completed_trials()
    for q in qs:
        study = hp.Study(sp, sampler=hp.BayesSampler(seed=args.seed))
        study.add_trials(prefill)
        for _ in range(pending):
            study.ask_batch(1)
        study.ask_batch(1)       # warm-up: first fit on n_obs (cold start)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            trs = study.ask_batch(q) if q > 1 else [study.ask()]
            times.append(time.perf_counter() - t0)
            assert len(trs) == q
        med = statistics.median(times)
        rows.append({"n_obs": n_obs, "q": q, "pending_before": pending + 1,
                     "call_median_s": med, "call_max_s": max(times),
                     "suggestions_per_s": q / med, "repeats": repeats})
        print(f"bayes n={n_obs} q={q}: {med:.3f} s per call, {q / med:.1f} suggestions/s",
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--median", type=float, default=60.0)
    ap.add_argument("--sigma", type=float, default=0.5)
    ap.add_argument("--horizon", type=float, default=None, help="virtual seconds (3 x median)")
    ap.add_argument("--max-batch", type=int, default=1024)
    ap.add_argument("--samplers", nargs="+", default=["random", "genetic", "asha", "bayes"])
    ap.add_argument("--storages", nargs="+", default=["memory", "sqlite"])
    ap.add_argument("--modes", nargs="+", default=["seq", "batch"])
    ap.add_argument("--bayes-workers", type=int, nargs="+", default=[100, 1000],
                    help="BayesSampler runs only with these worker counts")
    ap.add_argument("--wall-limit", type=float, default=300.0,
                    help="real seconds per run before it is cut (reported as truncated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bayes-only", action="store_true")
    ap.add_argument("--no-bayes-rate", action="store_true")
    ap.add_argument("--out", default=None, help="markdown path (default results/simulation.md)")
    args = ap.parse_args(argv)
    if args.horizon is None:
        args.horizon = 3.0 * args.median
    if args.quick:
        args.workers = [w for w in args.workers if w <= 1000]
    from threadpoolctl import threadpool_limits

    rows: list[dict] = []
    bayes_rows: list[dict] = []
    tmp = tempfile.mkdtemp(prefix="hpcore-sim-")
    try:
        with threadpool_limits(1):
            if not args.bayes_only:
                for name in args.samplers:
                    sampler, pruner = ("random", True) if name == "asha" else (name, False)
                    for storage in args.storages:
                        for w in args.workers:
                            if name == "bayes" and w not in args.bayes_workers:
                                continue
                            for mode in args.modes:
                                r = run_cell(sampler, pruner, storage, w, mode, args, tmp)
                                rows.append(r)
                                print(f"{name:8s} {storage:6s} W={w:5d} {mode:5s} "
                                      f"util={r['utilisation']:.4f} "
                                      f"rate={r['asks_tells_per_driver_s']:.0f}/s "
                                      f"busy={r['driver_busy_frac']:.3f} "
                                      f"op={r['op_median_ms']:.3f}ms trials={r['tells']} "
                                      f"real={r['real_s']:.1f}s"
                                      f"{' TRUNCATED' if r['truncated'] else ''}", flush=True)
            if not args.no_bayes_rate:
                bayes_rows = bayes_rate(args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    meta = {"argv": sys.argv[1:], "python": platform.python_version(),
            "machine": platform.machine(), "load_avg_end": load,
            "median_s": args.median, "sigma": args.sigma, "horizon_s": args.horizon,
            "max_batch": args.max_batch, "asha": ASHA_ARGS,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out_md = args.out or RESULTS_MD
    out_json = os.path.splitext(out_md)[0] + ".json"
    with open(out_json, "w") as fh:
        json.dump({"meta": meta, "rows": rows, "bayes_rate": bayes_rows}, fh, indent=1)
    with open(out_md, "w") as fh:
        fh.write(render(meta, rows, bayes_rows))
    print(f"wrote {out_md} and {out_json}; load average {load}")
    return 0


def render(meta: dict, rows: list[dict], bayes_rows: list[dict]) -> str:
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_simulation.py " + " ".join(meta["argv"])
    la = ", ".join(f"{v:.2f}" for v in meta["load_avg_end"])
    out = [
        "# Driver throughput with simulated workers (discrete-event simulation)", "",
        f"Command: `{cmd.strip()}` ({meta['date']}; Python {meta['python']}, "
        f"{meta['machine']}; one BLAS/OpenMP thread; shared 2-core machine, load average "
        f"{la} at the end).", "",
        f"Durations: log-normal, median {meta['median_s']:g} s, sigma {meta['sigma']:g}; "
        f"horizon {meta['horizon_s']:g} virtual s; 6-parameter space (one conditional); "
        f"ASHA {meta['asha']} (one report per rung, at its fraction of the duration).", "",
        "How the clock is computed: the driver is single-threaded; an event arriving at "
        "virtual time t is handled from max(t, driver free); each driver call "
        "(ask/tell/report, or ask_batch/tell_batch) is timed with perf_counter (wall) and "
        "that time advances the clock before the waiting worker(s) resume.  Utilisation = "
        "busy worker-time in [0, horizon] / (workers x horizon).  Not charged: the "
        "simulator's own heap and random draws, and an executor's IPC.  `seq` = tell + ask "
        "per event (the per-trial API); `batch` = all events waiting when the driver is "
        "free: reports one by one, one tell_batch, one ask_batch(q) (q <= "
        f"{meta['max_batch']}).  Driver busy = driver wall / horizon (>= 1: saturated).  "
        "Call = one driver call (seq: one event; batch: one batch): median / p90 / max.", "",
        "| sampler | storage | workers | mode | utilisation | asks+tells per driver-s | "
        "driver busy | driver CPU s | trials told | call median / p90 / max ms | mean batch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = "Random + ASHA" if r["pruner"] == "ASHA" else r["sampler"].capitalize()
        util = "cut (wall limit)" if r["truncated"] else f"{100 * r['utilisation']:.2f} %"
        out.append(f"| {name} | {r['storage']} | {r['workers']:,} | {r['mode']} | {util} | "
                   f"{r['asks_tells_per_driver_s']:,.0f} | {r['driver_busy_frac']:.3f} | "
                   f"{r['driver_cpu_s']:.1f} | {r['tells']:,} | {r['op_median_ms']:.2f} / "
                   f"{r['op_p90_ms']:.2f} / {r['op_max_ms']:.1f} | {r['mean_op_size']:.1f} |")
    if bayes_rows:
        out += ["", "## BayesSampler suggestions per second at 2,000 observations", "",
                "A study prefilled (add_trials) with 2,000 COMPLETE random trials; one untimed "
                "warm-up call (the cold fit); then per call: `ask()` (q = 1) or "
                "`ask_batch(q)`; suggestions/s = q / median call time.", "",
                "| observations | q | call median s | call max s | suggestions per s |",
                "|---|---|---|---|---|"]
        for b in bayes_rows:
            out.append(f"| {b['n_obs']:,} | {b['q']} | {b['call_median_s']:.3f} | "
                       f"{b['call_max_s']:.3f} | {b['suggestions_per_s']:.1f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
