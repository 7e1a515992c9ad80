"""LR schedulers: closed forms (ALGORITHMS.md "Schedules"), torch 2.13 parity step by step,
state_dict resume, composition, argument checks; and the Keras-style schedules."""
from __future__ import annotations

import copy
import math
import pickle
import types

import numpy as np
import pytest

import pyoptk
from pyoptk import lr_scheduler as L
from pyoptk import schedules as S
from pyoptk.swa_utils import SWALR

LRS = (0.1, 0.02)  # one lr per param group
STEPS = 300


def close(a, b, scale=1.0):
    return abs(a - b) <= 1e-12 * max(abs(a), abs(b), scale * 1e-3)


# ----- helpers -----------------------------------------------------------------------------------
def make_opt(kind="sgd", lrs=LRS):
    groups = [{"params": [np.zeros(3)], "lr": lr} for lr in lrs]
    if kind == "sgd":
        return pyoptk.SGD(groups, lr=0.1, momentum=0.9)
    return pyoptk.Adam(groups, lr=0.1, betas=(0.9, 0.999))


def prime(opt):
    """One optimizer step before the first scheduler step (else the order warning fires)."""
    opt.step([np.zeros_like(p) for g in opt.param_groups for p in g["params"]])


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


# Each case builds a scheduler from a namespace M of scheduler classes (pyoptk's or torch's: same
# names and arguments) and an optimizer. The optimizer kind says what momentum is cycled.
CASES = {
    "LambdaLR": ("sgd", lambda M, o: M.LambdaLR(o, lambda e: 0.97 ** e)),
    "LambdaLR-per-group": ("sgd", lambda M, o: M.LambdaLR(o, [lambda e: 1 / (1 + e), lambda e: 0.99 ** e])),
    "MultiplicativeLR": ("sgd", lambda M, o: M.MultiplicativeLR(o, lambda e: 0.98 if e % 3 else 1.01)),
    "StepLR": ("sgd", lambda M, o: M.StepLR(o, step_size=7, gamma=0.7)),
    "MultiStepLR": ("sgd", lambda M, o: M.MultiStepLR(o, milestones=[10, 50, 50, 200], gamma=0.3)),
    "ConstantLR": ("sgd", lambda M, o: M.ConstantLR(o, factor=0.25, total_iters=40)),
    "LinearLR": ("sgd", lambda M, o: M.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=120)),
    "ExponentialLR": ("sgd", lambda M, o: M.ExponentialLR(o, gamma=0.99)),
    "PolynomialLR": ("sgd", lambda M, o: M.PolynomialLR(o, total_iters=150, power=2.0)),
    "CosineAnnealingLR": ("sgd", lambda M, o: M.CosineAnnealingLR(o, T_max=37, eta_min=0.001)),
    "CosineAnnealingWarmRestarts": ("sgd", lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2,
                                                                                      eta_min=1e-4)),
    "CyclicLR-triangular": ("sgd", lambda M, o: M.CyclicLR(o, base_lr=0.01, max_lr=[0.1, 0.05], step_size_up=13,
                                                           step_size_down=7)),
    "CyclicLR-triangular2-adam": ("adam", lambda M, o: M.CyclicLR(o, base_lr=[0.01, 0.002], max_lr=0.1,
                                                                  step_size_up=11, mode="triangular2",
                                                                  base_momentum=0.8, max_momentum=0.95)),
    "CyclicLR-exp_range": ("sgd", lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=9, mode="exp_range",
                                                          gamma=0.995)),
    "CyclicLR-scale_fn": ("adam", lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=5, step_size_down=15,
                                                          scale_fn=lambda x: 1 / (1 + 0.01 * x),
                                                          scale_mode="iterations")),
    "CyclicLR-no-momentum": ("adam", lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=20, cycle_momentum=False)),
    "OneCycleLR-cos": ("sgd", lambda M, o: M.OneCycleLR(o, max_lr=[1.0, 0.3], total_steps=STEPS + 1)),
    "OneCycleLR-linear-adam": ("adam", lambda M, o: M.OneCycleLR(o, max_lr=0.5, epochs=7, steps_per_epoch=43,
                                                                 anneal_strategy="linear", pct_start=0.25)),
    "OneCycleLR-three_phase": ("sgd", lambda M, o: M.OneCycleLR(o, 0.8, total_steps=STEPS, three_phase=True,
                                                                div_factor=10.0, final_div_factor=100.0)),
    "SequentialLR": ("sgd", lambda M, o: M.SequentialLR(
        o, [M.LinearLR(o, start_factor=0.2, total_iters=20), M.ExponentialLR(o, gamma=0.98),
            M.CosineAnnealingLR(o, T_max=50)], milestones=[20, 100])),
    "ChainedScheduler": ("sgd", lambda M, o: M.ChainedScheduler(
        [M.ConstantLR(o, factor=0.5, total_iters=30), M.ExponentialLR(o, gamma=0.99),
         M.CosineAnnealingLR(o, T_max=80, eta_min=0.0)])),
    "SWALR-cos": ("sgd", lambda M, o: M.SWALR(o, swa_lr=0.05, anneal_epochs=25)),
    "SWALR-linear": ("sgd", lambda M, o: M.SWALR(o, swa_lr=[0.01, 0.2], anneal_epochs=40, anneal_strategy="linear")),
    "SWALR-now": ("sgd", lambda M, o: M.SWALR(o, swa_lr=0.05, anneal_epochs=0)),
}
CYCLING = {name for name in CASES if ("Cyclic" in name or "OneCycle" in name) and "no-momentum" not in name}

OURS = types.SimpleNamespace(**{n: getattr(L, n) for n in L.__all__}, SWALR=SWALR)


def run(scheduler, opt, steps):
    """lrs (and momenta) per step, the construction step included."""
    out = [(list(scheduler.get_last_lr()), momenta(opt))]
    for _ in range(steps):
        scheduler.step()
        out.append((list(scheduler.get_last_lr()), momenta(opt)))
    return out


# ----- torch parity ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_pair(torch, kind):
    groups = [{"params": [torch.zeros(3, requires_grad=True)], "lr": lr} for lr in LRS]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    return torch.optim.Adam(groups, lr=0.1, betas=(0.9, 0.999))


def torch_namespace(torch):
    from torch.optim import lr_scheduler, swa_utils
    return types.SimpleNamespace(**{n: getattr(lr_scheduler, n) for n in L.__all__}, SWALR=swa_utils.SWALR)


@pytest.mark.parametrize("name", CASES)
def test_matches_torch(torch, name):
    kind, build = CASES[name]
    topt = torch_pair(torch, kind)
    theirs = build(torch_namespace(torch), topt)
    topt.step()
    opt = make_opt(kind)
    ours = build(OURS, opt)
    prime(opt)
    expected, got = run(theirs, topt, STEPS), run(ours, opt, STEPS)
    for e, ((tl, tm), (ol, om)) in enumerate(zip(expected, got)):
        assert all(close(a, b) for a, b in zip(tl, ol)), (name, e, tl, ol)
        if name in CYCLING:
            assert all(close(a, b) for a, b in zip(tm, om)), (name, e, tm, om)
    # what the optimizer will use is what the scheduler reports
    assert [g["lr"] for g in opt.param_groups] == got[-1][0]
    assert getattr(ours, "last_epoch", None) == getattr(theirs, "last_epoch", None)


def test_two_schedulers_on_one_optimizer_match_torch(torch):
    def both(M, o):
        return [M.StepLR(o, step_size=10, gamma=0.5), M.CosineAnnealingLR(o, T_max=45, eta_min=0.001),
                M.MultiplicativeLR(o, lambda e: 0.999)]
    topt, opt = torch_pair(torch, "sgd"), make_opt("sgd")
    theirs, ours = both(torch_namespace(torch), topt), both(OURS, opt)
    topt.step()
    prime(opt)
    for e in range(STEPS):
        for s in theirs + ours:
            s.step()
        tl, ol = [g["lr"] for g in topt.param_groups], [g["lr"] for g in opt.param_groups]
        assert all(close(a, b) for a, b in zip(tl, ol)), (e, tl, ol)


@pytest.mark.parametrize("mode,threshold_mode,threshold", [("min", "rel", 1e-2), ("min", "abs", 0.05),
                                                           ("max", "rel", 1e-3), ("max", "abs", 0.0)])
def test_reduce_on_plateau_matches_torch(torch, mode, threshold_mode, threshold):
    rng = np.random.default_rng(0)
    # a noisy staircase: stretches of progress separated by plateaus
    metrics = np.repeat(rng.uniform(0, 1, 40).cumsum(), 6)[::-1 if mode == "min" else 1] + rng.normal(0, 0.03, 240)
    kw = dict(mode=mode, factor=0.5, patience=3, threshold=threshold, threshold_mode=threshold_mode, cooldown=2,
              min_lr=[1e-3, 5e-4], eps=1e-6)
    topt, opt = torch_pair(torch, "sgd"), make_opt("sgd")
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    ours = L.ReduceLROnPlateau(opt, **kw)
    reductions = 0
    for m in metrics:
        before = ours.get_last_lr()
        theirs.step(float(m))
        ours.step(m)
        reductions += ours.get_last_lr() != before
        assert ours.get_last_lr() == theirs.get_last_lr() == [g["lr"] for g in opt.param_groups]
        assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter) == \
            (theirs.best, theirs.num_bad_epochs, theirs.cooldown_counter)
    assert reductions >= 2 and ours.get_last_lr()[1] >= 5e-4


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "CyclicLR-triangular2-adam", "OneCycleLR-cos",
                                  "SequentialLR", "LambdaLR"])
def test_loads_torch_state_dict(torch, name):
    """A torch scheduler's checkpoint (and its optimizer's lrs) resumes here and continues as torch."""
    kind, build = CASES[name]
    topt = torch_pair(torch, kind)
    theirs = build(torch_namespace(torch), topt)
    topt.step()
    for _ in range(57):
        theirs.step()
    opt = make_opt(kind)
    ours = build(OURS, opt)
    for g, tg in zip(opt.param_groups, topt.param_groups):
        g.update({k: v for k, v in tg.items() if k not in ("params", "foreach", "fused", "differentiable",
                                                          "capturable", "maximize", "decoupled_weight_decay")})
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))
    prime(opt)
    expected, got = run(theirs, topt, 100), run(ours, opt, 100)
    for (tl, tm), (ol, om) in zip(expected, got):
        assert all(close(a, b) for a, b in zip(tl + tm, ol + om))


# ----- closed forms (ALGORITHMS.md) --------------------------------------------------------------
def cyclic_closed(base, hi, up, down, e, scale):
    total = up + down
    cycle = math.floor(1 + e / total)
    x = 1 + e / total - cycle
    r = up / total
    sf = x / r if x <= r else (x - 1) / (r - 1)
    return sf, base + (hi - base) * sf * scale(cycle, e)


def swa_alpha(t, strategy):
    return (1 - math.cos(math.pi * t)) / 2 if strategy == "cos" else t


CLOSED = {
    "LambdaLR": lambda b, e: b * 0.97 ** e,
    "StepLR": lambda b, e: b * 0.7 ** (e // 7),
    "MultiStepLR": lambda b, e: b * 0.3 ** sum(m <= e for m in [10, 50, 50, 200]),
    "ConstantLR": lambda b, e: b * (0.25 if e < 40 else 1),
    "LinearLR": lambda b, e: b * (0.1 + 0.8 * min(120, e) / 120),
    "ExponentialLR": lambda b, e: b * 0.99 ** e,
    "PolynomialLR": lambda b, e: b * (1 - min(150, e) / 150) ** 2.0,
    "CosineAnnealingLR": lambda b, e: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * e / 37)) / 2,
    "SWALR-cos": lambda b, e: 0.05 * swa_alpha(min(1, e / 25), "cos") + b * (1 - swa_alpha(min(1, e / 25), "cos")),
}


def warm_restarts_closed(b, e):
    t_i, t = 10, e
    while t >= t_i:
        t -= t_i
        t_i *= 2
    return 1e-4 + (b - 1e-4) * (1 + math.cos(math.pi * t / t_i)) / 2


CLOSED["CosineAnnealingWarmRestarts"] = warm_restarts_closed


@pytest.mark.parametrize("name", CLOSED)
def test_closed_form(name):
    kind, build = CASES[name]
    opt = make_opt(kind)
    sched = build(OURS, opt)
    sched = sched
    prime(opt)
    got = run(sched, opt, STEPS)
    for e in [0, 1, 2, 6, 7, 10, 36, 37, 38, 40, 50, 74, 119, 120, 121, 150, 151, 200, 299, 300]:
        want = [CLOSED[name](b, e) for b in LRS]
        assert all(close(a, w, b) for a, w, b in zip(got[e][0], want, LRS)), (name, e, got[e][0], want)


def test_multiplicative_closed_form():
    opt = make_opt()
    sched = L.MultiplicativeLR(opt, lambda e: 1 - 1 / (e + 10))
    prime(opt)
    got = run(sched, opt, 50)
    for e in range(51):
        want = [b * math.prod(1 - 1 / (k + 10) for k in range(1, e + 1)) for b in LRS]
        assert all(close(a, w) for a, w in zip(got[e][0], want))


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_closed_form(mode):
    scale = {"triangular": lambda c, e: 1.0, "triangular2": lambda c, e: 1 / 2 ** (c - 1),
             "exp_range": lambda c, e: 0.99 ** e}[mode]
    opt = make_opt("sgd")
    sched = L.CyclicLR(opt, base_lr=[0.01, 0.001], max_lr=[0.1, 0.05], step_size_up=6, step_size_down=4,
                         mode=mode, gamma=0.99, base_momentum=0.8, max_momentum=0.9)
    prime(opt)
    got = run(sched, opt, 100)
    for e in range(101):
        for g, (lo, hi) in enumerate([(0.01, 0.1), (0.001, 0.05)]):
            sf, lr = cyclic_closed(lo, hi, 6, 4, e, scale)
            assert close(got[e][0][g], lr)
            assert close(got[e][1][g], 0.9 - 0.1 * sf * scale(math.floor(1 + e / 10), e))
    if mode != "exp_range":
        assert got[6][0] == pytest.approx([0.1, 0.05], rel=1e-12)  # the top of the first cycle


@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_landmarks(three_phase):
    n, pct = 200, 0.3
    opt = make_opt("adam")
    sched = L.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=n, pct_start=pct, three_phase=three_phase)
    prime(opt)
    got = run(sched, opt, n)
    peak = round(pct * n) - 1
    for g, hi in enumerate([1.0, 0.5]):
        assert close(got[0][0][g], hi / 25) and close(got[0][1][g], 0.95)
        assert close(got[peak][0][g], hi) and close(got[peak][1][g], 0.85)
        assert close(got[n - 1][0][g], hi / 25 / 1e4)
        assert close(got[n - 1][1][g], 0.95)
        if three_phase:
            assert close(got[2 * peak][0][g], hi / 25)
        else:  # cos anneal halfway down
            mid = (peak + n - 1) / 2
            if mid.is_integer():
                assert close(got[int(mid)][0][g], hi / 25 / 1e4 + (hi - hi / 25 / 1e4) / 2)
    opt = make_opt()
    sched = L.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    prime(opt)
    run(sched, opt, 10)
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        sched.step()


def test_swalr_closed_form_and_immediate():
    opt = make_opt()
    sched = SWALR(opt, swa_lr=[0.01, 0.2], anneal_epochs=40, anneal_strategy="linear")
    prime(opt)
    got = run(sched, opt, 60)
    for e in range(61):
        t = min(1, e / 40)
        assert all(close(a, s * t + b * (1 - t)) for a, s, b in zip(got[e][0], [0.01, 0.2], LRS))
    opt = make_opt()
    assert SWALR(opt, swa_lr=0.05, anneal_epochs=0).get_last_lr() == [0.05, 0.05]


def test_cosine_warm_restarts_fractional_epochs():
    opt = make_opt()
    s = L.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=2, eta_min=0.0)
    for epoch in np.arange(0, 20, 0.25):  # no deprecation warning here, as in torch
        s.step(float(epoch))
        t_i, t = 4, float(epoch)
        while t >= t_i:
            t -= t_i
            t_i *= 2
        want = [b * (1 + math.cos(math.pi * t / t_i)) / 2 for b in LRS]
        assert all(close(a, w) for a, w in zip(s.get_last_lr(), want)), (epoch, s.get_last_lr(), want)
        assert s.last_epoch == math.floor(epoch)


def test_step_with_epoch_uses_closed_form():
    opt = make_opt()
    s = L.StepLR(opt, step_size=3, gamma=0.5)
    prime(opt)
    with pytest.warns(UserWarning, match="deprecated"):
        s.step(7)
    assert s.get_last_lr() == [b * 0.25 for b in LRS] and s.last_epoch == 7


# ----- resume, composition, bookkeeping ----------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_state_dict_resume(name):
    kind, build = CASES[name]
    opt = make_opt(kind)
    sched = build(OURS, opt)
    prime(opt)
    run(sched, opt, 83)
    saved_sched = pickle.loads(pickle.dumps(sched.state_dict()))  # checkpoints must pickle
    saved_opt = copy.deepcopy(opt.state_dict())
    reference = run(sched, opt, 150)

    opt2 = make_opt(kind)
    sched2 = build(OURS, opt2)  # a fresh run: different state until loaded
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    prime(opt2)
    assert run(sched2, opt2, 150) == reference


def test_initial_lr_and_resume_with_last_epoch():
    opt = make_opt()
    s = L.ExponentialLR(opt, gamma=0.5)
    assert [g["initial_lr"] for g in opt.param_groups] == list(LRS) and s.last_epoch == 0
    prime(opt)
    for _ in range(3):
        s.step()
    s2 = L.ExponentialLR(opt, gamma=0.5, last_epoch=s.last_epoch)
    assert s2.base_lrs == list(LRS) and s2.last_epoch == 4
    with pytest.raises(KeyError, match="initial_lr"):
        L.StepLR(make_opt(), step_size=2, last_epoch=5)


def test_training_loop_uses_the_scheduled_lr():
    p = np.ones(4)
    opt = pyoptk.SGD([p], lr=1.0)
    s = L.StepLR(opt, step_size=1, gamma=0.5)
    for expected in [1.0, 0.5, 0.25]:
        before = p.copy()
        opt.step([np.ones(4)])
        s.step()
        np.testing.assert_allclose(before - p, expected)


def test_order_and_get_lr_warnings():
    opt = make_opt()
    s = L.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        s.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        s.get_lr()
    copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))  # the step tracker keeps optimizers copyable


def test_reduce_on_plateau_min_lr_and_resume():
    opt = make_opt()
    s = L.ReduceLROnPlateau(opt, patience=0, factor=0.1, min_lr=[0.05, 0.0])
    for _ in range(3):
        s.step(1.0)
    assert s.get_last_lr() == pytest.approx([0.05, 0.02 * 1e-2], rel=1e-12)  # reduced on steps 2 and 3
    s2 = L.ReduceLROnPlateau(make_opt(), patience=0)
    s2.load_state_dict(pickle.loads(pickle.dumps(s.state_dict())))
    assert (s2.best, s2.min_lrs, s2.last_epoch) == (1.0, [0.05, 0.0], 3)


# ----- bad arguments -----------------------------------------------------------------------------
BAD = [
    (TypeError, lambda o: L.StepLR(object(), step_size=1)),
    (ValueError, lambda o: L.LambdaLR(o, [lambda e: 1.0])),
    (TypeError, lambda o: L.MultiplicativeLR(o, 0.9)),
    (ValueError, lambda o: L.ConstantLR(o, factor=1.5)),
    (ValueError, lambda o: L.LinearLR(o, start_factor=0)),
    (ValueError, lambda o: L.LinearLR(o, end_factor=1.1)),
    (ValueError, lambda o: L.SequentialLR(o, [], milestones=[])),
    (ValueError, lambda o: L.SequentialLR(o, [L.StepLR(o, 2), L.StepLR(o, 3)], milestones=[])),
    (ValueError, lambda o: L.SequentialLR(o, [L.StepLR(make_opt(), 2)], milestones=[])),
    (ValueError, lambda o: L.ChainedScheduler([L.ReduceLROnPlateau(o)])),
    (ValueError, lambda o: L.ChainedScheduler([])),
    (ValueError, lambda o: L.ReduceLROnPlateau(o, factor=1.0)),
    (ValueError, lambda o: L.ReduceLROnPlateau(o, mode="up")),
    (ValueError, lambda o: L.ReduceLROnPlateau(o, threshold_mode="pct")),
    (ValueError, lambda o: L.ReduceLROnPlateau(o, min_lr=[0.0])),
    (ValueError, lambda o: L.CyclicLR(o, 0.01, 0.1, mode="sawtooth")),
    (ValueError, lambda o: L.CyclicLR(o, [0.01], 0.1)),
    (ValueError, lambda o: L.CyclicLR(_NoMomentum([np.zeros(2)]), 0.01, 0.1)),
    (ValueError, lambda o: L.CosineAnnealingWarmRestarts(o, T_0=0)),
    (ValueError, lambda o: L.CosineAnnealingWarmRestarts(o, T_0=2.5)),
    (ValueError, lambda o: L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=0)),
    (ValueError, lambda o: L.CosineAnnealingWarmRestarts(o, T_0=5, eta_min="0")),
    (ValueError, lambda o: L.OneCycleLR(o, 1.0)),
    (ValueError, lambda o: L.OneCycleLR(o, 1.0, total_steps=0)),
    (ValueError, lambda o: L.OneCycleLR(o, 1.0, epochs=0, steps_per_epoch=3)),
    (ValueError, lambda o: L.OneCycleLR(o, 1.0, total_steps=10, pct_start=1.5)),
    (ValueError, lambda o: L.OneCycleLR(o, 1.0, total_steps=10, anneal_strategy="exp")),
    (ValueError, lambda o: SWALR(o, 0.05, anneal_epochs=-1)),
    (ValueError, lambda o: SWALR(o, 0.05, anneal_strategy="exp")),
    (ValueError, lambda o: SWALR(o, [0.05])),
]


class _NoMomentum(pyoptk.SGD):
    def __init__(self, params):
        super().__init__(params, lr=0.1)
        self.defaults = {k: v for k, v in self.defaults.items() if k != "momentum"}


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_arguments(i):
    error, build = BAD[i]
    with pytest.raises(error):
        build(make_opt())


# ----- Keras-style schedules ---------------------------------------------------------------------
SCHEDULES = {
    "exponential": (S.exponential_decay(0.1, 10, 0.5), lambda t: 0.1 * 0.5 ** (t / 10)),
    "exponential-staircase": (S.exponential_decay(0.1, 10, 0.5, staircase=True), lambda t: 0.1 * 0.5 ** (t // 10)),
    "inverse-time": (S.inverse_time_decay(0.1, 20, power=0.5), lambda t: 0.1 / (1 + t / 20) ** 0.5),
    "inverse-time-keras": (S.inverse_time_decay(0.1, 20, decay_rate=2.0, staircase=True),
                           lambda t: 0.1 / (1 + 2.0 * (t // 20))),
    "piecewise": (S.piecewise_constant([10, 30], [0.1, 0.01, 0.001]),
                  lambda t: 0.1 if t <= 10 else 0.01 if t <= 30 else 0.001),
    "warmup-cosine": (S.warmup_cosine_decay(1.0, 10, 110, init_value=0.1, end_value=0.01),
                      lambda t: 0.1 + 0.9 * t / 10 if t < 10 else
                      0.01 + 0.99 * (1 + math.cos(math.pi * min(1, (t - 10) / 100))) / 2),
    "warmup-linear": (S.warmup_linear_decay(1.0, 5, 45),
                      lambda t: t / 5 if t < 5 else max(0.0, 1 - (t - 5) / 40)),
    "wsd": (S.warmup_stable_decay(2.0, 10, 50, 20, end_value=0.2),
            lambda t: 2.0 * t / 10 if t < 10 else 2.0 if t <= 60 else 0.2 + 1.8 * max(0.0, 1 - (t - 60) / 20)),
    "wsd-sqrt": (S.warmup_stable_decay(1.0, 0, 5, 16, decay="sqrt"),
                 lambda t: 1.0 if t <= 5 else 1 - math.sqrt(min(1, (t - 5) / 16))),
    "constant": (S.constant(0.3), lambda t: 0.3),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_values_and_scheduler(name):
    schedule, want = SCHEDULES[name]
    for t in range(130):
        assert close(schedule(t), want(t)), (name, t)
    opt = make_opt()
    s = S.ScheduleLR(opt, schedule)
    sched = s
    prime(opt)
    got = run(sched, opt, 129)
    assert all(close(lrs[0][0], want(t)) and lrs[0][0] == lrs[0][1] for t, lrs in enumerate(got))


def test_schedule_as_lambda_factor_and_per_group_and_resume():
    factor = S.warmup_cosine_decay(1.0, 10, 100)
    opt = make_opt()
    sched = L.LambdaLR(opt, factor)
    prime(opt)
    got = run(sched, opt, 100)
    assert all(lrs == [b * factor(t) for b in LRS] for t, (lrs, _) in enumerate(got))

    per_group = [S.exponential_decay(0.1, 5, 0.9), S.piecewise_constant([20], [0.05, 0.005])]
    opt = make_opt()
    s = S.ScheduleLR(opt, per_group)
    prime(opt)
    run(s, opt, 30)
    state = pickle.loads(pickle.dumps(s.state_dict()))
    tail = run(s, opt, 20)
    opt2 = make_opt()
    s2 = S.ScheduleLR(opt2, per_group)
    s2.load_state_dict(state)
    prime(opt2)
    assert run(s2, opt2, 20) == tail and tail[-1][0] == [0.1 * 0.9 ** 10, 0.005]


def test_sequential_of_schedules_matches_parts():
    opt = make_opt()
    warm = S.ScheduleLR(opt, S.warmup_linear_decay(0.5, 10, 11, end_value=0.5))
    decay = L.ExponentialLR(opt, gamma=0.9)
    s = L.SequentialLR(opt, [warm, decay], milestones=[10])
    sched = s
    prime(opt)
    got = run(sched, opt, 20)
    assert got[5][0] == [0.25, 0.25] and close(got[15][0][0], LRS[0] * 0.9 ** 5)


@pytest.mark.parametrize("error,build", [
    (ValueError, lambda: S.exponential_decay(0.1, 0, 0.5)),
    (TypeError, lambda: S.exponential_decay(0.1, 2.5, 0.5)),
    (ValueError, lambda: S.exponential_decay(0.1, 10, 0.0)),
    (ValueError, lambda: S.exponential_decay(-0.1, 10, 0.5)),
    (TypeError, lambda: S.exponential_decay("0.1", 10, 0.5)),
    (ValueError, lambda: S.inverse_time_decay(0.1, 10, power=-1)),
    (ValueError, lambda: S.inverse_time_decay(float("nan"), 10)),
    (ValueError, lambda: S.piecewise_constant([10, 5], [1, 2, 3])),
    (ValueError, lambda: S.piecewise_constant([10], [1.0])),
    (ValueError, lambda: S.warmup_cosine_decay(1.0, 10, 10)),
    (ValueError, lambda: S.warmup_linear_decay(1.0, -1, 10)),
    (ValueError, lambda: S.warmup_stable_decay(1.0, 10, 10, 0)),
    (ValueError, lambda: S.warmup_stable_decay(1.0, 10, 10, 10, decay="step")),
    (ValueError, lambda: S.constant(-1.0)),
    (ValueError, lambda: S.exponential_decay(0.1, 10, 0.5)(-1)),
    (TypeError, lambda: S.constant(1.0)("3")),
    (TypeError, lambda: S.ScheduleLR(make_opt(), 0.1)),
    (ValueError, lambda: S.ScheduleLR(make_opt(), [S.constant(0.1)])),
])
def test_schedule_bad_arguments(error, build):
    with pytest.raises(error):
        build()


@pytest.mark.parametrize("name", ["StepLR", "OneCycleLR", "CyclicLR-triangular", "ReduceLROnPlateau", "SequentialLR"])
def test_tensor_lr_written_in_place_as_torch(torch, name):
    """A 0-d lr (array or tensor) is filled in place, as torch's schedulers fill a tensor lr: the
    optimizer and whoever holds it read the value rounded to its dtype, ``initial_lr`` is a copy,
    and groups that share the object (the constructor's lr) share its value, torch's bits."""
    build = {
        "StepLR": lambda M, o: M.StepLR(o, step_size=2, gamma=0.3),
        "OneCycleLR": lambda M, o: M.OneCycleLR(o, max_lr=[0.05, 0.1], total_steps=12),
        "CyclicLR-triangular": lambda M, o: M.CyclicLR(o, base_lr=0.001, max_lr=[0.1, 0.05], step_size_up=3),
        "ReduceLROnPlateau": lambda M, o: M.ReduceLROnPlateau(o, patience=0, factor=0.3),
        "SequentialLR": lambda M, o: M.SequentialLR(o, [M.ConstantLR(o, factor=0.5, total_iters=3),
                                                        M.ExponentialLR(o, gamma=0.9)], milestones=[4]),
    }[name]
    lr = np.array(0.1, np.float32)
    opt = pyoptk.SGD([{"params": [np.zeros(3)]}, {"params": [np.zeros(3)]}], lr=lr, momentum=0.9)
    topt = torch.optim.SGD([{"params": [torch.zeros(3, requires_grad=True)]},
                            {"params": [torch.zeros(3, requires_grad=True)]}], lr=torch.tensor(0.1), momentum=0.9)
    ours, theirs = build(OURS, opt), build(torch_namespace(torch), topt)
    for e in range(10):
        prime(opt)
        topt.step()
        for s in (ours, theirs):
            s.step(1.0) if name == "ReduceLROnPlateau" else s.step()
        assert opt.param_groups[0]["lr"] is lr and opt.param_groups[1]["lr"] is lr
        assert [float(g["lr"]) for g in opt.param_groups] == [float(g["lr"]) for g in topt.param_groups], e
    if "initial_lr" in topt.param_groups[0]:
        assert [float(g["initial_lr"]) for g in opt.param_groups] == [float(g["initial_lr"]) for g in topt.param_groups]
    assert [float(v) for v in ours.get_last_lr()] == [float(v) for v in theirs.get_last_lr()]
    lr[...] = 7.0  # what the scheduler reported is its own copy, as torch's
    assert 7.0 not in [float(v) for v in ours.get_last_lr()]
