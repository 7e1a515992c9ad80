"""One small collective before any data moves: every rank says whether it can go on (and what
it expects the others to hold), so a mismatch or a refusal raises the same error on every rank
instead of a hang or MPI's "message truncated"."""
from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["DistributedError", "agree", "fingerprint"]


class DistributedError(ValueError):
    """Raised on every rank when one rank refused, or the ranks disagree (nothing was changed)."""


def fingerprint(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def agree(comm: Any, what: str, error: BaseException | None, described: Any) -> None:
    """Allgather (this rank's error as text, fingerprint of ``described``); raise DistributedError
    on every rank when a rank has an error (chained to it there) or the fingerprints differ (then a second allgather of ``described``
    names the first difference). Returns normally on every rank, or raises on every rank."""
    problem = None if error is None else f"{type(error).__name__}: {error}"
    verdicts = comm.allgather((problem, fingerprint(described)))
    refused = [(r, p) for r, (p, _) in enumerate(verdicts) if p is not None]
    if refused:
        rank, first = refused[0]
        who = ", ".join(str(r) for r, _ in refused)
        raise DistributedError(f"{what} refused on rank {who} (nothing changed on any rank); rank {rank}: {first}") \
            from error
    if len({f for _, f in verdicts}) > 1:
        everyone = comm.allgather(described)
        other = next(r for r, d in enumerate(everyone) if d != everyone[0])
        ours, theirs = _first_difference(everyone[0], everyone[other])
        raise DistributedError(f"{what}: ranks disagree (nothing changed on any rank): rank 0 has {ours}, "
                               f"rank {other} has {theirs}")


def _first_difference(a: Any, b: Any) -> tuple[str, str]:
    """Where two descriptions (dicts of values or of lists) first differ, as text for each."""
    for key in list(a) + [k for k in b if k not in a]:
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        if isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return f"{len(x)} {key}", f"{len(y)}"
            i = next(i for i, (u, v) in enumerate(zip(x, y)) if u != v)
            return f"{key}[{i}] = {x[i]!r}", repr(y[i])
        return f"{key} = {x!r}", repr(y)
    return "?", "?"
