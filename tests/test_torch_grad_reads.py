"""How pyoptk.torch reads grads and checks params (csrc/python/torch/torch_grads.cpp, torch/torch_abi.cpp,
host_arrays.cpp). Every test runs on both read paths: torch's C shim (the at::Tensor behind each
param and grad, no Python object made for a fresh grad) and Python (torch's getters, as after
``PYOPTK_TORCH_ABI=0`` or on a torch the shim's probes disagree with). A grad or param changed in
place after assignment (torch's `.grad` setter checks dtype and shape only then) is refused with
nothing written, or stepped as torch.optim steps it; the steady-state step (a kept plan) is what
runs here, after two warm-up steps."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import pyoptk.torch as pt  # noqa: E402
from pyoptk import _core  # noqa: E402


@pytest.fixture(params=["shim", "python"], autouse=True)
def read_path(request):
    if request.param == "python":
        assert "turned off" in pt._abi.enable(False)
    try:
        yield request.param
    finally:
        assert pt._abi.enable() == ""  # back on for the rest of the suite


def test_shim_is_enabled_on_this_torch(read_path):
    # On the torch this suite runs (2.13) the probes must agree; if a torch release changes the
    # object layout or the shim, this says so (the reads then go through Python, still correct).
    assert (pt._abi.status() == "") == (read_path == "shim"), pt._abi.status()


def test_env_var_turns_the_shim_off():
    code = "import pyoptk.torch as pt; print(pt._abi.status())"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYOPTK_TORCH_ABI="0"),
                         capture_output=True, text=True, check=True, cwd=os.path.dirname(__file__))
    assert "turned off" in out.stdout


SHAPES = [(6, 5), (33,), (1,)]  # 30 elements: 15 float64 take the same bytes


def make(seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in SHAPES]
    grads = [torch.randn(*s, generator=g) for s in SHAPES]
    return params, grads


def stepped(grads_per_step, make_grad=lambda g: g):
    """Params after Adam steps on fresh grad tensors (set_to_none, then assigned), in pyoptk.torch
    and in torch.optim (the reference: its for-loop Adam)."""
    out = []
    for opt_class in (pt.Adam, lambda ps: torch.optim.Adam(ps, foreach=False)):
        params, _ = make()
        opt = opt_class(params) if opt_class is not pt.Adam else pt.Adam(params)
        for grads in grads_per_step:
            opt.zero_grad(set_to_none=True)
            for p, g in zip(params, grads):
                p.grad = make_grad(g.clone())
            opt.step()
        out.append([p.detach().clone() for p in params])
    return out


def test_fresh_grads_every_step_match_torch():
    steps = [make(seed)[1] for seed in range(1, 6)]
    ours, ref = stepped(steps)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)  # tests/test_torch_adapter.py's float32 tolerance


def test_subclass_grads_read_through_python():
    class Tagged(torch.Tensor):  # a subclass: its attribute lookup may differ, so no direct calls
        pass

    steps = [make(seed)[1] for seed in range(1, 4)]
    ours, ref = stepped(steps, lambda g: g.as_subclass(Tagged))
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)


def test_after_torch_tensor_changed_reads_go_through_python():
    # Setting an attribute on torch.Tensor resets its version tag: the direct calls to its grad
    # getter stop and the reads run through getattr; the step is still right.
    steps = [make(seed)[1] for seed in range(1, 4)]
    torch.Tensor._pyoptk_probe = 1
    try:
        ours, ref = stepped(steps)
    finally:
        del torch.Tensor._pyoptk_probe
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)


def warmed():
    params, grads = make()
    opt = pt.Adam(params)
    for _ in range(2):  # the second step runs the kept plan
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    for p, g in zip(params, grads):
        p.grad = g.clone()
    return opt, params


def snapshot(opt, params):
    return [p.detach().clone() for p in params], {k: v.clone() for k, v in opt.state[params[0]].items()}


# What torch lets a user do to a grad after the setter checked it.
HOSTILE = {
    "set_ to a smaller storage": lambda g: g.set_(torch.ones(1)),
    "resize_ smaller": lambda g: g.resize_(3),
    ".data of another dtype, same bytes": lambda g: setattr(g, "data", torch.ones(g.numel() // 2, dtype=torch.float64)),
    "as_strided_ (not contiguous)": lambda g: g.as_strided_(g.shape, tuple(reversed(g.stride()))),
    # the tensor keeps its size, its storage shrinks: reading numel elements would run past it
    "storage resized smaller": lambda g: g.untyped_storage().resize_(4),
}


@pytest.mark.parametrize("change", list(HOSTILE), ids=list(HOSTILE))
def test_grad_changed_after_assignment_is_refused_before_anything_is_written(change):
    opt, params = warmed()
    HOSTILE[change](params[0].grad)
    before_p, before_s = snapshot(opt, params)
    with pytest.raises((ValueError, TypeError), match=r"param 0('s)? grad"):
        opt.step()
    after_p, after_s = snapshot(opt, params)
    for a, b in zip(before_p, after_p):
        assert torch.equal(a, b)
    for k in before_s:
        assert torch.equal(before_s[k], after_s[k])


def test_grad_that_is_a_view_of_a_bigger_buffer_is_read_at_its_offset():
    # The same bits as the same values in grads of their own (a data pointer read wrong would
    # read the neighbours' values).
    (a, pa), (b, pb) = warmed(), warmed()
    buf = torch.randn(200)
    for i, (p, q) in enumerate(zip(pa, pb)):
        view = buf[10 * i + 1: 10 * i + 1 + p.numel()].view(p.shape)  # contiguous, at an offset
        p.grad, q.grad = view, view.clone()
    a.step()
    b.step()
    for p, q in zip(pa, pb):
        assert torch.equal(p, q)


def test_fresh_grads_from_backward_match_torch():
    # Grads made by autograd have no Python object until someone reads p.grad; the shim path
    # reads them without making one. Params and state as torch.optim's, and p.grad still works.
    def run(opt_class):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
        opt = opt_class(model.parameters())
        x = torch.randn(4, 7)
        for _ in range(4):
            opt.zero_grad(set_to_none=True)
            model(x).square().sum().backward()
            opt.step()
        return model, opt
    ours, opt = run(lambda ps: pt.AdamW(ps, lr=1e-2))
    ref, ref_opt = run(lambda ps: torch.optim.AdamW(ps, lr=1e-2, foreach=False))
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=2e-5, atol=2e-6)
        torch.testing.assert_close(p.grad, q.grad, rtol=2e-5, atol=2e-6)
        torch.testing.assert_close(opt.state[p]["exp_avg_sq"], ref_opt.state[q]["exp_avg_sq"], rtol=2e-5, atol=1e-9)


def test_torch_grads_is_a_sequence_of_the_params_grads():
    opt, params = warmed()
    params[1].grad = None
    grads = _core.TorchGrads(opt.param_groups, opt._core.param_groups)
    assert len(grads) == 3
    assert grads[0] is params[0].grad and grads[1] is None and grads[-1] is params[2].grad
    with pytest.raises(IndexError):
        grads[3]


def test_sparse_grad_of_a_dense_optimizer_is_refused_with_nothing_written():
    p = torch.nn.Parameter(torch.zeros(4, 3))
    opt = pt.Adam([p])
    p.grad = torch.sparse_coo_tensor([[1]], torch.ones(1, 3), (4, 3), check_invariants=True)
    with pytest.raises(TypeError, match="param 0 grad is a torch.sparse_coo tensor; pyoptk steps dense arrays"):
        opt.step()
    assert torch.equal(p.detach(), torch.zeros(4, 3)) and opt.state[p] == {}


def test_torch_grads_names_a_param_whose_memory_moved():
    opt, params = warmed()
    params[2].data = torch.randn(params[2].shape)
    with pytest.raises(_core.ParamMoved, match="param 2 no longer lies in the memory the optimizer steps"):
        _core.TorchGrads(opt.param_groups, opt._core.param_groups)


def test_param_without_grad_is_skipped_as_torch_skips_it():
    opt, params = warmed()
    params[1].grad = None
    before = params[1].detach().clone(), opt.state[params[1]]["exp_avg"].clone()
    others = [params[i].detach().clone() for i in (0, 2)]
    opt.step()
    assert torch.equal(params[1], before[0]) and torch.equal(opt.state[params[1]]["exp_avg"], before[1])
    assert not any(torch.equal(params[i], o) for i, o in zip((0, 2), others))


# What torch lets a user do to a param's memory after the optimizer was built: torch.optim then
# steps the new memory, and so must pyoptk.torch (it steps NumPy views of the old one otherwise).
REPLACED = {
    "p.data = new tensor": lambda p: setattr(p, "data", torch.randn(p.shape)),
    "p.data = tensor of another shape's view": lambda p: setattr(p, "data", torch.randn(p.numel() + 3)[3:].view(p.shape)),
    "p.set_(new tensor)": lambda p: p.data.set_(torch.randn(p.shape)),
}


@pytest.mark.parametrize("change", list(REPLACED), ids=list(REPLACED))
@pytest.mark.parametrize("algo", ["SGD", "Adam"])
def test_param_memory_replaced_is_stepped_as_torch_steps_it(change, algo):
    kwargs = {"SGD": dict(lr=0.1, momentum=0.9), "Adam": dict(lr=0.1)}[algo]
    runs = []
    for opt_class in (getattr(pt, algo), lambda ps, **kw: getattr(torch.optim, algo)(ps, foreach=False, **kw)):
        params, grads = make()
        opt = opt_class(params, **kwargs)
        for step in range(5):
            if step == 2:
                torch.manual_seed(7)
                for p in params:
                    REPLACED[change](p)
            for p, g in zip(params, grads):
                p.grad = g * (step + 1)
            opt.step()
        runs.append((params, opt))
    (ours, opt), (ref, ref_opt) = runs
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p, q, rtol=2e-5, atol=2e-6)
        for k, v in ref_opt.state[q].items():
            torch.testing.assert_close(opt.state[p][k], v, rtol=2e-5, atol=2e-6)


def test_param_memory_replaced_with_master_weights_takes_the_new_values():
    p = torch.nn.Parameter(torch.ones(9, dtype=torch.bfloat16))
    opt = pt.SGD([p], lr=0.5, master_weights=True)
    for _ in range(2):
        p.grad = torch.ones(9, dtype=torch.bfloat16)
        opt.step()
    p.data = torch.full((9,), 4.0, dtype=torch.bfloat16)
    p.grad = torch.ones(9, dtype=torch.bfloat16)
    opt.step()
    assert torch.equal(p.detach(), torch.full((9,), 3.5, dtype=torch.bfloat16))
    assert np.array_equal(opt._core.state[opt._views[p]]["master_param"], np.full(9, 3.5, np.float32))


def test_a_step_reads_the_grads_it_was_handed_even_after_torch_drops_them():
    # TorchGrads owns what it read: grads torch lets go of afterwards (p.grad = None) stay alive
    # until the step that reads them is done, and are not confused with memory reused since.
    params = [torch.nn.Parameter(torch.zeros(4096)) for _ in range(8)]
    opt = pt.SGD(params, lr=1.0)
    for _ in range(3):  # the plan made and kept
        for p in params:
            p.grad = torch.ones(4096)
        opt.step()
    for p in params:
        p.grad = torch.ones(4096)
    grads = _core.TorchGrads(opt.param_groups, opt._core.param_groups)
    for p in params:
        p.grad = None
    filler = [torch.full((4096,), 7.0) for _ in range(64)]  # would take the grads' memory, were it freed
    before = [p.detach().clone() for p in params]
    opt._core.step(grads)
    for p, b in zip(params, before):
        assert torch.equal(p.detach(), b - 1)
    del filler
