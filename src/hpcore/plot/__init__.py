"""Plots of studies (matplotlib is optional: ``pip install hpcore[plot]``).

Every function takes a :class:`~hpcore.Study` (``plot_convergence``: several), draws
with matplotlib (an ``ImportError`` naming it when missing), returns the
``matplotlib.figure.Figure`` and, given ``path``, saves it there.

=====================  ================================================================
kind (``hpcore plot``)  function
=====================  ================================================================
``convergence``        :func:`plot_convergence`: best so far, several studies overlaid
``parallel``           :func:`plot_parallel_coordinates`
``slice``              :func:`plot_slice`: objective against each parameter
``intermediate``       :func:`plot_intermediate_values`: reports per step, pruned grey
``pareto``             :func:`plot_pareto_front` (multi-objective studies)
``importance``         :func:`plot_param_importances`: fANOVA on a random forest
                       (scikit-learn), see :mod:`hpcore.plot.importance`
=====================  ================================================================
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from hpcore.plot.history import best_so_far, plot_convergence, plot_intermediate_values
from hpcore.plot.importance import param_importances, plot_param_importances, tree_main_effects
from hpcore.plot.pareto import pareto_front_mask, plot_pareto_front
from hpcore.plot.params import plot_parallel_coordinates, plot_slice

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["KINDS", "best_so_far", "param_importances", "pareto_front_mask", "plot",
           "plot_convergence", "plot_intermediate_values", "plot_parallel_coordinates",
           "plot_param_importances", "plot_pareto_front", "plot_slice", "tree_main_effects"]

KINDS: dict[str, Callable[..., Any]] = {
    "convergence": plot_convergence,
    "parallel": plot_parallel_coordinates,
    "slice": plot_slice,
    "intermediate": plot_intermediate_values,
    "pareto": plot_pareto_front,
    "importance": plot_param_importances,
}


def plot(study: "Study", kind: str, path: Any = None, **kwargs: Any):
    """Draw one ``kind`` of plot of ``study`` (see the table above); returns the figure."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind](study, path, **kwargs)
