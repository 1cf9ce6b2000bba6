"""The protocol: optimizers x problems x seeds at a fixed budget, every trial recorded.

* Same budget, seeds and initial design size for every optimizer (where it has one).
* Threads pinned equally: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
  ``MKL_NUM_THREADS`` set before any peer is imported (:func:`pin_threads`), then
  ``threadpoolctl.threadpool_limits(n_threads)`` around every run, and
  ``torch.set_num_threads(n_threads)`` where torch is present (Optuna's GPSampler).
* Times per trial, never amortized: ``ask_time`` (``ask()``, which for Optuna includes
  the ``suggest_*`` calls), ``tell_time`` and, on curve problems, ``report_time``
  (the pruner's verdicts); ``suggest_time`` is their sum (scikit-optimize fits its model
  in ``tell``, so ask alone would hide its cost).  ``objective_time`` is the objective
  alone.  The same warm-up for all: before its timed runs each optimizer runs
  ``n_initial + 2`` untimed trials on its first problem with a seed outside the run.
* Curve problems: the budget is ``n_trials * max_resource`` epochs; a trial starts only
  while a full training still fits, so pruning optimizers try more configurations.
  ``best_so_far`` counts trials trained to ``max_resource`` epochs.  Curves are cached
  by configuration (training is deterministic given it), and a cached epoch is charged
  the objective time it took when first computed.
* Noisy problems: ``value`` is the observation, ``true_value`` the noiseless value;
  ``best_so_far`` is the best true value among the evaluated configurations.  The
  noise of trial ``t`` comes from a stream keyed by (seed, problem, t): the same for
  every optimizer.
"""
from __future__ import annotations

import gzip
import json
import os
import sys
import time
import zlib
from typing import Any, Iterable, Sequence

import numpy as np

from hpcore.bench.registry import OptimizerSpec, Problem, Settings

__all__ = ["COLUMNS", "CellStore", "CurveCache", "pin_threads", "run_compare", "run_one",
           "run_suite"]

COLUMNS = ["optimizer", "problem", "seed", "trial", "value", "true_value", "best_so_far",
           "suggest_time", "ask_time", "tell_time", "report_time", "objective_time",
           "epochs", "cum_epochs", "state"]

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def pin_threads(n_threads: int) -> None:
    """Set the thread environment variables (before peers import) and the limits of
    the libraries already loaded."""
    for var in _THREAD_VARS:
        os.environ[var] = str(n_threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n_threads)
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n_threads)


def _torch_threads(n_threads: int) -> None:
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.get_num_threads() != n_threads:
            torch.set_num_threads(n_threads)


class CurveCache:
    """Learning curves by configuration: each epoch is computed once and replayed.

    ``value(params, epoch)`` (1-based) advances the configuration's iterator as
    needed; ``seconds(params, epoch)`` is the time that epoch took when computed.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self._curves: dict[str, tuple[Any, list[float], list[float]]] = {}
        self.computed = 0

    @staticmethod
    def key(params: dict) -> str:
        return repr(sorted((k, repr(v)) for k, v in params.items()))

    def epoch(self, params: dict, epoch: int) -> tuple[float, float]:
        k = self.key(params)
        entry = self._curves.get(k)
        if entry is None:
            entry = (self.problem.curve(dict(params)), [], [])
            self._curves[k] = entry
        it, vals, secs = entry
        while len(vals) < epoch:
            t0 = time.perf_counter()
            try:
                v = next(it)
            except StopIteration:
                raise ValueError(f"problem {self.problem.name!r}: its curve stopped after "
                                 f"{len(vals)} epochs, max_resource is "
                                 f"{self.problem.max_resource}") from None
            secs.append(time.perf_counter() - t0)
            vals.append(float(v))
            self.computed += 1
        return vals[epoch - 1], secs[epoch - 1]

    def clear(self) -> None:
        self._curves.clear()


def _noise_rng(problem: str, seed: int, trial: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(problem.encode()), trial])


def run_one(problem: Problem, spec: OptimizerSpec, seed: int, n_trials: int, *,
            n_initial: int = 10, n_threads: int = 1, cache: CurveCache | None = None,
            epoch_cap: float | None = None) -> list[dict[str, Any]]:
    """Run one optimizer on one problem at one seed; one row per trial (see COLUMNS).

    ``epoch_cap`` (curve problems) overrides the epoch budget ``n_trials * max_resource``.
    """
    from threadpoolctl import threadpool_limits

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be an int >= 1, got {n_trials!r}")
    settings = Settings(seed=seed, n_trials=n_trials, n_initial=n_initial, n_threads=n_threads,
                        max_resource=problem.max_resource)
    rows: list[dict[str, Any]] = []
    with threadpool_limits(n_threads):
        _torch_threads(n_threads)
        opt = spec.make(problem.hp_space(), settings)
        if problem.multi_fidelity:
            _run_curve(problem, spec, opt, seed, n_trials, cache or CurveCache(problem),
                       epoch_cap, rows)
        else:
            _run_plain(problem, spec, opt, seed, n_trials, rows)
    return rows


def _ask(opt):
    """``opt.ask()``, or None when the optimizer has nothing left (a finished grid)."""
    try:
        return opt.ask()
    except Exception as exc:
        if type(exc).__name__ == "StudyExhausted":
            return None
        raise


def _run_plain(problem, spec, opt, seed, n_trials, rows) -> None:
    best = np.inf
    truth = problem.true_value
    for t in range(n_trials):
        t0 = time.perf_counter()
        sug = _ask(opt)
        if sug is None:
            break
        t1 = time.perf_counter()
        value = float(problem.objective(sug.params, _noise_rng(problem.name, seed, t)))
        t2 = time.perf_counter()
        opt.tell(sug, value)
        t3 = time.perf_counter()
        tv = float(truth(sug.params)) if truth is not None else value
        best = min(best, tv)
        rows.append({"optimizer": spec.name, "problem": problem.name, "seed": seed, "trial": t,
                     "value": value, "true_value": tv, "best_so_far": best,
                     "suggest_time": (t1 - t0) + (t3 - t2), "ask_time": t1 - t0,
                     "tell_time": t3 - t2, "report_time": 0.0, "objective_time": t2 - t1,
                     "epochs": 0, "cum_epochs": 0, "state": "complete"})


def _run_curve(problem, spec, opt, seed, n_trials, cache, epoch_cap, rows) -> None:
    R = problem.max_resource
    cap = n_trials * R if epoch_cap is None else epoch_cap
    cum, best, t = 0, np.inf, 0
    while cum + R <= cap:
        t0 = time.perf_counter()
        sug = _ask(opt)
        if sug is None:
            break
        ask_time = time.perf_counter() - t0
        obj_time = rep_time = 0.0
        value, pruned, e = np.nan, False, 0
        for e in range(1, R + 1):
            value, secs = cache.epoch(sug.params, e)
            obj_time += secs
            cum += 1
            r0 = time.perf_counter()
            stop = sug.report(e, value)
            rep_time += time.perf_counter() - r0
            if stop and e < R:
                pruned = True
                break
        t2 = time.perf_counter()
        opt.tell(sug, value, pruned=pruned)
        tell_time = time.perf_counter() - t2
        if not pruned:
            best = min(best, value)
        rows.append({"optimizer": spec.name, "problem": problem.name, "seed": seed, "trial": t,
                     "value": value, "true_value": value, "best_so_far": best,
                     "suggest_time": ask_time + tell_time + rep_time, "ask_time": ask_time,
                     "tell_time": tell_time, "report_time": rep_time,
                     "objective_time": obj_time, "epochs": e, "cum_epochs": cum,
                     "state": "pruned" if pruned else "complete"})
        t += 1


def warm_up(problem: Problem, spec: OptimizerSpec, *, n_initial: int, n_threads: int,
            cache: CurveCache | None = None) -> None:
    """``n_initial + 2`` untimed trials at a seed no run uses (imports, first calls)."""
    n = n_initial + 2
    run_one(problem, spec, 10 ** 6, n, n_initial=n_initial, n_threads=n_threads,
            cache=cache, epoch_cap=None if not problem.multi_fidelity
            else min(n, 3) * problem.max_resource)


class CellStore:
    """The finished (problem, optimizer) cells of one run, one gzipped JSON file each (written
    atomically as the cell ends), so that an interrupted run continues where it stopped
    (``hpcore bench --resume``) instead of starting again.

    ``protocol`` (seeds, budget, initial design, threads, package versions) is stored
    with the cells; resuming with another protocol raises ``ValueError`` (the cells of
    two protocols would not be comparable).  Each invocation is a *segment*
    (:meth:`begin_segment`), recorded in ``segments.json`` and brought up to date each
    time a cell is saved, so the run's time is the sum over its segments even when a
    segment was killed (it then lacks only the time since its last cell).
    """

    def __init__(self, folder: str | os.PathLike, protocol: dict[str, Any], *,
                 resume: bool = False) -> None:
        from pathlib import Path

        self.folder = Path(folder)
        self.protocol = json.loads(json.dumps(protocol))
        self._segs: list[dict[str, Any]] = []   # this invocation's segments (begin_segment)
        self._seg_t0 = 0.0
        meta = self.folder / "protocol.json"
        if self.folder.exists() and any(self.folder.iterdir()):
            if not resume:
                raise ValueError(
                    f"resume: {self.folder} holds the saved cells of an unfinished run; "
                    "resume it (hpcore bench --resume, the same settings) or delete the folder")
            saved = json.loads(meta.read_text()) if meta.exists() else None
            if saved != self.protocol:
                raise ValueError(
                    f"resume: the cells in {self.folder} were made with {saved}, this run "
                    f"asks for {self.protocol}: resume with the same settings, or delete the "
                    "folder to start again")
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(meta, json.dumps(self.protocol, indent=1))

    def _path(self, problem: str, optimizer: str):
        from urllib.parse import quote

        return self.folder / f"{quote(problem, safe='')}__{quote(optimizer, safe='')}.json.gz"

    def n_other_cells(self, pairs) -> int:
        """How many saved cells are not among the (problem, optimizer) ``pairs``."""
        mine = {self._path(p, o).name for p, o in pairs}
        return sum(f.name not in mine for f in self.folder.glob("*.json.gz"))

    def has(self, problem: str, optimizer: str) -> bool:
        return self._path(problem, optimizer).exists()

    def load(self, problem: str, optimizer: str) -> tuple[list[dict], str, float] | None:
        """The saved cell's rows, log line and wall seconds, or ``None``."""
        path = self._path(problem, optimizer)
        if not path.exists():
            return None
        cell = json.loads(gzip.decompress(path.read_bytes()))
        cols = cell["columns"]
        rows = [dict(zip(cols, r)) for r in cell["rows"]]
        return rows, cell["line"], float(cell["wall_s"])

    def save(self, problem: str, optimizer: str, rows: list[dict], line: str,
             wall_s: float) -> None:
        cols = list(rows[0]) if rows else []
        _write_atomic(self._path(problem, optimizer), gzip.compress(json.dumps(
            {"problem": problem, "optimizer": optimizer, "wall_s": wall_s, "line": line,
             "columns": cols, "rows": [[r[c] for c in cols] for r in rows]}).encode()))
        if self._segs:
            self._segs[-1]["cells_run"] += 1
            self._write_segments()

    def segments(self) -> list[dict[str, Any]]:
        """The invocations so far, oldest first."""
        path = self.folder / "segments.json"
        return json.loads(path.read_text()) if path.exists() else []

    def begin_segment(self, info: dict[str, Any]) -> None:
        """Record a new segment (``info``: what describes it, e.g. the processes); its
        ``wall_s`` counts from now."""
        self._seg_t0 = time.perf_counter()
        self._segs = self.segments() + [dict(info, started=time.strftime(
            "%Y-%m-%dT%H:%M:%S%z"), wall_s=0.0, cells_run=0, completed=False)]
        self._write_segments()

    def end_segment(self, completed: bool) -> list[dict[str, Any]]:
        """Close the current segment; every segment so far, oldest first."""
        self._segs[-1].update(completed=bool(completed))
        self._write_segments()
        return self._segs

    def _write_segments(self) -> None:
        if self._segs:
            self._segs[-1].update(wall_s=time.perf_counter() - self._seg_t0,
                                  loadavg_now=os.getloadavg()[0])
            _write_atomic(self.folder / "segments.json",
                          json.dumps(self._segs, indent=1, default=float))

    def remove(self) -> None:
        """Delete the folder (the run's results are written elsewhere)."""
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def _write_atomic(path, data: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_suite(problems: Sequence[Problem], optimizers: Sequence[OptimizerSpec],
              seeds: Iterable[int], n_trials: int, *, n_initial: int = 10, n_threads: int = 1,
              n_jobs: int = 1, store: CellStore | None = None,
              log=print) -> list[dict[str, Any]]:
    """Every applicable (optimizer, problem, seed); rows of every trial.

    ``n_jobs > 1`` runs the (problem, optimizer) cells, each with all its seeds, in that
    many worker processes (each pinned to ``n_threads``).  Every process warms an
    optimizer up before that optimizer's first timed run in it, so the warm-up rule is
    the same as in one process, and the rows come back in the sequential order: the
    trials and values are those of ``n_jobs=1`` (the timings are measured while the
    other workers run).  With a ``store``, cells it holds are read back instead of run,
    and every cell run is saved to it as soon as it ends.
    """
    seeds = list(seeds)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an int >= 1, got {n_jobs!r}")
    cells = [(problem, spec) for problem in problems for spec in optimizers
             if spec.applies_to(problem)]
    done: dict[int, tuple[list[dict], str]] = {}
    if store is not None:
        for i, (problem, spec) in enumerate(cells):
            saved = store.load(problem.name, spec.name)
            if saved is not None:
                done[i] = (saved[0], saved[1] + "  [saved]")
    todo = [i for i in range(len(cells)) if i not in done]
    if done:
        log(f"hpcore bench: {len(done)} of {len(cells)} cells read back from {store.folder}")
        for i in sorted(done):
            log(done[i][1])

    def finished(i: int, cell_rows: list[dict], line: str, wall: float) -> None:
        if store is not None:
            problem, spec = cells[i]
            store.save(problem.name, spec.name, cell_rows, line, wall)
        done[i] = (cell_rows, line)

    t0, n_logged = time.perf_counter(), [len(done)]

    def progress(line: str) -> None:   # a long run says how far it is
        n_logged[0] += 1
        log(f"{line}  [{n_logged[0]}/{len(cells)} cells, "
            f"{(time.perf_counter() - t0) / 60:.1f} min]")

    if n_jobs == 1 or len(todo) <= 1:
        state = _CellState()
        for i in todo:
            problem, spec = cells[i]
            cell_rows, line, wall = _run_cell(state, problem, spec, seeds, n_trials, n_initial,
                                              n_threads)
            finished(i, cell_rows, line, wall)
            progress(line)
    else:
        _run_cells_in_processes([cells[i] for i in todo], todo, seeds, n_trials, n_initial,
                                n_threads, min(n_jobs, len(todo)), finished, progress)
    rows: list[dict[str, Any]] = []
    for i in range(len(cells)):
        rows.extend(done[i][0])
    return rows


class _CellState:
    """What one process keeps between cells: the optimizers it has warmed up and the
    curve cache of the problem it ran last (cells arrive problem by problem)."""

    def __init__(self) -> None:
        self.warmed: set[str] = set()
        self.cache: CurveCache | None = None

    def cache_for(self, problem: Problem) -> CurveCache | None:
        if not problem.multi_fidelity:
            return None
        if self.cache is None or self.cache.problem is not problem:
            self.cache = CurveCache(problem)
        return self.cache


def _run_cell(state: _CellState, problem: Problem, spec: OptimizerSpec, seeds: list[int],
              n_trials: int, n_initial: int, n_threads: int) -> tuple[list[dict], str, float]:
    cache = state.cache_for(problem)
    if spec.name not in state.warmed:
        warm_up(problem, spec, n_initial=n_initial, n_threads=n_threads, cache=cache)
        state.warmed.add(spec.name)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    finals = []
    for seed in seeds:
        run = run_one(problem, spec, seed, n_trials, n_initial=n_initial,
                      n_threads=n_threads, cache=cache)
        rows.extend(run)
        if run:
            finals.append(run[-1]["best_so_far"])
    wall = time.perf_counter() - t0
    line = (f"  {problem.name:18s} {spec.name:26s} median final best "
            f"{np.median(finals) if finals else float('nan'):.6g}  ({wall:.1f} s)")
    return rows, line, wall


_WORKER: dict[str, Any] = {}


def _worker_init(problems, optimizers, n_threads) -> None:
    pin_threads(n_threads)
    _WORKER.update(problems={p.name: p for p in problems},
                   optimizers={o.name: o for o in optimizers}, state=_CellState())


def _worker_cell(problem: str, spec: str, seeds, n_trials, n_initial, n_threads):
    return _run_cell(_WORKER["state"], _WORKER["problems"][problem],
                     _WORKER["optimizers"][spec], seeds, n_trials, n_initial, n_threads)


def _run_cells_in_processes(cells, index, seeds, n_trials, n_initial, n_threads, n_jobs,
                            finished, log):
    """Run ``cells`` in ``n_jobs`` processes; ``finished(index[k], rows, line, wall)`` as
    each ends (so a store saves it at once), the log lines in submission order."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # fork keeps problems and optimizers registered at run time (the registry lives in
    # this process); the parent has run no OpenMP region or torch op by now.  Elsewhere
    # the specs travel by pickle, so they must be importable.
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    problems = list({id(p): p for p, _ in cells}.values())
    specs = list({id(s): s for _, s in cells}.values())
    with ProcessPoolExecutor(n_jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(problems, specs, n_threads)) as pool:
        futures = [pool.submit(_worker_cell, p.name, s.name, seeds, n_trials, n_initial,
                               n_threads) for p, s in cells]
        k_of = {f: k for k, f in enumerate(futures)}
        lines: dict[int, str] = {}
        next_line, pending, error = 0, set(futures), None
        while pending:
            try:
                ended, pending = wait(pending, return_when=FIRST_COMPLETED)
            except BaseException:   # e.g. KeyboardInterrupt: leaving the pool must not
                for f in pending:   # first run every queued cell
                    f.cancel()
                raise
            for fut in ended:
                if fut.cancelled():
                    continue
                k = k_of[fut]
                try:
                    cell_rows, line, wall = fut.result()
                except BaseException as exc:  # noqa: BLE001 - re-raised below
                    if error is None:   # start no new cell; keep what the others finish
                        error = exc
                        for f in pending:
                            f.cancel()
                    continue
                finished(index[k], cell_rows, line, wall)
                lines[k] = line
            while next_line in lines:
                log(lines.pop(next_line))
                next_line += 1
        if error is not None:
            raise error


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("hpcore", "numpy", "scipy", "scikit-learn", "optuna", "torch", "scikit-optimize",
                "hyperopt", "cmaes"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def run_compare(*, problems: Sequence[str] | None = None, optimizers: Sequence[str] | None = None,
                quick: bool = False, n_trials: int = 60, seeds: int = 10, n_initial: int = 10,
                n_threads: int = 1, n_jobs: int = 1, out: str | os.PathLike = "bench_results",
                tag: str = "full", resume: bool = False, argv: Sequence[str] = (),
                log=print) -> dict[str, Any]:
    """Select, run, and write ``compare_<tag>.csv``, ``.md``, ``.json`` and the plots.

    Cells are saved to ``<out>/compare_<tag>.cells/`` as they end (see
    :class:`CellStore`), and the folder is removed once the results are written.  If
    the run is interrupted, ``resume=True`` with the same settings reads those cells back
    and runs the rest; without it, an existing folder raises ``ValueError`` (nothing
    saved is thrown away).  The reported wall time is the sum over the run's segments.
    """
    import platform
    from pathlib import Path

    from hpcore.bench import report
    from hpcore.bench.registry import get_optimizer, get_problem, list_optimizers, list_problems

    pin_threads(n_threads)  # before any peer is imported
    for name, v, lo in (("n_trials", n_trials, 1), ("seeds", seeds, 1), ("n_initial", n_initial, 1),
                        ("n_threads", n_threads, 1), ("n_jobs", n_jobs, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    pnames = list(problems) if problems else list_problems("quick" if quick else None)
    onames = list(optimizers) if optimizers else list_optimizers()
    probs = [get_problem(n) for n in pnames]
    specs, skipped = [], []
    for n in onames:
        spec = get_optimizer(n)
        miss = spec.missing()
        if miss:
            msg = f"{n} (missing {', '.join(miss)}; pip install 'hpcore[bench]')"
            log(f"hpcore bench: skipping {msg}")
            skipped.append(msg)
            continue
        specs.append(spec)
    if report.REFERENCE not in [s.name for s in specs]:
        specs.insert(0, get_optimizer(report.REFERENCE))  # the regret's reference
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    prefix = outdir / f"compare_{tag}"
    store = CellStore(Path(f"{prefix}.cells"), {
        "seeds": seeds, "n_trials": n_trials, "n_initial": n_initial, "n_threads": n_threads,
        "versions": _versions()}, resume=resume)
    load0 = os.getloadavg()
    log(f"hpcore bench: {len(specs)} optimizers x {len(probs)} problems x {seeds} seeds, "
        f"{n_trials} trials, {n_threads} thread(s), {n_jobs} process(es); load average "
        f"{load0[0]:.2f}")
    pairs = [(p.name, s.name) for p in probs for s in specs if s.applies_to(p)]
    n_cells = len(pairs)
    n_saved = sum(store.has(p, o) for p, o in pairs)
    store.begin_segment({"n_jobs": n_jobs, "cells_read_back": n_saved, "cells_total": n_cells,
                         "loadavg_start": load0[0]})
    ok = False
    try:
        rows = run_suite(probs, specs, range(seeds), n_trials, n_initial=n_initial,
                         n_threads=n_threads, n_jobs=n_jobs, store=store, log=log)
        ok = True
    finally:
        segs = store.end_segment(ok)
    wall = sum(float(sg["wall_s"]) for sg in segs)
    load1 = os.getloadavg()
    fam = {s.name: s.family for s in specs}
    for r in rows:
        r["family"] = fam[r["optimizer"]]
    summary = report.summarize(rows)
    report.write_csv(rows, Path(f"{prefix}.csv"))
    cmd = "hpcore bench " + " ".join(a for a in argv if a != "--resume")
    timing = f"{wall:.0f} s wall"
    if len(segs) > 1:
        timing += (f" in {len(segs)} segments (interrupted and resumed with `--resume`: "
                   + ", ".join(f"{float(sg['wall_s']):.0f} s from {sg['started']}"
                               for sg in segs) + ")")
    header = [
        f"# hpcore bench ({tag})", "",
        f"Command: `{cmd.strip()}`; {timing} on {platform.machine()} "
        f"({os.cpu_count()} cores), load average {load0[0]:.2f} at start, "
        f"{load1[0]:.2f} at the end (1-minute); Python {platform.python_version()}; "
        f"{_versions()}.", "",
        f"Protocol: {seeds} seeds (0..{seeds - 1}), {n_trials} trials per run (curve problems: "
        f"{n_trials} x max_resource epochs), initial design {n_initial} for every optimizer "
        f"that has one, {n_threads} BLAS/OpenMP/torch thread(s) for all, the same warm-up "
        f"({n_initial + 2} untimed trials, in every process) for all; {n_jobs} worker "
        f"process(es) running (problem, optimizer) cells side by side.  Suggestion time = ask + tell + pruner "
        "reports, per call.  Timing figures come from a machine shared with other jobs: they "
        "are not quiet-machine figures; the quality figures do not depend on load.  Every "
        f"trial is in `compare_{tag}.csv`; plots `compare_{tag}_best.png`, "
        f"`compare_{tag}_regret.png`, `compare_{tag}_suggest.png`.", ""]
    report.write_markdown(summary, Path(f"{prefix}.md"), header=header, skipped=skipped)
    Path(f"{prefix}.json").write_text(json.dumps(
        {"command": cmd.strip(), "wall_s": wall, "loadavg_start": load0, "loadavg_end": load1,
         "seeds": seeds, "n_trials": n_trials, "n_initial": n_initial, "n_threads": n_threads,
         "n_jobs": n_jobs, "segments": segs,
         "skipped": skipped, "optimizers": summary["optimizers"]}, indent=1, default=float))
    report.write_plots(rows, summary, prefix)
    others = store.n_other_cells(pairs)
    if others:   # a resumed subset must not throw away the rest of a bigger run
        log(f"hpcore bench: kept {store.folder}: it also holds {others} cells of "
            "problems or optimizers this run did not include")
    else:
        store.remove()
    return summary
