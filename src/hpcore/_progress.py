"""``optimize(show_progress=True)``: a progress bar with the best value so far.

The bar is drawn by tqdm when it is installed (``pip install hpcore[progress]``), else
by a one-line fallback rewritten in place with ``\\r``.  It is shown only when the
stream (stdout) is a terminal: logs, pipes and CI output stay clean.  ``Study.optimize``
opens it around its run and ``Study.after_trial`` advances it once per finished
trial, whichever executor ran the trial.
"""
from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any

from hpcore.trial import FrozenTrial, TrialState

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["ProgressBar", "progress_bar", "advance"]


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """Trials done (of ``total`` when known), elapsed time and the best value so far.

    Parameters
    ----------
    study : Study
        The study being optimized (its best value is read after each trial).
    total : int, optional
        The number of trials of this run (``None``: a counter without a bar).
    stream : file-like, optional
        Where to draw (default ``sys.stdout``).
    use_tqdm : bool, optional
        Force tqdm on or off (default: tqdm when it is importable).
    """

    def __init__(self, study: "Study", total: int | None = None, *, stream: IO[str] | None = None,
                 use_tqdm: bool | None = None) -> None:
        self.study = study
        self.total = total
        self.stream = sys.stdout if stream is None else stream
        self.n = 0
        self.n_pruned = 0
        self.n_failed = 0
        self._t0 = time.monotonic()
        self._tqdm: Any = None
        if use_tqdm is not False:
            try:
                from tqdm import tqdm
            except ImportError:
                if use_tqdm:
                    raise ImportError("use_tqdm=True needs tqdm: pip install 'hpcore[progress]'") \
                        from None
            else:
                self._tqdm = tqdm(total=total, unit="trial", file=self.stream, dynamic_ncols=True,
                                  leave=True)

    def __bool__(self) -> bool:  # a progress bar stands in for ``show_progress=True``
        return True

    def _best(self) -> str:
        if len(self.study.directions) != 1:
            return f"pareto={len(self.study.best_trials)}"
        try:
            return f"best={self.study.best_value:.6g}"
        except ValueError:  # no COMPLETE trial yet
            return "best=-"

    def status(self) -> str:
        """The text after the bar: best value, pruned and failed counts."""
        parts = [self._best()]
        if self.n_pruned:
            parts.append(f"pruned={self.n_pruned}")
        if self.n_failed:
            parts.append(f"failed={self.n_failed}")
        return " ".join(parts)

    def update(self, frozen: FrozenTrial) -> None:
        """Count one finished trial and redraw."""
        self.n += 1
        if frozen.state == TrialState.PRUNED:
            self.n_pruned += 1
        elif frozen.state == TrialState.FAIL:
            self.n_failed += 1
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(self.status(), refresh=False)
            self._tqdm.update(1)
            return
        done = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        bar = ""
        if self.total:
            width = 24
            k = min(width, round(width * self.n / self.total))
            bar = "[" + "#" * k + "." * (width - k) + "] "
        elapsed = time.monotonic() - self._t0
        self.stream.write(f"\r{bar}{done} trials {elapsed:6.1f}s {self.status()}   ")
        self.stream.flush()

    def close(self) -> None:
        """Finish the line (idempotent)."""
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        elif self.n and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()
            self.n = 0

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _NoBar:
    """Stands in when no bar is shown (``show_progress=False`` or not a terminal)."""

    def __bool__(self) -> bool:
        return False

    def update(self, frozen: FrozenTrial) -> None:  # pragma: no cover - never called
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def progress_bar(study: "Study", show_progress: bool, total: int | None = None, *,
                 stream: IO[str] | None = None) -> "ProgressBar | _NoBar":
    """A context manager for one ``optimize`` run: a :class:`ProgressBar` when
    ``show_progress`` and ``stream`` (default stdout) is a terminal, else a falsy no-op."""
    if not isinstance(show_progress, bool):
        raise TypeError(f"show_progress must be a bool, got {type(show_progress).__name__}")
    stream = sys.stdout if stream is None else stream
    if not show_progress or not _is_terminal(stream):
        return _NoBar()
    return ProgressBar(study, total, stream=stream)


def advance(study: "Study", frozen: FrozenTrial, progress: Any) -> None:
    """Called by ``Study.after_trial`` when ``show_progress`` is truthy: advance the run's
    bar, or -- for a plain ``True`` outside ``optimize`` -- print one status line when
    stdout is a terminal."""
    if isinstance(progress, (ProgressBar, _NoBar)):
        if progress:
            progress.update(frozen)
        return
    if not _is_terminal(sys.stdout):
        return
    val = "" if frozen.values is None else " value=" + ",".join(f"{v:.6g}" for v in frozen.values)
    best = ProgressBar(study, use_tqdm=False)._best()
    print(f"[hpcore] trial {frozen.number} {frozen.state.name}{val} {best}", flush=True)
