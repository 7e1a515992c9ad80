"""pyoptk.jax.adamw against optax.adamw under jax.jit with donated params and state, beside
pyoptk's NumPy API on the same sizes and the roofline probe (one stream over the same bytes, float32),
on one 1e7-element array and on a 200-leaf pytree of 1e4 each, 1 and 2 threads. Two dispatch
baselines, both donated jitted calls over the same params, grads and state: "jit no-op" returns
them (JAX's per-call and per-argument work), "FFI no-op" passes them through the same custom call
as the step (same operands, aliases and attributes) to a handler that does nothing (that, plus
XLA's per-operand work for a custom call). A step's time less the FFI no-op's is the handler's
own work, what the NumPy API's time compares with; less the jit no-op's, it also carries the
custom call's cost in XLA. Each thread count runs in a child process pinned to that many cores
(XLA's own thread pool and pyoptk's both see them). Beside them, the modes optax cannot express:
bfloat16 params with stochastic rounding or master weights, and block-quantized state
(``state_dtype="int8"`` / ``"int4"``, float32 params) with the NumPy API's step in the same mode,
each net of the two no-ops over its own layout (codes and scales are 50% more operands).

    flock /tmp/pyoptk-bench.lock python bench/jax_step.py [--reps 15]
"""
import argparse
import os
import statistics
import subprocess
import sys

LAYOUTS = {"1 x 1e7": (1, 10_000_000), "200 x 1e4": (200, 10_000)}


def child(threads: int, reps: int) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import pyoptk
    import pyoptk.jax as pj
    from pyoptk.jax._ffi import NOOP_TARGET
    from pyoptk.bench import _stream, time_steps

    pyoptk.set_num_threads(threads)
    for layout, (leaves, size) in LAYOUTS.items():
        rng = np.random.default_rng(0)
        host = [rng.standard_normal(size, dtype=np.float32) for _ in range(leaves)]
        host_grads = [rng.standard_normal(size, dtype=np.float32) * 1e-3 for _ in range(leaves)]
        grads = {f"p{i}": jnp.asarray(g) for i, g in enumerate(host_grads)}
        fresh = lambda: {f"p{i}": jnp.array(p) for i, p in enumerate(host)}  # noqa: E731

        def jitted(tx, fused, dtype=jnp.float32):
            box = [jax.tree.map(lambda p: p.astype(dtype), fresh()), None]
            box[1] = tx.init(box[0])
            if fused:
                step = jax.jit(tx.step, donate_argnums=(0, 2))
                g16 = jax.tree.map(lambda g: g.astype(dtype), grads)
                call = lambda: step(box[0], g16, box[1])  # noqa: E731
            else:
                def update(params, grads, state):
                    updates, state = tx.update(grads, state, params)
                    return optax.apply_updates(params, updates), state
                step = jax.jit(update, donate_argnums=(0, 2))
                call = lambda: step(box[0], grads, box[1])  # noqa: E731

            def run():
                box[0], box[1] = call()
                jax.block_until_ready(box[0])
            return run

        def noop(ffi, state_dtype=None):
            tx = pj.adamw(1e-3, state_dtype=state_dtype)
            box = [fresh(), tx.init(fresh())]
            if ffi:
                step = jax.jit(lambda p, g, s: tx.fused.call(p, g, s, NOOP_TARGET), donate_argnums=(0, 2))
            else:
                step = jax.jit(lambda p, g, s: (p, s), donate_argnums=(0, 2))  # noqa: E731

            def run():
                box[0], box[1] = step(box[0], grads, box[1])
                jax.block_until_ready(box[0])
            return run

        numpy_params = [p.copy() for p in host]
        opt = pyoptk.AdamW(numpy_params, lr=1e-3, weight_decay=1e-4)

        def after_dispatch(numpy_step, state_dtype=None):
            """The NumPy API's step right after a JAX dispatch over a tree like this one (less the
            jit no-op's median below): the caches as a jitted step finds them, its kernels' fair peer."""
            dispatch = noop(False, state_dtype)

            def run():
                dispatch()
                numpy_step()
            return run
        steppers = {
            "roofline": _stream(2, [p.copy() for p in host], host_grads),
            "pyoptk NumPy API": lambda: opt.step(host_grads),
            "pyoptk NumPy API after a jit no-op": after_dispatch(lambda: opt.step(host_grads)),
            "jit no-op": noop(ffi=False),
            "FFI no-op": noop(ffi=True),
            "pyoptk.jax step": jitted(pj.adamw(1e-3), fused=True),
            "pyoptk.jax update+apply": jitted(pj.adamw(1e-3), fused=False),
            "optax.adamw": jitted(optax.adamw(1e-3), fused=False),
            # What optax cannot express: bfloat16 params stepped with stochastic rounding (float32
            # states, or bfloat16 states too), and bfloat16 params with float32 master weights.
            "pyoptk.jax step bf16 + SR": jitted(pj.adamw(1e-3, stochastic_rounding=True), True, jnp.bfloat16),
            "pyoptk.jax step bf16 + bf16 state + SR": jitted(
                pj.adamw(1e-3, stochastic_rounding=True, state_dtype="bfloat16"), True, jnp.bfloat16),
            "pyoptk.jax step bf16 + master weights": jitted(pj.adamw(1e-3, master_weights=True), True, jnp.bfloat16),
        }
        # Block-quantized state (every leaf here is past min_8bit_size) beside the NumPy API's, each
        # net of dispatch baselines over its own layout (codes and scales: 50% more operands).
        quantized = {bits: pyoptk.AdamW([p.copy() for p in host], lr=1e-3, weight_decay=1e-4, state_dtype=bits)
                     for bits in ("int8", "int4")}
        for bits, q in quantized.items():
            steppers.update({
                f"jit no-op {bits} state": noop(False, bits),
                f"FFI no-op {bits} state": noop(True, bits),
                f"pyoptk NumPy API {bits} state": lambda q=q: q.step(host_grads),
                f"pyoptk NumPy API {bits} state after a jit no-op": after_dispatch(lambda q=q: q.step(host_grads), bits),
                f"pyoptk.jax step {bits} state": jitted(pj.adamw(1e-3, state_dtype=bits), True),
            })
        samples = time_steps(steppers, reps, min_time=0.2)
        med = {k: statistics.median(v) for k, v in samples.items()}
        for name, t in med.items():
            state_layout = next((f" {b} state" for b in quantized if f"{b} state" in name), "")
            jit_noop, ffi_noop = med["jit no-op" + state_layout], med["FFI no-op" + state_layout]
            fused = name.startswith("pyoptk.jax")
            net_jit = t - jit_noop if fused or name.startswith("optax") else None
            net_ffi = t - ffi_noop if fused else None
            if name.endswith("after a jit no-op"):
                t -= jit_noop
            net = net_ffi if fused else net_jit if net_jit is not None else t
            spread = (max(samples[name]) - min(samples[name])) / t * 100
            # (the roofline probe moves float32 Adam's bytes: no percentage for the other layouts)
            roof = f"{100 * med['roofline'] / net:.0f}%" if not any(k in name for k in ("bf16", "no-op", "state")) \
                else "-"
            cells = [f"{x * 1e3:.3f}" if x is not None else "-" for x in (t, net_jit, net_ffi)]
            print(f"| {layout} | {threads} | {name} | {' | '.join(cells)} | {roof} | {spread:.0f}% |", flush=True)
        del steppers, opt, quantized


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="(internal) run one thread count here")
    args = parser.parse_args()
    if args.threads:
        child(args.threads, args.reps)
        return
    print("| layout | threads | implementation | median ms | net of jit no-op ms | net of FFI no-op ms | "
          "% of roofline (pyoptk.jax: net of FFI no-op; optax: of jit no-op) | spread |")
    print("|---|---|---|---|---|---|---|---|")
    for threads in (1, 2):
        subprocess.run([sys.executable, __file__, "--threads", str(threads), "--reps", str(args.reps)], check=True,
                       preexec_fn=lambda n=threads: os.sched_setaffinity(0, range(n)))


if __name__ == "__main__":
    main()
