"""Adadelta: torch.optim.Adadelta's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .._kernels import Kernel
from .._typing import Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_bool, check_nonneg, check_torch_impl_args

__all__ = ["Adadelta", "adadelta"]

KERNEL = Kernel("adadelta")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["rho"], "rho value")
    if not h["rho"] <= 1.0:
        raise ValueError(f"Invalid rho value: {h['rho']}")
    check_nonneg(h["eps"], "epsilon value")
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], weight_decay=h["weight_decay"] != 0)


ALGORITHM = Algorithm(KERNEL, _check, _mode, coeff_state=())


class Adadelta(FusedOptimizer):
    r"""Adadelta, as ``torch.optim.Adadelta`` (torch 2.13).

    .. math::
        a \leftarrow \rho a + (1-\rho) g^2;\quad \Delta = \frac{\sqrt{d + \epsilon}}{\sqrt{a + \epsilon}}\,g;\quad
        d \leftarrow \rho d + (1-\rho)\Delta^2;\quad p \leftarrow p - \gamma \Delta

    with ``g = ±g + weight_decay * p`` first. State: ``step`` (int, unused by the math, as in
    torch), ``square_avg``, ``acc_delta``.

    Numerics against torch: the last bits can differ. The update uses sqrt((d + eps)/(a + eps))
    where torch computes sqrt(d + eps)/sqrt(a + eps): one square root per element fewer.
    """

    algorithm = ALGORITHM

    def __init__(self, params: Params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
                 foreach: Optional[bool] = None, *, capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False, **precision: Any) -> None:
        check_torch_impl_args(foreach, None, capturable, differentiable)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize), **precision)


def adadelta(params, grads, square_avgs, acc_deltas, state_steps, *, lr: float, rho: float, eps: float,
             weight_decay: float, maximize: bool = False) -> None:
    """Functional Adadelta (torch.optim.adadelta's keyword arguments); ``state_steps`` are ints."""
    h = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
    ALGORITHM.functional(h, params, grads,
                         {"square_avg": square_avgs, "acc_delta": acc_deltas}, state_steps)
