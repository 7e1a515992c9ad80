"""pyoptk.torch under torch's own distributed engines, with no code of ours: DDP, and
ZeroRedundancyOptimizer(optimizer_class=pyoptk.torch.AdamW), on gloo, 2 processes on localhost
(loopback only), bounded in time. Each worker trains the same model twice, once with
torch.optim.AdamW and once with pyoptk.torch.AdamW, and reports both."""
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


def _worker(rank, port, results):
    import datetime

    import pyoptk.torch as pt

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=TIMEOUT_S // 2))
    try:
        report = {}
        for zero in (False, True):
            for label, cls in (("torch", torch.optim.AdamW), ("pyoptk", pt.AdamW)):
                r = _train(rank, cls, zero)
                report[(label, zero)] = {"params": [p.numpy() for p in r["params"]]}
                if "state_dict" in r:
                    sd = r["state_dict"]
                    report[(label, zero)]["steps"] = sorted(float(s["step"]) for s in sd["state"].values())
                    report[(label, zero)]["exp_avg"] = [sd["state"][i]["exp_avg"].numpy() for i in sorted(sd["state"])]
        results[rank] = report
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_and_zero_redundancy_optimizer_on_gloo():
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        port = _free_port()
        procs = [ctx.Process(target=_worker, args=(rank, port, results)) for rank in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(TIMEOUT_S)
        for p in procs:
            if p.is_alive():
                p.kill()
                pytest.fail(f"a worker did not finish within {TIMEOUT_S} s")
        assert [p.exitcode for p in procs] == [0, 0]
        results = dict(results)
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
