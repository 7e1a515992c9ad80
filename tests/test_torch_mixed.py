"""pyoptk.torch on bfloat16 / float16 torch params: every twin whose NumPy optimizer takes 16-bit
arrays, against that optimizer (the same kernels: the same bits, precision options included,
through checkpoints), state in torch's dtype sharing the kernels' memory, state_dict interchange
with torch.optim on bf16 models, torch.amp.GradScaler on fp16 params, and refusals that change
nothing. Against torch's fused CPU kernels: tests/test_torch_parity_mixed.py (both faces)."""
from __future__ import annotations

import copy

import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import pyoptk  # noqa: E402
import pyoptk.torch as pt  # noqa: E402

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = [(BF16, torch.bfloat16), (np.dtype(np.float16), torch.float16)]
DTYPE_IDS = ["bf16", "f16"]
SHAPES = [(7, 5), (0,), (1,), (1023,)]  # 0, 1, odd, and tails past every SIMD width
STEPS = 6
# Every twin whose NumPy optimizer steps 16-bit params (the others refuse them: test below); the
# ones that need their own data (sparse grads, matrices, a closure) have their own test below.
OWN_DATA = ("SparseAdam", "Muon", "LBFGS")
LOW = [n for n in pt.__all__ if n not in ("TorchOptimizer", "twin", "InBackward") + OWN_DATA and getattr(pyoptk, n).low_precision]
REFUSING = [n for n in pt.__all__ if n not in ("TorchOptimizer", "twin", "InBackward") and not getattr(pyoptk, n).low_precision]
PRECISIONS = [{}, dict(state_dtype="float32"), dict(master_weights=True, state_dtype="float32"),
              dict(master_weights=True), dict(stochastic_rounding=True, seed=7)]
PRECISION_IDS = ["param-dtype", "f32-state", "master-f32-state", "master", "sr"]


def _np(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as pyoptk holds them (bfloat16 as ml_dtypes.bfloat16), no copy."""
    t = t.detach()
    return t.view(torch.int16).numpy().view(BF16) if t.dtype == torch.bfloat16 else t.numpy()


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A torch tensor with a's exact bits (a copy)."""
    a = a.copy()
    return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16) if a.dtype == BF16 else torch.from_numpy(a)


def _bits_equal(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    np.testing.assert_array_equal(got.reshape(-1).view(np.uint8), want.reshape(-1).view(np.uint8), err_msg=what)


def _data(dtype, steps=STEPS, seed=3):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(np.float32).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return params, grads


def _groups(ps):
    return [{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.01}]


def _run_twin(opt, tps, grads):
    for step in grads:
        for t, g in zip(tps, step):
            t.grad = _tensor(g)  # a new grad tensor every step, as zero_grad(set_to_none=True) + backward
        opt.step()


def _same_as_numpy(opt, tps, npopt, arrays):
    for i, (t, a) in enumerate(zip(tps, arrays)):
        _bits_equal(_np(t), a, f"param {i}")
        mine = opt.state[t]
        ref = npopt.state[a] if a in npopt.state else {}
        assert set(mine) == set(ref), i
        for key, value in ref.items():
            if isinstance(value, np.ndarray):
                assert mine[key].dtype == (torch.bfloat16 if value.dtype == BF16 else torch.from_numpy(value).dtype)
                _bits_equal(_np(mine[key]), value, f"state {key} of param {i}")
            else:  # step (and NAdam's / ASGD's scalars): 0-d float32 tensors, as torch keeps them
                assert float(mine[key]) == float(np.float32(value)), (key, i)


@pytest.mark.parametrize("precision", PRECISIONS, ids=PRECISION_IDS)
@pytest.mark.parametrize("dtype,tdtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", LOW)
def test_twin_bit_identical_to_numpy_api_through_a_checkpoint(name, dtype, tdtype, precision):
    """The twin steps 3 times, its state_dict resumes a fresh twin, which steps 3 more: the same
    bits as the NumPy optimizer run uninterrupted (params, state, master_param; the stochastic
    rounding counter resumes too)."""
    params, grads = _data(dtype)
    arrays = [p.copy() for p in params]
    npopt = getattr(pyoptk, name)(_groups(arrays), **precision)
    for step in grads:
        npopt.step(step)
    tps = [torch.nn.Parameter(_tensor(p)) for p in params]
    opt = getattr(pt, name)(_groups(tps), **precision)
    _run_twin(opt, tps, grads[:3])
    sd = copy.deepcopy(opt.state_dict())
    assert ("precision" in sd) == bool(precision)
    resumed_ps = [torch.nn.Parameter(t.detach().clone()) for t in tps]
    resumed = getattr(pt, name)(_groups(resumed_ps), **precision)
    resumed.load_state_dict(sd)
    _run_twin(resumed, resumed_ps, grads[3:])
    _run_twin(opt, tps, grads[3:])
    _same_as_numpy(resumed, resumed_ps, npopt, arrays)
    _same_as_numpy(opt, tps, npopt, arrays)


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_twin_bit_identical_on_every_isa_and_thread_count(name, all_isas_threads):
    """The C++ read of 16-bit grad tensors (no NumPy wrapper) under each ISA and 1/2 threads."""
    for dtype, _ in DTYPES:
        params, grads = _data(dtype)
        for isa, threads in all_isas_threads():
            kw = dict(lr=0.01, momentum=0.9) if name == "SGD" else dict(lr=0.01)
            arrays = [p.copy() for p in params]
            npopt = getattr(pyoptk, name)(_groups(arrays), **kw)
            tps = [torch.nn.Parameter(_tensor(p)) for p in params]
            opt = getattr(pt, name)(_groups(tps), **kw)
            _run_twin(opt, tps, grads)
            for step in grads:
                npopt.step(step)
            _same_as_numpy(opt, tps, npopt, arrays)
            assert opt._core._plan is not None, (isa, threads)  # the planned path ran


@pytest.mark.parametrize("dtype,tdtype", DTYPES, ids=DTYPE_IDS)
def test_state_is_torch_dtype_sharing_the_kernels_memory(dtype, tdtype):
    p = torch.nn.Parameter(torch.ones(37, dtype=tdtype))
    ptr = p.data_ptr()
    opt = pt.AdamW([p], lr=0.1)
    for _ in range(3):
        p.grad = torch.full((37,), 0.5, dtype=tdtype)
        opt.step()
    assert p.data_ptr() == ptr and (p.detach().float() < 1).all()  # updated in place
    exp_avg = opt.state[p]["exp_avg"]
    assert exp_avg.dtype == tdtype
    core = opt._core.state[opt._views[p]]["exp_avg"]
    assert exp_avg.data_ptr() == core.ctypes.data  # the kernel's buffer itself
    exp_avg.zero_()  # an in-place edit reaches the kernel's state
    assert not core.astype(np.float32).any()
    master = pt.AdamW([p], lr=0.1, master_weights=True)
    p.grad = torch.full((37,), 0.5, dtype=tdtype)
    master.step()
    assert master.state[p]["master_param"].dtype == torch.float32
    assert torch.equal(master.state[p]["master_param"].to(tdtype), p.detach())  # the param is its rounding


# torch.optim's algorithms that take 16-bit params, with flags that change their formulas.
INTERCHANGE = [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True)), ("AdamW", dict(lr=0.01)),
               ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)), ("Adagrad", dict(lr=0.1)),
               ("Adadelta", dict(lr=1.0)), ("Adamax", dict(lr=0.01)), ("NAdam", dict(lr=0.01)),
               ("RAdam", dict(lr=0.01)), ("Rprop", dict(lr=0.01)), ("ASGD", dict(lr=0.01, t0=1))]


def _run_torch(opt, tps, grads):
    for step in grads:
        for t, g in zip(tps, step):
            t.grad = _tensor(g)
        opt.step()


@pytest.mark.parametrize("name,kw", INTERCHANGE, ids=[n for n, _ in INTERCHANGE])
def test_state_dict_interchange_both_ways_on_bf16(name, kw):
    """torch.optim's checkpoint of a bf16 model loads into the twin exactly (and resumes as pyoptk's
    NumPy API resumes it), the twin's into torch.optim exactly; the layouts are the same."""
    params, grads = _data(BF16)
    theirs = [torch.nn.Parameter(_tensor(p)) for p in params]
    topt = getattr(torch.optim, name)(_groups(theirs), **kw, foreach=False)
    _run_torch(topt, theirs, grads[:3])
    ours = [torch.nn.Parameter(_tensor(p)) for p in params]
    opt = getattr(pt, name)(_groups(ours), **kw)
    _run_twin(opt, ours, grads[:3])
    sd_t, sd_o = copy.deepcopy(topt.state_dict()), copy.deepcopy(opt.state_dict())
    sd_t["param_groups"] = [dict(g, foreach=None) for g in sd_t["param_groups"]]  # foreach=False above, None here
    assert sd_o["param_groups"] == sd_t["param_groups"]
    for i in sd_t["state"]:
        assert list(sd_o["state"][i]) == list(sd_t["state"][i])  # torch's keys, in torch's order
        for k, v in sd_t["state"][i].items():
            assert sd_o["state"][i][k].dtype == v.dtype and sd_o["state"][i][k].shape == v.shape, (i, k)
    # torch's checkpoint into the twin: its state exactly, then the NumPy API's resumed bits.
    into_ours_ps = [torch.nn.Parameter(t.detach().clone()) for t in theirs]
    into_ours = getattr(pt, name)(_groups(into_ours_ps), **kw)
    into_ours.load_state_dict(sd_t)
    for i, t in enumerate(into_ours_ps):
        for k, v in sd_t["state"][i].items():
            _bits_equal(_np(into_ours.state[t][k]), _np(v), f"{k} of param {i}")
    arrays = [_np(t).copy() for t in theirs]
    npopt = getattr(pyoptk, name)(_groups(arrays), **kw)
    npopt.load_state_dict(pyoptk.from_torch_state_dict(sd_t))
    _run_twin(into_ours, into_ours_ps, grads[3:])
    for step in grads[3:]:
        npopt.step(step)
    _same_as_numpy(into_ours, into_ours_ps, npopt, arrays)
    # The twin's checkpoint into torch.optim: exactly its state (torch casts 0-d scalars to bf16).
    into_torch_ps = [torch.nn.Parameter(t.detach().clone()) for t in ours]
    into_torch = getattr(torch.optim, name)(_groups(into_torch_ps), **kw, foreach=False)
    into_torch.load_state_dict(sd_o)
    for i, t in enumerate(into_torch_ps):
        for k, v in sd_o["state"][i].items():
            got = into_torch.state[t][k]
            assert torch.equal(got, v.to(got.dtype)), (i, k)
    _run_torch(into_torch, into_torch_ps, grads[3:])
    assert all(torch.isfinite(t).all() for t in into_torch_ps)


def test_master_weights_checkpoint_keeps_float32_through_torch_load():
    """torch's loader casts every state tensor to its param's dtype; the twin loads 16-bit params'
    state uncast, so the float32 master and moments survive its own round trip exactly."""
    p = torch.nn.Parameter(torch.linspace(-1, 1, 101).to(torch.bfloat16))
    opt = pt.Adam([p], lr=1e-3, master_weights=True, state_dtype="float32")
    for k in range(3):
        p.grad = torch.linspace(-1, 1, 101).to(torch.bfloat16) * (k + 1)
        opt.step()
    sd = copy.deepcopy(opt.state_dict())
    master = sd["state"][0]["master_param"]
    assert master.dtype == torch.float32 and not torch.equal(master, master.to(torch.bfloat16).float())
    again = pt.Adam([torch.nn.Parameter(p.detach().clone())], lr=1e-3, master_weights=True, state_dtype="float32")
    again.load_state_dict(sd)
    for k, v in sd["state"][0].items():
        assert torch.equal(again.state_dict()["state"][0][k], v), k
    with pytest.raises(ValueError, match="master_param"):  # a checkpoint without the master: refused, unchanged
        bad = copy.deepcopy(sd)
        del bad["state"][0]["master_param"]
        again.load_state_dict(bad)
    assert torch.equal(again.state[again.param_groups[0]["params"][0]]["master_param"], master)


def test_grad_scaler_on_float16_params_like_torch_fused():
    """torch.amp.GradScaler on CPU with fp16 params: the fused protocol (grad_scale / found_inf in
    the kernel) on both; an injected inf skips the step on both, and the scale follows the same
    path. Values agree within the stated 16-bit tolerance of test_torch_parity_mixed (float32 ulps
    at 16-bit rounding boundaries), the skipped step exactly."""
    def run(make):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(16, 8).to(torch.float16))
        opt = make([w])
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        x = torch.randn(32, 16)
        scales, snapshots = [], []
        for k in range(6):
            loss = (x @ w.float()).pow(2).mean()
            scaler.scale(loss).backward()
            if k == 3:
                w.grad[0, 0] = float("inf")  # overflow: this step must change nothing
            before = w.detach().clone()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
            scales.append(scaler.get_scale())
            snapshots.append(torch.equal(before, w.detach()))
        return w, opt, scales, snapshots

    ours, opt, our_scales, our_same = run(lambda ps: pt.Adam(ps, lr=0.01))
    theirs, topt, their_scales, their_same = run(lambda ps: torch.optim.Adam(ps, lr=0.01, fused=True))
    assert opt._step_supports_amp_scaling
    assert our_scales == their_scales and our_scales[3] == our_scales[2] / 2
    assert our_same == their_same == [False, False, False, True, False, False]
    assert float(opt.state[ours]["step"]) == topt.state[theirs]["step"].item() == 5
    np.testing.assert_allclose(ours.detach().double().numpy(), theirs.detach().double().numpy(), rtol=2.0 ** -6,
                               atol=1e-3)


def test_refusals_change_nothing():
    b = torch.nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))
    f = torch.nn.Parameter(torch.zeros(3))
    for name in REFUSING:  # their NumPy passes take float32/float64 arrays
        with pytest.raises(TypeError, match="bfloat16"):
            getattr(pt, name)([torch.nn.Parameter(torch.zeros(3, 3, dtype=torch.bfloat16))])
    with pytest.raises(TypeError, match="mixes dtypes"):
        pt.Adam([b, f])
    opt = pt.Adam([f], lr=0.1)
    with pytest.raises(TypeError, match="mixes dtypes"):
        opt.add_param_group({"params": [b, torch.nn.Parameter(torch.zeros(2))]})
    assert len(opt.param_groups) == 1 and len(opt._core.param_groups) == 1
    with pytest.raises(ValueError, match="state_dtype"):
        pt.Adam([b], state_dtype="float16")
    with pytest.raises(TypeError):
        pt.Adam([b], master_weight=True)  # a misspelt option is not swallowed
    # A grad torch's setter refuses (bf16 on a float32 param) cannot reach the step; one that
    # bypasses it (assigned through .data) is refused by the step, before anything is written.
    with pytest.raises(RuntimeError):
        f.grad = torch.ones(3, dtype=torch.bfloat16)
    f.grad = torch.ones(3)
    f.grad.data = torch.ones(3, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="param 0's grad is torch.bfloat16, the param torch.float32"):
        opt.step()
    assert not f.detach().any() and f not in opt.state
    # A non-contiguous bf16 grad: refused with the param named, nothing written.
    opt16 = pt.Adam([b], lr=0.1)
    b.grad = torch.ones(3, 2, dtype=torch.bfloat16)[:, 0]
    with pytest.raises(ValueError, match="param 0's grad is not contiguous"):
        opt16.step()
    assert not b.detach().any() and b not in opt16.state


def _bits(t: torch.Tensor) -> np.ndarray:
    return _np(t).view(np.uint16)


@pytest.mark.parametrize("precision", PRECISIONS, ids=PRECISION_IDS)
@pytest.mark.parametrize("dtype,tdtype", DTYPES, ids=DTYPE_IDS)
def test_sparse_adam_muon_lbfgs_twins_on_16bit_params_match_the_numpy_api(dtype, tdtype, precision):
    """The multi-pass algorithms' twins on 16-bit params, each with its own kind of data: an
    embedding's sparse grads (SparseAdam), matrices (Muon), a closure (LBFGS)."""
    rng = np.random.default_rng(4)
    # SparseAdam on an embedding: repeated rows in a batch, summed as torch coalesces them.
    emb = torch.nn.Embedding(11, 6, sparse=True).to(tdtype)
    table = _np(emb.weight).copy()
    opt, ref = pt.SparseAdam(emb.parameters(), lr=0.1, **precision), pyoptk.SparseAdam([table], lr=0.1, **precision)
    for _ in range(STEPS):
        opt.zero_grad()
        (emb(torch.from_numpy(rng.integers(0, 11, 5))).float() * 3).sum().backward()
        g = emb.weight.grad.coalesce()
        ref.step([pyoptk.SparseGrad(g.indices()[0].numpy().copy(), _np(g.values()).copy())])
        opt.step()
    np.testing.assert_array_equal(_bits(emb.weight), table.view(np.uint16), err_msg="SparseAdam")
    # Muon on two matrices.
    ws = [torch.nn.Parameter(_tensor(rng.standard_normal(s).astype(dtype))) for s in ((7, 5), (33, 17))]
    arrays = [_np(w).copy() for w in ws]
    opt, ref = pt.Muon(ws, lr=0.02, **precision), pyoptk.Muon(arrays, lr=0.02, **precision)
    for _ in range(STEPS):
        grads = [rng.standard_normal(a.shape).astype(dtype) for a in arrays]
        for w, g in zip(ws, grads):
            w.grad = _tensor(g)
        opt.step()
        ref.step(grads)
    for w, a in zip(ws, arrays):
        np.testing.assert_array_equal(_bits(w), a.view(np.uint16), err_msg="Muon")
    # LBFGS on a quadratic: torch's backward of w.float() rounds 2 (w - 1) to the param dtype,
    # as the NumPy closure does.
    w = torch.nn.Parameter(_tensor(rng.standard_normal(9).astype(dtype)))
    a = _np(w).copy()
    if precision.get("master_weights") and precision.get("state_dtype") is None:
        precision = dict(precision, state_dtype="float32")  # LBFGS's history is float32 only
    opt = pt.LBFGS([w], lr=0.5, max_iter=4, **precision)
    ref = pyoptk.LBFGS([a], lr=0.5, max_iter=4, **precision)

    def closure():
        opt.zero_grad()
        loss = ((w.float() - 1) ** 2).sum()
        loss.backward()
        return loss

    def ref_closure():
        x = a.astype(np.float32)
        return float(((x - 1) ** 2).sum()), [(2 * (x - 1)).astype(dtype)]

    for _ in range(3):
        opt.step(closure)
        ref.step(ref_closure)
    np.testing.assert_array_equal(_bits(w), a.view(np.uint16), err_msg="LBFGS")
