"""The bench harness (hpcore.bench): known optima, the registry's errors, and a tiny run of
the harness whose CSV must have every column and every optimizer its full budget."""
from __future__ import annotations

import csv
import math
import subprocess
import sys
import time

import numpy as np
import pytest

import hpcore as hp
from hpcore import bench
from hpcore.bench import problems as P
from hpcore.bench.registry import OPTIMIZERS, PROBLEMS
from hpcore.bench.runner import COLUMNS, CurveCache, run_one

# (function, minimizer, minimum)
OPTIMA = [
    (P.branin, [-math.pi, 12.275], 0.397887357729738),
    (P.branin, [math.pi, 2.275], 0.397887357729738),
    (P.branin, [9.42478, 2.475], 0.397887357729738),
    (P.hartmann6, [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573], -3.32237),
    (P.ackley, [0.0] * 5, 0.0),
    (P.levy, [1.0] * 6, 0.0),
    (P.rosenbrock, [1.0] * 4, 0.0),
    (P.rastrigin, [0.0] * 4, 0.0),
    (P.michalewicz, [2.20290552, 1.57079633], -1.8013034),
    (P.styblinski_tang, [-2.903534] * 4, -39.16616570377142 * 4),
]


@pytest.mark.parametrize("fn,x,fmin", OPTIMA)
def test_known_optima(fn, x, fmin):
    assert fn(np.array(x)) == pytest.approx(fmin, abs=2e-5)
    # and it is a local minimum: small moves do not go lower
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert fn(np.array(x) + 1e-3 * rng.standard_normal(len(x))) >= fmin - 2e-5


def test_registered_optima_match_the_functions():
    for name, (fn, d, bounds, fmin, _) in P.SYNTHETIC.items():
        assert PROBLEMS[name].optimum == fmin
        # random points never beat the stated minimum
        rng = np.random.default_rng(1)
        lo, hi = np.array(bounds).T
        X = lo + (hi - lo) * rng.random((500, d))
        assert min(fn(x) for x in X) >= fmin - 1e-9


def test_noisy_variant_uses_the_harness_stream_and_true_value():
    p = PROBLEMS["noisy_branin"]
    x = {"x0": -math.pi, "x1": 12.275}
    a = p.objective(x, np.random.default_rng(3))
    b = p.objective(x, np.random.default_rng(3))
    assert a == b and a != pytest.approx(p.true_value(x))
    assert p.true_value(x) == pytest.approx(0.397887, abs=1e-5)


def test_registry_errors():
    with pytest.raises(KeyError, match="no problem named 'nope'"):
        bench.get_problem("nope")
    with pytest.raises(KeyError, match="no optimizer named 'nope'"):
        bench.get_optimizer("nope")
    with pytest.raises(ValueError, match="already registered"):
        bench.register_problem(PROBLEMS["branin"])
    with pytest.raises(ValueError, match="already registered"):
        bench.register_optimizer("hpcore-random", lambda space, s: None)
    with pytest.raises(TypeError, match="make"):
        bench.register_optimizer("not-callable", 3)
    with pytest.raises(TypeError, match="Problem"):
        bench.register_problem({"name": "x"})
    with pytest.raises(ValueError, match="exactly one of objective or curve"):
        bench.Problem("both", {"x": hp.Float(0, 1)})
    with pytest.raises(ValueError, match="max_resource"):
        bench.Problem("c", {"x": hp.Float(0, 1)}, curve=lambda p: iter([1.0]), kind="curve")
    with pytest.raises(ValueError, match="kind"):
        bench.Problem("k", {"x": hp.Float(0, 1)}, objective=lambda p, r: 0.0, kind="other")
    with pytest.raises(TypeError, match="space"):
        bench.Problem("s", {}, objective=lambda p, r: 0.0)
    with pytest.raises(ValueError, match="n_trials"):
        run_one(PROBLEMS["branin"], bench.get_optimizer("hpcore-random"), 0, 0)


class _FirstCorner(bench.AskTell):
    """A user optimizer: always the lower corner, then uniform draws."""

    def __init__(self, space, settings):
        self.space, self.rng, self.n = space, np.random.default_rng(settings.seed), 0

    def ask(self):
        self.n += 1
        return bench.Suggestion(self.space.decode_random(self.rng.random(len(self.space))))

    def tell(self, suggestion, value, pruned=False):
        pass


def test_user_optimizer_and_problem_through_the_registry():
    spec = bench.register_optimizer("test-user-random", _FirstCorner, replace=True)
    prob = bench.register_problem(bench.Problem(
        "test_sphere3", {f"x{i}": hp.Float(-1, 1) for i in range(3)},
        objective=lambda p, rng: sum(v * v for v in p.values()), optimum=0.0), replace=True)
    try:
        rows = run_one(prob, spec, 0, 7)
        assert [r["trial"] for r in rows] == list(range(7))
        assert all(r["best_so_far"] == min(rr["value"] for rr in rows[:i + 1])
                   for i, r in enumerate(rows))
    finally:
        OPTIMIZERS.pop("test-user-random")
        PROBLEMS.pop("test_sphere3")


def _fake_curve(p):
    # a deterministic learning curve: the loss decays towards a config-dependent floor
    floor = (p["x"] - 0.3) ** 2
    return iter([floor + 1.0 / e for e in range(1, 10)])


def test_curve_cache_and_budget():
    prob = bench.Problem("test_curve", {"x": hp.Float(0, 1)}, curve=_fake_curve,
                         max_resource=9, kind="curve")
    cache = CurveCache(prob)
    rows = run_one(prob, bench.get_optimizer("hpcore-random+asha"), 0, 6, cache=cache)
    assert rows[-1]["cum_epochs"] <= 6 * 9 and rows[-1]["cum_epochs"] + 9 > 6 * 9
    assert sum(r["epochs"] for r in rows) == rows[-1]["cum_epochs"]
    assert any(r["state"] == "pruned" for r in rows) and len(rows) > 6
    again = run_one(prob, bench.get_optimizer("hpcore-random+asha"), 0, 6, cache=cache)
    assert [r["value"] for r in again] == [r["value"] for r in rows]
    assert cache.computed == sum(r["epochs"] for r in rows)  # the replay computed nothing


def test_harness_tiny_run_csv(tmp_path):
    """The harness end to end on one tiny problem: CSV columns, every optimizer's budget."""
    from hpcore.bench.runner import run_compare

    names = ["hpcore-random", "hpcore-qmc", "hpcore-bayes", "hpcore-genetic"]
    for peer in ("optuna-tpe", "optuna-random", "hyperopt-tpe", "skopt-gp"):
        if not bench.get_optimizer(peer).missing():
            names.append(peer)
    run_compare(problems=["branin"], optimizers=names, n_trials=12, seeds=2, n_initial=5,
                out=tmp_path, tag="tiny", log=lambda *a, **k: None)
    with open(tmp_path / "compare_tiny.csv") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    for required in ("optimizer", "problem", "seed", "trial", "value", "best_so_far",
                     "suggest_time", "objective_time"):
        assert required in COLUMNS
    for name in names:
        for seed in ("0", "1"):
            mine = [r for r in rows if r["optimizer"] == name and r["seed"] == seed]
            assert [int(r["trial"]) for r in mine] == list(range(12)), name
            best = np.minimum.accumulate([float(r["value"]) for r in mine])
            np.testing.assert_allclose([float(r["best_so_far"]) for r in mine], best)
            assert all(float(r["suggest_time"]) >= 0 and float(r["objective_time"]) >= 0
                       for r in mine)
    md = (tmp_path / "compare_tiny.md").read_text()
    assert "mean normalized regret" in md and "hpcore-bayes" in md
    for suffix in ("best", "regret", "suggest"):
        pytest.importorskip("matplotlib")
        assert (tmp_path / f"compare_tiny_{suffix}.png").stat().st_size > 1000


def test_missing_peer_is_skipped_with_a_message(tmp_path):
    from hpcore.bench.runner import run_compare

    bench.register_optimizer("test-needs-missing", _FirstCorner,
                             requires=("hpcore_no_such_module",), replace=True)
    msgs = []
    try:
        run_compare(problems=["branin"], optimizers=["test-needs-missing"], n_trials=3,
                    seeds=1, n_initial=2, out=tmp_path, tag="skip", log=msgs.append)
    finally:
        OPTIMIZERS.pop("test-needs-missing")
    assert any("skipping test-needs-missing" in m and "hpcore_no_such_module" in m for m in msgs)
    assert "test-needs-missing" in (tmp_path / "compare_skip.md").read_text()


def test_import_needs_no_peer():
    code = ("import sys, hpcore, hpcore.bench, hpcore.bench.problems, hpcore.bench.optimizers;"
            "bad = [m for m in ('optuna', 'skopt', 'hyperopt', 'torch', 'matplotlib', 'sklearn')"
            " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _final_rows(problem, finals):
    """One complete trial per (optimizer, seed) whose value is that seed's final best."""
    return [{"optimizer": o, "problem": problem, "seed": s, "trial": 0, "value": v,
             "true_value": v, "best_so_far": v, "suggest_time": 0.001, "objective_time": 0.0,
             "state": "complete", "epochs": 0}
            for o, vals in finals.items() for s, v in enumerate(vals)]


def test_regret_normalization():
    from hpcore.bench.report import summarize

    rows = _final_rows("p", {"hpcore-random": [4.0, 6.0], "optuna-tpe": [1.0, 3.0],
                             "hpcore-bayes": [2.0, 2.0]})
    s = summarize(rows)
    e = s["problems"]["p"]
    assert e["best_seen"] == 1.0 and e["reference"] == 5.0 and e["best_peer"] == "optuna-tpe"
    assert s["optimizers"]["hpcore-random"]["mean_regret"] == pytest.approx(1.0)
    assert s["optimizers"]["optuna-tpe"]["mean_regret"] == pytest.approx(0.25)
    assert s["optimizers"]["hpcore-bayes"]["mean_regret"] == pytest.approx(0.25)


def test_significance_direction_with_tied_medians():
    # rf_wine in the full run: a validation error takes few values, so a peer four seeds
    # in ten worse than the best peer has the same median; the test says worse, not better.
    from hpcore.bench.report import summarize

    rows = _final_rows("steps", {"hpcore-random": [3.0] * 10, "optuna-gp": [1.0] * 10,
                                 "hyperopt-tpe": [1.0] * 6 + [2.0] * 4,
                                 "hpcore-bayes": [1.0] * 10})
    s = summarize(rows)
    e = s["problems"]["steps"]
    assert e["best_peer"] == "optuna-gp"
    h = e["optimizers"]["hyperopt-tpe"]
    assert h["median_final"] == e["optimizers"]["optuna-gp"]["median_final"]
    assert h["p_vs_best_peer"] < 0.05
    assert s["optimizers"]["hyperopt-tpe"]["sig_worse_than_best_peer"] == ["steps"]
    assert s["optimizers"]["hyperopt-tpe"]["sig_better_than_best_peer"] == []
    assert s["optimizers"]["hpcore-bayes"]["sig_worse_than_best_peer"] == []   # equal: p = 1


def test_peers_with_different_seed_counts_are_compared():
    # an optimizer that finished fewer seeds than the best peer: a test, not a crash
    from hpcore.bench.report import summarize

    s = summarize(_final_rows("p", {"hpcore-random": [5.0] * 3, "optuna-tpe": [1.0, 1.0, 2.0],
                                    "hpcore-bayes": [3.0, 4.0]}))
    assert 0.0 < s["problems"]["p"]["optimizers"]["hpcore-bayes"]["p_vs_best_peer"] < 1.0


def test_cli_bench_passes_its_options(capsys):
    from hpcore.cli import main

    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "optimizer hpcore-bayes" in out and "problem   sgd_synth" in out
    with pytest.raises(SystemExit):
        main(["bench", "--no-such-option"])


def test_regret_undefined_when_random_reaches_the_best():
    from hpcore.bench.report import summarize

    rows = _final_rows("flat", {"hpcore-random": [1.0, 1.0, 2.0],
                                "optuna-tpe": [1.0, 3.0, 3.0]})
    s = summarize(rows)
    assert math.isnan(s["problems"]["flat"]["optimizers"]["optuna-tpe"]["mean_regret"])
    assert s["optimizers"]["optuna-tpe"]["n_problems"] == 0   # left out of the average
    # random's median a rounding error above the best (a CV mean summed in another
    # order): no gap either, not regrets of 10^15
    for r in rows:
        if r["optimizer"] == "hpcore-random" and r["value"] == 1.0:
            r["value"] = r["true_value"] = r["best_so_far"] = 1.0 + 4e-16
    s = summarize(rows)
    assert math.isnan(s["problems"]["flat"]["optimizers"]["optuna-tpe"]["mean_regret"])


def test_parallel_cells_give_the_sequential_trials(tmp_path):
    """--jobs runs cells in worker processes: same rows, same order, as one process."""
    from hpcore.bench.runner import run_suite

    probs = [bench.get_problem("branin"), bench.get_problem("hartmann6")]
    specs = [bench.get_optimizer(n) for n in ("hpcore-random", "hpcore-bayes", "hpcore-genetic")]
    if not bench.get_optimizer("optuna-tpe").missing():
        specs.append(bench.get_optimizer("optuna-tpe"))
    quiet = lambda *a, **k: None  # noqa: E731
    one = run_suite(probs, specs, [0, 1], 8, n_initial=4, log=quiet)
    two = run_suite(probs, specs, [0, 1], 8, n_initial=4, n_jobs=2, log=quiet)
    key = ("optimizer", "problem", "seed", "trial", "value", "best_so_far")
    assert [tuple(r[k] for k in key) for r in two] == [tuple(r[k] for k in key) for r in one]
    assert len(one) == len(probs) * len(specs) * 2 * 8
    with pytest.raises(ValueError, match="n_jobs"):
        run_suite(probs, specs, [0], 3, n_jobs=0)


class _Breaks(_FirstCorner):
    """A user optimizer whose runs fail (while ``BROKEN``), to interrupt a bench run."""

    BROKEN = True

    def ask(self):
        if _Breaks.BROKEN and self.n >= 2:
            raise RuntimeError("optimizer broke")
        return super().ask()


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_interrupted_run_resumes_from_its_saved_cells(tmp_path, n_jobs):
    """Cells are saved as they end: a run that fails part-way resumes with --resume and
    gives the uninterrupted run's trials; without --resume, or with other settings, the
    saved cells are refused rather than thrown away."""
    from hpcore.bench.runner import run_compare

    bench.register_optimizer("test-breaks", _Breaks, replace=True)
    names = ["hpcore-random", "test-breaks", "hpcore-qmc"]
    quiet = lambda *a, **k: None  # noqa: E731
    kw = dict(problems=["branin", "hartmann6"], optimizers=names, n_trials=6, seeds=2,
              n_initial=3, out=tmp_path, tag="r", n_jobs=n_jobs, log=quiet)
    try:
        _Breaks.BROKEN = True
        with pytest.raises(RuntimeError, match="optimizer broke"):
            run_compare(**kw)
        cells = tmp_path / "compare_r.cells"
        saved = sorted(p.name for p in cells.glob("*__*.json.gz"))
        assert "branin__hpcore-random.json.gz" in saved
        assert not any("test-breaks" in p for p in saved)
        assert not (tmp_path / "compare_r.csv").exists()
        with pytest.raises(ValueError, match="resume"):
            run_compare(**kw)
        with pytest.raises(ValueError, match="resume.*n_trials"):
            run_compare(**dict(kw, n_trials=7), resume=True)
        _Breaks.BROKEN = False
        msgs: list[str] = []
        run_compare(**dict(kw, problems=["hartmann6"], log=msgs.append), resume=True)
        assert any("kept" in m for m in msgs) and cells.exists()   # branin's cells stay
        msgs = []
        run_compare(**dict(kw, log=msgs.append), resume=True)
        n_back = len(set(saved) | {f"hartmann6__{n}.json.gz" for n in names})
        assert any(f"{n_back} of 6 cells read back" in m for m in msgs)
        assert sum(m.endswith("[saved]") for m in msgs) == n_back
        assert not cells.exists()                      # removed once the results are written
        whole = tmp_path / "whole"
        run_compare(**dict(kw, out=whole))
    finally:
        OPTIMIZERS.pop("test-breaks")
        _Breaks.BROKEN = True

    def trials(path):
        with open(path) as fh:
            return [(r["optimizer"], r["problem"], r["seed"], r["trial"], r["value"])
                    for r in csv.DictReader(fh)]

    resumed, fresh = trials(tmp_path / "compare_r.csv"), trials(whole / "compare_r.csv")
    assert resumed == fresh and len(fresh) == 2 * 3 * 2 * 6
    import json
    meta = json.loads((tmp_path / "compare_r.json").read_text())
    assert [s["completed"] for s in meta["segments"]] == [False, True, True]
    assert meta["wall_s"] == pytest.approx(sum(s["wall_s"] for s in meta["segments"]))
    assert meta["segments"][-1]["cells_read_back"] >= 1
    assert sum(s["cells_run"] for s in meta["segments"]) == 6
    assert "3 segments" in (tmp_path / "compare_r.md").read_text()


def test_killed_segment_keeps_its_cells_and_time(tmp_path):
    """A segment killed without cleanup (SIGKILL, a lost machine) still has its saved
    cells and its time up to the last one in segments.json."""
    from hpcore.bench.runner import CellStore

    proto = {"seeds": 2, "n_trials": 5}
    store = CellStore(tmp_path / "c", proto)
    store.begin_segment({"n_jobs": 1})
    rows = [{"optimizer": "o/1", "problem": "p", "trial": 0, "value": float("nan")}]
    store.save("p", "o/1", rows, "line", 1.5)
    # no end_segment: the process died here
    again = CellStore(tmp_path / "c", proto, resume=True)
    (seg,) = again.segments()
    assert seg["cells_run"] == 1 and not seg["completed"] and seg["wall_s"] > 0
    got_rows, line, wall = again.load("p", "o/1")
    assert line == "line" and wall == 1.5 and math.isnan(got_rows[0]["value"])
    assert got_rows[0]["optimizer"] == "o/1" and again.load("p", "other") is None


class _Slow(_FirstCorner):
    """A user optimizer that takes its time and notes each run it starts in ``LOG``."""

    LOG = None

    def __init__(self, space, settings):
        super().__init__(space, settings)
        with open(_Slow.LOG, "a") as fh:
            fh.write("run\n")

    def ask(self):
        time.sleep(0.02)
        return super().ask()


def test_interrupt_cancels_the_queued_cells(tmp_path, monkeypatch):
    """Ctrl-C while cells run in processes cancels the queued cells (leaving the pool
    would otherwise run every one of them first); the saved cells stay for --resume."""
    import concurrent.futures as cf

    from hpcore.bench.runner import run_compare

    _Slow.LOG = tmp_path / "runs.txt"
    bench.register_optimizer("test-slow", _Slow, replace=True)
    real_wait, calls = cf.wait, []

    def wait_then_interrupt(fs, **kw):
        calls.append(1)
        if len(calls) == 2:   # after the first cells have ended
            raise KeyboardInterrupt
        return real_wait(fs, **kw)

    synthetic = [p for p in bench.list_problems() if PROBLEMS[p].kind == "synthetic"]
    kw = dict(problems=synthetic, optimizers=["test-slow"], n_trials=5, seeds=2, n_initial=2,
              out=tmp_path, tag="i", n_jobs=2, log=lambda *a, **k: None)
    try:
        monkeypatch.setattr(cf, "wait", wait_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_compare(**kw)
        monkeypatch.setattr(cf, "wait", real_wait)
        cells = tmp_path / "compare_i.cells"
        n_saved = len(list(cells.glob("*__*.json.gz")))
        started_before = len(_Slow.LOG.read_text().splitlines())
        run_compare(**kw, resume=True)
        started_after = len(_Slow.LOG.read_text().splitlines()) - started_before
    finally:
        OPTIMIZERS.pop("test-slow")
    assert 1 <= n_saved < 2 * len(synthetic)
    # the interrupted segment ran the cells in the workers and the pool's small queue only
    assert started_before < started_after
    import json
    meta = json.loads((tmp_path / "compare_i.json").read_text())
    assert [s["completed"] for s in meta["segments"]] == [False, True]
    assert meta["segments"][1]["cells_read_back"] == n_saved
