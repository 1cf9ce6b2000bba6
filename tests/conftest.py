import logging

import pytest


@pytest.fixture(autouse=True)
def _quiet_hpcore_logs(caplog):
    caplog.set_level(logging.ERROR, logger="hpcore")
    yield


@pytest.fixture(scope="module")
def dask_client():
    """A real 2-worker LocalCluster (processes), one per test module that asks for it."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            yield client
