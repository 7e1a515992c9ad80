"""The fixed cost of a step: Adam over 1, 4, 100 and 10,000 float32 arrays of 8 elements (next to
no data to move), on one thread, through the class API (its one step path: a kept plan, the
coefficients computed in C++ from the groups), the nested functional API (pyoptk.functional.update) and the C API
(tests/capi/capi_test.cpp, built here with CMake: coefficients + one step_spans call per step).
Rounds interleaved in one process, medians.

    python bench/step_overhead.py [--rounds 7]
"""
import argparse
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np

import pyoptk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from embed_build import build_capi_program, python_env  # noqa: E402

COUNTS = (1, 4, 100, 10_000)


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main(rounds=7):
    pyoptk.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        program = build_capi_program(Path(tmp))
        rows = []
        for count in COUNTS:
            params = [np.zeros(8, np.float32) for _ in range(count)]
            grads = [np.ones(8, np.float32) for _ in range(count)]
            opt = pyoptk.Adam(params, lr=1e-3)
            tree = {f"layer{i}": p.copy() for i, p in enumerate(params)}
            tree_grads = {f"layer{i}": g for i, g in enumerate(grads)}
            state = pyoptk.functional.init("adam", tree, lr=1e-3)
            number = max(10, 20_000 // count)
            times = {"class": [], "tree": [], "capi": []}
            for _ in range(rounds):
                opt.step(grads)
                times["class"].append(min(timeit.repeat(lambda: opt.step(grads), number=number, repeat=3)) / number)
                pyoptk.functional.update(state, tree, tree_grads)
                times["tree"].append(min(timeit.repeat(lambda: pyoptk.functional.update(state, tree, tree_grads),
                                                       number=number, repeat=3)) / number)
                out = subprocess.run([str(program), "bench", str(count), str(number)], env=python_env(),
                                     capture_output=True, text=True, check=True).stdout
                times["capi"].append(float(out.split()[-1]) * 1e-6)
            assert opt._plan.schedule is not None  # the kernel's coefficients, computed in C++
            rows.append((count, {k: median(v) * 1e6 for k, v in times.items()}))
    print("| arrays | class API µs | functional tree µs | C API µs |")
    print("|---|---|---|---|")
    for count, t in rows:
        print(f"| {count:,} | {t['class']:.2f} | {t['tree']:.2f} | {t['capi']:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    main(parser.parse_args().rounds)
