"""The Optimizer base: torch.optim's param groups, per-param state and state_dict, over NumPy arrays.

A subclass names its compiled kernel and says three things about a param group: its mode (the
formula-changing flags), its coefficients for a step count, and how a new state array starts.
Everything else (grads bookkeeping, state lifecycle, checkpoints) lives here, once.
"""
from __future__ import annotations

import functools
import operator
import threading
from collections.abc import MutableMapping
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ._core import GroupSchedule, GroupWatch, StalePlan, TorchGrads
from ._typing import Closure, Grads, Params
from ._arrays import HOST, CudaDevice, Host, common_location, host_views, is_device_array, split_names
from ._kernels import FusedStep, Kernel
from ._precision import MASTER_KEY, Precision, cast_state, is_low_precision, scalar_arg
from ._quant import NO_4BIT, QMAP, QUANTIZED_STATES, SCALES, dequantized, map_of, quantized_names
from ._validate import is_scalar_array, real_number, whole_count

__all__ = ["Optimizer", "required"]

# Keys torch puts in param groups to pick an implementation; pyoptk is always fused, so a torch
# checkpoint's values for them carry no meaning here and are dropped on load.
_TORCH_IMPL_KEYS = ("foreach", "fused", "capturable", "differentiable")


_PLAIN = (float, int, bool, str, tuple, list, type(None))


def hyper_values(group: dict[str, Any]) -> dict[str, Any]:
    """The group as this step reads it: a 0-d array or tensor hyper-parameter (an lr a scheduler
    changes in place) as its current float value; the group itself when it has none."""
    if all(type(v) in _PLAIN for v in group.values()):
        return group
    return {k: float(v) if is_scalar_array(v) else v for k, v in group.items()}


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class ParamState(MutableMapping[Any, "dict[str, Any]"]):
    """``state[param] -> dict``, keyed by array identity (NumPy arrays are not hashable)."""

    def __init__(self) -> None:
        self._data: dict[int, tuple[np.ndarray, dict]] = {}
        self.version = 0  # bumped when a param's state dict is replaced or removed

    def __getitem__(self, param: np.ndarray) -> dict:
        return self._data[id(param)][1]

    def __setitem__(self, param: np.ndarray, value: dict) -> None:
        self._data[id(param)] = (param, value)
        self.version += 1

    def __delitem__(self, param: np.ndarray) -> None:
        del self._data[id(param)]
        self.version += 1

    def __iter__(self) -> Iterator[np.ndarray]:
        return (param for param, _ in self._data.values())

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, param: object) -> bool:
        return id(param) in self._data

    # Keyed by id(): a pickled or deep-copied state is re-keyed by its (copied) params' ids.
    def __getstate__(self) -> dict:
        return {"items": list(self._data.values()), "version": self.version}

    def __setstate__(self, saved: dict) -> None:
        self._data = {id(param): (param, value) for param, value in saved["items"]}
        self.version = saved["version"]


def _arena_span(params: list[np.ndarray]) -> np.ndarray | None:
    """A flat view over ``params`` when they are consecutive views of one buffer (an arena):
    the first starts it, each next one starts where the previous ended, all of one dtype."""
    if len(params) < 2 or any(p.dtype != params[0].dtype for p in params):
        return None
    extents = [HOST.extent(p) for p in params]
    if any(a[1] != b[0] for a, b in zip(extents, extents[1:])):
        return None
    root = params[0]
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not root.flags.c_contiguous or any(_root_of(p) is not root for p in params[1:]):
        return None
    offset = extents[0][0] - HOST.extent(root)[0]
    return root.reshape(-1).view(np.uint8)[offset:extents[-1][1] - HOST.extent(root)[0]].view(params[0].dtype)


def _checked_indices(indices: Any, count: int) -> tuple[int, ...]:
    """step_params()' indices as a tuple of distinct ints in [0, count)."""
    if isinstance(indices, (np.ndarray, list, tuple, range)):
        key = tuple(operator.index(i) for i in indices)
    else:
        raise TypeError(f"indices must be a list of param positions, got {type(indices).__name__}")
    bad = [i for i in key if not 0 <= i < count]
    if bad:
        raise IndexError(f"param index {bad[0]} is out of range for an optimizer of {count} params")
    if len(set(key)) != len(key):
        raise ValueError("step_params() got a param index twice")
    return key


def _in_order(grads: Sequence[Any], order: list[int] | None) -> Sequence[Any]:
    """A subset plan's grads: ``grads`` as they are, or picked in the plan's ``order``."""
    return grads if order is None else [grads[k] for k in order]


def _root_of(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class _Plan:
    """A step plan, made by the checked path (``Optimizer._build_plan``): the C++ plan over the
    params that had grads (it holds their arrays, checked, and their state dicts), the group dicts
    and modes it was made for, and where its coefficients come from: a ``GroupSchedule`` (the
    kernel's own, computed in C++ from the groups each step) or, for an optimizer that computes
    its own, per slot (group index, the scalar state its params share before the next step)."""

    def __init__(self, core, state, groups, modes, schedule, slots, pending, positions, reusable, count):
        self.core, self.state, self.groups, self.modes = core, state, groups, modes
        self.count = count  # the optimizer's params when it was made
        self.positions = positions  # the step's index of each param in the plan (those with a grad)
        self.version = state.version
        self.schedule = schedule
        self.slots = slots
        self.pending = pending  # (param, state dict) that become the optimizer's once a step ran
        # Every param in it and none stepped for the first time: later steps run it again.
        self.reusable = reusable
        self.spans = None  # contiguous spans the last step ran as


# The methods that read or write an optimizer's groups and state as a whole: one thread at a time
# per optimizer (the GIL is released inside a step, so two steps could otherwise interleave).
_SERIALIZED = ("step", "state_dict", "load_state_dict", "add_param_group")


def _serialized(method: Callable) -> Callable:
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    setattr(locked, "__serialized__", True)  # __init_subclass__ leaves it as it is
    return locked


class Optimizer:
    """The base of every pyoptk optimizer, with ``torch.optim.Optimizer``'s interface over arrays.

    ``param_groups``: a list of dicts, each with ``"params"`` (its arrays) and the group's
    hyper-parameters (change them between steps: ``opt.param_groups[0]["lr"] = 1e-4``).
    ``state``: per-param state dicts (``opt.state[p]["exp_avg"]``), created on the param's first
    step. ``step(grads)`` updates every param in place; ``state_dict()`` / ``load_state_dict()``
    save and resume in torch's checkpoint layout.

    Subclasses set ``kernel`` and implement ``_check_group`` and ``_group_mode``; the step's
    coefficients are the kernel's own (``_kernel_coeffs``), or those of ``_group_coeffs``, with
    the scalar state kept by ``_advance`` and ``_after_step``. They may override ``_new_state``.

    Thread safety: ``step``, ``state_dict``, ``load_state_dict`` and ``add_param_group`` (also as
    overridden by subclasses) hold a per-optimizer re-entrant lock, so calls from several threads
    on one optimizer run one after another; different optimizers step in parallel."""

    kernel: Kernel
    has_step: bool = True  # keeps state["step"] (torch's SGD does not)
    fresh_state_flag: str | None = None  # mode flag set on the step that creates a param's state
    # False where a step does more than one fused update (NumPy reductions, matmuls): host only.
    runs_on_cuda: bool = True
    low_precision: bool = True  # steps bfloat16/float16 params (mixed precision, _precision.py)
    # The group key whose new value GroupWatch (C++) accepts itself when it is the only change and
    # plainly "a number >= 0" (a scheduler's lr each step, with no Python check): for algorithms
    # whose check of it is check_nonneg alone and whose mode does not read it. None: every
    # change is checked in Python.
    plain_lr_key: str | None = None
    # Ranges of scalar states other than step, checked on load: {name: (low, high)}.
    scalar_state_bounds: dict[str, tuple[float, float]] = {}
    # Why step_params() cannot step a subset of the params (a step reading more than each param's
    # own grad and state, or advancing state the whole step shares), or None where it can.
    step_params_refusal: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _SERIALIZED:  # a subclass's own step() etc. takes the lock too
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__serialized__", False):
                setattr(cls, name, _serialized(method))

    def __init__(self, params: Params, defaults: dict[str, Any], **precision: Any) -> None:
        self._lock = threading.RLock()
        unknown = sorted(set(precision) - {"state_dtype", "master_weights", "stochastic_rounding", "seed",
                                           "block_size", "min_8bit_size", "stochastic_codes"})
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments {unknown}")
        self.precision = Precision.make(**precision)
        self._check_quantization()
        self._rounding_step = 0  # steps run with stochastic rounding: its counter
        self._round: set[int] = set()  # params step_params() stepped in the step under way
        self._round_rounding_step = 0  # its stochastic-rounding step
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state = ParamState()
        self._plan: _Plan | None = None
        self._forget_plans()
        # Each group as last checked (C++): which changed since, found in one call per step.
        self._watch = GroupWatch(self.plain_lr_key)
        # Where the step reads the groups' hyper-parameters, when not from param_groups (a
        # function returning one dict per group): pyoptk.torch's torch-side groups.
        self._hyper_source: Callable[[], list[dict[str, Any]]] | None = None
        self._where: Host | CudaDevice | None = None  # set by the first group with params
        if isinstance(params, np.ndarray) or is_device_array(params):
            raise TypeError(f"params should be an iterable of arrays or dicts, but got a {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def _check_quantization(self) -> None:
        """state_dtype int8 / int4 only for the algorithms with a quantized form (_quant.py)."""
        quant = self.precision.quant
        if quant is None:
            return
        kernel = getattr(self, "kernel", None)
        name = type(self).__name__
        if kernel is None or kernel.name not in QUANTIZED_STATES:
            raise ValueError(f"Invalid state_dtype for {name}: {quant.name} (its step is more than one element-wise "
                             "pass; quantized state is for the element-wise algorithms)")
        if quant.bits == 4 and kernel.name in NO_4BIT:
            raise ValueError(f"Invalid state_dtype for {name}: int4 ({NO_4BIT[kernel.name]}); use int8")

    # ----- subclass hooks -------------------------------------------------------------------
    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError for an invalid hyper-parameter (torch's checks and messages)."""
        raise NotImplementedError

    def _group_mode(self, group: dict[str, Any]) -> int:
        raise NotImplementedError

    def _hyper_groups(self) -> list[dict[str, Any]]:
        """The dicts the step reads each group's hyper-parameters from (group i's in the i-th):
        ``param_groups``, or those of a wrapper that keeps them (pyoptk.torch)."""
        source = getattr(self, "_hyper_source", None)
        return self.param_groups if source is None else source()

    def _kernel_coeffs(self) -> bool:
        """True when the step's coefficients and scalar state are the kernel's own
        (ops/host_coeffs.h): C++ computes them each step from the groups' hyper-parameters.
        False: ``_advance``, ``_group_coeffs`` and ``_after_step`` compute them, per slot."""
        return False

    def _group_coeffs(self, group: dict[str, Any], state: dict[str, Any]) -> dict[str, float]:
        """Kernel coefficients, in double, for params whose scalar state is already advanced
        (where ``_kernel_coeffs()`` is False)."""
        raise NotImplementedError

    def _state_init(self, name: str, group: dict[str, Any]) -> float | None:
        """The value a new state array starts with (None: uninitialised, the first step writes it)."""
        return 0.0

    def _new_state(self, name: str, param: Any, group: dict[str, Any]) -> Any:
        shape, dtype = self._where.describe(param)
        return self._where.new(shape, self.precision.state_dtype_for(dtype), self._state_init(name, group))

    def _new_states(self, names: list[str], params: list, group: dict[str, Any]) -> list[dict]:
        """New state arrays for ``params``, one allocation per state name where possible: on a
        GPU always; on the host when the params are an arena (consecutive views of one buffer),
        the state being one flat buffer in the same layout, so the group runs as one span."""
        out: list[dict] = [{} for _ in params]
        if self.precision.quant is not None:  # each param's codes and scales of its own
            return [self._state_entries(names, p, group) for p in params]
        if isinstance(self._where, CudaDevice) and params:
            shapes, dtypes = zip(*map(self._where.describe, params))
            if all(d == dtypes[0] for d in dtypes):
                for name in names:
                    for state, piece in zip(out, self._where.pieces(shapes, dtypes[0], self._state_init(name, group))):
                        state[name] = piece
                return out
        span = _arena_span(params) if isinstance(self._where, Host) else None
        if span is None:
            return [{name: self._new_state(name, p, group) for name in names} for p in params]
        bounds = np.cumsum([p.size for p in params])[:-1]
        for name in names:
            flat = self._new_state(name, span, group)
            for state, piece, p in zip(out, np.split(flat, bounds), params):
                state[name] = piece.reshape(p.shape)
        return out

    def _state_entries(self, names: list[str], param: Any, group: dict[str, Any]) -> dict[str, Any]:
        """New states ``names`` of a param: each array, or a quantized one's codes, scales and map."""
        out: dict[str, Any] = {}
        quant = self.precision.quant
        mode = self._group_mode(group) if quant is not None else 0
        for name in names:
            value = self._new_state(name, param, group)
            sign = quant.sign(self.kernel, name, value.size, mode) if quant is not None else None
            out.update({name: value} if sign is None else quant.entries(name, value, sign))
        return out

    def _kernel_states(self, state: dict[str, Any]) -> dict[str, Any]:
        """A param's states as the compiled step takes them: a quantized one as (codes, scales,
        map, block)."""
        quant = self.precision.quant
        if quant is None:
            return state
        view = dict(state)
        for name, sign in quantized_names(self.kernel.name).items():
            if name + SCALES in state:
                view[name] = quant.item(name, state, sign)
        return view

    def _advance(self, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Update the scalar state (step counter...) before the kernel runs."""
        if self.has_step:
            state["step"] = state.get("step", 0) + 1

    def _after_step(self, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Update the scalar state once the kernel has run (ASGD's eta and mu)."""

    # ----- pickling / copy.deepcopy: the plan and the lock are rebuilt, not copied ------------
    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            saved = dict(self.__dict__)
        del saved["_lock"]
        saved["_plan"] = None
        saved["_subset_plans"], saved["_plan_owner"], saved["_round"] = {}, {}, set()
        saved["_watch"] = None
        saved["_hyper_source"] = None
        return saved

    def __setstate__(self, saved: dict[str, Any]) -> None:
        self.__dict__.update(saved)
        if "_subset_plans" not in saved:  # pickled before step_params
            self._forget_plans()
            self._round, self._round_rounding_step = set(), 0
        self._lock = threading.RLock()
        self._watch = GroupWatch(self.plain_lr_key)

    # ----- param groups -----------------------------------------------------------------
    @_serialized
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of params, e.g. layers unfrozen during fine-tuning, as torch does.

        ``param_group`` is a dict with ``"params"`` (an array or a list of arrays) and any
        hyper-parameters that differ from the optimizer's defaults; the others are filled in
        from ``defaults``. The new params' grads go after the existing ones in ``step(grads)``.
        Refused (ValueError / TypeError, the optimizer unchanged) when a hyper-parameter is out of
        range, a param is already optimized or shares memory with one, a param is not a
        writeable C-contiguous float32/float64 array, or it lives on another device."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' entry")
        params = param_group["params"]
        if isinstance(params, np.ndarray) or hasattr(type(params), "__dlpack__") or is_device_array(params):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, not sets")
        else:
            params = list(params)
        names, params = split_names(params)
        params = host_views(params)  # DLPack / buffer-protocol / complex host arrays: their NumPy views
        where = self._check_location(params)
        group = dict(param_group, params=params)
        if names is not None:
            group["param_names"] = names
        if self.param_groups and ("param_names" in group) != ("param_names" in self.param_groups[0]):
            raise ValueError("all optimizer param groups should be with/without names (param_names)")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        self._check_group(group)
        self._refuse_shared_params(params, where)
        self.param_groups.append(group)
        self._where = where
        self._forget_plans()

    def _check_location(self, params: list) -> Host | CudaDevice | None:
        """Where the new group's params live, each checked (dtype, layout, writeable): all on the
        host or all on one GPU, the same as the optimizer's other groups (one step is one fused
        call on one device). None for a group without params on an optimizer without any yet."""
        if not self.runs_on_cuda and any(map(is_device_array, params)):
            raise ValueError(f"{type(self).__name__} runs on host (NumPy) arrays only: its step is more than one "
                             "fused update (reductions or matrix products pyoptk has no CUDA kernels for)")
        place = common_location(params, " of the new group")
        if place is None:
            return self._where
        self._check_dtypes(params, place)
        if self._where is not None and place != self._where:
            raise ValueError(f"the new param group is on {place.name}, the optimizer's params on "
                             f"{self._where.name}; one optimizer steps arrays on one device")
        return place

    def _check_dtypes(self, params: list, place: Host | CudaDevice) -> None:
        """16-bit params: only for element-wise optimizers, on the host, not mixed with other
        dtypes in one group; and the precision settings must fit each param."""
        dtypes = [place.describe(p)[1] for p in params]
        if not self.precision.default and not isinstance(place, Host):
            raise ValueError("state_dtype, master_weights and stochastic_rounding are supported for host "
                             "(NumPy) arrays only")
        low = [i for i, d in enumerate(dtypes) if is_low_precision(d)]
        if low and not self.low_precision:
            raise TypeError(f"{type(self).__name__} steps float32 and float64 params; param {low[0]} of the new "
                            f"group is {dtypes[low[0]]} (its step runs NumPy passes in the param dtype)")
        if low and len(set(dtypes)) > 1:
            other = next(i for i, d in enumerate(dtypes) if d != dtypes[low[0]])
            raise TypeError(f"the new param group mixes dtypes: param {low[0]} is {dtypes[low[0]]}, param {other} "
                            f"{dtypes[other]}; put 16-bit params in a group of their own dtype")
        for i, d in enumerate(dtypes):
            self.precision.check_param(d, f"param {i} of the new group")

    def _keeps_master(self, p: Any) -> bool:
        return self.precision.keeps_master(p.dtype) if isinstance(p, np.ndarray) else False

    def _refuse_shared_params(self, new: list, where: Host | CudaDevice | None) -> None:
        old = [p for g in self.param_groups for p in g["params"]]
        if where is None:
            return
        extents = sorted((*where.extent(p), i) for i, p in enumerate(old + new))
        extents = [e for e in extents if e[1] > e[0]]
        seen = {id(p) for p in old}
        repeated = len(seen) + len({id(p) for p in new}) < len(old) + len(new) or any(id(p) in seen for p in new)
        overlapping = any(b[0] < a[1] for a, b in zip(extents, extents[1:]))
        if repeated or overlapping:
            raise ValueError("some parameters appear in more than one parameter group, or share memory")

    def _params(self) -> list[np.ndarray]:
        return [p for group in self.param_groups for p in group["params"]]

    def _groups_now(self) -> list[tuple[dict, list]]:
        """(group, a copy of its params list) per group: what a step works on from start to end,
        whatever another thread does to ``param_groups`` meanwhile (or an error before any write)."""
        groups = []
        for gi, group in enumerate(list(self.param_groups)):
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"param_groups[{gi}] must be a dict with a 'params' list")
            groups.append((group, list(group["params"])))
        return groups

    def _collect_grads(self, grads: list | None, closure: Callable | None) -> tuple[Any, list]:
        """The step's grads (from ``grads`` or the closure), one per param, with every group checked."""
        loss, grads = self._take_grads(grads, closure, None)
        self._check_groups(self._hyper_groups())
        return loss, grads

    def _take_grads(self, grads: Any, closure: Callable | None, plan: _Plan | None) -> tuple[Any, Any]:
        """The step's grads (from ``grads`` or the closure), one per param (counted unless as many
        as ``plan`` was made for: a plan no longer the optimizer's params is stale in C++)."""
        loss = None
        if closure is not None:
            if grads is not None:
                raise ValueError("pass grads or a closure to step(), not both")
            loss, grads = closure()
        if grads is None:
            raise ValueError("step() needs grads (one per param, None to skip) or a closure returning (loss, grads)")
        if not isinstance(grads, (list, TorchGrads)):  # pyoptk.torch's are read by C++ as they are
            if isinstance(grads, np.ndarray):
                raise TypeError("grads must be a list with one array (or None) per param, not a single ndarray")
            grads = list(grads)
        if plan is None or len(grads) != plan.count:
            count = sum(len(g["params"]) for g in self.param_groups)
            if len(grads) != count:
                raise ValueError(f"step() got {len(grads)} grads for {count} params")
        return loss, grads

    def _check_groups(self, groups: list) -> tuple[int, ...]:
        """Check every group that changed since it was last checked (torch's messages, prefixed
        with ``param_groups[i]``) and return their indices. An unchanged group (GroupWatch: the
        same dict, keys and values, the same numbers inside its mutable values) is not checked
        again: its check reads nothing else."""
        watch = self._watch
        changed = watch.changed(groups)
        for gi in changed:
            group = groups[gi]
            if not isinstance(group, dict):
                raise TypeError(f"param_groups[{gi}] must be a dict with a 'params' list")
            try:
                self._check_group(group)
            except ValueError as e:
                raise ValueError(f"param_groups[{gi}]: {e}") from None
            watch.accept(gi, group)
        return changed

    def _dense_batches(self, grads: list) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """(param, grad) pairs per group, params without a grad left out, every grad checked first
        (for optimizers that run their own multi-pass step: Adafactor, Muon)."""
        from .optim._common import check_dense_grad  # here: pyoptk.optim imports this module

        batches, index = [], 0
        for group in self.param_groups:
            batch = []
            for p in group["params"]:
                g = grads[index]
                if g is not None:
                    check_dense_grad(p, g, f"param {index}")
                    batch.append((p, g))
                index += 1
            batches.append(batch)
        return batches

    # ----- the step ---------------------------------------------------------------------
    @_serialized
    def step(self, grads: Grads | None = None, closure: Closure | None = None, *, grad_scale: Any = None,
             found_inf: Any = None) -> Any:
        """Update every param in place.

        ``grads``: one array per param, in group order (``[g for each group for each param]``),
        each of its param's shape and dtype (or float32 for a 16-bit param); None skips that param
        (its state is left alone). Or ``closure``: a function returning ``(loss, grads)``, called
        once (LBFGS may call it several times). Returns the closure's loss, or None.

        ``grad_scale`` / ``found_inf`` (0-d arrays, tensors or numbers), as torch's fused
        optimizers take them from ``torch.amp.GradScaler``: each grad is divided by
        ``grad_scale`` as the kernel reads it (the grads themselves are not written), and
        ``found_inf == 1`` skips the step entirely (params, state and step counts unchanged).

        A refused step (wrong count, shape, dtype or layout of a grad; an invalid hyper-parameter
        set since) raises before anything is written: no param and no state changes."""
        self._end_round()
        if self._subset_plans:  # their schedules would miss this step's counts
            self._forget_plans()
        plan = self._plan
        loss, grads = self._take_grads(grads, closure, plan)
        groups = self._hyper_groups()
        changed = self._check_groups(groups)
        scale = None if grad_scale is None and found_inf is None else self._amp_args(grad_scale, found_inf)
        if scale is False:
            return loss
        if plan is None or not (plan.reusable and plan.state is self.state and plan.version == self.state.version
                                and len(plan.groups) == len(groups)) or changed and not self._plan_fits(plan, groups, changed):
            self._plan = None  # until a new one ran: a refused step leaves no plan of other modes
            plan = self._build_plan(grads)
        try:
            self._run_plan(plan, grads, scale)
        except StalePlan:  # an array replaced or resized since the plan was made: nothing was written
            self._run_plan(self._build_plan(grads), grads, scale)
        if self.precision.draws:  # the counter the rounding keys are drawn from
            self._rounding_step += 1
        return loss

    def _amp_args(self, grad_scale: Any, found_inf: Any) -> float | None | bool:
        """The grad scale to pass to the kernel (None: unscaled), or False when found_inf says
        to skip the step (torch: the kernel returns at once if found_inf == 1)."""
        if found_inf is not None:
            flag = scalar_arg(found_inf, "found_inf")
            if flag == 1.0:
                return False
            if flag != 0.0:
                raise ValueError(f"found_inf must be 0 or 1, got {flag}")
        if grad_scale is None:
            return None
        if isinstance(self._where, CudaDevice):
            raise ValueError("grad_scale is supported for host (NumPy) arrays only")
        scale = float(np.float32(scalar_arg(grad_scale, "grad_scale")))  # torch's is a float32 tensor
        if not scale > 0:  # NaN fails too; inf is allowed (clip_grad_norm_for_step with max_norm=0)
            raise ValueError(f"grad_scale must be a positive number, got {scale}")
        return scale

    # ----- a subset of the params, as their grads are ready --------------------------------
    @_serialized
    def step_params(self, indices: Sequence[int], grads: Sequence[Any]) -> None:
        """Update the params at ``indices`` (their positions in ``step()``'s grads: group order)
        with ``grads`` (one each, in the same order; None skips that param), in one planned call.
        Each param gets exactly the update ``step()`` would give it (its own step count, its
        group's hyper-parameters as they are now), bit for bit: for frameworks with a per-tensor
        "grad ready" callback, which step each param (or bucket of params) as soon as its grad is
        ready and drop the grad (``pyoptk.torch``'s ``step_in_backward``).

        The calls that step each param at most once make one step of the optimizer: a param
        stepped again starts the next one (as does ``step()``); stochastic rounding draws one
        key per step, as ``step()`` does. The plan of each subset is kept and reused while the
        same subsets come back (checked as ``step()``'s). Refused (TypeError) by the algorithms
        whose update reads more than each param's own grad and state (``step_params_refusal``)."""
        if self.step_params_refusal is not None:
            raise TypeError(f"{type(self).__name__} cannot step some of its params alone: {self.step_params_refusal}")
        key = _checked_indices(indices, self._param_count())
        if isinstance(grads, np.ndarray) or len(grads) != len(key):
            raise ValueError(f"step_params() got {len(grads)} grads for {len(key)} indices")
        self._step_subset(key, grads, checked=True)

    @_serialized
    def _step_subset(self, key: tuple[int, ...], grads: Sequence[Any], checked: bool = False) -> None:
        """step_params() past its checks of the arguments. ``key``: the indices, checked, or (not
        ``checked``) ints that the caller knows to be in range and distinct, checked here only when
        no plan is kept for them (a kept plan's key was checked when it was made). ``grads`` may be
        a TorchGrads over ``key`` (pyoptk.torch's buckets, read in C++)."""
        cached = self._subset_plans.get(key)
        if cached is None and not checked:
            _checked_indices(key, self._param_count())
        self._next_round(key)
        if type(self).step is not Optimizer.step:  # several passes or NumPy work: its own step over these grads
            if self.precision.stochastic_rounding:
                raise ValueError(f"{type(self).__name__}.step_params() with stochastic_rounding: its passes draw their "
                                 "keys per call, so the bits would depend on how the params are split; use step()")
            full: list = [None] * self._param_count()
            for i, g in zip(key, grads):
                full[i] = g
            self.step(full)
            return
        groups = self._hyper_groups()
        changed = self._check_groups(groups)
        if changed:  # a mode changed since: the subsets planned for the old one go
            for k, (old, _) in list(self._subset_plans.items()):
                if not self._plan_fits(old, groups, changed):
                    del self._subset_plans[k]
            cached = self._subset_plans.get(key)
        if cached is not None and self._subset_plan_current(cached[0], groups):
            plan, order = cached
        else:
            plan, order = self._build_subset_plan(key, grads)
        try:
            self._run_plan(plan, _in_order(grads, order), None, own=False, rounding_step=self._round_rounding_step)
        except StalePlan:  # an array replaced or resized since the plan was made: nothing was written
            self._subset_plans.pop(key, None)
            plan, order = self._build_subset_plan(key, grads)
            self._run_plan(plan, _in_order(grads, order), None, own=False, rounding_step=self._round_rounding_step)

    def _param_count(self) -> int:
        return sum(len(g["params"]) for g in self.param_groups)

    def _build_subset_plan(self, key: tuple[int, ...], grads: Sequence[Any]) -> tuple[_Plan, list[int] | None]:
        """The checked path over the params at ``key`` (and, where every one of them has its state,
        kept for the next calls with this key): the plan and, per plan entry, where its grad is in
        ``grads`` (None: entry k's is grads[k]). The plans holding any of these params before (and
        the step's) are dropped: their coefficient schedules count steps these params no longer
        take through them."""
        full: list = [None] * self._param_count()
        for i, g in zip(key, grads):
            full[i] = g
        plan = self._build_plan(full, subset=True)
        where = {i: k for k, i in enumerate(key)}
        order: list[int] | None = [where[i] for i in plan.positions]
        if order == list(range(len(key))):
            order = None  # the grads as they come (a TorchGrads is then read in C++, not as objects)
        starts = np.cumsum([0] + [len(g["params"]) for g in self.param_groups])
        plan.members = []
        for i in plan.positions:
            gi = int(np.searchsorted(starts, i, side="right")) - 1
            plan.members.append((gi, i - int(starts[gi]), self.param_groups[gi]["params"][i - int(starts[gi])]))
        self._plan = None
        for i in key:
            self._subset_plans.pop(self._plan_owner.pop(i, None), None)
        if plan.reusable:
            self._subset_plans[key] = (plan, order)
            for i in key:
                self._plan_owner[i] = key
        return plan, order

    def _subset_plan_current(self, plan: _Plan, groups: list) -> bool:
        """A kept subset plan still describes its params: the same state, groups and arrays."""
        param_groups = self.param_groups
        return plan.state is self.state and plan.version == self.state.version and len(plan.groups) == len(groups) \
            and all(param_groups[gi]["params"][j] is p for gi, j, p in plan.members)

    def _next_round(self, key: tuple[int, ...]) -> None:
        """Count the params of ``key`` into the step under way, or start the next step when one of
        them was stepped in it already. A step counts in the stochastic-rounding counter when it
        starts (a checkpoint taken during it resumes after it); its calls draw the key it had."""
        if not self._round.isdisjoint(key):
            self._end_round()
        if not self._round:
            self._round_rounding_step = self._rounding_step
            if self.precision.stochastic_rounding:
                self._rounding_step += 1
        self._round.update(key)

    def _end_round(self) -> None:
        """End the step made of step_params() calls."""
        self._round = set()

    def _forget_plans(self) -> None:
        """Drop every plan (the step's, and step_params()' per subset): the next steps check anew."""
        self._plan = None
        self._subset_plans: dict[tuple[int, ...], tuple[_Plan, list[int] | None]] = {}
        self._plan_owner: dict[int, tuple[int, ...]] = {}  # param index -> the key of the kept plan holding it

    # ----- the step's one path: a plan, made by the checked path, run by C++ ----------------
    def _build_plan(self, grads: Any, subset: bool = False) -> _Plan:
        """The checked path: a plan over the params that have a grad, each of whose arrays C++
        checks (dtype, shape, layout, no overlap). Creates the state of params stepped for the
        first time (and arrays a flag turned on since) in new dicts, which become the
        optimizer's only once a step ran (``_run_plan``): a refused step changes nothing.
        Params of a group share a coefficient slot while their scalar state (step...) is equal.
        ``subset``: a plan for step_params(), reusable without the params that have no grad."""
        groups = self._groups_now()
        if sum(len(params) for _, params in groups) != len(grads):
            raise ValueError(f"step() got {len(grads)} grads for {sum(len(ps) for _, ps in groups)} params "
                             "(param_groups changed during the step)")
        hyper_groups = list(self._hyper_groups())
        self._watch.truncate(len(hyper_groups))  # forget groups removed since
        if len(hyper_groups) != len(groups):
            raise ValueError(f"{len(hyper_groups)} groups of hyper-parameters for {len(groups)} param groups")
        live = self.state._data
        fresh_bit = self.kernel.flag_bits[self.fresh_state_flag] if self.fresh_state_flag else 0
        scalar_names = self._scalar_state_names()
        items, dicts, modes, pending, positions = [], [], [], [], []
        slots: dict[tuple, int] = {}
        reusable = True
        index = 0
        for gi, ((_, params), group) in enumerate(zip(groups, hyper_groups)):
            mode = self._group_mode(group)
            names = self.kernel.state_names(mode)
            modes.append(mode)
            given = [grads[index + j] is not None for j in range(len(params))]
            reusable = reusable and (subset or all(given))
            stateless = [p for p, g in zip(params, given) if g and id(p) not in live]
            created = dict(zip(map(id, stateless), self._new_states(names, stateless, group)))
            for p, g in zip(params, given):
                if g:
                    entry = live.get(id(p))
                    state = entry[1] if entry is not None else created[id(p)]
                    missing = [name for name in names if name not in state]
                    master = self._keeps_master(p) and MASTER_KEY not in state
                    if missing or master:  # a flag turned on since (amsgrad, momentum...)
                        state = dict(state)
                        state.update(self._state_entries(missing, p, group))
                        if master:
                            state[MASTER_KEY] = p.astype(np.float32)  # exact
                    fresh = entry is None or bool(missing)
                    if entry is None or state is not entry[1]:
                        pending.append((p, state))
                    pmode = mode | fresh_bit if fresh and names else mode
                    reusable = reusable and pmode == mode
                    before = tuple(state[name] for name in scalar_names if name in state)
                    slot = slots.setdefault((gi, before), len(slots))
                    items.append(FusedStep.item(self.kernel, index, pmode, slot, p, None, self._kernel_states(state)))
                    dicts.append(state)
                    positions.append(index)
                index += 1
        core = (self._where or HOST).core.Plan(self.kernel.name, items, dicts)
        group_dicts = hyper_groups
        # Per slot: its group and its params' scalar state before this step (none yet: fresh).
        befores = [(gi, before if len(before) == len(scalar_names) else None) for gi, before in slots]
        if self._kernel_coeffs():
            schedule = GroupSchedule(self.kernel.name, group_dicts, self.kernel.hyper_keys, self.has_step, befores)
            befores = None
        else:
            schedule = None
            befores = [(gi, dict(zip(scalar_names, before or ()))) for gi, before in befores]
        return _Plan(core, self.state, group_dicts, modes, schedule, befores, pending, positions, reusable, len(grads))

    def _plan_fits(self, plan: _Plan, groups: list, changed: tuple[int, ...]) -> bool:
        """The plan still describes the groups changed since the last step: the same dicts (by
        identity: ``==`` would compare their arrays) in the same modes. The rest (its state,
        every param with a grad) the step compares itself; arrays replaced or resized since, or a
        grad now missing, make C++ raise StalePlan before anything is written."""
        return all(groups[gi] is plan.groups[gi] and self._group_mode(groups[gi]) == plan.modes[gi] for gi in changed) \
            and (plan.schedule is not None) == self._kernel_coeffs()

    def _run_plan(self, plan: _Plan, grads: Any, scale: float | None, own: bool = True,
                  rounding_step: int | None = None) -> None:
        """One step through ``plan``: its coefficients from its GroupSchedule (C++), or per slot
        from the Python hooks; C++ merges the scalar state into the state dicts once the update
        ran. The plan becomes the optimizer's (unless ``own`` is False: a step_params() plan).
        ``rounding_step``: the stochastic-rounding step it draws its key from (default: the next)."""
        coeffs: Any = plan.schedule
        scalars = None
        if coeffs is None:
            coeffs, scalars = self._python_coeffs(plan)
        if len(plan.positions) != len(grads):  # params without a grad are not in the plan
            grads = [grads[i] for i in plan.positions]
        precision = self.precision
        if rounding_step is None:
            rounding_step = self._rounding_step
        key = precision.rounding_key(rounding_step) if precision.stochastic_rounding else None
        code_key = precision.code_key(rounding_step)  # stochastic codes (host plans only take it)
        plan.spans = plan.core.run(grads, coeffs, self.param_groups if plan.reusable and own else None, scalars, scale,
                                   key, **({} if code_key is None else {"code_key": code_key}))
        # Nothing from here on may fail: the update is written.
        if scalars is not None:
            plan.slots = [(gi, after) for (gi, _), after in zip(plan.slots, scalars)]
        if plan.pending:
            live = self.state._data
            for p, state in plan.pending:
                live[id(p)] = (p, state)
            plan.pending = []
        if own:
            self._plan = plan

    def _python_coeffs(self, plan: _Plan) -> tuple[list, list | None]:
        """Per slot, the coefficients ``_group_coeffs`` computes and the scalar state after the
        step (None when the optimizer keeps none)."""
        coeffs, after = [], []
        hypers = [hyper_values(group) for group in plan.groups]
        for gi, before in plan.slots:
            new = dict(before)
            self._advance(new, hypers[gi])
            coeffs.append(FusedStep.coeff_tuple(self.kernel, self._group_coeffs(hypers[gi], new)))
            self._after_step(new, hypers[gi])
            after.append(new)
        return coeffs, after if any(after) else None

    # ----- checkpoints ------------------------------------------------------------------
    @_serialized
    def kernel_paths(self) -> list[tuple[int, str, str]]:
        """How the last ``step()`` ran each param it stepped, on the ISA ``pyoptk.isa()`` names:
        ``(param index, "direct" | "fused" | "staged", why)``. "fused": 16-bit arrays converted in
        registers by the layout's own kernel; "staged": converted a block at a time through a
        float32 scratch in L1. Empty before the first step and for steps that are not one planned
        pass (LBFGS, Adafactor, Muon, LAMB, LARS, SparseAdam, ``step_params``)."""
        return [] if self._plan is None else list(self._plan.core.kernel_paths())

    def state_dict(self) -> dict[str, Any]:
        """torch's layout: params replaced by their index in group order. Arrays are references
        to the live state (as in torch): copy.deepcopy the result to snapshot it."""
        index = {id(p): i for i, p in enumerate(self._params())}
        groups, start = [], 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(packed)
        state = {index[id(p)]: self._exported(s) for p, s in self.state.items()}
        out = {"state": dict(sorted(state.items())), "param_groups": groups}
        if not self.precision.default:  # torch's loader ignores keys it does not know
            out["precision"] = self.precision.to_dict(self._rounding_step)
        return out

    def _exported(self, state: dict[str, Any]) -> dict[str, Any]:
        """A param's state for a checkpoint: host arrays as they are, GPU arrays copied to the host."""
        if not isinstance(self._where, CudaDevice):
            return dict(state)
        return {k: self._where.to_host(v) if not np.isscalar(v) else v for k, v in state.items()}

    @_serialized
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a checkpoint of this optimizer class (or torch's, with tensors made arrays).
        Everything is checked before anything is replaced; a checkpoint of the wrong structure is
        a ValueError, a value of the wrong kind a TypeError."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if not isinstance(saved_groups, (list, tuple)) or not all(
                isinstance(g, dict) and isinstance(g.get("params"), (list, tuple)) for g in saved_groups):
            raise ValueError("state_dict['param_groups'] must be a list of dicts, each with a 'params' list")
        if not isinstance(state_dict["state"], dict) or not all(isinstance(v, dict) for v in state_dict["state"].values()):
            raise ValueError("state_dict['state'] must be a dict of per-param dicts")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, the optimizer has {len(self.param_groups)}")
        groups, by_index = [], {}
        for gi, (saved, current) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(current["params"]):
                raise ValueError(f"param_groups[{gi}] has {len(saved['params'])} params in the state dict, "
                                 f"{len(current['params'])} in the optimizer")
            group = {k: v for k, v in saved.items() if k not in _TORCH_IMPL_KEYS}
            missing = [k for k in self.defaults if k not in group]
            if missing:
                raise ValueError(f"param_groups[{gi}] of the state dict lacks {missing} "
                                 f"(is it from another optimizer than {type(self).__name__}?)")
            group["params"] = current["params"]
            if "param_names" in current and "param_names" not in group:  # as torch: names stay
                group["param_names"] = current["param_names"]
            try:
                self._check_group(group)
            except ValueError as e:
                raise ValueError(f"param_groups[{gi}] of the state dict: {e}") from None
            groups.append(group)
            for saved_index, p in zip(saved["params"], current["params"]):
                if isinstance(saved_index, bool) or not isinstance(saved_index, (int, np.integer)) \
                        or saved_index in by_index:
                    raise ValueError(f"param_groups[{gi}] of the state dict: params must be distinct ints, "
                                     f"got {saved_index!r}")
                by_index[saved_index] = (p, group)
        saved_precision = state_dict.get("precision") or {}
        self._saved_block = saved_precision.get("block_size")  # of its quantized states, if any
        new_state = ParamState()
        for key, saved in state_dict["state"].items():
            if key not in by_index:
                raise ValueError(f"state dict has state for param {key}, which no param group lists")
            p, group = by_index[key]
            if saved:  # an empty one is no state (SGD keeps one without momentum): the next step makes it
                new_state[p] = self._load_param_state(key, p, group, saved)
        self.param_groups[:] = groups
        self.state = new_state
        # The stochastic-rounding counter resumes where it was (when the checkpoint has one).
        self._rounding_step = int(saved_precision.get("rounding_step", 0))
        self._forget_plans()
        self._end_round()

    def _load_param_state(self, key: Any, p: np.ndarray, group: dict, saved: dict) -> dict[str, Any]:
        arrays = self.kernel.state_names(self._group_mode(group))
        # A state of the algorithm that the group's flags do not use now (momentum, amsgrad or
        # centered turned off after it was made): torch keeps it, unused, and so does a step here.
        arrays += [name for name, _ in self.kernel.states if name in saved and name not in arrays]
        scalars = self._scalar_state_names()
        master = self._keeps_master(p)
        expected = set(arrays) | set(scalars) | ({MASTER_KEY} if master else set())
        # A quantized checkpoint's states come with their scales and map (read whatever we keep).
        quantized = {name for name in arrays if name + SCALES in saved or name + QMAP in saved}
        expected |= {name + suffix for name in quantized for suffix in (SCALES, QMAP)}
        unknown = sorted(set(saved) - expected)
        missing = sorted(expected - set(saved))
        if unknown or missing:
            raise ValueError(f"state of param {key}: " + "; ".join(
                ([f"unknown keys {unknown}"] if unknown else []) + ([f"missing keys {missing}"] if missing else []))
                + f" ({type(self).__name__} with these settings keeps {sorted(expected)})")
        out: dict[str, Any] = {}
        for name in scalars:
            out[name] = self._load_scalar_state(key, name, saved[name])
        shape, dtype = self._where.describe(p) if arrays or master else (None, None)
        quant = self.precision.quant
        for name in arrays + ([MASTER_KEY] if master else []):
            want = np.dtype(np.float32) if name == MASTER_KEY else self.precision.state_dtype_for(dtype)
            if name in quantized:
                value = self._load_quantized(key, name, saved, shape)
            else:
                value = self._load_array(key, name, saved[name], shape, want)
            sign = quant.sign(self.kernel, name, int(np.prod(shape)), self._group_mode(group)) \
                if quant is not None and name != MASTER_KEY else None
            if sign is not None and name in quantized and self._saved_block_size() == quant.block_size \
                    and np.array_equal(np.asarray(saved[name + QMAP], np.float32), map_of(quant.bits, sign)):
                # Our own layout: the codes and scales as they are (re-coding is not the identity).
                out.update({name: np.array(saved[name], np.uint8).reshape(-1),
                            name + SCALES: np.array(saved[name + SCALES], np.float32).reshape(-1),
                            name + QMAP: map_of(quant.bits, sign)})
            elif sign is None:
                out[name] = value if name not in quantized else self._where.load(value.reshape(shape))
            else:
                out.update(quant.entries(name, value, sign))
        return out

    def _saved_block_size(self) -> Any:
        return getattr(self, "_saved_block", None)

    def _load_quantized(self, key: Any, name: str, saved: dict, shape: tuple) -> np.ndarray:
        """The float32 values of a checkpoint's quantized state, its map and block count checked."""
        what = f"state of param {key}: '{name}'"
        if name + SCALES not in saved or name + QMAP not in saved:
            raise ValueError(f"{what}: a quantized state needs '{name}{SCALES}' and '{name}{QMAP}'")
        quant = self.precision.quant
        block = self._saved_block_size() or (quant.block_size if quant is not None else None)
        if block is None:
            raise ValueError(f"{what} is quantized but the state dict has no precision['block_size']")
        return dequantized(self.kernel.name, name, saved, int(np.prod(shape)), int(block), what)

    def _load_array(self, key: Any, name: str, saved: Any, shape: tuple, want: np.dtype) -> Any:
        """A checkpoint's state array of the given shape, cast as torch does to ``want`` (the
        dtype this optimizer keeps it in)."""
        value = np.asarray(saved)
        if value.shape != shape:
            raise ValueError(f"state of param {key}: '{name}' has shape {value.shape}, the param {shape}")
        if not (np.issubdtype(value.dtype, np.floating) or is_low_precision(value.dtype)):
            raise ValueError(f"state of param {key}: '{name}' has dtype {value.dtype}, expected floating point")
        return self._where.load(cast_state(value, want, f"state of param {key}: '{name}'"))

    def _scalar_state_names(self) -> list[str]:
        """The per-param scalar state: the step count and the kernel's scalars (NAdam's mu_product...)."""
        return (["step"] if self.has_step else []) + self.kernel.scalar_names

    def _load_scalar_state(self, key: Any, name: str, value: Any) -> Any:
        """``step``: a whole number in [0, 2**53] (an int or, from torch, a 0-d float array); other
        scalar state a finite float, within ``scalar_state_bounds``."""
        what = f"state of param {key}: '{name}'"
        if name == "step":
            return whole_count(value, what)
        return real_number(value, what, *self.scalar_state_bounds.get(name, (-np.inf, np.inf)))

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])
