"""The optimizers, one module per algorithm family."""
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .adafactor import Adafactor
from .ademamix import AdEMAMix
from .adan import Adan
from .adopt import ADOPT
from .asgd import ASGD
from .lamb import LAMB
from .lars import LARS
from .lbfgs import LBFGS
from .lion import Lion
from .muon import Muon
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from .sgd import SGD
from .sparse_adam import SparseAdam, SparseGrad

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam", "Adadelta", "Rprop", "ASGD",
           "SparseAdam", "SparseGrad", "Adafactor", "Muon", "LBFGS",
           # beyond torch.optim
           "Lion", "LAMB", "LARS", "Adan", "ADOPT", "AdEMAMix", "ScheduleFreeSGD", "ScheduleFreeAdamW"]
