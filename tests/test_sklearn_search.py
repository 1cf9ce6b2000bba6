"""HPSearchCV against GridSearchCV on the same data, and what GridSearchCV cannot do
(pruning, resuming from storage, Bayesian search)."""
import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import BaseEstimator, ClassifierMixin, clone  # noqa: E402
from sklearn.datasets import load_iris, make_classification  # noqa: E402
from sklearn.exceptions import FitFailedWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier  # noqa: E402
from sklearn.model_selection import (GridSearchCV, GroupKFold, KFold,  # noqa: E402
                                     cross_val_score)
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

import hpcore as hp  # noqa: E402
from hpcore.sklearn import HPSearchCV  # noqa: E402

X_IRIS, Y_IRIS = load_iris(return_X_y=True)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # tiny fits: a multithreaded BLAS only adds contention (5x slower on a busy machine)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
GRID = {"C": [0.01, 0.1, 1.0, 10.0], "fit_intercept": [True, False]}


def _lr():
    return LogisticRegression(max_iter=300)


def assert_same_results(ours, theirs, *, times=False):
    """cv_results_ of HPSearchCV equal GridSearchCV's: keys, params, masks, scores."""
    a, b = ours.cv_results_, theirs.cv_results_
    assert set(a) == set(b)
    assert a["params"] == b["params"]
    for k, vb in b.items():
        va = a[k]
        if k == "params" or ("time" in k and not times):
            continue
        if isinstance(vb, np.ma.MaskedArray):
            assert isinstance(va, np.ma.MaskedArray), k
            assert va.dtype == vb.dtype, k
            np.testing.assert_array_equal(va.mask, vb.mask)
            assert list(va.compressed()) == list(vb.compressed()), k
        elif k.startswith("rank_"):
            np.testing.assert_array_equal(va, vb)
        else:
            np.testing.assert_allclose(va, vb, rtol=0, atol=1e-12, err_msg=k)


class FailingClassifier(ClassifierMixin, BaseEstimator):
    """Fails to fit when ``parameter == FAIL`` (as scikit-learn's test helper)."""

    FAIL = 0

    def __init__(self, parameter=None):
        self.parameter = parameter

    def fit(self, X, y=None, sample_weight=None):
        if self.parameter == FailingClassifier.FAIL:
            raise ValueError("Failing classifier failed as required")
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def score(self, X, y):
        return float(self.parameter)


class CheckFitParams(ClassifierMixin, BaseEstimator):
    """Records that a per-sample fit parameter arrives split with the fold."""

    def __init__(self, a=0):
        self.a = a

    def fit(self, X, y, spam=None):
        assert spam is not None and len(spam) == len(X), "spam not split with X"
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


# ----------------------------------------------------------------- exhaustive = grid
@pytest.mark.parametrize("return_train_score", [False, True])
def test_exhaustive_grid_matches_grid_search(return_train_score):
    kw = dict(cv=3, return_train_score=return_train_score)
    ours = HPSearchCV(_lr(), GRID, **kw).fit(X_IRIS, Y_IRIS)
    theirs = GridSearchCV(_lr(), GRID, **kw).fit(X_IRIS, Y_IRIS)
    assert_same_results(ours, theirs)
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_index_ == theirs.best_index_
    assert ours.best_score_ == theirs.best_score_
    assert ours.n_splits_ == theirs.n_splits_ == 3
    assert ours.multimetric_ is False and ours.refit_time_ >= 0
    np.testing.assert_array_equal(ours.predict(X_IRIS), theirs.predict(X_IRIS))
    np.testing.assert_allclose(ours.predict_proba(X_IRIS), theirs.predict_proba(X_IRIS))
    np.testing.assert_allclose(ours.decision_function(X_IRIS), theirs.decision_function(X_IRIS))
    assert ours.score(X_IRIS, Y_IRIS) == theirs.score(X_IRIS, Y_IRIS)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.n_features_in_ == 4
    assert len(ours.study_.trials) == 8
    assert ours.study_.trials[0].user_attrs["hpsearch_cv"][0]["test_scores"][0] == \
        theirs.cv_results_["split0_test_score"][0]


def test_list_of_grids_and_object_values_match_grid_search():
    grid = [{"kernel": ["linear"], "C": [0.1, 1.0]},
            {"kernel": ["rbf"], "gamma": [0.01, 0.1], "C": np.array([1.0, 10.0])}]
    ours = HPSearchCV(SVC(), grid, cv=3).fit(X_IRIS, Y_IRIS)
    theirs = GridSearchCV(SVC(), grid, cv=3).fit(X_IRIS, Y_IRIS)
    assert_same_results(ours, theirs)
    assert ours.best_params_ == theirs.best_params_
    # estimators as values of a step
    pipe = Pipeline([("scale", StandardScaler()), ("clf", _lr())])
    grid2 = {"clf": [_lr(), DecisionTreeClassifier(random_state=0)], "scale": [None, StandardScaler()]}
    ours = HPSearchCV(pipe, grid2, cv=3).fit(X_IRIS, Y_IRIS)
    theirs = GridSearchCV(pipe, grid2, cv=3).fit(X_IRIS, Y_IRIS)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               theirs.cv_results_["mean_test_score"], atol=1e-12)
    assert repr(ours.best_params_) == repr(theirs.best_params_)


def test_multimetric_refit_name_callable_and_false():
    scoring = {"acc": "accuracy", "f1": "f1_macro"}
    for refit in ("f1", "acc"):
        ours = HPSearchCV(_lr(), GRID, cv=3, scoring=scoring, refit=refit).fit(X_IRIS, Y_IRIS)
        theirs = GridSearchCV(_lr(), GRID, cv=3, scoring=scoring, refit=refit).fit(X_IRIS, Y_IRIS)
        assert_same_results(ours, theirs)
        assert ours.multimetric_ and ours.best_index_ == theirs.best_index_
        assert ours.best_score_ == theirs.best_score_
        assert set(ours.scorer_) == {"acc", "f1"}
    pick_last = lambda results: len(results["params"]) - 1  # noqa: E731
    ours = HPSearchCV(_lr(), GRID, cv=3, scoring=scoring, refit=pick_last).fit(X_IRIS, Y_IRIS)
    assert ours.best_index_ == 7 and ours.best_params_ == ours.cv_results_["params"][7]
    assert not hasattr(ours, "best_score_")
    ours = HPSearchCV(_lr(), GRID, cv=3, scoring=["accuracy", "f1_macro"],
                      refit=False).fit(X_IRIS, Y_IRIS)
    assert not hasattr(ours, "best_params_") and not hasattr(ours, "predict")
    with pytest.raises(AttributeError, match="predict"):
        ours.predict(X_IRIS)
    with pytest.raises(ValueError, match="refit must be set to a scorer key"):
        HPSearchCV(_lr(), GRID, scoring=scoring, refit="nope").fit(X_IRIS, Y_IRIS)


def test_callable_multimetric_scoring():
    def scoring(est, X, y):
        return {"acc": float(np.mean(est.predict(X) == y)), "neg": -1.0}

    ours = HPSearchCV(_lr(), GRID, cv=3, scoring=scoring, refit="acc").fit(X_IRIS, Y_IRIS)
    theirs = GridSearchCV(_lr(), GRID, cv=3, scoring=scoring, refit="acc").fit(X_IRIS, Y_IRIS)
    assert_same_results(ours, theirs)
    assert ours.multimetric_ and ours.best_params_ == theirs.best_params_


# ----------------------------------------------------------------- errors
def test_error_score_numeric_matches_grid_search():
    grid = {"parameter": [FailingClassifier.FAIL, 1, 2]}
    for error_score in (np.nan, -1.0):
        with pytest.warns(FitFailedWarning, match="3 fits failed out of a total of 9"):
            ours = HPSearchCV(FailingClassifier(), grid, cv=3,
                              error_score=error_score).fit(X_IRIS, Y_IRIS)
        with pytest.warns(FitFailedWarning):
            theirs = GridSearchCV(FailingClassifier(), grid, cv=3,
                                  error_score=error_score).fit(X_IRIS, Y_IRIS)
        assert_same_results(ours, theirs)
        assert ours.best_params_ == {"parameter": 2}
        # with a NaN score the failed candidate is a FAIL trial, still a row of cv_results_
        states = [t.state.name for t in ours.study_.trials]
        assert states == ["FAIL" if np.isnan(error_score) else "COMPLETE", "COMPLETE", "COMPLETE"]


def test_error_score_raise_and_all_fits_failed():
    grid = {"parameter": [1, FailingClassifier.FAIL]}
    with pytest.raises(ValueError, match="Failing classifier failed as required"):
        HPSearchCV(FailingClassifier(), grid, cv=3, error_score="raise").fit(X_IRIS, Y_IRIS)
    with pytest.raises(ValueError, match="All the 6 fits failed"):
        HPSearchCV(FailingClassifier(), {"parameter": [FailingClassifier.FAIL] * 2},
                   cv=3).fit(X_IRIS, Y_IRIS)
    with pytest.raises(ValueError, match="All the 6 fits failed"):
        GridSearchCV(FailingClassifier(), {"parameter": [FailingClassifier.FAIL] * 2},
                     cv=3).fit(X_IRIS, Y_IRIS)


# ----------------------------------------------------------------- data plumbing
def test_groups_and_fit_params():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 6, len(Y_IRIS))
    sw = rng.random(len(Y_IRIS)) + 0.5
    ours = HPSearchCV(_lr(), GRID, cv=GroupKFold(3)).fit(X_IRIS, Y_IRIS, groups=groups,
                                                          sample_weight=sw)
    theirs = GridSearchCV(_lr(), GRID, cv=GroupKFold(3)).fit(X_IRIS, Y_IRIS, groups=groups,
                                                             sample_weight=sw)
    assert_same_results(ours, theirs)
    unweighted = HPSearchCV(_lr(), GRID, cv=GroupKFold(3)).fit(X_IRIS, Y_IRIS, groups=groups)
    assert not np.allclose(unweighted.cv_results_["mean_test_score"],
                           ours.cv_results_["mean_test_score"])
    spam = np.arange(len(Y_IRIS))
    HPSearchCV(CheckFitParams(), {"a": [0, 1]}, cv=3).fit(X_IRIS, Y_IRIS, spam=spam)


def test_pipeline_nesting_clone_pickle_cross_val_score():
    pipe = Pipeline([("scale", StandardScaler()), ("clf", _lr())])
    space = {"clf__C": hp.Float(1e-2, 1e2, log=True), "clf__fit_intercept": [True, False]}
    search = HPSearchCV(pipe, space, n_trials=6, cv=3, random_state=0)
    params = search.get_params()
    assert params["estimator__clf__C"] == 1.0 and params["n_trials"] == 6
    twin = clone(search)
    assert twin.get_params()["space"] is not space and twin.space.keys() == space.keys()
    search.fit(X_IRIS, Y_IRIS)
    assert set(search.best_params_) == {"clf__C", "clf__fit_intercept"}
    assert 1e-2 <= search.best_params_["clf__C"] <= 1e2
    loaded = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(loaded.predict(X_IRIS), search.predict(X_IRIS))
    assert not hasattr(loaded, "study_") and loaded.study_name_ == search.study_name_
    # the same random_state gives the same candidates
    again = clone(search).fit(X_IRIS, Y_IRIS)
    assert again.cv_results_["params"] == search.cv_results_["params"]
    scores = cross_val_score(HPSearchCV(_lr(), {"C": [0.1, 1.0]}, cv=2), X_IRIS, Y_IRIS, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    outer = Pipeline([("scale", StandardScaler()),
                      ("search", HPSearchCV(_lr(), {"C": [0.1, 1.0]}, cv=2))]).fit(X_IRIS, Y_IRIS)
    assert outer.score(X_IRIS, Y_IRIS) > 0.9


def test_parallel_trials_give_the_sequential_results():
    kw = dict(cv=3)
    seq = HPSearchCV(_lr(), GRID, **kw).fit(X_IRIS, Y_IRIS)
    par = HPSearchCV(_lr(), GRID, n_jobs=2, **kw).fit(X_IRIS, Y_IRIS)
    assert_same_results(par, seq)
    with pytest.raises(ValueError, match="Failing classifier failed"):
        HPSearchCV(FailingClassifier(), {"parameter": [FailingClassifier.FAIL, 1]}, cv=2,
                   n_jobs=2, error_score="raise").fit(X_IRIS, Y_IRIS)


# ----------------------------------------------------------------- resume
def test_resume_from_storage_runs_only_the_missing_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 'search.db'}"
    space = {"C": hp.Float(1e-3, 1e2, log=True)}
    kw = dict(cv=3, sampler=hp.RandomSampler(seed=3), storage=url, study_name="lr")
    first = HPSearchCV(_lr(), space, n_trials=4, **kw).fit(X_IRIS, Y_IRIS)
    assert len(first.cv_results_["params"]) == 4
    second = HPSearchCV(_lr(), space, n_trials=7, **kw).fit(X_IRIS, Y_IRIS)
    assert len(second.study_.trials) == 7          # 3 new trials, not 7
    assert second.cv_results_["params"][:4] == first.cv_results_["params"]
    np.testing.assert_array_equal(second.cv_results_["split1_test_score"][:4],
                                  first.cv_results_["split1_test_score"])
    fresh = HPSearchCV(_lr(), space, n_trials=7, cv=3,
                       sampler=hp.RandomSampler(seed=3)).fit(X_IRIS, Y_IRIS)
    assert_same_results(second, fresh)
    # nothing left to do: no new trial
    third = HPSearchCV(_lr(), space, n_trials=7, **kw).fit(X_IRIS, Y_IRIS)
    assert len(third.study_.trials) == 7 and third.best_params_ == fresh.best_params_
    with pytest.raises(ValueError, match="storage: study 'lr' holds trials of a different"):
        HPSearchCV(_lr(), space, n_trials=8, **kw).fit(X_IRIS[:100], Y_IRIS[:100])


class InterruptingLR(LogisticRegression):
    """Counts its fits in the file ``counter``; raises KeyboardInterrupt at the fit whose
    count equals the number in ``counter + ".stop"`` (files, so both fits of the test
    use the same estimator parameters)."""

    def __init__(self, C=1.0, fit_intercept=True, max_iter=300, counter=None):
        super().__init__(C=C, fit_intercept=fit_intercept, max_iter=max_iter)
        self.counter = counter

    def fit(self, X, y, sample_weight=None):
        with open(self.counter, "a") as fh:
            fh.write("x")
        with open(self.counter) as fh, open(self.counter + ".stop") as stop:
            if len(fh.read()) == int(stop.read()):
                raise KeyboardInterrupt
        return super().fit(X, y, sample_weight=sample_weight)


def test_interrupted_exhaustive_search_resumes_to_grid_search_results(tmp_path):
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    counter = str(tmp_path / "fits")
    with open(counter + ".stop", "w") as fh:
        fh.write("11")                                   # the 4th candidate's 2nd fold
    est = InterruptingLR(counter=counter)
    with pytest.raises(KeyboardInterrupt):
        HPSearchCV(est, GRID, cv=3, storage=url).fit(X_IRIS, Y_IRIS)
    with open(counter + ".stop", "w") as fh:
        fh.write("-1")
    resumed = HPSearchCV(est, GRID, cv=3, storage=url).fit(X_IRIS, Y_IRIS)
    states = [t.state.name for t in resumed.study_.trials]
    assert states.count("FAIL") == 1 and states.count("COMPLETE") == 8
    with open(counter) as fh:
        # 3 candidates + 2 fits before the interrupt, then 5 candidates and the refit
        assert len(fh.read()) == 11 + 5 * 3 + 1          # no candidate evaluated twice
    theirs = GridSearchCV(_lr(), GRID, cv=3).fit(X_IRIS, Y_IRIS)
    a, b = resumed.cv_results_, theirs.cv_results_
    assert [{k: p[k] for k in ("C", "fit_intercept")} for p in a["params"]] == b["params"]
    for k in ("mean_test_score", "std_test_score", "split2_test_score", "rank_test_score"):
        np.testing.assert_allclose(a[k], b[k], atol=1e-12)


# ----------------------------------------------------------------- multi-fidelity
@pytest.fixture(scope="module")
def clf_data():
    return make_classification(n_samples=1200, n_features=20, n_informative=8,
                               random_state=0)


def test_halving_on_n_samples_prunes_and_finds_a_good_model(clf_data):
    X, y = clf_data
    space = {"alpha": hp.Float(1e-6, 1e0, log=True), "loss": ["hinge", "log_loss"]}
    est = SGDClassifier(max_iter=30, tol=None, random_state=0)
    pruned = HPSearchCV(est, space, n_trials=18, cv=3, random_state=0,
                        sampler=hp.RandomSampler(seed=0),
                        pruner=hp.SuccessiveHalving(1, 9, eta=3)).fit(X, y)
    full = HPSearchCV(est, space, n_trials=18, cv=3, sampler=hp.RandomSampler(seed=0)).fit(X, y)
    states = [t.state for t in pruned.study_.trials]
    assert states.count(hp.TrialState.PRUNED) >= 6
    r = pruned.cv_results_
    assert set(np.unique(r["n_resources"])) <= {1, 3, 9} and r["iter"].max() == 2
    assert len(r["params"]) > 18                    # one row per (candidate, level)
    assert r["n_resources"][pruned.best_index_] == 9
    top = r["mean_test_score"][r["n_resources"] == 9]
    assert pruned.best_score_ == np.nanmax(top)
    assert pruned.best_score_ >= full.best_score_ - 0.02
    # the top level is plain cross-validation: same scores as the unpruned search
    i = full.cv_results_["params"].index(pruned.best_params_)
    assert full.cv_results_["mean_test_score"][i] == pytest.approx(pruned.best_score_, abs=1e-12)
    # training samples spent, in units of one full cross-validation
    spent = np.sum(r["n_resources"]) / 9
    assert spent < 0.7 * 18


def test_resource_estimator_parameter_and_folds(clf_data):
    from sklearn.ensemble import RandomForestClassifier

    X, y = clf_data[0][:400], clf_data[1][:400]
    s = HPSearchCV(RandomForestClassifier(random_state=0), {"max_depth": [2, 4, 8, None]},
                   cv=3, pruner=hp.ASHA(3, 27, eta=3), resource="n_estimators").fit(X, y)
    r = s.cv_results_
    assert {p["n_estimators"] for p in r["params"]} <= {3, 9, 27}
    assert s.best_params_["n_estimators"] == 27 and s.best_estimator_.n_estimators == 27
    # pruning between folds: the running mean is reported after each fold
    m = HPSearchCV(_lr(), {"C": hp.Float(1e-4, 1e2, log=True)}, n_trials=12, cv=5,
                   random_state=0, pruner=hp.MedianPruner()).fit(X_IRIS, Y_IRIS)
    trials = m.study_.trials
    assert all(sorted(t.intermediate_values) == list(range(1, len(t.intermediate_values) + 1))
               for t in trials)
    pruned = [t for t in trials if t.state == hp.TrialState.PRUNED]
    rows = m.cv_results_["mean_test_score"]
    assert len(rows) == 12 and np.isnan(rows).sum() == len(pruned)
    assert not np.isnan(m.best_score_)
    f = HPSearchCV(_lr(), {"C": hp.Float(1e-4, 1e2, log=True)}, n_trials=9, cv=KFold(3),
                   random_state=0, pruner=hp.SuccessiveHalving(1, 3, eta=3),
                   resource="folds").fit(X_IRIS, Y_IRIS)
    assert "iter" not in f.cv_results_ and len(f.cv_results_["params"]) == 9


# ----------------------------------------------------------------- defaults, bad input
def test_default_sampler_choice():
    s = HPSearchCV(_lr(), {"C": hp.Float(1e-2, 1e2, log=True)}, cv=2).fit(X_IRIS, Y_IRIS)
    assert type(s.study_.sampler).__name__ == "BayesSampler" and s.n_trials_ == 10
    s = HPSearchCV(_lr(), GRID, n_trials=3, cv=2, random_state=1).fit(X_IRIS, Y_IRIS)
    assert type(s.study_.sampler).__name__ == "GridSampler" and s.n_trials_ == 3
    assert len({repr(p) for p in s.cv_results_["params"]}) == 3    # no repetition


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(space={"nope": [1, 2]}), ValueError, "unknown parameter 'nope'"),
    (dict(space={"C": 1.0}), TypeError, r"space\['C'\]"),
    (dict(space={"C": []}), ValueError, r"space\['C'\]: the list of values is empty"),
    (dict(space={}), ValueError, "space: empty"),
    (dict(space="C"), Exception, "space"),
    (dict(n_trials=0), ValueError, "n_trials"),
    (dict(n_jobs=0), ValueError, "n_jobs"),
    (dict(resource="n_estimators"), ValueError, "resource='n_estimators' needs a rung pruner"),
    (dict(resource="bogus", pruner=hp.ASHA(1, 9)), ValueError, "resource='bogus' is not a"),
    (dict(resource="C", pruner=hp.ASHA(1, 9)), ValueError, "resource='C' is also a searched"),
    (dict(resource="folds", pruner=hp.ASHA(1, 9)), ValueError, "exceeds the number of CV"),
    (dict(scoring="nope"), ValueError, "scoring"),
    (dict(error_score="nope"), ValueError, "error_score"),
])
def test_bad_input_names_the_parameter(kwargs, exc, match):
    kw = dict(space={"C": [0.1, 1.0]}, cv=3)
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        HPSearchCV(_lr(), **kw).fit(X_IRIS, Y_IRIS)


def test_nested_parameter_of_a_searched_step_is_accepted():
    pipe = Pipeline([("clf", _lr())])
    s = HPSearchCV(pipe, {"clf": [SVC()], "clf__gamma": [0.1, 1.0]}, cv=2).fit(X_IRIS, Y_IRIS)
    assert s.best_params_["clf__gamma"] in (0.1, 1.0)
    with pytest.raises(ValueError, match="did you mean 'clf__C'"):
        HPSearchCV(pipe, {"C": [1.0]}, cv=2).fit(X_IRIS, Y_IRIS)
    est = Ridge()
    assert HPSearchCV(est, {"alpha": [1.0, 2.0]}, cv=2).fit(X_IRIS, Y_IRIS[:]).best_estimator_ \
        is not est


def test_example_tune_sklearn_pipeline_quick(tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    t0 = __import__("time").perf_counter()
    out = subprocess.run([sys.executable, os.path.join(root, "python", "tune_sklearn_pipeline.py"),
                          "--quick", "--db", str(tmp_path / "p.db")], capture_output=True,
                         text=True, timeout=300, env=env, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert __import__("time").perf_counter() - t0 < 120
    lines = out.stdout.splitlines()
    assert any(line.startswith("HPSearchCV bayes+halving") for line in lines)
    assert "candidates stopped on a subsample" in out.stdout
    assert "resumed from" in out.stdout and (tmp_path / "p.db").exists()
