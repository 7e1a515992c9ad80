"""Schedule-free SGD and AdamW (pyoptk's ScheduleFreeSGD / ScheduleFreeAdamW, the reference's
formulas) as optax transformations, and the evaluation point x beside them.

The step is the same one XLA custom call as every pyoptk.jax step: the op's C++ host functions
(ops/schedule_free.h) advance the schedule (lr_max, weight_sum: the transformation's scalar state,
k: its count) and compute the coefficients. ``schedule_free_eval_params`` runs the NumPy API's
eval() swap x = lerp(y, z, 1 - 1/b1) through the same handler, with the same lerp kernel.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import optim
from .._precision import is_low_precision
from ..optim.schedule_free import LERP
from ..optimizer import Optimizer
from . import _ffi
from ._transform import Fused, FusedTransformation, PyoptkState

__all__ = ["schedule_free_sgd", "schedule_free_adamw", "schedule_free_eval_params", "ScheduleFreeState"]


class ScheduleFreeState(NamedTuple):
    """A PyoptkState's fields (count = k, the steps taken; scalars = lr_max and weight_sum as
    float64 bits; states: z, and exp_avg_sq for AdamW; master: None) and the eval weight."""
    count: jax.Array
    scalars: jax.Array
    states: dict
    master: Any
    eval_weight: jax.Array  # uint32[2]: 1 - 1/b1 as float64 bits (x = lerp(y, z, eval_weight))


def _f64_bits(x: Any) -> jax.Array:
    """uint32[2] (little-endian halves) of a number's float64 value: exact for a Python number; a
    traced float32 (b1 from optax.inject_hyperparams) widened exactly with integer ops, as x64 may be off."""
    if not isinstance(x, jax.Array):
        return jnp.asarray(np.float64(x).reshape(1).view(np.uint32))
    b = jax.lax.bitcast_convert_type(jnp.asarray(x, jnp.float32), jnp.uint32)
    u = jnp.uint32
    exponent, mantissa = (b >> u(23)) & u(0xFF), b & u(0x7FFFFF)
    normal = exponent != u(0)  # 1 - 1/b1 < 0 for 0 < b1 < 1: normal; zero/denormal read as 0
    hi = (b & u(0x80000000)) | jnp.where(normal, ((exponent + u(896)) << u(20)) | (mantissa >> u(3)), u(0))
    lo = jnp.where(normal, mantissa << u(29), u(0))
    return jnp.stack([lo, hi])


class _ScheduleFreeFused(Fused):
    """Fused for the schedule-free classes: they step through their own step() (it advances the
    group's schedule) with C++ coefficients; their schedule and count live in the param group."""
    scalars_in_group = True

    def __init__(self, cls: type[Optimizer], learning_rate: Any, kwargs: dict[str, Any], b1: Any):
        self.b1 = b1
        super().__init__(cls, learning_rate, kwargs, {})

    def check_class(self, opt: Optimizer) -> None:
        if not isinstance(opt, optim.schedule_free._ScheduleFree):
            super().check_class(opt)

    def eval_weight(self) -> jax.Array:
        """1 - 1/b1 as the NumPy API's eval() computes it (in double; float32 if b1 is an array)."""
        return _f64_bits(1 - 1 / self.b1 if not isinstance(self.b1, jax.Array) else 1 - 1 / jnp.float32(self.b1))

    # ----- state -----
    def init(self, params: Any) -> ScheduleFreeState:
        for p in jax.tree_util.tree_leaves(params):
            if is_low_precision(p.dtype):
                raise TypeError(f"pyoptk.jax.{self.cls_name}: params must be float32 or float64, got {p.dtype} (as "
                                f"pyoptk.{self.cls_name}: x and y would be rounded to 16 bits at every eval swap)")
        base = super().init(params)
        # z = y from the start (the first step sets it again), so that eval before a step gives x = y.
        states = dict(base.states, z=jax.tree.map(jnp.array, params))
        return self.wrap(base._replace(states=states))

    def wrap(self, state: PyoptkState) -> ScheduleFreeState:
        return ScheduleFreeState(*state, eval_weight=self.eval_weight())

    def step(self, params: Any, grads: Any, state: ScheduleFreeState) -> tuple[Any, ScheduleFreeState]:
        if not isinstance(state, ScheduleFreeState):
            raise TypeError(f"pyoptk.jax.{self.cls_name}: state must be the ScheduleFreeState its init returned")
        new_params, new = super().step(params, grads, PyoptkState(*state[:4]))
        return new_params, self.wrap(new)

    # ----- checkpoints -----
    def group_state(self, count: int, scalars: dict[str, float]) -> dict[str, Any]:
        """The NumPy API's group entries: k, train_mode (y in the params), the schedule, the last
        step's warmed-up lr (its coefficients' -neg_lr)."""
        lr = -self.kernel.coeffs(self.group, count, *scalars.values())["neg_lr"] if count else 0.0
        return dict(k=count, train_mode=True, **scalars, scheduled_lr=lr)

    def from_group(self, group: dict[str, Any]) -> tuple[int, tuple[float, ...]]:
        if not group["train_mode"]:
            raise ValueError(f"pyoptk.jax.from_state_dict: the {self.cls_name} was in eval mode (its params held x): "
                             "call its train() before state_dict(), and pass the params it holds then (y)")
        return int(group["k"]), tuple(float(group[n]) for n in self.kernel.scalar_names)


def schedule_free_eval_params(state: ScheduleFreeState, params: Any) -> Any:
    """x, the point to evaluate (and save) the model at: lerp(y, z, 1 - 1/b1) with ``params`` = y,
    bit for bit the NumPy API's eval(); one custom call over the tree, ``params`` left as they
    are (unless donated under jit). Give it the transformation's own state (from
    optax.inject_hyperparams: ``state.inner_state``; in optax.chain: that element)."""
    if not isinstance(state, ScheduleFreeState):
        raise TypeError("pyoptk.jax.schedule_free_eval_params needs the ScheduleFreeState of "
                        "pyoptk.jax.schedule_free_adamw / schedule_free_sgd (from optax.inject_hyperparams: "
                        f"state.inner_state; in optax.chain: its element), got {type(state).__name__}")
    p_leaves, treedef = jax.tree_util.tree_flatten(params)
    z_leaves = treedef.flatten_up_to(state.states["z"])
    # The lerp kernel's coefficients (one_minus_momentum = the weight; momentum: unread in mode 0).
    coeffs = jnp.concatenate([state.eval_weight, jnp.zeros([2], jnp.uint32)])
    attrs = _ffi.static_attrs(LERP.name, 0, 0, [], [], len(p_leaves), [False] * len(p_leaves), False, 0)
    _, new = _ffi.step_call(attrs, jnp.zeros([0], jnp.float32), state.count, coeffs, [[p] for p in p_leaves], z_leaves)
    return treedef.unflatten([a[0] for a in new])


def _make(cls: type[Optimizer], learning_rate: Any, kwargs: dict[str, Any], b1: Any,
          state_dtype: Any) -> FusedTransformation:
    if state_dtype is not None:
        raise ValueError(f"pyoptk.jax.{cls.__name__}: state_dtype is not supported (z and x are kept in the params' "
                         "dtype, as pyoptk's schedule-free does)")
    fused = _ScheduleFreeFused(cls, learning_rate, kwargs, b1)
    return FusedTransformation(fused.init, fused.update)


def schedule_free_adamw(learning_rate: Any = 0.0025, warmup_steps: int = 0, b1: float = 0.9, b2: float = 0.999,
                        eps: float = 1e-8, weight_decay: float = 0.0, weight_lr_power: float = 2.0,
                        state_dtype: Any = None, *, r: float = 0.0) -> FusedTransformation:
    """pyoptk.ScheduleFreeAdamW (the reference's AdamWScheduleFree) with optax.contrib's names.
    ``warmup_steps``: the reference's linear warmup of the lr (0: none, where optax's default is
    None); ``r``: the reference's averaging weight (k+1)^r (optax has none: r = 0). A schedule as
    ``learning_rate`` is multiplied by the warmup, and lr_max is the running max of the product.
    Params float32 or float64; ``state_dtype`` only None."""
    return _make(optim.ScheduleFreeAdamW, learning_rate,
                 dict(betas=(b1, b2), eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps, r=r,
                      weight_lr_power=weight_lr_power), b1, state_dtype)


def schedule_free_sgd(learning_rate: Any = 1.0, warmup_steps: int = 0, b1: float = 0.9,
                      weight_decay: Optional[float] = None, weight_lr_power: float = 2.0, state_dtype: Any = None, *,
                      r: float = 0.0) -> FusedTransformation:
    """pyoptk.ScheduleFreeSGD (the reference's SGDScheduleFree; ``b1`` is its momentum) with
    optax.contrib's names; options as ``schedule_free_adamw``. ``weight_decay``: L2, added to
    the grad first (None: 0)."""
    return _make(optim.ScheduleFreeSGD, learning_rate,
                 dict(momentum=b1, weight_decay=0.0 if weight_decay is None else weight_decay,
                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power), b1, state_dtype)
