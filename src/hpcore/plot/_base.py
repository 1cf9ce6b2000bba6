"""What every plot shares: the matplotlib import, figure bookkeeping, trial columns."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from hpcore.space import Categorical, Distribution, Float, Int
from hpcore.trial import FrozenTrial, TrialState

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

MATPLOTLIB_HINT = "plotting needs matplotlib: pip install matplotlib (or 'hpcore[plot]')"


def pyplot():
    """``matplotlib.pyplot``, or an ImportError naming matplotlib."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(MATPLOTLIB_HINT) from exc
    return plt


def new_axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any, bool]:
    """``(figure, axes, owned)``: a new figure unless ``ax`` is given."""
    plt = pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax, True
    return ax.figure, ax, False


def finish(fig: Any, path: Any, owned: bool = True) -> Any:
    """Lay out, save to ``path`` when given (closing a figure this module created, so
    batch runs do not pile up open figures), and return the figure."""
    try:
        fig.tight_layout()
    except (ValueError, RuntimeError):  # pragma: no cover - odd layouts: keep going
        pass
    if path is not None:
        fig.savefig(path, dpi=110)
        if owned:
            pyplot().close(fig)
    return fig


def check_objective(study: "Study", objective: int) -> int:
    n = len(study.directions)
    if isinstance(objective, bool) or not isinstance(objective, (int, np.integer)) \
            or not 0 <= objective < n:
        raise ValueError(f"objective must be an int in [0, {n}), got {objective!r}")
    return int(objective)


def completed(study: "Study", what: str, at_least: int = 1) -> list[FrozenTrial]:
    trials = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if len(trials) < at_least:
        raise ValueError(f"{what} needs at least {at_least} COMPLETE trial(s); study "
                         f"{study.name!r} has {len(trials)}")
    return trials


def objective_label(study: "Study", objective: int) -> str:
    d = study.directions[objective]
    name = "objective" if len(study.directions) == 1 else f"objective {objective}"
    return f"{name} ({d})"


def check_params(study: "Study", params: Sequence[str] | None,
                 trials: Sequence[FrozenTrial]) -> list[str]:
    """The parameters to plot: ``params`` (checked) or every parameter that is active in
    at least one of ``trials``, in the space's order."""
    names = list(study.space.names)
    if params is None:
        seen = set()
        for t in trials:
            seen.update(t.params)
        return [n for n in names if n in seen]
    if isinstance(params, str):
        params = [params]
    out = []
    for p in params:
        if p not in study.space.params:
            raise ValueError(f"params: {p!r} is not a parameter of study {study.name!r} "
                             f"(it has {names})")
        out.append(p)
    if not out:
        raise ValueError("params must name at least one parameter")
    return out


def unit(dist: Distribution, value: Any) -> float:
    """One coordinate in [0, 1] per parameter: the space's encoding for Float and Int
    (log-aware; the middle of the level for discrete ones), ``(i + 0.5) / k`` for the
    ``i``-th of ``k`` choices (uniform over the unit interval = uniform over the space)."""
    if isinstance(dist, Categorical):
        return (dist.index(value) + 0.5) / len(dist.choices)
    return float(dist.encode(value))


def unit_column(study: "Study", name: str, trials: Sequence[FrozenTrial]) -> np.ndarray:
    """``unit`` of parameter ``name`` per trial (NaN where it is inactive)."""
    dist = study.space[name]
    return np.array([unit(dist, t.params[name]) if name in t.params else math.nan for t in trials])


def is_log(dist: Distribution) -> bool:
    return isinstance(dist, (Float, Int)) and bool(dist.log)


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
