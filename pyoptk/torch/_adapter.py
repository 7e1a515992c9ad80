"""One adapter for every algorithm: a ``torch.optim.Optimizer`` whose step is a pyoptk optimizer's.

torch's base class keeps what a training script touches (param groups with torch params and
names, hooks, ``zero_grad``, ``state_dict`` packing, ``load_state_dict``'s checks and casts);
the pyoptk optimizer behind it (``self._core``) holds NumPy views of the same memory and runs the
step. torch's groups are the one copy of the hyper-parameters: schedulers write them there,
every core's step reads them there (``Optimizer._hyper_groups``), and a core that keeps state in
its groups (schedule-free's schedule) writes it there.
"""
from __future__ import annotations

import functools
import inspect
from itertools import chain
from typing import Any, Callable

import numpy as np
import torch

from .. import _core
from .._precision import MASTER_KEY, Precision
from .._quant import QMAP
from ._bnb import from_bitsandbytes, is_bitsandbytes
from .._typing import Params
from ..optimizer import _TORCH_IMPL_KEYS, Optimizer
from ._dtensor import check_shards, is_dtensor, refuse_dtensors
from ._in_backward import BackwardStepper, InBackward, options
from ._state import TorchState, check_grads, grad_array, grad_tensor, param_view, same_memory, to_numpy

__all__ = ["TorchOptimizer", "twin"]

try:  # where torch keeps the hooks of torch.optim.optimizer.register_optimizer_step_{pre,post}_hook
    from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks
except ImportError:  # another torch: its own step wrapper is used (_hooked leaves the step be)
    _global_optimizer_pre_hooks = _global_optimizer_post_hooks = None

# Group keys that only the torch side keeps.
_TORCH_ONLY = ("params", "param_names") + _TORCH_IMPL_KEYS


def _hooked(step: Callable) -> Callable:
    """torch's step wrapper (``Optimizer.profile_hook_step``: the step pre-hooks, global then the
    optimizer's, the step, ``_optimizer_step_code``, the post-hooks), with its profiler range
    ``Optimizer.step#<class>.step`` entered only while a profiler records: torch's
    ``record_function`` costs ~7 µs per step even when nothing records, several percent of a small
    model's whole step. Marked ``hooked``, so torch's ``Optimizer.__init__`` does not wrap it again."""
    if _global_optimizer_pre_hooks is None:
        return step

    @functools.wraps(step)
    def wrapper(*args: Any, **kwargs: Any) -> Any:  # args[0] is the optimizer; hooks get it in args, as torch's do
        if getattr(args[0], "_backward", None) is not None:  # stepped in the backward, hooks and all
            return step(*args, **kwargs)
        if not torch._C._autograd._profiler_enabled():
            return _call_with_hooks(step, args, kwargs)
        with torch.autograd.profiler.record_function(f"Optimizer.step#{type(args[0]).__name__}.step"):
            return _call_with_hooks(step, args, kwargs)

    wrapper.hooked = True  # type: ignore[attr-defined]
    return wrapper


def _call_with_hooks(step: Callable, args: tuple, kwargs: dict) -> Any:
    opt = args[0]
    for pre_hook in chain(_global_optimizer_pre_hooks.values(), opt._optimizer_step_pre_hooks.values()) \
            if _global_optimizer_pre_hooks or opt._optimizer_step_pre_hooks else ():
        result = pre_hook(opt, args, kwargs)
        if result is not None:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise RuntimeError(f"{step} must return None or a tuple of (new_args, new_kwargs), but got {result}.")
            args, kwargs = result
    out = step(*args, **kwargs)
    opt._optimizer_step_code()
    for post_hook in chain(opt._optimizer_step_post_hooks.values(), _global_optimizer_post_hooks.values()) \
            if _global_optimizer_post_hooks or opt._optimizer_step_post_hooks else ():
        post_hook(opt, args, kwargs)
    return out


class TorchOptimizer(torch.optim.Optimizer):
    """Base of the ``pyoptk.torch`` classes; :func:`twin` makes one per pyoptk optimizer."""

    core_class: type[Optimizer]
    closure_driven = False  # step(closure) drives the core's closure loop (LBFGS)
    tensor_scalars: tuple[str, ...] = ("step", "mu_product", "eta", "mu")  # 0-d float32 tensors in torch
    # torch.amp.GradScaler's fused protocol (grad_scale / found_inf applied in the kernel): on
    # exactly when the core step accepts them; otherwise GradScaler unscales and skips by itself.
    _step_supports_amp_scaling = False

    def __init__(self, params: Params, *args: Any, **kwargs: Any):
        in_backward = options(kwargs.pop("step_in_backward", False))
        signature = inspect.signature(self.core_class)
        bound = signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        # **precision (state_dtype, master_weights, ...) arrives as one dict: pass its items on.
        var_kw = {n for n, p in signature.parameters.items() if p.kind is inspect.Parameter.VAR_KEYWORD}
        hyper = {k: v for k, v in bound.arguments.items() if k != "params" and k not in var_kw}
        for name in var_kw:
            hyper.update(bound.arguments.get(name, {}))
        probe = self.core_class([np.zeros((1, 1), np.float32)], **hyper)  # pyoptk's (torch's) checks and defaults
        defaults = dict(probe.defaults, **{k: hyper[k] for k in _TORCH_IMPL_KEYS if k in hyper})
        self._hyper = hyper
        self._core: Any = None  # the pyoptk optimizer, made with the first param group
        self._views: dict[torch.Tensor, Any] = {}
        self._direct = True  # every param is a real CPU tensor stepped by the fused kernel: grads go as they are
        self._shards: list = []  # (index, param, view) of FSDP2's DTensor params: their local shards are stepped
        self._backward: BackwardStepper | None = None  # step_in_backward's hooks, once armed
        super().__init__(params, defaults)  # type: ignore[arg-type]  # torch's own checks of the params
        self.state = TorchState(self)  # type: ignore[assignment]
        if in_backward is not None:
            stepper = BackwardStepper(self, in_backward)
            stepper.watch()
            self._backward = stepper
            # GradScaler then calls step() itself (which refuses it) instead of asserting on missing grads.
            self._step_supports_amp_scaling = True

    # ----- param groups: torch's checks and names, then the core's --------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            start = len(self._views)
            if self.core_class.step is not Optimizer.step:  # not one element-wise kernel: needs whole tensors
                refuse_dtensors(group["params"], type(self).__name__, start)
            views = [param_view(p, f"param {start + i}") for i, p in enumerate(group["params"])]
            core_group = {k: self._value(v) for k, v in group.items() if k not in _TORCH_ONLY}
            core_group["params"] = views
            if self._core is None:
                self._core = self.core_class([core_group], **self._hyper)
            else:
                self._core.add_param_group(core_group)
        except BaseException:
            self.param_groups.pop()
            raise
        if self._backward is not None:
            self._backward.watch()
        self._views.update(zip(group["params"], views))
        self._shards += [(start + i, p, v) for i, (p, v) in enumerate(zip(group["params"], views)) if is_dtensor(p)]
        self._direct = self._direct and self.core_class.step is Optimizer.step and all(
            isinstance(v, np.ndarray) and not p.dtype.is_complex and not is_dtensor(p)
            for p, v in zip(group["params"], views))
        # The core's steps read the hyper-parameters from torch's groups, whatever list torch holds
        # them in now: schedulers write them there, and the core writes its group state there.
        self._core._hyper_source = self._torch_groups

    def _torch_groups(self) -> list[dict[str, Any]]:
        return self.param_groups

    @staticmethod
    def _value(v: Any) -> Any:
        """A hyper-parameter as the core takes it: a 0-d tensor (a tensor lr) as a float."""
        return float(v) if isinstance(v, torch.Tensor) and v.dim() == 0 else v

    def _torch_params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _grads(self) -> list:
        """Each param's grad (None: no grad, skipped) as the core's step takes it: the tensors
        themselves for the fused kernels, NumPy views for steps that do NumPy work on them."""
        if self._direct:  # read in C++, each param's memory checked against its view on the way
            try:
                return _core.TorchGrads(self.param_groups, self._core.param_groups)
            except _core.ParamMoved:
                self._rebind()
                return _core.TorchGrads(self.param_groups, self._core.param_groups)
        if self.core_class.step is Optimizer.step:
            check_shards(self._shards)  # FSDP2's shards: still the memory the kernels step
            return [grad_tensor(p.grad, p) for p in self._torch_params()]
        return [grad_array(p.grad, p) for p in self._torch_params()]

    def _rebind(self) -> None:
        """Point the core at each param's memory now, as torch's optimizers see it: after
        ``p.data = t`` or ``p.set_(t)`` the step updates ``t``, keeping the param's state
        (the float32 master copy of a 16-bit param is taken again from the new values)."""
        core = self._core
        if len(self.param_groups) != len(core.param_groups) or any(
                len(g["params"]) != len(c["params"]) for g, c in zip(self.param_groups, core.param_groups)):
            raise ValueError(f"{type(self).__name__}: param_groups were changed other than by add_param_group")
        start = 0
        for group, core_group in zip(self.param_groups, core.param_groups):
            for j, (p, view) in enumerate(zip(group["params"], core_group["params"])):
                new = param_view(p, f"param {start + j}")
                if same_memory(new, view):
                    continue
                core_group["params"][j] = self._views[p] = new
                if view in core.state:
                    state = core.state[view]
                    del core.state[view]
                    if MASTER_KEY in state:
                        state[MASTER_KEY] = new.astype(np.float32)
                    core.state[new] = state
            start += len(group["params"])
        core._forget_plans()

    def _grad_of(self, p: torch.Tensor) -> Any:
        """``p``'s grad as the core's step_params() takes it (as ``_grads`` gives it to step())."""
        return grad_tensor(p.grad, p) if self.core_class.step is Optimizer.step else grad_array(p.grad, p)

    # ----- the step -------------------------------------------------------------------------
    @_hooked
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step: reads each param's ``.grad`` (params without one are skipped, as in torch)
        and updates the params in place. ``closure`` re-evaluates the model and returns the loss
        (called once, with grad enabled; LBFGS calls it as often as its iteration needs).
        Stepping in the backward (``step_in_backward``), it steps nothing: it marks the step boundary."""
        if self._backward is not None:
            if getattr(self, "grad_scale", None) is not None or getattr(self, "found_inf", None) is not None:
                self._backward.refuse_amp()
            self._backward.boundary("step")
            if closure is None:
                return None
            with torch.enable_grad():
                return closure()
        return self._step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """torch's; stepping in the backward, it only marks the step boundary, unless the grads are
        kept (``InBackward(keep_grads=True)``): then it clears them too."""
        if self._backward is not None:
            self._backward.boundary("zero_grad")
            if not self._backward.options.keep_grads:
                return
        super().zero_grad(set_to_none)

    def _step(self, closure: Callable[[], Any] | None) -> Any:
        if self.closure_driven:
            return self._closure_step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        amp = None  # set by GradScaler only when _step_supports_amp_scaling
        if getattr(self, "grad_scale", None) is not None or getattr(self, "found_inf", None) is not None:
            amp = {k: v for k in ("grad_scale", "found_inf") if (v := getattr(self, k, None)) is not None}
        try:
            if amp:
                self._core.step(self._grads(), **{k: v.detach().cpu().numpy() for k, v in amp.items()})
            else:
                self._core.step(self._grads())
        except (TypeError, ValueError):
            check_grads(self._torch_params())  # words a refused torch grad in torch's terms, if that is the cause
            raise
        return loss

    def _closure_step(self, closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            raise RuntimeError(f"{type(self).__name__}.step needs a closure that re-evaluates the model and returns the loss")
        first: list = []

        def evaluate():
            with torch.enable_grad():
                loss = closure()
            if not first:
                first.append(loss)
            value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            return value, [grad_array(p.grad, p) for p in self._torch_params()]

        self._core.step(evaluate)
        return first[0] if first else None

    def __getstate__(self) -> dict[str, Any]:
        # A copy would hold copies of the NumPy views, sharing no memory with the copied params.
        raise TypeError(f"{type(self).__name__} cannot be pickled or copied (its state buffers are tied to the "
                        "params' memory): checkpoint opt.state_dict() and load it into a new optimizer, as torch "
                        "recommends")

    # ----- checkpoints: torch packs and checks; the core loads and checks its part -----------
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """torch's ``state_dict()``, plus pyoptk's mixed-precision settings when they are not the
        default (``"precision"``, with the stochastic-rounding counter; torch's loader ignores it)."""
        out = super().state_dict()
        precision = self._core.state_dict().get("precision") if self._core is not None else None
        if precision is not None:
            out["precision"] = precision
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if is_bitsandbytes(state_dict):  # an 8-bit bitsandbytes optimizer's: its codes, scales and steps
            state_dict = from_bitsandbytes(state_dict, self.param_groups, self.core_class)
        before = self.param_groups, self.state
        loading: list[dict[str, Any]] = []  # the state dict torch loads, after every pre-hook (this one runs last)
        hook = self.register_load_state_dict_pre_hook(lambda opt, sd: loading.append(sd))
        try:
            super().load_state_dict(state_dict)  # torch's checks, hooks and casts; sets torch-side groups and state
        finally:
            hook.remove()
        try:
            params = self._torch_params()
            index = {id(p): i for i, p in enumerate(params)}
            groups, start = [], 0
            for group in self.param_groups:
                packed = {k: v for k, v in group.items() if k not in ("params", "param_names")}
                packed["params"] = list(range(start, start + len(group["params"])))
                start += len(group["params"])
                groups.append(packed)
            loaded = {index[id(p)]: {k: to_numpy(v) for k, v in s.items()} for p, s in self.state.items()
                      if isinstance(p, torch.Tensor) and id(p) in index}
            loaded.update(uncast_low_precision_state(loading[0], params))
            precision = {"precision": loading[0]["precision"]} if "precision" in loading[0] else {}
            self._core.load_state_dict({"state": loaded, "param_groups": groups, **precision})
        except BaseException:
            self.param_groups, self.state = before
            raise
        self.state = TorchState(self)  # type: ignore[assignment]


def uncast_low_precision_state(state_dict: dict[str, Any], params: list[torch.Tensor]) -> dict[int, dict]:
    """The saved state of each 16-bit param, and each quantized state, as saved. torch's loader
    casts every state tensor to its param's dtype, which would round the float32 state
    (``state_dtype="float32"``) and the ``master_param`` that pyoptk keeps for 16-bit params, and
    turn quantized states' uint8 codes into floats; the core casts to its own settings."""
    saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
    state = state_dict["state"]
    return {index: {k: to_numpy(v) for k, v in state[saved].items()}
            for index, (saved, p) in enumerate(zip(saved_ids, params))
            if saved in state and (p.dtype in (torch.bfloat16, torch.float16) or any(
                isinstance(k, str) and k.endswith(QMAP) for k in state[saved]))}


def core_method(name: str, doc: str) -> Callable[[TorchOptimizer], None]:
    """A method of a twin that runs the core's method of that name (the train() and eval() of
    the schedule-free twins)."""
    def method(self: TorchOptimizer) -> None:
        getattr(self._core, name)()
    method.__name__ = method.__qualname__ = name
    method.__doc__ = doc
    return method


def twin(core_class: type[Optimizer], **attrs: Any) -> type[TorchOptimizer]:
    """The ``torch.optim.Optimizer`` twin of a pyoptk optimizer class: same name, signature,
    defaults and checks. ``attrs`` override :class:`TorchOptimizer`'s class attributes."""
    name = core_class.__name__
    cls = type(name, (TorchOptimizer,), {
        "core_class": core_class, "__module__": "pyoptk.torch", "__qualname__": name,
        "_step_supports_amp_scaling": "grad_scale" in inspect.signature(core_class.step).parameters,
        "__doc__": f"``torch.optim.{name}``'s interface over pyoptk's ``{name}`` (a torch.optim.Optimizer).\n\n"
                   + (core_class.__doc__ or ""),
        **attrs})
    cls.__init__ = explicit_init(core_class, name)  # type: ignore[misc]
    return cls


def twin_signature(core_class: type[Optimizer]) -> inspect.Signature:
    """The core class's ``__init__`` signature with its ``**precision`` spelled out as the
    keyword-only options it takes (``Precision.make``'s): torch's arguments, then pyoptk's."""
    signature = inspect.signature(core_class.__init__)
    params = [p for n, p in signature.parameters.items() if n != "precision"]
    if len(params) < len(signature.parameters):
        at = len(params) - (params[-1].kind is inspect.Parameter.VAR_KEYWORD)
        params[at:at] = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                         for n, p in inspect.signature(Precision.make).parameters.items() if n != "cls"]
    at = len(params) - (params[-1].kind is inspect.Parameter.VAR_KEYWORD)
    params.insert(at, inspect.Parameter("step_in_backward", inspect.Parameter.KEYWORD_ONLY, default=False,
                                        annotation="Union[bool, InBackward]"))
    return signature.replace(parameters=params, return_annotation=None)


def explicit_init(core_class: type[Optimizer], name: str) -> Callable[..., None]:
    """An ``__init__`` with the twin's signature written out (IDEs, ``help()`` and
    ``inspect`` see torch's arguments, not ``*args, **kwargs``), passing them all on by name."""
    signature = twin_signature(core_class)
    defaults = {n: p.default for n, p in signature.parameters.items() if p.default is not p.empty}
    args, passed, star = [], [], False
    for n, p in signature.parameters.items():
        if p.kind is p.KEYWORD_ONLY and not star:
            args.append("*")
        star = star or p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        args.append(prefix + (f"{n}=__defaults[{n!r}]" if n in defaults else n))
        if n not in ("self", "params"):
            passed.append(prefix + n if prefix else f"{n}={n}")
    source = (f"def __init__({', '.join(args)}):\n"
              f"    __base(self, params, {', '.join(passed)})\n")
    scope: dict[str, Any] = {"__defaults": defaults, "__base": TorchOptimizer.__init__}
    exec(source, scope)  # noqa: S102  a def with these names and defaults, nothing else
    init = scope["__init__"]
    init.__qualname__ = f"{name}.__init__"
    init.__module__ = "pyoptk.torch"
    init.__doc__ = f"torch.optim.{name}'s arguments, then pyoptk's keyword-only ones (see the class)."
    init.__annotations__ = {n: p.annotation for n, p in signature.parameters.items() if p.annotation is not p.empty}
    init.__annotations__["return"] = None
    return init
