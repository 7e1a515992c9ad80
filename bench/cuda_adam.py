"""GPU: pyoptk's fused Adam step against torch.optim.Adam(fused=True) on the same GPU, one process.

Layouts: one 10M and one 100M float32 array, and a many-tensor list (1000 arrays of 1K-64K
elements). Reports the median step time of several repeats, GB/s moved (param r/w, grad r,
exp_avg r/w, exp_avg_sq r/w = 28 bytes per float32 element), the ratio to torch, and the share
of the measured device-to-device copy bandwidth (the roofline of a streaming step).

    python bench/cuda_adam.py [--steps 50] [--repeats 7] [--json out.json]

Needs a GPU, pyoptk built with its CUDA kernels and, for the peer and the timing, torch with CUDA.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

import numpy as np

import pyoptk
from pyoptk import cuda

BYTES_PER_ELEMENT = 28  # float32 Adam: p read+write, g read, m read+write, v read+write


def layouts(rng):
    many = [int(n) for n in rng.integers(1024, 65536, 1000)]
    return {"1 x 10M": [10_000_000], "1 x 100M": [100_000_000], f"{len(many)} arrays, {sum(many) / 1e6:.1f}M total": many}


def time_steps(torch, step, steps: int, repeats: int) -> float:
    """Median seconds per step, measured with CUDA events around `steps` back-to-back steps."""
    step()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / steps)
    return statistics.median(times)


def copy_bandwidth(torch, n: int = 200_000_000) -> float:
    """Device-to-device copy GB/s (read + write): the streaming roofline."""
    a = torch.empty(n, device="cuda")
    b = torch.empty_like(a)
    seconds = time_steps(torch, lambda: b.copy_(a), 20, 7)
    return 2 * a.numel() * 4 / seconds / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if not cuda.is_available():
        print(f"no GPU: {cuda.unavailable_reason()}; nothing measured")
        return 1
    try:
        import torch
        if not torch.cuda.is_available():
            raise ImportError("torch has no CUDA")
    except ImportError as e:
        print(f"torch with CUDA is needed for the peer and the timing ({e}); nothing measured")
        return 1
    gpu = torch.cuda.get_device_name()
    roof = copy_bandwidth(torch)
    print(f"{gpu}; device-to-device copy {roof:.0f} GB/s; {args.steps} steps x {args.repeats} repeats, medians")
    rng = np.random.default_rng(0)
    rows = []
    for name, sizes in layouts(rng).items():
        elements = sum(sizes)
        params = [torch.randn(n, device="cuda") for n in sizes]
        grads = [torch.randn(n, device="cuda") * 1e-2 for n in sizes]
        # torch: its own copy of the params, grads attached.
        theirs = [p.clone().requires_grad_(True) for p in params]
        for p, g in zip(theirs, grads):
            p.grad = g
        ref = torch.optim.Adam(theirs, lr=1e-3, fused=True)
        # pyoptk: the same memory through DLPack (detached views), grads passed per step.
        mine = [p.clone() for p in params]
        opt = pyoptk.Adam(mine, lr=1e-3)
        t_torch = time_steps(torch, ref.step, args.steps, args.repeats)
        t_mine = time_steps(torch, lambda: opt.step(grads), args.steps, args.repeats)
        row = {"layout": name, "elements": elements, "arrays": len(sizes),
               "pyoptk_ms": t_mine * 1e3, "torch_fused_ms": t_torch * 1e3,
               "pyoptk_GBps": elements * BYTES_PER_ELEMENT / t_mine / 1e9,
               "torch_fused_GBps": elements * BYTES_PER_ELEMENT / t_torch / 1e9}
        row["speedup_vs_torch"] = t_torch / t_mine
        row["pyoptk_roofline_pct"] = 100 * row["pyoptk_GBps"] / roof
        rows.append(row)
        print(f"{name:>28}: pyoptk {row['pyoptk_ms']:.3f} ms ({row['pyoptk_GBps']:.0f} GB/s, "
              f"{row['pyoptk_roofline_pct']:.0f}% of copy), torch fused {row['torch_fused_ms']:.3f} ms "
              f"({row['torch_fused_GBps']:.0f} GB/s); {row['speedup_vs_torch']:.2f}x")
        del params, grads, theirs, mine, ref, opt
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": gpu, "copy_GBps": roof, "steps": args.steps, "repeats": args.repeats, "rows": rows}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
