"""What subnormal numbers cost a step: AdamW on one float32 array (832k elements: the size of
bench/torch_models.py's 200 x Linear(64, 64)), with ordinary grads, with a fraction of subnormal
grads, with grads whose squares underflow (~1e-20), and with subnormal state; pyoptk in its
default (IEEE) mode and with pyoptk.set_flush_denormal(True), torch fused with and without
torch.set_flush_denormal(True) when torch is installed. Interleaved round by round, medians. With
torch, one more scenario: the grads of that model after one backward (bench/torch_models.py's
inputs and seed), whose subnormals cluster by layer and whose squares fall below the normal range.

    python bench/subnormal.py [--fraction 0.13] [--size 832000] [--threads 1] [--rounds 9]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import pyoptk

try:
    import torch
except ImportError:
    torch = None
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_models import grads_of_one_backward, models as torch_models  # noqa: E402


def scenarios(n: int, fraction: float, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, float]]:
    """name -> (grad, starting value of the state); the state starts subnormal in the last."""
    ordinary = rng.standard_normal(n).astype(np.float32) * 1e-3
    hit = rng.random(n) < fraction
    subnormal = np.where(hit, rng.standard_normal(n) * 1e-40, ordinary).astype(np.float32)
    underflow = np.where(hit, rng.standard_normal(n) * 1e-20, ordinary).astype(np.float32)
    out = {"ordinary": (ordinary, 0.0), f"{fraction:.0%} subnormal grads": (subnormal, 0.0),
           f"{fraction:.0%} grads ~1e-20": (underflow, 0.0), "subnormal state": (ordinary * 0, 1e-39)}
    if torch is not None:
        _, make_model, make_input = torch_models()[0]  # 200 x Linear(64, 64)
        out["200 x Linear(64, 64)'s grads"] = (np.resize(grads_of_one_backward(make_model, make_input).numpy(), n), 0.0)
    return out


def pyoptk_step(grad: np.ndarray, state0: float, flush: bool):
    p = np.ones_like(grad)
    opt = pyoptk.AdamW([p], lr=1e-3)
    opt.step([grad])
    for value in opt.state[p].values():
        if isinstance(value, np.ndarray):
            value[...] = state0
    # The calling thread back to IEEE first: torch.set_flush_denormal(True) (the torch rows) sets
    # this thread's FTZ/DAZ, and pyoptk's default mode computes in its caller's mode.
    return lambda: (torch is not None and torch.set_flush_denormal(False), pyoptk.set_flush_denormal(flush),
                    opt.step([grad]))


def torch_step(grad: np.ndarray, state0: float, flush: bool):
    p = torch.nn.Parameter(torch.ones(grad.size))
    p.grad = torch.from_numpy(grad.copy())
    opt = torch.optim.AdamW([p], lr=1e-3, fused=True)
    opt.step()
    for value in opt.state[p].values():
        if value.dim():
            value.fill_(state0)
    return lambda: (torch.set_flush_denormal(flush), opt.step())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fraction", type=float, default=0.13)
    ap.add_argument("--size", type=int, default=832_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=20, help="steps timed per round")
    args = ap.parse_args()
    pyoptk.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    impls = [("pyoptk", pyoptk_step, False), ("pyoptk flush", pyoptk_step, True)]
    if torch is not None:
        impls += [("torch fused", torch_step, False), ("torch fused flush", torch_step, True)]
    print(f"AdamW, {args.size} float32 elements, {args.threads} thread(s), {platform.processor() or platform.machine()},"
          f" ISA {pyoptk.isa()}; ms per step, median of {args.rounds} rounds of {args.steps} steps")
    print("| scenario | " + " | ".join(name for name, _, _ in impls) + " |")
    print("|---" * (len(impls) + 1) + "|")
    for label, (grad, state0) in scenarios(args.size, args.fraction, rng).items():
        steps = [make(grad, state0, flush) for _, make, flush in impls]
        times: list[list[float]] = [[] for _ in impls]
        for _ in range(args.rounds):
            for k, step in enumerate(steps):  # interleaved: drift hits every implementation alike
                step()
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[k].append((time.perf_counter() - t0) / args.steps * 1e3)
        pyoptk.set_flush_denormal(False)
        if torch is not None:
            torch.set_flush_denormal(False)
        print(f"| {label} | " + " | ".join(f"{statistics.median(t):.3f}" for t in times) + " |")


if __name__ == "__main__":
    main()
