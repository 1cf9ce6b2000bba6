"""Trials as rows: for ``Study.to_dataframe`` (pandas) and CSV export (stdlib only)."""
from __future__ import annotations

import csv
import json
import math
from typing import IO, TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study
    from hpcore.trial import FrozenTrial

__all__ = ["trial_rows", "rows_to_dataframe", "write_csv"]


def trial_rows(study: "Study", trials: Sequence["FrozenTrial"] | None = None) -> list[dict[str, Any]]:
    """One dict per trial (by number): ``number, state, value`` (or ``values_i``),
    ``params_<name>``, times, ``user_attrs_<key>`` and ``error``, as ``to_dataframe``
    has its columns.  ``trials`` defaults to every trial of the study."""
    n_obj = len(study.directions)
    rows = []
    for t in study.trials if trials is None else trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        if n_obj == 1:
            row["value"] = t.values[0] if t.values else None
        else:
            for i in range(n_obj):
                row[f"values_{i}"] = t.values[i] if t.values else None
        for k, v in t.params.items():
            row[f"params_{k}"] = v
        row["datetime_start"] = t.datetime_start
        row["datetime_complete"] = t.datetime_complete
        row["duration"] = t.duration
        for k, v in t.user_attrs.items():
            row[f"user_attrs_{k}"] = v
        row["error"] = t.error
        rows.append(row)
    return rows


def rows_to_dataframe(rows: list[dict[str, Any]]):
    """``pandas.DataFrame(rows)``; ``ImportError`` naming pandas when it is missing."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("to_dataframe needs pandas: pip install pandas (or 'hpcore[pandas]'); "
                          "hpcore.cli `export` writes CSV without it") from exc
    return pd.DataFrame(rows)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        for k in r:
            cols.setdefault(k, None)
    return list(cols)


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v)
    return v


def write_csv(rows: list[dict[str, Any]], out: IO[str]) -> int:
    """Write ``rows`` as CSV (header: the union of keys in first-seen order; empty cell
    for a missing or ``None`` value) to the text stream ``out``; returns the row count."""
    cols = _columns(rows)
    w = csv.writer(out)
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return len(rows)


def best_trials(study: "Study", top: int | None = 10) -> list["FrozenTrial"]:
    """The best COMPLETE trials, best first: by value for one objective, else the
    Pareto front ordered by the first objective; at most ``top`` (``None``: all)."""
    from hpcore.trial import TrialState

    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ValueError(f"top must be an int >= 1 or None, got {top!r}")
    if len(study.directions) == 1:
        sign = 1.0 if study.directions[0] == "minimize" else -1.0
        done = [t for t in study.trials if t.state == TrialState.COMPLETE]
        done.sort(key=lambda t: (sign * t.values[0], t.number))
    else:
        sign = 1.0 if study.directions[0] == "minimize" else -1.0
        done = sorted(study.best_trials, key=lambda t: (sign * t.values[0], t.number))
    return done if top is None else done[:top]


def _fmt_cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: right-aligned numbers, left-aligned text, a rule under the
    header."""
    cells = [[_fmt_cell(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) or r[i] is None
                   for r in rows) for i in range(len(headers))]

    def line(vals):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(vals, widths, numeric)).rstrip()

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def best_trials_table(study: "Study", top: int | None = 10,
                      params: Sequence[str] | None = None) -> str:
    """:func:`best_trials` as a text table: rank, trial number, value(s), duration
    and every parameter (``-`` where inactive), or only ``params``."""
    trials = best_trials(study, top)
    names = list(study.space.names) if params is None else list(params)
    n_obj = len(study.directions)
    vcols = ["value"] if n_obj == 1 else [f"value_{i}" for i in range(n_obj)]
    headers = ["rank", "trial"] + vcols + ["seconds"] + names
    rows = []
    for k, t in enumerate(trials, start=1):
        d = t.duration
        rows.append([k, t.number] + [float(v) for v in t.values]
                    + [None if d is None else round(d, 2)] + [t.params.get(n) for n in names])
    return format_table(headers, rows)
