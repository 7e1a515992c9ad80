"""Gradient clipping and norms over lists of NumPy arrays (torch.nn.utils' clip_grad_norm_,
get_total_norm, clip_grads_with_norm_, clip_grad_value_).

The norm is one fused pass over all arrays (``_core.reduce``): SIMD + OpenMP, accumulated in
float64 for float32 and float64 input, with a fixed reduction order, so the value is bit-identical
on every ISA and for any thread count. Scaling and clamping are one fused in-place pass
(the ``grad_clip`` kernel).

Differences from torch: norms are returned as Python floats computed in float64 (torch returns a
tensor in the grads' dtype, accumulated in that dtype), so for float32 grads pyoptk's norm is the
more accurate one and may differ from torch's in the last float32 bits; the clip coefficient is
computed in float64 and rounded once to the grads' dtype. ``foreach`` is accepted and ignored
(pyoptk is always fused). ``None`` entries in the grad list are skipped (params without a grad).
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from . import _core
from ._kernels import FusedStep, Kernel

__all__ = ["clip_grad_norm_", "clip_grad_norm_for_step", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]

_KERNEL = Kernel("grad_clip")
_CLAMP = _KERNEL.mode(clamp=True)


def _as_list(arrays) -> list:
    if isinstance(arrays, np.ndarray):
        return [arrays]
    if arrays is None:
        raise TypeError("expected an array or an iterable of arrays, got None")
    return list(arrays)


def _present(arrays: list) -> list[tuple[int, np.ndarray]]:
    return [(i, a) for i, a in enumerate(arrays) if a is not None]


def get_total_norm(tensors: np.ndarray | Iterable[np.ndarray | None], norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> float:
    """The ``norm_type``-norm of all arrays viewed as one vector (torch.nn.utils.get_total_norm).

    norm_type: any float; ``inf`` (max |x|), ``-inf`` (min |x|), 1, 2, p (``(sum |x|^p)^(1/p)``),
    0 (as torch: the number of arrays with a nonzero element). As torch, ``inf``/``-inf``/negative
    p refuse empty arrays (no identity). Returns 0.0 for an empty list.
    Raises RuntimeError if the norm is NaN or inf and ``error_if_nonfinite``.
    """
    items = _present(_as_list(tensors))
    p = float(norm_type)
    arrays = [a for _, a in items]
    if not arrays:
        return 0.0
    if math.isinf(p) or p < 0:
        for i, a in items:
            if isinstance(a, np.ndarray) and a.size == 0:
                raise RuntimeError(f"cannot compute the {p:g} norm of tensors[{i}]: it is empty, and the "
                                   "operation does not have an identity")
    labels = {"label": "tensors"}
    if p == 2.0:
        total = math.sqrt(_core.reduce("sum_squares", arrays, **labels)[0])
    elif p == 1.0:
        total = _core.reduce("sum_abs", arrays, **labels)[0]
    elif p == math.inf:
        total = _core.reduce("max_abs", arrays, **labels)[0]
    elif p == -math.inf:
        total = _core.reduce("min_abs", arrays, **labels)[0]
    elif p == 0.0:
        # torch: vector_norm(stack(per-array counts of nonzeros), 0) = arrays with a nonzero
        total = float(sum(c != 0 for c in _core.reduce("count_nonzero", arrays, **labels)[1]))
    elif math.isnan(p):
        raise ValueError("norm_type must not be NaN")
    else:
        total = _core.reduce("sum_pow", arrays, param=p, **labels)[0] ** (1.0 / p)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {p} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`")
    return total


def _transform(grads: list, mode: int, coeffs: dict[str, float]) -> None:
    fused = FusedStep(_KERNEL)
    slot = fused.slot(None, lambda: coeffs)
    for i, g in _present(grads):
        fused.add(i, mode, slot, g, None, {})
    fused.run()


def clip_grads_with_norm_(grads: np.ndarray | Iterable[np.ndarray | None], max_norm: float, total_norm: float,
                          foreach: bool | None = None) -> None:
    """Scale grads in place by ``min(1, max_norm / (total_norm + 1e-6))`` (torch's formula; a NaN
    coefficient propagates). A coefficient of 1 leaves the grads untouched (x * 1 == x), so that
    pass is skipped."""
    grads = _as_list(grads)
    max_norm, total_norm = float(max_norm), float(total_norm)
    if not _present(grads):
        return
    coef = max_norm / (total_norm + 1e-6)
    if not coef < 1.0 and not math.isnan(coef):  # torch.clamp(coef, max=1.0), NaN kept
        return
    _transform(grads, 0, {"scale": coef, "low": 0.0, "high": 0.0})


def clip_grad_norm_(grads: np.ndarray | Iterable[np.ndarray | None], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> float:
    """Clip the grads' total norm to ``max_norm`` in place; returns the total norm before clipping
    (torch.nn.utils.clip_grad_norm_, taking the grads themselves rather than the params)."""
    grads = _as_list(grads)
    max_norm = float(max_norm)
    if not _present(grads):
        return 0.0
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(grads, max_norm, total)
    return total


def clip_grad_value_(grads: np.ndarray | Iterable[np.ndarray | None], clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clamp every grad element to ``[-clip_value, clip_value]`` in place, in one fused pass
    (torch.nn.utils.clip_grad_value_: clamp_min then clamp_max; NaN stays NaN)."""
    grads = _as_list(grads)
    clip_value = float(clip_value)
    if _present(grads):
        _transform(grads, _CLAMP, {"scale": 1.0, "low": -clip_value, "high": clip_value})


def clip_grad_norm_for_step(grads: np.ndarray | Iterable[np.ndarray | None], max_norm: float,
                            grad_scale: float | np.ndarray | None = None,
                            norm_type: float = 2.0) -> tuple[float, np.ndarray, np.ndarray]:
    """Clip, unscale and skip-on-overflow in one reduction pass, without writing the grads:

    ``total_norm, found_inf, scale = clip_grad_norm_for_step(grads, max_norm, grad_scale)`` then
    ``opt.step(grads, grad_scale=scale, found_inf=found_inf)``: the kernel divides each grad by
    ``scale = grad_scale / clip_coef`` as it reads it (unscale and clip in one division), and
    skips the step when ``found_inf`` is 1.

    - ``total_norm``: the norm of the unscaled grads (norm of the given grads / ``grad_scale``), a float.
    - ``found_inf``: 0-d float32 array, 1.0 when the norm is not finite (some grad element is inf or
      NaN; for float64 grads also when the squares overflow, above ~1e154), else 0.0.
    - ``scale``: 0-d float32 array; ``clip_coef = min(1, max_norm / (total_norm + 1e-6))`` as torch.

    Against torch's ``unscale_`` + ``clip_grad_norm_`` (which write ``g / s * c`` into the grads) the
    step reads ``g / (s / c)``: the same within a float32 ulp or two of the grad, not bit for bit.
    """
    grads = _as_list(grads)
    scale = 1.0 if grad_scale is None else float(np.float32(np.asarray(grad_scale, dtype=np.float64).reshape(())))
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"grad_scale must be a positive finite number, got {scale}")
    total = get_total_norm(grads, norm_type) / scale
    found = not math.isfinite(total)
    coef = 1.0 if found else min(1.0, float(max_norm) / (total + 1e-6))
    return total, np.array(float(found), np.float32), np.array(scale / coef, np.float32)

