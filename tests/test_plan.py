"""The steady-state fast path (a cached C++ plan) must be invisible: the same bits as the general
path, and it must step aside whenever the optimizer no longer matches what it planned."""
import copy

import numpy as np
import pytest

import pyoptk

OPTIMIZERS = [
    (pyoptk.SGD, dict(lr=0.1, momentum=0.9)), (pyoptk.Adam, dict(lr=0.01, amsgrad=True)),
    (pyoptk.AdamW, dict(lr=0.01)), (pyoptk.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    (pyoptk.Adagrad, dict(lr=0.1, lr_decay=0.01)), (pyoptk.Adamax, dict(lr=0.01)),
    (pyoptk.NAdam, dict(lr=0.01)), (pyoptk.RAdam, dict(lr=0.01)), (pyoptk.Adadelta, dict()),
    (pyoptk.Rprop, dict(lr=0.01)), (pyoptk.ASGD, dict(lr=0.01, t0=3)),
]


def _problem(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in (5, 17, 1)]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(9)]
    return params, grads


def _run(cls, hyper, fast):
    params, grads = _problem()
    opt = cls([{"params": params[:2]}, {"params": params[2:], "lr": 0.02}], **hyper)
    for k, step in enumerate(grads):
        if k == 5:
            opt.param_groups[1]["lr"] = 0.005
        if not fast:
            opt._plan = None
        opt.step(step)
        if fast and k >= 1:
            assert opt._plan is not None, "the fast path should be in use after the first full step"
    return params, opt


@pytest.mark.parametrize("cls, hyper", OPTIMIZERS, ids=lambda x: getattr(x, "__name__", ""))
def test_fast_path_is_bit_identical_to_general_path(cls, hyper):
    fast_params, fast_opt = _run(cls, hyper, fast=True)
    slow_params, slow_opt = _run(cls, hyper, fast=False)
    for a, b in zip(fast_params, slow_params):
        assert np.array_equal(a, b)
    fast_sd, slow_sd = fast_opt.state_dict(), slow_opt.state_dict()
    for i, state in slow_sd["state"].items():
        assert state.keys() == fast_sd["state"][i].keys()
        for key, value in state.items():
            assert np.array_equal(fast_sd["state"][i][key], value), key


def _planned_adam():
    params, grads = _problem()
    opt = pyoptk.Adam(params, lr=0.1)
    opt.step(grads[0])
    opt.step(grads[1])
    assert opt._plan is not None
    return opt, params, grads


def test_replaced_state_array_is_used_not_the_planned_one():
    opt, params, grads = _planned_adam()
    reference = copy.deepcopy(opt.state_dict())
    new_avg = np.zeros_like(params[0])
    opt.state[params[0]]["exp_avg"] = new_avg
    opt.step(grads[2])
    assert opt.state[params[0]]["exp_avg"] is new_avg and np.any(new_avg != 0)
    assert not np.array_equal(reference["state"][0]["exp_avg"], new_avg)


def test_replaced_param_and_mode_change_fall_back_to_the_general_path():
    opt, params, grads = _planned_adam()
    fresh = np.ones(5)
    opt.param_groups[0]["params"][0] = fresh
    opt.step(grads[2])
    assert opt.state[fresh]["step"] == 1 and opt.state[params[1]]["step"] == 3
    opt.param_groups[0]["amsgrad"] = True
    opt.step(grads[3])
    assert "max_exp_avg_sq" in opt.state[params[1]]


def test_missing_grad_breaks_lockstep_and_steps_stay_per_param():
    opt, params, grads = _planned_adam()
    opt.step([grads[2][0], None, grads[2][2]])
    for k in (3, 4):
        opt.step(grads[k])
    assert [opt.state[p]["step"] for p in params] == [5, 4, 5]


def test_scalar_state_visible_after_every_fast_step():
    opt, params, grads = _planned_adam()
    state = opt.state[params[2]]  # a reference held across steps, as torch users do
    opt.step(grads[2])
    opt.step(grads[3])
    assert state["step"] == 4 and opt.state_dict()["state"][2]["step"] == 4


def test_refused_fast_step_changes_nothing():
    opt, params, grads = _planned_adam()
    before = copy.deepcopy(opt.state_dict())
    values = [p.copy() for p in params]
    with pytest.raises(ValueError, match=r"param 1 grad has shape \(3,\)"):
        opt.step([grads[2][0], np.zeros(3), grads[2][2]])
    assert all(np.array_equal(a, b) for a, b in zip(params, values))
    assert [s["step"] for s in opt.state_dict()["state"].values()] == [s["step"] for s in before["state"].values()]


def test_arena_params_coalesce_and_match_separate_arrays():
    """Params, grads and states that continue each other in memory run as one span: same bits."""
    rng = np.random.default_rng(4)
    sizes = [3, 50, 7, 1000]
    flat = rng.standard_normal(sum(sizes)).astype(np.float32)
    flat_grad = np.empty_like(flat)
    views = np.split(flat, np.cumsum(sizes)[:-1])
    grad_views = np.split(flat_grad, np.cumsum(sizes)[:-1])
    separate = [v.copy() for v in views]
    arena_opt = pyoptk.Adam(views, lr=0.1)
    opt = pyoptk.Adam(separate, lr=0.1)
    for _ in range(4):
        flat_grad[:] = rng.standard_normal(flat.size)
        arena_opt.step(grad_views)
        opt.step([g.copy() for g in grad_views])
    assert all(np.array_equal(a, b) for a, b in zip(views, separate))
    for name in ("exp_avg", "exp_avg_sq"):  # the states were allocated as an arena too
        pieces = [arena_opt.state[v][name] for v in views]
        assert all(np.shares_memory(pieces[0].base, piece) for piece in pieces)
    assert arena_opt._plan.spans == 1 and opt._plan.spans == len(sizes)


def test_arena_detection_requires_consecutive_views():
    flat = np.zeros(10)
    gap = pyoptk.SGD([flat[:3], flat[4:]], lr=0.1, momentum=0.9)
    gap.step([np.ones(3), np.ones(6)])
    assert not np.shares_memory(gap.state[gap.param_groups[0]["params"][0]]["momentum_buffer"].base or np.zeros(1),
                                gap.state[gap.param_groups[0]["params"][1]]["momentum_buffer"])
    reordered = pyoptk.SGD([flat[5:], flat[:5]], lr=0.1, momentum=0.9)
    for _ in range(2):  # the first step (which makes the state) and a later one: every step runs a plan
        reordered.step([np.ones(5), np.ones(5)])
        assert reordered._plan.spans == 2
