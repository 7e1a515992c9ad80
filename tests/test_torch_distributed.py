"""pyoptk.torch under torch's distributed engines, on gloo, 2 processes on localhost (loopback
only), bounded in time: DDP and ZeroRedundancyOptimizer(optimizer_class=pyoptk.torch.AdamW), with
no code of ours; FSDP2 (fully_shard), whose DTensor params the element-wise twins step as their
local shards. Each worker trains the same model with torch.optim.AdamW and with
pyoptk.torch.AdamW, and reports both."""
from __future__ import annotations

import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

STEPS = 5
TIMEOUT_S = 240


def _train(rank, optimizer_class, zero):
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                                torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()
    ddp = DDP(model)
    kw = dict(lr=0.01, weight_decay=0.1)
    opt = (ZeroRedundancyOptimizer(ddp.parameters(), optimizer_class=optimizer_class, **kw) if zero
           else optimizer_class(ddp.parameters(), **kw))
    gen = torch.Generator().manual_seed(100 + rank)  # each rank its own data
    for _ in range(STEPS):
        x = torch.randn(8, 6, generator=gen, dtype=torch.float64)
        ddp(x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    out = {"params": [p.detach().clone() for p in model.parameters()]}
    if zero:
        opt.consolidate_state_dict(to=0)
        if rank == 0:
            out["state_dict"] = opt.state_dict()
    return out


def _ddp_report(rank):
    import pyoptk.torch as pt

    report = {}
    for zero in (False, True):
        for label, cls in (("torch", torch.optim.AdamW), ("pyoptk", pt.AdamW)):
            r = _train(rank, cls, zero)
            report[(label, zero)] = {"params": [p.numpy() for p in r["params"]]}
            if "state_dict" in r:
                sd = r["state_dict"]
                report[(label, zero)]["steps"] = sorted(float(s["step"]) for s in sd["state"].values())
                report[(label, zero)]["exp_avg"] = [sd["state"][i]["exp_avg"].numpy() for i in sorted(sd["state"])]
    return report


def _rank_main(rank, port, results, body):
    import datetime

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=TIMEOUT_S // 2))
    try:
        results[rank] = body(rank)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _on_two_ranks(body):
    """{rank: body(rank)} from 2 spawned processes in one gloo group on localhost, bounded in time."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        port = _free_port()
        procs = [ctx.Process(target=_rank_main, args=(rank, port, results, body)) for rank in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(TIMEOUT_S)
        for p in procs:
            if p.is_alive():
                p.kill()
                pytest.fail(f"a worker did not finish within {TIMEOUT_S} s")
        assert [p.exitcode for p in procs] == [0, 0]
        return dict(results)


def test_ddp_and_zero_redundancy_optimizer_on_gloo():
    results = _on_two_ranks(_ddp_report)
    tol = dict(rtol=1e-12, atol=1e-14)  # float64, as the adapter's parity tests
    for rank in range(2):
        for zero in (False, True):
            theirs, ours = results[rank][("torch", zero)], results[rank][("pyoptk", zero)]
            for a, b in zip(ours["params"], theirs["params"]):
                np.testing.assert_allclose(a, b, **tol)
        for key in results[0]:  # DDP keeps the replicas equal
            for a, b in zip(results[0][key]["params"], results[1][key]["params"]):
                assert np.array_equal(a, b)
    zero_ours, zero_theirs = results[0][("pyoptk", True)], results[0][("torch", True)]
    assert zero_ours["steps"] == zero_theirs["steps"] == [float(STEPS)] * 6  # every shard's state consolidated
    for a, b in zip(zero_ours["exp_avg"], zero_theirs["exp_avg"]):
        np.testing.assert_allclose(a, b, **tol)


# ----- FSDP2 ---------------------------------------------------------------------------------
HYPER = dict(lr=0.01, weight_decay=0.1)


def _fsdp_model(offload):
    from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard

    torch.manual_seed(0)
    # Linear(16, 3): 3 rows over 2 ranks, so rank 1's shards are padded ones.
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                                torch.nn.Tanh(), torch.nn.Linear(16, 3)).double()
    kw = dict(offload_policy=CPUOffloadPolicy(pin_memory=False)) if offload else {}  # pinning needs an accelerator
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, **kw)
    fully_shard(model, **kw)
    return model


def _local(t):
    with torch.no_grad():
        return t.to_local().detach().clone()


def _fsdp_train(rank, make_opt, offload):
    model = _fsdp_model(offload)
    params = list(model.parameters())
    opt = make_opt(params)
    start = [_local(p).numpy() for p in params]
    grads = []
    gen = torch.Generator().manual_seed(100 + rank)  # each rank its own data
    for _ in range(STEPS):
        x = torch.randn(8, 6, generator=gen, dtype=torch.float64)
        model(x).pow(2).mean().backward()
        grads.append([_local(p.grad).numpy() for p in params])
        opt.step()
        opt.zero_grad()
    return model, opt, start, grads


def _fsdp_report(rank):
    import pyoptk.torch as pt
    from torch.distributed.tensor import DTensor

    report = {}
    for offload in (False, True):
        runs = {}
        for label, cls in (("torch", torch.optim.AdamW), ("pyoptk", pt.AdamW)):
            model, opt, start, grads = _fsdp_train(rank, lambda ps: cls(ps, **HYPER), offload)
            params = list(model.parameters())
            assert all(isinstance(p, DTensor) for p in params)
            sd = opt.state_dict()
            runs[label] = (params, opt)
            report[(label, offload)] = {
                "start": start, "grads": grads,
                "local": [_local(p).numpy() for p in params],
                "full": [p.full_tensor().detach().numpy() for p in params],  # a collective: same order on both ranks
                "state_types": [type(s["exp_avg"]).__name__ for s in sd["state"].values()],
                "exp_avg": [_local(s["exp_avg"]).numpy() for s in sd["state"].values()],
                "steps": [float(s["step"]) for s in sd["state"].values()],
            }
        # Checkpoints cross: torch's into a twin over its params, the twin's into torch.optim.
        (tparams, topt), (oparams, opt) = runs["torch"], runs["pyoptk"]
        into_ours = pt.AdamW(tparams, **HYPER)
        into_ours.load_state_dict(topt.state_dict())
        into_torch = torch.optim.AdamW(oparams, **HYPER)
        into_torch.load_state_dict(opt.state_dict())
        for a, b in ((into_ours, topt), (into_torch, opt)):
            for s, t in zip(a.state_dict()["state"].values(), b.state_dict()["state"].values()):
                for k in ("exp_avg", "exp_avg_sq"):
                    assert torch.equal(_local(s[k]), _local(t[k])), k
                assert float(s["step"]) == float(t["step"])
    model = _fsdp_model(False)
    refusals = {}
    for name in ("Muon", "LBFGS", "Adafactor", "LAMB"):
        try:
            getattr(pt, name)(model.parameters())
        except TypeError as e:
            refusals[name] = str(e)
    report["refusals"] = refusals
    # A shard reallocated after the optimizer was made (as FSDP2's reset_sharded_param does on
    # a load with assign=True): the step is refused, nothing written.
    opt = pt.AdamW(model.parameters(), **HYPER)
    first = next(model.parameters())
    first._local_tensor = first._local_tensor.clone()
    model(torch.ones(2, 6, dtype=torch.float64)).sum().backward()
    before = [_local(p) for p in model.parameters()]
    try:
        opt.step()
    except RuntimeError as e:
        report["moved"] = str(e)
    assert all(torch.equal(b, _local(p)) for b, p in zip(before, model.parameters())) and not opt.state
    return report


def test_fsdp2_shards_stepped_in_place_with_and_without_cpu_offload():
    """FSDP2 (fully_shard), with and without CPUOffloadPolicy: an element-wise twin steps each
    DTensor param's local shard in place. Each rank trains the sharded model with torch.optim.AdamW
    and with pyoptk.torch.AdamW: the params follow torch's, and each shard is bit for bit what
    pyoptk's NumPy AdamW makes of the same local grads (the kernels stepped the shard memory
    itself); checkpoints cross both ways; optimizers needing whole tensors refuse DTensors."""
    import pyoptk

    results = _on_two_ranks(_fsdp_report)
    tol = dict(rtol=1e-12, atol=1e-14)  # float64, as the adapter's parity tests
    assert [a.shape for a in results[1][("pyoptk", False)]["local"]][-2:] == [(1, 16), (1,)]  # uneven shards
    for rank in range(2):
        for offload in (False, True):
            theirs, ours = results[rank][("torch", offload)], results[rank][("pyoptk", offload)]
            for a, b in zip(ours["full"], theirs["full"]):
                np.testing.assert_allclose(a, b, **tol)
            for a, b in zip(ours["exp_avg"], theirs["exp_avg"]):
                np.testing.assert_allclose(a, b, **tol)
            assert ours["state_types"] == theirs["state_types"] == ["DTensor"] * 6  # torch's state layout
            assert ours["steps"] == theirs["steps"] == [float(STEPS)] * 6
            # The NumPy API on this rank's shards and local grads: the same bits.
            shards = [a.copy() for a in ours["start"]]
            npopt = pyoptk.AdamW(shards, **HYPER)
            for grads in ours["grads"]:
                npopt.step(grads)
            for got, want in zip(ours["local"], shards):
                assert np.array_equal(got, want)
            assert not all(np.array_equal(a, b) for a, b in zip(ours["local"], ours["start"]))
    for key in [k for k in results[0] if isinstance(k, tuple)]:  # the full params agree across ranks
        for a, b in zip(results[0][key]["full"], results[1][key]["full"]):
            assert np.array_equal(a, b)
    for name, message in results[0]["refusals"].items():
        assert "DTensor" in message and "needs each whole tensor" in message, name
        assert (f"torch.optim.{name}" in message) == (name != "LAMB"), name  # torch.optim has no LAMB
    assert sorted(results[0]["refusals"]) == ["Adafactor", "LAMB", "LBFGS", "Muon"]
    assert "param 0's local shard (FSDP2) is no longer the memory" in results[0]["moved"]
