"""ZeRO-style sharded optimizers over MPI for NumPy arrays (needs mpi4py and an MPI).

``ShardedOptimizer(params, pyoptk.AdamW, comm, lr=...)``: each rank keeps the optimizer state
of its shard only; see its docstring. ``checkpoint.save`` / ``checkpoint.load`` write and read
sharded checkpoints on any number of ranks; ``checkpoint.consolidated_state_dict`` makes one
for a plain single-process optimizer. Run with ``mpiexec -n 2 python -m mpi4py train.py``
(``-m mpi4py`` aborts the whole job when one rank raises, instead of leaving the others waiting)."""
try:
    from mpi4py import MPI  # noqa: F401
except ImportError as _error:
    raise ImportError("pyoptk.distributed needs mpi4py and an MPI library: pip install 'pyoptk[mpi]' "
                      "(mpi4py and mpich from the package index), or mpi4py built against your "
                      f"cluster's MPI (pip install mpi4py). The import failed with: {_error}") from _error

from . import checkpoint
from ._agree import DistributedError
from .sharded import ShardedOptimizer

__all__ = ["ShardedOptimizer", "DistributedError", "checkpoint"]
