"""Checks and helpers shared by the algorithm modules."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .._arrays import HOST, common_location
from .._kernels import FusedStep, Kernel
from .._precision import is_low_precision
from .._validate import is_real, is_scalar_array, next_steps


def check_torch_impl_args(foreach: Any, fused: Any, capturable: bool, differentiable: bool) -> None:
    """torch's implementation switches: accepted so torch code ports unchanged. pyoptk is always
    one fused kernel, so foreach/fused change nothing; capturable/differentiable do not exist."""
    if capturable:
        raise ValueError("capturable=True is not supported: pyoptk has no CUDA-graph capture mode")
    if differentiable:
        raise ValueError("differentiable=True is not supported: pyoptk updates arrays in place, without autograd")


def check_nonneg(value: Any, what: str) -> None:
    """torch's `if not 0.0 <= x: raise ValueError(f"Invalid {what}: {x}")` (NaN fails too).
    A 0-d array or tensor is accepted (torch accepts a tensor lr) and checked by its value."""
    if is_scalar_array(value):
        value = float(value)
    if not is_real(value):
        raise ValueError(f"Invalid {what}: {value!r} (expected a real number that fits a float)")
    if not 0.0 <= value:
        raise ValueError(f"Invalid {what}: {value}")


def check_betas(betas: Any, count: int = 2) -> None:
    """``count`` numbers in [0, 1) (Adan and AdEMAMix take three)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != count:
        what = "a pair of numbers" if count == 2 else f"{count} numbers"
        raise ValueError(f"Invalid betas: {betas!r} (expected {what})")
    for i, beta in enumerate(betas):
        check_nonneg(beta, f"beta parameter at index {i}")
        if not beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")


def check_pair(value: Any, what: str) -> None:
    """A (tuple or list) pair of real numbers, such as Rprop's etas and step_sizes."""
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(map(is_real, value)):
        raise ValueError(f"Invalid {what}: {value!r} (expected a pair of numbers)")


def f32(x: float) -> float:
    """Round to float32 and back: torch keeps some scalar states (step, NAdam's mu_product,
    ASGD's eta and mu) in 0-d float32 tensors and re-rounds them every step."""
    return float(np.float32(x))


def weight_decay_flags(h: dict[str, Any]) -> dict[str, bool]:
    """The kernel's L2 / decoupled weight-decay flags (neither when weight_decay is 0)."""
    decay = h["weight_decay"] != 0
    decoupled = bool(h.get("decoupled_weight_decay", False))
    return {"weight_decay": decay and not decoupled, "decoupled_weight_decay": decay and decoupled}


def check_bool(value: Any, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"Invalid {name}: {value!r} (expected True or False)")


def functional_step(kernel: Kernel, mode: int, coeffs: Callable[[int], Mapping[str, float]],
                    params: Sequence, grads: Sequence, states: Mapping[str, Sequence | None],
                    state_steps: list | None = None, fresh: tuple[str, str] | None = None,
                    item_key: Callable[[int, int], Any] | None = None, first_step_flag: str | None = None) -> None:
    """The functional API's one path: update ``params[i]`` with ``grads[i]`` and the i-th entry of
    each state list, in one fused call.

    ``state_steps`` (a list of ints) is incremented in place, as torch increments its step tensors;
    ``coeffs(t)`` gives the coefficients for step t. ``fresh = (state name, flag)``: entries of that
    state list that are None get a new buffer and the flag (SGD's first momentum step); they are
    written back only if the step ran. ``item_key(i, t)``: for algorithms whose coefficients also
    depend on per-param scalar state (NAdam's mu_product, ASGD's eta and mu); then ``coeffs`` is
    called as ``coeffs(i, t)`` and items with equal keys share one coefficient set.
    ``first_step_flag``: a mode flag set on items whose step is 1 after the increment (ADOPT's and
    Adan's first step, which the class form sets when it creates a param's state).
    """
    n = len(params)
    lists = {name: lst for name, lst in states.items() if lst is not None}
    for what, seq in [("grads", grads), *lists.items()] + ([("state_steps", state_steps)] if state_steps is not None else []):
        if len(seq) != n:
            raise ValueError(f"{what} has {len(seq)} entries for {len(params)} params")
    steps = next_steps(state_steps) if state_steps is not None else [0] * n
    fresh_buffers = {}
    where = common_location(list(params)) or HOST
    fused = FusedStep(kernel, where.core)
    for i in range(n):
        item_mode, item_states = mode, {name: lst[i] for name, lst in lists.items()}
        if fresh is not None and fresh[0] in lists and item_states[fresh[0]] is None:
            item_states[fresh[0]] = fresh_buffers[i] = where.new(*where.describe(params[i]), None)
            item_mode |= kernel.flag_bits[fresh[1]]
        t = steps[i]
        if first_step_flag is not None and t == 1:
            item_mode |= kernel.flag_bits[first_step_flag]
        if item_key is None:
            slot = fused.slot(t, lambda: coeffs(t))
        else:
            slot = fused.slot(item_key(i, t), lambda: coeffs(i, t))
        fused.add(i, item_mode, slot, params[i], grads[i], item_states)
    fused.run()
    if state_steps is not None:
        state_steps[:] = steps
    for i, buffer in fresh_buffers.items():
        lists[fresh[0]][i] = buffer


def check_dense_grad(p: np.ndarray, g: Any, where: str) -> None:
    """A dense grad the NumPy parts of a step can use before the kernel sees it: checked up front,
    so that a refused step changes nothing."""
    if not isinstance(g, np.ndarray):
        raise TypeError(f"{where} grad is a {type(g).__name__}, expected a numpy.ndarray")
    if isinstance(g, np.ma.MaskedArray):
        raise TypeError(f"{where} grad is a numpy.ma.MaskedArray; pyoptk would ignore its mask: pass its .data "
                        "(or np.ma.filled(...)) explicitly")
    if g.dtype != p.dtype and not (is_low_precision(p.dtype) and g.dtype == np.float32):
        also = " or float32" if is_low_precision(p.dtype) else ""
        raise TypeError(f"{where} grad has dtype {g.dtype}, expected {p.dtype} (the param's dtype){also}")
    if g.shape != p.shape:
        raise ValueError(f"{where} grad has shape {g.shape}, expected {p.shape} (the param's shape)")
    if not g.flags.c_contiguous:
        raise ValueError(f"{where} grad is not C-contiguous; pyoptk updates arrays in place and never through a copy")
    if not g.flags.aligned:
        raise ValueError(f"{where} grad is not aligned to its {g.itemsize}-byte items (a view at an odd byte "
                         "offset); pass an aligned copy (np.array(...))")
