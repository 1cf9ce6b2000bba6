"""Rung-table kernels against a straightforward pure-Python reference."""
from __future__ import annotations

import bisect
import math
import zlib
from collections import defaultdict

import numpy as np
import pytest

from hpcore.kernels._halving import (RungBook, hyperband_brackets, make_rung_book, rung_levels,
                                     top_k)

# Li et al. (2018), Table 1: R = 81, eta = 3.
PAPER = {
    4: ([81, 27, 9, 3, 1], [1, 3, 9, 27, 81]),
    3: ([34, 11, 3, 1], [3, 9, 27, 81]),
    2: ([15, 5, 1], [9, 27, 81]),
    1: ([8, 2], [27, 81]),
    0: ([5], [81]),
}


def test_hyperband_brackets_match_paper_table():
    br = hyperband_brackets(1, 81, 3)
    assert [b.s for b in br] == [4, 3, 2, 1, 0]
    for b in br:
        n, r = PAPER[b.s]
        assert list(b.n) == n
        assert list(b.r) == [float(x) for x in r]


def _paper_formula(R, eta):
    # Algorithm 1 of Li et al. (2018), with floats as written there.
    s_max = int(math.floor(math.log(R) / math.log(eta) + 1e-9))
    B = (s_max + 1) * R
    out = []
    for s in range(s_max, -1, -1):
        n = int(math.ceil(B / R * eta ** s / (s + 1) - 1e-9))
        r = R * eta ** (-s)
        out.append(([int(math.floor(n * eta ** (-i) + 1e-9)) for i in range(s + 1)],
                    [r * eta ** i for i in range(s + 1)]))
    return out


@pytest.mark.parametrize("R,eta", [(81, 3), (27, 3), (100, 3), (16, 2), (1000, 10), (64, 4),
                                   (1, 3), (2, 3)])
def test_hyperband_brackets_formula(R, eta):
    br = hyperband_brackets(1, R, eta)
    ref = _paper_formula(R, eta)
    assert len(br) == len(ref)
    for b, (n, r) in zip(br, ref):
        assert list(b.n) == n
        np.testing.assert_allclose(b.r, r, rtol=1e-12)


def test_rung_levels():
    np.testing.assert_array_equal(rung_levels(1, 27, 3), [1, 3, 9, 27])
    np.testing.assert_allclose(rung_levels(1, 100, 3), 100 / 3.0 ** np.arange(4, -1, -1))
    np.testing.assert_array_equal(rung_levels(2, 5, 3), [5])


@pytest.mark.parametrize("bad,exc", [
    (dict(min_resource=0), ValueError), (dict(max_resource=0.5), ValueError),
    (dict(eta=1), ValueError), (dict(eta=2.5), TypeError), (dict(min_resource="1"), TypeError),
    (dict(max_resource=math.inf), ValueError)])
def test_bad_resources(bad, exc):
    kw = dict(min_resource=1, max_resource=27, eta=3) | bad
    with pytest.raises(exc, match=next(iter(bad))):
        hyperband_brackets(**kw)


def test_make_rung_book_bad_input():
    with pytest.raises(ValueError, match="kind"):
        make_rung_book("bohb", 1, 27)
    with pytest.raises(ValueError, match="direction"):
        make_rung_book("asha", 1, 27, direction="max")
    with pytest.raises(ValueError, match="n_configs"):
        make_rung_book("sh", 1, 27, 3, n_configs=26)
    with pytest.raises(TypeError, match="n_configs"):
        make_rung_book("sh", 1, 27, 3, n_configs=30.0)
    book = make_rung_book("asha", 1, 27)
    with pytest.raises(ValueError, match="trial"):
        book.report(-1, 1, 0.0)
    with pytest.raises(ValueError, match="same length"):
        book.report_many(np.zeros(2, np.int64), np.zeros(3, np.int64), np.zeros(2))


# --------------------------------------------------------------------------- reference
def _key(v, t, maximize):
    if math.isnan(v):
        return (1, 0.0, t)
    return (0, -v if maximize else v, t)


def _rank(tab, k):
    """Entries of the sorted table ``tab`` strictly better than key ``k`` (trial numbers
    ignored: tied values share a rank)."""
    return bisect.bisect_left(tab, (k[0], k[1], -1))


def reference(book_info, reports):
    """Plain sorted lists: what the RungBook must decide, report by report."""
    levels, eta, maximize, sync, period, bracket, first, quota = book_info
    top = len(levels) - 1
    tables: dict = defaultdict(list)
    nxt: dict[int, int] = {}
    entered: dict[int, dict[int, tuple]] = defaultdict(dict)
    pruned: set[int] = set()
    out = []
    for t, s, v in reports:
        if t in pruned:
            out.append(1)
            continue
        b = bracket(t)
        cohort = t // period if sync else 0
        lv = nxt.setdefault(t, first[b])
        dec = 0
        while lv < len(levels) and s >= levels[lv] * (1 - 1e-12):
            k = _key(v, t, maximize)
            tab = tables[(cohort, b, lv)]
            bisect.insort(tab, k)
            entered[t][lv] = k
            lv += 1
            nxt[t] = lv
            if not sync and lv - 1 < top:
                if _rank(tab, k) >= max(1, len(tab) // eta):
                    dec = 1
                    break
        if sync and not dec:
            for level, k in sorted(entered[t].items()):
                if level < top and _rank(tables[(cohort, b, level)], k) >= quota[b][level]:
                    dec = 1
                    break
        if dec:
            pruned.add(t)
        out.append(dec)
    return np.array(out, dtype=np.uint8)


def _info(kind, min_r, max_r, eta, maximize, book, n_configs=None, asynchronous=False):
    levels = rung_levels(min_r, max_r, eta)
    L = len(levels)
    s_max = L - 1
    if kind == "asha":
        return levels, eta, maximize, False, 1, lambda t: 0, [0], [[0] * L]
    if kind == "sh":
        n = n_configs or eta ** s_max
        return levels, eta, maximize, True, n, lambda t: 0, [0], [[n // eta ** (lv + 1)
                                                                for lv in range(L)]]
    brs = hyperband_brackets(min_r, max_r, eta)
    quota = [[0] * L for _ in brs]
    for b, br in enumerate(brs):
        for i in range(len(br.n) - 1):
            quota[b][b + i] = br.n[i + 1]
    return (levels, eta, maximize, not asynchronous, sum(br.n[0] for br in brs),
            book.bracket_of, list(range(len(brs))), quota)


def random_stream(rng, n_trials, max_step, *, n_active=40, tie_levels=None, nan_p=0.02,
                  full_steps=False):
    """Interleaved reports of ``n_trials`` trials (ascending steps per trial, some skip)."""
    reports = []
    active: list[list] = []
    nxt = 0
    while nxt < n_trials or active:
        while nxt < n_trials and len(active) < n_active:
            length = max_step if full_steps or rng.random() < 0.5 else int(rng.integers(1, max_step + 1))
            active.append([nxt, 0, length])
            nxt += 1
        i = int(rng.integers(len(active)))
        a = active[i]
        a[1] += 1 if full_steps or rng.random() < 0.8 else int(rng.integers(1, 5))
        if a[1] > a[2]:
            active.pop(i)
            continue
        if rng.random() < nan_p:
            v = math.nan
        elif tie_levels:
            v = float(rng.integers(tie_levels))
        else:
            v = float(rng.normal()) + 1.0 / a[1]
        if rng.random() < 0.002:
            v = math.inf if rng.random() < 0.5 else -math.inf
        reports.append((a[0], a[1], v))
    return reports


CASES = [
    ("asha", 1, 27, 3, {}), ("asha", 1, 16, 2, {}), ("asha", 1, 100, 3, {}),
    ("sh", 1, 27, 3, {}), ("sh", 1, 27, 3, {"n_configs": 40}), ("sh", 1, 81, 3, {}),
    ("hyperband", 1, 27, 3, {}), ("hyperband", 1, 81, 3, {}),
    ("hyperband", 1, 27, 3, {"asynchronous": True}), ("hyperband", 1, 16, 2, {}),
]


@pytest.mark.parametrize("kind,min_r,max_r,eta,kw", CASES)
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("ties", [None, 4])
def test_decisions_equal_reference(kind, min_r, max_r, eta, kw, maximize, ties):
    rng = np.random.default_rng(zlib.crc32(repr((kind, max_r, eta, maximize, ties, kw)).encode()))
    reports = random_stream(rng, 1000 if max_r <= 27 else 400, max_r, tie_levels=ties)
    book = make_rung_book(kind, min_r, max_r, eta,
                          direction="maximize" if maximize else "minimize", **kw)
    info = _info(kind, min_r, max_r, eta, maximize, book, kw.get("n_configs"),
                 kw.get("asynchronous", False))
    ref = reference(info, reports)
    # one at a time, and in one batch on a fresh book: same decisions
    got = np.array([book.report(t, s, v) for t, s, v in reports], dtype=np.uint8)
    np.testing.assert_array_equal(got, ref)
    book2 = make_rung_book(kind, min_r, max_r, eta,
                           direction="maximize" if maximize else "minimize", **kw)
    arr = np.array(reports)
    got2 = book2.report_many(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64),
                             np.ascontiguousarray(arr[:, 2]))
    np.testing.assert_array_equal(got2, ref)
    assert 0 < ref.sum() < len(ref)  # the stream exercises both outcomes
    assert book.n_reports == len(reports)


@pytest.mark.slow
@pytest.mark.parametrize("kind,kw", [("asha", {}), ("sh", {}), ("hyperband", {}),
                                     ("hyperband", {"asynchronous": True})])
def test_decisions_equal_reference_large(kind, kw):
    rng = np.random.default_rng(7)
    reports = random_stream(rng, 20000, 27, tie_levels=8, n_active=200)
    book = make_rung_book(kind, 1, 27, 3, **kw)
    info = _info(kind, 1, 27, 3, False, book, None, kw.get("asynchronous", False))
    arr = np.array(reports)
    got = book.report_many(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64),
                           np.ascontiguousarray(arr[:, 2]))
    np.testing.assert_array_equal(got, reference(info, reports))


def test_rung_order_ties_and_nan():
    book = make_rung_book("asha", 1, 9, 3)
    vals = [3.0, math.nan, 1.0, 3.0, -math.inf, math.inf, 1.0]
    for t, v in enumerate(vals):
        book.report(t, 1, v)
    # best first: -inf, 1.0 (t2 before t6), 3.0 (t0 before t3), inf, NaN
    np.testing.assert_array_equal(book.rung(0, 0), [4, 2, 6, 0, 3, 5, 1])
    assert book.rank_of(1, 0) == (6, 7)
    assert book.rank_of(1, 1) == (-1, 0)
    book = make_rung_book("asha", 1, 9, 3, direction="maximize")
    for t, v in enumerate(vals):
        book.report(t, 1, v)
    np.testing.assert_array_equal(book.rung(0, 0), [5, 0, 3, 2, 6, 4, 1])


def test_tied_values_share_a_rank():
    # a trial equal to the k-th best continues whatever the arrival order (Optuna's
    # SuccessiveHalvingPruner: value <= k-th best); it is stopped only when k entries
    # are strictly better
    book = make_rung_book("asha", 1, 9, 3)
    assert not book.report(0, 1, 1.0)
    assert book.report(1, 1, 2.0)
    assert not book.report(2, 1, 1.0)      # tied with the best of 3 -> quota 1, rank 0
    assert book.rank_of(2, 0) == (0, 3) and book.rank_of(0, 0) == (0, 3)
    assert book.report(3, 1, 1.5)          # 2 strictly better, quota 1
    book = make_rung_book("sh", 1, 9, 3)   # cohort of 9: rung 0 promotes 3
    for t, v in enumerate([1.0, 1.0, 1.0, 1.0]):
        assert not book.report(t, 1, v)    # four tied at the top: none is out of the 3
    assert book.report(4, 1, 2.0)          # four strictly better


def test_asha_bootstrap_and_quota():
    book = make_rung_book("asha", 1, 9, 3)
    # first trial: best of 1 -> continues; second, worse, 2 // 3 = 0 -> quota 1 -> pruned
    assert not book.report(0, 1, 1.0)
    assert book.report(1, 1, 2.0)
    assert not book.report(2, 1, 0.5)   # best of 3
    assert book.report(3, 1, 0.9)       # rank 2 of 4, quota 1
    assert book.report(1, 2, -100.0)    # once pruned, stays pruned and is not recorded
    assert book.rank_of(1, 1) == (-1, 0)
    # jumping several levels: enters each with the same value
    assert not book.report(4, 9, 0.1)
    assert [book.rank_of(4, lv)[0] for lv in range(3)] == [0, 0, 0]
    assert book.next_level_of(4) == 3 and book.next_level_of(99) == -1


def test_sh_cohorts_and_provisional_promotion():
    # 1..9, eta 3: cohort of 9 trials, rung 0 promotes 3, rung 1 promotes 1
    book = make_rung_book("sh", 1, 9, 3)
    for t in range(3):  # the first three are inside the quota so far
        assert not book.report(t, 1, float(10 - t))
    assert book.report(3, 1, 11.0)          # rank 3 >= 3: out
    assert not book.report(4, 1, 0.0)       # best
    assert book.report(0, 2, 5.0)           # trial 0 now rank 3 at rung 0: stopped
    assert not book.report(1, 3, 5.0)       # rank 2 at rung 0, rank 0 at rung 1
    # a new cohort starts at trial 9 with empty rungs
    assert not book.report(9, 1, 100.0)
    assert book.rank_of(9, 0) == (0, 1)


def test_hyperband_assignment_is_proportional_and_deterministic():
    book = make_rung_book("hyperband", 1, 81, 3, seed=3)
    period = 81 + 34 + 15 + 8 + 5
    b = np.array([book.bracket_of(t) for t in range(3 * period)])
    for q in range(3):
        np.testing.assert_array_equal(np.bincount(b[q * period:(q + 1) * period]),
                                      [81, 34, 15, 8, 5])
    np.testing.assert_array_equal(b[:period], b[period:2 * period])
    assert len(set(b[:10])) > 1  # interleaved, not all of one bracket first
    other = make_rung_book("hyperband", 1, 81, 3, seed=4)
    assert [other.bracket_of(t) for t in range(period)] != list(b[:period])
    # a bracket-s trial enters its first rung only at r_s
    t = int(np.flatnonzero(b == 2)[0])  # bracket index 2: s = 2, r = 9
    assert not book.report(t, 8, 1.0) and book.next_level_of(t) == 2
    book.report(t, 9, 1.0)
    assert book.next_level_of(t) == 3


def test_large_trial_numbers_and_growth():
    book = make_rung_book("asha", 1, 27, 3)
    rng = np.random.default_rng(0)
    n = 50000
    t = np.repeat(np.arange(n, dtype=np.int64), 1)
    got = book.report_many(t, np.ones(n, np.int64), rng.normal(size=n))
    assert book.n_entries == n and got.dtype == np.uint8
    assert not book.report(10 ** 6, 1, -1e9)


def test_top_k():
    v = np.array([3.0, np.nan, 1.0, 3.0, 1.0])
    np.testing.assert_array_equal(top_k(v, 5), [2, 4, 0, 3, 1])
    np.testing.assert_array_equal(top_k(v, 2, "maximize"), [0, 3])
    with pytest.raises(ValueError, match="values"):
        top_k(np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="k"):
        top_k(v, -1)


def test_rungbook_constructor_validation():
    lv = np.array([1.0, 3.0])
    with pytest.raises(ValueError, match="quota"):
        RungBook(lv, 3, False, True, np.zeros(1, np.int32), np.zeros(1, np.int32),
                 np.zeros((1, 3), np.int64))
    with pytest.raises(ValueError, match="slot_bracket"):
        RungBook(lv, 3, False, True, np.ones(1, np.int32), np.zeros(1, np.int32),
                 np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match="eta"):
        RungBook(lv, 1, False, True, np.zeros(1, np.int32), np.zeros(1, np.int32),
                 np.zeros((1, 2), np.int64))
