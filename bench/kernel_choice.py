"""Which ISA and which kernel each storage layout steps with on this CPU, and why.

The ISA is the highest row of the ISA table (cmake/isa_table.cmake) whose CPU features this CPU
has (PYOPTK_ISA or pyoptk.set_isa lowers it); within it, each layout of (param, grad, state,
master weights) storage kinds runs "direct" (all float32/float64), "fused" (16-bit arrays
converted in registers by the layout's own kernel) or "staged" (converted a block at a time
through a float32 scratch in L1), as the step engine chose it for the step just run
(Optimizer.kernel_paths()). Whichever is picked, the bits are the same.

    python bench/kernel_choice.py [--algorithm Adam] [--isa avx2]
"""
from __future__ import annotations

import argparse
import platform

import ml_dtypes
import numpy as np

import pyoptk
from pyoptk import _core

BF16, F16 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

# name, param dtype, grad dtype, precision options
LAYOUTS = [
    ("float32", F32, F32, {}),
    ("float64", F64, F64, {}),
    ("all-bfloat16", BF16, BF16, {}),
    ("bfloat16 params and grads, float32 state", BF16, BF16, {"state_dtype": "float32"}),
    ("bfloat16 params, float32 grads and state", BF16, F32, {"state_dtype": "float32"}),
    ("all-float16", F16, F16, {}),
    ("float16 params and grads, float32 state", F16, F16, {"state_dtype": "float32"}),
    ("float32 params, bfloat16 state", F32, F32, {"state_dtype": "bfloat16"}),
    ("bfloat16 + float32 master weights and state", BF16, BF16, {"master_weights": True, "state_dtype": "float32"}),
    ("float16 + float32 master weights and state", F16, F16, {"master_weights": True, "state_dtype": "float32"}),
    ("bfloat16 + float32 master weights, bfloat16 state", BF16, BF16, {"master_weights": True}),
    ("all-bfloat16, stochastic rounding", BF16, BF16, {"stochastic_rounding": True}),
    ("float32 params, int8 state", F32, F32, {"state_dtype": "int8"}),
    ("bfloat16 params, int8 state", BF16, BF16, {"state_dtype": "int8"}),
    ("float32 params, int4 state", F32, F32, {"state_dtype": "int4"}),
]


def isa_table() -> list[str]:
    active = pyoptk.isa()
    lines = []
    for name, features, available in _core._isa_rows():
        need = features or "nothing (every CPU)"
        mark = "  <- active" if name == active else ""
        lines.append(f"  {name:12s} {'yes' if available else 'no ':3s}  needs {need}{mark}")
    return lines


def kernel_of(algorithm: str, param: np.dtype, grad: np.dtype, precision: dict) -> tuple[str, str]:
    n = 8192  # above min_8bit_size's 4096: quantized states are quantized
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(param)
    g = rng.standard_normal(n).astype(grad)
    opt = getattr(pyoptk, algorithm)([p], lr=1e-3, **precision)
    opt.step([g])
    paths = opt.kernel_paths()
    if not paths:
        return "-", "not one planned pass"
    _, path, why = paths[0]
    return path, why


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", default="Adam", help="an element-wise algorithm of pyoptk (default Adam)")
    parser.add_argument("--isa", default=None, help="lower the ISA first (as PYOPTK_ISA does)")
    args = parser.parse_args()
    if args.isa:
        pyoptk.set_isa(args.isa)
    print(f"CPU: {platform.processor() or platform.machine()}; best ISA: {_core.best_isa()}; "
          f"running on: {pyoptk.isa()}")
    print("ISA table (lowest first; the highest this CPU has runs):")
    print("\n".join(isa_table()))
    print(f"\n{args.algorithm}, one step per layout:")
    width = max(len(name) for name, *_ in LAYOUTS)
    for name, param, grad, precision in LAYOUTS:
        path, why = kernel_of(args.algorithm, param, grad, precision)
        print(f"  {name:{width}s}  {path:7s} {why}")


if __name__ == "__main__":
    main()
