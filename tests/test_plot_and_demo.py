import subprocess
import sys

import numpy as np

import hpcore as hp
from hpcore.plot import best_so_far, plot_convergence


def test_best_so_far_and_plot(tmp_path):
    st = hp.Study(hp.Space({"x": hp.Float(0, 1)}), direction="maximize", seed=0)
    st.optimize(lambda t: float("nan") if t.number == 0 else t.params["x"], n_trials=20)
    curve = best_so_far(st)
    xs = [t.params["x"] for t in st.trials]
    assert np.isnan(curve[0])
    assert np.allclose(curve[1:], np.maximum.accumulate(xs[1:]))
    path = tmp_path / "c.png"
    plot_convergence({"random": st}, str(path))
    assert path.stat().st_size > 1000


def test_demo_objective_is_a_real_cv_score():
    from hpcore._demo import svc_objective, svc_space

    trial = hp.Trial(0, 0, {"C": 10.0, "gamma": 0.05})
    acc = svc_objective(trial)
    assert 0.9 < acc <= 1.0
    svc_space().validate(trial.params)


def test_import_without_optional_dependencies():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'sklearn', 'dask', 'distributed', 'pandas', 'matplotlib',"
        " 'cloudpickle', 'optuna', 'torch'}:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import hpcore as hp\n"
        "st = hp.Study(hp.Space({'x': hp.Float(0, 1)}), seed=0)\n"
        "st.optimize(lambda t: t.params['x'], n_trials=5)\n"
        "try:\n"
        "    st.to_dataframe()\n"
        "    raise SystemExit('to_dataframe did not raise without pandas')\n"
        "except ImportError as e:\n"
        "    assert 'pandas' in str(e), e\n"
        "from hpcore._export import trial_rows\n"
        "assert len(trial_rows(st)) == 5\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
