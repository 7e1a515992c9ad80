"""AdEMAMix: Adam with a mixture of a fast and a slow EMA (Pagliardini et al. 2024), one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

from .._kernels import Kernel
from .._typing import Array, Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_betas, check_bool, check_nonneg

__all__ = ["AdEMAMix", "ademamix"]

KERNEL = Kernel("ademamix")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_betas(h["betas"], 3)
    check_nonneg(h["alpha"], "alpha value")
    check_nonneg(h["eps"], "epsilon value")
    check_nonneg(h["weight_decay"], "weight_decay value")
    for name in ("t_alpha", "t_beta3"):
        t = h[name]
        if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0):
            raise ValueError(f"Invalid {name}: {t!r} (expected None or a number of steps > 0)")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], decoupled_weight_decay=h["weight_decay"] != 0)


# The kernel's own coefficients (ops/ademamix.h): alpha(t) = min(t alpha / T_alpha, alpha), a linear
# warmup (the paper's and pytorch_optimizer's), and beta3(t) with 1 / log(beta) linear in t from
# beta1 to beta3 over T_beta3 steps (the paper's formula; apple/ml-ademamix's half-life warmup).
ALGORITHM = Algorithm(KERNEL, _check, _mode)


class AdEMAMix(FusedOptimizer):
    r"""AdEMAMix, Pagliardini, Ablin, Grangier 2024, "The AdEMAMix Optimizer: Better, Faster, Older".

    .. math::
        m_1 \leftarrow \mathrm{lerp}(m_1, g, 1-\beta_1);\quad m_2 \leftarrow \mathrm{lerp}(m_2, g, 1-\beta_3(t));\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2

    .. math::
        p \leftarrow p(1-\gamma\lambda) - \gamma\,\frac{m_1/(1-\beta_1^t) + \alpha(t)\, m_2}{\sqrt{v/(1-\beta_2^t)} + \epsilon}

    with the paper's warmups ``alpha(t) = min(t alpha / t_alpha, alpha)`` and beta3(t) rising from
    beta1 to beta3 over ``t_beta3`` steps (``None``: no warmup). Matches the paper's Algorithm 1
    and apple/ml-ademamix (decoupled weight decay inside the update), and pytorch_optimizer's
    ``AdEMAMix`` with ``weight_decouple=True`` (tested against it). Defaults: ``lr=1e-3``,
    ``betas=(0.9, 0.999, 0.9999)``, ``alpha=5.0`` (the paper's and pytorch_optimizer's; apple's
    code defaults to 2.0), ``eps=1e-8``. State: ``step`` (int), ``exp_avg``, ``exp_avg_sq``,
    ``exp_avg_slow``.

    Where implementations disagree:

    - warmups: pytorch_optimizer has one ``t_alpha_beta3`` for both (pass the same value to
      ``t_alpha`` and ``t_beta3``); apple's code has ``alpha_warmup``/``beta3_warmup`` with a
      half-life interpolation equal to the paper's formula except for an eps inside its log;
      ``optax.contrib.ademamix`` takes alpha and b3 as user schedules instead.
    - weight decay: paper and apple add ``wd * p`` to the update (scaled by lr), as here (written
      ``p *= 1 - lr * wd`` first: the same step within an ulp); pytorch_optimizer defaults to L2
      decay into the grad (``weight_decouple=False``), which is not offered here.
    - the slow EMA is not bias-corrected (all agree).

    Numerics: m1/bc1 and alpha m2 are folded with -lr into two host coefficients and one division
    per element; sqrt(1 - beta2^t) is a host reciprocal: the same math within a few ulps.
    """

    algorithm = ALGORITHM

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: Tuple[float, float, float] = (0.9, 0.999, 0.9999), alpha: float = 5.0,
                 t_alpha: Optional[int] = None, t_beta3: Optional[int] = None, eps: float = 1e-8,
                 weight_decay: float = 0.0, *, maximize: bool = False, **precision: Any) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, alpha=alpha, t_alpha=t_alpha, t_beta3=t_beta3, eps=eps,
                                      weight_decay=weight_decay, maximize=maximize), **precision)


def ademamix(params: Sequence[Array], grads: Sequence[Array], exp_avgs: Sequence[Array],
             exp_avg_sqs: Sequence[Array], exp_avg_slows: Sequence[Array], state_steps: list[int], *, lr: float,
             beta1: float, beta2: float, beta3: float, alpha: float, eps: float, weight_decay: float,
             t_alpha: Optional[int] = None, t_beta3: Optional[int] = None, maximize: bool = False) -> None:
    """Functional AdEMAMix; ``state_steps`` (ints) are incremented in place."""
    h = dict(lr=lr, betas=(beta1, beta2, beta3), alpha=alpha, t_alpha=t_alpha, t_beta3=t_beta3, eps=eps,
             weight_decay=weight_decay, maximize=maximize)
    ALGORITHM.functional(h, params, grads, {"exp_avg": exp_avgs, "exp_avg_sq": exp_avg_sqs,
                                            "exp_avg_slow": exp_avg_slows}, state_steps)
