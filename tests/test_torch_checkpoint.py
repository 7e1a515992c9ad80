"""pyoptk.from_torch_state_dict: a real torch.optim checkpoint (nested state, 0-d step tensors,
saved and loaded through torch.save / torch.load) resumes in pyoptk where torch left off."""
import io

import numpy as np
import pytest

import pyoptk

torch = pytest.importorskip("torch")


def _torch_run(cls, hyper, shapes, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]
    opt = getattr(torch.optim, cls)(params, **hyper)
    grads = [[torch.randn(*s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(2 * steps)]
    for k in range(steps):
        for p, g in zip(params, grads[k]):
            p.grad = g.clone()
        opt.step()
    return params, opt, grads


@pytest.mark.parametrize("cls,hyper", [
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("SGD", dict(lr=1e-2, momentum=0.9, nesterov=True)),
    ("RMSprop", dict(lr=1e-2, centered=True, momentum=0.5)),
    ("NAdam", dict(lr=1e-2)),
])
def test_a_torch_checkpoint_resumes_in_pyoptk(cls, hyper):
    shapes = [(7, 3), (1023,), (1,)]
    params, topt, grads = _torch_run(cls, hyper, shapes, steps=3)
    buffer = io.BytesIO()  # through a file, as a user would hold it
    torch.save(topt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    if cls != "SGD":
        assert saved["state"][0]["step"].ndim == 0  # torch keeps step as a 0-d tensor

    ours = [p.detach().numpy().copy() for p in params]
    opt = getattr(pyoptk, cls)(ours, **hyper)
    opt.load_state_dict(pyoptk.from_torch_state_dict(saved))
    for k in range(3, 6):  # both continue from the checkpoint with the same grads
        for p, g in zip(params, grads[k]):
            p.grad = g.clone()
        topt.step()
        opt.step([g.numpy() for g in grads[k]])
    for p, q in zip(ours, params):
        # float64 and the same formulas: equal to a few ulp (torch's for-loop order differs).
        np.testing.assert_allclose(p, q.detach().numpy(), rtol=1e-13, atol=1e-15)
    if cls != "SGD":
        assert opt.state_dict()["state"][0]["step"] == 6


def test_nested_lists_and_tensor_hyperparameters_become_numpy():
    sd = {"state": {0: {"step": torch.tensor(4.0), "hist": [torch.ones(2), (torch.zeros(1), 3)], "n": 2}},
          "param_groups": [{"lr": torch.tensor(0.5), "betas": (torch.tensor(0.9), 0.99), "params": [0]}]}
    out = pyoptk.from_torch_state_dict(sd)
    state = out["state"][0]
    assert isinstance(state["step"], np.ndarray) and state["step"].ndim == 0 and state["step"] == 4.0
    assert isinstance(state["hist"], list) and isinstance(state["hist"][0], np.ndarray)
    assert isinstance(state["hist"][1], tuple) and state["hist"][1][1] == 3 and state["n"] == 2
    group = out["param_groups"][0]
    assert type(group["lr"]) is float and group["lr"] == 0.5
    assert type(group["betas"][0]) is float and group["betas"] == (pytest.approx(0.9), 0.99)
    # The result owns its memory: training from it never writes into the torch checkpoint.
    state["hist"][0][0] = 7.0
    assert sd["state"][0]["hist"][0][0] == 1.0


def test_bfloat16_state_is_widened_and_garbage_is_refused():
    out = pyoptk.from_torch_state_dict({"state": {0: {"m": torch.ones(3, dtype=torch.bfloat16)}}, "param_groups": []})
    assert out["state"][0]["m"].dtype == np.float32
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        pyoptk.from_torch_state_dict({"state": {}})
