"""Time per suggestion at 200 trials: hpcore's BayesSampler inside Optuna vs Optuna's GPSampler.

Both run in the same Optuna study setup: ``optuna.create_study()`` on the same
10-dimensional continuous space (Styblinski-Tang on [-5, 5]^10), each warmed up with the
same ``--n-prefill`` finished random trials (``study.add_trials``), then ``--n-timed``
suggestions are timed (``study.ask()`` plus the ten ``suggest_float`` calls: Optuna's
relative sampling runs at the first one), the samplers interleaved call by call so that
machine load hits both alike.  The first ``--n-warmup`` suggestions of each are
untimed (imports, first fits).  As a reference the native hpcore study (the same
trials imported with ``hp.Study.add_trials``) is timed too: the difference is the
adapter's cost.

Threads are pinned to 1 for everything (``OMP_NUM_THREADS=1`` etc. set before NumPy
and torch are imported, ``threadpoolctl.threadpool_limits(1)``,
``torch.set_num_threads(1)``, ``BayesSampler(n_threads=1)``).

    .venv/bin/python bench/bench_optuna_adapter.py --out bench/results/optuna_adapter.md
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

D = 10
LOW, HIGH = -5.0, 5.0


def styblinski_tang(x: np.ndarray) -> float:
    return float(0.5 * np.sum(x ** 4 - 16 * x ** 2 + 5 * x))


def stats(ts: list[float]) -> dict[str, float]:
    a = np.array(ts) * 1e3
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "max": float(a.max()), "n": len(a)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-prefill", type=int, default=195)
    ap.add_argument("--n-warmup", type=int, default=2)
    ap.add_argument("--n-timed", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the Markdown result here")
    args = ap.parse_args(argv)

    import optuna
    import torch
    from threadpoolctl import threadpool_limits

    import hpcore as hp
    from hpcore.integrations.optuna import as_optuna_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    names = [f"x{i}" for i in range(D)]
    dist = optuna.distributions.FloatDistribution(LOW, HIGH)
    rng = np.random.default_rng(args.seed)
    X0 = rng.uniform(LOW, HIGH, (args.n_prefill, D))
    prefill = [optuna.trial.create_trial(params=dict(zip(names, map(float, x))),
                                         distributions={n: dist for n in names},
                                         value=styblinski_tang(x)) for x in X0]

    def optuna_study(sampler):
        st = optuna.create_study(sampler=sampler)
        st.add_trials(prefill)
        return st

    studies = {
        "hpcore BayesSampler via as_optuna_sampler": optuna_study(
            as_optuna_sampler(hp.BayesSampler(seed=args.seed, n_threads=1))),
        "Optuna GPSampler": optuna_study(optuna.samplers.GPSampler(seed=args.seed)),
    }
    native = hp.Study({n: hp.Float(LOW, HIGH) for n in names},
                      sampler=hp.BayesSampler(seed=args.seed, n_threads=1))
    native.add_trials(prefill)

    def step_optuna(st):
        t0 = time.perf_counter()
        trial = st.ask()
        x = np.array([trial.suggest_float(n, LOW, HIGH) for n in names])
        dt = time.perf_counter() - t0
        st.tell(trial, styblinski_tang(x))
        return dt, st.trials[-1].value

    def step_native():
        t0 = time.perf_counter()
        trial = native.ask()
        dt = time.perf_counter() - t0
        frozen = native.tell(trial, styblinski_tang(np.array([trial.params[n] for n in names])))
        return dt, frozen.values[0]

    keys = [*studies, "hpcore BayesSampler, native Study"]
    times: dict[str, list[float]] = {k: [] for k in keys}
    values: dict[str, list[float]] = {k: [] for k in keys}
    with threadpool_limits(1):
        for i in range(args.n_warmup + args.n_timed):
            for name in keys:
                dt, v = step_optuna(studies[name]) if name in studies else step_native()
                values[name].append(v)
                if i >= args.n_warmup:
                    times[name].append(dt)

    best = {k: min(v) for k, v in values.items()}
    first = args.n_prefill + args.n_warmup
    lines = [
        "# hpcore's BayesSampler inside Optuna vs Optuna's GPSampler: time per suggestion",
        "",
        f"d={D} continuous (Styblinski-Tang on [{LOW:g}, {HIGH:g}]^{D}); each study prefilled "
        f"with the same {args.n_prefill} random finished trials, {args.n_warmup} untimed "
        f"warm-up suggestions each, then trials {first}..{first + args.n_timed - 1} timed "
        "(ask + 10 suggest_float), samplers interleaved call by call (the prefill's best is "
        f"{min(styblinski_tang(x) for x in X0):.2f}; the optimum is {-39.16617 * D:.2f}). "
        "Threads pinned to 1 "
        "(OMP/OpenBLAS/MKL env, threadpoolctl, torch.set_num_threads(1), n_threads=1).",
        "",
        "| sampler | median ms | p90 ms | max ms | calls | best of its suggestions |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k, ts in times.items():
        s = stats(ts)
        lines.append(f"| {k} | {s['median']:.1f} | {s['p90']:.1f} | {s['max']:.1f} | "
                     f"{s['n']} | {best[k]:.2f} |")
    med = {k: stats(v)["median"] for k, v in times.items()}
    ratio = med["Optuna GPSampler"] / med["hpcore BayesSampler via as_optuna_sampler"]
    lines += ["",
              f"Median ratio GPSampler / adapter: {ratio:.1f}x.  Median difference adapter - "
              f"native hpcore study: {med['hpcore BayesSampler via as_optuna_sampler'] - med['hpcore BayesSampler, native Study']:+.1f} ms "
              "per suggestion (the adapter's cost: Optuna's ask/suggest and storage plus the view "
              "update; the GP work is the same, so both propose the same points). The max of the "
              "hpcore rows is the periodic full hyperparameter refit (every max(10, n // 10) "
              "observations); in between, beyond 100 observations, the hyperparameters are kept and "
              "only the Cholesky factor is recomputed. This is a speed figure only: "
              "over these few suggestions the best values say little about quality.",
              "",
              f"optuna {optuna.__version__}, torch {torch.__version__}, hpcore {hp.__version__}, "
              f"numpy {np.__version__}, Python {platform.python_version()}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end.",
              "",
              "Command: `.venv/bin/python bench/bench_optuna_adapter.py "
              f"--n-prefill {args.n_prefill} --n-warmup {args.n_warmup} --n-timed {args.n_timed} "
              f"--seed {args.seed}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
