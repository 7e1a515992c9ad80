"""Where every element lives: the params flattened in group order, cut into one contiguous shard
per rank balanced by bytes (a param may be split across ranks), each shard cut into the same
number of buckets. Pure arithmetic on shapes and dtypes, the same on every rank."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Piece", "Layout", "wire_dtype"]


def wire_dtype(param_dtype: np.dtype) -> np.dtype:
    """The dtype a param's grads are summed and sent in: float64 for float64 params, float32 for
    the rest (16-bit grads are widened first, so the sum rounds once per rank, not in bfloat16)."""
    return np.dtype(np.float64) if param_dtype == np.float64 else np.dtype(np.float32)


@dataclass(frozen=True)
class Piece:
    """Elements ``[lo, hi)`` of flattened param ``index``."""

    index: int
    lo: int
    hi: int

    @property
    def size(self) -> int:
        return self.hi - self.lo


class Layout:
    """``pieces(rank, bucket)``: the pieces of ``rank``'s shard in ``bucket``, in param order.

    Shard boundaries are byte offsets ``total * r // world`` of the flattened params, rounded
    down to an element; ``buckets`` is ``ceil(total bytes / bucket_bytes)`` (at least 1), and
    bucket k of a shard is its elements ``[size * k // buckets, size * (k + 1) // buckets)``."""

    def __init__(self, sizes: list[int], dtypes: list[np.dtype], world: int, bucket_bytes: int):
        self.sizes, self.dtypes, self.world = list(sizes), [np.dtype(d) for d in dtypes], world
        nbytes = [n * d.itemsize for n, d in zip(self.sizes, self.dtypes)]
        self.elem_starts = np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)]).tolist()
        self.byte_starts = np.concatenate([[0], np.cumsum(nbytes, dtype=np.int64)]).tolist()
        self.total_bytes = self.byte_starts[-1]
        self.shard_bounds = [self._element_at(self.total_bytes * r // world) for r in range(world)]
        self.shard_bounds.append(self.elem_starts[-1])
        self.buckets = max(1, -(-self.total_bytes // max(1, bucket_bytes)))
        self._pieces = {(r, k): self._cut(*self._bucket_range(r, k)) for r in range(world)
                        for k in range(self.buckets)}

    def _element_at(self, byte: int) -> int:
        """The global element index at (or just before) byte offset ``byte``."""
        i = max(0, int(np.searchsorted(self.byte_starts, byte, side="right")) - 1)
        if i >= len(self.sizes):
            return self.elem_starts[-1]
        return self.elem_starts[i] + min(self.sizes[i], (byte - self.byte_starts[i]) // self.dtypes[i].itemsize)

    def _bucket_range(self, rank: int, bucket: int) -> tuple[int, int]:
        lo, hi = self.shard_bounds[rank], self.shard_bounds[rank + 1]
        return lo + (hi - lo) * bucket // self.buckets, lo + (hi - lo) * (bucket + 1) // self.buckets

    def _cut(self, lo: int, hi: int) -> list[Piece]:
        pieces = []
        i = max(0, int(np.searchsorted(self.elem_starts, lo, side="right")) - 1)
        while i < len(self.sizes) and self.elem_starts[i] < hi:
            a, b = max(lo, self.elem_starts[i]), min(hi, self.elem_starts[i + 1])
            if b > a:
                pieces.append(Piece(i, a - self.elem_starts[i], b - self.elem_starts[i]))
            i += 1
        return pieces

    def pieces(self, rank: int, bucket: int) -> list[Piece]:
        return self._pieces[rank, bucket]

    def shard(self, rank: int) -> list[Piece]:
        """All of ``rank``'s pieces, bucket by bucket."""
        return [p for k in range(self.buckets) for p in self._pieces[rank, k]]
