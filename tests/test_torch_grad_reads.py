"""How plans read torch grad tensors (csrc/python/host_arrays.cpp): torch's own C getters called
directly on plain tensors, the Python reads for subclasses and after torch.Tensor changed. A grad
changed in place after it was assigned (torch's `.grad` setter checks dtype and shape only then)
is refused with nothing written, or stepped correctly; the steady-state (compiled) step is what
runs here, after two warm-up steps."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import pyoptk.torch as pt  # noqa: E402

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
    # Setting an attribute on torch.Tensor resets its version tag: the direct calls stop and the
    # same reads run through getattr; the step is still right.
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
    for _ in range(2):  # the second step arms the compiled steady-state step
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
