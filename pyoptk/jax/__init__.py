"""pyoptk's fused steps as optax transformations for JAX on CPU (JAX and optax are optional:
``import pyoptk`` never imports this module).

Each factory returns an ``optax.GradientTransformation`` whose update is one XLA custom call
over the whole pytree (pyoptk's multi-tensor step, through JAX's FFI), params and states aliased
to its results: under ``jax.jit`` with ``donate_argnums`` it runs in place. Two forms:

- ``updates, state = tx.update(grads, state, params)`` then ``optax.apply_updates``: optax's
  contract; the step writes a copy of the params, then ``updates = new - params`` and
  ``params + updates``: two extra passes over the params (and p + (p' - p) is not p' bit for bit).
- ``params, state = tx.step(params, grads, state)``: the new params directly, one pass, bit for
  bit what pyoptk's NumPy API computes.
"""
try:
    import jax as _jax  # noqa: F401
    import optax as _optax  # noqa: F401
except ImportError as _error:  # pragma: no cover - exercised where JAX is absent
    raise ImportError("pyoptk.jax needs JAX and optax: pip install 'jax==0.10.2' 'jaxlib==0.10.2' 'optax==0.2.8' "
                      f"(missing: {_error.name})") from None

from ._algorithms import (adagrad, adam, adamax, adamw, ademamix, adan, adopt, from_class, lion, nadam, radam,
                          rmsprop, sgd)
from ._checkpoint import from_state_dict, to_state_dict
from ._schedule_free import ScheduleFreeState, schedule_free_adamw, schedule_free_eval_params, schedule_free_sgd
from ._transform import FusedTransformation, PyoptkState

__all__ = ["sgd", "adam", "adamw", "adagrad", "rmsprop", "adamax", "nadam", "radam", "lion", "adan", "adopt",
           "ademamix", "from_class", "FusedTransformation", "PyoptkState", "to_state_dict", "from_state_dict",
           "schedule_free_adamw", "schedule_free_sgd", "schedule_free_eval_params", "ScheduleFreeState"]
