"""L-BFGS: torch.optim.LBFGS's names, defaults, state and iteration, closure-driven, over NumPy
vectors (the flattened params). The vector work is the deterministic ``_core.dot`` reduction (fixed
summation order: the same bits for any thread count and ISA, unlike BLAS ddot), NumPy
element-wise ops and the fused ``decayed_add`` kernel for ``x += alpha * y`` (one fma, as torch's
``add_(alpha=)``)."""
from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np

from .. import _core
from .._kernels import FusedStep, Kernel
from .._precision import MASTER_KEY
from .._validate import is_real, real_number, whole_count
from ..optimizer import Optimizer, hyper_values
from ._low import Rounding, compute_dtype

__all__ = ["LBFGS"]

_AXPY = Kernel("decayed_add")


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """x . y through the deterministic reduction kernel (fixed summation order, float64
    accumulation; the same bits for any thread count and ISA)."""
    return _core.dot([x], [y])


def _axpy(alpha: float, y: np.ndarray, x: np.ndarray) -> None:
    """x += alpha * y in place, as one fma per element: torch's ``x.add_(y, alpha=alpha)``."""
    fused = FusedStep(_AXPY)
    fused.add(0, 0, fused.slot(0, lambda: {"alpha": alpha, "decay": 1.0}), x, y, {})
    fused.run()


_ARRAY_KEYS = ("d", "prev_flat_grad")
_LIST_KEYS = ("old_dirs", "old_stps")


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    # torch.optim.lbfgs._cubic_interpolate (from minFunc), on floats.
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    # torch.optim.lbfgs._strong_wolfe, step for step (same brackets, same evaluation count).
    d_norm = float(np.max(np.abs(d)))
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = _dot(g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new.copy(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new.copy(), gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


_num = is_real


class LBFGS(Optimizer):
    """L-BFGS, as ``torch.optim.LBFGS`` (torch 2.13): one param group; ``step(closure)`` with
    ``closure() -> (loss, grads)`` (one grad per param, None = zeros), called as often as the
    iteration needs (at most ``max_eval`` times per step). ``line_search_fn``: None or
    "strong_wolfe". State (on the first param, as torch): ``func_evals``, ``n_iter``, ``d``, ``t``,
    ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss``, ``al``; its
    arrays are flat vectors over all params, its scalars floats.

    Numerics against torch: dot products go through a fixed-order float64 reduction (the same bits
    for any thread count and ISA). torch's dot products and the L1 norm of the first grad sum in
    their own order, so results can differ from torch's in the last bits, for short vectors too
    (the tests' Rosenbrock trajectories agree with torch's to 1e-12, relative); not bit-identical.

    bfloat16 / float16 params: the flat vectors (grad, direction, history) are float32, whatever
    the params' dtype (``state_dtype`` may only be None or "float32": a 16-bit curvature history
    would lose what L-BFGS is for); each param update ``p += t d`` is one fused float32 pass that
    rounds the param to nearest even or, with ``stochastic_rounding``, stochastically (one
    rounding step per update). ``master_weights``: state ``master_param`` is a float32 flat vector
    over all params (like ``d``); updates go to it and the params are its rounded values. The
    closure always sees the 16-bit params.
    """

    has_step = False
    runs_on_cuda = False
    step_params_refusal = "its step is an iteration over all params at once (flat vectors, a line search), driven by a closure"

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: Optional[int] = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: Optional[str] = None, **precision):
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        self._check_group(defaults)
        super().__init__(params, defaults, **precision)
        if self.precision.state_dtype not in (None, np.dtype(np.float32)):
            raise ValueError(f"Invalid state_dtype for LBFGS: {self.precision.state_dtype.name} (its vectors are "
                             "float32 for float32 and 16-bit params: None or float32)")
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._flat_params = self.param_groups[0]["params"]

    def _check_group(self, group):
        group = hyper_values(group)  # a 0-d lr is checked by its value
        if not _num(group["lr"]):
            raise ValueError(f"Invalid learning rate: {group['lr']!r} (expected a real number)")
        if not 0.0 <= group["lr"]:
            raise ValueError(f"Invalid learning rate: {group['lr']}")
        for name in ("max_iter", "max_eval", "history_size"):
            v = group[name]
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Invalid {name}: {v!r} (expected a positive int)")
        for name in ("tolerance_grad", "tolerance_change"):
            if not _num(group[name]):
                raise ValueError(f"Invalid {name}: {group[name]!r} (expected a real number)")
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"only 'strong_wolfe' is supported, got line_search_fn={group['line_search_fn']!r}")

    def _group_mode(self, group):
        return 0

    def add_param_group(self, param_group):
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    # ----- flat vectors over the params ---------------------------------------------------
    def _dtype(self):
        """The flat vectors' dtype: the params' compute dtype (float32 for 16-bit params)."""
        return compute_dtype(np.result_type(*self._flat_params))

    def _gather_flat_grad(self, grads) -> np.ndarray:
        if isinstance(grads, np.ndarray) or len(grads) != len(self._flat_params):
            raise ValueError(f"the closure must return (loss, grads) with one grad per param ({len(self._flat_params)})")
        out = np.empty(sum(p.size for p in self._flat_params), self._dtype())
        offset = 0
        for i, (p, g) in enumerate(zip(self._flat_params, grads)):
            if g is None:
                out[offset:offset + p.size] = 0
            else:
                if isinstance(g, np.ma.MaskedArray):  # copied below: its mask would be dropped silently
                    raise TypeError(f"param {i} grad is a numpy.ma.MaskedArray; pyoptk would ignore its mask: pass "
                                    "its .data (or np.ma.filled(...)) explicitly")
                g = np.asarray(g)
                if g.shape != p.shape:
                    raise ValueError(f"param {i} grad has shape {g.shape}, expected {p.shape} (the param's shape)")
                out[offset:offset + p.size] = g.reshape(-1)
            offset += p.size
        return out

    def _evaluate(self, closure) -> tuple[float, np.ndarray, Any]:
        result = closure()
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError("LBFGS needs closure() -> (loss, grads)")
        loss, grads = result
        return float(loss), self._gather_flat_grad(grads), loss

    def _add_grad(self, step_size: float, update: np.ndarray) -> None:
        """p += step_size * update for every param, in one fused pass (onto the master copy under
        master weights, the param written as its rounding)."""
        fused = FusedStep(_AXPY)
        slot = fused.slot(0, lambda: {"alpha": step_size, "decay": 1.0})
        offset = 0
        for i, (p, m) in enumerate(zip(self._flat_params, self._masters())):
            piece = update[offset:offset + p.size].reshape(p.shape)
            fused.add(i, 0, slot, p, piece, {} if m is None else {MASTER_KEY: m})
            offset += p.size
        rounding = Rounding(self)
        fused.run(rounding_key=rounding.key())
        rounding.commit()

    def _masters(self) -> list:
        """Each param's float32 master copy (views of state["master_param"]), or Nones."""
        key = self._flat_params[0]
        flat = self.state[key].get(MASTER_KEY) if key in self.state else None
        if flat is None:
            return [None] * len(self._flat_params)
        bounds = np.cumsum([p.size for p in self._flat_params])[:-1]
        return [piece.reshape(p.shape) for piece, p in zip(np.split(flat, bounds), self._flat_params)]

    def _clone_param(self):
        return [p.copy() for p in self._flat_params] + [None if m is None else m.copy() for m in self._masters()]

    def _set_param(self, params_data) -> None:
        for p, pdata in zip(self._flat_params + self._masters(), params_data):
            if pdata is not None:
                np.copyto(p, pdata)

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss, flat_grad, _ = self._evaluate(closure)
        self._set_param(x)
        return loss, flat_grad

    # ----- the step -------------------------------------------------------------------------
    def step(self, closure: Callable | None = None, grads: None = None) -> Any:  # type: ignore[override]
        """One L-BFGS step (up to ``max_iter`` iterations). Returns the closure's first loss."""
        if closure is None or not callable(closure):
            raise TypeError("LBFGS.step needs a closure: step(closure) with closure() -> (loss, grads)")
        if grads is not None:
            raise ValueError("LBFGS.step takes a closure, not grads")
        group = hyper_values(self._hyper_groups()[0])  # a 0-d lr (changed in place by a scheduler) as its value
        self._check_group(group)
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]

        key = self._flat_params[0]
        state = self.state[key] if key in self.state else {}
        self.state[key] = state
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        if self._keeps_master(key) and MASTER_KEY not in state:  # exact
            state[MASTER_KEY] = np.concatenate([p.reshape(-1) for p in self._flat_params]).astype(np.float32)

        loss, flat_grad, orig_loss = self._evaluate(closure)
        current_evals = 1
        state["func_evals"] += 1
        if np.max(np.abs(flat_grad), initial=0.0) <= tolerance_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = np.negative(flat_grad)
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = np.subtract(flat_grad, prev_flat_grad)
                s = np.multiply(d, t)
                ys = _dot(y, s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / _dot(y, y)
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                # two-loop recursion
                q = np.negative(flat_grad)
                for i in range(num_old - 1, -1, -1):
                    al[i] = _dot(old_stps[i], q) * ro[i]
                    _axpy(-al[i], old_dirs[i], q)
                d = r = np.multiply(q, H_diag)
                for i in range(num_old):
                    be_i = _dot(old_dirs[i], r) * ro[i]
                    _axpy(al[i] - be_i, old_stps[i], r)

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                np.copyto(prev_flat_grad, flat_grad)
            prev_loss = loss

            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / float(np.sum(np.abs(flat_grad)))) * lr
            else:
                t = lr
            gtd = _dot(flat_grad, d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = np.max(np.abs(flat_grad)) <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:
                    loss, flat_grad, _ = self._evaluate(closure)
                    opt_cond = np.max(np.abs(flat_grad)) <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if np.max(np.abs(np.multiply(d, t))) <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss

    # ----- checkpoints --------------------------------------------------------------------
    def _load_param_state(self, key, p, group, saved):
        if key != 0 or p is not self._flat_params[0]:
            raise ValueError(f"LBFGS keeps its state on param 0; the state dict has state for param {key}")
        known = {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad",
                 "prev_loss", "al"} | ({MASTER_KEY} if self._keeps_master(p) else set())
        unknown = sorted(set(saved) - known)
        if unknown:
            raise ValueError(f"state of param {key}: unknown keys {unknown} (LBFGS keeps {sorted(known)})")
        if self._keeps_master(p) and MASTER_KEY not in saved:
            raise ValueError(f"state of param {key}: missing keys ['{MASTER_KEY}'] (LBFGS with master weights)")
        n, dtype = sum(q.size for q in self._flat_params), self._dtype()

        def vector(name, v):
            a = np.asarray(v)
            if a.shape != (n,):
                raise ValueError(f"state of param {key}: '{name}' has shape {a.shape}, expected ({n},)")
            return np.array(a, dtype=dtype, copy=True)

        def scalar(name, v):
            return None if v is None else real_number(v, f"state of param {key}: '{name}'", finite=False)

        out: dict[str, Any] = {}
        for name, v in saved.items():
            if name == MASTER_KEY:
                out[name] = vector(name, v)
            elif name in _ARRAY_KEYS:
                out[name] = None if v is None else vector(name, v)
            elif name in _LIST_KEYS:
                out[name] = [vector(name, x) for x in v]
            elif name in ("ro", "al"):
                if not isinstance(v, (list, tuple)):
                    raise ValueError(f"state of param {key}: '{name}' must be a list of numbers")
                out[name] = [scalar(name, x) for x in v]
            elif name in ("func_evals", "n_iter"):
                out[name] = whole_count(v, f"state of param {key}: '{name}'")
            else:
                out[name] = scalar(name, v)
        return out
