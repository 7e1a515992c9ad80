"""The bits of every step, pinned: params and state after several steps, hashed per case, for every
element-wise algorithm x dtype x storage option, on every ISA and thread count this machine has.

The hashes in step_bits.json were recorded before the step engine was reshaped (issue 21) and must
not move: a refactor of the layer between Python and the kernels changes no bit. They are one hash
per case, not per ISA: the README promises the same bits on every ISA and thread count, so a
machine with other ISAs (AVX-512, NEON, SVE) checks itself against the same file. Signed zeros
count (the hash is of the bytes, -0.0 != +0.0), and so do NaN payloads.

Muon is left out: its Newton-Schulz products run through the BLAS, whose kernel OpenBLAS picks for
the CPU, so its bits are not the same on every machine (its own tests compare within a tolerance).

Regenerate (only when a change of bits is intended, and say so in the commit):
    PYOPTK_REGEN_STEP_BITS=1 pytest tests/test_step_bits.py
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import pyoptk
from cases import STEP_BITS, STEP_BITS_WIDE_ONLY

GOLDEN = Path(__file__).with_name("step_bits.json")
REGEN = os.environ.get("PYOPTK_REGEN_STEP_BITS") == "1"
SIZES = [0, 1, 7, 17, 1023, 4099]  # empty, one, below and past every vector width and stage block
STEPS = 6
BF16, F16 = ml_dtypes.bfloat16, np.float16

# (class, kwargs): every formula-changing flag of each element-wise algorithm, with maximize (the
# signed zeros of negated zero grads) and non-default values; WIDE_ONLY: float32/float64 only
# (LAMB and LARS, schedule-free, Adafactor). From the shared table, as recorded (tests/cases.py).
ALGORITHMS = STEP_BITS
WIDE_ONLY = STEP_BITS_WIDE_ONLY
# Storage options for 16-bit params (every fused and staged layout), and for float32 params.
LOW_PRECISIONS = [{}, dict(state_dtype="float32"), dict(state_dtype="bfloat16"), dict(master_weights=True),
                  dict(master_weights=True, state_dtype="float32"), dict(stochastic_rounding=True, seed=3),
                  dict(stochastic_rounding=True, master_weights=True, state_dtype="bfloat16")]
F32_PRECISIONS = [{}, dict(state_dtype="bfloat16")]


def _case_id(name, kw, dtype, precision):
    words = [f"{k}={v}" for k, v in {**kw, **precision}.items()]
    return "-".join([name, np.dtype(dtype).name] + words)


def _cases():
    out = []
    for name, kw in ALGORITHMS:
        for dtype in (np.float32, np.float64):
            out.append((name, kw, dtype, {}))
        out.extend((name, kw, np.float32, p) for p in F32_PRECISIONS[1:])
        out.extend((name, kw, dtype, p) for dtype in (BF16, F16) for p in LOW_PRECISIONS)
    for name, kw in WIDE_ONLY:
        out.extend((name, kw, dtype, {}) for dtype in (np.float32, np.float64))
    return out


CASES = _cases()


def _problem(name, dtype, seed=0):
    """Params and grads with exact zeros (signed-zero paths), large values and sign changes; shapes
    are 2-D for Adafactor (its factored state)."""
    rng = np.random.default_rng(seed)
    shapes = [(n,) for n in SIZES] if name != "Adafactor" else [(1,), (7,), (5, 9), (33, 4), (2, 3, 17)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = []
    for _ in range(STEPS):
        step = []
        for s in shapes:
            g = rng.standard_normal(s).reshape(-1)
            g[::5] = 0
            g[3::11] *= 100
            step.append(g.reshape(s).astype(dtype))
        grads.append(step)
    return params, grads


def _digest(params, opt, lr_trace):
    h = hashlib.sha256()
    for k, p in enumerate(params):
        h.update(np.ascontiguousarray(p).tobytes())
        for key, value in sorted(opt.state[p].items()) if p in opt.state else ():
            h.update(key.encode())
            h.update(np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray) else repr(value).encode())
    h.update(repr(lr_trace).encode())
    return h.hexdigest()


def _schedule(make, grads, step, lr_array):
    """STEPS steps of the optimizer ``make()`` makes (``step(opt, g, t)``: step t with grads g), the
    lr changed before steps 3 and 5 (a scheduler's write: a float, then ``lr_array``'s 0-d array),
    a state_dict round trip in the middle (a resumed run continues bit for bit). Returns the
    optimizer and the lr of each step."""
    opt = make()
    lr_trace = []
    for t, g in enumerate(grads):
        if t == 2:
            opt.param_groups[0]["lr"] = opt.param_groups[0]["lr"] * 0.5
        if t == 3:
            saved = opt.state_dict()
            opt = make()
            opt.load_state_dict(saved)
        if t == 4:
            opt.param_groups[0]["lr"] = lr_array(float(opt.param_groups[0]["lr"]) * 0.5)
        step(opt, g, t)
        lr_trace.append(float(opt.param_groups[0]["lr"]))
    return opt, lr_trace


def _run(name, kw, dtype, precision, step=None):
    """The schedule through the NumPy API; ``step(opt, g, t)`` runs step t (default: ``opt.step(g)``)."""
    params, grads = _problem(name, dtype)
    opt, lr_trace = _schedule(lambda: getattr(pyoptk, name)(params, **kw, **precision), grads,
                              step or (lambda opt, g, t: opt.step(g)), np.array)
    return _digest(params, opt, lr_trace)


@pytest.fixture(scope="module")
def golden():
    recorded = {} if REGEN else json.loads(GOLDEN.read_text())
    yield recorded
    if REGEN:
        GOLDEN.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("name,kw,dtype,precision", CASES, ids=[_case_id(*c) for c in CASES])
def test_step_bits_unchanged_on_every_isa_and_thread_count(name, kw, dtype, precision, golden, kernel_config):
    key = _case_id(name, kw, dtype, precision)
    if REGEN:
        kernel_config("scalar", 1)
        golden[key] = _run(name, kw, dtype, precision)
    assert key in golden, f"no recorded bits for {key}: regenerate step_bits.json (see the module docstring)"
    for isa in pyoptk.available_isas():
        for threads in (1, 2):
            kernel_config(isa, threads)
            assert _run(name, kw, dtype, precision) == golden[key], f"{isa}, {threads} thread(s): bits moved"


# ----- pyoptk.torch: the same steps on torch tensors give the same bits -----------------------
TORCH_CASES = [c for c in CASES if c[0] in dict(ALGORITHMS) and c[2] in (np.float32, BF16)]


def _torch_run(name, kw, dtype, precision, step=None, **options):
    """The schedule through pyoptk.torch: grads in p.grad, the lr written as a torch scheduler
    does, the checkpoint round trip through torch's state_dict. ``step(opt, params, grads)`` runs
    a step from the grads as tensors (default: set each p.grad, then ``opt.step()``); ``options``
    go to the optimizer's constructor."""
    torch = pytest.importorskip("torch")
    import pyoptk.torch as ptorch

    params, grads = _problem(name, dtype)
    tdtype = torch.bfloat16 if dtype == BF16 else torch.float32
    tensors = [torch.nn.Parameter(torch.from_numpy(p.view(np.uint16) if dtype == BF16 else p).clone()
                                  .view(tdtype)) for p in params]

    def set_grads_and_step(opt, params, grads):
        for p, gk in zip(params, grads):
            p.grad = gk
        opt.step()

    def run_step(opt, g, t):
        tgrads = [torch.from_numpy(gk.view(np.uint16) if dtype == BF16 else gk).clone().view(tdtype) for gk in g]
        (step or set_grads_and_step)(opt, tensors, tgrads)

    opt, lr_trace = _schedule(lambda: getattr(ptorch, name)(tensors, **kw, **precision, **options), grads, run_step,
                              lambda lr: torch.tensor(lr, dtype=torch.float64))
    h = hashlib.sha256()
    for p in tensors:
        h.update(p.detach().view(torch.uint16 if dtype == BF16 else torch.float32).numpy().tobytes())
        for key, value in sorted(opt.state[p].items()) if p in opt.state else ():
            h.update(key.encode())
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                bits = value.detach().view(torch.uint16) if value.dtype in (torch.bfloat16, torch.float16) else value
                h.update(bits.detach().numpy().tobytes())
            else:
                h.update(repr(value.item() if isinstance(value, torch.Tensor) else value).encode())
    h.update(repr(lr_trace).encode())
    return h.hexdigest()


@pytest.mark.parametrize("name,kw,dtype,precision", TORCH_CASES, ids=[_case_id(*c) for c in TORCH_CASES])
def test_torch_step_bits_unchanged(name, kw, dtype, precision, golden):
    key = "torch:" + _case_id(name, kw, dtype, precision)
    if REGEN:
        golden[key] = _torch_run(name, kw, dtype, precision)
    assert key in golden, f"no recorded bits for {key}: regenerate step_bits.json (see the module docstring)"
    assert _torch_run(name, kw, dtype, precision) == golden[key]


def test_every_case_is_recorded_and_nothing_else(golden):
    expected = {_case_id(*c) for c in CASES} | {"torch:" + _case_id(*c) for c in TORCH_CASES}
    torch_keys = {k for k in golden if k.startswith("torch:")}
    try:
        import torch  # noqa: F401
    except ImportError:
        expected -= torch_keys
        golden = {k: v for k, v in golden.items() if k not in torch_keys}
    assert set(golden) == expected
