"""ASGD: torch.optim.ASGD's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .._kernels import Kernel
from .._typing import Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_bool, check_nonneg, check_torch_impl_args, functional_step

__all__ = ["ASGD", "asgd"]

KERNEL = Kernel("asgd")

_REAL = (int, float)


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["weight_decay"], "weight_decay value")
    for name in ("lambd", "alpha", "t0"):
        if not isinstance(h[name], _REAL) or isinstance(h[name], bool):
            raise ValueError(f"Invalid {name}: {h[name]!r} (expected a real number)")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], weight_decay=h["weight_decay"] != 0)


def _next_eta_mu(h: Mapping[str, Any], step: int) -> tuple[float, float]:
    """eta and mu after step ``step``, rounded to float32 as torch's 0-d float32 tensors."""
    eta, mu = KERNEL.scalars("finish", h, step, 0.0, 0.0)  # computed from the step alone
    return eta, mu


ALGORITHM = Algorithm(KERNEL, _check, _mode)


class ASGD(FusedOptimizer):
    r"""Averaged SGD, as ``torch.optim.ASGD`` (torch 2.13).

    .. math::
        p \leftarrow p(1 - \lambda\eta) - \eta g;\quad
        a_x \leftarrow a_x + \mu(p - a_x) \text{ if } \mu \ne 1 \text{ else } p;\quad
        \eta \leftarrow \frac{\gamma}{(1 + \lambda\gamma t)^\alpha};\quad \mu \leftarrow \frac{1}{\max(1, t - t_0)}

    with ``g = ±g + weight_decay * p`` first; eta and mu are used by the next step. State:
    ``step`` (int), ``eta`` and ``mu`` (floats kept rounded to float32, as torch's 0-d float32
    tensors; eta starts at lr, mu at 1), ``ax`` (the average, not copied into the params).

    Numerics against torch: ``eta`` and ``mu`` are kept rounded to float32 like torch's 0-d
    tensors. Measured equal to torch in float32 and float64.
    """

    algorithm = ALGORITHM
    scalar_state_bounds = {"eta": (0.0, float("inf")), "mu": (0.0, 1.0)}  # mu = 1 / max(1, step - t0)

    def __init__(self, params: Params, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
                 weight_decay: float = 0, foreach: Optional[bool] = None, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False, **precision: Any) -> None:
        check_torch_impl_args(foreach, None, capturable, differentiable)
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize), **precision)



def asgd(params, grads, axs, mus, etas, state_steps, *, lambd: float, lr: float, t0: float, alpha: float,
         weight_decay: float, maximize: bool = False) -> None:
    """Functional ASGD (torch.optim.asgd's keyword arguments). ``state_steps`` (ints), ``etas`` and
    ``mus`` (floats, kept float32-rounded) are updated in place, as torch updates its tensors."""
    h = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize)
    _check(h)
    for what, seq in (("mus", mus), ("etas", etas)):
        if len(seq) != len(params):
            raise ValueError(f"{what} has {len(seq)} entries for {len(params)} params")
    old = [(float(e), float(m)) for e, m in zip(etas, mus)]
    # Each step uses the previous step's eta and mu (lr and 1 at step 1); the step enters only through them.
    functional_step(KERNEL, _mode(h), lambda i, t: KERNEL.coeffs(h, 0, *old[i]), params, grads, {"ax": axs}, state_steps,
                    item_key=lambda i, t: old[i])
    new = [_next_eta_mu(h, t) for t in state_steps]
    etas[:] = [e for e, _ in new]
    mus[:] = [m for _, m in new]
