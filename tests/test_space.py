import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hpcore as hp


def mixed_space():
    return hp.Space({
        "lr": hp.Float(1e-5, 1e-1, log=True),
        "dropout": hp.Float(0.0, 0.5, step=0.05),
        "batch": hp.Int(16, 512, log=True),
        "layers": hp.Int(1, 9, step=2),
        "opt": hp.Categorical(["sgd", "adam", "rmsprop"]),
        "momentum": hp.Float(0.0, 0.99, condition={"opt": "sgd"}),
        "nesterov": hp.Categorical([True, False], condition={"opt": ["sgd"]}),
    })


SPACE = mixed_space()


@st.composite
def grid_configs(draw):
    cfg = {
        "lr": draw(st.floats(1e-5, 1e-1)),
        "dropout": draw(st.sampled_from(SPACE["dropout"].levels())),
        "batch": draw(st.integers(16, 512)),
        "layers": draw(st.sampled_from([1, 3, 5, 7, 9])),
        "opt": draw(st.sampled_from(["sgd", "adam", "rmsprop"])),
    }
    if cfg["opt"] == "sgd":
        cfg["momentum"] = draw(st.floats(0.0, 0.99))
        cfg["nesterov"] = draw(st.booleans())
    return cfg


@given(grid_configs())
@settings(max_examples=300, deadline=None)
def test_encode_decode_round_trip(cfg):
    x = SPACE.encode(cfg)
    assert x.shape == (SPACE.n_dims,)
    active = ~np.isnan(x)
    assert np.all((x[active] >= 0) & (x[active] <= 1))
    back = SPACE.decode(x)
    assert set(back) == set(cfg)
    for k in ("dropout", "batch", "layers", "opt", "nesterov"):   # grid values: exact
        if k in cfg:
            assert back[k] == cfg[k] and type(back[k]) is type(cfg[k])
    for k in ("lr", "momentum"):                                   # continuous: to rounding
        if k in cfg:
            assert math.isclose(back[k], cfg[k], rel_tol=1e-12, abs_tol=1e-15)


@given(st.lists(st.floats(0, 1), min_size=SPACE.n_dims, max_size=SPACE.n_dims))
@settings(max_examples=300, deadline=None)
def test_any_cube_point_decodes_to_a_valid_config(u):
    cfg = SPACE.decode(np.array(u))
    assert SPACE.validate(cfg) == cfg
    # decode(encode(decode(u))) is a fixed point
    assert SPACE.decode(SPACE.encode(cfg)) == cfg


@given(st.lists(st.floats(0, 1, exclude_max=True), min_size=7, max_size=7))
@settings(max_examples=200, deadline=None)
def test_decode_random_respects_conditions(u):
    cfg = SPACE.decode_random(np.array(u))
    SPACE.validate(cfg)
    assert ("momentum" in cfg) == (cfg["opt"] == "sgd")


def _reference_decode_random(space, u):
    """decode_random as the plain per-parameter loop (each Distribution's decode)."""
    out = {}
    names = list(space.params)
    for name in space.order:
        if not space.is_active(name, out):
            continue
        d, ui = space.params[name], float(u[names.index(name)])
        if isinstance(d, hp.Categorical):
            out[name] = d.choices[min(int(ui * len(d.choices)), len(d.choices) - 1)]
        else:
            out[name] = d.decode(ui)
    return {k: out[k] for k in space.params if k in out}


def test_decode_random_is_each_distributions_decode_bit_for_bit():
    # the precomputed plan must give exactly what the distributions' decode gives, also
    # for out-of-range draws, a parameter listed before its parent, and every kind
    reordered = hp.Space({
        "momentum": hp.Float(0.0, 0.99, condition={"opt": "sgd"}),
        "opt": hp.Categorical(["sgd", "adam"]),
        "w": hp.Float(-3.0, 7.5),
        "n": hp.Int(-4, 20, step=3),
    })
    rng = np.random.default_rng(0)
    for space in (SPACE, reordered):
        k = len(space)
        for u in [*rng.random((300, k)), np.zeros(k), np.full(k, 1 - 1e-16),
                  *rng.uniform(-0.5, 1.5, (50, k))]:
            got = space.decode_random(np.asarray(u))
            ref = _reference_decode_random(space, u)
            assert list(got) == list(ref) and got == ref
            assert all(type(got[n]) is type(ref[n]) for n in got)
    assert reordered.decode_random(np.array([0.5, 0.1, 0.5, 0.5], dtype=np.float32))["opt"] == "sgd"


def test_grid_respects_conditions_and_is_complete():
    sp = hp.Space({
        "opt": hp.Categorical(["sgd", "adam"]),
        "momentum": hp.Float(0.0, 0.9, step=0.3, condition={"opt": "sgd"}),
        "units": hp.Int(1, 3),
        "lr": hp.Float(1e-3, 1e-1, log=True),
    })
    grid = sp.grid(n_points=3)
    # sgd: 4 momenta x 3 units x 3 lr; adam: 3 units x 3 lr
    assert len(grid) == 4 * 3 * 3 + 3 * 3
    assert len({tuple(sorted(g.items())) for g in grid}) == len(grid)
    assert all(sp.validate(g) == g for g in grid)
    lrs = sorted({g["lr"] for g in grid})
    assert lrs[0] == 1e-3 and lrs[-1] == 1e-1 and math.isclose(lrs[1], 1e-2)


@pytest.mark.parametrize("make, match", [
    (lambda: hp.Space({"a": hp.Float(1.0, 1.0)}), "'a'.*low"),
    (lambda: hp.Space({"a": hp.Float(2.0, 1.0)}), "'a'.*low"),
    (lambda: hp.Space({"a": hp.Int(5, 5)}), "'a'.*low"),
    (lambda: hp.Space({"a": hp.Float(0.0, 1.0, log=True)}), "'a'.*log"),
    (lambda: hp.Space({"a": hp.Float(-1.0, 1.0, log=True)}), "'a'.*log"),
    (lambda: hp.Space({"a": hp.Int(0, 10, log=True)}), "'a'.*log"),
    (lambda: hp.Space({"a": hp.Categorical([])}), "'a'.*empty"),
    (lambda: hp.Space({"a": hp.Categorical(["x", "y", "x"])}), "'a'.*duplicate"),
    (lambda: hp.Space({"a": hp.Float(0.0, 1.0, step=0.3)}), "'a'.*divide"),
    (lambda: hp.Space({"a": hp.Int(0, 10, step=3)}), "'a'.*divide"),
    (lambda: hp.Space({"a": hp.Float(0.0, 1.0, condition={"nope": 1})}), "'a'.*unknown.*'nope'"),
    (lambda: hp.Space({"a": hp.Categorical([1, 2], condition={"b": 1}),
                       "b": hp.Categorical([1, 2], condition={"a": 1})}), "cycle"),
    (lambda: hp.Space({"a": hp.Categorical([1, 2]),
                       "b": hp.Float(0, 1, condition={"a": 3})}), "'b'.*3.*'a'"),
])
def test_invalid_definitions_name_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", [
    lambda: hp.Space({"a": hp.Float("0", 1)}),
    lambda: hp.Space({"a": hp.Int(0.5, 3)}),
    lambda: hp.Space({"a": hp.Categorical("abc")}),
    lambda: hp.Space({"a": hp.Categorical([[1], [2]])}),
    lambda: hp.Space({"a": 3}),
    lambda: hp.Space([("a", hp.Float(0, 1))]),
])
def test_wrong_types_raise_type_error(make):
    with pytest.raises(TypeError):
        make()


def test_validate_names_the_bad_parameter():
    with pytest.raises(ValueError, match="'batch'"):
        SPACE.validate({"lr": 0.01, "dropout": 0.1, "batch": 9999, "layers": 1, "opt": "adam"})
    with pytest.raises(ValueError, match="'momentum'.*inactive"):
        SPACE.validate({"lr": 0.01, "dropout": 0.1, "batch": 32, "layers": 1, "opt": "adam",
                        "momentum": 0.5})
    with pytest.raises(ValueError, match="'lr'.*missing"):
        SPACE.validate({"dropout": 0.1, "batch": 32, "layers": 1, "opt": "adam"})


def test_to_dict_round_trip():
    again = hp.Space.from_dict(SPACE.to_dict())
    assert again.to_dict() == SPACE.to_dict()
    assert again.n_dims == SPACE.n_dims


def test_continuous_grid_needs_points():
    sp = hp.Space({"x": hp.Float(0, 1)})
    with pytest.raises(ValueError, match="'x'.*continuous"):
        sp.grid()
