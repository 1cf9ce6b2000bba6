"""Every plot kind draws and saves; fANOVA importance against hand-computed trees."""
import math
import subprocess
import sys

import numpy as np
import pytest

import hpcore as hp

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from hpcore import plot as P  # noqa: E402


def mixed_space():
    return hp.Space({
        "lr": hp.Float(1e-4, 1.0, log=True),
        "layers": hp.Int(1, 4),
        "opt": hp.Categorical(["sgd", "adam"]),
        "momentum": hp.Float(0.0, 0.99, condition={"opt": "sgd"}),
    })


def curve_objective(trial):
    p = trial.params
    base = (math.log10(p["lr"]) + 2) ** 2 + 0.1 * p["layers"] + (0.3 if p["opt"] == "sgd" else 0.0)
    v = base
    for step in range(1, 10):
        v = base + 1.0 / step
        trial.report(step, v)
        if trial.should_prune():
            raise hp.TrialPruned()
    return v


@pytest.fixture(scope="module")
def pruned_study():
    st = hp.Study(mixed_space(), pruner=hp.ASHA(1, 9, eta=3), seed=0, name="pruned")
    st.optimize(curve_objective, n_trials=40)
    return st


@pytest.fixture(scope="module")
def mo_study():
    st = hp.Study(hp.Space({"x": hp.Float(0.0, 2.0), "y": hp.Float(0.0, 1.0)}),
                  directions=["minimize", "maximize"], seed=0, name="mo")
    st.optimize(lambda t: (t.params["x"] ** 2, -(t.params["x"] - 2) ** 2 + t.params["y"]), n_trials=40)
    return st


def png_ok(path):
    data = path.read_bytes()
    return len(data) > 2000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_kind_writes_a_png(tmp_path, pruned_study, mo_study):
    for kind in P.KINDS:
        study = mo_study if kind == "pareto" else pruned_study
        path = tmp_path / f"{kind}.png"
        fig = P.plot(study, kind, str(path))
        assert isinstance(fig, Figure)
        assert png_ok(path), kind


def test_plots_return_figures_without_saving_and_draw_into_given_axes(pruned_study):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    out = P.plot_convergence([pruned_study], ax=ax)
    assert out is fig and len(ax.lines) == 1
    out = P.plot_intermediate_values(pruned_study)
    assert isinstance(out, Figure)
    plt.close("all")


def test_convergence_overlays_studies_and_matches_best_so_far(tmp_path):
    a = hp.Study(hp.Space({"x": hp.Float(0, 1)}), direction="maximize", seed=0, name="a")
    a.optimize(lambda t: float("nan") if t.number == 0 else t.params["x"], n_trials=20)
    b = hp.Study(hp.Space({"x": hp.Float(0, 1)}), direction="maximize", seed=1, name="b")
    b.optimize(lambda t: t.params["x"], n_trials=15)
    curve = P.best_so_far(a)
    xs = [t.params["x"] for t in a.trials]
    assert np.isnan(curve[0])
    assert np.allclose(curve[1:], np.maximum.accumulate(xs[1:]))
    fig = P.plot_convergence({"A": a, "B": b}, str(tmp_path / "c.png"), show_values=False)
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["A", "B"]
    assert np.allclose(ax.lines[1].get_ydata(), P.best_so_far(b))
    assert png_ok(tmp_path / "c.png")


def test_intermediate_values_greys_pruned_trials(pruned_study):
    from matplotlib.collections import LineCollection

    fig = P.plot_intermediate_values(pruned_study)
    cols = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    n_pruned = sum(t.state == hp.TrialState.PRUNED for t in pruned_study.trials)
    n_complete = sum(t.state == hp.TrialState.COMPLETE for t in pruned_study.trials)
    assert n_pruned > 0 and n_complete > 0
    grey = [c for c in cols if np.allclose(c.get_colors()[0][:3], 0.6)]
    assert len(grey) == 1 and len(grey[0].get_segments()) == n_pruned
    assert sum(len(c.get_segments()) for c in cols) == n_pruned + n_complete


def test_parallel_and_slice_cover_every_parameter(pruned_study):
    fig = P.plot_parallel_coordinates(pruned_study)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["lr", "layers", "opt", "momentum", "objective (minimize)"]
    fig = P.plot_slice(pruned_study, params=["lr", "opt"])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["lr", "opt"]
    assert fig.axes[0].get_xscale() == "log"


def test_pareto_front_marks_the_non_dominated_trials(mo_study):
    fig = P.plot_pareto_front(mo_study)
    front = fig.axes[0].collections[1].get_offsets()
    expect = {(t.values[0], t.values[1]) for t in mo_study.best_trials}
    assert {(float(x), float(y)) for x, y in front} == expect


def test_pareto_front_mask_by_hand():
    y = np.array([[1, 5], [2, 2], [3, 3], [5, 1], [2, 2.5]], dtype=float)
    assert P.pareto_front_mask(y, ["minimize", "minimize"]).tolist() == [True, True, False, True, False]
    # maximizing the second objective: [1,5] dominates all but [.., ..] with lower f1
    assert P.pareto_front_mask(y, ["minimize", "maximize"]).tolist() == [True, False, False, False, False]


def test_errors_name_the_problem(pruned_study, mo_study):
    with pytest.raises(ValueError, match="multi-objective"):
        P.plot_pareto_front(pruned_study)
    with pytest.raises(ValueError, match="single-objective"):
        P.plot_convergence(mo_study)
    with pytest.raises(ValueError, match="kind must be one of"):
        P.plot(pruned_study, "histogram")
    with pytest.raises(ValueError, match="params: 'nope'"):
        P.plot_slice(pruned_study, params=["nope"])
    with pytest.raises(ValueError, match="objective must be"):
        P.plot_parallel_coordinates(pruned_study, objective=1)
    empty = hp.Study(hp.Space({"x": hp.Float(0, 1)}), name="empty")
    with pytest.raises(ValueError, match="COMPLETE trial"):
        P.plot_slice(empty)
    with pytest.raises(ValueError, match="no intermediate values"):
        P.plot_intermediate_values(mo_study)
    with pytest.raises(TypeError, match="Study"):
        P.plot_convergence({"a": 3})


# ------------------------------------------------------------------- fANOVA by hand
def test_tree_main_effects_one_split():
    # x0 <= 0.5 -> 0, else 1: all variance (1/4) is x0's
    eff, total = P.tree_main_effects([1, -1, -1], [2, -1, -1], [0, -2, -2], [0.5, -2, -2],
                                     [0.5, 0.0, 1.0], 2)
    assert total == pytest.approx(0.25)
    assert eff == pytest.approx([0.25, 0.0])


def test_tree_main_effects_with_an_interaction():
    # root: x0 <= 0.5 -> leaf 0 (value 0); else x1 <= 0.5 -> 1, else 3.
    # volumes 1/2, 1/4, 1/4; mean 1; variance 1/2 * 1 + 1/4 * 0 + 1/4 * 4 = 1.5.
    # marginal of x0: 0 on [0, .5), (1 + 3) / 2 = 2 on [.5, 1]: variance 1.
    # marginal of x1: (0 + 1) / 2 on [0, .5), (0 + 3) / 2 on [.5, 1]: variance 0.25.
    left = [1, -1, 3, -1, -1]
    right = [2, -1, 4, -1, -1]
    feature = [0, -2, 1, -2, -2]
    threshold = [0.5, -2, 0.5, -2, -2]
    value = [1.0, 0.0, 2.0, 1.0, 3.0]
    eff, total = P.tree_main_effects(left, right, feature, threshold, value, 2)
    assert total == pytest.approx(1.5)
    assert eff == pytest.approx([1.0, 0.25])


def test_param_importances_find_the_parameter_that_matters():
    pytest.importorskip("sklearn")
    space = hp.Space({"a": hp.Float(0, 1), "b": hp.Float(0, 1), "c": hp.Categorical(["u", "v", "w"]),
                      "d": hp.Float(0, 1, condition={"c": "u"})})
    st = hp.Study(space, seed=0)
    st.optimize(lambda t: 10 * t.params["a"] + 0.5 * t.params["b"], n_trials=80)
    imp = P.param_importances(st, n_trees=32)
    assert list(imp) == ["a", "b", "c"]          # d is conditional: left out
    assert imp["a"] > 0.9 and imp["c"] < 0.03
    assert sum(imp.values()) == pytest.approx(1.0)
    raw = P.param_importances(st, n_trees=32, normalize=False)
    assert 0.9 < raw["a"] <= 1.0 and sum(raw.values()) <= 1.0 + 1e-9
    fig = P.plot_param_importances(st, n_trees=8)
    assert "left out (conditional): d" in fig.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="n_trees"):
        P.param_importances(st, n_trees=0)


BLOCK = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in {NAMES}:\n"
    "            raise ImportError('blocked ' + name)\n"
    "sys.meta_path.insert(0, Block())\n"
    "import hpcore as hp\n"
    "from hpcore import plot as P\n"
    "st = hp.Study(hp.Space({{'x': hp.Float(0, 1), 'y': hp.Float(0, 1)}}), seed=0)\n"
    "st.optimize(lambda t: t.params['x'], n_trials=5)\n"
    "try:\n"
    "    {CALL}\n"
    "except ImportError as e:\n"
    "    print(e)\n"
)


@pytest.mark.parametrize("names,call,needle", [
    ("{'matplotlib'}", "P.plot_slice(st)", "matplotlib"),
    ("{'sklearn'}", "P.param_importances(st)", "scikit-learn"),
])
def test_missing_optional_package_is_named(names, call, needle):
    code = BLOCK.format(NAMES=names, CALL=call)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert needle in out.stdout and "pip install" in out.stdout
