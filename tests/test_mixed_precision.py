"""Mixed precision: bfloat16 / float16 params, grads and state, float32 master weights.

How the results are pinned, bit for bit:
- conversions: every float16/bfloat16 bit pattern widened, and float32 values of every exponent,
  halfway cases and specials narrowed, against ml_dtypes / NumPy casts, on every ISA and thread count;
- every element-wise algorithm x dtype x state dtype x master weights: each step must equal the
  float32 kernel (itself tested against the float64 NumPy references in test_torch_optim_algorithms.py) run
  on the widened arrays, rounded with ml_dtypes' round-to-nearest-even casts;
- Adam additionally against a NumPy float32 transcription of its formula with ml_dtypes casts.
"""
from __future__ import annotations

import copy
import pickle

import ml_dtypes
import numpy as np
import pytest

import pyoptk
from pyoptk import _core
from cases import MIXED, MIXED_SGD_ADAM

BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
LOW = [BF16, F16]
LOW_IDS = ["bf16", "f16"]
SIZES = [0, 1, 7, 17, 1023, 4099]  # empty, one, below / past every vector width and stage block


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _same_bits(got, want, msg=""):
    assert got.dtype == want.dtype, f"{msg}: dtype {got.dtype} != {want.dtype}"
    np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=msg)


# ----- conversions ----------------------------------------------------------------------------
def _stream(p, g, states=(), scale=1.0):
    """The roofline op, x += scale * g for the param and each state, on arrays of any dtype mix."""
    flags = _core.registry()["stream"]["flags"]
    mode = sum(flags[f"s{k}"] for k in range(len(states)))
    _core.step("stream", [(0, mode, 0, p, g, *states, *[None] * (4 - len(states)))], [(scale,)])


def _narrow_inputs(dtype):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 2 ** 32, 200003, dtype=np.uint64).astype(np.uint32)
    x = x[(x & 0x7f800000) != 0x7f800000]  # every exponent; specials added below
    drop = 16 if dtype == BF16 else 13
    ties = (x & ~np.uint32((1 << drop) - 1)) | np.uint32(1 << (drop - 1))  # exactly halfway
    values = np.concatenate([x, ties]).view(np.float32)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.99, 65520.0, -65520.0, 6e-8, 2.98e-8,
               2.9802322e-08, 1e-45, -1e-45, 1.17549435e-38, 3.3895314e38, 3.4028235e38]
    # NaNs with payloads, signalling and negative: every ISA must give them the same bits.
    nans = np.array([0x7fc00001, 0x7f800001, 0xffc12345, 0xff800003, 0x7fffffff], np.uint32).view(np.float32)
    # Whole vectors of normal values too (the fast path of the avx512_bf16 build), then a vector with
    # one denormal lane and one with one NaN lane (its fallback).
    normal = np.float32(1.5) + np.arange(64, dtype=np.float32) / 7
    one_denormal, one_nan = normal[:16].copy(), normal[:16].copy()
    one_denormal[5], one_nan[11] = np.float32(3e-40), np.float32(np.nan)
    return np.concatenate([np.array(special, np.float32), nans, normal, one_denormal, one_nan, values])


@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.parametrize("threads", [1, 2])
def test_narrowing_is_round_to_nearest_even(dtype, threads, kernel_config):
    x = _narrow_inputs(dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # inf from overflow; NaN payloads
        want = x.astype(dtype)
    first = None
    for isa in pyoptk.available_isas():
        kernel_config(isa, threads)
        p = np.full(x.size, -0.0, dtype)  # -0 + g == g exactly, for every g
        _stream(p, x)
        nan = np.isnan(want.astype(np.float32))
        assert np.array_equal(np.isnan(p.astype(np.float32)), nan), isa
        _same_bits(p[~nan], want[~nan], f"{isa}, {threads} threads")
        first = p if first is None else first
        _same_bits(p, first, f"{isa} against scalar, NaNs included")


@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.parametrize("threads", [1, 2])
def test_widening_is_exact_for_every_bit_pattern(dtype, threads, kernel_config):
    h = np.arange(2 ** 16, dtype=np.uint16).view(dtype)
    want = h.astype(np.float32)
    nan = np.isnan(want)
    first = None
    for isa in pyoptk.available_isas():
        kernel_config(isa, threads)
        p = np.full(h.size, -0.0, dtype)
        s0 = np.full(h.size, -0.0, np.float32)  # float32 state: receives the widened grad
        _stream(p, h, [s0])  # the fused 16-bit kernel: widened and narrowed in registers
        assert np.array_equal(np.isnan(s0), nan)
        _same_bits(s0[~nan], want[~nan], f"widen, {isa}")
        _same_bits(p[~nan], h[~nan], f"round trip, {isa}")
        first = (p, s0) if first is None else first
        _same_bits(p, first[0], f"round trip, {isa} against scalar, NaNs included")
        _same_bits(s0, first[1], f"widen, {isa} against scalar, NaNs included")


@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.parametrize("threads", [1, 2])
def test_all_16_bit_kernel_rounds_as_the_scalar_build(dtype, threads, kernel_config):
    """Every array 16-bit (the fused kernel that holds vectors in its own lane order, e.g. AVX2's
    bfloat16 evens and odds): each bit pattern plus another, and halved, rounded back, NaNs with
    payloads included, lands on the scalar build's bits; non-NaNs on ml_dtypes' casts. (The added
    values are not NaN: which of two NaN payloads an addition keeps is the hardware's choice.)"""
    rng = np.random.default_rng(11)
    h = np.arange(2 ** 16, dtype=np.uint16)
    a, b = h.view(dtype), rng.permutation(h).view(dtype)
    b = np.where(np.isnan(b.astype(np.float32)), np.zeros_like(b), b)
    n = a.size - 5  # a tail after the last full block
    first = None
    for isa in pyoptk.available_isas():
        kernel_config(isa, threads)
        p, s0 = a[:n].copy(), a[:n].copy()
        _stream(p, b[:n], [s0], 1.0)
        _stream(s0, b[:n], [], 0.5)
        with np.errstate(over="ignore", invalid="ignore"):
            want_p = (a[:n].astype(np.float32) + b[:n].astype(np.float32)).astype(dtype)
            want_s = (want_p.astype(np.float32) + b[:n].astype(np.float32) * np.float32(0.5)).astype(dtype)
        for got, want, name in [(p, want_p, "param"), (s0, want_s, "state")]:
            nan = np.isnan(want.astype(np.float32))
            assert np.array_equal(np.isnan(got.astype(np.float32)), nan), f"{name}, {isa}"
            _same_bits(got[~nan], want[~nan], f"{name}, {isa}, {threads} threads")
        first = (p, s0) if first is None else first
        _same_bits(p, first[0], f"param, {isa} against scalar, NaNs included")
        _same_bits(s0, first[1], f"state, {isa} against scalar, NaNs included")


def _f16_neighbours(x):
    """The float16 values either side of each float32 x, toward zero first (exact x: both x);
    values past 65504 have inf as their upper neighbour."""
    with np.errstate(over="ignore"):  # 65504's upper neighbour is inf
        near = x.astype(F16)
        n32 = near.astype(np.float32)
        toward_zero = np.where(np.abs(n32) > np.abs(x), np.nextafter(near, F16.type(0)), near)
        tz32 = toward_zero.astype(np.float32)
        away = np.where(tz32 == x, toward_zero, np.nextafter(toward_zero, np.copysign(np.inf, x).astype(F16)))
    return toward_zero, away


@pytest.mark.parametrize("threads", [1, 2])
def test_float16_stochastic_rounding(threads, kernel_config):
    """Each value lands on one of its two float16 neighbours, exact values and specials stay, the
    away-from-zero one is taken with the dropped fraction's probability (normals and subnormals
    alike), and every ISA draws the same bits."""
    rng = np.random.default_rng(8)
    # 64 copies of each value, so that each draws 64 times: normals, subnormals, near the top.
    base = np.concatenate([rng.standard_normal(300).astype(np.float32),
                           (rng.uniform(-1, 1, 300) * 2.0 ** -14).astype(np.float32),  # float16 subnormals
                           rng.uniform(65504, 65536, 50).astype(np.float32),
                           np.array([1.0, -2.5, 0.0, -0.0, 65504.0, 2.0 ** -24, 2.0 ** -14], np.float32)])
    x = np.repeat(base, 64)
    special = np.array([np.inf, -np.inf, np.nan, 65536.0, -1e30, 3e38], np.float32)
    first = None
    for isa in pyoptk.available_isas():
        kernel_config(isa, threads)
        p = np.full(x.size + special.size, -0.0, F16)  # -0 + g == g exactly, for every g
        _core.step("stream", [(0, 0, 0, p, np.concatenate([x, special]), None, None, None, None)], [(1.0,)],
                   rounding_key=12345)
        if first is None:
            first = p.copy()
        else:
            _same_bits(p, first, f"{isa}, {threads} threads")
    got, tail = first[:x.size].astype(np.float32), first[x.size:].astype(np.float32)
    np.testing.assert_array_equal(tail[:2], [np.inf, -np.inf])
    assert np.isnan(tail[2]) and np.all(tail[3:] == [np.inf, -np.inf, np.inf])
    low, high = (a.astype(np.float32) for a in _f16_neighbours(x))
    assert np.all((got == low) | (got == high)), "not a neighbour"
    exact = low == high
    assert np.array_equal(_bits(first[:x.size][exact]), _bits(x[exact].astype(F16)))  # signed zeros too
    # P(away from zero) = the dropped fraction: per value over its 64 draws, and summed.
    finite_high = np.isfinite(high) & ~exact
    frac = np.where(finite_high, (np.abs(x) - np.abs(low)) / np.where(finite_high, np.abs(high - low), 1), 0)
    up = (got == high) & ~exact
    expected, seen = frac[finite_high].sum(), up[finite_high].sum()
    assert abs(seen - expected) < 5 * np.sqrt(expected), (seen, expected)
    per_value = up.reshape(-1, 64).mean(axis=1)[finite_high.reshape(-1, 64)[:, 0]]
    assert np.all(np.abs(per_value - frac.reshape(-1, 64)[:, 0][finite_high.reshape(-1, 64)[:, 0]]) < 0.35)
    # Between 65504 and 65536 the upper neighbour is inf, taken in proportion to the excess.
    top = (np.abs(x) > 65504) & (np.abs(x) < 65536)
    assert np.all(np.isinf(got[top]) | (np.abs(got[top]) == 65504))
    share = float(np.mean(np.isinf(got[top])))
    assert share == pytest.approx(float(np.mean((np.abs(x[top]) - 65504) / 32)), abs=0.05)


# ----- every element-wise algorithm, bit for bit against the float32 kernel + ml_dtypes casts --
SGD_ADAM_CASES = MIXED_SGD_ADAM
CASES = MIXED  # every element-wise algorithm that takes 16-bit params (tests/cases.py)
CASE_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for n, kw in CASES]
PRECISIONS = [dict(), dict(state_dtype="float32"), dict(state_dtype="bfloat16"), dict(master_weights=True),
              dict(master_weights=True, state_dtype="float32")]
PRECISION_IDS = ["state=param", "state=f32", "state=bf16", "master", "master+state=f32"]
STEPS = 6


def _low_setup(dtype, grad_dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    grads = []
    for _ in range(STEPS):
        step = [rng.standard_normal(n).astype(grad_dtype) for n in SIZES]
        for g in step:
            g[: min(2, g.size)] = 0  # exact zeros
        grads.append(step)
    return params, grads


def _check_against_float32_kernel(name, kw, precision, dtype, grad_dtype):
    params, grads = _low_setup(dtype, grad_dtype)
    ours = _compare_with_float32_run(name, kw, kw, precision, dtype, params, grads)
    assert ours._plan is not None  # the later steps ran through the checked plan


def _compare_with_float32_run(name, kw, ref_kw, precision, dtype, params, grads, widen=lambda g: g.astype(np.float32)):
    """Steps `params` (16-bit) through `grads` and, beside them, the float32 optimizer (`ref_kw`)
    on float32 copies that start each step from our stored arrays, widened: after every step our
    arrays must be its results rounded to the stored dtypes (ml_dtypes' casts). Returns ours."""
    ours = getattr(pyoptk, name)(params, **kw, **precision)
    ref_params = [p.astype(np.float32) for p in params]
    ref = getattr(pyoptk, name)(ref_params, **ref_kw)
    master = precision.get("master_weights", False)
    state_dtype = np.dtype(precision.get("state_dtype") or dtype)
    for k in range(len(grads)):
        if k > 0:  # the reference resumes from our rounded arrays, widened
            for p, rp in zip(params, ref_params):
                rp[...] = ours.state[p]["master_param"] if master else p.astype(np.float32)
                for key, value in ours.state[p].items():
                    if isinstance(value, np.ndarray) and key != "master_param":
                        ref.state[rp][key][...] = value.astype(np.float32)
        ours.step(grads[k])
        ref.step([widen(g) for g in grads[k]])
        for i, (p, rp) in enumerate(zip(params, ref_params)):
            where = f"step {k}, param {i} (shape {p.shape})"
            with np.errstate(over="ignore"):  # past float16's range: inf, as the kernel rounds
                _same_bits(p, rp.astype(dtype), where)
            state, rstate = ours.state[p], ref.state[rp]
            assert set(state) == set(rstate) | ({"master_param"} if master else set()), where
            if master:
                _same_bits(state["master_param"], rp, where + " master_param")
            for key, value in rstate.items():
                if isinstance(value, np.ndarray):
                    with np.errstate(over="ignore"):
                        want = value.astype(state_dtype)
                    _same_bits(state[key], want, f"{where} {key}")
                else:
                    assert state[key] == value, f"{where} {key}"
    return ours


@pytest.mark.parametrize("precision", PRECISIONS, ids=PRECISION_IDS)
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_every_algorithm_is_the_float32_kernel_rounded(name, kw, dtype, precision):
    _check_against_float32_kernel(name, kw, precision, dtype, dtype)


@pytest.mark.parametrize("precision", [dict(), dict(master_weights=True)], ids=["state=param", "master"])
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.parametrize("name,kw", SGD_ADAM_CASES[1:2] + SGD_ADAM_CASES[4:5], ids=["SGD", "Adam"])
def test_float32_grads_for_16bit_params(name, kw, dtype, precision):
    _check_against_float32_kernel(name, kw, precision, dtype, np.float32)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01))], ids=["SGD", "Adam"])
def test_bfloat16_state_for_float32_params(name, kw):
    """state_dtype=bfloat16 with float32 params (DeepSpeed-style state compression)."""
    rng = np.random.default_rng(3)
    p = rng.standard_normal(1027).astype(np.float32)
    rp = p.copy()
    ours = getattr(pyoptk, name)([p], **kw, state_dtype="bfloat16")
    ref = getattr(pyoptk, name)([rp], **kw)
    for k in range(5):
        g = rng.standard_normal(p.size).astype(np.float32)
        if k:
            for key, value in ours.state[p].items():
                if isinstance(value, np.ndarray):
                    ref.state[rp][key][...] = value.astype(np.float32)
        ours.step([g])
        ref.step([g])
        _same_bits(p, rp)
        rp[...] = p
        for key, value in ours.state[p].items():
            if isinstance(value, np.ndarray):
                assert value.dtype == BF16
                _same_bits(value, ref.state[rp][key].astype(BF16), key)


# ----- Adam against NumPy, written from the formula -----------------------------------------
def _fma32(a, b, c):
    """float32 fma through float64: the product of two float32 values is exact in float64."""
    return (a.astype(np.float64) * b + c).astype(np.float32)


def _numpy_adam_step(p, g, m, v, t, lr, b1, b2, eps, dtype, state_dtype):
    """One torch Adam step on 16-bit arrays as specified: widen (ml_dtypes), float32 math in the
    kernel's order (lerp as an fma, eps after the bias correction), round to nearest even."""
    f = np.float32
    p32, g32, m32, v32 = (a.astype(f) for a in (p, g, m, v))
    w = f(1 - b1)
    m32 = _fma32(np.full_like(m32, w), g32 - m32, m32)  # torch.lerp for weight < 0.5
    v32 = v32 * f(b2) + f(1 - b2) * g32 * g32
    denom = _fma32(np.sqrt(v32), np.full_like(v32, f(1 / (1 - b2 ** t) ** 0.5)), np.full_like(v32, f(eps)))
    p32 = p32 + f(-(lr / (1 - b1 ** t))) * m32 / denom
    return p32.astype(dtype), m32.astype(state_dtype), v32.astype(state_dtype)


@pytest.mark.parametrize("state_dtype", [None, np.float32], ids=["state=param", "state=f32"])
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
def test_adam_against_numpy_reference(dtype, state_dtype):
    rng = np.random.default_rng(11)
    p = rng.standard_normal(5003).astype(dtype)
    sd = np.dtype(state_dtype or dtype)
    rp, rm, rv = p.copy(), np.zeros(p.size, sd), np.zeros(p.size, sd)
    opt = pyoptk.Adam([p], lr=0.01, state_dtype=state_dtype)
    for t in range(1, 11):
        g = rng.standard_normal(p.size).astype(dtype)
        opt.step([g])
        rp, rm, rv = _numpy_adam_step(rp, g, rm, rv, t, 0.01, 0.9, 0.999, 1e-8, dtype, sd)
        _same_bits(p, rp, f"step {t} param")
        _same_bits(opt.state[p]["exp_avg"], rm, f"step {t} exp_avg")
        _same_bits(opt.state[p]["exp_avg_sq"], rv, f"step {t} exp_avg_sq")


# ----- every ISA and thread count give the same bits ------------------------------------------
@pytest.mark.parametrize("precision", [dict(), dict(state_dtype="float32", master_weights=True),
                                       dict(stochastic_rounding=True, seed=3),
                                       dict(stochastic_rounding=True, master_weights=True, state_dtype="bfloat16")],
                         ids=["bf16", "master+f32", "sr", "sr+master"])
@pytest.mark.parametrize("name,kw", [("AdamW", dict(lr=0.01)), ("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("RMSprop", dict(centered=True))], ids=["AdamW", "SGD", "RMSprop"])
def test_bit_identical_on_every_isa_and_thread_count(name, kw, precision, kernel_config):
    rng = np.random.default_rng(2)
    start = [rng.standard_normal(n).astype(BF16) for n in (100003, 17, 1)]
    grads = [[rng.standard_normal(p.size).astype(BF16) for p in start] for _ in range(4)]
    first = None
    for isa in pyoptk.available_isas():
        for threads in (1, 2):
            kernel_config(isa, threads)
            params = [p.copy() for p in start]
            opt = getattr(pyoptk, name)(params, **kw, **precision)
            for g in grads:
                opt.step(g)
            arrays = params + [v for p in params for v in opt.state[p].values() if isinstance(v, np.ndarray)]
            if first is None:
                first = arrays
            else:
                for a, b in zip(first, arrays):
                    _same_bits(b, a, f"{isa}, {threads} threads")


# ----- bad input: a clear error, nothing changed ----------------------------------------------
def _snapshot(opt, params):
    return copy.deepcopy((params, {i: dict(opt.state[p]) for i, p in enumerate(params) if p in opt.state}))


def _assert_unchanged(before, opt, params):
    old_params, old_state = before
    for a, b in zip(old_params, params):
        _same_bits(b, a)
    for i, p in enumerate(params):
        if i in old_state:
            for key, value in old_state[i].items():
                now = opt.state[p][key]
                assert np.array_equal(np.asarray(now), np.asarray(value)), key


def test_bad_grad_dtypes_refused_before_anything_changes():
    p32, pb = np.ones(9, np.float32), np.ones(9, BF16)
    opt = pyoptk.Adam([{"params": [p32]}, {"params": [pb]}], lr=0.1)
    opt.step([np.ones(9, np.float32), np.ones(9, BF16)])
    before = _snapshot(opt, [p32, pb])
    with pytest.raises(TypeError, match=r"param 0 grad has dtype bfloat16, expected float32 \(the param's dtype\)"):
        opt.step([np.ones(9, BF16), np.ones(9, BF16)])
    with pytest.raises(TypeError, match=r"param 1 grad has dtype float16, expected bfloat16 \(the param's dtype\) or float32"):
        opt.step([np.ones(9, np.float32), np.ones(9, np.float16)])
    with pytest.raises(TypeError, match="param 1 grad has dtype float64"):
        opt.step([np.ones(9, np.float32), np.ones(9)])
    _assert_unchanged(before, opt, [p32, pb])
    assert opt.state[p32]["step"] == 1


def test_bad_settings_refused():
    pb = np.ones(4, BF16)
    with pytest.raises(TypeError, match="mixes dtypes: param 0 is bfloat16, param 1 float32"):
        pyoptk.Adam([pb, np.ones(4, np.float32)])
    for bad in ("float16", np.int8, "float64", "int32", 3):
        with pytest.raises(ValueError, match="Invalid state_dtype"):
            pyoptk.Adam([pb], state_dtype=bad)
    with pytest.raises(ValueError, match="param 0 of the new group is float64: state_dtype=float32"):
        pyoptk.Adam([np.ones(4)], state_dtype="float32")
    with pytest.raises(ValueError, match="Invalid master_weights"):
        pyoptk.Adam([pb], master_weights="yes")
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['state_dtyp'\]"):
        pyoptk.Adam([pb], state_dtyp="float32")
    # SparseAdam, Adafactor, Muon and LBFGS take 16-bit params: tests/test_mixed_multipass.py.
    for cls, kw in [(pyoptk.LAMB, {}), (pyoptk.LARS, {}), (pyoptk.ScheduleFreeSGD, {}), (pyoptk.ScheduleFreeAdamW, {})]:
        with pytest.raises(TypeError, match=f"{cls.__name__} steps float32 and float64 params; param 0"):
            cls([np.ones((4, 4), BF16)], **kw)
    opt = pyoptk.Adam([pb])
    with pytest.raises(TypeError, match="the new param group mixes dtypes: param 0 is float16, param 1 float32"):
        opt.add_param_group({"params": [np.ones(3, np.float16), np.ones(3, np.float32)]})
    assert len(opt.param_groups) == 1


def test_master_weights_only_for_16bit_params():
    """A float32 param keeps no master copy; a 16-bit one does, and the param is its rounding."""
    p32, pb = np.ones(5, np.float32), np.full(5, 1.0, BF16)
    opt = pyoptk.SGD([{"params": [p32]}, {"params": [pb]}], lr=1e-3, master_weights=True)
    for _ in range(3):
        opt.step([np.ones(5, np.float32), np.ones(5, BF16)])
    assert "master_param" not in opt.state[p32]
    master = opt.state[pb]["master_param"]
    assert master.dtype == np.float32
    np.testing.assert_array_equal(master, np.float32(1) - np.float32(1e-3) - np.float32(1e-3) - np.float32(1e-3))
    _same_bits(pb, master.astype(BF16))


# ----- checkpoints ----------------------------------------------------------------------------
@pytest.mark.parametrize("precision", [dict(state_dtype="float32"), dict(master_weights=True),
                                       dict(stochastic_rounding=True, seed=7, master_weights=True)],
                         ids=["state=f32", "master", "sr+master"])
def test_checkpoint_records_precision_and_resumes_bit_identically(precision):
    rng = np.random.default_rng(4)
    start = [rng.standard_normal(n).astype(BF16) for n in (33, 1030)]
    grads = [[rng.standard_normal(p.size).astype(BF16) for p in start] for _ in range(8)]
    straight = [p.copy() for p in start]
    opt = pyoptk.AdamW(straight, lr=0.01, **precision)
    for g in grads:
        opt.step(g)
    resumed = [p.copy() for p in start]
    first = pyoptk.AdamW(resumed, lr=0.01, **precision)
    for g in grads[:4]:
        first.step(g)
    sd = pickle.loads(pickle.dumps(copy.deepcopy(first.state_dict())))
    assert sd["precision"]["rounding_step"] == (4 if precision.get("stochastic_rounding") else 0)
    assert sd["precision"]["state_dtype"] == precision.get("state_dtype")
    assert set(sd) == {"state", "param_groups", "precision"}
    params = [p.copy() for p in resumed]
    second = pyoptk.AdamW(params, lr=0.01, **precision)
    second.load_state_dict(sd)
    for g in grads[4:]:
        second.step(g)
    for a, b in zip(straight, params):
        _same_bits(b, a)


def test_default_precision_keeps_torchs_layout():
    opt = pyoptk.Adam([np.ones(3, BF16)])
    opt.step([np.ones(3, BF16)])
    assert set(opt.state_dict()) == {"state", "param_groups"}
    assert opt.state_dict()["state"][0]["exp_avg"].dtype == BF16  # torch's rule: the param dtype


def test_load_casts_state_and_refuses_what_the_dtype_cannot_hold():
    p = np.ones(6, np.float32)
    src = pyoptk.Adam([p], lr=0.1)
    src.step([np.full(6, 3.0, np.float32)])
    sd = copy.deepcopy(src.state_dict())
    pb = np.ones(6, BF16)
    dst = pyoptk.Adam([pb], lr=0.1, state_dtype="bfloat16", master_weights=True)
    sd_master = copy.deepcopy(sd)
    sd_master["state"][0]["master_param"] = p.copy()
    dst.load_state_dict(sd_master)
    for key in ("exp_avg", "exp_avg_sq"):
        _same_bits(dst.state[pb][key], sd["state"][0][key].astype(BF16), key)
    _same_bits(dst.state[pb]["master_param"], p)
    with pytest.raises(ValueError, match=r"missing keys \['master_param'\]"):
        dst.load_state_dict(sd)
    # float16 state: 1e6 would become inf.
    ph = np.ones(6, np.float16)
    half = pyoptk.Adam([ph], lr=0.1)
    half.step([np.ones(6, np.float16)])
    before = copy.deepcopy(half.state_dict())
    big = copy.deepcopy(sd)
    big["state"][0]["exp_avg_sq"][2] = 1e6
    with pytest.raises(ValueError, match="'exp_avg_sq' holds 1000000.0, which float16 cannot represent"):
        half.load_state_dict(big)
    _same_bits(half.state[ph]["exp_avg_sq"], before["state"][0]["exp_avg_sq"])
    half.load_state_dict(sd)  # representable: cast as torch casts (to the param dtype)
    assert half.state[ph]["exp_avg"].dtype == np.float16


# ----- fused master weights: tasks join only where every array continues -----------------------
@pytest.mark.parametrize("gap", [0, 1], ids=["grad-arena", "grads-spaced-like-float32"])
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
def test_fused_master_weights_join_params_by_each_arrays_item_size(dtype, gap, kernel_config):
    """Master weights run a fused kernel (float32 param and state, 16-bit grad, the 16-bit param
    written from the result), and the driver joins tasks whose arrays continue one another. The
    float32 arrays are arenas; the 16-bit grads are one too (the tasks join), or each starts where
    a float32 one would, a gap of its own size after it (joining by the float32 item size would
    read the gaps)."""
    rng = np.random.default_rng(11)
    sizes = [7, 33, 1023, 1]
    offsets = np.cumsum([0] + sizes)
    total = int(offsets[-1])
    mode = _core.registry()["sgd"]["flags"]["momentum"]
    coeffs = [(-0.1, 0.0, 0.9, 0.75)]  # neg_lr, weight_decay, momentum, 1 - dampening

    def arrays():
        master = rng.standard_normal(total).astype(np.float32)
        momentum = rng.standard_normal(total).astype(np.float32)
        grad_buffer = rng.standard_normal((1 + gap) * total).astype(dtype)
        grads = [grad_buffer[(1 + gap) * o: (1 + gap) * o + n] for o, n in zip(offsets, sizes)]
        return master, momentum, grads, np.zeros(total, dtype)

    master, momentum, grads, low = arrays()
    rng = np.random.default_rng(11)
    ref = arrays()
    for isa in pyoptk.available_isas():
        kernel_config(isa, 1)
        m, mo, lo = master.copy(), momentum.copy(), low.copy()
        items = [(i, mode, 0, m[o:o + n], g, mo[o:o + n], lo[o:o + n])
                 for i, (o, n, g) in enumerate(zip(offsets, sizes, grads))]
        _core.step("sgd", items, coeffs)
        for i, (o, n) in enumerate(zip(offsets, sizes)):  # the reference: one param at a time
            rm, rmo, rlo = ref[0][o:o + n].copy(), ref[1][o:o + n].copy(), ref[3][o:o + n].copy()
            _core.step("sgd", [(0, mode, 0, rm, ref[2][i], rmo, rlo)], coeffs)
            _same_bits(m[o:o + n], rm, f"{isa} master {i}")
            _same_bits(mo[o:o + n], rmo, f"{isa} momentum {i}")
            _same_bits(lo[o:o + n], rm.astype(dtype), f"{isa} 16-bit param {i}")
            _same_bits(rlo, rm.astype(dtype), f"{isa} 16-bit param {i} alone")
