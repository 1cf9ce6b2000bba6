"""Command line: ``hpcore demo`` and ``hpcore config``."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hpcore", description="hpcore command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="tune a real scikit-learn model with every method")
    demo.add_argument("--out", default="demo_out", help="folder for the study file and the plot")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--full", action="store_true",
                      help="the long version: 64 trials per method instead of 16")
    sub.add_parser("config", help="print the build configuration")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from hpcore._demo import run

        run(args.out, args.seed, full=args.full)
    elif args.command == "config":
        from hpcore import show_config

        show_config()
    return 0


if __name__ == "__main__":
    sys.exit(main())
