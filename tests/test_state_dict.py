"""Checkpoints: torch's layout, bit-identical resume, and refusal of state dicts that do not fit."""
import copy
import pickle

import numpy as np
import pytest

import pyoptk

CONFIGS = [
    (pyoptk.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (pyoptk.SGD, dict(lr=0.1)),
    (pyoptk.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    (pyoptk.AdamW, dict(lr=0.01)),
]


def _model(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (4,), (17,)]]


def _grads(k):
    rng = np.random.default_rng(100 + k)
    return [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (4,), (17,)]]


def _make(cls, hyper, params):
    return cls([{"params": params[:2]}, {"params": params[2:], "lr": hyper["lr"] / 2}], **hyper)


@pytest.mark.parametrize("cls, hyper", CONFIGS, ids=lambda c: getattr(c, "__name__", ""))
def test_resume_is_bit_identical(cls, hyper):
    params = _model()
    opt = _make(cls, hyper, params)
    for k in range(3):
        opt.step(_grads(k))
    saved_params = [p.copy() for p in params]
    saved = pickle.loads(pickle.dumps(copy.deepcopy(opt.state_dict())))
    for k in range(3, 7):
        opt.step(_grads(k))

    resumed = [p.copy() for p in saved_params]
    opt2 = _make(cls, hyper, resumed)
    opt2.load_state_dict(saved)
    for k in range(3, 7):
        opt2.step(_grads(k))
    for a, b in zip(params, resumed):
        assert np.array_equal(a, b)


def test_layout_is_torchs():
    params = _model()
    opt = _make(pyoptk.Adam, dict(lr=0.01), params)
    opt.step([_grads(0)[0], None, _grads(0)[2]])
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 2]
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "step"] and sd["state"][0]["step"] == 1
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sd["param_groups"][1]["lr"] == 0.005 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sd["state"][0]["exp_avg"] is opt.state[params[0]]["exp_avg"]  # references, like torch


def _stepped(cls=pyoptk.Adam, **hyper):
    params = _model()
    opt = _make(cls, dict(dict(lr=0.01), **hyper), params)
    opt.step(_grads(0))
    return opt, params


def _corrupt(change):
    opt, _ = _stepped()
    sd = copy.deepcopy(opt.state_dict())
    change(sd)
    return sd


@pytest.mark.parametrize("change, match", [
    (lambda sd: sd["param_groups"].pop(), "1 parameter groups"),
    (lambda sd: sd["param_groups"][0]["params"].pop(), "has 1 params"),
    (lambda sd: sd["state"][0].__setitem__("exp_avg", np.zeros(5)), "'exp_avg' has shape"),
    (lambda sd: sd["state"][1].pop("exp_avg_sq"), r"missing keys \['exp_avg_sq'\]"),
    (lambda sd: sd["state"][1].__setitem__("momentum_buffer", np.zeros(4)), r"unknown keys \['momentum_buffer'\]"),
    (lambda sd: sd["state"][1].__setitem__("step", 1.5), "'step' must be a non-negative whole number"),
    (lambda sd: sd["state"].__setitem__(7, {}), "param 7, which no param group lists"),
    (lambda sd: sd["param_groups"][0].pop("betas"), r"lacks \['betas'\]"),
    (lambda sd: sd["param_groups"][1].__setitem__("eps", -1.0), "Invalid epsilon value"),
    (lambda sd: sd["state"][2].__setitem__("exp_avg", np.zeros(17, np.int64)), "dtype int64"),
    (lambda sd: sd.pop("state"), "'state' and 'param_groups'"),
])
def test_bad_state_dict_refused_without_change(change, match):
    opt, params = _stepped()
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(_corrupt(change))
    after = opt.state_dict()
    assert [g["lr"] for g in after["param_groups"]] == [g["lr"] for g in before["param_groups"]]
    for i in before["state"]:
        for k, v in before["state"][i].items():
            assert np.array_equal(after["state"][i][k], v)


def test_state_of_another_algorithm_refused():
    sgd, _ = _stepped(pyoptk.SGD, momentum=0.9)
    adam, _ = _stepped()
    with pytest.raises(ValueError, match="lacks|unknown keys"):
        adam.load_state_dict(copy.deepcopy(sgd.state_dict()))


def test_loaded_state_is_owned_and_cast_to_param_dtype():
    opt, params = _stepped()
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["exp_avg"] = sd["state"][0]["exp_avg"].astype(np.float64)
    opt.load_state_dict(sd)
    state = opt.state[params[0]]
    assert state["exp_avg"].dtype == np.float32 and state["exp_avg"].flags.c_contiguous
    assert not np.shares_memory(state["exp_avg_sq"], sd["state"][0]["exp_avg_sq"])
