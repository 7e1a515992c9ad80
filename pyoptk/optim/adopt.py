"""ADOPT: Adam with the second moment decorrelated from the current grad (Taniguchi et al. 2024)."""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional, Sequence

from .._kernels import Kernel
from .._typing import Array, Betas, Params
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_betas, check_bool, check_nonneg, weight_decay_flags

__all__ = ["ADOPT", "adopt", "default_clip", "PowerClip"]

KERNEL = Kernel("adopt")


class PowerClip:
    """The clip schedule clip(t) = t ** power, which C++ computes too (ops/adopt.h): its float()
    is the power, the number a plan's GroupSchedule and the C API read for ``clip_lambda``. Any other
    function of the step works as well, computed here in Python each step."""

    def __init__(self, power: float) -> None:
        if not isinstance(power, (int, float)) or isinstance(power, bool) or not power >= 0:
            raise ValueError(f"Invalid clip power: {power!r} (expected a number >= 0)")
        self.power = float(power)

    def __call__(self, step: int) -> float:
        return step ** self.power

    def __float__(self) -> float:
        return self.power

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PowerClip) and other.power == self.power

    def __hash__(self) -> int:
        return hash(self.power)

    def __repr__(self) -> str:
        return f"PowerClip({self.power!r})"


# The reference's clipping schedule: clip(t) = t ** 0.25.
default_clip = PowerClip(0.25)


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_betas(h["betas"])
    check_nonneg(h["eps"], "epsilon value")
    check_nonneg(h["weight_decay"], "weight_decay value")
    if h["clip_lambda"] is not None and not callable(h["clip_lambda"]):
        raise ValueError(f"Invalid clip_lambda: {h['clip_lambda']!r} (expected None or a function step -> bound)")
    for name in ("decouple", "maximize"):
        check_bool(h[name], name)


def _mode(h: Mapping[str, Any]) -> int:
    flags = weight_decay_flags(dict(weight_decay=h["weight_decay"], decoupled_weight_decay=h["decouple"]))
    return KERNEL.mode(maximize=h["maximize"], clip=h["clip_lambda"] is not None, **flags)


def _clip(h: Mapping[str, Any], step: int) -> float:
    if h["clip_lambda"] is None or step < 2:  # step 1 normalises nothing
        return 0.0
    bound = h["clip_lambda"](step)
    if not isinstance(bound, (int, float)) or isinstance(bound, bool) or math.isnan(bound) or bound < 0:
        raise ValueError(f"clip_lambda({step}) returned {bound!r}; expected a number >= 0")
    return float(bound)


def _coeffs(h: Mapping[str, Any], step: int) -> dict[str, float]:
    """ops/adopt.h; a clip schedule other than a PowerClip is called here (and checked)."""
    if h["clip_lambda"] is None or isinstance(h["clip_lambda"], PowerClip):
        return KERNEL.coeffs(h, step)
    c = KERNEL.coeffs(dict(h, clip_lambda=None), step)
    c["clip"] = _clip(h, step)
    return c


ALGORITHM = Algorithm(KERNEL, _check, _mode, _coeffs)


class ADOPT(FusedOptimizer):
    r"""ADOPT, Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal Rate".

    .. math::
        t = 1:\ v \leftarrow g^2 \text{ (no param update)};\qquad
        t > 1:\ \hat g = \mathrm{clip}\big(g / \max(\sqrt v, \epsilon), \pm c(t)\big);\quad
        m \leftarrow \mathrm{lerp}(m, \hat g, 1-\beta_1);\quad p \leftarrow p - \gamma m;\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2

    Matches the authors' iShohei220/adopt ``ADOPT`` (defaults ``lr=1e-3``, ``betas=(0.9, 0.9999)``,
    ``eps=1e-6``, ``clip_lambda`` = step ** 0.25 (here ``PowerClip(0.25)``), L2 decay unless ``decouple``)
    and pytorch_optimizer's ``ADOPT`` (tested against it). ``g`` is the grad after maximize and L2
    decay; ``decouple=True`` instead scales ``p *= 1 - lr * wd`` (also on step 1, as the reference).
    ``clip_lambda=None`` turns clipping off. State: ``step`` (int), ``exp_avg``, ``exp_avg_sq``.

    Where implementations disagree:

    - clipping: the first arXiv version had none; the authors' code and pytorch_optimizer clip to
      ``step ** 0.25`` by default; ``optax.contrib.adopt`` clips by default too
      (``use_clipping=True``) but counts steps from 0 in its schedule, and its first step already
      updates the params with ``g / max(|g|, eps)``, where the reference's first step only seeds v.
    - eps: clamps sqrt(v) from below (``max(sqrt(v), eps)``), not added to it.
    - ``clip_lambda`` must be a plain function of the step (kept in the param group as the
      reference does); it is called once per step and group on the host.

    Numerics: the reference's operations in its order (division, clamp, torch's lerp); within
    ~1e-15 relative of pytorch_optimizer's ADOPT in float64 over 30 steps (torch's vectorised
    division and addcmul round differently in the last bit).
    """

    algorithm = ALGORITHM
    fresh_state_flag = "first_step"

    def __init__(self, params: Params, lr: float = 1e-3, betas: Betas = (0.9, 0.9999), eps: float = 1e-6,
                 clip_lambda: Optional[Callable[[int], float]] = default_clip, weight_decay: float = 0.0,
                 decouple: bool = False, *, maximize: bool = False, **precision: Any) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, clip_lambda=clip_lambda,
                                      weight_decay=weight_decay, decouple=decouple, maximize=maximize), **precision)

    def _kernel_coeffs(self) -> bool:
        # No clip or a PowerClip: the kernel's own schedule; any other function is called in Python.
        return all(g["clip_lambda"] is None or isinstance(g["clip_lambda"], PowerClip) for g in self.param_groups)


def adopt(params: Sequence[Array], grads: Sequence[Array], exp_avgs: Sequence[Array], exp_avg_sqs: Sequence[Array],
          state_steps: list[int], *, lr: float, beta1: float, beta2: float, eps: float,
          clip_lambda: Optional[Callable[[int], float]] = default_clip, weight_decay: float = 0.0,
          decouple: bool = False, maximize: bool = False) -> None:
    """Functional ADOPT. ``state_steps`` (ints) are incremented in place; a param whose step
    becomes 1 only seeds ``exp_avg_sq`` (start it, and ``exp_avg``, at zeros)."""
    h = dict(lr=lr, betas=(beta1, beta2), eps=eps, clip_lambda=clip_lambda, weight_decay=weight_decay,
             decouple=decouple, maximize=maximize)
    ALGORITHM.functional(h, params, grads, {"exp_avg": exp_avgs, "exp_avg_sq": exp_avg_sqs}, state_steps,
                         first_step_flag="first_step")
