"""The wire side of one bucket: where each piece sits in the byte buffers, the reduce-scatter of
grads in a fixed order (each rank's grads for a shard sent to its owner, summed there in rank
order) and the all-gather of the updated params, both nonblocking point-to-point messages.

A piece of at least ``DIRECT_BYTES`` travels as one message straight from the user's array (a
grad already in its wire dtype; a param) and straight into it (a param): no copy on either side.
Smaller pieces, and grads that need widening, are packed into a byte buffer, consecutive small
pieces as one message. Both sides cut the messages from the layout alone, so they match."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI

from ._layout import Layout, Piece, wire_dtype

__all__ = ["Bucket", "aligned_bytes"]

ALIGN = 64  # every piece starts on a cache line: typed views of the byte buffers stay aligned
DIRECT_BYTES = 64 << 10
REDUCE_TAG, GATHER_TAG = 1, 2  # each kind's messages match in the order both sides post them


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


@dataclass
class _Message:
    """Pieces ``[first, stop)`` of one rank's list, bytes ``[at, at + nbytes)`` of its block;
    ``direct``: one large piece, sent from (or received into) the user's array."""

    at: int
    nbytes: int
    first: int
    stop: int
    direct: bool


def _messages(sizes: list[int], offsets: list[int]) -> list[_Message]:
    out: list[_Message] = []
    for j, (n, at) in enumerate(zip(sizes, offsets)):
        if n >= DIRECT_BYTES:
            out.append(_Message(at, n, j, j + 1, True))
        elif out and not out[-1].direct:
            out[-1].nbytes, out[-1].stop = at + n - out[-1].at, j + 1
        else:
            out.append(_Message(at, n, j, j + 1, False))
    return out


def _bytes(a: np.ndarray) -> list:
    return [a.view(np.uint8), MPI.BYTE]


class _Side:
    """One rank's pieces of the bucket in one dtype per piece, laid out in a block."""

    def __init__(self, pieces: list[Piece], dtypes: list[np.dtype]):
        self.pieces, self.dtypes = pieces, dtypes
        sizes = [p.size * d.itemsize for p, d in zip(pieces, dtypes)]
        offsets = _offsets(sizes)
        self.at, self.nbytes = offsets[:-1], offsets[-1]
        self.messages = _messages(sizes, self.at)

    def view(self, buffer: np.ndarray, base: int, j: int) -> np.ndarray:
        """Piece j as a typed view of ``buffer``, its block starting at ``base``."""
        at, p, d = base + self.at[j], self.pieces[j], self.dtypes[j]
        return buffer[at:at + p.size * d.itemsize].view(d)


class Bucket:
    """Bucket ``k`` as ``rank`` sees it. Grads travel in their wire dtype (``wire_dtype``), params
    in their own.

    Reduction: rank r adds, for each of its pieces, every rank's grads in rank order,
    ``((g0 + g1) + g2) + ...`` (block s of its receive buffer from rank s, its own straight from
    its grad), then divides by the world size for a mean: the same bits on every run."""

    def __init__(self, layout: Layout, rank: int, k: int):
        self.rank, self.world = rank, layout.world
        self.mine = layout.pieces(rank, k)
        every = [layout.pieces(s, k) for s in range(self.world)]
        params = [[layout.dtypes[p.index] for p in ps] for ps in every]
        self.grads = [_Side(ps, [wire_dtype(d) for d in ds]) for ps, ds in zip(every, params)]  # wire layout
        self.params = [_Side(ps, ds) for ps, ds in zip(every, params)]
        self.block = self.grads[rank].nbytes  # what each rank sends me: my pieces' grads
        self.gather_at = _offsets([side.nbytes for side in self.params])[:-1]
        self.reduce_send_at = _offsets([side.nbytes for side in self.grads])[:-1]
        self.nbytes = dict(reduce_send=sum(side.nbytes for side in self.grads), reduce_recv=self.block * self.world,
                           gather=sum(side.nbytes for side in self.params))
        self.sent_bytes = (sum(side.nbytes for s, side in enumerate(self.grads) if s != rank)
                           + self.params[rank].nbytes * (self.world - 1))

    # ----- reduce-scatter ------------------------------------------------------------------
    def start_reduce(self, comm: Any, flat_grads: list, send: np.ndarray, recv: np.ndarray) -> list:
        """Post the receives of my pieces' grads from every other rank, then send each other
        rank its pieces of my grads (zeros for a None grad). Returns the requests."""
        requests, me = [], self.rank
        mine = self.grads[me]
        for s in range(self.world):
            if s != me:
                for m in mine.messages:
                    if not (m.direct and flat_grads[mine.pieces[m.first].index] is None):
                        requests.append(comm.Irecv(_bytes(recv[s * self.block + m.at:][:m.nbytes]), s, REDUCE_TAG))
        for s, side in enumerate(self.grads):
            if s == me:
                continue
            base = self.reduce_send_at[s]
            for m in side.messages:
                if m.direct:
                    p, w = side.pieces[m.first], side.dtypes[m.first]
                    g = flat_grads[p.index]
                    if g is None:
                        continue
                    if g.dtype == w:  # straight from the user's grad
                        requests.append(comm.Isend(_bytes(g[p.lo:p.hi]), s, REDUCE_TAG))
                        continue
                for j in range(m.first, m.stop):
                    p, g = side.pieces[j], flat_grads[side.pieces[j].index]
                    side.view(send, base, j)[...] = 0 if g is None else g[p.lo:p.hi]
                requests.append(comm.Isend(_bytes(send[base + m.at:][:m.nbytes]), s, REDUCE_TAG))
        return requests

    def reduced(self, recv: np.ndarray, mean: bool, flat_grads: list) -> list[np.ndarray | None]:
        """My pieces' reduced grads (views into block 0 of ``recv``, mine when I am rank 0),
        summed in rank order; None for a param without grads (None on every rank: agreed)."""
        out: list[np.ndarray | None] = []
        mine = self.grads[self.rank]
        for j, (p, w) in enumerate(zip(mine.pieces, mine.dtypes)):
            g = flat_grads[p.index]
            if g is None:
                out.append(None)
                continue
            own = g[p.lo:p.hi] if g.dtype == w else g[p.lo:p.hi].astype(w)
            total = mine.view(recv, 0, j)
            if self.rank == 0:
                np.copyto(total, own)
            for s in range(1, self.world):
                np.add(total, own if s == self.rank else mine.view(recv, s * self.block, j), out=total)
            if mean:
                np.divide(total, w.type(self.world), out=total)
            out.append(total)
        return out

    # ----- all-gather ----------------------------------------------------------------------
    def start_gather(self, comm: Any, flat_params: list, buffer: np.ndarray) -> list:
        """Post the receives of every other rank's updated pieces (large ones straight into the
        params), then send mine to every other rank. Returns the requests."""
        requests, me = [], self.rank
        for s, side in enumerate(self.params):
            if s != me:
                for m in side.messages:
                    requests.append(comm.Irecv(self._gather_buffer(side, m, flat_params, buffer, s), s, GATHER_TAG))
        side = self.params[me]
        for m in side.messages:
            if not m.direct:
                for j in range(m.first, m.stop):
                    p = side.pieces[j]
                    side.view(buffer, self.gather_at[me], j)[...] = flat_params[p.index][p.lo:p.hi]
            message = self._gather_buffer(side, m, flat_params, buffer, me)
            requests += [comm.Isend(message, s, GATHER_TAG) for s in range(self.world) if s != me]
        return requests

    def _gather_buffer(self, side: _Side, m: _Message, flat_params: list, buffer: np.ndarray, s: int) -> list:
        if m.direct:
            p = side.pieces[m.first]
            return _bytes(flat_params[p.index][p.lo:p.hi])
        return _bytes(buffer[self.gather_at[s] + m.at:][:m.nbytes])

    def unpack_gather(self, flat_params: list, buffer: np.ndarray) -> None:
        """Write the other ranks' packed pieces into the params (large ones arrived in place)."""
        for s, side in enumerate(self.params):
            if s == self.rank:
                continue
            for m in side.messages:
                if not m.direct:
                    for j in range(m.first, m.stop):
                        p = side.pieces[j]
                        flat_params[p.index][p.lo:p.hi] = side.view(buffer, self.gather_at[s], j)

    def flat_pieces(self, flat_params: list) -> list[np.ndarray]:
        """Views of my pieces into the user's params (the shard optimizer steps them in place)."""
        return [flat_params[p.index][p.lo:p.hi] for p in self.mine]
