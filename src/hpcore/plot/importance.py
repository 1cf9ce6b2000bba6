"""Parameter importance: fANOVA main effects on a random forest of the trials.

Method (Hutter, Hoos & Leyton-Brown 2014, "An efficient approach for assessing
hyperparameter importance"; the evaluator Optuna calls ``FanovaImportanceEvaluator``):

1. Each COMPLETE trial becomes a point of the unit cube, one coordinate per parameter
   (the space's own encoding: log-aware for Float/Int, the middle of the ``i``-th of
   ``k`` equal cells for a choice), so the uniform measure on the cube is the uniform
   measure on the search space.
2. A scikit-learn ``RandomForestRegressor`` is fitted to the objective values.
3. Every tree is a piecewise-constant function over boxes of the cube; its variance
   under the uniform measure, and the variance of each parameter's *marginal* (the
   tree averaged over all other parameters), are exact sums over the leaves.  A
   parameter's importance in a tree is its marginal's share of the tree's variance
   (its main effect; what is left is interactions); the forest's is the mean over
   trees, normalized to sum to 1 by default.

Only parameters active in every COMPLETE trial enter the forest (conditional ones that
are inactive somewhere are left out and reported as such, as Optuna does).  This needs
scikit-learn; the GP's lengthscales are not used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from hpcore.plot._base import check_objective, check_params, completed, finish, new_axes

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["param_importances", "plot_param_importances", "tree_main_effects"]

SKLEARN_HINT = ("parameter importance fits a random forest with scikit-learn: "
                "pip install scikit-learn (or 'hpcore[sklearn]')")


def tree_main_effects(children_left: np.ndarray, children_right: np.ndarray, feature: np.ndarray,
                      threshold: np.ndarray, value: np.ndarray,
                      n_features: int) -> tuple[np.ndarray, float]:
    """Exact fANOVA main effects of one regression tree on ``[0, 1]^n_features``.

    The arrays are scikit-learn's ``tree_`` layout (leaves have ``children_left == -1``;
    ``x[feature] <= threshold`` goes left; ``value`` is the node's prediction).

    Returns
    -------
    effects : ndarray (n_features,)
        Variance of each feature's marginal function under the uniform measure.
    total : float
        Variance of the tree's prediction under the uniform measure.
    """
    left = np.asarray(children_left)
    right = np.asarray(children_right)
    feat = np.asarray(feature)
    thr = np.asarray(threshold, dtype=float)
    val = np.asarray(value, dtype=float).reshape(len(left), -1)[:, 0]
    d = int(n_features)
    lo_l, hi_l, v_l = [], [], []
    stack = [(0, np.zeros(d), np.ones(d))]
    while stack:
        node, lo, hi = stack.pop()
        if left[node] < 0:
            lo_l.append(lo)
            hi_l.append(hi)
            v_l.append(val[node])
            continue
        f, t = int(feat[node]), min(max(float(thr[node]), 0.0), 1.0)
        lh = hi.copy()
        lh[f] = min(hi[f], t)
        rl = lo.copy()
        rl[f] = max(lo[f], t)
        stack.append((int(left[node]), lo, lh))
        stack.append((int(right[node]), rl, hi))
    lo_a, hi_a, v = np.array(lo_l), np.array(hi_l), np.array(v_l)
    width = np.clip(hi_a - lo_a, 0.0, None)
    vol = np.prod(width, axis=1)
    keep = vol > 0
    lo_a, hi_a, v, width, vol = lo_a[keep], hi_a[keep], v[keep], width[keep], vol[keep]
    effects = np.zeros(d)
    if len(v) == 0:
        return effects, 0.0
    mu = float(np.sum(vol * v))
    total = float(np.sum(vol * (v - mu) ** 2))
    if total <= 0.0:
        return effects, 0.0
    for j in range(d):
        edges = np.unique(np.concatenate([lo_a[:, j], hi_a[:, j], [0.0, 1.0]]))
        # a leaf adds v * vol / width_j to the marginal on [lo_j, hi_j)
        c = v * vol / width[:, j]
        acc = np.zeros(len(edges))
        np.add.at(acc, np.searchsorted(edges, lo_a[:, j]), c)
        np.add.at(acc, np.searchsorted(edges, hi_a[:, j]), -c)
        marginal = np.cumsum(acc)[:-1]
        effects[j] = float(np.sum(np.diff(edges) * (marginal - mu) ** 2))
    return effects, total


def _design(study: "Study", params: Sequence[str] | None, objective: int):
    from hpcore.plot._base import unit_column

    trials = completed(study, "param_importances", at_least=2)
    names = check_params(study, params, trials)
    used = [n for n in names if all(n in t.params for t in trials)]
    left_out = [n for n in names if n not in used]
    if not used:
        raise ValueError(f"no parameter of {names} is active in every COMPLETE trial")
    X = np.column_stack([unit_column(study, n, trials) for n in used])
    y = np.array([t.values[objective] for t in trials], dtype=float)
    return used, left_out, X, y


def param_importances(study: "Study", *, params: Sequence[str] | None = None, objective: int = 0,
                      n_trees: int = 64, max_depth: int = 64, seed: int = 0,
                      normalize: bool = True) -> dict[str, float]:
    """fANOVA importance of each parameter (see the module docstring).

    Parameters
    ----------
    study : Study
        At least two COMPLETE trials.
    params : list of str, optional
        Parameters to assess (default: all that are active in some COMPLETE trial;
        those inactive in some trial are left out).
    objective : int
        Which objective (multi-objective studies).
    n_trees, max_depth, seed
        The random forest's size, depth and ``random_state``.
    normalize : bool
        Scale the importances to sum to 1 (else each is the mean fraction of a tree's
        variance explained by that parameter alone).

    Returns
    -------
    dict
        ``{name: importance}``, most important first.
    """
    objective = check_objective(study, objective)
    for name, v, low in (("n_trees", n_trees, 1), ("max_depth", max_depth, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    try:
        from sklearn.ensemble import RandomForestRegressor
    except ImportError as exc:
        raise ImportError(SKLEARN_HINT) from exc
    used, _, X, y = _design(study, params, objective)
    forest = RandomForestRegressor(n_estimators=n_trees, max_depth=max_depth, min_samples_split=2,
                                   min_samples_leaf=1, random_state=seed, n_jobs=1).fit(X, y)
    acc = np.zeros(len(used))
    n_ok = 0
    for est in forest.estimators_:
        tr = est.tree_
        eff, total = tree_main_effects(tr.children_left, tr.children_right, tr.feature,
                                       tr.threshold, tr.value, len(used))
        if total > 0:
            acc += eff / total
            n_ok += 1
    imp = acc / max(n_ok, 1)
    if normalize and imp.sum() > 0:
        imp = imp / imp.sum()
    order = np.argsort(-imp, kind="stable")
    return {used[k]: float(imp[k]) for k in order}


def plot_param_importances(study: "Study", path: Any = None, *, params: Sequence[str] | None = None,
                           objective: int = 0, ax: Any = None, title: str | None = None,
                           **forest: Any):
    """Horizontal bars of :func:`param_importances` (fANOVA on a random forest); the
    parameters left out (inactive in some COMPLETE trial) are named under the axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from hpcore.plot._base import pyplot

    pyplot()
    objective = check_objective(study, objective)
    imp = param_importances(study, params=params, objective=objective, **forest)
    trials = completed(study, "param_importances", at_least=2)
    left_out = [n for n in check_params(study, params, trials) if n not in imp]
    names = list(imp)[::-1]
    fig, ax, owned = new_axes(ax, (6.4, max(2.5, 0.32 * len(names) + 1.6)))
    bars = ax.barh(names, [imp[n] for n in names], color="tab:blue")
    for b, n in zip(bars, names):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {imp[n]:.3f}", va="center",
                fontsize=7)
    ax.set_xlabel("importance (fANOVA main effect on a random forest, normalized)")
    if left_out:
        ax.set_xlabel(ax.get_xlabel() + "\nleft out (conditional): " + ", ".join(left_out),
                      fontsize=8)
    ax.set_xlim(0, max(imp.values()) * 1.18 + 1e-12)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(title or f"Parameter importance\n{study.name} ({len(trials)} trials)",
                 fontsize=10)
    return finish(fig, path, owned)
