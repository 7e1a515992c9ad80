"""pyoptk.torch: torch.optim's optimizers, stepping torch models with pyoptk's fused kernels.

Each class is a real ``torch.optim.Optimizer`` with torch's name, signature, defaults, checks and
checkpoint layout; ``step()`` reads ``p.grad`` itself and updates the params in place (CPU
tensors zero-copy), its state being torch tensors that share memory with the kernels' buffers::

    opt = pyoptk.torch.AdamW(model.parameters(), lr=1e-3)
    loss.backward(); opt.step(); opt.zero_grad()

Schedulers, ``swa_utils``, ``torch.amp.GradScaler``, hooks and ``ZeroRedundancyOptimizer`` work
on them as on torch's own; bfloat16/float16 models step through the mixed-precision kernels
(``state_dtype``, ``master_weights``, ``stochastic_rounding`` as extra keyword arguments), and
the element-wise ones step FSDP2's DTensor params as their local shards. Each class is one line below: :func:`twin` makes the torch twin of any
``pyoptk.Optimizer`` subclass.
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

# Plans read torch grad tensors without a NumPy wrapper per tensor per step: through torch's C
# shim where it checks out (._abi), else through their Python getters.
_core._register_tensor_type(_torch.Tensor, _torch.nn.Parameter, _torch.float32, _torch.float64, _torch.bfloat16,
                            _torch.float16)
_abi.enable()

SGD = twin(_optim.SGD)
Adam = twin(_optim.Adam)
AdamW = twin(_optim.AdamW)
RMSprop = twin(_optim.RMSprop)
Adagrad = twin(_optim.Adagrad)
Adadelta = twin(_optim.Adadelta)
Adamax = twin(_optim.Adamax)
NAdam = twin(_optim.NAdam)
RAdam = twin(_optim.RAdam)
Rprop = twin(_optim.Rprop)
ASGD = twin(_optim.ASGD)
SparseAdam = twin(_optim.SparseAdam)
Adafactor = twin(_optim.Adafactor)
Muon = twin(_optim.Muon)
LBFGS = twin(_optim.LBFGS, closure_driven=True, tensor_scalars=())
# beyond torch.optim
Lion = twin(_optim.Lion)
LAMB = twin(_optim.LAMB)
LARS = twin(_optim.LARS)
Adan = twin(_optim.Adan)
ADOPT = twin(_optim.ADOPT)
AdEMAMix = twin(_optim.AdEMAMix)
# Schedule-free: the schedule lives in the param groups (group_state, copied back after each core
# call); train() / eval() swap the params between y and x, as the schedulefree package's.
_SWAPS = dict(train=core_method("train", _optim.ScheduleFreeSGD.train.__doc__ or ""),
              eval=core_method("eval", _optim.ScheduleFreeSGD.eval.__doc__ or ""))
ScheduleFreeSGD = twin(_optim.ScheduleFreeSGD, **_SWAPS)
ScheduleFreeAdamW = twin(_optim.ScheduleFreeAdamW, **_SWAPS)

__all__ = ["TorchOptimizer", "twin", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam",
           "RAdam", "Rprop", "ASGD", "SparseAdam", "Adafactor", "Muon", "LBFGS",
           "Lion", "LAMB", "LARS", "Adan", "ADOPT", "AdEMAMix", "ScheduleFreeSGD", "ScheduleFreeAdamW"]
