"""SGD: torch.optim.SGD's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .._kernels import Kernel
from .._typing import Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_bool, check_nonneg, check_torch_impl_args

__all__ = ["SGD", "sgd"]

KERNEL = Kernel("sgd")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["momentum"], "momentum value")
    check_nonneg(h["dampening"], "dampening value")
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_bool(h["nesterov"], "nesterov")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    # Nesterov acts on the momentum buffer: without momentum it is plain SGD, as in torch's step.
    return KERNEL.mode(maximize=h["maximize"], weight_decay=h["weight_decay"] != 0,
                       momentum=h["momentum"] != 0, nesterov=h["nesterov"] and h["momentum"] != 0)


ALGORITHM = Algorithm(KERNEL, _check, _mode, coeff_state=())


class SGD(FusedOptimizer):
    r"""Stochastic gradient descent with momentum, as ``torch.optim.SGD`` (torch 2.13).

    .. math::
        g \leftarrow \pm g + \lambda p;\quad
        b \leftarrow \begin{cases} g & \text{first step} \\ \mu b + (1-\tau) g \end{cases};\quad
        p \leftarrow p - \gamma\,(g + \mu b \text{ if nesterov else } b)

    State: ``momentum_buffer`` (only when momentum != 0); no step counter, as in torch.
    ``foreach``/``fused`` are accepted for torch compatibility and ignored (always fused).

    Numerics against torch: the same operations in the same order (``add(alpha=)`` as an fma,
    like torch's vectorised kernels); torch's own for-loop and fused paths differ from each other
    by an ulp per step, and so can this.
    """

    algorithm = ALGORITHM
    has_step = False
    fresh_state_flag = "first_step"

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: Optional[bool] = None, differentiable: bool = False, fused: Optional[bool] = None, **precision: Any) -> None:
        check_torch_impl_args(foreach, fused, False, differentiable)
        # torch checks this of its arguments only: a group, or a group changed later (a scheduler
        # setting momentum, a checkpoint), may have nesterov without momentum, or with dampening.
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize), **precision)

    def _state_init(self, name, group):
        return None  # the first step writes b = g over all of it


def sgd(params, d_p_list, momentum_buffer_list, *, weight_decay: float, momentum: float, lr: float,
        dampening: float, nesterov: bool, maximize: bool) -> None:
    """Functional SGD (torch.optim.sgd's signature). ``None`` entries of momentum_buffer_list
    get a buffer, written into the list, as torch does."""
    h = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
             nesterov=nesterov, maximize=maximize)
    buffers = momentum_buffer_list if momentum != 0 else None
    ALGORITHM.functional(h, params, d_p_list,
                         {"momentum_buffer": buffers}, fresh=("momentum_buffer", "first_step"))
