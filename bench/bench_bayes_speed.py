"""Speed of BayesSampler and its GP kernel against Optuna's GPSampler and scikit-optimize.

Run: ``.venv/bin/python bench/bench_bayes_speed.py [--threads 1] [--sizes 200,1000]
[--peer-sizes 200] [--warmup 2] [--reps 5] [--window 0] [--large 0]``

Part 1 -- per-call sampler cost with n completed observations in 10 dimensions
(objective: Ackley on [-32.768, 32.768]^10, observations at the same random points for
every optimizer).  Every optimizer gets the same protocol: ``--warmup`` untimed
suggestions (each told its value), then ``--reps`` timed ones; each timed call is one
suggestion (hpcore ``Study.ask``; Optuna ``study.ask``, which runs its GP fit and
acquisition optimization; scikit-optimize ``ask`` + ``tell``, since skopt fits inside
``tell``).  The timed calls are interleaved: round r runs hpcore's call r, then each
peer's, so all share the machine's load call by call.  Reported: per-call median, p90
and max (no amortization); the headline ratio is the ratio of per-call medians.  Optuna
should have greenlet installed (its recommended set-up: without it GPSampler warns and
runs its L-BFGS-B restarts sequentially).

* ``--window N`` (hpcore only): N consecutive timed asks at n=1000 (the tells growing n
  from 1000), reporting median and max, to check for refit spikes.
* ``--large N``: hpcore's per-call median over ``--reps`` asks at n=N (the local GP).
* ``--bayes-kwargs JSON``: BayesSampler keyword arguments for a non-default variant
  (e.g. ``'{"trust_region": false}'``); the headline figures use the defaults.

Part 2 -- one log marginal likelihood + gradient evaluation (hpcore kernel) at n=1000,
d=10 against LAPACK dpotrf + dpotri (``scipy.linalg.lapack``) of the same matrix, the
Cholesky-based inverse the gradient needs (median of 7, interleaved).

Threads: ``--threads k`` sets OMP_NUM_THREADS=k, threadpoolctl limits of k, torch's
thread count and hpcore's n_threads for every side.  The 1-minute load average is
recorded per measurement (the machine may be shared).  Writes
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
BAYES_KWARGS: dict = {}      # --bayes-kwargs (default: BayesSampler's defaults)
D = 10
LO, HI = -32.768, 32.768


def ackley(x: np.ndarray) -> float:
    d = len(x)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.sum(x * x) / d))
                 - np.exp(np.sum(np.cos(2 * np.pi * x)) / d) + 20 + np.e)


def _points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(LO, HI, (n, D))


def _stats(times: list[float]) -> dict:
    t = np.asarray(times)
    return {"median_s": float(np.median(t)), "p90_s": float(np.quantile(t, 0.9)),
            "max_s": float(t.max()), "reps": len(t), "loadavg_1min": os.getloadavg()[0]}


def _hpcore_study(n: int, threads: int):
    space = hp.Space({f"x{i}": hp.Float(LO, HI) for i in range(D)})
    st = hp.Study(space, sampler=hp.RandomSampler(seed=0))
    for x in _points(n):
        # observations at the same points as the peers get
        t = st.ask(params={f"x{i}": float(v) for i, v in enumerate(x)})
        st.tell(t, ackley(x))
    st.sampler = hp.BayesSampler(seed=0, n_threads=threads, **BAYES_KWARGS)
    return st


def _hpcore_calls(st, k: int) -> list[float]:
    out = []
    for _ in range(k):
        t0 = time.perf_counter()
        tr = st.ask()
        out.append(time.perf_counter() - t0)
        st.tell(tr, ackley(np.array([tr.params[f"x{i}"] for i in range(D)])))
    return out


def bench_hpcore(n: int, warmup: int, reps: int, threads: int) -> dict:
    st = _hpcore_study(n, threads)
    w = _hpcore_calls(st, warmup)
    r = _stats(_hpcore_calls(st, reps))
    r["cold_first_ask_s"] = w[0] if w else None
    return r


def _hpcore_stepper(n: int, threads: int):
    st = _hpcore_study(n, threads)
    return lambda: _hpcore_calls(st, 1)[0]


def _optuna_stepper(n: int, threads: int):
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

    def step() -> float:
        t0 = time.perf_counter()
        tr = st.ask(dists)
        el = time.perf_counter() - t0
        st.tell(tr, ackley(np.array([tr.params[f"x{i}"] for i in range(D)])))
        return el
    return step


def _skopt_stepper(n: int, threads: int):
    from skopt import Optimizer
    from skopt.space import Space
    from skopt.utils import cook_estimator

    dims = [(LO, HI)] * D
    est = cook_estimator("GP", space=Space(dims), random_state=0, noise="gaussian")
    opt = Optimizer(dims, est, n_initial_points=10, acq_func="gp_hedge", acq_optimizer="lbfgs",
                    acq_optimizer_kwargs={"n_points": 10000, "n_restarts_optimizer": 2,
                                          "n_jobs": threads}, random_state=0)
    X = _points(n)
    opt.tell([list(map(float, x)) for x in X], [ackley(x) for x in X])

    def step() -> float:
        t0 = time.perf_counter()
        x = opt.ask()
        y = ackley(np.asarray(x))
        t1 = time.perf_counter()
        opt.tell(x, y)
        return time.perf_counter() - t1 + (t1 - t0)
    return step


_STEPPERS = {"hpcore": _hpcore_stepper, "optuna": _optuna_stepper, "skopt": _skopt_stepper}


def bench_interleaved(n: int, names: list[str], warmup: int, reps: int, threads: int) -> dict:
    """Per-call times of every optimizer at n observations, calls interleaved: after each
    one's ``warmup`` untimed suggestions, round r times suggestion r of hpcore, then of
    each peer, so they share the machine's load call by call."""
    steps = {k: _STEPPERS[k](n, threads) for k in names}
    for k in names:
        for _ in range(warmup):
            steps[k]()
    times: dict[str, list[float]] = {k: [] for k in names}
    loads: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(reps):
        for k in names:
            times[k].append(steps[k]())
            loads[k].append(os.getloadavg()[0])
    out = {}
    for k in names:
        r = _stats(times[k])
        r["loadavg_1min"] = float(np.mean(loads[k]))
        r["times_s"] = times[k]
        out[k] = r
    return out


def bench_lml(n: int, threads: int, reps: int = 15) -> dict:
    """hpcore's LML + gradient against LAPACK dpotrf + dpotri of the same matrix, per-call
    medians over ``reps`` interleaved rounds.  Two LAPACK timings: scipy's wrappers as
    called on the C-ordered matrix (they copy it to Fortran order: ``dpotrf_dpotri_s``),
    and the bare factorization + inverse of a Fortran copy made outside the timed region
    (``overwrite_a``: ``lapack_inplace_s``, the strict floor; the headline ratio)."""
    from scipy.linalg import lapack

    rng = np.random.default_rng(0)
    X = rng.random((n, D))
    y = rng.standard_normal(n)
    theta = np.r_[np.full(D, np.log(0.5)), 0.0, np.log(1e-3)]
    K = _gp.kernel_matrix(X, X, np.exp(-2 * theta[:D]), 1.0, 0) + 1e-3 * np.eye(n)
    t_l, t_n, t_f = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        _gp.lml_grad(X, y, theta, 0, threads)
        t_l.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c, info = lapack.dpotrf(K, lower=1, clean=0, overwrite_a=0)
        inv, info2 = lapack.dpotri(c, lower=1, overwrite_c=1)
        t_n.append(time.perf_counter() - t0)
        assert info == 0 and info2 == 0
        Kf = np.asfortranarray(K)
        t0 = time.perf_counter()
        c, info = lapack.dpotrf(Kf, lower=1, clean=0, overwrite_a=1)
        inv, info2 = lapack.dpotri(c, lower=1, overwrite_c=1)
        t_f.append(time.perf_counter() - t0)
        assert info == 0 and info2 == 0 and c is Kf
    ml, mn, mf = (float(np.median(t)) for t in (t_l, t_n, t_f))
    return {"n": n, "d": D, "reps": reps, "lml_grad_s": ml, "lml_grad_p90_s": float(np.quantile(t_l, 0.9)),
            "dpotrf_dpotri_s": mn, "lapack_inplace_s": mf, "ratio": ml / mf,
            "ratio_vs_scipy_copying": ml / mn, "loadavg_1min": os.getloadavg()[0]}


def bench_window(n: int, k: int, threads: int, warmup: int) -> dict:
    st = _hpcore_study(n, threads)
    _hpcore_calls(st, warmup)
    t = _hpcore_calls(st, k)
    r = _stats(t)
    r["max_over_median"] = r["max_s"] / r["median_s"]
    r["times_s"] = t
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", default="200,1000")
    ap.add_argument("--peer-sizes", default="200")
    ap.add_argument("--peers", default="optuna,skopt")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--large", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--bayes-kwargs", default="{}",
                    help="JSON dict of BayesSampler arguments (a non-default variant)")
    ap.add_argument("--lml-only", action="store_true",
                    help="only part 2 (LML + gradient vs dpotrf + dpotri)")
    args = ap.parse_args()
    k = args.threads
    BAYES_KWARGS.update(json.loads(args.bayes_kwargs))
    RESULTS.mkdir(exist_ok=True)
    out: dict = {"threads": k, "d": D, "warmup": args.warmup, "reps": args.reps,
                 "command": " ".join(sys.argv), "hpcore": {}, "optuna": {}, "skopt": {},
                 "meta": {"python": platform.python_version(), "machine": platform.machine(),
                          "cpus": os.cpu_count(), "sampler": _sampler_note(),
                          "git": _git_note()}}
    peers = [p for p in args.peers.split(",") if p]
    peer_sizes = set(map(int, args.peer_sizes.split(","))) if peers else set()
    with threadpool_limits(k):
        bench_hpcore(20, 1, 1, k)      # imports, scipy's Sobol tables (not recorded)
        out["lml"] = bench_lml(1000, k)
        lml = out["lml"]
        print(f"LML+grad n=1000 d=10: {lml['lml_grad_s'] * 1e3:.1f} ms; dpotrf+dpotri in place "
              f"{lml['lapack_inplace_s'] * 1e3:.1f} ms (ratio {lml['ratio']:.2f}), via scipy's "
              f"copies {lml['dpotrf_dpotri_s'] * 1e3:.1f} ms (ratio "
              f"{lml['ratio_vs_scipy_copying']:.2f}); load {lml['loadavg_1min']:.1f}", flush=True)
        if args.lml_only:
            _write(out, k, args.tag)
            return
        # each size: hpcore then the peers right after, so they see the same machine load
        for n in sorted(set(map(int, args.sizes.split(","))) | peer_sizes):
            names = ["hpcore"] + (peers if n in peer_sizes else [])
            res = bench_interleaved(n, names, args.warmup, args.reps, k)
            for name in names:
                out[name][n] = res[name]
                print(f"{name} n={n}: " + _fmt(res[name]), flush=True)
            _write(out, k, args.tag)
        if args.window:
            out["window"] = bench_window(1000, args.window, k, args.warmup)
            w = out["window"]
            print(f"hpcore window of {args.window} asks from n=1000: " + _fmt(w)
                  + f", max/median {w['max_over_median']:.2f}", flush=True)
        if args.large:
            out["large"] = {"n": args.large, **bench_hpcore(args.large, args.warmup,
                                                            args.reps, k)}
            print(f"hpcore n={args.large}: " + _fmt(out["large"]), flush=True)
        _write(out, k, args.tag)


def _sampler_note() -> str:
    """The timed sampler's settings that shape an ask (the defaults of BayesSampler())."""
    b = hp.BayesSampler(seed=0, **BAYES_KWARGS)
    head = (f"BayesSampler(**{BAYES_KWARGS})" if BAYES_KWARGS else "BayesSampler() defaults")
    return (f"{head}: trust_region={b.trust_region}, "
            f"trust_restart={b.trust_restart!r}, n_starts={b.n_starts}, "
            f"n_raw_samples={b.n_raw_samples}")


def _git_note() -> str:
    """HEAD and the source files changed from it (the code the figures come from)."""
    import subprocess

    try:
        root = Path(__file__).resolve().parent.parent
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--name-only", "HEAD", "--", "src"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (f" + uncommitted {', '.join(dirty)}" if dirty else "")


def _optuna_version() -> str:
    try:
        import optuna
        return optuna.__version__
    except ImportError:
        return "(not installed)"


def _greenlet_version() -> str:
    try:
        import greenlet
        return greenlet.__version__
    except ImportError:
        return "NOT installed: Optuna's GPSampler falls back to sequential L-BFGS-B"


def _fmt(r: dict) -> str:
    return (f"median {r['median_s'] * 1e3:.1f} ms, p90 {r['p90_s'] * 1e3:.1f} ms, max "
            f"{r['max_s'] * 1e3:.1f} ms ({r['reps']} calls, load {r['loadavg_1min']:.1f})")


def _write(out: dict, k: int, tag: str = "") -> None:
    lml = out["lml"]
    rows = ["# BayesSampler speed (d = 10), per call", "",
            f"Command: `.venv/bin/python bench/bench_bayes_speed.py {out['command'].split(' ', 1)[1] if ' ' in out['command'] else ''}`; "
            f"{k} thread(s) for every side (OMP_NUM_THREADS, threadpoolctl, torch).  "
            f"Every optimizer: {out['warmup']} untimed warm-up suggestions, then "
            f"{out['reps']} timed calls, interleaved call by call with the peers at the same n "
            f"(hpcore, then each peer, per round); per-call median / p90 / max, no "
            f"amortization; load = mean 1-minute load average over an optimizer's calls.  "
            f"Optuna {_optuna_version()} with greenlet {_greenlet_version()} (batched L-BFGS-B).  "
            "Machine: shared 2-core box (other jobs running; 1-minute load average per row).  "
            f"hpcore: {out['meta'].get('sampler', '?')}; code at {out['meta'].get('git', '?')}.",
            "",
            f"LML + gradient at n=1000, d=10 (Matern-5/2): {lml['lml_grad_s'] * 1e3:.1f} ms; "
            f"LAPACK dpotrf + dpotri of the same matrix, in place on a Fortran copy: "
            f"{lml['lapack_inplace_s'] * 1e3:.1f} ms; ratio {lml['ratio']:.2f} (target <= 1.3); "
            f"through scipy's wrappers on the C array (they copy): "
            f"{lml['dpotrf_dpotri_s'] * 1e3:.1f} ms, ratio {lml['ratio_vs_scipy_copying']:.2f}.  "
            f"Medians of {lml.get('reps', 7)} interleaved rounds; load {lml['loadavg_1min']:.1f}.", "",
            "| n | optimizer | median (ms) | p90 (ms) | max (ms) | load | peer median / hpcore median |",
            "|---|---|---|---|---|---|---|"]
    for n, r in out["hpcore"].items():
        rows.append(f"| {n} | hpcore | {r['median_s'] * 1e3:.1f} | {r['p90_s'] * 1e3:.1f} | "
                    f"{r['max_s'] * 1e3:.1f} | {r['loadavg_1min']:.1f} | |")
        for peer, name in (("optuna", "Optuna GPSampler"), ("skopt", "scikit-optimize")):
            p = out[peer].get(n)
            if p:
                rows.append(f"| {n} | {name} | {p['median_s'] * 1e3:.1f} | {p['p90_s'] * 1e3:.1f}"
                            f" | {p['max_s'] * 1e3:.1f} | {p['loadavg_1min']:.1f} | "
                            f"{p['median_s'] / r['median_s']:.1f}x |")
    if "window" in out:
        w = out["window"]
        rows += ["", f"Refit spikes: {w['reps']} consecutive hpcore asks from n=1000: median "
                 f"{w['median_s'] * 1e3:.1f} ms, p90 {w['p90_s'] * 1e3:.1f} ms, max "
                 f"{w['max_s'] * 1e3:.1f} ms, max/median {w['max_over_median']:.2f} "
                 f"(target <= 5; load {w['loadavg_1min']:.1f})."]
    if "large" in out:
        g = out["large"]
        rows += ["", f"hpcore at n={g['n']} (local GP): median {g['median_s'] * 1e3:.1f} ms, "
                 f"p90 {g['p90_s'] * 1e3:.1f} ms, max {g['max_s'] * 1e3:.1f} ms over "
                 f"{g['reps']} calls (target median < 2000; load {g['loadavg_1min']:.1f})."]
    name = f"bayes_speed_t{k}{tag}"
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1))
    (RESULTS / f"{name}.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
