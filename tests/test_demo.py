"""`hpcore demo`: the short default compares every method on the same budget."""
from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from hpcore import _demo  # noqa: E402


def test_every_method_gets_the_same_budget():
    for n_trials in (_demo.N_TRIALS, _demo.N_TRIALS_FULL):
        names = [name for name, _, _ in _demo.methods(0, n_trials)]
        assert names[:3] == ["grid", "random (2 processes)", "sobol"]
        grid = _demo.methods(0, n_trials)[0][1]
        assert grid.n_points ** 2 == n_trials  # 2 parameters: the grid is exactly the budget
    assert _demo.N_TRIALS_FULL > _demo.N_TRIALS


def test_short_run_writes_a_table_and_a_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    studies = _demo.run(str(tmp_path), seed=1, n_trials=4)
    assert set(studies) >= {"grid", "random (2 processes)", "sobol"}
    for study in studies.values():
        assert len(study.trials) == 4
        assert 0.5 < study.best_value <= 1.0
    out = capsys.readouterr().out
    assert "4 trials per method" in out and "accuracy" in out
    assert (tmp_path / "convergence.png").stat().st_size > 1000


@pytest.mark.parametrize("bad", [3, 0, 2.5, True, "16"])
def test_n_trials_is_checked(bad, tmp_path):
    with pytest.raises(ValueError, match="n_trials"):
        _demo.run(str(tmp_path), n_trials=bad)
