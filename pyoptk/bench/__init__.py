"""Side-by-side timing of one optimizer step: pyoptk against its peers in one process, interleaved
round by round, medians with spread, and the memory-bandwidth roofline measured by the same
binary (the ``stream`` op: the cheapest update with the algorithm's access pattern).

    pyoptk-bench                                  # quick defaults
    pyoptk-bench --algos all --sizes 1e6,1e8 --layouts one --threads 1,2 --reps 15 --json out.json
    pyoptk-bench --algos adam --sizes 1e4,1e5,1e6,1e7 --plot adam.png
    pyoptk-bench --algos adamw --shapes 50257x768,768,768x2304,2304   # your model's param shapes
    pyoptk-bench --algos adamw --model torchvision.models:resnet18      # a torch model's params

Peers (when installed): torch fused / foreach / for-loop, DeepSpeed's CPU Adam, and a careful
in-place NumPy Adam/SGD. Speedup = the peer's time / pyoptk's time (> 1: pyoptk is faster).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

import pyoptk
from pyoptk import _core


@dataclass(frozen=True)
class Algo:
    cls: str                      # pyoptk and torch.optim class name
    hyper: dict = field(default_factory=dict)
    states: int = 0               # per-element state arrays: bytes/element = (3 + 2*states) * itemsize
    torch_fused: bool = False     # torch has a fused CPU kernel for it
    peer: str | None = None       # "package:Class" of a torch-side implementation outside torch.optim
    peer_hyper: dict | None = None  # its kwargs, when they differ from `hyper`
    roofline: bool = True         # one stream over the arrays (LAMB/LARS add norm passes: no probe)


ALGOS = {
    "sgd": Algo("SGD", dict(lr=1e-3), 0, True),
    "sgd-momentum": Algo("SGD", dict(lr=1e-3, momentum=0.9), 1, True),
    "adam": Algo("Adam", dict(lr=1e-3), 2, True),
    "adamw": Algo("AdamW", dict(lr=1e-3), 2, True),
    "adagrad": Algo("Adagrad", dict(lr=1e-2), 1, True),
    "rmsprop": Algo("RMSprop", dict(lr=1e-2), 1),
    "adadelta": Algo("Adadelta", dict(), 2),
    "adamax": Algo("Adamax", dict(lr=2e-3), 2),
    "nadam": Algo("NAdam", dict(lr=2e-3), 2),
    "radam": Algo("RAdam", dict(lr=1e-3), 2),
    "rprop": Algo("Rprop", dict(lr=1e-2), 2),
    "asgd": Algo("ASGD", dict(lr=1e-2), 1),
    "adafactor": Algo("Adafactor", dict(lr=1e-2), 1),  # 1-D params: a full (unfactored) variance
    # beyond torch.optim: peers from the pytorch_optimizer and schedulefree packages
    "lion": Algo("Lion", dict(lr=1e-4), 1, peer="pytorch_optimizer:Lion"),
    "adan": Algo("Adan", dict(lr=1e-3), 4, peer="pytorch_optimizer:Adan"),
    "adopt": Algo("ADOPT", dict(lr=1e-3), 2, peer="pytorch_optimizer:ADOPT"),
    "ademamix": Algo("AdEMAMix", dict(lr=1e-3), 3, peer="pytorch_optimizer:AdEMAMix"),
    "schedule-free-sgd": Algo("ScheduleFreeSGD", dict(lr=1.0), 1, peer="schedulefree:SGDScheduleFree"),
    "schedule-free-adamw": Algo("ScheduleFreeAdamW", dict(lr=2.5e-3), 2, peer="schedulefree:AdamWScheduleFree"),
    "lamb": Algo("LAMB", dict(lr=1e-3), 2, peer="pytorch_optimizer:Lamb",
                 peer_hyper=dict(lr=1e-3, weight_decouple=False, max_grad_norm=0.0), roofline=False),
    "lars": Algo("LARS", dict(lr=1e-3), 1, peer="pytorch_optimizer:LARS", roofline=False),
}
PEERS = ("numpy", "torch-fused", "torch-foreach", "torch-forloop", "deepspeed", "pytorch_optimizer", "schedulefree")
DEFAULT_PEERS = ("numpy", "torch-fused", "torch-foreach", "torch-forloop")
# The package each peer needs, and the command that installs it.
PEER_PACKAGES = {"torch-fused": "torch", "torch-foreach": "torch", "torch-forloop": "torch", "deepspeed": "deepspeed",
                 "pytorch_optimizer": "pytorch_optimizer", "schedulefree": "schedulefree"}
INSTALL = {"torch": "pip install torch==2.13.0",
           "deepspeed": "pip install torch deepspeed", "matplotlib": "pip install 'pyoptk[bench]'",
           "pytorch_optimizer": "pip install pytorch_optimizer", "schedulefree": "pip install schedulefree"}
NOISY_IQR_PCT = 20.0  # rows whose rounds spread more than this (IQR / median) are flagged

Shape = Tuple[int, ...]
# A layout: 'one' array, 'N' equal arrays, 'arenaN' (N views of one buffer), or a list of shapes.
Layout = Union[str, Sequence[Shape]]
Stepper = Callable[[], object]

# Algorithms whose step is not one stream over dense arrays: no roofline probe describes them, so
# they are timed against torch only. sparse_adam touches 10% of the rows of (rows, 64) params;
# muon takes square-ish 2-D params; lbfgs runs one step (max_iter=5) on a quadratic closure.
SPECIAL = ("sparse_adam", "muon", "lbfgs")


def bytes_per_element(algo: str, itemsize: int, state_itemsize: int | None = None) -> int:
    """Bytes a step moves per element: param read + written, grad read, each state read + written
    (16-bit params and grads with float32 state: Adam moves 2*2 + 2 + 2*2*4 = 22); 0 for an
    algorithm without a roofline probe (LAMB, LARS: more than one pass)."""
    if algo not in ALGOS or not ALGOS[algo].roofline:
        return 0
    return 3 * itemsize + 2 * ALGOS[algo].states * (itemsize if state_itemsize is None else state_itemsize)


def dtype_of(name: str) -> np.dtype:
    """float32, float64, float16, or bfloat16 (ml_dtypes)."""
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def layout_name(layout: Layout) -> str:
    """The layout as the table and the JSON show it: shape lists as 'shapesN' (N arrays)."""
    return layout if isinstance(layout, str) else f"shapes{len(layout)}"


def layout_shapes(total: int, layout: Layout) -> List[Shape]:
    """The arrays' shapes: 'one' array, 'N' arrays or 'arenaN' (N views of one buffer) sharing
    `total` elements; a list of shapes is taken as it is (`total` is then its element count)."""
    if not isinstance(layout, str):
        return [tuple(int(d) for d in shape) for shape in layout]
    count = 1 if layout == "one" else int(layout.removeprefix("arena"))
    return [(total // count + (1 if i < total % count else 0),) for i in range(count)]


def split_sizes(total: int, layout: Layout) -> List[int]:
    """Element counts of the layout's arrays (see layout_shapes)."""
    return [int(np.prod(shape)) for shape in layout_shapes(total, layout)]


def make_arrays(total: int, layout: Layout, dtype: Any, seed: int) -> List[np.ndarray]:
    shapes = layout_shapes(total, layout)
    rng = np.random.default_rng(seed)
    # NumPy draws float32/float64 only: 16-bit arrays are rounded from float32 draws.
    wide = np.float32 if np.dtype(dtype).itemsize == 2 else dtype
    draw = lambda shape: rng.standard_normal(shape, dtype=wide).astype(dtype, copy=False)
    if isinstance(layout, str) and layout.startswith("arena"):
        sizes = [int(np.prod(shape)) for shape in shapes]
        return np.split(draw(sum(sizes)), np.cumsum(sizes)[:-1])
    return [draw(shape) for shape in shapes]


def parse_shapes(text: str) -> List[Shape]:
    """'50257x768,768,3x3x64' -> [(50257, 768), (768,), (3, 3, 64)]; '@file.json' reads a JSON list
    of shapes (e.g. json.dump([list(p.shape) for p in model.parameters()], f))."""
    if text.startswith("@"):
        with open(text[1:]) as f:
            shapes = [tuple(int(d) for d in shape) for shape in json.load(f)]
    else:
        shapes = [tuple(int(d) for d in item.split("x")) for item in text.split(",") if item]
    if not shapes or any(d < 0 for shape in shapes for d in shape):
        raise ValueError(f"no valid shapes in {text!r}: write them like 512x256,256")
    return shapes


def model_shapes(spec: str) -> List[Shape]:
    """The parameter shapes of the torch model `module:callable`, built with no arguments
    (e.g. 'torchvision.models:resnet18', 'torch.nn:Transformer')."""
    module, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"--model wants module:callable (e.g. torchvision.models:resnet18), got {spec!r}")
    model = getattr(importlib.import_module(module), name)()
    return [tuple(p.shape) for p in model.parameters()]


# ----- the implementations: each returns a zero-argument function doing one step -------------
def _pyoptk(algo: Algo, params, grads, state_dtype=None):
    opt = getattr(pyoptk, algo.cls)(params, **algo.hyper, **({} if state_dtype is None else {"state_dtype": state_dtype}))
    return lambda: opt.step(grads)


def _stream(states: int, params, grads, state_dtype=None):
    """The roofline probe: read param, grad and `states` arrays, write param and the states (in
    `state_dtype`, default the param's: the same bytes as the optimizer step it bounds)."""
    extra = [[np.zeros(p.shape, state_dtype or p.dtype) for _ in range(states)] + [None] * (4 - states) for p in params]
    mode = sum(1 << k for k in range(states))  # flags s0..s3 (ops/stream.h)
    items = [(i, mode, 0, p, g, *s) for i, (p, g, s) in enumerate(zip(params, grads, extra))]
    plan = _core.Plan("stream", items)
    coeffs = [(0.0,)]
    return lambda: plan.run(grads, coeffs)


def _numpy(name: str, algo: Algo, params, grads):
    if name.startswith("adam"):
        return _numpy_adam(params, grads, decoupled=name == "adamw")
    if name.startswith("sgd"):
        return _numpy_sgd(params, grads, algo.hyper.get("momentum", 0.0))
    return None


def _numpy_adam(params, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=1e-2, decoupled=False):
    """A careful hand-written NumPy Adam: in place, with out= and one scratch buffer per array."""
    state = [(np.zeros_like(p), np.zeros_like(p), np.empty_like(p)) for p in params]
    t = [0]

    def step():
        t[0] += 1
        bc1, bc2 = 1 - b1 ** t[0], (1 - b2 ** t[0]) ** 0.5
        for p, g, (m, v, tmp) in zip(params, grads, state):
            if decoupled:
                p *= 1 - lr * wd
            m *= b1
            np.multiply(g, 1 - b1, out=tmp)
            m += tmp
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


def _numpy_sgd(params, grads, momentum, lr=1e-3):
    bufs = [np.zeros_like(p) for p in params]
    scratch = [np.empty_like(p) for p in params]

    def step():
        for p, g, b, tmp in zip(params, grads, bufs, scratch):
            if momentum:
                b *= momentum
                b += g
                np.multiply(b, -lr, out=tmp)
            else:
                np.multiply(g, -lr, out=tmp)
            p += tmp

    return step


def _torch(impl: str, algo: Algo, params, grads):
    try:
        import torch
    except ImportError:
        return None
    if (impl == "fused" and not algo.torch_fused) or not hasattr(torch.optim, algo.cls):
        return None
    tparams = [_as_tensor(torch, p).requires_grad_() for p in params]
    for t, g in zip(tparams, grads):
        t.grad = _as_tensor(torch, g)
    flag = {"fused": dict(fused=True), "foreach": dict(foreach=True), "forloop": dict(foreach=False)}[impl]
    opt = getattr(torch.optim, algo.cls)(tparams, **algo.hyper, **flag)
    return opt.step


def _package_peer(package: str, algo: Algo, params, grads):
    """The algorithm's implementation in a torch-side package (pytorch_optimizer, schedulefree)."""
    if algo.peer is None or not algo.peer.startswith(package + ":"):
        return None
    try:
        import importlib

        import torch
        cls = getattr(importlib.import_module(package), algo.peer.split(":")[1])
    except Exception:
        return None
    tparams = [_as_tensor(torch, p).requires_grad_() for p in params]
    for t, g in zip(tparams, grads):
        t.grad = _as_tensor(torch, g)
    opt = cls(tparams, **(algo.peer_hyper or algo.hyper))
    if hasattr(opt, "train"):
        opt.train()  # schedule-free optimizers start in eval mode
    return opt.step


def _as_tensor(torch, a: np.ndarray):
    """A tensor sharing a's memory; ml_dtypes' bfloat16 goes through an int16 view."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _deepspeed(name: str, algo: Algo, params, grads, fp32_state: bool = True):
    """DeepSpeed's CPU Adam; its kernels take float32 params with float32 state, and bfloat16 /
    float16 params with float32 (fp32_state) or param-dtype state."""
    if not name.startswith("adam"):
        return None
    try:
        import torch
        from deepspeed.ops.adam import DeepSpeedCPUAdam
    except Exception:
        return None
    tparams = [_as_tensor(torch, p).requires_grad_() for p in params]
    for t, g in zip(tparams, grads):
        t.grad = _as_tensor(torch, g)
    opt = DeepSpeedCPUAdam(tparams, adamw_mode=name == "adamw", fp32_optimizer_states=fp32_state, **algo.hyper)
    return opt.step


def _special_steppers(name: str, total: int, layout: Layout, dtype: Any, peers: Sequence[str]) -> Dict[str, Stepper]:
    try:
        import torch
    except ImportError:
        torch = None
    want_torch = torch is not None and any(p.startswith("torch") for p in peers)
    rng = np.random.default_rng(0)
    out: Dict[str, Stepper] = {}
    if name == "sparse_adam":
        cols = 64
        rows = [max(1, n // cols) for n in split_sizes(total, layout)]
        params = [rng.standard_normal((r, cols)).astype(dtype) for r in rows]
        picks = [rng.choice(r, max(1, r // 10), replace=False) for r in rows]
        grads = [pyoptk.SparseGrad(i, rng.standard_normal((i.size, cols)).astype(dtype)) for i in picks]
        opt = pyoptk.SparseAdam(params, lr=1e-3)
        out["pyoptk"] = lambda: opt.step(grads)
        if want_torch:
            tparams = [torch.from_numpy(p.copy()) for p in params]
            for t, g in zip(tparams, grads):
                t.grad = torch.sparse_coo_tensor(torch.from_numpy(g.indices)[None], torch.from_numpy(g.values), t.shape,
                                                 check_invariants=False)
            topt = torch.optim.SparseAdam(tparams, lr=1e-3)
            out["torch-forloop"] = topt.step
    elif name == "muon":
        side = [max(2, int(n ** 0.5)) for n in split_sizes(total, layout)]
        params = [rng.standard_normal((k, k)).astype(dtype) for k in side]
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in params]
        opt = pyoptk.Muon(params, lr=1e-3)
        out["pyoptk"] = lambda: opt.step(grads)
        if want_torch:
            tparams = [torch.from_numpy(p.copy()) for p in params]
            for t, g in zip(tparams, grads):
                t.grad = torch.from_numpy(g)
            topt = torch.optim.Muon(tparams, lr=1e-3)
            out["torch-forloop"] = topt.step
    elif name == "lbfgs":
        sizes = split_sizes(total, layout)
        target = [rng.standard_normal(n).astype(dtype) for n in sizes]
        params = [np.zeros(n, dtype) for n in sizes]
        opt = pyoptk.LBFGS(params, lr=1, max_iter=5, history_size=5)
        closure = lambda: (0.0, [p - t for p, t in zip(params, target)])
        out["pyoptk"] = lambda: opt.step(closure)
        if want_torch:
            tparams = [torch.zeros(n, dtype=torch.float32 if dtype == np.float32 else torch.float64) for n in sizes]
            ttarget = [torch.from_numpy(t) for t in target]
            topt = torch.optim.LBFGS(tparams, lr=1, max_iter=5, history_size=5)

            def tclosure():
                for p, t in zip(tparams, ttarget):
                    p.grad = p - t
                return torch.zeros(())

            out["torch-forloop"] = lambda: topt.step(tclosure)
    return out


def make_steppers(name: str, total: int, layout: Layout, dtype: Any, peers: Sequence[str],
                  state_dtype: Any = None) -> Dict[str, Stepper]:
    """Every implementation gets its own copy of the same data. state_dtype (pyoptk and its
    roofline only): None = the param's dtype, as torch keeps it."""
    if name in SPECIAL:
        plain = layout.removeprefix("arena") if isinstance(layout, str) else layout
        return _special_steppers(name, total, plain, dtype, peers)
    algo = ALGOS[name]
    fresh = lambda: (make_arrays(total, layout, dtype, 0), make_arrays(total, layout, dtype, 1))
    out: Dict[str, Stepper] = {"pyoptk": _pyoptk(algo, *fresh(), state_dtype)}
    if algo.roofline:
        out["roofline"] = _stream(algo.states, *fresh(), state_dtype)
    low = np.dtype(dtype).itemsize == 2
    same_state = state_dtype is None or np.dtype(state_dtype) == np.dtype(dtype)
    f32_state = state_dtype is not None and np.dtype(state_dtype) == np.float32
    for peer in peers:
        if low and not ((peer == "torch-fused" and same_state) or (peer == "deepspeed" and (same_state or f32_state))):
            continue  # 16-bit: torch's fused kernel (float32 math, state in the param dtype) and DeepSpeed's only
        if peer == "numpy":
            fn = _numpy(name, algo, *fresh())
        elif peer.startswith("torch-"):
            fn = (_torch(peer.removeprefix("torch-"), algo, *fresh())
                  if dtype != np.float64 or peer != "torch-fused" else None)
        elif peer in ("pytorch_optimizer", "schedulefree"):
            fn = _package_peer(peer, algo, *fresh())
        elif peer == "deepspeed":
            fn = _deepspeed(name, algo, *fresh(), fp32_state=not low or f32_state) \
                if (low or (dtype == np.float32 and (same_state or f32_state))) else None
        else:
            raise ValueError(f"unknown peer {peer!r}; choose from {PEERS}")
        if fn is not None:
            out[peer] = fn
    return out


def time_steps(steppers: Dict[str, Stepper], reps: int, min_time: float,
               settle: float = 0.01) -> Dict[str, List[float]]:
    """Seconds per step, `reps` rounds; within a round every implementation runs back to back
    (so machine drift hits all of them alike). `settle` seconds of sleep before each one: torch
    and DeepSpeed bring their own OpenMP runtime, whose idle workers spin for a while after a
    parallel region and would steal the cores from whichever implementation runs next."""
    calls = {}
    for name, fn in steppers.items():  # warm up (state allocation, page faults) and size a round
        fn()
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < min_time:
            fn()
            n += 1
        calls[name] = max(1, n)
    samples: Dict[str, List[float]] = {name: [] for name in steppers}
    for _ in range(reps):
        for name, fn in steppers.items():
            time.sleep(settle)
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return samples


def _set_threads(n: int) -> None:
    pyoptk.set_num_threads(n)
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass


def run(algos: Sequence[str], totals: Sequence[int], layouts: Sequence[Layout], threads: Sequence[int], reps: int,
        dtype: Any = np.float32, peers: Sequence[str] = DEFAULT_PEERS, min_time: float = 0.05,
        progress: bool = True, state_dtype: Any = None) -> List[Dict[str, Any]]:
    """One row per (algo, size, layout, threads, implementation); see ``format_table`` for the
    columns. A shape-list layout runs once, at its own size. Progress goes to stderr: one updating
    line on a terminal, plain lines otherwise."""
    configs = []
    for a in algos:
        for layout in layouts:
            for t in (totals if isinstance(layout, str) else [sum(split_sizes(0, layout))]):
                configs.append((a, t, layout))
    rows: List[Dict[str, Any]] = []
    done, count = 0, len(configs) * len(threads)
    itemsize = np.dtype(dtype).itemsize
    state_itemsize = None if state_dtype is None else np.dtype(state_dtype).itemsize
    tty = sys.stderr.isatty()
    for name, total, layout in configs:
        steppers = make_steppers(name, total, layout, dtype, peers, state_dtype)
        for nt in threads:
            done += 1
            if progress:
                line = f"[{done}/{count}] {name} {total:.0e} {layout_name(layout)} {nt} thread(s)"
                print(f"\r{line}".ljust(60) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
            _set_threads(nt)
            samples = time_steps(steppers, reps, min_time)
            base = statistics.median(samples["pyoptk"])
            roof = statistics.median(samples["roofline"]) if "roofline" in samples else None
            for impl, s in samples.items():
                med = statistics.median(s)
                q = statistics.quantiles(s, n=4) if len(s) >= 2 else [med, med, med]
                rows.append(dict(algo=name, elements=total, layout=layout_name(layout),
                                 arrays=len(split_sizes(total, layout)),
                                 threads=nt, dtype=np.dtype(dtype).name, impl=impl,
                                 state_dtype=np.dtype(state_dtype or dtype).name if impl in ("pyoptk", "roofline")
                                 else np.dtype(dtype).name,
                                 bytes_per_element=bytes_per_element(name, itemsize, state_itemsize),
                                 ns_per_element=med / total * 1e9 if total else 0.0, elements_per_s=total / med,
                                 gbytes_per_s=bytes_per_element(name, itemsize, state_itemsize) * total / med / 1e9
                                 if roof else None,
                                 pct_of_roofline=100 * roof / med if roof else None, speedup_of_pyoptk=med / base,
                                 iqr_pct=100 * (q[2] - q[0]) / med, samples=len(s)))
    if progress and tty:
        print(file=sys.stderr)
    return rows


EXPLANATION = """\
Columns: layout = how the elements are split: 'one' array, 'N' equal arrays, 'arenaN' (N views of one
buffer), 'shapesN' (the N shapes you gave). ns/element = median step time / elements. GB/s = the bytes
the step must move (param and grad read, param and states read and written) per second. % roofline =
the time of the `stream` op (same binary, same arrays, the cheapest update with this access pattern) /
this time: 100% = as fast as memory allows; above 100% happens when the arrays sit in cache (the
probe is then no bound) or within noise. speedup = this implementation's time / pyoptk's time
(> 1: pyoptk is faster). IQR = spread of the rounds (interquartile range / median); rows above
{noisy:.0f}% are marked 'noisy': the machine was busy, rerun with more --reps or on an idle machine."""


def is_noisy(row: Dict[str, Any]) -> bool:
    return bool(row["iqr_pct"] > NOISY_IQR_PCT)


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
    """A markdown table of ``run``'s rows (EXPLANATION says what the columns mean)."""
    lines = ["| algo | elements | layout | threads | impl | ns/element | GB/s | % roofline | speedup | IQR |",
             "|" + "---|" * 10]
    opt = lambda v, fmt: "–" if v is None else format(v, fmt)
    for r in rows:
        lines.append(f"| {r['algo']} | {r['elements']:.0e} | {r['layout']} | {r['threads']} | {r['impl']} | "
                     f"{r['ns_per_element']:.3f} | {opt(r['gbytes_per_s'], '.1f')} | "
                     f"{opt(r['pct_of_roofline'], '.0f')}{'' if r['pct_of_roofline'] is None else '%'} | "
                     f"{r['speedup_of_pyoptk']:.2f}x | {r['iqr_pct']:.0f}%{' noisy' if is_noisy(r) else ''} |")
    return "\n".join(lines)


def missing_peers(peers: Sequence[str]) -> Dict[str, str]:
    """Peers whose package is not installed -> the package (nothing is imported to find out)."""
    return {p: PEER_PACKAGES[p] for p in peers
            if p in PEER_PACKAGES and importlib.util.find_spec(PEER_PACKAGES[p]) is None}


def peer_notes(peers: Sequence[str], algos: Sequence[str], dtype: Any) -> List[str]:
    """Lines naming the requested peers that will not appear in the table, and why."""
    notes = []
    missing = missing_peers(peers)
    for package in dict.fromkeys(missing.values()):
        names = ", ".join(p for p, pkg in missing.items() if pkg == package)
        notes.append(f"not run: {names} ({package} is not installed; add it with: {INSTALL[package]})")
    if "torch-fused" in peers and "torch-fused" not in missing:
        unfused = [a for a in algos if a in ALGOS and not ALGOS[a].torch_fused]
        if np.dtype(dtype) == np.float64:
            notes.append("not run: torch-fused, deepspeed for float64 (pyoptk-bench runs them on float32 only)")
        elif np.dtype(dtype).itemsize == 2:
            notes.append("16-bit params: the peers run are torch-fused (float32 math, state in the param dtype) and "
                         "deepspeed (state in the param dtype or float32)")
        elif unfused:
            notes.append(f"not run: torch-fused for {', '.join(unfused)} (torch has no fused CPU kernel for it)")
    if any(p.startswith("torch") for p in peers) and any(a in SPECIAL for a in algos):
        notes.append(f"{', '.join(a for a in algos if a in SPECIAL)}: compared with torch's for-loop only, "
                     "without a roofline (not one stream over dense arrays)")
    return notes


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> Dict[str, Any]:
    """What a result depends on besides the code: versions, CPU, ISA, threads, date."""
    return dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                pyoptk=pyoptk.__version__, python=platform.python_version(), numpy=np.__version__,
                torch=_version("torch"), deepspeed=_version("deepspeed"),
                cpu=cpu_model(), machine=platform.machine(), logical_cpus=os.cpu_count(),
                platform=platform.platform(), isa=pyoptk.isa(), available_isas=pyoptk.available_isas(),
                default_threads=pyoptk.get_num_threads())


def plot(rows: Sequence[Dict[str, Any]], path: str) -> None:
    """Throughput against size per implementation, with the measured roofline as a line."""
    import matplotlib  # main() checked it is installed before running anything

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = sorted({(r["algo"], r["layout"], r["threads"]) for r in rows})
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 3.2 * len(keys)), squeeze=False)
    for ax, (algo, layout, threads) in zip(axes[:, 0], keys):
        sel = [r for r in rows if (r["algo"], r["layout"], r["threads"]) == (algo, layout, threads)]
        for impl in dict.fromkeys(r["impl"] for r in sel):
            pts = sorted((r["elements"], r["gbytes_per_s"]) for r in sel if r["impl"] == impl and r["gbytes_per_s"])
            if not pts:
                continue
            style = dict(color="black", linestyle="--") if impl == "roofline" else dict(marker="o")
            ax.plot(*zip(*pts), label=impl, **style)
        ax.set(xscale="log", xlabel="elements", ylabel="GB/s", title=f"{algo}, {layout}, {threads} thread(s)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyoptk-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algos", default="adam,sgd-momentum",
                    help=f"comma list of {', '.join([*ALGOS, *SPECIAL])}; 'all' = the element-wise ones")
    ap.add_argument("--sizes", default="1e6,1e7", help="total elements per step, comma list")
    ap.add_argument("--layouts", default="one,200",
                    help="'one' array, 'N' equal arrays, or 'arenaN' (N views of one buffer), comma list")
    ap.add_argument("--shapes", help="one more layout: your params' shapes, e.g. 50257x768,768,768x2304 "
                                     "(--sizes does not apply to it), or @file.json holding a list of shapes")
    ap.add_argument("--model", help="one more layout: the param shapes of a torch model built as module:callable() "
                                    "(e.g. torchvision.models:resnet18)")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma list")
    ap.add_argument("--reps", type=int, default=9, help="rounds; the median is reported")
    ap.add_argument("--min-time", type=float, default=0.05, help="seconds each implementation runs per round")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16", "float16"],
                    help="params and grads")
    ap.add_argument("--state-dtype", default=None, choices=["float32", "bfloat16", "int8", "int4", "int8,int4"],
                    help="pyoptk's state arrays (default: the param dtype, torch's rule); int8 / int4: AdamW with "
                         "block-quantized state against float32, its roofline and the 8-bit peers (quant_adam.py)")
    ap.add_argument("--peers", default=",".join(DEFAULT_PEERS),
                    help=f"comma list of {', '.join(PEERS)} (those not installed are named below the table)")
    ap.add_argument("--json", help="also write the rows, the arguments and the environment (versions, CPU model, "
                                   "ISA, threads) to this file")
    ap.add_argument("--plot", help="also draw GB/s against size, with the roofline, to this image file (needs matplotlib)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return ap


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The ``pyoptk-bench`` command (``--help`` lists the options)."""
    ap = parser()
    args = ap.parse_args(argv)
    if args.state_dtype in ("int8", "int4", "int8,int4"):  # its own table: layouts, probes, peers, memory
        from . import quant_adam
        size = args.sizes.split(",")[-1]
        quant_adam.main(["--size", size, "--peer-size", str(min(float(size), 1e7)), "--threads", args.threads,
                         "--reps", str(args.reps), "--state-dtype", args.state_dtype]
                        + (["--json", args.json] if args.json else []))
        return
    # Everything that can refuse the run does so before the first timing.
    algos = list(ALGOS) if args.algos == "all" else args.algos.split(",")
    for a in algos:
        if a not in ALGOS and a not in SPECIAL:
            ap.error(f"unknown algo {a!r}; choose from {', '.join([*ALGOS, *SPECIAL])}")
    peers = [p for p in args.peers.split(",") if p]
    for p in peers:
        if p not in PEERS:
            ap.error(f"unknown peer {p!r}; choose from {', '.join(PEERS)}")
    if args.peers != parser().get_default("peers"):  # peers asked for by name must be there
        for p, package in missing_peers(peers).items():
            ap.error(f"peer {p} needs {package}, which is not installed: {INSTALL[package]}")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        ap.error(f"--plot needs matplotlib, which is not installed: {INSTALL['matplotlib']}")
    if args.model and importlib.util.find_spec("torch") is None:
        ap.error(f"--model needs torch, which is not installed: {INSTALL['torch']}")
    try:
        sizes = [int(float(s)) for s in args.sizes.split(",")]
        threads = [int(t) for t in args.threads.split(",")]
        layouts: List[Layout] = [layout for layout in args.layouts.split(",") if layout]
        for layout in layouts:
            layout_shapes(1, layout)
        if args.shapes:
            layouts.append(parse_shapes(args.shapes))
        if args.model:
            layouts.append(model_shapes(args.model))
    except (ValueError, OSError, ImportError, AttributeError) as e:
        ap.error(str(e))
    if any(t < 1 for t in threads) or any(n < 1 for n in sizes) or args.reps < 1:
        ap.error("--sizes, --threads and --reps must be positive")
    rows = run(algos, sizes, layouts, threads, args.reps, dtype_of(args.dtype), peers, args.min_time, not args.quiet,
               None if args.state_dtype is None else dtype_of(args.state_dtype))
    state = f", state {args.state_dtype}" if args.state_dtype else ""
    print(f"pyoptk {pyoptk.__version__} on {cpu_model()} ({pyoptk.isa()}), {args.dtype}{state}, "
          f"median of {args.reps} rounds\n")
    print(EXPLANATION.format(noisy=NOISY_IQR_PCT) + "\n")
    print(format_table(rows))
    notes = peer_notes(peers, algos, dtype_of(args.dtype))
    noisy = sum(map(is_noisy, rows))
    if noisy:
        notes.append(f"{noisy} of {len(rows)} rows noisy (IQR > {NOISY_IQR_PCT:.0f}%)")
    if notes:
        print("\n" + "\n".join(f"- {n}" for n in notes))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(environment=environment(), isa=pyoptk.isa(), machine=platform.machine(), args=vars(args),
                           notes=notes, rows=rows), f, indent=1)
    if args.plot:
        plot(rows, args.plot)
