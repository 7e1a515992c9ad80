"""Side-by-side timing of one optimizer step: pyoptk against torch (fused / foreach, when
installed) and a hand-written in-place NumPy version, in one process, interleaved, medians.

    python -m pyoptk.bench                      # quick defaults
    python -m pyoptk.bench --sizes 1e7 --layouts one,200 --threads 1,2 --reps 21 --json out.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Callable

import numpy as np

import pyoptk

# Bytes moved per element per step (fp32): read p, g and each state; write p and each state.
STATES = {"adam": 2, "adamw": 2, "sgd": 0, "sgd-momentum": 1}
HYPER = {"adam": ("Adam", dict(lr=1e-3)), "adamw": ("AdamW", dict(lr=1e-3)),
         "sgd": ("SGD", dict(lr=1e-3)), "sgd-momentum": ("SGD", dict(lr=1e-3, momentum=0.9))}


def bytes_per_element(algo: str, itemsize: int) -> int:
    return (3 + 2 * STATES[algo]) * itemsize


def _split(total: int, layout: str) -> list[int]:
    if layout == "one":
        return [total]
    count = int(layout)
    return [total // count + (1 if i < total % count else 0) for i in range(count)]


def _numpy_adam(params, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """A careful hand-written NumPy Adam: in place, with out= and one scratch buffer per array."""
    state = [(np.zeros_like(p), np.zeros_like(p), np.empty_like(p)) for p in params]
    t = [0]

    def step():
        t[0] += 1
        bc1, bc2 = 1 - b1 ** t[0], (1 - b2 ** t[0]) ** 0.5
        for p, g, (m, v, tmp) in zip(params, grads, state):
            m *= b1
            m += (1 - b1) * g
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v *= b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp /= bc2
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= -lr / bc1
            p += tmp

    return step


def _numpy_sgd(params, grads, lr=1e-3, momentum=0.0):
    bufs = [np.zeros_like(p) for p in params]

    def step():
        for p, g, b in zip(params, grads, bufs):
            if momentum:
                b *= momentum
                b += g
                p -= lr * b
            else:
                p -= lr * g

    return step


def make_steppers(algo: str, sizes: list[int], dtype, peers: list[str]) -> dict[str, Callable[[], None]]:
    rng = np.random.default_rng(0)
    fresh = lambda: [rng.standard_normal(n).astype(dtype) for n in sizes]
    out: dict[str, Callable[[], None]] = {}
    cls, hyper = HYPER[algo]
    params, grads = fresh(), fresh()
    opt = getattr(pyoptk, cls)(params, **hyper)
    out["pyoptk"] = lambda: opt.step(grads)
    if "numpy" in peers:
        p, g = fresh(), fresh()
        out["numpy"] = _numpy_adam(p, g) if algo.startswith("adam") else _numpy_sgd(p, g, **{k: v for k, v in hyper.items() if k == "momentum"})
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        for impl in ("fused", "foreach"):
            if f"torch-{impl}" not in peers:
                continue
            tp = [torch.from_numpy(a).requires_grad_() for a in fresh()]
            for t, g in zip(tp, fresh()):
                t.grad = torch.from_numpy(g)
            topt = getattr(torch.optim, cls)(tp, **hyper, **{impl: True})
            out[f"torch-{impl}"] = topt.step
    return out


def time_steps(steppers: dict[str, Callable[[], None]], reps: int, min_time: float = 0.02) -> dict[str, list[float]]:
    """Seconds per step, `reps` rounds; within a round every implementation runs back to back."""
    calls = {}
    for name, fn in steppers.items():  # warm up (state allocation, page faults) and size the round
        fn()
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < min_time:
            fn()
            n += 1
        calls[name] = max(1, n)
    samples: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(reps):
        for name, fn in steppers.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return samples


def run(algos, totals, layouts, threads, reps, dtype=np.float32, peers=("numpy", "torch-fused", "torch-foreach")):
    rows = []
    for algo in algos:
        for total in totals:
            for layout in layouts:
                sizes = _split(total, layout)
                steppers = make_steppers(algo, sizes, dtype, list(peers))
                for nt in threads:
                    pyoptk.set_num_threads(nt)
                    try:
                        import torch
                        torch.set_num_threads(nt)
                    except ImportError:
                        pass
                    samples = time_steps(steppers, reps)
                    base = statistics.median(samples["pyoptk"])
                    for name, s in samples.items():
                        med = statistics.median(s)
                        rows.append(dict(algo=algo, elements=total, layout=layout, arrays=len(sizes), threads=nt,
                                         impl=name, ns_per_element=med / total * 1e9,
                                         spread=(max(s) - min(s)) / med if med else 0.0,
                                         gbytes_per_s=bytes_per_element(algo, np.dtype(dtype).itemsize) * total / med / 1e9,
                                         speedup_of_pyoptk=med / base))
    return rows


def format_table(rows) -> str:
    head = "| algo | elements | arrays | threads | impl | ns/element | GB/s | pyoptk speedup | spread |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['algo']} | {r['elements']:.0e} | {r['arrays']} | {r['threads']} | {r['impl']} | "
                     f"{r['ns_per_element']:.3f} | {r['gbytes_per_s']:.1f} | {r['speedup_of_pyoptk']:.2f}x | "
                     f"{100 * r['spread']:.0f}% |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="pyoptk.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algos", default="adam,sgd-momentum", help=f"comma list of {sorted(STATES)}")
    ap.add_argument("--sizes", default="1e6,1e7", help="total elements per step, comma list")
    ap.add_argument("--layouts", default="one,200", help="'one' array, or N arrays sharing the elements")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=9, help="rounds; the median is reported")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--peers", default="numpy,torch-fused,torch-foreach")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    for a in args.algos.split(","):
        if a not in STATES:
            ap.error(f"unknown algo {a!r}; choose from {sorted(STATES)}")
    rows = run(args.algos.split(","), [int(float(s)) for s in args.sizes.split(",")], args.layouts.split(","),
               [int(t) for t in args.threads.split(",")], args.reps, np.dtype(args.dtype).type, args.peers.split(","))
    print(f"pyoptk {pyoptk.__version__} on {platform.machine()} ({pyoptk.isa()}), {args.dtype}, "
          f"median of {args.reps} rounds; speedup = impl time / pyoptk time\n")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(isa=pyoptk.isa(), dtype=args.dtype, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
