"""Lion: sign-of-momentum updates (Chen et al. 2023), as one fused kernel."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .._kernels import Kernel
from .._typing import Array, Betas, Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_betas, check_bool, check_nonneg

__all__ = ["Lion", "lion"]

KERNEL = Kernel("lion")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_betas(h["betas"])
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"], decoupled_weight_decay=h["weight_decay"] != 0)


ALGORITHM = Algorithm(KERNEL, _check, _mode, coeff_state=())


class Lion(FusedOptimizer):
    r"""Lion (EvoLved Sign Momentum), Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms".

    .. math::
        p \leftarrow p\,(1 - \gamma\lambda);\quad
        p \leftarrow p - \gamma\,\mathrm{sign}(\mathrm{lerp}(m, g, 1-\beta_1));\quad
        m \leftarrow \mathrm{lerp}(m, g, 1-\beta_2)

    Matches the paper's Program 1 and google/automl's ``lion_pytorch.py`` (the reference the
    pytorch_optimizer package's ``Lion`` follows; tested against it, and against ``optax.lion``).
    Defaults are the paper's: ``lr=1e-4``, ``betas=(0.9, 0.99)``, ``weight_decay=0``. State:
    ``exp_avg`` (no step counter: Lion needs none).

    Where implementations disagree:

    - weight decay is *decoupled* and scaled by lr (``p *= 1 - lr * wd``), as in the paper and the
      reference; ``optax.lion`` adds ``wd * p`` to the signed update before scaling by -lr (the same
      step in exact arithmetic) and defaults to ``weight_decay=1e-3``; pytorch_optimizer also offers
      L2 decay (``weight_decouple=False``) and lr-free decay (``fixed_decay``), which are not here.
    - ``sign(0) = 0`` (torch.sign), so an exactly zero interpolation leaves that element alone.

    Numerics: the reference's operations in its order (torch's lerp, fma for ``add(alpha=)``):
    bit-identical to pytorch_optimizer's ``Lion`` in float32 and float64 (tested over 30 steps).
    sign() makes the step discontinuous: where ``lerp(m, g, 1-beta1)`` is within an ulp of 0,
    implementations that round differently can step that element the other way.
    """

    algorithm = ALGORITHM
    has_step = False

    def __init__(self, params: Params, lr: float = 1e-4, betas: Betas = (0.9, 0.99), weight_decay: float = 0.0,
                 *, maximize: bool = False, **precision: Any) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize), **precision)


def lion(params: Sequence[Array], grads: Sequence[Array], exp_avgs: Sequence[Array], *, lr: float, beta1: float,
         beta2: float, weight_decay: float, maximize: bool = False) -> None:
    """Functional Lion: updates ``params`` and ``exp_avgs`` in place (one fused call)."""
    h = dict(lr=lr, betas=(beta1, beta2), weight_decay=weight_decay, maximize=maximize)
    ALGORITHM.functional(h, params, grads, {"exp_avg": exp_avgs})
