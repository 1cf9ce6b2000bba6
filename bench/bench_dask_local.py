"""DaskExecutor on a 2-worker LocalCluster against the serial run: 40 trials of a 0.5 s
objective (issue 18's goal: the cluster run in at most 0.6x the serial wall time).

Run: ``.venv/bin/python bench/bench_dask_local.py`` (about a minute; ``--kind sleep``,
``cpu`` or ``both``, default both; ``--trials 40 --seconds 0.5``).  Writes
``bench/results/dask_local.md``: wall times of the serial and the Dask run side by side
in one process (the cluster's start-up is timed apart and not in the ratio), the
ratio, the load average before and after, and per trial (medians, p90, max) the
objective's own time and the rest of its wall time on the worker side (dispatch,
report connection, tell).

Objectives: ``sleep`` waits 0.5 s (the ratio then measures the executor, not the
machine's free cores); ``cpu`` spins in Python for 0.5 s of this process's CPU time,
so on a busy 2-core machine the Dask run also measures how much of two cores the
other tenants leave.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import hpcore as hp

RESULTS = Path(__file__).resolve().parent / "results"


def sleep_objective(trial, seconds: float = 0.5) -> float:
    t0 = time.perf_counter()
    time.sleep(seconds)
    trial.set_user_attr("objective_s", time.perf_counter() - t0)
    return float(trial.params["x"] ** 2)


def cpu_objective(trial, seconds: float = 0.5) -> float:
    """Busy work until ``seconds`` of this thread's CPU time are spent."""
    t0, c0 = time.perf_counter(), time.thread_time()
    acc = 0.0
    while time.thread_time() - c0 < seconds:
        for i in range(2000):
            acc += (i * 1e-6) ** 2
    trial.set_user_attr("objective_s", time.perf_counter() - t0)
    return float(trial.params["x"] ** 2) + 0.0 * acc


class Objective:
    def __init__(self, kind: str, seconds: float) -> None:
        self.fn = sleep_objective if kind == "sleep" else cpu_objective
        self.seconds = seconds

    def __call__(self, trial) -> float:
        return self.fn(trial, self.seconds)


def _study():
    return hp.Study({"x": hp.Float(-1.0, 1.0)}, sampler=hp.RandomSampler(seed=0))


def _stats(xs) -> str:
    a = np.asarray(xs, dtype=float)
    return f"{np.median(a):.3f} / {np.quantile(a, 0.9):.3f} / {a.max():.3f}"


def _per_trial(study):
    obj, rest = [], []
    for t in study.trials:
        wall = t.datetime_complete - t.datetime_start
        o = float(t.user_attrs.get("objective_s", np.nan))
        obj.append(o)
        rest.append(wall - o)
    return obj, rest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=["sleep", "cpu", "both"], default="both")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--out", default=str(RESULTS / "dask_local.md"))
    args = ap.parse_args(argv)
    from distributed import Client, LocalCluster

    kinds = ["sleep", "cpu"] if args.kind == "both" else [args.kind]
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    client = Client(cluster)
    startup = time.perf_counter() - t0
    rows = []
    try:
        client.run(lambda: None)   # workers up and imported before timing
        for kind in kinds:
            objective = Objective(kind, args.seconds)
            s_serial = _study()
            t = time.perf_counter()
            s_serial.optimize(objective, n_trials=args.trials)
            serial = time.perf_counter() - t
            s_dask = _study()
            t = time.perf_counter()
            s_dask.optimize(objective, n_trials=args.trials, executor=hp.DaskExecutor(client))
            dask_wall = time.perf_counter() - t
            assert all(x.state == hp.TrialState.COMPLETE for x in s_dask.trials)
            obj_s, rest_s = _per_trial(s_serial)
            obj_d, rest_d = _per_trial(s_dask)
            rows.append((kind, serial, dask_wall, dask_wall / serial, obj_s, rest_s, obj_d, rest_d))
            print(f"{kind}: serial {serial:.2f} s, dask {dask_wall:.2f} s, "
                  f"ratio {dask_wall / serial:.3f}", flush=True)
    finally:
        client.close()
        cluster.close()
    load1 = os.getloadavg()
    lines = [
        "# DaskExecutor on a LocalCluster vs serial",
        "",
        f"Command: `.venv/bin/python bench/bench_dask_local.py --kind {args.kind} --trials "
        f"{args.trials} --seconds {args.seconds}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average before {load0[0]:.2f} {load0[1]:.2f} "
        f"{load0[2]:.2f}, after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (a shared box).",
        f"Cluster: LocalCluster(n_workers=2, threads_per_worker=1, processes=True), started "
        f"in {startup:.1f} s (not in the ratio); RandomSampler, in-memory storage.",
        f"Goal (issue 18): {args.trials} trials of a {args.seconds} s objective on 2 workers "
        "in at most 0.6x the serial wall time.",
        "",
        "| objective | serial wall (s) | Dask wall (s) | ratio | goal <= 0.6 |",
        "|---|---|---|---|---|",
    ]
    for kind, serial, dask_wall, ratio, *_ in rows:
        lines.append(f"| {kind} | {serial:.2f} | {dask_wall:.2f} | {ratio:.3f} | "
                     f"{'met' if ratio <= 0.6 else 'NOT met'} |")
    lines += ["", "Per trial, median / p90 / max in seconds: the objective's own time, and "
              "the rest of the trial's stored wall time (ask to tell, minus the objective).",
              "", "| objective | run | objective time | rest of the trial |", "|---|---|---|---|"]
    for kind, _, _, _, obj_s, rest_s, obj_d, rest_d in rows:
        lines.append(f"| {kind} | serial | {_stats(obj_s)} | {_stats(rest_s)} |")
        lines.append(f"| {kind} | Dask | {_stats(obj_d)} | {_stats(rest_d)} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
