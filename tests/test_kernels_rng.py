import numpy as np
import pytest
from scipy import stats

from hpcore import kernels


def test_same_seed_same_numbers_any_thread_count():
    a = kernels.uniform_streams(42, 257, 33, n_threads=1)
    b = kernels.uniform_streams(42, 257, 33, n_threads=2)
    c = kernels.uniform_streams(42, 257, 33, n_threads=-1)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    n1 = kernels.normal_streams(7, 100, 10, n_threads=1)
    n2 = kernels.normal_streams(7, 100, 10, n_threads=2)
    assert np.array_equal(n1, n2)


def test_streams_are_keyed_by_index():
    full = kernels.uniform_streams(3, 10, 5)
    part = kernels.uniform_streams(3, 4, 5, stream_offset=6)
    assert np.array_equal(full[6:], part)
    assert not np.array_equal(kernels.uniform_streams(3, 1, 5), kernels.uniform_streams(4, 1, 5))


def test_uniform_and_normal_distributions():
    u = kernels.uniform_streams(1, 200, 500).ravel()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    z = kernels.normal_streams(1, 200, 500).ravel()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # neighbouring streams are uncorrelated
    m = kernels.uniform_streams(9, 2, 20000)
    assert abs(np.corrcoef(m[0], m[1])[0, 1]) < 0.03


@pytest.mark.parametrize("kw, exc", [
    (dict(seed=-1), ValueError), (dict(seed=1.5), TypeError), (dict(n_streams=-2), ValueError),
])
def test_bad_arguments(kw, exc):
    args = dict(seed=0, n_streams=2, n_per_stream=2)
    args.update(kw)
    with pytest.raises(exc):
        kernels.uniform_streams(**args)


def test_effective_n_threads():
    n = kernels.effective_n_threads(None)
    assert n >= 1
    assert kernels.effective_n_threads(1) == 1
    if kernels.openmp_enabled():
        assert kernels.effective_n_threads(3) == 3
    with pytest.raises(TypeError):
        kernels.effective_n_threads("2")


def test_show_config(capsys):
    import hpcore

    info = hpcore.show_config()
    out = capsys.readouterr().out
    assert info["version"] == hpcore.__version__
    assert "openmp" in out and "n_threads" in out
