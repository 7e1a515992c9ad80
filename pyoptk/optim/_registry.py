"""The shape of one row of the algorithm registry (pyoptk/optim/__init__.py's ``ALGORITHMS``).

A row says what cannot be read off the class: its functional form, whether torch.optim has a
class of that name, how its step takes grads, and which methods its torch twin forwards to the
core. What the class itself says (element-wise or not, 16-bit params or not) is derived from it
here, so it is never said twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

from ..optimizer import Optimizer

__all__ = ["Entry"]


@dataclass(frozen=True)
class Entry:
    cls: type[Optimizer]
    functional: Optional[Callable[..., Any]] = None  # its pyoptk.functional form, torch's functional API
    in_torch: bool = True                   # torch.optim has a class of this name (and signature)
    grads: Literal["dense", "sparse", "closure"] = "dense"  # sparse: SparseGrad rows; closure: LBFGS
    twin_methods: tuple[str, ...] = ()      # core methods the torch twin forwards (schedule-free's train/eval)

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def elementwise(self) -> bool:
        """One fused element-wise kernel per step (no NumPy passes between kernels)."""
        return self.cls.step is Optimizer.step

    @property
    def low_precision(self) -> bool:
        """Steps bfloat16 / float16 params (mixed precision)."""
        return bool(self.cls.low_precision)

    @property
    def closure_driven(self) -> bool:
        return self.grads == "closure"
