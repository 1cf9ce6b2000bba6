"""Speed of BayesSampler and its GP kernel against Optuna's GPSampler and scikit-optimize.

Run: ``.venv/bin/python bench/bench_bayes_speed.py [--threads 1] [--sizes 50,100,...]
[--peer-sizes 50,100,200]``

Part 1 -- sampler overhead per suggestion with n completed observations in 10
dimensions (objective: Ackley on [-32.768, 32.768]^10, observations at random points):

* hpcore ``BayesSampler`` (defaults) through ``Study.ask``.  It refits its
  hyperparameters fully (multi-start) every ``P = max(10, n // 10)`` observations and
  warm-starts (or, beyond 500 observations, keeps) them in between, so we time the
  first suggestion at n (a full fit) and the mean of the next R suggestions (between
  fits) and report the amortized cost ``(full + (P - 1) * between) / P``;
* Optuna ``GPSampler`` (defaults, torch CPU): mean time of ``study.ask`` (which runs the
  GP fit and the acquisition optimization) over R calls;
* scikit-optimize ``Optimizer`` set up as ``gp_minimize`` does (GP with Matern-5/2,
  gp_hedge, lbfgs acquisition optimizer with n_points=10000) but ``n_restarts_optimizer=2``:
  mean time of ``tell`` + ``ask`` (skopt fits and optimizes inside ``tell``) over R calls.

Part 2 -- one log marginal likelihood + gradient evaluation (hpcore kernel) at n=1000,
d=10 against one NumPy ``cholesky`` plus ``inv`` of the same matrix (median of 5).

Threads: ``--threads k`` sets OMP_NUM_THREADS=k, threadpoolctl limits of k, torch's
thread count and hpcore's n_threads for every side.  Writes
``bench/results/bayes_speed_t{k}.{json,md}``.
"""
from __future__ import annotations

import os
import sys

_k = "1"
for i, a in enumerate(sys.argv):
    if a == "--threads" and i + 1 < len(sys.argv):
        _k = sys.argv[i + 1]
os.environ["OMP_NUM_THREADS"] = _k

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import hpcore as hp  # noqa: E402
from hpcore._kernels import gp as _gp  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
D = 10
LO, HI = -32.768, 32.768


def ackley(x: np.ndarray) -> float:
    d = len(x)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.sum(x * x) / d))
                 - np.exp(np.sum(np.cos(2 * np.pi * x)) / d) + 20 + np.e)


def _points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(LO, HI, (n, D))


def bench_hpcore(n: int, reps: int, threads: int) -> dict:
    space = hp.Space({f"x{i}": hp.Float(LO, HI) for i in range(D)})
    st = hp.Study(space, sampler=hp.RandomSampler(seed=0))
    for x in _points(n):
        # observations at the same points as the peers get
        t = st.ask()
        st.storage.set_trial_params(t.trial_id, {f"x{i}": float(v) for i, v in enumerate(x)})
        st.tell(t, ackley(x))
    sampler = hp.BayesSampler(seed=0, n_threads=threads)
    st.sampler = sampler

    def one() -> float:
        t0 = time.perf_counter()
        tr = st.ask()
        el = time.perf_counter() - t0
        st.tell(tr, ackley(np.array([tr.params[f"x{i}"] for i in range(D)])))
        return el

    full = one()
    between = [one() for _ in range(reps)]
    period = max(sampler.refit_every, n // 10)
    tb = float(np.mean(between))
    return {"full_fit_s": full, "between_s": tb, "period": period,
            "amortized_s": (full + (period - 1) * tb) / period, "reps": reps}


def bench_optuna(n: int, reps: int, threads: int) -> dict:
    import optuna
    import torch
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {f"x{i}": FloatDistribution(LO, HI) for i in range(D)}
    st = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=0))
    for x in _points(n):
        st.add_trial(create_trial(params={f"x{i}": float(v) for i, v in enumerate(x)},
                                  distributions=dists, value=ackley(x)))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        tr = st.ask(dists)
        times.append(time.perf_counter() - t0)
        st.tell(tr, ackley(np.array([tr.params[f"x{i}"] for i in range(D)])))
    return {"per_suggestion_s": float(np.mean(times)), "reps": reps}


def bench_skopt(n: int, reps: int, threads: int) -> dict:
    from skopt import Optimizer
    from skopt.space import Space
    from skopt.utils import cook_estimator

    dims = [(LO, HI)] * D
    space = Space(dims)
    est = cook_estimator("GP", space=space, random_state=0, noise="gaussian")
    opt = Optimizer(dims, est, n_initial_points=10, acq_func="gp_hedge", acq_optimizer="lbfgs",
                    acq_optimizer_kwargs={"n_points": 10000, "n_restarts_optimizer": 2,
                                          "n_jobs": 1}, random_state=0)
    X = _points(n)
    opt.tell([list(map(float, x)) for x in X], [ackley(x) for x in X])
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        x = opt.ask()
        y = ackley(np.asarray(x))
        t1 = time.perf_counter()
        opt.tell(x, y)
        times.append(time.perf_counter() - t1 + (t1 - t0))
    return {"per_suggestion_s": float(np.mean(times)), "reps": reps}


def bench_lml(n: int, threads: int) -> dict:
    rng = np.random.default_rng(0)
    X = rng.random((n, D))
    y = rng.standard_normal(n)
    theta = np.r_[np.full(D, np.log(0.5)), 0.0, np.log(1e-3)]
    K = _gp.kernel_matrix(X, X, np.exp(-2 * theta[:D]), 1.0, 0) + 1e-3 * np.eye(n)
    t_l, t_n = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        _gp.lml_grad(X, y, theta, 0, threads)
        t_l.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        np.linalg.cholesky(K)
        np.linalg.inv(K)
        t_n.append(time.perf_counter() - t0)
    return {"n": n, "d": D, "lml_grad_s": float(np.median(t_l)),
            "numpy_cholesky_plus_inv_s": float(np.median(t_n)),
            "ratio": float(np.median(t_l) / np.median(t_n))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", default="50,100,200,500,1000,2000")
    ap.add_argument("--peer-sizes", default="50,100,200")
    ap.add_argument("--peers", default="optuna,skopt")
    args = ap.parse_args()
    k = args.threads
    RESULTS.mkdir(exist_ok=True)
    out: dict = {"threads": k, "d": D, "hpcore": {}, "optuna": {}, "skopt": {},
                 "meta": {"python": platform.python_version(), "machine": platform.machine(),
                          "cpus": os.cpu_count()}}
    peers = [p for p in args.peers.split(",") if p]
    peer_sizes = set(map(int, args.peer_sizes.split(","))) if peers else set()
    with threadpool_limits(k):
        bench_hpcore(20, 1, k)      # warm-up: imports, scipy's Sobol tables (not timed)
        out["lml"] = bench_lml(1000, k)
        print(f"LML+grad n=1000 d=10: {out['lml']['lml_grad_s'] * 1e3:.1f} ms; NumPy cholesky+inv "
              f"{out['lml']['numpy_cholesky_plus_inv_s'] * 1e3:.1f} ms; ratio {out['lml']['ratio']:.2f}",
              flush=True)
        # each size: hpcore then the peers right after, so they see the same machine load
        for n in sorted(set(map(int, args.sizes.split(","))) | peer_sizes):
            r = bench_hpcore(n, 5 if n <= 500 else 3, k)
            r["loadavg_1min"] = os.getloadavg()[0]
            out["hpcore"][n] = r
            print(f"hpcore n={n}: amortized {r['amortized_s'] * 1e3:.1f} ms (full fit "
                  f"{r['full_fit_s'] * 1e3:.1f} ms, between {r['between_s'] * 1e3:.1f} ms, "
                  f"period {r['period']})", flush=True)
            if n in peer_sizes:
                for peer in peers:
                    r = (bench_optuna if peer == "optuna" else bench_skopt)(n, 3, k)
                    out[peer][n] = r
                    print(f"{peer} n={n}: {r['per_suggestion_s'] * 1e3:.1f} ms", flush=True)
            _write(out, k)


def _write(out: dict, k: int) -> None:
    lml = out["lml"]
    rows = ["# BayesSampler speed (d = 10)", "",
            f"Command: `.venv/bin/python bench/bench_bayes_speed.py --threads {k}`; "
            f"{k} thread(s) for every side (OMP_NUM_THREADS, threadpoolctl, torch).  "
            "Machine: shared 2-core box (other jobs running; the load average is recorded "
            "per size in the JSON); each size runs hpcore and then the peers back to back.", "",
            f"LML + gradient at n=1000, d=10: {lml['lml_grad_s'] * 1e3:.1f} ms; "
            f"NumPy cholesky + inv: {lml['numpy_cholesky_plus_inv_s'] * 1e3:.1f} ms; "
            f"ratio {lml['ratio']:.2f} (target <= 3).", "",
            "| n | hpcore amortized (ms) | hpcore full fit (ms) | hpcore between fits (ms) "
            "| Optuna GPSampler (ms) | skopt (ms) | faster peer / hpcore amortized |",
            "|---|---|---|---|---|---|---|"]

    def fmt(v):
        return f"{v * 1e3:.1f}" if v is not None else ""

    for n, r in out["hpcore"].items():
        po = out["optuna"].get(n, {}).get("per_suggestion_s")
        ps = out["skopt"].get(n, {}).get("per_suggestion_s")
        peers = [v for v in (po, ps) if v is not None]
        ratio = f"{min(peers) / r['amortized_s']:.1f}x" if peers else ""
        rows.append(f"| {n} | {r['amortized_s'] * 1e3:.1f} | {r['full_fit_s'] * 1e3:.1f} | "
                    f"{r['between_s'] * 1e3:.1f} | {fmt(po)} | {fmt(ps)} | {ratio} |")
    (RESULTS / f"bayes_speed_t{k}.json").write_text(json.dumps(out, indent=1))
    (RESULTS / f"bayes_speed_t{k}.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows), flush=True)


if __name__ == "__main__":
    main()
