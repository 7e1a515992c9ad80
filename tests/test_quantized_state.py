"""Block-quantized optimizer state (state_dtype="int8" / "int4", pyoptk/_quant.py, csrc/cpu/quantize.h).

The quantizer is held bit for bit to the NumPy reference written from the README's definition
(tests/reference/quantized.py), and the quantized step to that definition: dequantize the codes,
the float32 step (pyoptk's own, whose bits tests/test_step_bits.py pins), quantize, on every ISA
and thread count, for every element-wise algorithm and flag case, every param dtype.
"""
from __future__ import annotations

import copy

import ml_dtypes
import numpy as np
import pytest

import pyoptk
from pyoptk import _core
from pyoptk._quant import NO_4BIT, QMAP, QUANTIZED_STATES, SCALES, map_of, state_sign
from cases import STEP_BITS
from reference import quantized as ref

BF16, F16 = ml_dtypes.bfloat16, np.float16
MAPS = [(8, "signed"), (8, "unsigned"), (4, "signed"), (4, "unsigned")]  # map ids 0..3
SIZES = [0, 1, 7, 1023, 4097, 5003]  # empty, one, odd, block tails, past min_8bit_size
STEPS = 6


def _values(n, rng, sign):
    """Normal values over several magnitudes, with zero blocks, exact zeros and huge outliers."""
    x = (rng.standard_normal(n) * 10.0 ** rng.integers(-8, 3, n)).astype(np.float32)
    if sign == "unsigned":
        x = np.abs(x)
    x[: min(n, 300)] = 0  # a whole zero block
    x[::7] = 0
    x[5::97] *= 1e6
    return x


# ----- the quantizer ---------------------------------------------------------------------------
def test_maps_are_bitsandbytes_and_torchao_maps():
    bnb = pytest.importorskip("bitsandbytes.functional")
    np.testing.assert_array_equal(map_of(8, "signed"), bnb.create_dynamic_map(True).numpy())
    np.testing.assert_array_equal(map_of(8, "unsigned"), bnb.create_dynamic_map(False).numpy())
    ao = pytest.importorskip("torchao.optim.subclass_4bit")
    np.testing.assert_array_equal(map_of(4, "signed"), np.array(ao.get_qmap_signed(), np.float32))
    np.testing.assert_array_equal(map_of(4, "unsigned"), np.array(ao.get_qmap_unsigned(), np.float32))
    assert 0 not in map_of(4, "unsigned")  # Adam's denominator never collapses


@pytest.mark.parametrize("map_id", range(4))
@pytest.mark.parametrize("block", [32, 128, 256, 512])
def test_quantizer_matches_reference_bit_for_bit(map_id, block):
    bits, sign = MAPS[map_id]
    qmap = map_of(bits, sign)
    rng = np.random.default_rng(map_id * 1000 + block)
    for n in SIZES + [2 * block + 1]:
        x = _values(n, rng, sign)
        codes, scales = _core.quantize(x, map_id, block)
        want_codes, want_scales = ref.quantize(x, qmap, block)
        np.testing.assert_array_equal(codes, want_codes)
        np.testing.assert_array_equal(scales, want_scales)
        back = _core.dequantize(codes, scales, map_id, block, n)
        np.testing.assert_array_equal(back, ref.dequantize(codes, scales, qmap, block, n))
        # Nearest: no map entry is closer to x / absmax than the one coded.
        full = np.stack([codes & 15, codes >> 4], 1).reshape(-1)[:n] if bits == 4 else codes
        absmax = np.repeat(scales, block)[:n]
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(absmax == 0, 0, x / absmax).astype(np.float32)
        assert ref.nearest_codes_ok(v, full.astype(np.int64), qmap)


def test_quantizer_non_finite_blocks():
    x = np.zeros(96, np.float32)
    x[3], x[40], x[70] = np.nan, np.inf, -2.0
    codes, scales = _core.quantize(x, 0, 32)
    want_codes, want_scales = ref.quantize(x, map_of(8, "signed"), 32)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(scales, want_scales)  # NaN == NaN here
    assert np.isnan(scales[0]) and scales[1] == np.inf and scales[2] == 2.0
    assert codes[3] == 0  # NaN codes as 0


def test_ties_go_to_the_lower_entry():
    qmap = map_of(4, "unsigned")  # entry j is (j + 1) / 16: the midpoint of j and j + 1, (2j + 3) / 32, is exact
    x = np.array([1.0] + [(2 * j + 3) / 32 for j in range(15)], np.float32)
    codes, _ = _core.quantize(x, 3, 32)
    full = np.stack([codes & 15, codes >> 4], 1).reshape(-1)
    np.testing.assert_array_equal(full[1:], np.arange(15))
    assert qmap[full[1]] == 1 / 16


# ----- the quantized step -------------------------------------------------------------------------
QUANTIZABLE = [(n, kw) for n, kw in STEP_BITS if getattr(pyoptk, n).kernel.name in QUANTIZED_STATES]
NAMES = sorted({n for n, _ in QUANTIZABLE})


def _cases():
    out = []
    for name, kw in QUANTIZABLE:
        kernel = getattr(pyoptk, name).kernel.name
        for bits in (8, 4):
            if bits == 4 and kernel in NO_4BIT:
                continue
            out.append((name, kw, bits, np.float32, {}))
            out.append((name, kw, bits, BF16, {}))
            out.append((name, kw, bits, F16, dict(master_weights=True)))
    for name in ("Adam", "AdamW", "SGD", "Lion"):  # stochastic rounding of the param, with and without master
        kw = next(kw for n, kw in QUANTIZABLE if n == name)
        for precision in (dict(stochastic_rounding=True, seed=5), dict(stochastic_rounding=True, master_weights=True)):
            out.append((name, kw, 8, BF16, precision))
    out.append(("Adam", dict(lr=0.01), 8, np.float32, dict(block_size=32)))
    out.append(("Adam", dict(lr=0.01), 4, np.float32, dict(block_size=512)))
    return out


CASES = _cases()


def _case_id(case):
    name, kw, bits, dtype, precision = case
    return "-".join([name, f"int{bits}", np.dtype(dtype).name] + [f"{k}={v}" for k, v in {**kw, **precision}.items()])


def _problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    grads = []
    for _ in range(STEPS):
        step = []
        for n in SIZES:
            g = rng.standard_normal(n)
            g[::5] = 0
            g[3::11] *= 100
            step.append(g.astype(dtype))
        grads.append(step)
    return params, grads


def _quantized_run(name, kw, bits, dtype, precision):
    """Every param's (param, states) after each step, under the quantized optimizer."""
    params, grads = _problem(dtype)
    opt = getattr(pyoptk, name)(params, **kw, state_dtype=f"int{bits}", min_8bit_size=0, **precision)
    trace = []
    for g in grads:
        opt.step(g)
        trace.append([(p.copy(), {k: np.copy(v) for k, v in opt.state[p].items()}) for p in params])
    return trace


def _reference_run(name, kw, bits, dtype, precision):
    """The definition: each step dequantizes the codes (reference), runs the float32-state step,
    and quantizes (reference). Initial states are 0 or a constant, which quantize exactly."""
    precision = dict(precision)
    block = precision.pop("block_size", 256 if bits == 8 else 128)
    params, grads = _problem(dtype)
    opt = getattr(pyoptk, name)(params, **kw, state_dtype="float32", **precision)
    mode = opt._group_mode(opt.param_groups[0])
    codes: dict[int, dict[str, tuple]] = {}
    trace = []
    for g in grads:
        for i, p in enumerate(params):
            for state_name, (c, s, sign) in codes.get(i, {}).items():
                opt.state[p][state_name][...] = ref.dequantize(c, s, map_of(bits, sign), block, p.size).reshape(p.shape)
        opt.step(g)
        snap = []
        for i, p in enumerate(params):
            state = {}
            for k, v in opt.state[p].items():
                sign = state_sign(opt.kernel, k, mode)
                if sign is None:
                    state[k] = np.copy(v)
                    continue
                c, s = ref.quantize(v, map_of(bits, sign), block)
                codes.setdefault(i, {})[k] = (c, s, sign)
                state.update({k: c, k + SCALES: s, k + QMAP: map_of(bits, sign)})
            snap.append((p.copy(), state))
        trace.append(snap)
    return trace


def _assert_same(got, want, where):
    for t, (g_step, w_step) in enumerate(zip(got, want)):
        for i, ((gp, gs), (wp, ws)) in enumerate(zip(g_step, w_step)):
            at = f"{where}, step {t + 1}, param {i}"
            assert gp.tobytes() == wp.tobytes(), f"{at}: param bits differ"
            assert sorted(gs) == sorted(ws), at
            for k in gs:
                a, b = np.asarray(gs[k]), np.asarray(ws[k])
                assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{at}: {k} bits differ"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_quantized_step_is_dequantize_step_quantize(case, kernel_config):
    want = _reference_run(*case)
    for isa in pyoptk.available_isas():
        for threads in (1, 2):
            kernel_config(isa, threads)
            _assert_same(_quantized_run(*case), want, f"{isa}, {threads} thread(s)")
