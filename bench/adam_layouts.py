"""Adam in every 16-bit storage layout beside float32, each against the roofline probe of its own
bytes (pyoptk's stream op over arrays of the same dtypes), interleaved in one process: ns per
element, % of the probe, and speed over float32 (medians of rounds). It uses only what every
install has, so two builds can be compared by running it with each one's Python, outside a
checkout (bench/RESULTS.md, issue #23):

    python bench/adam_layouts.py --size 2e7 --threads 1,2 --reps 5 [--layouts fp32,all-bf16] [--json out.json]

Layouts (bytes moved per element): fp32 28 | all-bf16 14 | bf16+fp32-state 22 | fp32+bf16-state 20 |
bf16+master 28 (bf16 params and grads, float32 master weights and state: the bf16 param is
written, never read) | all-f16 14 | f16+fp32-state 22 | f16+master 28. The master-weights layouts
have no probe of their own.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics

import numpy as np

import pyoptk
from pyoptk.bench import _set_threads, _stream, dtype_of, make_arrays, time_steps

BF16, F16, F32 = dtype_of("bfloat16"), np.dtype(np.float16), np.dtype(np.float32)
# name: (param and grad dtype, state dtype (None: the param's), master weights, bytes per element)
LAYOUTS = {
    "fp32": (F32, None, False, 28),
    "all-bf16": (BF16, None, False, 14),
    "bf16+fp32-state": (BF16, F32, False, 22),
    "fp32+bf16-state": (F32, BF16, False, 20),
    "bf16+master": (BF16, F32, True, 28),
    "all-f16": (F16, None, False, 14),
    "f16+fp32-state": (F16, F32, False, 22),
    "f16+master": (F16, F32, True, 28),
}


def steppers(total: int, names) -> dict:
    out = {}
    for name in names:
        dtype, state, master, _ = LAYOUTS[name]
        params, grads = make_arrays(total, "one", dtype, 0), make_arrays(total, "one", dtype, 1)
        opt = pyoptk.Adam(params, lr=1e-3, state_dtype=state, master_weights=master)
        out[f"pyoptk {name}"] = (lambda o, g: lambda: o.step(g))(opt, grads)
        if not master:
            out[f"roofline {name}"] = _stream(2, make_arrays(total, "one", dtype, 2), make_arrays(total, "one", dtype, 3),
                                              state or dtype)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2e7")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated; fp32 is always run (the ratios)")
    ap.add_argument("--json")
    args = ap.parse_args()
    total = int(float(args.size))
    names = ["fp32"] + [n for n in args.layouts.split(",") if n != "fp32"]
    steps = steppers(total, names)
    rows = []
    for nt in [int(t) for t in args.threads.split(",")]:
        _set_threads(nt)
        med = {k: statistics.median(v) for k, v in time_steps(steps, args.reps, min_time=0.0).items()}
        print(f"\n{total:.0e} elements, {nt} thread(s), median of {args.reps} interleaved rounds ({pyoptk.isa()}):")
        print("| layout | B/el | ns/el | GB/s | probe ns/el | % of its roofline | x fp32 |\n|---|---|---|---|---|---|---|")
        for name in names:
            t, roof = med[f"pyoptk {name}"], med.get(f"roofline {name}")
            row = dict(layout=name, threads=nt, elements=total, bytes_per_element=LAYOUTS[name][3],
                       ns_per_element=t / total * 1e9, probe_ns_per_element=None if roof is None else roof / total * 1e9,
                       pct_of_roofline=None if roof is None else 100 * roof / t, speedup_vs_fp32=med["pyoptk fp32"] / t)
            rows.append(row)
            probe = "–" if roof is None else f"{row['probe_ns_per_element']:.3f}"
            pct = "–" if roof is None else f"{row['pct_of_roofline']:.0f}%"
            print(f"| {name} | {row['bytes_per_element']} | {row['ns_per_element']:.3f} | "
                  f"{row['bytes_per_element'] / row['ns_per_element']:.1f} | {probe} | {pct} | {row['speedup_vs_fp32']:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(isa=pyoptk.isa(), machine=platform.machine(), args=vars(args), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
