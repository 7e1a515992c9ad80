"""The skeleton of an optimizer whose step is several fused passes with NumPy work between them
(Adafactor, Muon): the step over each group's params with grads, state made on a param's first
step and kept only once the step ran, 16-bit params' float32 master copies, the stochastic-
rounding keys of the step's passes, and checkpoints loaded by the state shapes the algorithm names.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._precision import MASTER_KEY
from ..optimizer import Optimizer, hyper_values
from ._low import Rounding

__all__ = ["MultiPassOptimizer", "check_counts"]


def check_counts(params: Sequence, **lists: Sequence) -> None:
    """Each of the functional form's per-param lists has one entry per param."""
    for what, seq in lists.items():
        if len(seq) != len(params):
            raise ValueError(f"{what} has {len(seq)} entries for {len(params)} params")


class MultiPassOptimizer(Optimizer):
    """A subclass names its state arrays (``_state_shapes``) and runs the step on one group
    (``_run_group``, over copies of the states, which it updates in place); it checks its
    hyper-parameters in ``_check_group``."""

    runs_on_cuda = False

    def _group_mode(self, group: dict) -> int:
        return 0

    def _state_shapes(self, p: np.ndarray) -> dict[str, tuple]:
        raise NotImplementedError

    def _run_group(self, group: dict, params: list, grads: list, states: list[dict], rounding: Rounding) -> None:
        raise NotImplementedError

    def step(self, grads: Any = None, closure: Any = None) -> Any:
        """Update every param with a grad. Returns the closure's loss (or None). A refused step
        changes nothing."""
        loss, grads = self._collect_grads(grads, closure)
        batches = self._dense_batches(grads)
        rounding = Rounding(self)
        for group, batch in zip(self._hyper_groups(), batches):
            if not batch:
                continue
            states = [self._state_for_step(p) for p, _ in batch]
            # a 0-d lr (changed in place by a scheduler) as its value
            self._run_group(hyper_values(group), [p for p, _ in batch], [g for _, g in batch], states, rounding)
            for (p, _), state in zip(batch, states):  # new state is kept only once the step ran
                self.state[p] = state
        rounding.commit()
        return loss

    def _state_for_step(self, p: np.ndarray) -> dict[str, Any]:
        """A copy of the param's state, with what its first step needs: the step count, zero
        arrays, and the float32 master copy of a 16-bit param."""
        state = dict(self.state[p]) if p in self.state else {}
        for name in self._scalar_state_names():
            state.setdefault(name, 0)
        dtype = self.precision.state_dtype_for(p.dtype)
        for name, shape in self._state_shapes(p).items():
            if name not in state:
                state[name] = np.zeros(shape, dtype)
        if self._keeps_master(p) and MASTER_KEY not in state:
            state[MASTER_KEY] = p.astype(np.float32)  # exact
        return state

    def _load_param_state(self, key: Any, p: np.ndarray, group: dict, saved: dict) -> dict[str, Any]:
        shapes = self._state_shapes(p)
        scalars = self._scalar_state_names()
        names = set(scalars) | set(shapes) | ({MASTER_KEY} if self._keeps_master(p) else set())
        if set(saved) != names:
            raise ValueError(f"state of param {key}: keys {sorted(saved)}, expected {sorted(names)} "
                             f"({type(self).__name__} keeps these for a {p.ndim}-d param)")
        out = {name: self._load_scalar_state(key, name, saved[name]) for name in scalars}
        dtype = self.precision.state_dtype_for(p.dtype)
        for name, shape in shapes.items():
            out[name] = self._load_array(key, name, saved[name], shape, dtype)
        if MASTER_KEY in names:
            out[MASTER_KEY] = self._load_array(key, MASTER_KEY, saved[MASTER_KEY], p.shape, np.dtype(np.float32))
        return out
