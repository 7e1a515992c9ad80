"""pyoptk.torch in torch's training machinery: every lr scheduler, swa_utils, torch.amp.GradScaler
(an injected inf skips the step as torch's fused Adam skips it), a tensor lr."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import pyoptk.torch as pt  # noqa: E402
from torch.optim import lr_scheduler as S  # noqa: E402

STEPS = 12
TOL = dict(rtol=1e-12, atol=1e-14)  # float64, as the adapter's parity tests (test_torch_adapter.py)

SCHEDULERS = [
    ("StepLR", lambda o: S.StepLR(o, step_size=3, gamma=0.5)),
    ("MultiStepLR", lambda o: S.MultiStepLR(o, milestones=[2, 5], gamma=0.3)),
    ("ConstantLR", lambda o: S.ConstantLR(o, factor=0.5, total_iters=4)),
    ("LinearLR", lambda o: S.LinearLR(o, start_factor=0.2, total_iters=5)),
    ("ExponentialLR", lambda o: S.ExponentialLR(o, gamma=0.9)),
    ("PolynomialLR", lambda o: S.PolynomialLR(o, total_iters=8, power=2.0)),
    ("CosineAnnealingLR", lambda o: S.CosineAnnealingLR(o, T_max=6, eta_min=1e-4)),
    ("CosineAnnealingWarmRestarts", lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2)),
    ("CyclicLR", lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3)),  # cycles momentum too
    ("OneCycleLR", lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=STEPS)),
    ("LambdaLR", lambda o: S.LambdaLR(o, lambda k: 1 / (1 + k))),
    ("MultiplicativeLR", lambda o: S.MultiplicativeLR(o, lambda k: 0.95)),
    ("SequentialLR", lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.1, total_iters=3), S.ExponentialLR(o, 0.8)],
                                              milestones=[3])),
    ("ChainedScheduler", lambda o: S.ChainedScheduler([S.ExponentialLR(o, 0.9), S.StepLR(o, 2, 0.5)])),
    ("ReduceLROnPlateau", lambda o: S.ReduceLROnPlateau(o, patience=1, factor=0.5)),
]


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


def _train(make_opt, make_sched=None, steps=STEPS, scaler=None, inf_at=()):
    model = _model()
    opt = make_opt(model.parameters())
    sched = make_sched(opt) if make_sched else None
    x = torch.linspace(-1, 1, 40, dtype=torch.float64).reshape(8, 5)
    y = torch.sin(x.sum(1, keepdim=True))
    lrs = []
    for k in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            if k in inf_at:
                next(model.parameters()).grad[0, 0] = float("inf")
            scaler.step(opt)
            scaler.update()
        opt.zero_grad()
        if sched is not None:
            sched.step(loss.item()) if isinstance(sched, S.ReduceLROnPlateau) else sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    return model, opt, lrs


def _close(a, b):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **TOL)


@pytest.mark.parametrize("name,make", SCHEDULERS, ids=[n for n, _ in SCHEDULERS])
def test_every_scheduler_drives_it_like_torch(name, make):
    if name == "OneCycleLR":  # cycles Adam's beta1: the hyper-parameter reaches the kernel each step
        ours = _train(lambda ps: pt.Adam(ps, lr=0.01), make)
        theirs = _train(lambda ps: torch.optim.Adam(ps, lr=0.01, foreach=False), make)
    else:
        ours = _train(lambda ps: pt.SGD(ps, lr=0.05, momentum=0.9), make)
        theirs = _train(lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, foreach=False), make)
    assert ours[2] == theirs[2]  # the same lr at every step
    for a, b in zip(ours[0].parameters(), theirs[0].parameters()):
        _close(a, b)


def test_tensor_lr_changed_in_place_by_a_scheduler():
    make = lambda o: S.ExponentialLR(o, gamma=0.7)  # noqa: E731
    ours = _train(lambda ps: pt.Adam(ps, lr=torch.tensor(0.02)), make)
    theirs = _train(lambda ps: torch.optim.Adam(ps, lr=torch.tensor(0.02), foreach=False), make)
    assert torch.is_tensor(ours[1].param_groups[0]["lr"])
    for a, b in zip(ours[0].parameters(), theirs[0].parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-9)
        # (loose: torch computes with a float32 tensor lr in tensor arithmetic, pyoptk with its value in double)


def _own_step_case(name):
    """Params and a training step for the optimizers with their own step: rows of a sparse
    embedding (SparseAdam), a closure (LBFGS), a matrix (Adafactor's factored path, Muon)."""
    torch.manual_seed(0)
    if name == "SparseAdam":
        emb = torch.nn.Embedding(6, 3, sparse=True).double()
        idx = torch.tensor([0, 4, 4])

        def step(opt):
            opt.zero_grad()
            emb(idx).pow(2).sum().backward()
            opt.step()
        return list(emb.parameters()), step
    w = torch.nn.Parameter(torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3))

    def closure(opt):
        opt.zero_grad()
        loss = 0.5 * ((w - 3) ** 2).sum()
        loss.backward()
        return loss
    if name == "LBFGS":
        return [w], lambda opt: opt.step(lambda: closure(opt))
    return [w], lambda opt: (closure(opt), opt.step())


@pytest.mark.parametrize("name", ["Adafactor", "Muon", "LBFGS", "SparseAdam"])
def test_tensor_lr_for_optimizers_with_their_own_step(name, ns_in_dtype):
    """A tensor lr changed in place between steps is read at each step: the same bits as a float
    lr changed in the group, and torch.optim's trajectory with that float lr (torch's own run with
    the tensor is not that: its LBFGS differs from its float-lr run by 1e-5, its SparseAdam by
    2e-8, measured, as it computes with the tensor in tensor arithmetic)."""
    runs = []
    for cls, lr in ((pt, torch.tensor(0.25)), (pt, 0.25), (torch.optim, 0.25)):
        params, step = _own_step_case(name)
        opt = getattr(cls, name)(params, lr=lr)
        for k in range(4):
            if k == 2:  # a scheduler's new value (exact in float32, so the float run can match it)
                if torch.is_tensor(lr):
                    lr.fill_(0.0625)
                else:
                    opt.param_groups[0]["lr"] = 0.0625
            step(opt)
        runs.append([p.detach().clone() for p in params])
    start = _own_step_case(name)[0]
    for ours, float_lr, theirs, before in zip(*runs, start):
        assert torch.equal(ours, float_lr) and not torch.equal(ours, before.detach())
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), **TOL)


def test_swa_utils():
    from torch.optim.swa_utils import SWALR, AveragedModel

    def run(cls):
        model = _model()
        swa = AveragedModel(model)
        opt = cls(model.parameters(), lr=0.05)
        sched = SWALR(opt, swa_lr=0.01, anneal_epochs=3)
        x = torch.linspace(-1, 1, 40, dtype=torch.float64).reshape(8, 5)
        for _ in range(STEPS):
            model(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
            sched.step()
            swa.update_parameters(model)
        return swa, opt
    swa, opt = run(pt.SGD)
    tswa, topt = run(torch.optim.SGD)
    assert opt.param_groups[0]["lr"] == topt.param_groups[0]["lr"]
    for a, b in zip(swa.parameters(), tswa.parameters()):
        _close(a, b)


def test_grad_scaler_skips_an_inf_step_as_torch_fused_adam():
    def run(make):
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
        model, opt, _ = _train(make, scaler=scaler, inf_at=(2, 7))
        return model, opt, scaler
    model, opt, scaler = run(lambda ps: pt.Adam(ps, lr=0.01))
    tmodel, topt, tscaler = run(lambda ps: torch.optim.Adam(ps, lr=0.01, fused=True))
    assert scaler.get_scale() == tscaler.get_scale()  # halved twice, grown on the same steps
    for a, b in zip(model.parameters(), tmodel.parameters()):
        _close(a, b)
        assert int(opt.state[a]["step"]) == int(topt.state[b]["step"]) == STEPS - 2  # two steps skipped
        _close(opt.state[a]["exp_avg_sq"], topt.state[b]["exp_avg_sq"])
    # Today the fused protocol is off: GradScaler unscales the grads and skips by itself.
    assert opt._step_supports_amp_scaling == ("grad_scale" in __import__("inspect").signature(
        pt.Adam.core_class.step).parameters)
