"""One mechanism behind every pyoptk.jax factory: a NumPy-API optimizer class, built once over a
dummy param, says the group (checked hyper-parameters), the mode, the states and their initial
values; ``Fused`` turns that into an optax transformation whose step is one XLA custom call."""
from __future__ import annotations

import numbers
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._precision import CODE_STREAM, is_low_precision
from ..optimizer import Optimizer
from . import _ffi
from ._quantized import SCALES, QuantLayout

__all__ = ["PyoptkState", "FusedTransformation", "make"]

# What a hyper-parameter given as an array (a schedule's value, inject_hyperparams') stands in for
# while the class checks the group and picks the mode: valid for every check, and non-zero, so a
# flag it gates (weight decay, momentum) is on: with the value 0 at run time the result is the same.
_PLACEHOLDER = 0.5


class PyoptkState(NamedTuple):
    """The state of a pyoptk.jax transformation: a pytree of jax.Arrays (checkpoint it as any)."""
    count: jax.Array    # int32: steps done
    scalars: jax.Array  # uint32[2 * n]: the op's per-param scalar state (NAdam's mu_product) as float64 bits
    states: dict        # state name -> a pytree shaped like the params (quantized: codes, and scales
                        # under name + "_absmax", None where a leaf keeps float32: _quantized.py)
    master: Any         # float32 copies of 16-bit params (master_weights; None for the others), or None


def _static(value: Any) -> bool:
    return isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, jax.Array)


class Fused:
    """The static description of one step (built once per factory call)."""

    def __init__(self, cls: type[Optimizer], learning_rate: Any, kwargs: dict[str, Any], precision: dict[str, Any]):
        dynamic: dict[tuple[str, Optional[int]], Any] = {}
        static: dict[str, Any] = {}
        self.schedule: Callable[[Any], Any] | None = None
        if callable(learning_rate):
            self.schedule, learning_rate = learning_rate, _PLACEHOLDER
        elif not _static(learning_rate):
            dynamic[("lr", None)], learning_rate = learning_rate, _PLACEHOLDER
        for key, value in kwargs.items():
            if isinstance(value, tuple):
                for i, v in enumerate(value):
                    if not _static(v) and v is not None:
                        dynamic[(key, i)] = v
                value = tuple(v if _static(v) or v is None else _PLACEHOLDER for v in value)
            elif not _static(value) and value is not None and not callable(value):
                dynamic[(key, None)], value = value, _PLACEHOLDER
            static[key] = value
        for key, value in precision.items():  # they pick the state's layout: fixed when the step is traced
            if isinstance(value, jax.Array):
                raise ValueError(f"pyoptk.jax.{cls.__name__}: '{key}' cannot be an array; pass a Python value "
                                 f"(with optax.inject_hyperparams: static_args=('{key}',))")
        self.kwargs = dict(lr=learning_rate, **static)  # the NumPy-API class's arguments (tests build its twin)
        self.precision_kwargs = dict(precision)  # and its precision arguments (checkpoints load through it)
        opt = cls([np.zeros(1, np.float32)], **self.kwargs, **precision)
        self.check_class(opt)
        group = opt.param_groups[0]
        kernel = self.kernel = opt.kernel
        self.cls, self.cls_name = cls, cls.__name__
        self.group = {k: v for k, v in group.items() if k != "params"}
        self.mode = opt._group_mode(group)
        self.state_names = kernel.state_names(self.mode)
        # The flag a param's first step runs with (its state created: SGD's b = g), as the NumPy API.
        fresh = opt.fresh_state_flag and self.state_names
        self.fresh_mode = kernel.flag_bits[opt.fresh_state_flag] if fresh else 0
        self.state_init = {name: opt._state_init(name, group) for name in self.state_names}
        self.precision = opt.precision
        self.quant = QuantLayout(opt.precision.quant, kernel, self.mode, self.state_names)
        self.has_step = opt.has_step
        self.hyper = [float(v) for v in kernel.hyper(group)]
        keys = kernel.hyper_keys
        slots = []
        for key, value in dynamic.items():
            if key not in keys:
                raise ValueError(f"pyoptk.jax.{cls.__name__}: '{key[0]}' cannot be an array (it is not a "
                                 "hyper-parameter of the kernel's coefficients); pass a Python number (with "
                                 f"optax.inject_hyperparams: static_args=('{key[0]}',))")
            slots.append(keys.index(key))
        self.dynamic_slots = slots
        self.dynamic_values = list(dynamic.values())
        # Step t draws from step_key(t - 1): the handler adds the steps done to step_key(0) (its
        # rounding key, and its codes' key XOR CODE_STREAM, as rounding_key / code_key do).
        self.key0 = self.precision.step_key(0)
        quant = self.precision.quant
        self.stochastic_codes = quant is not None and quant.stochastic

    def check_class(self, opt: Optimizer) -> None:
        """Refuses a class whose step is not one kernel with C++ coefficients (the handler's)."""
        if not opt._kernel_coeffs() or type(opt).step is not Optimizer.step:
            raise ValueError(f"pyoptk.jax: {type(opt).__name__} is not an element-wise step with C++ coefficients")

    # ----- checkpoints (_checkpoint.py) -----
    # The NumPy API keeps the op's scalar state per param (NAdam's mu_product, beside the step); a
    # subclass whose class keeps it, and the count, in the param group says so and converts them
    # (group_state(count, scalars) -> the group's entries; from_group(group) -> count, scalars).
    scalars_in_group = False

    def wrap(self, state: PyoptkState) -> Any:
        """The transformation's state from a PyoptkState (the same here)."""
        return state

    # ----- state -----
    def keeps_master(self, p: Any) -> bool:
        return self.precision.master_weights and is_low_precision(p.dtype)

    def init(self, params: Any) -> PyoptkState:
        leaves = jax.tree_util.tree_leaves(params)
        _ffi.refuse_non_cpu(leaves)
        for p in leaves:
            if not jnp.issubdtype(p.dtype, jnp.floating):
                raise TypeError(f"pyoptk.jax.{self.cls_name}: params must be float arrays, got {p.dtype}")
            self.precision.check_param(np.dtype(p.dtype), f"pyoptk.jax.{self.cls_name}: a param")

        def new(name: str, p: Any) -> tuple[Any, Any]:
            """(the state's array or codes, its scales or None)."""
            value = self.state_init[name] or 0.0  # uninitialised: the first step writes it all
            if self.quant.sign(name, p.size) is None:
                return jnp.full(p.shape, value, self.precision.state_dtype_for(p.dtype)), None
            return self.quant.initial(name, p.size, value)

        states = {}
        for name in self.state_names:
            pairs = jax.tree.map(lambda p: new(name, p), params)
            states[name] = jax.tree.map(lambda p, pair: pair[0], params, pairs)
            if name in self.quant.names:
                states[name + SCALES] = jax.tree.map(lambda p, pair: pair[1], params, pairs)
        master = None
        if self.precision.master_weights:
            master = jax.tree.map(lambda p: p.astype(jnp.float32) if self.keeps_master(p) else None, params)
        return PyoptkState(count=jnp.zeros([], jnp.int32),
                           scalars=jnp.zeros([2 * len(self.kernel.scalar_names)], jnp.uint32),
                           states=states, master=master)

    # ----- the step -----
    def step(self, params: Any, grads: Any, state: PyoptkState) -> tuple[Any, PyoptkState]:
        """New params and state from one fused call (params and state aliased: donate them)."""
        return self.call(params, grads, state, _ffi.TARGET)

    def call(self, params: Any, grads: Any, state: PyoptkState, target: str) -> tuple[Any, PyoptkState]:
        """step() through the FFI handler ``target`` (_ffi.NOOP_TARGET: the same call, nothing done)."""
        if not isinstance(state, PyoptkState):
            raise TypeError(f"pyoptk.jax.{self.cls_name}: state must be the PyoptkState its init returned")
        p_leaves, treedef = jax.tree_util.tree_flatten(params)
        g_leaves = treedef.flatten_up_to(grads)
        s_leaves = [treedef.flatten_up_to(state.states[name]) for name in self.state_names]
        # Each state's scales per leaf (None: a float32 state there).
        q_leaves = [treedef.flatten_up_to(state.states[name + SCALES]) if name in self.quant.names
                    else [None] * len(p_leaves) for name in self.state_names]
        if state.master is None:
            m_leaves = [None] * len(p_leaves)
        else:
            m_leaves = treedef.flatten_up_to(state.master)
        values = list(self.dynamic_values)
        if self.schedule is not None:
            values.insert(0, self.schedule(state.count))
        slots = ([self.kernel.hyper_keys.index(("lr", None))] if self.schedule is not None else []) + self.dynamic_slots
        dynamic = jnp.stack([jnp.asarray(v, jnp.float32).reshape(()) for v in values]) if values \
            else jnp.zeros([0], jnp.float32)
        arrays = [[p, *(x for s, q in zip(s_leaves, q_leaves) for x in (s[i], q[i]) if x is not None),
                   *([m] if m is not None else [])] for i, (p, m) in enumerate(zip(p_leaves, m_leaves))]
        quant = [self.quant.map_id(name, p.size) if q[i] is not None else -1
                 for i, p in enumerate(p_leaves) for name, q in zip(self.state_names, q_leaves)]
        attrs = _ffi.static_attrs(self.kernel.name, self.mode, self.fresh_mode, self.hyper, slots, len(p_leaves),
                                  [m is not None for m in m_leaves], self.precision.stochastic_rounding, self.key0,
                                  quant=quant, block=self.quant.block, stochastic_codes=self.stochastic_codes,
                                  code_stream=CODE_STREAM)
        scalars, new = _ffi.step_call(attrs, dynamic, state.count, state.scalars, arrays, g_leaves, target)
        new_params = treedef.unflatten([a[0] for a in new])
        states: dict[str, list] = {k: [] for k in state.states}
        masters = []
        for i, a in enumerate(new):  # each leaf's results in the order of its operands
            at = iter(a[1:])
            for name, q in zip(self.state_names, q_leaves):
                states[name].append(next(at))
                if name in self.quant.names:
                    states[name + SCALES].append(next(at) if q[i] is not None else None)
            masters.append(next(at, None))
        master = treedef.unflatten(masters) if state.master is not None else None
        return new_params, PyoptkState(state.count + 1, scalars,
                                       {k: treedef.unflatten(v) for k, v in states.items()}, master)

    def update(self, grads: Any, state: PyoptkState, params: Any = None) -> tuple[Any, PyoptkState]:
        """optax's form: updates = new params - params (the step writes a copy of the params)."""
        if params is None:
            raise ValueError(f"pyoptk.jax.{self.cls_name}: update() needs params (the fused step reads and "
                             "writes them): call update(grads, state, params)")
        new_params, new_state = self.step(params, grads, state)
        updates = jax.tree.map(lambda n, p: n - p, new_params, params)
        return updates, new_state


class FusedTransformation(optax.GradientTransformation):
    """An optax.GradientTransformation with the apply_updates-free step beside it:
    ``params, state = tx.step(params, grads, state)`` (one pass; donate params and state under jit)."""
    __slots__ = ()

    def step(self, params: Any, grads: Any, state: PyoptkState) -> tuple[Any, PyoptkState]:
        return self.update.__self__.step(params, grads, state)

    @property
    def fused(self) -> Fused:
        return self.update.__self__


def make(cls: type[Optimizer], learning_rate: Any, kwargs: dict[str, Any], precision: dict[str, Any]) -> FusedTransformation:
    fused = Fused(cls, learning_rate, kwargs, precision)
    return FusedTransformation(fused.init, fused.update)
