"""hpcore.automl: every branch of the pipeline space fits, budgets hold, pipeline errors
become failed trials, warm start / refit / ensemble work."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import hpcore as hp  # noqa: E402
from hpcore.automl import (AutoML, available_estimators, build_pipeline,  # noqa: E402
                           caruana_ensemble, pipeline_space)
from hpcore.automl._metrics import METRICS, ROW_METRICS, get_metric  # noqa: E402
from hpcore.automl.defaults import default_configs  # noqa: E402
from hpcore.automl.ensemble import ensemble_gain, prefer_ensemble  # noqa: E402
from hpcore.automl.estimator import (_plan_refit, _row_scale, _stages,  # noqa: E402
                                     overrun_allowance)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(task, n=60, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if task == "classification":
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 1.0)
    else:
        y = X[:, 0] * 2.0 - X[:, 1] + 0.1 * rng.normal(size=n)
    return X, y


def _fill(space: hp.Space, fixed: dict) -> dict:
    """A valid configuration: ``fixed`` choices, every other active parameter at its
    cheapest value (low end; first categorical choice)."""
    cfg: dict = {}
    for name in space.order:
        if not space.is_active(name, cfg):
            continue
        dist = space[name]
        if name in fixed:
            cfg[name] = fixed[name]
        elif isinstance(dist, hp.Categorical):
            cfg[name] = dist.choices[0]
        else:
            cfg[name] = dist.low
    return space.validate({k: cfg[k] for k in space.params if k in cfg})


def _branches(space: hp.Space):
    """Every estimator x feature step (RFE with both rankers), and every value of every
    other categorical parameter under each estimator that activates it."""
    est = space["estimator"].choices
    feats = [{"features": f} for f in ("none", "pca", "kbest")] + \
        [{"features": "rfe", "rfe_ranker": r} for r in ("linear", "tree")]
    # every estimator once, every feature step under a cheap and a tree estimator
    out = [{"estimator": e, "features": "none"} for e in est]
    out += [{"estimator": e, **f} for e, f in itertools.product(est[:1] + ("rf",), feats)]
    for name, dist in space.params.items():
        if not isinstance(dist, hp.Categorical) or name in ("estimator", "features",
                                                            "rfe_ranker"):
            continue
        for e in est:
            if name == "scaler" and e not in ("knn", est[0]):
                continue                 # the scaler step is the same for every model
            for v in dist.choices:
                fixed = {"estimator": e, "features": "none", name: v}
                if name in ("mlp_lr_schedule", "mlp_momentum"):
                    fixed["mlp_solver"] = "sgd"
                if name == "logreg_l1_ratio":
                    fixed["logreg_penalty"] = "elasticnet"
                cfg = _fill(space, fixed) if _active(space, name, fixed) else None
                if cfg is not None and cfg.get(name) == v:
                    out.append(fixed)
    return out


def _active(space, name, fixed) -> bool:
    cfg = {}
    for n in space.order:
        if space.is_active(n, cfg):
            d = space[n]
            cfg[n] = fixed.get(n, d.choices[0] if isinstance(d, hp.Categorical) else d.low)
    return name in cfg


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_branch_of_the_space_fits(task):
    space = pipeline_space(task)
    X, y = _data(task)
    branches = _branches(space)
    assert len(branches) > 30
    seen = {n: set() for n, d in space.params.items() if isinstance(d, hp.Categorical)}
    for fixed in branches:
        cfg = _fill(space, fixed)
        for n in seen:
            if n in cfg:
                seen[n].add(cfg[n])
        pipe = build_pipeline(cfg, task, X.shape[0], X.shape[1], seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(X, y)
            pred = pipe.predict(X)
        assert pred.shape == (len(X),), cfg
        assert np.all(np.isfinite(np.asarray(pred, dtype=float))), cfg
    for n, vals in seen.items():         # every categorical value was drawn and fitted
        assert vals == set(space[n].choices), (n, vals)


def test_space_rejects_bad_input_and_offers_optional_models():
    with pytest.raises(ValueError, match="task"):
        pipeline_space("ranking")
    with pytest.raises(ValueError, match="estimators"):
        pipeline_space("classification", ["ridge"])
    est = available_estimators("classification")
    for mod, name in (("lightgbm", "lgbm"), ("xgboost", "xgb")):
        try:
            __import__(mod)
            assert name in est
        except ImportError:
            assert name not in est
    space = pipeline_space("regression", ["ridge", "rf"])
    assert [c["estimator"] for c in default_configs(space)] == ["ridge", "rf"]
    # on larger data the boosters and forests come before the kernel models
    from hpcore.automl.defaults import LARGE_ROWS

    space = pipeline_space("classification", ["svc", "rf", "hgb", "logreg", "et"])
    assert [c["estimator"] for c in default_configs(space, LARGE_ROWS - 1)] == \
        ["logreg", "svc", "rf", "hgb", "et"]
    assert [c["estimator"] for c in default_configs(space, LARGE_ROWS)] == \
        ["logreg", "hgb", "et", "rf", "svc"]
    # random draws of the whole space are valid configurations
    s = pipeline_space("classification")
    rng = np.random.default_rng(0)
    for _ in range(200):
        s.validate(s.decode_random(rng.random(len(s.params))))


def test_fidelity_ladder():
    small = _stages(100, 5)
    assert small[0][0] is None and small[-1][0] == 9
    assert [f for _, f, _ in small] == [0, 1, 2, 3, 4]
    big = _stages(3000, 5)
    assert big[:2] == [(1, 0, 333), (3, 0, 1000)]
    steps = [s for s, _, _ in big]
    assert steps == sorted(set(steps)) and steps[-1] == 9


def test_caruana_ensemble_beats_or_equals_the_best_member():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 3, size=n)
    truth = np.eye(3)[y]
    members = [np.clip(truth + rng.normal(0, s, size=(n, 3)), 0, None) for s in (0.7, 0.8, 0.9)]
    score, _ = get_metric("accuracy", "classification")
    half = slice(0, n // 2)
    w, s = caruana_ensemble([m[half] for m in members], y[half], score, n_iterations=30)
    assert np.isclose(w.sum(), 1.0) and np.all(w >= 0)
    single = [score(y[half], m[half]) for m in members]
    assert s >= max(single)
    # held out: the weighted average is at least as good as the best single member
    rest = slice(n // 2, n)
    ens = sum(wi * m[rest] for wi, m in zip(w, members))
    best = int(np.argmax(single))
    assert score(y[rest], ens) >= score(y[rest], members[best][rest])
    assert (w > 0).sum() >= 2
    with pytest.raises(ValueError, match="library"):
        caruana_ensemble([], y, score)
    with pytest.raises(ValueError, match="shape"):
        caruana_ensemble([members[0], members[0][:, :2]], y, score)


def _votes(y, right, n_classes=3):
    """Probabilities that put 0.9 on the true class where ``right``, else on the next."""
    lab = np.where(right, y, (y + 1) % n_classes)
    return 0.1 / (n_classes - 1) * (1 - np.eye(n_classes)[lab]) + 0.9 * np.eye(n_classes)[lab]


def test_per_row_metrics_average_to_the_metric():
    rng = np.random.default_rng(1)
    n = 97
    yc = rng.integers(0, 3, size=n)
    P = rng.dirichlet(np.ones(3), size=n)
    yr = rng.normal(size=n)
    p = yr + rng.normal(0, 0.5, size=n)
    for name, rows in ROW_METRICS.items():
        task, fn = METRICS[name]
        yy, pp = (yc, P) if task == "classification" else (yr, p)
        assert np.mean(rows(yy, pp)) == pytest.approx(fn(yy, pp), abs=1e-12), name
    assert ROW_METRICS["r2"](np.ones(4), np.zeros(4)) is None     # no split of R^2


def test_ensemble_kept_only_when_its_gain_exceeds_the_paired_noise():
    score, _ = get_metric("accuracy", "classification")
    rows = ROW_METRICS["accuracy"]
    rng = np.random.default_rng(0)
    n = 133
    y = rng.integers(0, 3, size=n)
    single_right = np.ones(n, bool)
    single_right[:3] = False                             # the single model: 3 errors
    single = _votes(y, single_right)
    # noise level: one more row right, none worse (gain == its standard error at any n)
    ens_right = single_right.copy()
    ens_right[0] = True
    g, se = ensemble_gain(y, _votes(y, ens_right), single, score, per_row=rows)
    assert g == pytest.approx(1 / n) and se == pytest.approx(1 / n)
    assert not prefer_ensemble(g, se)
    # noise: 3 rows fixed, 2 others broken
    ens_right = single_right.copy()
    ens_right[:3] = True
    ens_right[3:5] = False
    g, se = ensemble_gain(y, _votes(y, ens_right), single, score, per_row=rows)
    assert g == pytest.approx(1 / n) and g < se and not prefer_ensemble(g, se)
    # a real gain: the single model has 12 errors, the ensemble fixes 9 and breaks 1
    single_right = np.ones(n, bool)
    single_right[:12] = False
    ens_right = single_right.copy()
    ens_right[:9] = True
    ens_right[20] = False
    single = _votes(y, single_right)
    g, se = ensemble_gain(y, _votes(y, ens_right), single, score, per_row=rows)
    assert g == pytest.approx(8 / n) and g > 2 * se and prefer_ensemble(g, se)
    # the bootstrap (a metric that is not a mean over rows) agrees with the paired SE
    bal, _ = get_metric("balanced_accuracy", "classification")
    gb, seb = ensemble_gain(y, _votes(y, ens_right), single, score, n_boot=400, seed=3)
    assert gb == pytest.approx(g) and seb == pytest.approx(se, rel=0.25)
    gb, seb = ensemble_gain(y, _votes(y, ens_right), single, bal, n_boot=400, seed=3)
    assert prefer_ensemble(gb, seb)
    ens_right = single_right.copy()
    ens_right[:3] = True                                 # 3 rows fixed, 2 broken
    ens_right[12:14] = False
    gb, seb = ensemble_gain(y, _votes(y, ens_right), single, bal, n_boot=400, seed=3)
    assert gb > 0 and not prefer_ensemble(gb, seb)
    # a regression gain that is consistent over rows is real however small
    yr = rng.normal(size=n)
    s_pred = yr + rng.normal(0, 1.0, size=n)
    r2, _ = get_metric("r2", "regression")
    g, se = ensemble_gain(yr, 0.9 * s_pred + 0.1 * yr, s_pred, r2,
                          per_row=ROW_METRICS["r2"])
    assert g > 0 and prefer_ensemble(g, se)
    assert not prefer_ensemble(0.0, 0.0) and not prefer_ensemble(float("nan"), 0.0)
    with pytest.raises(ValueError, match="shape"):
        ensemble_gain(y, single, single[:, :2], score)
    with pytest.raises(ValueError, match="n_boot"):
        ensemble_gain(y, single, single, score, n_boot=1)


def test_automl_validates_parameters():
    X, y = _data("classification")
    for kw, match in [({"task": "x"}, "task"), ({"time_budget": 0}, "time_budget"),
                      ({"cv": 1}, "cv"), ({"n_jobs": 0}, "n_jobs"),
                      ({"metric": "r2"}, "metric"), ({"metric": "nope"}, "metric")]:
        with pytest.raises(ValueError, match=match):
            AutoML(**kw).fit(X, y)
    with pytest.raises(TypeError, match="warm_start"):
        AutoML(warm_start=object()).fit(X, y)
    with pytest.raises(ValueError, match="not fitted"):
        AutoML().predict(X)


@pytest.fixture(scope="module")
def fitted():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))
    tr, te = idx[:400], idx[400:]
    m = AutoML(time_budget=8, cv=3, seed=0, estimators=["logreg", "knn", "rf", "svc"])
    m.fit(X[tr], y[tr])
    return m, X, y, tr, te


def test_fit_predict_score_and_budget(fitted):
    m, X, y, tr, te = fitted
    assert m.fit_time_ <= 8 + 2.0          # overrun at most max(10%, 2 s)
    pred = m.predict(X[te])
    assert set(np.unique(pred)) <= set(m.classes_)
    P = m.predict_proba(X[te])
    assert P.shape == (len(te), 2) and np.allclose(P.sum(axis=1), 1.0)
    acc = m.score(X[te], y[te])
    assert acc == pytest.approx(np.mean(pred == y[te]))
    assert acc > 0.85
    lb = m.leaderboard_
    rows = lb.to_dict("records") if hasattr(lb, "to_dict") else lb
    assert rows[0]["state"] == "COMPLETE"
    assert {"estimator", "params", "score", "fit_time", "state"} <= set(rows[0])
    first = [r for r in rows if r["number"] == 0][0]
    assert first["params"] == default_configs(m.study_.space, len(tr))[0]   # defaults first
    assert m.best_pipeline_.predict(X[te]).shape == (len(te),)
    assert 1 <= len(m.ensemble_) and np.isclose(sum(w for w, _ in m.ensemble_), 1.0)
    if len(m.ensemble_) > 1:                # an ensemble is used only on a real gain
        assert m.ensemble_gain_ is not None and prefer_ensemble(*m.ensemble_gain_)


def test_refit_and_warm_start(fitted):
    m, X, y, tr, te = fitted
    best = dict(m.best_params_)
    m2 = AutoML(time_budget=6, cv=3, seed=1, warm_start=m,
                estimators=["logreg", "knn", "rf", "svc"]).fit(X[te], y[te])
    rows = m2.leaderboard_.to_dict("records")
    first = [r for r in rows if r["number"] == 0][0]
    assert first["params"] == best           # re-tuning starts from the previous best
    # refit retrains the chosen pipelines on new data without a search
    n_trials = len(m.study_.trials)
    m.refit(X[te], y[te])
    assert len(m.study_.trials) == n_trials and m.best_params_ == best
    assert m.score(X[te], y[te]) >= 0.85


def _bad_metric(y_true, y_pred):
    return float(np.mean(y_true == y_pred))


def test_pipeline_error_is_a_failed_trial_and_stops_at_budget():
    X, y = _data("classification", n=40)
    space = pipeline_space("classification", ["logreg", "knn"])
    prev = hp.Study(space, direction="maximize")
    bad = dict(default_configs(space)[1], knn_k=50)     # k > rows: KNN raises
    prev.tell(prev.ask(params=bad), 1.0)
    m = AutoML(time_budget=6, cv=2, estimators=["logreg", "knn"], warm_start=prev,
               metric=_bad_metric, ensemble=False).fit(X, y)
    rows = m.leaderboard_.to_dict("records")
    failed = [r for r in rows if r["number"] == 0][0]
    assert failed["state"] == "FAIL"
    assert "n_neighbors" in failed["error"].lower() or "n_samples" in failed["error"].lower()
    assert m.study_.trials[0].state == hp.TrialState.FAIL
    assert m.fit_time_ <= 6 + 2.0
    assert m.best_score_ > 0.5


def test_slow_trials_are_abandoned_at_the_budget():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=6000, n_features=40, random_state=0)
    m = AutoML(time_budget=7, cv=5, estimators=["logreg", "mlp"], ensemble=False).fit(X, y)
    assert m.fit_time_ <= 7 + 2.0
    rows = m.leaderboard_.to_dict("records")
    assert any(r["state"] == "COMPLETE" for r in rows)


def test_regression_and_one_call_search():
    from hpcore.automl import search

    X, y = _data("regression", n=120)
    m = search(X, y, task="regression", time_budget=6, cv=3, estimators=["ridge", "knn"])
    assert m.score(X, y) > 0.8
    assert m.fit_time_ <= 6 + 2.0
    with pytest.raises(AttributeError):
        m.predict_proba(X)


def test_example_quick():
    env = dict(os.environ, MPLBACKEND="Agg")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "python", "automl_tabular.py"),
                        "--quick"], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "test accuracy" in p.stdout


def test_workers_are_forked_only_without_other_threads():
    import threading

    from hpcore.automl._worker import fork_safe, make_context

    if not sys.platform.startswith("linux"):
        assert not fork_safe()
        return
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        assert not fork_safe()
        assert make_context(fork=True).get_start_method() != "fork"
    finally:
        stop.set()
        t.join()
    if threading.active_count() == 1:
        assert make_context(fork=True).get_start_method() == "fork"
    assert make_context().get_start_method() != "fork"


def test_inline_stage_that_cannot_fit_is_not_started():
    """A warm-start pipeline evaluated in-process stops before a stage whose estimated
    time exceeds the time left: PRUNED at its last report, its time spent bounded."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=3000, n_features=20, random_state=0)
    m = AutoML(time_budget=5, cv=5, estimators=["rf"], ensemble=False)
    m._validate()
    Xp, yp = m._prepare(X, y)
    m._impute, m._n_rows = False, len(Xp)
    m._score_fn, m.metric_name_ = get_metric(None, "classification")
    m._n_classes = 2
    space = pipeline_space("classification", ["rf"])
    m.study_ = hp.Study(space, direction="maximize")
    folds = m._folds(Xp, yp)
    m._stage_plan = _stages(min(len(tr) for tr, _ in folds), 5)
    m._oof, m._value, m._params, m._fold_fit, m._records = {}, {}, {}, {}, []
    t0 = time.monotonic()
    # time for the first probe (1/9 of a fold) only, not for the next stages
    m._run_inline(default_configs(space)[0], Xp, yp, folds, t0 + 0.05, {})
    rec = m._records[-1]
    assert rec["state"] == "PRUNED" and "time left" in rec["error"]
    assert m.study_.trials[0].state == hp.TrialState.PRUNED
    assert m.study_.trials[0].intermediate_values.keys() == {1}
    assert time.monotonic() - t0 < 3.0
    m._run_inline(default_configs(space)[0], Xp, yp, folds, time.monotonic() + 60, {})
    assert m._records[-1]["state"] == "COMPLETE"
    assert sorted(m.study_.trials[1].intermediate_values) == [s for s, _, _ in m._stage_plan]


def test_refit_estimate_scales_the_slowest_fold_by_the_estimator_family():
    assert overrun_allowance(20) == 2.0 and overrun_allowance(60) == pytest.approx(6.0)
    r = 1000 / 800
    assert _row_scale("logreg", 1000, 800) == pytest.approx(r)
    assert _row_scale("svc", 1000, 800) == pytest.approx(r * r)
    assert _row_scale("rf", 1000, 800) == pytest.approx(r * np.log(1000) / np.log(800))
    assert _row_scale("rf", 1000, 800) > _row_scale("knn", 1000, 800)
    m = AutoML(cv=5)
    m._n_rows, m._n_fold_rows = 1000, 800
    m._params = {0: {"estimator": "rf"}, 1: {"estimator": "logreg"}}
    m._fold_fit = {0: 2.0, 1: 0.5}           # the slowest fold's seconds
    assert m._refit_estimate(0) == pytest.approx(1.3 * 2.0 * _row_scale("rf", 1000, 800))
    assert m._refit_estimate(1) == pytest.approx(1.3 * 0.5 * r)
    assert m._refit_estimate(7) == 0.0       # not a completed trial


def test_refit_plan_never_starts_a_lead_that_cannot_finish():
    est = {0: 5.0, 1: 0.5, 2: 3.0, 3: 0.05}
    ranked = [0, 2, 1, 3]                    # best CV score first
    # the lead fits in deadline + slack: the chosen model as it is
    plan, lead, fb = _plan_refit([(0.6, 0), (0.4, 1)], ranked, est, 10.0, 16.0, 1.0, 0.2)
    assert plan == [(0.6, 0), (0.4, 1)] and lead == 0 and fb == 3
    # it does not: the heaviest member that does leads (the ensemble loses the other)
    plan, lead, fb = _plan_refit([(0.6, 0), (0.4, 1)], ranked, est, 10.0, 12.0, 1.0, 0.2)
    assert plan == [(0.4, 1)] and lead == 1 and fb == 3
    # no member fits: the best-ranked completed pipeline that does, alone
    plan, lead, fb = _plan_refit([(1.0, 0)], ranked, est, 10.0, 12.5, 1.0, 0.2)
    assert plan == [(1.0, 2)] and lead == 2
    plan, lead, fb = _plan_refit([(1.0, 0)], ranked, est, 10.0, 10.0, 1.0, 0.2)
    assert plan == [(1.0, 1)] and lead == 1 and fb == 3
    # nothing fits: the one with the smallest estimate, which is then its own fallback
    plan, lead, fb = _plan_refit([(1.0, 0)], ranked, est, 10.0, 8.0, 1.0, 0.2)
    assert plan == [(1.0, 3)] and lead == 3 and fb is None
    # no cheap pipeline: the fallback is the one with the smallest estimate
    plan, lead, fb = _plan_refit([(1.0, 0)], [0, 2], {0: 5.0, 2: 3.0}, 0.0, 9.0, 1.0, 0.2)
    assert lead == 0 and fb == 2


def test_refit_stopped_at_the_hard_deadline_falls_back(monkeypatch):
    """A final refit that hangs in its worker is stopped at time_budget + allowance -
    0.5 s; the model is then the in-process fallback (or the lead refitted here when it
    is the cheapest), never a crash or an unbounded wait."""
    import hpcore.automl._worker as W
    from hpcore.automl._worker import fork_safe

    if not fork_safe():
        pytest.skip("needs forked workers (Linux, no other thread)")
    X, y = _data("classification", n=120, d=6)
    parent, real = os.getpid(), W.fit_predict

    def hang_on_refit(params, Xf, yf, *a, **k):
        if os.getpid() != parent and len(Xf) == len(X):
            time.sleep(120)                  # the refit on all rows, in a worker
        return real(params, Xf, yf, *a, **k)

    monkeypatch.setattr(W, "fit_predict", hang_on_refit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = AutoML(time_budget=4, cv=3, estimators=["logreg", "knn", "rf"],
                   ensemble=False).fit(X, y)
    stopped = [r for r in m.refits_ if r["state"] == "stopped at the hard deadline"]
    fallback = [r for r in m.refits_ if r["state"] == "fallback"]
    assert len(stopped) == 1 and len(fallback) == 1, m.refits_
    assert m.fit_time_ <= 4 + overrun_allowance(4) + 1.0
    assert m.predict(X).shape == (len(X),) and m.score(X, y) > 0.5
    chosen = fallback[0]["number"]
    assert [p for _, p in m.ensemble_] == [m.study_.trials[chosen].params]
    if chosen != stopped[0]["number"]:
        assert any(issubclass(w.category, RuntimeWarning) and "did not fit" in
                   str(w.message) for w in caught)
        assert m.best_params_ == m.study_.trials[chosen].params
