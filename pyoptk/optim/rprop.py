"""Rprop: torch.optim.Rprop's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .._kernels import Kernel
from .._typing import Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_bool, check_nonneg, check_pair, check_torch_impl_args

__all__ = ["Rprop", "rprop"]

KERNEL = Kernel("rprop")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_pair(h["etas"], "etas")
    check_pair(h["step_sizes"], "step_sizes")
    etaminus, etaplus = h["etas"]
    if not 0.0 < etaminus < 1.0 < etaplus:
        raise ValueError(f"Invalid eta values: {etaminus}, {etaplus}")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"])


ALGORITHM = Algorithm(KERNEL, _check, _mode, coeff_state=())


class Rprop(FusedOptimizer):
    r"""Rprop, as ``torch.optim.Rprop`` (torch 2.13).

    .. math::
        s = \mathrm{sign}(g\,g_{prev});\quad
        \delta \leftarrow \mathrm{clamp}(\delta\cdot\{\eta_+, \eta_-, 1\}_{s>0, s<0, s=0}, \delta_{min}, \delta_{max});\quad
        g' = 0 \text{ where } s<0;\quad p \leftarrow p - \mathrm{sign}(g')\,\delta;\quad g_{prev} \leftarrow g'

    ``lr`` only seeds ``step_size`` when a param's state is created; later lr changes have no
    effect, as in torch. No weight decay. State: ``step`` (int), ``prev``, ``step_size``.

    Numerics against torch: the same operations in the same order. Measured equal to torch in
    float32 and float64.
    """

    algorithm = ALGORITHM

    def __init__(self, params: Params, lr: float = 1e-2, etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50), *, capturable: bool = False,
                 foreach: Optional[bool] = None, maximize: bool = False, differentiable: bool = False, **precision: Any) -> None:
        check_torch_impl_args(foreach, None, capturable, differentiable)
        super().__init__(params, dict(lr=lr, etas=etas,
                                      step_sizes=step_sizes,
                                      maximize=maximize), **precision)

    def _state_init(self, name, group):
        return group["lr"] if name == "step_size" else 0.0


def rprop(params, grads, prevs, step_sizes, state_steps, *, step_size_min: float, step_size_max: float,
          etaminus: float, etaplus: float, maximize: bool = False) -> None:
    """Functional Rprop (torch.optim.rprop's keyword arguments); ``state_steps`` are ints."""
    h = dict(lr=0.0, etas=(etaminus, etaplus), step_sizes=(step_size_min, step_size_max), maximize=maximize)
    ALGORITHM.functional(h, params, grads,
                         {"prev": prevs, "step_size": step_sizes}, state_steps)
