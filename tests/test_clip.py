"""pyoptk.clip and _core's reductions: values against float64 NumPy and torch.nn.utils, bit-identity
across ISAs and thread counts, in-place semantics, non-finite handling, refusals."""
import itertools
import math

import numpy as np
import pytest

import pyoptk
from pyoptk import _core
from pyoptk.clip import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm

from conftest import DTYPES, ISAS, THREADS

SIZES = [0, 1, 7, 17, 1023, 100003, 5000]  # 100003 and 5000: several 2048-element blocks
NORMS = [1.0, 2.0, 3.5, math.inf, -math.inf, 0.0, -1.5]
CONFIGS = list(itertools.product(ISAS, THREADS))


def make_grads(dtype, seed=0, sizes=SIZES):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n) * rng.uniform(0.1, 3)).astype(dtype) for n in sizes]


def reference_norm(arrays, p):
    """Float64 NumPy, torch's definition (the norm of the per-array norms)."""
    x = [np.abs(a.astype(np.float64)) for a in arrays]
    if p == math.inf:
        return max(a.max() for a in x)
    if p == -math.inf:
        return min(a.min() for a in x)
    if p == 0:
        return float(sum(np.count_nonzero(a) > 0 for a in x))
    with np.errstate(divide="ignore"):
        return float(sum(np.sum(a ** p) for a in x) ** (1 / p))


def needs_nonempty(p):
    return math.isinf(p) or p < 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", NORMS)
def test_total_norm_reference_and_bit_identity(kernel_config, dtype, p):
    grads = make_grads(dtype)
    if needs_nonempty(p):
        grads = [g for g in grads if g.size]
    values = set()
    for isa, threads in CONFIGS:
        kernel_config(isa, threads)
        values.add(get_total_norm(grads, p))
    assert len(values) == 1, f"norm differs across ISA/threads: {values}"
    # Accumulated in float64 either way: only summation rounding separates it from NumPy's.
    np.testing.assert_allclose(values.pop(), reference_norm(grads, p), rtol=1e-12)


@pytest.mark.parametrize("kind", ["sum_squares", "sum_abs", "max_abs", "min_abs", "count_nonzero", "sum_pow"])
def test_reduce_per_array_bit_identical(kernel_config, kind):
    arrays = make_grads(np.float32, 1) + make_grads(np.float64, 2)
    if kind == "min_abs":
        arrays = [a for a in arrays if a.size]
    results = set()
    for isa, threads in CONFIGS:
        kernel_config(isa, threads)
        total, per = _core.reduce(kind, arrays, param=2.5)
        results.add((total, tuple(per)))
    assert len(results) == 1


def test_dot(kernel_config):
    xs, ys = make_grads(np.float32, 3), make_grads(np.float32, 4)
    xs += make_grads(np.float64, 5, [3, 4099])
    ys += make_grads(np.float64, 6, [3, 4099])
    values = set()
    for isa, threads in CONFIGS:
        kernel_config(isa, threads)
        values.add(_core.dot(xs, ys))
    assert len(values) == 1
    ref = sum(np.dot(x.astype(np.float64), y.astype(np.float64)) for x, y in zip(xs, ys))
    np.testing.assert_allclose(values.pop(), ref, rtol=1e-12)
    assert _core.sum_squares(xs) == _core.reduce("sum_squares", xs)[0]
    assert _core.dot([], []) == 0.0
    with pytest.raises(ValueError, match=r"ys\[0\] and xs\[0\] differ in shape"):
        _core.dot([np.ones(3)], [np.ones(4)])
    with pytest.raises(TypeError, match=r"ys\[0\] has dtype float32, xs\[0\] float64"):
        _core.dot([np.ones(3)], [np.ones(3, np.float32)])
    with pytest.raises(ValueError, match="2 arrays, ys has 1"):
        _core.dot([np.ones(3), np.ones(3)], [np.ones(3)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", NORMS)
def test_total_norm_vs_torch(dtype, p):
    torch = pytest.importorskip("torch")
    grads = make_grads(dtype, 7)
    if needs_nonempty(p):
        grads = [g for g in grads if g.size]
    expected = float(torch.nn.utils.get_total_norm([torch.from_numpy(g) for g in grads], p))
    # torch accumulates float32 in float32 (we use float64): its error is what the tolerance
    # covers (~1e-6 relative for sums over 1e5 elements; more for p < 0, where tiny |x| dominate).
    rtol = (1e-4 if p < 0 else 2e-5) if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(get_total_norm(grads, p), expected, rtol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1.0, 2.0, 3.5, math.inf])
def test_clip_grad_norm_vs_torch(kernel_config, dtype, p):
    torch = pytest.importorskip("torch")
    grads = [g for g in make_grads(dtype, 8) if g.size or not needs_nonempty(p)]
    params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype)) for g in grads]
    for t, g in zip(params, grads):
        t.grad = torch.from_numpy(g.copy())
    expected_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0, p))
    outputs = []
    for isa, threads in CONFIGS:
        kernel_config(isa, threads)
        mine = [g.copy() for g in grads]
        ids = [id(g) for g in mine]
        norm = clip_grad_norm_(mine, 1.0, p)
        assert [id(g) for g in mine] == ids
        outputs.append((norm, mine))
    for norm, mine in outputs[1:]:
        assert norm == outputs[0][0]
        for a, b in zip(mine, outputs[0][1]):
            np.testing.assert_array_equal(a, b)
    norm, mine = outputs[0]
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(norm, expected_norm, rtol=rtol)
    # The coefficient is computed in float64 and rounded once; torch's in float32 from its float32
    # norm: a few float32 ulps apart.
    for a, t in zip(mine, params):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=rtol, atol=0)
    assert get_total_norm(mine, p) == pytest.approx(min(1.0, norm), rel=1e-5)


def test_no_clip_below_max_norm_leaves_grads_untouched():
    grads = make_grads(np.float32, 9, [10, 20])
    before = [g.copy() for g in grads]
    norm = clip_grad_norm_(grads, 1e6)
    assert norm == get_total_norm(before)
    for a, b in zip(grads, before):
        np.testing.assert_array_equal(a, b)


def test_clip_grads_with_norm_formula():
    g = np.array([3.0, -4.0, 0.0])
    clip_grads_with_norm_([g], max_norm=1.0, total_norm=5.0)
    np.testing.assert_array_equal(g, np.array([3.0, -4.0, 0.0]) * (1.0 / (5.0 + 1e-6)))
    g32 = np.array([3.0, -4.0], np.float32)
    clip_grads_with_norm_(g32, 2.0, 5.0)  # a single array is accepted, as torch accepts a tensor
    np.testing.assert_array_equal(g32, np.array([3.0, -4.0], np.float32) * np.float32(2.0 / (5.0 + 1e-6)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_value_vs_torch(kernel_config, dtype):
    torch = pytest.importorskip("torch")
    grads = make_grads(dtype, 10)
    grads[2][:3] = [np.nan, np.inf, -np.inf]
    params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype)) for g in grads]
    for t, g in zip(params, grads):
        t.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_value_(params, 0.5)
    expected = [t.grad.numpy() for t in params]
    for isa, threads in CONFIGS:
        kernel_config(isa, threads)
        mine = [g.copy() for g in grads]
        clip_grad_value_(mine + [None], 0.5)
        for a, b in zip(mine, expected):
            np.testing.assert_array_equal(a, b)  # clamping is exact; NaN stays NaN


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite(bad):
    torch = pytest.importorskip("torch")
    grads = make_grads(np.float32, 11, [5, 3000])
    grads[1][17] = bad
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        clip_grad_norm_([g.copy() for g in grads], 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        get_total_norm(grads, math.inf, error_if_nonfinite=True)
    params = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for t, g in zip(params, grads):
        t.grad = torch.from_numpy(g.copy())
    expected_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
    mine = [g.copy() for g in grads]
    norm = clip_grad_norm_(mine, 1.0)
    assert (math.isnan(norm) and math.isnan(expected_norm)) or norm == expected_norm
    for a, t in zip(mine, params):  # NaN norm -> every grad NaN; inf norm -> grads * 0 (NaN at the inf)
        np.testing.assert_array_equal(a, t.grad.numpy())


def test_empty_and_none():
    assert get_total_norm([]) == 0.0
    assert clip_grad_norm_([None, None], 1.0) == 0.0
    assert get_total_norm([np.zeros(0, np.float32)], 2.0) == 0.0
    for p in (math.inf, -math.inf, -1.0):
        with pytest.raises(RuntimeError, match=r"tensors\[1\]: it is empty"):
            get_total_norm([np.ones(2), np.zeros(0)], p)
    g = np.array([2.0, 0.0])
    assert clip_grad_norm_([None, g], 1.0) == 2.0
    np.testing.assert_allclose(g, [1.0, 0.0], rtol=1e-6)


def test_bad_inputs():
    ro = np.ones(4, np.float32)
    ro.flags.writeable = False
    big = np.ones(10, np.float32)
    with pytest.raises(TypeError, match=r"tensors\[1\] has dtype int64; expected float32, float64, bfloat16 or float16"):
        get_total_norm([np.ones(2), np.ones(2, np.int64)])
    with pytest.raises(ValueError, match=r"tensors\[0\] is not C-contiguous"):
        get_total_norm([np.ones((4, 4))[:, 1]])
    with pytest.raises(TypeError, match=r"tensors\[0\] is a list"):
        get_total_norm([[1.0, 2.0]])
    with pytest.raises(TypeError, match="grad 1 has dtype int32"):
        clip_grad_value_([np.ones(3), np.ones(3, np.int32)], 1.0)
    with pytest.raises(ValueError, match="grad 1 is read-only"):
        clip_grad_value_([np.ones(3, np.float32), ro], 1.0)
    with pytest.raises(ValueError, match="grad 0 is not C-contiguous"):
        clip_grad_value_([np.ones((4, 4))[:, 1]], 1.0)
    with pytest.raises(ValueError, match="grad 0 and grad 1 share memory"):
        clip_grads_with_norm_([big[:6], big[4:]], 1.0, 100.0)
    with pytest.raises(ValueError, match="unknown reduction"):
        _core.reduce("sum_cubes", [np.ones(2)])
    # A refused call writes nothing.
    a = np.full(3, 5.0)
    with pytest.raises(ValueError):
        clip_grad_value_([a, ro], 1.0)
    np.testing.assert_array_equal(a, 5.0)


def test_top_level_exports():
    assert pyoptk.clip_grad_norm_ is clip_grad_norm_
    assert pyoptk.get_total_norm is get_total_norm
