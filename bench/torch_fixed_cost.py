"""The fixed cost per tensor of ``pyoptk.torch`` steps, reading ``p.grad`` included: 10,000 params
of 1, 8 and 100 elements, one thread. Before every step each param gets a NEW grad tensor (as
``zero_grad(set_to_none=True)`` + backward gives); only ``opt.step()`` is timed. Next to it, in
the same rounds (interleaved, medians of 9 rounds of 5 steps): pyoptk's NumPy API with new grad
arrays each step, torch.optim.Adam(fused=True), and the floor any torch optimizer pays in this
protocol: reading ``[p.grad for p in params]`` alone (torch's own getter, after the same prep).
``--grads backward``: the grads a backward leaves instead (autograd's, with no Python object yet;
the NumPy API has no such row).

    python bench/torch_fixed_cost.py [--count 10000] [--sizes 1 8 100] [--grads assigned|backward]
"""
import argparse
import statistics
import time

import numpy as np
import torch

import pyoptk
import pyoptk.torch


class _Torch:
    """A torch-style optimizer over nn.Parameters; a fresh grad tensor per param per step."""

    def __init__(self, make, size, count):
        self.params = [torch.nn.Parameter(torch.zeros(size)) for _ in range(count)]
        self.pools = [[torch.ones(size) for _ in range(3)] for _ in self.params]  # cycled: new objects
        self.opt = make(self.params)
        self.k = 0
        self.prepare()
        self.opt.step()  # state (and pyoptk's plan) built

    def prepare(self):
        self.opt.zero_grad(set_to_none=True)
        for p, pool in zip(self.params, self.pools):
            p.grad = pool[self.k % 3]
        self.k += 1

    def step(self):
        self.opt.step()


class _GradRead(_Torch):
    """Only what every torch optimizer does first: read each param's new grad."""

    def step(self):
        self.grads = [p.grad for p in self.params]


class _Backward(_Torch):
    """As a training step leaves them: grads made by autograd (one backward through every param),
    which have no Python object until something reads ``p.grad``."""

    def prepare(self):
        self.opt.zero_grad(set_to_none=True)
        torch.cat([p.view(-1) for p in self.params]).sum().backward()


class _BackwardGradRead(_Backward, _GradRead):
    pass


class _NumPy:
    """pyoptk's NumPy API, a fresh list of grad arrays (cycled) each step."""

    def __init__(self, size, count):
        self.opt = pyoptk.Adam([np.zeros(size, np.float32) for _ in range(count)])
        self.pools = [[np.ones(size, np.float32) for _ in range(count)] for _ in range(3)]
        self.k = 0
        self.opt.step(self.pools[0])

    def prepare(self):
        self.grads = self.pools[self.k % 3]
        self.k += 1

    def step(self):
        self.opt.step(self.grads)


ASSIGNED = {
    "pyoptk.torch.Adam": lambda size, n: _Torch(lambda ps: pyoptk.torch.Adam(ps), size, n),
    "pyoptk.Adam (NumPy API)": lambda size, n: _NumPy(size, n),
    "torch.optim.Adam(fused=True)": lambda size, n: _Torch(lambda ps: torch.optim.Adam(ps, fused=True), size, n),
    "[p.grad for p in params] alone": lambda size, n: _GradRead(lambda ps: pyoptk.torch.Adam(ps), size, n),
}
BACKWARD = {
    "pyoptk.torch.Adam": lambda size, n: _Backward(lambda ps: pyoptk.torch.Adam(ps), size, n),
    "torch.optim.Adam(fused=True)": lambda size, n: _Backward(lambda ps: torch.optim.Adam(ps, fused=True), size, n),
    "[p.grad for p in params] alone": lambda size, n: _BackwardGradRead(lambda ps: pyoptk.torch.Adam(ps), size, n),
}


def main(count=10_000, rounds=9, steps=5, sizes=(1, 8, 100), grads="assigned"):
    torch.set_num_threads(1)
    pyoptk.set_num_threads(1)
    IMPLS = ASSIGNED if grads == "assigned" else BACKWARD
    print(f"grads: {grads}")
    table = {name: [] for name in IMPLS}
    best = {name: [] for name in IMPLS}  # the best round: the machine's noise only ever adds
    for size in sizes:
        runs = {name: make(size, count) for name, make in IMPLS.items()}
        times = {name: [] for name in IMPLS}
        for _ in range(rounds):
            for name, run in runs.items():  # interleaved
                total = 0.0
                for _ in range(steps):
                    run.prepare()
                    t0 = time.perf_counter()
                    run.step()
                    total += time.perf_counter() - t0
                times[name].append(total / steps)
        for name in IMPLS:
            table[name].append(statistics.median(times[name]) / count * 1e6)
            best[name].append(min(times[name]) / count * 1e6)
    for label, cells_of in (("median", table), ("best round", best)):
        print(f"| µs per tensor ({label}), {count} tensors of | " + " | ".join(map(str, sizes)) + " |")
        print("|---" * (len(sizes) + 1) + "|")
        for name, cells in cells_of.items():
            print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
        if "pyoptk.Adam (NumPy API)" in cells_of:
            ours, numpy_api = cells_of["pyoptk.torch.Adam"], cells_of["pyoptk.Adam (NumPy API)"]
            print("| adapter's own cost (pyoptk.torch - NumPy API) | " +
                  " | ".join(f"{a - b:.3f}" for a, b in zip(ours, numpy_api)) + " |")
        print()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 100])
    ap.add_argument("--grads", choices=["assigned", "backward"], default="assigned",
                    help="new grad tensors assigned to p.grad before each step, or left by a backward")
    args = ap.parse_args()
    main(count=args.count, rounds=args.rounds, sizes=tuple(args.sizes), grads=args.grads)
