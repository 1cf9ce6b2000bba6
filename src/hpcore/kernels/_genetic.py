"""Genetic operators and NSGA-II ranking (see ``_kernels/genetic.pyx``).

Every random operator takes ``seed`` and ``stream_offset``: row (or pair) ``i`` draws
from the counter-based stream ``stream_offset + i`` of ``seed``, so the result is the
same for any ``n_threads``.  Genes flagged in ``integer`` are rounded to the nearest
integer after the operator (their bounds must be integers), so integers stay integers.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hpcore.kernels._validate import real_array
from hpcore._kernels import genetic as _g

__all__ = [
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
]

_U64 = 2 ** 64


# -- validation helpers ----------------------------------------------------------------
def _int(name: str, v: Any, low: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    v = int(v)
    if low is not None and v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return v


def _u64(name: str, v: Any) -> int:
    v = _int(name, v, 0)
    if v >= _U64:
        raise ValueError(f"{name} must be < 2**64, got {v}")
    return v


def _real(name: str, v: Any, low: float | None = None, high: float | None = None,
          low_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v}")
    return v


def _matrix(name: str, x: Any, d: int | None = None, finite: bool = True) -> np.ndarray:
    return real_array(x, name, 2, d, finite=finite)


def _bounds(lower: Any, upper: Any, d: int) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name, b in (("lower", lower), ("upper", upper)):
        a = np.asarray(b)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.floating)
                                     or np.issubdtype(a.dtype, np.integer)):
            raise TypeError(f"{name} must be a numeric array, got dtype {a.dtype}")
        a = np.ascontiguousarray(np.broadcast_to(a, (d,)) if a.ndim == 0 else a, dtype=np.float64)
        if a.shape != (d,):
            raise ValueError(f"{name} must have shape ({d},), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        out.append(a)
    lo, hi = out
    if (lo > hi).any():
        j = int(np.argmax(lo > hi))
        raise ValueError(f"lower must be <= upper, but lower[{j}]={lo[j]} > upper[{j}]={hi[j]}")
    return lo, hi


def _integer_mask(integer: Any, d: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    if integer is None:
        return np.zeros(d, dtype=np.uint8)
    a = np.asarray(integer)
    if a.dtype != bool and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"integer must be a boolean mask, got dtype {a.dtype}")
    if a.shape != (d,):
        raise ValueError(f"integer must have shape ({d},), got {a.shape}")
    mask = np.ascontiguousarray(a != 0, dtype=np.uint8)
    m = mask.astype(bool)
    if (lo[m] != np.round(lo[m])).any() or (hi[m] != np.round(hi[m])).any():
        raise ValueError("integer genes need integer lower and upper bounds")
    return mask


def _in_bounds(name: str, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Finite and within the bounds (one compiled pass; ``x`` from ``_matrix``)."""
    k = _g.first_outside(x, lo, hi) if x.size else -1
    if k >= 0:
        i, j = divmod(k, x.shape[1])
        if not np.isfinite(x[i, j]):
            raise ValueError(f"{name} contains NaN or infinite values")
        raise ValueError(f"{name}[{i}, {j}]={x[i, j]} is outside [lower, upper] = "
                         f"[{lo[j]}, {hi[j]}]")


def _prob(name: str, v: Any) -> float:
    return _real(name, v, 0.0, 1.0)


def _parents(parents_a: Any, parents_b: Any, lower: Any, upper: Any
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pa = _matrix("parents_a", parents_a, finite=False)
    pb = _matrix("parents_b", parents_b, pa.shape[1], finite=False)
    if pb.shape[0] != pa.shape[0]:
        raise ValueError(f"parents_a and parents_b must have the same number of rows, got "
                         f"{pa.shape[0]} and {pb.shape[0]}")
    lo, hi = _bounds(lower, upper, pa.shape[1])
    _in_bounds("parents_a", pa, lo, hi)
    _in_bounds("parents_b", pb, lo, hi)
    return pa, pb, lo, hi


# -- selection -------------------------------------------------------------------------
def tournament_select(fitness: Any, n_select: int, *, tournament_size: int = 2, seed: int = 0,
                      stream_offset: int = 0, n_threads: int | None = None) -> np.ndarray:
    """Tournament selection (minimization).

    Each of the ``n_select`` tournaments draws ``tournament_size`` contestants uniformly
    with replacement; the lowest ``fitness`` wins (ties: the lower index).  For NSGA-II,
    pass an ordinal key such as the position in (rank, -crowding) order.

    Parameters
    ----------
    fitness : (n,) array of float
        Lower is better.
    n_select : int
        Number of winners.
    tournament_size : int
        Contestants per tournament, >= 1.
    seed, stream_offset : int
        Tournament ``i`` uses stream ``stream_offset + i`` of ``seed``.
    n_threads : int, optional
        Threads (``None``/0/-1: all cores).

    Returns
    -------
    (n_select,) int64 array of indices into ``fitness``.
    """
    f = np.asarray(fitness)
    if f.dtype == object or not (np.issubdtype(f.dtype, np.floating)
                                 or np.issubdtype(f.dtype, np.integer)):
        raise TypeError(f"fitness must be a numeric array, got dtype {f.dtype}")
    if f.ndim != 1:
        raise ValueError(f"fitness must be 1-d, got shape {f.shape}")
    f = np.ascontiguousarray(f, dtype=np.float64)
    if np.isnan(f).any():
        raise ValueError("fitness contains NaN")
    n_select = _int("n_select", n_select, 0)
    k = _int("tournament_size", tournament_size, 1)
    if f.shape[0] == 0 and n_select > 0:
        raise ValueError("fitness is empty: nothing to select from")
    return _g.tournament_select(f, n_select, k, _u64("seed", seed),
                                _u64("stream_offset", stream_offset), n_threads)


def elite_indices(fitness: Any, n_elite: int) -> np.ndarray:
    """Indices of the ``n_elite`` best (lowest) fitness values, best first; ties go to
    the lower index."""
    f = np.asarray(fitness)
    if f.ndim != 1 or f.dtype == object or not (np.issubdtype(f.dtype, np.floating)
                                                or np.issubdtype(f.dtype, np.integer)):
        raise TypeError(f"fitness must be a 1-d numeric array, got {f.dtype} of shape {f.shape}")
    f = np.ascontiguousarray(f, dtype=np.float64)
    if np.isnan(f).any():
        raise ValueError("fitness contains NaN")
    n_elite = _int("n_elite", n_elite, 0)
    if n_elite > f.shape[0]:
        raise ValueError(f"n_elite ({n_elite}) exceeds the population size ({f.shape[0]})")
    return _g.elite_indices(f, n_elite)


# -- crossover -------------------------------------------------------------------------
def sbx_crossover(parents_a: Any, parents_b: Any, lower: Any, upper: Any, *, eta: float = 15.0,
                  prob: float = 0.9, prob_var: float = 0.5, integer: Any = None, seed: int = 0,
                  stream_offset: int = 0, n_threads: int | None = None,
                  out: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Bounded simulated binary crossover (Deb and Agrawal 1995; Deb's NSGA-II code).

    Pair ``i`` (rows ``parents_a[i]``, ``parents_b[i]``) is crossed with probability
    ``prob``; then each gene with probability ``prob_var`` gets the bounded SBX spread
    ``beta_q`` drawn with distribution index ``eta`` (large ``eta``: children near the
    parents), and the two children's genes are swapped with probability 1/2.

    ``out=(children_a, children_b)``: C-contiguous float64 arrays of shape
    ``(m, n_genes)`` to write the children into (e.g. the two halves of a preallocated
    next population), instead of new arrays.

    Returns
    -------
    children_a, children_b : (m, n_genes) arrays within ``[lower, upper]``.
    """
    pa, pb, lo, hi = _parents(parents_a, parents_b, lower, upper)
    mask = _integer_mask(integer, pa.shape[1], lo, hi)
    ca = cb = None
    if out is not None:
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError("out must be a tuple (children_a, children_b) of arrays")
        ca, cb = (_out_array(f"out[{k}]", o, pa.shape) for k, o in enumerate(out))
        if np.shares_memory(ca, cb) or any(np.shares_memory(o, p) for o in (ca, cb)
                                           for p in (pa, pb)):
            raise ValueError("out arrays must not overlap each other or the parents")
    return _g.sbx_crossover(pa, pb, lo, hi, mask, _real("eta", eta, 0.0), _prob("prob", prob),
                            _prob("prob_var", prob_var), _u64("seed", seed),
                            _u64("stream_offset", stream_offset), n_threads, ca, cb)


def _out_array(name: str, o: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(o, np.ndarray) or o.dtype != np.float64 or not o.flags.c_contiguous \
            or not o.flags.writeable:
        raise TypeError(f"{name} must be a writeable C-contiguous float64 array")
    if o.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {o.shape}")
    return o


def sbx_offspring(population: Any, pairs: Any, lower: Any, upper: Any, *, eta: float = 15.0,
                  prob: float = 0.9, prob_var: float = 0.5, integer: Any = None, seed: int = 0,
                  stream_offset: int = 0, n_threads: int | None = None,
                  out: np.ndarray | None = None, mutation_prob_var: float = 0.0,
                  mutation_eta: float = 20.0, mutation_seed: int = 0,
                  mutation_stream_offset: int = 0) -> np.ndarray:
    """SBX children of selected pairs, read straight from the population (no gathered
    copy of the parents), optionally followed by polynomial mutation of each child
    while it is still in cache.

    Parameters
    ----------
    population : (n, n_genes) array
    pairs : (m, 2) int array
        Row indices of the two parents of each pair (e.g. two tournament winners).
    out : (2 * m, n_genes) float64 C-contiguous array, optional
        Where to write the children (must not overlap ``population``).
    mutation_prob_var, mutation_eta, mutation_seed, mutation_stream_offset
        With ``mutation_prob_var > 0`` the children are then mutated: the result equals
        ``polynomial_mutation(children, lower, upper, eta=mutation_eta,
        prob_var=mutation_prob_var, integer=integer, seed=mutation_seed,
        stream_offset=mutation_stream_offset)``, in one pass.

    Returns
    -------
    (2 * m, n_genes) array: the first children of the pairs in rows ``0 .. m-1``, the
    second ones in rows ``m .. 2m-1``; identical to ``sbx_crossover`` of
    ``population[pairs[:, 0]]`` and ``population[pairs[:, 1]]`` with the same seed.
    """
    X = _matrix("population", population, finite=False)
    lo, hi = _bounds(lower, upper, X.shape[1])
    _in_bounds("population", X, lo, hi)
    P = np.asarray(pairs)
    if P.dtype == object or not np.issubdtype(P.dtype, np.integer):
        raise TypeError(f"pairs must be an integer array, got dtype {P.dtype}")
    if P.ndim != 2 or P.shape[1] != 2:
        raise ValueError(f"pairs must have shape (m, 2), got {P.shape}")
    if P.size and (P.min() < 0 or P.max() >= X.shape[0]):
        raise ValueError(f"pairs must index rows of population (0 .. {X.shape[0] - 1})")
    P = np.ascontiguousarray(P, dtype=np.int64)
    if out is not None:
        out = _out_array("out", out, (2 * P.shape[0], X.shape[1]))
        if np.shares_memory(out, X):
            raise ValueError("out must not overlap population")
    mask = _integer_mask(integer, X.shape[1], lo, hi)
    return _g.sbx_crossover_indexed(X, P, lo, hi, mask, _real("eta", eta, 0.0),
                                    _prob("prob", prob), _prob("prob_var", prob_var),
                                    _u64("seed", seed), _u64("stream_offset", stream_offset),
                                    n_threads, out, _real("mutation_eta", mutation_eta, 0.0),
                                    _prob("mutation_prob_var", mutation_prob_var),
                                    _u64("mutation_seed", mutation_seed),
                                    _u64("mutation_stream_offset", mutation_stream_offset))


def uniform_crossover(parents_a: Any, parents_b: Any, *, prob: float = 0.9,
                      prob_var: float = 0.5, seed: int = 0, stream_offset: int = 0,
                      n_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Uniform crossover: with probability ``prob`` a pair is crossed, and then each
    gene is swapped between the two children with probability ``prob_var``."""
    pa = _matrix("parents_a", parents_a)
    pb = _matrix("parents_b", parents_b, pa.shape[1])
    if pb.shape[0] != pa.shape[0]:
        raise ValueError(f"parents_a and parents_b must have the same number of rows, got "
                         f"{pa.shape[0]} and {pb.shape[0]}")
    return _g.uniform_crossover(pa, pb, _prob("prob", prob), _prob("prob_var", prob_var),
                                _u64("seed", seed), _u64("stream_offset", stream_offset),
                                n_threads)


def blend_crossover(parents_a: Any, parents_b: Any, lower: Any, upper: Any, *,
                    alpha: float = 0.5, prob: float = 0.9, integer: Any = None, seed: int = 0,
                    stream_offset: int = 0, n_threads: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """BLX-alpha (Eshelman and Schaffer 1993): each child gene is uniform on
    ``[min - alpha*d, max + alpha*d]`` with ``d = |a - b|``, clipped to the bounds."""
    pa, pb, lo, hi = _parents(parents_a, parents_b, lower, upper)
    mask = _integer_mask(integer, pa.shape[1], lo, hi)
    return _g.blend_crossover(pa, pb, lo, hi, mask, _real("alpha", alpha, 0.0),
                              _prob("prob", prob), _u64("seed", seed),
                              _u64("stream_offset", stream_offset), n_threads)


# -- mutation --------------------------------------------------------------------------
def _mutation_input(x: Any, lower: Any, upper: Any, integer: Any
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a = _matrix("x", x, finite=False).copy()
    lo, hi = _bounds(lower, upper, a.shape[1])
    _in_bounds("x", a, lo, hi)
    return a, lo, hi, _integer_mask(integer, a.shape[1], lo, hi)


def _prob_var(prob_var: Any, d: int) -> float:
    if prob_var is None:
        return 1.0 / max(d, 1)
    return _prob("prob_var", prob_var)


def polynomial_mutation(x: Any, lower: Any, upper: Any, *, eta: float = 20.0,
                        prob_var: float | None = None, integer: Any = None, seed: int = 0,
                        stream_offset: int = 0, n_threads: int | None = None,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Bounded polynomial mutation (Deb; the form of Deb's NSGA-II code).

    Each gene mutates with probability ``prob_var`` (default ``1 / n_genes``) by a
    perturbation whose spread shrinks as ``eta`` grows and which never leaves
    ``[lower, upper]``.  Row ``i`` uses stream ``stream_offset + i``.  Returns a new
    array, or ``out`` (a C-contiguous float64 array of x's shape; ``out=x`` mutates in
    place).
    """
    if out is not None:
        a = _out_array("out", out, np.shape(x))
        xin = _matrix("x", x, finite=False)
        lo, hi = _bounds(lower, upper, a.shape[1])
        _in_bounds("x", xin, lo, hi)
        mask = _integer_mask(integer, a.shape[1], lo, hi)
        if xin is not a:
            np.copyto(a, xin)
    else:
        a, lo, hi, mask = _mutation_input(x, lower, upper, integer)
    _g.polynomial_mutation(a, lo, hi, mask, _real("eta", eta, 0.0),
                           _prob_var(prob_var, a.shape[1]), _u64("seed", seed),
                           _u64("stream_offset", stream_offset), n_threads)
    return a


def gaussian_mutation(x: Any, lower: Any, upper: Any, *, sigma: float = 0.1,
                      prob_var: float | None = None, integer: Any = None, seed: int = 0,
                      stream_offset: int = 0, n_threads: int | None = None) -> np.ndarray:
    """Gaussian mutation: each gene with probability ``prob_var`` (default
    ``1 / n_genes``) moves by ``sigma * (upper - lower) * N(0, 1)``, then is clipped."""
    a, lo, hi, mask = _mutation_input(x, lower, upper, integer)
    _g.gaussian_mutation(a, lo, hi, mask, _real("sigma", sigma, 0.0),
                         _prob_var(prob_var, a.shape[1]), _u64("seed", seed),
                         _u64("stream_offset", stream_offset), n_threads)
    return a


def categorical_mutation(x: Any, n_categories: Any, *, prob: float = 0.1, seed: int = 0,
                         stream_offset: int = 0, n_threads: int | None = None) -> np.ndarray:
    """Reset categorical genes to another category.

    Columns with ``n_categories[j] >= 2`` hold category indices ``0 .. n_categories[j]-1``;
    each such gene is, with probability ``prob``, replaced by one of the *other*
    categories, uniformly.  Columns with ``n_categories[j] < 2`` are left alone.
    """
    a = _matrix("x", x).copy()
    nc = np.asarray(n_categories)
    if nc.dtype == object or not np.issubdtype(nc.dtype, np.integer):
        raise TypeError(f"n_categories must be an integer array, got dtype {nc.dtype}")
    if nc.shape != (a.shape[1],):
        raise ValueError(f"n_categories must have shape ({a.shape[1]},), got {nc.shape}")
    nc = np.ascontiguousarray(nc, dtype=np.int64)
    cat = nc >= 2
    xc = a[:, cat]
    if xc.size and ((xc != np.round(xc)).any() or (xc < 0).any() or (xc >= nc[cat]).any()):
        raise ValueError("x: categorical columns must hold category indices "
                         "0 .. n_categories-1")
    _g.categorical_mutation(a, nc, _prob("prob", prob), _u64("seed", seed),
                            _u64("stream_offset", stream_offset), n_threads)
    return a


# -- multi-objective -------------------------------------------------------------------
def _objectives(F: Any) -> np.ndarray:
    a = real_array(F, "F", 2)
    if a.shape[1] < 1:
        raise ValueError("F needs at least one objective column")
    return a


def nondominated_sort(F: Any) -> np.ndarray:
    """Pareto front index of every point (0 = non-dominated), all objectives minimized.

    Points are taken in lexicographic order (radix sort); two objectives use an
    O(N log N) sweep, three per-front bit sets over the second objective's ranks with
    batched binary searches over the fronts, more the ENS-BS algorithm (Zhang et al.
    2015).  Duplicates share a front.

    Parameters
    ----------
    F : (n_points, n_objectives) array

    Returns
    -------
    (n_points,) int64 array of front indices.
    """
    return _g.nondominated_sort(_objectives(F))


def crowding_distance(F: Any, ranks: Any = None, *, n_threads: int | None = None) -> np.ndarray:
    """NSGA-II crowding distance of each point within its front.

    For every objective the front is sorted (ties: lower index first); the two extreme
    points get ``inf`` and the others the normalized distance between their neighbours,
    summed over objectives.  Objectives constant over the front add nothing; fronts of
    one or two points are all ``inf``.

    Parameters
    ----------
    F : (n_points, n_objectives) array
    ranks : (n_points,) int array, optional
        Front of each point (from :func:`nondominated_sort`); ``None``: one front.
    """
    a = _objectives(F)
    n = a.shape[0]
    if ranks is None:
        r = np.zeros(n, dtype=np.int64)
    else:
        r = np.asarray(ranks)
        if r.dtype == object or not np.issubdtype(r.dtype, np.integer):
            raise TypeError(f"ranks must be an integer array, got dtype {r.dtype}")
        if r.shape != (n,):
            raise ValueError(f"ranks must have shape ({n},), got {r.shape}")
        if n and r.min() < 0:
            raise ValueError("ranks must be >= 0")
        r = np.ascontiguousarray(r, dtype=np.int64)
    n_fronts = int(r.max()) + 1 if n else 0
    return _g.crowding_distance(a, r, n_fronts, n_threads)


def nsga2_rank(F: Any, *, n_threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Front, crowding distance and NSGA-II order of every point.

    Returns
    -------
    ranks : (n,) int64 front index
    crowding : (n,) crowding distance within the front
    order : (n,) int64 permutation, best first: by front, then by decreasing crowding
        distance, then by index.
    """
    a = _objectives(F)
    ranks = _g.nondominated_sort(a)
    crowd = crowding_distance(a, ranks, n_threads=n_threads)
    order = np.lexsort((np.arange(a.shape[0]), -crowd, ranks)).astype(np.int64)
    return ranks, crowd, order
