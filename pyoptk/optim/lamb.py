"""LAMB (You et al. 2020): Adam directions rescaled per param by a trust ratio. Three passes:
the fused direction kernel, the deterministic norms, the fused update."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .._arrays import HOST
from .._kernels import FusedStep, Kernel
from .._typing import Array, Betas, Closure, Grads, Params
from ..optimizer import hyper_values
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_betas, check_bool, check_dense_grad, check_nonneg
from ._trust import norms, trust_ratio

__all__ = ["LAMB", "lamb"]

KERNEL = Kernel("lamb")
UPDATE = Kernel("decayed_add")


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    check_betas(h["betas"])
    check_nonneg(h["eps"], "epsilon value")
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_bool(h["maximize"], "maximize")


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(maximize=h["maximize"])


def _update_coeffs(h: Mapping[str, Any], param_norm: float, update_norm: float) -> dict[str, float]:
    """The update pass's: p = p (1 - s wd) - s r with s = lr * trust ratio (trust coefficient 1)."""
    s = h["lr"] * trust_ratio(param_norm, update_norm, 1.0, 0.0)
    return {"alpha": -s, "decay": 1 - s * h["weight_decay"]}


ALGORITHM = Algorithm(KERNEL, _check, _mode)


def _lamb_step(groups: Sequence[tuple[Mapping[str, Any], list, list, list, list]]) -> None:
    """One LAMB step. Each group is (hyper-params, params, grads, states, scratch); ``states[i]``
    hold ``exp_avg``, ``exp_avg_sq`` and the already advanced ``step``; ``scratch[i]`` receives the
    direction. One direction pass over all groups (it checks every grad and state before writing
    anything; grads against their params are checked here first), then norms and update per group."""
    direction = FusedStep(KERNEL)
    index = 0
    for gi, (h, params, grads, states, scratch) in enumerate(groups):
        mode = _mode(h)
        for p, g, state, r in zip(params, grads, states, scratch):
            check_dense_grad(p, g, f"param {index}")
            (p0, p1), (g0, g1) = HOST.extent(p), HOST.extent(g)
            if p0 < g1 and g0 < p1:
                raise ValueError(f"param {index} and its grad share memory; pass a separate grad array")
            t = state["step"]
            direction.add(index, mode, direction.slot((gi, t), lambda: KERNEL.coeffs(h, t)), r, g, state)
            index += 1
    direction.run()  # pass 1: m, v and r = m^ / (sqrt(v^) + eps)
    update = FusedStep(UPDATE)
    index = 0
    for h, params, _, _, scratch in groups:
        if not params:
            continue
        param_norms, update_norms = norms(params, scratch, h["weight_decay"])  # pass 2
        mode = UPDATE.mode(decoupled_weight_decay=h["weight_decay"] != 0)
        for p, r, pn, un in zip(params, scratch, param_norms, update_norms):
            c = _update_coeffs(h, pn, un)
            update.add(index, mode, update.slot((c["alpha"], c["decay"]), lambda: c), p, r, {})
            index += 1
    update.run()  # pass 3


class LAMB(FusedOptimizer):
    r"""LAMB, You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes".

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g;\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2;\quad
        r = \frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon} + \lambda p;\quad
        p \leftarrow p - \gamma\,\frac{\|p\|}{\|r\|}\, r

    per param (ratio 1 where ``||p||`` or ``||r||`` is 0). Matches the paper's Algorithm 2 with
    phi = identity and ``optax.lamb`` (tested against it on CPU JAX); defaults are optax's
    (``betas=(0.9, 0.999)``, ``eps=1e-6``, ``weight_decay=0``) with ``lr=1e-3``. State: ``step``
    (int), ``exp_avg``, ``exp_avg_sq``. Host (NumPy) arrays only.

    Where implementations disagree:

    - weight decay enters the update *before* the trust ratio (paper, optax, NVIDIA apex
      ``FusedLAMB``); pytorch_optimizer's ``Lamb`` defaults to decoupled decay of p outside it.
    - trust ratio: no clamp here (paper with phi = identity, optax); pytorch_optimizer clamps
      ``||p||`` to at most 10 and the cybertronai/tensorflow-addons variants exclude layers by name;
      apex and optax use 1 when a norm is 0, as here.
    - no global grad-norm clipping inside the step (apex and pytorch_optimizer clip to 1.0 by
      default): call ``pyoptk.clip_grad_norm_`` first.
    - eps is added to sqrt(v^), as optax (``eps_root=0``) and the paper.

    Memory traffic per element (float32): pass 1 reads g, m, v and the direction buffer r (a
    scratch array the optimizer keeps, outside the state; its old contents are loaded and
    overwritten) and writes m, v, r: 28 B; pass 2 reads p and r (8 B with ``weight_decay=0``, one
    reduction call; 12 B otherwise: ||p|| and ||r + wd p|| are two calls); pass 3 reads p and r and
    writes p (12 B): 48 / 52 B per element against Adam's 28, in three passes. The norms are the
    deterministic reductions, so results are bit-identical on every ISA and thread count.

    Numerics: norms accumulate in double (optax: in the param dtype); bias corrections are host
    reciprocals; ``p (1 - s wd) - s r`` is optax's ``p - s (r + wd p)`` (equal within an ulp).
    """

    algorithm = ALGORITHM
    runs_on_cuda = False
    low_precision = False  # its NumPy norm passes take float32/float64 arrays

    def __init__(self, params: Params, lr: float = 1e-3, betas: Betas = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize))
        self._scratch: dict[int, np.ndarray] = {}  # per param: the direction r (not part of the state)

    def _direction_buffer(self, p: np.ndarray) -> np.ndarray:
        r = self._scratch.get(id(p))
        if r is None or r.shape != p.shape or r.dtype != p.dtype:
            r = self._scratch[id(p)] = np.empty_like(p)
        return r

    def step(self, grads: Optional[Grads] = None, closure: Optional[Closure] = None) -> Any:
        """Update every param with a grad; returns the closure's loss (or None). A refused step
        changes nothing."""
        loss, grads = self._collect_grads(grads, closure)
        work = []
        for group, batch in zip(map(hyper_values, self._hyper_groups()), self._dense_batches(grads)):
            states = []
            for p, _ in batch:
                state = dict(self.state[p]) if p in self.state else {
                    "step": 0, "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}
                state["step"] += 1
                states.append(state)
            ps = [p for p, _ in batch]
            work.append((group, ps, [g for _, g in batch], states, [self._direction_buffer(p) for p in ps]))
        _lamb_step(work)
        for _, ps, _, states, _ in work:
            for p, state in zip(ps, states):
                self.state[p] = state
        return loss


def lamb(params: Sequence[Array], grads: Sequence[Array], exp_avgs: Sequence[Array], exp_avg_sqs: Sequence[Array],
         state_steps: list[int], *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
         maximize: bool = False) -> None:
    """Functional LAMB (host arrays); ``state_steps`` (ints) are incremented in place. Uses a
    temporary direction array per param."""
    h = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, maximize=maximize)
    _check(h)
    n = len(params)
    for what, seq in (("grads", grads), ("exp_avgs", exp_avgs), ("exp_avg_sqs", exp_avg_sqs),
                      ("state_steps", state_steps)):
        if len(seq) != n:
            raise ValueError(f"{what} has {len(seq)} entries for {n} params")
    states = [{"step": int(t) + 1, "exp_avg": m, "exp_avg_sq": v} for t, m, v in zip(state_steps, exp_avgs, exp_avg_sqs)]
    _lamb_step([(h, list(params), list(grads), states, [np.empty_like(p) for p in params])])
    state_steps[:] = [s["step"] for s in states]
