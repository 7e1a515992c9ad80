"""Adam, fp32: pyoptk vs torch.optim.Adam(fused=True) vs an in-place NumPy Adam, on one 10M
array and on model-like lists of many arrays, 1 and 2 threads, interleaved in one run.

    python bench/bench_adam.py [--reps 21] [--json out.json]
"""
import sys

from pyoptk import bench

if __name__ == "__main__":
    args = ["--algos", "adam", "--sizes", "1e4,1e6,1e7", "--layouts", "one,200", "--threads", "1,2",
            "--reps", "15", "--peers", "numpy,torch-fused,torch-foreach"]
    bench.main(args + sys.argv[1:])
