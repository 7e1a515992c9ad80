"""Adagrad: torch.optim.Adagrad's names, defaults and (dense) update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .._kernels import Kernel
from .._typing import Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_bool, check_nonneg, check_torch_impl_args

__all__ = ["Adagrad", "adagrad"]

KERNEL = Kernel("adagrad")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["lr_decay"], "lr_decay value")
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_nonneg(h["initial_accumulator_value"], "initial_accumulator_value value")
    check_nonneg(h["eps"], "epsilon value")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], weight_decay=h["weight_decay"] != 0)


ALGORITHM = Algorithm(KERNEL, _check, _mode)


class Adagrad(FusedOptimizer):
    r"""Adagrad, as ``torch.optim.Adagrad`` (torch 2.13), for dense gradients.

    .. math::
        s \leftarrow s + g^2;\quad p \leftarrow p - \frac{\gamma}{1 + (t-1)\,\eta_{decay}}\,\frac{g}{\sqrt{s} + \epsilon}

    with ``g = ±g + weight_decay * p`` first. As in torch, the state (``step`` = 0 and ``sum`` =
    initial_accumulator_value) is created at construction for every param, from the argument
    (torch's rule: a group's own ``initial_accumulator_value`` does not change it), and for the
    params of a group added later (which torch's step fails on).

    Numerics against torch: torch's operations in torch's order, with IEEE sqrt. torch's
    vectorised sqrt is not always correctly rounded, so results can differ in the last bit.
    """

    algorithm = ALGORITHM

    def __init__(self, params: Params, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach: Optional[bool] = None, *,
                 maximize: bool = False, differentiable: bool = False, fused: Optional[bool] = None, **precision: Any) -> None:
        check_torch_impl_args(foreach, fused, False, differentiable)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize), **precision)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's, and each new param's state made at once: torch's ``__init__`` makes it for the
        params it is given (pyoptk.torch's twin adds its groups after the first through here), and
        torch's step fails on a param added later, which has none."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            self.state[p] = {"step": 0, **self._state_entries(["sum"], p, group)}

    def _state_init(self, name, group):
        # torch's __init__ fills every group's sum with its own argument, not the group's value.
        return self.defaults["initial_accumulator_value"]


def adagrad(params, grads, state_sums, state_steps, *, lr: float, weight_decay: float, lr_decay: float,
            eps: float, maximize: bool = False) -> None:
    """Functional Adagrad (torch.optim.adagrad's keyword arguments, dense grads). ``state_steps``
    is a list of ints, incremented in place."""
    h = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, initial_accumulator_value=0, eps=eps,
             maximize=maximize)
    ALGORITHM.functional(h, params, grads, {"sum": state_sums}, state_steps)
