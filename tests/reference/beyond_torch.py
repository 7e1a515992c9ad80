"""Plain NumPy references for Lion, LAMB, LARS, Adan, ADOPT, AdEMAMix and schedule-free SGD/AdamW,
written from the papers' update rules (see each class's docstring), one step at a time.

``run(name, kw, params, grads)`` returns the params after all steps. They run in float64 with
the textbook formulas (bias corrections as divisions, norms with np.linalg.norm), not the
kernels' folded coefficients, so they check those too. Lion is the exception: its sign() makes
float64 and float32 disagree wherever the interpolation is within an ulp of 0, so its
reference runs in the param dtype, with torch's lerp (one rounding, as the kernel's fma).
"""
from __future__ import annotations

import math

import numpy as np


def _lerp_exact(a, b, w, dtype):
    """torch's lerp in ``dtype`` as the kernels compute it: a + w (b - a) with one rounding of the
    fma (emulated in float64: the product of two float32 values is exact there)."""
    d = (b - a).astype(dtype)
    w = np.asarray(w, dtype)
    if abs(float(w)) < 0.5:
        return (w.astype(np.float64) * d.astype(np.float64) + a.astype(np.float64)).astype(dtype)
    return ((w.astype(np.float64) - 1) * d.astype(np.float64) + b.astype(np.float64)).astype(dtype)


def lion(p, gs, h):
    dtype = p.dtype
    m = np.zeros_like(p)
    b1, b2 = h["betas"]
    for g in gs:
        g = -g if h.get("maximize") else g
        p = (p * np.asarray(1 - h["lr"] * h["weight_decay"], dtype)).astype(dtype)
        c = _lerp_exact(m, g, 1 - b1, dtype)
        p = (p.astype(np.float64) - h["lr"] * np.sign(c).astype(np.float64)).astype(dtype) if dtype == np.float32 \
            else p - h["lr"] * np.sign(c)
        m = _lerp_exact(m, g, 1 - b2, dtype)
    return p


def adan(p, gs, h):
    b1, b2, b3 = h["betas"]
    lr, wd, eps = h["lr"], h["weight_decay"], h["eps"]
    m, n, v, prev = (np.zeros_like(p) for _ in range(4))
    for t, g in enumerate(gs, 1):
        g = -g if h.get("maximize") else g
        d = np.zeros_like(g) if t == 1 else g - prev
        m = b1 * m + (1 - b1) * g
        n = b2 * n + (1 - b2) * d
        u = g + b2 * d
        v = b3 * v + (1 - b3) * u * u
        update = (m / (1 - b1 ** t) + b2 * n / (1 - b2 ** t)) / (np.sqrt(v / (1 - b3 ** t)) + eps)
        if h.get("no_prox"):
            p = p * (1 - lr * wd) - lr * update
        else:
            p = (p - lr * update) / (1 + lr * wd)
        prev = g
    return p


def adopt(p, gs, h):
    b1, b2 = h["betas"]
    lr, wd, eps = h["lr"], h["weight_decay"], h["eps"]
    clip = h.get("clip_lambda", lambda s: s ** 0.25)
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(gs, 1):
        g = -g if h.get("maximize") else g
        if h.get("decouple"):
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        if t == 1:
            v = g * g
            continue
        ng = g / np.maximum(np.sqrt(v), eps)
        if clip is not None:
            ng = np.clip(ng, -clip(t), clip(t))
        m = b1 * m + (1 - b1) * ng
        p = p - lr * m
        v = b2 * v + (1 - b2) * g * g
    return p


def ademamix(p, gs, h):
    b1, b2, b3_final = h["betas"]
    lr, wd, eps, alpha_final = h["lr"], h["weight_decay"], h["eps"], h["alpha"]
    m1, m2, v = (np.zeros_like(p) for _ in range(3))
    for t, g in enumerate(gs, 1):
        g = -g if h.get("maximize") else g
        ta, tb = h.get("t_alpha"), h.get("t_beta3")
        alpha = alpha_final if ta is None else min(t * alpha_final / ta, alpha_final)
        if tb is None:
            b3 = b3_final
        else:  # the paper: 1/log(beta3(t)) linear from 1/log(beta1) to 1/log(beta3)
            a = t / tb
            b3 = min(math.exp(1 / ((1 - a) / math.log(b1) + a / math.log(b3_final))), b3_final)
        m1 = b1 * m1 + (1 - b1) * g
        m2 = b3 * m2 + (1 - b3) * g
        v = b2 * v + (1 - b2) * g * g
        update = (m1 / (1 - b1 ** t) + alpha * m2) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        p = p - lr * (update + wd * p)
    return p


def _trust(pn, un, coefficient, eps):
    return 1.0 if pn == 0 or un == 0 else coefficient * pn / (un + eps)


def lamb(p, gs, h):
    b1, b2 = h["betas"]
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(gs, 1):
        g = -g if h.get("maximize") else g
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        r = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + h["eps"]) + h["weight_decay"] * p
        p = p - h["lr"] * _trust(np.linalg.norm(p), np.linalg.norm(r), 1.0, 0.0) * r
    return p


def lars(p, gs, h):
    buf = np.zeros_like(p)
    mu = h["momentum"]
    for g in gs:
        u = g + h["weight_decay"] * p
        ratio = _trust(np.linalg.norm(p), np.linalg.norm(u), h["trust_coefficient"], h["eps"]) \
            if h.get("trust_ratio", True) else 1.0
        u = -h["lr"] * ratio * u
        buf = u + mu * buf
        p = p + (u + mu * buf if h.get("nesterov") else buf)
    return p


def schedule_free(p, gs, h, adam):
    """The paper's Algorithm 1 (and the package's reference classes), ending in eval mode: x."""
    beta1 = h["betas"][0] if adam else h["momentum"]
    lr0, wd, warmup, r, power = h["lr"], h["weight_decay"], h["warmup_steps"], h["r"], h["weight_lr_power"]
    z, y, v = p.copy(), p.copy(), np.zeros_like(p)
    lr_max, weight_sum = -1.0, 0.0
    for k, g in enumerate(gs):
        lr = lr0 * ((k + 1) / warmup if k < warmup else 1.0)
        lr_max = max(lr, lr_max)
        weight = (k + 1) ** r * lr_max ** power
        weight_sum += weight
        c = weight / weight_sum if weight_sum else 0.0
        if adam:
            b2 = h["betas"][1]
            v = b2 * v + (1 - b2) * g * g
            g = g / (np.sqrt(v / (1 - b2 ** (k + 1))) + h["eps"]) + wd * y
        else:
            g = g + wd * y
        # x_k from y_k and z_k, then the paper's updates of z and x, and y_{k+1} from them.
        x = (y - (1 - beta1) * z) / beta1
        z = z - lr * g
        x = (1 - c) * x + c * z
        y = (1 - beta1) * z + beta1 * x
    return (y - (1 - beta1) * z) / beta1


NAMES = ("Lion", "Adan", "ADOPT", "AdEMAMix", "LAMB", "LARS", "ScheduleFreeSGD", "ScheduleFreeAdamW")


def run(name, kw, p0, grads):
    """The reference for ``getattr(pyoptk, name)(params, **kw)`` after ``len(grads)`` steps."""
    import pyoptk

    h = dict(pyoptk.__dict__[name]([np.zeros(1)], **kw).defaults)
    if name == "Lion":
        return lion(p0.copy(), grads, h)
    p = p0.astype(np.float64)
    gs = [g.astype(np.float64) for g in grads]
    if name in ("ScheduleFreeSGD", "ScheduleFreeAdamW"):
        return schedule_free(p, gs, h, name.endswith("AdamW"))
    return {"Adan": adan, "ADOPT": adopt, "AdEMAMix": ademamix, "LAMB": lamb, "LARS": lars}[name](p, gs, h)
