"""ShardedOptimizer's step (pyoptk.distributed, ZeRO over MPI) against the plain optimizer on one
process: fp32 Adam over one flat param of --size elements.

    flock /tmp/pyoptk-bench.lock python bench/mpi_step.py --sizes 1e7 1e8 --steps 7

For each size: the plain pyoptk.Adam on this process with 1 and 2 threads, then
``mpiexec -n 2 python bench/mpi_step.py --worker`` (1 thread per rank) with the default bucket
size and with one bucket (no overlap). Reports the median step time, the part of it spent
waiting on MPI (the rest: packing, summing, the shard's step, unpacking), optimizer-state bytes
per rank, and the bytes each rank sends per step (it receives as many)."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

import pyoptk

HERE = pathlib.Path(__file__).resolve()
PHASES = ("wait_s", "pack_s", "sum_s", "step_s", "unpack_s")  # ShardedOptimizer.timings' keys


def grads_for(rank: int, n: int) -> np.ndarray:
    return np.random.default_rng(rank).standard_normal(n, dtype=np.float32)


def plain(n: int, steps: int, threads: int) -> dict:
    pyoptk.set_num_threads(threads)
    p = np.zeros(n, np.float32)
    opt = pyoptk.Adam([p], lr=1e-3)
    g = grads_for(0, n)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        opt.step([g])
        times.append(time.perf_counter() - t)
    state = sum(v.nbytes for v in opt.state[p].values() if isinstance(v, np.ndarray))
    return {"step_ms": 1e3 * statistics.median(times[1:]), "state_bytes": state}


def worker(n: int, steps: int, threads: int, bucket_bytes: int) -> None:
    from mpi4py import MPI
    from pyoptk.distributed import ShardedOptimizer

    comm = MPI.COMM_WORLD
    pyoptk.set_num_threads(threads)
    p = np.zeros(n, np.float32)
    opt = ShardedOptimizer([p], pyoptk.Adam, comm, lr=1e-3, bucket_bytes=bucket_bytes)
    g = grads_for(comm.Get_rank(), n)
    times, phases = [], []
    for _ in range(steps):
        comm.Barrier()
        before = dict(opt.timings)
        t = time.perf_counter()
        opt.step([g])
        times.append(time.perf_counter() - t)
        phases.append({k: opt.timings[k] - before[k] for k in before if k.endswith("_s")})
    me = comm.Get_rank()
    row = {"rank": me, "step_ms": 1e3 * statistics.median(times[1:]),
           "phases_ms": {k: 1e3 * statistics.median(p[k] for p in phases[1:]) for k in PHASES},
           "state_bytes": opt.shard_state_nbytes(), "sent_bytes_per_step": opt.sent_bytes_per_step(), "buckets": opt.layout.buckets}
    rows = comm.gather(row)
    if me == 0:
        print(json.dumps(rows))


def sharded(n: int, steps: int, ranks: int, bucket_bytes: int) -> list[dict]:
    mpiexec = pathlib.Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", str(ranks), sys.executable, "-m", "mpi4py",
           str(HERE), "--worker", "--sizes", str(n), "--steps", str(steps), "--bucket-bytes", str(bucket_bytes)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e7])
    ap.add_argument("--steps", type=int, default=7, help="timed steps (the first is dropped)")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--bucket-bytes", type=int, default=16 << 20)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(int(args.sizes[0]), args.steps, 1, args.bucket_bytes)
        return
    print(f"fp32 Adam, {args.steps} steps (median of the last {args.steps - 1}); pyoptk ISA {pyoptk.isa()}; "
          f"{os.cpu_count()} CPUs")
    print("| params | run | step ms | MPI wait / pack / sum / shard step / unpack ms | state bytes per rank "
          "| sent bytes per rank per step |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        n = int(size)
        for threads in (1, 2):
            r = plain(n, args.steps, threads)
            print(f"| {size:.0e} | 1 process x {threads} thread{'s' * (threads > 1)} | {r['step_ms']:.1f} | - | "
                  f"{r['state_bytes']:,} | 0 |", flush=True)
        for label, bucket in ((f"{args.bucket_bytes >> 20} MiB buckets", args.bucket_bytes), ("one bucket", 1 << 30)):
            rows = sharded(n, args.steps, args.ranks, bucket)
            worst = max(rows, key=lambda r: r["step_ms"])
            split = " / ".join(f"{worst['phases_ms'][k]:.1f}" for k in PHASES)
            print(f"| {size:.0e} | {args.ranks} processes x 1 thread, {label} ({worst['buckets']}) | "
                  f"{worst['step_ms']:.1f} | {split} | "
                  f"{worst['state_bytes']:,} | "
                  f"{worst['sent_bytes_per_step']:,} |", flush=True)


if __name__ == "__main__":
    main()
