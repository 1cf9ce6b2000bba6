"""Convergence (best so far, several studies overlaid) and intermediate values."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from hpcore.plot._base import finish, new_axes, pyplot
from hpcore.trial import TrialState

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["best_so_far", "plot_convergence", "plot_intermediate_values"]


def best_so_far(study: "Study") -> np.ndarray:
    """Best value after each trial (NaN until the first COMPLETE one), by trial number."""
    if len(study.directions) != 1:
        raise ValueError("best_so_far needs a single-objective study")
    sign = 1.0 if study.directions[0] == "minimize" else -1.0
    out, best = [], np.inf
    for t in study.trials:
        if t.state == TrialState.COMPLETE:
            best = min(best, sign * t.values[0])
        out.append(sign * best if np.isfinite(best) else np.nan)
    return np.array(out)


def _as_mapping(studies: Any) -> dict[str, "Study"]:
    from hpcore.study import Study

    if isinstance(studies, Study):
        return {studies.name: studies}
    if isinstance(studies, Mapping):
        out = dict(studies)
    elif isinstance(studies, Sequence) and not isinstance(studies, str):
        out = {}
        for s in studies:
            if not isinstance(s, Study):
                raise TypeError(f"studies: expected Study objects, got {type(s).__name__}")
            out[s.name] = s
    else:
        raise TypeError("studies must be a Study, a list of studies or a mapping name -> Study")
    if not out:
        raise ValueError("studies is empty")
    for k, s in out.items():
        if not isinstance(s, Study):
            raise TypeError(f"studies[{k!r}] is a {type(s).__name__}, not a Study")
    return out


def plot_convergence(studies: "Study | Sequence[Study] | Mapping[str, Study]", path: Any = None,
                     title: str = "Convergence", ylabel: str = "best value", *, ax: Any = None,
                     show_values: bool = True):
    """Best-so-far curves of one or several single-objective studies on one axis.

    Parameters
    ----------
    studies : Study, list of Study, or mapping label -> Study
        Overlaid in one plot (a list is labelled by study name).
    path : str or path-like, optional
        Save the figure there (PNG, PDF, SVG: by extension).
    title, ylabel : str
    ax : matplotlib Axes, optional
        Draw into it instead of a new figure.
    show_values : bool
        Also scatter each COMPLETE trial's value (faint, the curve's color).

    Returns
    -------
    matplotlib.figure.Figure
    """
    studies = _as_mapping(studies)
    fig, ax, owned = new_axes(ax, (7, 4.2))
    for label, study in studies.items():
        y = best_so_far(study)
        (line,) = ax.plot(np.arange(len(y)), y, label=label, drawstyle="steps-post")
        if show_values:
            pts = [(t.number, t.values[0]) for t in study.trials if t.state == TrialState.COMPLETE]
            if pts:
                xs, vs = zip(*pts)
                ax.scatter(xs, vs, s=8, alpha=0.25, color=line.get_color())
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return finish(fig, path, owned)


def plot_intermediate_values(study: "Study", path: Any = None, *, ax: Any = None,
                             title: str | None = None, logy: bool = False):
    """Every trial's reports (value against step): COMPLETE trials in color, PRUNED
    ones grey, FAIL grey dotted, RUNNING dashed.  Drawn as one line collection per
    state, so large studies stay fast.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    pyplot()
    trials = [t for t in study.trials if t.intermediate_values]
    if not trials:
        raise ValueError(f"study {study.name!r} has no intermediate values (trial.report)")
    fig, ax, owned = new_axes(ax, (7, 4.2))
    styles = {
        TrialState.PRUNED: dict(colors="0.6", alpha=0.45, linewidths=0.9),
        TrialState.FAIL: dict(colors="0.5", alpha=0.6, linewidths=0.9, linestyles="dotted"),
        TrialState.RUNNING: dict(colors="tab:orange", alpha=0.8, linewidths=1.0,
                                 linestyles="dashed"),
    }
    handles, lo, hi = [], [np.inf, np.inf], [-np.inf, -np.inf]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    for state in (TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.COMPLETE):
        segs = []
        for t in (complete if state == TrialState.COMPLETE else
                  [t for t in trials if t.state == state]):
            steps = sorted(t.intermediate_values)
            xy = np.array([[s, t.intermediate_values[s]] for s in steps], dtype=float)
            segs.append(xy)
            finite = xy[np.isfinite(xy[:, 1])]
            if len(finite):
                lo = np.minimum(lo, finite.min(axis=0))
                hi = np.maximum(hi, finite.max(axis=0))
        if not segs:
            continue
        if state == TrialState.COMPLETE:
            cmap = pyplot().get_cmap("viridis")
            colors = [cmap(i / max(1, len(segs) - 1)) for i in range(len(segs))]
            kw: dict = dict(colors=colors, linewidths=1.4, alpha=0.95)
            handles.append(Line2D([], [], color=cmap(0.5), lw=1.4,
                                  label=f"COMPLETE ({len(segs)}; color: trial order)"))
        else:
            kw = styles[state]
            handles.append(Line2D([], [], color=kw["colors"], lw=1.0,
                                  linestyle=kw.get("linestyles", "solid"),
                                  label=f"{state.name} ({len(segs)})"))
        if any(len(s) == 1 for s in segs):   # a single report draws no segment
            pts = np.vstack([s for s in segs if len(s) == 1])
            ax.scatter(pts[:, 0], pts[:, 1], s=6, color="0.5" if state != TrialState.COMPLETE
                       else "tab:blue", alpha=0.5)
        ax.add_collection(LineCollection(segs, zorder=3 if state == TrialState.COMPLETE else 2,
                                         **kw))
    if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
        pad = 0.03 * (hi - lo) + 1e-12
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("intermediate value")
    ax.set_title(title or f"Intermediate values: {study.name}")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=8)
    return finish(fig, path, owned)

