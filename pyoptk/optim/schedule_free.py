"""Schedule-free SGD and AdamW (Defazio et al. 2024): one fused kernel per step, and the
train()/eval() swap of the params between the gradient point y and the average x as one more."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from .. import _core
from .._arrays import HOST
from .._kernels import FusedStep, Kernel
from .._typing import Array, Betas, Closure, Grads, Params
from ..optimizer import hyper_values
from ._algorithm import Algorithm, FusedOptimizer
from ._common import check_betas, check_bool, check_nonneg, functional_step

__all__ = ["ScheduleFreeSGD", "ScheduleFreeAdamW", "schedule_free_sgd", "schedule_free_adamw"]

# One op, two flavours: AdamW reads the group's betas and eps; SGD its momentum as beta1, and
# no beta2 nor eps (read as 0: 1 - 0^k = 1).
KERNEL = Kernel("schedule_free")
SGD_KERNEL = Kernel("schedule_free", keys={"beta1": ("momentum", None), "beta2": None, "eps": None})
LERP = Kernel("muon_momentum")  # mode 0: p = lerp(p, g, w), here p = lerp(p, z, w)

# The schedule's state, kept in each param group as the reference keeps it (and so in
# state_dict()["param_groups"]): k steps taken, train_mode, the op's scalar state (ops/schedule_free.h:
# the sum of the averaging weights weight_sum, the warmed-up lr's running max lr_max, as its
# init_scalars sets them: they read no hyper-parameter) and the warmed-up lr of the last step.
_INIT_SCALARS = dict(zip(KERNEL.scalar_names, _core.scalars(KERNEL.name, "init", (0.0,) * len(KERNEL.hyper_names), 0, ())))
_GROUP_STATE = dict(k=0, train_mode=True, weight_sum=_INIT_SCALARS["weight_sum"], lr_max=_INIT_SCALARS["lr_max"],
                    scheduled_lr=0.0)


def _beta1(h: Mapping[str, Any]) -> float:
    return h["betas"][0] if "betas" in h else h["momentum"]


def _check(h: Mapping[str, Any]) -> None:
    check_nonneg(h["lr"], "learning rate")
    if "betas" in h:
        check_betas(h["betas"])
        check_nonneg(h["eps"], "epsilon value")
    else:
        check_nonneg(h["momentum"], "momentum value")
    if not 0.0 < _beta1(h) < 1.0:
        raise ValueError(f"Invalid {'beta1' if 'betas' in h else 'momentum'}: {_beta1(h)} (schedule-free needs "
                         "0 < beta1 < 1: eval() divides by it)")
    check_nonneg(h["weight_decay"], "weight_decay value")
    check_nonneg(h["warmup_steps"], "warmup_steps value")
    check_nonneg(h["r"], "r value")
    check_nonneg(h["weight_lr_power"], "weight_lr_power value")
    check_nonneg(h["k"], "k (steps taken)")
    check_nonneg(h["weight_sum"], "weight_sum value")
    check_bool(h["train_mode"], "train_mode")
    for name in ("lr_max", "scheduled_lr"):
        if not isinstance(h[name], (int, float)) or isinstance(h[name], bool):
            raise ValueError(f"Invalid {name}: {h[name]!r} (expected a real number)")


def _mode(h: Mapping[str, Any]) -> int:
    return KERNEL.mode(weight_decay=h["weight_decay"] != 0, adam="betas" in h)


def _kernel(h: Mapping[str, Any]) -> Kernel:
    return KERNEL if "betas" in h else SGD_KERNEL


def _advance_group(h: Mapping[str, Any]) -> dict[str, Any]:
    """The group's schedule state after one more step: the op's advance_scalars (C++) and, for
    the record, the step's warmed-up lr its coefficients used."""
    kernel, k = _kernel(h), h["k"] + 1
    lr_max, weight_sum = kernel.scalars("advance", h, k, h["lr_max"], h["weight_sum"])
    lr = -kernel.coeffs(h, k, lr_max, weight_sum)["neg_lr"]
    return dict(k=k, scheduled_lr=lr, lr_max=lr_max, weight_sum=weight_sum)


def _coeffs(h: Mapping[str, Any]) -> Mapping[str, float]:
    """Coefficients from the group's hyper-params and its schedule state, already advanced
    (the op's host function, C++)."""
    return _kernel(h).coeffs(h, h["k"], h["lr_max"], h["weight_sum"])


ALGORITHM = Algorithm(KERNEL, _check, _mode, _coeffs, coeff_state=())
SGD_ALGORITHM = Algorithm(SGD_KERNEL, _check, _mode, _coeffs, coeff_state=())


class _ScheduleFree(FusedOptimizer):
    """The step, train() and eval() both flavours share."""

    algorithm = ALGORITHM
    has_step = False
    fresh_state_flag = "first_step"  # z = y when a param's state is created
    step_params_refusal = ("each step advances its groups' schedule (k, lr_max, weight_sum), which all their params "
                           "share, so their params step together")
    low_precision = False  # float32/float64: every train()/eval() swap would round y and x to 16 bits

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        super().__init__(params, {**defaults, **_GROUP_STATE})

    def _scalar_state_names(self) -> list[str]:
        return []  # the op's scalar state is the group's schedule, kept in param_groups

    def _state_init(self, name: str, group: dict[str, Any]) -> float | None:
        return None if name == "z" else 0.0

    def step(self, grads: Optional[Grads] = None, closure: Optional[Closure] = None) -> Any:
        """One step at y (the params must be in train mode). Advances every group's schedule
        state (k, lr_max, weight_sum), as the reference; a refused step changes nothing."""
        hyper_groups = self._hyper_groups()
        if not all(group["train_mode"] for group in hyper_groups):
            raise RuntimeError(f"{type(self).__name__}.step() in eval mode: call opt.train() before stepping "
                               "(the params hold the averaged x now, not the point y grads are taken at)")
        saved = [{name: group[name] for name in _GROUP_STATE} for group in hyper_groups]
        for gi, group in enumerate(hyper_groups):
            try:
                self._check_group(group)
            except ValueError as e:
                raise ValueError(f"param_groups[{gi}]: {e}") from None
            group.update(_advance_group(hyper_values(group)))  # a 0-d lr as its value
        try:
            return super().step(grads, closure)
        except BaseException:
            for group, values in zip(hyper_groups, saved):
                group.update(values)
            raise

    def train(self) -> None:
        """Put y in the params (y = lerp(x, z, 1 - beta1)), for taking grads and stepping."""
        self._swap(True)

    def eval(self) -> None:
        """Put x, the average the method's guarantees are about, in the params
        (x = lerp(y, z, 1 - 1/beta1)), for evaluation and checkpoints of the model."""
        self._swap(False)

    def _swap(self, train: bool) -> None:
        groups = [(g, h) for g, h in zip(self.param_groups, self._hyper_groups()) if h["train_mode"] != train]
        fused = FusedStep(LERP, (self._where or HOST).core)
        for gi, (group, hyper) in enumerate(groups):
            beta1 = _beta1(hyper_values(hyper))
            weight = 1 - beta1 if train else 1 - 1 / beta1
            slot = fused.slot(gi, lambda: {"one_minus_momentum": weight, "momentum": 0.0})
            for p in group["params"]:
                if p in self.state:
                    fused.add(len(fused.items), 0, slot, p, self.state[p]["z"], {})
        fused.run()
        for _, hyper in groups:
            hyper["train_mode"] = train


class ScheduleFreeSGD(_ScheduleFree):
    r"""Schedule-free SGD, Defazio et al. 2024, "The Road Less Scheduled".

    .. math::
        y \leftarrow \mathrm{lerp}(y, z, c_{k+1});\quad y \leftarrow y + \gamma_k(\beta(1 - c_{k+1}) - 1)\,g;\quad
        z \leftarrow z - \gamma_k g;\qquad x = \mathrm{lerp}(y, z, 1 - 1/\beta)

    with ``g = grad + weight_decay * y`` (taken at y, the params in train mode), ``gamma_k`` the lr
    after a linear warmup over ``warmup_steps``, and ``c_{k+1} = w_{k+1} / sum w`` with
    ``w = (k+1)^r lr_max^weight_lr_power``. Matches facebookresearch/schedule_free's
    ``SGDScheduleFree`` (the ``schedulefree`` package; tested against it), defaults included:
    ``lr=1.0``, ``momentum=0.9``, ``r=0``, ``weight_lr_power=2``.

    ``eval()`` swaps the params to x (evaluate and save the model there), ``train()`` back to y;
    ``step()`` in eval mode is refused. Unlike the reference, a new optimizer starts in train mode
    (its first ``train()`` is a no-op anyway: there is no z yet). The schedule's state (``k``,
    ``train_mode``, ``weight_sum``, ``lr_max``, ``scheduled_lr``) lives in each param group, as in
    the reference; per-param state: ``z``. No lr scheduler is needed (warmup is built in); one
    that changes ``lr`` changes the weights through lr_max, as in the reference.

    Numerics: the reference's operations in its order (torch's lerp, fma for ``add(alpha=)``):
    bit-identical to ``schedulefree.SGDScheduleFree`` (foreach=False) in float32 and float64, as
    tested over 30 steps with warmup and weight decay.
    """

    algorithm = SGD_ALGORITHM

    def __init__(self, params: Params, lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0,
                 warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power))


class ScheduleFreeAdamW(_ScheduleFree):
    r"""Schedule-free AdamW, Defazio et al. 2024, "The Road Less Scheduled".

    .. math::
        v \leftarrow \beta_2 v + (1-\beta_2) g^2;\quad
        \hat g = \frac{g}{\sqrt{v / (1-\beta_2^{k+1})} + \epsilon} + \lambda y

    then y and z as in ``ScheduleFreeSGD`` with ``beta = beta1``. Matches
    facebookresearch/schedule_free's ``AdamWScheduleFree`` (the ``schedulefree`` package; tested
    against it), defaults included: ``lr=0.0025``, ``betas=(0.9, 0.999)``, ``eps=1e-8``,
    ``warmup_steps=0``, ``r=0``, ``weight_lr_power=2``; the weight decay is added after the
    normalisation, as there. ``train()``/``eval()``, the group state and the start in train mode
    as in ``ScheduleFreeSGD``; per-param state: ``z``, ``exp_avg_sq``.

    Where implementations disagree: the package's ``AdamWScheduleFreeReference`` and the paper's
    pseudo-code apply the bias correction and warmup the same way; ``RAdamScheduleFree`` and the
    closure variants are not here. The reference divides v by 1 - beta2^(k+1); here v is
    multiplied by its host reciprocal (within an ulp).
    """

    def __init__(self, params: Params, lr: float = 0.0025, betas: Betas = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power))


def _functional(h: dict[str, Any], params: Sequence[Array], grads: Sequence[Array], zs: list[Any],
                exp_avg_sqs: Optional[Sequence[Array]]) -> None:
    _check(h)
    functional_step(KERNEL, _mode(h), lambda t: _coeffs(h), params, grads,
                    {"z": zs, "exp_avg_sq": exp_avg_sqs}, fresh=("z", "first_step"))


def schedule_free_sgd(params: Sequence[Array], grads: Sequence[Array], zs: list[Any], *, lr: float, momentum: float,
                      weight_decay: float, k: int, lr_max: float, weight_sum: float, r: float = 0.0,
                      weight_lr_power: float = 2.0) -> None:
    """Functional schedule-free SGD, one step. ``lr`` is this step's (warmed-up) lr; ``k`` the
    steps taken *including* this one, ``lr_max`` and ``weight_sum`` the schedule state after it
    (the averaging weight is (k^r lr_max^weight_lr_power) / weight_sum). ``None`` entries of ``zs``
    get z = y (a param's first step), written into the list."""
    h = dict(lr=lr, scheduled_lr=lr, momentum=momentum, weight_decay=weight_decay, warmup_steps=0, r=r,
             weight_lr_power=weight_lr_power, k=k, lr_max=lr_max, weight_sum=weight_sum, train_mode=True)
    _functional(h, params, grads, zs, None)


def schedule_free_adamw(params: Sequence[Array], grads: Sequence[Array], zs: list[Any],
                        exp_avg_sqs: Sequence[Array], *, lr: float, beta1: float, beta2: float, eps: float,
                        weight_decay: float, k: int, lr_max: float, weight_sum: float, r: float = 0.0,
                        weight_lr_power: float = 2.0) -> None:
    """Functional schedule-free AdamW, one step; arguments as ``schedule_free_sgd`` (``k`` also
    gives the bias correction 1 - beta2^k)."""
    h = dict(lr=lr, scheduled_lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, warmup_steps=0,
             r=r, weight_lr_power=weight_lr_power, k=k, lr_max=lr_max, weight_sum=weight_sum, train_mode=True)
    _functional(h, params, grads, zs, exp_avg_sqs)


