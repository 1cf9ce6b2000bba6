"""python/tune_dask_cluster.py --quick, end to end on a LocalCluster (skipped without
dask.distributed or scikit-learn)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import hpcore as hp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "python", "tune_dask_cluster.py")


def test_quick_deterministic_run_on_a_local_cluster(tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("sklearn")
    db = tmp_path / "dask.db"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, SCRIPT, "--quick", "--deterministic", "--db", str(db)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    assert elapsed < 240, f"--quick took {elapsed:.0f} s"
    assert "cluster: 2 workers" in out.stdout
    assert "8 trials in" in out.stdout and "(8 complete, 0 failed)" in out.stdout
    study = hp.load_study("dask-svc", f"sqlite:///{db}")
    trials = study.trials
    assert len(trials) == 8 and all(t.state == hp.TrialState.COMPLETE for t in trials)
    assert 0.5 < study.best_value <= 1.0
    assert f"best accuracy: {study.best_value:.4f}" in out.stdout
    study.close()
