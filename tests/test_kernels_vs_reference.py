"""Every element-wise kernel x flag set x dtype x ISA x thread count, over many steps and odd
sizes, against its plain-NumPy reference (tests/reference/, cases and tolerances from
tests/cases.py); and bit-identical across ISAs and thread counts (the norms of LAMB / LARS too)."""
import functools

import numpy as np
import pytest

import pyoptk
from conftest import DTYPES, ISAS, SIZES, THREADS
from cases import SGD_ADAM
from reference.sgd_adam import STEPS as SGD_ADAM_STEPS, assert_close
from cases import BEYOND_TORCH, BEYOND_TORCH_TOL, TORCH_OPTIM, TORCH_OPTIM_TOL, ids
from problems import BEYOND_TORCH_SIZES, STEPS, TORCH_OPTIM_SIZES, close, problem, run_steps
from reference import beyond_torch as beyond_torch_reference, torch_optim as torch_optim_reference

CASES = SGD_ADAM
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
            SGD_ADAM_STEPS[name](p, g, s, **hyper)
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


def _same_bits_on_every_isa(name, kw, params, grads, all_isas_threads):
    """The params, states and optimizer of the first ISA / thread count's run, after checking that
    every other run gives the same bits."""
    first = None
    for isa, threads in all_isas_threads():
        out, opt = run_steps(name, kw, params, grads)
        states = [dict(opt.state[p]) for p in out]
        if first is None:
            first, first_states, first_opt = out, states, opt
            continue
        for k, (a, b) in enumerate(zip(first, out)):
            assert np.array_equal(a, b), f"{isa}/{threads} threads differs from the first run (param {k})"
            for key, value in first_states[k].items():
                assert np.array_equal(value, states[k][key]), f"{isa}/{threads}: state {key} differs"
    return first, first_states, first_opt


# ----- torch.optim's other element-wise algorithms, against float64 references --------------
def _torch_optim_reference(name, group, params, grads, dtype):
    out, states = [], []
    for p0, gs in zip(params, grads):
        p, state = p0.astype(np.float64), {}
        for g in gs:
            if name == "Rprop":
                torch_optim_reference.STEPS[name](p, g.astype(np.float64), state, group, dtype)
            else:
                torch_optim_reference.STEPS[name](p, g.astype(np.float64), state, group)
        out.append(p)
        states.append(state)
    return out, states


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw", TORCH_OPTIM, ids=ids(TORCH_OPTIM))
def test_torch_optim_kernel_vs_reference_all_isas(name, kw, dtype, all_isas_threads):
    params, grads = problem(dtype, TORCH_OPTIM_SIZES)
    first, first_states, first_opt = _same_bits_on_every_isa(name, kw, params, grads, all_isas_threads)
    ref, ref_states = _torch_optim_reference(name, first_opt.param_groups[0], params, grads, dtype)
    for k, (got, want) in enumerate(zip(first, ref)):
        assert got.dtype == dtype
        close(got, want, TORCH_OPTIM_TOL[dtype], f"param {k} (size {TORCH_OPTIM_SIZES[k]})")
        for key, value in ref_states[k].items():
            close(first_states[k][key], value, TORCH_OPTIM_TOL[dtype], f"state {key} of param {k}")
        assert set(first_states[k]) == set(ref_states[k])


# ----- beyond torch.optim, against references written from the papers ------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw", BEYOND_TORCH, ids=ids(BEYOND_TORCH))
def test_beyond_torch_kernel_vs_reference_all_isas(name, kw, dtype, all_isas_threads):
    params, grads = problem(dtype, BEYOND_TORCH_SIZES)
    first, _, _ = _same_bits_on_every_isa(name, kw, params, grads, all_isas_threads)
    for k, (got, p0) in enumerate(zip(first, params)):
        assert got.dtype == dtype
        want = beyond_torch_reference.run(name, kw, p0, grads[k])
        close(got, want, BEYOND_TORCH_TOL[dtype], f"param {k} (size {BEYOND_TORCH_SIZES[k]})")


def test_references_move_the_params():
    """Guards the comparison above: every case moves the elements that have grads (element 0's
    grad is always 0; one more may come back exactly, as Lion's +-lr steps can)."""
    params, grads = problem(np.float64, [7])
    for name, kw in BEYOND_TORCH:
        out, _ = run_steps(name, kw, params, grads)
        assert np.count_nonzero(out[0][1:] != params[0][1:]) >= 5, name


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
