"""Checkpoints: torch's layout, bit-identical resume (every element-wise algorithm), torch's state
dicts loaded and continued, and refusal of state dicts that do not fit."""
import copy
import pickle

import numpy as np
import pytest

import pyoptk
from cases import BEYOND_TORCH, TORCH_OPTIM, TORCH_OPTIM_TORCH_TOL, ids
from problems import STEPS, TORCH_OPTIM_SIZES, close, problem, random_grads

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


# ----- every element-wise algorithm: resumed runs give the uninterrupted run's bits -----------
@pytest.mark.parametrize("name,kw", TORCH_OPTIM, ids=ids(TORCH_OPTIM))
def test_torch_optim_state_dict_round_trip(name, kw):
    params, grads = problem(np.float64, TORCH_OPTIM_SIZES, seed=2)
    params, grads = params[1:4], grads[1:4]
    live = [p.copy() for p in params]
    opt = getattr(pyoptk, name)([{"params": live[:1]}, {"params": live[1:], "lr": 0.003}], **kw)
    for k in range(4):
        opt.step([g[k] for g in grads])
    saved, saved_params = copy.deepcopy(opt.state_dict()), [p.copy() for p in live]
    for k in range(4, STEPS):
        opt.step([g[k] for g in grads])
    fresh = [p.copy() for p in saved_params]
    opt2 = getattr(pyoptk, name)([{"params": fresh[:1]}, {"params": fresh[1:]}], **kw)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[1]["lr"] == 0.003
    for k in range(4, STEPS):
        opt2.step([g[k] for g in grads])
    for a, b in zip(live, fresh):
        assert np.array_equal(a, b)
        for key, value in opt.state[a].items():
            assert np.array_equal(np.asarray(value), np.asarray(opt2.state[b][key])), key


@pytest.mark.parametrize("name,kw", BEYOND_TORCH, ids=ids(BEYOND_TORCH))
def test_beyond_torch_state_dict_round_trip(name, kw):
    params, grads = problem(np.float64, [7, 1, 130], seed=2)
    live = [p.copy() for p in params]
    opt = getattr(pyoptk, name)([{"params": live[:1]}, {"params": live[1:], "lr": 0.003}], **kw)
    for k in range(4):
        opt.step([g[k] for g in grads])
    snapshot = copy.deepcopy(opt.state_dict())
    resumed = [p.copy() for p in live]
    for k in range(4, STEPS):
        opt.step([g[k] for g in grads])
    other = getattr(pyoptk, name)([{"params": resumed[:1]}, {"params": resumed[1:], "lr": 0.003}], **kw)
    other.load_state_dict(snapshot)
    for k in range(4, STEPS):
        other.step([g[k] for g in grads])
    for a, b in zip(live, resumed):
        assert np.array_equal(a, b)
    for p, q in zip(live, resumed):
        for key, value in opt.state[p].items():
            assert np.array_equal(value, other.state[q][key]), key


@pytest.mark.parametrize("name,kw", TORCH_OPTIM, ids=ids(TORCH_OPTIM))
def test_torch_optims_state_dict_loads_and_continues(name, kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    sizes = [9, 40]
    params = [rng.standard_normal(n) for n in sizes]
    grads = [random_grads(rng, n, STEPS, np.float64) for n in sizes]
    tp = [torch.tensor(p.copy()) for p in params]
    topt = getattr(torch.optim, name)([{"params": tp[:1]}, {"params": tp[1:], "lr": 0.003}], foreach=False, **kw)
    for k in range(5):
        for t, g in zip(tp, grads):
            t.grad = torch.tensor(g[k])
        topt.step()
    sd = topt.state_dict()
    converted = {"param_groups": copy.deepcopy(sd["param_groups"]),
                 "state": {i: {key: v.numpy().copy() if torch.is_tensor(v) else v for key, v in s.items()}
                           for i, s in sd["state"].items()}}
    mine = [t.detach().numpy().copy() for t in tp]
    opt = getattr(pyoptk, name)([{"params": mine[:1]}, {"params": mine[1:]}], **kw)
    opt.load_state_dict(converted)
    for k in range(5, STEPS):
        for t, g in zip(tp, grads):
            t.grad = torch.tensor(g[k])
        topt.step()
        opt.step([g[k] for g in grads])
    for a, t in zip(mine, tp):
        close(a, t.detach().numpy(), TORCH_OPTIM_TORCH_TOL[np.float64], "param")
        for key, value in topt.state[t].items():
            close(opt.state[a][key], value.numpy(), TORCH_OPTIM_TORCH_TOL[np.float64], f"state {key}")


@pytest.mark.parametrize("name, kw, off", [
    ("SGD", dict(lr=0.1, momentum=0.9), dict(momentum=0.0)),
    ("RMSprop", dict(lr=0.01, momentum=0.9), dict(momentum=0.0)),
    ("RMSprop", dict(lr=0.01, centered=True), dict(centered=False)),
    ("Adam", dict(lr=0.01, amsgrad=True), dict(amsgrad=False)),
], ids=["SGD-momentum", "RMSprop-momentum", "RMSprop-centered", "Adam-amsgrad"])
def test_state_a_flag_no_longer_uses_is_loaded_and_kept(name, kw, off):
    """A state made while a flag was on and kept, unused, once it is turned off (as torch keeps
    it): a checkpoint then, its own or torch's, loads, and the state is back in use with the flag."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(5) for _ in range(4)]
    p, tp = np.ones(5), torch.ones(5, dtype=torch.float64)
    opt, topt = getattr(pyoptk, name)([p], **kw), getattr(torch.optim, name)([tp], foreach=False, **kw)
    for k, g in enumerate(grads):
        if k == 1:
            for o in (opt, topt):
                o.param_groups[0].update(off)
        if k == 3:  # from a checkpoint of each, the flag back on
            theirs = pyoptk.from_torch_state_dict(topt.state_dict())
            for sd in (copy.deepcopy(opt.state_dict()), theirs):
                fresh = getattr(pyoptk, name)([p.copy()], **kw)
                fresh.load_state_dict(sd)
                assert set(fresh.state[fresh.param_groups[0]["params"][0]]) == set(topt.state[tp])
            opt.load_state_dict(copy.deepcopy(opt.state_dict()))
            for o in (opt, topt):
                o.param_groups[0].update(kw)
        opt.step([g])
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
    close(p, tp.numpy(), TORCH_OPTIM_TORCH_TOL[np.float64], "param")


def test_sgd_without_momentum_state_loads_with_momentum():
    """SGD keeps an empty state for a param stepped without momentum; a checkpoint taken after
    momentum is turned on, before the next step, loads (an empty state is none: the buffer is
    made at the next step, b = g, as torch makes it)."""
    torch = pytest.importorskip("torch")
    p, tp = np.ones(3), torch.ones(3, dtype=torch.float64)
    opt, topt = pyoptk.SGD([p], lr=0.1), torch.optim.SGD([tp], lr=0.1, foreach=False)
    for k, g in enumerate([np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.2, -1.0]), np.array([2.0, 0.0, 1.0])]):
        if k == 1:
            for o in (opt, topt):
                o.param_groups[0]["momentum"] = 0.9
            fresh = pyoptk.SGD([p], lr=0.1)
            fresh.load_state_dict(copy.deepcopy(opt.state_dict()))
            opt = fresh
        opt.step([g])
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
    assert np.array_equal(p, tp.numpy()) and np.array_equal(opt.state[p]["momentum_buffer"],
                                                           topt.state[tp]["momentum_buffer"].numpy())
