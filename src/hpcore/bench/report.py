"""Outputs of ``hpcore bench``: the CSV of every trial, the markdown tables, PNG plots.

* Normalized regret per (optimizer, problem, seed): ``(final - best) / (ref - best)``
  where ``final`` is the run's final best-so-far, ``best`` the best value seen by any
  optimizer at any seed on that problem (0) and ``ref`` the median over seeds of
  ``hpcore-random``'s final best (1).  An optimizer's score is the mean over its seeds,
  averaged over the problems it ran on.
* Mann-Whitney U (two-sided, :func:`scipy.stats.mannwhitneyu`) per problem: every
  optimizer's final bests against those of the best peer on that problem (the
  non-hpcore optimizer with the lowest mean regret there).
* Suggestion time per call (``suggest_time`` = ask + tell + pruner reports), over every
  trial of every problem and seed after the common warm-up: median, 90th percentile,
  maximum -- never amortized, never minima.
"""
from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hpcore.bench.runner import COLUMNS

__all__ = ["REFERENCE", "summarize", "write_csv", "write_markdown", "write_plots"]

REFERENCE = "hpcore-random"


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in COLUMNS})


def _finals(rows) -> dict[tuple[str, str], dict[int, float]]:
    out: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:  # rows of a run are in trial order: the last one wins
        out.setdefault((r["optimizer"], r["problem"]), {})[r["seed"]] = r["best_so_far"]
    return out


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Regret, tests and timing from the rows (see the module docstring)."""
    from scipy.stats import mannwhitneyu

    finals = _finals(rows)
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
    family = {r["optimizer"]: r.get("family", "hpcore" if r["optimizer"].startswith("hpcore")
                                     else r["optimizer"].split("-")[0]) for r in rows}
    per_problem: dict[str, Any] = {}
    for p in problems:
        vals = [r["true_value"] for r in rows if r["problem"] == p
                and r["state"] == "complete" and math.isfinite(r["true_value"])]
        best = min(vals)
        ref_runs = finals.get((REFERENCE, p))
        ref = float(np.median(list(ref_runs.values()))) if ref_runs else float("nan")
        den = ref - best
        if den <= 1e-12 * max(1.0, abs(ref), abs(best)):
            den = 0.0   # a difference at rounding level is no gap: it would blow regrets up
        entry: dict[str, Any] = {"best_seen": best, "reference": ref, "optimizers": {}}
        for o in optimizers:
            f = finals.get((o, p))
            if not f:
                continue
            fv = np.array([f[s] for s in sorted(f)], dtype=float)
            # random's median already at the best seen: the problem cannot rank anyone
            # against random search; its regret is undefined and left out of the averages
            reg = (fv - best) / den if den > 0 else np.full(len(fv), np.nan)
            entry["optimizers"][o] = {"finals": fv.tolist(), "median_final": float(np.median(fv)),
                                      "regret": reg.tolist(),
                                      "mean_regret": float(np.mean(reg)) if den > 0 else math.nan}
        peers = {o: e for o, e in entry["optimizers"].items() if family[o] != "hpcore"}
        best_peer = min(peers, key=lambda o: (peers[o]["mean_regret"] if den > 0 else 0.0,
                                              peers[o]["median_final"])) if peers else None
        entry["best_peer"] = best_peer
        for o, e in entry["optimizers"].items():
            if best_peer is None or o == best_peer:
                e["p_vs_best_peer"] = float("nan")
                continue
            a, b = e["finals"], entry["optimizers"][best_peer]["finals"]
            if len(a) == len(b) and np.allclose(a, b):   # allclose raises on unequal lengths
                e["p_vs_best_peer"], e["worse_than_best_peer"] = 1.0, False
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mw = mannwhitneyu(a, b, alternative="two-sided")
            e["p_vs_best_peer"] = float(mw.pvalue)
            # the test's own direction (U of `a` above its null mean: `a` tends to the larger,
            # i.e. worse, values), not the medians: tied medians are common (a validation
            # error takes few values) and would call a significantly worse optimizer better
            e["worse_than_best_peer"] = bool(mw.statistic > 0.5 * len(a) * len(b))
        per_problem[p] = entry
    overall: dict[str, Any] = {}
    for o in optimizers:
        regs = [per_problem[p]["optimizers"][o]["mean_regret"] for p in problems
                if o in per_problem[p]["optimizers"]
                and not math.isnan(per_problem[p]["optimizers"][o]["mean_regret"])]
        st = np.array([r["suggest_time"] for r in rows if r["optimizer"] == o])
        ob = np.array([r["objective_time"] for r in rows if r["optimizer"] == o])
        sig = [p for p in problems if o in per_problem[p]["optimizers"]
               and per_problem[p]["best_peer"] not in (None, o)
               and per_problem[p]["optimizers"][o]["p_vs_best_peer"] < 0.05]
        worse = [p for p in sig if per_problem[p]["optimizers"][o]["worse_than_best_peer"]]
        overall[o] = {"family": family[o], "n_problems": len(regs),
                      "mean_regret": float(np.mean(regs)) if regs else float("nan"),
                      "suggest_median": float(np.median(st)), "suggest_p90":
                      float(np.percentile(st, 90)), "suggest_max": float(np.max(st)),
                      "objective_median": float(np.median(ob)), "n_calls": int(len(st)),
                      "sig_worse_than_best_peer": worse,
                      "sig_better_than_best_peer": [p for p in sig if p not in worse]}
    return {"problems": per_problem, "optimizers": overall, "problem_order": problems}


def _ms(x: float) -> str:
    return f"{1e3 * x:.3g}"


def write_markdown(summary: dict[str, Any], path: Path, *, header: Sequence[str] = (),
                   skipped: Sequence[str] = ()) -> None:
    ov = summary["optimizers"]
    order = sorted(ov, key=lambda o: (math.isnan(ov[o]["mean_regret"]), ov[o]["mean_regret"]))
    lines = list(header)
    lines += ["## Summary (lower regret is better; 0 = best seen by anyone, 1 = hpcore-random's "
              "median final best)", "",
              "| optimizer | problems | mean normalized regret | significantly worse / better "
              "than the best peer (p < 0.05) | suggest ms/call median | p90 | max "
              "| objective ms median |",
              "|---|---:|---:|---|---:|---:|---:|---:|"]
    for o in order:
        e = ov[o]
        sw = ", ".join(e["sig_worse_than_best_peer"]) or "-"
        sb = ", ".join(e["sig_better_than_best_peer"]) or "-"
        lines.append(f"| {o} | {e['n_problems']} | {e['mean_regret']:.3f} | worse: {sw}; "
                     f"better: {sb} | {_ms(e['suggest_median'])} | {_ms(e['suggest_p90'])} | "
                     f"{_ms(e['suggest_max'])} | {_ms(e['objective_median'])} |")
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped)]
    lines += ["", "## Per problem (median final best over seeds; mean normalized regret; "
              "Mann-Whitney p against the problem's best peer)", ""]
    for p in summary["problem_order"]:
        e = summary["problems"][p]
        lines += [f"### {p}: best seen {e['best_seen']:.6g}, hpcore-random median "
                  f"{e['reference']:.6g}, best peer {e['best_peer']}", "",
                  "| optimizer | median final best | mean regret | p vs best peer |",
                  "|---|---:|---:|---:|"]
        oe = e["optimizers"]
        if not e["reference"] > e["best_seen"]:
            lines += ["hpcore-random's median reached the best value seen: no regret (the "
                      "problem is left out of the averages).", ""]
        for o in sorted(oe, key=lambda o: (np.nan_to_num(oe[o]["mean_regret"]),
                                           oe[o]["median_final"])):
            lines.append(f"| {o} | {oe[o]['median_final']:.6g} | {oe[o]['mean_regret']:.3f} | "
                         f"{oe[o]['p_vs_best_peer']:.3g} |")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def _styles(names: Sequence[str]):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab20")
    ls = ["-", "--", ":", "-."]
    return {n: (cmap(i % 20), ls[(i // 20) % 4] if not n.startswith("hpcore") else "-")
            for i, n in enumerate(names)}


def write_plots(rows: Sequence[dict[str, Any]], summary: dict[str, Any], prefix: Path) -> list[Path]:
    """``<prefix>_best.png``, ``<prefix>_regret.png``, ``<prefix>_suggest.png``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - the plot extra is missing
        print("hpcore bench: matplotlib is missing, no plots (pip install matplotlib)")
        return []
    problems = summary["problem_order"]
    opts = list(summary["optimizers"])
    sty = _styles(opts)
    out = []
    # 1. median best-so-far with quartile bands, per problem
    n = len(problems)
    ncol = min(3, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.5 * ncol, 4 * nrow), squeeze=False)
    for ax, p in zip(axes.flat, problems):
        prow = [r for r in rows if r["problem"] == p]
        curve = any(r["epochs"] for r in prow)
        for o in opts:
            runs: dict[int, list] = {}
            for r in prow:
                if r["optimizer"] == o:
                    runs.setdefault(r["seed"], []).append(r)
            if not runs:
                continue
            if curve:
                end = min(rs[-1]["cum_epochs"] for rs in runs.values())
                x = np.linspace(1, end, 100)
                Y = []
                for rs in runs.values():
                    xs = np.array([r["cum_epochs"] for r in rs])
                    ys = np.array([r["best_so_far"] for r in rs])
                    idx = np.searchsorted(xs, x, side="right") - 1
                    Y.append(np.where(idx >= 0, ys[np.clip(idx, 0, None)], np.inf))
            else:
                m = min(len(rs) for rs in runs.values())
                x = np.arange(1, m + 1)
                Y = [[r["best_so_far"] for r in rs[:m]] for rs in runs.values()]
            Y = np.array(Y, dtype=float)
            Y[~np.isfinite(Y)] = np.nan
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                q1, med, q3 = np.nanpercentile(Y, [25, 50, 75], axis=0)
            c, ls = sty[o]
            ax.plot(x, med, color=c, ls=ls, lw=1.2, label=o)
            ax.fill_between(x, q1, q3, color=c, alpha=0.08)
        ax.set_title(p, fontsize=9)
        ax.set_xlabel("cumulative epochs" if curve else "trial")
        ax.set_ylabel("best so far (median, quartiles)")
        best = summary["problems"][p]["best_seen"]
        ref = summary["problems"][p]["reference"]
        if math.isfinite(ref) and ref > best:
            ax.set_ylim(best - 0.1 * (ref - best), ref + 1.5 * (ref - best))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.tight_layout()
    path = Path(f"{prefix}_best.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    out.append(path)
    # 2. normalized regret per optimizer
    ov = summary["optimizers"]
    order = sorted((o for o in ov if not math.isnan(ov[o]["mean_regret"])),
                   key=lambda o: ov[o]["mean_regret"])
    fig, ax = plt.subplots(figsize=(7, 0.25 * len(order) + 1.2))
    ax.barh(range(len(order)), [ov[o]["mean_regret"] for o in order],
            color=[sty[o][0] for o in order])
    ax.set_yticks(range(len(order)), [f"{o} ({ov[o]['n_problems']})" for o in order], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("mean normalized regret (0 = best seen, 1 = random's median); "
                  "(n) = problems", fontsize=8)
    fig.tight_layout()
    path = Path(f"{prefix}_regret.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out.append(path)
    # 3. suggestion time vs number of trials: median and max per call
    fig, ax = plt.subplots(figsize=(9, 5))
    for o in opts:
        by_t: dict[int, list[float]] = {}
        for r in rows:
            if r["optimizer"] == o:
                by_t.setdefault(r["trial"], []).append(r["suggest_time"])
        ts = sorted(by_t)
        c, ls = sty[o]
        ax.plot(ts, [1e3 * np.median(by_t[t]) for t in ts], color=c, ls=ls, lw=1.2, label=o)
        ax.plot(ts, [1e3 * np.max(by_t[t]) for t in ts], color=c, ls=ls, lw=0.6, alpha=0.5)
    ax.set_yscale("log")
    ax.set_xlabel("trial number")
    ax.set_ylabel("suggestion time per call, ms (thick: median, thin: max)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.tight_layout()
    path = Path(f"{prefix}_suggest.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    out.append(path)
    return out


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``compare_*.csv`` with their types back."""
    ints = {"seed", "trial", "epochs", "cum_epochs"}
    strs = {"optimizer", "problem", "state"}
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append({k: (v if k in strs else int(v) if k in ints else float(v))
                         for k, v in r.items()})
    return rows


def rebuild(prefix: Path) -> None:
    """Tables and plots again from ``<prefix>.csv`` (the header of ``<prefix>.md`` kept)."""
    prefix = Path(prefix)
    rows = read_csv(Path(f"{prefix}.csv"))
    md = Path(f"{prefix}.md")
    header, skipped = [], []
    if md.exists():
        text = md.read_text().split("\n")
        header = text[:text.index(next(t for t in text if t.startswith("## Summary")))]
        skipped = [t[len("Skipped: "):] for t in text if t.startswith("Skipped: ")]
    summary = summarize(rows)
    write_markdown(summary, md, header=header, skipped=skipped[0].split("; ") if skipped else ())
    write_plots(rows, summary, prefix)
    js = Path(f"{prefix}.json")
    if js.exists():
        import json

        data = json.loads(js.read_text())
        data["optimizers"] = summary["optimizers"]
        js.write_text(json.dumps(data, indent=1, default=float))
