"""Where a second thread starts to pay: one Adam and one plain-SGD step, 1 vs 2 threads, with the
parallel threshold lowered to 0 so every size is split. Medians of 41 steps.

    python bench/threads.py            (compare with OMP_WAIT_POLICY=PASSIVE python bench/threads.py)
"""
import statistics
import time

import numpy as np

import pyoptk
from pyoptk import _core


def median_step(fn, reps=41):
    fn()
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    _core._set_min_parallel(0)
    print("| elements | Adam 1T µs | Adam 2T µs | 2T speedup | SGD 1T µs | SGD 2T µs | 2T speedup |")
    print("|---|---|---|---|---|---|---|")
    for n in (4096, 16384, 32768, 65536, 131072, 262144, 1048576):
        rng = np.random.default_rng(0)
        grad = rng.random(n, dtype=np.float32)
        opts = [pyoptk.Adam([rng.random(n, dtype=np.float32)]), pyoptk.SGD([rng.random(n, dtype=np.float32)], lr=0.1)]
        cells = []
        for opt in opts:
            t = []
            for threads in (1, 2):
                pyoptk.set_num_threads(threads)
                t.append(median_step(lambda: opt.step([grad])))
            cells += [f"{t[0] * 1e6:.1f}", f"{t[1] * 1e6:.1f}", f"{t[0] / t[1]:.2f}x"]
        print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
