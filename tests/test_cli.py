"""The `hpcore` command line, run in subprocesses on a real study file; hp.list_studies."""
import csv
import math
import os
import subprocess
import sys

import pytest

import hpcore as hp


def objective(trial):
    p = trial.params
    base = (math.log10(p["lr"]) + 2) ** 2 + 0.1 * p["layers"] + (0.2 if p["opt"] == "sgd" else 0.0)
    if trial.number == 3:
        raise RuntimeError("a failing trial")
    v = base
    for step in range(1, 10):
        v = base + 1.0 / step
        trial.report(step, v)
        if trial.should_prune():
            raise hp.TrialPruned()
    return v


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    url = f"sqlite:///{folder / 'runs.db'}"
    space = hp.Space({"lr": hp.Float(1e-4, 1.0, log=True), "layers": hp.Int(1, 4),
                      "opt": hp.Categorical(["sgd", "adam"]),
                      "momentum": hp.Float(0.0, 0.99, condition={"opt": "sgd"})})
    a = hp.Study(space, storage=url, name="mlp", pruner=hp.ASHA(1, 9, eta=3), seed=0)
    a.optimize(objective, n_trials=30)
    b = hp.Study(space, storage=url, name="mlp-random", seed=1, direction="minimize")
    b.optimize(objective, n_trials=10)
    mo = hp.Study(hp.Space({"x": hp.Float(0.0, 2.0)}), storage=url, name="two",
                  directions=["minimize", "minimize"], seed=0)
    mo.optimize(lambda t: (t.params["x"] ** 2, (t.params["x"] - 2) ** 2), n_trials=25)
    for s in (a, b, mo):
        s.close() if hasattr(s, "close") else None
    return folder / "runs.db", {"mlp": a, "mlp-random": b, "two": mo}


def hpcore(*args, cwd=None):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "hpcore.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


def test_list_studies(db):
    path, studies = db
    for target in (str(path), f"sqlite:///{path}", path):
        got = {s.name: s for s in hp.list_studies(target)}
        assert list(got) == ["mlp", "mlp-random", "two"]
    a = got["mlp"]
    trials = studies["mlp"].trials
    assert a.directions == ["minimize"] and a.n_trials == 30
    for state in hp.TrialState:
        assert a.states[state.name] == sum(t.state == state for t in trials)
    assert a.states["PRUNED"] > 0 and a.states["FAIL"] == 1
    assert a.best_value == studies["mlp"].best_value
    assert got["two"].best_value is None and got["two"].directions == ["minimize", "minimize"]


def test_list_studies_in_memory_and_missing_file(tmp_path):
    storage = hp.InMemoryStorage()
    st = hp.Study(hp.Space({"x": hp.Float(0, 1)}), storage=storage, name="m", direction="maximize",
                  seed=0)
    st.optimize(lambda t: t.params["x"], n_trials=6)
    (s,) = hp.list_studies(storage)
    assert (s.name, s.n_trials, s.states["COMPLETE"], s.best_value) == ("m", 6, 6, st.best_value)
    missing = tmp_path / "nope.db"
    with pytest.raises(FileNotFoundError):
        hp.list_studies(str(missing))
    assert not missing.exists()


def test_studies_command(db):
    path, studies = db
    out = hpcore("studies", path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["name", "directions", "trials", "complete", "pruned", "fail",
                                "running", "best"]
    row = next(ln.split() for ln in lines if ln.startswith("mlp "))
    trials = studies["mlp"].trials
    n = {s: sum(t.state == s for t in trials) for s in hp.TrialState}
    assert row[:7] == ["mlp", "minimize", "30", str(n[hp.TrialState.COMPLETE]),
                       str(n[hp.TrialState.PRUNED]), "1", "0"]
    assert float(row[7]) == pytest.approx(studies["mlp"].best_value, rel=1e-3)
    assert any(ln.startswith("two ") and "minimize,minimize" in ln for ln in lines)


def test_show_command(db):
    path, studies = db
    out = hpcore("show", f"sqlite:///{path}", "mlp", "--top", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = lines[1].split()
    assert header[:4] == ["rank", "trial", "value", "seconds"] and "momentum" in header
    rows = [ln.split() for ln in lines[3:]]
    best = sorted((t for t in studies["mlp"].trials if t.state == hp.TrialState.COMPLETE),
                  key=lambda t: t.values[0])[:3]
    assert [int(r[1]) for r in rows] == [t.number for t in best]
    out = hpcore("show", path, "two")
    assert out.returncode == 0 and "Pareto front" in out.stdout and "value_1" in out.stdout


def test_export_command_writes_every_trial(db, tmp_path):
    path, studies = db
    target = tmp_path / "trials.csv"
    out = hpcore("export", path, "mlp", "-o", target)
    assert out.returncode == 0, out.stderr
    with open(target, newline="") as f:
        rows = list(csv.DictReader(f))
    trials = studies["mlp"].trials
    assert [int(r["number"]) for r in rows] == [t.number for t in trials]
    assert [r["state"] for r in rows] == [t.state.name for t in trials]
    for r, t in zip(rows, trials):
        assert float(r["params_lr"]) == t.params["lr"]
        assert (r["params_momentum"] == "") == ("momentum" not in t.params)
        if t.state == hp.TrialState.COMPLETE:
            assert float(r["value"]) == t.values[0]
    out = hpcore("export", path, "two", "-o", "-")
    assert out.returncode == 0 and out.stdout.splitlines()[0].startswith("number,state,values_0,values_1")


@pytest.mark.parametrize("kind", ["convergence", "parallel", "slice", "intermediate", "pareto",
                                  "importance"])
def test_plot_command_each_kind(db, tmp_path, kind):
    pytest.importorskip("matplotlib")
    if kind == "importance":
        pytest.importorskip("sklearn")
    path, _ = db
    name = "two" if kind == "pareto" else "mlp"
    target = tmp_path / f"{kind}.png"
    out = hpcore("plot", path, name, "-o", target, "--kind", kind)
    assert out.returncode == 0, out.stderr
    data = target.read_bytes()
    assert len(data) > 2000 and data[:4] == b"\x89PNG"
    assert os.listdir(tmp_path) == [f"{kind}.png"]     # no temporary file left


def test_plot_convergence_overlays_several_studies(db, tmp_path):
    pytest.importorskip("matplotlib")
    path, _ = db
    target = tmp_path / "both.png"
    out = hpcore("plot", path, "mlp", "mlp-random", "-o", target)
    assert out.returncode == 0, out.stderr
    assert target.stat().st_size > 2000


@pytest.mark.parametrize("args,needle", [
    (("studies", "{dir}/missing.db"), "no study file"),
    (("show", "{db}", "nope"), "no study named 'nope'"),
    (("export", "{db}", "nope", "-o", "{dir}/out.csv"), "no study named 'nope'"),
    (("export", "sqlite:///{dir}/missing.db", "mlp", "-o", "{dir}/out.csv"), "no study file"),
    (("plot", "{db}", "mlp", "-o", "{dir}/out.png", "--kind", "pareto"), "multi-objective"),
    (("plot", "{db}", "mlp", "two", "-o", "{dir}/out.png", "--kind", "slice"), "one study"),
    (("plot", "{db}", "nope", "-o", "{dir}/out.png"), "no study named 'nope'"),
    (("show", "{db}", "mlp", "--top", "0"), "--top"),
])
def test_errors_exit_2_without_traceback_or_output(db, tmp_path, args, needle):
    path, _ = db
    before = sorted(os.listdir(path.parent))
    out = hpcore(*[a.format(db=path, dir=tmp_path) for a in args])
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert os.listdir(tmp_path) == []                   # nothing written, nothing created
    assert sorted(os.listdir(path.parent)) == before


def test_config_and_help():
    out = hpcore("config")
    assert out.returncode == 0 and "openmp" in out.stdout.lower()
    out = hpcore("--help")
    for cmd in ("demo", "studies", "show", "export", "plot", "bench", "config"):
        assert cmd in out.stdout
