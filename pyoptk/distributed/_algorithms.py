"""Which pyoptk optimizers a shard can run: those whose update of an element reads only that
element (of the param, its grad and its state) and per-param scalars (step counts), so a piece
of a param steps exactly as the same elements of the whole param would."""
from __future__ import annotations

import pyoptk
from pyoptk.optim import ALGORITHMS

__all__ = ["check_element_wise"]

# From the registry: one fused element-wise kernel per step over dense grads.
ELEMENT_WISE = tuple(e.cls for e in ALGORITHMS if e.elementwise and e.grads == "dense")

NOT_ELEMENT_WISE = {
    pyoptk.LAMB: "its trust ratio is the norm of the whole param over the norm of its update",
    pyoptk.LARS: "its trust ratio is the norm of the whole param over the norm of its grad",
    pyoptk.Adafactor: "it factors the second moment of a matrix into row and column sums",
    pyoptk.Muon: "it orthogonalises each whole matrix update (Newton-Schulz iterations)",
    pyoptk.LBFGS: "its direction and line search use dot products over all params",
    pyoptk.SparseAdam: "it steps sparse grads (rows of a param), not a dense shard",
    pyoptk.ScheduleFreeSGD: "its train()/eval() swap and schedule state (kept in param_groups) are not "
                            "sharded yet (its update itself is element-wise)",
    pyoptk.ScheduleFreeAdamW: "its train()/eval() swap and schedule state (kept in param_groups) are not "
                              "sharded yet (its update itself is element-wise)",
}


def check_element_wise(optimizer_class: type) -> None:
    """TypeError, with the reason, unless ``optimizer_class`` is an element-wise pyoptk optimizer."""
    if not isinstance(optimizer_class, type):
        raise TypeError(f"optimizer_class must be a pyoptk optimizer class, got {optimizer_class!r}")
    for cls, reason in NOT_ELEMENT_WISE.items():
        if issubclass(optimizer_class, cls):
            raise TypeError(f"ShardedOptimizer cannot shard {optimizer_class.__name__}: {reason}")
    if not issubclass(optimizer_class, ELEMENT_WISE):
        names = ", ".join(c.__name__ for c in ELEMENT_WISE)
        raise TypeError(f"ShardedOptimizer shards the element-wise pyoptk optimizers ({names}); "
                        f"{optimizer_class.__name__} is not one of them")
