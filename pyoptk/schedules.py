"""Keras/optax-style schedules that torch lacks, as pure ``step -> lr`` functions.

Each factory validates its arguments and returns a closure ``schedule(step) -> float`` (optax
style). There is one way to apply one, :class:`ScheduleLR`, which writes ``schedule(step)`` into
each param group's lr::

    sched = ScheduleLR(opt, warmup_cosine_decay(peak_value=3e-4, warmup_steps=100, total_steps=10_000))

A schedule built with a unit peak (or ``init_value=1.0``) is a multiplicative factor, so it also
works as a ``LambdaLR`` lr_lambda, scaling each group's own initial lr::

    LambdaLR(opt, warmup_cosine_decay(peak_value=1.0, warmup_steps=100, total_steps=10_000))

``step`` is the scheduler's ``last_epoch``: 0 right after construction, +1 per ``step()``.
"""
from __future__ import annotations

import math
import numbers
from bisect import bisect_left
from typing import Any, Callable, Sequence

from .lr_scheduler import LRScheduler
from .optimizer import Optimizer

__all__ = [
    "Schedule", "ScheduleLR", "constant", "exponential_decay", "inverse_time_decay", "piecewise_constant",
    "warmup_cosine_decay", "warmup_linear_decay", "warmup_stable_decay",
]

Schedule = Callable[[int], float]


# ----- argument checks ---------------------------------------------------------------------------
def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _nonneg(value: Any, name: str) -> float:
    v = _real(value, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def _positive(value: Any, name: str) -> float:
    v = _real(value, name)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def _count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _step(step: Any) -> float:
    if isinstance(step, bool) or not isinstance(step, numbers.Real):
        raise TypeError(f"a schedule's step must be a number, got {step!r}")
    if not step >= 0:
        raise ValueError(f"a schedule's step must be >= 0, got {step!r}")
    return step


# ----- schedules ---------------------------------------------------------------------------------
def constant(value: float) -> Schedule:
    """lr = value."""
    v = _nonneg(value, "value")

    def schedule(step: int) -> float:
        _step(step)
        return v
    return schedule


def exponential_decay(init_value: float, decay_steps: int, decay_rate: float, staircase: bool = False) -> Schedule:
    """lr = init_value * decay_rate ** (step / decay_steps); with ``staircase`` the exponent is
    floored, so the lr drops every ``decay_steps`` steps (Keras ExponentialDecay)."""
    lr0 = _nonneg(init_value, "init_value")
    steps = _count(decay_steps, "decay_steps", 1)
    rate = _positive(decay_rate, "decay_rate")

    def schedule(step: int) -> float:
        p = _step(step) / steps
        return lr0 * rate ** (math.floor(p) if staircase else p)
    return schedule


def inverse_time_decay(init_value: float, decay_steps: int, decay_rate: float = 1.0, power: float = 1.0,
                       staircase: bool = False) -> Schedule:
    """lr = init_value / (1 + decay_rate * step / decay_steps) ** power: Keras InverseTimeDecay
    (power 1), and the ``lr0 / (1 + t/s)^c`` power decay (decay_rate 1). ``staircase`` floors
    step / decay_steps."""
    lr0 = _nonneg(init_value, "init_value")
    steps = _count(decay_steps, "decay_steps", 1)
    rate = _nonneg(decay_rate, "decay_rate")
    c = _nonneg(power, "power")

    def schedule(step: int) -> float:
        p = _step(step) / steps
        return lr0 / (1.0 + rate * (math.floor(p) if staircase else p)) ** c
    return schedule


def piecewise_constant(boundaries: Sequence[int], values: Sequence[float]) -> Schedule:
    """values[0] for step <= boundaries[0], values[i] for boundaries[i-1] < step <= boundaries[i],
    values[-1] after the last boundary (Keras PiecewiseConstantDecay)."""
    bounds = [_real(b, f"boundaries[{i}]") for i, b in enumerate(boundaries)]
    vals = [_nonneg(v, f"values[{i}]") for i, v in enumerate(values)]
    if len(vals) != len(bounds) + 1:
        raise ValueError(f"values must have one more entry than boundaries, got {len(vals)} values "
                         f"and {len(bounds)} boundaries")
    if any(b >= c for b, c in zip(bounds, bounds[1:])):
        raise ValueError(f"boundaries must be strictly increasing, got {list(boundaries)}")

    def schedule(step: int) -> float:
        return vals[bisect_left(bounds, _step(step))]
    return schedule


def _warmup(init: float, peak: float, warmup_steps: int, step: float) -> float:
    return init + (peak - init) * step / warmup_steps


_DECAY_SHAPES: dict[str, Callable[[float], float]] = {
    # fraction of (peak - end) left after a fraction p of the decay
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: (1.0 + math.cos(math.pi * p)) / 2.0,
    "sqrt": lambda p: 1.0 - math.sqrt(p),
}


def _warmup_decay(peak_value, warmup_steps, total_steps, init_value, end_value, shape) -> Schedule:
    peak = _nonneg(peak_value, "peak_value")
    init = _nonneg(init_value, "init_value")
    end = _nonneg(end_value, "end_value")
    warm = _count(warmup_steps, "warmup_steps", 0)
    total = _count(total_steps, "total_steps", 1)
    if total <= warm:
        raise ValueError(f"total_steps ({total}) must be larger than warmup_steps ({warm}): "
                         "it counts the warmup steps too")
    fraction = _DECAY_SHAPES[shape]

    def schedule(step: int) -> float:
        t = _step(step)
        if t < warm:
            return _warmup(init, peak, warm, t)
        p = min(1.0, (t - warm) / (total - warm))
        return end + (peak - end) * fraction(p)
    return schedule


def warmup_cosine_decay(peak_value: float, warmup_steps: int, total_steps: int, init_value: float = 0.0,
                        end_value: float = 0.0) -> Schedule:
    """Linear warmup from init_value to peak_value over ``warmup_steps``, then a half cosine down to
    ``end_value`` at ``total_steps`` (which includes the warmup), then end_value."""
    return _warmup_decay(peak_value, warmup_steps, total_steps, init_value, end_value, "cosine")


def warmup_linear_decay(peak_value: float, warmup_steps: int, total_steps: int, init_value: float = 0.0,
                        end_value: float = 0.0) -> Schedule:
    """Linear warmup to peak_value over ``warmup_steps``, then linear decay to ``end_value`` at
    ``total_steps`` (which includes the warmup), then end_value."""
    return _warmup_decay(peak_value, warmup_steps, total_steps, init_value, end_value, "linear")


def warmup_stable_decay(peak_value: float, warmup_steps: int, stable_steps: int, decay_steps: int,
                        init_value: float = 0.0, end_value: float = 0.0, decay: str = "linear") -> Schedule:
    """Warmup-stable-decay ("trapezoid"): linear warmup to peak_value over ``warmup_steps``, hold it
    for ``stable_steps``, then decay to ``end_value`` over ``decay_steps`` with shape ``decay``:
    "linear" (1-p), "cosine" ((1+cos pi p)/2) or "sqrt" (1-sqrt p); end_value afterwards."""
    peak = _nonneg(peak_value, "peak_value")
    init = _nonneg(init_value, "init_value")
    end = _nonneg(end_value, "end_value")
    warm = _count(warmup_steps, "warmup_steps", 0)
    stable = _count(stable_steps, "stable_steps", 0)
    length = _count(decay_steps, "decay_steps", 1)
    if decay not in _DECAY_SHAPES:
        raise ValueError(f"decay must be one of {sorted(_DECAY_SHAPES)}, got {decay!r}")
    fraction = _DECAY_SHAPES[decay]
    decay_start = warm + stable

    def schedule(step: int) -> float:
        t = _step(step)
        if t < warm:
            return _warmup(init, peak, warm, t)
        if t <= decay_start:
            return peak
        return end + (peak - end) * fraction(min(1.0, (t - decay_start) / length))
    return schedule


# ----- the scheduler -----------------------------------------------------------------------------
class ScheduleLR(LRScheduler):
    """Set each group's lr to ``schedule(last_epoch)``: one schedule for all groups, or one per
    group. The value is absolute (the group's initial lr is not used); for a schedule relative to
    each group's lr, build it with a unit peak and use ``LambdaLR``. state_dict holds the step
    count only: a schedule is a pure function, rebuilt by the code that builds the scheduler."""

    _not_saved = ("optimizer", "schedules")

    def __init__(self, optimizer: Optimizer, schedule: Schedule | Sequence[Schedule], last_epoch: int = -1) -> None:
        n = len(getattr(optimizer, "param_groups", ()))
        if isinstance(schedule, (list, tuple)):
            if len(schedule) != n:
                raise ValueError(f"Expected {n} schedules (one per param group), but got {len(schedule)}")
            schedules = list(schedule)
        else:
            schedules = [schedule] * n
        for s in schedules:
            if not callable(s):
                raise TypeError(f"schedule should be a function step -> lr, but got {type(s).__name__}")
        self.schedules = schedules
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        self._warn_if_called_outside_step()
        return [float(s(self.last_epoch)) for s in self.schedules]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()
