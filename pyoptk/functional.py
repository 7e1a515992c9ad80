"""Stateless in-place updates over lists of arrays: the entry point for frameworks that own
their optimizer state. Signatures follow torch.optim's functional API. ``init`` / ``update``
do the same over nested dicts / lists / tuples of arrays (pyoptk/functional_tree.py).

The functional forms are those of the algorithm registry (pyoptk/optim/__init__.py)."""
from . import optim as _optim
from .functional_tree import init, update
from .optim import *  # noqa: F401,F403  the registry's names: its functional forms stay

# Type checkers read only the literal list and the `+=` (they see the registry's classes here
# too); at import the classes go: they live in pyoptk.
__all__ = ["init", "update"]
__all__ += _optim.__all__
__all__ = [n for n in __all__ if n not in _optim.CLASSES and n != "SparseGrad"]
for _name in set(_optim.__all__) - set(__all__):
    del globals()[_name]
