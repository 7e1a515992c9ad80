"""The fixed cost of a step: Adam over 1, 4, 100 and 10,000 float32 arrays of 8 elements (next to
no data to move), on one thread, through the class API (its compiled steady-state step, and the
Python path it replaces), the nested functional API (pyoptk.functional.update) and the C API
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
import pyoptk.optimizer as optimizer_module

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from embed_build import build_capi_program, python_env  # noqa: E402

COUNTS = (1, 4, 100, 10_000)


def median(xs):
    return sorted(xs)[len(xs) // 2]


def main(rounds=7):
    pyoptk.set_num_threads(1)
    real_arm = optimizer_module.arm
    with tempfile.TemporaryDirectory() as tmp:
        program = build_capi_program(Path(tmp))
        rows = []
        for count in COUNTS:
            params = [np.zeros(8, np.float32) for _ in range(count)]
            grads = [np.ones(8, np.float32) for _ in range(count)]
            compiled = pyoptk.Adam(params, lr=1e-3)
            optimizer_module.arm = lambda *a: None
            python = pyoptk.Adam([p.copy() for p in params], lr=1e-3)
            optimizer_module.arm = real_arm
            tree = {f"layer{i}": p.copy() for i, p in enumerate(params)}
            tree_grads = {f"layer{i}": g for i, g in enumerate(grads)}
            state = pyoptk.functional.init("adam", tree, lr=1e-3)
            number = max(10, 20_000 // count)
            times = {"compiled": [], "python": [], "tree": [], "capi": []}
            for _ in range(rounds):
                for opt, key in ((compiled, "compiled"), (python, "python")):
                    optimizer_module.arm = real_arm if key == "compiled" else (lambda *a: None)
                    opt.step(grads)
                    times[key].append(min(timeit.repeat(lambda: opt.step(grads), number=number, repeat=3)) / number)
                optimizer_module.arm = real_arm
                pyoptk.functional.update(state, tree, tree_grads)
                times["tree"].append(min(timeit.repeat(lambda: pyoptk.functional.update(state, tree, tree_grads),
                                                       number=number, repeat=3)) / number)
                out = subprocess.run([str(program), "bench", str(count), str(number)], env=python_env(),
                                     capture_output=True, text=True, check=True).stdout
                times["capi"].append(float(out.split()[-1]) * 1e-6)
            assert compiled._plan.compiled is not None and python._plan.compiled is None
            rows.append((count, {k: median(v) * 1e6 for k, v in times.items()}))
    print(f"| arrays | class API (compiled step) µs | class API, Python path µs | functional tree µs | C API µs |")
    print("|---|---|---|---|---|")
    for count, t in rows:
        print(f"| {count:,} | {t['compiled']:.2f} | {t['python']:.2f} | {t['tree']:.2f} | {t['capi']:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    main(parser.parse_args().rounds)
