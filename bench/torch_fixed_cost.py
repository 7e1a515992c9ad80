"""The fixed cost per tensor of ``pyoptk.torch`` steps, reading ``p.grad`` included: 10,000 params
of 1, 8 and 100 elements, one thread. Before every step each param gets a NEW grad tensor (as
``zero_grad(set_to_none=True)`` + backward gives); only ``opt.step()`` is timed. Best of 9
rounds of 5 steps; next to the same figure for pyoptk's NumPy API and torch.optim (fused).

    python bench/torch_fixed_cost.py
"""
import time

import numpy as np
import torch

import pyoptk
import pyoptk.torch


def _time_step(opt, params, pools, steps=5, rounds=9):
    """Best per-step time; before each step every param gets the next of its fresh grad tensors."""
    best = float("inf")
    k = 0
    for _ in range(rounds):
        total = 0.0
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            for p, pool in zip(params, pools):
                p.grad = pool[k % len(pool)]
            k += 1
            t0 = time.perf_counter()
            opt.step()
            total += time.perf_counter() - t0
        best = min(best, total / steps)
    return best


def main(count=10_000):
    torch.set_num_threads(1)
    pyoptk.set_num_threads(1)
    print(f"| optimizer | µs per tensor, {count} tensors of 1 | of 8 | of 100 |")
    print("|---|---|---|---|")
    for label, make in [("pyoptk.torch.Adam", lambda ps: pyoptk.torch.Adam(ps)),
                        ("pyoptk.torch.SGD", lambda ps: pyoptk.torch.SGD(ps, lr=0.01)),
                        ("torch.optim.Adam(fused=True)", lambda ps: torch.optim.Adam(ps, fused=True))]:
        cells = []
        for size in (1, 8, 100):
            params = [torch.nn.Parameter(torch.zeros(size)) for _ in range(count)]
            # 3 distinct grad tensors per param, cycled: a new tensor object every step.
            pools = [[torch.ones(size) for _ in range(3)] for _ in params]
            opt = make(params)
            for p in params:
                p.grad = torch.ones(size)
            opt.step()  # the first step builds state (and pyoptk's plan)
            cells.append(f"{_time_step(opt, params, pools) / count * 1e6:.3f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    # The NumPy API with the same sizes, for reference (bench/fixed_cost.py measures more).
    cells = []
    for size in (1, 8, 100):
        arrays = [np.zeros(size, np.float32) for _ in range(count)]
        grads = [np.ones(size, np.float32) for _ in range(count)]
        opt = pyoptk.Adam(arrays)
        opt.step(grads)
        best = min(_best_numpy(opt, grads) for _ in range(9))
        cells.append(f"{best / count * 1e6:.3f}")
    print("| pyoptk.Adam (NumPy, same grads every step) | " + " | ".join(cells) + " |")


def _best_numpy(opt, grads, steps=5):
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step(grads)
    return (time.perf_counter() - t0) / steps


if __name__ == "__main__":
    main()
