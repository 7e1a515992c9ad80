"""Stochastic weight averaging utilities (torch.optim.swa_utils): AveragedParams (the NumPy
counterpart of AveragedModel: SWA or EMA copies of a list of arrays) and the SWALR scheduler."""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ._validate import real_number, whole_count
from ._kernels import FusedStep, Kernel
from .lr_scheduler import LRScheduler, _per_group
from .optimizer import Optimizer

__all__ = ["AveragedParams", "SWALR"]

_AVERAGE = Kernel("average")
_COPY = _AVERAGE.mode(copy=True)
_SWA = _AVERAGE.mode(swa=True)
_EMA = _AVERAGE.mode()


def _check_array(a: Any, where: str, floating: bool = True) -> None:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{where} is a {type(a).__name__}, expected a numpy.ndarray")
    if floating and a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where} has dtype {a.dtype}; AveragedParams averages float32 and float64 arrays")
    if floating and not a.flags.c_contiguous:
        raise ValueError(f"{where} is not C-contiguous; pass np.ascontiguousarray(...) explicitly")


def _array_list(arrays: Any, what: str) -> list[np.ndarray]:
    if isinstance(arrays, np.ndarray):
        return [arrays]
    if isinstance(arrays, (set, frozenset)) or arrays is None:
        raise TypeError(f"{what} must be an ordered sequence of arrays, got {type(arrays).__name__}")
    return list(arrays)


class AveragedParams:
    """Running averages of a list of arrays (torch.optim.swa_utils.AveragedModel over NumPy).

    Each :meth:`update` folds the current params into the averages in place, all arrays in ONE
    fused kernel call (SIMD + OpenMP, bit-identical on every ISA and thread count):

    * ``mode="swa"``: the equal-weight running mean, ``avg += (p - avg) / (n + 1)`` (torch's
      ``get_swa_avg_fn``, a true division in the array dtype), n = ``n_averaged``.
    * ``mode="ema"``: ``avg = lerp(avg, p, 1 - decay_n)`` (torch's ``get_ema_multi_avg_fn``).
      ``decay`` is a float in [0, 1] or a callable ``n_averaged -> decay``. ``warmup=True`` uses
      ``min(decay, (1 + n) / (10 + n))`` (TF's ExponentialMovingAverage ``num_updates``).
      ``bias_correction=True`` keeps the debiased EMA of a zero-started average (Adam's / optax's
      ``debias``): weight ``(1 - d_n) / Z_n`` with ``Z_n = d_n Z_{n-1} + (1 - d_n)``, ``Z_0 = 0``
      (= ``(1 - d) / (1 - d^{n+1})`` for a constant decay).

    The first update copies the params (``n_averaged == 0``), as torch does. Averages start as
    copies of the params and have their dtype and shape.

    ``buffers``: arrays (any dtype; e.g. batch-norm running statistics) kept in sync with the
    live ones by copying on every update, torch's ``use_buffers=False``; with ``use_buffers=True``
    they are averaged like the params instead (then they must be float32/float64).
    """

    def __init__(self, params: Sequence[np.ndarray], mode: str = "swa", decay: float | Callable[[int], float] = 0.999,
                 *, warmup: bool = False, bias_correction: bool = False,
                 buffers: Sequence[np.ndarray] | None = None, use_buffers: bool = False) -> None:
        if mode not in ("swa", "ema"):
            raise ValueError(f"mode must be 'swa' or 'ema', got {mode!r}")
        if not callable(decay):
            decay = float(decay)
            if not 0.0 <= decay <= 1.0:
                raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")
        if mode == "swa" and (warmup or bias_correction):
            raise ValueError("warmup and bias_correction apply to mode='ema' only")
        params = _array_list(params, "params")
        buffers = [] if buffers is None else _array_list(buffers, "buffers")
        for i, p in enumerate(params):
            _check_array(p, f"params[{i}]")
        for i, b in enumerate(buffers):
            _check_array(b, f"buffers[{i}]", floating=use_buffers)
        self.mode = mode
        self.decay = decay
        self.warmup = bool(warmup)
        self.bias_correction = bool(bias_correction)
        self.use_buffers = bool(use_buffers)
        self.params = params
        self.buffers = buffers
        self.n_averaged = 0
        self.ema_norm = 0.0  # Z_n of the bias correction
        self.averages = [np.array(p, order="C", copy=True) for p in params]
        self.buffer_copies = [np.array(b, order="C", copy=True) for b in buffers]

    # ----- the update ---------------------------------------------------------------------
    def _decay(self, n: int) -> float:
        d = float(self.decay(n)) if callable(self.decay) else self.decay
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"decay({n}) = {d} is not in [0, 1]")
        if self.warmup:
            d = min(d, (1.0 + n) / (10.0 + n))
        return d

    def _coeffs(self) -> tuple[int, dict[str, float], float]:
        """(mode, coefficients, new ema_norm) for the update after n_averaged updates."""
        n = self.n_averaged
        if self.mode == "swa":
            return (_COPY if n == 0 else _SWA), {"weight": 0.0, "count": float(n + 1)}, self.ema_norm
        d = self._decay(n)
        z = d * self.ema_norm + (1.0 - d)
        if n == 0:
            return _COPY, {"weight": 1.0, "count": 1.0}, z
        if self.bias_correction:
            weight = (1.0 - d) / z if z > 0 else 0.0
        else:
            weight = 1.0 - d
        return _EMA, {"weight": weight, "count": 1.0}, z

    def _targets(self, params, buffers) -> tuple[list, list]:
        params = self.params if params is None else _array_list(params, "params")
        buffers = self.buffers if buffers is None else _array_list(buffers, "buffers")
        for what, live, own in (("params", params, self.averages), ("buffers", buffers, self.buffer_copies)):
            if len(live) != len(own):
                raise ValueError(f"{what} has {len(live)} arrays, AveragedParams keeps {len(own)}")
            for i, (a, mine) in enumerate(zip(live, own)):
                _check_array(a, f"{what}[{i}]", floating=what == "params" or self.use_buffers)
                if a.shape != mine.shape:
                    raise ValueError(f"{what}[{i}] has shape {a.shape}, its average {mine.shape}")
                if a.dtype != mine.dtype and (what == "params" or self.use_buffers):
                    raise TypeError(f"{what}[{i}] has dtype {a.dtype}, its average {mine.dtype}")
        return params, buffers

    def update(self, params: Sequence[np.ndarray] | None = None, buffers: Sequence[np.ndarray] | None = None) -> None:
        """Fold ``params`` (default: the arrays given at construction) into the averages, in one
        fused call; copy (or, with use_buffers, average) the buffers. n_averaged += 1."""
        params, buffers = self._targets(params, buffers)
        mode, coeffs, z = self._coeffs()
        fused = FusedStep(_AVERAGE)
        slot = fused.slot(None, lambda: coeffs)
        copy_slot = fused.slot("copy", lambda: {"weight": 1.0, "count": 1.0})
        for i, (avg, p) in enumerate(zip(self.averages, params)):
            fused.add(i, mode, slot, avg, p, {})
        plain = []
        for i, (own, b) in enumerate(zip(self.buffer_copies, buffers)):
            if self.use_buffers:
                fused.add(len(params) + i, mode, slot, own, b, {})
            elif own.dtype in (np.float32, np.float64) and b.dtype == own.dtype and b.flags.c_contiguous:
                fused.add(len(params) + i, _COPY, copy_slot, own, b, {})
            else:
                plain.append((own, b))
        fused.run()
        for own, b in plain:
            np.copyto(own, b, casting="same_kind")
        self.ema_norm = z
        self.n_averaged += 1

    update_parameters = update  # torch's name

    # ----- using the averages ---------------------------------------------------------------
    def _pairs(self, params, buffers):
        params, buffers = self._targets(params, buffers)
        return list(zip(self.averages, params)) + list(zip(self.buffer_copies, buffers))

    def copy_to(self, params: Sequence[np.ndarray] | None = None, buffers: Sequence[np.ndarray] | None = None) -> None:
        """Write the averages (and buffer copies) into ``params`` (default: the live params) in place."""
        for own, live in self._pairs(params, buffers):
            if not live.flags.writeable:
                raise ValueError("cannot copy the averages into a read-only array")
            np.copyto(live, own, casting="same_kind")

    @contextlib.contextmanager
    def swapped(self, params: Sequence[np.ndarray] | None = None,
                buffers: Sequence[np.ndarray] | None = None) -> Iterator[list[np.ndarray]]:
        """``with avg.swapped(): evaluate()`` -- the live arrays hold the averages inside the block
        and their own values again after it (also on an exception). Contents are swapped in place,
        so references to the live arrays stay valid. Yields the live params."""
        pairs = self._pairs(params, buffers)
        for _, live in pairs:
            if not live.flags.writeable:
                raise ValueError("cannot swap the averages into a read-only array")
        swap_all = lambda: [self._swap(own, live) for own, live in pairs]  # noqa: E731
        swap_all()
        try:
            yield [live for _, live in pairs[:len(self.averages)]]
        finally:
            swap_all()

    @staticmethod
    def _swap(a: np.ndarray, b: np.ndarray) -> None:
        tmp = a.copy()
        np.copyto(a, b, casting="same_kind")
        np.copyto(b, tmp, casting="same_kind")

    # ----- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"mode", "n_averaged", "ema_norm", "averages": [...], "buffers": [...]}``; the arrays
        are references to the live averages (copy.deepcopy the result to snapshot it)."""
        return {"mode": self.mode, "n_averaged": self.n_averaged, "ema_norm": self.ema_norm,
                "averages": list(self.averages), "buffers": list(self.buffer_copies)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a checkpoint of an AveragedParams over arrays of the same shapes. Everything is
        checked before anything changes; values are copied into the existing averages."""
        if not isinstance(state_dict, dict):
            raise ValueError("state_dict must be a dict")
        expected = {"mode", "n_averaged", "ema_norm", "averages", "buffers"}
        unknown, missing = sorted(set(state_dict) - expected), sorted(expected - set(state_dict))
        if unknown or missing:
            raise ValueError("AveragedParams state_dict: " + "; ".join(
                ([f"unknown keys {unknown}"] if unknown else []) + ([f"missing keys {missing}"] if missing else [])))
        if state_dict["mode"] != self.mode:
            raise ValueError(f"state_dict holds {state_dict['mode']!r} averages, this AveragedParams is {self.mode!r}")
        n = whole_count(state_dict["n_averaged"], "n_averaged")
        z = real_number(state_dict["ema_norm"], "ema_norm", 0.0, 1.0)
        loaded = []
        for what, saved, own in (("averages", state_dict["averages"], self.averages),
                                 ("buffers", state_dict["buffers"], self.buffer_copies)):
            saved = list(saved)
            if len(saved) != len(own):
                raise ValueError(f"state_dict has {len(saved)} {what}, AveragedParams keeps {len(own)}")
            for i, (value, mine) in enumerate(zip(saved, own)):
                value = np.asarray(value)
                if value.shape != mine.shape:
                    raise ValueError(f"state_dict {what}[{i}] has shape {value.shape}, expected {mine.shape}")
                if np.issubdtype(mine.dtype, np.floating) and not np.issubdtype(value.dtype, np.floating):
                    raise ValueError(f"state_dict {what}[{i}] has dtype {value.dtype}, expected floating point")
                loaded.append((mine, value))
        for mine, value in loaded:
            np.copyto(mine, value, casting="unsafe")
        self.n_averaged = n
        self.ema_norm = z

    def __repr__(self) -> str:
        return (f"AveragedParams(mode={self.mode!r}, arrays={len(self.averages)}, n_averaged={self.n_averaged}"
                + (f", decay={self.decay!r}" if self.mode == "ema" else "") + ")")


class SWALR(LRScheduler):
    """Anneal each group's lr to ``swa_lr`` over ``anneal_epochs`` steps, then hold it
    (torch.optim.swa_utils.SWALR). With t = min(1, step / anneal_epochs) and
    alpha = (1 - cos(pi t)) / 2 ("cos") or t ("linear"), lr_t = swa_lr * alpha + lr_0 * (1 - alpha),
    where lr_0 is the lr the group had when annealing started. As in torch, lr_0 is recovered each
    step from the current lr, so another scheduler's changes to the lr carry through."""

    def __init__(self, optimizer: Optimizer, swa_lr: float | Sequence[float], anneal_epochs: int = 10,
                 anneal_strategy: str = "cos", last_epoch: int = -1) -> None:
        for value, group in zip(_per_group("swa_lr", optimizer, swa_lr), optimizer.param_groups):
            group["swa_lr"] = value
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self._anneal_strategy = anneal_strategy
        if not isinstance(anneal_epochs, int) or isinstance(anneal_epochs, bool) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    def anneal_func(self, t: float) -> float:
        """The annealing curve from 0 to 1 over ``t`` in [0, 1]: half a cosine or a line (``anneal_strategy``)."""
        return (1 - math.cos(math.pi * t)) / 2 if self._anneal_strategy == "cos" else t

    @staticmethod
    def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        """Invert lr = swa_lr * alpha + lr_0 * (1 - alpha) for lr_0."""
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(self) -> list[float]:
        self._warn_if_called_outside_step()
        step = self._step_count - 1  # 0 on the construction step
        if self.anneal_epochs == 0:
            step = max(1, step)
        span = max(1, self.anneal_epochs)
        prev_alpha = self.anneal_func(max(0, min(1, (step - 1) / span)))
        alpha = self.anneal_func(max(0, min(1, step / span)))
        groups = self.optimizer.param_groups
        starts = [self._get_initial_lr(g["lr"], g["swa_lr"], prev_alpha) for g in groups]
        return [g["swa_lr"] * alpha + lr0 * (1 - alpha) for g, lr0 in zip(groups, starts)]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        state.pop("anneal_func", None)
        super().load_state_dict(state)
