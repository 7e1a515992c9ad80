"""Plain NumPy references for the algorithms of tests/test_torch_optim_algorithms.py, written from the update
rules of torch 2.13 (docs/ALGORITHMS.md), one step at a time, in float64.

Each ``step_<name>(p, g, state, h)`` updates the float64 array ``p`` and the ``state`` dict in place
(arrays are created on the first step, scalar states kept as torch keeps them: float32-rounded).
They use the textbook formulas, not the kernels' coefficient tables, so they check those too.
"""
from __future__ import annotations

import numpy as np


def _f32(x: float) -> float:
    return float(np.float32(x))


def _lerp(a, b, w):
    return a + w * (b - a)


def _grad(p, g, h, l2=True):
    g = -g if h.get("maximize", False) else g
    if l2 and h.get("weight_decay", 0) != 0:
        g = g + h["weight_decay"] * p
    return g


def _adam_wd(p, g, h):
    """Adam-style weight decay: L2 into g, or decoupled p *= 1 - lr wd."""
    if h.get("weight_decay", 0) != 0 and h.get("decoupled_weight_decay", False):
        p *= 1 - h["lr"] * h["weight_decay"]
        return _grad(p, g, h, l2=False)
    return _grad(p, g, h)


def _zeros(state, p, *names):
    for name in names:
        state.setdefault(name, np.zeros_like(p))


def step_rmsprop(p, g, state, h):
    state["step"] = state.get("step", 0) + 1
    g = _grad(p, g, h)
    _zeros(state, p, "square_avg")
    alpha = h["alpha"]
    a = state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
    if h["centered"]:
        _zeros(state, p, "grad_avg")
        ga = state["grad_avg"] = _lerp(state["grad_avg"], g, 1 - alpha)
        avg = np.sqrt(a - ga * ga) + h["eps"]
    else:
        avg = np.sqrt(a) + h["eps"]
    if h["momentum"] > 0:
        _zeros(state, p, "momentum_buffer")
        b = state["momentum_buffer"] = h["momentum"] * state["momentum_buffer"] + g / avg
        p -= h["lr"] * b
    else:
        p -= h["lr"] * g / avg


def step_adagrad(p, g, state, h):
    state.setdefault("sum", np.full_like(p, h["initial_accumulator_value"]))
    t = state["step"] = state.get("step", 0) + 1
    g = _grad(p, g, h)
    clr = h["lr"] / (1 + (t - 1) * h["lr_decay"])
    s = state["sum"] = state["sum"] + g * g
    p -= clr * g / (np.sqrt(s) + h["eps"])


def step_adamax(p, g, state, h):
    t = state["step"] = state.get("step", 0) + 1
    g = _grad(p, g, h)
    beta1, beta2 = h["betas"]
    _zeros(state, p, "exp_avg", "exp_inf")
    m = state["exp_avg"] = _lerp(state["exp_avg"], g, 1 - beta1)
    u = state["exp_inf"] = np.maximum(beta2 * state["exp_inf"], np.abs(g) + h["eps"])
    p -= h["lr"] / (1 - beta1 ** t) * m / u


def _nadam_mu(h, t):
    return h["betas"][0] * (1 - 0.5 * 0.96 ** (t * h["momentum_decay"]))


def step_nadam(p, g, state, h):
    t = state["step"] = state.get("step", 0) + 1
    g = _adam_wd(p, g, h)
    beta1, beta2 = h["betas"]
    mu, mu_next = _nadam_mu(h, t), _nadam_mu(h, t + 1)
    # torch's 0-d float32 tensor: mu_product *= mu multiplies two float32 numbers.
    prod = state["mu_product"] = _f32(np.float32(state.get("mu_product", 1.0)) * np.float32(mu))
    _zeros(state, p, "exp_avg", "exp_avg_sq")
    m = state["exp_avg"] = _lerp(state["exp_avg"], g, 1 - beta1)
    v = state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    denom = np.sqrt(v / (1 - beta2 ** t)) + h["eps"]
    p -= h["lr"] * (1 - mu) / (1 - prod) * g / denom
    p -= h["lr"] * mu_next / (1 - prod * mu_next) * m / denom


def step_radam(p, g, state, h):
    t = state["step"] = state.get("step", 0) + 1
    g = _adam_wd(p, g, h)
    beta1, beta2 = h["betas"]
    _zeros(state, p, "exp_avg", "exp_avg_sq")
    m = state["exp_avg"] = _lerp(state["exp_avg"], g, 1 - beta1)
    v = state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2 ** t / bc2
    if rho_t > 5:
        r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        p -= h["lr"] * (m / bc1) * r * np.sqrt(bc2) / (np.sqrt(v) + h["eps"])
    else:
        p -= h["lr"] * m / bc1


def step_adadelta(p, g, state, h):
    state["step"] = state.get("step", 0) + 1
    g = _grad(p, g, h)
    rho, eps = h["rho"], h["eps"]
    _zeros(state, p, "square_avg", "acc_delta")
    a = state["square_avg"] = rho * state["square_avg"] + (1 - rho) * g * g
    delta = np.sqrt(state["acc_delta"] + eps) / np.sqrt(a + eps) * g
    state["acc_delta"] = rho * state["acc_delta"] + (1 - rho) * delta * delta
    p -= h["lr"] * delta


def step_rprop(p, g, state, h, dtype=np.float64):
    """``dtype``: the array dtype the product g * prev is formed in (its sign decides the branch;
    an underflow to 0 in float32 counts as 0, as in torch)."""
    state["step"] = state.get("step", 0) + 1
    g = -g if h["maximize"] else g
    state.setdefault("prev", np.zeros_like(p))
    state.setdefault("step_size", np.full_like(p, float(np.asarray(h["lr"], dtype))))
    (etaminus, etaplus), (lo, hi) = h["etas"], h["step_sizes"]
    s = np.sign(g.astype(dtype) * state["prev"].astype(dtype))
    factor = np.where(s > 0, etaplus, np.where(s < 0, etaminus, 1.0))
    state["step_size"] = np.clip(state["step_size"] * factor, lo, hi)
    g = np.where(s < 0, 0.0, g)
    p -= np.sign(g) * state["step_size"]
    state["prev"] = g


def step_asgd(p, g, state, h):
    t = state["step"] = state.get("step", 0) + 1
    eta = state.setdefault("eta", _f32(h["lr"]))
    mu = state.setdefault("mu", 1.0)
    state.setdefault("ax", np.zeros_like(p))
    g = _grad(p, g, h)
    p *= 1 - h["lambd"] * eta
    p -= eta * g
    if mu != 1:
        state["ax"] = state["ax"] + mu * (p - state["ax"])
    else:
        state["ax"] = p.copy()
    state["eta"] = _f32(h["lr"] / (1 + h["lambd"] * h["lr"] * t) ** h["alpha"])
    state["mu"] = _f32(1 / max(1, t - h["t0"]))


STEPS = {
    "RMSprop": step_rmsprop, "Adagrad": step_adagrad, "Adamax": step_adamax, "NAdam": step_nadam,
    "RAdam": step_radam, "Adadelta": step_adadelta, "Rprop": step_rprop, "ASGD": step_asgd,
}
