"""pyoptk: fused, vectorised, multi-threaded optimizer steps for NumPy arrays, torch.optim-compatible."""
from __future__ import annotations

import os as _os
import warnings as _warnings

try:
    from . import _core
except ImportError as _error:  # most often: the source tree imported from the repository root
    from ._unbuilt import missing_core_message as _missing_core_message
    raise ImportError(_missing_core_message(_os.path.dirname(__file__), _error)) from None
from . import functional
from ._core import available_isas, get_num_threads, set_num_threads, get_flush_denormal
from . import optim
from .optim import *  # noqa: F401,F403  the registry's names (optim.ALGORITHMS): its classes stay
from .optimizer import Optimizer, required
from . import clip, cuda, lr_scheduler, schedules, swa_utils
from .clip import clip_grad_norm_, clip_grad_norm_for_step, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .torch_checkpoint import from_torch_state_dict

__version__ = "0.1.0"

__all__ = [
    "Optimizer", "required", "functional",
    "lr_scheduler", "schedules", "swa_utils", "clip", "cuda",
    "clip_grad_norm_", "clip_grad_norm_for_step", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm",
    "from_torch_state_dict",
    "isa", "available_isas", "set_isa", "get_num_threads", "set_num_threads", "get_include",
    "set_flush_denormal", "get_flush_denormal",
]
# Type checkers read only the literal list and the `+=` (they see the registry's functional forms
# here too); at import the functional forms go: they live in pyoptk.functional.
__all__ += optim.__all__
__all__ = [n for n in __all__ if n not in optim.FUNCTIONAL]
for _name in optim.FUNCTIONAL:
    del globals()[_name]


def get_include() -> str:
    """The directory of pyoptk's C API header (``#include <pyoptk/capi.h>``) and, for Cython,
    of its ``.pxd`` files' header: pass it as an include directory, as ``numpy.get_include()``."""
    return _os.path.join(_os.path.dirname(__file__), "include")


def isa() -> str:
    """The instruction set the kernels run on now: 'avx512_bf16' (AVX-512 with its bfloat16
    conversions), 'avx512', 'avx2' or 'scalar'."""
    return _core.isa()


def set_isa(name: str) -> None:
    """Run the kernels on ``name`` (one of ``available_isas()``); results are bit-identical on all."""
    _core.set_isa(name)


def set_flush_denormal(mode: bool) -> bool:
    """Flush subnormal numbers to zero in every step (on: FTZ and DAZ, as
    ``torch.set_flush_denormal(True)``), or not (off, the default: IEEE, unless the calling thread
    itself flushes, e.g. after ``torch.set_flush_denormal(True)``: a step computes in its caller's
    mode). Every thread of a step takes the step's mode for the step and gets its own back after,
    so the caller's own mode is unchanged. The flushed bits are the same on every ISA and thread
    count. Returns False, changing nothing, where the CPU has no such mode pyoptk can set (only
    x86's is wired), as torch's does.

    It governs pyoptk's kernels and reductions; the NumPy passes some multi-pass algorithms make
    between kernels (Muon's Newton-Schulz, LBFGS's direction) run in the caller's mode."""
    return _core.set_flush_denormal(bool(mode))


def _apply_isa_env() -> None:
    # PYOPTK_ISA may lower the ISA (like ATEN_CPU_CAPABILITY); it never raises it past the CPU.
    wanted = _os.environ.get("PYOPTK_ISA", "").strip().lower()
    if not wanted:
        return
    if wanted in available_isas():
        set_isa(wanted)
    else:
        _warnings.warn(f"PYOPTK_ISA={wanted!r} is not one of {available_isas()}; using {isa()!r}",
                       RuntimeWarning, stacklevel=3)


_apply_isa_env()
