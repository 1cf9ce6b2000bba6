"""Gaussian-process surrogate: fit hyperparameters, predict, log marginal likelihood.

The covariance is ``signal_var * k(r) + noise_var * I`` with ARD distance
``r^2 = sum_q (x_q - x'_q)^2 / l_q^2`` and ``k`` Matern-5/2 (default) or RBF.
Hyperparameters live in log space: ``theta = [log l_1..log l_d, log signal_var,
log noise_var]``.  Fitting maximizes the log marginal likelihood plus weak priors (the
ones of Optuna's GPSampler: ``-(0.1 l^2 + 0.1 / l^2)`` per lengthscale, Gamma(2, 1) on
the signal variance, Gamma(1.1, 30) on the noise variance) with L-BFGS-B from several
starts.  Inputs are expected in the unit cube and targets standardized.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from scipy.optimize import minimize

from hpcore.kernels._validate import real_array
from hpcore._kernels import gp as _gp

__all__ = ["GPModel", "gp_fit", "gp_predict", "gp_log_marginal_likelihood", "gp_kernel_matrix",
           "gp_log_prior", "KERNELS"]

KERNELS = {"matern52": 0, "rbf": 1}
MIN_NOISE_VAR = 1e-6

_controller = None


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """Limit BLAS to one thread (around parallel regions that call BLAS)."""
    global _controller
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a test/bench dependency
        yield
        return
    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        yield


def _as_matrix(a, name: str, d: int | None = None) -> np.ndarray:
    return real_array(a, name, 2, d)


def _as_vector(a, name: str, n: int | None = None) -> np.ndarray:
    return real_array(a, name, 1, n)


def _training_data(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = _as_matrix(X, "X")
    if X.shape[0] == 0:
        raise ValueError("X has no rows")
    return X, _as_vector(y, "y", X.shape[0])


def _kind(kernel: str) -> int:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
    return KERNELS[kernel]


@dataclass(frozen=True)
class GPModel:
    """A fitted GP (numbers only, picklable).

    Attributes
    ----------
    X : (n, d) ndarray
        Training inputs.
    y : (n,) ndarray
        Training targets.
    theta : (d + 2,) ndarray
        Log hyperparameters ``[log l, log signal_var, log noise_var]``.
    kernel : str
        ``"matern52"`` or ``"rbf"``.
    L : (n, n) ndarray
        Lower Cholesky factor of ``K + (noise_var + jitter) I``.
    alpha : (n,) ndarray
        ``(K + noise I)^{-1} y``.
    jitter : float
        Diagonal jitter added on top of ``noise_var`` to make the factorization succeed.
    log_marginal_likelihood : float
        At ``theta``, without the prior.
    """

    X: np.ndarray
    y: np.ndarray
    theta: np.ndarray
    kernel: str
    L: np.ndarray
    alpha: np.ndarray
    jitter: float
    log_marginal_likelihood: float
    n_evals: int = 0
    inv_l2: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        d = self.X.shape[1]
        object.__setattr__(self, "inv_l2", np.exp(-2.0 * self.theta[:d]))

    @property
    def lengthscales(self) -> np.ndarray:
        return np.exp(self.theta[:-2])

    @property
    def signal_var(self) -> float:
        return float(np.exp(self.theta[-2]))

    @property
    def noise_var(self) -> float:
        return float(np.exp(self.theta[-1]))

    @property
    def kind(self) -> int:
        return KERNELS[self.kernel]


def gp_log_prior(theta: np.ndarray, d: int) -> tuple[float, np.ndarray]:
    """Log prior density (up to a constant) of ``theta`` and its gradient."""
    theta = np.asarray(theta, dtype=np.float64)
    tl = theta[:d]
    e2 = np.exp(2.0 * tl)
    em2 = np.exp(-2.0 * tl)
    s = np.exp(theta[d])
    nv = np.exp(theta[d + 1])
    val = -0.1 * float(np.sum(e2 + em2)) + (theta[d] - s) + (0.1 * theta[d + 1] - 30.0 * nv)
    grad = np.empty(d + 2)
    grad[:d] = -0.2 * (e2 - em2)
    grad[d] = 1.0 - s
    grad[d + 1] = 0.1 - 30.0 * nv
    return val, grad


def gp_kernel_matrix(X1, X2=None, *, lengthscales, signal_var: float = 1.0,
                     kernel: str = "matern52", n_threads: int | None = None) -> np.ndarray:
    """Covariance ``signal_var * k(X1[i], X2[j])`` (no noise term).

    Parameters
    ----------
    X1 : (n1, d) array
    X2 : (n2, d) array, optional
        Defaults to ``X1``.
    lengthscales : (d,) array
        Positive ARD lengthscales.
    signal_var : float
        Positive signal variance.
    kernel : {"matern52", "rbf"}
    n_threads : int, optional
        OpenMP threads (None/0/-1: all cores).
    """
    kind = _kind(kernel)
    X1 = _as_matrix(X1, "X1")
    d = X1.shape[1]
    X2 = X1 if X2 is None else _as_matrix(X2, "X2", d)
    ls = _as_vector(lengthscales, "lengthscales", d)
    if not (ls > 0).all():
        raise ValueError("lengthscales must be > 0")
    if not (np.isfinite(signal_var) and signal_var > 0):
        raise ValueError(f"signal_var must be a finite number > 0, got {signal_var!r}")
    return _gp.kernel_matrix(X1, X2, 1.0 / ls ** 2, float(signal_var), kind, n_threads)


def gp_log_marginal_likelihood(X, y, theta, *, kernel: str = "matern52", prior: bool = False,
                               n_threads: int | None = None) -> tuple[float, np.ndarray]:
    """Log marginal likelihood (plus the log prior if ``prior``) and its gradient in ``theta``.

    Returns
    -------
    value : float
    grad : (d + 2,) ndarray
    """
    kind = _kind(kernel)
    X, y = _training_data(X, y)
    n, d = X.shape
    theta = _as_vector(theta, "theta", d + 2)
    with blas_single_thread():
        val, grad, _ = _gp.lml_grad(X, y, theta, kind, n_threads)
    if prior:
        pv, pg = gp_log_prior(theta, d)
        val, grad = val + pv, grad + pg
    return float(val), grad


def default_bounds(d: int) -> np.ndarray:
    """L-BFGS-B bounds of ``theta`` for unit-cube inputs and standardized targets."""
    b = np.empty((d + 2, 2))
    b[:d] = (np.log(1e-3), np.log(1e3))
    b[d] = (np.log(1e-3), np.log(1e3))
    b[d + 1] = (np.log(MIN_NOISE_VAR), np.log(1.0))
    return b


def gp_fit(X, y, *, kernel: str = "matern52", theta0=None, n_restarts: int = 2,
           optimize: bool = True, prior: bool = True, maxiter: int = 200, bounds=None,
           seed: int = 0, n_threads: int | None = None) -> GPModel:
    """Fit a GP: maximize the log marginal likelihood (+ log prior) with L-BFGS-B.

    Parameters
    ----------
    X : (n, d) array
        Inputs (ideally in the unit cube).
    y : (n,) array
        Targets (ideally standardized).
    kernel : {"matern52", "rbf"}
    theta0 : (d + 2,) array, optional
        A warm start (e.g. the previous fit); always one of the starts.
    n_restarts : int
        Extra starts: the default ``theta`` (unit lengthscales and signal, noise 1e-2)
        and ``n_restarts - 1`` random ones.  The best local optimum wins.
    optimize : bool
        If False, only factorize at ``theta0`` (required then).
    prior : bool
        Add the weak hyperparameter priors.
    maxiter : int
        L-BFGS-B iterations per start.
    bounds : (d + 2, 2) array, optional
        Bounds of ``theta`` (default :func:`default_bounds`).
    seed : int
        Seed of the random starts.
    n_threads : int, optional
        OpenMP threads.
    """
    kind = _kind(kernel)
    X, y = _training_data(X, y)
    n, d = X.shape
    if isinstance(n_restarts, bool) or not isinstance(n_restarts, (int, np.integer)) or n_restarts < 0:
        raise ValueError(f"n_restarts must be an int >= 0, got {n_restarts!r}")
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
        raise ValueError(f"maxiter must be an int >= 1, got {maxiter!r}")
    b = default_bounds(d) if bounds is None else np.asarray(bounds, dtype=np.float64)
    if b.shape != (d + 2, 2) or not np.isfinite(b).all() or not (b[:, 0] <= b[:, 1]).all():
        raise ValueError(f"bounds must be a finite ({d + 2}, 2) array with low <= high")
    if theta0 is not None:
        theta0 = _as_vector(theta0, "theta0", d + 2)
    if not optimize:
        if theta0 is None:
            raise ValueError("theta0 is required when optimize=False")
        with blas_single_thread():
            return _factorized(X, y, theta0, kernel, kind, n_threads, 0)
    with blas_single_thread():
        return _fit(X, y, kernel, kind, theta0, n_restarts, prior, maxiter, b, seed, n_threads)


def _fit(X, y, kernel, kind, theta0, n_restarts, prior, maxiter, b, seed, n_threads) -> GPModel:
    d = X.shape[1]

    starts = []
    if theta0 is not None:
        starts.append(np.clip(theta0, b[:, 0], b[:, 1]))
    if n_restarts >= 1 or not starts:
        default = np.zeros(d + 2)
        default[d + 1] = np.log(1e-2)
        starts.append(np.clip(default, b[:, 0], b[:, 1]))
    if n_restarts > 1:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) % 2 ** 63, 7]))
        for _ in range(n_restarts - 1):
            t = np.empty(d + 2)
            t[:d] = rng.uniform(np.log(0.05), np.log(3.0), d)
            t[d] = rng.uniform(np.log(0.3), np.log(3.0))
            t[d + 1] = rng.uniform(np.log(1e-5), np.log(1e-1))
            starts.append(np.clip(t, b[:, 0], b[:, 1]))

    n_evals = 0

    def neg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal n_evals
        n_evals += 1
        try:
            v, g, _ = _gp.lml_grad(X, y, theta, kind, n_threads)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        if prior:
            pv, pg = gp_log_prior(theta, d)
            v, g = v + pv, g + pg
        if not np.isfinite(v):
            return 1e25, np.zeros_like(theta)
        return -v, -g

    best_t, best_v = None, np.inf
    for t0 in starts:
        res = minimize(neg, t0, jac=True, method="L-BFGS-B", bounds=b,
                       options={"maxiter": int(maxiter)})
        if res.fun < best_v:
            best_v, best_t = float(res.fun), np.asarray(res.x, dtype=np.float64)
    return _factorized(X, y, best_t, kernel, kind, n_threads, n_evals)


def _factorized(X, y, theta, kernel, kind, n_threads, n_evals) -> GPModel:
    L, alpha, jitter, lml = _gp.factorize(X, y, np.ascontiguousarray(theta), kind, n_threads)
    return GPModel(X=X, y=y, theta=np.array(theta, dtype=np.float64), kernel=kernel, L=L,
                   alpha=alpha, jitter=float(jitter), log_marginal_likelihood=float(lml),
                   n_evals=n_evals)


def gp_predict(model: GPModel, Xq, *, return_grad: bool = False, include_noise: bool = False,
               n_threads: int | None = None):
    """Posterior mean and variance at the rows of ``Xq``.

    Parameters
    ----------
    model : GPModel
    Xq : (m, d) array
    return_grad : bool
        Also return ``dmean/dx`` and ``dvar/dx``, shape ``(m, d)`` each.
    include_noise : bool
        Add the noise variance to the (latent) variance.

    Returns
    -------
    mean, var : (m,) ndarrays (and dmean, dvar if ``return_grad``)
    """
    if not isinstance(model, GPModel):
        raise TypeError(f"model must be a GPModel, got {type(model).__name__}")
    Xq = _as_matrix(Xq, "Xq", model.X.shape[1])
    with blas_single_thread():
        out = _gp.predict(model.X, model.L, model.alpha, model.inv_l2, model.signal_var,
                          model.kind, Xq, bool(return_grad), n_threads)
    if include_noise:
        out = list(out)
        out[1] = out[1] + model.noise_var
        out = tuple(out)
    return out
