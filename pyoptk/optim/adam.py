"""Adam and AdamW: torch.optim's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .._kernels import Kernel
from .._typing import Betas, Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_betas, check_bool, check_nonneg, check_torch_impl_args, weight_decay_flags

__all__ = ["Adam", "AdamW", "adam", "adamw"]

KERNEL = Kernel("adam")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["eps"], "epsilon value")
    check_betas(h["betas"])
    check_nonneg(h["weight_decay"], "weight_decay value")
    for name in ("amsgrad", "maximize", "decoupled_weight_decay"):
        check_bool(h[name], name)


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], amsgrad=h["amsgrad"], **weight_decay_flags(h))


ALGORITHM = Algorithm(KERNEL, _check, _mode)


class Adam(FusedOptimizer):
    r"""Adam, as ``torch.optim.Adam`` (torch 2.13), including AMSGrad, maximize and decoupled weight decay.

    .. math::
        m \leftarrow \mathrm{lerp}(m, g, 1-\beta_1);\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2;\quad
        p \leftarrow p - \frac{\gamma}{1-\beta_1^t}\,\frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

    with ``g += weight_decay * p`` first (L2), or ``p *= 1 - lr * weight_decay`` (decoupled).
    AMSGrad uses ``max_exp_avg_sq = max(max_exp_avg_sq, v)`` in place of v.
    State: ``step`` (int), ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad).
    ``foreach``/``fused`` are accepted for torch compatibility and ignored (always fused).

    Numerics against torch: the last bits can differ. sqrt(v) is multiplied by 1/sqrt(1 - beta2^t)
    (computed in double on the host) where torch divides by sqrt(1 - beta2^t): one division per
    element fewer. Also, torch's vectorised sqrt is not always correctly rounded. In float64 the
    two agree to ~1e-13 relative over tens of steps.
    """

    algorithm = ALGORITHM

    def __init__(self, params: Params, lr: float = 1e-3, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, foreach: Optional[bool] = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused: Optional[bool] = None, decoupled_weight_decay: bool = False, **precision: Any) -> None:
        check_torch_impl_args(foreach, fused, capturable, differentiable)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay), **precision)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (default 1e-2), as ``torch.optim.AdamW``."""

    def __init__(self, params: Params, lr: float = 1e-3, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: Optional[bool] = None, capturable: bool = False, differentiable: bool = False,
                 fused: Optional[bool] = None, **precision: Any) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True, **precision)


def adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, amsgrad: bool,
         beta1: float, beta2: float, lr: float, weight_decay: float, eps: float, maximize: bool,
         decoupled_weight_decay: bool = False) -> None:
    """Functional Adam (torch.optim.adam's signature). ``state_steps`` is a list of ints, incremented
    in place as torch increments its step tensors; ``max_exp_avg_sqs`` may be None unless amsgrad."""
    h = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
             maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
    ALGORITHM.functional(h, params, grads, {"exp_avg": exp_avgs, "exp_avg_sq": exp_avg_sqs,
                         "max_exp_avg_sq": max_exp_avg_sqs if amsgrad else None}, state_steps)


def adamw(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, amsgrad: bool,
          beta1: float, beta2: float, lr: float, weight_decay: float, eps: float, maximize: bool) -> None:
    """Functional AdamW: ``adam`` with decoupled weight decay."""
    adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, amsgrad=amsgrad, beta1=beta1,
         beta2=beta2, lr=lr, weight_decay=weight_decay, eps=eps, maximize=maximize, decoupled_weight_decay=True)
