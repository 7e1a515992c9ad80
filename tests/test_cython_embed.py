"""The Cython API (pyoptk/capi.pxd) and its worked example (examples/cython_embed): a model
trained in a nogil loop, with Adam on a dense weight vector and SparseAdam on the rows of an
embedding table a batch touches, gives bit for bit what the Python API gives for the same grads."""
import sys

import numpy as np
import pytest

import pyoptk

from embed_build import ROOT, build_cython
from test_capi import CASES

pytest.importorskip("Cython")


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    where = build_cython(ROOT / "examples" / "cython_embed", tmp_path_factory.mktemp("cython"))
    sys.path.insert(0, str(where))
    try:
        import embed_train
        yield embed_train
    finally:
        sys.path.remove(str(where))
        sys.modules.pop("embed_train", None)


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    where = build_cython(ROOT / "tests" / "cython", tmp_path_factory.mktemp("cython_checks"))
    sys.path.insert(0, str(where))
    try:
        import capi_checks
        yield capi_checks
    finally:
        sys.path.remove(str(where))
        sys.modules.pop("capi_checks", None)


def data(rows=50, dim=13, samples=300, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(dim)
    table = rng.standard_normal((rows, dim))
    tokens = rng.integers(0, rows - 10, samples).astype(np.int64)  # the last 10 rows are never touched
    targets = rng.standard_normal(samples)
    return w, table, tokens, targets


@pytest.mark.parametrize("threads", [1, 2])
def test_cython_training_is_bit_identical_to_the_python_api(ext, threads):
    w, table, tokens, targets = data()
    steps, batch, lr = 40, 32, 0.05
    cw, ctable = w.copy(), table.copy()
    states = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(table), np.zeros_like(table)]
    ext.train(cw, ctable, tokens, targets, steps, batch, lr, *states, threads=threads)

    pw, ptable = w.copy(), table.copy()
    dense, sparse = pyoptk.Adam([pw], lr=lr), pyoptk.SparseAdam([ptable], lr=lr)
    gw, slot = np.empty_like(w), np.full(len(table), -1, np.int64)
    rows, grad_rows = np.empty(batch, np.int64), np.empty((batch, table.shape[1]))
    for t in range(steps):
        count = ext.grads(pw, ptable, tokens, targets, t * batch, batch, gw, slot, rows, grad_rows)
        assert 0 < count <= batch and np.all(np.diff(rows[:count]) > 0)
        dense.step([gw])
        sparse.step([pyoptk.SparseGrad(rows[:count].copy(), grad_rows[:count].copy())])
    assert not np.array_equal(cw, w) and not np.array_equal(ctable, table)  # it trained
    assert cw.tobytes() == pw.tobytes()
    assert ctable.tobytes() == ptable.tobytes()
    assert states[0].tobytes() == dense.state[pw]["exp_avg"].tobytes()
    assert states[1].tobytes() == dense.state[pw]["exp_avg_sq"].tobytes()
    assert states[2].tobytes() == sparse.state[ptable]["exp_avg"].tobytes()
    assert states[3].tobytes() == sparse.state[ptable]["exp_avg_sq"].tobytes()
    assert ctable[-10:].tobytes() == table[-10:].tobytes() and np.all(states[2][-10:] == 0)


def test_cython_training_lowers_the_loss(ext):
    w, table, tokens, targets = data(seed=1)
    loss = lambda: float(np.mean((np.einsum("j,ij->i", w, table[tokens]) - targets) ** 2))
    before = loss()
    states = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(table), np.zeros_like(table)]
    ext.train(w, table, tokens, targets, 300, 32, 0.05, *states)
    assert loss() < 0.5 * before


def test_bad_cython_calls_raise_with_the_c_api_message_and_write_nothing(checks):
    adam = np.array([1e-3, 0.9, 0.999, 1e-8, 0.0])
    with pytest.raises(ImportError, match="pyoptk C API version mismatch"):
        checks.wrong_abi()
    with pytest.raises(ValueError, match="unknown op 'adamm'"):
        checks.init(b"adamm", b"", adam)
    with pytest.raises(ValueError, match="adam has no flag 'amsgrd'"):
        checks.init(b"adam", b"amsgrd", adam)
    with pytest.raises(ValueError, match="hyper has the wrong number"):
        checks.init(b"adam", b"", adam[:3])
    p, g, m, v = (np.ones(9, np.float32) for _ in range(4))
    before = [a.copy() for a in (p, m, v)]
    with pytest.raises(ValueError, match="grad and states must have the param's size"):
        checks.dense(b"adam", adam, p, g[:5], m, v)
    with pytest.raises(ValueError, match=r"states\[1\] \(exp_avg_sq\) is NULL"):
        checks.dense(b"adam", adam, p, g, m, None)
    with pytest.raises(ValueError, match="param and grad must not be None"):
        checks.dense(b"adam", adam, p, None, m, v)
    for a, b in zip((p, m, v), before):
        assert np.array_equal(a, b)
    sparse = np.array([1e-3, 0.9, 0.999, 1e-8])
    table, st0, st1 = (np.ones((6, 4), np.float32) for _ in range(3))
    with pytest.raises(ValueError, match="rows must be increasing"):
        checks.rows(sparse, table, np.array([3, 1], np.int64), np.ones((2, 4), np.float32), st0, st1)
    with pytest.raises(ValueError, match="rows must be increasing and within"):
        checks.rows(sparse, table, np.array([1, 6], np.int64), np.ones((2, 4), np.float32), st0, st1)
    with pytest.raises(ValueError, match=r"grad_rows must be \(len\(rows\), param.shape\[1\]\)"):
        checks.rows(sparse, table, np.array([1, 2], np.int64), np.ones((2, 3), np.float32), st0, st1)
    assert np.all(table == 1) and np.all(st0 == 1)
    checks.rows(sparse, table, np.array([1, 4], np.int64), np.ones((2, 4), np.float32), st0, st1)
    assert np.all(table[[0, 2, 3, 5]] == 1) and np.all(table[[1, 4]] < 1)


def test_a_bucket_of_two_groups_in_one_call_is_each_params_own_step(checks):
    """step_bucket (the C API's step_params): each span with its group's coefficient set, the
    same bits as stepping each param alone."""
    rng = np.random.default_rng(5)
    hyper_a, hyper_b = np.array([1e-2, 0.9, 0.999, 1e-8, 0.0]), np.array([3e-3, 0.8, 0.99, 1e-6, 0.0])
    arrays = [rng.standard_normal(n).astype(np.float32) for n in (37, 37, 1, 1, 70, 70, 1, 1)]
    pa, ga, pb, gb = arrays[0], arrays[1], arrays[4], arrays[5]
    ma, va, mb, vb = (np.zeros(n, np.float32) for n in (37, 37, 70, 70))
    want = [a.copy() for a in (pa, ma, va, pb, mb, vb)]
    checks.dense(b"adam", hyper_a, want[0], ga, want[1], want[2])
    checks.dense(b"adam", hyper_b, want[3], gb, want[4], want[5])
    checks.bucket(b"adam", hyper_a, hyper_b, pa, ga, ma, va, pb, gb, mb, vb)
    for got, expected in zip((pa, ma, va, pb, mb, vb), want):
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,hyper", CASES)
def test_every_elementwise_algorithm_through_cython_is_the_class_apis_bits(checks, name, hyper, dtype):
    rng = np.random.default_rng(3)
    n, steps = 1023, 12
    p0 = rng.standard_normal(n).astype(dtype)
    grads = rng.standard_normal((steps, n)).astype(dtype)
    grads[1::3, ::5] = 0
    p = p0.copy()
    opt = getattr(pyoptk, name)([p], **hyper)
    group, kernel = opt.param_groups[0], opt.kernel
    mode = opt._group_mode(group)
    names = kernel.state_names(mode)
    flags = [f for f, bit in kernel.flag_bits.items() if mode & bit and f != opt.fresh_state_flag]
    first = flags + ([opt.fresh_state_flag] if opt.fresh_state_flag and names else [])
    states = {s: np.full(n, opt._state_init(s, group) or 0.0, dtype) for s in names}
    slots = [states.get(s) for s, _ in kernel.states]
    for g in grads:
        opt.step([g.copy()])
    mine = p0.copy()
    scalars = checks.run_steps(kernel.name.encode(), ",".join(flags).encode(), ",".join(first).encode(),
                               np.array(kernel.hyper(group), np.float64), mine, grads, *slots, threads=2)
    assert mine.tobytes() == p.tobytes()
    for s in names:
        assert states[s].tobytes() == opt.state[p][s].tobytes(), s
    assert scalars == [opt.state[p][s] for s in kernel.scalar_names]
