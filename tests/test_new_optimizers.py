"""Lion, LAMB, LARS, Adan, ADOPT, AdEMAMix, ScheduleFreeSGD/AdamW: kernels vs NumPy references
written from the papers (tests/reference_new.py) on every ISA and thread count (bit-identical
among them), state_dict round trips, hyper-parameter checks, refused steps, functional forms."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import pyoptk
import reference_new

# (class, kwargs): every flag combination that changes the formula, plus non-default values.
CASES = [
    ("Lion", {}),
    ("Lion", dict(lr=1e-3, weight_decay=0.1, maximize=True, betas=(0.8, 0.95))),
    ("Adan", dict(lr=1e-2)),
    ("Adan", dict(lr=1e-2, weight_decay=0.1)),  # proximal decay
    ("Adan", dict(lr=1e-2, weight_decay=0.1, no_prox=True, maximize=True, betas=(0.9, 0.8, 0.95))),
    ("ADOPT", dict(lr=1e-2)),
    ("ADOPT", dict(lr=1e-2, weight_decay=0.1)),  # L2 (clipped: see TOL)
    ("ADOPT", dict(lr=1e-2, clip_lambda=None)),
    ("ADOPT", dict(lr=1e-2, weight_decay=0.1, decouple=True, maximize=True, betas=(0.8, 0.99))),
    ("AdEMAMix", dict(lr=1e-2)),
    ("AdEMAMix", dict(lr=1e-2, weight_decay=0.1, t_alpha=6, t_beta3=4, maximize=True)),  # warmups end mid-run
    ("LAMB", dict(lr=1e-2)),
    ("LAMB", dict(lr=1e-2, weight_decay=0.1, betas=(0.8, 0.9), maximize=True)),
    ("LARS", dict(lr=0.5)),
    ("LARS", dict(lr=0.5, weight_decay=0.1, nesterov=True, trust_coefficient=0.01, eps=1e-3)),
    ("LARS", dict(lr=0.01, weight_decay=0.1, trust_ratio=False)),
    ("ScheduleFreeSGD", dict(lr=0.1)),
    ("ScheduleFreeSGD", dict(lr=0.1, weight_decay=0.1, warmup_steps=4, r=0.5, momentum=0.8)),
    ("ScheduleFreeAdamW", dict(lr=0.01)),
    ("ScheduleFreeAdamW", dict(lr=0.01, weight_decay=0.1, warmup_steps=4, weight_lr_power=1.0, betas=(0.8, 0.9))),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for name, kw in CASES]
SCHEDULE_FREE = ("ScheduleFreeSGD", "ScheduleFreeAdamW")
# 0 and 1; below, at and past the AVX2 and AVX-512 widths; past the 128-element scheduling block
# and the 2048-element reduction block; one large enough to be split across threads.
SIZES = [0, 1, 7, 17, 1023, 4099, 100003]
STEPS = 10
# Against the float64 reference. float64: the kernels fold coefficients on the host (reciprocal
# bias corrections, one division for two addcdiv) and accumulate norms in another order, so a
# few ulps per step over 10 steps. float32: the state runs in float32, the reference in float64
# from the same float32 start; ADOPT's and Adan's normalised grads amplify rounding of small
# second moments, hence 1e-5 for them. The absolute part is scaled by the array's magnitude.
# (ADOPT with L2 decay is tested clipped: where g + wd p cancels to ~1e-6 on step 1, unclipped
# g / sqrt(v) later amplifies the float32-vs-float64 difference of that cancellation ~1e4 times:
# a property of the input, not of the kernel, and both dtypes' runs are right for their dtype.)
TOL = {np.float64: dict(rtol=1e-11, atol=1e-13), np.float32: dict(rtol=1e-5, atol=2e-6)}


def _close(got, want, tol, msg):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=msg)


def _grads(rng, size, steps, dtype):
    """Gradients with sign changes and exact zeros (one entry always 0)."""
    out = []
    for _ in range(steps):
        g = rng.standard_normal(size)
        g[rng.random(size) < 0.1] = 0.0
        if size:
            g[0] = 0.0
        out.append(g.astype(dtype))
    return out


def _setup(dtype, seed=0, sizes=SIZES):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [_grads(rng, n, STEPS, dtype) for n in sizes]
    return params, grads


def _run(name, kw, params, grads, steps=STEPS):
    params = [p.copy() for p in params]
    opt = getattr(pyoptk, name)(params, **kw)
    for k in range(steps):
        opt.step([g[k] for g in grads])
    if name in SCHEDULE_FREE:
        opt.eval()
    return params, opt


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_kernel_vs_reference_all_isas(name, kw, dtype, all_isas_threads):
    params, grads = _setup(dtype)
    first = None
    for isa, threads in all_isas_threads():
        out, opt = _run(name, kw, params, grads)
        states = [dict(opt.state[p]) for p in out]
        if first is None:
            first, first_states = out, states
            continue
        for k, (a, b) in enumerate(zip(first, out)):
            assert np.array_equal(a, b), f"{isa}/{threads} threads differs from the first run (param {k})"
            for key, value in first_states[k].items():
                assert np.array_equal(value, states[k][key]), f"{isa}/{threads}: state {key} differs"
    for k, (got, p0) in enumerate(zip(first, params)):
        assert got.dtype == dtype
        want = reference_new.run(name, kw, p0, grads[k])
        _close(got, want, TOL[dtype], f"param {k} (size {SIZES[k]})")


def test_references_move_the_params():
    """Guards the comparison above: every case moves the elements that have grads (element 0's
    grad is always 0; one more may come back exactly, as Lion's +-lr steps can)."""
    params, grads = _setup(np.float64, sizes=[7])
    for name, kw in CASES:
        out, _ = _run(name, kw, params, grads)
        assert np.count_nonzero(out[0][1:] != params[0][1:]) >= 5, name


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_functional_matches_class(name, kw):
    """The functional form, fed the class's state, gives the class's bits."""
    params, grads = _setup(np.float64, seed=3, sizes=[5, 33])
    mine, opt = _run(name, kw, params, grads, steps=4)
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


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_state_dict_round_trip(name, kw):
    params, grads = _setup(np.float64, seed=2, sizes=[7, 1, 130])
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


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_refused_step_changes_nothing(name, kw):
    params, grads = _setup(np.float64, seed=4, sizes=[9, 40])
    live = [p.copy() for p in params]
    opt = getattr(pyoptk, name)(live, **kw)
    opt.step([g[0] for g in grads])
    before = copy.deepcopy((live, opt.state_dict()))
    with pytest.raises(TypeError, match="param 1"):
        opt.step([grads[0][1], grads[1][1].astype(np.float32)])
    with pytest.raises(ValueError, match="param 1"):
        opt.step([grads[0][1], grads[1][1][:-1]])
    after = (live, opt.state_dict())
    for a, b in zip(before[0], after[0]):
        assert np.array_equal(a, b)
    assert before[1]["param_groups"] == after[1]["param_groups"]
    for i, state in before[1]["state"].items():
        for key, value in state.items():
            assert np.array_equal(value, after[1]["state"][i][key]), key


BAD = [
    ("Lion", dict(lr=-1), "learning rate"), ("Lion", dict(betas=(0.9, 1.0)), "beta parameter at index 1"),
    ("Lion", dict(weight_decay=-0.1), "weight_decay"), ("Adan", dict(betas=(0.9, 0.9)), "betas"),
    ("Adan", dict(eps=-1), "epsilon"), ("Adan", dict(no_prox=1), "no_prox"),
    ("ADOPT", dict(clip_lambda=0.25), "clip_lambda"), ("ADOPT", dict(decouple="yes"), "decouple"),
    ("AdEMAMix", dict(alpha=-1), "alpha"), ("AdEMAMix", dict(t_alpha=0), "t_alpha"),
    ("AdEMAMix", dict(betas=(0.9, 0.999, 1.0)), "beta parameter at index 2"),
    ("LAMB", dict(eps=float("nan")), "epsilon"), ("LARS", dict(trust_coefficient=-1), "trust_coefficient"),
    ("LARS", dict(momentum=-0.1), "momentum"), ("LARS", dict(nesterov=None), "nesterov"),
    ("ScheduleFreeSGD", dict(momentum=0.0), "momentum"), ("ScheduleFreeSGD", dict(warmup_steps=-1), "warmup_steps"),
    ("ScheduleFreeAdamW", dict(betas=(0.0, 0.9)), "beta1"), ("ScheduleFreeAdamW", dict(r=-1), "r value"),
]


@pytest.mark.parametrize("name,kw,what", BAD, ids=[f"{n}-{w}" for n, _, w in BAD])
def test_bad_hyper_parameters(name, kw, what):
    with pytest.raises(ValueError, match=what):
        getattr(pyoptk, name)([np.zeros(3)], **kw)
    opt = getattr(pyoptk, name)([np.zeros(3)])
    opt.param_groups[0].update(kw)
    p = opt.param_groups[0]["params"][0]
    with pytest.raises(ValueError, match=what):
        opt.step([np.ones(3)])
    assert np.array_equal(p, np.zeros(3)) and len(opt.state) == 0


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


def test_lamb_and_lars_norms_ignore_thread_and_isa(all_isas_threads):
    """The trust ratios come from the deterministic reductions: large params give the same bits
    on every ISA and thread count (covered above too; here with a 2M-element param)."""
    rng = np.random.default_rng(6)
    p0 = rng.standard_normal(2_000_003).astype(np.float32)
    gs = [rng.standard_normal(p0.size).astype(np.float32) for _ in range(3)]
    for name in ("LAMB", "LARS"):
        first = None
        for isa, threads in all_isas_threads():
            p = p0.copy()
            opt = getattr(pyoptk, name)([p], lr=0.1, weight_decay=0.01)
            for g in gs:
                opt.step([g])
            if first is None:
                first = p
            assert np.array_equal(p, first), f"{name} on {isa}/{threads}"


def test_lars_trust_ratio_is_one_for_zero_params():
    p = np.zeros(4)
    opt = pyoptk.LARS([p], lr=0.5, momentum=0.0)
    opt.step([np.ones(4)])
    np.testing.assert_array_equal(p, -0.5 * np.ones(4))  # ratio 1, not 0


def test_lamb_refuses_a_grad_that_is_its_param():
    p = np.ones(4)
    opt = pyoptk.LAMB([p])
    with pytest.raises(ValueError, match="share memory"):
        opt.step([p])
    assert np.array_equal(p, np.ones(4)) and len(opt.state) == 0


def test_registry_lists_the_new_ops():
    names = set(pyoptk._core.registry())
    assert {"lion", "adan", "adopt", "ademamix", "schedule_free", "lamb", "lars"} <= names


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_sum_squares_axpy_reduction(dtype, all_isas_threads):
    """||y + a x||^2 per array, in double: equal to NumPy's within summation-order rounding, and
    the same bits on every ISA and thread count."""
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal(n).astype(dtype) for n in (0, 1, 15, 2049, 100003)]
    ys = [rng.standard_normal(x.size).astype(dtype) for x in xs]
    want = [float(np.sum((y.astype(np.float64) + 0.3 * x.astype(np.float64)) ** 2)) for x, y in zip(xs, ys)]
    first = None
    for isa, threads in all_isas_threads():
        total, per = pyoptk._core.reduce("sum_squares_axpy", xs, ys, param=0.3)
        np.testing.assert_allclose(per, want, rtol=1e-12)
        assert total == pytest.approx(sum(want), rel=1e-12)
        if first is None:
            first = (total, per)
        assert (total, per) == first, f"{isa}/{threads}"
    with pytest.raises(ValueError, match="second list"):
        pyoptk._core.reduce("sum_squares_axpy", xs)


@pytest.mark.parametrize("name", ["ADOPT", "Adan"])
def test_functional_first_steps_match_class(name):
    """The functional forms detect a param's first step from state_steps (the classes from state
    creation): three steps from zero state give the class's bits."""
    params, grads = _setup(np.float64, seed=8, sizes=[33])
    mine, opt = _run(name, dict(lr=1e-2, weight_decay=0.1), params, grads, steps=3)
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


@pytest.mark.parametrize("name,kw", [c for c in CASES if c[0] not in SCHEDULE_FREE],
                         ids=[i for c, i in zip(CASES, IDS) if c[0] not in SCHEDULE_FREE])
def test_torch_twin_matches_numpy_api(name, kw):
    """pyoptk.torch's twin (a torch.optim.Optimizer reading p.grad) gives the NumPy API's bits."""
    torch = pytest.importorskip("torch")
    import pyoptk.torch as pt

    params, grads = _setup(np.float32, seed=9, sizes=[7, 130])
    mine, _ = _run(name, kw, params, grads, steps=5)
    tparams = [torch.tensor(p.copy()) for p in params]
    opt = getattr(pt, name)(tparams, **kw)
    assert isinstance(opt, torch.optim.Optimizer)
    for k in range(5):
        for t, g in zip(tparams, grads):
            t.grad = torch.tensor(g[k])
        opt.step()
    for a, t in zip(mine, tparams):
        assert np.array_equal(a, t.numpy())
