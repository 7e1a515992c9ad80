"""Sharded checkpoints: each rank writes its shard's state and a small index (which elements of
which params it holds); any number of ranks reads them back, each assembling only its own
pieces, and ``consolidated_state_dict`` assembles whole params for a plain single-process
optimizer. Files: ``rank{r}-of-{n}.npz`` (state arrays, ``{piece}.{name}``) and
``rank{r}-of-{n}.index.pkl`` (pickled index: groups' hyper-parameters, params' shapes and
dtypes, pieces, scalar states)."""
from __future__ import annotations

import os
import pickle
from typing import Any

import ml_dtypes
import numpy as np

from ._agree import agree
from ._layout import Piece

__all__ = ["save", "load", "consolidated_state_dict", "shard_state_dict", "load_shards"]

FORMAT = "pyoptk.distributed.shard/1"


def shard_state_dict(opt: Any) -> dict[str, Any]:
    """This rank's shard: its index and, per piece, the state the shard optimizer keeps for it."""
    groups, start = [], 0
    for g in opt.param_groups:
        groups.append(dict({k: v for k, v in g.items() if k not in ("params", "param_names")},
                           params=list(range(start, start + len(g["params"])))))
        start += len(g["params"])
    pieces, state, precision = [], [], None
    for bucket, shard in zip(opt._buckets, opt.shards):
        if shard is None:
            continue
        saved = shard.state_dict()
        precision = saved.get("precision", precision)
        for j, piece in enumerate(bucket.mine):
            pieces.append((piece.index, piece.lo, piece.hi))
            state.append(saved["state"].get(j))
    return {"format": FORMAT, "optimizer": opt._optimizer_class.__name__, "world": opt.comm.Get_size(),
            "rank": opt.comm.Get_rank(), "params": [(p.shape, str(p.dtype)) for p in opt._params()],
            "param_groups": groups, "pieces": pieces, "state": state, "precision": precision}


def save(opt: Any, directory: str | os.PathLike) -> None:
    """Every rank writes its shard into ``directory`` (collective: call on every rank)."""
    error = None
    try:
        shard = shard_state_dict(opt)
        os.makedirs(directory, exist_ok=True)
        stem = os.path.join(directory, f"rank{shard['rank']}-of-{shard['world']}")
        # Arrays as raw bytes (npz keeps no bfloat16), their dtypes in the index.
        arrays = {f"{j}.{k}": np.ascontiguousarray(v).view(np.uint8) for j, st in enumerate(shard["state"]) if st
                  for k, v in st.items() if isinstance(v, np.ndarray)}
        shard["state"] = [None if st is None else {k: (_ArrayIn(v.dtype.name) if isinstance(v, np.ndarray) else v)
                                                   for k, v in st.items()} for st in shard["state"]]
        np.savez(stem + ".npz", **arrays)  # type: ignore[arg-type]  # mypy matches **arrays with allow_pickle
        with open(stem + ".index.pkl", "wb") as f:
            pickle.dump(shard, f)
    except Exception as e:
        error = e
    agree(opt.comm, f"checkpoint.save({os.fspath(directory)!r})", error, None)


class _ArrayIn(str):
    """In a saved index: this state is an array of the named dtype, stored in the npz file."""

    def read(self, arrays: Any, key: str) -> np.ndarray:
        try:
            dtype = np.dtype(str(self))
        except TypeError:  # bfloat16 and the other ml_dtypes types have no NumPy name
            dtype = np.dtype(getattr(ml_dtypes, str(self)))
        return arrays[key].view(dtype)


def _read(directory: str | os.PathLike) -> list[dict]:
    """Every rank's shard of a saved checkpoint; its arrays are read lazily, on first use."""
    names = sorted(n for n in os.listdir(directory) if n.endswith(".index.pkl"))
    if not names:
        raise FileNotFoundError(f"no sharded checkpoint (rank*-of-*.index.pkl) in {os.fspath(directory)!r}")
    worlds = sorted({n.split("-of-")[-1].split(".")[0] for n in names})
    if len(worlds) > 1:
        raise ValueError(f"{os.fspath(directory)!r} holds shards saved on {' and '.join(worlds)} ranks: "
                         "save each checkpoint in a directory of its own")
    shards = []
    for name in names:
        with open(os.path.join(directory, name), "rb") as f:
            shard = pickle.load(f)
        arrays = np.load(os.path.join(directory, name[:-len(".index.pkl")] + ".npz"), allow_pickle=False)
        shard["state"] = [None if st is None else {k: (v.read(arrays, f"{j}.{k}") if isinstance(v, _ArrayIn) else v)
                                                   for k, v in st.items()} for j, st in enumerate(shard["state"])]
        shards.append(shard)
    return shards


class _Saved:
    """A checkpoint's shards, checked whole, answering: the state of elements [lo, hi) of param i."""

    def __init__(self, shards: list[dict]):
        if not shards or any(not isinstance(s, dict) or s.get("format") != FORMAT for s in shards):
            raise ValueError(f"not a sharded checkpoint (each shard a dict of format {FORMAT!r})")
        first = shards[0]
        world = first["world"]
        ranks = sorted(s["rank"] for s in shards)
        if ranks != list(range(world)):
            raise ValueError(f"the checkpoint was saved on {world} ranks; shards of ranks {ranks} were given")
        for s in shards:
            for key in ("optimizer", "params", "param_groups", "world"):
                if s[key] != first[key]:
                    raise ValueError(f"the shards of rank 0 and rank {s['rank']} disagree on {key!r}")
        self.optimizer, self.params, self.param_groups = first["optimizer"], first["params"], first["param_groups"]
        self.precision = first["precision"]
        self._by_param: dict[int, list[tuple[Piece, dict | None]]] = {}
        for s in shards:
            for (i, lo, hi), st in zip(s["pieces"], s["state"]):
                self._by_param.setdefault(i, []).append((Piece(i, lo, hi), st))
        for i, (shape, _) in enumerate(self.params):
            covered = sorted((p.lo, p.hi) for p, _ in self._by_param.get(i, []))
            ends = [0] + [hi for _, hi in covered]
            if [lo for lo, _ in covered] != ends[:-1] or ends[-1] != int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"the checkpoint's pieces of param {i} do not cover it exactly once")

    def check_matches(self, optimizer_name: str, params: list[np.ndarray]) -> None:
        if optimizer_name != self.optimizer:
            raise ValueError(f"the checkpoint is of {self.optimizer}, the optimizer {optimizer_name}")
        ours = [(p.shape, str(p.dtype)) for p in params]
        if ours != self.params:
            raise ValueError(f"the checkpoint's params (shape, dtype) {self.params} are not the optimizer's {ours}")

    def state(self, i: int, lo: int, hi: int) -> dict | None:
        """State of elements [lo, hi) of param i: arrays cut from the saved pieces overlapping it,
        scalars (step...) from one of them (a param's pieces step in lockstep); None if it has none."""
        overlapping = sorted(((p, st) for p, st in self._by_param[i] if p.lo < hi and p.hi > lo), key=lambda x: x[0].lo)
        with_state = [st is not None for _, st in overlapping]
        if not any(with_state):
            return None
        if not all(with_state):
            raise ValueError(f"param {i} has state in some pieces of the checkpoint and not in others")
        first: dict = overlapping[0][1]  # type: ignore[assignment]  # not None: checked above
        out = {}
        for name, value in first.items():
            if isinstance(value, np.ndarray):
                out[name] = np.concatenate([st[name][max(lo, p.lo) - p.lo:min(hi, p.hi) - p.lo]  # type: ignore[index]
                                            for p, st in overlapping])
            else:
                out[name] = value
        return out


def _shards_of(source: Any) -> list[dict]:
    return _read(source) if isinstance(source, (str, os.PathLike)) else list(source)


def load_shards(opt: Any, source: Any) -> None:
    """Load a checkpoint saved on any number of ranks (a directory or every rank's shard dicts)
    into ``opt``: collective; checked on every rank before anything changes."""
    error, plans = None, []
    try:
        saved = _Saved(_shards_of(source))
        saved.check_matches(opt._optimizer_class.__name__, opt._params())
        for bucket, shard in zip(opt._buckets, opt.shards):
            if shard is None:
                continue
            current = shard.state_dict()
            state = {j: st for j, p in enumerate(bucket.mine) if (st := saved.state(p.index, p.lo, p.hi)) is not None}
            groups = [dict(_hyper(saved.param_groups[gi]), params=g["params"]) for gi, g in enumerate(current["param_groups"])]
            plans.append((shard, {"state": state, "param_groups": groups,
                                  **({"precision": saved.precision} if saved.precision else {})}))
        for shard, sd in plans:  # each shard optimizer's own checks, on a copy, before any is replaced
            trial = type(shard)([dict(_hyper(g), params=[p.copy() for p in group["params"]])
                                 for g, group in zip(sd["param_groups"], shard.param_groups)], **opt._kwargs)
            trial.load_state_dict(sd)
    except Exception as e:
        error = e
    agree(opt.comm, "load_state_dict()", error, None)
    for shard, sd in plans:
        shard.load_state_dict(sd)
    for group, saved_group in zip(opt.param_groups, saved.param_groups):
        group.update(_hyper(saved_group))


def load(opt: Any, directory: str | os.PathLike) -> None:
    """Every rank loads its pieces of the checkpoint in ``directory``, saved on any number of ranks."""
    load_shards(opt, directory)


def consolidated_state_dict(source: Any) -> dict[str, Any]:
    """The checkpoint (a directory, or every rank's shard dicts) as one ``state_dict`` for the
    plain optimizer on one process (``pyoptk.<Algo>(params).load_state_dict(...)``)."""
    saved = _Saved(_shards_of(source))
    state = {}
    for i, (shape, _) in enumerate(saved.params):
        st = saved.state(i, 0, int(np.prod(shape, dtype=np.int64)))
        if st is not None:
            state[i] = {k: v.reshape(shape) if isinstance(v, np.ndarray) else v for k, v in st.items()}
    out = {"state": state, "param_groups": [dict(g) for g in saved.param_groups]}
    if saved.precision:
        out["precision"] = saved.precision
    return out


def _hyper(group: dict) -> dict:
    return {k: v for k, v in group.items() if k != "params"}
