"""pyoptk.functional's forms (torch's functional API), fed the class's state, give the class's bits.
(The tree API, init / update: test_functional_tree.py.)"""
from __future__ import annotations

import copy

import numpy as np
import pytest

import pyoptk
from cases import BEYOND_TORCH, SCHEDULE_FREE, TORCH_OPTIM, ids
from problems import STEPS, TORCH_OPTIM_SIZES, problem, run_steps


def _torch_optim_functional_call(name, params, grads, S, h):
    F = pyoptk.functional
    common = dict(weight_decay=h.get("weight_decay", 0), maximize=h["maximize"])
    if name == "RMSprop":
        F.rmsprop(params, grads, S["square_avg"], S["grad_avg"], S["momentum_buffer"], S["step"], lr=h["lr"],
                  alpha=h["alpha"], eps=h["eps"], momentum=h["momentum"], centered=h["centered"], **common)
    elif name == "Adagrad":
        F.adagrad(params, grads, S["sum"], S["step"], lr=h["lr"], lr_decay=h["lr_decay"], eps=h["eps"], **common)
    elif name == "Adamax":
        F.adamax(params, grads, S["exp_avg"], S["exp_inf"], S["step"], eps=h["eps"], beta1=h["betas"][0],
                 beta2=h["betas"][1], lr=h["lr"], **common)
    elif name == "NAdam":
        F.nadam(params, grads, S["exp_avg"], S["exp_avg_sq"], S["mu_product"], S["step"], beta1=h["betas"][0],
                beta2=h["betas"][1], lr=h["lr"], momentum_decay=h["momentum_decay"], eps=h["eps"],
                decoupled_weight_decay=h["decoupled_weight_decay"], **common)
    elif name == "RAdam":
        F.radam(params, grads, S["exp_avg"], S["exp_avg_sq"], S["step"], beta1=h["betas"][0], beta2=h["betas"][1],
                lr=h["lr"], eps=h["eps"], decoupled_weight_decay=h["decoupled_weight_decay"], **common)
    elif name == "Adadelta":
        F.adadelta(params, grads, S["square_avg"], S["acc_delta"], S["step"], lr=h["lr"], rho=h["rho"],
                   eps=h["eps"], **common)
    elif name == "Rprop":
        F.rprop(params, grads, S["prev"], S["step_size"], S["step"], step_size_min=h["step_sizes"][0],
                step_size_max=h["step_sizes"][1], etaminus=h["etas"][0], etaplus=h["etas"][1],
                maximize=h["maximize"])
    elif name == "ASGD":
        F.asgd(params, grads, S["ax"], S["mu"], S["eta"], S["step"], lambd=h["lambd"], lr=h["lr"], t0=h["t0"],
               alpha=h["alpha"], **common)


@pytest.mark.parametrize("name,kw", TORCH_OPTIM, ids=ids(TORCH_OPTIM))
def test_torch_optim_functional_matches_class(name, kw):
    params, grads = problem(np.float64, TORCH_OPTIM_SIZES, seed=4)
    params, grads = params[1:5], grads[1:5]
    out, opt = run_steps(name, kw, params, grads)
    h = opt.param_groups[0]
    mine = [p.copy() for p in params]
    fill = {"sum": h.get("initial_accumulator_value"), "step_size": h["lr"]}
    names = {key for p in out for key, v in opt.state[p].items() if isinstance(v, np.ndarray)}
    names |= {"square_avg", "grad_avg", "momentum_buffer"} if name == "RMSprop" else set()
    S = {key: [np.full_like(p, fill.get(key) or 0.0) for p in mine] for key in names}
    S["step"] = [0] * len(mine)
    S["mu_product"] = [1.0] * len(mine)
    S["eta"] = [float(np.float32(h["lr"]))] * len(mine)
    S["mu"] = [1.0] * len(mine)
    for k in range(STEPS):
        _torch_optim_functional_call(name, mine, [g[k] for g in grads], S, h)
    for i, (a, b) in enumerate(zip(out, mine)):
        assert np.array_equal(a, b)
        for key, value in opt.state[a].items():
            assert np.array_equal(np.asarray(value), np.asarray(S[key][i])), key


@pytest.mark.parametrize("name,kw", BEYOND_TORCH, ids=ids(BEYOND_TORCH))
def test_beyond_torch_functional_matches_class(name, kw):
    """The functional form, fed the class's state, gives the class's bits."""
    params, grads = problem(np.float64, [5, 33], seed=3)
    mine, opt = run_steps(name, kw, params, grads, steps=4)
    if name in SCHEDULE_FREE:
        opt.train()
    snapshot = copy.deepcopy(opt.state_dict())
    before = [p.copy() for p in mine]
    opt.step([g[4] for g in grads])
    states = [copy.deepcopy(snapshot["state"][i]) for i in range(len(mine))]
    ps = [p.copy() for p in before]
    gs = [g[4] for g in grads]
    h = opt.param_groups[0]
    F = pyoptk.functional
    lists = lambda *keys: [[s[k] for s in states] for k in keys]  # noqa: E731
    if name == "Lion":
        F.lion(ps, gs, *lists("exp_avg"), lr=h["lr"], beta1=h["betas"][0], beta2=h["betas"][1],
               weight_decay=h["weight_decay"], maximize=h["maximize"])
    elif name == "Adan":
        steps = [s["step"] for s in states]
        F.adan(ps, gs, *lists("exp_avg", "exp_avg_diff", "exp_avg_sq", "pre_grad"), steps, lr=h["lr"],
               beta1=h["betas"][0], beta2=h["betas"][1], beta3=h["betas"][2], eps=h["eps"],
               weight_decay=h["weight_decay"], no_prox=h["no_prox"], maximize=h["maximize"])
    elif name == "ADOPT":
        steps = [s["step"] for s in states]
        F.adopt(ps, gs, *lists("exp_avg", "exp_avg_sq"), steps, lr=h["lr"], beta1=h["betas"][0],
                beta2=h["betas"][1], eps=h["eps"], clip_lambda=h["clip_lambda"], weight_decay=h["weight_decay"],
                decouple=h["decouple"], maximize=h["maximize"])
    elif name == "AdEMAMix":
        steps = [s["step"] for s in states]
        F.ademamix(ps, gs, *lists("exp_avg", "exp_avg_sq", "exp_avg_slow"), steps, lr=h["lr"], beta1=h["betas"][0],
                   beta2=h["betas"][1], beta3=h["betas"][2], alpha=h["alpha"], eps=h["eps"],
                   weight_decay=h["weight_decay"], t_alpha=h["t_alpha"], t_beta3=h["t_beta3"],
                   maximize=h["maximize"])
    elif name == "LAMB":
        steps = [s["step"] for s in states]
        F.lamb(ps, gs, *lists("exp_avg", "exp_avg_sq"), steps, lr=h["lr"], beta1=h["betas"][0], beta2=h["betas"][1],
               eps=h["eps"], weight_decay=h["weight_decay"], maximize=h["maximize"])
    elif name == "LARS":
        F.lars(ps, gs, *lists("momentum_buffer"), lr=h["lr"], momentum=h["momentum"],
               weight_decay=h["weight_decay"], trust_coefficient=h["trust_coefficient"], eps=h["eps"],
               nesterov=h["nesterov"], trust_ratio=h["trust_ratio"])
    else:
        g = opt.param_groups[0]  # the schedule state after the step
        common = dict(lr=g["scheduled_lr"], weight_decay=g["weight_decay"], k=g["k"], lr_max=g["lr_max"],
                      weight_sum=g["weight_sum"], r=g["r"], weight_lr_power=g["weight_lr_power"])
        if name == "ScheduleFreeSGD":
            F.schedule_free_sgd(ps, gs, *lists("z"), momentum=g["momentum"], **common)
        else:
            F.schedule_free_adamw(ps, gs, *lists("z", "exp_avg_sq"), beta1=g["betas"][0], beta2=g["betas"][1],
                                  eps=g["eps"], **common)
    for a, b in zip(ps, mine):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["ADOPT", "Adan"])
def test_functional_first_steps_match_class(name):
    """The functional forms detect a param's first step from state_steps (the classes from state
    creation): three steps from zero state give the class's bits."""
    params, grads = problem(np.float64, [33], seed=8)
    mine, opt = run_steps(name, dict(lr=1e-2, weight_decay=0.1), params, grads, steps=3)
    p = params[0].copy()
    zeros = lambda: np.zeros_like(p)  # noqa: E731
    states, steps = [zeros() for _ in range(2 if name == "ADOPT" else 4)], [0]
    for k in range(3):
        if name == "ADOPT":
            pyoptk.functional.adopt([p], [grads[0][k]], [states[0]], [states[1]], steps, lr=1e-2, beta1=0.9,
                                    beta2=0.9999, eps=1e-6, weight_decay=0.1)
        else:
            pyoptk.functional.adan([p], [grads[0][k]], *[[s] for s in states], steps, lr=1e-2, beta1=0.98,
                                   beta2=0.92, beta3=0.99, eps=1e-8, weight_decay=0.1)
    assert steps == [3] and np.array_equal(p, mine[0])
