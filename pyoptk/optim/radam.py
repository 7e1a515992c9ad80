"""RAdam: torch.optim.RAdam's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .._kernels import Kernel
from .._typing import Betas, Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_betas, check_bool, check_nonneg, check_torch_impl_args, weight_decay_flags

__all__ = ["RAdam", "radam"]

KERNEL = Kernel("radam")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["eps"], "epsilon value")
    check_betas(h["betas"])
    check_nonneg(h["weight_decay"], "weight_decay value")
    for name in ("decoupled_weight_decay", "maximize"):
        check_bool(h[name], name)


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], **weight_decay_flags(h))


ALGORITHM = Algorithm(KERNEL, _check, _mode)


class RAdam(FusedOptimizer):
    r"""RAdam, as ``torch.optim.RAdam`` (torch 2.13).

    .. math::
        m, v \text{ as Adam};\quad \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t};\quad
        p \leftarrow p - \gamma\frac{m}{1-\beta_1^t}\cdot
        \begin{cases} r_t\frac{\sqrt{1-\beta_2^t}}{\sqrt{v}+\epsilon} & \rho_t > 5 \\ 1 \end{cases}

    Weight decay as Adam (L2, or decoupled). State: ``step`` (int), ``exp_avg``, ``exp_avg_sq``.

    Numerics against torch: the last bits can differ. m is multiplied by lr/(1 - beta1^t) from the
    host where torch divides by the bias correction and then multiplies by lr.
    """

    algorithm = ALGORITHM

    def __init__(self, params: Params, lr: float = 1e-3, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *, foreach: Optional[bool] = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False, **precision: Any) -> None:
        check_torch_impl_args(foreach, None, capturable, differentiable)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps,
                                      weight_decay=weight_decay, maximize=maximize, decoupled_weight_decay=decoupled_weight_decay), **precision)


def radam(params, grads, exp_avgs, exp_avg_sqs, state_steps, *, beta1: float, beta2: float, lr: float,
          weight_decay: float, eps: float, decoupled_weight_decay: bool = False, maximize: bool = False) -> None:
    """Functional RAdam (torch.optim.radam's keyword arguments); ``state_steps`` are ints."""
    h = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
             decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
    ALGORITHM.functional(h, params, grads,
                         {"exp_avg": exp_avgs, "exp_avg_sq": exp_avg_sqs}, state_steps)
