"""Search spaces: parameter definitions, conditions, unit-cube encoding and grids.

Every sampler works in the unit cube.  ``Space.encode`` maps a configuration to a
vector in ``[0, 1]^d`` (one column per Float/Int, one-hot columns per Categorical,
log scales applied, ``NaN`` in the columns of inactive parameters); ``Space.decode``
maps any point of the cube back to a valid configuration (rounding integers and
steps, taking the arg-max of one-hot blocks, dropping inactive parameters).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["Float", "Int", "Categorical", "Space", "Column"]

_NUM_TOL = 1e-9


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _normalize_condition(condition: Mapping[str, Any] | None) -> dict[str, tuple]:
    if condition is None:
        return {}
    if not isinstance(condition, Mapping):
        raise TypeError("condition must be a mapping {parent_name: value or list of values}")
    out = {}
    for parent, allowed in condition.items():
        if not isinstance(parent, str):
            raise TypeError(f"condition keys must be parameter names (str), got {parent!r}")
        if isinstance(allowed, (list, tuple, set, frozenset)):
            allowed = tuple(allowed)
        else:
            allowed = (allowed,)
        if not allowed:
            raise ValueError(f"condition on {parent!r} lists no values")
        out[parent] = allowed
    return out


class Distribution:
    """Base of the parameter definitions.  ``name`` is set by :class:`Space`."""

    name: str = "?"
    condition: dict[str, tuple]

    def _bind(self, name: str) -> None:
        self.name = name
        self._validate()

    def _validate(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def n_columns(self) -> int:
        return 1

    @property
    def n_levels(self) -> int | None:
        """How many distinct values the parameter takes (``None``: a continuous Float)."""
        return getattr(self, "_n_levels", None)

    def is_finite(self) -> bool:
        return True

    def contains(self, value: Any) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError


class Float(Distribution):
    """A real parameter in ``[low, high]``.

    Parameters
    ----------
    low, high : float
        Bounds, ``low < high``.
    log : bool
        Sample and model on a log scale (requires ``low > 0``).
    step : float, optional
        Discretize to ``low + k * step``; ``step`` must divide ``high - low``.
    condition : mapping, optional
        ``{"parent": value_or_values}``: the parameter is active only when every
        parent takes one of the given values.
    """

    def __init__(self, low: float, high: float, *, log: bool = False, step: float | None = None,
                 condition: Mapping[str, Any] | None = None) -> None:
        self.low, self.high, self.log, self.step = low, high, log, step
        self.condition = _normalize_condition(condition)

    def _validate(self) -> None:
        n = self.name
        if not _is_number(self.low) or not _is_number(self.high):
            raise TypeError(f"parameter {n!r}: low and high must be numbers")
        try:
            self.low, self.high = float(self.low), float(self.high)
        except OverflowError:
            raise ValueError(f"parameter {n!r}: low and high must be finite floats "
                             f"(an int beyond float64 was given)") from None
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"parameter {n!r}: low and high must be finite")
        if self.low >= self.high:
            raise ValueError(f"parameter {n!r}: low ({self.low}) must be < high ({self.high})")
        if not math.isfinite(self.high - self.low):
            raise ValueError(f"parameter {n!r}: the range high - low = {self.high} - ({self.low}) "
                             "overflows float64; narrow the bounds or use log=True")
        if not isinstance(self.log, bool):
            raise TypeError(f"parameter {n!r}: log must be a bool")
        if self.log and self.low <= 0:
            raise ValueError(f"parameter {n!r}: log scale needs low > 0, got low={self.low}")
        if self.step is not None:
            if not _is_number(self.step):
                raise TypeError(f"parameter {n!r}: step must be a number")
            try:
                self.step = float(self.step)
            except OverflowError:
                raise ValueError(f"parameter {n!r}: step is beyond float64") from None
            if not math.isfinite(self.step):
                raise ValueError(f"parameter {n!r}: step must be finite, got {self.step}")
            if self.log:
                raise ValueError(f"parameter {n!r}: step cannot be combined with log=True")
            if not self.step > 0:
                raise ValueError(f"parameter {n!r}: step must be > 0, got {self.step}")
            k = (self.high - self.low) / self.step
            if not math.isfinite(k) or k > 2.0 ** 53:
                raise ValueError(f"parameter {n!r}: step {self.step} makes more than 2**53 levels "
                                 f"in [{self.low}, {self.high}]")
            if abs(k - round(k)) > 1e-9 * max(1.0, k):
                raise ValueError(f"parameter {n!r}: step {self.step} does not divide the range "
                                 f"[{self.low}, {self.high}]")
            self._n_levels = int(round(k)) + 1

    def is_finite(self) -> bool:
        return self.step is not None

    def levels(self) -> list[float]:
        """Every value of a stepped Float (grid values)."""
        return [self._level(k) for k in range(self._n_levels)]

    def _level(self, k: int) -> float:
        return min(self.low + k * self.step, self.high)

    def encode(self, v: float) -> float:
        if self.step is not None:
            k = int(round((v - self.low) / self.step))
            return (k + 0.5) / self._n_levels
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def decode(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        if self.step is not None:
            return self._level(min(int(u * self._n_levels), self._n_levels - 1))
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return min(max(v, self.low), self.high)

    def contains(self, value: Any) -> bool:
        if not _is_number(value) or not (self.low - _NUM_TOL <= value <= self.high + _NUM_TOL):
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-6
        return True

    def to_dict(self) -> dict:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log,
                "step": self.step, "condition": _cond_to_json(self.condition)}


class Int(Distribution):
    """An integer parameter in ``[low, high]`` (both included).

    Parameters
    ----------
    low, high : int
        Bounds, ``low < high``.
    log : bool
        Log scale (requires ``low >= 1`` and ``step == 1``).
    step : int
        Values ``low, low + step, ...``; must divide ``high - low``.
    condition : mapping, optional
        See :class:`Float`.
    """

    def __init__(self, low: int, high: int, *, log: bool = False, step: int = 1,
                 condition: Mapping[str, Any] | None = None) -> None:
        self.low, self.high, self.log, self.step = low, high, log, step
        self.condition = _normalize_condition(condition)

    def _validate(self) -> None:
        n = self.name
        for attr in ("low", "high", "step"):
            v = getattr(self, attr)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"parameter {n!r}: {attr} must be an int, got {v!r}")
            setattr(self, attr, int(v))
            if not -2 ** 63 <= getattr(self, attr) < 2 ** 63:
                raise ValueError(f"parameter {n!r}: {attr} = {v} does not fit in a 64-bit integer")
        if self.low >= self.high:
            raise ValueError(f"parameter {n!r}: low ({self.low}) must be < high ({self.high})")
        if not isinstance(self.log, bool):
            raise TypeError(f"parameter {n!r}: log must be a bool")
        if self.step < 1:
            raise ValueError(f"parameter {n!r}: step must be >= 1, got {self.step}")
        if (self.high - self.low) % self.step:
            raise ValueError(f"parameter {n!r}: step {self.step} does not divide the range "
                             f"[{self.low}, {self.high}]")
        if self.log and self.low < 1:
            raise ValueError(f"parameter {n!r}: log scale needs low >= 1, got low={self.low}")
        if self.log and self.step != 1:
            raise ValueError(f"parameter {n!r}: step cannot be combined with log=True")
        self._n_levels = (self.high - self.low) // self.step + 1

    def levels(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def encode(self, v: int) -> float:
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            return (math.log(v) - lo) / (hi - lo)
        k = (int(v) - self.low) // self.step
        return (k + 0.5) / self._n_levels

    def decode(self, u: float) -> int:
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            v = int(round(math.exp(lo + u * (hi - lo))))
            return min(max(v, self.low), self.high)
        k = min(int(u * self._n_levels), self._n_levels - 1)
        return self.low + k * self.step

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            return False
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    def to_dict(self) -> dict:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log,
                "step": self.step, "condition": _cond_to_json(self.condition)}


class Categorical(Distribution):
    """A choice among ``choices`` (any hashable values: str, int, float, bool, None).

    Encoded one-hot: one unit-cube column per choice.
    """

    def __init__(self, choices: Sequence[Any], *, condition: Mapping[str, Any] | None = None) -> None:
        self.choices = choices
        self.condition = _normalize_condition(condition)

    @property
    def n_levels(self) -> int:
        """The number of choices."""
        return len(self.choices)

    def _validate(self) -> None:
        n = self.name
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Iterable):
            raise TypeError(f"parameter {n!r}: choices must be a list or tuple")
        self.choices = tuple(self.choices)
        if not self.choices:
            raise ValueError(f"parameter {n!r}: choices is empty")
        seen = []
        for c in self.choices:
            try:
                hash(c)
            except TypeError:
                raise TypeError(f"parameter {n!r}: choice {c!r} is not hashable") from None
            if any(c == s and type(c) is type(s) for s in seen):
                raise ValueError(f"parameter {n!r}: duplicate choice {c!r}")
            seen.append(c)

    @property
    def n_columns(self) -> int:
        return len(self.choices)

    def levels(self) -> list[Any]:
        return list(self.choices)

    def index(self, value: Any) -> int:
        for i, c in enumerate(self.choices):
            if c == value and type(c) is type(value):
                return i
        for i, c in enumerate(self.choices):
            if c == value:
                return i
        raise ValueError(f"parameter {self.name!r}: {value!r} is not one of {self.choices}")

    def contains(self, value: Any) -> bool:
        try:
            self.index(value)
            return True
        except (ValueError, TypeError):
            return False

    def to_dict(self) -> dict:
        return {"type": "categorical", "choices": list(self.choices),
                "condition": _cond_to_json(self.condition)}


def _cond_to_json(cond: dict[str, tuple]) -> dict[str, list]:
    return {k: list(v) for k, v in cond.items()}


@dataclass(frozen=True)
class Column:
    """One unit-cube column: which parameter, what kind, how many levels.

    ``kind`` is ``"float"``, ``"int"`` or ``"categorical"``; ``n_levels`` is 0 for a
    continuous column, the number of values for a discrete one, and the number of
    choices for each one-hot column (``group`` gives the block's ``(start, stop)``).
    """

    param: str
    kind: str
    n_levels: int
    group: tuple[int, int]


class Space:
    """A search space: an ordered mapping of names to :class:`Float`, :class:`Int`,
    :class:`Categorical`.

    Parameters
    ----------
    params : mapping of str to Distribution
        The parameters.  Conditions name other parameters of the same space; they must
        not form a cycle, and the values they list must be valid for the parent.
    """

    def __init__(self, params: Mapping[str, Distribution]) -> None:
        if isinstance(params, Space):
            params = params.params
        if not isinstance(params, Mapping):
            raise TypeError("Space expects a mapping {name: Float | Int | Categorical}")
        if not params:
            raise ValueError("Space needs at least one parameter")
        self.params: dict[str, Distribution] = {}
        for name, dist in params.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"parameter names must be non-empty strings, got {name!r}")
            if not isinstance(dist, Distribution):
                raise TypeError(f"parameter {name!r}: expected Float, Int or Categorical, "
                                f"got {type(dist).__name__}")
            dist._bind(name)
            self.params[name] = dist
        self._check_conditions()
        self.order = self._topological_order()
        self.columns: list[Column] = []
        self._slices: dict[str, slice] = {}
        for name, dist in self.params.items():
            start = len(self.columns)
            if isinstance(dist, Categorical):
                grp = (start, start + dist.n_columns)
                for _ in dist.choices:
                    self.columns.append(Column(name, "categorical", dist.n_columns, grp))
            else:
                kind = "int" if isinstance(dist, Int) else "float"
                nl = dist._n_levels if (kind == "int" or dist.step is not None) else 0
                self.columns.append(Column(name, kind, nl, (start, start + 1)))
            self._slices[name] = slice(start, len(self.columns))
        self.is_conditional = any(d.condition for d in self.params.values())

    # -- structure -------------------------------------------------------------------
    def _check_conditions(self) -> None:
        for name, dist in self.params.items():
            for parent, allowed in dist.condition.items():
                if parent not in self.params:
                    raise ValueError(f"parameter {name!r}: condition on unknown parameter {parent!r}")
                if parent == name:
                    raise ValueError(f"parameter {name!r}: condition on itself")
                pdist = self.params[parent]
                for v in allowed:
                    if not pdist.contains(v):
                        raise ValueError(f"parameter {name!r}: condition value {v!r} is not a "
                                         f"valid value of {parent!r}")

    def _topological_order(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str, path: list[str]) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                raise ValueError("conditions form a cycle: " + " -> ".join(cycle))
            state[n] = 1
            for parent in self.params[n].condition:
                visit(parent, path + [n])
            state[n] = 2
            order.append(n)

        for n in self.params:
            visit(n, [])
        return order

    @property
    def names(self) -> list[str]:
        return list(self.params)

    @property
    def n_dims(self) -> int:
        """Number of unit-cube columns."""
        return len(self.columns)

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, name: str) -> Distribution:
        return self.params[name]

    def __repr__(self) -> str:
        return f"Space({list(self.params)})"

    def column_slice(self, name: str) -> slice:
        """The unit-cube columns of parameter ``name``."""
        return self._slices[name]

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether ``name`` is active given the (partial) configuration."""
        for parent, allowed in self.params[name].condition.items():
            if parent not in config or not any(config[parent] == a for a in allowed):
                return False
        return True

    def to_dict(self) -> dict:
        return {name: d.to_dict() for name, d in self.params.items()}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Mapping]) -> "Space":
        """Rebuild a space from :meth:`to_dict` (used when re-opening a stored study)."""
        params: dict[str, Distribution] = {}
        for name, d in spec.items():
            cond = d.get("condition") or None
            t = d["type"]
            if t == "float":
                params[name] = Float(d["low"], d["high"], log=d["log"], step=d["step"], condition=cond)
            elif t == "int":
                params[name] = Int(d["low"], d["high"], log=d["log"], step=d["step"], condition=cond)
            elif t == "categorical":
                params[name] = Categorical(d["choices"], condition=cond)
            else:
                raise ValueError(f"parameter {name!r}: unknown type {t!r}")
        return cls(params)

    # -- validation --------------------------------------------------------------------
    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check a full configuration: every active parameter present and valid, no
        inactive or unknown one.  Returns it as a plain dict."""
        if not isinstance(config, Mapping):
            raise TypeError("params must be a mapping of parameter names to values")
        for k in config:
            if k not in self.params:
                raise ValueError(f"unknown parameter {k!r}")
        out: dict[str, Any] = {}
        for name in self.order:
            active = self.is_active(name, out)
            if not active:
                if name in config:
                    raise ValueError(f"parameter {name!r} is inactive under this configuration")
                continue
            if name not in config:
                raise ValueError(f"parameter {name!r} is missing")
            v = config[name]
            if not self.params[name].contains(v):
                raise ValueError(f"parameter {name!r}: value {v!r} is outside its domain")
            out[name] = v
        return {k: out[k] for k in self.params if k in out}

    # -- unit cube ---------------------------------------------------------------------
    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """Configuration -> vector in ``[0, 1]^n_dims`` (``NaN`` for inactive parameters)."""
        x = np.full(self.n_dims, np.nan)
        for name, dist in self.params.items():
            if name not in config:
                continue
            sl = self._slices[name]
            if isinstance(dist, Categorical):
                x[sl] = 0.0
                x[sl.start + dist.index(config[name])] = 1.0
            else:
                x[sl.start] = dist.encode(config[name])
        return x

    def decode(self, x: np.ndarray | Sequence[float]) -> dict[str, Any]:
        """Point of the unit cube -> valid configuration (inactive parameters dropped)."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.n_dims,):
            raise ValueError(f"x must have shape ({self.n_dims},), got {x.shape}")
        out: dict[str, Any] = {}
        for name in self.order:
            if not self.is_active(name, out):
                continue
            dist = self.params[name]
            sl = self._slices[name]
            if isinstance(dist, Categorical):
                block = np.nan_to_num(x[sl], nan=-np.inf)
                out[name] = dist.choices[int(np.argmax(block))]
            else:
                u = x[sl.start]
                out[name] = dist.decode(0.5 if math.isnan(u) else u)
        return {k: out[k] for k in self.params if k in out}

    def decode_random(self, u: np.ndarray) -> dict[str, Any]:
        """Map uniform [0, 1) draws, one per *parameter* (not per column), to a config.

        Categoricals take choice ``floor(u * n_choices)`` so that random and
        quasi-random samplers use one coordinate per parameter.  Each parameter decodes
        exactly as its ``decode`` would (the same floating-point operations), through a
        plan of per-parameter constants built on the first call.
        """
        uu = u.tolist() if type(u) is np.ndarray and u.dtype == np.float64 \
            else np.asarray(u, dtype=float).tolist()     # Python floats once
        return self._decode_random_floats(uu)

    def _decode_random_floats(self, uu: list[float]) -> dict[str, Any]:
        """:meth:`decode_random` of a list of Python floats (one per parameter)."""
        out: dict[str, Any] = {}
        for name, i, kind, a, b, c, cond in self._random_plan:
            if cond is not None and not self._cond_holds(cond, out):
                continue
            x = uu[i]
            # clamps as min(max(x, lo), hi) without the calls (NaN passes through alike)
            if kind == 0:                                   # Float, linear
                x = 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)
                v = a + x * c
                out[name] = a if v < a else (b if v > b else v)
            elif kind == 1:                                 # Float, log: a, c in logs
                x = 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)
                v = math.exp(a + x * c)
                lo, hi = b
                out[name] = lo if v < lo else (hi if v > hi else v)
            elif kind == 2:                                 # Categorical: a = choices
                k = int(x * b)
                out[name] = a[k if k < b else b - 1]
            elif kind == 3:                                 # Int, linear: a = low
                x = 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)
                k = int(x * b)
                out[name] = a + (k if k < b else b - 1) * c
            else:                                           # anything else
                out[name] = a(x)
        if self._order_is_params:
            return out
        return {k: out[k] for k in self.params if k in out}

    @staticmethod
    def _cond_holds(cond: tuple, config: Mapping[str, Any]) -> bool:
        for parent, allowed in cond:     # as is_active
            if parent not in config or not any(config[parent] == v for v in allowed):
                return False
        return True

    @property
    def _order_is_params(self) -> bool:
        flag = self.__dict__.get("_order_is_params_cache")
        if flag is None:
            flag = self.__dict__["_order_is_params_cache"] = self.order == list(self.params)
        return flag

    @property
    def _random_plan(self) -> list[tuple]:
        """(name, index, kind, a, b, c, condition) per parameter in topological order."""
        plan = self.__dict__.get("_random_plan_cache")
        if plan is not None:
            return plan
        pindex = self._pindex
        plan = []
        for name in self.order:
            d = self.params[name]
            cond = tuple(d.condition.items()) or None
            if type(d) is Float and d.step is None and not d.log:
                row = (0, d.low, d.high, d.high - d.low)
            elif type(d) is Float and d.step is None:
                llo = math.log(d.low)
                row = (1, llo, (d.low, d.high), math.log(d.high) - llo)
            elif type(d) is Categorical:
                row = (2, d.choices, len(d.choices), None)
            elif type(d) is Int and not d.log:
                row = (3, d.low, d._n_levels, d.step)
            else:
                row = (4, d.decode, None, None)
            plan.append((name, pindex[name], *row, cond))
        self.__dict__["_random_plan_cache"] = plan
        return plan

    @property
    def _pindex(self) -> dict[str, int]:
        idx = self.__dict__.get("_pindex_cache")
        if idx is None:
            idx = {n: i for i, n in enumerate(self.params)}
            self.__dict__["_pindex_cache"] = idx
        return idx

    # -- grids -----------------------------------------------------------------------
    def grid_values(self, values: Mapping[str, Sequence[Any]] | None = None,
                    n_points: int | None = None) -> dict[str, list[Any]]:
        """The values each parameter takes in a grid.

        ``values[name]`` overrides; stepped Floats, Ints and Categoricals use all their
        values (Ints with more than ``n_points`` values are thinned to ``n_points``,
        log-evenly on a log scale); continuous Floats need ``n_points`` (or ``values``).
        """
        values = dict(values or {})
        for k in values:
            if k not in self.params:
                raise ValueError(f"values: unknown parameter {k!r}")
        if n_points is not None:
            if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)):
                raise TypeError("n_points must be an int")
            if n_points < 2:
                raise ValueError(f"n_points must be >= 2, got {n_points}")
        out: dict[str, list[Any]] = {}
        for name, dist in self.params.items():
            if name in values:
                vals = list(values[name])
                if not vals:
                    raise ValueError(f"values[{name!r}] is empty")
                for v in vals:
                    if not dist.contains(v):
                        raise ValueError(f"values[{name!r}]: {v!r} is outside the parameter's domain")
                out[name] = _unique(vals)
            elif isinstance(dist, Categorical) or (isinstance(dist, Float) and dist.step is not None):
                out[name] = dist.levels()
            elif isinstance(dist, Int):
                if n_points is not None and dist._n_levels > n_points:
                    us = (np.arange(n_points) + 0.5) / n_points
                    out[name] = _unique([dist.decode(u) for u in us])
                else:
                    out[name] = dist.levels()
            else:
                if n_points is None:
                    raise ValueError(f"parameter {name!r} is continuous: give GridSampler "
                                     f"values={{{name!r}: [...]}} or n_points=")
                if dist.log:
                    pts = np.geomspace(dist.low, dist.high, n_points)
                else:
                    pts = np.linspace(dist.low, dist.high, n_points)
                pts[0], pts[-1] = dist.low, dist.high
                out[name] = [float(p) for p in pts]
        return out

    def grid(self, values: Mapping[str, Sequence[Any]] | None = None,
             n_points: int | None = None) -> list[dict[str, Any]]:
        """Every configuration of the grid, conditions respected (inactive parameters
        are not multiplied in)."""
        gv = self.grid_values(values, n_points)
        configs: list[dict[str, Any]] = [{}]
        for name in self.order:
            nxt = []
            for cfg in configs:
                if self.is_active(name, cfg):
                    nxt.extend({**cfg, name: v} for v in gv[name])
                else:
                    nxt.append(cfg)
            configs = nxt
        return [{k: c[k] for k in self.params if k in c} for c in configs]


def _unique(vals: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in vals:
        if not any(v == o and type(v) is type(o) for o in out):
            out.append(v)
    return out

