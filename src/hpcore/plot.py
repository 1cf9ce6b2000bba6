"""Plots (matplotlib is optional: ``pip install hpcore[plot]``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from hpcore.trial import TrialState

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["best_so_far", "plot_convergence"]


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


def plot_convergence(studies: Mapping[str, "Study"], path: str | None = None,
                     title: str = "Convergence", ylabel: str = "best value"):
    """Best-so-far curves of several studies on one axis; saved to ``path`` if given."""
    try:
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'hpcore[plot]'") from exc
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, study in studies.items():
        y = best_so_far(study)
        ax.plot(np.arange(1, len(y) + 1), y, label=name, drawstyle="steps-post")
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
