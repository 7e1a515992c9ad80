"""Fused unscale / clip / skip (step's grad_scale and found_inf, clip_grad_norm_for_step) and
stochastic rounding of bfloat16 and float16 arrays."""
from __future__ import annotations

import copy

import ml_dtypes
import numpy as np
import pytest

import pyoptk

BF16 = np.dtype(ml_dtypes.bfloat16)


def _bits(a):
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


# ----- grad_scale / found_inf -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, BF16, np.float16], ids=["f32", "bf16", "f16"])
@pytest.mark.parametrize("scale", [1024.0, 3.0, 0.7])
@pytest.mark.parametrize("name,kw", [("Adam", dict(lr=0.01)), ("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("RMSprop", {}), ("Rprop", {})], ids=["Adam", "SGD", "RMSprop", "Rprop"])
def test_grad_scale_divides_each_grad_as_it_is_read(name, kw, dtype, scale):
    """step(g, grad_scale=s) == step(float32(g) / float32(s)): torch's division, in the kernel."""
    rng = np.random.default_rng(1)
    start = [rng.standard_normal(n).astype(dtype) for n in (1, 17, 4099)]
    a, b = [p.copy() for p in start], [p.copy() for p in start]
    opt_a, opt_b = getattr(pyoptk, name)(a, **kw), getattr(pyoptk, name)(b, **kw)
    for _ in range(4):
        grads = [(rng.standard_normal(p.size) * scale).astype(dtype) for p in start]
        kept = copy.deepcopy(grads)
        opt_a.step(grads, grad_scale=np.array(scale, np.float32))
        opt_b.step([g.astype(np.float32) / np.float32(scale) for g in grads])
        for g, k in zip(grads, kept):
            np.testing.assert_array_equal(_bits(g), _bits(k))  # the grads are read, never written
    for x, y in zip(a, b):
        np.testing.assert_array_equal(_bits(x), _bits(y))
    assert opt_a._plan is not None


def test_found_inf_skips_everything():
    rng = np.random.default_rng(2)
    params = [rng.standard_normal(n).astype(BF16) for n in (5, 300)]
    opt = pyoptk.AdamW(params, lr=0.01, stochastic_rounding=True, master_weights=True)
    twin_params = [p.copy() for p in params]
    twin = pyoptk.AdamW(twin_params, lr=0.01, stochastic_rounding=True, master_weights=True)
    grads = [[rng.standard_normal(p.size).astype(BF16) for p in params] for _ in range(4)]
    for k, g in enumerate(grads):
        opt.step(g, grad_scale=np.float32(2.0), found_inf=np.float32(0.0))
        if k == 1:
            before = copy.deepcopy((params, opt.state_dict()))
            opt.step([np.full(p.size, np.inf, BF16) for p in params], grad_scale=2.0, found_inf=np.array(1.0))
            after = (params, opt.state_dict())
            for x, y in zip(before[0], after[0]):
                np.testing.assert_array_equal(_bits(x), _bits(y))
            assert after[1]["state"][0]["step"] == before[1]["state"][0]["step"] == 2
            assert after[1]["precision"] == before[1]["precision"]  # not even the rounding counter moved
        twin.step([x.astype(np.float32) / np.float32(2.0) for x in g])
    for x, y in zip(params, twin_params):  # the skipped step left no trace
        np.testing.assert_array_equal(_bits(x), _bits(y))


def test_bad_amp_arguments_refused_before_anything_changes():
    p = np.ones(4, np.float32)
    opt = pyoptk.Adam([p], lr=0.1)
    for bad, match in [(dict(found_inf=0.5), "found_inf must be 0 or 1"), (dict(found_inf=np.ones(2)), "found_inf must be a 0-d"),
                       (dict(grad_scale=0.0), "grad_scale must be a positive number"),
                       (dict(grad_scale=np.float32(np.nan)), "grad_scale must be a positive number"),
                       (dict(grad_scale="2"), "grad_scale must be a 0-d real array")]:
        with pytest.raises(ValueError, match=match):
            opt.step([np.ones(4, np.float32)], **bad)
    assert not opt.state and np.array_equal(p, np.ones(4, np.float32))


def test_grad_scale_on_float64_params_divides_in_float64():
    """As torch's fused kernel: grad / double(float32 grad_scale)."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal(1031)
    b = a.copy()
    opt_a, opt_b = pyoptk.Adam([a], lr=0.1), pyoptk.Adam([b], lr=0.1)
    for _ in range(3):
        g = rng.standard_normal(a.size) * 3.0
        opt_a.step([g], grad_scale=np.float32(3.0))
        opt_b.step([g / float(np.float32(3.0))])
    np.testing.assert_array_equal(a, b)


def test_grad_scale_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    a, b = np.ones(8, np.float32), np.ones(8, np.float32)
    pyoptk.SGD([a], lr=0.5).step([np.full(8, 4.0, np.float32)], grad_scale=torch.tensor(4.0), found_inf=torch.tensor(0.0))
    pyoptk.SGD([b], lr=0.5).step([np.full(8, 1.0, np.float32)])
    np.testing.assert_array_equal(a, b)


# ----- one-pass clip + unscale + skip ---------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, BF16], ids=["f32", "bf16"])
def test_clip_grad_norm_for_step(dtype):
    rng = np.random.default_rng(3)
    scale = 512.0
    grads = [(rng.standard_normal(n) * scale).astype(dtype) for n in (3, 2049, 5000)]
    kept = copy.deepcopy(grads)
    total, found_inf, step_scale = pyoptk.clip_grad_norm_for_step(grads, max_norm=1.0, grad_scale=np.float32(scale))
    widened = [g.astype(np.float64) / scale for g in grads]
    want = np.sqrt(sum(float(np.sum(w * w)) for w in widened))
    assert total == pytest.approx(want, rel=1e-12)
    assert found_inf.shape == () and found_inf.dtype == np.float32 and found_inf == 0.0
    coef = 1.0 / (total + 1e-6)
    assert step_scale == np.float32(scale / coef)
    for g, k in zip(grads, kept):
        np.testing.assert_array_equal(_bits(g), _bits(k))
    # The step then reads g / (scale / coef): within 2 float32 ulp of torch's (g / scale) * coef.
    params = [np.zeros(g.size, dtype) for g in grads]
    pyoptk.SGD(params, lr=1.0).step(grads, grad_scale=step_scale, found_inf=found_inf)
    for p, g in zip(params, grads):
        ref = -(g.astype(np.float32) / np.float32(scale)) * np.float32(coef)
        # float32: 2 ulp; bfloat16: the rounding of the stored param (half an ulp, 2^-9 relative).
        np.testing.assert_allclose(p.astype(np.float32), ref, rtol=2.5e-7 if dtype == np.float32 else 2.0 ** -8, atol=0)
    # A non-finite grad: found_inf = 1 and the step is skipped.
    grads[1][7] = np.inf
    total, found_inf, _ = pyoptk.clip_grad_norm_for_step(grads, max_norm=1.0, grad_scale=scale)
    assert found_inf == 1.0 and not np.isfinite(total)
    grads[1][7] = np.nan
    assert pyoptk.clip_grad_norm_for_step(grads, 1.0)[1] == 1.0


def test_norms_of_16bit_grads_are_the_widened_float32_norms(kernel_config):
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(n).astype(BF16) for n in (1, 4097, 20000)]
    want = pyoptk.get_total_norm([g.astype(np.float32) for g in grads])
    for isa in pyoptk.available_isas():
        for threads in (1, 2):
            kernel_config(isa, threads)
            assert pyoptk.get_total_norm(grads) == want  # bit for bit: same blocks, same order


# ----- stochastic rounding --------------------------------------------------------------------
# The ulp at 1.0: bfloat16 2^-7, float16 2^-10.
SR_DTYPES = [(BF16, 2.0 ** -7), (np.dtype(np.float16), 2.0 ** -10)]
SR_IDS = ["bf16", "f16"]


@pytest.mark.parametrize("dtype,ulp", SR_DTYPES, ids=SR_IDS)
def test_tiny_updates_lost_by_rne_kept_by_stochastic_rounding(dtype, ulp):
    """1000 steps of 1e-4 on 16-bit params at 1.0: each is below half an ulp below 1 (bfloat16
    2^-9, float16 2^-12), so round-to-nearest-even loses every one; stochastic rounding keeps them
    on average."""
    n, steps, lr, g = 4096, 1000, 1.0, 1e-4
    rne = np.ones(n, dtype)
    sr = np.ones(n, dtype)
    exact = np.ones(n, np.float32)
    opt_rne = pyoptk.SGD([rne], lr=lr)
    opt_sr = pyoptk.SGD([sr], lr=lr, stochastic_rounding=True, seed=1)
    opt_f32 = pyoptk.SGD([exact], lr=lr)
    grad16 = np.full(n, g, dtype)
    grad32 = grad16.astype(np.float32)
    for _ in range(steps):
        opt_rne.step([grad16])
        opt_sr.step([grad16])
        opt_f32.step([grad32])
    target = float(exact.mean())  # 1 - 1000 g (g as the 16-bit dtype holds it)
    assert target == pytest.approx(1 - steps * float(np.float32(grad16[0])), abs=5e-4)  # float32's own rounding
    assert np.all(rne == 1.0)  # every update lost
    # Each element is a random walk of 1000 roundings: one has an sd of sqrt(f (1 - f)) ulps for
    # f = 1e-4 / ulp (bfloat16: 0.16 ulp of 2^-8, spread ~0.02 over 1000; float16: 0.4 ulp of
    # 2^-11, ~0.006); the mean of 4096 elements is 64x tighter.
    mean_tol, spread = (2e-3, 0.03) if dtype == BF16 else (6e-4, 0.012)
    assert float(sr.astype(np.float64).mean()) == pytest.approx(target, abs=mean_tol)  # kept, unbiased
    assert float(sr.astype(np.float64).std()) < spread


@pytest.mark.parametrize("dtype,ulp", SR_DTYPES, ids=SR_IDS)
def test_stochastic_rounding_probability_is_the_dropped_fraction(dtype, ulp):
    """x = 1 + f ulp rounds up with probability f."""
    n = 200000
    for f in (0.125, 0.5, 0.875):
        p = np.ones(n, dtype)
        opt = pyoptk.SGD([p], lr=1.0, stochastic_rounding=True, seed=9)
        opt.step([np.full(n, -f * ulp, np.float32)])
        up = float(np.mean(p.astype(np.float32) > 1))
        assert set(np.unique(p.astype(np.float32))) <= {1.0, 1.0 + ulp}
        assert up == pytest.approx(f, abs=0.005)  # 5 sigma of a binomial at n = 2e5


@pytest.mark.parametrize("dtype,ulp", SR_DTYPES, ids=SR_IDS)
def test_stochastic_rounding_is_keyed_by_seed_step_and_element(dtype, ulp):
    def run(seed, steps, size=5000):
        p = np.ones(size, dtype)
        opt = pyoptk.SGD([p], lr=1.0, stochastic_rounding=True, seed=seed)
        out = []
        for _ in range(steps):
            opt.step([np.full(size, -0.3 * ulp, np.float32)])
            out.append(p.copy())
        return out
    a, b, c = run(0, 3), run(0, 3), run(1, 3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(_bits(x), _bits(y))  # deterministic
    assert not np.array_equal(_bits(a[0]), _bits(c[0]))  # the seed matters
    rounded_up = [(x.astype(np.float32) - y.astype(np.float32)) > 0 for x, y in zip(a[1:], a[:-1])]
    assert not np.array_equal(rounded_up[0], rounded_up[1])  # a new draw each step
    assert not np.array_equal(rounded_up[0][:2500], rounded_up[0][2500:])  # and per element


def test_stochastic_rounding_of_bfloat16_state():
    """With stochastic_rounding, bfloat16 states are rounded stochastically too: a tiny
    momentum decay that RNE would freeze still moves the buffer on average."""
    n = 20000
    p = np.ones(n, np.float32)
    opt = pyoptk.SGD([p], lr=0.0, momentum=1 - 2.0 ** -10, state_dtype="bfloat16", stochastic_rounding=True)
    g = np.ones(n, np.float32)
    opt.step([g])  # buffer = 1
    opt.step([np.zeros(n, np.float32)])  # buffer = 1 - 2^-10: below half an ulp of 1 (2^-8 / 2)
    buf = opt.state[p]["momentum_buffer"].astype(np.float64)
    assert buf.mean() == pytest.approx(1 - 2.0 ** -10, abs=5e-4)
    rne = np.ones(n, np.float32)
    opt_rne = pyoptk.SGD([rne], lr=0.0, momentum=1 - 2.0 ** -10, state_dtype="bfloat16")
    opt_rne.step([g])
    opt_rne.step([np.zeros(n, np.float32)])
    assert np.all(opt_rne.state[rne]["momentum_buffer"] == 1.0)
