"""Thin script over the harness: ``.venv/bin/python bench/compare.py [hpcore bench options]``.

Same as ``hpcore bench ...`` with ``--out bench/results`` by default, e.g.
``.venv/bin/python bench/compare.py --quick`` writes ``bench/results/compare_quick.*``;
``--halving --seeds 10`` runs the halving anytime study (``halving_anytime*.md``).
"""
from __future__ import annotations

import sys
from pathlib import Path

from hpcore.bench import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--out" not in argv:
        argv += ["--out", str(Path(__file__).resolve().parent / "results")]
    sys.exit(main(argv))
