"""Adadelta: torch.optim.Adadelta's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Optional

from .._kernels import Kernel
from ..optimizer import Optimizer
from ._common import check_bool, check_nonneg, check_torch_impl_args, functional_step

__all__ = ["Adadelta", "adadelta"]

KERNEL = Kernel("adadelta")


def _check(h: dict[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["rho"], "rho value")
    if not h["rho"] <= 1.0:
        raise ValueError(f"Invalid rho value: {h['rho']}")
    check_nonneg(h["eps"], "epsilon value")
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_bool(h["maximize"], "maximize")


def _mode(h: dict[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], weight_decay=h["weight_decay"] != 0)


def _coeffs(h: dict[str, Any]) -> dict[str, float]:
    return KERNEL.coeffs(h, 1)  # the same for every step


class Adadelta(Optimizer):
    r"""Adadelta, as ``torch.optim.Adadelta`` (torch 2.13).

    .. math::
        a \leftarrow \rho a + (1-\rho) g^2;\quad \Delta = \frac{\sqrt{d + \epsilon}}{\sqrt{a + \epsilon}}\,g;\quad
        d \leftarrow \rho d + (1-\rho)\Delta^2;\quad p \leftarrow p - \gamma \Delta

    with ``g = ±g + weight_decay * p`` first. State: ``step`` (int, unused by the math, as in
    torch), ``square_avg``, ``acc_delta``.

    Numerics against torch: the last bits can differ. The update uses sqrt((d + eps)/(a + eps))
    where torch computes sqrt(d + eps)/sqrt(a + eps): one square root per element fewer.
    """

    kernel = KERNEL

    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
                 foreach: Optional[bool] = None, *, capturable: bool = False, maximize: bool = False,
                 differentiable: bool = False, **precision):
        check_torch_impl_args(foreach, None, capturable, differentiable)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        _check(defaults)
        super().__init__(params, defaults, **precision)

    def _check_group(self, group):
        _check(group)

    def _group_mode(self, group):
        return _mode(group)

    def _group_coeffs(self, group, state):
        return _coeffs(group)


def adadelta(params, grads, square_avgs, acc_deltas, state_steps, *, lr: float, rho: float, eps: float,
             weight_decay: float, maximize: bool = False) -> None:
    """Functional Adadelta (torch.optim.adadelta's keyword arguments); ``state_steps`` are ints."""
    h = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
    _check(h)
    functional_step(KERNEL, _mode(h), lambda t: _coeffs(h), params, grads,
                    {"square_avg": square_avgs, "acc_delta": acc_deltas}, state_steps)
