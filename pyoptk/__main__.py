"""`pyoptk` (or `python -m pyoptk` outside the source tree): a quick demo, then a benchmark.

Trains a tiny least-squares model with AdamW (a few ms), then times one fused Adam step against
its peers (NumPy; torch fused / foreach / for-loop when torch is installed) at 1e6 and 1e7
elements, as one array and as 200 arrays, on 1 thread and on all cores: about 30 s on 2 cores. The table's
columns are explained above it; `pyoptk-bench --help` has every option for a longer run."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import numpy as np

import pyoptk
from pyoptk import bench


def demo_training(steps: int = 300) -> None:
    """Least squares with AdamW through a closure; prints the first and last loss."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8))
    w_true = rng.standard_normal(8)
    y = x @ w_true
    w, b = np.zeros(8), np.zeros(1)
    opt = pyoptk.AdamW([w, b], lr=0.05, weight_decay=0.0)
    for k in range(steps):
        err = x @ w + b - y
        loss = opt.step(closure=lambda: (float(np.mean(err ** 2)), [2 * x.T @ err / len(y), 2 * err.mean(keepdims=True)]))
        if k in (0, steps - 1):
            print(f"  step {k + 1:4d}  loss {loss:.3e}")
    print(f"  recovered weights within {np.abs(w - w_true).max():.1e} of the truth")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyoptk", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algos", default="adam", help="algorithms to time, comma list (default: %(default)s; "
                                                   "pyoptk-bench --help lists them)")
    ap.add_argument("--sizes", default="1e6,1e7", help="total elements per step, comma list (default: %(default)s)")
    ap.add_argument("--layouts", default="one,200", help="'one' array, 'N' arrays, 'arenaN' (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=5, help="timing rounds; the median is shown (default: %(default)s)")
    ap.add_argument("--no-bench", action="store_true", help="only the demo")
    return ap


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The ``pyoptk`` command (``--help`` lists the options)."""
    args = parser().parse_args(argv)
    threads = sorted({1, pyoptk.get_num_threads()})
    print(f"pyoptk {pyoptk.__version__}: ISA {pyoptk.isa()} (available {pyoptk.available_isas()}), "
          f"{pyoptk.get_num_threads()} threads\n\nLeast squares with AdamW:")
    demo_training()
    if args.no_bench:
        return
    print("\nOne optimizer step, pyoptk against its peers (progress on stderr):", flush=True)
    sys.stdout.flush()
    bench.main(["--algos", args.algos, "--sizes", args.sizes, "--layouts", args.layouts,
                "--threads", ",".join(map(str, threads)), "--reps", str(args.reps), "--min-time", "0.02"])


if __name__ == "__main__":
    main()
