"""ShardedOptimizer: ZeRO-1/2 over MPI for NumPy arrays. Every rank holds all params and computes
all grads; each rank owns one contiguous shard of the flattened params (balanced by bytes) and
keeps optimizer state for it only. A step reduce-scatters the grads (in a fixed order), steps the
shard with the wrapped pyoptk optimizer and all-gathers the updated params into every rank's
arrays in place, bucket by bucket, the all-gather of one bucket in flight during the next's step."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy as np
from mpi4py import MPI

from ..optimizer import Optimizer
from ._abort import abort_on_uncaught_exception
from ._agree import agree
from ._algorithms import check_element_wise
from ._buckets import Bucket, aligned_bytes
from ._layout import Layout

__all__ = ["ShardedOptimizer"]

PRECISION_KEYS = ("state_dtype", "master_weights", "stochastic_rounding", "seed", "block_size", "min_8bit_size", "stochastic_codes")
NOT_HYPER = ("params", "param_names")
_LOW = ("bfloat16", "float16")


def hyper_of(group: dict) -> dict:
    """A group's hyper-parameters: everything but its params."""
    return {k: v for k, v in group.items() if k not in NOT_HYPER}


def hyper_text(group: dict) -> str:
    """The group's hyper-parameters as text that is the same on every rank for equal values (a
    function, ADOPT's clip_lambda say, by its name: its default repr holds an address)."""
    def stable(v: Any) -> Any:
        return getattr(v, "__qualname__", type(v).__qualname__) if callable(v) and " at 0x" in repr(v) else v
    return repr(sorted((k, stable(v)) for k, v in hyper_of(group).items()))


class ShardedOptimizer(Optimizer):
    """``ShardedOptimizer(params, pyoptk.AdamW, comm, lr=1e-3, ...)``: ``optimizer_class`` (an
    element-wise pyoptk optimizer) with its keyword arguments, hyper-parameters and precision
    options (``state_dtype``, ``master_weights``) alike, steps this rank's shard.

    Call it on every rank of ``comm`` (default ``MPI.COMM_WORLD``) with the same params (count,
    shapes, dtypes, groups; checked before any data moves) and each rank's own grads:
    ``step(grads)`` makes every rank's params those of ``optimizer_class`` stepped on one process
    with the reduced grads, bit for bit. ``reduction="mean"`` (default): for each element, the
    grads summed in rank order, ``((g0 + g1) + g2) + ...``, in float32 (float64 for float64
    params; 16-bit grads widened first), then divided by the number of ranks; ``"sum"``: the sum.
    ``bucket_bytes``: how many bytes of params one bucket covers (over all ranks). The buffers
    hold about six buckets; one bucket's messages travel while another steps wherever the MPI
    moves them on its own (a NIC, a progress thread), and a bucket's sum reads grads still in
    cache.

    ``param_groups`` are the user's, as on one process: schedulers and hyper-parameter changes
    work as they do there (every rank must make the same changes: checked at each step). State
    lives in the shard optimizers: ``state_dict()`` is this rank's shard; ``save``/``load`` in
    ``pyoptk.distributed.checkpoint`` reshard across rank counts.

    Cost: ``sent_bytes_per_step()`` (what this rank sends; it receives as many), ``timings``
    (seconds spent waiting on MPI, packing, summing, stepping the shard, unpacking),
    ``shard_state_nbytes()`` (the state this rank keeps).

    Errors: a refused step (a grad of the wrong count, shape or dtype, an invalid
    hyper-parameter, on any rank) raises ``DistributedError`` on every rank and changes nothing
    anywhere. A failure after data has moved (ranks could then disagree) calls ``MPI.Abort``."""

    def __init__(self, params: Any, optimizer_class: type, comm: Any = None, *, reduction: str = "mean",
                 bucket_bytes: int = 16 << 20, **defaults: Any) -> None:
        comm = MPI.COMM_WORLD if comm is None else comm
        error = None
        try:
            check_element_wise(optimizer_class)
            if reduction not in ("mean", "sum"):
                raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
            if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) or not 0 < bucket_bytes <= 1 << 30:
                raise ValueError(f"bucket_bytes must be an int in (0, 2**30], got {bucket_bytes!r}")
            if defaults.get("state_dtype") in ("int8", "int4"):
                # Shards cut params at element boundaries, not at quantization blocks, and each
                # piece would meet min_8bit_size alone: not one process's codes (issue 22).
                raise ValueError(f"ShardedOptimizer does not support state_dtype={defaults['state_dtype']!r}: "
                                 "shards split params at any element, not at quantization block boundaries; "
                                 "use float32 or bfloat16 state")
            self._optimizer_class, self._kwargs = optimizer_class, dict(defaults)
            self._precision = {k: v for k, v in defaults.items() if k in PRECISION_KEYS}
            self._checked: set[str] = set()
            template = optimizer_class(_materialized(params), **defaults)  # its checks and defaults
            super().__init__([dict(g) for g in template.param_groups], template.defaults, **self._precision)
        except Exception as e:  # every rank must hear of it: reported in the agreement below
            error = e
        described = None if error else self._described(optimizer_class, reduction, bucket_bytes)
        agree(comm, "ShardedOptimizer()", error, described)
        self.comm = comm.Dup()  # our collectives never match the user's messages
        abort_on_uncaught_exception(comm)
        self.reduction = reduction
        params = self._params()
        self._flat = [p.reshape(-1) for p in params]
        self.layout = Layout([p.size for p in params], [p.dtype for p in params], self.comm.Get_size(), bucket_bytes)
        rank = self.comm.Get_rank()
        self._buckets = [Bucket(self.layout, rank, k) for k in range(self.layout.buckets)]
        self.shards = [self._shard_optimizer(b) for b in self._buckets]
        self._buffers = [{name: aligned_bytes(max(b.nbytes[name] for b in self._buckets))
                          for name in ("reduce_send", "reduce_recv", "gather")} for _ in range(2)]
        # Seconds spent, summed over steps: waiting on MPI, packing grads and params into the
        # buffers (and posting the messages), summing, the shard's step, unpacking params.
        self.timings = {"steps": 0, "wait_s": 0.0, "pack_s": 0.0, "sum_s": 0.0, "step_s": 0.0, "unpack_s": 0.0}
        self._clock = _Clock(self.timings)

    # ----- construction -------------------------------------------------------------------
    def _described(self, optimizer_class: type, reduction: str, bucket_bytes: int) -> dict:
        """What every rank must hold alike."""
        return {"params (shape, dtype)": [(p.shape, str(p.dtype)) for p in self._params()],
                "group sizes": [len(g["params"]) for g in self.param_groups],
                "optimizer": optimizer_class.__name__, "reduction": reduction, "bucket_bytes": bucket_bytes,
                "precision": sorted(self._precision.items()), "hyper-parameters": self._hypers()}

    def _shard_optimizer(self, bucket: Bucket) -> Optimizer | None:
        """The wrapped optimizer over this rank's pieces of ``bucket``, one group per user group."""
        if not bucket.mine:
            return None
        group_of = [gi for gi, g in enumerate(self.param_groups) for _ in g["params"]]
        views = bucket.flat_pieces(self._flat)
        groups = [dict(hyper_of(g), params=[v for v, p in zip(views, bucket.mine) if group_of[p.index] == gi])
                  for gi, g in enumerate(self.param_groups)]
        return self._optimizer_class(groups, **self._kwargs)

    def _check_group(self, group: dict[str, Any]) -> None:
        """The wrapped optimizer's checks, run on a one-element probe."""
        self._optimizer_class([dict(hyper_of(group), params=[np.zeros(1, np.float32)])], **self._kwargs)

    def _checked_hypers(self) -> list[str]:
        """Every group's hyper-parameters as text, each group checked unless the last step had it
        (a scheduler changes the lr every step: only the current texts are kept)."""
        texts = self._hypers()
        for group, text in zip(self.param_groups, texts):
            if text not in self._checked:
                self._check_group(group)
        self._checked = set(texts)
        return texts

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if hasattr(self, "layout"):
            raise TypeError("ShardedOptimizer's params are fixed at construction (the shards cut them); "
                            "build a new one with every group")
        super().add_param_group(param_group)

    def _hypers(self) -> list[str]:
        return [hyper_text(g) for g in self.param_groups]

    # ----- the step -----------------------------------------------------------------------
    def step(self, grads: Any = None, closure: Callable | None = None) -> Any:
        """Reduce ``grads`` over the ranks and step; ``closure``: a function returning (loss, grads)."""
        loss, error, flat, described = None, None, None, None
        try:
            if closure is not None:
                if grads is not None:
                    raise ValueError("pass grads or a closure to step(), not both")
                loss, grads = closure()
            flat = self._checked_grads(grads)
            described = {"grads given (None: skipped)": [g is not None for g in flat],
                         "hyper-parameters": self._checked_hypers()}
        except Exception as e:  # reported to every rank below, before any data moves
            error = e
        agree(self.comm, "step()", error, described)
        assert flat is not None  # agree() raised otherwise
        try:
            self._mirror_hypers()
            self._run(flat)
        except Exception:  # the ranks may now hold different params: end the job, never hang
            import traceback
            traceback.print_exc()
            print(f"pyoptk.distributed: rank {self.comm.Get_rank()} failed inside a step after data moved; "
                  "aborting the job", file=sys.stderr, flush=True)
            self.comm.Abort(1)
        return loss

    def _checked_grads(self, grads: Any) -> list[np.ndarray | None]:
        if grads is None:
            raise ValueError("step() needs grads (one per param, None to skip) or a closure returning (loss, grads)")
        if isinstance(grads, np.ndarray):
            raise TypeError("grads must be a list with one array (or None) per param, not a single ndarray")
        grads = list(grads)
        params = self._params()
        if len(grads) != len(params):
            raise ValueError(f"step() got {len(grads)} grads for {len(params)} params")
        flat: list[np.ndarray | None] = []
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                flat.append(None)
                continue
            if not isinstance(g, np.ndarray):
                raise TypeError(f"grad {i} is a {type(g).__name__}, expected a NumPy array")
            allowed = (p.dtype, np.dtype(np.float32)) if p.dtype.name in _LOW else (p.dtype,)
            if g.shape != p.shape or g.dtype not in allowed:
                raise ValueError(f"grad {i} is {g.dtype} {g.shape}, its param {p.dtype} {p.shape}")
            flat.append(g.reshape(-1))
        return flat

    def _mirror_hypers(self) -> None:
        """The shard optimizers' groups take the user's hyper-parameters (a scheduler's lr...)."""
        for shard in self.shards:
            if shard is not None:
                for mine, theirs in zip(shard.param_groups, self.param_groups):
                    mine.update(hyper_of(theirs))

    def _run(self, flat_grads: list) -> None:
        comm, buckets, buffers, clock = self.comm, self._buckets, self._buffers, self._clock
        mean = self.reduction == "mean"
        with clock("pack_s"):
            reduces = {0: buckets[0].start_reduce(comm, flat_grads, buffers[0]["reduce_send"],
                                                  buffers[0]["reduce_recv"])}
        gathering: tuple[Bucket, list, np.ndarray] | None = None  # the all-gather in flight
        for k, bucket in enumerate(buckets):
            if k + 1 < len(buckets):  # the next bucket's grads travel during this step
                nxt = buffers[(k + 1) % 2]
                with clock("pack_s"):
                    reduces[k + 1] = buckets[k + 1].start_reduce(comm, flat_grads, nxt["reduce_send"],
                                                                 nxt["reduce_recv"])
            with clock("wait_s"):
                MPI.Request.Waitall(reduces.pop(k))
            with clock("sum_s"):
                grads = bucket.reduced(buffers[k % 2]["reduce_recv"], mean, flat_grads)
            shard = self.shards[k]
            if shard is not None:
                with clock("step_s"):
                    shard.step(grads)
            with clock("pack_s"):
                request = bucket.start_gather(comm, self._flat, buffers[k % 2]["gather"])
            if gathering is not None:
                self._finish_gather(*gathering)
            gathering = (bucket, request, buffers[k % 2]["gather"])
        assert gathering is not None  # there is at least one bucket
        self._finish_gather(*gathering)
        self.timings["steps"] += 1

    def _finish_gather(self, bucket: Bucket, request: Any, recv: np.ndarray) -> None:
        with self._clock("wait_s"):
            MPI.Request.Waitall(request)
        with self._clock("unpack_s"):
            bucket.unpack_gather(self._flat, recv)

    # ----- state --------------------------------------------------------------------------
    def shard_state_nbytes(self) -> int:
        """Bytes of optimizer state arrays this rank keeps (its shard's only)."""
        return sum(v.nbytes for s in self.shards if s is not None for st in s.state_dict()["state"].values()
                   for v in st.values() if isinstance(v, np.ndarray))

    def sent_bytes_per_step(self) -> int:
        """Bytes this rank sends per step (it receives as many): its grads for the other ranks'
        shards, then its updated shard to each other rank; padding included."""
        return sum(b.sent_bytes for b in self._buckets)

    def state_dict(self) -> dict[str, Any]:
        """This rank's shard: see ``pyoptk.distributed.checkpoint`` (save/load/reshard)."""
        from .checkpoint import shard_state_dict
        return shard_state_dict(self)

    def load_state_dict(self, state_dict: Any) -> None:
        """Load the shards of a checkpoint saved on any number of ranks: a list of every rank's
        ``state_dict()`` (or a directory, as ``checkpoint.load``)."""
        from .checkpoint import load_shards
        load_shards(self, state_dict)


class _Clock:
    """``with clock(key):`` adds the block's wall time to ``timings[key]``."""

    def __init__(self, timings: dict):
        self.timings, self.key, self.began = timings, "", 0.0

    def __call__(self, key: str) -> "_Clock":
        self.key = key
        return self

    def __enter__(self) -> None:
        self.began = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self.timings[self.key] += time.perf_counter() - self.began


def _materialized(params: Any) -> Any:
    """Params as lists (a generator is read once, here)."""
    if isinstance(params, np.ndarray):
        return params  # the wrapped optimizer refuses it with its own message
    params = list(params)
    return [dict(g, params=list(g["params"]) if not isinstance(g["params"], np.ndarray) else [g["params"]])
            if isinstance(g, dict) and "params" in g else g for g in params]
