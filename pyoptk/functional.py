"""Stateless in-place updates over lists of arrays: the entry point for frameworks that own
their optimizer state. Signatures follow torch.optim's functional API. ``init`` / ``update``
do the same over nested dicts / lists / tuples of arrays (pyoptk/functional_tree.py)."""
from .optim.adadelta import adadelta
from .optim.adafactor import adafactor
from .optim.adagrad import adagrad
from .optim.adam import adam, adamw
from .optim.adamax import adamax
from .optim.ademamix import ademamix
from .optim.adan import adan
from .optim.adopt import adopt
from .optim.asgd import asgd
from .optim.lamb import lamb
from .optim.lars import lars
from .optim.lion import lion
from .optim.muon import muon
from .optim.nadam import nadam
from .optim.radam import radam
from .optim.rmsprop import rmsprop
from .optim.rprop import rprop
from .optim.schedule_free import schedule_free_adamw, schedule_free_sgd
from .optim.sgd import sgd
from .functional_tree import init, update
from .optim.sparse_adam import sparse_adam

__all__ = ["init", "update", "sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam", "radam", "adadelta", "rprop", "asgd", "sparse_adam", "adafactor",
           "muon", "lion", "lamb", "lars", "adan", "adopt", "ademamix", "schedule_free_sgd", "schedule_free_adamw"]
