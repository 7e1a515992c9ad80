"""Adam at DRAM sizes in every 16-bit storage layout beside float32, each against the roofline
probe for its own bytes, with torch's fused bf16 Adam and DeepSpeed's CPU Adam (fp32, bf16 params
with fp32 state, all-bf16: the same bytes per element as pyoptk's layouts of those names), all
interleaved in one process (medians of rounds, ratios in-run):

    python -m pyoptk.bench.mixed_adam --size 1e8 --threads 1,2 --reps 7 --json mixed_adam_1e8.json
    python bench/mixed_adam.py ...     # the same, from a checkout (bench/RESULTS.md's runs)
    python -m pyoptk.bench.mixed_adam --size 5e7 --layouts all-bf16,all-f16 --no-peers
        # two builds compared: run it with each one's Python (fp32 always runs: the ratios)

layouts (bytes moved per element):  fp32 28 | bf16 params+grads, fp32 state 22 | fp32 params+grads,
bf16 state 20 | all-bf16 14 | bf16 params+grads with fp32 master weights and fp32 state 28 (the
bf16 param is written, never read) | the float16 twins of the bf16 layouts. The master-weights
layouts have no probe of their own.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys

import numpy as np

import pyoptk

from . import ALGOS, _as_tensor, _deepspeed, _set_threads, _stream, dtype_of, make_arrays, time_steps

BF16, F16, F32 = dtype_of("bfloat16"), np.dtype(np.float16), np.dtype(np.float32)
# name: (param/grad dtype, state dtype (None: the param's), master weights, bytes per element)
LAYOUTS = {
    "fp32": (F32, F32, False, 28),
    "bf16+fp32-state": (BF16, F32, False, 22),
    "fp32+bf16-state": (F32, BF16, False, 20),
    "all-bf16": (BF16, BF16, False, 14),
    "bf16+master+fp32-state": (BF16, F32, True, 28),
    "f16+fp32-state": (F16, F32, False, 22),
    "all-f16": (F16, None, False, 14),  # None: the param's dtype (float16 is no state_dtype of its own)
    "f16+master+fp32-state": (F16, F32, True, 28),
}


def steppers(total: int, names: list[str], peers: bool = True) -> dict:
    out = {}
    for name in names:
        dtype, state, master, _ = LAYOUTS[name]
        params, grads = make_arrays(total, "one", dtype, 0), make_arrays(total, "one", dtype, 1)
        opt = pyoptk.Adam(params, lr=1e-3, state_dtype=state, master_weights=master)
        out[f"pyoptk {name}"] = (lambda o, g: lambda: o.step(g))(opt, grads)
        if not master:  # the probe of the same access pattern and dtypes
            out[f"roofline {name}"] = _stream(2, make_arrays(total, "one", dtype, 2), make_arrays(total, "one", dtype, 3),
                                              state or dtype)
    if not peers:
        return out
    try:
        import torch
    except ImportError:
        print("peers skipped: torch is not installed (pip install torch==2.13.0)")
        return out
    if "all-bf16" in names:
        out["torch fused all-bf16"] = torch.optim.Adam(_tensors(torch, total, BF16), lr=1e-3, fused=True).step
    out.update(deepspeed_steppers(torch, total, names))
    return out


def _tensors(torch, total: int, dtype) -> list:
    """Params as tensors sharing fresh arrays' memory, each with its grad set."""
    params, grads = make_arrays(total, "one", dtype, 0), make_arrays(total, "one", dtype, 1)
    tparams = [_as_tensor(torch, p) for p in params]
    for t, g in zip(tparams, grads):
        t.grad = _as_tensor(torch, g)
    return tparams


def deepspeed_steppers(torch, total: int, names: list[str] | None = None) -> dict:
    """DeepSpeed's CPU Adam (plain Adam: adamw_mode=False, no weight decay) in the layouts it
    has kernels for, named as pyoptk's layout of the same dtypes and bytes; {} with the reason
    printed when it is not installed or its op does not build."""
    try:
        from deepspeed.ops.adam import DeepSpeedCPUAdam  # noqa: F401  here only to say why it is skipped
    except Exception as e:  # ImportError, or its JIT build of cpu_adam failing
        print(f"deepspeed peer skipped: {type(e).__name__}: {e} (pip install deepspeed)")
        return {}
    out = {}
    for name in names or LAYOUTS:
        dtype, state, master, _ = LAYOUTS[name]
        if master or dtype == F16 or (dtype == F32 and state != F32):  # no master copy, no fp16, no state narrower than the param
            continue
        params, grads = make_arrays(total, "one", dtype, 0), make_arrays(total, "one", dtype, 1)
        out[f"deepspeed {name}"] = _deepspeed("adam", ALGOS["adam"], params, grads, fp32_state=state == F32)
    return out


def _iqr_pct(samples: list[float], median: float) -> float | None:
    """The interquartile range in % of the median (None for a single round)."""
    if len(samples) < 2:
        return None
    q = statistics.quantiles(samples, n=4)
    return 100 * (q[2] - q[0]) / median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1e8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated; fp32 always runs (the ratios)")
    ap.add_argument("--no-peers", action="store_true", help="pyoptk and its probes only (no torch, no DeepSpeed)")
    ap.add_argument("--json")
    args = ap.parse_args()
    total = int(float(args.size))
    names = ["fp32"] + [n for n in args.layouts.split(",") if n != "fp32"]
    unknown = [n for n in names if n not in LAYOUTS]
    if unknown:
        ap.error(f"unknown layout(s) {unknown}; choose from {list(LAYOUTS)}")
    steps = steppers(total, names, peers=not args.no_peers)
    rows = []
    for nt in [int(t) for t in args.threads.split(",")]:
        _set_threads(nt)
        samples = time_steps(steps, args.reps, min_time=0.0)
        med = {k: statistics.median(v) for k, v in samples.items()}
        for impl, t in med.items():
            layout = impl.split(" ", 1)[1].removeprefix("fused ")
            nbytes = LAYOUTS[layout][3] if layout in LAYOUTS else 14
            roof = med.get(f"roofline {layout}")
            rows.append(dict(impl=impl, threads=nt, elements=total, bytes_per_element=nbytes,
                             ns_per_element=t / total * 1e9, gbytes_per_s=nbytes * total / t / 1e9,
                             pct_of_roofline=100 * roof / t if roof and not impl.startswith("roofline") else None,
                             speedup_vs_pyoptk_fp32=med["pyoptk fp32"] / t,
                             iqr_pct=_iqr_pct(samples[impl], t)))
        print(f"\n{total:.0e} elements, {nt} thread(s), median of {args.reps} interleaved rounds ({pyoptk.isa()}):")
        print("| impl | B/el | ns/el | GB/s | % of its roofline | x pyoptk fp32 | IQR |\n|---|---|---|---|---|---|---|")
        for r in rows[-len(med):]:
            pct = "–" if r["pct_of_roofline"] is None else f"{r['pct_of_roofline']:.0f}%"
            iqr = "–" if r["iqr_pct"] is None else f"{r['iqr_pct']:.0f}%"
            print(f"| {r['impl']} | {r['bytes_per_element']} | {r['ns_per_element']:.3f} | {r['gbytes_per_s']:.1f} | "
                  f"{pct} | {r['speedup_vs_pyoptk_fp32']:.2f}x | {iqr} |")
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(isa=pyoptk.isa(), machine=platform.machine(), args=vars(args), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
