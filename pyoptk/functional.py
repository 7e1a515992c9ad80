"""Stateless in-place updates over lists of arrays: the entry point for frameworks that own
their optimizer state. Signatures follow torch.optim's functional API. ``init`` / ``update``
do the same over nested dicts / lists / tuples of arrays (pyoptk/functional_tree.py)."""
from .optim.adadelta import adadelta
from .optim.adafactor import adafactor
from .optim.adagrad import adagrad
from .optim.adam import adam, adamw
from .optim.adamax import adamax
from .optim.asgd import asgd
from .optim.muon import muon
from .optim.nadam import nadam
from .optim.radam import radam
from .optim.rmsprop import rmsprop
from .optim.rprop import rprop
from .optim.sgd import sgd
from .functional_tree import init, update
from .optim.sparse_adam import sparse_adam

__all__ = ["init", "update", "sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam", "radam", "adadelta", "rprop", "asgd", "sparse_adam", "adafactor",
           "muon"]
