"""pyoptk against torch.optim itself (runs when torch is installed): same classes, same
hyper-parameters, two param groups, an lr change mid-run and zero gradient entries; special
values as torch; and pyoptk.torch's twins of the algorithms beyond torch.optim against the NumPy API.
(The multi-pass algorithms: test_multipass_algorithms.py; 16-bit: test_torch_parity_mixed.py.)"""
import copy

import numpy as np
import pytest

import pyoptk
from cases import BEYOND_TORCH, SCHEDULE_FREE, TORCH_OPTIM, TORCH_OPTIM_TORCH_TOL, ids
from problems import STEPS, close, problem, random_grads, run_steps

torch = pytest.importorskip("torch")

CONFIGS = [
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True, betas=(0.2, 0.9))),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
]
SHAPES = [(7, 5), (33,), (1,)]
STEPS = 20
# Same formula and op order as torch's kernels; torch's own for-loop and fused paths differ from
# each other by a few ulp (where they fuse or contract a*b+c), so we bound by that, relative to
# the values' scale: float64 1e-13, float32 2e-6 (about 16 float32 ulp).
TOL = {np.float64: 1e-13, np.float32: 2e-6}


def _grads(dtype):
    rng = np.random.default_rng(7)
    out = []
    for _ in range(STEPS):
        step = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
        step[0][0, :] = 0  # zero gradient entries
        out.append(step)
    return out


def _run_both(name, hyper, dtype, impl):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tensors = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], "lr": hyper["lr"] * 3}]
    ours = getattr(pyoptk, name)(groups(arrays), **hyper)
    theirs = getattr(torch.optim, name)(groups(tensors), **hyper, **impl)
    for k, step in enumerate(_grads(dtype)):
        if k == STEPS // 2:  # lr change mid-run
            for o in (ours, theirs):
                o.param_groups[0]["lr"] *= 0.5
        ours.step(step)
        for t, g in zip(tensors, step):
            t.grad = torch.from_numpy(g.copy())
        theirs.step()
    return arrays, [t.detach().numpy() for t in tensors], ours, theirs


@pytest.mark.parametrize("impl", [dict(foreach=False), dict(fused=True)], ids=["for-loop", "fused"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name, hyper", CONFIGS, ids=lambda x: x if isinstance(x, str) else "")
def test_matches_torch(name, hyper, dtype, impl):
    ours, theirs, opt, topt = _run_both(name, hyper, dtype, impl)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * np.abs(b).max())
    for p, t in zip(opt.param_groups[0]["params"], topt.param_groups[0]["params"]):
        ts = topt.state[t]
        for key, value in opt.state[p].items():
            if key == "step":
                assert value == ts[key].item()
            else:
                ref = ts[key].numpy()
                np.testing.assert_allclose(value, ref, rtol=0, atol=TOL[dtype] * max(np.abs(ref).max(), 1e-30))


@pytest.mark.parametrize("name, hyper", CONFIGS, ids=lambda x: x if isinstance(x, str) else "")
def test_torch_state_dict_loads_and_continues(name, hyper):
    """A torch checkpoint, with tensors turned into arrays by a dictionary walk, resumes here."""
    _, _, _, topt = _run_both(name, hyper, np.float64, dict(foreach=False))
    tensors = [p for g in topt.param_groups for p in g["params"]]
    sd = copy.deepcopy(topt.state_dict())
    convert = lambda v: v.numpy() if isinstance(v, torch.Tensor) else v
    sd = {"state": {i: {k: convert(v) for k, v in s.items()} for i, s in sd["state"].items()},
          "param_groups": sd["param_groups"]}
    arrays = [t.detach().numpy().copy() for t in tensors]
    ours = getattr(pyoptk, name)([{"params": arrays[:2]}, {"params": arrays[2:]}], **hyper)
    ours.load_state_dict(sd)
    for g in _grads(np.float64)[:5]:
        ours.step(g)
        for t, gi in zip(tensors, g):
            t.grad = torch.from_numpy(gi.copy())
        topt.step()
    for a, t in zip(arrays, tensors):
        b = t.detach().numpy()
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL[np.float64] * np.abs(b).max())


# ----- torch.optim's other element-wise algorithms: two groups, an lr change mid-run ---------
def _torch_run(name, kw, params, grads, lrs, dtype):
    """Two param groups (the second with lr*0.5); group lr set to lrs[k] before step k."""
    torch = pytest.importorskip("torch")
    tp = [torch.tensor(p.copy()) for p in params]
    groups = [{"params": tp[:2]}, {"params": tp[2:], "lr": kw.get("lr", 1e-2) * 0.5}]
    opt = getattr(torch.optim, name)(groups, foreach=False, **kw)
    return torch, tp, opt


def _set_lr(opt, factor):
    for i, group in enumerate(opt.param_groups):
        group["lr"] = factor * (1.0 if i == 0 else 0.5) * 0.01


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw", TORCH_OPTIM, ids=ids(TORCH_OPTIM))
def test_torch_optim_parity(name, kw, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    sizes = [5, 33, 1, 130]
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [random_grads(rng, n, STEPS, dtype) for n in sizes]
    kw = dict(kw, lr=0.01)
    mine = [p.copy() for p in params]
    opt = getattr(pyoptk, name)([{"params": mine[:2]}, {"params": mine[2:], "lr": 0.005}], **kw)
    _, tp, topt = _torch_run(name, kw, params, grads, None, dtype)
    for k in range(STEPS):
        factor = 1.0 if k < 4 else 0.3  # an lr change mid-run
        _set_lr(opt, factor)
        _set_lr(topt, factor)
        for t, g in zip(tp, grads):
            t.grad = torch.tensor(g[k])
        topt.step()
        opt.step([g[k] for g in grads])
    for k, (a, t) in enumerate(zip(mine, tp)):
        close(a, t.detach().numpy(), TORCH_OPTIM_TORCH_TOL[dtype], f"param {k}")
        tstate = topt.state[t]
        assert set(opt.state[a]) == set(tstate)
        for key, value in tstate.items():
            close(opt.state[a][key], value.numpy(), TORCH_OPTIM_TORCH_TOL[dtype], f"state {key} of param {k}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted({n for n, _ in TORCH_OPTIM}))
def test_special_values_like_torch(name, dtype):
    """NaN, ±inf, ±0 and products that underflow (Rprop's sign of g * prev) give torch's results."""
    torch = pytest.importorskip("torch")
    tiny = 1e-30 if dtype == np.float32 else 1e-200
    vals = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, tiny, -tiny, 1.0, -2.0] * 3, dtype)
    p = np.linspace(-1, 1, vals.size).astype(dtype)
    mine, tp = p.copy(), torch.tensor(p.copy())
    opt, topt = getattr(pyoptk, name)([mine]), getattr(torch.optim, name)([tp], foreach=False)
    rng = np.random.default_rng(0)
    for k in range(4):
        g = vals[rng.permutation(vals.size)] if k % 2 else (rng.standard_normal(vals.size) * tiny).astype(dtype)
        tp.grad = torch.tensor(g)
        topt.step()
        opt.step([g])
    theirs = tp.detach().numpy()
    assert np.array_equal(np.isnan(mine), np.isnan(theirs))
    np.testing.assert_allclose(mine, theirs, rtol=TORCH_OPTIM_TORCH_TOL[dtype]["rtol"], atol=0, equal_nan=True)


# ----- pyoptk.torch's twins of the algorithms beyond torch.optim: the NumPy API's bits ----------
@pytest.mark.parametrize("name,kw", [c for c in BEYOND_TORCH if c[0] not in SCHEDULE_FREE],
                         ids=ids(c for c in BEYOND_TORCH if c[0] not in SCHEDULE_FREE))
def test_torch_twin_matches_numpy_api(name, kw):
    """pyoptk.torch's twin (a torch.optim.Optimizer reading p.grad) gives the NumPy API's bits."""
    torch = pytest.importorskip("torch")
    import pyoptk.torch as pt

    params, grads = problem(np.float32, [7, 130], seed=9)
    mine, _ = run_steps(name, kw, params, grads, steps=5)
    tparams = [torch.tensor(p.copy()) for p in params]
    opt = getattr(pt, name)(tparams, **kw)
    assert isinstance(opt, torch.optim.Optimizer)
    for k in range(5):
        for t, g in zip(tparams, grads):
            t.grad = torch.tensor(g[k])
        opt.step()
    for a, t in zip(mine, tparams):
        assert np.array_equal(a, t.numpy())
