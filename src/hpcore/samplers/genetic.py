"""Genetic algorithm (single objective) and NSGA-II (several objectives), asynchronous.

Each parameter is one gene: Floats (and log-scaled Ints) are a real gene in ``[0, 1]``
(the space's unit-cube coordinate), Ints and stepped Floats an integer gene
``0 .. n_levels - 1``, Categoricals an integer gene holding the choice's index.  The
operators are the compiled kernels of :mod:`hpcore.kernels`.

The population is a bounded structure rebuilt from the study's finished trials: the
first ``population_size`` COMPLETE trials (in completion order) are generation 0,
every later COMPLETE trial joins an offspring pool, and each time the pool holds
``population_size`` individuals the next population is chosen from parents and pool
(survival).  Asking never waits: a child is bred at once from the current population,
so parallel workers never wait for a generation to end.  As in NSGA-II (and pymoo), a
mating gives two children: trials ``2m`` and ``2m + 1`` are the complementary children
of mating ``m`` (the same parents and crossover draws), each mutated on its own.
Trials are read incrementally (a cursor into ``study.completed_trials()``), so the cost
of an ask does not grow with the number of finished trials, and a resumed study (a new
``Study`` on the same storage) rebuilds the same population.

Multi-fidelity (DEHB-style, Awad et al. 2021, with BOHB's budget rule): when the
study (single objective) has a successive-halving / Hyperband / ASHA pruner and fewer
than ``min_points`` trials are COMPLETE, parents are drawn from the best
``population_size`` finished (COMPLETE or PRUNED) trials ranked by their intermediate
value on the highest rung holding at least ``min_points`` of them, so the pruner's
promotions steer the search before many trials run to the full budget.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import math

import numpy as np

from hpcore._kernels import genetic as _g
from hpcore._kernels import rng as _rng
from hpcore.kernels._genetic import elite_indices, nsga2_rank
from hpcore.samplers._fidelity import RungCollector, rung_resources
from hpcore.samplers.base import BaseSampler
from hpcore.samplers.qmc import QMCSampler
from hpcore.samplers.random import random_decoder
from hpcore.space import Categorical, Float, Int, Space

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["GeneticSampler"]

_CROSSOVERS = ("sbx", "blend", "uniform")
_MUTATIONS = ("polynomial", "gaussian")
_CROSS_KIND = {"sbx": 0, "blend": 1, "uniform": 2}
# Stream families: one seed per operator, derived from the sampler's seed; stream index =
# trial number, so trial n's child depends only on (seed, n, population).
_MAX_RETRIES = 8
_OPS = ("select", "cross", "cat_cross", "mutate", "cat_mutate", "fill")


class _Genome:
    """Parameter <-> gene mapping for one space."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.names = list(space.params)
        g = len(self.names)
        self.upper = np.ones(g)
        self.levels = np.zeros(g, dtype=np.int64)   # n levels of an integer gene, 0 if real
        self.is_cat = np.zeros(g, dtype=bool)
        for i, name in enumerate(self.names):
            dist = space.params[name]
            if isinstance(dist, Categorical):
                n = len(dist.choices)
                self.is_cat[i] = True
            elif isinstance(dist, Int) and not dist.log:
                n = dist.n_levels
            elif isinstance(dist, Float) and dist.step is not None:
                n = dist.n_levels
            else:
                continue
            self.levels[i] = n
            self.upper[i] = n - 1
        self.lower = np.zeros(g)
        self.is_int = self.levels > 0
        self.num = ~self.is_cat
        self.n_categories = np.where(self.is_cat, self.levels, 0).astype(np.int64)
        self.has_cat = bool(self.is_cat.any())
        self.int_mask = self.is_int.astype(np.uint8)
        self.lower_num = np.ascontiguousarray(self.lower[self.num])
        self.upper_num = np.ascontiguousarray(self.upper[self.num])
        self.int_mask_num = np.ascontiguousarray(self.int_mask[self.num])
        self.cat_idx = np.flatnonzero(self.is_cat).astype(np.int64)
        self.num_idx = np.flatnonzero(self.num).astype(np.int64)
        self.cut: tuple[float, np.ndarray] | None = None   # (mutation prob, cut table)
        # per gene, as Python objects (numpy scalar indexing is slow on the per-ask path):
        # (name, distribution, 0 real / 1 integer / 2 categorical, levels, upper)
        self._plan = [(name, space.params[name], 2 if self.is_cat[i] else int(self.is_int[i]),
                       int(self.levels[i]), float(self.upper[i]))
                      for i, name in enumerate(self.names)]
        self._enc = [_unit_encoder(space.params[name]) for name in self.names]
        self._dec = None          # the compiled decode_random (built on first use)
        self._codec = _gene_encoder(self.names, [space.params[n] for n in self.names],
                                    self._plan, self._enc)

    def encode(self, params: dict[str, Any], fill) -> np.ndarray:
        """Genes of a configuration; inactive parameters take the genes in ``fill``
        (uniforms in [0, 1), scaled): an array, or a function returning it (called only
        when a parameter is inactive).  Compiled (``GeneEncoder``: the operations of
        :meth:`encode_py`, which a test checks it against bit for bit)."""
        if type(params) is dict:
            return self._codec.encode(params, fill)
        return self.encode_py(params, fill)

    def encode_py(self, params: dict[str, Any], fill) -> np.ndarray:
        """:meth:`encode` in Python (the reference of the compiled one)."""
        out = []
        fl = None
        for i, (name, dist, kind, levels, upper) in enumerate(self._plan):
            if name not in params:
                if fl is None:
                    fl = (fill() if callable(fill) else fill).tolist()
                out.append(math.floor(fl[i] * (upper + 1)) if kind else fl[i])
            elif kind == 2:
                out.append(self._enc[i](params[name]))        # the choice's index
            elif kind == 1:
                v = math.floor(self._enc[i](params[name]) * levels)
                out.append(min(max(v, 0), upper))
            else:
                out.append(min(max(self._enc[i](params[name]), 0.0), 1.0))
        return np.array(out, dtype=np.float64)

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        # integer genes -> the middle of their level's cell: (x + 0.5) / levels, then
        # space.decode_random of those uniforms, in one compiled call
        if self._dec is None:
            self._dec = random_decoder(self.space)
        return self._dec.decode_cells(np.ascontiguousarray(x, dtype=np.float64), self.levels)


class GeneticSampler(BaseSampler):
    """Genetic algorithm; NSGA-II when the study has several objectives.

    Parameters
    ----------
    population_size : int, optional
        Individuals per generation (>= 2).  The first ``population_size`` trials are a
        scrambled Sobol sequence.  ``None`` (default): sized from the budget when
        :meth:`Study.optimize` tells it (``n_trials``, through
        :meth:`~hpcore.samplers.base.BaseSampler.set_budget`) as
        ``min(50, max(8, n_trials // 5))`` (about five generations, so a small budget
        still breeds), else ``min(50, max(8, 2 * n_params))`` (a small first
        generation).  It is fixed when the sampler first sees the study.
    tournament_size : int
        Contestants per tournament when picking parents.  One objective: the best value
        wins.  Several (NSGA-II): the crowded tournament of Deb's reference code (and
        pymoo): a dominating contestant wins, else the larger crowding distance (as
        measured in the survival step, the split front before it was cut);
        contestants are drawn without replacement (consecutive trials share a random
        permutation of the population, keyed by the seed and the trial number).
    crossover : {"sbx", "blend", "uniform"}
        Operator for the numeric genes (categorical genes always use uniform crossover).
    crossover_prob : float
        Probability that a child is a crossover of two parents (else a copy of one).
    crossover_eta : float
        SBX distribution index (large: children close to the parents).
    blend_alpha : float
        BLX-alpha widening, for ``crossover="blend"``.
    mutation : {"polynomial", "gaussian"}
        Operator for the numeric genes.
    mutation_prob : float, optional
        Per-gene mutation probability (numeric and categorical genes); default
        ``1 / n_params``.
    mutation_eta : float
        Polynomial-mutation distribution index.
    mutation_sigma : float
        Gaussian step, as a fraction of the gene's range.
    elitism : int, optional
        ``None`` (default): (mu + lambda) survival, the next population is the best
        ``population_size`` of parents and offspring (NSGA-II survival with several
        objectives).  An int ``e``: generational replacement keeping the ``e`` best
        parents and the best ``population_size - e`` offspring.
    multi_fidelity : bool
        Single objective with a rung pruner attached: while fewer than ``min_points``
        trials are COMPLETE, rank parents on the highest rung with ``min_points``
        observations (see the module docstring).  ``False`` ignores intermediate values;
        without such a pruner this changes nothing.
    min_points : int, optional
        Observations a rung needs to be used; default ``d + 2`` for ``d`` parameters.
    seed : int, optional
    """

    supports_multi_objective = True

    def __init__(self, population_size: int | None = None, *, tournament_size: int = 2,
                 crossover: str = "sbx", crossover_prob: float = 0.9,
                 crossover_eta: float = 15.0, blend_alpha: float = 0.5,
                 mutation: str = "polynomial", mutation_prob: float | None = None,
                 mutation_eta: float = 20.0, mutation_sigma: float = 0.1,
                 elitism: int | None = None, multi_fidelity: bool = True,
                 min_points: int | None = None, seed: int | None = None) -> None:
        super().__init__(seed)
        self.population_size = (None if population_size is None
                                else _check_int("population_size", population_size, 2))
        self._pop_size = 50 if population_size is None else self.population_size
        self.tournament_size = _check_int("tournament_size", tournament_size, 1)
        if crossover not in _CROSSOVERS:
            raise ValueError(f"crossover must be one of {_CROSSOVERS}, got {crossover!r}")
        if mutation not in _MUTATIONS:
            raise ValueError(f"mutation must be one of {_MUTATIONS}, got {mutation!r}")
        self.crossover, self.mutation = crossover, mutation
        self.crossover_prob = _check_real("crossover_prob", crossover_prob, 0.0, 1.0)
        self.crossover_eta = _check_real("crossover_eta", crossover_eta, 0.0)
        self.blend_alpha = _check_real("blend_alpha", blend_alpha, 0.0)
        self.mutation_prob = (None if mutation_prob is None
                              else _check_real("mutation_prob", mutation_prob, 0.0, 1.0))
        self.mutation_eta = _check_real("mutation_eta", mutation_eta, 0.0)
        self.mutation_sigma = _check_real("mutation_sigma", mutation_sigma, 0.0)
        if elitism is not None:
            elitism = _check_int("elitism", elitism, 0)
            cap = 50 if self.population_size is None else self.population_size
            if elitism > cap:   # with the budget-sized default, at most 50 (and clipped to it)
                raise ValueError(f"elitism ({elitism}) must be <= population_size "
                                 f"({cap}{' at most, by default' if self.population_size is None else ''})")
        self.elitism = elitism
        self.multi_fidelity = bool(multi_fidelity)
        self.min_points = None if min_points is None else _check_int("min_points", min_points, 2)
        #: Rung whose values ranked the parents of the last child (``None``: the usual
        #: population of COMPLETE trials, or the start-up design).
        self.last_fit_rung: int | None = None
        states = np.random.SeedSequence(self.seed).generate_state(len(_OPS), dtype=np.uint64)
        self._seeds = {op: int(s) for op, s in zip(_OPS, states)}
        self._init = QMCSampler("sobol", seed=self.seed)
        self._reset(None)

    def __repr__(self) -> str:
        return (f"GeneticSampler(population_size={self.population_size}, "
                f"crossover={self.crossover!r}, mutation={self.mutation!r}, seed={self.seed})")

    # -- population, rebuilt incrementally from the study ---------------------------------
    def _resolve_size(self, study: "Study") -> int:
        if self.population_size is not None:
            return self.population_size
        budget = self.n_trials_budget
        if budget:
            return int(min(50, max(8, budget // 5)))
        return int(min(50, max(8, 2 * len(study.space.params))))

    def _reset(self, study: "Study | None") -> None:
        self._study = study
        if study is not None:
            self._pop_size = self._resolve_size(study)
        self._genome: _Genome | None = _Genome(study.space) if study is not None else None
        self._sign = (np.array([1.0 if d == "minimize" else -1.0 for d in study.directions])
                      if study is not None else None)
        self._sign_list = None if study is None else self._sign.tolist()
        self._cursor = 0
        self._generation = 0
        self._pop_x: list[np.ndarray] = []
        self._pop_f: list[np.ndarray] = []
        self._off_x: list[np.ndarray] = []
        self._off_f: list[np.ndarray] = []
        self._arr: tuple[np.ndarray, np.ndarray] | None = None    # (genes, tournament key)
        self._members: set[bytes] = set()
        self._crowd: np.ndarray | None = None
        self._pop_rows: list | None = None       # the population's objectives as lists
        self._crowd_list: list | None = None
        self._survivor_crowd: np.ndarray | None = None
        self._perm: dict | None = None       # (seed, block, n) -> permutation
        self._rungs: RungCollector | None = None
        self._rung_pop: tuple | None = None     # (rung, n observations, genes, key, members)
        res = (rung_resources(getattr(study, "pruner", None))
               if study is not None and self.multi_fidelity and len(study.directions) == 1
               and hasattr(study, "finished_trials") else None)
        if res is not None:
            g, seeds = self._genome, self._seeds
            self._rungs = RungCollector(
                res, float(self._sign[0]),
                lambda t: g.encode(t.params, _rng.uniform_row(seeds["fill"], t.number,
                                                              len(g.names))))

    def _update(self, study: "Study") -> None:
        if self._study is not study:
            self._reset(study)
        done = study.completed_trials()
        if len(done) < self._cursor:           # storage was rewritten: start over
            self._reset(study)
        P = self._pop_size
        g = self._genome
        seed, ng, sign = self._seeds["fill"], len(g.names), self._sign_list
        for t in done[self._cursor:]:
            x = g.encode(t.params, lambda: _rng.uniform_row(seed, t.number, ng))
            f = [float(v) * c for v, c in zip(t.values, sign)]   # as values * sign
            if len(self._pop_x) < P:
                self._pop_x.append(x)
                self._pop_f.append(f)
                self._arr = None
            else:
                self._off_x.append(x)
                self._off_f.append(f)
                if len(self._off_x) == P:
                    self._survive()
                    self._arr = None
        self._cursor = len(done)

    def _order(self, F: np.ndarray) -> np.ndarray:
        """Indices best first: by value for one objective, NSGA-II order for several."""
        if F.shape[1] == 1:
            return elite_indices(F[:, 0], len(F))
        return nsga2_rank(F, n_threads=1)[2]

    def _survive(self) -> None:
        P = self._pop_size
        px, pf = np.array(self._pop_x), np.array(self._pop_f)
        ox, of = np.array(self._off_x), np.array(self._off_f)
        self._survivor_crowd = None
        if self.elitism is None:
            X, F = np.vstack([px, ox]), np.vstack([pf, of])
            if F.shape[1] == 1:
                keep = self._order(F)[:P]
            else:
                # NSGA-II keeps the crowding distances of the survival step (the split
                # front's measured before it was cut) for the next tournaments
                _, crowd, order = nsga2_rank(F, n_threads=1)
                keep = order[:P]
                self._survivor_crowd = crowd[keep]
            new_x, new_f = X[keep], F[keep]
        else:
            e = min(self.elitism, P)
            ke, ko = self._order(pf)[:e], self._order(of)[:P - e]
            new_x, new_f = np.vstack([px[ke], ox[ko]]), np.vstack([pf[ke], of[ko]])
        self._pop_x, self._pop_f = list(new_x), list(new_f)
        self._off_x, self._off_f = [], []
        self._generation += 1

    def _population(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arr is None:
            X, F = np.array(self._pop_x, dtype=np.float64), np.array(self._pop_f)
            key = np.empty(len(F))
            if F.shape[1] == 1:
                key[elite_indices(F[:, 0], len(F))] = np.arange(len(F))  # lower position wins
                self._crowd = None
            elif self._survivor_crowd is not None:
                # survivors are stored in the survival step's NSGA-II order, with its
                # crowding distances: nothing to rank again
                key[:] = np.arange(len(F))
                self._crowd = self._survivor_crowd
            else:
                _, self._crowd, order = nsga2_rank(F, n_threads=1)
                key[order] = np.arange(len(F))
            self._arr = (X, key)
            self._members = {x.tobytes() for x in X}
            self._pop_rows = np.ascontiguousarray(F, dtype=np.float64)
            self._crowd_list = (None if self._crowd is None
                                else np.ascontiguousarray(self._crowd, dtype=np.float64))
        return self._arr

    def __getstate__(self) -> dict:
        # the population is a cache of the study's trials: never pickled, always rebuilt
        state = self.__dict__.copy()
        for k in ("_study", "_genome", "_sign", "_sign_list", "_pop_x", "_pop_f", "_off_x", "_off_f", "_arr",
                  "_members", "_crowd", "_pop_rows", "_crowd_list", "_survivor_crowd", "_perm",
                  "_rungs", "_rung_pop"):
            state[k] = None
        state["_cursor"] = 0
        state["_generation"] = 0
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset(None)

    def _crowded_tournament(self, key: np.ndarray, seed: int, number: int) -> np.ndarray:
        """Two parents by NSGA-II's crowded tournament as in Deb's reference code (and
        pymoo): of two contestants the dominating one wins, else the one with the larger
        crowding distance, else the first drawn (contestants are uniform draws)."""
        k = self.tournament_size
        F, crowd = self._pop_rows, self._crowd_list      # the population's, contiguous
        n, need = len(F), 2 * k
        per = n // need
        if per >= 1:
            # contestants without replacement: consecutive trials share one permutation of
            # the population, as pymoo draws a generation's tournaments from permutations
            block, j = divmod(number, per)
            perms = self._perm
            if perms is None:
                perms = self._perm = {}
            perm = perms.get((seed, block, n))
            if perm is None:
                if len(perms) >= 8:       # a few blocks (retries use other seeds): bounded
                    perms.clear()
                u = _rng.uniform_row(seed, block, n)
                perm = perms[(seed, block, n)] = np.argsort(u, kind="stable").astype(np.int64)
            draws = perm[j * need:(j + 1) * need]
        else:
            draws = _g.tournament_select(np.zeros_like(key), need, 1, seed, need * number, 1)
        return _g.crowded_pair(draws, k, F, crowd)

    def _retry_seeds(self, retry: int) -> dict[str, int]:
        return {op: (v + retry * 0x9E3779B97F4A7C15) % 2 ** 64 for op, v in self._seeds.items()}

    @property
    def generation(self) -> int:
        """Number of completed survivals (generation of the current population)."""
        return self._generation

    # -- breeding -------------------------------------------------------------------------
    def sample(self, study: "Study", number: int) -> dict[str, Any]:
        self._update(study)
        self.last_fit_rung = None
        if self._rungs is not None:
            m = self.min_points if self.min_points is not None else len(self._genome.names) + 2
            if self._cursor < m:              # COMPLETE trials seen
                return self._sample_multi_fidelity(study, number, m)
        if number < self._pop_size or len(self._pop_x) < 2:
            return self._init.sample(study, number)
        return self._genome.decode(self._breed_new(number))

    def sample_batch(self, study: "Study", numbers) -> list[dict[str, Any]]:
        """The children of trials ``numbers`` from one population: the study's
        completed trials are folded in once and the batch is bred from that population
        (both children of a mating, trials ``2m`` and ``2m + 1``, from the same parents
        and crossover draws), exactly what ``len(numbers)`` calls of :meth:`sample`
        give when no trial finishes in between."""
        numbers = [int(n) for n in numbers]
        self._update(study)
        self.last_fit_rung = None
        if self._rungs is not None:
            m = self.min_points if self.min_points is not None else len(self._genome.names) + 2
            if self._cursor < m:
                return [self._sample_multi_fidelity(study, n, m) for n in numbers]
        out = []
        for n in numbers:
            if n < self._pop_size or len(self._pop_x) < 2:
                out.append(self._init.sample(study, n))
            else:
                out.append(self._genome.decode(self._breed_new(n)))
        return out

    def _sample_multi_fidelity(self, study: "Study", number: int, m: int) -> dict[str, Any]:
        """Breed from the best ``population_size`` trials on the highest rung holding at
        least ``m`` observations (start-up design while none does)."""
        rungs = self._rungs
        rungs.update(study.finished_trials())
        L = rungs.highest_rung(m)
        if number < self._pop_size or L is None:
            return self._init.sample(study, number)
        X, y, _ = rungs.rung(L)
        if self._rung_pop is None or self._rung_pop[:2] != (L, len(y)):
            keep = elite_indices(y, min(self._pop_size, len(y)))
            key = np.arange(len(keep), dtype=np.float64)   # rank: lower wins a tournament
            Xp = np.ascontiguousarray(X[keep])
            self._rung_pop = (L, len(y), Xp, key, {x.tobytes() for x in Xp})
        self.last_fit_rung = L
        pop = self._rung_pop[2:4]
        members = self._rung_pop[4]
        child = self.breed(number, population=pop)
        for retry in range(1, _MAX_RETRIES + 1):
            if child.tobytes() not in members:
                break
            child = self.breed(number, retry, population=pop)
        return self._genome.decode(child)

    def _breed_new(self, number: int) -> np.ndarray:
        """A child that is not a copy of a member of the population (like pymoo's
        duplicate elimination; clones waste population slots and erode diversity).
        Retries use other stream families of the same trial number, so the result stays
        a function of (seed, number, population)."""
        self._population()
        child = self.breed(number)
        for retry in range(1, _MAX_RETRIES + 1):
            if child.tobytes() not in self._members:
                break
            child = self.breed(number, retry)
        return child

    def breed(self, number: int, retry: int = 0,
              population: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """The genes of the child for trial ``number`` (from the current population, or
        from ``population = (genes, tournament key)``, lower key wins, one objective).

        The compiled operators are called directly: the population is valid by
        construction, so the public wrappers' checks would only add per-ask overhead.
        """
        X, key = self._population() if population is None else population
        g = self._genome
        s = self._seeds if retry == 0 else self._retry_seeds(retry)
        # trials 2m and 2m + 1 are the two children of mating m, as in NSGA-II (a retry
        # breeds a lone child of its own mating)
        mating, side = (number // 2, number % 2) if retry == 0 else (number, 0)
        if population is not None or self._crowd is None:
            par = _g.tournament_select(key, 2, self.tournament_size, s["select"], 2 * mating, 1)
        else:
            par = self._crowded_tournament(key, s["select"], mating)
        pm = self.mutation_prob if self.mutation_prob is not None else 1.0 / len(g.names)
        if g.cut is None or g.cut[0] != pm:
            g.cut = (pm, _g.pm_cut_table(len(g.num_idx), pm))
        # one compiled call: crossover (SBX / BLX / uniform on every gene, then uniform on
        # the categorical ones), child `side` of the pair, mutation of the numeric genes
        # (polynomial / Gaussian, their own bounds), categorical reset
        return _g.breed_child(
            X, int(par[0]), int(par[1]), g.lower, g.upper, g.int_mask, g.num_idx, g.cat_idx,
            g.n_categories, _CROSS_KIND[self.crossover],
            self.blend_alpha if self.crossover == "blend" else self.crossover_eta,
            self.crossover_prob, 0 if self.mutation == "polynomial" else 1,
            self.mutation_eta if self.mutation == "polynomial" else self.mutation_sigma,
            pm, g.cut[1], s["cross"], s["cat_cross"], s["mutate"], s["cat_mutate"], mating,
            side, number)


def _gene_encoder(names, dists, plan, fns) -> "_g.GeneEncoder":
    """The compiled :meth:`_Genome.encode`: per gene its kind, the constants of its
    unit encoder (as :func:`_unit_encoder` computes them) and that encoder as fallback."""
    kinds, encs, c0, c1, ints, levels, upper = [], [], [], [], [], [], []
    for dist, (_, _, kind, lv, up) in zip(dists, plan):
        e, a, b, iv = 3, 0.0, 1.0, (0, 1, 1)
        if type(dist) is Float and dist.step is None:
            if dist.log:
                e, a = 1, math.log(dist.low)
                b = math.log(dist.high) - a
            else:
                e, a, b = 0, dist.low, dist.high - dist.low
            if type(a) is not float or type(b) is not float:
                e, a, b = 3, 0.0, 1.0
        elif type(dist) is Int and not dist.log and not isinstance(dist, Categorical):
            e, iv = 2, (dist.low, dist.step, dist._n_levels)
            if not all(type(x) is int for x in iv):
                e, iv = 3, (0, 1, 1)
        kinds.append(kind)
        encs.append(e)
        c0.append(a)
        c1.append(b)
        ints.append(iv)
        levels.append(float(lv))
        upper.append(float(up))
    return _g.GeneEncoder(list(names), kinds, encs, c0, c1, ints, levels, upper, list(fns))


def _unit_encoder(dist):
    """``dist.encode`` (a Categorical: ``dist.index``) with its constants precomputed: the
    same floating-point operations, without the attribute lookups."""
    if isinstance(dist, Categorical):
        pos: dict = {}
        for i, c in enumerate(dist.choices):
            pos.setdefault((type(c), c), i)        # the first exact-type match, as index

        def enc_cat(v, pos=pos, index=dist.index):
            try:
                return pos[(type(v), v)]
            except (KeyError, TypeError):
                return index(v)                    # == matches of another type, errors
        return enc_cat
    if type(dist) is Float and dist.step is None:
        if dist.log:
            llo = math.log(dist.low)
            lspan = math.log(dist.high) - llo
            return lambda v: (math.log(v) - llo) / lspan
        low, span = dist.low, dist.high - dist.low
        return lambda v: (v - low) / span
    if type(dist) is Int and not dist.log:
        low, step, n = dist.low, dist.step, dist._n_levels
        return lambda v: ((int(v) - low) // step + 0.5) / n
    return dist.encode


def _dominates(a, b) -> bool:
    """a Pareto-dominates b (minimization; sequences of floats)."""
    strict = False
    for x, y in zip(a, b):
        if x > y or x != x or y != y:     # NaN never dominates (as numpy's comparisons)
            return False
        if x < y:
            strict = True
    return strict


def _check_int(name: str, v: Any, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return int(v)


def _check_real(name: str, v: Any, low: float, high: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    v = float(v)
    if not np.isfinite(v) or v < low or (high is not None and v > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be finite and {rng}, got {v}")
    return v
