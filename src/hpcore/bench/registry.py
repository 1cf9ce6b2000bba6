"""The bench registry: problems and optimizers by name.

A **problem** is a search space plus one of two small functions (always minimized):

* ``objective(params, rng) -> float`` -- one evaluation; ``rng`` is a
  :class:`numpy.random.Generator` owned by the harness (the same stream for every
  optimizer at the same seed and trial), used by noisy problems;
* ``curve(params) -> iterator of float`` -- a multi-fidelity task: the iterator yields
  the validation loss after each epoch, up to ``max_resource`` epochs.  The harness
  reports each value to the optimizer and stops the iterator when it prunes.

An **optimizer** is a factory ``make(space, settings) -> AskTell``: ``space`` is an
:class:`hpcore.Space`, ``settings`` a :class:`Settings` (seed, budget, initial design
size, threads, the curve's ``max_resource``).  The :class:`AskTell` it returns has

* ``ask() -> Suggestion`` (``suggestion.params``: a dict with a value for every
  parameter of ``space``; ``suggestion.report(step, value) -> bool``: True asks the
  harness to stop that trial -- the default never stops), and
* ``tell(suggestion, value, pruned=False)`` with the trial's last value.

Example (a user's optimizer and problem)::

    from hpcore import bench
    import hpcore as hp

    class MyRandom(bench.AskTell):
        def __init__(self, space, settings):
            self.space, self.rng = space, np.random.default_rng(settings.seed)
        def ask(self):
            return bench.Suggestion(self.space.decode_random(self.rng.random(len(self.space))))
        def tell(self, suggestion, value, pruned=False):
            pass

    bench.register_optimizer("my_random", MyRandom, description="uniform draws")
    bench.register_problem(bench.Problem(
        "sphere3", {f"x{i}": hp.Float(-1, 1) for i in range(3)},
        objective=lambda p, rng: sum(v * v for v in p.values()), optimum=0.0))

Names must be unique; unknown names raise ``KeyError`` naming the registry's entries.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

__all__ = ["AskTell", "OPTIMIZERS", "PROBLEMS", "OptimizerSpec", "Problem", "Settings",
           "Suggestion", "get_optimizer", "get_problem", "list_optimizers", "list_problems",
           "register_optimizer", "register_problem"]

_KINDS = ("synthetic", "sklearn", "curve")


@dataclass
class Problem:
    """A benchmark problem (minimized).

    Parameters
    ----------
    name : str
        Unique name.
    space : mapping of str to Float/Int/Categorical
        The search space (plain, no conditions, so that every peer can express it).
    objective : callable, optional
        ``objective(params, rng) -> float`` (exactly one of ``objective``/``curve``).
    curve : callable, optional
        ``curve(params) -> iterator of float``: validation loss after each epoch.
    max_resource : int, optional
        Epochs of a full training (required with ``curve``).
    true_value : callable, optional
        ``true_value(params) -> float`` without noise, for noisy problems: best-so-far
        and regret use it.  Default: the observed value.
    optimum : float, optional
        Known minimum (tests check it; regret uses the best value seen).
    kind : {"synthetic", "sklearn", "curve"}
    tags : tuple of str
        E.g. ``"quick"`` for the problems of ``hpcore bench --quick``.
    description : str
    """

    name: str
    space: Mapping[str, Any]
    objective: Callable[[dict, Any], float] | None = None
    curve: Callable[[dict], Iterator[float]] | None = None
    max_resource: int | None = None
    true_value: Callable[[dict], float] | None = None
    optimum: float | None = None
    kind: str = "synthetic"
    tags: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError("name must be a non-empty str")
        if (self.objective is None) == (self.curve is None):
            raise ValueError(f"problem {self.name!r}: give exactly one of objective or curve")
        for attr in ("objective", "curve", "true_value"):
            f = getattr(self, attr)
            if f is not None and not callable(f):
                raise TypeError(f"problem {self.name!r}: {attr} must be callable")
        if self.curve is not None:
            if isinstance(self.max_resource, bool) or not isinstance(self.max_resource, int) \
                    or self.max_resource < 1:
                raise ValueError(f"problem {self.name!r}: max_resource must be an int >= 1 "
                                 f"with curve, got {self.max_resource!r}")
        if self.kind not in _KINDS:
            raise ValueError(f"problem {self.name!r}: kind must be one of {_KINDS}, "
                             f"got {self.kind!r}")
        if not isinstance(self.space, Mapping) or not self.space:
            raise TypeError(f"problem {self.name!r}: space must be a non-empty mapping of "
                            "parameter names to hpcore distributions")
        from hpcore.space import Space

        Space(dict(self.space))  # validates the distributions, naming the parameter
        self.tags = tuple(self.tags)

    @property
    def multi_fidelity(self) -> bool:
        return self.curve is not None

    def hp_space(self):
        """The space as an :class:`hpcore.Space`."""
        from hpcore.space import Space

        return Space(dict(self.space))

    def is_finite(self) -> bool:
        """Whether every parameter has finitely many values (grid search applies)."""
        return all(d.is_finite() for d in self.space.values())


@dataclass(frozen=True)
class Settings:
    """What an optimizer factory is told.

    Attributes
    ----------
    seed : int
    n_trials : int
        Budget in trials (for curve problems: full trainings random search gets; the
        epoch budget is ``n_trials * max_resource``).
    n_initial : int
        Initial design size (random / quasi-random start-up) where the optimizer has one.
    n_threads : int
        Threads the optimizer may use (BLAS and OpenMP are pinned to this by the harness).
    max_resource : int or None
        Epochs of a full training on a curve problem (pruners' maximum resource).
    direction : str
        Always ``"minimize"`` in the harness.
    """

    seed: int
    n_trials: int
    n_initial: int = 10
    n_threads: int = 1
    max_resource: int | None = None
    direction: str = "minimize"


class Suggestion:
    """One configuration handed out by an optimizer.

    Subclasses override :meth:`report` to let a pruner stop the trial.
    """

    __slots__ = ("params", "handle")

    def __init__(self, params: dict[str, Any], handle: Any = None) -> None:
        self.params = params
        self.handle = handle

    def report(self, step: int, value: float) -> bool:
        """Intermediate ``value`` after ``step`` epochs; return True to stop the trial."""
        return False


class AskTell:
    """Base of optimizer adapters: ``ask()`` a :class:`Suggestion`, ``tell`` its value."""

    def ask(self) -> Suggestion:  # pragma: no cover - interface
        raise NotImplementedError

    def tell(self, suggestion: Suggestion, value: float, pruned: bool = False) -> None:
        raise NotImplementedError  # pragma: no cover - interface


@dataclass
class OptimizerSpec:
    """A registered optimizer.

    Attributes
    ----------
    name : str
    make : callable
        ``make(space, settings) -> AskTell``.
    requires : tuple of str
        Importable modules it needs; missing ones make the harness skip it with a message.
    pruner : str or None
        The pruner it uses on curve problems (None: trains every trial fully). Pruning
        optimizers run only on curve problems.
    finite_only : bool
        Only for finite spaces (grid search).
    family : str
        ``"hpcore"`` or the peer's package (for "the best peer").
    description : str
    """

    name: str
    make: Callable[[Any, Settings], AskTell]
    requires: tuple[str, ...] = ()
    pruner: str | None = None
    finite_only: bool = False
    family: str = "hpcore"
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def missing(self) -> list[str]:
        """The required modules that cannot be imported (without importing them)."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def applies_to(self, problem: Problem) -> bool:
        if self.pruner is not None and not problem.multi_fidelity:
            return False
        if self.finite_only and not problem.is_finite():
            return False
        return True


PROBLEMS: dict[str, Problem] = {}
OPTIMIZERS: dict[str, OptimizerSpec] = {}


def register_problem(problem: Problem, *, replace: bool = False) -> Problem:
    """Add ``problem`` to the registry (``replace=True`` overwrites a name)."""
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a hpcore.bench.Problem, got {type(problem).__name__}")
    if problem.name in PROBLEMS and not replace:
        raise ValueError(f"problem: a problem named {problem.name!r} is already registered")
    PROBLEMS[problem.name] = problem
    return problem


def register_optimizer(name: str, make: Callable[[Any, Settings], AskTell], *,
                       requires: Sequence[str] = (), pruner: str | None = None,
                       finite_only: bool = False, family: str = "user",
                       description: str = "", tags: Sequence[str] = (),
                       replace: bool = False) -> OptimizerSpec:
    """Add an optimizer factory ``make(space, settings) -> AskTell`` under ``name``."""
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty str")
    if not callable(make):
        raise TypeError(f"make: optimizer {name!r} needs a callable factory "
                        f"make(space, settings), got {type(make).__name__}")
    if name in OPTIMIZERS and not replace:
        raise ValueError(f"name: an optimizer named {name!r} is already registered")
    if isinstance(requires, str):
        requires = (requires,)
    spec = OptimizerSpec(name, make, tuple(requires), pruner, bool(finite_only), family,
                         description, tuple(tags))
    OPTIMIZERS[name] = spec
    return spec


def _ensure_builtins() -> None:
    from hpcore.bench import optimizers, problems  # noqa: F401  (registers on import)


def get_problem(name: str) -> Problem:
    _ensure_builtins()
    try:
        return PROBLEMS[name]
    except KeyError:
        raise KeyError(f"problem: no problem named {name!r}; registered: "
                       f"{', '.join(sorted(PROBLEMS))}") from None


def get_optimizer(name: str) -> OptimizerSpec:
    _ensure_builtins()
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise KeyError(f"optimizer: no optimizer named {name!r}; registered: "
                       f"{', '.join(sorted(OPTIMIZERS))}") from None


def list_problems(tag: str | None = None) -> list[str]:
    _ensure_builtins()
    return [n for n, p in PROBLEMS.items() if tag is None or tag in p.tags]


def list_optimizers(tag: str | None = None) -> list[str]:
    _ensure_builtins()
    return [n for n, o in OPTIMIZERS.items() if tag is None or tag in o.tags]
