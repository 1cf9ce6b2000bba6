"""The Pareto front of a multi-objective study."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from hpcore.plot._base import completed, finish, new_axes, objective_label

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["pareto_front_mask", "plot_pareto_front"]


def pareto_front_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Rows of ``values`` (n, m) that no other row dominates under ``directions``."""
    y = np.asarray(values, dtype=float)
    if y.ndim != 2 or y.shape[1] != len(directions):
        raise ValueError(f"values must have shape (n, {len(directions)}), got {y.shape}")
    y = y * np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    if len(y) == 0:
        return np.zeros(0, dtype=bool)
    from hpcore.kernels import nondominated_sort

    return np.asarray(nondominated_sort(np.ascontiguousarray(y))) == 0


def plot_pareto_front(study: "Study", path: Any = None, *, objectives: tuple[int, int] = (0, 1),
                      ax: Any = None, title: str | None = None,
                      labels: tuple[str, str] | None = None):
    """COMPLETE trials of a multi-objective study in the plane of two objectives, the
    non-dominated ones (in that plane) in red and joined by the front's staircase.

    Parameters
    ----------
    study : Study
        At least two objectives.
    path : str or path-like, optional
    objectives : (int, int)
        The two objectives on the x and y axes.
    ax : matplotlib Axes, optional
    title : str, optional
    labels : (str, str), optional
        Axis labels (default: the objectives' indices and directions).

    Returns
    -------
    matplotlib.figure.Figure
    """
    m = len(study.directions)
    if m < 2:
        raise ValueError(f"plot_pareto_front needs a multi-objective study; {study.name!r} has "
                         "one objective (use plot_convergence)")
    try:
        i, j = (int(objectives[0]), int(objectives[1]))
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"objectives must be two objective indices, got {objectives!r}") from None
    if len(objectives) != 2 or i == j or not (0 <= i < m and 0 <= j < m):
        raise ValueError(f"objectives must be two different indices in [0, {m}), got {objectives!r}")
    trials = completed(study, "plot_pareto_front")
    y = np.array([[t.values[i], t.values[j]] for t in trials])
    dirs = [study.directions[i], study.directions[j]]
    front = pareto_front_mask(y, dirs)
    fig, ax, owned = new_axes(ax, (6, 4.6))
    ax.scatter(y[~front, 0], y[~front, 1], s=14, color="tab:blue", alpha=0.45,
               label=f"dominated ({int((~front).sum())})")
    f = y[front]
    f = f[np.argsort(f[:, 0] if dirs[0] == "minimize" else -f[:, 0], kind="stable")]
    ax.plot(f[:, 0], f[:, 1], color="tab:red", lw=1.2, drawstyle="steps-post", zorder=3)
    ax.scatter(f[:, 0], f[:, 1], s=30, color="tab:red", edgecolors="k", linewidths=0.5,
               label=f"Pareto front ({len(f)})", zorder=4)
    ax.set_xlabel(labels[0] if labels else objective_label(study, i))
    ax.set_ylabel(labels[1] if labels else objective_label(study, j))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"Pareto front: {study.name} ({len(trials)} trials)")
    return finish(fig, path, owned)
