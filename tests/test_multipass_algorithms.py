"""SparseAdam, Adafactor, Muon, LBFGS: every ISA x thread count bit-identical, NumPy reference
(SparseAdam), torch 2.13 parity, state_dict round trips (ours and torch's), bad inputs."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import pyoptk
from cases import ADAFACTOR, ADAFACTOR_IDS, LBFGS_RUNS, MUON, MUON_IDS, SPARSE_ADAM_MAXIMIZE
from pyoptk import SparseGrad

torch = pytest.importorskip("torch")

ISAS = pyoptk.available_isas()
STEPS_N = 6


def _close(got, want, rtol, atol, msg=""):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, err_msg=msg)


def _np_state(sd):
    """A torch state_dict with tensors (also inside lists) made NumPy arrays."""
    def conv(v):
        if torch.is_tensor(v):
            return v.detach().numpy().copy()
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v
    return {"param_groups": copy.deepcopy(sd["param_groups"]),
            "state": {i: {k: conv(v) for k, v in s.items()} for i, s in sd["state"].items()}}


def _tensor_state(v):
    if torch.is_tensor(v):
        return v.detach().numpy()
    return v


# ----- SparseAdam -------------------------------------------------------------------------------
def _sparse_grads(rng, rows, cols, steps, dtype, empty_at=None):
    out = []
    for k in range(steps):
        n = 0 if k == empty_at else int(rng.integers(1, rows + 3))
        idx = rng.integers(0, rows - 1, n)  # the last row is never touched; repeats are likely
        out.append(SparseGrad(idx, rng.standard_normal((n, cols)).astype(dtype)))
    return out


def _sparse_reference(p, grads, lr, betas, eps, maximize):
    """Float64 NumPy SparseAdam (torch's _functional.sparse_adam)."""
    p = p.astype(np.float64)
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        if g.values.size == 0:
            continue
        rows = np.unique(g.indices)
        vals = np.zeros((rows.size, p.shape[1]))
        np.add.at(vals, np.searchsorted(rows, g.indices), g.values.astype(np.float64))
        vals = -vals if maximize else vals
        m[rows] += (vals - m[rows]) * (1 - betas[0])
        v[rows] += (vals * vals - v[rows]) * (1 - betas[1])
        step_size = lr * (1 - betas[1] ** t) ** 0.5 / (1 - betas[0] ** t)
        p[rows] += (m[rows] / (np.sqrt(v[rows]) + eps)) * -step_size
    return p, m, v


def _torch_sparse(g, tp):
    return torch.sparse_coo_tensor(torch.tensor(g.indices)[None], torch.tensor(g.values), tp.shape,
                                   check_invariants=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("maximize", SPARSE_ADAM_MAXIMIZE)
def test_sparse_adam_isas_reference_torch(dtype, maximize, kernel_config):
    rng = np.random.default_rng(0)
    rows, cols = 40, 37
    p0 = rng.standard_normal((rows, cols)).astype(dtype)
    grads = _sparse_grads(rng, rows, cols, STEPS_N, dtype, empty_at=2)
    kw = dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, maximize=maximize)
    first = None
    for isa in ISAS:
        for threads in (1, 2):
            kernel_config(isa, threads)
            p = p0.copy()
            opt = pyoptk.SparseAdam([p], **kw)
            for g in grads:
                opt.step([g])
            if first is None:
                first, fstate = p, opt.state[p]
            else:
                assert np.array_equal(p, first), f"{isa}/{threads}"
                for key in ("exp_avg", "exp_avg_sq"):
                    assert np.array_equal(opt.state[p][key], fstate[key]), f"{isa}/{threads} {key}"
    assert fstate["step"] == STEPS_N
    assert np.array_equal(first[-1], p0[-1]) and not fstate["exp_avg"][-1].any()  # untouched row
    ref_p, ref_m, ref_v = _sparse_reference(p0, grads, **kw)
    tol = dict(rtol=1e-14, atol=1e-15) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-6)
    _close(first, ref_p, msg="param", **tol)
    _close(fstate["exp_avg"], ref_m, msg="exp_avg", **tol)
    _close(fstate["exp_avg_sq"], ref_v, msg="exp_avg_sq", **tol)
    # torch: same plain-op order, so within an ulp or two (its sqrt may be 1 ulp off IEEE; its
    # coalesce may sum 3+ repeats in another order)
    tp = torch.tensor(p0.copy())
    topt = torch.optim.SparseAdam([tp], **kw)
    for g in grads:
        tp.grad = _torch_sparse(g, tp)
        topt.step()
    tol = dict(rtol=1e-14, atol=1e-15) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-7)
    _close(first, tp.detach().numpy(), msg="torch param", **tol)
    for key in ("exp_avg", "exp_avg_sq"):
        _close(fstate[key], topt.state[tp][key].numpy(), msg=key, **tol)
    assert fstate["step"] == topt.state[tp]["step"]


def test_sparse_adam_bad_inputs_change_nothing():
    p = np.ones((5, 3))
    q = np.ones((4, 2))
    opt = pyoptk.SparseAdam([q, p])
    opt.step([None, SparseGrad([0, 0, 4], np.ones((3, 3)))])
    before = copy.deepcopy(opt.state_dict()), p.copy()
    good = SparseGrad([1], np.ones((1, 2)))
    bad = [
        (RuntimeError, "does not support dense gradients", np.ones((5, 3))),
        (IndexError, "out of range", SparseGrad([5], np.ones((1, 3)))),
        (IndexError, "out of range", SparseGrad([-1], np.ones((1, 3)))),
        (TypeError, "integer dtype", SparseGrad([0.0], np.ones((1, 3)))),
        (ValueError, "must be 1-D", SparseGrad([[0]], np.ones((1, 3)))),
        (ValueError, "expected \\(2, 3\\)", SparseGrad([0, 1], np.ones((1, 3)))),
        (TypeError, "float32", SparseGrad([0], np.ones((1, 3), np.float32))),
    ]
    for exc, msg, g in bad:
        with pytest.raises(exc, match=msg):
            opt.step([good, g])  # the first param's grad is fine: it must not be applied either
        sd = opt.state_dict()
        assert sd["state"].keys() == before[0]["state"].keys() and np.array_equal(p, before[1])
        assert np.array_equal(q, np.ones((4, 2))) and sd["state"][1]["step"] == 1 and 0 not in sd["state"]
    with pytest.raises(ValueError, match="Invalid learning rate"):
        pyoptk.SparseAdam([p], lr=0.0)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        pyoptk.SparseAdam([p], betas=(0.9, 1.0))


def test_sparse_adam_state_dicts():
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal((12, 4))
    grads = _sparse_grads(rng, 12, 4, 8, np.float64)
    a, b = p0.copy(), p0.copy()
    opt = pyoptk.SparseAdam([a], lr=0.05)
    for g in grads[:4]:
        opt.step([g])
    saved, b[:] = copy.deepcopy(opt.state_dict()), a
    opt2 = pyoptk.SparseAdam([b], lr=0.05)
    opt2.load_state_dict(saved)
    tp = torch.tensor(p0.copy())
    topt = torch.optim.SparseAdam([tp], lr=0.05)
    for g in grads[:4]:
        tp.grad = _torch_sparse(g, tp)
        topt.step()
    c = tp.detach().numpy().copy()
    opt3 = pyoptk.SparseAdam([c], lr=0.05)
    opt3.load_state_dict(_np_state(topt.state_dict()))
    for g in grads[4:]:
        opt.step([g])
        opt2.step([g])
        opt3.step([g])
        tp.grad = _torch_sparse(g, tp)
        topt.step()
    assert np.array_equal(a, b)
    _close(c, tp.detach().numpy(), 1e-14, 1e-15)


# ----- Adafactor --------------------------------------------------------------------------------
ADAFACTOR_CASES = ADAFACTOR
SHAPES = [(7,), (5, 9), (2, 3, 17), (1,), (33, 4)]


def _dense(rng, shapes, dtype, steps=STEPS_N):
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    return params, grads


def _torch_pair(cls_name, kw, params, grads, steps, dtype, groups=False):
    tp = [torch.tensor(p.copy()) for p in params]
    topt = getattr(torch.optim, cls_name)(tp, **kw)
    for k in range(steps):
        for t, g in zip(tp, grads[k]):
            t.grad = torch.tensor(g)
        topt.step()
    return tp, topt


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kw", ADAFACTOR_CASES, ids=ADAFACTOR_IDS)
def test_adafactor_isas_and_torch(kw, dtype, kernel_config):
    rng = np.random.default_rng(2)
    params, grads = _dense(rng, SHAPES, dtype)
    first = None
    for isa in ISAS:
        for threads in (1, 2):
            kernel_config(isa, threads)
            mine = [p.copy() for p in params]
            opt = pyoptk.Adafactor(mine, **kw)
            for k in range(STEPS_N):
                opt.step(grads[k])
            if first is None:
                first, fopt = mine, opt
                continue
            for a, b in zip(first, mine):
                assert np.array_equal(a, b), f"{isa}/{threads}"
                for key, v in fopt.state[a].items():
                    assert np.array_equal(v, opt.state[b][key]), key
    tp, topt = _torch_pair("Adafactor", kw, params, grads, STEPS_N, dtype)
    # float64: NumPy and torch sum the norms/means in other orders (last bits), and torch's
    # vectorised sqrt is not always correctly rounded. float32: the same, at float32's precision,
    # amplified through RMS(p) and RMS(U) over 6 steps.
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for i, (a, t) in enumerate(zip(first, tp)):
        _close(a, t.detach().numpy(), msg=f"param {i}", **tol)
        tstate = topt.state[t]
        assert set(fopt.state[a]) == set(tstate)
        for key, v in tstate.items():
            _close(fopt.state[a][key], _tensor_state(v), msg=f"{key} of {i}", **tol)


def test_adafactor_state_dicts_and_bad_inputs():
    rng = np.random.default_rng(3)
    params, grads = _dense(rng, SHAPES[:3], np.float64, steps=8)
    live = [p.copy() for p in params]
    opt = pyoptk.Adafactor(live, weight_decay=0.01)
    for k in range(4):
        opt.step(grads[k])
    saved, fresh = copy.deepcopy(opt.state_dict()), [p.copy() for p in live]
    opt2 = pyoptk.Adafactor(fresh, weight_decay=0.01)
    opt2.load_state_dict(saved)
    tp, topt = _torch_pair("Adafactor", dict(weight_decay=0.01), params, grads, 4, np.float64)
    from_torch = [t.detach().numpy().copy() for t in tp]
    opt3 = pyoptk.Adafactor(from_torch, weight_decay=0.01)
    opt3.load_state_dict(_np_state(topt.state_dict()))
    # a refused step (bad grad on the last param) changes nothing
    snap = copy.deepcopy(opt.state_dict()), [p.copy() for p in live]
    for bad in (np.ones((3, 3)), np.ones(SHAPES[2], np.float32), [1.0]):
        with pytest.raises((ValueError, TypeError)):
            opt.step(grads[4][:2] + [bad])
        assert all(np.array_equal(a, b) for a, b in zip(live, snap[1]))
        for key, s in opt.state_dict()["state"].items():
            assert s["step"] == snap[0]["state"][key]["step"]
            assert all(np.array_equal(v, snap[0]["state"][key][n]) for n, v in s.items())
    for k in range(4, 8):
        opt.step(grads[k])
        opt2.step(grads[k])
        opt3.step(grads[k])
        for t, g in zip(tp, grads[k]):
            t.grad = torch.tensor(g)
        topt.step()
    for a, b, c, t in zip(live, fresh, from_torch, tp):
        assert np.array_equal(a, b)
        _close(c, t.detach().numpy(), 1e-12, 1e-14)
    for kw in (dict(lr=-1), dict(beta2_decay=0.1), dict(eps=(-1, 1e-3)), dict(eps=(None, -1)), dict(d=0.5),
               dict(weight_decay=-1)):
        with pytest.raises(ValueError) as mine:
            pyoptk.Adafactor([np.zeros(3)], **kw)
        with pytest.raises(ValueError) as theirs:
            torch.optim.Adafactor([torch.zeros(3)], **kw)
        assert str(mine.value) == str(theirs.value)


# ----- Muon -------------------------------------------------------------------------------------
MUON_CASES = MUON
MUON_SHAPES = [(6, 10), (12, 5), (7, 7)]


def _torch_ns_in_dtype(grad, ns_coefficients, ns_steps, eps):
    """torch's _zeropower_via_newtonschulz with the bfloat16 cast removed (for tight parity)."""
    a, b, c = ns_coefficients
    x = grad.T if grad.size(0) > grad.size(1) else grad.clone()
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        gram_update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, gram_update, x, beta=a)
    return x.T if grad.size(0) > grad.size(1) else x


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kw", MUON_CASES, ids=MUON_IDS)
def test_muon_isas_and_torch(kw, dtype, kernel_config, monkeypatch):
    rng = np.random.default_rng(4)
    params, grads = _dense(rng, MUON_SHAPES, dtype)
    first = None
    for isa in ISAS:
        for threads in (1, 2):
            kernel_config(isa, threads)
            mine = [p.copy() for p in params]
            opt = pyoptk.Muon(mine, **kw)
            for k in range(STEPS_N):
                opt.step(grads[k])
            if first is None:
                first, fopt = mine, opt
                continue
            for a, b in zip(first, mine):
                assert np.array_equal(a, b) and np.array_equal(
                    fopt.state[a]["momentum_buffer"], opt.state[b]["momentum_buffer"]), f"{isa}/{threads}"
    # 1) torch as shipped: NS in bfloat16 (8-bit mantissa), so each update differs by up to ~1e-2
    #    relative; the param drifts by about lr * 1e-2 per step.
    tp, topt = _torch_pair("Muon", kw, params, grads, STEPS_N, dtype)
    lr = kw.get("lr", 1e-3) * 0.2 * 12 ** 0.5 * 2
    for a, t in zip(first, tp):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=0, atol=lr * STEPS_N * 2e-2)
        _close(fopt.state[a]["momentum_buffer"], topt.state[t]["momentum_buffer"].numpy(), 1e-12
               if dtype == np.float64 else 1e-6, 1e-7)
    # 2) torch with its NS run in the param dtype: everything else (momentum lerp, lr adjustment,
    #    weight decay) matches tightly; float64 differs by the matmul summation orders only.
    monkeypatch.setattr(torch.optim._muon, "_zeropower_via_newtonschulz", _torch_ns_in_dtype)
    tp, topt = _torch_pair("Muon", kw, params, grads, STEPS_N, dtype)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for a, t in zip(first, tp):
        _close(a, t.detach().numpy(), **tol)


def test_muon_state_dicts_and_bad_inputs():
    rng = np.random.default_rng(5)
    params, grads = _dense(rng, MUON_SHAPES, np.float64, steps=8)
    live = [p.copy() for p in params]
    opt = pyoptk.Muon(live, lr=0.01)
    for k in range(4):
        opt.step(grads[k])
    saved, fresh = copy.deepcopy(opt.state_dict()), [p.copy() for p in live]
    opt2 = pyoptk.Muon(fresh, lr=0.01)
    opt2.load_state_dict(saved)
    tp, topt = _torch_pair("Muon", dict(lr=0.01), params, grads, 4, np.float64)
    from_torch = [t.detach().numpy().copy() for t in tp]
    opt3 = pyoptk.Muon(from_torch, lr=0.01)
    opt3.load_state_dict(_np_state(topt.state_dict()))
    for bad in (np.ones((3, 3)), np.ones(MUON_SHAPES[2], np.float32)):
        snap = [p.copy() for p in live]
        with pytest.raises((ValueError, TypeError)):
            opt.step(grads[4][:2] + [bad])
        assert all(np.array_equal(a, b) for a, b in zip(live, snap))
    for k in range(4, 8):
        opt.step(grads[k])
        opt2.step(grads[k])
        opt3.step(grads[k])
    ref = [p.copy() for p in from_torch]
    for a, b in zip(live, fresh):
        assert np.array_equal(a, b)
    assert not np.array_equal(ref[0], params[0])
    with pytest.raises(ValueError, match="only supports 2D parameters"):
        pyoptk.Muon([np.zeros((2, 3)), np.zeros(3)])
    with pytest.raises(ValueError, match="only supports 2D parameters"):
        opt.add_param_group({"params": [np.zeros((2, 2, 2))]})
    for kw in (dict(lr=-1), dict(momentum=-1), dict(weight_decay=-1), dict(adjust_lr_fn="x")):
        with pytest.raises(ValueError) as mine:
            pyoptk.Muon([np.zeros((2, 3))], **kw)
        with pytest.raises(ValueError) as theirs:
            torch.optim.Muon([torch.zeros((2, 3))], **kw)
        assert str(mine.value) == str(theirs.value)


# ----- LBFGS ------------------------------------------------------------------------------------
def _rosenbrock(x):
    a, b = x[0], x[1]
    return (1 - a) ** 2 + 100 * (b - a * a) ** 2


def _rosenbrock_grad(x):
    a, b = x[0], x[1]
    return np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])


def _run_lbfgs_pair(kw, outer):
    x = np.array([-1.5, 2.0])
    opt = pyoptk.LBFGS([x], **kw)
    tx = torch.tensor([-1.5, 2.0], dtype=torch.float64)
    topt = torch.optim.LBFGS([tx], **kw)

    def closure():
        return _rosenbrock(x), [_rosenbrock_grad(x)]

    def tclosure():  # the same analytic gradient (autograd would round differently)
        v = tx.detach().numpy()
        tx.grad = torch.tensor(_rosenbrock_grad(v))
        return torch.tensor(_rosenbrock(v))

    traj, ttraj = [], []
    for _ in range(outer):
        opt.step(closure)
        topt.step(tclosure)
        traj.append(x.copy())
        ttraj.append(tx.detach().numpy().copy())
    return x, tx, opt, topt, traj, ttraj


@pytest.mark.parametrize("line_search_fn, lr, outer", LBFGS_RUNS)
def test_lbfgs_rosenbrock_like_torch(line_search_fn, lr, outer):
    kw = dict(lr=lr, max_iter=20, history_size=10, line_search_fn=line_search_fn)
    x, tx, opt, topt, traj, ttraj = _run_lbfgs_pair(kw, outer)
    # float64 and the same analytic gradient; dot products through our fixed-order reduction and
    # add(alpha) as an fma, which is what torch computes for these short vectors: the whole
    # trajectory agrees (bit for bit on this machine; 1e-12 leaves room for another BLAS in torch).
    for k, (a, b) in enumerate(zip(traj, ttraj)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=f"outer step {k}")
    np.testing.assert_allclose(tx.numpy(), [1.0, 1.0], atol=1e-4)
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-4)
    mine, theirs = opt.state[x], topt.state[tx]
    assert abs(mine["n_iter"] - theirs["n_iter"]) <= 1 and abs(mine["func_evals"] - theirs["func_evals"]) <= 1
    assert set(mine) == set(theirs)


def test_lbfgs_state_dicts_and_bad_inputs():
    kw = dict(lr=1, max_iter=4, history_size=5, line_search_fn="strong_wolfe")
    x, tx, opt, topt, _, _ = _run_lbfgs_pair(kw, 2)
    y = x.copy()
    opt2 = pyoptk.LBFGS([y], **kw)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    z = tx.detach().numpy().copy()
    opt3 = pyoptk.LBFGS([z], **kw)
    opt3.load_state_dict(_np_state(topt.state_dict()))
    for o, v in ((opt, x), (opt2, y), (opt3, z)):
        for _ in range(2):
            o.step(lambda v=v: (_rosenbrock(v), [_rosenbrock_grad(v)]))
    assert np.array_equal(x, y)
    np.testing.assert_allclose(z, x, rtol=1e-9)
    with pytest.raises(TypeError, match="closure"):
        opt.step()
    with pytest.raises(ValueError, match="parameter groups"):
        pyoptk.LBFGS([{"params": [np.zeros(2)]}, {"params": [np.zeros(2)]}])
    with pytest.raises(ValueError, match="Invalid learning rate"):
        pyoptk.LBFGS([np.zeros(2)], lr=-1)
    with pytest.raises(ValueError, match="strong_wolfe"):
        pyoptk.LBFGS([np.zeros(2)], line_search_fn="armijo")


def test_lbfgs_multiple_params_match_single_vector():
    """Flattening: two params behave as their concatenation."""
    def f(v):
        return float(np.sum((v - np.arange(v.size)) ** 2 * (1 + np.arange(v.size))))

    def grad(v):
        return 2 * (v - np.arange(v.size)) * (1 + np.arange(v.size))

    v = np.linspace(-1, 1, 7)
    a, b = v[:3].copy(), v[3:].copy()
    o1 = pyoptk.LBFGS([v], max_iter=5, line_search_fn="strong_wolfe")
    o2 = pyoptk.LBFGS([a, b], max_iter=5, line_search_fn="strong_wolfe")

    def c2():
        g = grad(np.concatenate([a, b]))
        return f(np.concatenate([a, b])), [g[:3], g[3:]]

    o1.step(lambda: (f(v), [grad(v)]))
    o2.step(c2)
    assert np.array_equal(np.concatenate([a, b]), v)


def test_exports():
    for name in ("SparseAdam", "SparseGrad", "Adafactor", "Muon", "LBFGS"):
        assert getattr(pyoptk, name) is getattr(pyoptk.optim, name)
    for name in ("sparse_adam", "adafactor", "muon"):
        assert callable(getattr(pyoptk.functional, name))


# ----- two param groups, an lr change mid-run, zero gradient entries, against torch -------------
def _groups(params, lr):
    return [{"params": params[:2]}, {"params": params[2:], "lr": lr * 3}]


def _lockstep_with_torch(make_ours, make_theirs, params, grads, to_torch_grad, monkeypatch=None):
    ours_params = [p.copy() for p in params]
    theirs_params = [torch.tensor(p.copy()) for p in params]
    ours, theirs = make_ours(ours_params), make_theirs(theirs_params)
    for k, step in enumerate(grads):
        if k == len(grads) // 2:
            for opt in (ours, theirs):
                opt.param_groups[0]["lr"] *= 0.5
        ours.step(step)
        for t, g in zip(theirs_params, step):
            t.grad = to_torch_grad(g, t)
        theirs.step()
    return ours_params, [t.numpy() for t in theirs_params]


def test_adafactor_groups_lr_change_zero_grads_like_torch():
    rng = np.random.default_rng(11)
    params, grads = _dense(rng, SHAPES, np.float64, steps=8)
    for step in grads:
        step[0][..., 0] = 0.0  # zero gradient entries
    ours, theirs = _lockstep_with_torch(lambda ps: pyoptk.Adafactor(_groups(ps, 0.01), lr=0.01),
                                        lambda ps: torch.optim.Adafactor(_groups(ps, 0.01), lr=0.01),
                                        params, grads, lambda g, t: torch.tensor(g))
    for a, b in zip(ours, theirs):
        _close(a, b, 1e-12, 1e-14)  # float64: only reduction orders differ (see above)


def test_muon_groups_lr_change_zero_grads_like_torch(monkeypatch):
    monkeypatch.setattr(torch.optim._muon, "_zeropower_via_newtonschulz", _torch_ns_in_dtype)
    rng = np.random.default_rng(12)
    params, grads = _dense(rng, MUON_SHAPES, np.float64, steps=8)
    for step in grads:
        step[0][0, :] = 0.0
    ours, theirs = _lockstep_with_torch(lambda ps: pyoptk.Muon(_groups(ps, 0.02), lr=0.02),
                                        lambda ps: torch.optim.Muon(_groups(ps, 0.02), lr=0.02),
                                        params, grads, lambda g, t: torch.tensor(g))
    for a, b in zip(ours, theirs):
        _close(a, b, 1e-12, 1e-13)  # torch's NS run in float64 too: only matmul orders differ


def test_sparse_adam_groups_lr_change_zero_grads_like_torch():
    rng = np.random.default_rng(13)
    shapes = [(20, 6), (9, 4), (15, 3)]
    params = [rng.standard_normal(s) for s in shapes]
    grads = []
    for _ in range(8):
        step = []
        for rows, cols in shapes:
            idx = rng.integers(0, rows, 6)
            values = rng.standard_normal((6, cols))
            values[0] = 0.0  # a touched row whose gradient is zero
            step.append(SparseGrad(idx, values))
        grads.append(step)
    ours, theirs = _lockstep_with_torch(lambda ps: pyoptk.SparseAdam(_groups(ps, 0.01), lr=0.01),
                                        lambda ps: torch.optim.SparseAdam(_groups(ps, 0.01), lr=0.01),
                                        params, grads, _torch_sparse)
    for a, b in zip(ours, theirs):
        _close(a, b, 1e-14, 1e-15)


def test_lbfgs_lr_change_mid_run_like_torch():
    kw = dict(lr=0.5, max_iter=5, history_size=5)
    x = np.array([-1.2, 1.0])
    tx = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    opt, topt = pyoptk.LBFGS([x], **kw), torch.optim.LBFGS([tx], **kw)

    def tclosure():
        v = tx.detach().numpy()
        tx.grad = torch.tensor(_rosenbrock_grad(v))
        return torch.tensor(_rosenbrock(v))

    for k in range(8):
        if k == 4:
            opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = 0.1
        opt.step(lambda: (_rosenbrock(x), [_rosenbrock_grad(x)]))
        topt.step(tclosure)
        np.testing.assert_allclose(x, tx.numpy(), rtol=1e-12, atol=1e-15, err_msg=f"outer step {k}")


def test_sparse_adam_refusal_on_a_later_param_leaves_earlier_params_untouched():
    """A problem only C++ sees (here a read-only state of the second param, in the functional API)
    is found before any row of any param is written."""
    a, b = np.ones((4, 3)), np.ones((5, 3))
    m = [np.zeros_like(a), np.zeros_like(b)]
    v = [np.zeros_like(a), np.zeros_like(b)]
    v[1].flags.writeable = False
    grads = [SparseGrad(np.array([0, 2]), np.ones((2, 3))), SparseGrad(np.array([1]), np.ones((1, 3)))]
    with pytest.raises(ValueError, match="param 1 exp_avg_sq is read-only"):
        pyoptk.functional.sparse_adam([a, b], grads, m, v, [1, 1], eps=1e-8, beta1=0.9, beta2=0.999, lr=0.1,
                                      maximize=False)
    assert np.array_equal(a, np.ones((4, 3))) and not m[0].any() and not v[0].any()
