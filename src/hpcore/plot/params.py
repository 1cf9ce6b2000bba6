"""Where the good configurations lie: parallel coordinates and one slice per parameter."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from hpcore.plot._base import (check_objective, check_params, completed, finish, fmt, is_log,
                               new_axes, objective_label, pyplot, unit_column)
from hpcore.space import Categorical, Int

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["plot_parallel_coordinates", "plot_slice"]


def plot_parallel_coordinates(study: "Study", path: Any = None, *, params: Sequence[str] | None = None,
                              objective: int = 0, ax: Any = None, title: str | None = None):
    """One polyline per COMPLETE trial across one vertical axis per parameter and a last
    axis for the objective, colored by the objective (the best trial drawn last, in red).

    Each parameter axis spans its domain in the space's own scale (log parameters
    log-spaced, choices evenly spaced and labelled); a parameter that is inactive in a
    trial (conditional) is skipped by that trial's line (it joins its neighbours).

    Parameters
    ----------
    study : Study
    path : str or path-like, optional
        Save the figure there.
    params : list of str, optional
        Axes to draw (default: every parameter active in some COMPLETE trial).
    objective : int
        Which objective colors the lines (multi-objective studies).
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    objective = check_objective(study, objective)
    trials = completed(study, "plot_parallel_coordinates")
    names = check_params(study, params, trials)
    y = np.array([t.values[objective] for t in trials])
    cols = [unit_column(study, n, trials) for n in names]
    span = float(y.max() - y.min())
    yn = (y - y.min()) / span if span > 0 else np.full(len(y), 0.5)
    data = np.column_stack(cols + [yn])                      # (n_trials, n_axes)
    fig, ax, owned = new_axes(ax, (max(6.0, 1.15 * (len(names) + 1) + 1.5), 4.6))
    minimize = study.directions[objective] == "minimize"
    order = np.argsort(-y if minimize else y, kind="stable")  # worst first, best on top
    cmap = plt.get_cmap("viridis_r" if minimize else "viridis")
    norm = plt.Normalize(vmin=float(y.min()), vmax=float(y.max()) if span > 0 else float(y.min()) + 1)
    xs = np.arange(data.shape[1])
    for i in order[:-1]:
        ok = np.isfinite(data[i])          # an inactive parameter is skipped, not a gap
        ax.plot(xs[ok], data[i][ok], color=cmap(norm(y[i])), alpha=0.55, lw=1.0)
    best = order[-1]
    ok = np.isfinite(data[best])
    ax.plot(xs[ok], data[best][ok], color="tab:red", lw=2.4, zorder=5)
    for j, name in enumerate(names):
        ax.axvline(j, color="0.3", lw=0.8)
        dist = study.space[name]
        if isinstance(dist, Categorical):
            k = len(dist.choices)
            for i, c in enumerate(dist.choices):
                ax.text(j + 0.04, (i + 0.5) / k, fmt(c), fontsize=7, va="center", color="0.15")
        else:
            ax.text(j + 0.04, -0.035, fmt(dist.low), fontsize=7, va="top", color="0.15")
            ax.text(j + 0.04, 1.035, fmt(dist.high) + (" (log)" if is_log(dist) else ""),
                    fontsize=7, va="bottom", color="0.15")
    j = len(names)
    ax.axvline(j, color="0.3", lw=0.8)
    ax.text(j + 0.04, -0.035, fmt(float(y.min())), fontsize=7, va="top")
    ax.text(j + 0.04, 1.035, fmt(float(y.max())), fontsize=7, va="bottom")
    ax.set_xticks(xs)
    ax.set_xticklabels(names + [objective_label(study, objective)], rotation=30, ha="right",
                       fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.1, 1.1)
    ax.set_xlim(-0.2, j + 0.6)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    sm.set_array([])
    fig.colorbar(sm, ax=ax, label=objective_label(study, objective), pad=0.01)
    ax.set_title(title or f"Parallel coordinates: {study.name} ({len(trials)} trials; red: "
                 f"best, trial {trials[best].number})")
    return finish(fig, path, owned)


def _padded(dist) -> tuple[float, float]:
    """x limits that show points on the bounds whole."""
    lo, hi = float(dist.low), float(dist.high)
    if isinstance(dist, Int) and not dist.log:
        return lo - 0.5 * dist.step, hi + 0.5 * dist.step
    if is_log(dist):
        r = (hi / lo) ** 0.03
        return lo / r, hi * r
    pad = 0.03 * (hi - lo)
    return lo - pad, hi + pad


def plot_slice(study: "Study", path: Any = None, *, params: Sequence[str] | None = None,
               objective: int = 0, ncols: int = 4, title: str | None = None):
    """One panel per parameter: each COMPLETE trial's objective against that parameter's
    value (log axis for log parameters; choices as labelled, jittered columns), colored
    by trial number.  Trials where a conditional parameter is inactive are left out of
    its panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = pyplot()
    objective = check_objective(study, objective)
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be an int >= 1, got {ncols!r}")
    trials = completed(study, "plot_slice")
    names = check_params(study, params, trials)
    n = len(names)
    nc = min(ncols, n)
    nr = math.ceil(n / nc)
    fig, axes = plt.subplots(nr, nc, figsize=(3.2 * nc, 2.7 * nr), squeeze=False, sharey=True,
                             layout="constrained")
    rng = np.random.default_rng(0)
    numbers = np.array([t.number for t in trials], dtype=float)
    vmax = max(1.0, float(numbers.max()))
    sc = None
    for k, name in enumerate(names):
        ax = axes[k // nc][k % nc]
        dist = study.space[name]
        rows = [(t.params[name], t.values[objective], t.number) for t in trials if name in t.params]
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        if not rows:
            ax.text(0.5, 0.5, "never active", ha="center", transform=ax.transAxes)
            continue
        vals, ys, nums = zip(*rows)
        if isinstance(dist, Categorical):
            x = np.array([dist.index(v) for v in vals], dtype=float)
            x = x + rng.uniform(-0.15, 0.15, len(x))
            ax.set_xticks(range(len(dist.choices)))
            ax.set_xticklabels([fmt(c) for c in dist.choices], rotation=20, fontsize=7)
            ax.set_xlim(-0.5, len(dist.choices) - 0.5)
        else:
            x = np.array(vals, dtype=float)
            if is_log(dist):
                ax.set_xscale("log")
            ax.set_xlim(*_padded(dist))
        sc = ax.scatter(x, ys, c=nums, cmap="Blues", vmin=0, vmax=vmax, s=14, edgecolors="0.3",
                        linewidths=0.3)
        if k % nc == 0:
            ax.set_ylabel(objective_label(study, objective), fontsize=8)
    for k in range(n, nr * nc):
        axes[k // nc][k % nc].set_visible(False)
    if sc is not None:
        fig.colorbar(sc, ax=axes.ravel().tolist(), label="trial number", shrink=0.8)
    fig.suptitle(title or f"Slices: {study.name} ({len(trials)} trials)", fontsize=11)
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
