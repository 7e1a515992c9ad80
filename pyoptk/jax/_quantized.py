"""Block-quantized state (``state_dtype="int8"`` / ``"int4"``, pyoptk/_quant.py) in a pyoptk.jax
state, laid out as the NumPy API's state dict: a quantized state ``name`` of a leaf is its uint8
codes (flat: one per element in 8 bits, two per byte in 4 bits) in ``states[name]`` and its
float32 per-block scales in ``states[name + "_absmax"]``; a leaf that keeps the state float32
(fewer than ``min_8bit_size`` elements, or a state the algorithm never quantizes) has the float32
array in ``states[name]`` and None for its scales. The step passes codes and scales to the
engine's quantized path (the handler's ``quant`` attribute says which map each one is in), both
aliased in place: no quantizer here."""
from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp
import numpy as np

from .. import _core
from .._quant import SCALES, Quantization, map_of, state_sign

__all__ = ["SCALES", "QuantLayout"]


class QuantLayout:
    """Which states of which leaves are quantized, and in which map (the NumPy API's rule)."""

    def __init__(self, quant: Optional[Quantization], kernel: Any, mode: int, state_names: list[str]):
        self.quant = quant
        # The states quantized in a large enough leaf, and their map's sign: each keeps a scales entry.
        self.signs = {n: state_sign(kernel, n, mode) for n in state_names} if quant is not None else {}
        self.signs = {n: sign for n, sign in self.signs.items() if sign is not None}
        self.names = list(self.signs)
        self.block = quant.block_size if quant is not None else 0

    def sign(self, name: str, numel: int) -> Optional[str]:
        """The map's sign of state ``name`` of a leaf of ``numel`` elements; None: float32."""
        sign = self.signs.get(name)
        return sign if sign is not None and numel >= self.quant.min_8bit_size else None

    def qmap(self, name: str) -> np.ndarray:
        """The map of a quantized state, as the NumPy API's state dict holds it."""
        return map_of(self.quant.bits, self.signs[name])

    def map_id(self, name: str, numel: int) -> int:
        sign = self.sign(name, numel)
        return -1 if sign is None else self.quant.map_id(sign)

    def initial(self, name: str, numel: int, value: float) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The codes and scales of a state of ``numel`` elements, all ``value``: every block
        quantizes alike, so one quantized pair (and an odd 4-bit tail's lone element) says them
        all, as jnp constants (init may run under jit, where the quantizer cannot)."""
        quant, map_id = self.quant, self.quant.map_id(self.sign(name, numel))
        pair, scales = _core.quantize(np.full(2, value, np.float32), map_id, quant.block_size)
        nbytes = numel if quant.bits == 8 else (numel + 1) // 2
        codes = jnp.full([nbytes], pair[0], jnp.uint8)
        if quant.bits == 4 and numel % 2:
            tail, _ = _core.quantize(np.full(1, value, np.float32), map_id, quant.block_size)
            codes = codes.at[-1].set(tail[0])
        return codes, jnp.full([-(-numel // quant.block_size)], scales[0], jnp.float32)
