"""The shared test-case table: per algorithm, the hyper-parameter cases (every flag combination
that changes its formula, plus non-default values), its NumPy reference, the tolerances against
it, and what it can do (from the registry, pyoptk/optim/__init__.py). Test files draw their
cases from here; a new algorithm adds its rows here once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from pyoptk import optim

ENTRIES = {e.name: e for e in optim.ALGORITHMS}


def case_id(case) -> str:
    """``Name-key=value-...`` (``Name-default`` without keywords): the ids the files have always used."""
    name, kw = case[0], case[1]
    return f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}"


def ids(cases) -> list[str]:
    return [case_id(c) for c in cases]


# ----- SGD, Adam, AdamW: tests/reference/sgd_adam.py, one rounding per op (reference.assert_close)
SGD_ADAM = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.25, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02, maximize=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Adam", dict(lr=3e-2, betas=(0.3, 0.5), eps=1e-3)),  # 1 - beta1 >= 0.5: lerp's other branch
    ("AdamW", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.3, maximize=True)),
]

# ----- the other element-wise torch.optim algorithms: tests/reference/torch_optim.py ------------
TORCH_OPTIM = [
    ("RMSprop", {}),
    ("RMSprop", dict(momentum=0.9)),
    ("RMSprop", dict(centered=True, weight_decay=0.1)),
    ("RMSprop", dict(momentum=0.5, centered=True, maximize=True, alpha=0.9)),
    ("Adagrad", {}),
    ("Adagrad", dict(lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5, maximize=True)),
    ("Adamax", {}),
    ("Adamax", dict(weight_decay=0.1, maximize=True, betas=(0.8, 0.9))),
    ("NAdam", {}),
    ("NAdam", dict(weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", {}),  # beta2=0.999: steps 1-5 un-rectified, 6+ rectified
    ("RAdam", dict(weight_decay=0.1, betas=(0.8, 0.9))),
    ("RAdam", dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Adadelta", {}),
    ("Adadelta", dict(weight_decay=0.1, maximize=True, rho=0.5)),
    ("Rprop", {}),
    ("Rprop", dict(maximize=True, etas=(0.3, 1.7), step_sizes=(1e-3, 0.03))),  # hits both clamps
    ("ASGD", {}),  # t0 = 1e6: mu stays 1, ax is a copy of p
    ("ASGD", dict(weight_decay=0.1, maximize=True, t0=3, lambd=0.1, alpha=0.5)),  # mu < 1 from step 5
]
# Tolerances against the float64 reference. float64: the kernels do the same operations in
# another order (coefficients folded on the host, fma in lerp), so a few ulps per step.
# float32: the state runs in float32 while the reference runs in float64 from the same start.
# The absolute part is scaled by the array's largest magnitude: momentum buffers and averages are
# sums of terms of that size that partly cancel, so their rounding error is relative to it.
TORCH_OPTIM_TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=2e-6, atol=1e-6)}

# pyoptk against torch.optim itself. Why not bit-identical to torch (measured on torch 2.13 CPU,
# AVX-512 capability):
# - torch's vectorised sqrt is not correctly rounded (about 1% of float64 and 16% of float32
#   results are 1 ulp off IEEE sqrt); pyoptk keeps IEEE sqrt so that every ISA agrees bit for bit;
# - torch's addcmul_ is compiled as fma(value * t1, t2, self) (contracted by its compiler); pyoptk
#   writes it as plain ops like its Adam kernel.
# Adamax, Rprop and ASGD (no sqrt, no addcmul) do match torch bit for bit. The others stay within
# ~1e-14 relative in float64; float32 stays within 1e-5 relative / 1e-6 of the array's scale.
TORCH_OPTIM_TORCH_TOL = {np.float64: dict(rtol=1e-13, atol=1e-15), np.float32: dict(rtol=1e-5, atol=1e-6)}

# ----- beyond torch.optim: tests/reference/beyond_torch.py (written from the papers) -------------
BEYOND_TORCH = [
    ("Lion", {}),
    ("Lion", dict(lr=1e-3, weight_decay=0.1, maximize=True, betas=(0.8, 0.95))),
    ("Adan", dict(lr=1e-2)),
    ("Adan", dict(lr=1e-2, weight_decay=0.1)),  # proximal decay
    ("Adan", dict(lr=1e-2, weight_decay=0.1, no_prox=True, maximize=True, betas=(0.9, 0.8, 0.95))),
    ("ADOPT", dict(lr=1e-2)),
    ("ADOPT", dict(lr=1e-2, weight_decay=0.1)),  # L2 (clipped: see BEYOND_TORCH_TOL)
    ("ADOPT", dict(lr=1e-2, clip_lambda=None)),
    ("ADOPT", dict(lr=1e-2, weight_decay=0.1, decouple=True, maximize=True, betas=(0.8, 0.99))),
    ("AdEMAMix", dict(lr=1e-2)),
    ("AdEMAMix", dict(lr=1e-2, weight_decay=0.1, t_alpha=6, t_beta3=4, maximize=True)),  # warmups end mid-run
    ("LAMB", dict(lr=1e-2)),
    ("LAMB", dict(lr=1e-2, weight_decay=0.1, betas=(0.8, 0.9), maximize=True)),
    ("LARS", dict(lr=0.5)),
    ("LARS", dict(lr=0.5, weight_decay=0.1, nesterov=True, trust_coefficient=0.01, eps=1e-3)),
    ("LARS", dict(lr=0.01, weight_decay=0.1, trust_ratio=False)),
    ("ScheduleFreeSGD", dict(lr=0.1)),
    ("ScheduleFreeSGD", dict(lr=0.1, weight_decay=0.1, warmup_steps=4, r=0.5, momentum=0.8)),
    ("ScheduleFreeAdamW", dict(lr=0.01)),
    ("ScheduleFreeAdamW", dict(lr=0.01, weight_decay=0.1, warmup_steps=4, weight_lr_power=1.0, betas=(0.8, 0.9))),
]
# Against the float64 reference. float64: the kernels fold coefficients on the host (reciprocal
# bias corrections, one division for two addcdiv) and accumulate norms in another order, so a
# few ulps per step over 10 steps. float32: the state runs in float32, the reference in float64
# from the same float32 start; ADOPT's and Adan's normalised grads amplify rounding of small
# second moments, hence 1e-5 for them. The absolute part is scaled by the array's magnitude.
# (ADOPT with L2 decay is tested clipped: where g + wd p cancels to ~1e-6 on step 1, unclipped
# g / sqrt(v) later amplifies the float32-vs-float64 difference of that cancellation ~1e4 times:
# a property of the input, not of the kernel, and both dtypes' runs are right for their dtype.)
BEYOND_TORCH_TOL = {np.float64: dict(rtol=1e-11, atol=1e-13), np.float32: dict(rtol=1e-5, atol=2e-6)}
SCHEDULE_FREE = tuple(n for n, e in ENTRIES.items() if "eval" in e.twin_methods)  # ScheduleFreeSGD / AdamW

# ----- multi-pass: SparseAdam, Adafactor, Muon, LBFGS (tests/test_multipass_algorithms.py) -------
ADAFACTOR = [{}, dict(weight_decay=0.1, maximize=True, d=1.5, lr=0.3), dict(eps=(1e-3, 1e-2), beta2_decay=-0.5)]
ADAFACTOR_IDS = ["default", "wd-max-d", "eps1"]
MUON = [{}, dict(nesterov=False, weight_decay=0.0, adjust_lr_fn="match_rms_adamw", lr=0.02),
        dict(momentum=0.5, ns_steps=3, adjust_lr_fn="original", weight_decay=0.2)]
MUON_IDS = ["default", "plain-rms", "orig"]
SPARSE_ADAM_MAXIMIZE = [False, True]
LBFGS_RUNS = [(None, 0.1, 60), (None, 1.0, 30), ("strong_wolfe", 1.0, 10)]  # line_search_fn, lr, outer steps

# ----- 16-bit params: every element-wise algorithm that takes them (capability from the registry)
MIXED_SGD_ADAM = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
    ("AdamW", dict(lr=0.01, maximize=True, betas=(0.2, 0.9))),
]


def _takes_16bit_in_one_kernel(name: str) -> bool:
    entry = ENTRIES[name]
    return entry.elementwise and entry.low_precision


# Rprop's first step_size is lr: one bfloat16 and float16 hold exactly, so that both runs start alike.
MIXED = MIXED_SGD_ADAM + [(n, dict(kw, lr=2.0 ** -7) if n == "Rprop" else kw) for n, kw in TORCH_OPTIM] + \
    [(n, kw) for n, kw in BEYOND_TORCH if _takes_16bit_in_one_kernel(n)]


# ----- tests/test_step_bits.py: its recorded hashes are keyed by these cases' ids (fixed lists) ----
STEP_BITS_SGD_ADAM = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.25, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02, maximize=True)),
] + [(n, kw) for n, kw in SGD_ADAM if n != "SGD"]
# Every element-wise algorithm that takes 16-bit params (Rprop's lr exact in 16 bits, as above)...
STEP_BITS = STEP_BITS_SGD_ADAM + [(n, dict(lr=2.0 ** -7, **kw)) if n == "Rprop" else (n, kw) for n, kw in TORCH_OPTIM] \
    + [(n, kw) for n, kw in BEYOND_TORCH if _takes_16bit_in_one_kernel(n)]
# ... and those that refuse them or are not one kernel: float32 / float64 only.
STEP_BITS_WIDE_ONLY = [(n, kw) for n, kw in BEYOND_TORCH if not _takes_16bit_in_one_kernel(n)] \
    + [("Adafactor", kw) for kw in ADAFACTOR[:2]]


# ----- the table, per algorithm ------------------------------------------------------------------
@dataclass(frozen=True)
class Algorithm:
    entry: optim.Entry       # the class, its functional form and what it can do (the registry)
    cases: list[dict]        # its hyper-parameter cases
    reference: str           # tests/reference/<module>.py, or "torch" (the multi-pass ones are held to torch)
    tol: Optional[dict[Any, dict]] = None  # per dtype, against the reference (None: its test file says)


def _rows(cases, reference, tol=None):
    names = dict.fromkeys(n for n, _ in cases)
    return {n: Algorithm(ENTRIES[n], [kw for m, kw in cases if m == n], reference, tol) for n in names}


TABLE: dict[str, Algorithm] = {
    **_rows(SGD_ADAM, "sgd_adam"),  # tolerance: reference.sgd_adam.assert_close
    **_rows(TORCH_OPTIM, "torch_optim", TORCH_OPTIM_TOL),
    **_rows(BEYOND_TORCH, "beyond_torch", BEYOND_TORCH_TOL),
    "SparseAdam": Algorithm(ENTRIES["SparseAdam"], [dict(maximize=m) for m in SPARSE_ADAM_MAXIMIZE], "torch"),
    "Adafactor": Algorithm(ENTRIES["Adafactor"], ADAFACTOR, "torch"),
    "Muon": Algorithm(ENTRIES["Muon"], MUON, "torch"),
    "LBFGS": Algorithm(ENTRIES["LBFGS"], [dict(line_search_fn=f, lr=lr) for f, lr, _ in LBFGS_RUNS], "torch"),
}
