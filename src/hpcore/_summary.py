"""``hp.list_studies(url)``: what a study file holds, without loading any trial."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from hpcore.storage import BaseStorage, get_storage
from hpcore.trial import TrialState

__all__ = ["StudySummary", "list_studies", "open_storage"]

_STATES = tuple(s.name for s in TrialState)


@dataclass(frozen=True)
class StudySummary:
    """One study of a storage, as :func:`list_studies` reports it.

    Attributes
    ----------
    name : str
    directions : list of str
    n_trials : int
        Trials of every state.
    states : dict
        Trial count per state name (``RUNNING``, ``COMPLETE``, ``PRUNED``, ``FAIL``;
        every key present).
    best_value : float or None
        The best COMPLETE value of a single-objective study (``None`` without one, and
        for multi-objective studies).
    datetime_start : float or None
        Unix time of the first trial.
    study_id : int
        The storage's key of the study.
    """

    name: str
    directions: list[str]
    n_trials: int
    states: dict[str, int] = field(default_factory=dict)
    best_value: float | None = None
    datetime_start: float | None = None
    study_id: int = 0


def open_storage(storage: BaseStorage | str | os.PathLike, *, read_only: bool = True) -> BaseStorage:
    """A storage from a ``BaseStorage``, a ``sqlite:///`` URL or a plain file path.

    A path or URL must name an existing file (``FileNotFoundError`` otherwise; nothing
    is created); with ``read_only`` (default) a plain path or a URL without a query
    opens the file read-only.
    """
    if isinstance(storage, BaseStorage):
        return storage
    if isinstance(storage, os.PathLike):
        storage = os.fspath(storage)
    if not isinstance(storage, str) or not storage:
        raise TypeError(f"storage must be a BaseStorage, a 'sqlite:///' URL or a file path, "
                        f"got {storage!r}")
    url = storage if storage.startswith("sqlite:///") else "sqlite:///" + storage
    if "://" in storage and not storage.startswith("sqlite:///"):
        raise ValueError(f"storage: unsupported URL {storage!r} (use 'sqlite:///path.db' or a path)")
    if read_only and "?" not in url:
        url += "?mode=ro"
    return get_storage(url, create=False)


def list_studies(storage: BaseStorage | str | os.PathLike) -> list[StudySummary]:
    """Every study in ``storage`` (a ``sqlite:///`` URL, a file path or a storage), by
    creation order: name, directions, trial counts by state, best value.

    Reads one aggregate per table (no trial is loaded), opens a file read-only and
    never creates one: ``FileNotFoundError`` when it does not exist.
    """
    st = open_storage(storage)
    out = []
    for row in st.study_summaries():
        states = {s: 0 for s in _STATES}
        states.update(row["states"])
        best = row["best_values"]
        out.append(StudySummary(name=row["name"], directions=list(row["directions"]),
                                n_trials=int(row["n_trials"]), states=states,
                                best_value=None if best is None else float(best[0]),
                                datetime_start=row["datetime_start"], study_id=row["study_id"]))
    return out
