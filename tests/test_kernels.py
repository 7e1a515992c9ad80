"""Every kernel x flag set x dtype x ISA x thread count, over many steps and odd sizes, against the
plain-NumPy reference; and bit-identical across ISAs and thread counts."""
import functools

import numpy as np
import pytest

import pyoptk
from conftest import DTYPES, ISAS, SIZES, THREADS
from reference import STEPS, assert_close

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.25, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02, maximize=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Adam", dict(lr=3e-2, betas=(0.3, 0.5), eps=1e-3)),  # 1 - beta1 >= 0.5: lerp's other branch
    ("AdamW", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.3, maximize=True)),
]
NUM_STEPS = 8



def _problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    grads = [[rng.standard_normal(n).astype(dtype) for n in SIZES] for _ in range(NUM_STEPS)]
    for step_grads in grads:  # exact zeros and a few large values
        for g in step_grads:
            g[::5] = 0
            g[3::11] *= 100
    return params, grads


def _run_pyoptk(name, hyper, dtype):
    params, grads = _problem(dtype)
    opt = getattr(pyoptk, name)(params, **hyper)
    for step_grads in grads:
        opt.step(step_grads)
    return params, [opt.state[p] for p in params]


def _run_reference(name, hyper, dtype):
    params, grads = _problem(dtype)
    states = [{} for _ in params]
    for step_grads in grads:
        for p, g, s in zip(params, step_grads, states):
            STEPS[name](p, g, s, **hyper)
    return params, states


@functools.lru_cache(maxsize=None)
def _baseline(case_index, dtype):
    """The scalar ISA on one thread: what every other configuration must equal bit for bit."""
    saved = (pyoptk.isa(), pyoptk.get_num_threads())
    pyoptk.set_isa("scalar")
    pyoptk.set_num_threads(1)
    try:
        return _run_pyoptk(*CASES[case_index], dtype)
    finally:
        pyoptk.set_isa(saved[0])
        pyoptk.set_num_threads(saved[1])


def _case_id(case):
    name, hyper = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in hyper.items())


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case_index", range(len(CASES)), ids=[_case_id(c) for c in CASES])
def test_kernel_matches_reference_and_is_bit_identical(case_index, dtype, isa, threads, kernel_config):
    name, hyper = CASES[case_index]
    kernel_config(isa, threads)
    params, states = _run_pyoptk(name, hyper, dtype)
    ref_params, ref_states = _run_reference(name, hyper, dtype)
    base_params, base_states = _baseline(case_index, dtype)
    for i, (p, s, rp, rs, bp, bs) in enumerate(zip(params, states, ref_params, ref_states, base_params, base_states)):
        assert p.dtype == dtype
        assert_close(p, rp, f"param {i} (size {p.size})")
        assert np.array_equal(p, bp), f"param {i} differs from scalar/1-thread bit for bit"
        assert sorted(s) == sorted(rs)
        for key, value in s.items():
            if isinstance(value, np.ndarray):
                assert_close(value, rs[key], f"{key} of param {i}")
                assert np.array_equal(value, bs[key]), f"{key} of param {i} not bit-identical"
            else:
                assert value == rs[key] == bs[key]


@pytest.mark.parametrize("isa", ISAS)
def test_unaligned_views_update_like_aligned_copies(isa, kernel_config):
    """A param starting at an odd address (a[1:]) must give the same bits as an aligned copy."""
    kernel_config(isa, 1)
    rng = np.random.default_rng(1)
    base = rng.standard_normal(1 + 1003).astype(np.float32)
    view, copy = base[1:], base[1:].copy()
    grads = [rng.standard_normal(1003).astype(np.float32) for _ in range(5)]
    opt_view, opt_copy = pyoptk.Adam([view], lr=0.1), pyoptk.Adam([copy], lr=0.1)
    for g in grads:
        opt_view.step([g])
        opt_copy.step([g])
    assert np.array_equal(view, copy)


def test_nan_and_inf_propagate_like_torch():
    """NaN/inf grads are not masked: they flow into the param exactly as in torch."""
    p = np.zeros(20, np.float32)
    g = np.ones(20, np.float32)
    g[3], g[17] = np.nan, np.inf
    pyoptk.SGD([p], lr=1.0).step([g])
    assert np.isnan(p[3]) and np.isneginf(p[17]) and np.all(p[[0, 1, 2, 4, 16, 18, 19]] == -1)
