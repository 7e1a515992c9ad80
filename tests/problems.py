"""The data the per-algorithm test files step with: seeded params and grads (sign changes and
exact zeros), one optimizer run over them, and the comparison scaled by the array's magnitude
that the tolerances of tests/cases.py are meant for."""
from __future__ import annotations

import numpy as np

import pyoptk
from cases import SCHEDULE_FREE

STEPS = 10
# torch.optim's element-wise algorithms: 0 and 1, below / past the vector widths, one split
# across threads.
TORCH_OPTIM_SIZES = [0, 1, 7, 17, 1023, 100003]
# 0 and 1; below, at and past the AVX2 and AVX-512 widths; past the 128-element scheduling block
# and the 2048-element reduction block; one large enough to be split across threads.
BEYOND_TORCH_SIZES = [0, 1, 7, 17, 1023, 4099, 100003]


def close(got, want, tol, msg):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=msg)


def random_grads(rng, size, steps, dtype):
    """Gradients with sign changes and exact zeros (one entry always 0, others at random)."""
    out = []
    for _ in range(steps):
        g = rng.standard_normal(size)
        g[rng.random(size) < 0.1] = 0.0
        if size:
            g[0] = 0.0
        out.append(g.astype(dtype))
    return out


def problem(dtype, sizes, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [random_grads(rng, n, STEPS, dtype) for n in sizes]
    return params, grads


def run_steps(name, kw, params, grads, steps=STEPS):
    """``steps`` steps of pyoptk's ``name`` on copies of ``params`` (schedule-free's then in
    eval mode: its params are x)."""
    params = [p.copy() for p in params]
    opt = getattr(pyoptk, name)(params, **kw)
    for k in range(steps):
        opt.step([g[k] for g in grads])
    if name in SCHEDULE_FREE:
        opt.eval()
    return params, opt
