"""Rung tables for successive halving, Hyperband and ASHA.

A :class:`RungBook` folds a stream of reports ``(trial, step, value)`` into rung
tables and decides, per report, whether the trial is pruned.  Every rung table
(one per bracket, cohort and rung level) is an order-statistics treap held in C
arrays: a node per recorded (trial, rung), subtree sizes for ranks, priorities
from a hash of the node index (so the structure, and every result, is a pure
function of the report stream).  Recording a report and ranking it cost
O(log n) expected; nothing scans the trials.

Order within a rung: the key is ``value`` (minimize) or ``-value`` (maximize),
NaN is worse than everything (even an infinite value), and equal keys are ordered
by trial number (the lower number first; this orders :meth:`RungBook.rung` and keeps
the treap's order total).  A trial's *rank*, on which every decision rests, is the
number of entries with a strictly better key: tied trials share the best rank of
their group, so a decision never depends on which of two equal results arrived
first (as in Optuna's ``SuccessiveHalvingPruner``, which promotes a value no worse
than the ``k``-th best).  Rank 0 is the best.

Rung levels ``L = 0 .. n_levels-1`` have resources ``level_resource[L]``; a trial
enters level ``L`` at its first report whose ``step >= level_resource[L]`` (a
report that jumps several levels enters each of them with the same value).
Trial ``t`` belongs to bracket ``slot_bracket[t % period]``; it starts at level
``first_level[bracket]``.

Decision rules (``synchronous`` flag):

* asynchronous (ASHA, Li et al. 2020): on entering a non-top level with
  ``count`` entries (itself included), the trial continues iff its rank is
  ``< max(1, count // eta)``; the decision is final.  One table per (bracket,
  level) shared by all trials.
* synchronous (successive halving, Jamieson & Talwalkar 2016; Hyperband, Li et al.
  2018): trials form cohorts (cohort ``t // period``); in a cohort, level ``L`` of
  bracket ``b`` promotes exactly ``quota[b, L]`` trials (the paper's ``n_{i+1}``).
  Trials cannot pause, so promotions are provisional: a trial goes on until its
  rank among the cohort's entries of some non-top level it entered is
  ``>= quota[b, L]``; this is checked at each of its reports (ranks only grow as a
  rung fills, so a trial is stopped as soon as it is out of the promoted set of the
  results seen so far).  Provisionally promoted trials do enter the next level, so
  a level may hold more than its synchronous share.

Once pruned, a trial stays pruned and its later reports are ignored.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport isnan
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memset

cnp.import_array()


cdef inline uint64_t _mix(uint64_t z) noexcept nogil:
    # splitmix64 finalizer: node priorities.
    z += <uint64_t>0x9E3779B97F4A7C15
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef int _grow(void** p, Py_ssize_t* cap, Py_ssize_t need, size_t item, int fill) noexcept nogil:
    """Make ``*p`` hold at least ``need`` items (doubling); new bytes are set to ``fill``."""
    cdef Py_ssize_t new_cap = cap[0] if cap[0] > 0 else 16
    cdef void* q
    if need <= cap[0]:
        return 0
    while new_cap < need:
        new_cap *= 2
    q = realloc(p[0], <size_t>new_cap * item)
    if q == NULL:
        return -1
    memset(<char*>q + <size_t>cap[0] * item, fill, <size_t>(new_cap - cap[0]) * item)
    p[0] = q
    cap[0] = new_cap
    return 0


cdef class RungBook:
    """Rung tables and pruning decisions (see the module docstring).

    Parameters
    ----------
    level_resource : float64 array (n_levels,)
        Increasing resources of the rung levels.
    eta : int
        Reduction factor (>= 2).
    maximize : bool
        Larger values are better.
    synchronous : bool
        Synchronous (cohort quotas) or asynchronous (ASHA) promotions.
    slot_bracket : int32 array (period,)
        Bracket of trial ``t`` is ``slot_bracket[t % period]``.
    first_level : int32 array (n_brackets,)
        Level at which each bracket starts.
    quota : int64 array (n_brackets, n_levels)
        Synchronous promotions out of each level (ignored when asynchronous).
    """

    # node pool (all treaps share it)
    cdef double* key
    cdef uint8_t* nan
    cdef int64_t* ntrial
    cdef int32_t* left
    cdef int32_t* right
    cdef int32_t* size
    cdef Py_ssize_t n_nodes, cap_key, cap_nan, cap_ntrial, cap_left, cap_right, cap_size
    # tables
    cdef int32_t* root
    cdef int64_t* count
    cdef Py_ssize_t cap_root, cap_count, n_tables
    # trials
    cdef int32_t* next_level        # -1: never reported
    cdef uint8_t* pruned
    cdef int32_t* tnode             # (trial, level) -> node, -1 when absent
    cdef Py_ssize_t cap_next, cap_pruned, cap_tnode, n_trials
    # configuration
    cdef double* level_res
    cdef int32_t* slot_br
    cdef int32_t* first_lv
    cdef int64_t* quota_
    cdef readonly int n_levels, n_brackets, eta
    cdef readonly Py_ssize_t period
    cdef readonly bint maximize, synchronous
    cdef readonly Py_ssize_t n_reports

    def __cinit__(self):
        self.key = NULL; self.nan = NULL; self.ntrial = NULL
        self.left = NULL; self.right = NULL; self.size = NULL
        self.root = NULL; self.count = NULL
        self.next_level = NULL; self.pruned = NULL; self.tnode = NULL
        self.level_res = NULL; self.slot_br = NULL; self.first_lv = NULL; self.quota_ = NULL

    def __init__(self, const double[::1] level_resource, int eta, bint maximize,
                 bint synchronous, const int32_t[::1] slot_bracket,
                 const int32_t[::1] first_level, const int64_t[:, ::1] quota):
        cdef Py_ssize_t i
        self.n_levels = <int>level_resource.shape[0]
        self.n_brackets = <int>first_level.shape[0]
        self.period = slot_bracket.shape[0]
        if self.n_levels < 1 or self.n_brackets < 1 or self.period < 1:
            raise ValueError("RungBook needs at least one level, bracket and slot")
        if quota.shape[0] != self.n_brackets or quota.shape[1] != self.n_levels:
            raise ValueError("quota must have shape (n_brackets, n_levels)")
        if eta < 2:
            raise ValueError("eta must be >= 2")
        self.eta = eta
        self.maximize = maximize
        self.synchronous = synchronous
        self.level_res = <double*>malloc(self.n_levels * sizeof(double))
        self.slot_br = <int32_t*>malloc(self.period * sizeof(int32_t))
        self.first_lv = <int32_t*>malloc(self.n_brackets * sizeof(int32_t))
        self.quota_ = <int64_t*>malloc(self.n_brackets * self.n_levels * sizeof(int64_t))
        if (self.level_res == NULL or self.slot_br == NULL or self.first_lv == NULL
                or self.quota_ == NULL):
            raise MemoryError()
        for i in range(self.n_levels):
            self.level_res[i] = level_resource[i]
        for i in range(self.period):
            if slot_bracket[i] < 0 or slot_bracket[i] >= self.n_brackets:
                raise ValueError("slot_bracket entries must be bracket indices")
            self.slot_br[i] = slot_bracket[i]
        for i in range(self.n_brackets):
            if first_level[i] < 0 or first_level[i] >= self.n_levels:
                raise ValueError("first_level entries must be level indices")
            self.first_lv[i] = first_level[i]
        for i in range(self.n_brackets * self.n_levels):
            self.quota_[i] = quota[i // self.n_levels, i % self.n_levels]

    def __dealloc__(self):
        free(self.key); free(self.nan); free(self.ntrial)
        free(self.left); free(self.right); free(self.size)
        free(self.root); free(self.count)
        free(self.next_level); free(self.pruned); free(self.tnode)
        free(self.level_res); free(self.slot_br); free(self.first_lv); free(self.quota_)

    # ---------------------------------------------------------------- treap
    cdef inline int32_t _sz(self, int32_t t) noexcept nogil:
        return self.size[t] if t >= 0 else 0

    cdef inline bint _lt(self, int32_t a, int32_t b) noexcept nogil:
        """Node ``a`` ranks better than node ``b``."""
        if self.nan[a] != self.nan[b]:
            return self.nan[a] < self.nan[b]
        if self.key[a] != self.key[b]:
            return self.key[a] < self.key[b]
        return self.ntrial[a] < self.ntrial[b]

    cdef void _split(self, int32_t t, int32_t x, int32_t* l, int32_t* r) noexcept nogil:
        """Split treap ``t`` into nodes better than ``x`` (``l``) and worse (``r``)."""
        if t < 0:
            l[0] = -1
            r[0] = -1
            return
        if self._lt(t, x):
            self._split(self.right[t], x, &self.right[t], r)
            l[0] = t
        else:
            self._split(self.left[t], x, l, &self.left[t])
            r[0] = t
        self.size[t] = 1 + self._sz(self.left[t]) + self._sz(self.right[t])

    cdef void _insert(self, Py_ssize_t tid, int32_t x) noexcept nogil:
        cdef int32_t* slot = &self.root[tid]
        cdef int32_t t
        cdef uint64_t px = _mix(<uint64_t>x)
        while True:
            t = slot[0]
            if t < 0 or px > _mix(<uint64_t>t):
                break
            self.size[t] += 1
            if self._lt(x, t):
                slot = &self.left[t]
            else:
                slot = &self.right[t]
        self._split(t, x, &self.left[x], &self.right[x])
        self.size[x] = 1 + self._sz(self.left[x]) + self._sz(self.right[x])
        slot[0] = x

    cdef inline bint _key_lt(self, int32_t a, int32_t b) noexcept nogil:
        """Node ``a``'s key is strictly better than node ``b``'s (trial numbers ignored)."""
        if self.nan[a] != self.nan[b]:
            return self.nan[a] < self.nan[b]
        return self.nan[a] == 0 and self.key[a] < self.key[b]

    cdef Py_ssize_t _rank(self, Py_ssize_t tid, int32_t x) noexcept nogil:
        """Number of nodes of table ``tid`` whose key is strictly better than node
        ``x``'s: they form a prefix of the in-order walk (the order is by key first)."""
        cdef int32_t t = self.root[tid]
        cdef Py_ssize_t r = 0
        while t >= 0:
            if self._key_lt(t, x):
                r += self._sz(self.left[t]) + 1
                t = self.right[t]
            else:
                t = self.left[t]
        return r

    # ---------------------------------------------------------------- storage
    cdef int _ensure_trial(self, int64_t t) noexcept nogil:
        cdef Py_ssize_t need = <Py_ssize_t>t + 1
        if need <= self.n_trials:
            return 0
        if _grow(<void**>&self.next_level, &self.cap_next, need, sizeof(int32_t), 0xFF) < 0:
            return -1
        if _grow(<void**>&self.pruned, &self.cap_pruned, need, sizeof(uint8_t), 0) < 0:
            return -1
        if _grow(<void**>&self.tnode, &self.cap_tnode, need * self.n_levels,
                 sizeof(int32_t), 0xFF) < 0:
            return -1
        self.n_trials = need
        return 0

    cdef Py_ssize_t _table(self, int64_t t, int level) noexcept nogil:
        """Index of the table of trial ``t`` at ``level`` (created if new); -1 on no memory."""
        cdef int64_t cohort = t // self.period if self.synchronous else 0
        cdef int b = self.slot_br[t % self.period]
        cdef Py_ssize_t tid = (<Py_ssize_t>cohort * self.n_brackets + b) * self.n_levels + level
        if tid >= self.n_tables:
            if _grow(<void**>&self.root, &self.cap_root, tid + 1, sizeof(int32_t), 0xFF) < 0:
                return -1
            if _grow(<void**>&self.count, &self.cap_count, tid + 1, sizeof(int64_t), 0) < 0:
                return -1
            self.n_tables = tid + 1
        return tid

    cdef int32_t _new_node(self, double value, int64_t t) noexcept nogil:
        cdef Py_ssize_t need = self.n_nodes + 1
        cdef int32_t x
        if need >= 2147483647:
            return -1
        if (_grow(<void**>&self.key, &self.cap_key, need, sizeof(double), 0) < 0
                or _grow(<void**>&self.nan, &self.cap_nan, need, sizeof(uint8_t), 0) < 0
                or _grow(<void**>&self.ntrial, &self.cap_ntrial, need, sizeof(int64_t), 0) < 0
                or _grow(<void**>&self.left, &self.cap_left, need, sizeof(int32_t), 0xFF) < 0
                or _grow(<void**>&self.right, &self.cap_right, need, sizeof(int32_t), 0xFF) < 0
                or _grow(<void**>&self.size, &self.cap_size, need, sizeof(int32_t), 0) < 0):
            return -1
        x = <int32_t>self.n_nodes
        self.n_nodes = need
        if isnan(value):
            self.nan[x] = 1
            self.key[x] = 0.0
        else:
            self.nan[x] = 0
            self.key[x] = -value if self.maximize else value
        self.ntrial[x] = t
        self.left[x] = -1
        self.right[x] = -1
        self.size[x] = 1
        return x

    # ---------------------------------------------------------------- fold
    cdef int _report(self, int64_t t, int64_t step, double value) noexcept nogil:
        """Fold one report; return 1 if trial ``t`` is pruned, 0 if not, -1 on no memory."""
        cdef int b, lv, top = self.n_levels - 1
        cdef Py_ssize_t tid, rank, quota
        cdef int32_t x
        if self._ensure_trial(t) < 0:
            return -1
        self.n_reports += 1
        if self.pruned[t]:
            return 1
        b = self.slot_br[t % self.period]
        if self.next_level[t] < 0:
            self.next_level[t] = self.first_lv[b]
        while (self.next_level[t] < self.n_levels
               and <double>step >= self.level_res[self.next_level[t]] * (1.0 - 1e-12)):
            lv = self.next_level[t]
            tid = self._table(t, lv)
            if tid < 0:
                return -1
            x = self._new_node(value, t)
            if x < 0:
                return -1
            self._insert(tid, x)
            self.count[tid] += 1
            self.tnode[<Py_ssize_t>t * self.n_levels + lv] = x
            self.next_level[t] = lv + 1
            if not self.synchronous and lv < top:
                rank = self._rank(tid, x)
                quota = self.count[tid] // self.eta
                if quota < 1:
                    quota = 1
                if rank >= quota:
                    self.pruned[t] = 1
                    return 1
        if self.synchronous:
            for lv in range(self.first_lv[b], self.next_level[t]):
                if lv == top:
                    break
                tid = self._table(t, lv)
                x = self.tnode[<Py_ssize_t>t * self.n_levels + lv]
                if self._rank(tid, x) >= self.quota_[b * self.n_levels + lv]:
                    self.pruned[t] = 1
                    return 1
        return 0

    def report(self, int64_t trial, int64_t step, double value):
        """Fold one report; return True when ``trial`` is (now) pruned."""
        if trial < 0:
            raise ValueError(f"trial must be >= 0, got {trial}")
        cdef int r = self._report(trial, step, value)
        if r < 0:
            raise MemoryError("RungBook: out of memory")
        return r == 1

    def report_many(self, const int64_t[::1] trials, const int64_t[::1] steps,
                    const double[::1] values):
        """Fold reports in order; return a uint8 array of the decisions (1 = pruned)."""
        cdef Py_ssize_t n = trials.shape[0], i
        cdef int r = 0
        if steps.shape[0] != n or values.shape[0] != n:
            raise ValueError("trials, steps and values must have the same length")
        for i in range(n):
            if trials[i] < 0:
                raise ValueError(f"trials[{i}] must be >= 0, got {trials[i]}")
        out = np.zeros(n, dtype=np.uint8)
        cdef uint8_t[::1] o = out
        with nogil:
            for i in range(n):
                r = self._report(trials[i], steps[i], values[i])
                if r < 0:
                    break
                o[i] = <uint8_t>r
        if r < 0:
            raise MemoryError("RungBook: out of memory")
        return out

    # ---------------------------------------------------------------- queries
    def is_pruned(self, int64_t trial):
        """Whether ``trial`` has been pruned."""
        return 0 <= trial < self.n_trials and self.pruned[trial] == 1

    def next_level_of(self, int64_t trial):
        """The next level ``trial`` would enter (-1 if it never reported)."""
        if trial < 0 or trial >= self.n_trials:
            return -1
        return self.next_level[trial]

    def bracket_of(self, int64_t trial):
        """The bracket index of ``trial``."""
        if trial < 0:
            raise ValueError(f"trial must be >= 0, got {trial}")
        return self.slot_br[trial % self.period]

    def rank_of(self, int64_t trial, int level):
        """Rank of ``trial`` in its table at ``level`` (entries strictly better; ties
        share a rank) and the table's size, or (-1, 0)."""
        cdef int32_t x
        cdef Py_ssize_t tid
        if trial < 0 or trial >= self.n_trials or level < 0 or level >= self.n_levels:
            return -1, 0
        x = self.tnode[<Py_ssize_t>trial * self.n_levels + level]
        if x < 0:
            return -1, 0
        tid = self._table(trial, level)
        return self._rank(tid, x), self.count[tid]

    def rung(self, int bracket, int level, int64_t cohort=0):
        """Trials of one rung table, best first (an in-order walk; for inspection)."""
        if not 0 <= bracket < self.n_brackets or not 0 <= level < self.n_levels or cohort < 0:
            raise ValueError("bracket, level or cohort out of range")
        cdef Py_ssize_t tid = (<Py_ssize_t>cohort * self.n_brackets + bracket) * self.n_levels + level
        out = []
        if tid >= self.n_tables:
            return np.array(out, dtype=np.int64)
        stack = []
        cdef int32_t t = self.root[tid]
        while stack or t >= 0:
            while t >= 0:
                stack.append(t)
                t = self.left[t]
            t = stack.pop()
            out.append(self.ntrial[t])
            t = self.right[t]
        return np.array(out, dtype=np.int64)

    @property
    def n_entries(self):
        """Number of (trial, level) entries recorded."""
        return self.n_nodes
