"""Integrations with other tuners; each module imports its peer lazily (an optional extra).

- :mod:`hpcore.integrations.optuna`: hpcore samplers and pruners inside an Optuna study
  (``pip install "hpcore[optuna]"``).
"""
