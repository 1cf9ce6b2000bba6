"""optimize(show_progress=True): a bar on a terminal, nothing otherwise."""
import io

import pytest

import hpcore as hp
from hpcore import _progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def study(direction="minimize"):
    return hp.Study(hp.Space({"x": hp.Float(0, 1)}), direction=direction, seed=0)


def test_off_when_stdout_is_not_a_terminal(capsys):
    st = study()
    st.optimize(lambda t: t.params["x"], n_trials=4, show_progress=True)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert len(st.trials) == 4


def test_bar_counts_trials_and_shows_the_best_value_fallback():
    st = study("maximize")
    term = Terminal()
    bar = _progress.ProgressBar(st, total=5, stream=term, use_tqdm=False)
    assert bar

    def objective(t):
        if t.number == 1:
            raise hp.TrialPruned()
        if t.number == 2:
            raise RuntimeError("boom")
        return t.params["x"]

    for _ in range(5):
        trial = st.ask()
        try:
            frozen = st.tell(trial, objective(trial))
        except hp.TrialPruned:
            frozen = st.tell(trial, state=hp.TrialState.PRUNED)
        except RuntimeError as exc:
            frozen = st.tell(trial, exc)
        st.after_trial(frozen, [], bar)
    bar.close()
    text = term.getvalue()
    last = text.rstrip("\n").split("\r")[-1]
    assert "5/5 trials" in last and "[" + "#" * 24 + "]" in last
    assert f"best={st.best_value:.6g}" in last
    assert "pruned=1" in last and "failed=1" in last
    assert text.endswith("\n")


def test_tqdm_bar_when_installed():
    pytest.importorskip("tqdm")
    st = study()
    term = Terminal()
    with _progress.ProgressBar(st, total=3, stream=term) as bar:
        assert bar._tqdm is not None
        for _ in range(3):
            trial = st.ask()
            st.after_trial(st.tell(trial, trial.params["x"]), [], bar)
    assert "3/3" in term.getvalue() and f"best={st.best_value:.6g}" in term.getvalue()


def test_progress_bar_factory_respects_the_flag_and_the_terminal():
    st = study()
    assert not _progress.progress_bar(st, False, 3, stream=Terminal())
    assert not _progress.progress_bar(st, True, 3, stream=io.StringIO())
    bar = _progress.progress_bar(st, True, 3, stream=Terminal())
    assert isinstance(bar, _progress.ProgressBar)
    bar.close()
    with pytest.raises(TypeError, match="show_progress"):
        st.optimize(lambda t: 0.0, n_trials=1, show_progress="yes")


def test_multi_objective_bar_shows_the_front_size():
    st = hp.Study(hp.Space({"x": hp.Float(0, 1)}), directions=["minimize", "minimize"], seed=0)
    term = Terminal()
    bar = _progress.ProgressBar(st, total=2, stream=term, use_tqdm=False)
    for _ in range(2):
        t = st.ask()
        x = t.params["x"]
        bar.update(st.tell(t, (x, 1 - x)))
    assert "pareto=2" in term.getvalue()
