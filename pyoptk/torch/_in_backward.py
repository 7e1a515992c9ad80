"""The step inside the backward pass: each param is updated as soon as its grad is accumulated
(torch's ``register_post_accumulate_grad_hook``), params whose grads finish together in one
planned call (a bucket, ``Optimizer.step_params``), and its grad freed at once.

A bucket's update is the one ``step()`` would make (each param's own step count, its group's
hyper-parameters as they are during that backward), so a backward here equals a backward and a
step in the ordinary mode, bit for bit. What this mode cannot do that way is refused with an
error that says what to do instead, never done differently: a second backward before the step
boundary the training loop marks (``accumulate_steps``), a global grad norm, GradScaler's
found_inf (known only after the whole backward), an all-reduce the mode was not told to wait for.
"""
from __future__ import annotations

import functools
import math
import warnings
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import torch

from .. import _core
from ._dtensor import is_dtensor

if TYPE_CHECKING:
    from ._adapter import TorchOptimizer

__all__ = ["InBackward"]


@dataclass(frozen=True)
class InBackward:
    """How an optimizer steps inside the backward (``step_in_backward=InBackward(...)``;
    ``step_in_backward=True`` takes these defaults).

    ``bucket_bytes``: params are stepped once this many bytes of them have their grads ready
    (in backward order), the rest at the end of the backward; 0 steps each param alone.
    ``keep_grads``: leave ``p.grad`` set after the step (the default frees it: ``p.grad = None``).
    ``accumulate_steps``: N > 1 accumulates the grads of N backwards and steps in the Nth.
    ``clip_grad_norm_per_param``: clip each param's grad to this norm (2-norm,
    ``torch.nn.utils.clip_grad_norm_([p], max_norm)`` per param) before its step.
    ``clip_grad_norm``: a global norm over all grads needs every grad before any step: refused.
    ``after_ddp``: the model is wrapped in DistributedDataParallel: step at the end of the
    backward, once DDP's all-reduce wrote the averaged grads (required in a distributed job)."""

    bucket_bytes: int = 1 << 20
    keep_grads: bool = False
    accumulate_steps: int = 1
    clip_grad_norm_per_param: Optional[float] = None
    clip_grad_norm: Optional[float] = None
    after_ddp: bool = False

    def __post_init__(self) -> None:
        if self.clip_grad_norm is not None:
            raise ValueError("clip_grad_norm (a global norm over all grads) cannot be honoured when stepping in the "
                             "backward: the first params are stepped before the last grads exist. Use "
                             "clip_grad_norm_per_param (each param's grad clipped alone) or the ordinary mode")
        if isinstance(self.bucket_bytes, bool) or not isinstance(self.bucket_bytes, int) or self.bucket_bytes < 0:
            raise ValueError(f"bucket_bytes must be an int >= 0, got {self.bucket_bytes!r}")
        if isinstance(self.accumulate_steps, bool) or not isinstance(self.accumulate_steps, int) \
                or self.accumulate_steps < 1:
            raise ValueError(f"accumulate_steps must be an int >= 1, got {self.accumulate_steps!r}")
        if self.clip_grad_norm_per_param is not None and not float(self.clip_grad_norm_per_param) > 0:
            raise ValueError(f"clip_grad_norm_per_param must be > 0, got {self.clip_grad_norm_per_param!r}")


def options(value: Any) -> InBackward | None:
    """The ``step_in_backward`` argument as options (None: the ordinary mode)."""
    if value is False or value is None:
        return None
    if value is True:
        return InBackward()
    if isinstance(value, InBackward):
        return value
    raise TypeError(f"step_in_backward must be True, False or a pyoptk.torch.InBackward, got {type(value).__name__}")


# ----- GradScaler: known at the first node of a scaled loss's backward -------------------------
# A hook sees a scaled grad like any other, and the backward's first hook would step with it. So
# torch.amp.GradScaler.scale is wrapped (once, when the first optimizer is armed; what it returns
# is unchanged): the scaled outputs' grad_fn gets a pre-hook, which runs before any node below it,
# so before any param's hook, and marks its backward (autograd's graph task id: a backward that
# raised leaves no stale mark on the next one).
_scaled_task = -1


def _mark_scaled(grad_outputs: Any) -> None:
    global _scaled_task
    _scaled_task = torch._C._current_graph_task_id()


def _in_scaled_backward() -> bool:
    return _scaled_task >= 0 and _scaled_task == torch._C._current_graph_task_id()


def _mark(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        if value.grad_fn is not None:
            value.grad_fn.register_prehook(_mark_scaled)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(map(_mark, value))
    return map(_mark, value)  # another iterable (GradScaler returns a lazy map): marked as it is read


def _watch_grad_scaler() -> None:
    original = torch.amp.GradScaler.scale
    if getattr(original, "_pyoptk_marks", False):
        return

    @functools.wraps(original)
    def scale(self: torch.amp.GradScaler, outputs: Any) -> Any:
        scaled = original(self, outputs)
        return scaled if scaled is outputs else _mark(scaled)  # a disabled scaler returns outputs as they are

    scale._pyoptk_marks = True  # type: ignore[attr-defined]
    torch.amp.GradScaler.scale = scale  # type: ignore[method-assign]


_OWNER = "_pyoptk_step_in_backward"  # on each hooked param: (its stepper, weakly; the hook's handle)


def _hook(me: weakref.ref, i: int, size: int) -> Callable[[torch.Tensor], None]:
    """The hook of param ``i`` (``size`` bytes): the least work per param (torch's call into it
    costs more than all of it), a bucket's step when the bucket is full."""
    def grad_ready(p: torch.Tensor) -> None:
        stepper = me()
        if stepper is None:  # its optimizer is gone: nothing steps p in the backward
            return
        if not stepper.open:  # the first grad of a backward, or one that only accumulates
            if stepper.in_backward:
                return
            stepper.begin()
            if not stepper.open:
                return
        stepper.pending.append(i)
        stepper.pending_bytes += size
        if stepper.pending_bytes >= stepper.bucket_bytes:
            stepper.flush_in_backward()
    return grad_ready


class BackwardStepper:
    """The hooks and bookkeeping of one optimizer in this mode."""

    def __init__(self, opt: TorchOptimizer, opts: InBackward):
        refusal = opt.core_class.step_params_refusal
        if refusal is not None or opt.closure_driven:
            raise TypeError(f"{type(opt).__name__} cannot step inside the backward: {refusal}")
        _watch_grad_scaler()
        self.opt = opt
        self.options = opts
        # Pending params are stepped once this many bytes of them are; DDP's: all at the end.
        self.bucket_bytes = math.inf if opts.after_ddp else opts.bucket_bytes
        self.hooked: set[int] = set()  # id() of the params hooked
        self.ptrs: dict[int, int] = {}  # position -> the data pointer its view was made with (the Python path's check)
        self.params: list[torch.Tensor] = []  # the optimizer's params in step()'s order, as of this backward
        self.pending: list[int] = []  # positions of the params whose grads are ready, not stepped yet
        self.pending_bytes = 0
        self.stepped: set[int] = set()  # positions stepped in this backward
        self.in_backward = False
        self.stepping = False  # this backward is one that steps (the Nth with accumulate_steps)
        self.open = False  # in a backward that steps: the hooks collect their params
        self.backwards = 0  # backwards since the last step boundary the training loop marked
        self.accumulated = 0  # backwards whose grads wait for the Nth
        self.boundaries = False  # the loop calls step() / zero_grad(): a second backward before one is refused
        self.noted = False

    def watch(self) -> None:
        """Hook every param not hooked yet (the optimizer's params, including groups added since).
        A param has one such hook: the optimizer armed last over it steps it (one made to load a
        checkpoint replaces the one before, which no longer steps that param)."""
        me = weakref.ref(self)
        self.params = self.opt._torch_params()
        for i, p in enumerate(self.params):
            if id(p) in self.hooked:
                continue
            if is_dtensor(p):
                raise TypeError(f"param {i} is a DTensor (FSDP2): this mode does not step FSDP2's sharded params "
                                "(FSDP2 calls their hooks after each reduce-scatter, with the sharded grads; that "
                                "path is not supported); step FSDP2 models in the ordinary mode")
            self.hooked.add(id(p))
            self.ptrs[i] = p.data_ptr()
            if p.requires_grad:
                before = getattr(p, _OWNER, None)
                if before is not None:
                    before[1].remove()
                hook = _hook(me, i, p.numel() * p.element_size())
                setattr(p, _OWNER, (me, p.register_post_accumulate_grad_hook(hook)))

    # ----- inside the backward ----------------------------------------------------------------
    def flush_in_backward(self) -> None:
        try:
            self.flush()
        except BaseException:  # the backward stops here: the next one starts afresh
            self.in_backward = self.open = False
            self.pending, self.pending_bytes = [], 0
            raise

    def begin(self) -> None:
        """The first grad of a backward: the checks, and the callback at its end."""
        if _in_scaled_backward():
            self.refuse_amp()
        opts = self.options
        if not opts.after_ddp and torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            raise RuntimeError(f"{type(self.opt).__name__}(step_in_backward=...) in a distributed job: the grads "
                               "would be stepped before they are all-reduced. With DistributedDataParallel pass "
                               "step_in_backward=pyoptk.torch.InBackward(after_ddp=True); otherwise use the "
                               "ordinary mode")
        if self.boundaries and self.backwards >= opts.accumulate_steps:
            raise RuntimeError(
                f"a backward number {self.backwards + 1} before opt.step() / opt.zero_grad(): "
                f"{type(self.opt).__name__} steps inside the backward, so grads are not accumulated over backwards "
                f"(here every {opts.accumulate_steps} backward(s) step). To accumulate N backwards per step pass "
                "step_in_backward=pyoptk.torch.InBackward(accumulate_steps=N)")
        self.backwards += 1
        self.accumulated += 1
        self.stepping = self.accumulated == opts.accumulate_steps
        self.in_backward = True
        self.open = self.stepping
        self.params = self.opt._torch_params()
        if self.stepping:
            for hook in self.opt._optimizer_step_pre_hooks.values():
                hook(self.opt, (), {})
        torch.autograd.Variable._execution_engine.queue_callback(self.end)

    def end(self) -> None:
        """The end of the backward: the last bucket, then (accumulating) the params whose grads came
        from earlier backwards only; the step's bookkeeping."""
        if self.stepping and self.options.after_ddp:  # DDP's own end-of-backward callback, queued after
            torch.autograd.Variable._execution_engine.queue_callback(self.finish)  # this one, runs first
            return
        self.finish()

    def finish(self) -> None:
        try:
            if self.stepping:
                self.flush()
                if self.options.accumulate_steps > 1:
                    self.pending = [i for i, p in enumerate(self.params)
                                    if p.grad is not None and i not in self.stepped]
                    self.flush()
                self.opt._core._end_round()
                self.opt._opt_called = True  # torch's schedulers check that a step ran before theirs
                for hook in self.opt._optimizer_step_post_hooks.values():
                    hook(self.opt, (), {})
        finally:
            self.in_backward = self.open = False
            self.pending, self.pending_bytes = [], 0
            self.stepped = set()
            if self.stepping:
                self.accumulated = 0

    def flush(self) -> None:
        """Step the pending params in one planned call, then free their grads."""
        positions, self.pending, self.pending_bytes = self.pending, [], 0
        if not positions:
            return
        opt = self.opt
        key = tuple(sorted(positions))  # the same bucket is the same key, whatever order its grads came in
        grads = None
        if opt._direct and self.options.clip_grad_norm_per_param is None:  # read in C++
            try:
                grads = _core.TorchGrads(opt.param_groups, opt._core.param_groups, key)
            except _core.ParamMoved:  # p.data = t since: step t, as torch does
                opt._rebind()
                grads = _core.TorchGrads(opt.param_groups, opt._core.param_groups, key)
            if not grads.complete():  # a grad dropped since its hook (by another hook): skipped
                grads = None
        if grads is None:
            key, grads = self.checked_grads(key)
            if not key:
                return
        params = self.params
        stepping = [params[i] for i in key]
        opt._core._step_subset(key, grads)
        self.stepped.update(key)
        # Written in place: autograd's saved copies of the params are stale now, as after torch's
        # own in-place step (a second backward through a retained graph raises torch's error).
        torch._C._increment_version(stepping)
        if not self.options.keep_grads:
            for p in stepping:
                p.grad = None

    def checked_grads(self, key: tuple[int, ...]) -> tuple[tuple[int, ...], list]:
        """The params of ``key`` that have a grad, and their grads as the core takes them, read
        through Python (each clipped first, with clip_grad_norm_per_param)."""
        opt, params = self.opt, self.params
        key = tuple(i for i in key if params[i].grad is not None)
        ptrs = self.ptrs
        if any(params[i].data_ptr() != ptrs[i] for i in key):  # p.data = t since: step t, as torch does
            opt._rebind()
            ptrs.update((i, params[i].data_ptr()) for i in key)
        limit = self.options.clip_grad_norm_per_param
        if limit is not None:
            for i in key:
                torch.nn.utils.clip_grad_norm_(params[i], limit, foreach=False)
        return key, [opt._grad_of(params[i]) for i in key]

    # ----- step() and zero_grad() of the training loop ------------------------------------------
    def boundary(self, what: str) -> None:
        """``opt.step()`` / ``opt.zero_grad()``: nothing to do (the backward stepped); they mark
        where the loop's steps are, so that a backward too many is refused."""
        if not self.noted:
            self.noted = True
            warnings.warn(f"{type(self.opt).__name__} steps inside the backward (step_in_backward): opt.{what}() and "
                          "its twin do nothing here; they only mark the step boundary", UserWarning, stacklevel=3)
        if self.accumulated:
            raise RuntimeError(f"opt.{what}() after {self.accumulated} of the {self.options.accumulate_steps} "
                               "backwards accumulate_steps steps on: the accumulated grads were not stepped yet")
        self.boundaries = True
        self.backwards = 0

    def refuse_amp(self) -> None:
        raise RuntimeError(
            f"torch.amp.GradScaler with {type(self.opt).__name__}(step_in_backward=...): whether a grad is inf or "
            "NaN is known only after the whole backward, but this mode steps each param during it (with the "
            "scaled grads; refused before any param is stepped). Use the ordinary mode with GradScaler, or "
            "bfloat16 autocast, which needs no scaler")
