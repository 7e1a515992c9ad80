"""Adamax: torch.optim.Adamax's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .._kernels import Kernel
from .._typing import Betas, Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_betas, check_bool, check_nonneg, check_torch_impl_args

__all__ = ["Adamax", "adamax"]

KERNEL = Kernel("adamax")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["eps"], "epsilon value")
    check_betas(h["betas"])
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], weight_decay=h["weight_decay"] != 0)


ALGORITHM = Algorithm(KERNEL, _check, _mode)


class Adamax(FusedOptimizer):
    r"""Adamax, as ``torch.optim.Adamax`` (torch 2.13).

    .. math::
        m \leftarrow \mathrm{lerp}(m, g, 1-\beta_1);\quad u \leftarrow \max(\beta_2 u, |g| + \epsilon);\quad
        p \leftarrow p - \frac{\gamma}{1-\beta_1^t}\,\frac{m}{u}

    with ``g = ±g + weight_decay * p`` first. State: ``step`` (int), ``exp_avg``, ``exp_inf``.

    Numerics against torch: the same operations in the same order; no square root. Measured
    equal to torch in float32 and float64.
    """

    algorithm = ALGORITHM

    def __init__(self, params: Params, lr: float = 2e-3, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, foreach: Optional[bool] = None, *, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False, **precision: Any) -> None:
        check_torch_impl_args(foreach, None, capturable, differentiable)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps,
                                      weight_decay=weight_decay, maximize=maximize), **precision)


def adamax(params, grads, exp_avgs, exp_infs, state_steps, *, eps: float, beta1: float, beta2: float, lr: float,
           weight_decay: float, maximize: bool = False) -> None:
    """Functional Adamax (torch.optim.adamax's keyword arguments); ``state_steps`` are ints."""
    h = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, maximize=maximize)
    ALGORITHM.functional(h, params, grads,
                         {"exp_avg": exp_avgs, "exp_inf": exp_infs}, state_steps)
