"""Data-parallel least squares on several processes, the optimizer state sharded (ZeRO):
    mpiexec -n 2 python -m mpi4py train.py [checkpoint-dir]
Every rank holds the whole model and its own slice of the data; ShardedOptimizer reduces the
grads, steps this rank's shard of AdamW's state and writes the updated weights into every rank."""
import sys
import tempfile

import numpy as np
from mpi4py import MPI

import pyoptk
from pyoptk.distributed import ShardedOptimizer, checkpoint

comm = MPI.COMM_WORLD
rank, world = comm.Get_rank(), comm.Get_size()

# The same initial weights on every rank; each rank's own data (seeded by its rank).
true_w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(16, 4)
w = np.zeros((16, 4), np.float32)
b = np.zeros(4, np.float32)
data = np.random.default_rng(rank)
x = data.standard_normal((256, 16)).astype(np.float32)
y = x @ true_w + 0.5

opt = ShardedOptimizer([w, b], pyoptk.AdamW, comm, lr=0.05, weight_decay=0.0)
schedule = pyoptk.lr_scheduler.CosineAnnealingLR(opt, T_max=200)
for step in range(200):
    err = x @ w + b - y  # the local grads of the mean squared error
    loss = comm.allreduce(float((err ** 2).mean())) / world
    opt.step([x.T @ err * (2 / err.size), err.sum(0) * (2 / err.size)])  # averaged over ranks inside
    schedule.step()
    if rank == 0 and step % 50 == 0:
        print(f"step {step:3d}  loss {loss:.5f}")

# Every rank writes its shard; any number of ranks (or one process) can read it back.
directory = sys.argv[1] if len(sys.argv) > 1 else comm.bcast(tempfile.mkdtemp() if rank == 0 else None)
checkpoint.save(opt, directory)
assert np.allclose(w, true_w, atol=1e-2) and np.allclose(b, 0.5, atol=1e-2), (w, b)
if rank == 0:
    print(f"fitted on {world} ranks; each kept {opt.shard_state_nbytes()} bytes of AdamW state "
          f"(one process: {2 * (w.nbytes + b.nbytes)}); checkpoint in {directory}")
