"""Training curves with float32, int8 and int4 optimizer state (README, "Quantized state"):
AdamW on a 4096-parameter least-squares problem (pyoptk, NumPy) and a small torch MLP
(pyoptk.torch), loss relative to the first at a few steps. tests/test_quantized_state.py holds the
final losses within 1e-3 of float32's.

    python bench/quant_quality.py [--steps 300]
"""
import argparse

import numpy as np

import pyoptk

MODES = (None, "int8", "int4")


def least_squares(state_dtype, steps):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 4096)).astype(np.float32) / 64
    y = x @ rng.standard_normal(4096).astype(np.float32)
    w = np.zeros(4096, np.float32)
    opt = pyoptk.AdamW([w], lr=3e-2, **({} if state_dtype is None else dict(state_dtype=state_dtype)))
    curve = []
    for _ in range(steps):
        r = x @ w - y
        curve.append(float(np.mean(r ** 2) / np.mean(y ** 2)))
        opt.step([(x.T @ r / len(y)).astype(np.float32)])
    return curve


def mlp(state_dtype, steps):
    import torch
    import pyoptk.torch as pt

    torch.manual_seed(0)
    x = torch.randn(512, 32)
    y = torch.sin(x @ torch.randn(32, 4))
    model = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.Tanh(), torch.nn.Linear(128, 128), torch.nn.Tanh(),
                                torch.nn.Linear(128, 4))
    opt = pt.AdamW(model.parameters(), lr=3e-3,
                   **({} if state_dtype is None else dict(state_dtype=state_dtype, min_8bit_size=0)))
    curve = []
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        curve.append(float(loss.detach()))
    return [c / curve[0] for c in curve]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=300)
    steps = ap.parse_args().steps
    marks = [s for s in (1, 10, 30, 100, 150, 300, 1000) if s <= steps]
    for problem in (least_squares, mlp):
        print(f"\n{problem.__name__}: loss / first loss at step")
        print("| state | " + " | ".join(map(str, marks)) + " |\n|---|" + "---|" * len(marks))
        for mode in MODES:
            curve = problem(mode, steps)
            print(f"| {mode or 'float32'} | " + " | ".join(f"{curve[s - 1]:.3g}" for s in marks) + " |")


if __name__ == "__main__":
    main()
