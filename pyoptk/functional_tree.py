"""``pyoptk.functional.init`` / ``update``: optimizers over nested containers (dicts, lists,
tuples) of arrays, for NumPy frameworks that keep their weights in such trees and own their
optimizer state, in the style of optax::

    state = pyoptk.functional.init("adamw", params, lr=1e-3, weight_decay=0.01)
    pyoptk.functional.update(state, params, grads)   # params updated in place, one fused call
    state["hyper"]["lr"] = 5e-4                        # hyper-parameters may change between calls

``state`` is plain data: ``{"algorithm": name, "hyper": {...}, "state": tree}``, where ``tree``
has the structure of ``params`` and holds, for each param, torch's per-param state dict (``step``,
``exp_avg``...; filled on the first update, as torch fills it on the first step). It pickles and
deep-copies; a loaded copy resumes bit-identically.

The engine is the class API itself (the algorithm's class over the flattened params), so results
are the class API's. ``update`` keeps, for the few states used last, that optimizer and its checked
plan of the arrays: a steady-state update costs what a class-API step costs plus the walk over
the trees. A state whose arrays were replaced (a loaded checkpoint) gets a new one.
"""
from __future__ import annotations

import functools
import inspect
import operator
import re
from collections import OrderedDict
from typing import Any, Iterator

from . import optim
from .optimizer import Optimizer

__all__ = ["init", "update", "algorithms"]

_KEEP = 8  # engines kept, most recently used first


@functools.lru_cache(maxsize=None)
def algorithms() -> dict[str, type]:
    """The algorithms ``init`` knows: lower-case class names of pyoptk.optim."""
    # dense grads only: LBFGS needs a closure, SparseAdam row-sparse grads
    return {e.name.lower(): e.cls for e in optim.ALGORITHMS if e.grads == "dense"}


def _class(name: Any) -> type:
    cls = algorithms().get(name) if isinstance(name, str) else None
    if cls is None:
        cls = algorithms().get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(algorithms()))}")
    return cls


def _key(k: Any) -> str:
    return f"[{k!r}]"


def _kind(node: Any) -> str | None:
    return "dict" if isinstance(node, dict) else "list" if isinstance(node, list) else \
        "tuple" if isinstance(node, tuple) else None


def _walk(params: Any, others: list[tuple[str, Any]], path: str) -> Iterator[tuple[str, Any, list]]:
    """(path, param, [the other trees' nodes at that place]) for each param leaf, the other trees
    checked to have params' structure (their leaves may be anything)."""
    kind = _kind(params)
    if kind is None:
        if params is None:
            raise ValueError(f"params{path} is None, expected an array")
        yield path, params, [node for _, node in others]
        return
    for name, node in others:
        if _kind(node) != kind:
            raise ValueError(f"{name}{path} is a {type(node).__name__}, params{path} a {type(params).__name__}: "
                             "they must have the same structure")
    if kind == "dict":
        for name, node in others:
            if node.keys() != params.keys():
                missing, extra = sorted(map(repr, params.keys() - node.keys())), sorted(map(repr, node.keys() - params.keys()))
                raise ValueError(f"{name}{path} has other keys than params{path}: "
                                 + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                                             + ([f"extra {', '.join(extra)}"] if extra else [])))
        items = [(k, params[k], [(name, node[k]) for name, node in others]) for k in params]
    else:
        for name, node in others:
            if len(node) != len(params):
                raise ValueError(f"{name}{path} has {len(node)} entries, params{path} {len(params)}")
        items = [(i, params[i], [(name, node[i]) for name, node in others]) for i in range(len(params))]
    for k, sub, sub_others in items:
        yield from _walk(sub, sub_others, path + _key(k))


def _gather(p: Any, g: Any, s: Any, ps: list, gs: list, ss: list) -> bool:
    """The fast walk of update: params, grads and state leaves appended in walk order; False at
    the first difference of structure (then _walk says where and what)."""
    if isinstance(p, dict):
        if not (isinstance(g, dict) and isinstance(s, dict) and len(g) == len(p) == len(s)):
            return False
        for k, v in p.items():
            if k not in g or k not in s or not _gather(v, g[k], s[k], ps, gs, ss):
                return False
        return True
    if isinstance(p, (list, tuple)):
        lst = isinstance(p, list)
        if not (isinstance(g, list if lst else tuple) and isinstance(s, list if lst else tuple)
                and len(g) == len(p) == len(s)):
            return False
        for v, gv, sv in zip(p, g, s):
            if not _gather(v, gv, sv, ps, gs, ss):
                return False
        return True
    if p is None or g is None or not isinstance(s, dict):
        return False
    ps.append(p)
    gs.append(g)
    ss.append(s)
    return True


def _mirror(params: Any, leaves: Iterator) -> Any:
    """A tree of params' structure whose leaves are taken from ``leaves`` in walk order."""
    kind = _kind(params)
    if kind is None:
        return next(leaves)
    if kind == "dict":
        return {k: _mirror(v, leaves) for k, v in params.items()}
    children = [_mirror(v, leaves) for v in params]
    return children if kind == "list" else tuple(children)


class _Engine:
    """The algorithm's optimizer over one state's params, its per-param dicts being the tree's."""

    def __init__(self, cls: type, params: list, dicts: list[dict], hyper: dict[str, Any],
                 precision: dict[str, Any]):
        takes = inspect.signature(cls).parameters  # AdamW takes no decoupled_weight_decay, say
        self.opt = cls(params, **{k: v for k, v in hyper.items() if k in takes}, **precision)
        self.params, self.dicts = params, dicts
        for p, d in zip(params, dicts):
            if d:
                self.opt.state[p] = d

    def fits(self, cls: type, params: list, dicts: list[dict]) -> bool:
        return type(self.opt) is cls and len(params) == len(self.params) and \
            all(map(operator.is_, params, self.params)) and all(map(operator.is_, dicts, self.dicts))

    def step(self, hyper: dict[str, Any], grads: list, params: Any) -> None:
        group = self.opt.param_groups[0]
        unknown = sorted(set(hyper) - set(self.opt.defaults))
        if unknown:
            raise ValueError(f"state['hyper'] has keys {type(self.opt).__name__} does not take: {unknown}")
        group.update(hyper)
        plan = self.opt._plan
        try:
            self.opt.step(grads)
        except (TypeError, ValueError, IndexError) as e:  # name the param by its path in the tree
            paths = _paths(params)
            message = re.sub(r"\bparam (\d+)\b", lambda m: "params" + paths[int(m.group(1))], str(e))
            message = message.replace("param_groups[0]: ", "state['hyper']: ")
            raise type(e)(message) from None
        if plan is not None and self.opt._plan is plan:
            return  # the plan ran: the tree's dicts are the optimizer's, updated in place
        # A step that created or replaced a param's state dict (the first one) worked on a new
        # dict: move its contents into the tree's dict, so that the tree stays the state.
        # (Replacing a dict makes the next step's plan anew.)
        for p, d in zip(self.params, self.dicts):
            live = self.opt.state[p] if p in self.opt.state else d
            if live is not d:
                d.clear()
                d.update(live)
                self.opt.state[p] = d


_ENGINES: OrderedDict[int, _Engine] = OrderedDict()
# The keyword arguments of Optimizer's **precision (pyoptk/optimizer.py).
_PRECISION_KEYS = ("state_dtype", "master_weights", "stochastic_rounding", "seed", "block_size", "min_8bit_size",
                   "stochastic_codes")


def init(algorithm: str, params: Any, **hyper: Any) -> dict[str, Any]:
    """A new optimizer state for ``params`` (a nested dict / list / tuple of arrays): the
    algorithm's lower-case class name (``"adamw"``, ``"sgd"``...) and its keyword arguments, with
    the class's defaults and checks."""
    cls = _class(algorithm)
    walked = list(_walk(params, [], ""))
    leaves = [p for _, p, _ in walked]
    opt = cls(leaves, **hyper)  # the class's checks and defaults; it may create state (Adagrad)
    group = opt.param_groups[0]
    dicts = iter([dict(opt.state[p]) if p in opt.state else {} for p in leaves])
    out = {"algorithm": algorithm.lower(), "hyper": {k: v for k, v in group.items() if k != "params"},
           "state": _mirror(params, dicts)}
    precision = {k: v for k, v in hyper.items() if k in _PRECISION_KEYS}
    if precision:  # state_dtype, master_weights...: how the state is kept, fixed at init
        out["precision"] = precision
    return out


def update(state: dict[str, Any], params: Any, grads: Any) -> None:
    """One step: every param of the tree updated in place with the grad at the same place, in one
    fused call. ``grads`` must have ``params``' structure (a grad per param); the state is updated
    in place. Anything wrong (structure, a grad's shape or dtype, a hyper-parameter) is refused
    naming the place, e.g. ``params['encoder'][2]``, before anything is written."""
    if not isinstance(state, dict) or not {"algorithm", "hyper", "state"} <= state.keys():
        raise ValueError("state must be what pyoptk.functional.init returned (a dict with 'algorithm', "
                         "'hyper' and 'state')")
    cls = _class(state["algorithm"])
    if not isinstance(state["hyper"], dict):
        raise ValueError("state['hyper'] must be a dict")
    leaves, grad_leaves, dicts = [], [], []
    if not _gather(params, grads, state["state"], leaves, grad_leaves, dicts):
        _refuse(params, grads, state["state"])
    engine = _ENGINES.get(id(state))
    if engine is None or not engine.fits(cls, leaves, dicts):
        engine = _Engine(cls, leaves, dicts, state["hyper"], state.get("precision", {}))
    _ENGINES[id(state)] = engine
    _ENGINES.move_to_end(id(state))
    while len(_ENGINES) > _KEEP:
        _ENGINES.popitem(last=False)
    engine.step(state["hyper"], grad_leaves, params)


def _paths(params: Any) -> list[str]:
    return [path for path, _, _ in _walk(params, [], "")]


def _refuse(params: Any, grads: Any, tree: Any) -> None:
    """Raises the error that names where grads or the state tree differ from params."""
    for path, _, (g, d) in _walk(params, [("grads", grads), ("state['state']", tree)], ""):
        if g is None:
            raise ValueError(f"grads{path} is None: update needs a grad for every param")
        if not isinstance(d, dict):
            raise ValueError(f"state['state']{path} is a {type(d).__name__}, expected the param's state dict")
    raise AssertionError("unreachable: _gather and _walk disagree")
