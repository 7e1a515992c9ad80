"""The per-ISA quantizer (csrc/cpu/quantize_isa.cpp: vectorized on AVX2 and AVX-512) against the
NumPy reference of the README's definition, on the values where a search goes wrong: every
midpoint of every map as float32 and its neighbours one ulp away, +-0, subnormals, +-inf, NaN,
values at and past the block's absmax. The step's staging layer is the only caller of the per-ISA
quantizer, so it is driven through a step whose state is a known function of the grad."""
from __future__ import annotations

import numpy as np
import pytest

import pyoptk
from pyoptk._quant import SCALES, map_of
from reference import quantized as ref

MAPS = [(8, "signed"), (8, "unsigned"), (4, "signed"), (4, "unsigned")]
BLOCK = 64


def _hard_values(qmap: np.ndarray, sign: str) -> np.ndarray:
    mid = ((qmap[:-1].astype(np.float64) + qmap[1:]) / 2).astype(np.float32)
    near = np.concatenate([mid, np.nextafter(mid, np.float32(-2)), np.nextafter(mid, np.float32(2)), qmap])
    # 0.046875 = 0.75 / 16: where the uniform 4-bit map's arithmetic search (w = 16 v - 1.5) stops being exact
    edge = np.float32(0.046875)
    tiny = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, 1e-30, 1.0, -1.0, np.inf, -np.inf, np.nan, edge,
                     np.nextafter(edge, np.float32(0)), np.nextafter(edge, np.float32(1))], np.float32)
    x = np.concatenate([near, -near, tiny]).astype(np.float32)
    return np.abs(x) if sign == "unsigned" else x


def _blocks(x: np.ndarray, rng) -> np.ndarray:
    """The values in blocks whose absmax is 1 (so v = x exactly), then scaled blocks, blocks of +0
    and of -0, and a tail."""
    finite = x[np.isfinite(x) & (np.abs(x) <= 1)]
    rows = []
    for start in range(0, finite.size, BLOCK - 1):
        row = np.ones(BLOCK, np.float32)
        chunk = finite[start:start + BLOCK - 1]
        row[1:1 + chunk.size] = chunk
        rows.append(row)
    plain = np.concatenate(rows)
    scaled = (plain * np.float32(3.7e-5)).astype(np.float32)
    odd = rng.permutation(x)  # non-finite and > 1 values, blocks of every kind
    zero = np.zeros(2 * BLOCK, np.float32)
    zero[BLOCK:] = -0.0  # blocks whose absmax is 0: every v is +0
    return np.concatenate([plain, scaled, zero, odd, plain[:37]])  # an odd tail


@pytest.mark.parametrize("map_id", range(4))
def test_isa_quantizer_matches_the_reference_on_midpoints(map_id, kernel_config):
    bits, sign = MAPS[map_id]
    qmap = map_of(bits, sign)
    x = _blocks(_hard_values(qmap, sign), np.random.default_rng(map_id))
    # SGD's first momentum step stores the grad itself; Adagrad's sum is 0 + grad * grad: we take
    # the grad whose square the float32 run stores, and compare with the float32 run's state.
    name, kw, state = ("SGD", dict(lr=0.0, momentum=0.9), "momentum_buffer") if sign == "signed" else \
        ("Adagrad", dict(lr=0.0), "sum")
    grad = x if sign == "signed" else np.sqrt(x).astype(np.float32)
    with np.errstate(invalid="ignore"):
        f32 = getattr(pyoptk, name)([np.zeros_like(grad)], **kw)
        f32.step([grad.copy()])
    values = f32.state[f32.param_groups[0]["params"][0]][state].reshape(-1)
    want_codes, want_scales = ref.quantize(values, qmap, BLOCK)
    for isa in pyoptk.available_isas():
        for threads in (1, 2):
            kernel_config(isa, threads)
            opt = getattr(pyoptk, name)([np.zeros_like(grad)], **kw, state_dtype=f"int{bits}", min_8bit_size=0,
                                        block_size=BLOCK)
            with np.errstate(invalid="ignore"):
                opt.step([grad.copy()])
            st = opt.state[opt.param_groups[0]["params"][0]]
            assert st[state].tobytes() == want_codes.tobytes(), (isa, threads)
            assert st[state + SCALES].tobytes() == want_scales.tobytes(), (isa, threads)


@pytest.mark.parametrize("map_id", range(4))
def test_isa_stochastic_codes_match_the_scalar_isa(map_id, kernel_config):
    """Stochastic codes (vectorized on AVX2 and AVX-512) on the same hard values, the map's ends
    (v = +-1, v below the first entry) and non-finite blocks included: every ISA and thread count
    gives the scalar ISA's codes, which test_quantized_state.py holds to the NumPy reference."""
    bits, sign = MAPS[map_id]
    x = _blocks(_hard_values(map_of(bits, sign), sign), np.random.default_rng(10 + map_id))
    name, kw, state = ("SGD", dict(lr=0.0, momentum=0.9), "momentum_buffer") if sign == "signed" else \
        ("Adagrad", dict(lr=0.0), "sum")
    grad = x if sign == "signed" else np.sqrt(x).astype(np.float32)
    got = {}
    for isa in pyoptk.available_isas():
        for threads in (1, 2):
            kernel_config(isa, threads)
            opt = getattr(pyoptk, name)([np.zeros_like(grad)], **kw, state_dtype=f"int{bits}", min_8bit_size=0,
                                        block_size=BLOCK, stochastic_codes=True, seed=3)
            with np.errstate(invalid="ignore"):
                opt.step([grad.copy()])
            st = opt.state[opt.param_groups[0]["params"][0]]
            got[isa, threads] = st[state].tobytes(), st[state + SCALES].tobytes()
    want = got["scalar", 1]
    for key, value in got.items():
        assert value == want, key
