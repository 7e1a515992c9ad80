"""Where a ``pyoptk.torch`` step's fixed cost per tensor goes, in steady state: the same grads
every step (caches warm), each part timed alone and interleaved, the best of many batches (the
machine's noise only ever adds). One thread. ``--cold``: each part timed once after a sweep of
64 MiB (more than the last-level cache), as a step meets its objects after a forward and backward
(or another optimizer's step), the median of the batches.

- ``opt.step()``: all of it.
- ``TorchGrads``: reading every param's grad and checking every param's memory (C++).
- ``core.step(TorchGrads)``: the NumPy optimizer's step on those grads (the plan, the kernel).
- ``core.step(NumPy grads)``: the same step on NumPy views of the same grads: the NumPy API's floor.
- ``torch's step() wrapper``: torch.optim.Optimizer's own wrapper (profiler scope, hooks) around
  an empty step.
- ``stream probe``: bench/torch_models.py's roofline probe over NumPy copies of the params (its
  own per-tensor cost is in the roofline).

    python bench/torch_step_breakdown.py [--count 400] [--size 1] [--batches 100] [--cold]
"""
import argparse
import statistics
import time

import numpy as np
import torch

import pyoptk
import pyoptk.bench
import pyoptk.torch
from pyoptk import _core


class _Empty(torch.optim.Optimizer):
    def step(self, closure=None):
        return None


def main(count=400, size=1, batches=100, reps=10, cold=False):
    torch.set_num_threads(1)
    pyoptk.set_num_threads(1)
    params = [torch.nn.Parameter(torch.zeros(size)) for _ in range(count)]
    for p in params:
        p.grad = torch.ones(size)
    opt = pyoptk.torch.Adam(params)
    opt.step()
    opt.step()  # the plan made and kept
    core = opt._core
    grads = opt._grads()
    numpy_grads = [p.grad.numpy() for p in params]
    empty = _Empty(params, {})
    parts = {
        "opt.step()": opt.step,
        "TorchGrads (read grads, check params)": lambda: _core.TorchGrads(opt.param_groups, core.param_groups),
        "core.step(TorchGrads)": lambda: core.step(grads),
        "core.step(NumPy grads): the NumPy API": lambda: core.step(numpy_grads),
        "torch's step() wrapper, empty step": empty.step,
        "stream probe (the roofline's), NumPy copies": pyoptk.bench._stream(
            2, [p.detach().numpy().copy() for p in params], [g.copy() for g in numpy_grads]),
    }
    sweep = np.zeros(64 << 20 if cold else 0, np.uint8)
    reps = 1 if cold else reps
    times = {name: [] for name in parts}
    for _ in range(batches):
        for name, run in parts.items():
            sweep[::64] += 1
            t0 = time.perf_counter()
            for _ in range(reps):
                run()
            times[name].append((time.perf_counter() - t0) / reps / count * 1e6)
    pick, how = (statistics.median, "median") if cold else (min, "best")
    print(f"| µs per tensor ({how} of {batches} batches{', cold' if cold else ''}), {count} tensors of {size} | |")
    print("|---|---|")
    for name, value in times.items():
        print(f"| {name} | {pick(value):.3f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--size", type=int, default=1)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--cold", action="store_true", help="time each part once after a sweep of 64 MiB")
    args = ap.parse_args()
    main(count=args.count, size=args.size, batches=args.batches, cold=args.cold)
