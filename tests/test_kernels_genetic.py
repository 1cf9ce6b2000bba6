"""Genetic operators and NSGA-II ranking against NumPy references."""
import numpy as np
import pytest
from scipy import stats

from hpcore._kernels import genetic as _g
from hpcore.kernels import (blend_crossover, categorical_mutation, crowding_distance,
                            elite_indices, gaussian_mutation, nondominated_sort, nsga2_rank,
                            polynomial_mutation, sbx_crossover, sbx_offspring,
                            tournament_select, uniform_crossover)

KS_ALPHA = 1e-3


# ---------------------------------------------------------------------------------------
# NumPy references (straight transcriptions of Deb's NSGA-II code, vectorized)
# ---------------------------------------------------------------------------------------
def ref_sbx(y1, y2, yl, yu, eta, rng, n):
    """Children of one gene pair (y1 < y2), ``n`` draws, before the random swap."""
    u = rng.random(n)

    def betaq(beta):
        alpha = 2.0 - beta ** -(eta + 1.0)
        return np.where(u <= 1.0 / alpha, (u * alpha) ** (1.0 / (eta + 1.0)),
                        (1.0 / (2.0 - u * alpha)) ** (1.0 / (eta + 1.0)))

    c1 = 0.5 * ((y1 + y2) - betaq(1.0 + 2.0 * (y1 - yl) / (y2 - y1)) * (y2 - y1))
    c2 = 0.5 * ((y1 + y2) + betaq(1.0 + 2.0 * (yu - y2) / (y2 - y1)) * (y2 - y1))
    return np.clip(c1, yl, yu), np.clip(c2, yl, yu)


def ref_polynomial(y, yl, yu, eta, rng, n):
    u = rng.random(n)
    d1, d2 = (y - yl) / (yu - yl), (yu - y) / (yu - yl)
    mp = 1.0 / (eta + 1.0)
    lo = (2 * u + (1 - 2 * u) * (1 - d1) ** (eta + 1)) ** mp - 1
    hi = 1 - (2 * (1 - u) + 2 * (u - 0.5) * (1 - d2) ** (eta + 1)) ** mp
    return np.clip(y + np.where(u <= 0.5, lo, hi) * (yu - yl), yl, yu)


def brute_ranks(F):
    """Peel fronts with the full O(n^2) dominance matrix."""
    dom = (F[:, None, :] <= F[None, :, :]).all(-1) & (F[:, None, :] < F[None, :, :]).any(-1)
    n = len(F)
    rank = np.full(n, -1)
    left = np.ones(n, bool)
    k = 0
    while left.any():
        front = left & ~dom[left].any(0)
        rank[front] = k
        left &= ~front
        k += 1
    return rank


def brute_crowding(F, rank):
    d = np.zeros(len(F))
    for r in np.unique(rank):
        mem = np.flatnonzero(rank == r)
        if len(mem) <= 2:
            d[mem] = np.inf
            continue
        for k in range(F.shape[1]):
            o = mem[np.argsort(F[mem, k], kind="stable")]
            d[o[0]] = d[o[-1]] = np.inf
            span = F[o[-1], k] - F[o[0], k]
            if span > 0:
                for i in range(1, len(o) - 1):
                    d[o[i]] += (F[o[i + 1], k] - F[o[i - 1], k]) / span
    return d


def pair_rows(y1, y2, n):
    return np.full((n, 1), float(y1)), np.full((n, 1), float(y2))


# ---------------------------------------------------------------------------------------
# SBX
# ---------------------------------------------------------------------------------------
def test_sbx_children_mean_equals_parents_mean():
    rng = np.random.default_rng(0)
    pa, pb = rng.random((2000, 8)), rng.random((2000, 8))
    # bounds far away: both children get the same spread factor, so c1 + c2 = p1 + p2
    ca, cb = sbx_crossover(pa, pb, -1e9, 1e9, eta=10, prob=1.0, prob_var=1.0, seed=3)
    np.testing.assert_allclose(ca + cb, pa + pb, rtol=0, atol=1e-6)
    # bounds that bind: the mean is still preserved on average for a centered pair
    ca, cb = sbx_crossover(*pair_rows(0.3, 0.7, 100000), 0.0, 1.0, eta=2, prob=1.0,
                           prob_var=1.0, seed=4)
    assert abs((ca + cb).mean() / 2 - 0.5) < 2e-3
    assert not np.allclose(ca, pa[0, 0])


@pytest.mark.parametrize("eta", [1.0, 5.0, 20.0])
def test_sbx_spread_matches_the_sbx_distribution(eta):
    n = 20000
    ca, cb = sbx_crossover(*pair_rows(0.4, 0.6, n), -1e9, 1e9, eta=eta, prob=1.0, prob_var=1.0,
                           seed=11)
    beta = np.abs(cb - ca)[:, 0] / 0.2
    # unbounded SBX: P(beta <= b) = b^(eta+1)/2 for b <= 1, 1 - b^-(eta+1)/2 beyond
    cdf = lambda b: np.where(b <= 1, 0.5 * b ** (eta + 1), 1 - 0.5 * b ** -(eta + 1.0))
    assert stats.kstest(beta, cdf).pvalue > KS_ALPHA


@pytest.mark.parametrize("eta,y1,y2", [(2.0, 0.05, 0.3), (15.0, 0.8, 0.98), (0.5, 0.1, 0.9)])
def test_sbx_bounded_matches_numpy_reference(eta, y1, y2):
    n = 20000
    ca, cb = sbx_crossover(*pair_rows(y1, y2, n), 0.0, 1.0, eta=eta, prob=1.0, prob_var=1.0,
                           seed=5)
    lo_child, hi_child = np.minimum(ca, cb)[:, 0], np.maximum(ca, cb)[:, 0]
    r1, r2 = ref_sbx(y1, y2, 0.0, 1.0, eta, np.random.default_rng(1), n)
    assert stats.ks_2samp(lo_child, np.minimum(r1, r2)).pvalue > KS_ALPHA
    assert stats.ks_2samp(hi_child, np.maximum(r1, r2)).pvalue > KS_ALPHA
    assert ca.min() >= 0.0 and cb.max() <= 1.0


def test_sbx_spread_shrinks_with_eta_and_respects_bounds():
    rng = np.random.default_rng(2)
    lo, hi = np.array([-1.0, 0.0, 10.0]), np.array([1.0, 5.0, 20.0])
    pa, pb = rng.uniform(lo, hi, (5000, 3)), rng.uniform(lo, hi, (5000, 3))
    spread = []
    for eta in (1, 5, 30):
        ca, cb = sbx_crossover(pa, pb, lo, hi, eta=eta, prob=1.0, prob_var=1.0, seed=eta)
        for c in (ca, cb):
            assert (c >= lo).all() and (c <= hi).all()
        spread.append(np.mean(np.abs(np.minimum(ca, cb) - np.minimum(pa, pb))))
    assert spread[0] > spread[1] > spread[2]


def test_sbx_probabilities_and_integers():
    rng = np.random.default_rng(3)
    pa, pb = rng.random((1000, 4)), rng.random((1000, 4))
    ca, cb = sbx_crossover(pa, pb, 0, 1, prob=0.0, seed=1)
    assert np.array_equal(ca, pa) and np.array_equal(cb, pb)
    ca, cb = sbx_crossover(pa, pb, 0, 1, prob=1.0, prob_var=0.5, seed=1)
    changed = (ca != pa).mean()
    assert 0.45 < changed < 0.55
    lo, hi = np.array([0.0, -5.0]), np.array([10.0, 5.0])
    ia = rng.integers(0, 11, (500, 2)).astype(float)
    ia[:, 1] -= 5
    ib = rng.integers(0, 11, (500, 2)).astype(float)
    ib[:, 1] -= 5
    ca, cb = sbx_crossover(ia, ib, lo, hi, prob=1.0, prob_var=1.0, eta=1,
                           integer=[True, True], seed=2)
    for c in (ca, cb):
        assert np.array_equal(c, np.round(c)) and (c >= lo).all() and (c <= hi).all()
    assert (ca != ia).any()


# ---------------------------------------------------------------------------------------
# mutation
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("eta,y", [(5.0, 0.5), (20.0, 0.02), (1.0, 0.9)])
def test_polynomial_mutation_matches_numpy_reference(eta, y):
    n = 20000
    x = polynomial_mutation(np.full((n, 1), y), 0.0, 1.0, eta=eta, prob_var=1.0, seed=7)[:, 0]
    ref = ref_polynomial(y, 0.0, 1.0, eta, np.random.default_rng(0), n)
    assert stats.ks_2samp(x, ref).pvalue > KS_ALPHA
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_polynomial_mutation_spread_bounds_rate_integers():
    rng = np.random.default_rng(4)
    lo, hi = np.array([0.0, -3.0, 100.0]), np.array([1.0, 3.0, 200.0])
    x = rng.uniform(lo, hi, (4000, 3))
    spreads = []
    for eta in (1, 10, 50):
        y = polynomial_mutation(x, lo, hi, eta=eta, prob_var=1.0, seed=1)
        assert (y >= lo).all() and (y <= hi).all()
        spreads.append(np.mean(np.abs(y - x) / (hi - lo)))
    assert spreads[0] > spreads[1] > spreads[2]
    y = polynomial_mutation(x, lo, hi, prob_var=0.0, seed=1)
    assert np.array_equal(y, x)
    y = polynomial_mutation(x, lo, hi, seed=1)          # default rate 1/n_genes
    assert 0.28 < (y != x).mean() < 0.39
    xi = np.round(x)
    y = polynomial_mutation(xi, lo, hi, eta=1, prob_var=1.0, integer=[0, 1, 1], seed=2)
    assert np.array_equal(y[:, 1:], np.round(y[:, 1:])) and (y[:, 1:] != xi[:, 1:]).any()


def test_gaussian_mutation_moments():
    n = 40000
    x = np.full((n, 2), 0.5)
    y = gaussian_mutation(x, [0.0, 0.0], [1.0, 10.0], sigma=0.01, prob_var=1.0, seed=3)
    np.testing.assert_allclose(y.mean(0), [0.5, 0.5], atol=3e-3)
    np.testing.assert_allclose(y.std(0), [0.01, 0.1], rtol=0.03)
    y = gaussian_mutation(x, 0.0, 1.0, sigma=5.0, prob_var=1.0, seed=3)
    assert (y >= 0).all() and (y <= 1).all() and ((y == 0) | (y == 1)).mean() > 0.8


def test_categorical_mutation_resets_to_another_category():
    n = 30000
    x = np.zeros((n, 3))
    x[:, 1] = 2.0
    x[:, 2] = 0.25
    y = categorical_mutation(x, [4, 3, 0], prob=1.0, seed=1)
    assert (y[:, 0] != 0).all() and (y[:, 1] != 2).all() and np.array_equal(y[:, 2], x[:, 2])
    counts = np.bincount(y[:, 0].astype(int), minlength=4)[1:]
    assert stats.chisquare(counts).pvalue > KS_ALPHA
    y = categorical_mutation(x, [4, 3, 0], prob=0.2, seed=2)
    assert 0.18 < (y[:, 0] != 0).mean() < 0.22
    with pytest.raises(ValueError, match="categorical"):
        categorical_mutation(x + 0.5, [4, 3, 0], prob=1.0)


# ---------------------------------------------------------------------------------------
# other crossovers, selection
# ---------------------------------------------------------------------------------------
def test_blend_crossover_interval_and_uniformity():
    n = 20000
    pa, pb = pair_rows(0.4, 0.6, n)
    ca, cb = blend_crossover(pa, pb, 0.0, 1.0, alpha=0.5, prob=1.0, seed=5)
    for c in (ca[:, 0], cb[:, 0]):
        assert c.min() >= 0.3 and c.max() <= 0.7
        assert stats.kstest(c, stats.uniform(0.3, 0.4).cdf).pvalue > KS_ALPHA
    ca, cb = blend_crossover(*pair_rows(0.0, 0.2, 1000), 0.0, 1.0, alpha=1.0, prob=1.0, seed=1)
    assert ca.min() == 0.0 and ca.max() <= 0.4


def test_uniform_crossover_swaps_genes():
    rng = np.random.default_rng(0)
    pa, pb = rng.random((2000, 10)), rng.random((2000, 10))
    ca, cb = uniform_crossover(pa, pb, prob=1.0, prob_var=0.3, seed=1)
    swapped = (ca == pb) & (cb == pa)
    assert (swapped | ((ca == pa) & (cb == pb))).all()
    assert 0.28 < swapped.mean() < 0.32


def test_tournament_selection_distribution():
    n, k, m = 10, 3, 100000
    fitness = np.arange(n, dtype=float)[::-1].copy()      # index 9 is the best
    w = tournament_select(fitness, m, tournament_size=k, seed=1)
    # winner has rank r (0 = best) with P = ((n - r)/n)^k - ((n - r - 1)/n)^k
    r = np.arange(n)
    p = ((n - r) / n) ** k - ((n - r - 1) / n) ** k
    counts = np.bincount(n - 1 - w, minlength=n)
    assert stats.chisquare(counts, p * m).pvalue > KS_ALPHA
    assert np.array_equal(tournament_select(np.zeros(4), 5, tournament_size=1, seed=3),
                          tournament_select(np.zeros(4), 5, tournament_size=1, seed=3))


def test_elite_indices():
    f = np.array([3.0, 1.0, 2.0, 1.0, 0.5, 3.0])
    assert elite_indices(f, 4).tolist() == [4, 1, 3, 2]
    rng = np.random.default_rng(0)
    f = rng.integers(0, 50, 5000).astype(float)
    assert np.array_equal(elite_indices(f, 300), np.argsort(f, kind="stable")[:300])


# ---------------------------------------------------------------------------------------
# non-dominated sorting and crowding
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_nondominated_sort_and_crowding_match_brute_force(m):
    rng = np.random.default_rng(m)
    for trial in range(60):
        n = int(rng.integers(1, 80))
        if trial % 3 == 0:
            F = rng.random((n, m))
        else:       # small integer grid: many ties and exact duplicates
            F = rng.integers(0, 4, (n, m)).astype(float)
            F[rng.random(n) < 0.2] = F[0]
            if trial % 3 == 2:
                F = -F
        rank = brute_ranks(F)
        assert np.array_equal(nondominated_sort(F), rank)
        assert np.array_equal(_g.nondominated_sort_ens(F), rank)
        np.testing.assert_allclose(crowding_distance(F, rank), brute_crowding(F, rank))


@pytest.mark.parametrize("m", [2, 3])
def test_fast_paths_equal_general_path_on_large_sets(m):
    rng = np.random.default_rng(10 + m)
    F = rng.random((6000, m))
    F[:500] = np.round(F[:500], 1)              # ties mixed in
    assert np.array_equal(nondominated_sort(F), _g.nondominated_sort_ens(F))
    assert np.array_equal(_g.lex_order(F), np.lexsort(F.T[::-1]))


def test_three_objective_sort_across_bit_set_words_with_ties():
    # several 64-rank words per front, exact duplicates, ties in every objective, -0.0
    rng = np.random.default_rng(33)
    for trial in range(30):
        n = int(rng.integers(65, 700))
        F = rng.integers(0, int(rng.integers(2, 9)), (n, 3)).astype(float)
        F[rng.random(n) < 0.15] = F[int(rng.integers(n))]
        if trial % 2:
            F[F == 0.0] = -0.0
        assert np.array_equal(nondominated_sort(F), brute_ranks(F))


def test_nondominated_sort_from_many_threads_at_once():
    # the kept scratch block goes to one call at a time; the others get their own
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(34)
    sets = [rng.random((int(rng.integers(1000, 4000)), m)) for m in (2, 3, 4, 3, 2, 3) * 3]
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(nondominated_sort, sets))
    for F, r in zip(sets, got):
        assert np.array_equal(r, _g.nondominated_sort_ens(F))


def test_nsga2_rank_order_and_known_front():
    # points on the line x + y = 1 are all non-dominated; the rest are dominated
    t = np.linspace(0, 1, 11)
    F = np.vstack([np.c_[t, 1 - t], np.c_[t, 1 - t] + 0.5])
    ranks, crowd, order = nsga2_rank(F)
    assert ranks.tolist() == [0] * 11 + [1] * 11
    assert np.isinf(crowd[[0, 10, 11, 21]]).all()
    np.testing.assert_allclose(crowd[1:10], 0.4)
    assert set(order[:11].tolist()) == set(range(11)) and order[0] == 0 and order[1] == 10
    assert crowding_distance(np.zeros((0, 2))).shape == (0,)
    assert nondominated_sort(np.zeros((0, 3))).shape == (0,)


# ---------------------------------------------------------------------------------------
# threads, seeds, errors
# ---------------------------------------------------------------------------------------
def test_same_seed_same_children_for_1_and_2_threads():
    rng = np.random.default_rng(0)
    lo, hi = np.zeros(20), np.full(20, 5.0)
    pa, pb = rng.uniform(lo, hi, (501, 20)), rng.uniform(lo, hi, (501, 20))
    integer = np.arange(20) % 4 == 0
    pa[:, integer], pb[:, integer] = np.round(pa[:, integer]), np.round(pb[:, integer])
    ops = [
        lambda nt: sbx_crossover(pa, pb, lo, hi, integer=integer, seed=9, n_threads=nt),
        lambda nt: blend_crossover(pa, pb, lo, hi, seed=9, n_threads=nt),
        lambda nt: uniform_crossover(pa, pb, seed=9, n_threads=nt),
        lambda nt: (polynomial_mutation(pa, lo, hi, prob_var=0.5, seed=9, n_threads=nt),),
        lambda nt: (gaussian_mutation(pa, lo, hi, prob_var=0.5, seed=9, n_threads=nt),),
        lambda nt: (categorical_mutation(np.round(pa), np.full(20, 6), prob=0.5, seed=9,
                                         n_threads=nt),),
        lambda nt: (tournament_select(pa[:, 0], 1000, tournament_size=3, seed=9, n_threads=nt),),
        lambda nt: (crowding_distance(pa[:, :3], nondominated_sort(pa[:, :3]), n_threads=nt),),
    ]
    for op in ops:
        one, two = op(1), op(2)
        for a, b in zip(one, two):
            assert np.array_equal(a, b)
    a1, _ = sbx_crossover(pa, pb, lo, hi, seed=9)
    a2, _ = sbx_crossover(pa, pb, lo, hi, seed=10)
    a3, _ = sbx_crossover(pa[1:], pb[1:], lo, hi, seed=9, stream_offset=1)
    assert not np.array_equal(a1, a2) and np.array_equal(a1[1:], a3)


def test_bad_inputs_raise_named_errors():
    x = np.random.default_rng(0).random((4, 3))
    with pytest.raises(ValueError, match="parents_b"):
        sbx_crossover(x, x[:, :2], 0, 1)
    with pytest.raises(ValueError, match="same number of rows"):
        sbx_crossover(x, x[:2], 0, 1)
    with pytest.raises(ValueError, match="lower"):
        sbx_crossover(x, x, [0, 0], 1)
    with pytest.raises(ValueError, match="lower must be <= upper"):
        sbx_crossover(x, x, 1, 0)
    with pytest.raises(ValueError, match="parents_a.*outside"):
        sbx_crossover(x + 2, x, 0, 1)
    with pytest.raises(ValueError, match="eta"):
        sbx_crossover(x, x, 0, 1, eta=-1)
    with pytest.raises(ValueError, match="prob"):
        sbx_crossover(x, x, 0, 1, prob=1.5)
    with pytest.raises(TypeError, match="seed"):
        sbx_crossover(x, x, 0, 1, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        sbx_crossover(x, x, 0, 1, seed=-1)
    with pytest.raises(ValueError, match="integer genes"):
        sbx_crossover(x, x, 0, 1.5, integer=[True, False, False])
    with pytest.raises(ValueError, match="x contains NaN"):
        polynomial_mutation(np.full((2, 2), np.nan), 0, 1)
    with pytest.raises(ValueError, match="x must be 2-D"):
        polynomial_mutation(np.zeros(3), 0, 1)
    with pytest.raises(TypeError, match="x must be a real numeric"):
        gaussian_mutation(np.array([["a"]]), 0, 1)
    with pytest.raises(ValueError, match="n_categories"):
        categorical_mutation(x, [2, 2])
    with pytest.raises(ValueError, match="fitness contains NaN"):
        tournament_select([1.0, np.nan], 2)
    with pytest.raises(ValueError, match="tournament_size"):
        tournament_select([1.0, 2.0], 2, tournament_size=0)
    with pytest.raises(ValueError, match="fitness is empty"):
        tournament_select([], 2)
    with pytest.raises(ValueError, match="n_elite"):
        elite_indices([1.0], 2)
    with pytest.raises(ValueError, match="F contains NaN"):
        nondominated_sort([[1.0, np.nan]])
    with pytest.raises(ValueError, match="F must be 2-D"):
        nondominated_sort([1.0, 2.0])
    with pytest.raises(ValueError, match="ranks must have shape"):
        crowding_distance(x, [0, 0])
    with pytest.raises(TypeError, match="ranks must be an integer"):
        crowding_distance(x, [0.0, 0.0, 0.0, 0.0])


def test_out_buffers_match_new_arrays():
    rng = np.random.default_rng(5)
    pa, pb = rng.random((300, 7)), rng.random((300, 7))
    ca, cb = sbx_crossover(pa, pb, 0, 1, seed=4)
    buf = np.empty((600, 7))
    ra, rb = sbx_crossover(pa, pb, 0, 1, seed=4, out=(buf[:300], buf[300:]))
    assert np.array_equal(buf, np.vstack([ca, cb])) and np.shares_memory(ra, buf)
    m = polynomial_mutation(buf, 0, 1, prob_var=0.3, seed=2)
    same = polynomial_mutation(buf, 0, 1, prob_var=0.3, seed=2, out=buf)
    assert same is buf and np.array_equal(buf, m)
    with pytest.raises(ValueError, match="overlap"):
        sbx_crossover(pa, pb, 0, 1, out=(buf[:300], buf[:300]))
    with pytest.raises(TypeError, match="out"):
        polynomial_mutation(pa, 0, 1, out=np.empty((300, 7), dtype=np.float32))
    with pytest.raises(ValueError, match="out must have shape"):
        polynomial_mutation(pa, 0, 1, out=np.empty((3, 7)))


def test_sbx_offspring_reads_parents_in_place():
    rng = np.random.default_rng(6)
    X = rng.random((50, 9))
    pairs = rng.integers(0, 50, (40, 2))
    ca, cb = sbx_crossover(X[pairs[:, 0]], X[pairs[:, 1]], 0, 1, seed=8, stream_offset=3)
    kids = sbx_offspring(X, pairs, 0, 1, seed=8, stream_offset=3)
    assert np.array_equal(kids, np.vstack([ca, cb]))
    buf = np.empty((80, 9))
    assert sbx_offspring(X, pairs, 0, 1, seed=8, stream_offset=3, n_threads=2, out=buf) is buf
    assert np.array_equal(buf, kids)
    with pytest.raises(ValueError, match="pairs must index"):
        sbx_offspring(X, pairs + 50, 0, 1)
    with pytest.raises(ValueError, match="pairs must have shape"):
        sbx_offspring(X, pairs[:, :1], 0, 1)
    with pytest.raises(ValueError, match="overlap"):
        sbx_offspring(X, pairs[:25], 0, 1, out=X)


def test_sbx_offspring_with_fused_mutation_equals_separate_calls():
    rng = np.random.default_rng(12)
    lo, hi = np.array([0.0, -3.0, 0.0, 1.0]), np.array([1.0, 3.0, 9.0, 1.0])
    X = lo + rng.random((60, 4)) * (hi - lo)
    X[:, 2] = np.round(X[:, 2])
    pairs = rng.integers(0, 60, (40, 2))
    kw = dict(integer=[False, False, True, False], seed=8, stream_offset=3)
    ref = polynomial_mutation(sbx_offspring(X, pairs, lo, hi, **kw), lo, hi, eta=7.0,
                              prob_var=0.4, integer=kw["integer"], seed=5, stream_offset=11)
    for nt in (1, 2):
        got = sbx_offspring(X, pairs, lo, hi, n_threads=nt, mutation_prob_var=0.4,
                            mutation_eta=7.0, mutation_seed=5, mutation_stream_offset=11, **kw)
        assert np.array_equal(got, ref)
    with pytest.raises(ValueError, match="mutation_prob_var"):
        sbx_offspring(X, pairs, lo, hi, mutation_prob_var=2.0)


def test_three_objective_sort_fallback_when_bit_sets_exceed_their_budget():
    rng = np.random.default_rng(21)
    F = rng.integers(0, 5, (300, 3)).astype(float)
    F[rng.random(300) < 0.2] = F[0]
    G = np.repeat(np.arange(100.0)[:, None], 3, axis=1)     # a chain: 100 fronts
    old = _g._set_nds_bits_budget(1)
    try:
        assert np.array_equal(nondominated_sort(F), brute_ranks(F))
        assert np.array_equal(nondominated_sort(G), np.arange(100))
    finally:
        _g._set_nds_bits_budget(old)
    assert np.array_equal(nondominated_sort(F), brute_ranks(F))


def _composed_child(X, ia, ib, lower, upper, imask, is_cat, ncat, crossover, cparam, cprob,
                    mutation, mparam, pm, seeds, mating, side, number):
    """GeneticSampler's child from the row kernels (what breed_child fuses)."""
    pa, pb = X[ia:ia + 1], X[ib:ib + 1]
    if crossover == 0:
        kids = _g.sbx_crossover(pa, pb, lower, upper, imask, cparam, cprob, 0.5, seeds[0], mating, 1)
    elif crossover == 1:
        kids = _g.blend_crossover(pa, pb, lower, upper, imask, cparam, cprob, seeds[0], mating, 1)
    else:
        kids = _g.uniform_crossover(pa, pb, cprob, 0.5, seeds[0], mating, 1)
    child = kids[side].copy()
    num = ~is_cat
    if is_cat.any():
        child[:, is_cat] = _g.uniform_crossover(pa, pb, cprob, 0.5, seeds[1], mating, 1)[side][:, is_cat]
    xs = np.ascontiguousarray(child[:, num])
    lo, hi, im = (np.ascontiguousarray(a[num]) for a in (lower, upper, imask))
    if xs.shape[1]:
        if mutation == 0:
            _g.polynomial_mutation(xs, lo, hi, im, mparam, pm, seeds[2], number, 1)
        else:
            _g.gaussian_mutation(xs, lo, hi, im, mparam, pm, seeds[2], number, 1)
    child[:, num] = xs
    if is_cat.any():
        _g.categorical_mutation(child, ncat, pm, seeds[3], number, 1)
    return child[0]


@pytest.mark.parametrize("crossover", [0, 1, 2])
@pytest.mark.parametrize("mutation", [0, 1])
@pytest.mark.parametrize("genes", ["mixed", "numeric", "categorical"])
def test_breed_child_is_the_composed_operators_bit_for_bit(crossover, mutation, genes):
    rng = np.random.default_rng(7)
    levels = {"mixed": [0, 0, 8, 3, 0, 2], "numeric": [0, 5, 0, 0], "categorical": [3, 2, 4]}[genes]
    is_cat = np.array({"mixed": [0, 0, 0, 1, 0, 1], "numeric": [0, 0, 0, 0],
                       "categorical": [1, 1, 1]}[genes], dtype=bool)
    levels = np.array(levels, dtype=np.int64)
    g = len(levels)
    upper = np.where(levels > 0, levels - 1, 1.0).astype(np.float64)
    lower = np.zeros(g)
    imask = (levels > 0).astype(np.uint8)
    ncat = np.where(is_cat, levels, 0).astype(np.int64)
    X = np.where(levels > 0, np.floor(rng.random((12, g)) * (upper + 1)), rng.random((12, g)))
    X = np.ascontiguousarray(X)
    num_idx = np.flatnonzero(~is_cat).astype(np.int64)
    cat_idx = np.flatnonzero(is_cat).astype(np.int64)
    for trial in range(40):
        ia, ib = rng.integers(0, 12, 2)
        pm = [1.0 / g, 0.5, 1.0][trial % 3]
        cparam = [15.0, 0.5, 0.0][crossover]
        mparam = 20.0 if mutation == 0 else 0.1
        seeds = [int(s) for s in rng.integers(0, 2 ** 63, 4)]
        mating, side, number = int(rng.integers(0, 10 ** 6)), trial % 2, int(rng.integers(0, 10 ** 6))
        cut = _g.pm_cut_table(len(num_idx), pm)
        got = _g.breed_child(X, int(ia), int(ib), lower, upper, imask, num_idx, cat_idx, ncat,
                             crossover, cparam, 0.9, mutation, mparam, pm, cut, *seeds, mating,
                             side, number)
        ref = _composed_child(X, ia, ib, lower, upper, imask, is_cat, ncat, crossover, cparam,
                              0.9, mutation, mparam, pm, seeds, mating, side, number)
        assert np.array_equal(got, ref)


def test_breed_child_checks_its_indices():
    X = np.zeros((3, 2))
    a = np.zeros(2)
    one = np.ones(2)
    im = np.zeros(2, dtype=np.uint8)
    idx = np.arange(2, dtype=np.int64)
    none = np.zeros(0, dtype=np.int64)
    nc = np.zeros(2, dtype=np.int64)
    cut = _g.pm_cut_table(2, 0.5)
    with pytest.raises(IndexError):
        _g.breed_child(X, 3, 0, a, one, im, idx, none, nc, 0, 15.0, 0.9, 0, 20.0, 0.5, cut,
                       1, 2, 3, 4, 0, 0, 0)
    with pytest.raises(IndexError):
        _g.breed_child(X, 0, 1, a, one, im, np.array([0, 2], dtype=np.int64), none, nc, 0,
                       15.0, 0.9, 0, 20.0, 0.5, cut, 1, 2, 3, 4, 0, 0, 0)
