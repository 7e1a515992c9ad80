"""The optimizers, one module per algorithm family, and the algorithm registry.

``ALGORITHMS`` is the one list of the algorithms: ``pyoptk``, ``pyoptk.functional``,
``pyoptk.torch``, ``pyoptk.functional.init`` and the tests take theirs from it. Adding an
algorithm: its ops header in C++ (csrc/include/pyoptk/ops/, found by the build), its module here,
and one import line plus one row below (the import keeps the names visible to type checkers;
tests check that the imports and the rows agree); the build rewrites pyoptk.torch's stub.
"""
from ._registry import Entry
from .adadelta import Adadelta, adadelta
from .adafactor import Adafactor, adafactor
from .adagrad import Adagrad, adagrad
from .adam import Adam, AdamW, adam, adamw
from .adamax import Adamax, adamax
from .ademamix import AdEMAMix, ademamix
from .adan import Adan, adan
from .adopt import ADOPT, adopt
from .asgd import ASGD, asgd
from .lamb import LAMB, lamb
from .lars import LARS, lars
from .lbfgs import LBFGS
from .lion import Lion, lion
from .muon import Muon, muon
from .nadam import NAdam, nadam
from .radam import RAdam, radam
from .rmsprop import RMSprop, rmsprop
from .rprop import Rprop, rprop
from .schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD, schedule_free_adamw, schedule_free_sgd
from .sgd import SGD, sgd
from .sparse_adam import SparseAdam, SparseGrad, sparse_adam

_SWAPS = ("train", "eval")  # schedule-free: the twin's train() / eval() swap y and x as the core's

ALGORITHMS: tuple[Entry, ...] = (
    Entry(SGD, sgd),
    Entry(Adam, adam),
    Entry(AdamW, adamw),
    Entry(RMSprop, rmsprop),
    Entry(Adagrad, adagrad),
    Entry(Adamax, adamax),
    Entry(NAdam, nadam),
    Entry(RAdam, radam),
    Entry(Adadelta, adadelta),
    Entry(Rprop, rprop),
    Entry(ASGD, asgd),
    Entry(SparseAdam, sparse_adam, grads="sparse"),
    Entry(Adafactor, adafactor),
    Entry(Muon, muon),
    Entry(LBFGS, grads="closure"),
    # beyond torch.optim
    Entry(Lion, lion, in_torch=False),
    Entry(LAMB, lamb, in_torch=False),
    Entry(LARS, lars, in_torch=False),
    Entry(Adan, adan, in_torch=False),
    Entry(ADOPT, adopt, in_torch=False),
    Entry(AdEMAMix, ademamix, in_torch=False),
    Entry(ScheduleFreeSGD, schedule_free_sgd, in_torch=False, twin_methods=_SWAPS),
    Entry(ScheduleFreeAdamW, schedule_free_adamw, in_torch=False, twin_methods=_SWAPS),
)

CLASSES = tuple(e.name for e in ALGORITHMS)
FUNCTIONAL = tuple(e.functional.__name__ for e in ALGORITHMS if e.functional is not None)

# What type checkers see (they read only a literal list): the classes, SparseAdam's grad type and
# the functional forms. pyoptk exports the classes, pyoptk.functional the functional forms
# (tests/test_registry.py checks this list against the rows).
__all__ = ["SGD", "sgd", "Adam", "adam", "AdamW", "adamw", "RMSprop", "rmsprop", "Adagrad", "adagrad",
           "Adamax", "adamax", "NAdam", "nadam", "RAdam", "radam", "Adadelta", "adadelta", "Rprop", "rprop",
           "ASGD", "asgd", "SparseAdam", "sparse_adam", "SparseGrad", "Adafactor", "adafactor", "Muon", "muon",
           "LBFGS", "Lion", "lion", "LAMB", "lamb", "LARS", "lars", "Adan", "adan", "ADOPT", "adopt",
           "AdEMAMix", "ademamix", "ScheduleFreeSGD", "schedule_free_sgd", "ScheduleFreeAdamW", "schedule_free_adamw"]
