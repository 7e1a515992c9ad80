"""Stateless in-place updates over lists of arrays: the entry point for frameworks that own
their optimizer state. Signatures follow torch.optim's functional API."""
from .optim.adam import adam, adamw
from .optim.sgd import sgd

__all__ = ["sgd", "adam", "adamw"]
