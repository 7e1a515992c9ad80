"""Block-quantized optimizer state: ``state_dtype="int8"`` / ``"int4"`` (README, "Quantized state").

The one place that says which states of which algorithm are quantized, and with which map: a
state whose values may have either sign takes the signed map, a non-negative one (second moments,
accumulators) the unsigned map; the states not listed stay float32. The quantizer itself, the
maps and the fused step are C++ (csrc/cpu/quantize.h, staging.h); this module picks and checks.

A quantized state lives in the param's state dict as three arrays: ``name`` (uint8 codes, flat:
one per element in 8 bits, two per byte in 4 bits, element 2i in the low nibble),
``name + "_absmax"`` (float32, one per block of ``block_size`` elements) and ``name + "_qmap"``
(the map's 256 or 16 float32 values, ascending).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

__all__ = ["QUANTIZED_STATES", "Quantization", "SCALES", "QMAP", "quantized_names", "state_sign"]

SIGNED, UNSIGNED = "signed", "unsigned"
SCALES, QMAP = "_absmax", "_qmap"

# Per kernel (pyoptk._core.registry() names), its quantized states and their sign. Not listed:
# float32 in every mode. Kernels absent from the table have no quantized form (their step is
# more than one element-wise pass: norms, matrix products, sparse rows, factored moments).
QUANTIZED_STATES: dict[str, dict[str, str]] = {
    "sgd": {"momentum_buffer": SIGNED},
    "adam": {"exp_avg": SIGNED, "exp_avg_sq": UNSIGNED, "max_exp_avg_sq": UNSIGNED},
    "adamax": {"exp_avg": SIGNED, "exp_inf": UNSIGNED},
    "nadam": {"exp_avg": SIGNED, "exp_avg_sq": UNSIGNED},
    "radam": {"exp_avg": SIGNED, "exp_avg_sq": UNSIGNED},
    "adopt": {"exp_avg": SIGNED, "exp_avg_sq": UNSIGNED},
    "ademamix": {"exp_avg": SIGNED, "exp_avg_sq": UNSIGNED, "exp_avg_slow": SIGNED},
    "lion": {"exp_avg": SIGNED},
    # pre_grad, the previous grad, stays float32: Adan reads g - pre_grad, a small difference of
    # two large numbers that a shared 8-bit block scale would swamp.
    "adan": {"exp_avg": SIGNED, "exp_avg_diff": SIGNED, "exp_avg_sq": UNSIGNED},
    # grad_avg stays float32, and so does square_avg when centered (below): the centered
    # denominator sqrt(square_avg - grad_avg**2) turns NaN where rounding takes it below zero.
    "rmsprop": {"square_avg": UNSIGNED, "momentum_buffer": SIGNED},
    "adagrad": {"sum": UNSIGNED},
    "adadelta": {"square_avg": UNSIGNED, "acc_delta": UNSIGNED},
    # Rprop's per-element step sizes span orders of magnitude inside a block and its prev's sign
    # drives the update; ASGD's ax is an average of the params, needing the params' precision.
    "rprop": {},
    "asgd": {},
}
# (kernel, state): the mode flag under which the state is created float32 after all.
FLOAT32_WHEN = {("rmsprop", "square_avg"): "centered"}
# Kernels without a 4-bit form: the zero-free unsigned 4-bit map (every code >= absmax / 16) is
# safe in a denominator only; Adadelta's acc_delta is in the numerator.
NO_4BIT = {"adadelta": "acc_delta sits in the update's numerator, where the zero-free 4-bit map would inflate it"}

_MAP_IDS = {(8, SIGNED): 0, (8, UNSIGNED): 1, (4, SIGNED): 2, (4, UNSIGNED): 3}
_MAPS: dict[tuple[int, str], np.ndarray] = {}  # read from _core on first use (importing needs no build)
MIN_BLOCK, MAX_BLOCK = 32, 512  # csrc/cpu/quantize.h: kMinQuantBlock, kMaxQuantBlock
DEFAULT_BLOCK = {8: 256, 4: 128}  # bitsandbytes' 8-bit, torchao's 4-bit
DEFAULT_MIN_SIZE = 4096  # bitsandbytes' min_8bit_size: smaller tensors keep float32 state


def quantized_names(kernel_name: str) -> dict[str, str]:
    return QUANTIZED_STATES.get(kernel_name, {})


def state_sign(kernel: Any, state: str, mode: int) -> Optional[str]:
    """The map's sign of a state created quantized in this mode, None for a float32 state."""
    flag = FLOAT32_WHEN.get((kernel.name, state))
    if flag is not None and mode & kernel.flag_bits[flag]:
        return None
    return quantized_names(kernel.name).get(state)


def map_of(bits: int, sign: str) -> np.ndarray:
    """The map's values (a copy: each state dict holds its own)."""
    if not _MAPS:
        from . import _core
        _MAPS.update({key: _core.quant_map(i) for key, i in _MAP_IDS.items()})
    return _MAPS[bits, sign].copy()


def check_block(block_size: Any, what: str = "block_size") -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) \
            or not MIN_BLOCK <= block_size <= MAX_BLOCK or block_size & (block_size - 1):
        raise ValueError(f"Invalid {what}: {block_size!r} (expected a power of two in [{MIN_BLOCK}, {MAX_BLOCK}])")
    return int(block_size)


@dataclass(frozen=True)
class Quantization:
    """``state_dtype="int8"`` or ``"int4"``: ``bits``, the ``block_size`` (elements per absmax)
    and ``min_8bit_size`` (a param with fewer elements keeps float32 state)."""

    bits: int
    block_size: int
    min_8bit_size: int
    stochastic: bool = False  # stochastic_codes: codes drawn between the two entries around a value

    @classmethod
    def make(cls, bits: int, block_size: Any = None, min_8bit_size: Any = DEFAULT_MIN_SIZE,
             stochastic_codes: Any = False) -> "Quantization":
        block = DEFAULT_BLOCK[bits] if block_size is None else check_block(block_size)
        if isinstance(min_8bit_size, bool) or not isinstance(min_8bit_size, (int, np.integer)) or min_8bit_size < 0:
            raise ValueError(f"Invalid min_8bit_size: {min_8bit_size!r} (expected an int >= 0)")
        if not isinstance(stochastic_codes, (bool, np.bool_)):
            raise ValueError(f"Invalid stochastic_codes: {stochastic_codes!r} (expected True or False)")
        return cls(bits, block, int(min_8bit_size), bool(stochastic_codes))

    @property
    def name(self) -> str:
        return f"int{self.bits}"

    def sign(self, kernel: Any, state: str, numel: int, mode: int) -> Optional[str]:
        """The map's sign of a state kept quantized, None for a float32 state."""
        return None if numel < self.min_8bit_size else state_sign(kernel, state, mode)

    def map_id(self, sign: str) -> int:
        return _MAP_IDS[self.bits, sign]

    def entries(self, name: str, values: np.ndarray, sign: str) -> dict[str, np.ndarray]:
        """The state dict entries of a state of these float32 values, quantized."""
        from . import _core
        codes, scales = _core.quantize(np.ascontiguousarray(values, np.float32).reshape(-1), self.map_id(sign),
                                       self.block_size)
        return {name: codes, name + SCALES: scales, name + QMAP: map_of(self.bits, sign)}

    def item(self, name: str, state: dict[str, Any], sign: str) -> tuple:
        """What the compiled step takes for a quantized state: (codes, scales, map, block)."""
        return (state[name], state[name + SCALES], self.map_id(sign), self.block_size)


def saved_map(kernel_name: str, name: str, qmap: Any, what: str) -> tuple[int, str]:
    """(bits, sign) of a checkpoint's map for a state: it must be this state's map in 8 or 4 bits."""
    sign = quantized_names(kernel_name).get(name)
    qmap = np.asarray(qmap)
    for bits in (8, 4):
        if sign is not None and qmap.shape == map_of(bits, sign).shape and np.array_equal(
                qmap.astype(np.float32), map_of(bits, sign)):
            return bits, sign
    raise ValueError(f"{what}: its quantization map ({qmap.shape[0] if qmap.ndim == 1 else qmap.shape} values) is "
                     f"not pyoptk's {'map' if sign is None else sign + ' 8- or 4-bit map'} for this state")


def dequantized(kernel_name: str, name: str, saved: dict[str, Any], numel: int, block: int, what: str) -> np.ndarray:
    """The float32 values of a checkpoint's quantized state (codes, absmax, qmap)."""
    bits, sign = saved_map(kernel_name, name, saved[name + QMAP], what)
    codes = np.asarray(saved[name]).reshape(-1)
    scales = np.asarray(saved[name + SCALES]).reshape(-1)
    if codes.dtype != np.uint8:
        raise ValueError(f"{what}: codes must be uint8, got {codes.dtype}")
    want_codes, want_blocks = (numel if bits == 8 else (numel + 1) // 2), -(-numel // block)
    if codes.size != want_codes or scales.size != want_blocks:
        raise ValueError(f"{what}: {codes.size} codes and {scales.size} block scales; a {bits}-bit state of "
                         f"{numel} elements in blocks of {block} has {want_codes} and {want_blocks}")
    from . import _core
    return _core.dequantize(codes, scales.astype(np.float32), _MAP_IDS[bits, sign], block, numel)
