"""The driver's memory per finished trial at 10^5 trials (issue 18).

A Study with RandomSampler on the 6-parameter space of bench_simulation (one
conditional parameter) runs ``--n`` trials (ask + tell, no reports) in memory and on
SQLite.  Python allocations are traced with ``tracemalloc`` (started before the study
is made, so the figure is what the study, its cache and the storage's Python objects
hold; SQLite's own page cache is C memory, outside the trace, and bounded by its
``cache_size``).  After ``gc.collect()`` we read the traced total at ``n/10`` and at
``n`` trials and report

* ``per trial, total``: traced bytes at n / n;
* ``per trial, marginal``: (traced at n - traced at n/10) / (0.9 n), what each further
  trial costs once the study is warm (the figure that says whether memory is bounded
  per trial);

and the process RSS growth over the run (``resource`` max RSS, includes allocator
slack and SQLite's cache) for reference.

Run::

    .venv/bin/python bench/bench_memory.py            # n = 100,000
    .venv/bin/python bench/bench_memory.py --n 20000  # quicker
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hpcore as hp  # noqa: E402
from bench_simulation import final_value, space  # noqa: E402


def measure(kind: str, n: int, tmp: str) -> dict:
    gc.collect()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    storage = None if kind == "memory" else hp.SQLiteStorage(os.path.join(tmp, f"{kind}.db"))
    study = hp.Study(space(), sampler=hp.RandomSampler(seed=0), storage=storage)
    marks = {}
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        t = study.ask()
        study.tell(t, final_value(t.params))
        if i in (n // 10, n):
            study.trials  # noqa: B018 - the cache is synced, as a driver's would be
            gc.collect()
            marks[i] = tracemalloc.get_traced_memory()[0]
    elapsed = time.perf_counter() - t0
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    study.close()
    lo, hi = marks[n // 10], marks[n]
    return {"storage": kind, "n": n, "traced_bytes": hi,
            "per_trial_total": hi / n, "per_trial_marginal": (hi - lo) / (n - n // 10),
            "max_rss_growth_kib": rss1 - rss0, "seconds": elapsed}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--storages", nargs="+", default=["memory", "sqlite"])
    ap.add_argument("--out", default=os.path.join(HERE, "results", "memory.md"))
    ap.add_argument("--label", default="", help="a note for the table (e.g. the commit)")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="hpcore-mem-")
    rows = []
    try:
        for kind in args.storages:
            r = measure(kind, args.n, tmp)
            rows.append(r)
            print(f"{kind:6s} n={args.n}: {r['per_trial_total']:.0f} B/trial total, "
                  f"{r['per_trial_marginal']:.0f} B/trial marginal, max RSS +"
                  f"{r['max_rss_growth_kib'] / 1024:.0f} MiB, {r['seconds']:.0f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    meta = {"argv": sys.argv[1:], "python": platform.python_version(), "label": args.label,
            "load_avg_end": load, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with open(os.path.splitext(args.out)[0] + ".json", "w") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    cmd = ".venv/bin/python bench/bench_memory.py " + " ".join(meta["argv"])
    lines = ["# Driver memory per finished trial", "",
             f"Command: `{cmd.strip()}` ({meta['date']}, Python {meta['python']}"
             f"{', ' + args.label if args.label else ''}; load average "
             f"{', '.join(f'{v:.2f}' for v in load)} at the end).  RandomSampler, "
             "6-parameter space, ask + tell, no reports; tracemalloc (Python allocations) "
             "after gc.collect().", "",
             "| storage | trials | per trial, total (B) | per trial, marginal (B) | "
             "traced total (MiB) | max RSS growth (MiB) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['storage']} | {r['n']:,} | {r['per_trial_total']:.0f} | "
                     f"{r['per_trial_marginal']:.0f} | {r['traced_bytes'] / 2**20:.1f} | "
                     f"{r['max_rss_growth_kib'] / 1024:.0f} |")
    with open(args.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}; load average {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
