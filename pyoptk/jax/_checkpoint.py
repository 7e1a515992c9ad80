"""A pyoptk.jax state to and from the NumPy API's ``state_dict`` (torch's layout: per param index
its step, state arrays, scalar state and master copy; a quantized state as its codes, ``_absmax``
scales and ``_qmap`` map), leaves in ``jax.tree_util`` order. Loading goes through the NumPy
API's own loader (a twin optimizer over the leaves' shapes): its checks, and its conversions
(a float32 checkpoint quantized, a quantized one dequantized, re-coded to another map or block)."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._precision import MASTER_KEY
from .._quant import QMAP
from ._quantized import SCALES
from ._transform import FusedTransformation, PyoptkState

__all__ = ["to_state_dict", "from_state_dict"]


def to_state_dict(tx: FusedTransformation, state: PyoptkState) -> dict[str, Any]:
    """The state as pyoptk's NumPy optimizer of the same algorithm saves it (arrays copied to
    NumPy), loadable by its ``load_state_dict`` over the param leaves in tree order."""
    fused = tx.fused
    names = fused.state_names
    leaves = [jax.tree_util.tree_leaves(state.states[n]) for n in names]
    scales = {n: jax.tree_util.tree_leaves(state.states[n + SCALES], is_leaf=lambda x: x is None)
              for n in fused.quant.names}
    masters = jax.tree_util.tree_leaves(state.master, is_leaf=lambda x: x is None) if state.master is not None \
        else [None] * (len(leaves[0]) if leaves else 0)
    count = int(state.count)
    scalars = np.asarray(state.scalars).view(np.float64)
    scalar_state = dict(zip(fused.kernel.scalar_names, map(float, scalars)))
    group_state = fused.group_state(count, scalar_state) if fused.scalars_in_group else None
    per_param = {}
    for i in range(len(masters)):
        entry: dict[str, Any] = {"step": count} if fused.has_step else {}
        for name, ls in zip(names, leaves):
            entry[name] = np.array(ls[i])
            scale = scales[name][i] if name in scales else None
            if scale is not None:
                entry.update({name + SCALES: np.array(scale), name + QMAP: fused.quant.qmap(name)})
        if group_state is None:
            entry.update(scalar_state)
        if masters[i] is not None:
            entry[MASTER_KEY] = np.array(masters[i])
        per_param[i] = entry
    group = dict(fused.group, **(group_state or {}), params=list(range(len(masters))))
    out = {"state": per_param, "param_groups": [group]}
    if not fused.precision.default:
        out["precision"] = fused.precision.to_dict(count if fused.precision.draws else 0)
    return out


def from_state_dict(tx: FusedTransformation, params: Any, state_dict: dict[str, Any],
                    count: int | None = None) -> PyoptkState:
    """A state for ``params`` from a NumPy-API ``state_dict`` of the same algorithm and settings
    (every param stepped as often: one count for the whole tree). ``count``: the steps done, for
    an algorithm whose state keeps none (SGD); a schedule reads it, and step 1 creates the state."""
    fused = tx.fused
    template = tx.init(params)
    saved = state_dict["state"]
    leaves, treedef = jax.tree_util.tree_flatten(params)
    if sorted(saved) != list(range(len(leaves))):
        raise ValueError(f"state_dict has state for params {sorted(saved)}; the tree has {len(leaves)} leaves")
    steps = {saved[i].get("step", 0) for i in saved}
    if len(steps) > 1:
        raise ValueError(f"the params were stepped different numbers of times ({sorted(steps)}): one count per tree")
    names = fused.kernel.scalar_names
    if fused.scalars_in_group:  # the group keeps them, and the count
        groups = state_dict["param_groups"]
        if len(groups) != 1:
            raise ValueError(f"pyoptk.jax.from_state_dict: {fused.cls_name} keeps its scalar state per param group; "
                             f"the state_dict has {len(groups)} groups (one tree is one group)")
        count, row = fused.from_group(groups[0])
        rows = {row}
    else:
        rows = {tuple(float(saved[i][n]) for n in names) for i in saved}
        if len(rows) > 1:
            raise ValueError("the params' scalar states differ: one scalar state per tree")
        if fused.has_step:
            count = int(steps.pop()) if steps else 0
        elif count is None:
            if fused.state_names and saved:
                raise ValueError(f"pyoptk.jax.from_state_dict: {fused.cls_name}'s state keeps no step count; pass "
                                 "count= (the steps done)")
            count = 0
    scalars = np.asarray(rows.pop() if rows else (), np.float64).view(np.uint32)
    loaded = _loaded(fused, leaves, state_dict)
    states = {}
    for key, template_leaves in template.states.items():
        # The twin quantizes the leaves the init does (one rule): codes and scales where it has them.
        states[key] = treedef.unflatten([None if want is None else jnp.asarray(entry[key]).reshape(want.shape)
                                         for want, entry in zip(treedef.flatten_up_to(template_leaves), loaded)])
    master = None
    if template.master is not None:
        master = treedef.unflatten([None if m is None else jnp.asarray(entry[MASTER_KEY], jnp.float32)
                                    for m, entry in zip(treedef.flatten_up_to(template.master), loaded)])
    return fused.wrap(PyoptkState(jnp.asarray(count, jnp.int32), jnp.asarray(scalars), states, master))


def _loaded(fused: Any, leaves: list, state_dict: dict[str, Any]) -> list[dict[str, Any]]:
    """Each leaf's state as the NumPy API's load_state_dict makes it from ``state_dict``: its
    arrays in this transformation's dtypes, quantized or dequantized as its settings say."""
    twin = fused.cls([np.empty(p.shape, p.dtype) for p in leaves], **fused.kwargs, **fused.precision_kwargs)
    twin._saved_block = (state_dict.get("precision") or {}).get("block_size")
    group = twin.param_groups[0]
    return [twin._load_param_state(i, p, group, state_dict["state"][i]) for i, p in enumerate(group["params"])]
