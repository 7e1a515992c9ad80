"""Loading a ``torch.optim`` checkpoint into the pyoptk optimizer of the same class.

torch's ``optimizer.state_dict()`` and pyoptk's share one layout (``{"state": {index: {...}},
"param_groups": [{..., "params": [indices]}]}``); only the leaves differ: torch keeps tensors
(``step`` as a 0-d tensor, LBFGS's history as lists of tensors; ``lr`` or ``betas`` may be
tensors too). This module turns every tensor, at any depth, into NumPy.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["from_torch_state_dict"]


def from_torch_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """``torch.optim.<Algo>.state_dict()`` (or ``torch.load`` of one) as a pyoptk state dict, ready
    for ``pyoptk.<Algo>.load_state_dict``.

    Tensors become NumPy arrays (copied off any device; bfloat16 widened to float32, which NumPy
    lacks); a 0-d tensor inside ``param_groups`` (a tensor ``lr``, ``betas``) becomes a Python
    float. Lists, tuples and dicts are walked at any depth; everything else is kept as it is.
    torch itself is not imported: any object with ``detach``, ``cpu`` and ``numpy`` counts as a
    tensor. ``load_state_dict`` still checks the result (shapes, keys, param counts) and copies it.
    """
    if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
        raise ValueError("state_dict must be a torch optimizer state dict: a dict with 'state' and 'param_groups'")
    return {
        "state": {key: _arrays(value) for key, value in state_dict["state"].items()},
        "param_groups": [_scalars(group) for group in state_dict["param_groups"]],
    }


def _is_tensor(value: Any) -> bool:
    return all(hasattr(value, name) for name in ("detach", "cpu", "numpy")) and not isinstance(value, np.ndarray)


def _to_numpy(tensor: Any) -> np.ndarray:
    tensor = tensor.detach().cpu()
    try:
        return np.array(tensor.numpy(), copy=True)
    except TypeError:  # a dtype NumPy lacks (bfloat16)
        return np.array(tensor.float().numpy(), copy=True)


def _arrays(value: Any) -> Any:
    if _is_tensor(value):
        return _to_numpy(value)
    if isinstance(value, dict):
        return {k: _arrays(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_arrays(v) for v in value)
    return value


def _scalars(value: Any) -> Any:
    if _is_tensor(value):
        array = _to_numpy(value)
        return array.item() if array.ndim == 0 else array
    if isinstance(value, dict):
        return {k: _scalars(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scalars(v) for v in value)
    return value
