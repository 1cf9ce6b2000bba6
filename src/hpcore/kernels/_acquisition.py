"""Acquisition functions on a fitted GP and their maximizer.

The GP models a quantity to MINIMIZE (flip the sign of a maximization objective first);
``f_best`` is the incumbent, by default ``model.y.min()``.  Every acquisition is to be
maximized:

* ``"logei"``: log expected improvement in the numerically stable form of Ament et al.
  (2023), finite (and monotone in ``f_best - mean``) where EI underflows to 0;
* ``"ei"``: expected improvement ``sigma h(z)``, ``h(z) = phi(z) + z Phi(z)``;
* ``"ucb"``: ``-mean + sqrt(beta) sigma`` (a lower confidence bound of the minimized
  quantity, negated);
* ``"pi"``: probability of improvement ``Phi(z)``;

with ``z = (f_best - mean) / sigma`` and ``sigma`` the latent posterior std.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

from hpcore._kernels import acquisition as _acq
from hpcore.kernels._gp import GPModel, _as_matrix, _as_vector, blas_single_thread

__all__ = ["ACQUISITIONS", "acquisition", "maximize_acquisition", "log_h"]

ACQUISITIONS = {"logei": 0, "ei": 1, "ucb": 2, "pi": 3}
# maximize_acquisition picks its Sobol starts with screening (tests turn it off to check
# that the starts are the same)
_SCREEN = True


def _acq_kind(name: str) -> int:
    if name not in ACQUISITIONS:
        raise ValueError(f"acquisition must be one of {sorted(ACQUISITIONS)}, got {name!r}")
    return ACQUISITIONS[name]


def _check_model(model) -> None:
    if not isinstance(model, GPModel):
        raise TypeError(f"model must be a GPModel, got {type(model).__name__}")


def _scalars(model: GPModel, f_best, beta) -> tuple[float, float]:
    f = float(np.min(model.y)) if f_best is None else f_best
    if isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)) \
            or not np.isfinite(f):
        raise ValueError(f"f_best must be a finite number, got {f_best!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    return float(f), float(beta)


def log_h(z) -> tuple[np.ndarray, np.ndarray]:
    """``log(phi(z) + z Phi(z))`` and its derivative, stable for very negative ``z``."""
    return _acq.log_h_array(_as_vector(np.atleast_1d(z), "z"))


def acquisition(model: GPModel, Xq, *, kind: str = "logei", f_best: float | None = None,
                beta: float = 2.0, return_grad: bool = False, n_threads: int | None = None):
    """Acquisition values at the rows of ``Xq`` (to maximize).

    Parameters
    ----------
    model : GPModel
        A fitted GP of the quantity to minimize.
    Xq : (m, d) array
    kind : {"logei", "ei", "ucb", "pi"}
    f_best : float, optional
        Incumbent; defaults to ``min(model.y)``.
    beta : float
        UCB's exploration weight (``sqrt(beta)`` multiplies sigma).
    return_grad : bool
        Also return the gradient with respect to x, shape ``(m, d)``.
    n_threads : int, optional
        OpenMP threads (None/0/-1: all cores).
    """
    _check_model(model)
    acq = _acq_kind(kind)
    f, b = _scalars(model, f_best, beta)
    Xq = _as_matrix(Xq, "Xq", model.X.shape[1])
    with blas_single_thread():
        if not return_grad:
            return _acq.acquisition_batch(model.X, model.L, model.alpha, model.inv_l2,
                                          model.signal_var, model.kind, acq, f, b, Xq, n_threads)
        return _acq.acquisition_values(model.X, model.L, model.alpha, model.inv_l2,
                                       model.signal_var, model.kind, acq, f, b, Xq, True,
                                       n_threads)


_SOBOL_BITS = 30


@lru_cache(maxsize=64)
def _sobol_plan(d: int, m: int):
    """Direction numbers of scipy's unscrambled Sobol' sequence (bit columns 0..m-1, as
    rows ``(m, d)``; recovered from its points 1 and 2^b, which the Gray code makes
    ``v_0`` and ``v_b ^ v_{b-1}``), the trailing-zero count of every index below 2^m, and
    the bit weights of the linear matrix scramble (row i of a matrix as an integer,
    column 0 the top bit; strictly lower triangle)."""
    import warnings

    from scipy.stats import qmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # n not a power of 2
        pts = qmc.Sobol(d, scramble=False).random(2 ** (m - 1) + 1)
    q = np.rint(pts * 2.0 ** _SOBOL_BITS).astype(np.uint32)
    sv = np.empty((m, d), dtype=np.uint32)
    prev = np.zeros(d, dtype=np.uint32)
    for b in range(m):
        sv[b] = q[2 ** b] ^ prev
        prev = sv[b]
    i = np.arange(1, 2 ** m)
    ctz = np.zeros(2 ** m, dtype=np.intp)
    ctz[1:] = np.log2(i & -i).astype(np.intp)
    w = np.uint32(1) << np.arange(_SOBOL_BITS - 1, -1, -1, dtype=np.uint32)
    wl = np.tril(np.broadcast_to(w, (_SOBOL_BITS, _SOBOL_BITS)), -1).astype(np.uint32)
    for a in (sv, ctz, w, wl):
        a.setflags(write=False)
    return sv, ctz, w, wl


def _parity(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> 16)
    x ^= x >> 8
    x ^= x >> 4
    x ^= x >> 2
    x ^= x >> 1
    return x & np.uint32(1)


def _sobol(d: int, n: int, seed: int) -> np.ndarray:
    """The first ``n`` points of ``scipy.stats.qmc.Sobol(d, scramble=True, rng=g)
    .random_base2(m)`` (scipy >= 1.15; ``g`` seeded by ``seed``, ``2^m >= n``), computed
    directly: the
    same random draws (the generator scipy spawns from ``g``: shift bits, then the
    lower-triangular scramble matrices, diagonal 1), the same LMS scramble of the
    direction numbers (GF(2) matrix-vector products, as parities) and the Gray-code
    points as a cumulative XOR; about a third of the time of building scipy's engine,
    whose scramble also covers the 30 - m direction numbers never used (tests compare
    the two)."""
    gen = np.random.default_rng(np.random.SeedSequence([int(seed) % 2 ** 63, 11]).spawn(1)[0])
    m = max(1, int(np.ceil(np.log2(max(n, 1)))))
    sv, ctz, w, wl = _sobol_plan(d, m)
    bits = _SOBOL_BITS
    shift = gen.integers(0, 2, size=(d, bits), dtype=np.uint32) @ w[::-1]
    raw = gen.integers(0, 2, size=(d, bits, bits), dtype=np.uint32)
    lsm = (raw * wl).sum(axis=2, dtype=np.uint32) + w          # (d, bits): matrix rows
    svs = (_parity(lsm[None, :, :] & sv[:, :, None]) * w).sum(axis=2, dtype=np.uint32)
    steps = svs[ctz]                                              # (2^m, d)
    steps[0] = shift
    return np.bitwise_xor.accumulate(steps, axis=0)[:n] * (1.0 / 2 ** bits)


class _Columns:
    """Column types for the maximizer: continuous, ordinal (a sorted level grid),
    categorical (a one-hot block)."""

    def __init__(self, d: int, bounds, discrete, categorical) -> None:
        if bounds is None:
            self.lower, self.upper = np.zeros(d), np.ones(d)
        else:
            b = np.asarray(bounds, dtype=np.float64)
            if b.shape != (d, 2) or not np.isfinite(b).all() or not (b[:, 0] <= b[:, 1]).all():
                raise ValueError(f"bounds must be a finite ({d}, 2) array with low <= high")
            self.lower, self.upper = np.ascontiguousarray(b[:, 0]), np.ascontiguousarray(b[:, 1])
        self.ctype = np.zeros(d, dtype=np.intc)
        self.gstart = np.arange(d, dtype=np.intp)
        self.gstop = np.arange(1, d + 1, dtype=np.intp)
        lv: list[np.ndarray] = [np.empty(0)] * d
        for j, levels in (discrete or {}).items():
            if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < d:
                raise ValueError(f"discrete: column index {j!r} is out of range [0, {d})")
            arr = np.sort(np.asarray(levels, dtype=np.float64).ravel())
            if arr.size == 0 or not np.isfinite(arr).all():
                raise ValueError(f"discrete[{j}]: levels must be a non-empty finite list")
            self.ctype[j] = 1
            lv[j] = arr
        for blk in (categorical or ()):
            try:
                a, b = (int(v) for v in blk)
            except (TypeError, ValueError):
                raise ValueError(f"categorical: blocks must be (start, stop) pairs, got {blk!r}") from None
            if not (0 <= a < b <= d):
                raise ValueError(f"categorical: block {blk!r} is out of range for d={d}")
            if (self.ctype[a:b] != 0).any():
                raise ValueError(f"categorical: block {blk!r} overlaps another discrete column")
            self.ctype[a:b] = 2
            self.gstart[a:b] = a
            self.gstop[a:b] = b
        self.lvl_off = np.zeros(d + 1, dtype=np.intp)
        self.lvl_off[1:] = np.cumsum([len(v) for v in lv])
        self.levels = np.ascontiguousarray(np.concatenate(lv + [np.zeros(1)]))
        self.lv = lv

    def snap(self, x: np.ndarray) -> np.ndarray:
        x = np.clip(x, self.lower, self.upper)
        for j in np.flatnonzero(self.ctype == 1):
            lv = self.lv[j]
            x[:, j] = lv[np.argmin(np.abs(x[:, j:j + 1] - lv[None, :]), axis=1)]
        done = set()
        for j in np.flatnonzero(self.ctype == 2):
            a, b = int(self.gstart[j]), int(self.gstop[j])
            if a in done:
                continue
            done.add(a)
            k = np.argmax(x[:, a:b], axis=1)
            x[:, a:b] = 0.0
            x[np.arange(len(x)), a + k] = 1.0
        return x


def maximize_acquisition(model: GPModel, *, kind: str = "logei", f_best: float | None = None,
                         beta: float = 2.0, bounds=None,
                         discrete: Mapping[int, Sequence[float]] | None = None,
                         categorical: Sequence[tuple[int, int]] | None = None,
                         x0=None, n_starts: int = 16, n_raw_samples: int = 1024,
                         x_best=None, perturb_scale: float = 0.05, exclude=None,
                         seed: int = 0, maxiter: int = 100, return_all: bool = False,
                         n_threads: int | None = None):
    """Maximize an acquisition over a box with optional discrete columns.

    Starts: the best ``n_starts - n_perturb`` of ``n_raw_samples`` scrambled Sobol points
    and Gaussian perturbations (std ``perturb_scale``) of the rows of ``x_best`` (half
    of the starts when given), plus the rows of ``x0``.  Every start runs a projected
    L-BFGS on the relaxed problem in parallel (OpenMP, no GIL); discrete columns are then
    rounded (ordinal: nearest level, categorical: one-hot arg-max), re-scored, improved
    by a local search over discrete neighbours and the continuous columns re-optimized.

    Parameters
    ----------
    model : GPModel
    kind : {"logei", "ei", "ucb", "pi"}
    f_best, beta : float
        See :func:`acquisition`.
    bounds : (d, 2) array, optional
        Box; defaults to the unit cube.
    discrete : mapping column -> sorted allowed values, optional
        Ordinal columns (integers, stepped floats) as their encoded levels.
    categorical : sequence of (start, stop), optional
        One-hot blocks.
    x0 : (k, d) array, optional
        Extra starting points.
    n_starts : int
        Number of L-BFGS starts (besides ``x0``).
    n_raw_samples : int
        Sobol points scored to pick starts.
    x_best : (k, d) array, optional
        Points (e.g. the best observed) whose perturbations seed half of the starts.
    exclude : (k, d) array, optional
        Points never to return (e.g. the already evaluated ones): a candidate within
        1e-9 of a row is skipped for the next best.
    seed : int
        Seed of the Sobol scramble and the perturbations.
    maxiter : int
        L-BFGS iterations per start.
    return_all : bool
        Return every distinct candidate, best first, instead of the best.

    Returns
    -------
    x : (d,) ndarray, value : float
        Or ``(xs, values)`` sorted best first if ``return_all``.
    """
    _check_model(model)
    acq = _acq_kind(kind)
    f, b = _scalars(model, f_best, beta)
    d = model.X.shape[1]
    for name, v, lo in (("n_starts", n_starts, 0), ("n_raw_samples", n_raw_samples, 0),
                        ("maxiter", maxiter, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if not (np.isfinite(perturb_scale) and perturb_scale >= 0):
        raise ValueError(f"perturb_scale must be a finite number >= 0, got {perturb_scale!r}")
    cols = _Columns(d, bounds, discrete, categorical)
    span = cols.upper - cols.lower
    starts = [] if x0 is None else [_as_matrix(x0, "x0", d)]
    excl = None if exclude is None else _as_matrix(exclude, "exclude", d)
    if x_best is not None:
        x_best = _as_matrix(x_best, "x_best", d)
    if n_starts + (0 if x0 is None else len(starts[0])) == 0:
        raise ValueError("no starting points: n_starts is 0 and x0 is empty")

    from hpcore.kernels._random import normal_streams

    with blas_single_thread():
        raw = None
        n_pert = 0
        if x_best is not None and len(x_best) and n_starts > 0:
            n_pert = n_starts // 2
            eps = normal_streams(int(seed), n_pert, d, stream_offset=1 << 40, n_threads=1)
            base = x_best[np.arange(n_pert) % len(x_best)]
            starts.append(np.clip(base + perturb_scale * span * eps, cols.lower, cols.upper))
        n_sob = n_starts - n_pert
        if n_sob > 0 or n_raw_samples > 0:
            m = max(n_raw_samples, n_sob)
            raw = cols.snap(cols.lower + span * _sobol(d, m, seed))
            if n_sob > 0:
                # the n_sob best raw points (ties by index), screened: the same as
                # scoring every point (acquisition_top)
                top, _, _ = _acq.acquisition_top(model.X, model.L, model.alpha, model.inv_l2,
                                                 model.signal_var, model.kind, acq, f, b,
                                                 raw, n_sob, _SCREEN, n_threads)
                starts.append(raw[top])
        X0 = np.ascontiguousarray(np.vstack(starts))
        xs, vals = _acq.maximize(model.X, model.L, model.alpha, model.inv_l2, model.signal_var,
                                 model.kind, acq, f, b, X0, cols.lower, cols.upper, cols.ctype,
                                 cols.lvl_off, cols.levels, cols.gstart, cols.gstop,
                                 int(maxiter), 5, n_threads)
    # the continuous phase ends in [lower, upper]; snapping is idempotent on results
    xs = cols.snap(xs)
    vals = np.where(np.isfinite(vals), vals, -np.inf)
    order = np.argsort(-vals, kind="stable")
    xs, vals = _filter(xs[order], vals[order], excl)
    if len(xs) == 0 and raw is not None:
        # every optimized candidate is excluded: fall back on the raw Sobol points
        xs, vals = _filter(raw, np.full(len(raw), -np.inf), excl)
    if return_all:
        return xs, vals
    if len(xs) == 0:
        raise ValueError("every candidate is excluded: the space may be exhausted")
    return xs[0], float(vals[0])


def _filter(xs: np.ndarray, vals: np.ndarray, excl: np.ndarray | None):
    """Drop candidates within 1e-9 (max norm) of an excluded row, and repeats."""
    keep = np.ones(len(xs), dtype=bool)
    if excl is not None and len(excl) and len(xs):
        # only the rows whose first column lies in a (widened) 1e-9 window of a
        # candidate's can be within 1e-9 of it: those get the full test
        order = np.argsort(excl[:, 0], kind="stable")
        c0 = excl[order, 0]
        a = xs[:, 0]
        tol = 2e-9 + 1e-12 * np.abs(a)
        lo = np.searchsorted(c0, a - tol, side="left")
        hi = np.searchsorted(c0, a + tol, side="right")
        for i in np.flatnonzero(hi > lo):
            e = excl[order[lo[i]:hi[i]]]
            if (np.abs(e - xs[i]).max(axis=1) <= 1e-9).any():
                keep[i] = False
    for i in range(1, len(xs)):
        if keep[i] and (np.abs(xs[:i][keep[:i]] - xs[i]).max(axis=1) <= 1e-12).any():
            keep[i] = False
    return xs[keep], vals[keep]
