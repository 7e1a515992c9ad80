"""RAdam: torch.optim.RAdam's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Optional

from .._kernels import Kernel
from ..optimizer import Optimizer
from ._common import check_betas, check_bool, check_nonneg, check_torch_impl_args, functional_step, weight_decay_flags

__all__ = ["RAdam", "radam"]

KERNEL = Kernel("radam")


def _check(h: dict[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["eps"], "epsilon value")
    check_betas(h["betas"])
    check_nonneg(h["weight_decay"], "weight_decay value")
    for name in ("decoupled_weight_decay", "maximize"):
        check_bool(h[name], name)


def _mode(h: dict[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], **weight_decay_flags(h))


def _coeffs(h: dict[str, Any], step: int) -> dict[str, float]:
    return KERNEL.coeffs(h, step)


class RAdam(Optimizer):
    r"""RAdam, as ``torch.optim.RAdam`` (torch 2.13).

    .. math::
        m, v \text{ as Adam};\quad \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t};\quad
        p \leftarrow p - \gamma\frac{m}{1-\beta_1^t}\cdot
        \begin{cases} r_t\frac{\sqrt{1-\beta_2^t}}{\sqrt{v}+\epsilon} & \rho_t > 5 \\ 1 \end{cases}

    Weight decay as Adam (L2, or decoupled). State: ``step`` (int), ``exp_avg``, ``exp_avg_sq``.

    Numerics against torch: the last bits can differ. m is multiplied by lr/(1 - beta1^t) from the
    host where torch divides by the bias correction and then multiplies by lr.
    """

    kernel = KERNEL

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *, foreach: Optional[bool] = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False, **precision):
        check_torch_impl_args(foreach, None, capturable, differentiable)
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        _check(defaults)
        super().__init__(params, defaults, **precision)

    def _check_group(self, group):
        _check(group)

    def _group_mode(self, group):
        return _mode(group)

    def _group_coeffs(self, group, state):
        return _coeffs(group, state["step"])


def radam(params, grads, exp_avgs, exp_avg_sqs, state_steps, *, beta1: float, beta2: float, lr: float,
          weight_decay: float, eps: float, decoupled_weight_decay: bool = False, maximize: bool = False) -> None:
    """Functional RAdam (torch.optim.radam's keyword arguments); ``state_steps`` are ints."""
    h = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
             decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
    _check(h)
    functional_step(KERNEL, _mode(h), lambda t: _coeffs(h, t), params, grads,
                    {"exp_avg": exp_avgs, "exp_avg_sq": exp_avg_sqs}, state_steps)
