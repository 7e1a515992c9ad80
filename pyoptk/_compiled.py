"""The compiled steady-state step (csrc/python/compiled_step.cpp): when an optimizer's step runs
through its plan with unchanged hyper-parameters, C++ computes the coefficients and scalar state
with the op's own functions and runs the plan, with no per-step work in the interpreter.

It is armed after a step the Python layer ran through the plan, and only where it provably does
the same: one of pyoptk's own algorithms, whose op computes its coefficients in C++, and whose
C++ prediction of that very step (coefficients, step count, scalar state) equals, bit for bit,
what the Python hooks computed. A group that changed since it was checked (a scheduler's new lr)
is checked again by the Python layer's own check, from C++, before anything runs; one whose
mode changed (another flag) sends the step back to the Python path.
"""
from __future__ import annotations

import struct
import weakref
from typing import Any

from . import _core


def _bits(coeff_sets: list) -> list[bytes]:
    return [struct.pack(f"{len(c)}d", *c) for c in coeff_sets]


def arm(opt: Any, plan: Any, before: list[dict], coeffs: list[tuple], after: list[dict]) -> Any:
    """A CompiledStep for ``plan``, or None. ``before``: each group's scalar state before the step
    just run; ``coeffs`` and ``after``: what the Python hooks computed for it."""
    kernel = opt.kernel
    if not kernel.hyper_names or not type(opt).__module__.startswith("pyoptk.optim.") or \
            not isinstance(plan.core, _core.Plan):  # host plans only
        return None
    owner = weakref.ref(opt)  # the step is kept by opt's plan: no reference cycle through C++

    def revalidate(gi: int) -> bool:
        o = owner()
        return o is not None and o._group_still_fits(gi)

    def make(scalars):
        return _core.CompiledStep(plan.core, kernel.name, opt.param_groups, kernel._hyper_keys, opt.has_step,
                                  scalars, plan.scalars, revalidate)

    try:
        compiled = make(before)
    except (TypeError, ValueError, KeyError, RuntimeError):
        return None  # a value C++ cannot read as a number, a scalar state it lacks: stay on the Python path
    predicted, scalars = compiled.predict()
    if _bits(predicted) != _bits(coeffs) or [dict(s) for s in scalars] != [dict(a) for a in after]:
        return None
    return make(after)  # at the state after the step just run: run() takes it from there
