"""pyoptk.torch's schedule-free twins: the schedule (k, lr_max, weight_sum, scheduled_lr,
train_mode) lives in the param groups, written by the core and copied back into torch's groups
after every step / train() / eval(). Pinned: the twins give the NumPy API's bits through
train/eval swaps and a scheduler; schedulefree's torch optimizers' results (SGD bit for bit,
AdamW within the tolerance test_reference_parity.py states: it multiplies by 1 / (1 - beta2^k)
where the reference divides); state_dict round trips resume bit-identically, in either mode."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyoptk  # noqa: E402
import pyoptk.torch as pt  # noqa: E402
from pyoptk.optim.schedule_free import _GROUP_STATE  # noqa: E402

CASES = [
    ("ScheduleFreeSGD", dict(lr=0.1)),
    ("ScheduleFreeSGD", dict(lr=0.1, weight_decay=0.1, warmup_steps=4, r=0.5, momentum=0.8)),
    ("ScheduleFreeAdamW", dict(lr=0.01)),
    ("ScheduleFreeAdamW", dict(lr=0.01, weight_decay=0.1, warmup_steps=4, weight_lr_power=1.0, betas=(0.8, 0.9))),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
SIZES = (1, 7, 17, 1023)  # past every SIMD width
STEPS = 12
EVAL_AT = (3, 7)  # eval() then train() before these steps (an evaluation pass mid-training)


def _data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    grads = [[rng.standard_normal(n).astype(dtype) for n in SIZES] for _ in range(STEPS)]
    return params, grads


def _run_numpy(name, kw, params, grads):
    params = [p.copy() for p in params]
    opt = getattr(pyoptk, name)(params, **kw)
    evals = []
    for k, g in enumerate(grads):
        if k in EVAL_AT:
            opt.eval()
            evals.append([p.copy() for p in params])
            opt.train()
        opt.step(g)
    opt.eval()
    return params, evals, opt


def _run_twin(cls, kw, params, grads, steps=None, opt=None, tparams=None):
    tparams = tparams if tparams is not None else [torch.tensor(p.copy()) for p in params]
    opt = opt if opt is not None else cls(tparams, **kw)
    evals = []
    for k in range(*(steps or (0, len(grads)))):
        if k in EVAL_AT:
            opt.eval()
            evals.append([t.detach().numpy().copy() for t in tparams])
            opt.train()
        for t, g in zip(tparams, grads[k]):
            t.grad = torch.tensor(g)
        opt.step()
    return tparams, evals, opt


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_twin_is_the_numpy_apis_bits(name, kw, dtype):
    params, grads = _data(dtype)
    want, want_evals, ref = _run_numpy(name, kw, params, grads)
    tparams, evals, opt = _run_twin(getattr(pt, name), kw, params, grads)
    assert isinstance(opt, torch.optim.Optimizer)
    opt.eval()
    for a, t in zip(want, tparams):
        assert a.tobytes() == t.numpy().tobytes()
    for we, e in zip(want_evals, evals):
        for a, b in zip(we, e):
            assert a.tobytes() == b.tobytes()
    assert opt._core._hyper_groups()[0] is opt.param_groups[0]  # the core keeps its schedule in torch's groups
    for key in _GROUP_STATE:  # the schedule reached torch's groups, as the NumPy API's
        assert opt.param_groups[0][key] == ref.param_groups[0][key], key
    assert opt.param_groups[0]["k"] == STEPS and opt.param_groups[0]["train_mode"] is False
    for t, p in zip(tparams, want):
        for key, value in ref.state[p].items():
            assert opt.state[t][key].numpy().tobytes() == value.tobytes(), key


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_twin_against_the_schedulefree_package(name, kw, dtype):
    sf = pytest.importorskip("schedulefree")
    ref_cls = {"ScheduleFreeSGD": sf.SGDScheduleFree, "ScheduleFreeAdamW": sf.AdamWScheduleFree}[name]
    params, grads = _data(dtype, seed=1)
    rparams = [torch.tensor(p.copy()) for p in params]
    ref = ref_cls(rparams, **kw, foreach=False)
    ref.train()
    tparams, _, opt = _run_twin(getattr(pt, name), kw, params, grads, steps=(0, 0))
    for k in range(STEPS):
        for a, b, g in zip(rparams, tparams, grads[k]):
            a.grad, b.grad = torch.tensor(g), torch.tensor(g)
        ref.step()
        opt.step()
    for mode in ("eval", "train"):  # x, then y again
        getattr(ref, mode)()
        getattr(opt, mode)()
        for a, b in zip(rparams, tparams):
            if name == "ScheduleFreeSGD":  # the reference's operations in its order
                assert a.numpy().tobytes() == b.numpy().tobytes(), mode
            else:
                tol = dict(rtol=1e-13, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
                np.testing.assert_allclose(b.numpy(), a.numpy(), **tol, err_msg=mode)
    for key in ("k", "weight_sum", "lr_max", "scheduled_lr", "train_mode"):
        assert opt.param_groups[0][key] == ref.param_groups[0][key], key


@pytest.mark.parametrize("save_in", ["train", "eval"])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_state_dict_round_trip_resumes_bit_identically(name, kw, save_in):
    cls = getattr(pt, name)
    params, grads = _data(np.float32, seed=2)
    straight, _, run = _run_twin(cls, kw, params, grads, steps=(0, 6))
    if save_in == "eval":  # the same swaps as the interrupted run (a swap there and back rounds)
        run.eval()
        run.train()
    _run_twin(cls, kw, params, grads, steps=(6, STEPS), opt=run, tparams=straight)
    tparams, _, first = _run_twin(cls, kw, params, grads, steps=(0, 6))
    if save_in == "eval":
        first.eval()
    sd = first.state_dict()
    assert sd["param_groups"][0]["k"] == 6 and sd["param_groups"][0]["train_mode"] is (save_in == "train")
    resumed = [t.detach().clone() for t in tparams]
    second = cls(resumed, **kw)
    second.load_state_dict(sd)
    assert second._core._hyper_groups()[0]["k"] == 6  # the schedule reached the core
    if save_in == "eval":
        second.train()
    _run_twin(cls, kw, params, grads, steps=(6, STEPS), opt=second, tparams=resumed)
    for a, b in zip(straight, resumed):
        assert a.numpy().tobytes() == b.numpy().tobytes()


def test_step_in_eval_mode_is_refused_and_changes_nothing():
    params, grads = _data(np.float32, seed=3)
    tparams, _, opt = _run_twin(pt.ScheduleFreeAdamW, dict(lr=0.01), params, grads, steps=(0, 2))
    opt.eval()
    before = [t.numpy().copy() for t in tparams]
    with pytest.raises(RuntimeError, match="in eval mode: call opt.train"):
        opt.step()
    assert opt.param_groups[0]["k"] == 2
    for a, t in zip(before, tparams):
        assert a.tobytes() == t.numpy().tobytes()


def test_a_scheduler_lr_reaches_the_schedule():
    """torch's groups stay the source of the hyper-parameters: a scheduler's lr enters lr_max."""
    params, grads = _data(np.float64, seed=4)
    tparams = [torch.tensor(p.copy()) for p in params]
    opt = pt.ScheduleFreeSGD(tparams, lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=2.0)
    mine = [p.copy() for p in params]
    ref = pyoptk.ScheduleFreeSGD(mine, lr=0.1)
    for k in range(8):
        for t, g in zip(tparams, grads[k]):
            t.grad = torch.tensor(g)
        opt.step()
        sched.step()
        ref.step(grads[k])
        ref.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    assert opt.param_groups[0]["lr_max"] == ref.param_groups[0]["lr_max"] == 0.4
    for a, t in zip(mine, tparams):
        assert a.tobytes() == t.numpy().tobytes()
