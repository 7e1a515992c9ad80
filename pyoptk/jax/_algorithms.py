"""The factories, with optax's names, defaults and schedule conventions (``learning_rate``: a
float or an optax schedule of the step count). Options that must stay Python values (``eps_root``,
``threshold``, ``seed``...) default to None, so that ``optax.inject_hyperparams`` leaves them alone. Where optax's formula differs from pyoptk's
(torch's) the difference is said, and an option pyoptk's kernels cannot express is refused."""
from __future__ import annotations

from typing import Any, Optional

from .. import optim
from .._quant import DEFAULT_MIN_SIZE
from ..optim.adopt import PowerClip
from ._transform import FusedTransformation, make

__all__ = ["sgd", "adam", "adamw", "adagrad", "rmsprop", "adamax", "nadam", "radam", "lion", "adan", "adopt",
           "ademamix", "from_class"]

_NO_PRECISION = dict(state_dtype=None, master_weights=False, stochastic_rounding=False, seed=0, block_size=None,
                     min_8bit_size=DEFAULT_MIN_SIZE, stochastic_codes=False)


def _refuse(name: str, option: str, why: str) -> None:
    raise ValueError(f"pyoptk.jax.{name}: {option} is not supported ({why})")


def _precision(state_dtype: Any, master_weights: bool, stochastic_rounding: bool, seed: Optional[int],
               block_size: Optional[int], min_8bit_size: Optional[int], stochastic_codes: bool) -> dict[str, Any]:
    """The NumPy API's precision arguments (it checks them). ``state_dtype="int8"`` / ``"int4"``:
    block-quantized state (README, "Quantized state"), with ``block_size`` (None: 256 in 8 bits,
    128 in 4), ``min_8bit_size`` (None: 4096; smaller leaves keep float32 state) and
    ``stochastic_codes``; these three are refused with any other state_dtype."""
    return dict(state_dtype=state_dtype, master_weights=master_weights, stochastic_rounding=stochastic_rounding,
                seed=0 if seed is None else seed, block_size=block_size,
                min_8bit_size=DEFAULT_MIN_SIZE if min_8bit_size is None else min_8bit_size,
                stochastic_codes=stochastic_codes)


def sgd(learning_rate: Any, momentum: Optional[float] = None, nesterov: bool = False, weight_decay: float = 0.0, *,
        maximize: bool = False, state_dtype: Any = None, master_weights: bool = False,
        stochastic_rounding: bool = False, seed: Optional[int] = None,
        block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
        stochastic_codes: bool = False) -> FusedTransformation:
    """optax.sgd: trace t = g + momentum * t (t = g on the first step, as optax's zeros), p -= lr * t
    (nesterov: lr * (g + momentum * t)). ``weight_decay``: L2, added to g first (torch's)."""
    return make(optim.SGD, learning_rate, dict(momentum=0.0 if momentum is None else momentum, nesterov=nesterov,
                                                weight_decay=weight_decay, maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def adam(learning_rate: Any, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: Optional[float] = None, *,
         amsgrad: bool = False, maximize: bool = False, state_dtype: Any = None, master_weights: bool = False,
         stochastic_rounding: bool = False, seed: Optional[int] = None,
         block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
         stochastic_codes: bool = False) -> FusedTransformation:
    """optax.adam (eps outside the square root, as optax; ``eps_root`` must be 0)."""
    if eps_root:
        _refuse("adam", "eps_root", "the kernel adds eps outside the square root only")
    return make(optim.Adam, learning_rate, dict(betas=(b1, b2), eps=eps, amsgrad=amsgrad, maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def adamw(learning_rate: Any, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: Optional[float] = None,
          weight_decay: float = 1e-4, mask: Any = None, *, amsgrad: bool = False, maximize: bool = False,
          state_dtype: Any = None, master_weights: bool = False, stochastic_rounding: bool = False,
          seed: Optional[int] = None, block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
          stochastic_codes: bool = False) -> FusedTransformation:
    """optax.adamw: decoupled decay p *= 1 - lr * weight_decay. ``mask``: wrap in optax.masked
    (or optax.partition) instead: one transformation steps the leaves it is given."""
    if eps_root:
        _refuse("adamw", "eps_root", "the kernel adds eps outside the square root only")
    if mask is not None:
        _refuse("adamw", "mask", "use optax.masked / optax.partition around a pyoptk.jax transformation")
    return make(optim.AdamW, learning_rate, dict(betas=(b1, b2), eps=eps, weight_decay=weight_decay,
                                                  amsgrad=amsgrad, maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def adagrad(learning_rate: Any, initial_accumulator_value: float = 0.1, eps: float = 1e-7, *,
            weight_decay: float = 0.0, lr_decay: float = 0.0, maximize: bool = False, state_dtype: Any = None,
            master_weights: bool = False, stochastic_rounding: bool = False, seed: Optional[int] = None,
            block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
            stochastic_codes: bool = False) -> FusedTransformation:
    """optax.adagrad's defaults; the update is torch's g / (sqrt(sum) + eps) where optax's is
    g * rsqrt(sum + eps)."""
    return make(optim.Adagrad, learning_rate, dict(initial_accumulator_value=initial_accumulator_value, eps=eps,
                                                    weight_decay=weight_decay, lr_decay=lr_decay, maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def rmsprop(learning_rate: Any, decay: float = 0.9, eps: float = 1e-8, initial_scale: Optional[float] = None,
            eps_in_sqrt: bool = False, centered: bool = False, momentum: Optional[float] = None,
            nesterov: bool = False, bias_correction: bool = False, *, weight_decay: float = 0.0,
            maximize: bool = False, state_dtype: Any = None, master_weights: bool = False,
            stochastic_rounding: bool = False, seed: Optional[int] = None,
            block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
            stochastic_codes: bool = False) -> FusedTransformation:
    """optax.rmsprop with eps outside the square root (optax's ``eps_in_sqrt=False``; optax's
    default True is refused: the kernel is torch's g / (sqrt(v) + eps))."""
    for option, on in (("eps_in_sqrt=True", eps_in_sqrt), ("nesterov", nesterov), ("bias_correction", bias_correction),
                       ("initial_scale != 0", bool(initial_scale))):
        if on:
            _refuse("rmsprop", option, "the kernel is torch's RMSprop")
    return make(optim.RMSprop, learning_rate, dict(alpha=decay, eps=eps, centered=centered,
                                                    momentum=0.0 if momentum is None else momentum,
                                                    weight_decay=weight_decay, maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def adamax(learning_rate: Any, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, weight_decay: float = 0.0,
           maximize: bool = False, state_dtype: Any = None, master_weights: bool = False,
           stochastic_rounding: bool = False, seed: Optional[int] = None,
           block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
           stochastic_codes: bool = False) -> FusedTransformation:
    """optax.adamax's defaults; torch's eps placement u = max(b2 u, |g| + eps) where optax's is
    m / (u + eps)."""
    return make(optim.Adamax, learning_rate, dict(betas=(b1, b2), eps=eps, weight_decay=weight_decay,
                                                   maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def nadam(learning_rate: Any, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: Optional[float] = None, *,
          momentum_decay: float = 4e-3, weight_decay: float = 0.0, decoupled_weight_decay: bool = False,
          maximize: bool = False, state_dtype: Any = None, master_weights: bool = False,
          stochastic_rounding: bool = False, seed: Optional[int] = None,
          block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
          stochastic_codes: bool = False) -> FusedTransformation:
    """torch's NAdam (Dozat's momentum schedule mu_t = b1 (1 - 0.5 * 0.96^(t momentum_decay))),
    not optax.nadam (which is Adam with a Nesterov look-ahead and no schedule)."""
    if eps_root:
        _refuse("nadam", "eps_root", "the kernel adds eps outside the square root only")
    return make(optim.NAdam, learning_rate, dict(betas=(b1, b2), eps=eps, momentum_decay=momentum_decay,
                                                  weight_decay=weight_decay,
                                                  decoupled_weight_decay=decoupled_weight_decay, maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def radam(learning_rate: Any, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: Optional[float] = None,
          threshold: Optional[float] = None, *, weight_decay: float = 0.0, decoupled_weight_decay: bool = False,
          maximize: bool = False, state_dtype: Any = None, master_weights: bool = False,
          stochastic_rounding: bool = False, seed: Optional[int] = None,
          block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
          stochastic_codes: bool = False) -> FusedTransformation:
    """optax.radam (rectified when rho_t > 5, torch's fixed threshold)."""
    if eps_root or threshold not in (None, 5.0):
        _refuse("radam", "eps_root != 0 or threshold != 5", "the kernel is torch's RAdam")
    return make(optim.RAdam, learning_rate, dict(betas=(b1, b2), eps=eps, weight_decay=weight_decay,
                                                  decoupled_weight_decay=decoupled_weight_decay, maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def lion(learning_rate: Any, b1: float = 0.9, b2: float = 0.99, weight_decay: float = 1e-3, *,
         maximize: bool = False, state_dtype: Any = None, master_weights: bool = False,
         stochastic_rounding: bool = False, seed: Optional[int] = None,
         block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
         stochastic_codes: bool = False) -> FusedTransformation:
    """optax.lion: p -= lr (sign(b1 m + (1 - b1) g) + weight_decay p); m = b2 m + (1 - b2) g."""
    return make(optim.Lion, learning_rate, dict(betas=(b1, b2), weight_decay=weight_decay, maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def adan(learning_rate: Any, b1: float = 0.98, b2: float = 0.92, b3: float = 0.99, eps: float = 1e-8,
         eps_root: Optional[float] = None, weight_decay: float = 0.0, *, no_prox: bool = False, maximize: bool = False,
         state_dtype: Any = None, master_weights: bool = False, stochastic_rounding: bool = False,
         seed: Optional[int] = None, block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
         stochastic_codes: bool = False) -> FusedTransformation:
    """optax.adan's betas (b1, b2, b3 as optax names them); the authors' update with bias
    correction, proximal weight decay unless ``no_prox``."""
    if eps_root:
        _refuse("adan", "eps_root", "the kernel adds eps outside the square root only")
    return make(optim.Adan, learning_rate, dict(betas=(b1, b2, b3), eps=eps, weight_decay=weight_decay,
                                                 no_prox=no_prox, maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def adopt(learning_rate: Any, b1: float = 0.9, b2: float = 0.9999, eps: float = 1e-6, eps_root: Optional[float] = None, *,
          use_clipping: bool = True, clip_power: Optional[float] = None, weight_decay: float = 0.0, decouple: bool = False,
          maximize: bool = False, state_dtype: Any = None, master_weights: bool = False,
          stochastic_rounding: bool = False, seed: Optional[int] = None,
          block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
          stochastic_codes: bool = False) -> FusedTransformation:
    """optax.adopt; the clip bound is step ** clip_power (optax's default clip_value_fn, count ** 0.25)."""
    if eps_root:
        _refuse("adopt", "eps_root", "the kernel adds eps outside the square root only")
    return make(optim.ADOPT, learning_rate, dict(betas=(b1, b2), eps=eps, weight_decay=weight_decay,
                                                  clip_lambda=PowerClip(0.25 if clip_power is None else clip_power) if use_clipping else None,
                                                  decouple=decouple, maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def ademamix(learning_rate: Any, b1: float = 0.9, b2: float = 0.999, b3: float = 0.9999, alpha: float = 5.0,
             eps: float = 1e-8, weight_decay: float = 0.0, *, t_alpha: Optional[int] = None,
             t_beta3: Optional[int] = None, maximize: bool = False, state_dtype: Any = None,
             master_weights: bool = False, stochastic_rounding: bool = False, seed: Optional[int] = None,
             block_size: Optional[int] = None, min_8bit_size: Optional[int] = None,
             stochastic_codes: bool = False) -> FusedTransformation:
    """optax.contrib.ademamix; its b3 / alpha schedulers are the paper's warmups, given here as
    ``t_beta3`` / ``t_alpha`` (steps)."""
    return make(optim.AdEMAMix, learning_rate, dict(betas=(b1, b2, b3), alpha=alpha, t_alpha=t_alpha,
                                                     t_beta3=t_beta3, eps=eps, weight_decay=weight_decay,
                                                     maximize=maximize),
                _precision(state_dtype, master_weights, stochastic_rounding, seed, block_size, min_8bit_size,
                           stochastic_codes))


def from_class(name: str, learning_rate: Any, **kwargs: Any) -> FusedTransformation:
    """Any element-wise algorithm of the registry (pyoptk/optim's ALGORITHMS) by its class name,
    with its NumPy-API keyword arguments (torch's names: ``betas``, ``weight_decay``...) and the
    precision options: ``from_class("Adadelta", 1.0, rho=0.9)``."""
    rows = {e.name: e for e in optim.ALGORITHMS if e.elementwise}
    if name not in rows:
        raise ValueError(f"pyoptk.jax.from_class: '{name}' is not an element-wise algorithm ({sorted(rows)}; "
                         "schedule-free: pyoptk.jax.schedule_free_adamw / schedule_free_sgd)")
    precision = {k: kwargs.pop(k) for k in list(kwargs) if k in _NO_PRECISION}
    return make(rows[name].cls, learning_rate, kwargs, precision)
