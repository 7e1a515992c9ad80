"""The shell every single-kernel algorithm shares, once.

An algorithm module says only what is particular to it, as pure functions bundled in an
``Algorithm``: its kernel, its hyper-parameter checks, its mode (the formula-changing flags) and
its per-step coefficients as a function of the hyper-params and the param's scalar state (step,
NAdam's mu_product, ...). ``FusedOptimizer`` turns that into the class (checks at construction, on
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
    """``coeffs(h, *scalars)`` gets the param's scalar state named in ``coeff_state`` (already
    advanced for this step): ``("step",)`` for most, ``()`` when the coefficients never change."""

    kernel: Kernel
    check: Callable[[Hyper], None]
    mode: Callable[[Hyper], int]
    coeffs: Callable[..., Mapping[str, float]]
    coeff_state: tuple[str, ...] = ("step",)

    def functional(self, h: Hyper, params: Sequence[Any], grads: Sequence[Any],
                   states: Mapping[str, Sequence[Any] | None], state_steps: list[Any] | None = None,
                   fresh: tuple[str, str] | None = None, first_step_flag: str | None = None) -> None:
        """Check ``h``, then one fused call (``_common.functional_step``). For algorithms whose
        coefficients depend on the step at most; the others (NAdam, ASGD) call functional_step
        with their own per-param keys."""
        assert self.coeff_state in ((), ("step",)), self.coeff_state
        self.check(h)
        coeffs = (lambda t: self.coeffs(h, t)) if self.coeff_state else (lambda t: self.coeffs(h))
        functional_step(self.kernel, self.mode(h), coeffs, params, grads, states, state_steps, fresh,
                        first_step_flag=first_step_flag)


class FusedOptimizer(Optimizer):
    """An ``Optimizer`` whose step is one fused kernel described by ``algorithm``. Subclasses may
    still override the base's scalar-state hooks (``_advance``, ``_after_step``,
    ``_scalar_state_names``, ``_state_init``)."""

    algorithm: ClassVar[Algorithm]

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

    def _group_coeffs(self, group: dict[str, Any], state: dict[str, Any]) -> Mapping[str, float]:
        return self.algorithm.coeffs(group, *(state[name] for name in self.algorithm.coeff_state))

    def _coeff_key(self, state: dict[str, Any]) -> Any:
        return tuple(state[name] for name in self.algorithm.coeff_state)
