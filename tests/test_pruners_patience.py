"""PatiencePruner, ThresholdPruner and CompositePruner against hand-computed cases."""
import math

import pytest

import hpcore as hp
from hpcore.trial import TrialState


def space():
    return hp.Space({"x": hp.Float(0.0, 1.0)})


def decisions(pruner, values, direction="minimize", steps=None):
    """Report ``values`` for one trial of a fresh study; the pruner's verdict after each."""
    study = hp.Study(space(), pruner=pruner, direction=direction, seed=0)
    trial = study.ask()
    out = []
    for i, v in enumerate(values):
        trial.report(i if steps is None else steps[i], v)
        out.append(trial.should_prune())
    return out


# ------------------------------------------------------------------ PatiencePruner
def test_patience_min_delta_docstring_case():
    # 0.95 and 0.92 are not below 1.0 - 0.1: two stale reports -> prune at the third
    assert decisions(hp.PatiencePruner(2, min_delta=0.1), [1.0, 0.95, 0.92]) == [False, False, True]
    # without min_delta both are improvements
    assert decisions(hp.PatiencePruner(2), [1.0, 0.95, 0.92]) == [False, False, False]


def test_patience_improvement_resets_the_count():
    # stale counts 0, 1, 0, 1, 2
    assert decisions(hp.PatiencePruner(2), [1.0, 1.1, 0.9, 1.0, 1.0]) == [False] * 4 + [True]


def test_patience_is_direction_aware():
    # maximize: equal is not better; stale 0, 0, 1, 2
    assert decisions(hp.PatiencePruner(2), [0.5, 0.6, 0.6, 0.6], "maximize") == [False] * 3 + [True]
    # the same decreasing curve is improving when minimized and stale when maximized
    curve = [3.0, 2.0, 1.0]
    assert decisions(hp.PatiencePruner(2), curve, "minimize") == [False, False, False]
    assert decisions(hp.PatiencePruner(2), curve, "maximize") == [False, False, True]


def test_patience_nan_is_not_an_improvement():
    assert decisions(hp.PatiencePruner(1), [math.nan]) == [True]
    # best 1.0, then NaN (stale 1), NaN (stale 2)
    assert decisions(hp.PatiencePruner(2), [1.0, math.nan, math.nan]) == [False, False, True]


def test_patience_warmup_counts_but_never_prunes():
    # stale counts 0, 1, 2 at steps 0-2 (warm-up), 0 at step 3, 1 at step 4
    p = hp.PatiencePruner(1, warmup_steps=3)
    assert decisions(p, [1.0, 2.0, 3.0, 0.5, 0.6]) == [False, False, False, False, True]
    # a stale run through the warm-up is pruned at its first step >= warmup_steps
    p = hp.PatiencePruner(2, warmup_steps=3)
    assert decisions(p, [1.0, 1.0, 1.0, 1.0]) == [False, False, False, True]


def test_patience_decision_is_final():
    assert decisions(hp.PatiencePruner(1), [1.0, 1.0, 0.1, 0.01]) == [False, True, True, True]


def test_patience_trials_are_independent_when_interleaved():
    study = hp.Study(space(), pruner=hp.PatiencePruner(2), seed=0)
    a, b = study.ask(), study.ask()
    seen = []
    for step, (va, vb) in enumerate([(1.0, 5.0), (0.5, 5.0), (0.4, 5.0), (0.4, 4.0)]):
        a.report(step, va)
        b.report(step, vb)
        seen.append((a.should_prune(), b.should_prune()))
    # b: stale 0, 1, 2 -> pruned at step 2, and stays pruned although 4.0 improves
    assert seen == [(False, False), (False, False), (False, True), (False, True)]
    assert study.pruner.stale_reports(a.number) == 1
    assert study.pruner.stale_reports(b.number) == 0


def test_patience_rebuilds_its_state_from_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = hp.Study(space(), storage=url, name="p", pruner=hp.PatiencePruner(3), seed=0)
    trial = study.ask()
    for step, v in enumerate([1.0, 1.0, 1.0]):
        trial.report(step, v)
        assert not trial.should_prune()
    # another process (here: a fresh pruner and study on the same file) sees stale = 2
    again = hp.load_study("p", url, pruner=hp.PatiencePruner(3))
    assert again.pruner.on_report(again, trial.number, 2, 1.0) is False
    trial.report(3, 1.0)   # stale 3 in the first study
    assert trial.should_prune()
    assert again.pruner.on_report(again, trial.number, 3, 1.0) is True


def test_patience_rejects_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        hp.PatiencePruner(0)
    with pytest.raises(TypeError, match="patience"):
        hp.PatiencePruner(1.5)
    with pytest.raises(TypeError, match="patience"):
        hp.PatiencePruner(True)
    with pytest.raises(ValueError, match="min_delta"):
        hp.PatiencePruner(2, min_delta=-0.1)
    with pytest.raises(ValueError, match="min_delta"):
        hp.PatiencePruner(2, min_delta=math.nan)
    with pytest.raises(ValueError, match="min_delta"):
        hp.PatiencePruner(2, min_delta=math.inf)
    with pytest.raises(ValueError, match="warmup_steps"):
        hp.PatiencePruner(2, warmup_steps=-1)
    study = hp.Study(space(), directions=["minimize", "minimize"], pruner=hp.PatiencePruner(2))
    trial = study.ask()
    with pytest.raises(ValueError, match="single-objective"):
        trial.report(0, 1.0)


# ------------------------------------------------------------------ ThresholdPruner
def test_threshold_band_is_inclusive_and_nan_prunes():
    p = hp.ThresholdPruner(lower=0.0, upper=1.0)
    study = hp.Study(space(), seed=0)
    got = [p.on_report(study, 0, i, v) for i, v in enumerate([0.5, 1.0, 0.0, 1.5, -0.1, math.nan])]
    assert got == [False, False, False, True, True, True]
    only_upper = hp.ThresholdPruner(upper=10.0)
    assert [only_upper.on_report(study, 0, 0, v) for v in (-1e9, 10.0, 10.5, math.inf)] == \
        [False, False, True, True]
    only_lower = hp.ThresholdPruner(lower=0.9)
    assert [only_lower.on_report(study, 0, 0, v) for v in (0.95, 0.5, -math.inf)] == [False, True, True]


def test_threshold_in_a_study_with_warmup():
    assert decisions(hp.ThresholdPruner(upper=2.0, warmup_steps=2), [5.0, 5.0, 1.0, 3.0]) == \
        [False, False, False, True]


def test_threshold_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lower or upper"):
        hp.ThresholdPruner()
    with pytest.raises(ValueError, match="lower"):
        hp.ThresholdPruner(lower=2.0, upper=1.0)
    with pytest.raises(ValueError, match="upper"):
        hp.ThresholdPruner(upper=math.nan)
    with pytest.raises(TypeError, match="lower"):
        hp.ThresholdPruner(lower="0")
    with pytest.raises(ValueError, match="warmup_steps"):
        hp.ThresholdPruner(upper=1.0, warmup_steps=-2)


# ------------------------------------------------------------------ CompositePruner
# Curves by trial number, steps 1..9, minimized.  ASHA(1, 9, eta=3) has rungs at steps
# 1, 3 and 9; at rungs 1 and 3 a trial continues iff it ranks in the top
# max(1, count // 3) of the results there (its own included); reaching step 9 is the
# end.  Worked out by hand, with PatiencePruner(2):
#   t0 improves by 0.1 per step, first into every rung: COMPLETE under every pruner.
#   t1 is flat at 2.0: 2nd of 2 in rung 1 -> ASHA stops it at step 1; patience at 3.
#   t2 is flat at 0.5: best in rungs 1 and 3 -> ASHA lets it finish; patience stops it
#      at step 3 (stale 1, 2 at steps 2, 3).
#   t3 is 0.4, 0.35, 0.6, then 0.3 - 0.01 (s - 4): 2nd of 3 in rung 3 (0.8, 0.5, 0.6)
#      -> ASHA stops it at step 3; patience never (stale 1 at step 3, then improving).
CURVES = {
    0: [1.0 - 0.1 * (s - 1) for s in range(1, 10)],
    1: [2.0] * 9,
    2: [0.5] * 9,
    3: [0.4, 0.35, 0.6] + [0.3 - 0.01 * (s - 4) for s in range(4, 10)],
}


def run_curves(pruner):
    def objective(trial):
        curve = CURVES[trial.number]
        for step, v in enumerate(curve, start=1):
            trial.report(step, v)
            if trial.should_prune():
                raise hp.TrialPruned()
        return curve[-1]

    study = hp.Study(space(), pruner=pruner, seed=0)
    study.optimize(objective, n_trials=len(CURVES))
    return [(t.state, t.last_step) for t in study.trials]


C, P = TrialState.COMPLETE, TrialState.PRUNED


def test_composite_with_asha_stops_when_either_says_stop():
    assert run_curves(hp.ASHA(1, 9, eta=3)) == [(C, 9), (P, 1), (C, 9), (P, 3)]
    assert run_curves(hp.PatiencePruner(2)) == [(C, 9), (P, 3), (P, 3), (C, 9)]
    expected = [(C, 9), (P, 1), (P, 3), (P, 3)]
    assert run_curves(hp.any_of(hp.ASHA(1, 9, eta=3), hp.PatiencePruner(2))) == expected
    assert run_curves(hp.CompositePruner([hp.PatiencePruner(2), hp.ASHA(1, 9, eta=3)])) == expected


def test_composite_with_threshold_and_hyperband():
    # upper=0.55 stops t0 (1.0) and t1 (2.0) at step 1 and t3 at its 0.6 at step 3;
    # patience stops t2 at step 3
    got = run_curves(hp.any_of(hp.ThresholdPruner(upper=0.55), hp.PatiencePruner(2)))
    assert got == [(P, 1), (P, 1), (P, 3), (P, 3)]
    # Hyperband inside a composite keeps its own fold (same verdicts as alone)
    hb = run_curves(hp.Hyperband(1, 9, eta=3))
    assert run_curves(hp.any_of(hp.Hyperband(1, 9, eta=3), hp.ThresholdPruner(upper=1e9))) == hb


def test_composite_flattens_and_validates():
    a, b, c = hp.PatiencePruner(2), hp.ThresholdPruner(upper=1.0), hp.MedianPruner()
    nested = hp.any_of(a, hp.any_of(b, c))
    assert nested.pruners == [a, b, c]
    assert "PatiencePruner(patience=2" in repr(nested)
    with pytest.raises(ValueError, match="at least one"):
        hp.CompositePruner([])
    with pytest.raises(TypeError, match="BasePruner"):
        hp.CompositePruner([a, "asha"])
    with pytest.raises(TypeError, match="list of pruners"):
        hp.CompositePruner(a)
    with pytest.raises(TypeError, match="iterable"):
        hp.CompositePruner(3)


def test_pruners_round_trip_through_their_stored_config():
    from hpcore._persist import from_config, to_config

    comp = hp.any_of(hp.ASHA(1, 9, eta=3), hp.PatiencePruner(2, min_delta=0.5, warmup_steps=1),
                     hp.ThresholdPruner(lower=-1.0, upper=math.inf))
    cfg = to_config(comp)
    again = from_config(cfg, hp.BasePruner)
    assert isinstance(again, hp.CompositePruner)
    assert repr(again) == repr(comp)
    assert to_config(again) == cfg
    assert run_curves(again) == run_curves(hp.any_of(hp.ASHA(1, 9, eta=3), hp.PatiencePruner(2, 0.5, 1),
                                                     hp.ThresholdPruner(-1.0, math.inf)))
