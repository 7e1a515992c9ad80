"""Bad input refused: hyper-parameters (with torch's words where torch has the class), and steps
refused before anything changes. (Per-family bad inputs: test_multipass_algorithms.py,
test_mixed_precision.py, test_state_dict.py.)"""
from __future__ import annotations

import copy

import numpy as np
import pytest

import pyoptk
from cases import BEYOND_TORCH, ids
from problems import problem


TORCH_OPTIM_BAD = [
    ("RMSprop", dict(lr=-1)), ("RMSprop", dict(eps=-1)), ("RMSprop", dict(momentum=-0.1)),
    ("RMSprop", dict(weight_decay=-1)), ("RMSprop", dict(alpha=-0.5)),
    ("Adagrad", dict(lr=-1)), ("Adagrad", dict(lr_decay=-1)), ("Adagrad", dict(weight_decay=-1)),
    ("Adagrad", dict(initial_accumulator_value=-1)), ("Adagrad", dict(eps=-1)),
    ("Adamax", dict(lr=-1)), ("Adamax", dict(eps=-1)), ("Adamax", dict(betas=(1.0, 0.9))),
    ("Adamax", dict(betas=(0.9, -0.1))), ("Adamax", dict(weight_decay=-1)),
    ("NAdam", dict(lr=-1)), ("NAdam", dict(eps=-1)), ("NAdam", dict(betas=(0.9, 1.0))),
    ("NAdam", dict(weight_decay=-1)), ("NAdam", dict(momentum_decay=-1)),
    ("RAdam", dict(lr=-1)), ("RAdam", dict(eps=-1)), ("RAdam", dict(betas=(-0.1, 0.9))),
    ("RAdam", dict(weight_decay=-1)),
    ("Adadelta", dict(lr=-1)), ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(rho=-0.1)),
    ("Adadelta", dict(eps=-1)), ("Adadelta", dict(weight_decay=-1)),
    ("Rprop", dict(lr=-1)), ("Rprop", dict(etas=(1.0, 1.2))), ("Rprop", dict(etas=(0.5, 1.0))),
    ("Rprop", dict(etas=(0.0, 1.2))),
    ("ASGD", dict(lr=-1)), ("ASGD", dict(weight_decay=-1)),
]


@pytest.mark.parametrize("name,kw", TORCH_OPTIM_BAD, ids=[f"{n}-{k}" for n, k in TORCH_OPTIM_BAD])
def test_torch_optim_bad_hyper_parameters(name, kw):
    with pytest.raises(ValueError) as mine:
        getattr(pyoptk, name)([np.zeros(3)], **kw)
    try:
        import torch
    except ImportError:
        return
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)([torch.zeros(3)], **kw)
    assert str(mine.value) == str(theirs.value)


BEYOND_TORCH_BAD = [
    ("Lion", dict(lr=-1), "learning rate"), ("Lion", dict(betas=(0.9, 1.0)), "beta parameter at index 1"),
    ("Lion", dict(weight_decay=-0.1), "weight_decay"), ("Adan", dict(betas=(0.9, 0.9)), "betas"),
    ("Adan", dict(eps=-1), "epsilon"), ("Adan", dict(no_prox=1), "no_prox"),
    ("ADOPT", dict(clip_lambda=0.25), "clip_lambda"), ("ADOPT", dict(decouple="yes"), "decouple"),
    ("AdEMAMix", dict(alpha=-1), "alpha"), ("AdEMAMix", dict(t_alpha=0), "t_alpha"),
    ("AdEMAMix", dict(betas=(0.9, 0.999, 1.0)), "beta parameter at index 2"),
    ("LAMB", dict(eps=float("nan")), "epsilon"), ("LARS", dict(trust_coefficient=-1), "trust_coefficient"),
    ("LARS", dict(momentum=-0.1), "momentum"), ("LARS", dict(nesterov=None), "nesterov"),
    ("ScheduleFreeSGD", dict(momentum=0.0), "momentum"), ("ScheduleFreeSGD", dict(warmup_steps=-1), "warmup_steps"),
    ("ScheduleFreeAdamW", dict(betas=(0.0, 0.9)), "beta1"), ("ScheduleFreeAdamW", dict(r=-1), "r value"),
]


@pytest.mark.parametrize("name,kw,what", BEYOND_TORCH_BAD, ids=[f"{n}-{w}" for n, _, w in BEYOND_TORCH_BAD])
def test_beyond_torch_bad_hyper_parameters(name, kw, what):
    with pytest.raises(ValueError, match=what):
        getattr(pyoptk, name)([np.zeros(3)], **kw)
    opt = getattr(pyoptk, name)([np.zeros(3)])
    opt.param_groups[0].update(kw)
    p = opt.param_groups[0]["params"][0]
    with pytest.raises(ValueError, match=what):
        opt.step([np.ones(3)])
    assert np.array_equal(p, np.zeros(3)) and len(opt.state) == 0


@pytest.mark.parametrize("name,kw", BEYOND_TORCH, ids=ids(BEYOND_TORCH))
def test_refused_step_changes_nothing(name, kw):
    params, grads = problem(np.float64, [9, 40], seed=4)
    live = [p.copy() for p in params]
    opt = getattr(pyoptk, name)(live, **kw)
    opt.step([g[0] for g in grads])
    before = copy.deepcopy((live, opt.state_dict()))
    with pytest.raises(TypeError, match="param 1"):
        opt.step([grads[0][1], grads[1][1].astype(np.float32)])
    with pytest.raises(ValueError, match="param 1"):
        opt.step([grads[0][1], grads[1][1][:-1]])
    after = (live, opt.state_dict())
    for a, b in zip(before[0], after[0]):
        assert np.array_equal(a, b)
    assert before[1]["param_groups"] == after[1]["param_groups"]
    for i, state in before[1]["state"].items():
        for key, value in state.items():
            assert np.array_equal(value, after[1]["state"][i][key]), key


def test_lamb_refuses_a_grad_that_is_its_param():
    p = np.ones(4)
    opt = pyoptk.LAMB([p])
    with pytest.raises(ValueError, match="share memory"):
        opt.step([p])
    assert np.array_equal(p, np.ones(4)) and len(opt.state) == 0


@pytest.mark.parametrize("dtype", [">f4", ">f8", "<i4", [("a", "<f4")], ("<f4", (2,))],
                         ids=["big-endian-f32", "big-endian-f64", "int32", "structured", "subarray"])
def test_arrays_of_no_storage_kind_are_refused(dtype):
    """Only the storage table's kinds, in native byte order, as plain scalars (a big-endian float32
    is named 'float32' too): anything else is refused with nothing written."""
    good = np.ones(8, np.float32)
    bad = np.zeros(8, dtype) if isinstance(dtype, list) else np.zeros(8, np.dtype(dtype))
    for params, grads in (([bad], [bad]), ([good], [bad])):
        before = [p.copy() for p in params]
        with pytest.raises((TypeError, ValueError), match="dtype|param|grad"):
            pyoptk.SGD(params, lr=0.1).step(grads)
        assert all(np.array_equal(a, b) for a, b in zip(params, before))
