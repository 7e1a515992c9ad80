"""Adafactor: torch.optim.Adafactor's names, defaults and update. The per-element passes (variance
EMAs, the preconditioned update, the param update) are fused kernels over all params of a group;
the row/col means and RMS norms are NumPy reductions."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _core
from .._kernels import FusedStep, Kernel
from .._precision import MASTER_KEY
from ..optimizer import hyper_values
from .._validate import is_real, next_steps
from ._common import check_bool, check_dense_grad
from ._low import Rounding, compute_dtype, finfo_eps, state_dtype_ok, widened
from ._multipass import MultiPassOptimizer, check_counts

__all__ = ["Adafactor", "adafactor"]

KERNEL = Kernel("adafactor")
LERP = Kernel("muon_momentum")  # plain lerp (no nesterov): row_var / col_var EMAs
UPDATE = Kernel("decayed_add")

_real = is_real


def _check(h: dict[str, Any]) -> None:
    h = hyper_values(h)  # a 0-d lr is checked by its value
    lr, eps = h["lr"], h["eps"]
    for name in ("lr", "beta2_decay", "d", "weight_decay"):
        if not _real(h[name]):
            raise ValueError(f"Invalid {name}: {h[name]!r} (expected a real number)")
    if not 0.0 <= lr:
        raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
    if not 0.0 >= h["beta2_decay"]:
        raise ValueError(f"beta2_decay should be <= 0 but is: {h['beta2_decay']}")
    if not isinstance(eps, (tuple, list)) or len(eps) != 2 or not (eps[0] is None or _real(eps[0])) \
            or not _real(eps[1]):
        raise ValueError(f"Invalid eps: {eps!r} (expected a pair (eps1 or None, eps2))")
    if eps[0] is not None and not 0.0 <= eps[0]:
        raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
    if not 0.0 <= eps[1]:
        raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
    if not 1.0 <= h["d"]:
        raise ValueError(f"Clipping threshold d should be >= 1 but is: {h['d']}")
    if not 0.0 <= h["weight_decay"]:
        raise ValueError(f"weight_decay should be >= 0 but is: {h['weight_decay']}")
    check_bool(h["maximize"], "maximize")


def _sq_norm_mean(g: np.ndarray, axis: int) -> np.ndarray:
    """torch.norm(g, dim=axis, keepdim=True).square_().div_(n): the norm is rounded before squaring."""
    return np.square(np.sqrt(np.sum(np.square(g), axis=axis, keepdims=True))) / g.shape[axis]


def _norm(a: np.ndarray) -> float:
    """The 2-norm through pyoptk's fixed-order reduction: the same bits for any thread count and
    ISA (np.dot goes through BLAS, whose threads change the summation order)."""
    return float(np.sqrt(_core.sum_squares([a])))


def adafactor(params, grads, row_vars, col_vars, variances, state_steps, *, d: float, lr: float,
              beta2_decay: float, weight_decay: float, eps1: Optional[float], eps2: float, maximize: bool) -> None:
    """Functional Adafactor (torch.optim._adafactor.adafactor's keyword arguments). ``state_steps``
    (ints) are incremented in place, as torch increments its step tensors. Params with ndim >= 2
    use ``row_vars[i]``/``col_vars[i]`` (shapes ``[..., R, 1]`` / ``[..., 1, C]``); others ``variances[i]``.
    Everything is checked before anything changes. 16-bit params: grads in their dtype or
    float32, states in their dtype, float32 or bfloat16; rounded to nearest even."""
    _check(dict(lr=lr, beta2_decay=beta2_decay, eps=(eps1, eps2), d=d, weight_decay=weight_decay,
                maximize=maximize))
    _run(params, grads, row_vars, col_vars, variances, [None] * len(params), state_steps, Rounding(), d=d, lr=lr,
         beta2_decay=beta2_decay, weight_decay=weight_decay, eps1=eps1, eps2=eps2, maximize=maximize)


def _run(params, grads, row_vars, col_vars, variances, masters, state_steps, rounding: Rounding, *, d, lr,
         beta2_decay, weight_decay, eps1, eps2, maximize) -> None:
    """The step: checks, the variance EMAs (fused), the update U (fused), the param update (fused,
    onto ``masters[i]``, the float32 master copy, when given). The NumPy passes read 16-bit arrays
    widened to float32; each fused pass rounds what it stores."""
    check_counts(params, grads=grads, row_vars=row_vars, col_vars=col_vars, variances=variances,
                 state_steps=state_steps)
    for i, (p, g) in enumerate(zip(params, grads)):
        check_dense_grad(p, g, f"param {i}")
        if p.ndim > 1:
            rs, cs = p.shape[:-1] + (1,), p.shape[:-2] + (1, p.shape[-1])
            for what, s, shape in (("row_var", row_vars[i], rs), ("col_var", col_vars[i], cs)):
                if not isinstance(s, np.ndarray) or s.shape != shape or not state_dtype_ok(p.dtype, s.dtype):
                    raise ValueError(f"param {i} {what} must be a {p.dtype} array of shape {shape} "
                                     "(or float32 / bfloat16 for a 16-bit or float32 param)")
        elif not isinstance(variances[i], np.ndarray) or variances[i].shape != p.shape \
                or not state_dtype_ok(p.dtype, variances[i].dtype):
            raise ValueError(f"param {i} variance must be an array of the param's shape and dtype "
                             "(or float32 / bfloat16 for a 16-bit or float32 param)")
    if not params:
        return
    # As torch: a None eps1 becomes finfo(dtype).eps of the first param, for the whole call.
    if eps1 is None:
        eps1 = finfo_eps(params[0].dtype)
    steps = next_steps(state_steps)
    lerps, pre = FusedStep(LERP), FusedStep(KERNEL)
    alphas, updates, var_estimates = [], [], []
    grads = [widened(g) for g in grads]  # what every pass reads: exact
    for i, (p, g) in enumerate(zip(params, grads)):
        t = float(steps[i])
        w = t ** beta2_decay
        rho = min(lr, 1 / (t ** 0.5))
        stored = p if masters[i] is None else masters[i]
        alphas.append(max(eps2, _norm(stored) / (p.size ** 0.5) if p.size else 0.0) * rho)  # before weight decay
        slot_lerp = lerps.slot(w, lambda: {"one_minus_momentum": w, "momentum": 1 - w})
        slot_pre = pre.slot(w, lambda: {"one_minus_beta2": w, "eps1_sq": eps1 * eps1})
        updates.append(np.empty(p.shape, compute_dtype(p.dtype)))
        if p.ndim > 1:
            lerps.add(i, 0, slot_lerp, row_vars[i], _sq_norm_mean(g, -1), {})
            lerps.add(i, 0, slot_lerp, col_vars[i], _sq_norm_mean(g, -2), {})
            var_estimates.append(i)
        else:
            pre.add(i, KERNEL.mode(maximize=maximize, full_variance=True), slot_pre, updates[i], g,
                    {"variance": variances[i]})
    lerps.run(rounding_key=rounding.key())
    for i in var_estimates:
        row, col = widened(row_vars[i]), widened(col_vars[i])  # as stored
        est = np.multiply(row, col)  # row_var @ col_var: one exact product each
        est /= np.maximum(row.mean(axis=-2, keepdims=True), eps1)
        w = float(steps[i]) ** beta2_decay
        pre.add(i, KERNEL.mode(maximize=maximize), pre.slot(w, lambda: {"one_minus_beta2": w, "eps1_sq": eps1 * eps1}),
                updates[i], grads[i], {"variance": est})
    pre.run(rounding_key=rounding.key())
    final = FusedStep(UPDATE)
    mode = UPDATE.mode(decoupled_weight_decay=weight_decay != 0)
    for i, p in enumerate(params):
        denom = max(1.0, _norm(updates[i]) / ((updates[i].size ** 0.5) * d)) if p.size else 1.0
        alpha = -alphas[i] / denom
        final.add(i, mode, final.slot(alpha, lambda: {"alpha": alpha, "decay": 1 - lr * weight_decay}),
                  p, updates[i], {} if masters[i] is None else {MASTER_KEY: masters[i]})
    final.run(rounding_key=rounding.key())
    state_steps[:] = steps


class Adafactor(MultiPassOptimizer):
    r"""Adafactor, as ``torch.optim.Adafactor`` (torch 2.13).

    .. math::
        \hat\beta_{2,t} = 1 - t^{\tau};\quad \rho_t = \min(\gamma, 1/\sqrt t);\quad
        \alpha_t = \max(\epsilon_2, \mathrm{RMS}(p))\,\rho_t;\quad p \leftarrow p(1-\gamma\lambda)

    ndim >= 2: ``row_var``/``col_var`` (means of g^2 over the last / second-to-last dim) are EMAs and
    ``V = row_var col_var / max(mean(row_var), eps1)``; otherwise ``variance`` is an EMA of g^2.
    ``U = g / sqrt(max(V, eps1^2))``; ``p -= alpha_t / max(1, RMS(U)/d) U``. eps1=None means
    ``finfo(dtype).eps`` (of the group's first param with a grad, as torch). State: ``step`` (int),
    ``row_var`` and ``col_var`` or ``variance``. ``foreach`` is accepted and ignored.

    Numerics against torch: row/column means are NumPy reductions and the RMS norms pyoptk's
    fixed-order reduction, which sum in another order than torch's, so the last bits can differ
    (float64: ~1e-12 relative). None of them uses threads: the same bits for any thread count.

    bfloat16 / float16 params (``state_dtype``, ``master_weights``, ``stochastic_rounding`` as for
    the element-wise optimizers): the grad is widened once to float32 for the reductions and U;
    the EMAs, U and the param update are fused float32 passes that round what they store, and
    each later pass reads the stored (rounded) state. eps1=None is ``finfo(param dtype).eps`` as
    in torch (bfloat16: 2**-7).
    """

    kernel = KERNEL

    def __init__(self, params, lr: float = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[Optional[float], float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0, *,
                 foreach: Optional[bool] = None, maximize: bool = False, **precision):
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=tuple(eps) if isinstance(eps, list) else eps, d=d,
                        weight_decay=weight_decay, maximize=maximize)
        _check(defaults)
        super().__init__(params, defaults, **precision)

    def _check_group(self, group):
        _check(group)

    def _state_shapes(self, p) -> dict[str, tuple]:
        if p.ndim > 1:
            return {"row_var": p.shape[:-1] + (1,), "col_var": p.shape[:-2] + (1, p.shape[-1])}
        return {"variance": p.shape}

    def _run_group(self, group, params, grads, states, rounding):
        steps = [s["step"] for s in states]
        eps1, eps2 = group["eps"]
        _run(params, grads, [s.get("row_var") for s in states], [s.get("col_var") for s in states],
             [s.get("variance") for s in states], [s.get(MASTER_KEY) for s in states], steps, rounding,
             d=group["d"], lr=group["lr"], beta2_decay=group["beta2_decay"], weight_decay=group["weight_decay"],
             eps1=eps1, eps2=eps2, maximize=group["maximize"])
        for state, t in zip(states, steps):
            state["step"] = t
