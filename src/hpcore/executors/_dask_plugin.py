"""The worker plugin that carries one DaskExecutor run's data to every worker.

Imported only by :mod:`hpcore.executors.dask` when a run starts (it needs
``distributed``).  A plugin, unlike a scattered future, reaches workers that join
later (a nanny's replacement for a killed worker) and is no task dependency, so a
dying worker cannot make Dask cancel trial tasks for "lost dependencies".
"""
from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin


class RunData(WorkerPlugin):
    """``(pickled objective, report address, report key)`` of run ``run_id``, put in
    each worker process's cache at set-up (once per worker, not per trial) and dropped
    when the plugin is unregistered."""

    idempotent = False

    def __init__(self, run_id: str, payload: tuple, put, drop) -> None:
        # ``put`` / ``drop``: the executor's cache functions, pickled by reference (so
        # this module does not import hpcore.executors.dask, which imports it)
        self.run_id = run_id
        self.payload = payload
        self._put = put
        self._drop = drop
        self.name = f"hpcore-run-{run_id}"

    def setup(self, worker) -> None:
        self._put(self.run_id, self.payload)

    def teardown(self, worker) -> None:
        self._drop(self.run_id)
