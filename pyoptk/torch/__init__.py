"""pyoptk.torch: torch.optim's optimizers, stepping torch models with pyoptk's fused kernels.

Each class is a real ``torch.optim.Optimizer`` with torch's name, signature, defaults, checks and
checkpoint layout; ``step()`` reads ``p.grad`` itself and updates the params in place (CPU
tensors zero-copy), its state being torch tensors that share memory with the kernels' buffers::

    opt = pyoptk.torch.AdamW(model.parameters(), lr=1e-3)
    loss.backward(); opt.step(); opt.zero_grad()

Schedulers, ``swa_utils``, ``torch.amp.GradScaler``, hooks and ``ZeroRedundancyOptimizer`` work
on them as on torch's own; bfloat16/float16 models step through the mixed-precision kernels
(``state_dtype``, ``master_weights``, ``stochastic_rounding`` as extra keyword arguments), and
the element-wise ones step FSDP2's DTensor params as their local shards. :func:`twin` makes the
torch twin of any ``pyoptk.Optimizer`` subclass; this module makes one per algorithm of the registry.
"""
from __future__ import annotations

try:
    import torch as _torch
except ImportError as _e:  # torch is optional for pyoptk; this module is its torch face
    raise ImportError("pyoptk.torch needs PyTorch, which is not installed: pip install torch") from _e

from .. import _core
from .. import optim as _optim
from . import _abi
from ._adapter import TorchOptimizer, core_method, twin
from ._in_backward import InBackward

# Plans read torch grad tensors without a NumPy wrapper per tensor per step: through torch's C
# shim where it checks out (._abi), else through their Python getters.
_core._register_tensor_type(_torch.Tensor, _torch.nn.Parameter,
                            {name: getattr(_torch, name) for name in _core._storage_kinds() if hasattr(_torch, name)})
_abi.enable()

# One twin per algorithm of the registry (pyoptk/optim/__init__.py); type checkers read them from
# __init__.pyi, which pyoptk/torch/_stub.py writes. Schedule-free's train() / eval() swap the
# params between y and x, as the schedulefree package's; its schedule lives in torch's param
# groups, which the core reads and writes.
_CLOSURE_DRIVEN = dict(closure_driven=True, tensor_scalars=())  # LBFGS: step(closure) drives the core's loop
for _entry in _optim.ALGORITHMS:
    globals()[_entry.name] = twin(
        _entry.cls, **(_CLOSURE_DRIVEN if _entry.closure_driven else {}),
        **{m: core_method(m, getattr(_entry.cls, m).__doc__ or "") for m in _entry.twin_methods})

__all__ = ["TorchOptimizer", "twin", "InBackward", *_optim.CLASSES]
