"""bfloat16 / float16 params for SparseAdam, Adafactor, Muon and LBFGS.

How the results are pinned, bit for bit:
- the float32 run: every step of a 16-bit run equals the same optimizer stepping float32 arrays
  (tested against NumPy / torch references in test_multipass_algorithms.py) that start the step from
  the 16-bit run's stored arrays, widened, its results rounded with ml_dtypes' round-to-nearest-
  even casts. That is the whole rule wherever a step's passes hand each other float32 values;
- where a later pass reads a state an earlier pass stored (Adafactor's factored row/col
  variances, Muon's buffer without Nesterov), a NumPy float32 transcription with ml_dtypes casts
  at each store pins the order (SparseAdam's formula is transcribed too);
- LBFGS: its float32 twin whose every param update is rounded to the 16-bit dtype;
- every ISA and thread count, stochastic rounding included, gives the same bits.
"""
from __future__ import annotations

import copy
import pickle

import ml_dtypes
import numpy as np
import pytest

import pyoptk
from pyoptk import SparseGrad
from pyoptk.optim.muon import zeropower_via_newtonschulz
from test_mixed_precision import _bits, _compare_with_float32_run, _fma32, _same_bits

BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
F32 = np.dtype(np.float32)
LOW = [BF16, F16]
LOW_IDS = ["bf16", "f16"]
STEPS = 5
PRECISIONS = [dict(), dict(state_dtype="float32"), dict(state_dtype="bfloat16"), dict(master_weights=True),
              dict(master_weights=True, state_dtype="float32")]
PRECISION_IDS = ["state=param", "state=f32", "state=bf16", "master", "master+state=f32"]
# Shapes past every vector width and the 512-element staging block, and tiny ones; 1-D, 2-D, 3-D.
DENSE_SHAPES = [(1,), (7,), (1023,), (1, 1), (7, 17), (33, 129), (3, 5, 7)]
MUON_SHAPES = [(1, 1), (7, 17), (33, 129), (129, 33)]
SPARSE_SHAPES = [(1, 1), (7, 17), (40, 129), (3, 1023)]


def _grads(name, shapes, dtype, rng, steps=STEPS):
    out = []
    for _ in range(steps):
        step = []
        for shape in shapes:
            if name == "SparseAdam":
                n = int(rng.integers(1, shape[0] + 3))
                idx = rng.integers(0, shape[0], n)  # repeats are likely: summed in float32
                step.append(SparseGrad(idx, rng.standard_normal((n,) + shape[1:]).astype(dtype)))
            else:
                g = rng.standard_normal(shape).astype(dtype)
                g.reshape(-1)[:1] = 0  # an exact zero
                step.append(g)
        out.append(step)
    return out


def _widened_grad(g):
    if isinstance(g, SparseGrad):
        return SparseGrad(g.indices, g.values.astype(F32))
    return g.astype(F32)


CASES = [
    ("SparseAdam", dict(lr=0.01), SPARSE_SHAPES),
    ("SparseAdam", dict(lr=0.01, betas=(0.5, 0.9), maximize=True), SPARSE_SHAPES),
    ("Adafactor", dict(lr=0.01), [s for s in DENSE_SHAPES if len(s) == 1]),  # full variance
    ("Adafactor", dict(lr=0.01, weight_decay=0.1, maximize=True, eps=(1e-3, 1e-3)), [(9,), (1023,)]),
    ("Muon", dict(lr=0.02), MUON_SHAPES),  # nesterov: the look-ahead is float32, never stored
    ("Muon", dict(lr=0.02, weight_decay=0.0, momentum=0.5, adjust_lr_fn="match_rms_adamw"), MUON_SHAPES),
]
CASE_IDS = ["SparseAdam", "SparseAdam-max", "Adafactor-1d", "Adafactor-1d-wd", "Muon", "Muon-rms"]


def _check_against_float32_run(name, kw, shapes, dtype, precision, grad_dtype=None):
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = _grads(name, shapes, grad_dtype or dtype, rng)
    ref_kw = dict(kw)
    if name == "Adafactor" and kw.get("eps", (None,))[0] is None:  # torch: finfo of the param dtype
        ref_kw["eps"] = (float(ml_dtypes.finfo(dtype).eps), 1e-3)
    _compare_with_float32_run(name, kw, ref_kw, precision, dtype, params, grads, widen=_widened_grad)


@pytest.mark.parametrize("precision", PRECISIONS, ids=PRECISION_IDS)
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.parametrize("name,kw,shapes", CASES, ids=CASE_IDS)
def test_each_step_is_the_float32_run_rounded(name, kw, shapes, dtype, precision):
    _check_against_float32_run(name, kw, shapes, dtype, precision)


# Where a pass reads what an earlier one stored, the float32 run is the rule only for float32 state.
@pytest.mark.parametrize("precision", PRECISIONS[1:2] + PRECISIONS[4:], ids=["state=f32", "master+state=f32"])
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.parametrize("name,kw,shapes", [("Adafactor", dict(lr=0.01, weight_decay=0.05), DENSE_SHAPES),
                                            ("Muon", dict(lr=0.02, nesterov=False), MUON_SHAPES)],
                         ids=["Adafactor-factored", "Muon-plain"])
def test_float32_state_is_the_float32_run_rounded(name, kw, shapes, dtype, precision):
    _check_against_float32_run(name, kw, shapes, dtype, precision)


@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.parametrize("name,kw,shapes", [CASES[0], CASES[2], CASES[4]], ids=["SparseAdam", "Adafactor", "Muon"])
def test_float32_grads_for_16bit_params(name, kw, shapes, dtype):
    _check_against_float32_run(name, kw, shapes, dtype, dict(master_weights=True), grad_dtype=F32)


# ----- NumPy transcriptions, rounded with ml_dtypes casts where the step stores -----------------
def _lerp32(a, b, w):
    """The kernels' lerp (torch's): a + w (b - a) for |w| < 0.5, else b - (1 - w)(b - a), one fma."""
    w32 = F32.type(w)  # the coefficient is float32; w - 1 is taken in float32, as in the kernel
    return _fma32(w32, b - a, a) if abs(w32) < 0.5 else _fma32(w32 - F32.type(1), b - a, b)


def _rms(a):
    return float(np.sqrt(np.sum(np.square(a.astype(np.float64))))) / a.size ** 0.5


@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
def test_adafactor_factored_bf16_state_against_numpy(dtype):
    """row_var/col_var stored in bfloat16: the estimate V reads them as stored."""
    rng = np.random.default_rng(7)
    shape, lr, decay, wd, eps2 = (33, 129), 0.01, -0.8, 0.05, 1e-3
    p = rng.standard_normal(shape).astype(dtype)
    opt = pyoptk.Adafactor([p], lr=lr, weight_decay=wd, state_dtype="bfloat16")
    eps1 = float(ml_dtypes.finfo(dtype).eps)  # eps1=None: the param dtype's, as torch
    rp, row, col = p.copy(), np.zeros((33, 1), BF16), np.zeros((1, 129), BF16)
    for t in range(1, 7):
        g = rng.standard_normal(shape).astype(dtype)
        opt.step([g])
        g32 = g.astype(F32)
        w, rho = t ** decay, min(lr, 1 / t ** 0.5)
        alpha = max(eps2, _rms(rp)) * rho
        sq = lambda axis: np.square(np.sqrt(np.sum(np.square(g32), axis=axis, keepdims=True))) / g32.shape[axis]
        row = _lerp32(row.astype(F32), sq(-1), w).astype(BF16)
        col = _lerp32(col.astype(F32), sq(-2), w).astype(BF16)
        r32, c32 = row.astype(F32), col.astype(F32)
        est = r32 * c32 / np.maximum(r32.mean(axis=-2, keepdims=True), F32.type(eps1))
        u = (F32.type(1) / np.sqrt(np.maximum(est, F32.type(eps1 * eps1)))) * g32
        alpha = -alpha / max(1.0, _rms(u))
        p32 = rp.astype(F32) * F32.type(1 - lr * wd)
        rp = _fma32(u, F32.type(alpha), p32).astype(dtype)
        _same_bits(opt.state[p]["row_var"], row, f"step {t} row_var")
        _same_bits(opt.state[p]["col_var"], col, f"step {t} col_var")
        _same_bits(p, rp, f"step {t} param")


@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
def test_muon_plain_momentum_in_param_dtype_against_numpy(dtype):
    """Without Nesterov the buffer, stored in the param dtype, is what Newton–Schulz reads."""
    rng = np.random.default_rng(8)
    lr, mu, wd = 0.02, 0.9, 0.1
    p = rng.standard_normal((17, 40)).astype(dtype)
    opt = pyoptk.Muon([p], lr=lr, momentum=mu, weight_decay=wd, nesterov=False)
    rp, b = p.copy(), np.zeros(p.shape, dtype)
    for t in range(6):
        g = rng.standard_normal(p.shape).astype(dtype)
        opt.step([g])
        b = _lerp32(b.astype(F32), g.astype(F32), 1 - mu).astype(dtype)
        ortho = zeropower_via_newtonschulz(b.astype(F32), (3.4445, -4.7750, 2.0315), 5, 1e-7)
        p32 = rp.astype(F32) * F32.type(1 - lr * wd)
        rp = _fma32(ortho, F32.type(-lr * max(1, 17 / 40) ** 0.5), p32).astype(dtype)
        _same_bits(opt.state[p]["momentum_buffer"], b, f"step {t} buffer")
        _same_bits(p, rp, f"step {t} param")


@pytest.mark.parametrize("state_dtype", [None, "float32"], ids=["state=param", "state=f32"])
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
def test_sparse_adam_against_numpy(dtype, state_dtype):
    """torch's sparse update order (plain operations) in float32, rounded where it stores."""
    rng = np.random.default_rng(9)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p = rng.standard_normal((50, 7)).astype(dtype)
    sd = np.dtype(state_dtype or dtype)
    opt = pyoptk.SparseAdam([p], lr=lr, state_dtype=state_dtype)
    rp, m, v = p.copy(), np.zeros(p.shape, sd), np.zeros(p.shape, sd)
    for t in range(1, 8):
        idx = rng.integers(0, 49, 30)  # row 49 never touched
        vals = rng.standard_normal((30, 7)).astype(dtype)
        opt.step([SparseGrad(idx, vals)])
        rows = np.unique(idx)
        g = np.zeros((rows.size, 7), F32)
        np.add.at(g, np.searchsorted(rows, idx), vals.astype(F32))  # in order of appearance, float32
        m32, v32, p32 = m[rows].astype(F32), v[rows].astype(F32), rp[rows].astype(F32)
        m32 = m32 + (g - m32) * F32.type(1 - b1)
        v32 = v32 + (g * g - v32) * F32.type(1 - b2)
        step = F32.type(-(lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)))
        p32 = p32 + (m32 / (np.sqrt(v32) + F32.type(eps))) * step
        m[rows], v[rows], rp[rows] = m32.astype(sd), v32.astype(sd), p32.astype(dtype)
        _same_bits(p, rp, f"step {t} param")
        _same_bits(opt.state[p]["exp_avg"], m, f"step {t} exp_avg")
        _same_bits(opt.state[p]["exp_avg_sq"], v, f"step {t} exp_avg_sq")
    assert not np.any(_bits(p[49]) != _bits(rp[49]))


# ----- LBFGS --------------------------------------------------------------------------------------
def _quartic(dtype, rng, sizes=(1, 7, 1023)):
    """f(x) = sum(a (x - c)^2 + 0.1 (x - c)^4) over a few params; the grad in float32, rounded to
    the param dtype (what a 16-bit model hands the optimizer)."""
    a = [rng.uniform(0.5, 2.0, n).astype(F32) for n in sizes]
    c = [rng.standard_normal(n).astype(F32) for n in sizes]

    def closure_for(params, grad_dtype):
        def closure():
            xs = [p.astype(F32) for p in params]
            loss = sum(float(np.sum(ai * (x - ci) ** 2 + F32.type(0.1) * (x - ci) ** 4)) for x, ai, ci in zip(xs, a, c))
            grads = [(2 * ai * (x - ci) + F32.type(0.4) * (x - ci) ** 3).astype(grad_dtype) for x, ai, ci in zip(xs, a, c)]
            return loss, grads
        return closure
    return [np.zeros(n, dtype) for n in sizes], closure_for


class _RoundingLBFGS(pyoptk.LBFGS):
    """float32 LBFGS whose every param update is rounded to `dtype` (the reference)."""

    dtype = BF16

    def _add_grad(self, step_size, update):
        super()._add_grad(step_size, update)
        for p in self._flat_params:
            p[...] = p.astype(self.dtype).astype(F32)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"], ids=["fixed", "wolfe"])
@pytest.mark.parametrize("master", [False, True], ids=["rne", "master"])
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
def test_lbfgs_is_its_float32_twin_rounded(dtype, master, line_search_fn):
    rng = np.random.default_rng(10)
    params, closure_for = _quartic(dtype, rng)
    ref_params = [p.astype(F32) for p in params]
    kw = dict(lr=0.5, max_iter=6, history_size=4, line_search_fn=line_search_fn)
    ours = pyoptk.LBFGS(params, **kw, master_weights=master)
    if master:  # the float32 twin is the master copy; the closure sees its rounding
        ref = pyoptk.LBFGS(ref_params, **kw)
        ref_closure = closure_for([_RoundedView(rp, dtype) for rp in ref_params], dtype)
    else:
        _RoundingLBFGS.dtype = dtype
        ref = _RoundingLBFGS(ref_params, **kw)
        ref_closure = closure_for(ref_params, dtype)
    closure = closure_for(params, dtype)
    for k in range(4):
        assert ours.step(closure) == ref.step(ref_closure), k
        for i, (p, rp) in enumerate(zip(params, ref_params)):
            _same_bits(p, rp.astype(dtype), f"step {k} param {i}")
        state, rstate = ours.state[params[0]], ref.state[ref_params[0]]
        if master:
            _same_bits(state["master_param"], np.concatenate(ref_params), f"step {k} master_param")
        for key in ("d", "prev_flat_grad"):
            assert state[key].dtype == F32
            _same_bits(state[key], rstate[key], f"step {k} {key}")
        assert state["n_iter"] == rstate["n_iter"] and state["func_evals"] == rstate["func_evals"]
    assert np.isfinite(closure()[0]) and closure()[0] < closure_for([np.zeros(p.size, F32) for p in params], F32)()[0]


class _RoundedView:
    """What a 16-bit model sees of a float32 master param: its rounding (for the closure)."""

    def __init__(self, a, dtype):
        self.a, self.dtype = a, dtype

    def astype(self, dtype):
        return self.a.astype(self.dtype).astype(dtype)


# ----- every ISA and thread count, stochastic rounding too -------------------------------------
def _run_all(name, kw, shapes, dtype, precision, steps=3, seed=2):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    if name == "LBFGS":
        opt = pyoptk.LBFGS(params, **kw, **precision)
        _, closure_for = _quartic(dtype, rng, tuple(p.size for p in params))
        for _ in range(steps):
            opt.step(closure_for(params, dtype))
    else:
        opt = getattr(pyoptk, name)(params, **kw, **precision)
        for g in _grads(name, shapes, dtype, rng, steps):
            opt.step(g)
    arrays = params + [v for p in params if p in opt.state for v in opt.state[p].values() if isinstance(v, np.ndarray)]
    return arrays, opt


ALL = [("SparseAdam", dict(lr=0.01), [(300, 129), (7, 3)]), ("Adafactor", dict(lr=0.01), [(300, 129), (1023,)]),
       ("Muon", dict(lr=0.02), [(129, 300)]), ("LBFGS", dict(lr=0.5, max_iter=4), [(2000,), (7,)])]


@pytest.mark.parametrize("precision", [dict(), dict(state_dtype="float32", master_weights=True),
                                       dict(stochastic_rounding=True, seed=3),
                                       dict(stochastic_rounding=True, master_weights=True)],
                         ids=["bf16", "master+f32", "sr", "sr+master"])
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.parametrize("name,kw,shapes", ALL, ids=[a[0] for a in ALL])
def test_bit_identical_on_every_isa_and_thread_count(name, kw, shapes, dtype, precision, kernel_config):
    first = None
    for isa in pyoptk.available_isas():
        for threads in (1, 2):
            kernel_config(isa, threads)
            arrays, _ = _run_all(name, kw, shapes, dtype, precision)
            if first is None:
                first = arrays
                continue
            for a, b in zip(first, arrays):
                _same_bits(b, a, f"{isa}, {threads} threads")


@pytest.mark.parametrize("name,kw,shapes", ALL, ids=[a[0] for a in ALL])
def test_stochastic_rounding_draws_per_pass_and_resumes(name, kw, shapes):
    """SR results differ from RNE and with the seed, are reproducible, and a checkpoint resumes
    them bit for bit (the rounding counter is in it)."""
    sr = dict(stochastic_rounding=True, seed=5)
    a, opt = _run_all(name, kw, shapes, BF16, sr, steps=4)
    b, _ = _run_all(name, kw, shapes, BF16, sr, steps=4)
    rne, _ = _run_all(name, kw, shapes, BF16, {}, steps=4)
    other, _ = _run_all(name, kw, shapes, BF16, dict(sr, seed=6), steps=4)
    _same_bits(b[0], a[0])
    assert not np.array_equal(_bits(a[0]), _bits(rne[0])) and not np.array_equal(_bits(a[0]), _bits(other[0]))
    # One rounding step per fused pass that writes: SparseAdam 1, Muon 2, Adafactor 3 per step.
    per_step = {"SparseAdam": 1, "Muon": 2, "Adafactor": 3}.get(name)
    assert opt.state_dict()["precision"]["rounding_step"] == (4 * per_step if per_step else opt._rounding_step) > 0
    if name == "LBFGS":
        return  # its closure is rebuilt per run; the straight run above pins its counter
    _check_resume(name, kw, shapes, sr, a)


def _check_resume(name, kw, shapes, precision, straight, check_sd=lambda sd: None):
    """_run_all's 4 steps as 2, a pickled checkpoint loaded into a new optimizer, 2 more: the
    same bits as the straight run."""
    rng = np.random.default_rng(2)
    params = [rng.standard_normal(s).astype(BF16) for s in shapes]
    grads = _grads(name, shapes, BF16, rng, 4)
    first = getattr(pyoptk, name)(params, **kw, **precision)
    for g in grads[:2]:
        first.step(g)
    sd = pickle.loads(pickle.dumps(copy.deepcopy(first.state_dict())))
    check_sd(sd)
    resumed = [p.copy() for p in params]
    second = getattr(pyoptk, name)(resumed, **kw, **precision)
    second.load_state_dict(sd)
    for g in grads[2:]:
        second.step(g)
    for x, y in zip(straight[:len(params)], resumed):
        _same_bits(y, x)


def test_stochastic_rounding_keeps_tiny_sparse_updates():
    """SparseAdam on bf16 rows at 1.0: 200 steps of ~1e-4 are lost by round-to-nearest (half an
    ulp is 2**-8) and kept on average by SR."""
    kept = {}
    for sr in (False, True):
        p = np.ones((4, 256), BF16)
        opt = pyoptk.SparseAdam([p], lr=1e-4, stochastic_rounding=sr, seed=1, state_dtype="float32")
        for _ in range(200):
            opt.step([SparseGrad(np.array([1, 2]), np.ones((2, 256), BF16))])
        kept[sr] = p[1:3].astype(np.float64).mean()
        np.testing.assert_array_equal(p[[0, 3]].astype(F32), 1.0)  # untouched rows
        # Rows 1 and 2 take the same updates; SR draws each row's bits from its own stream.
        assert np.array_equal(_bits(p[1]), _bits(p[2])) != sr
    assert kept[False] == 1.0
    assert abs(kept[True] - (1 - 200e-4)) < 2e-3, kept  # the exact drift 0.02, within SR's noise


# ----- checkpoints and bad input ----------------------------------------------------------------
@pytest.mark.parametrize("precision", [dict(state_dtype="float32"), dict(master_weights=True),
                                       dict(state_dtype="bfloat16")], ids=["state=f32", "master", "state=bf16"])
@pytest.mark.parametrize("name,kw,shapes", ALL[:3], ids=[a[0] for a in ALL[:3]])
def test_checkpoint_resumes_bit_identically(name, kw, shapes, precision):
    straight, _ = _run_all(name, kw, shapes, BF16, precision, steps=4)
    want = np.dtype(precision.get("state_dtype") or BF16)

    def dtypes(sd):
        for s in sd["state"].values():
            for key, value in s.items():
                if isinstance(value, np.ndarray):
                    assert value.dtype == (F32 if key == "master_param" else want), key
    _check_resume(name, kw, shapes, precision, straight, dtypes)


def test_lbfgs_checkpoint_with_master_weights():
    rng = np.random.default_rng(3)
    params, closure_for = _quartic(BF16, rng)
    opt = pyoptk.LBFGS(params, max_iter=3, master_weights=True)
    opt.step(closure_for(params, BF16))
    sd = copy.deepcopy(opt.state_dict())
    assert sd["state"][0]["master_param"].shape == (sum(p.size for p in params),)
    copies = [p.copy() for p in params]
    other = pyoptk.LBFGS(copies, max_iter=3, master_weights=True)
    other.load_state_dict(sd)
    opt.step(closure_for(params, BF16))
    other.step(closure_for(copies, BF16))
    for a, b in zip(params, copies):
        _same_bits(b, a)
    del sd["state"][0]["master_param"]
    with pytest.raises(ValueError, match=r"missing keys \['master_param'\]"):
        other.load_state_dict(sd)


def _snapshot(opt, params):
    return copy.deepcopy((params, {i: dict(opt.state[p]) for i, p in enumerate(params) if p in opt.state},
                          opt._rounding_step))


def _assert_unchanged(before, opt, params):
    old_params, old_state, rounding_step = before
    for a, b in zip(old_params, params):
        _same_bits(b, a)
    for i, p in enumerate(params):
        for key, value in old_state.get(i, {}).items():
            assert np.array_equal(np.asarray(opt.state[p][key]), np.asarray(value)), key
    assert opt._rounding_step == rounding_step


def test_bad_input_refused_before_anything_changes():
    pb, p32 = np.ones((6, 4), BF16), np.ones((6, 4), F32)
    sparse = pyoptk.SparseAdam([{"params": [pb]}, {"params": [p32]}], stochastic_rounding=True)
    ok = [SparseGrad([1], np.ones((1, 4), BF16)), SparseGrad([2], np.ones((1, 4), F32))]
    sparse.step(ok)
    before = _snapshot(sparse, [pb, p32])
    with pytest.raises(TypeError, match=r"param 0 SparseGrad values have dtype float16, expected bfloat16 "
                                        r"\(the param's dtype\) or float32"):
        sparse.step([SparseGrad([1], np.ones((1, 4), F16)), ok[1]])
    with pytest.raises(TypeError, match=r"param 1 SparseGrad values have dtype bfloat16, expected float32 "
                                        r"\(the param's dtype\)$"):
        sparse.step([ok[0], SparseGrad([2], np.ones((1, 4), BF16))])
    _assert_unchanged(before, sparse, [pb, p32])

    for cls, shape in ((pyoptk.Adafactor, (5, 3)), (pyoptk.Muon, (5, 3))):
        p, q = np.ones(shape, BF16), np.ones(shape, BF16)
        opt = cls([p, q], master_weights=True, stochastic_rounding=True)
        opt.step([np.ones(shape, BF16), np.ones(shape, F32)])
        before = _snapshot(opt, [p, q])
        with pytest.raises(TypeError, match=r"param 1 grad has dtype float16, expected bfloat16 \(the param's "
                                            r"dtype\) or float32"):
            opt.step([np.ones(shape, BF16), np.ones(shape, F16)])
        with pytest.raises(TypeError, match="param 0 grad has dtype float64"):
            opt.step([np.ones(shape), np.ones(shape, BF16)])
        _assert_unchanged(before, opt, [p, q])

    with pytest.raises(ValueError, match="Invalid state_dtype for LBFGS: bfloat16"):
        pyoptk.LBFGS([np.ones(3, BF16)], state_dtype="bfloat16")
    for cls in (pyoptk.SparseAdam, pyoptk.Adafactor, pyoptk.Muon, pyoptk.LBFGS):
        with pytest.raises(TypeError, match="mixes dtypes: param 0 is bfloat16, param 1 float32"):
            cls([np.ones((3, 3), BF16), np.ones((3, 3), F32)])
        with pytest.raises(ValueError, match="Invalid state_dtype"):
            cls([np.ones((3, 3), BF16)], state_dtype="float16")


def test_functional_apis_take_16bit_params():
    """pyoptk.optim's functional forms: 16-bit params with states in their dtype or float32,
    equal to the optimizer classes (round to nearest even)."""
    from pyoptk.optim.adafactor import adafactor
    from pyoptk.optim.muon import muon
    from pyoptk.optim.sparse_adam import sparse_adam

    rng = np.random.default_rng(12)
    p = rng.standard_normal((9, 11)).astype(BF16)
    g = rng.standard_normal(p.shape).astype(BF16)
    for state_dtype in (None, "float32"):
        sd = np.dtype(state_dtype or BF16)
        a, b, c = p.copy(), p.copy(), p.copy()
        pyoptk.Adafactor([a], state_dtype=state_dtype).step([g])
        adafactor([b], [g], [np.zeros((9, 1), sd)], [np.zeros((1, 11), sd)], [None], [0], d=1.0, lr=0.01,
                  beta2_decay=-0.8, weight_decay=0.0, eps1=None, eps2=1e-3, maximize=False)
        _same_bits(b, a, "adafactor")
        a, b = p.copy(), p.copy()
        pyoptk.Muon([a], state_dtype=state_dtype).step([g])
        muon([b], [g], [np.zeros(p.shape, sd)], lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
             ns_coefficients=(3.4445, -4.7750, 2.0315), ns_steps=5, eps=1e-7, adjust_lr_fn=None)
        _same_bits(b, a, "muon")
        grad = SparseGrad([0, 3, 3], g[:3])
        pyoptk.SparseAdam([c], state_dtype=state_dtype).step([grad])
        d = p.copy()
        sparse_adam([d], [grad], [np.zeros(p.shape, sd)], [np.zeros(p.shape, sd)], [1], eps=1e-8, beta1=0.9,
                    beta2=0.999, lr=1e-3, maximize=False)
        _same_bits(d, c, "sparse_adam")
    with pytest.raises(ValueError, match="momentum_buffer must be"):
        muon([p], [g], [np.zeros(p.shape, F16)], lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
             ns_coefficients=(3.4445, -4.7750, 2.0315), ns_steps=5, eps=1e-7, adjust_lr_fn=None)
