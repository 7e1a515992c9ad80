"""SparseAdam: torch.optim.SparseAdam over row-sparse gradients (``SparseGrad``), as a fused kernel
run over the touched rows only."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from .._kernels import Kernel
from .._precision import MASTER_KEY, is_low_precision
from .._validate import is_real, whole_count
from ..optimizer import Optimizer, hyper_values
from ._common import check_bool
from ._low import Rounding, state_dtype_ok, widened

__all__ = ["SparseAdam", "SparseGrad", "sparse_adam"]

KERNEL = Kernel("sparse_adam")


class SparseGrad:
    """A row-sparse gradient, as ``nn.Embedding(sparse=True)`` produces: ``values[k]`` is the
    gradient of row ``indices[k]`` of the param (its leading axis). Repeated indices are summed
    (torch's ``coalesce``); rows not listed have zero gradient and are left untouched.

    indices: 1-D integer array; values: shape ``(len(indices),) + param.shape[1:]``, the param's dtype
    (or float32 for a bfloat16 / float16 param).
    """

    __slots__ = ("indices", "values")

    def __init__(self, indices, values):
        self.indices = np.asarray(indices)
        self.values = values

    def check(self, p: np.ndarray, where: str) -> None:
        """Raise a clear error if this grad cannot apply to param ``p``."""
        idx, vals = self.indices, self.values
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"{where} SparseGrad indices have dtype {idx.dtype}, expected an integer dtype")
        if idx.ndim != 1:
            raise ValueError(f"{where} SparseGrad indices must be 1-D, got shape {idx.shape}")
        if p.ndim < 1:
            raise ValueError(f"{where} is 0-d; a SparseGrad indexes the param's leading axis")
        if idx.size and (idx.min() < 0 or idx.max() >= p.shape[0]):
            bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
            raise IndexError(f"{where} SparseGrad index {bad} is out of range for a param with {p.shape[0]} rows")
        if not isinstance(vals, np.ndarray):
            raise TypeError(f"{where} SparseGrad values are a {type(vals).__name__}, expected a numpy.ndarray")
        if vals.dtype != p.dtype and not (is_low_precision(p.dtype) and vals.dtype == np.float32):
            also = " or float32" if is_low_precision(p.dtype) else ""
            raise TypeError(f"{where} SparseGrad values have dtype {vals.dtype}, expected {p.dtype} (the param's "
                            f"dtype){also}")
        want = (idx.shape[0],) + p.shape[1:]
        if vals.shape != want:
            raise ValueError(f"{where} SparseGrad values have shape {vals.shape}, expected {want} "
                             "(len(indices),) + param.shape[1:]")

    def coalesce(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique rows as int64, their summed values), like torch's ``coalesce``. 16-bit
        repeats are summed in float32 (the sum is float32; the kernel takes it as it is)."""
        rows, inverse = np.unique(self.indices.astype(np.int64, copy=False), return_inverse=True)
        if rows.size == self.indices.size:  # no repeats: only a reorder
            out = np.empty_like(self.values)
            out[inverse] = self.values
            return rows, out
        values = widened(self.values)
        out = np.zeros((rows.size,) + values.shape[1:], values.dtype)
        np.add.at(out, inverse.reshape(-1), values)  # sums repeats in order of appearance
        return rows, out

    def __repr__(self) -> str:
        return f"SparseGrad(indices={self.indices!r}, values=<{self.values.dtype} {self.values.shape}>)"


def _check(h: dict[str, Any]) -> None:
    h = hyper_values(h)  # a 0-d lr is checked by its value
    for name, what in (("lr", "learning rate"), ("eps", "epsilon value")):
        v = h[name]
        if not is_real(v):
            raise ValueError(f"Invalid {what}: {v!r} (expected a real number that fits a float)")
        if not 0.0 < v:
            raise ValueError(f"Invalid {what}: {v}")
    betas = h["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"Invalid betas: {betas!r} (expected a pair of numbers)")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    check_bool(h["maximize"], "maximize")


def _coeffs(lr: float, beta1: float, beta2: float, eps: float, step: int) -> list[float]:
    values = KERNEL.coeffs({"lr": lr, "betas": (beta1, beta2), "eps": eps}, step)
    return [values[n] for n in KERNEL.coeff_names]


def _check_sparse(p: np.ndarray, g: Any, where: str) -> None:
    if not isinstance(g, SparseGrad):
        raise RuntimeError("SparseAdam does not support dense gradients, please consider Adam instead"
                           f" ({where} grad is a {type(g).__name__}; pass a pyoptk.SparseGrad)")
    g.check(p, where)


def sparse_adam(params, grads, exp_avgs, exp_avg_sqs, state_steps, *, eps: float, beta1: float, beta2: float,
                lr: float, maximize: bool) -> None:
    """Functional SparseAdam (torch.optim._functional.sparse_adam's signature). As in torch,
    ``state_steps`` are the already-incremented step counts (ints) and are not changed here.
    Every grad is checked before any param is touched."""
    _check(dict(lr=lr, eps=eps, betas=(beta1, beta2), maximize=maximize))
    n = len(params)
    for what, seq in (("grads", grads), ("exp_avgs", exp_avgs), ("exp_avg_sqs", exp_avg_sqs),
                      ("state_steps", state_steps)):
        if len(seq) != n:
            raise ValueError(f"{what} has {len(seq)} entries for {n} params")
    for i, (p, g) in enumerate(zip(params, grads)):
        _check_sparse(p, g, f"param {i}")
        for what, s in (("exp_avg", exp_avgs[i]), ("exp_avg_sq", exp_avg_sqs[i])):
            if not isinstance(s, np.ndarray) or s.shape != p.shape or not state_dtype_ok(p.dtype, s.dtype):
                raise ValueError(f"param {i} {what} must be an array of the param's shape and dtype "
                                 "(or float32 / bfloat16 for a 16-bit or float32 param)")
    steps = [whole_count(t, f"state_steps[{i}]") for i, t in enumerate(state_steps)]
    if any(t < 1 for t in steps):
        raise ValueError(f"state_steps must be >= 1 (already incremented, as torch's), got {list(state_steps)}")
    items, coeffs = [], []
    _add_rows(items, coeffs, range(n), params, grads, exp_avgs, exp_avg_sqs, [None] * n, steps,
              lr=lr, beta1=beta1, beta2=beta2, eps=eps, maximize=maximize)
    _core.step_rows(KERNEL.name, items, coeffs)


def _add_rows(items: list, coeffs: list, indices, params, grads, exp_avgs, exp_avg_sqs, masters, steps, *, lr, beta1,
              beta2, eps, maximize) -> None:
    """Row items (and their coefficient sets) for one set of hyper-parameters; _core.step_rows
    checks all of them before it writes any row. masters[i]: the float32 master copy of a 16-bit
    param (master weights: the kernel updates it and writes the param's rows from it), or None."""
    mode = KERNEL.mode(maximize=maximize)
    for i, p, g, m, v, master, t in zip(indices, params, grads, exp_avgs, exp_avg_sqs, masters, steps):
        if g.values.size == 0:  # torch skips an empty grad (its step still counts)
            continue
        rows, values = g.coalesce()
        coeffs.append(_coeffs(lr, beta1, beta2, eps, t))
        if master is None:
            items.append((i, mode, len(coeffs) - 1, p, values, rows, m, v))
        else:
            items.append((i, mode, len(coeffs) - 1, master, values, rows, m, v, p))


class SparseAdam(Optimizer):
    r"""SparseAdam, as ``torch.optim.SparseAdam`` (torch 2.13): Adam restricted to the rows a
    row-sparse gradient touches (embedding tables). Grads are ``pyoptk.SparseGrad(indices, values)``;
    dense grads raise, as in torch. For each touched row (repeated indices summed first):

    .. math::
        m \mathrel{+}= (g - m)(1-\beta_1);\quad v \mathrel{+}= (g^2 - v)(1-\beta_2);\quad
        p \mathrel{-}= \frac{\gamma\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,\frac{m}{\sqrt{v} + \epsilon}

    m, v and p of untouched rows do not change. State: ``step`` (int, counts every step with a
    grad, even an empty one), ``exp_avg``, ``exp_avg_sq``.

    Numerics against torch: the same operations in the same order. The last bits can differ where
    torch's vectorised sqrt is not correctly rounded, or where three or more duplicate indices are
    summed in another order.

    bfloat16 / float16 params (``state_dtype``, ``master_weights``, ``stochastic_rounding`` as for
    the element-wise optimizers): the touched rows are staged like a dense step (float32 math,
    rounded when stored); grad values in the param's dtype or float32; repeated indices summed in
    float32. Stochastic rounding keys each row by (seed, step, param, row, element).
    """

    kernel = KERNEL
    runs_on_cuda = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 maximize: bool = False, **precision):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps, maximize=maximize)
        _check(defaults)
        super().__init__(params, defaults, **precision)

    def _check_group(self, group):
        _check(group)

    def _group_mode(self, group):
        return KERNEL.mode(maximize=group["maximize"])

    def step(self, grads=None, closure=None):
        """Update the rows each ``SparseGrad`` touches. Returns the closure's loss (or None). Every
        grad is checked before anything changes."""
        loss, grads = self._collect_grads(grads, closure)
        todo = []
        index = 0
        for group, hyper in zip(self.param_groups, self._hyper_groups()):
            for p in group["params"]:
                g = grads[index]
                if g is not None:
                    _check_sparse(p, g, f"param {index}")
                    todo.append((hyper_values(hyper), p, g, index))  # a 0-d lr as its value
                index += 1
        items, coeffs, pending = [], [], []
        for group, p, g, index in todo:
            state = dict(self.state[p]) if p in self.state else self._fresh_state(p)
            state["step"] += 1
            beta1, beta2 = group["betas"]
            _add_rows(items, coeffs, [index], [p], [g], [state["exp_avg"]], [state["exp_avg_sq"]],
                      [state.get(MASTER_KEY)], [state["step"]],
                      lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], maximize=group["maximize"])
            pending.append((p, state))
        rounding = Rounding(self)
        _core.step_rows(KERNEL.name, items, coeffs, rounding.key())  # all params' rows, checked first, in one call
        rounding.commit()
        for p, state in pending:
            self.state[p] = state
        return loss

    def _fresh_state(self, p):
        dtype = self.precision.state_dtype_for(p.dtype)
        state = {"step": 0, "exp_avg": np.zeros(p.shape, dtype), "exp_avg_sq": np.zeros(p.shape, dtype)}
        if self._keeps_master(p):
            state[MASTER_KEY] = p.astype(np.float32)  # exact
        return state
