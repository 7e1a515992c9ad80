"""The NumPy API's gaps against torch, closed: host arrays that are not ndarrays (torch CPU
tensors through DLPack, buffer-protocol objects) as params and grads, zero-copy; read-only ones
refused saying why; complex params; named params; a 0-d lr changed in place without replanning."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import pyoptk


def test_buffer_protocol_params_and_grads_update_in_place():
    store = bytearray(8 * 5)
    p = memoryview(store).cast("d")
    ref = np.zeros(5)
    opt, ropt = pyoptk.SGD([p], lr=0.5), pyoptk.SGD([ref], lr=0.5)
    g = np.arange(5.0)
    for _ in range(3):
        opt.step([memoryview(g.copy())])  # a buffer-protocol grad
        ropt.step([g])
    assert np.array_equal(np.frombuffer(store), ref)  # the caller's memory was updated


def test_read_only_and_unsupported_types_say_why_and_what_is_accepted():
    with pytest.raises(ValueError, match="read-only"):
        pyoptk.Adam([memoryview(bytes(16)).cast("d")])
    with pytest.raises(TypeError, match="param 0 is a str, expected a numpy.ndarray, a CPU array speaking DLPack "
                                        "or the buffer protocol"):
        pyoptk.Adam(["weights"])
    with pytest.raises(TypeError, match=r"param 0 grad is a dict, expected a numpy.ndarray, a CPU array"):
        pyoptk.Adam([np.zeros(3)]).step([{}])


def test_read_only_dlpack_arrays_are_refused_with_what_to_do():
    class ReadOnly:  # exports a read-only view through DLPack, as JAX does
        def __init__(self):
            self._a = np.zeros(3)
            self._a.flags.writeable = False

        def __dlpack__(self, **kw):
            return self._a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self._a.__dlpack_device__()
    with pytest.raises(ValueError, match=r"read-only ReadOnly .*pass a writeable copy"):
        pyoptk.Adam([ReadOnly()])


def test_torch_cpu_tensors_as_params_and_grads_zero_copy():
    torch = pytest.importorskip("torch")
    params = [torch.zeros(7, 5, dtype=torch.float64), torch.zeros(1023)]
    ptrs = [t.data_ptr() for t in params]
    ref = [np.zeros((7, 5)), np.zeros(1023, np.float32)]
    opt, ropt = pyoptk.Adam(params, lr=0.1), pyoptk.Adam(ref, lr=0.1)
    rng = np.random.default_rng(0)
    for _ in range(4):
        grads = [rng.standard_normal(r.shape).astype(r.dtype) for r in ref]
        opt.step([torch.from_numpy(g.copy()) for g in grads])  # new tensors every step
        ropt.step(grads)
    for t, r, ptr in zip(params, ref, ptrs):
        assert t.data_ptr() == ptr and np.array_equal(t.numpy(), r)
    with pytest.raises(TypeError, match=r"param 0 is a Parameter that requires grad.*p\.detach\(\)"):
        pyoptk.Adam([torch.nn.Parameter(torch.zeros(3))])  # torch exports no tensor that requires grad
    with pytest.raises(TypeError, match=r"param 1 grad has dtype float64, expected float32"):
        opt.step([torch.zeros(7, 5, dtype=torch.float64), torch.zeros(1023, dtype=torch.float64)])


def test_torch_tensors_memory_stays_the_views():
    # A view made through DLPack would let torch resize the storage under it (freeing the memory
    # the step writes); pyoptk's views pin it, and a grad whose storage shrank is refused.
    torch = pytest.importorskip("torch")
    p = torch.zeros(64)
    opt = pyoptk.SGD([p], lr=0.1)
    with pytest.raises(RuntimeError, match="not resizable"):
        p.untyped_storage().resize_(0)
    g = torch.ones(64)
    g.untyped_storage().resize_(16)
    with pytest.raises(ValueError, match=r"param 0 grad: its storage \(16 bytes\) no longer holds its 64 elements"):
        opt.step([g])
    assert torch.equal(p, torch.zeros(64))


def test_complex_params_step_as_their_real_view():
    torch = pytest.importorskip("torch")
    z = np.array([1 + 2j, -0.5 + 0.25j, 3 - 1j])
    tz = torch.tensor(z.copy(), requires_grad=True)
    opt, topt = pyoptk.Adam([z], lr=0.1), torch.optim.Adam([tz], lr=0.1, foreach=False)
    for k in range(6):
        g = np.array([0.3 - 0.1j * k, 1j, -0.2 + 0.05j * k])
        opt.step([g.copy()])
        tz.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(z.view(np.float64), torch.view_as_real(tz.detach()).numpy().reshape(-1),
                               rtol=1e-12, atol=1e-15)  # the NumPy API's torch tolerance (test_algorithms)
    state = opt.state[opt.param_groups[0]["params"][0]]["exp_avg"]
    assert state.shape == (3, 2)  # torch's view_as_real layout


def test_named_params_like_torch():
    w, b = np.zeros(3), np.zeros(2)
    opt = pyoptk.SGD([("w", w), ("b", b)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["w", "b"] and opt.param_groups[0]["params"][0] is w
    sd = opt.state_dict()
    assert sd["param_groups"][0]["param_names"] == ["w", "b"]
    opt2 = pyoptk.SGD([("w", np.zeros(3)), ("b", np.zeros(2))], lr=0.1)
    opt2.load_state_dict(copy.deepcopy(sd))
    with pytest.raises(ValueError, match="with/without names"):
        pyoptk.SGD([("w", np.zeros(3)), np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [np.zeros(4)]})


def test_0d_lr_changes_in_place_without_replanning():
    lr = np.array(0.01)
    w, ref = np.ones(100), np.ones(100)
    opt, ropt = pyoptk.Adam([w], lr=lr), pyoptk.Adam([ref], lr=0.01)
    g = np.linspace(-1, 1, 100)
    for k in range(6):
        if k == 2:
            plan = opt._plan
        if k == 3:
            lr[...] = 0.003  # a scheduler writing the tensor in place
            ropt.param_groups[0]["lr"] = 0.003
        opt.step([g])
        ropt.step([g])
    assert opt._plan is plan  # the same plan ran every step
    assert np.array_equal(w, ref)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        pyoptk.Adam([np.ones(3)], lr=np.array(-1.0))


def _quadratic(ws):
    """Loss 0.5 ||w - 3||^2 over the params, and its grads."""
    return sum(0.5 * float(np.sum((w - 3.0) ** 2)) for w in ws), [w - 3.0 for w in ws]


# The optimizers with their own step (NumPy passes, rows, a closure): params, and a step given grads.
OWN_STEP = {
    "Adafactor": (lambda: [np.ones((4, 3)), np.ones(5)], lambda opt, ws: opt.step(_quadratic(ws)[1])),
    "Muon": (lambda: [np.linspace(-1, 1, 12).reshape(4, 3)], lambda opt, ws: opt.step(_quadratic(ws)[1])),
    "SparseAdam": (lambda: [np.ones((6, 3))],
                   lambda opt, ws: opt.step([pyoptk.SparseGrad(np.array([0, 4]), ws[0][[0, 4]] - 3.0)])),
    "LBFGS": (lambda: [np.ones(5), np.zeros(2)], lambda opt, ws: opt.step(lambda: _quadratic(ws))),
}


@pytest.mark.parametrize("name", sorted(OWN_STEP))
def test_0d_lr_for_optimizers_with_their_own_step(name):
    """A 0-d lr (array here, a tensor in test_torch_training) changed in place between steps gives
    the bits of a float lr changed in the group at the same step; a bad one is refused by value."""
    make, step = OWN_STEP[name]
    lr = np.array(0.01)
    ws, refs = make(), make()
    opt, ropt = getattr(pyoptk, name)(ws, lr=lr), getattr(pyoptk, name)(refs, lr=0.01)
    for k in range(5):
        if k == 2:
            lr[...] = 0.5  # a scheduler writing the array in place
            ropt.param_groups[0]["lr"] = 0.5
        step(opt, ws)
        step(ropt, refs)
    assert opt.param_groups[0]["lr"] is lr
    assert all(np.array_equal(w, r) for w, r in zip(ws, refs)) and not np.array_equal(ws[0], make()[0])
    with pytest.raises(ValueError, match="earning rate"):
        getattr(pyoptk, name)(make(), lr=np.array(-1.0))
    lr[...] = -1.0
    before = [w.copy() for w in ws]
    with pytest.raises(ValueError, match="earning rate"):
        step(opt, ws)
    assert all(np.array_equal(w, b) for w, b in zip(ws, before))
