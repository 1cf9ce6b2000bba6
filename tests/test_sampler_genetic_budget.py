"""GeneticSampler's default population: sized from the budget, small without one."""
import pytest

import hpcore as hp


def _space(d=3):
    return hp.Space({f"x{i}": hp.Float(-1.0, 1.0) for i in range(d)})


def _f(trial):
    return sum(v * v for v in trial.params.values())


def test_population_sized_from_n_trials_so_small_budgets_breed():
    s = hp.GeneticSampler(seed=0)
    st = hp.Study(_space(), sampler=s)
    st.optimize(_f, n_trials=40)
    assert s.n_trials_budget == 40
    assert s._pop_size == 8               # min(50, max(8, 40 // 5))
    assert s._generation >= 3             # the old default (50) never bred in 40 trials


def test_large_budget_caps_population_at_50():
    s = hp.GeneticSampler(seed=0)
    s.set_budget(1000)
    st = hp.Study(_space(), sampler=s)
    st.ask()
    assert s._pop_size == 50


def test_unknown_budget_gives_a_small_first_generation():
    s = hp.GeneticSampler(seed=0)
    st = hp.Study(_space(6), sampler=s)
    for _ in range(30):
        t = st.ask()
        st.tell(t, _f(t))
    assert s._pop_size == 12              # 2 * n_params
    assert s._generation >= 1


def test_explicit_population_is_kept():
    s = hp.GeneticSampler(population_size=16, seed=0)
    st = hp.Study(_space(), sampler=s)
    st.optimize(_f, n_trials=20)
    assert s._pop_size == 16 and s.get_params()["population_size"] == 16


def test_default_round_trips_through_get_params():
    assert hp.GeneticSampler(seed=1).get_params()["population_size"] is None


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_set_budget_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="n_trials"):
        hp.GeneticSampler().set_budget(bad)
