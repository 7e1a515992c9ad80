"""Muon: torch.optim.Muon's names, defaults and update. The momentum pass and the param update are
fused kernels over all params of a group; the Newton–Schulz iteration is NumPy matmul (BLAS)."""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .._blas import one_blas_thread
from .._kernels import FusedStep, Kernel
from .._precision import MASTER_KEY
from .._validate import is_real
from ..optimizer import hyper_values
from ._common import check_bool, check_dense_grad
from ._low import Rounding, compute_dtype, kernel_grad, state_dtype_ok, widened
from ._multipass import MultiPassOptimizer, check_counts

__all__ = ["Muon", "muon", "zeropower_via_newtonschulz"]

KERNEL = Kernel("muon_momentum")
UPDATE = Kernel("decayed_add")

EPS = 1e-7
DEFAULT_A, DEFAULT_B, DEFAULT_C = 3.4445, -4.7750, 2.0315
DEFAULT_NS_STEPS = 5


_real = is_real


def _check(h: dict[str, Any]) -> None:
    h = hyper_values(h)  # a 0-d lr is checked by its value
    for name in ("lr", "momentum", "weight_decay", "eps"):
        if not _real(h[name]):
            raise ValueError(f"Invalid {name}: {h[name]!r} (expected a real number)")
    if not 0.0 <= h["lr"]:
        raise ValueError(f"Learning rate should be >= 0 but is: {h['lr']}")
    if not 0.0 <= h["momentum"]:
        raise ValueError(f"momentum should be >= 0 but is: {h['momentum']}")
    if not 0.0 <= h["weight_decay"]:
        raise ValueError(f"weight decay should be >= 0 but is: {h['weight_decay']}")
    if h["adjust_lr_fn"] is not None and h["adjust_lr_fn"] not in ("original", "match_rms_adamw"):
        raise ValueError(f"Adjust learning rate function {h['adjust_lr_fn']} is not supported")
    check_bool(h["nesterov"], "nesterov")
    ns = h["ns_steps"]
    if not isinstance(ns, (int, np.integer)) or isinstance(ns, bool) or ns < 0:
        raise ValueError(f"Invalid ns_steps: {ns!r} (expected a non-negative int)")
    if ns >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    coeffs = h["ns_coefficients"]
    if not isinstance(coeffs, (tuple, list)) or len(coeffs) != 3 or not all(_real(c) for c in coeffs):
        raise ValueError("Coefficients must be a tuple of exactly 3 values")


def _check_2d(params) -> None:
    for p in params:
        if p.ndim != 2:
            raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter with size: {p.shape}")


def zeropower_via_newtonschulz(update: np.ndarray, ns_coefficients, ns_steps: int, eps: float) -> np.ndarray:
    """torch's ``_zeropower_via_newtonschulz``, in the array's own dtype (torch runs it in bfloat16;
    NumPy has no bfloat16 matmul). Returns a new C-contiguous array."""
    a, b, c = ns_coefficients
    x = update.T if update.shape[0] > update.shape[1] else update
    x = x / max(float(np.sqrt(np.sum(np.square(x, dtype=x.dtype)))), eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        gram_update = b * gram + c * (gram @ gram)   # addmm(gram, gram, gram, beta=b, alpha=c)
        x = a * x + gram_update @ x                  # addmm(x, gram_update, x, beta=a)
    if update.shape[0] > update.shape[1]:
        x = x.T
    return np.ascontiguousarray(x, dtype=update.dtype)


def _adjust_lr(lr: float, adjust_lr_fn: Optional[str], shape: tuple[int, ...]) -> float:
    A, B = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, A / B))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(A, B))
    else:
        ratio = 1.0
    return lr * ratio


def muon(params, grads, muon_momentum_bufs, *, foreach: Optional[bool] = None, lr: float, weight_decay: float,
         momentum: float, nesterov: bool, ns_coefficients, ns_steps: int, eps: float,
         adjust_lr_fn: Optional[str], has_complex: bool = False) -> None:
    """Functional Muon (torch.optim._muon.muon's keyword arguments). Everything is checked before
    anything changes. 16-bit params: grads in their dtype or float32, buffers in their dtype,
    float32 or bfloat16; rounded to nearest even."""
    _check(dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn))
    _run(params, grads, muon_momentum_bufs, None, Rounding(), lr=lr, weight_decay=weight_decay, momentum=momentum,
         nesterov=nesterov, ns_coefficients=ns_coefficients, ns_steps=ns_steps, eps=eps, adjust_lr_fn=adjust_lr_fn)


def _run(params, grads, bufs, masters, rounding: Rounding, *, lr, weight_decay, momentum, nesterov,
         ns_coefficients, ns_steps, eps, adjust_lr_fn) -> None:
    """The step: checks, then the momentum pass, Newton–Schulz per param (float32 for 16-bit
    params), and the update pass (onto ``masters[i]``, the float32 master copy, when given)."""
    check_counts(params, grads=grads, muon_momentum_bufs=bufs)
    _check_2d(params)
    for i, (p, g, b) in enumerate(zip(params, grads, bufs)):
        check_dense_grad(p, g, f"param {i}")
        if not isinstance(b, np.ndarray) or b.shape != p.shape or not state_dtype_ok(p.dtype, b.dtype) \
                or not b.flags.c_contiguous:
            raise ValueError(f"param {i} momentum_buffer must be a C-contiguous array of the param's shape and dtype "
                             "(or float32 / bfloat16 for a 16-bit or float32 param)")
    if not params:
        return
    fused = FusedStep(KERNEL)
    slot = fused.slot(0, lambda: {"one_minus_momentum": 1 - momentum, "momentum": momentum})
    mode = KERNEL.mode(nesterov=nesterov)
    updates = []
    for i, (g, b) in enumerate(zip(grads, bufs)):
        u = np.empty(b.shape, compute_dtype(b.dtype)) if nesterov else b  # float32 for 16-bit
        updates.append(u)
        fused.add(i, mode, slot, b, kernel_grad(g, b.dtype), {"update": u} if nesterov else {})
    fused.run(rounding_key=rounding.key())  # b = lerp(b, g, 1 - mu); u = lerp(g, b, mu) (nesterov) or b
    final = FusedStep(UPDATE)
    umode = UPDATE.mode(decoupled_weight_decay=weight_decay != 0)
    for i, p in enumerate(params):
        with one_blas_thread():  # the same bits whatever BLAS's thread count (see _blas.py)
            ortho = zeropower_via_newtonschulz(widened(updates[i]), ns_coefficients, ns_steps, eps)
        alpha = -_adjust_lr(lr, adjust_lr_fn, p.shape)
        final.add(i, umode, final.slot(alpha, lambda: {"alpha": alpha, "decay": 1 - lr * weight_decay}),
                  p, ortho, {} if masters is None or masters[i] is None else {MASTER_KEY: masters[i]})
    final.run(rounding_key=rounding.key())  # p = p (1 - lr wd); p += -adjusted_lr * ortho


class Muon(MultiPassOptimizer):
    r"""Muon, as ``torch.optim.Muon`` (torch 2.13), for 2-D params.

    .. math::
        B \leftarrow \mathrm{lerp}(B, g, 1-\mu);\quad \tilde B = \mathrm{lerp}(g, B, \mu)\ \text{(nesterov) or } B;
        \quad O = \mathrm{NS}^{(a,b,c)}_k(\tilde B; \epsilon);\quad p \leftarrow p(1-\gamma\lambda) - \gamma' O

    with ``gamma' = lr * sqrt(max(1, A/B))`` ("original", the default) or ``0.2 * sqrt(max(A, B)) * lr``
    ("match_rms_adamw"). Deviation: torch runs the Newton–Schulz iteration in bfloat16; pyoptk runs it
    in the param's dtype (NumPy has no bfloat16 matmul), so results differ from torch by about
    bfloat16's precision (~1e-2 relative on each update). The matrix products run on one BLAS
    thread (threadpoolctl), so results are the same for any thread count; they depend on the BLAS
    library and the CPU it picks kernels for. State: ``momentum_buffer``.

    bfloat16 / float16 params (``state_dtype``, ``master_weights``, ``stochastic_rounding`` as for
    the element-wise optimizers): the momentum pass and the update pass are fused kernels in
    float32 that round what they store; the Nesterov look-ahead and the Newton–Schulz iteration
    are float32 arrays, never rounded.
    """

    kernel = KERNEL
    has_step = False

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_coefficients: tuple[float, float, float] = (DEFAULT_A, DEFAULT_B, DEFAULT_C),
                 eps: float = EPS, ns_steps: int = DEFAULT_NS_STEPS, adjust_lr_fn: Optional[str] = None,
                 **precision):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=tuple(ns_coefficients) if isinstance(ns_coefficients, list) else ns_coefficients,
                        eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)
        _check(defaults)
        super().__init__(params, defaults, **precision)

    def _check_group(self, group):
        _check(group)
        _check_2d(group["params"])

    def _state_shapes(self, p) -> dict[str, tuple]:
        return {"momentum_buffer": p.shape}

    def _run_group(self, group, params, grads, states, rounding):
        _run(params, grads, [s["momentum_buffer"] for s in states], [s.get(MASTER_KEY) for s in states], rounding,
             lr=group["lr"], weight_decay=group["weight_decay"], momentum=group["momentum"],
             nesterov=group["nesterov"], ns_coefficients=group["ns_coefficients"], ns_steps=group["ns_steps"],
             eps=group["eps"], adjust_lr_fn=group["adjust_lr_fn"])
