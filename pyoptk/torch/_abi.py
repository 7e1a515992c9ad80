"""Reading torch tensors through torch's C shim (csrc/python/torch_abi.cpp): enabled on import
once the shim agrees with torch's own Python answers on probe tensors, or left off, with the
reason in ``status()``; then every read goes through torch's Python getters instead (slower, the
same answers). ``PYOPTK_TORCH_ABI=0`` keeps it off."""
from __future__ import annotations

import os

import torch

from .. import _core

_DTYPES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2, torch.float16: 3}  # pyoptk's Dtype


def _probes() -> list[tuple]:
    """Tensors of every kind the reads meet: each layout the object can be in (a fresh tensor,
    a Parameter, a view, a grad whose Python object the getter made), every dtype read and one
    that is not, offsets, strides, an empty tensor."""
    base = torch.arange(8, dtype=torch.float32)
    param = torch.nn.Parameter(torch.zeros(3, 5, dtype=torch.float64))
    param.grad = torch.ones(3, 5, dtype=torch.float64)
    leaf = torch.zeros(4, requires_grad=True)
    (leaf * 2).sum().backward()
    tensors = [base, base[2:7], base[::2], param, param.grad, leaf.grad, torch.zeros(6, dtype=torch.bfloat16),
               torch.zeros(2, 3, dtype=torch.float16).t(), torch.zeros(0), torch.zeros(3, dtype=torch.int64)]
    raw = torch._C._tensor_impl_raw_handle
    return [(t, raw(t), t.data_ptr(), t.numel(), _DTYPES.get(t.dtype, -1), t.is_contiguous(),
             t.untyped_storage().nbytes(), t.storage_offset(), None if t.grad is None else raw(t.grad))
            for t in tensors]


def enable(on: bool = True) -> str:
    """Turn the shim on (checked on the probes) or off; returns ``status()``."""
    if not on or os.environ.get("PYOPTK_TORCH_ABI", "1") == "0":
        return _core._enable_torch_abi("", (torch.Tensor, torch.nn.Parameter), [])
    lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    probes = _probes() if hasattr(torch._C, "_tensor_impl_raw_handle") else []  # none: nothing to check against
    return _core._enable_torch_abi(lib_dir, (torch.Tensor, torch.nn.Parameter), probes)


def status() -> str:
    """'' when torch tensors are read through the shim, else why not."""
    return _core._torch_abi_status()
