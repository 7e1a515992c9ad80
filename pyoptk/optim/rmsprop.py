"""RMSprop: torch.optim.RMSprop's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .._kernels import Kernel
from .._typing import Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_bool, check_nonneg, check_torch_impl_args

__all__ = ["RMSprop", "rmsprop"]

KERNEL = Kernel("rmsprop")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["eps"], "epsilon value")
    check_nonneg(h["momentum"], "momentum value")
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_nonneg(h["alpha"], "alpha value")
    check_bool(h["centered"], "centered")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], weight_decay=h["weight_decay"] != 0,
                       momentum=h["momentum"] > 0, centered=h["centered"])


ALGORITHM = Algorithm(KERNEL, _check, _mode, coeff_state=())


class RMSprop(FusedOptimizer):
    r"""RMSprop, as ``torch.optim.RMSprop`` (torch 2.13).

    .. math::
        a \leftarrow \alpha a + (1-\alpha) g^2;\quad
        \bar g \leftarrow \mathrm{lerp}(\bar g, g, 1-\alpha) \text{ (centered)};\quad
        d = \sqrt{a - \bar g^2} + \epsilon \text{ or } \sqrt{a} + \epsilon;\quad
        b \leftarrow \mu b + g/d,\ p \leftarrow p - \gamma b \text{ (momentum > 0) else } p \leftarrow p - \gamma g/d

    with ``g = ±g + weight_decay * p`` first. State: ``step`` (int, unused by the math, as in
    torch), ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).

    Numerics against torch: torch's operations in torch's order, with IEEE sqrt. torch's
    vectorised sqrt is not always correctly rounded, so results can differ in the last bit.
    """

    algorithm = ALGORITHM

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, capturable: bool = False,
                 foreach: Optional[bool] = None, maximize: bool = False, differentiable: bool = False, **precision: Any) -> None:
        check_torch_impl_args(foreach, None, capturable, differentiable)
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                                      weight_decay=weight_decay, maximize=maximize), **precision)


def rmsprop(params, grads, square_avgs, grad_avgs, momentum_buffer_list, state_steps, *, lr: float,
            alpha: float, eps: float, weight_decay: float, momentum: float, centered: bool,
            maximize: bool = False) -> None:
    """Functional RMSprop (torch.optim.rmsprop's signature). ``grad_avgs`` is used when centered,
    ``momentum_buffer_list`` when momentum > 0 (either may be None otherwise)."""
    h = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
             maximize=maximize)
    ALGORITHM.functional(h, params, grads,
                         {"square_avg": square_avgs, "grad_avg": grad_avgs if centered else None,
                         "momentum_buffer": momentum_buffer_list if momentum > 0 else None}, state_steps)
