"""Plain-NumPy references, written from torch 2.13's update rules (shared/ALGORITHMS.md).

They compute in the param's dtype with every coefficient rounded to it, like the kernels, so the
only differences are the kernels' explicit fma (lerp, add-with-alpha): about one rounding per
step. Each ``*_step`` updates ``p`` and the ``state`` dict in place for one param.
"""
import math

import numpy as np


def assert_close(actual, expected, what=""):
    """|actual - expected| <= 16 ulp of the array's largest magnitude.

    The reference rounds like the kernel except where the kernel fuses (lerp, add with alpha): one
    rounding of a product per op per step. When large terms cancel, that rounding is an ulp of the
    large terms, not of the small result, so the bound scales with the array's magnitude
    (measured: <= 2 ulp in float32 and <= 8 ulp in float64 over 8 steps).
    """
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    if actual.size:
        scale = max(float(np.abs(expected).max()), np.finfo(actual.dtype).tiny)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=16 * np.finfo(actual.dtype).eps * scale, err_msg=what)


def _lerp(a, b, w, dt):
    w = dt(w)
    return a + w * (b - a) if abs(w) < 0.5 else b - (b - a) * (dt(1) - w)


def sgd_step(p, g, state, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    dt = p.dtype.type
    g = -g if maximize else g
    if weight_decay != 0:
        g = g + dt(weight_decay) * p
    if momentum != 0:
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = g.copy()
        else:
            b = state["momentum_buffer"]
            state["momentum_buffer"] = b * dt(momentum) + dt(1 - dampening) * g
        b = state["momentum_buffer"]
        g = g + dt(momentum) * b if nesterov else b
    p[...] = p + dt(-lr) * g


def adam_step(p, g, state, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
              maximize=False, decoupled_weight_decay=False):
    dt = p.dtype.type
    beta1, beta2 = betas
    if "step" not in state:
        state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        if amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(p)
    state["step"] += 1
    t = state["step"]
    g = -g if maximize else g
    if weight_decay != 0:
        if decoupled_weight_decay:
            p[...] = p * dt(1 - lr * weight_decay)
        else:
            g = g + dt(weight_decay) * p
    m = state["exp_avg"] = _lerp(state["exp_avg"], g, 1 - beta1, dt)
    v = state["exp_avg_sq"] = state["exp_avg_sq"] * dt(beta2) + dt(1 - beta2) * g * g
    if amsgrad:
        v = state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], v)
    denom = np.sqrt(v) * dt(1 / math.sqrt(1 - beta2 ** t)) + dt(eps)  # torch divides; same math
    p[...] = p + dt(-(lr / (1 - beta1 ** t))) * m / denom


def adamw_step(p, g, state, *, weight_decay=1e-2, **kw):
    adam_step(p, g, state, weight_decay=weight_decay, decoupled_weight_decay=True, **kw)


STEPS = {"SGD": sgd_step, "Adam": adam_step, "AdamW": adamw_step}
