"""What JAX's dispatch of a jitted step costs the kernels that follow it, by state layout: the
NumPy API's AdamW step on a 200-leaf tree of 1e4 float32 each, timed alone and right after a
donated jitted no-op over params, grads and state (less that no-op's median), with the state
(a) shaped like the params (pyoptk.jax's layout: 2 x 200 leaves, 800 arrays in all) or (b) as two
flat buffers (402 arrays). The evidence behind keeping the params-shaped state (bench/RESULTS.md,
"JAX: the state layout"): how much of the step's cold-cache penalty a flat state would remove.

    flock /tmp/pyoptk-bench.lock taskset -c 0 python bench/jax_dispatch_cache.py [--reps 41]
"""
import argparse
import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np

import pyoptk
from pyoptk.bench import time_steps

LEAVES, SIZE = 200, 10_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=41)
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    pyoptk.set_num_threads(threads)
    rng = np.random.default_rng(0)
    host = [rng.standard_normal(SIZE, dtype=np.float32) for _ in range(LEAVES)]
    host_grads = [rng.standard_normal(SIZE, dtype=np.float32) * 1e-3 for _ in range(LEAVES)]
    grads = {f"p{i}": jnp.asarray(g) for i, g in enumerate(host_grads)}

    def params():
        return {f"p{i}": jnp.array(p) for i, p in enumerate(host)}

    def no_op(flat: bool):
        state = [jnp.zeros(LEAVES * SIZE), jnp.zeros(LEAVES * SIZE)] if flat else [params(), params()]
        box = [params(), state]
        call = jax.jit(lambda p, g, s: (p, s), donate_argnums=(0, 2))

        def run():
            box[0], box[1] = call(box[0], grads, box[1])
            jax.block_until_ready(box[0])
        return run

    opt = pyoptk.AdamW([p.copy() for p in host], lr=1e-3, weight_decay=1e-4)

    def step_after(dispatch):
        def run():
            dispatch()
            opt.step(host_grads)
        return run
    steppers = {"NumPy API step": lambda: opt.step(host_grads),
                "jit no-op, params-shaped state": no_op(False), "jit no-op, flat state": no_op(True),
                "step after params-shaped no-op": step_after(no_op(False)),
                "step after flat no-op": step_after(no_op(True))}
    med = {k: statistics.median(v) * 1e3 for k, v in time_steps(steppers, args.reps, min_time=0.2).items()}
    alone = med["NumPy API step"]
    print(f"{threads} thread(s), {LEAVES} x {SIZE} float32, medians of {args.reps} interleaved rounds (ms):")
    for name in ("NumPy API step", "jit no-op, params-shaped state", "jit no-op, flat state"):
        print(f"  {name:38s} {med[name]:.3f}")
    for layout in ("params-shaped", "flat"):
        net = med[f"step after {layout} no-op"] - med[f"jit no-op, {layout} state"]
        print(f"  {'step after a ' + layout + ' no-op, net':38s} {net:.3f} ({100 * (net / alone - 1):+.0f}% over alone)")


if __name__ == "__main__":
    main()
