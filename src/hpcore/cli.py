"""Command line: ``hpcore demo | studies | show | export | plot | bench | config``.

Each subcommand is one ``cmd_<name>(args) -> int`` function registered by
``add_<name>(subparsers)``.  Study files are given as a path or a ``sqlite:///`` URL and
opened read-only: these commands never create or change a study file.  Errors a user
can fix (a missing file or study, a plot kind that does not fit the study, a missing
optional package) print ``hpcore: error: ...`` and exit with status 2, without a
traceback and without writing an output file.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Callable

EXIT_USAGE = 2


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


# ------------------------------------------------------------------------- helpers
def _storage(target: str):
    from hpcore._summary import open_storage

    try:
        return open_storage(target)
    except FileNotFoundError:
        raise CLIError(f"no study file {target!r}") from None
    except (ValueError, TypeError, PermissionError) as exc:
        raise CLIError(f"cannot open {target!r}: {exc}") from None


def _load(target: str, name: str):
    import hpcore as hp
    from hpcore.storage import StudyNotFound

    storage = _storage(target)
    try:
        return hp.load_study(name, storage)
    except StudyNotFound as exc:
        raise CLIError(str(exc).strip('"')) from None
    except ValueError as exc:
        raise CLIError(f"cannot open study {name!r} in {target!r}: {exc}") from None


def _write_atomically(path: str, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the target's folder, renamed on success: a
    failure leaves no (partial) output behind."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"output folder {folder!r} does not exist")
    ext = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".hpcore-", suffix=ext, dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------------- demo
def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="tune a real scikit-learn model with every method")
    p.add_argument("--out", default="demo_out", help="folder for the study file and the plot")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full", action="store_true",
                   help="the long version: 64 trials per method instead of 16")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from hpcore._demo import run

    run(args.out, args.seed, full=args.full)
    return 0


# ------------------------------------------------------------------------- studies
def add_studies(sub) -> None:
    p = sub.add_parser("studies", help="list the studies of a study file")
    p.add_argument("storage", help="study file: a path or sqlite:///path.db")
    p.set_defaults(func=cmd_studies)


def cmd_studies(args) -> int:
    from hpcore._export import format_table
    from hpcore._summary import list_studies

    summaries = list_studies(_storage(args.storage))
    if not summaries:
        print(f"{args.storage}: no study")
        return 0
    rows = [[s.name, ",".join(s.directions), s.n_trials, s.states["COMPLETE"], s.states["PRUNED"],
             s.states["FAIL"], s.states["RUNNING"], s.best_value] for s in summaries]
    print(format_table(["name", "directions", "trials", "complete", "pruned", "fail", "running",
                        "best"], rows))
    return 0


# ------------------------------------------------------------------------- show
def add_show(sub) -> None:
    p = sub.add_parser("show", help="the best trials of a study as a table")
    p.add_argument("storage", help="study file: a path or sqlite:///path.db")
    p.add_argument("name", help="the study's name (see `hpcore studies`)")
    p.add_argument("--top", type=int, default=10, help="how many trials (default 10)")
    p.set_defaults(func=cmd_show)


def cmd_show(args) -> int:
    from hpcore._export import best_trials_table

    if args.top < 1:
        raise CLIError(f"--top must be >= 1, got {args.top}")
    study = _load(args.storage, args.name)
    n = len(study.trials)
    kind = "best trials" if len(study.directions) == 1 else "Pareto front"
    print(f"study {study.name!r}: {', '.join(study.directions)}; {n} trials; {kind}:")
    print(best_trials_table(study, args.top))
    return 0


# ------------------------------------------------------------------------- export
def add_export(sub) -> None:
    p = sub.add_parser("export", help="every trial of a study as CSV (no pandas needed)")
    p.add_argument("storage", help="study file: a path or sqlite:///path.db")
    p.add_argument("name", help="the study's name")
    p.add_argument("-o", "--output", required=True, help="CSV file to write ('-': stdout)")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from hpcore._export import trial_rows, write_csv

    study = _load(args.storage, args.name)
    rows = trial_rows(study)
    if args.output == "-":
        write_csv(rows, sys.stdout)
        return 0

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            write_csv(rows, f)

    _write_atomically(args.output, write)
    print(f"{len(rows)} trials -> {args.output}")
    return 0


# ------------------------------------------------------------------------- plot
def add_plot(sub) -> None:
    from hpcore.plot import KINDS

    p = sub.add_parser("plot", help="plot a study to an image file")
    p.add_argument("storage", help="study file: a path or sqlite:///path.db")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="the study (several: overlaid, for --kind convergence)")
    p.add_argument("-o", "--output", required=True, help="image file (.png, .pdf, .svg)")
    p.add_argument("--kind", choices=sorted(KINDS), default="convergence")
    p.set_defaults(func=cmd_plot)


def cmd_plot(args) -> int:
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        raise CLIError("plotting needs matplotlib: pip install matplotlib (or 'hpcore[plot]')") \
            from None
    from hpcore.plot import plot, plot_convergence

    if len(args.names) > 1 and args.kind != "convergence":
        raise CLIError(f"--kind {args.kind} plots one study; got {len(args.names)} names")
    studies = [_load(args.storage, n) for n in args.names]
    if args.kind == "convergence":
        fig = plot_convergence({s.name: s for s in studies})
    else:
        fig = plot(studies[0], args.kind)
    import matplotlib.pyplot as plt

    try:
        _write_atomically(args.output, lambda tmp: fig.savefig(tmp, dpi=110))
    finally:
        plt.close(fig)
    print(f"{args.kind} plot -> {args.output}")
    return 0


# ------------------------------------------------------------------------- bench
def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="compare hpcore with its peers (see `hpcore bench --help`)",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from hpcore.bench import main as bench_main

    return int(bench_main(args.bench_args) or 0)


# ------------------------------------------------------------------------- config
def add_config(sub) -> None:
    p = sub.add_parser("config", help="print the build configuration")
    p.set_defaults(func=cmd_config)


def cmd_config(args) -> int:
    from hpcore import show_config

    show_config()
    return 0


COMMANDS = (add_demo, add_studies, add_show, add_export, add_plot, add_bench, add_config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpcore", description="hpcore command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        # the bench parses its own options: argparse's REMAINDER would reject leading ones
        return cmd_bench(argparse.Namespace(bench_args=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CLIError as exc:
        print(f"hpcore: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, ImportError) as exc:   # e.g. a Pareto plot of a 1-objective study
        if args.command in ("demo", "bench", "config"):
            raise
        print(f"hpcore: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
