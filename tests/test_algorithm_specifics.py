"""What one algorithm does that the shared tables do not show: construction-time state, first
steps, clipping, the schedule-free train / eval swap, trust ratios."""
from __future__ import annotations

import numpy as np
import pytest

import pyoptk


def test_adagrad_state_created_at_construction():
    torch = pytest.importorskip("torch")
    p = np.zeros(4, np.float32)
    opt = pyoptk.Adagrad([p], initial_accumulator_value=0.25)
    tp = torch.zeros(4)
    topt = torch.optim.Adagrad([tp], initial_accumulator_value=0.25)
    assert opt.state[p]["step"] == 0 and np.array_equal(opt.state[p]["sum"], np.full(4, 0.25, np.float32))
    assert set(opt.state_dict()["state"][0]) == set(topt.state_dict()["state"][0])
    opt.step([None])  # a None grad leaves the state alone
    assert opt.state[p]["step"] == 0


def test_adagrad_state_created_for_every_group():
    """Every group's params, as torch's __init__ makes it (pyoptk.torch's twin adds its groups
    after the first one by one), from the constructor's initial_accumulator_value (torch's, not
    the group's), and a later group's at add_param_group: a checkpoint taken before the first
    step then resumes in torch.optim.Adagrad, whose step needs that state."""
    torch = pytest.importorskip("torch")
    import pyoptk.torch as pt

    tp = [torch.nn.Parameter(torch.ones(3)) for _ in range(3)]
    groups = [{"params": tp[:1]}, {"params": tp[1:2], "initial_accumulator_value": 0.5}]
    opt = pt.Adagrad(groups, initial_accumulator_value=0.25)
    topt = torch.optim.Adagrad(groups, initial_accumulator_value=0.25)
    assert [opt.state[p]["sum"].tolist() for p in tp[:2]] == [topt.state[p]["sum"].tolist() for p in tp[:2]] \
        == [[0.25] * 3, [0.25] * 3]
    opt.add_param_group({"params": tp[2:]})
    assert opt.state[tp[2]]["step"] == 0 and len(opt.state_dict()["state"]) == 3
    resumed = torch.optim.Adagrad([{"params": tp[:1]}, {"params": tp[1:2]}, {"params": tp[2:]}])
    resumed.load_state_dict(opt.state_dict())
    for p in tp:
        p.grad = torch.ones(3)
    resumed.step()
    p = np.zeros(2)
    numpy_opt = pyoptk.Adagrad([np.zeros(2)], initial_accumulator_value=0.25)
    numpy_opt.add_param_group({"params": [p]})
    assert numpy_opt.state[p]["step"] == 0 and numpy_opt.state[p]["sum"].tolist() == [0.25, 0.25]


def test_sgd_nesterov_checked_at_construction_only_as_torch():
    """torch refuses nesterov without momentum or with dampening in its arguments only; a group
    may have them (given so, set by hand, or from a checkpoint): nesterov then acts on the buffer
    alone (none without momentum), as torch's step does."""
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        pyoptk.SGD([np.zeros(2)], momentum=0.9, dampening=0.5, nesterov=True)
    groups = lambda ps: [{"params": ps[:1]}, {"params": ps[1:2], "momentum": 0.0}, {"params": ps[2:]}]
    params = [np.linspace(-1, 1, 5) for _ in range(3)]
    tparams = [torch.tensor(p) for p in params]
    opt = pyoptk.SGD(groups(params), lr=0.1, momentum=0.9, nesterov=True)
    topt = torch.optim.SGD(groups(tparams), lr=0.1, momentum=0.9, nesterov=True, foreach=False)
    for k in range(3):
        if k == 1:
            for o in (opt, topt):
                o.param_groups[2]["dampening"] = 0.5
        g = [np.full(5, k + 1.0), np.arange(5.0), -np.arange(5.0)]
        opt.step(g)
        for t, gi in zip(tparams, g):
            t.grad = torch.tensor(gi)
        topt.step()
    sd = pyoptk.from_torch_state_dict(topt.state_dict())
    pyoptk.SGD(groups([p.copy() for p in params]), lr=0.1, momentum=0.9, nesterov=True).load_state_dict(sd)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p, t.numpy(), rtol=1e-15, atol=1e-15)


def test_rprop_lr_only_seeds_step_size():
    p = np.zeros(3)
    opt = pyoptk.Rprop([p], lr=0.1)
    opt.step([np.ones(3)])
    opt.param_groups[0]["lr"] = 100.0
    opt.step([np.ones(3)])
    # step 1: prev = 0, so the factor is 1; step 2: same sign, factor eta+ (the new lr is ignored)
    assert np.array_equal(opt.state[p]["step_size"], np.full(3, 0.1 * 1.2))
    assert np.array_equal(p, np.full(3, -0.1 - 0.1 * 1.2))


def test_adopt_first_step_only_seeds_the_second_moment():
    p = np.ones(5)
    opt = pyoptk.ADOPT([p], lr=0.1)
    g = np.arange(5.0)
    opt.step([g])
    assert np.array_equal(p, np.ones(5))
    assert np.array_equal(opt.state[p]["exp_avg_sq"], g * g) and not opt.state[p]["exp_avg"].any()
    opt.step([g])  # clip(2) = 2**0.25 bounds g / |g| = 1: no clipping, m = 0.1 sign(g)
    np.testing.assert_allclose(p, 1 - 0.1 * 0.1 * np.sign(g), rtol=0, atol=1e-15)


def test_adopt_clips_to_the_schedule():
    p = np.zeros(2)
    opt = pyoptk.ADOPT([p], lr=1.0, betas=(0.0, 0.9999), clip_lambda=lambda t: 0.5, eps=1e-6)
    opt.step([np.array([1e-3, 1e-3])])
    opt.step([np.array([5.0, -5.0])])  # normalised 5000 and -5000, clipped to +-0.5
    np.testing.assert_array_equal(p, [-0.5, 0.5])


def test_adan_first_step_has_no_grad_difference():
    p = np.zeros(3)
    g = np.array([1.0, -2.0, 0.5])
    opt = pyoptk.Adan([p], lr=0.1)
    opt.step([g])
    s = opt.state[p]
    assert not s["exp_avg_diff"].any() and np.array_equal(s["pre_grad"], g)
    # step 1: m^ = g, v^ = g^2: p = -lr sign(g) g / (|g| + eps)
    np.testing.assert_allclose(p, -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-15)


def test_schedule_free_train_eval_swap():
    rng = np.random.default_rng(5)
    p = rng.standard_normal(50)
    opt = pyoptk.ScheduleFreeAdamW([p], lr=0.05)
    opt.eval()  # before any step: nothing to swap
    opt.train()
    for _ in range(5):
        opt.step([rng.standard_normal(50)])
    y = p.copy()
    z = opt.state[p]["z"]
    opt.eval()
    np.testing.assert_allclose(p, (y - 0.1 * z) / 0.9, rtol=1e-12, atol=1e-14)  # x
    assert opt.param_groups[0]["train_mode"] is False
    x = p.copy()
    opt.eval()  # already in eval mode: no change
    assert np.array_equal(p, x)
    with pytest.raises(RuntimeError, match="train"):
        opt.step([np.ones(50)])
    assert np.array_equal(p, x) and opt.param_groups[0]["k"] == 5
    opt.train()
    np.testing.assert_allclose(p, y, rtol=1e-12, atol=1e-14)


def test_lars_trust_ratio_is_one_for_zero_params():
    p = np.zeros(4)
    opt = pyoptk.LARS([p], lr=0.5, momentum=0.0)
    opt.step([np.ones(4)])
    np.testing.assert_array_equal(p, -0.5 * np.ones(4))  # ratio 1, not 0
