"""The bridge to the compiled ops: names come from ``_core.registry()``, never restated here."""
from __future__ import annotations

from typing import Callable, Hashable, Mapping

import numpy as np

from . import _core

_REGISTRY = _core.registry()

# Hyper-parameters of the C++ coefficient functions (torch's functional names) that a param group
# keeps as one pair: name -> (group key, index).
_PAIRS = {"beta1": ("betas", 0), "beta2": ("betas", 1), "beta3": ("betas", 2), "etaminus": ("etas", 0),
          "etaplus": ("etas", 1), "step_size_min": ("step_sizes", 0), "step_size_max": ("step_sizes", 1)}

# An optional hyper-parameter left at None (AdEMAMix's t_alpha: no warmup) reaches C++ as NaN, as
# a plan's GroupSchedule reads it (csrc/python/group_schedule.cpp); the group's check allowed the None.
_NONE = float("nan")


class Kernel:
    """One compiled op: its flag bits, state names and coefficient names."""

    def __init__(self, name: str, keys: Mapping[str, tuple[str, int | None] | None] | None = None):
        """``keys``: where a flavour of the op keeps hyper-parameters elsewhere than by their name
        (schedule-free SGD's beta1 is its ``momentum``), None for one it has not (read as 0)."""
        info = _REGISTRY[name]
        self.name = name
        self.flag_bits: dict[str, int] = dict(info["flags"])
        self.states: list[tuple[str, int]] = [tuple(s) for s in info["states"]]
        self.coeff_names: list[str] = list(info["coeffs"])
        self.hyper_names: list[str] = list(info["hyper"])  # empty: no C++ coefficient function
        self.scalar_names: list[str] = list(info["scalars"])
        # Where a param group keeps each: (group key, index in a pair or None), or None.
        keys = keys or {}
        self.hyper_keys = [keys[name] if name in keys else _PAIRS.get(name, (name, None))
                           for name in self.hyper_names]

    def mode(self, **flags: bool) -> int:
        """Mode bits for the given flags (unknown flag names are a programming error)."""
        return sum(self.flag_bits[name] for name, on in flags.items() if on)

    def hyper(self, h: Mapping) -> tuple:
        """The C++ coefficient function's hyper-parameters, read from a param group's dict."""
        values = (0.0 if k is None else h[k[0]] if k[1] is None else h[k[0]][k[1]] for k in self.hyper_keys)
        return tuple(_NONE if v is None else v for v in values)

    def coeffs(self, h: Mapping, step: int, *scalars: float) -> dict[str, float]:
        """The kernel's coefficients for step ``step``, computed by the op's C++ function (the one
        place they are written); ``scalars``: the op's scalar state while the step runs."""
        return dict(zip(self.coeff_names, _core.coeffs(self.name, self.hyper(h), step, scalars)))

    def scalars(self, phase: str, h: Mapping, step: int, *scalars: float) -> tuple[float, ...]:
        """The op's scalar state: initial ('init'), updated before ('advance') or after ('finish')
        the kernel of step ``step``."""
        return _core.scalars(self.name, phase, self.hyper(h), step, scalars)

    def state_names(self, mode: int) -> list[str]:
        """The per-element states the op keeps in this mode, in kernel order."""
        return [name for name, bits in self.states if bits == 0 or mode & bits]


class FusedStep:
    """One fused update being assembled: an item per param, coefficient sets shared by key.

    ``run`` hands everything to one C++ call, which checks every array before it writes any.
    """

    def __init__(self, kernel: Kernel, core=_core):
        self.kernel = kernel
        self.core = core  # _core (host arrays) or _core.cuda (GPU arrays)
        self.items: list[tuple] = []
        self.coeffs: list[tuple[float, ...]] = []
        self._slots: dict[Hashable, int] = {}

    @staticmethod
    def coeff_tuple(kernel: Kernel, values: Mapping[str, float]) -> tuple[float, ...]:
        return tuple(float(values[name]) for name in kernel.coeff_names)

    @staticmethod
    def item(kernel: Kernel, index: int, mode: int, slot: int, param, grad, states: Mapping[str, np.ndarray]) -> tuple:
        """The tuple _core expects: (index, mode, slot, param, grad, each kernel state or None).
        With master weights (a ``master_param`` state) the kernel updates the float32 copy and
        writes the 16-bit param from it: (index, mode, slot, master, grad, states..., param)."""
        arrays = (states[name] if bits == 0 or mode & bits else None for name, bits in kernel.states)
        master = states.get("master_param")
        if master is not None:
            return (index, mode, slot, master, grad, *arrays, param)
        return (index, mode, slot, param, grad, *arrays)

    def slot(self, key: Hashable, make: Callable[[], Mapping[str, float]]) -> int:
        """Index of the coefficient set for ``key``; ``make()`` computes it the first time."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = len(self.coeffs)
            self.coeffs.append(self.coeff_tuple(self.kernel, make()))
        return slot

    def add(self, index: int, mode: int, slot: int, param, grad, states: Mapping[str, np.ndarray]) -> None:
        self.items.append(self.item(self.kernel, index, mode, slot, param, grad, states))

    def run(self, grad_scale: float | None = None, rounding_key: int | None = None) -> None:
        """grad_scale: grads are divided by it as they are read; rounding_key: 16-bit arrays are
        written with stochastic rounding keyed by it (host arrays only; None = the defaults)."""
        if not self.items:
            return
        if grad_scale is None and rounding_key is None:
            self.core.step(self.kernel.name, self.items, self.coeffs)
        else:
            self.core.step(self.kernel.name, self.items, self.coeffs, grad_scale, rounding_key)
