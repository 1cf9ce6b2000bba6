"""Warm starts: what :meth:`Study.enqueue` and :meth:`Study.add_trials` check and convert.

``Study.add_trials`` takes finished trials from anywhere -- an hpcore or Optuna
``FrozenTrial`` of another study, a dict, the rows of a pandas DataFrame (the columns of
``Study.to_dataframe()``: ``params_<name>``, ``value`` or ``values_<i>``, ``state``,
``user_attrs_<key>``, ``datetime_start``, ``datetime_complete``, ``error``) -- and turns
them into validated :class:`~hpcore.trial.FrozenTrial` objects for
``BaseStorage.add_finished_trial``.  Everything is checked before anything is stored, so
a bad row stores nothing.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from hpcore.space import Categorical, Float, Int, Space
from hpcore.trial import FrozenTrial, TrialState, check_values

__all__ = ["import_trials", "check_enqueued"]

_IMPORTABLE = {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED,
               "FAIL": TrialState.FAIL}


def _missing(v: Any) -> bool:
    """None, NaN or pandas' NA/NaT: a cell with no value."""
    if v is None:
        return True
    try:
        return bool(v != v)        # NaN, NaT, pd.NA (whose != raises is caught below)
    except (TypeError, ValueError):
        return False


def _plain(v: Any) -> Any:
    """NumPy scalars -> Python values (they are stored as JSON)."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _coerce(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    """Drop empty cells (inactive parameters of a table) and give each value its
    parameter's Python type (a DataFrame turns an int column with gaps into floats)."""
    out: dict[str, Any] = {}
    for name, v in params.items():
        if _missing(v):
            continue
        v = _plain(v)
        dist = space.params.get(name)
        if isinstance(dist, Int) and isinstance(v, float) and v.is_integer():
            v = int(v)
        elif isinstance(dist, Float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        elif isinstance(dist, Categorical) and not dist.contains(v) and isinstance(v, float) \
                and v.is_integer() and dist.contains(int(v)):
            v = int(v)
        out[name] = v
    return out


def check_enqueued(space: Space, params: Any) -> dict[str, Any]:
    """A configuration to enqueue: every active parameter, valid for the space
    (``ValueError``/``TypeError`` naming the parameter)."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping of parameter names to values, "
                        f"got {type(params).__name__}")
    return space.validate(_coerce(space, params))


def _time(v: Any) -> float | None:
    if _missing(v):
        return None
    if hasattr(v, "timestamp"):           # datetime, pandas Timestamp
        return float(v.timestamp())
    return float(v)


def _from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A dict (or DataFrame row) in ``to_dataframe`` columns, or with ``params``/``values``
    entries, as the fields of a trial."""
    params = dict(row["params"]) if isinstance(row.get("params"), Mapping) else {
        k[len("params_"):]: v for k, v in row.items() if k.startswith("params_")}
    if "values" in row and not _missing_seq(row["values"]):
        values = row["values"]
    elif "value" in row:
        values = row["value"]
    else:
        cols = sorted((k for k in row if k.startswith("values_")), key=lambda k: int(k[7:]))
        values = [row[k] for k in cols] if cols else None
    user_attrs = dict(row["user_attrs"]) if isinstance(row.get("user_attrs"), Mapping) else {
        k[len("user_attrs_"):]: _plain(v) for k, v in row.items()
        if k.startswith("user_attrs_") and not _missing(v)}
    iv = row.get("intermediate_values")
    return {"params": params, "values": values, "state": row.get("state", "COMPLETE"),
            "user_attrs": user_attrs,
            "intermediate_values": dict(iv) if isinstance(iv, Mapping) else {},
            "datetime_start": _time(row.get("datetime_start")),
            "datetime_complete": _time(row.get("datetime_complete")),
            "error": None if _missing(row.get("error")) else str(row.get("error"))}


def _missing_seq(v: Any) -> bool:
    return not isinstance(v, (list, tuple, np.ndarray)) and _missing(v)


def _from_trial(t: Any) -> dict[str, Any]:
    """An hpcore or Optuna FrozenTrial (anything with ``params`` and ``state``)."""
    values = getattr(t, "values", None)
    return {"params": dict(t.params), "values": None if values is None else list(values),
            "state": t.state, "user_attrs": dict(getattr(t, "user_attrs", {}) or {}),
            "intermediate_values": dict(getattr(t, "intermediate_values", {}) or {}),
            "datetime_start": _time(getattr(t, "datetime_start", None)),
            "datetime_complete": _time(getattr(t, "datetime_complete", None)),
            "error": getattr(t, "error", None)}


def _rows(trials: Any) -> Iterable[tuple[str, Any]]:
    """``(label, item)`` for each trial given: DataFrame rows, or a sequence's items."""
    if hasattr(trials, "iterrows") and hasattr(trials, "columns"):        # a DataFrame
        for idx, row in trials.iterrows():
            yield f"row {idx!r}", row.to_dict()
        return
    if isinstance(trials, (str, bytes, Mapping)) or not isinstance(trials, Iterable):
        raise TypeError("trials must be a sequence of FrozenTrials or dicts, or a pandas "
                        f"DataFrame, got {type(trials).__name__}")
    for i, item in enumerate(trials):
        yield f"trials[{i}]", item


def _check_values(values: Any, n: int) -> tuple[float, ...]:
    seq = list(values) if isinstance(values, (list, tuple, np.ndarray)) else [values]
    if len(seq) != n:
        raise ValueError(f"values: expected {n} number(s), one per objective, got {len(seq)}")
    try:
        return check_values(seq, n)
    except ValueError as exc:
        raise ValueError("values: " + str(exc).replace("the objective returned", "got")) from None


def import_trials(space: Space, n_objectives: int, trials: Any) -> list[FrozenTrial]:
    """Validate ``trials`` against ``space`` and ``n_objectives``; return them as
    :class:`FrozenTrial` objects ready for ``BaseStorage.add_finished_trial``.

    Raises ``ValueError`` naming the row (and the parameter, for a bad or missing
    value), ``TypeError`` for something that is not a trial.
    """
    out = []
    for label, item in _rows(trials):
        if isinstance(item, Mapping):
            f = _from_row(item)
        elif hasattr(item, "params") and hasattr(item, "state"):
            f = _from_trial(item)
        else:
            raise TypeError(f"{label}: expected a FrozenTrial or a dict, got {type(item).__name__}")
        state_name = getattr(f["state"], "name", f["state"])
        if not isinstance(state_name, str) or state_name.upper() not in _IMPORTABLE:
            raise ValueError(f"{label}: state must be COMPLETE, PRUNED or FAIL, got {f['state']!r}")
        state = _IMPORTABLE[state_name.upper()]
        try:
            params = _coerce(space, f["params"])
            if params or state != TrialState.FAIL:
                params = space.validate(params)
            values = f["values"]
            if state != TrialState.COMPLETE and (
                    values is None or _missing_seq(values)
                    or (isinstance(values, (list, tuple, np.ndarray))
                        and any(_missing(v) for v in values))):
                vals = None                   # PRUNED/FAIL trials may have no values
            else:
                vals = _check_values(values, n_objectives)
            iv = {}
            for step, v in f["intermediate_values"].items():
                if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
                    raise ValueError(f"intermediate value step must be an int >= 0, got {step!r}")
                iv[int(step)] = float(v)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{label}: {exc}") from None
        out.append(FrozenTrial(number=-1, trial_id=-1, state=state, params=params, values=vals,
                               intermediate_values=iv, datetime_start=f["datetime_start"],
                               datetime_complete=f["datetime_complete"],
                               user_attrs={k: _plain(v) for k, v in f["user_attrs"].items()},
                               system_attrs={"imported": True}, error=f["error"]))
    return out

