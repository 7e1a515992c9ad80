"""AdamW with block-quantized state (``state_dtype="int8"`` / ``"int4"``) against pyoptk's float32
AdamW, the roofline probe for the same bytes, and bitsandbytes' and torchao's CPU AdamW8bit, all
interleaved in one process (medians of rounds, ratios in-run); then the state's peak memory,
measured per layout in a fresh process (resident set before and after the first step):

    pyoptk-bench --state-dtype int8,int4 --sizes 5e7 --threads 1,2 --reps 5
    python -m pyoptk.bench.quant_adam --size 5e7 --peer-size 1e7 --json quant.json

bytes moved per element (param and grad read, param written, two states read and written):
fp32 28 | fp32 params + int8 state 16 | + int4 14 | bf16 params + int8 state 10 | + int4 8
(plus 2 x 8 bytes of absmax per block). The probe is the `stream` op with the same param and grad
dtypes and one bfloat16 state (4 bytes: two 8-bit states' worth), or none for int4 (whose bytes
are then scaled: % of roofline compares GB/s).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile

import numpy as np

import pyoptk

from . import _set_threads, _stream, cpu_model, dtype_of, make_arrays, time_steps

BF16 = dtype_of("bfloat16")
F32 = np.dtype(np.float32)
# name: (param/grad dtype, state_dtype, bytes per element, probe (states, state dtype), probe bytes)
LAYOUTS = {
    "fp32": (F32, None, 28, (2, F32), 28),
    "fp32+int8": (F32, "int8", 16, (1, BF16), 16),
    "fp32+int4": (F32, "int4", 14, (0, None), 12),
    "bf16+int8": (BF16, "int8", 10, (1, BF16), 10),
    "bf16+int4": (BF16, "int4", 8, (0, None), 6),
}
HYPER = dict(lr=1e-3, weight_decay=1e-2)


def layouts_for(state_dtypes: list[str]) -> list[str]:
    return ["fp32"] + [n for n, (_, s, *_) in LAYOUTS.items() if s in state_dtypes]


def steppers(total: int, names: list[str]) -> dict:
    out = {}
    for name in names:
        dtype, state, _, (states, probe_state), _ = LAYOUTS[name]
        params, grads = make_arrays(total, "one", dtype, 0), make_arrays(total, "one", dtype, 1)
        opt = pyoptk.AdamW(params, **HYPER, **({} if state is None else dict(state_dtype=state)))
        out[f"pyoptk {name}"] = (lambda o, g: lambda: o.step(g))(opt, grads)
        out[f"roofline {name}"] = _stream(states, make_arrays(total, "one", dtype, 2), make_arrays(total, "one", dtype, 3),
                                          probe_state)
    return out


def peer_steppers(total: int) -> dict:
    """bitsandbytes' and torchao's AdamW8bit on CPU tensors (those installed), with pyoptk's
    fp32+int8 on the same size."""
    out = {}
    params, grads = make_arrays(total, "one", F32, 0), make_arrays(total, "one", F32, 1)
    opt = pyoptk.AdamW(params, **HYPER, state_dtype="int8")
    out["pyoptk fp32+int8"] = lambda: opt.step(grads)
    try:
        import torch
    except ImportError:
        print("peers skipped: torch is not installed")
        return out

    def tensor():
        t = torch.nn.Parameter(torch.from_numpy(make_arrays(total, "one", F32, 0)[0]))
        t.grad = torch.from_numpy(make_arrays(total, "one", F32, 1)[0])
        return [t]
    def peer(name: str, make) -> None:
        try:
            step = make()
            step()  # a first step here: torchao compiles its kernel (torch.compile) on it
            out[name] = step
        except Exception as e:  # noqa: BLE001  not installed, no CPU backend, its compiler refusing
            print(f"{name} skipped: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    def bnb():
        import bitsandbytes
        return bitsandbytes.optim.AdamW8bit(tensor(), **HYPER).step

    def torchao():
        from torchao.optim import AdamW8bit
        return AdamW8bit(tensor(), **HYPER).step

    peer("bitsandbytes AdamW8bit", bnb)
    peer("torchao AdamW8bit", torchao)
    return out


_MEMORY_PROBE = """
import resource, sys, numpy as np, pyoptk
from pyoptk.bench import make_arrays
from pyoptk.bench.quant_adam import LAYOUTS, HYPER
name, total = sys.argv[1], int(sys.argv[2])
dtype, state, *_ = LAYOUTS[name]
params, grads = make_arrays(total, "one", dtype, 0), make_arrays(total, "one", dtype, 1)
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
def hwm():  # the resident peak since clear_refs (Linux); the process's lifetime peak elsewhere
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
before = rss()
open("/proc/self/clear_refs", "w").write("5")  # restart the peak here: the arrays' creation is not the step's
opt = pyoptk.AdamW(params, **HYPER, **({} if state is None else dict(state_dtype=state)))
opt.step(grads)
print(rss() - before, hwm() - before)
"""


def state_memory(name: str, total: int) -> tuple[int, int]:
    """(resident bytes the optimizer's state added, peak resident bytes above the start) of one
    AdamW step in a fresh process."""
    # From a neutral directory: run from a checkout's root, `python -c` would import its unbuilt
    # source tree instead of the installed package.
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, name, str(total)], capture_output=True, text=True,
                         check=True, cwd=tempfile.gettempdir()).stdout.split()
    return int(out[0]), int(out[1])


def _rows(samples: dict, total: int, nt: int) -> list[dict]:
    med = {k: statistics.median(v) for k, v in samples.items()}
    rows = []
    for impl, t in med.items():
        layout = impl.split(" ", 1)[1]
        nbytes = LAYOUTS[layout][2] if layout in LAYOUTS else 16
        if impl.startswith("roofline"):
            nbytes = LAYOUTS[layout][4]
        roof = med.get(f"roofline {layout}")
        gbps = nbytes * total / t / 1e9
        rows.append(dict(impl=impl, threads=nt, elements=total, bytes_per_element=nbytes, ns_per_element=t / total * 1e9,
                         gbytes_per_s=gbps,
                         pct_of_roofline=100 * gbps / (LAYOUTS[layout][4] * total / roof / 1e9)
                         if roof and not impl.startswith("roofline") else None,
                         speedup_vs_pyoptk_fp32=med["pyoptk fp32"] / t if "pyoptk fp32" in med else None,
                         speedup_vs_pyoptk_int8=t / med["pyoptk fp32+int8"] if "pyoptk fp32+int8" in med else None,
                         iqr_pct=100 * (lambda q: (q[2] - q[0]) / t)(statistics.quantiles(samples[impl], n=4))
                         if len(samples[impl]) > 1 else 0.0))
    return rows


def _print(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    print("| impl | B/el | ns/el | GB/s | % of its roofline | x pyoptk fp32 | IQR |\n|---|---|---|---|---|---|---|")
    for r in rows:
        pct = "–" if r["pct_of_roofline"] is None else f"{r['pct_of_roofline']:.0f}%"
        x = "–" if r["speedup_vs_pyoptk_fp32"] is None else f"{r['speedup_vs_pyoptk_fp32']:.2f}x"
        print(f"| {r['impl']} | {r['bytes_per_element']} | {r['ns_per_element']:.3f} | {r['gbytes_per_s']:.1f} | "
              f"{pct} | {x} | {r['iqr_pct']:.0f}% |")
    sys.stdout.flush()


def run(total: int, threads: list[int], reps: int, state_dtypes: list[str], peer_size: int, memory: bool) -> dict:
    names = layouts_for(state_dtypes)
    out: dict = dict(cpu=cpu_model(), isa=pyoptk.isa(), machine=platform.machine(), rows=[], peers=[], memory={})
    steps = steppers(total, names)
    for nt in threads:
        _set_threads(nt)
        rows = _rows(time_steps(steps, reps, min_time=0.0), total, nt)
        _print(rows, f"AdamW, {total:.0e} elements, {nt} thread(s), median of {reps} interleaved rounds ({pyoptk.isa()}):")
        out["rows"] += rows
    del steps
    if peer_size:
        peers = peer_steppers(peer_size)
        for nt in threads:
            _set_threads(nt)
            rows = _rows(time_steps(peers, max(3, reps // 2), min_time=0.0), peer_size, nt)
            _print(rows, f"AdamW8bit peers, {peer_size:.0e} elements, {nt} thread(s) (x pyoptk fp32+int8: "
                         "speedup_vs_pyoptk_int8 in the JSON):")
            for r in rows:
                print(f"  {r['impl']}: {r['speedup_vs_pyoptk_int8']:.1f}x pyoptk fp32+int8's time")
            out["peers"] += rows
    if memory:
        print("\nstate memory, measured (resident set added by the first step, fresh process each):")
        for name in names:
            state, peak = state_memory(name, total)
            out["memory"][name] = dict(state_bytes=state, peak_bytes=peak)
            print(f"  {name}: {state / total:.2f} bytes/param added, peak {peak / total:.2f} bytes/param above start")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="5e7")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--state-dtype", default="int8,int4")
    ap.add_argument("--peer-size", default="1e7", help="elements for bitsandbytes/torchao (0: skip them)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    out = run(int(float(args.size)), [int(t) for t in args.threads.split(",")], args.reps,
              args.state_dtype.split(","), int(float(args.peer_size)), not args.no_memory)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), **out), f, indent=1)


if __name__ == "__main__":
    main()
