"""Public kernel-level functions: numpy arrays in, numpy arrays out.

Other tuners embed these.  Each wrapper validates shapes, dtypes and values and raises
a ``ValueError``/``TypeError`` naming the offending argument before any compiled code
runs.  One module per concern; this file only re-exports.
"""
from hpcore.kernels._threads import effective_n_threads, openmp_enabled
from hpcore.kernels._random import normal_streams, uniform_streams
from hpcore.kernels._gp import GPModel, gp_fit, gp_kernel_matrix, gp_log_marginal_likelihood, gp_predict
from hpcore.kernels._acquisition import acquisition, maximize_acquisition
from hpcore.kernels._genetic import (blend_crossover, categorical_mutation, crowding_distance,
                                     elite_indices, gaussian_mutation, nondominated_sort,
                                     nsga2_rank, polynomial_mutation, sbx_crossover,
                                     sbx_offspring, tournament_select, uniform_crossover)
from hpcore.kernels._halving import (Bracket, RungBook, hyperband_brackets, make_rung_book,
                                     rung_levels, top_k)

__all__ = [
    "GPModel",
    "acquisition",
    "gp_fit",
    "gp_kernel_matrix",
    "gp_log_marginal_likelihood",
    "gp_predict",
    "maximize_acquisition",
    "effective_n_threads",
    "normal_streams",
    "openmp_enabled",
    "uniform_streams",
    "blend_crossover",
    "categorical_mutation",
    "crowding_distance",
    "elite_indices",
    "gaussian_mutation",
    "nondominated_sort",
    "nsga2_rank",
    "polynomial_mutation",
    "sbx_crossover",
    "sbx_offspring",
    "tournament_select",
    "uniform_crossover",
    "Bracket",
    "RungBook",
    "hyperband_brackets",
    "make_rung_book",
    "rung_levels",
    "top_k",
]
