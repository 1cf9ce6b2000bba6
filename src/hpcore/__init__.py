"""hpcore: C-accelerated hyperparameter optimization.

The public API, re-exported; nothing else lives here.
"""
from hpcore._config import __version__, show_config

__all__ = ["__version__", "show_config"]
