"""Adan: adaptive Nesterov momentum (Xie et al. 2022), as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Sequence, Tuple

from .._kernels import Kernel
from .._typing import Array, Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_betas, check_bool, check_nonneg

__all__ = ["Adan", "adan"]

KERNEL = Kernel("adan")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_betas(h["betas"], 3)
    check_nonneg(h["eps"], "epsilon value")
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_bool(h["no_prox"], "no_prox")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    decay = h["weight_decay"] != 0
    return KERNEL.mode(maximize=h["maximize"], decoupled_weight_decay=decay and h["no_prox"],
                       proximal_weight_decay=decay and not h["no_prox"])


ALGORITHM = Algorithm(KERNEL, _check, _mode)


class Adan(FusedOptimizer):
    r"""Adan, Xie et al. 2022, "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models".

    .. math::
        d = g_t - g_{t-1}\ (0 \text{ at } t=1);\quad m \leftarrow \mathrm{lerp}(m, g, 1-\beta_1);\quad
        n \leftarrow \mathrm{lerp}(n, d, 1-\beta_2);\quad u = g + \beta_2 d;\quad
        v \leftarrow \beta_3 v + (1-\beta_3) u^2

    .. math::
        p \leftarrow \Big(p - \gamma\,\frac{m/(1-\beta_1^t) + \beta_2 n/(1-\beta_2^t)}
        {\sqrt{v/(1-\beta_3^t)} + \epsilon}\Big) \big/ (1 + \gamma\lambda)

    Matches sail-sg/Adan's ``Adan`` (the authors' code; its defaults ``lr=1e-3``,
    ``betas=(0.98, 0.92, 0.99)``, ``eps=1e-8``, proximal weight decay) and pytorch_optimizer's
    ``Adan`` (tested against it). ``no_prox=True``: decoupled decay ``p *= 1 - lr * wd`` before
    the step instead of the proximal division after it. State: ``step`` (int), ``exp_avg``,
    ``exp_avg_diff``, ``exp_avg_sq``, ``pre_grad`` (the previous grad, after maximize).

    Where implementations disagree:

    - betas: the paper writes 1 - beta (0.02, 0.08, 0.01); the code, pytorch_optimizer, optax and
      this class take (0.98, 0.92, 0.99).
    - weight decay: the paper and the authors' default are proximal (divide by 1 + lr wd after the
      step); ``optax.adan`` adds ``wd * p`` to the update (decoupled, like ``no_prox=True``);
      pytorch_optimizer's ``weight_decouple`` chooses between the two.
    - ``optax.adan`` puts ``eps_root=1e-8`` under the square root as well; none here (as the code).
    - the authors' ``max_grad_norm`` global clipping is not part of this step: clip with
      ``pyoptk.clip_grad_norm_`` before ``step`` (the same operation, with a deterministic norm).

    Numerics: the reference's two ``addcdiv`` are one division of (c1 m + c2 n) by the
    denominator, and sqrt(1 - beta3^t) a host reciprocal (one and two divisions per element
    fewer): the same math within a few ulps.
    """

    algorithm = ALGORITHM
    fresh_state_flag = "first_step"

    def __init__(self, params: Params, lr: float = 1e-3, betas: Tuple[float, float, float] = (0.98, 0.92, 0.99),
                 eps: float = 1e-8, weight_decay: float = 0.0, no_prox: bool = False, *,
                 maximize: bool = False, **precision: Any) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, no_prox=no_prox,
                                      maximize=maximize), **precision)

    def _state_init(self, name: str, group: dict[str, Any]) -> float | None:
        return None if name == "pre_grad" else 0.0  # the first step writes pre_grad = g


def adan(params: Sequence[Array], grads: Sequence[Array], exp_avgs: Sequence[Array],
         exp_avg_diffs: Sequence[Array], exp_avg_sqs: Sequence[Array], pre_grads: Sequence[Array],
         state_steps: list[int], *, lr: float, beta1: float, beta2: float, beta3: float, eps: float,
         weight_decay: float, no_prox: bool = False, maximize: bool = False) -> None:
    """Functional Adan. ``state_steps`` (ints) are incremented in place; on a param's first step
    (its step becomes 1) the grad difference is 0 and ``pre_grads[i]``'s contents are not read."""
    h = dict(lr=lr, betas=(beta1, beta2, beta3), eps=eps, weight_decay=weight_decay, no_prox=no_prox,
             maximize=maximize)
    ALGORITHM.functional(h, params, grads, {"exp_avg": exp_avgs, "exp_avg_diff": exp_avg_diffs,
                                            "exp_avg_sq": exp_avg_sqs, "pre_grad": pre_grads}, state_steps,
                         first_step_flag="first_step")
