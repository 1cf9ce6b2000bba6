"""scikit-learn's own estimator checks over HPSearchCV, with GridSearchCV's outcomes.

Each HPSearchCV instance has a GridSearchCV twin built the way scikit-learn's test suite
builds it (``cv=2, error_score="raise"``, a two-point space; see
``sklearn/utils/_test_common/instance_generator.py``).  The checks HPSearchCV is expected
to fail are exactly the ones scikit-learn expects GridSearchCV to fail, and a second test
runs both through ``check_estimator(on_fail=None)`` and requires the same outcome
(passed / skipped / xfail) for every check.
"""
import warnings

import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.decomposition import PCA  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator, parametrize_with_checks  # noqa: E402

import hpcore as hp  # noqa: E402
from hpcore.sklearn import HPSearchCV  # noqa: E402

if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 6):  # pragma: no cover
    pytest.skip("expected_failed_checks / on_fail need scikit-learn >= 1.6",
                allow_module_level=True)

# GridSearchCV's expected failures, as scikit-learn lists them for GridSearchCV
# (PER_ESTIMATOR_XFAIL_CHECKS); read from scikit-learn when it exposes them.
_GRID_XFAIL = {
    "check_supervised_y_2d": "DataConversionWarning not caught",
    "check_requires_y_none": "Doesn't fail gracefully",
}
try:
    from sklearn.utils._test_common.instance_generator import (
        _get_expected_failed_checks as _sk_expected)
except ImportError:  # pragma: no cover - private module moved
    _sk_expected = None


def _pairs():
    """(HPSearchCV, GridSearchCV) twins: a list grid, a continuous space, two pipelines."""
    pca_ridge = Pipeline([("pca", PCA()), ("ridge", Ridge())])
    pca_lr = Pipeline([("pca", PCA()), ("logisticregression", LogisticRegression())])
    common = dict(cv=2, error_score="raise")
    return [
        (HPSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, **common),
         GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, **common)),
        (HPSearchCV(Ridge(), {"alpha": hp.Float(0.1, 1.0, log=True)}, n_trials=2,
                    random_state=0, **common),
         GridSearchCV(Ridge(), {"alpha": [0.1, 1.0]}, **common)),
        (HPSearchCV(LogisticRegression(), {"C": hp.Float(0.1, 1.0, log=True)}, n_trials=2,
                    random_state=0, **common),
         GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, **common)),
        (HPSearchCV(pca_ridge, {"ridge__alpha": [0.1, 1.0]}, **common),
         GridSearchCV(pca_ridge, {"ridge__alpha": [0.1, 1.0]}, **common)),
        (HPSearchCV(pca_lr, {"logisticregression__C": [0.1, 1.0]}, **common),
         GridSearchCV(pca_lr, {"logisticregression__C": [0.1, 1.0]}, **common)),
    ]



@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _grid_expected_failures(grid_search) -> dict:
    if _sk_expected is not None:
        return dict(_sk_expected(grid_search))
    return dict(_GRID_XFAIL)


def _expected_failed_checks(estimator) -> dict:
    # HPSearchCV is expected to fail what scikit-learn expects GridSearchCV to fail.
    return _grid_expected_failures(GridSearchCV(estimator.estimator, {}, cv=2))


# one test per check for the two instances of the issue (a grid of lists -> GridSampler, a
# continuous space -> BayesSampler); every pair runs through the outcome comparison below
@parametrize_with_checks([h for h, _ in _pairs()[:2]], expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("index", range(len(_pairs())))
def test_same_outcome_as_grid_search_cv(index):
    hp_search, grid_search = _pairs()[index]
    xfail = _grid_expected_failures(grid_search)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = check_estimator(hp_search, on_fail=None, expected_failed_checks=xfail)
        theirs = check_estimator(grid_search, on_fail=None, expected_failed_checks=xfail)
    ours_status = [(r["check_name"], r["status"]) for r in ours]
    theirs_status = [(r["check_name"], r["status"]) for r in theirs]
    failed = [(r["check_name"], repr(r["exception"])[:300]) for r in ours
              if r["status"] == "failed"]
    assert not failed
    assert ours_status == theirs_status
    # the skips are for the same reasons (array-API libraries absent, ...)
    assert [str(r["exception"]) for r in ours if r["status"] == "skipped"] == \
        [str(r["exception"]) for r in theirs if r["status"] == "skipped"]
