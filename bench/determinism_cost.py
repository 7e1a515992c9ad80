"""What the thread-count-independent bits of Muon and Adafactor cost (issue #10), interleaved in
one process, medians of 7 rounds:

* Muon: Newton–Schulz on one BLAS thread (pyoptk/_blas.py) against BLAS's own thread count.
* Adafactor: its RMS norms through pyoptk's fixed-order reduction against np.dot (BLAS).

    python bench/determinism_cost.py
"""
import contextlib
import statistics
import time

import numpy as np

import pyoptk
from pyoptk.optim import adafactor as adafactor_module
from pyoptk.optim import muon as muon_module


def _median_step(opt, grads, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        opt.step(grads)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _compare(label, make, grads, swap_in, swap_out, rounds=7, reps=3):
    pinned, free = [], []
    opt = make()
    opt.step(grads)
    for _ in range(rounds):
        swap_in()
        pinned.append(_median_step(opt, grads, reps))
        swap_out()
        free.append(_median_step(opt, grads, reps))
    swap_in()
    a, b = statistics.median(pinned), statistics.median(free)
    print(f"| {label} | {b * 1e3:.2f} | {a * 1e3:.2f} | {a / b:.2f} |", flush=True)


def main():
    pinned_ctx = muon_module.one_blas_thread
    free_ctx = contextlib.nullcontext
    print("| step | BLAS's threads / np.dot (ms) | pinned / own reduction (ms) | ratio |")
    print("|---|---|---|---|")
    for n in (256, 1024):
        p = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        g = [np.ones_like(p)]
        _compare(f"Muon {n}x{n} float32", lambda: pyoptk.Muon([p]), g,
                 lambda: setattr(muon_module, "one_blas_thread", pinned_ctx),
                 lambda: setattr(muon_module, "one_blas_thread", free_ctx))
    ours = adafactor_module._norm

    def blas_norm(a):
        flat = a.reshape(-1)
        return float(np.sqrt(np.dot(flat, flat)))

    for n in (10_000, 1_000_000):
        p = np.zeros(n, np.float64)
        g = [np.full(n, 0.5)]
        _compare(f"Adafactor {n} float64", lambda: pyoptk.Adafactor([p]), g,
                 lambda: setattr(adafactor_module, "_norm", ours),
                 lambda: setattr(adafactor_module, "_norm", blas_norm))


if __name__ == "__main__":
    main()
