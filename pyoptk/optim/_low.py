"""16-bit params in the multi-pass algorithms (SparseAdam, Adafactor, Muon, LBFGS).

Their fused passes stage bfloat16/float16 arrays as every kernel does (float32 math, rounded when
stored). What is theirs alone lives here: the float32 widenings their NumPy passes (reductions,
matrix products) read, which are exact; the dtypes their states may take; and the
stochastic-rounding key of each fused pass of a step, one rounding step per pass.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._precision import BFLOAT16, is_low_precision

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


def compute_dtype(dtype: Any) -> np.dtype:
    """The dtype a param's arithmetic runs in: float64 for float64, float32 otherwise."""
    return F64 if np.dtype(dtype) == F64 else F32


def widened(a: np.ndarray) -> np.ndarray:
    """``a`` in its compute dtype: a float32 copy of a 16-bit array (exact), else ``a`` itself."""
    return a.astype(F32) if is_low_precision(a.dtype) else a


def kernel_grad(g: np.ndarray, target_dtype: np.dtype) -> np.ndarray:
    """``g`` as a fused pass over an array of ``target_dtype`` may read it: in that dtype or
    float32 (a 16-bit grad for a float32 state is widened first, exactly)."""
    return g if g.dtype in (target_dtype, F32) else widened(g)


def state_dtype_ok(p_dtype: np.dtype, s_dtype: np.dtype) -> bool:
    """A state array the fused passes take for a param: its dtype, or for a param computing in
    float32 a float32 or bfloat16 state (``state_dtype``)."""
    return s_dtype == p_dtype or (compute_dtype(p_dtype) == F32 and s_dtype in (F32, BFLOAT16))


def finfo_eps(dtype: np.dtype) -> float:
    """``torch.finfo(dtype).eps`` (ml_dtypes knows bfloat16's)."""
    import ml_dtypes

    return float(ml_dtypes.finfo(dtype).eps)


class Rounding:
    """The stochastic-rounding keys of one step's fused passes (None: round to nearest even).
    Each pass takes the next rounding step of the optimizer's counter; the counter moves on only
    in ``commit``, once the step has run (a refused step changes nothing)."""

    def __init__(self, opt: Any = None):
        self.opt = opt
        self.used = 0

    def key(self) -> Optional[int]:
        if self.opt is None:
            return None
        key = self.opt.precision.rounding_key(self.opt._rounding_step + self.used)
        if key is not None:
            self.used += 1
        return key

    def commit(self) -> None:
        if self.opt is not None:
            self.opt._rounding_step += self.used
        self.used = 0
