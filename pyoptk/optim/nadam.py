"""NAdam: torch.optim.NAdam's names, defaults and update, as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .._kernels import Kernel
from .._typing import Betas, Params
from .._validate import next_steps, real_number
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_betas, check_bool, check_nonneg, check_torch_impl_args, functional_step, weight_decay_flags

__all__ = ["NAdam", "nadam"]

KERNEL = Kernel("nadam")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["eps"], "epsilon value")
    check_betas(h["betas"])
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_nonneg(h["momentum_decay"], "momentum_decay value")
    for name in ("decoupled_weight_decay", "maximize"):
        check_bool(h[name], name)


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], **weight_decay_flags(h))


def _next_mu_product(h: Mapping[str, Any], mu_product: float, step: int) -> float:
    # torch: `mu_product *= mu` on a 0-d float32 tensor: both factors are rounded to float32 first.
    return KERNEL.scalars("advance", h, step, mu_product)[0]


ALGORITHM = Algorithm(KERNEL, _check, _mode)


class NAdam(FusedOptimizer):
    r"""NAdam, as ``torch.optim.NAdam`` (torch 2.13).

    .. math::
        \mu_t = \beta_1(1 - \tfrac12 0.96^{t\psi});\quad \Pi \leftarrow \Pi\mu_t;\quad
        m, v \text{ as Adam};\quad d = \sqrt{v/(1-\beta_2^t)} + \epsilon;\quad
        p \leftarrow p - \gamma\frac{1-\mu_t}{1-\Pi}\frac{g}{d} - \gamma\frac{\mu_{t+1}}{1-\Pi\mu_{t+1}}\frac{m}{d}

    Weight decay as Adam (L2, or decoupled). State: ``step`` (int), ``mu_product`` (a float kept
    rounded to float32, as torch's 0-d float32 tensor), ``exp_avg``, ``exp_avg_sq``.

    Numerics against torch: ``mu_product`` is kept rounded to float32 exactly as torch's 0-d
    float32 tensor. The last bits can differ: v is multiplied by 1/(1 - beta2^t) where torch
    divides, and torch's two ``addcdiv_`` are one division of (c1 g + c2 m) here (two divisions
    per element fewer).
    """

    algorithm = ALGORITHM
    scalar_state_bounds = {"mu_product": (0.0, 1.0)}  # a product of momentum factors in (0, 1)

    def __init__(self, params: Params, lr: float = 2e-3, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *,
                 foreach: Optional[bool] = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, **precision: Any) -> None:
        check_torch_impl_args(foreach, None, capturable, differentiable)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps,
                                      weight_decay=weight_decay, momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize), **precision)



def nadam(params, grads, exp_avgs, exp_avg_sqs, mu_products, state_steps, *, beta1: float, beta2: float,
          lr: float, weight_decay: float, momentum_decay: float, eps: float, decoupled_weight_decay: bool = False,
          maximize: bool = False) -> None:
    """Functional NAdam (torch.optim.nadam's keyword arguments). ``state_steps`` (ints) and
    ``mu_products`` (floats, kept float32-rounded) are updated in place, as torch updates its tensors."""
    h = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
             decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
    _check(h)
    if len(mu_products) != len(params):
        raise ValueError(f"mu_products has {len(mu_products)} entries for {len(params)} params")
    if len(state_steps) != len(params):
        raise ValueError(f"state_steps has {len(state_steps)} entries for {len(params)} params")
    new = [_next_mu_product(h, real_number(mp, f"mu_products[{i}]", 0.0, 1.0), t)
           for i, (mp, t) in enumerate(zip(mu_products, next_steps(state_steps)))]
    # new[i]: the mu_product including mu_t.
    functional_step(KERNEL, _mode(h), lambda i, t: KERNEL.coeffs(h, t, new[i]), params, grads,
                    {"exp_avg": exp_avgs, "exp_avg_sq": exp_avg_sqs}, state_steps,
                    item_key=lambda i, t: (t, new[i]))
    mu_products[:] = new
