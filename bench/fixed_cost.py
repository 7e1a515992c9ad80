"""The fixed cost of a step per array: 10,000 arrays of 1, 8 and 100 elements, one thread, the
best of 9 rounds of 5 steps (with 1 or 8 elements there is next to no data to move, so the time
is the per-array bookkeeping: grad checks in C++, the state update, the kernel call).

    python bench/fixed_cost.py
"""
import timeit

import numpy as np

import pyoptk

CASES = [("SGD", {}), ("SGD", dict(momentum=0.9)), ("Adam", {}), ("NAdam", {}), ("RMSprop", {})]


def main(count=10_000):
    pyoptk.set_num_threads(1)
    print(f"| optimizer | µs per array, {count} arrays of 1 | of 8 | of 100 |")
    print("|---|---|---|---|")
    for name, hyper in CASES:
        cells = []
        for size in (1, 8, 100):
            params = [np.zeros(size, np.float32) for _ in range(count)]
            grads = [np.ones(size, np.float32) for _ in range(count)]
            opt = getattr(pyoptk, name)(params, **hyper)
            opt.step(grads)  # the first step builds state and the plan
            best = min(timeit.repeat(lambda: opt.step(grads), number=5, repeat=9)) / 5
            cells.append(f"{best / count * 1e6:.3f}")
        label = name + "".join(f" {k}={v}" for k, v in hyper.items())
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
