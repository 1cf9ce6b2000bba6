"""Several pruners at once: stop a trial if any of them says stop."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from hpcore.pruners.base import BasePruner

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["CompositePruner", "any_of"]


class CompositePruner(BasePruner):
    """Stop a trial when any of ``pruners`` wants it stopped.

    Every member sees every report (no short-circuit), so each keeps its own fold over
    ``study.reports_since`` current, e.g. ``any_of(hp.ASHA(1, 27), hp.PatiencePruner(3))``
    halves the field and also stops a trial that has stalled for three epochs.  The
    cost per report is the sum of the members'.

    Parameters
    ----------
    pruners : iterable of BasePruner
        At least one.  Nested composites are flattened.  A member may also be given as
        its stored config (``{"class": ..., "params": ...}``, what :meth:`get_params`
        returns), which is how a stored study rebuilds a composite.
    """

    def __init__(self, pruners: Iterable[BasePruner]) -> None:
        if isinstance(pruners, BasePruner):
            raise TypeError("pruners must be a list of pruners; use any_of(a, b) for varargs")
        try:
            items = list(pruners)
        except TypeError:
            raise TypeError(f"pruners must be an iterable of BasePruner, "
                            f"got {type(pruners).__name__}") from None
        flat: list[BasePruner] = []
        for p in items:
            if isinstance(p, dict) and "class" in p:
                from hpcore._persist import from_config

                p = from_config(p, BasePruner)
            if not isinstance(p, BasePruner):
                raise TypeError(f"pruners: expected BasePruner instances, got {type(p).__name__}")
            flat.extend(p.pruners if isinstance(p, CompositePruner) else [p])
        if not flat:
            raise ValueError("pruners must hold at least one pruner")
        self.pruners: list[BasePruner] = flat

    def __repr__(self) -> str:
        return f"CompositePruner([{', '.join(repr(p) for p in self.pruners)}])"

    def get_params(self) -> dict[str, Any]:
        """``{"pruners": [member configs]}``: JSON, rebuilt by the constructor."""
        from hpcore._persist import to_config

        return {"pruners": [to_config(p) for p in self.pruners]}

    @property
    def rung_resources(self) -> list[float] | None:
        """The rung resources of the first member that has rungs (e.g. a Hyperband
        inside ``any_of``), so multi-fidelity samplers see them; ``None`` otherwise."""
        for p in self.pruners:
            r = getattr(p, "rung_resources", None)
            if r is not None:
                return r
        return None

    def on_report(self, study: "Study", number: int, step: int, value: float) -> bool:
        stop = False
        for p in self.pruners:
            if p.on_report(study, number, step, value):
                stop = True
        return stop


def any_of(*pruners: BasePruner) -> CompositePruner:
    """``CompositePruner([*pruners])``: stop a trial if any of the pruners says stop."""
    return CompositePruner(pruners)
