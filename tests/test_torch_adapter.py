"""pyoptk.torch against torch.optim itself and against pyoptk's NumPy API, for every algorithm:
trajectories, state, state_dict interchange both ways, the optimizer protocol (hooks, zero_grad,
add_param_group, frozen and named params), bad input."""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import pyoptk  # noqa: E402
import pyoptk.torch as pt  # noqa: E402

STEPS = 10
# (name, kwargs, param shapes): flags that change the formula; Muon steps matrices only.
SHAPES = [(7, 5), (33,), (1,), (130,)]
MATRICES = [(6, 10), (12, 5), (7, 7)]
CASES = [
    ("SGD", dict(lr=0.1), SHAPES),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), SHAPES),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05), SHAPES),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, maximize=True), SHAPES),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True), SHAPES),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1), SHAPES),
    ("Adadelta", dict(lr=1.0, weight_decay=0.1), SHAPES),
    ("Adamax", dict(lr=0.01, weight_decay=0.1), SHAPES),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), SHAPES),
    ("RAdam", dict(lr=0.01, weight_decay=0.1), SHAPES),  # steps 6+ rectified
    ("Rprop", dict(lr=0.01), SHAPES),
    ("ASGD", dict(lr=0.01, t0=3, lambd=0.1), SHAPES),  # mu < 1 from step 5
    ("Adafactor", dict(lr=0.01), SHAPES),
    ("Muon", dict(lr=0.02), MATRICES),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw, _ in CASES]
# Against torch: the tolerances the NumPy API's parity tests use and justify (tests/
# test_torch_optim_algorithms.py, test_multipass_algorithms.py): IEEE sqrt and reciprocals of per-step scalars
# where torch's vectorised sqrt is not correctly rounded and it divides.
TORCH_TOL = {torch.float64: dict(rtol=1e-12, atol=1e-14), torch.float32: dict(rtol=2e-5, atol=2e-6)}


def _close(got, want, tol, msg=""):
    got = np.asarray(got.detach() if torch.is_tensor(got) else got, np.float64)
    want = np.asarray(want.detach() if torch.is_tensor(want) else want, np.float64)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=msg)


def _data(shapes, dtype, steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    params = [rng.standard_normal(s).astype(np_dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np_dtype) for s in shapes] for _ in range(steps)]
    for g in grads:
        g[0].reshape(-1)[:3] = 0.0  # exact zeros
    return params, grads


def _groups(ps, lr):
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": lr * 0.5}]


def _lockstep(cls, kw, params, grads):
    """Run a torch-style optimizer over nn.Parameters: a NEW grad tensor every step (as
    zero_grad(set_to_none=True) + backward gives), two groups, an lr change mid-run."""
    tp = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    opt = cls(_groups(tp, kw["lr"]), **kw)
    for k, step in enumerate(grads):
        if k == STEPS // 2:
            for g in opt.param_groups:
                g["lr"] *= 0.3
        for t, g in zip(tp, step):
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        opt.zero_grad()
    return tp, opt


def _tolerance(name, dtype):
    if name == "Muon" and dtype == torch.float32:
        return dict(rtol=1e-4, atol=1e-5)  # float32 matmuls summed in other orders (as test_multipass_algorithms)
    return TORCH_TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw,shapes", CASES, ids=IDS)
def test_matches_torch_and_numpy_api(name, kw, shapes, dtype, ns_in_dtype):
    params, grads = _data(shapes, dtype)
    ours, opt = _lockstep(getattr(pt, name), kw, params, grads)
    theirs, topt = _lockstep(getattr(torch.optim, name), kw, params, grads)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.defaults == topt.defaults
    tol = _tolerance(name, dtype)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        _close(a, b, tol, f"param {i}")
        mine, ref = opt.state[a], topt.state[b]
        assert list(mine) == list(ref), i  # torch's keys, in torch's order
        for key, value in ref.items():
            assert torch.is_tensor(mine[key]) == torch.is_tensor(value), key
            if torch.is_tensor(value):
                assert mine[key].dtype == value.dtype and mine[key].shape == value.shape, key
            _close(mine[key], value, tol, f"state {key} of param {i}")
    # The NumPy API, same grads: the same kernels, so the same bits.
    arrays = [p.copy() for p in params]
    npopt = getattr(pyoptk, name)(_groups(arrays, kw["lr"]), **kw)
    for k, step in enumerate(grads):
        if k == STEPS // 2:
            for g in npopt.param_groups:
                g["lr"] *= 0.3
        npopt.step(step)
    for a, b in zip(ours, arrays):
        assert np.array_equal(a.detach().numpy(), b)


def test_state_shares_memory_and_params_update_in_place():
    params, grads = _data(SHAPES, torch.float32, steps=2)
    tp = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    ptrs = [t.data_ptr() for t in tp]
    opt = pt.Adam(tp, lr=0.1)
    for step in grads:
        for t, g in zip(tp, step):
            t.grad = torch.from_numpy(g.copy())
        opt.step()
    assert [t.data_ptr() for t in tp] == ptrs
    plan = opt._core._plan
    for step in grads:  # new grad tensors every step: the same plan runs them
        opt.zero_grad(set_to_none=True)
        for t, g in zip(tp, step):
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        assert opt._core._plan is plan
    exp_avg = opt.state[tp[1]]["exp_avg"]
    core = opt._core.state[opt._views[tp[1]]]["exp_avg"]
    assert exp_avg.data_ptr() == core.ctypes.data  # the kernel's buffer itself
    exp_avg.zero_()  # an in-place edit reaches the kernel's state
    assert not core.any()


@pytest.mark.parametrize("name,kw,shapes", CASES, ids=IDS)
def test_state_dict_interchange_both_ways(name, kw, shapes, ns_in_dtype):
    """A checkpoint of either resumes in the other, and both then agree with an uninterrupted run."""
    params, grads = _data(shapes, torch.float64, steps=8, seed=5)
    half = [g for g in grads[:4]]
    ours, opt = _lockstep(getattr(pt, name), kw, params, half)
    theirs, topt = _lockstep(getattr(torch.optim, name), kw, params, half)
    sd_ours, sd_theirs = copy.deepcopy(opt.state_dict()), copy.deepcopy(topt.state_dict())
    assert sd_ours["param_groups"] == sd_theirs["param_groups"]
    assert sd_ours["state"].keys() == sd_theirs["state"].keys()
    # Cross-load into fresh optimizers over copies of the current params.
    p_ours = [torch.nn.Parameter(t.detach().clone()) for t in ours]
    p_theirs = [torch.nn.Parameter(t.detach().clone()) for t in theirs]
    into_torch = getattr(torch.optim, name)(_groups(p_ours, kw["lr"]), **kw)
    into_ours = getattr(pt, name)(_groups(p_theirs, kw["lr"]), **kw)
    into_torch.load_state_dict(sd_ours)
    into_ours.load_state_dict(sd_theirs)
    # torch resumed from its own checkpoint: its load casts 0-d float32 state (NAdam's mu_product,
    # ASGD's eta and mu) to the param dtype, so it is the reference for torch resuming ours.
    p_torch = [torch.nn.Parameter(t.detach().clone()) for t in theirs]
    torch_resumed = getattr(torch.optim, name)(_groups(p_torch, kw["lr"]), **kw)
    torch_resumed.load_state_dict(sd_theirs)
    runs = [(ours, opt), (theirs, topt), (p_ours, into_torch), (p_theirs, into_ours), (p_torch, torch_resumed)]
    for step in grads[4:]:
        for ps, o in runs:
            for t, g in zip(ps, step):
                t.grad = torch.from_numpy(g.copy())
            o.step()
    tol = _tolerance(name, torch.float64)
    for a, b, c, d in zip(ours, theirs, p_theirs, p_ours):
        _close(c, b, tol)  # torch's checkpoint resumed here follows torch
        _close(c, a, tol)  # ... and ours
    for a, b in zip(p_ours, p_torch):
        _close(a, b, tol)  # ours resumed in torch follows torch resuming its own


def test_sparse_adam_embedding_like_torch():
    def run(cls):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(20, 6, sparse=True).double()
        opt = cls(emb.parameters(), lr=0.05)
        gen = torch.Generator().manual_seed(1)
        for _ in range(STEPS):
            idx = torch.randint(0, 19, (12,), generator=gen)  # repeats likely; row 19 never touched
            emb(idx).pow(2).sum().backward()
            opt.step()
            opt.zero_grad()
        return emb.weight, opt
    w, opt = run(pt.SparseAdam)
    tw, topt = run(torch.optim.SparseAdam)
    _close(w, tw, TORCH_TOL[torch.float64])
    for key, value in topt.state[tw].items():
        _close(opt.state[w][key], value, TORCH_TOL[torch.float64], key)


def test_lbfgs_closure_like_torch():
    def run(cls, line_search_fn):
        x = torch.nn.Parameter(torch.tensor([-1.5, 2.0], dtype=torch.float64))
        opt = cls([x], lr=1.0, max_iter=20, history_size=10, line_search_fn=line_search_fn)
        losses = []

        def closure():
            opt.zero_grad()
            loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
            loss.backward()
            return loss
        for _ in range(8):
            losses.append(opt.step(closure))
        return x, opt, losses
    for ls in (None, "strong_wolfe"):
        x, opt, losses = run(pt.LBFGS, ls)
        tx, topt, tlosses = run(torch.optim.LBFGS, ls)
        assert all(torch.is_tensor(loss) for loss in losses)  # torch returns the closure's first loss
        np.testing.assert_allclose([v.item() for v in losses], [v.item() for v in tlosses], rtol=1e-12)
        _close(x, tx, TORCH_TOL[torch.float64])
        assert set(opt.state[x]) == set(topt.state[tx])
        # Checkpoints across, both ways: each resumed run follows the uninterrupted one.
        kw = dict(lr=1.0, max_iter=2, history_size=10, line_search_fn=ls)
        for src, dst_cls, ref in ((opt, torch.optim.LBFGS, x), (topt, pt.LBFGS, tx)):
            y = torch.nn.Parameter(ref.detach().clone())
            dst = dst_cls([y], **kw)
            dst.load_state_dict(copy.deepcopy(src.state_dict()))
            src.param_groups[0]["max_iter"] = 2
            for o, v in ((src, ref), (dst, y)):
                def closure(o=o, v=v):
                    o.zero_grad()
                    loss = (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2
                    loss.backward()
                    return loss
                o.step(closure)
            _close(y, ref, TORCH_TOL[torch.float64], f"{type(dst).__module__} resumed")


def test_training_loop_with_backward_and_zero_grad():
    """A real model: backward, step, zero_grad (both set_to_none values), a frozen layer."""
    def run(cls, set_to_none):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
        model[0].bias.requires_grad_(False)  # frozen: no grad, skipped as torch skips it
        opt = cls(model.parameters(), lr=1e-2, weight_decay=0.1)
        x, y = torch.randn(32, 8), torch.randn(32, 3)
        for _ in range(STEPS):
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=set_to_none)
        return model, opt
    for set_to_none in (True, False):
        model, opt = run(pt.AdamW, set_to_none)
        tmodel, topt = run(torch.optim.AdamW, set_to_none)
        for a, b in zip(model.parameters(), tmodel.parameters()):
            _close(a, b, TORCH_TOL[torch.float32])
        frozen = model[0].bias
        assert frozen not in opt.state and frozen.grad is None
        if set_to_none:
            assert all(p.grad is None for p in model.parameters())
        else:
            assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_hooks_named_params_and_add_param_group():
    model = torch.nn.Linear(4, 2)
    opt = pt.SGD(model.named_parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(torch.nn.Linear(4, 2).named_parameters(), lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    opt.register_state_dict_post_hook(lambda o, sd: calls.append("sd"))
    opt.register_load_state_dict_pre_hook(lambda o, sd: calls.append("load"))
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    assert calls == ["pre", "post"]
    sd = opt.state_dict()
    assert sd["param_groups"][0]["param_names"] == ["weight", "bias"]
    assert sd["param_groups"][0].keys() == topt.state_dict()["param_groups"][0].keys()
    opt.load_state_dict(copy.deepcopy(sd))
    assert calls == ["pre", "post", "sd", "load"]
    extra = torch.nn.Parameter(torch.ones(3))
    opt.add_param_group({"params": [("extra", extra)], "lr": 0.5})
    extra.grad = torch.ones(3)
    model.zero_grad()
    opt.step()
    assert torch.equal(extra.detach(), torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [("again", extra)]})
    assert len(opt.param_groups) == 2  # the refused group left nothing behind


def test_step_hooks_and_profiler_range_as_torch_optim():
    """pyoptk.torch's own step wrapper (no profiler range unless one records) calls what torch's
    does: global then per-optimizer pre-hooks, with the optimizer first in args and their
    returned (args, kwargs) used; post-hooks; and the profiler range torch's step makes."""
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    def run(cls):
        p = torch.nn.Parameter(torch.ones(3))
        opt = cls([p], lr=0.5)
        calls = []
        handles = [register_optimizer_step_pre_hook(lambda o, a, k: calls.append(("global pre", a[0] is o, a[1:], sorted(k)))),
                   register_optimizer_step_post_hook(lambda o, a, k: calls.append(("global post", a[0] is o, a[1:], sorted(k))))]

        def pre(o, args, kwargs):  # replaces step()'s arguments: a closure that sets the grad
            calls.append(("pre", args[0] is o))
            return (args[0],), {"closure": lambda: p.grad.fill_(2.0).sum()}

        opt.register_step_pre_hook(pre)
        opt.register_step_post_hook(lambda o, a, k: calls.append(("post", a[0] is o, a[1:], sorted(k))))
        p.grad = torch.zeros(3)
        try:
            opt.step()
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                opt.step()
        finally:
            for h in handles:
                h.remove()
        names = {e.name for e in prof.events()}
        return calls, p.detach().clone(), f"Optimizer.step#{cls.__name__}.step" in names

    ours, theirs = run(pt.SGD), run(torch.optim.SGD)
    one_step = [("global pre", True, (), []), ("pre", True), ("post", True, (), ["closure"]),
                ("global post", True, (), ["closure"])]
    assert ours[0] == theirs[0] == one_step * 2
    assert torch.equal(ours[1], theirs[1]) and torch.equal(ours[1], torch.full((3,), -1.0))  # the closure's grad was used
    assert ours[2] and theirs[2]  # the range is there while the profiler records
    assert getattr(pt.SGD.step, "hooked", False)  # torch's __init__ did not wrap it again


def test_complex_params_like_torch():
    def run(cls):
        p = torch.nn.Parameter(torch.tensor([1 + 2j, -0.5 + 0.25j, 3 - 1j], dtype=torch.complex128))
        opt = cls([p], lr=0.1)
        for k in range(STEPS):
            p.grad = torch.tensor([0.3 - 0.1j * k, 1j, -0.2 + 0.05j * k], dtype=torch.complex128)
            opt.step()
        return p, opt
    for name in ("Adam", "SGD", "RMSprop"):
        p, opt = run(getattr(pt, name))
        tp, topt = run(getattr(torch.optim, name))
        _close(torch.view_as_real(p.detach()), torch.view_as_real(tp.detach()), TORCH_TOL[torch.float64], name)
        for key, value in topt.state[tp].items():
            mine = opt.state[p][key]
            assert mine.dtype == value.dtype, key
            _close(torch.view_as_real(mine) if mine.is_complex() else mine,
                   torch.view_as_real(value) if value.is_complex() else value, TORCH_TOL[torch.float64], key)
        topt.load_state_dict(copy.deepcopy(opt.state_dict()))  # complex state goes across


def test_refusals_change_nothing():
    with pytest.raises(TypeError, match="bfloat16"):  # 16-bit params: tests/test_torch_mixed.py
        pt.LAMB([torch.nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))])
    with pytest.raises(TypeError, match="int64"):
        pt.AdamW([torch.nn.Parameter(torch.zeros(3, dtype=torch.int64), requires_grad=False)])
    with pytest.raises(ValueError, match="Invalid learning rate"):
        pt.Adam([torch.nn.Parameter(torch.zeros(3))], lr=-1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        pt.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="param 0 is on the meta device; pyoptk.torch steps CPU tensors"):
        pt.AdamW([torch.nn.Parameter(torch.zeros(3, device="meta"))])
    p = torch.nn.Parameter(torch.zeros(4))
    opt = pt.Adam([p], lr=0.1)
    p.grad = torch.ones(4)
    opt.step()
    before = copy.deepcopy(opt.state_dict())
    bad = copy.deepcopy(before)
    bad["state"][0]["exp_avg"] = torch.zeros(5)
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    assert torch.equal(opt.state[p]["exp_avg"], before["state"][0]["exp_avg"])
    assert opt.param_groups[0]["params"][0] is p
    p.grad = torch.ones(4, dtype=torch.float64).to(torch.float32).t()
    opt.step()  # still steps after the refused load
    assert int(opt.state[p]["step"]) == 2
    with pytest.raises(TypeError, match="cannot be pickled or copied"):
        copy.deepcopy(opt)


def test_import_without_torch_says_what_to_do(tmp_path):
    import os
    import subprocess
    import sys
    # Run where this process imports pyoptk from (not the source tree, which has no built _core).
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(pyoptk.__file__)))
    code = ("import sys; sys.modules['torch'] = None\n"
            "import pyoptk\n"
            "try:\n    import pyoptk.torch\nexcept ImportError as e:\n    print(e)\n")
    run = dict(capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    out = subprocess.run([sys.executable, "-c", code], **run)
    assert "pip install torch" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-c", "import sys, pyoptk; print('torch' in sys.modules)"], **run)
    assert out.stdout.strip() == "False", out.stderr


def test_tensor_subclasses_with_their_own_dispatch_are_refused():
    class Dispatching(torch.Tensor):  # as FSDP2's DTensor: its own __torch_dispatch__
        @classmethod
        def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))
    p = torch.Tensor._make_subclass(Dispatching, torch.zeros(3), True)
    with pytest.raises(TypeError, match="param 0 is a Dispatching, a tensor subclass with its own dispatch"):
        pt.Adam([p])


@pytest.mark.parametrize("name,kw", [("Adam", {}), ("Adafactor", {}), ("LAMB", {}), ("LARS", dict(momentum=0.0))])
def test_the_step_reads_hyper_parameters_from_torchs_groups_only(name, kw):
    """torch's param_groups are the one copy of the hyper-parameters a step reads (a
    scheduler's lr included), element-wise or multi-pass: nothing is copied into the core's
    groups per step."""
    w = torch.nn.Parameter(torch.ones(4))
    opt = getattr(pt, name)([w], lr=0.1, **kw)  # LARS: no momentum (its buffer would carry the last lr's step)
    core_group = opt._core.param_groups[0]
    w.grad = torch.ones(4)
    opt.step()
    opt.param_groups[0]["lr"] = 0.0
    before = w.detach().clone()
    opt.step()
    assert torch.equal(w.detach(), before)  # lr 0, read from torch's group
    assert core_group["lr"] == 0.1  # the core's group is not a second copy kept in sync
    opt.param_groups[0]["lr"] = torch.tensor(0.05)  # a tensor lr, as torch allows
    opt.step()
    assert not torch.equal(w.detach(), before)
