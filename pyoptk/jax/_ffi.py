"""The XLA custom call behind every pyoptk.jax step: _core's FFI handler (csrc/jax/), registered
with JAX once, and the one ``ffi_call`` over a whole pytree, params and states aliased to results."""
from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from .. import _core

TARGET = "pyoptk_step"
jax.ffi.register_ffi_target(TARGET, _core._xla_step_handler, platform="cpu", api_version=1)
# The same call frame, checked and left untouched: bench/jax_step.py's dispatch baseline.
NOOP_TARGET = "pyoptk_noop"
jax.ffi.register_ffi_target(NOOP_TARGET, _core._xla_noop_handler, platform="cpu", api_version=1)


def refuse_non_cpu(arrays: Sequence[Any]) -> None:
    """Eager arrays must live on a CPU device (the handler is registered for XLA's CPU backend)."""
    for a in arrays:
        if isinstance(a, jax.Array) and not isinstance(a, jax.core.Tracer):
            platforms = {d.platform for d in a.devices()}
            if platforms != {"cpu"}:
                raise ValueError(f"pyoptk.jax steps CPU arrays only; got an array on {sorted(platforms)}")


def step_call(attrs: dict[str, Any], dynamic: jax.Array, count: jax.Array, scalars: jax.Array,
              leaves: Sequence[Sequence[jax.Array]], grads: Sequence[jax.Array],
              target: str = TARGET) -> tuple[jax.Array, list[list[jax.Array]]]:
    """One fused step. ``leaves[i]``: leaf i's written arrays (param, its states (a quantized
    one's codes, then scales), its master copy), each aliased to its result; returns the new scalars and the new arrays in the same layout."""
    operands: list[Any] = [dynamic, count, scalars]
    results: list[Any] = [jax.ShapeDtypeStruct(scalars.shape, scalars.dtype)]
    aliases = {2: 0}
    for arrays, grad in zip(leaves, grads):
        first, *rest = arrays
        for k, a in enumerate((first, grad, *rest)):
            operands.append(a)
            if k != 1:  # by position: the grad may be the very array of the param or of a state (eager)
                aliases[len(operands) - 1] = len(results)
                results.append(jax.ShapeDtypeStruct(a.shape, a.dtype))
    refuse_non_cpu(operands)
    out = jax.ffi.ffi_call(target, results, input_output_aliases=aliases)(*operands, **attrs)
    new_scalars, rest = out[0], list(out[1:])
    grouped, at = [], 0
    for arrays in leaves:
        grouped.append(rest[at:at + len(arrays)])
        at += len(arrays)
    return new_scalars, grouped


def _key(value: int) -> np.int64:
    """A uint64 key as the int64 attribute of the same bits."""
    return np.uint64(value).astype(np.int64)


def static_attrs(op: str, mode: int, fresh_mode: int, hyper: Sequence[float], dynamic_slots: Sequence[int],
                 leaves: int, master: Sequence[bool], stochastic: bool, step_key: int, *,
                 quant: Sequence[int] = (), block: int = 0, stochastic_codes: bool = False,
                 code_stream: int = 0) -> dict[str, Any]:
    """The handler's attributes (step_handler.cpp's header names them). ``step_key``: the key step 1
    draws from (its rounding key; its codes' key XOR ``code_stream``). ``quant``: per leaf, per
    state of the mode, its quantization map id or -1 (a plain array); ``block``: their block size."""
    return dict(op=op, mode=np.int64(mode), fresh_mode=np.int64(fresh_mode),
                hyper=np.asarray(hyper, np.float64), dynamic=np.asarray(dynamic_slots, np.int64),
                leaves=np.int64(leaves), master=np.asarray(master, np.int64).reshape(-1), stochastic=np.int64(stochastic),
                step_key=_key(step_key), quant=np.asarray(quant, np.int64).reshape(-1), block=np.int64(block),
                stochastic_codes=np.int64(stochastic_codes), code_stream=_key(code_stream))
