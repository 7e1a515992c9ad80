"""The step inside the backward: ``Optimizer.step_params`` (a subset of the params in one planned
call) and pyoptk.torch's ``step_in_backward``. Their trajectories are the ordinary step's bit for
bit: both are held to the hashes tests/test_step_bits.py recorded for the ordinary step (every
element-wise algorithm and storage option, a scheduler's lr writes and a checkpoint in the
middle), on 1 and 2 threads; and what this mode cannot do the same way is refused."""
from __future__ import annotations

import contextlib
import json
import warnings

import numpy as np
import pytest

import pyoptk
from cases import ENTRIES
from test_step_bits import BF16, CASES, GOLDEN, _case_id, _problem, _run, _torch_run

STEPPABLE = [c for c in CASES if ENTRIES[c[0]].cls.step_params_refusal is None]


def _with_threads(cases):
    """Each case on 1 thread; on 2 (every array split across both) those in float32 or bfloat16
    with the default storage or stochastic rounding, to keep the run short."""
    return [(*c, 1) for c in cases] + [(*c, 2) for c in cases if c[2] in (np.float32, BF16) and
                                       (not c[3] or c[3].get("stochastic_rounding"))]


def _ids(cases):
    return [f"{_case_id(*c[:4])}-{c[4]}thread" for c in cases]


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


def _buckets(n, t):
    """Backward order (last param first), cut into buckets of 1 to 3 params, differently each step."""
    order, out = list(range(n))[::-1], []
    while order:
        size = 1 + (t + len(out)) % 3
        out.append(order[:size])
        order = order[size:]
    return out


def _subset_step(opt, g, t):
    """A step of test_step_bits._run made of step_params() calls over buckets."""
    for bucket in _buckets(len(g), t):
        opt.step_params(bucket, [g[i] for i in bucket])


@pytest.mark.parametrize("name,kw,dtype,precision,threads", _with_threads(STEPPABLE), ids=_ids(_with_threads(STEPPABLE)))
def test_step_params_gives_the_ordinary_steps_bits(name, kw, dtype, precision, threads, golden, kernel_config):
    if precision.get("stochastic_rounding") and not ENTRIES[name].elementwise:
        pytest.skip("refused: test_step_params_refusals")
    kernel_config(pyoptk.isa(), threads)
    assert _run(name, kw, dtype, precision, _subset_step) == golden[_case_id(name, kw, dtype, precision)]


def test_step_params_mixed_with_step_and_missing_grads():
    """step() and step_params() interleaved, subsets that change, a param without a grad in a
    step, a flag turned on mid-run: the same bits as step() alone (None grads skipped alike)."""
    params, grads = _problem("Adam", np.float32, seed=1)
    a, b = [p.copy() for p in params], [p.copy() for p in params]
    oa, ob = pyoptk.Adam(a, lr=0.01), pyoptk.Adam(b, lr=0.01)
    n = len(params)
    for t, g in enumerate(grads):
        g = [None if (t == 2 and i == 1) else x for i, x in enumerate(g)]
        if t == 3:
            oa.param_groups[0]["amsgrad"] = ob.param_groups[0]["amsgrad"] = True
        oa.step(g)
        if t == 1:
            ob.step(g)
        else:
            cut = 1 + t % (n - 1)
            ob.step_params(list(range(cut, n)), g[cut:])
            ob.step_params(list(range(cut)), g[:cut])
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert [oa.state[p]["step"] for p in a] == [ob.state[p]["step"] for p in b]


def test_step_params_refusals():
    p = [np.zeros(3, np.float32), np.zeros(2, np.float32)]
    g = [np.ones(3, np.float32), np.ones(2, np.float32)]
    opt = pyoptk.Adam(p)
    with pytest.raises(IndexError, match="out of range"):
        opt.step_params([2], [g[0]])
    with pytest.raises(ValueError, match="twice"):
        opt.step_params([0, 0], [g[0], g[0]])
    with pytest.raises(ValueError, match="2 grads for 1 indices"):
        opt.step_params([0], g)
    with pytest.raises(TypeError, match="list of param positions"):
        opt.step_params(0, [g[0]])
    with pytest.raises(ValueError):  # a grad of the wrong shape: nothing written
        opt.step_params([0, 1], [g[1], g[0]])
    assert not opt.state and not p[0].any()
    for cls in (pyoptk.LBFGS, pyoptk.ScheduleFreeAdamW, pyoptk.ScheduleFreeSGD):
        with pytest.raises(TypeError, match="cannot step some of its params alone"):
            cls([np.zeros(3)]).step_params([0], [np.ones(3)])
    low = [np.zeros((3, 4), BF16)]
    with pytest.raises(ValueError, match="stochastic_rounding"):
        pyoptk.Adafactor(low, stochastic_rounding=True).step_params([0], [np.ones((3, 4), BF16)])


def test_step_params_sparse_adam():
    rng = np.random.default_rng(0)
    a = [rng.standard_normal((6, 3)).astype(np.float32) for _ in range(2)]
    b = [x.copy() for x in a]
    oa, ob = pyoptk.SparseAdam(a, lr=0.1), pyoptk.SparseAdam(b, lr=0.1)
    for t in range(3):
        g = [pyoptk.SparseGrad(np.array([t, 4]), rng.standard_normal((2, 3)).astype(np.float32)) for _ in a]
        oa.step(g)
        ob.step_params([1], [g[1]])
        ob.step_params([0], [g[0]])
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


# ----- pyoptk.torch: step_in_backward --------------------------------------------------------
torch = pytest.importorskip("torch")
import pyoptk.torch as pt  # noqa: E402


def _backward_step(opt, params, grads):
    """A step of test_step_bits._torch_run made inside a backward whose grads are the recorded ones
    (d/dp sum(p * g) = 1 * g, exactly); it frees them."""
    sum((p * g).sum() for p, g in zip(params, grads)).backward()
    assert all(p.grad is None for p in params)


TORCH_STEPPABLE = [c for c in STEPPABLE if c[2] in (np.float32, BF16) and ENTRIES[c[0]].elementwise]


@pytest.mark.parametrize("name,kw,dtype,precision,threads", _with_threads(TORCH_STEPPABLE),
                         ids=_ids(_with_threads(TORCH_STEPPABLE)))
def test_torch_step_in_backward_gives_the_ordinary_steps_bits(name, kw, dtype, precision, threads, golden,
                                                              kernel_config):
    kernel_config(pyoptk.isa(), threads)
    bucket_bytes = (0, 256, 1 << 20)[TORCH_STEPPABLE.index((name, kw, dtype, precision)) % 3]
    arm = pt.InBackward(bucket_bytes=bucket_bytes)
    assert _torch_run(name, kw, dtype, precision, _backward_step, step_in_backward=arm) == \
        golden["torch:" + _case_id(name, kw, dtype, precision)]


# ----- models: the ordinary loop against the in-backward one ----------------------------------
class Tied(torch.nn.Module):
    """A language-model shape: the embedding's weight is the output layer's too (used twice in the graph)."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(50, 16, dtype=dtype)
        self.mid = torch.nn.Linear(16, 16, dtype=dtype)
        self.side = torch.nn.Linear(16, 16, dtype=dtype)  # used on odd steps only: no grad on the others

    def forward(self, x, t):
        h = torch.tanh(self.mid(self.emb(x)))
        if t % 2:
            h = h + self.side(h)
        return h @ self.emb.weight.T


def _batches(steps=6):
    gen = torch.Generator().manual_seed(1)
    return [(torch.randint(0, 50, (8,), generator=gen), torch.randint(0, 50, (8,), generator=gen)) for _ in range(steps)]


def _loss(model, x, y, t):
    return torch.nn.functional.cross_entropy(model(x, t).float(), y)


def _train(cls, kw, in_backward, dtype=torch.float32, groups=False, clip=None, accumulate=1, scheduler=True):
    model = Tied(dtype)
    params = [{"params": [model.emb.weight, model.mid.weight, model.side.weight]},
              {"params": [model.mid.bias, model.side.bias], "lr": 0.003}] if groups else list(model.parameters())
    extra = {}
    if in_backward:
        extra["step_in_backward"] = pt.InBackward(bucket_bytes=2048, accumulate_steps=accumulate,
                                                  clip_grad_norm_per_param=clip)
    opt = cls(params, **kw, **extra)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5) if scheduler else None
    for t, (x, y) in enumerate(_batches()):
        if t == 3:  # a checkpoint in the middle, loaded into a new optimizer
            saved = opt.state_dict()
            opt = cls(params if not groups else [dict(g) for g in params], **kw, **extra)
            opt.load_state_dict(saved)
            if sched is not None:
                state = sched.state_dict()
                sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
                sched.load_state_dict(state)
        for _ in range(accumulate):
            _loss(model, x, y, t).backward()
        if not in_backward:
            if clip is not None:
                for p in model.parameters():
                    if p.grad is not None:
                        torch.nn.utils.clip_grad_norm_(p, clip, foreach=False)
            opt.step()
            opt.zero_grad()
        if sched is not None:
            sched.step()
    return model, opt


def _same(m1, m2):
    return all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))


@pytest.mark.parametrize("name,kw", [("AdamW", dict(lr=0.01, weight_decay=0.1)), ("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("Adafactor", dict(lr=0.01)), ("LAMB", dict(lr=0.01)), ("LARS", dict(lr=0.1)),
                                     ("Muon", dict(lr=0.01)), ("Lion", dict(lr=1e-3))])
def test_tied_weights_groups_scheduler_checkpoint(name, kw):
    """A weight used twice (its hook fires once, after both uses accumulated), a param without a
    grad every other step, two param groups, a scheduler and a checkpoint: the ordinary bits."""
    cls = getattr(pt, name)
    if name == "Muon":  # 2-d params only
        def cls(params, **k):  # noqa: E306
            return pt.Muon([q for g in params for q in g["params"] if q.dim() == 2], **k)
        ref, _ = _train(cls, kw, False, groups=True, scheduler=False)
        got, opt = _train(cls, kw, True, groups=True, scheduler=False)
    else:
        ref, _ = _train(cls, kw, False, groups=True)
        got, opt = _train(cls, kw, True, groups=True)
    assert _same(ref, got)
    model_params = list(got.parameters())
    steps = {i: float(opt.state[p]["step"]) for i, p in enumerate(model_params) if p in opt.state and "step" in opt.state[p]}
    if steps:  # the tied embedding once per backward; `side`, which has a grad every other backward, 3 times
        assert steps[0] == 6 and steps[3] == 3


def test_bf16_master_weights_and_stochastic_rounding():
    for precision in (dict(master_weights=True), dict(stochastic_rounding=True, seed=5)):
        ref, _ = _train(pt.AdamW, dict(lr=0.01, **precision), False, dtype=torch.bfloat16)
        got, _ = _train(pt.AdamW, dict(lr=0.01, **precision), True, dtype=torch.bfloat16)
        assert _same(ref, got), precision


def test_clip_per_param_and_accumulation_equal_the_ordinary_loop():
    ref, _ = _train(pt.Adam, dict(lr=0.01), False, clip=0.05)
    got, _ = _train(pt.Adam, dict(lr=0.01), True, clip=0.05)
    assert _same(ref, got)
    ref, _ = _train(pt.Adam, dict(lr=0.01), False, accumulate=3)
    got, _ = _train(pt.Adam, dict(lr=0.01), True, accumulate=3)
    assert _same(ref, got)


def _small():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def test_step_and_zero_grad_mark_the_boundary_with_one_note():
    model = _small()
    opt = pt.Adam(model.parameters(), step_in_backward=True)
    x = torch.randn(5, 4)
    model(x).sum().backward()
    assert all(p.grad is None for p in model.parameters())
    with pytest.warns(UserWarning, match="do nothing here"):
        opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.zero_grad()
        opt.step()  # one note per optimizer
    model(x).sum().backward()
    opt.step()
    model(x).sum().backward()  # the loop marks its steps: a second backward before one is refused
    with pytest.raises(RuntimeError, match="accumulate_steps"):
        model(x).sum().backward()
    # retain_graph: the second backward through it meets params the first one stepped
    opt2 = pt.Adam(model.parameters(), step_in_backward=True)
    loss = model(x).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    del opt2


def test_keep_grads_and_a_loop_without_boundaries():
    model = _small()
    opt = pt.SGD(model.parameters(), lr=0.1, step_in_backward=pt.InBackward(keep_grads=True))
    x = torch.randn(5, 4)
    model(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    assert all(g.abs().sum() > 0 for g in grads)
    with pytest.warns(UserWarning):
        opt.zero_grad()  # kept grads: zero_grad clears them, as torch's
    assert all(p.grad is None for p in model.parameters())
    # A loop that never calls step() / zero_grad(): every backward is a step.
    ref, other = _small(), _small()
    o1 = pt.SGD(ref.parameters(), lr=0.1)
    o2 = pt.SGD(other.parameters(), lr=0.1, step_in_backward=True)
    for _ in range(3):
        ref(x).sum().backward()
        o1.step()
        o1.zero_grad()
        other(x).sum().backward()
    assert _same(ref, other)
    del o2


def test_refusals():
    model = _small()
    for cls in (pt.LBFGS, pt.ScheduleFreeAdamW, pt.ScheduleFreeSGD):
        with pytest.raises(TypeError, match="cannot step inside the backward"):
            cls(model.parameters(), step_in_backward=True)
    with pytest.raises(ValueError, match="clip_grad_norm_per_param"):
        pt.InBackward(clip_grad_norm=1.0)
    with pytest.raises(TypeError, match="step_in_backward must be"):
        pt.Adam(model.parameters(), step_in_backward="yes")
    with pytest.raises(ValueError, match="accumulate_steps"):
        pt.InBackward(accumulate_steps=0)
    opt = pt.Adam(model.parameters(), step_in_backward=pt.InBackward(accumulate_steps=2))
    model(torch.randn(3, 4)).sum().backward()
    with pytest.raises(RuntimeError, match="1 of the 2 backwards"), pytest.warns(UserWarning):
        opt.step()


@pytest.mark.parametrize("outputs", ["tensor", "list", "generator"])
def test_grad_scaler_is_refused_before_any_param_is_stepped(outputs):
    model = _small()
    opt = pt.Adam(model.parameters(), step_in_backward=pt.InBackward(bucket_bytes=0))
    before = [p.detach().clone() for p in model.parameters()]
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    loss = model(torch.randn(3, 4)).sum()
    with pytest.raises(RuntimeError, match="GradScaler.*refused before any param is stepped"):
        if outputs == "tensor":
            scaler.scale(loss).backward()
        elif outputs == "list":
            scaler.scale([loss])[0].backward()
        else:
            next(iter(scaler.scale(iter([loss])))).backward()
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))  # nothing stepped
    assert not opt.state
    with pytest.raises(RuntimeError, match="GradScaler"):  # and at scaler.step, as before
        scaler.step(opt)
    # The mark ends with its backward: an unscaled backward after it steps.
    model(torch.randn(3, 4)).sum().backward()
    assert not all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_a_disabled_grad_scaler_is_the_ordinary_loop():
    model, ref = _small(), _small()
    ref.load_state_dict(model.state_dict())
    opt = pt.Adam(model.parameters(), step_in_backward=True)
    ref_opt = pt.Adam(ref.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    x = torch.randn(3, 4)
    for _ in range(3):
        with pytest.warns(UserWarning) if _ == 0 else contextlib.nullcontext():
            scaler.scale(model(x).sum()).backward()
            scaler.step(opt)
        scaler.update()
        ref(x).sum().backward()
        ref_opt.step()
        ref_opt.zero_grad()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), ref.parameters()))


def test_a_new_optimizer_over_the_params_takes_them_over():
    model, ref = _small(), _small()
    old = pt.SGD(model.parameters(), lr=0.1, step_in_backward=True)
    new = pt.SGD(model.parameters(), lr=0.1, step_in_backward=True)  # e.g. made to load a checkpoint
    o = pt.SGD(ref.parameters(), lr=0.1)
    x = torch.randn(3, 4)
    model(x).sum().backward()
    ref(x).sum().backward()
    o.step()
    assert _same(model, ref)  # stepped once, by `new`
    extra = torch.nn.Parameter(torch.ones(3))
    new.add_param_group({"params": [extra]})  # a group added later is hooked too
    (extra * 2).sum().backward()
    assert torch.equal(extra.detach(), torch.full((3,), 0.8))
    del old


def test_optimizer_step_hooks_run_once_per_backward():
    model = _small()
    opt = pt.Adam(model.parameters(), step_in_backward=pt.InBackward(bucket_bytes=0))
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    model(torch.randn(3, 4)).sum().backward()
    assert calls == ["pre", "post"]


# ----- DDP on gloo, 2 processes -----------------------------------------------------------------
def _ddp_in_backward(rank):
    """The ordinary loop and the in-backward one (after DDP's all-reduce), then the refusal when
    the mode is not told that DDP reduces the grads."""
    import pyoptk.torch as pt
    from torch.nn.parallel import DistributedDataParallel as DDP

    out = {}
    for label, arm in (("ordinary", False), ("in_backward", pt.InBackward(after_ddp=True, bucket_bytes=256))):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()
        ddp = DDP(model, bucket_cap_mb=0.001)  # several DDP buckets
        opt = pt.AdamW(ddp.parameters(), lr=0.01, weight_decay=0.1, step_in_backward=arm)
        gen = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        for _ in range(4):
            ddp(torch.randn(8, 6, generator=gen, dtype=torch.float64)).pow(2).mean().backward()
            if not arm:
                opt.step()
                opt.zero_grad()
        out[label] = [p.detach().numpy().copy() for p in model.parameters()]
        out[label + "_grads"] = [p.grad is None for p in model.parameters()]
    model = torch.nn.Linear(6, 2).double()
    ddp = DDP(model)
    opt = pt.AdamW(ddp.parameters(), step_in_backward=True)
    try:
        ddp(torch.randn(3, 6, dtype=torch.float64)).sum().backward()
        out["refusal"] = None
    except RuntimeError as e:
        out["refusal"] = str(e)
    out["untouched"] = bool(opt.state == {} or not len(opt.state))
    return out


def test_ddp_on_two_gloo_processes(tmp_path, monkeypatch):
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    from test_torch_distributed import _on_two_ranks

    monkeypatch.chdir(tmp_path)  # the workers import the installed pyoptk, not the source tree's
    results = _on_two_ranks(_ddp_in_backward)
    for rank in range(2):
        r = results[rank]
        for a, b in zip(r["ordinary"], r["in_backward"]):
            assert np.array_equal(a, b)
        assert all(r["in_backward_grads"])  # freed after the step
        assert "all-reduced" in r["refusal"] and "after_ddp=True" in r["refusal"]
        assert r["untouched"]
    for a, b in zip(results[0]["in_backward"], results[1]["in_backward"]):
        assert np.array_equal(a, b)


def _fsdp2_in_backward(rank):
    """FSDP2 (fully_shard): what a post-accumulate-grad hook sees of its DTensor params in a
    backward, and the in-backward mode's refusal of them (the ordinary mode arms as usual)."""
    import pyoptk.torch as pt
    from test_torch_distributed import _fsdp_model

    model = _fsdp_model(offload=False)
    fired = []
    handles = [p.register_post_accumulate_grad_hook(lambda p: fired.append(type(p.grad).__name__))
               for p in model.parameters()]
    model(torch.randn(4, 6, dtype=torch.float64)).sum().backward()
    for h in handles:
        h.remove()
    out = {"fired": fired, "grads": [type(p.grad).__name__ for p in model.parameters()]}
    try:
        pt.AdamW(model.parameters(), step_in_backward=True)
        out["refusal"] = None
    except TypeError as e:
        out["refusal"] = str(e)
    out["ordinary"] = type(pt.AdamW(model.parameters())).__name__
    return out


def test_fsdp2_refused_on_two_gloo_processes(tmp_path, monkeypatch):
    """FSDP2 calls its params' post-accumulate-grad hooks itself, once each reduce-scatter set the
    sharded DTensor grads; the mode does not step DTensor params: refused at construction, with
    the ordinary mode (which steps FSDP2's local shards) named."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    pytest.importorskip("torch.distributed.fsdp")
    from test_torch_distributed import _on_two_ranks

    monkeypatch.chdir(tmp_path)  # the workers import the installed pyoptk, not the source tree's
    results = _on_two_ranks(_fsdp2_in_backward)
    for rank in range(2):
        r = results[rank]
        assert r["fired"] == ["DTensor"] * 6  # each hook fired once, with the reduce-scattered shard set
        assert r["grads"] == ["DTensor"] * 6
        assert "param 0 is a DTensor (FSDP2)" in r["refusal"] and "ordinary mode" in r["refusal"]
        assert r["ordinary"] == "AdamW"


def test_sparse_adam_with_sparse_embedding_grads():
    def run(arm):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(20, 4, sparse=True)
        opt = pt.SparseAdam(emb.parameters(), lr=0.1, step_in_backward=arm)
        for t in range(3):
            emb(torch.tensor([t, 5, 7])).square().sum().backward()
            if not arm:
                opt.step()
                opt.zero_grad()
        return emb.weight.detach()

    assert torch.equal(run(False), run(True))
