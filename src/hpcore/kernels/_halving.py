"""Rung bookkeeping for successive halving, Hyperband and ASHA (see ``_kernels/halving.pyx``)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hpcore._kernels.halving import RungBook
from hpcore.kernels._random import uniform_streams

__all__ = ["Bracket", "RungBook", "hyperband_brackets", "make_rung_book", "rung_levels",
           "top_k"]


@dataclass(frozen=True)
class Bracket:
    """One Hyperband bracket: ``n[i]`` configurations run with resource ``r[i]``."""

    s: int
    n: tuple[int, ...]
    r: tuple[float, ...]


_MAX_ETA = 2**31 - 1   # the compiled rung book holds eta in a C int


def _check_resources(min_resource: float, max_resource: float, eta: int) -> None:
    if isinstance(eta, bool) or not isinstance(eta, (int, np.integer)):
        raise TypeError(f"eta must be an int, got {type(eta).__name__}")
    if not 2 <= eta <= _MAX_ETA:
        raise ValueError(f"eta must be in [2, {_MAX_ETA}], got {eta}")
    for name, v in (("min_resource", min_resource), ("max_resource", max_resource)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number, got {type(v).__name__}")
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be finite and > 0, got {v}")
    if max_resource < min_resource:
        raise ValueError(f"max_resource ({max_resource}) must be >= min_resource ({min_resource})")
    if not math.isfinite(float(max_resource) / float(min_resource)):
        raise ValueError(f"max_resource / min_resource must be finite, got "
                         f"{max_resource} / {min_resource}")


def _s_max(min_resource: float, max_resource: float, eta: int) -> int:
    # Largest s with eta**s <= R = max/min; exact for integers, tolerant for floats.
    s = 0
    if all(isinstance(v, (int, np.integer)) for v in (min_resource, max_resource)):
        while int(min_resource) * eta ** (s + 1) <= int(max_resource):
            s += 1
    else:   # in logs: eta**(s + 1) need not fit in a float
        log_r = math.log(max_resource) - math.log(min_resource)
        while (s + 1) * math.log(eta) <= log_r + 1e-12:
            s += 1
    return s


def rung_levels(min_resource: float, max_resource: float, eta: int) -> np.ndarray:
    """Resources of the rung levels: ``max_resource * eta**(L - s_max)``, L = 0..s_max.

    As in Li et al. (2018) the top level is exactly ``max_resource``; the lowest is
    ``>= min_resource`` (equal when ``max/min`` is a power of ``eta``).
    """
    _check_resources(min_resource, max_resource, eta)
    s_max = _s_max(min_resource, max_resource, eta)
    if all(isinstance(v, (int, np.integer)) for v in (min_resource, max_resource)) and \
            int(min_resource) * eta ** s_max == int(max_resource):
        return np.array([int(min_resource) * eta ** L for L in range(s_max + 1)], dtype=np.float64)
    return np.array([max_resource / eta ** (s_max - L) for L in range(s_max + 1)],
                    dtype=np.float64)


def hyperband_brackets(min_resource: float, max_resource: float, eta: int = 3) -> list[Bracket]:
    """The brackets of Hyperband (Li et al. 2018, Algorithm 1), most aggressive first.

    With ``R = max_resource / min_resource`` and ``s_max = floor(log_eta R)``, bracket
    ``s`` (``s = s_max .. 0``) starts ``n = ceil((s_max + 1) / (s + 1) * eta**s)``
    configurations; rung ``i`` runs ``n_i = floor(n * eta**-i)`` of them with resource
    ``r_i = max_resource * eta**(i - s)``.

    Examples
    --------
    >>> [(b.n, b.r[0]) for b in hyperband_brackets(1, 81, 3)][:2]
    [((81, 27, 9, 3, 1), 1.0), ((34, 11, 3, 1), 3.0)]
    """
    levels = rung_levels(min_resource, max_resource, eta)
    s_max = len(levels) - 1
    out = []
    for s in range(s_max, -1, -1):
        n = ((s_max + 1) * eta ** s + s) // (s + 1)  # exact integer ceil
        ns = tuple(n // eta ** i for i in range(s + 1))
        rs = tuple(float(levels[s_max - s + i]) for i in range(s + 1))
        out.append(Bracket(s=s, n=ns, r=rs))
    return out


def make_rung_book(kind: str, min_resource: float, max_resource: float, eta: int = 3, *,
                   direction: str = "minimize", n_configs: int | None = None,
                   asynchronous: bool = False, seed: int = 0) -> RungBook:
    """Build the :class:`RungBook` of one early-stopping scheme.

    Parameters
    ----------
    kind : {"sh", "hyperband", "asha"}
        ``"sh"``: synchronous successive halving over cohorts of ``n_configs``
        consecutive trials (default ``eta**s_max``, Hyperband's most aggressive
        bracket).  ``"hyperband"``: every ``sum(n_s)`` consecutive trials form one
        Hyperband iteration; bracket ``s`` gets ``n_s`` of them, placed by a fixed
        pseudo-random permutation of ``seed``; each bracket runs successive halving
        (or ASHA with ``asynchronous=True``).  ``"asha"``: one asynchronous bracket.
    min_resource, max_resource : float
        Smallest and largest resource (steps) of a trial.
    eta : int
        Reduction factor, >= 2.
    direction : {"minimize", "maximize"}
    n_configs : int, optional
        Cohort size for ``"sh"``.
    asynchronous : bool
        For ``"hyperband"``: ASHA promotions inside each bracket.
    seed : int
        Seed of the bracket permutation (``"hyperband"``).
    """
    if kind not in ("sh", "hyperband", "asha"):
        raise ValueError(f"kind must be 'sh', 'hyperband' or 'asha', got {kind!r}")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    levels = rung_levels(min_resource, max_resource, eta)
    n_levels = len(levels)
    s_max = n_levels - 1
    maximize = direction == "maximize"
    if kind == "asha":
        return RungBook(levels, int(eta), maximize, False, np.zeros(1, np.int32),
                        np.zeros(1, np.int32), np.zeros((1, n_levels), np.int64))
    if kind == "sh":
        if n_configs is None:
            n_configs = eta ** s_max
        if isinstance(n_configs, bool) or not isinstance(n_configs, (int, np.integer)):
            raise TypeError(f"n_configs must be an int, got {type(n_configs).__name__}")
        if n_configs < eta ** s_max:
            raise ValueError(f"n_configs must be >= eta**s_max = {eta ** s_max} so that one "
                             f"configuration reaches max_resource, got {n_configs}")
        quota = np.array([[n_configs // eta ** (L + 1) for L in range(n_levels)]], np.int64)
        return RungBook(levels, int(eta), maximize, True, np.zeros(int(n_configs), np.int32),
                        np.zeros(1, np.int32), quota)
    brackets = hyperband_brackets(min_resource, max_resource, eta)
    n_br = len(brackets)
    quota = np.zeros((n_br, n_levels), np.int64)
    for b, br in enumerate(brackets):  # bracket b = s_max - s starts at level b
        for i in range(len(br.n) - 1):
            quota[b, b + i] = br.n[i + 1]
    slots = np.repeat(np.arange(n_br, dtype=np.int32), [br.n[0] for br in brackets])
    order = np.argsort(uniform_streams(int(seed), 1, len(slots))[0], kind="stable")
    return RungBook(levels, int(eta), maximize, not asynchronous,
                    np.ascontiguousarray(slots[order]), np.arange(n_br, dtype=np.int32), quota)


def top_k(values: np.ndarray, k: int, direction: str = "minimize") -> np.ndarray:
    """Indices of the ``k`` best values, best first (NaN worst, ties by lower index)."""
    if np.iscomplexobj(values):
        raise TypeError("values must be real numbers, got a complex array")
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    key = -v if direction == "maximize" else v
    isn = np.isnan(key)
    key = np.where(isn, 0.0, key)
    order = np.lexsort((np.arange(len(v)), key, isn))
    return order[:k]
