"""Mixed precision settings of an optimizer: which dtype its state arrays take, whether 16-bit
params keep a float32 master copy, and how 16-bit arrays are rounded.

The kernels compute in float32 (float64 for float64 params) whatever the storage dtypes; the
compiled staging layer widens and rounds the 16-bit arrays (see README, "Mixed precision").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import ml_dtypes
import numpy as np

from ._quant import DEFAULT_MIN_SIZE, Quantization

__all__ = ["BFLOAT16", "LOW_PRECISION", "Precision", "is_low_precision", "scalar_arg"]

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
FLOAT16 = np.dtype(np.float16)
LOW_PRECISION = (BFLOAT16, FLOAT16)
PARAM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), BFLOAT16, FLOAT16)
_STATE_DTYPES = {None: None, "float32": np.dtype(np.float32), "bfloat16": BFLOAT16}
_QUANTIZED = {"int8": 8, "int4": 4}  # block-quantized state (_quant.py): float32 arithmetic
MASTER_KEY = "master_param"  # torch-style name of the float32 copy of a 16-bit param
CODE_STREAM = 0xC0DE5C0DE5  # stochastic codes' keys: the step's key XOR this, a stream apart from rounding's


def is_low_precision(dtype: Any) -> bool:
    return np.dtype(dtype) in LOW_PRECISION


def _state_dtype(value: Any) -> Optional[np.dtype]:
    if value is None:
        return None
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or dtype.name not in _STATE_DTYPES:
        raise ValueError(f"Invalid state_dtype: {value!r} (expected None, float32, bfloat16, int8 or int4)")
    return dtype


@dataclass(frozen=True)
class Precision:
    """``state_dtype``: None = the param's dtype (torch's rule), or float32 / bfloat16 for the
    states of float32 and 16-bit params. ``master_weights``: 16-bit params keep a float32 copy in
    the state (``master_param``) that the step updates; the param is its rounded value, written in
    the same pass. ``stochastic_rounding``: bfloat16 and float16 arrays the step writes (params,
    states) are rounded stochastically, from a counter-based generator keyed by (seed, step,
    param, element). ``state_dtype="int8"`` / ``"int4"``: the moment-like states block-quantized
    (``quant``, _quant.py; the others float32), with ``block_size`` and ``min_8bit_size``.
    """

    state_dtype: Optional[np.dtype] = None
    master_weights: bool = False
    stochastic_rounding: bool = False
    seed: int = 0
    quant: Optional[Quantization] = None

    @classmethod
    def make(cls, state_dtype: Any = None, master_weights: bool = False, stochastic_rounding: bool = False,
             seed: int = 0, block_size: Any = None, min_8bit_size: Any = DEFAULT_MIN_SIZE,
             stochastic_codes: Any = False) -> "Precision":
        for name, value in (("master_weights", master_weights), ("stochastic_rounding", stochastic_rounding)):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"Invalid {name}: {value!r} (expected True or False)")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 64:
            raise ValueError(f"Invalid seed: {seed!r} (expected an int in [0, 2**64))")
        quant = None
        if isinstance(state_dtype, str) and state_dtype in _QUANTIZED:
            quant = Quantization.make(_QUANTIZED[state_dtype], block_size, min_8bit_size, stochastic_codes)
            state_dtype = "float32"  # what the unquantized states (and the quantizer's input) are
        elif block_size is not None or min_8bit_size != DEFAULT_MIN_SIZE or stochastic_codes is not False:
            raise ValueError("block_size, min_8bit_size and stochastic_codes apply to state_dtype='int8' or 'int4'")
        return cls(_state_dtype(state_dtype), bool(master_weights), bool(stochastic_rounding), int(seed), quant)

    @property
    def state_dtype_name(self) -> Optional[str]:
        if self.quant is not None:
            return self.quant.name
        return None if self.state_dtype is None else self.state_dtype.name

    @property
    def default(self) -> bool:
        return self == Precision()

    def check_param(self, p_dtype: np.dtype, where: str) -> None:
        """Refuse a param these settings cannot step (called when a group is added)."""
        if p_dtype == np.float64 and self.state_dtype is not None:
            raise ValueError(f"{where} is float64: state_dtype={self.state_dtype_name} applies to float32, "
                             "bfloat16 and float16 params")

    def state_dtype_for(self, p_dtype: np.dtype) -> np.dtype:
        return np.dtype(p_dtype) if self.state_dtype is None else self.state_dtype

    def keeps_master(self, p_dtype: np.dtype) -> bool:
        return self.master_weights and is_low_precision(p_dtype)

    @property
    def draws(self) -> bool:
        """Some rounding is stochastic: the rounding-step counter moves on with each step."""
        return self.stochastic_rounding or (self.quant is not None and self.quant.stochastic)

    def code_key(self, rounding_step: int) -> Optional[int]:
        """The key of a step's stochastic codes (None: nearest), a stream apart from rounding_key's."""
        if self.quant is None or not self.quant.stochastic:
            return None
        return self.step_key(rounding_step) ^ CODE_STREAM

    def rounding_key(self, rounding_step: int) -> Optional[int]:
        """The stochastic-rounding key of a step (None: round to nearest even)."""
        if not self.stochastic_rounding:
            return None
        return self.step_key(rounding_step)

    def step_key(self, rounding_step: int) -> int:
        """The key a step draws from (seed, rounding step): consecutive steps, consecutive keys."""
        return (self.seed * 0x9E3779B97F4A7C15 + rounding_step) % 2 ** 64

    def to_dict(self, rounding_step: int) -> dict[str, Any]:
        out = {"state_dtype": self.state_dtype_name,
               "master_weights": self.master_weights, "stochastic_rounding": self.stochastic_rounding,
               "seed": self.seed, "rounding_step": rounding_step}
        if self.quant is not None:
            out.update(block_size=self.quant.block_size, min_8bit_size=self.quant.min_8bit_size,
                       stochastic_codes=self.quant.stochastic)
        return out


def cast_state(value: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    """A loaded state array in this optimizer's state dtype (a copy), as torch casts state to its
    param's dtype on load; refuses finite values the dtype cannot hold (they would become inf)."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected below, with a clear message
        out = np.array(value, dtype=dtype, order="C", copy=True)
    if out.dtype != value.dtype and out.size:
        lost = np.isfinite(value.astype(np.float64)) & ~np.isfinite(out.astype(np.float64))
        if lost.any():
            raise ValueError(f"{what} holds {float(value.reshape(-1)[np.argmax(lost.reshape(-1))])!r}, "
                             f"which {dtype.name} cannot represent (it would become inf)")
    return out


def scalar_arg(value: Any, name: str) -> float:
    """A 0-d array / tensor / number (torch's grad_scale and found_inf are 0-d float32 tensors)."""
    try:
        a = np.asarray(value)
    except Exception:  # e.g. a tensor NumPy cannot view: fall back to its __float__
        a = np.asarray(float(value))
    if a.size != 1 or not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a 0-d real array or a number, got {value!r}")
    return float(a.reshape(()))
