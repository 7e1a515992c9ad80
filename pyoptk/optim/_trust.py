"""Layer-wise trust ratios (LAMB, LARS): per-param norms through the deterministic reductions
(bit-identical on every ISA and thread count), and optax's ratio rule."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .. import _core

__all__ = ["norms", "trust_ratio"]


def norms(params: Sequence[np.ndarray], updates: Sequence[np.ndarray],
          weight_decay: float) -> tuple[list[float], list[float]]:
    """(||p||, ||u + weight_decay p||) per param, accumulated in double. weight_decay == 0: one
    pass over the params and the updates together; otherwise one over the params and one over
    (params, updates) (sum_squares_axpy: the decayed update is never written out)."""
    n = len(params)
    if weight_decay == 0:
        per = _core.reduce("sum_squares", list(params) + list(updates), label="params and updates")[1]
        return [math.sqrt(x) for x in per[:n]], [math.sqrt(x) for x in per[n:]]
    param_sq = _core.reduce("sum_squares", list(params), label="params")[1]
    update_sq = _core.reduce("sum_squares_axpy", list(params), list(updates), param=float(weight_decay),
                             label="params", label2="updates")[1]
    return [math.sqrt(x) for x in param_sq], [math.sqrt(x) for x in update_sq]


def trust_ratio(param_norm: float, update_norm: float, trust_coefficient: float, eps: float) -> float:
    """optax.scale_by_trust_ratio: coefficient ||p|| / (||u|| + eps), and 1 where either norm is 0
    (a param that is zero, or a zero update, is not rescaled)."""
    if param_norm == 0.0 or update_norm == 0.0:
        return 1.0
    return trust_coefficient * param_norm / (update_norm + eps)
