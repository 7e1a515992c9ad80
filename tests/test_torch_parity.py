"""pyoptk against torch.optim itself (runs when torch is installed): same classes, same
hyper-parameters, two param groups, an lr change mid-run and zero gradient entries."""
import copy

import numpy as np
import pytest

import pyoptk

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
