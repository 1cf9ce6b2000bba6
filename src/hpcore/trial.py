"""Trials: what the objective sees (:class:`Trial`) and what is stored (:class:`FrozenTrial`)."""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["TrialState", "FrozenTrial", "Trial", "TrialPruned"]


class TrialPruned(Exception):
    """Raise from an objective to stop a trial that the pruner wants stopped."""


class TrialState(enum.IntEnum):
    RUNNING = 0
    COMPLETE = 1
    PRUNED = 2
    FAIL = 3

    def is_finished(self) -> bool:
        return self != TrialState.RUNNING


#: System attributes that mark, from its creation, a trial whose configuration did not
#: come from the sampler: ``given`` (``Study.ask(params=...)``), ``retry_of`` (a re-run
#: of a failed trial), ``enqueued`` (``Study.enqueue``) and ``imported``
#: (``Study.add_trials``).
NOT_SAMPLED_MARKS = ("given", "retry_of", "enqueued", "imported")


@dataclass(slots=True)
class FrozenTrial:
    """A stored trial.

    ``values`` holds one number per objective (``None`` unless COMPLETE, or PRUNED with
    a last report); ``intermediate_values`` maps step -> reported value; times are Unix
    seconds.  Slotted (no per-instance ``__dict__``): a study of 10^5 trials keeps
    one of these per trial, shared between the study's cache and an in-memory
    storage, so treat the ones a study returns as read-only.
    """

    number: int
    trial_id: int
    state: TrialState
    params: dict[str, Any]
    values: tuple[float, ...] | None = None
    intermediate_values: dict[int, float] = field(default_factory=dict)
    datetime_start: float | None = None
    datetime_complete: float | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def value(self) -> float | None:
        """The single objective value (``ValueError`` on a multi-objective trial)."""
        if self.values is None:
            return None
        if len(self.values) != 1:
            raise ValueError("value is ambiguous for a multi-objective trial: use values")
        return self.values[0]

    @property
    def duration(self) -> float | None:
        if self.datetime_start is None or self.datetime_complete is None:
            return None
        return self.datetime_complete - self.datetime_start

    @property
    def last_step(self) -> int | None:
        return max(self.intermediate_values) if self.intermediate_values else None

    @property
    def sampled(self) -> bool:
        """Whether the study's sampler chose this trial's configuration: False for a
        trial created with its configuration (``Study.ask(params=...)``, a re-run, an
        enqueued or an imported trial), which carries one of the system attributes
        :data:`NOT_SAMPLED_MARKS` from its creation on."""
        attrs = self.system_attrs
        return not (attrs and any(k in attrs for k in NOT_SAMPLED_MARKS))


class Trial:
    """What the objective receives: the configuration and a way to report progress.

    Attributes
    ----------
    number : int
        The trial's number in its study (0, 1, 2, ... in creation order).
    params : dict
        The configuration to evaluate.
    budget : float or None
        The resource to spend, for budget-driven pruners (else ``None``).
    """

    _prune = False          # the pruner's verdict at the last report (set by report)

    def __init__(self, number: int, trial_id: int, params: dict[str, Any],
                 reporter: Callable[["Trial", int, float], bool] | None = None,
                 attr_setter: Callable[["Trial", str, Any], None] | None = None,
                 budget: float | None = None) -> None:
        self.number = number
        self.trial_id = trial_id
        self.params = params
        self.budget = budget
        self._reporter = reporter
        self._attr_setter = attr_setter
        self.intermediate_values: dict[int, float] = {}
        self.user_attrs: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, params={self.params})"

    def report(self, step: int, value: float) -> None:
        """Record an intermediate ``value`` at ``step`` (e.g. the epoch) for pruning."""
        if isinstance(step, bool) or not isinstance(step, int):
            try:
                import numpy as np

                if isinstance(step, np.integer):
                    step = int(step)
                else:
                    raise TypeError
            except TypeError:
                raise TypeError(f"step must be an int, got {type(step).__name__}") from None
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if isinstance(value, (str, bytes, complex)):
            raise TypeError(f"value must be a real number, got {type(value).__name__}")
        try:
            value = float(value)
        except OverflowError:
            raise ValueError(f"value {_short(value)} overflows a float") from None
        except (TypeError, ValueError):
            raise TypeError(f"value must be a number, got {type(value).__name__}") from None
        if step in self.intermediate_values:
            raise ValueError(f"step {step} was already reported for trial {self.number}")
        self.intermediate_values[step] = value
        if self._reporter is not None:
            self._prune = bool(self._reporter(self, step, value))

    def should_prune(self) -> bool:
        """Whether the pruner wants this trial stopped, judged at the last report."""
        return self._prune

    def set_user_attr(self, key: str, value: Any) -> None:
        """Store a JSON-serializable attribute with the trial."""
        if not isinstance(key, str):
            raise TypeError("key must be a str")
        self.user_attrs[key] = value
        if self._attr_setter is not None:
            self._attr_setter(self, key, value)


def check_values(result: Any, n_objectives: int) -> tuple[float, ...]:
    """Turn an objective's return into a tuple of finite floats, or raise ValueError.

    Accepted: a real number (``int``, ``float``, a NumPy real scalar or 0-d array, or any
    object with ``__float__`` such as a framework's scalar tensor), or for several
    objectives a list/tuple/1-d array of them.  Anything else -- ``bool``, ``str``,
    complex numbers, ``None``, NaN, +-inf, an ``int`` too large for a float (``10**400``)
    -- raises ``ValueError`` with the reason, which ``Study.tell`` stores as the trial's
    FAIL error.
    """
    if type(result) is float:
        if n_objectives == 1 and math.isfinite(result):
            return (result,)              # the common case, without the checks below
    elif type(result) is tuple or type(result) is list:
        if len(result) == n_objectives:   # several plain finite floats: as they are
            for v in result:
                if type(v) is not float or not math.isfinite(v):
                    break
            else:
                return tuple(result)
    import numpy as np

    if isinstance(result, np.ndarray):
        if result.ndim > 1:
            raise ValueError(f"the objective returned an array of shape {result.shape}, "
                             f"expected {n_objectives} number(s)")
        result = result.item() if result.ndim == 0 else list(result)
    if n_objectives == 1 and not isinstance(result, (tuple, list)):
        seq = (result,)
    elif isinstance(result, (tuple, list)):
        seq = tuple(result)
    else:
        raise ValueError(f"the objective must return {n_objectives} values, got {_short(result)}")
    if len(seq) != n_objectives:
        raise ValueError(f"the objective returned {len(seq)} values, expected {n_objectives}")
    out = []
    for v in seq:
        if isinstance(v, (bool, np.bool_)):
            raise ValueError(f"the objective returned a bool ({v!r}), not a number")
        if isinstance(v, (str, bytes, complex, np.complexfloating)) or v is None:
            raise ValueError(f"the objective returned {_short(v)} ({type(v).__name__}), "
                             "not a real number")
        try:
            f = float(v)
        except OverflowError:
            raise ValueError(f"the objective returned {_short(v)}, which overflows a float "
                             "(not a finite real number)") from None
        except Exception as exc:  # noqa: BLE001 - any failing __float__ is a bad result
            raise ValueError(f"the objective returned {_short(v)} ({type(v).__name__}), not a "
                             f"number ({type(exc).__name__}: {exc})") from None
        if not math.isfinite(f):
            raise ValueError(f"the objective returned a non-finite value ({f})")
        out.append(f)
    return tuple(out)


def _short(v: Any, limit: int = 80) -> str:
    """``repr(v)``, cut to ``limit`` characters (a huge int or array stays readable)."""
    try:
        r = repr(v)
    except Exception:  # noqa: BLE001
        r = f"<{type(v).__name__}>"
    return r if len(r) <= limit else r[:limit - 3] + "..."
