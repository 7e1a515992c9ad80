"""Type aliases of the public API, in one place (the algorithm modules, the base class, the
functional forms and the torch adapter all spell their signatures with these)."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

# An array pyoptk updates or reads: a NumPy array (or, on a GPU, anything speaking DLPack /
# __cuda_array_interface__, which has no common static type).
Array = Union[npt.NDArray[np.floating[Any]], Any]

# What an optimizer takes: arrays, or param-group dicts ({"params": [...], "lr": ...}).
ParamGroup = Mapping[str, Any]
Params = Union[Iterable[Array], Iterable[ParamGroup]]

# One grad per param in group order; None skips that param.
Grads = Sequence[Union[Array, None]]

# step(closure=...): a closure returning (loss, grads).
Closure = Callable[[], Tuple[Any, Grads]]

Betas = Tuple[float, float]

__all__ = ["Array", "ParamGroup", "Params", "Grads", "Closure", "Betas"]
