"""The per-step coefficients moved from Python into C++ (ops/<algo>.h, one place for each
algorithm): they must be the very bits the former Python code produced. The functions below are
that code, frozen as it was (pyoptk 0.1, before the move), and serve as the reference."""
import math
import struct

import numpy as np
import pytest

from pyoptk import _core
from pyoptk._kernels import Kernel


def f32(x):
    return float(np.float32(x))


# ----- the former Python coefficient functions, verbatim --------------------------------------
def adam(h, step):
    lr, (beta1, beta2), wd = h["lr"], h["betas"], h["weight_decay"]
    return {"neg_step_size": -(lr / (1 - beta1 ** step)), "one_minus_beta1": 1 - beta1,
            "beta2": beta2, "one_minus_beta2": 1 - beta2,
            "inv_bias_correction2_sqrt": 1 / (1 - beta2 ** step) ** 0.5, "eps": h["eps"],
            "weight_decay": wd, "decay": 1 - lr * wd}


def adamax(h, step):
    lr, (beta1, beta2) = h["lr"], h["betas"]
    return {"one_minus_beta1": 1 - beta1, "beta2": beta2, "eps": h["eps"], "weight_decay": h["weight_decay"],
            "neg_clr": -(lr / (1 - beta1 ** step))}


def adagrad(h, step):
    clr = h["lr"] / (1 + (step - 1) * h["lr_decay"])
    return {"neg_clr": -clr, "eps": h["eps"], "weight_decay": h["weight_decay"]}


def adadelta(h, step):
    return {"rho": h["rho"], "one_minus_rho": 1 - h["rho"], "eps": h["eps"], "weight_decay": h["weight_decay"],
            "neg_lr": -h["lr"]}


def rmsprop(h, step):
    return {"alpha": h["alpha"], "one_minus_alpha": 1 - h["alpha"], "eps": h["eps"],
            "weight_decay": h["weight_decay"], "momentum": h["momentum"], "neg_lr": -h["lr"]}


def rprop(h, step):
    (etaminus, etaplus), (step_size_min, step_size_max) = h["etas"], h["step_sizes"]
    return {"etaminus": etaminus, "etaplus": etaplus, "step_size_min": step_size_min,
            "step_size_max": step_size_max}


def sgd(h, step):
    return {"neg_lr": -h["lr"], "weight_decay": h["weight_decay"], "momentum": h["momentum"],
            "one_minus_dampening": 1 - h["dampening"]}


def radam(h, step):
    lr, (beta1, beta2), wd = h["lr"], h["betas"], h["weight_decay"]
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
    rect = 0.0
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
    return {"one_minus_beta1": 1 - beta1, "beta2": beta2, "one_minus_beta2": 1 - beta2,
            "lr_over_bias_correction1": lr / bias_correction1, "bias_correction2_sqrt": bias_correction2 ** 0.5,
            "rect": rect, "eps": h["eps"], "weight_decay": wd, "decay": 1 - lr * wd}


def sparse_adam(h, step):
    lr, (beta1, beta2), eps = h["lr"], h["betas"], h["eps"]
    step_size = lr * (1 - beta2 ** step) ** 0.5 / (1 - beta1 ** step)
    return {"neg_step_size": -step_size, "one_minus_beta1": 1 - beta1, "one_minus_beta2": 1 - beta2, "eps": eps}


def nadam_mu(h, step):
    return h["betas"][0] * (1.0 - 0.5 * (0.96 ** (step * h["momentum_decay"])))


def nadam_next_mu_product(h, mu_product, step):
    return f32(f32(mu_product) * f32(nadam_mu(h, step)))


def nadam(h, step, mu_product):
    lr, (beta1, beta2), wd = h["lr"], h["betas"], h["weight_decay"]
    mu, mu_next = nadam_mu(h, step), nadam_mu(h, step + 1)
    mu_product_next = mu_product * mu_next
    return {"one_minus_beta1": 1 - beta1, "beta2": beta2, "one_minus_beta2": 1 - beta2,
            "inv_bias_correction2": 1 / (1 - beta2 ** step), "eps": h["eps"], "weight_decay": wd, "decay": 1 - lr * wd,
            "grad_coeff": -lr * (1.0 - mu) / (1.0 - mu_product),
            "exp_avg_coeff": (-lr * mu_next) / (1.0 - mu_product_next)}


# The new optimizers' (pyoptk/optim/<name>.py as they were merged, before the move).
def lion(h, step):
    lr, (beta1, beta2) = h["lr"], h["betas"]
    return {"neg_lr": -lr, "decay": 1 - lr * h["weight_decay"], "one_minus_beta1": 1 - beta1,
            "one_minus_beta2": 1 - beta2}


def adan(h, step):
    lr, (beta1, beta2, beta3), wd = h["lr"], h["betas"], h["weight_decay"]
    return {"one_minus_beta1": 1 - beta1, "one_minus_beta2": 1 - beta2, "beta2": beta2, "beta3": beta3,
            "one_minus_beta3": 1 - beta3, "inv_bias_correction3_sqrt": 1 / (1 - beta3 ** step) ** 0.5,
            "eps": h["eps"], "exp_avg_coeff": -lr / (1 - beta1 ** step),
            "exp_avg_diff_coeff": -lr * beta2 / (1 - beta2 ** step), "decay": 1 - lr * wd, "prox": 1 + lr * wd}


def lamb(h, step):
    beta1, beta2 = h["betas"]
    return {"one_minus_beta1": 1 - beta1, "beta1": beta1, "one_minus_beta2": 1 - beta2, "beta2": beta2,
            "inv_bias_correction1": 1 / (1 - beta1 ** step), "inv_bias_correction2": 1 / (1 - beta2 ** step),
            "eps": h["eps"]}


def _adopt_clip(h, step):
    if h["clip_lambda"] is None or step < 2:
        return 0.0
    bound = h["clip_lambda"](step)
    return float(bound)


def adopt(h, step):
    lr, (beta1, beta2), wd = h["lr"], h["betas"], h["weight_decay"]
    return {"neg_lr": -lr, "one_minus_beta1": 1 - beta1, "beta2": beta2, "one_minus_beta2": 1 - beta2,
            "eps": h["eps"], "clip": _adopt_clip(h, step), "weight_decay": wd, "decay": 1 - lr * wd}


def _ademamix_alpha(h, step):
    alpha, t_alpha = h["alpha"], h["t_alpha"]
    return alpha if t_alpha is None else min(step * alpha / t_alpha, alpha)


def _ademamix_beta3(h, step):
    beta1, _, beta3 = h["betas"]
    t_beta3 = h["t_beta3"]
    if t_beta3 is None:
        return beta3
    a = step / t_beta3
    if beta3 == 0:
        return beta3
    if beta1 == 0:
        return min(beta3 ** (1 / a), beta3) if a > 0 else 0.0
    log_beta1, log_beta3 = math.log(beta1), math.log(beta3)
    return min(math.exp(log_beta1 * log_beta3 / ((1.0 - a) * log_beta3 + a * log_beta1)), beta3)


def ademamix(h, step):
    lr, (beta1, beta2, _), wd = h["lr"], h["betas"], h["weight_decay"]
    return {"one_minus_beta1": 1 - beta1, "beta2": beta2, "one_minus_beta2": 1 - beta2,
            "one_minus_beta3": 1 - _ademamix_beta3(h, step), "inv_bias_correction2_sqrt": 1 / (1 - beta2 ** step) ** 0.5,
            "eps": h["eps"], "fast_coeff": -lr / (1 - beta1 ** step), "slow_coeff": -lr * _ademamix_alpha(h, step),
            "decay": 1 - lr * wd}


def asgd(h, eta, mu):
    return {"decay": 1 - h["lambd"] * eta, "neg_eta": -eta, "mu": mu, "weight_decay": h["weight_decay"]}


def asgd_next_eta_mu(h, step):
    lr, lambd = h["lr"], h["lambd"]
    return f32(lr / ((1 + lambd * lr * step) ** h["alpha"])), f32(1 / max(1, step - h["t0"]))


def schedule_free_advance(h):
    k = h["k"]
    warmup = h["warmup_steps"]
    lr = h["lr"] * ((k + 1) / warmup if k < warmup else 1.0)
    lr_max = max(lr, h["lr_max"])
    weight = ((k + 1) ** h["r"]) * (lr_max ** h["weight_lr_power"])
    return dict(k=k + 1, scheduled_lr=lr, lr_max=lr_max, weight_sum=h["weight_sum"] + weight)


def schedule_free(h):
    weight = (h["k"] ** h["r"]) * (h["lr_max"] ** h["weight_lr_power"])
    ckp1 = weight / h["weight_sum"] if h["weight_sum"] != 0 else 0.0
    lr = h["scheduled_lr"]
    beta1 = h["betas"][0] if "betas" in h else h["momentum"]
    beta2 = h["betas"][1] if "betas" in h else 0.0
    return {"beta2": beta2, "one_minus_beta2": 1 - beta2, "inv_bias_correction2": 1 / (1 - beta2 ** h["k"]),
            "eps": h.get("eps", 0.0), "weight_decay": h["weight_decay"], "ckp1": ckp1,
            "y_coeff": lr * (beta1 * (1 - ckp1) - 1), "neg_lr": -lr}


# ----- hyper-parameter draws: torch's defaults, round values, and random ones ----------------
def draws(make, count=40, seed=0):
    rng = np.random.default_rng(seed)
    out = [make(None)]
    out += [make(rng) for _ in range(count)]
    return out


def u(rng, lo, hi, default):
    """A random double in [lo, hi) (log-uniform when lo > 0), or the default."""
    if rng is None:
        return default
    if lo > 0:
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def beta(rng, default):
    return default if rng is None else float(1 - math.exp(rng.uniform(math.log(1e-4), math.log(0.9))))


def adam_like(rng):
    return {"lr": u(rng, 1e-6, 1.0, 1e-3), "betas": (beta(rng, 0.9), beta(rng, 0.999)), "eps": u(rng, 1e-12, 1e-2, 1e-8),
            "weight_decay": u(rng, 1e-6, 0.5, 0.0 if rng is None else 0.01)}


SIMPLE = {
    "adam": (adam, adam_like),
    "adamax": (adamax, adam_like),
    "radam": (radam, adam_like),
    "adagrad": (adagrad, lambda r: {"lr": u(r, 1e-5, 1, 1e-2), "lr_decay": u(r, 1e-6, 1e-1, 0.0),
                                    "eps": u(r, 1e-12, 1e-2, 1e-10), "weight_decay": u(r, 1e-6, 1e-1, 0.0)}),
    "adadelta": (adadelta, lambda r: {"lr": u(r, 1e-3, 2, 1.0), "rho": beta(r, 0.9), "eps": u(r, 1e-9, 1e-3, 1e-6),
                                      "weight_decay": u(r, 1e-6, 1e-1, 0.0)}),
    "rmsprop": (rmsprop, lambda r: {"lr": u(r, 1e-5, 1, 1e-2), "alpha": beta(r, 0.99), "eps": u(r, 1e-10, 1e-3, 1e-8),
                                    "weight_decay": u(r, 1e-6, 1e-1, 0.0), "momentum": u(r, 0, 0.99, 0.0)}),
    "rprop": (rprop, lambda r: {"lr": 0.01, "etas": (u(r, 0.1, 0.9, 0.5), u(r, 1.01, 3, 1.2)),
                                "step_sizes": (u(r, 1e-8, 1e-4, 1e-6), u(r, 1, 100, 50))}),
    "sgd": (sgd, lambda r: {"lr": u(r, 1e-5, 1, 1e-3), "weight_decay": u(r, 1e-6, 1e-1, 0.0),
                            "momentum": u(r, 0, 0.99, 0.0), "dampening": u(r, 0, 0.5, 0.0)}),
    "lion": (lion, lambda r: {"lr": u(r, 1e-6, 1.0, 1e-4), "betas": (beta(r, 0.9), beta(r, 0.99)),
                              "weight_decay": u(r, 1e-6, 0.5, 0.0)}),
    "adan": (adan, lambda r: {"lr": u(r, 1e-6, 1.0, 1e-3), "betas": (beta(r, 0.98), beta(r, 0.92), beta(r, 0.99)),
                              "eps": u(r, 1e-12, 1e-2, 1e-8), "weight_decay": u(r, 1e-6, 0.5, 0.0)}),
    "ademamix": (ademamix, lambda r: {
        "lr": u(r, 1e-6, 1.0, 1e-3), "betas": (beta(r, 0.9), beta(r, 0.999), 0.9999 if r is None else u(r, 0.99, 0.99999, 0)),
        "alpha": u(r, 0.5, 10, 5.0), "eps": u(r, 1e-12, 1e-2, 1e-8), "weight_decay": u(r, 1e-6, 0.5, 0.0),
        # warmups: None (the default), or some steps (integers as the class takes them; floats too)
        "t_alpha": None if r is None or r.random() < 0.2 else [int(r.integers(1, 500)), u(r, 1, 1e5, 0)][int(r.integers(2))],
        "t_beta3": None if r is None or r.random() < 0.2 else [int(r.integers(1, 500)), u(r, 1, 1e5, 0)][int(r.integers(2))]}),
    "lamb": (lamb, adam_like),  # the direction pass
    "sparse_adam": (sparse_adam, lambda r: {"lr": u(r, 1e-6, 1.0, 1e-3), "betas": (beta(r, 0.9), beta(r, 0.999)),
                                            "eps": u(r, 1e-12, 1e-2, 1e-8)}),
}
STEPS = list(range(1, 400)) + [1000, 4095, 12345, 10 ** 5, 10 ** 6, 2 ** 31 + 7]


def bits(values):
    return [struct.pack("<d", float(v)) for v in values]


@pytest.mark.parametrize("name", sorted(SIMPLE))
def test_coefficients_are_the_former_python_bits(name):
    legacy, make = SIMPLE[name]
    kernel = Kernel(name)
    for h in draws(make):
        for step in STEPS:
            want = legacy(h, step)
            got = kernel.coeffs(h, step)
            assert list(got) == kernel.coeff_names
            assert bits(got.values()) == bits(want[n] for n in kernel.coeff_names), (h, step)


def test_nadam_coefficients_and_mu_product_are_the_former_python_bits():
    kernel = Kernel("nadam")
    for h in draws(lambda r: dict(adam_like(r), momentum_decay=u(r, 1e-4, 0.1, 4e-3))):
        mine = legacy = 1.0
        for step in STEPS[:300] + [5000]:
            legacy = nadam_next_mu_product(h, legacy, step)
            (mine,) = kernel.scalars("advance", h, step, mine)
            assert bits([mine]) == bits([legacy]), (h, step)
            got, want = kernel.coeffs(h, step, mine), nadam(h, step, legacy)
            assert bits(got.values()) == bits(want[n] for n in kernel.coeff_names), (h, step)


def test_asgd_coefficients_and_eta_mu_are_the_former_python_bits():
    kernel = Kernel("asgd")
    make = lambda r: {"lr": u(r, 1e-4, 1, 1e-2), "lambd": u(r, 1e-6, 1e-1, 1e-4), "alpha": u(r, 0.1, 1, 0.75),
                      "t0": 1e6 if r is None else float(r.integers(0, 50)), "weight_decay": u(r, 1e-6, 1e-1, 0.0)}
    for h in draws(make):
        assert kernel.scalars("init", h, 0) == (f32(h["lr"]), 1.0)
        eta, mu = f32(h["lr"]), 1.0
        for step in STEPS[:300] + [5000]:
            got, want = kernel.coeffs(h, step, eta, mu), asgd(h, eta, mu)
            assert bits(got.values()) == bits(want[n] for n in kernel.coeff_names), (h, step)
            new = kernel.scalars("finish", h, step, eta, mu)
            eta, mu = asgd_next_eta_mu(h, step)
            assert bits(new) == bits([eta, mu]), (h, step)


def test_schedule_free_coefficients_and_schedule_are_the_former_python_bits():
    """The schedule (warmup, lr_max, weight_sum) and coefficients of both flavours, from the
    group state the NumPy API keeps, against the former Python; lr changes midway (a scheduler)."""
    from pyoptk.optim.schedule_free import _advance_group, _coeffs

    def make(r):
        h = {"lr": u(r, 1e-4, 2.0, 0.0025), "weight_decay": u(r, 1e-6, 0.5, 0.0),
             "warmup_steps": 0 if r is None else [0, int(r.integers(1, 50)), u(r, 0.5, 80, 0)][int(r.integers(3))],
             "r": 0.0 if r is None else [0.0, 1, u(r, 0.01, 2, 0)][int(r.integers(3))],
             "weight_lr_power": 2.0 if r is None else [2, u(r, 0, 4, 0)][int(r.integers(2))],
             "k": 0, "lr_max": -1.0, "weight_sum": 0.0, "scheduled_lr": 0.0, "train_mode": True}
        if r is None or r.random() < 0.5:
            return dict(h, betas=(beta(r, 0.9), beta(r, 0.999)), eps=u(r, 1e-12, 1e-2, 1e-8))
        return dict(h, momentum=beta(r, 0.9))

    for h in draws(make):
        mine = legacy = h
        for step in range(1, 300):
            if step == 150:
                mine, legacy = dict(mine, lr=mine["lr"] / 3), dict(legacy, lr=legacy["lr"] / 3)
            legacy = dict(legacy, **schedule_free_advance(legacy))
            mine = dict(mine, **_advance_group(mine))
            for key in ("k", "scheduled_lr", "lr_max", "weight_sum"):
                assert bits([mine[key]]) == bits([legacy[key]]), (h, step, key)
            got, want = _coeffs(mine), schedule_free(legacy)
            assert bits(got.values()) == bits(want[n] for n in Kernel("schedule_free").coeff_names), (h, step)


def test_adopt_coefficients_are_the_former_python_bits():
    """The default clip (PowerClip(0.25), computed in C++) is the former ``step ** 0.25``; None
    clips nothing; any other function of the step is still called (the Python override)."""
    from pyoptk.optim.adopt import ALGORITHM, PowerClip, default_clip

    kernel = Kernel("adopt")
    schedules = [(default_clip, lambda t: t ** 0.25), (None, None), (PowerClip(0.5), lambda t: t ** 0.5),
                 (PowerClip(0), lambda t: t ** 0.0), (lambda t: 3.0 - 1 / t, lambda t: 3.0 - 1 / t)]
    for h in draws(adam_like):
        for mine, former in schedules:
            for step in STEPS:
                got = ALGORITHM.coeffs(dict(h, clip_lambda=mine), step)
                want = adopt(dict(h, clip_lambda=former), step)
                assert list(got) == kernel.coeff_names
                assert bits(got.values()) == bits(want[n] for n in kernel.coeff_names), (h, step, mine)
    assert float(default_clip) == 0.25 and default_clip(16) == 2.0
    with pytest.raises(ValueError, match="Invalid clip power"):
        PowerClip(-1)


def test_every_optimizer_op_with_python_coefficients_has_them_in_cpp():
    registry = _core.registry()
    for name in [*SIMPLE, "nadam", "asgd", "adopt", "schedule_free"]:
        assert registry[name]["hyper"], name
    assert registry["nadam"]["scalars"] == ["mu_product"]
    assert registry["schedule_free"]["scalars"] == ["lr_max", "weight_sum"]
    assert registry["asgd"]["scalars"] == ["eta", "mu"]
    assert registry["stream"]["hyper"] == []


def test_bad_coefficient_calls_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"adam: hyper has 2 values, expected 5 \(lr, beta1, beta2, eps, weight_decay\)"):
        _core.coeffs("adam", (1.0, 2.0), 1)
    with pytest.raises(ValueError, match="nadam: scalars has 0 values, expected 1"):
        _core.coeffs("nadam", (1e-3, 0.9, 0.999, 1e-8, 0.0, 4e-3), 1)
    with pytest.raises(ValueError, match="stream has no host-side coefficient function"):
        _core.coeffs("stream", (), 1)
    with pytest.raises(ValueError, match="unknown"):
        _core.coeffs("nope", (), 1)
    with pytest.raises(ValueError, match="phase must be"):
        _core.scalars("asgd", "later", (1e-2, 1e-4, 0.75, 1e6, 0.0), 1, (0.01, 1.0))
