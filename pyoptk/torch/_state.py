"""The two faces of one optimizer state: pyoptk's (NumPy arrays, Python scalars, keyed by the
params' NumPy views) and torch's (tensors sharing that memory, keyed by the torch params), and
the conversions between them, in both directions, in one place."""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Iterator

import numpy as np
import torch

from .. import SparseGrad
from .._arrays import torch_view
from .._precision import BFLOAT16
from ._dtensor import as_dtensor, is_dtensor, local, local_grad


def tensor_view(a: np.ndarray) -> torch.Tensor:
    """A tensor over a NumPy array's memory, zero-copy (``ml_dtypes.bfloat16`` as ``torch.bfloat16``)."""
    if a.dtype == BFLOAT16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def param_view(p: torch.Tensor, where: str) -> Any:
    """What pyoptk steps for torch param ``p``: a NumPy view of its memory (CPU; complex params
    as ``view_as_real``, shape (..., 2), as torch steps them; bfloat16 as ``ml_dtypes.bfloat16``),
    or the detached tensor itself on a GPU (pyoptk's CUDA path reads it through DLPack); for an
    FSDP2 DTensor, that of its local shard. Refused with a clear error otherwise."""
    if is_dtensor(p):
        return param_view(local(p), where)
    if not (p.dtype.is_floating_point or p.dtype.is_complex):
        raise TypeError(f"{where} has dtype {p.dtype}; pyoptk.torch steps float32/float64/bfloat16/float16 "
                        "(and complex) params")
    if getattr(type(p), "__torch_dispatch__", None) is not getattr(torch.Tensor, "__torch_dispatch__", None):
        raise TypeError(f"{where} is a {type(p).__name__}, a tensor subclass with its own dispatch (FSDP2's "
                        "fully_shard makes DTensors): pyoptk.torch steps plain tensors; use torch.optim for these, "
                        "or shard with DDP / ZeroRedundancyOptimizer, which work with pyoptk.torch")
    if p.device.type == "cuda":
        return p.detach()
    if p.device.type != "cpu":  # meta, mps, xpu...: no kernels of pyoptk's run there
        raise ValueError(f"{where} is on the {p.device.type} device; pyoptk.torch steps CPU tensors (and CUDA "
                         "ones, in a build with pyoptk's CUDA kernels)")
    if not p.is_contiguous():
        raise ValueError(f"{where} is not contiguous; pyoptk updates params in place and never through a copy "
                         "(make it contiguous before building the model's optimizer)")
    return torch_view(torch.view_as_real(p.detach()) if p.dtype.is_complex else p.detach(), where)


def same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """Two NumPy views of the same bytes, read as the same dtype and shape."""
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.dtype == b.dtype and \
        a.shape == b.shape


def grad_array(g: torch.Tensor | None, p: torch.Tensor) -> Any:
    """A grad as the NumPy parts of pyoptk's steps take it: None, a NumPy view (real view for a
    complex grad), or a ``SparseGrad`` for torch's row-sparse grads (``nn.Embedding(sparse=True)``)."""
    if g is None:
        return None
    if g.is_sparse:
        g = g.coalesce()
        if g.sparse_dim() != 1:
            raise ValueError(f"a sparse grad of sparse_dim {g.sparse_dim()}: pyoptk's SparseAdam takes row-sparse "
                             "grads (sparse_dim 1, as nn.Embedding(sparse=True) makes)")
        return SparseGrad(g._indices()[0].numpy(), torch_view(g._values().detach(), "a sparse grad's values"))
    if g.device.type != "cpu":
        return g.detach()
    return torch_view(torch.view_as_real(g.detach()) if g.dtype.is_complex else g.detach(), "a grad")


def check_grads(params: list[torch.Tensor]) -> None:
    """After the core refused a step: a clear error for a grad that is not what the kernels read (a
    dense grad of another dtype than its param's, e.g. set through ``.grad.data``, which torch's
    ``.grad`` setter does not check; a non-contiguous one). Returns when every grad looks right."""
    for i, p in enumerate(params):
        g = p.grad
        if g is None or g.is_sparse or g.device != p.device:
            continue
        if g.dtype != p.dtype and not (g.dtype == torch.float32 and p.dtype in (torch.bfloat16, torch.float16)):
            raise TypeError(f"param {i}'s grad is {g.dtype}, the param {p.dtype}: pyoptk.torch reads grads in their "
                            "param's dtype (or float32 for a 16-bit param)")
        if not g.is_contiguous():
            raise ValueError(f"param {i}'s grad is not contiguous; pyoptk reads grads in place, never through a "
                             "copy (make it contiguous: p.grad = p.grad.contiguous())")


def grad_tensor(g: torch.Tensor | None, p: torch.Tensor) -> Any:
    """A dense grad for the fused kernels, which read torch tensors directly: complex grads as their
    real view (a tensor of the real view's shape), a DTensor param's grad as its local shard, others
    as they are."""
    if g is not None and is_dtensor(p):
        g = local_grad(g, p)
    if g is not None and g.dtype.is_complex:
        return torch.view_as_real(g.detach())
    return g


def to_torch(value: Any, p: torch.Tensor, scalar_as_tensor: bool) -> Any:
    """pyoptk's value of a state entry as torch keeps it: arrays as tensors sharing their memory
    (complex for a complex param; DTensors over the shard for an FSDP2 param), scalars torch keeps
    in 0-d tensors as 0-d float32 tensors."""
    if isinstance(value, np.ndarray):
        t = tensor_view(value)
        if p.dtype.is_complex and value.shape == tuple(p.shape) + (2,):
            t = torch.view_as_complex(t)  # the state of a complex param, kept as its real view
        if is_dtensor(p) and t.shape == local(p).shape:
            t = as_dtensor(t, p)
        return t
    if isinstance(value, list):
        return [to_torch(v, p, scalar_as_tensor) for v in value]
    if scalar_as_tensor and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float32)
    if hasattr(value, "__dlpack__"):  # pyoptk.cuda.DeviceArray: a GPU param's state
        return torch.from_dlpack(value)
    return value


def to_numpy(value: Any) -> Any:
    """A torch state entry as pyoptk loads it: tensors as NumPy arrays (complex as their real
    view; 0-d tensors as 0-d arrays), lists element by element, other values as they are."""
    if isinstance(value, torch.Tensor):
        value = (local(value) if is_dtensor(value) else value).detach().cpu().resolve_conj()
        return torch_view(torch.view_as_real(value) if value.dtype.is_complex else value, "a state tensor")
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value)
    return value


class TorchState(MutableMapping):
    """``opt.state`` of a ``pyoptk.torch`` optimizer: ``state[p]`` (p a torch param) is a dict of
    torch tensors sharing memory with the kernels' state arrays (in-place edits reach them);
    scalars (``step``...) are fresh 0-d tensors, as torch keeps them. Assigning or deleting
    ``state[p]`` converts and checks the value as ``load_state_dict`` does. A param without state
    reads as ``{}`` (as torch's defaultdict), without being added."""

    def __init__(self, opt: Any):
        self._opt = opt

    def _core_state(self):
        return self._opt._core.state

    def __getitem__(self, p: Any) -> dict:
        view = self._opt._views.get(p) if isinstance(p, torch.Tensor) else None
        if view is None:
            raise KeyError(p)
        core = self._core_state()
        if view not in core:  # also a param whose state is empty (plain SGD keeps none)
            return {}
        scalars = self._opt.tensor_scalars
        state = core[view]
        # torch's key order: its scalar state (step...) first, then the buffers.
        order = sorted(state, key=lambda k: isinstance(state[k], np.ndarray))
        return {k: to_torch(state[k], p, k in scalars) for k in order}

    def __setitem__(self, p: Any, value: dict) -> None:
        view = self._opt._views.get(p) if isinstance(p, torch.Tensor) else None
        if view is None:
            raise KeyError(f"{type(p).__name__} is not a param of this optimizer")
        core = self._opt._core
        index = next(i for i, q in enumerate(core._params()) if q is view)
        group = next(g for g in core.param_groups if any(q is view for q in g["params"]))
        core.state[view] = core._load_param_state(index, view, group, {k: to_numpy(v) for k, v in value.items()})

    def __delitem__(self, p: Any) -> None:
        view = self._opt._views.get(p) if isinstance(p, torch.Tensor) else None
        if view is None or view not in self._core_state():
            raise KeyError(p)
        del self._core_state()[view]

    # torch has no entry for a param it keeps no state for (plain SGD): nor here.
    def __iter__(self) -> Iterator[torch.Tensor]:
        core = self._core_state()
        return iter([p for p, view in self._opt._views.items() if view in core and core[view]])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, p: object) -> bool:
        view = self._opt._views.get(p) if isinstance(p, torch.Tensor) else None
        core = self._core_state()
        return view is not None and view in core and bool(core[view])

    def __repr__(self) -> str:
        return repr(dict(self.items()))
