"""The wire side of one bucket: where each piece sits in the byte buffers, the reduce-scatter of
grads in a fixed order (an alltoallv, then the sum in rank order on the owner) and the
all-gather of the updated params, both nonblocking."""
from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

from ._layout import Layout, wire_dtype

__all__ = ["Bucket", "aligned_bytes"]


ALIGN = 64  # every piece starts on a cache line: typed views of the byte buffers stay aligned


def _padded(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _offsets(sizes: list[int]) -> list[int]:
    """Start of each piece, then the end: pieces laid out one after another, each padded."""
    return np.concatenate([[0], np.cumsum([_padded(n) for n in sizes], dtype=np.int64)]).tolist()


def aligned_bytes(nbytes: int) -> np.ndarray:
    """An uninitialised byte buffer that starts on a cache line."""
    raw = np.empty(nbytes + ALIGN, np.uint8)
    skip = -raw.ctypes.data % ALIGN
    return raw[skip:skip + nbytes]


class Bucket:
    """Bucket ``k`` as ``rank`` sees it. Grads travel in their wire dtype (``wire_dtype``), params
    in their own; buffers are bytes, each piece a typed view into them.

    Reduction: rank r receives every rank's grads for its own pieces (block s from rank s) and
    adds them in rank order into block 0, ``((g0 + g1) + g2) + ...``, then divides by the
    world size for a mean: the same bits on every run, whatever MPI's own reduction order."""

    def __init__(self, layout: Layout, rank: int, k: int):
        self.rank, self.world = rank, layout.world
        self.mine = layout.pieces(rank, k)
        self.all = [layout.pieces(s, k) for s in range(self.world)]
        dtypes = layout.dtypes
        self.param_dtypes = [[dtypes[p.index] for p in ps] for ps in self.all]
        self.wires = [[wire_dtype(d) for d in ds] for ds in self.param_dtypes]
        wire_bytes = [[p.size * w.itemsize for p, w in zip(ps, ws)] for ps, ws in zip(self.all, self.wires)]
        param_bytes = [[p.size * d.itemsize for p, d in zip(ps, ds)] for ps, ds in zip(self.all, self.param_dtypes)]
        # Reduce-scatter: the send buffer holds every rank's pieces, destination by destination.
        self.send_counts = [_offsets(b)[-1] for b in wire_bytes]
        self.send_displs = _offsets(self.send_counts)[:-1]
        self.send_piece_at = [[d + o for o in _offsets(b)[:-1]] for d, b in zip(self.send_displs, wire_bytes)]
        self.block = self.send_counts[rank]  # what each rank sends me: my pieces' grads
        self.my_piece_at = _offsets(wire_bytes[rank])[:-1]
        # All-gather: each rank's pieces in the param dtype, rank after rank.
        self.gather_counts = [_offsets(b)[-1] for b in param_bytes]
        self.gather_displs = _offsets(self.gather_counts)[:-1]
        self.gather_piece_at = [[d + o for o in _offsets(b)[:-1]] for d, b in zip(self.gather_displs, param_bytes)]
        self.nbytes = dict(reduce_send=sum(self.send_counts), reduce_recv=self.block * self.world,
                           gather=sum(self.gather_counts))

    # ----- reduce-scatter ------------------------------------------------------------------
    def start_reduce(self, comm: Any, flat_grads: list, send: np.ndarray, recv: np.ndarray) -> Any:
        """Pack every piece's grad (zeros for a None grad) and start the alltoallv."""
        for ps, ws, ats in zip(self.all, self.wires, self.send_piece_at):
            for p, w, at in zip(ps, ws, ats):
                view = send[at:at + p.size * w.itemsize].view(w)
                g = flat_grads[p.index]
                if g is None:
                    view[...] = 0
                else:
                    view[...] = g[p.lo:p.hi]
        counts = [self.block] * self.world
        return comm.Ialltoallv([send, (self.send_counts, self.send_displs), MPI.BYTE],
                               [recv, (counts, [s * self.block for s in range(self.world)]), MPI.BYTE])

    def reduced(self, recv: np.ndarray, mean: bool, flat_grads: list) -> list[np.ndarray | None]:
        """My pieces' reduced grads (views into block 0 of ``recv``), summed in rank order; None
        for a param without grads (None on every rank: the agreement checked it)."""
        out: list[np.ndarray | None] = []
        for p, w, at in zip(self.mine, self.wires[self.rank], self.my_piece_at):
            if flat_grads[p.index] is None:
                out.append(None)
                continue
            n = p.size * w.itemsize
            total = recv[at:at + n].view(w)
            for s in range(1, self.world):
                np.add(total, recv[s * self.block + at:s * self.block + at + n].view(w), out=total)
            if mean:
                np.divide(total, w.type(self.world), out=total)
            out.append(total)
        return out

    # ----- all-gather ----------------------------------------------------------------------
    def start_gather(self, comm: Any, flat_params: list, recv: np.ndarray) -> Any:
        """Copy my updated pieces into my block of ``recv`` and start the all-gather (in place)."""
        for p, d, at in zip(self.mine, self.param_dtypes[self.rank], self.gather_piece_at[self.rank]):
            recv[at:at + p.size * d.itemsize].view(d)[...] = flat_params[p.index][p.lo:p.hi]
        return comm.Iallgatherv(MPI.IN_PLACE, [recv, (self.gather_counts, self.gather_displs), MPI.BYTE])

    def unpack_gather(self, flat_params: list, recv: np.ndarray) -> None:
        """Write the other ranks' updated pieces into every param (mine are updated in place)."""
        for s in range(self.world):
            if s == self.rank:
                continue
            for p, d, at in zip(self.all[s], self.param_dtypes[s], self.gather_piece_at[s]):
                flat_params[p.index][p.lo:p.hi] = recv[at:at + p.size * d.itemsize].view(d)

    def flat_pieces(self, flat_params: list) -> list[np.ndarray]:
        """Views of my pieces into the user's params (the shard optimizer steps them in place)."""
        return [flat_params[p.index][p.lo:p.hi] for p in self.mine]

