"""The shell every single-kernel algorithm shares, once.

An algorithm module says only what is particular to it, as pure functions bundled in an
``Algorithm``: its kernel, its hyper-parameter checks, its mode (the formula-changing flags) and,
where they are not the kernel's own, its per-step coefficients as a function of the hyper-params
and the param's scalar state (step, ...). ``FusedOptimizer`` turns that into the class (checks at construction, on
every new group and every step; mode; coefficients; the coefficient-sharing key), and
``Algorithm.functional`` into the functional form. Class ``__init__``s keep their explicit torch
signatures and docstrings and hand their defaults to ``FusedOptimizer.__init__``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

from .._kernels import Kernel
from .._typing import Params
from ..optimizer import Optimizer
from ._common import functional_step

__all__ = ["Algorithm", "FusedOptimizer"]

Hyper = Mapping[str, Any]  # a param group or the defaults: hyper-parameter name -> value


@dataclass(frozen=True)
class Algorithm:
    """``coeffs``: None where the coefficients are the kernel's own (ops/host_coeffs.h, computed in
    C++ from the group each step), else ``coeffs(h, *scalars)``, which gets the param's scalar
    state named in ``coeff_state`` (already advanced for this step): ``("step",)`` for most,
    ``()`` when the coefficients never change."""

    kernel: Kernel
    check: Callable[[Hyper], None]
    mode: Callable[[Hyper], int]
    coeffs: Callable[..., Mapping[str, float]] | None = None
    coeff_state: tuple[str, ...] = ("step",)

    def step_coeffs(self, h: Hyper, *scalars: Any) -> Mapping[str, float]:
        """The coefficients for scalar state ``scalars`` (as named in ``coeff_state``)."""
        if self.coeffs is not None:
            return self.coeffs(h, *scalars)
        return self.kernel.coeffs(h, *(scalars or (1,)))  # no state read: any step gives them

    def functional(self, h: Hyper, params: Sequence[Any], grads: Sequence[Any],
                   states: Mapping[str, Sequence[Any] | None], state_steps: list[Any] | None = None,
                   fresh: tuple[str, str] | None = None, first_step_flag: str | None = None) -> None:
        """Check ``h``, then one fused call (``_common.functional_step``). For algorithms whose
        coefficients depend on the step at most; the others (NAdam, ASGD) call functional_step
        with their own per-param keys."""
        assert self.coeff_state in ((), ("step",)), self.coeff_state
        self.check(h)
        coeffs = (lambda t: self.step_coeffs(h, t)) if self.coeff_state else (lambda t: self.step_coeffs(h))
        functional_step(self.kernel, self.mode(h), coeffs, params, grads, states, state_steps, fresh,
                        first_step_flag=first_step_flag)


class FusedOptimizer(Optimizer):
    """An ``Optimizer`` whose step is one fused kernel described by ``algorithm``. Subclasses may
    still override ``_state_init``."""

    algorithm: ClassVar[Algorithm]
    plain_lr_key = "lr"  # every fused algorithm checks its lr by check_nonneg alone; no mode reads it

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "algorithm" in cls.__dict__:
            cls.kernel = cls.algorithm.kernel

    def __init__(self, params: Params, defaults: dict[str, Any], **precision: Any) -> None:
        # Pairs (betas, etas, ...) are kept as tuples, whatever sequence the caller passed.
        defaults = {k: tuple(v) if isinstance(v, list) else v for k, v in defaults.items()}
        self.algorithm.check(defaults)
        super().__init__(params, defaults, **precision)

    def _check_group(self, group: dict[str, Any]) -> None:
        self.algorithm.check(group)

    def _group_mode(self, group: dict[str, Any]) -> int:
        return self.algorithm.mode(group)

    def _kernel_coeffs(self) -> bool:
        return self.algorithm.coeffs is None

    def _group_coeffs(self, group: dict[str, Any], state: dict[str, Any]) -> Mapping[str, float]:
        return self.algorithm.step_coeffs(group, *(state[name] for name in self.algorithm.coeff_state))
