"""python/tune_torch_digits.py --quick, end to end (skipped without torch)."""
import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

import hpcore as hp  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "python", "tune_torch_digits.py")
KINDS = ["convergence", "parallel", "slice", "intermediate", "importance", "pareto"]


def test_quick_run_tunes_prunes_prints_and_plots(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, SCRIPT, "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env=env)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    assert elapsed < 120, f"--quick took {elapsed:.0f} s"
    lines = out.stdout.splitlines()
    header = next(ln for ln in lines if ln.startswith("rank"))
    for col in ("lr", "optimizer", "momentum", "schedule", "step_size", "gamma", "batch_size",
                "dropout", "weight_decay", "l1", "augment", "n_layers", "units", "activation"):
        assert col in header.split()
    for kind in KINDS:
        data = (tmp_path / f"{kind}.png").read_bytes()
        assert len(data) > 2000 and data[:4] == b"\x89PNG", kind
    (summary,) = hp.list_studies(str(tmp_path / "runs.db"))
    assert summary.n_trials == 40 and summary.states["FAIL"] == 0
    assert summary.states["PRUNED"] > 0 and summary.states["COMPLETE"] > 0
    assert summary.best_value > 0.8          # validation accuracy of the best trial
    study = hp.load_study(summary.name, f"sqlite:///{tmp_path / 'runs.db'}?mode=ro")
    done = study.get_trials([hp.TrialState.COMPLETE])
    assert all(t.last_step == 9 and len(t.intermediate_values) == 9 for t in done)
    pruned = study.get_trials([hp.TrialState.PRUNED])
    assert all(t.user_attrs["epochs"] == t.last_step < 9 for t in pruned)
    assert study.best_trial.values[0] == max(t.values[0] for t in done)
