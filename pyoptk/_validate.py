"""Checks of the plain numbers that come from users and checkpoints (hyper-parameters, step
counts, scalar state). A wrong kind of value is a TypeError, a value out of range a ValueError,
each naming the value; nothing is converted silently ("5" is not a step, True is not a count).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

# Counts (steps, iterations) above this cannot round-trip through float64, where the coefficients
# are computed (and torch keeps `step` as a float tensor).
MAX_COUNT = 2**53


def is_scalar_array(value: Any) -> bool:
    """A 0-d real array or tensor (NumPy, torch...): a hyper-parameter whose value can change in
    place (a scheduler's ``lr.fill_(x)``), read each step; no replanning."""
    return getattr(value, "ndim", None) == 0 and hasattr(value, "__float__") and not isinstance(value, np.generic) \
        and getattr(getattr(value, "dtype", None), "kind", "f") in "fiu" and not getattr(value, "is_complex", lambda: False)()


def is_real(value: Any) -> bool:
    """A real number that fits a float: int, float or a NumPy integer/floating scalar, not bool
    (10**400 is an int that does not fit, so it would fail later, at the step)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _number(value: Any) -> Optional[int | float]:
    """``value`` as a Python int or float when it is a real number or a 0-d real array (torch
    checkpoints carry 0-d tensors), else None."""
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            return None
        value = value.item()
    elif isinstance(value, (np.integer, np.floating)):
        value = value.item()
    return value if is_real(value) else None


def whole_count(value: Any, what: str) -> int:
    """A count (a step, an iteration number): a whole number in [0, 2**53], given as an int, a
    NumPy integer, or (as torch saves ``step``) an integral float or 0-d array."""
    number = _number(value)
    if number is None:
        raise TypeError(f"{what} must be a whole number (an int), got {value!r} ({type(value).__name__})")
    if (isinstance(number, float) and not number.is_integer()) or not 0 <= number <= MAX_COUNT:
        raise ValueError(f"{what} must be a non-negative whole number (at most 2**53), got {value!r}")
    return int(number)


def real_number(value: Any, what: str, low: float = -math.inf, high: float = math.inf, finite: bool = True) -> float:
    """A real number in [low, high] (finite unless ``finite=False``: then NaN and infinities pass
    too), as a float, from a Python or NumPy number or a 0-d array."""
    number = _number(value)
    if number is None:
        raise TypeError(f"{what} must be a real number, got {value!r} ({type(value).__name__})")
    x = float(number)
    if not finite and not math.isfinite(x):
        return x
    if not (math.isfinite(x) and low <= x <= high):
        raise ValueError(f"{what} must be a finite number in [{low}, {high}], got {value!r}")
    return x


def next_steps(state_steps: Any, what: str = "state_steps") -> list[int]:
    """The functional API's step counts (each checked by whole_count), each plus one."""
    return [whole_count(t, f"{what}[{i}]") + 1 for i, t in enumerate(state_steps)]
