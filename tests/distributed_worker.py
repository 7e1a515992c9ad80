"""What tests/test_distributed_mpi.py runs under ``mpiexec -n K``: ``python distributed_worker.py
MODE [DIR]``. Each rank checks its own results and prints ``rank R ok: MODE`` at the end; any
failure raises (and mpi4py's ``-m mpi4py`` runner, which the test uses, aborts the job).

The reference everywhere is the plain optimizer on one process, stepped with the grads every
rank computed, reduced as ShardedOptimizer documents: summed in rank order in the wire dtype
(float32 for float32 and 16-bit params), then divided by the number of ranks."""
from __future__ import annotations

import copy
import os
import sys

import ml_dtypes
import numpy as np

import pyoptk
from pyoptk import lr_scheduler

BF16 = np.dtype(ml_dtypes.bfloat16)
SHAPES = [(7, 3), (1,), (50,), (4, 4, 2), (33,)]  # odd sizes: uneven shards, params split across ranks

# Every element-wise algorithm, with flags that exercise its state (momentum, amsgrad, centered...).
ALGORITHMS = {
    "SGD": (pyoptk.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "Adam": (pyoptk.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    "AdamW": (pyoptk.AdamW, dict(lr=0.01)),
    "RMSprop": (pyoptk.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    "Adagrad": (pyoptk.Adagrad, dict(lr=0.1, lr_decay=0.01)),
    "Adadelta": (pyoptk.Adadelta, dict(lr=1.0)),
    "Adamax": (pyoptk.Adamax, dict(lr=0.01)),
    "NAdam": (pyoptk.NAdam, dict(lr=0.01)),
    "RAdam": (pyoptk.RAdam, dict(lr=0.01)),
    "Rprop": (pyoptk.Rprop, dict(lr=0.01)),
    "ASGD": (pyoptk.ASGD, dict(lr=0.01, t0=2)),
    "Lion": (pyoptk.Lion, dict(lr=1e-3, weight_decay=0.1)),
    "Adan": (pyoptk.Adan, dict(lr=0.01)),
    "ADOPT": (pyoptk.ADOPT, dict(lr=0.01)),
    "AdEMAMix": (pyoptk.AdEMAMix, dict(lr=0.01, t_alpha=3, t_beta3=3)),
}
# float32; bfloat16 params with float32 master weights; bfloat16 params with float32 state.
PRECISIONS = {"float32": (np.float32, {}), "bf16-master": (BF16, dict(master_weights=True)),
              "bf16-f32-state": (BF16, dict(state_dtype="float32"))}


def wire(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def initial_params(dtype, shapes=SHAPES) -> list[np.ndarray]:
    rng = np.random.default_rng(1234)
    return [rng.standard_normal(s).astype(np.float32).astype(dtype) for s in shapes]


def rank_grads(step: int, rank: int, params: list[np.ndarray]) -> list[np.ndarray]:
    """Rank ``rank``'s grads at ``step``: any rank can compute any other's (for the reference).
    16-bit params get grads of their own dtype on even params, float32 on odd ones."""
    out = []
    for i, p in enumerate(params):
        g = np.random.default_rng((step, rank, i)).standard_normal(p.shape).astype(np.float32)
        out.append(g.astype(p.dtype) if p.dtype == BF16 and i % 2 == 0 else g)
    return out


def reduced_grads(step: int, world: int, params: list[np.ndarray], mean: bool = True) -> list[np.ndarray]:
    """The reference reduction: sum in rank order in the wire dtype, then divide by the world size."""
    every = [rank_grads(step, s, params) for s in range(world)]
    out = []
    for i, p in enumerate(params):
        w = wire(p.dtype)
        total = every[0][i].astype(w)
        for s in range(1, world):
            total = total + every[s][i].astype(w)
        out.append(total / w.type(world) if mean else total)
    return out


def groups_of(params: list[np.ndarray]) -> list[dict]:
    """Two groups, the second with half the lr: a shard piece must keep its group's lr."""
    return [{"params": params[:2]}, {"params": params[2:], "lr_scale": 0.5}]


def with_group_lr(groups: list[dict], lr: float) -> list[dict]:
    return [{k: v for k, v in g.items() if k != "lr_scale"} | ({"lr": lr * g["lr_scale"]} if "lr_scale" in g else {})
            for g in groups]


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).view(np.uint8).tobytes()


def same_state(sd_a: dict, sd_b: dict, what: str) -> None:
    assert sd_a["state"].keys() == sd_b["state"].keys(), (what, sd_a["state"].keys(), sd_b["state"].keys())
    for i, st in sd_a["state"].items():
        other = sd_b["state"][i]
        assert st.keys() == other.keys(), (what, i, st.keys(), other.keys())
        for k, v in st.items():
            if isinstance(v, np.ndarray):
                assert v.dtype == other[k].dtype and bits(v) == bits(other[k]), (what, i, k)
            else:
                assert v == other[k], (what, i, k, v, other[k])


def parity(comm) -> None:
    """Every algorithm x precision, 2 groups, a scheduler, 4 steps: every rank's params are the
    reference's bit for bit, and so is the consolidated state; state is split (1/N memory)."""
    from pyoptk.distributed import ShardedOptimizer
    from pyoptk.distributed.checkpoint import consolidated_state_dict

    from pyoptk.distributed import _buckets

    world, steps, default_direct = comm.Get_size(), 4, _buckets.DIRECT_BYTES
    for a, (name, (cls, kwargs)) in enumerate(ALGORITHMS.items()):
        for b, (pname, (dtype, precision)) in enumerate(PRECISIONS.items()):
            bucket_bytes = (120, 1 << 20)[(a + b) % 2]  # many small buckets, or one
            # Pieces of 100 bytes and more travel straight from and to the arrays (the default
            # threshold, 64 KiB, would pack every piece of these small params), or all packed.
            _buckets.DIRECT_BYTES = 100 if (a + 2 * b) % 3 else default_direct
            reduction = "sum" if (a + b) % 5 == 0 else "mean"
            params, ref = initial_params(dtype), initial_params(dtype)
            opt = ShardedOptimizer(with_group_lr(groups_of(params), kwargs["lr"]), cls, comm,
                                   reduction=reduction, bucket_bytes=bucket_bytes, **kwargs, **precision)
            single = cls(with_group_lr(groups_of(ref), kwargs["lr"]), **kwargs, **precision)
            scheds = [lr_scheduler.StepLR(o, step_size=2, gamma=0.5) for o in (opt, single)]
            for t in range(steps):
                opt.step(rank_grads(t, comm.Get_rank(), params))
                single.step(reduced_grads(t, world, ref, mean=reduction == "mean"))
                for s in scheds:
                    s.step()
            what = f"{name} {pname} {reduction} bucket_bytes={bucket_bytes} direct={_buckets.DIRECT_BYTES} on {world} ranks"
            for i, (p, q) in enumerate(zip(params, ref)):
                assert bits(p) == bits(q), f"{what}: param {i} differs from the single-process step"
            same_state(consolidated_state_dict(comm.allgather(opt.state_dict())), single.state_dict(), what)
            total = sum(comm.allgather(opt.shard_state_nbytes()))
            whole = sum(v.nbytes for st in single.state_dict()["state"].values() for v in st.values()
                        if isinstance(v, np.ndarray))
            assert total == whole and (world == 1 or opt.shard_state_nbytes() < whole), (what, total, whole)
            assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in single.param_groups], what
    _buckets.DIRECT_BYTES = default_direct


def expect_error(comm, fn, *needles) -> str:
    """``fn()`` must raise DistributedError on this rank, its message holding every needle."""
    from pyoptk.distributed import DistributedError
    try:
        fn()
    except DistributedError as e:
        text = str(e) + " | " + str(e.__cause__ or "")
        missing = [n for n in needles if n not in text]
        assert not missing, (missing, text)
        return text
    raise AssertionError(f"rank {comm.Get_rank()}: no DistributedError from {fn}")


def faults(comm) -> None:
    """Mismatched params and refused steps: the same error on every rank, nothing changed."""
    from pyoptk.distributed import ShardedOptimizer
    from pyoptk.distributed.checkpoint import consolidated_state_dict

    rank, last = comm.Get_rank(), comm.Get_size() - 1

    def make(params, cls=pyoptk.Adam, **kw):
        return lambda: ShardedOptimizer(params, cls, comm, **kw)

    odd_shape = [s if (rank, i) != (last, 2) else (51,) for i, s in enumerate(SHAPES)]
    expect_error(comm, make(initial_params(np.float32, odd_shape)), "ranks disagree", "[2]", "(51,)")
    extra = SHAPES + [(3,)] if rank == last else SHAPES
    expect_error(comm, make(initial_params(np.float32, extra)), "ranks disagree", "params")
    typed = initial_params(np.float32)
    if rank == last:
        typed[4] = typed[4].astype(np.float64)
    expect_error(comm, make(typed), "ranks disagree", "float64")
    expect_error(comm, make(initial_params(np.float32), lr=-1.0 if rank == last else 0.1),
                 f"refused on rank {last}", "Invalid learning rate")
    expect_error(comm, make(initial_params(np.float32), pyoptk.LAMB), "cannot shard LAMB", "trust ratio")
    expect_error(comm, make(initial_params(np.float32), state_dtype="int8"), "state_dtype='int8'", "block boundaries")

    params, ref = initial_params(np.float32), initial_params(np.float32)
    opt, single = ShardedOptimizer(params, pyoptk.Adam, comm, bucket_bytes=100), pyoptk.Adam(ref)
    world = comm.Get_size()
    opt.step(rank_grads(0, rank, params))
    single.step(reduced_grads(0, world, ref))
    before = ([p.copy() for p in params], copy.deepcopy(opt.state_dict()))

    def unchanged(what):
        assert all(bits(p) == bits(q) for p, q in zip(params, before[0])), what
        same_state(_as_torch(opt.state_dict()), _as_torch(before[1]), what)

    grads = rank_grads(1, rank, params)
    bad = list(grads)
    if rank == last:
        bad[3] = bad[3].reshape(-1)
    expect_error(comm, lambda: opt.step(bad), f"refused on rank {last}", "grad 3")
    unchanged("after a refused grad shape")
    skipped = [None if (rank, i) == (last, 1) else g for i, g in enumerate(grads)]
    expect_error(comm, lambda: opt.step(skipped), "ranks disagree", "grads given")
    unchanged("after grads None on one rank only")
    opt.param_groups[0]["lr"] = 0.5 if rank == last else 1e-3
    expect_error(comm, lambda: opt.step(grads), "ranks disagree", "hyper-parameters")
    unchanged("after an lr changed on one rank only")
    opt.param_groups[0]["lr"] = 1e-3
    opt.step(grads)  # the ranks go on as if nothing had happened
    single.step(reduced_grads(1, world, ref))
    assert all(bits(p) == bits(q) for p, q in zip(params, ref)), "a good step after refused ones"
    frozen = [None if i == 2 else g for i, g in enumerate(rank_grads(2, rank, params))]  # None on every rank
    opt.step(frozen)
    single.step([None if i == 2 else g for i, g in enumerate(reduced_grads(2, world, ref))])
    assert all(bits(p) == bits(q) for p, q in zip(params, ref)), "a step with a param skipped on every rank"
    same_state(consolidated_state_dict(comm.allgather(opt.state_dict())), single.state_dict(), "skipped param")


def _as_torch(shard: dict) -> dict:
    """A shard dict in the shape same_state compares (its pieces' states by position)."""
    return {"state": {j: st for j, st in enumerate(shard["state"]) if st is not None}}


# ----- checkpoints: 2 ranks -> 3 ranks -> 1 process ----------------------------------------------
CKPT_STEPS = {2: range(0, 3), 3: range(3, 5), 1: range(5, 7)}  # the steps each stage runs


def ckpt_params() -> list[np.ndarray]:
    return initial_params(np.float32)[:3] + initial_params(BF16)[3:]


def ckpt_groups(params: list[np.ndarray]) -> list[dict]:
    """float32 and bfloat16 (master weights) in one layout, each in its group."""
    return [{"params": params[:3]}, {"params": params[3:], "lr": 0.02}]


CKPT_KW = dict(lr=0.01, weight_decay=0.1, master_weights=True)


def ckpt_stage(comm, directory: str) -> None:
    """On 2 ranks: steps 0-2 from the initial params, save. On 3: load the params and the
    2-rank checkpoint, steps 3-4, save. (The 1-process stage is ``ckpt_single``.)"""
    from pyoptk.distributed import ShardedOptimizer, checkpoint

    world, rank = comm.Get_size(), comm.Get_rank()
    params = ckpt_params()
    if world == 3:
        saved = np.load(os.path.join(directory, "params-2.npz"))
        for i, p in enumerate(params):
            p[...] = saved[str(i)].view(p.dtype)
    opt = ShardedOptimizer(ckpt_groups(params), pyoptk.AdamW, comm, bucket_bytes=64, **CKPT_KW)
    if world == 3:
        checkpoint.load(opt, os.path.join(directory, "ckpt-2"))
    for t in CKPT_STEPS[world]:
        opt.step(rank_grads(t, rank, params))
    checkpoint.save(opt, os.path.join(directory, f"ckpt-{world}"))
    if rank == 0:
        np.savez(os.path.join(directory, f"params-{world}.npz"), **{str(i): p.view(np.uint8) for i, p in enumerate(params)})


def ckpt_single(directory: str) -> None:
    """The 3-rank checkpoint into a plain AdamW on one process, steps 5-6: the same bits (params
    and state) as one process stepping all 7 steps on the grads reduced over 2, 3, then 1 rank."""
    from pyoptk.distributed.checkpoint import consolidated_state_dict

    params = ckpt_params()
    saved = np.load(os.path.join(directory, "params-3.npz"))
    for i, p in enumerate(params):
        p[...] = saved[str(i)].view(p.dtype)
    resumed = pyoptk.AdamW(ckpt_groups(params), **CKPT_KW)
    resumed.load_state_dict(consolidated_state_dict(os.path.join(directory, "ckpt-3")))
    ref = ckpt_params()
    single = pyoptk.AdamW(ckpt_groups(ref), **CKPT_KW)
    for world, steps in CKPT_STEPS.items():
        for t in steps:
            single.step(reduced_grads(t, world, ref))
            if world == 1:
                resumed.step(rank_grads(t, 0, params))
    assert all(bits(p) == bits(q) for p, q in zip(params, ref)), "params after 2 -> 3 -> 1"
    same_state(resumed.state_dict(), single.state_dict(), "state after 2 -> 3 -> 1")


def die(comm, how: str) -> None:
    """The last rank dies (``exit``: as a crash would) or raises (``raise``: user code failing)
    before the second step; the others step."""
    from pyoptk.distributed import ShardedOptimizer

    params = initial_params(np.float32)
    opt = ShardedOptimizer(params, pyoptk.Adam, comm)
    opt.step(rank_grads(0, comm.Get_rank(), params))
    if comm.Get_rank() == comm.Get_size() - 1:
        if how == "raise":
            raise RuntimeError("the user's code failed on the last rank")
        os._exit(7)
    opt.step(rank_grads(1, comm.Get_rank(), params))
    print("unreachable: a step finished without the dead rank", flush=True)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    pyoptk.set_num_threads(1)  # ranks share the machine's cores
    if mode == "ckpt-single":
        ckpt_single(*args)
        print("rank 0 ok: ckpt-single", flush=True)
        return
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    for m in mode.split("+"):
        {"parity": lambda: parity(comm), "faults": lambda: faults(comm), "ckpt": lambda: ckpt_stage(comm, *args),
         "die": lambda: die(comm, *args)}[m]()
    print(f"rank {comm.Get_rank()} ok: {mode}", flush=True)


if __name__ == "__main__":
    main()
