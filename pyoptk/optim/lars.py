"""LARS (You, Gitman, Ginsburg 2017): SGD with momentum and a per-param trust ratio. Two passes:
the deterministic norms, then the fused update."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .._kernels import FusedStep, Kernel
from .._typing import Array, Closure, Grads, Params
from ..optimizer import hyper_values
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_bool, check_dense_grad, check_nonneg
from ._trust import norms, trust_ratio

__all__ = ["LARS", "lars"]

KERNEL = Kernel("lars")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_nonneg(h["momentum"], "momentum value")
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_nonneg(h["trust_coefficient"], "trust_coefficient value")
    check_nonneg(h["eps"], "epsilon value")
    for name in ("nesterov", "trust_ratio"):
        check_bool(h[name], name)


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(weight_decay=h["weight_decay"] != 0, nesterov=h["nesterov"])


def _coeffs(h: Mapping[str, Any], ratio: float) -> dict[str, float]:
    """For one param whose trust ratio is ``ratio`` (1 where trust_ratio is off)."""
    return {"weight_decay": h["weight_decay"], "scale": -h["lr"] * ratio, "momentum": h["momentum"]}


def _ratios(h: Mapping[str, Any], params: list[np.ndarray], grads: list[np.ndarray]) -> list[float]:
    """Per-param trust ratios from ||p|| and ||g + wd p|| (pass 1; skipped when trust_ratio is off)."""
    if not h["trust_ratio"]:
        return [1.0] * len(params)
    param_norms, update_norms = norms(params, grads, h["weight_decay"])
    return [trust_ratio(pn, un, h["trust_coefficient"], h["eps"]) for pn, un in zip(param_norms, update_norms)]


ALGORITHM = Algorithm(KERNEL, _check, _mode, _coeffs, coeff_state=("ratio",))


def _lars_step(groups: Sequence[tuple[Mapping[str, Any], list, list, list]]) -> None:
    """One step over (hyper-params, params, grads, states) groups: norms, then one fused update
    (which checks every array before writing any)."""
    fused = FusedStep(KERNEL)
    index = 0
    for gi, (h, params, grads, states) in enumerate(groups):
        for i, (p, g) in enumerate(zip(params, grads)):
            check_dense_grad(p, g, f"param {index + i}")
        mode = _mode(h)
        for p, g, state, ratio in zip(params, grads, states, _ratios(h, params, grads)):
            fused.add(index, mode, fused.slot((gi, ratio), lambda: _coeffs(h, ratio)), p, g, state)
            index += 1
    fused.run()  # pass 2


class LARS(FusedOptimizer):
    r"""LARS, You, Gitman, Ginsburg 2017, "Large Batch Training of Convolutional Networks".

    .. math::
        u = g + \lambda p;\quad \rho = \eta\,\frac{\|p\|}{\|u\| + \epsilon};\quad
        b \leftarrow -\gamma\rho\,u + \mu b;\quad p \leftarrow p + b \quad(\text{nesterov: } p + (-\gamma\rho u + \mu b))

    per param (rho = 1 where ``||p||`` or ``||u||`` is 0, or where the group has
    ``trust_ratio=False``, optax's ``trust_ratio_mask``: put biases and norm scales in such a group,
    with ``weight_decay=0``, as the paper does). Matches ``optax.lars`` (tested against it on CPU
    JAX): weight decay, trust ratio, learning rate, then the momentum trace, so the buffer holds
    lr-scaled steps. Defaults: ``lr=1e-3``, ``momentum=0.9``, ``trust_coefficient=0.001`` (the
    paper's eta), ``eps=0``, ``weight_decay=0``. State: ``momentum_buffer``. Host arrays only.

    Where implementations disagree:

    - the ratio's denominator: ``||g + wd p||`` here (optax, and the update LARS scales);
      the paper and pytorch_optimizer's ``LARS`` write ``||g|| + wd ||p||``; NVIDIA's and
      timm's add eps to it.
    - lr placement: inside the momentum buffer (optax, the paper's Algorithm 1); pytorch_optimizer
      and torch-style SGD keep the buffer in grad units and scale by lr afterwards (the same
      while lr is constant).
    - pytorch_optimizer skips the ratio for 1-d params automatically; here that is a group choice.

    Memory traffic per element (float32): pass 1 reads p and g (8 B, one reduction call) when
    ``weight_decay=0``, else p, then p and g (12 B, two calls); pass 2 reads p, g, b and writes p, b
    (20 B): 28-32 B/element (SGD with momentum: 20). Norms are the deterministic reductions, so
    results are bit-identical on every ISA and thread count.
    """

    algorithm = ALGORITHM
    low_precision = False  # its NumPy norm passes take float32/float64 arrays
    has_step = False
    runs_on_cuda = False

    def __init__(self, params: Params, lr: float = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 0.0, nesterov: bool = False,
                 trust_ratio: bool = True) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient, eps=eps, nesterov=nesterov,
                                      trust_ratio=trust_ratio))

    def step(self, grads: Optional[Grads] = None, closure: Optional[Closure] = None) -> Any:
        """Update every param with a grad; returns the closure's loss (or None). A refused step
        changes nothing."""
        loss, grads = self._collect_grads(grads, closure)
        work = []
        for group, batch in zip(map(hyper_values, self._hyper_groups()), self._dense_batches(grads)):
            states = [dict(self.state[p]) if p in self.state else {"momentum_buffer": np.zeros_like(p)}
                      for p, _ in batch]
            work.append((group, [p for p, _ in batch], [g for _, g in batch], states))
        _lars_step(work)
        for _, ps, _, states in work:
            for p, state in zip(ps, states):
                self.state[p] = state
        return loss


def lars(params: Sequence[Array], grads: Sequence[Array], momentum_buffers: Sequence[Array], *, lr: float,
         momentum: float, weight_decay: float, trust_coefficient: float = 0.001, eps: float = 0.0,
         nesterov: bool = False, trust_ratio: bool = True) -> None:
    """Functional LARS (host arrays): updates ``params`` and ``momentum_buffers`` in place."""
    h = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient, eps=eps,
             nesterov=nesterov, trust_ratio=trust_ratio)
    _check(h)
    for what, seq in (("grads", grads), ("momentum_buffers", momentum_buffers)):
        if len(seq) != len(params):
            raise ValueError(f"{what} has {len(seq)} entries for {len(params)} params")
    _lars_step([(h, list(params), list(grads), [{"momentum_buffer": b} for b in momentum_buffers])])
