"""`pyoptk` (or `python -m pyoptk` outside the source tree): a quick demo — train a tiny least-squares model with AdamW, then time the
fused step against its peers on built-in defaults."""
import numpy as np

import pyoptk
from pyoptk import bench


def demo_training(steps: int = 300) -> None:
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


def main() -> None:
    print(f"pyoptk {pyoptk.__version__}: ISA {pyoptk.isa()} (available {pyoptk.available_isas()}), "
          f"{pyoptk.get_num_threads()} threads\n\nLeast squares with AdamW:")
    demo_training()
    print()
    bench.main(["--sizes", "1e6,1e7", "--layouts", "one,200", "--reps", "5"])


if __name__ == "__main__":
    main()
