"""The flushing mode (FTZ/DAZ) of the calling thread is the one every worker thread steps in.

OpenMP workers inherit the FP control word once, when the pool starts. Before the fix, a caller
that had flushing on for its first multi-threaded step (torch.set_flush_denormal(True)) left the
workers flushing for good: later 2-thread steps in the default (IEEE) mode flushed the workers'
part of the arrays and differed from 1-thread ones. Run in a fresh process, so that the step
under test is the one that starts the pool.
"""
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import numpy as np
    import torch
    import pyoptk
    from pyoptk import _core

    _core._set_min_parallel(0)
    n = 1 << 14
    tiny = np.float32(1e-41)  # subnormal: flushed to 0 under FTZ/DAZ
    def run(threads, isa):
        pyoptk.set_isa(isa)
        pyoptk.set_num_threads(threads)
        p = np.full(n, tiny, np.float32)
        g = np.full(n, tiny, np.float32)
        opt = pyoptk.SGD([p], lr=0.5, momentum=0.5)
        opt.step([g]); opt.step([g])
        norm = pyoptk.clip.clip_grad_norm_([g.copy()], max_norm=1e30)
        return p, opt.state[p]["momentum_buffer"], float(norm)

    for isa in pyoptk.available_isas():
        torch.set_flush_denormal(True)      # the caller flushes: so does every worker
        p_ftz, m_ftz, n_ftz = run(2, isa)
        p1, m1, n1 = run(1, isa)
        assert not p_ftz.any() and not m_ftz.any(), isa
        assert np.array_equal(p_ftz.view(np.uint32), p1.view(np.uint32)), isa
        torch.set_flush_denormal(False)     # back to IEEE: so is every worker
        p2, m2, n2 = run(2, isa)
        p1, m1, n1 = run(1, isa)
        assert p1.any() and m1.any(), isa   # subnormals kept
        assert np.array_equal(p2.view(np.uint32), p1.view(np.uint32)), f"{isa}: 2 threads differ from 1"
        assert np.array_equal(m2.view(np.uint32), m1.view(np.uint32)), f"{isa}: 2 threads differ from 1"
        assert n2 == n1 and n1 > 0, (isa, n1, n2)
    print("ok")
""")


def test_workers_step_in_the_callers_flushing_mode(tmp_path):
    pytest.importorskip("torch")  # its flag is the caller's flushing mode here
    # Run outside the checkout: from its root, `python -c` would import the unbuilt source tree.
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr


# ----- pyoptk.set_flush_denormal --------------------------------------------------------------
import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402

import pyoptk  # noqa: E402
from pyoptk import _core  # noqa: E402
from cases import STEP_BITS  # noqa: E402

FTZ_DAZ = 0x8040
TINY = {np.float32: 1e-40, np.float64: 1e-310, ml_dtypes.bfloat16: 1e-40, np.float16: 3e-6}  # subnormal in each
DTYPES = [np.float32, np.float64, ml_dtypes.bfloat16, np.float16]
SIZES = [1, 7, 17, 1023, 4099]


@pytest.fixture
def flushing():
    yield pyoptk.set_flush_denormal
    pyoptk.set_flush_denormal(False)


def _subnormal_problem(dtype, steps=4, seed=0):
    """Params and grads of which a third are subnormal (and some of the rest zeros), so that states
    start and stay in the subnormal range."""
    rng = np.random.default_rng(seed)
    tiny = TINY[dtype]

    def draw(n):
        x = rng.standard_normal(n)
        x[rng.random(n) < 0.33] *= tiny
        x[::9] = 0
        return x.astype(dtype)
    return [draw(n) for n in SIZES], [[draw(n) for n in SIZES] for _ in range(steps)]


def _run(name, kw, dtype):
    params, grads = _subnormal_problem(dtype)
    opt = getattr(pyoptk, name)(params, **kw)
    for g in grads:
        opt.step(g)
    out = [p.view(np.uint8).copy() for p in params]
    for p in params:
        out += [np.asarray(v).view(np.uint8).copy() for _, v in sorted(opt.state[p].items())
                if isinstance(v, np.ndarray)]
    return out


def _low_ok(name, dtype):
    return np.dtype(dtype).itemsize >= 4 or getattr(pyoptk, name).low_precision


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name,kw", STEP_BITS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(STEP_BITS)])
def test_subnormals_give_the_same_bits_everywhere_in_either_mode(name, kw, dtype, kernel_config, flushing):
    """Subnormal params, grads and states: every ISA and thread count gives scalar's 1-thread bits,
    in the default (IEEE) mode and in flush mode; the two modes differ where subnormals met arithmetic."""
    if not _low_ok(name, dtype):
        pytest.skip(f"{name} takes no 16-bit params")
    results = {}
    for flush in (False, True):
        flushing(flush)
        kernel_config("scalar", 1)
        want = _run(name, kw, dtype)
        for isa in pyoptk.available_isas():
            for threads in (1, 2):
                kernel_config(isa, threads)
                got = _run(name, kw, dtype)
                for k, (a, b) in enumerate(zip(got, want)):
                    assert np.array_equal(a, b), f"flush={flush}, {isa}, {threads} threads: array {k} differs"
        results[flush] = want
    if dtype is not np.float16:  # float16's subnormals widen to normal float32 numbers: nothing to flush
        assert any(not np.array_equal(a, b) for a, b in zip(results[False], results[True]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_flush_mode_is_sgd_on_flushed_numbers(dtype, flushing):
    """SGD with momentum in flush mode against NumPy with each operation's inputs flushed (DAZ) and
    its result flushed (FTZ); plain IEEE NumPy in the default mode. lr = 1 keeps the kernel's
    fma(b, -lr, p) a single rounding of p - b, as NumPy's subtraction; the first step's b = g is
    a copy, not arithmetic, so it keeps a subnormal grad even in flush mode."""
    tiny = np.finfo(dtype).tiny

    def flush(x):
        x = np.asarray(x, dtype)
        return np.where(np.abs(x) < tiny, np.copysign(np.zeros_like(x), x), x)

    params, grads = _subnormal_problem(dtype)
    momentum = dtype(0.5)
    for flush_mode in (False, True):
        flushing(flush_mode)
        ps = [p.copy() for p in params]
        opt = pyoptk.SGD(ps, lr=1.0, momentum=float(momentum))
        f = flush if flush_mode else (lambda x: np.asarray(x, dtype))
        ref_p, ref_m = [p.copy() for p in params], None
        for t, g in enumerate(grads):
            opt.step(g)
            ref_m = [x.copy() for x in g] if t == 0 else [f(f(x) + f(f(m) * momentum)) for m, x in zip(ref_m, g)]
            ref_p = [f(f(p) - f(m)) for p, m in zip(ref_p, ref_m)]
        for p, rp, m in zip(ps, ref_p, ref_m):
            assert np.array_equal(p.view(np.uint8), rp.view(np.uint8)), f"flush={flush_mode}: param"
            assert np.array_equal(opt.state[p]["momentum_buffer"].view(np.uint8), m.view(np.uint8)), \
                f"flush={flush_mode}: momentum_buffer"


@pytest.mark.parametrize("threads", [1, 2])
def test_flush_mode_gives_every_thread_its_own_mode_back(threads, flushing, kernel_config):
    kernel_config(pyoptk.isa(), threads)
    before = _core._worker_flush_bits(threads)
    assert set(before) == {0}  # pytest's threads run IEEE
    assert flushing(True) is True and pyoptk.get_flush_denormal()
    p, g = np.full(100003, 1e-40, np.float32), np.full(100003, 1e-40, np.float32)
    pyoptk.SGD([p], lr=0.5).step([g])
    assert not p.any()  # flushed in every thread
    assert _core._worker_flush_bits(threads) == before  # caller and workers: their own mode again
    flushing(False)
    p[:] = 1e-40
    pyoptk.SGD([p], lr=0.5).step([g])
    assert p.all()  # IEEE again: 1e-40 - 0.5e-40 is a subnormal, kept
