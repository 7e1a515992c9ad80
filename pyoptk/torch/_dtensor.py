"""FSDP2's params (``fully_shard``): DTensors, each rank holding a shard. An element-wise step of a
DTensor is the same step of its local shard, which is how torch.optim's own kernels run on them
(DTensor dispatches a pointwise op with matching placements to the local tensors). So the twins
of element-wise optimizers step ``p.to_local()`` in place, zero-copy, and read ``p.grad.to_local()``;
the state is kept per shard and shown to torch as DTensors of the param's mesh and placements,
as torch.optim keeps it. Optimizers that need each whole tensor refuse DTensors.
"""
from __future__ import annotations

import sys
from typing import Any

import torch


def dtensor_type() -> Any:
    """torch's DTensor class, or None while torch.distributed.tensor is not imported (then no
    DTensor exists: importing it here would cost every ``import pyoptk.torch``)."""
    module = sys.modules.get("torch.distributed.tensor")
    return getattr(module, "DTensor", None)


def is_dtensor(t: Any) -> bool:
    cls = dtensor_type()
    return cls is not None and isinstance(t, cls)


def local(t: Any) -> torch.Tensor:
    """A DTensor's local tensor itself (no copy, no autograd node)."""
    with torch.no_grad():
        return t.to_local()


def refuse_dtensors(params: list, optimizer: str, start: int) -> None:
    """For the optimizers whose step needs each whole tensor (norms, orthogonalisation, a flat vector)."""
    for i, p in enumerate(params):
        if is_dtensor(p):
            instead = f"torch.optim.{optimizer} there, or " if hasattr(torch.optim, optimizer) else ""
            raise TypeError(f"param {start + i} is a DTensor (FSDP2's fully_shard shards it across ranks): "
                            f"{optimizer}'s step needs each whole tensor, which no rank holds; use {instead}"
                            "an element-wise pyoptk.torch optimizer (AdamW...)")


def local_grad(g: Any, p: Any) -> Any:
    """The local shard of a DTensor grad, when it is laid out as its param (same mesh and
    placements: the shard of the same elements); a clear error otherwise."""
    if not is_dtensor(g):
        raise TypeError(f"a param is a DTensor but its grad is a {type(g).__name__}: pyoptk.torch steps an FSDP2 "
                        "param's local shard with its grad's local shard")
    if g.device_mesh != p.device_mesh or tuple(g.placements) != tuple(p.placements):
        raise ValueError(f"a DTensor grad laid out as {tuple(g.placements)}, its param as {tuple(p.placements)}: "
                         "their local shards hold different elements (reduce the grad first, as FSDP2 does)")
    return local(g)


def check_shards(shards: list[tuple[int, Any, Any]]) -> None:
    """Each DTensor param's local shard is still the memory its view covers (FSDP2 may reallocate
    a shard, e.g. on ``load_state_dict(..., assign=True)``): refused before anything is written."""
    for index, p, view in shards:
        t = local(p)
        if t.numel() and t.data_ptr() != view.__array_interface__["data"][0]:
            raise RuntimeError(f"param {index}'s local shard (FSDP2) is no longer the memory this optimizer steps: "
                               "it was reallocated since the optimizer was made; make the optimizer after the "
                               "model's shards are final")


def as_dtensor(t: torch.Tensor, p: Any) -> Any:
    """A state tensor of a DTensor param's shard, as torch.optim keeps it: a DTensor of the param's
    mesh, placements, shape and stride over this local tensor (no copy)."""
    cls = dtensor_type()
    return cls.from_local(t, p.device_mesh, p.placements, run_check=False, shape=p.shape, stride=p.stride())
