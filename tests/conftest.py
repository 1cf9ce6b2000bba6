import logging

import pytest


@pytest.fixture(autouse=True)
def _quiet_hpcore_logs(caplog):
    caplog.set_level(logging.ERROR, logger="hpcore")
    yield
