"""The algorithm registry (pyoptk/optim/__init__.py's ALGORITHMS) is the one list: pyoptk,
pyoptk.functional, pyoptk.torch and functional.init take theirs from it, the static names that
type checkers read agree with it, and every pyoptk.torch class has torch's explicit signature."""
import inspect

import pytest

import pyoptk
import pyoptk.functional as F
from pyoptk import optim
from pyoptk.optimizer import Optimizer

torch = pytest.importorskip("torch")
import pyoptk.torch as T  # noqa: E402

ENTRIES = optim.ALGORITHMS
PRECISION = ["state_dtype", "master_weights", "stochastic_rounding", "seed", "block_size", "min_8bit_size",
             "stochastic_codes"]


def test_every_face_lists_the_registry():
    classes = [e.name for e in ENTRIES]
    forms = [e.functional.__name__ for e in ENTRIES if e.functional is not None]
    assert len(set(classes)) == len(classes) and all(issubclass(e.cls, Optimizer) for e in ENTRIES)
    assert [n for n in pyoptk.__all__ if n in classes] == classes
    assert all(getattr(pyoptk, n) is e.cls for n, e in zip(classes, ENTRIES))
    assert F.__all__ == ["init", "update", *forms]
    assert all(getattr(F, e.functional.__name__) is e.functional for e in ENTRIES if e.functional)
    assert T.__all__ == ["TorchOptimizer", "twin", "InBackward", *classes]
    assert all(getattr(T, n).core_class is e.cls for n, e in zip(classes, ENTRIES))
    assert sorted(pyoptk.functional.init.__globals__["algorithms"]()) == sorted(
        e.name.lower() for e in ENTRIES if e.grads == "dense")


def test_the_static_list_type_checkers_read_is_the_registry():
    forms = [e.functional.__name__ for e in ENTRIES if e.functional is not None]
    assert sorted(optim.__all__) == sorted([e.name for e in ENTRIES] + forms + ["SparseGrad"])
    assert not any(hasattr(pyoptk, f) for f in forms) and not any(hasattr(F, e.name) for e in ENTRIES)


def test_registry_flags_agree_with_torch_and_the_classes():
    for e in ENTRIES:
        assert e.in_torch == hasattr(torch.optim, e.name), e.name
        assert e.closure_driven == (e.name == "LBFGS") and T.LBFGS.closure_driven
        assert all(callable(getattr(e.cls, m)) and callable(getattr(getattr(T, e.name), m)) for m in e.twin_methods)
    assert {e.name for e in ENTRIES if not e.low_precision} == {"LAMB", "LARS", "ScheduleFreeSGD", "ScheduleFreeAdamW"}


def test_every_algorithm_has_test_cases():
    """A new algorithm is tested once it has its rows in tests/cases.py's TABLE."""
    from cases import TABLE
    assert sorted(TABLE) == sorted(e.name for e in ENTRIES)
    assert all(row.cases and row.entry.cls is getattr(pyoptk, name) for name, row in TABLE.items())


def test_the_torch_stub_is_current():
    """pyoptk/torch/__init__.pyi (what type checkers see of the twins) is what the registry makes
    now: the build rewrites it (cmake/torch_stub.py), or by hand
    `python -m pyoptk.torch._stub > pyoptk/torch/__init__.pyi`."""
    import pathlib

    from pyoptk.torch._stub import stub
    assert (pathlib.Path(T.__file__).parent / "__init__.pyi").read_text() == stub()


def _shape(signature, drop=()):
    return [(p.name, p.kind, p.default) for p in signature.parameters.values() if p.name not in drop]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_torch_twin_has_torchs_explicit_signature(entry):
    ours = inspect.signature(getattr(T, entry.name).__init__)
    kinds = {p.kind for p in ours.parameters.values()}
    assert not kinds & {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}, ours
    extras = [n for n in ours.parameters if n in PRECISION]
    assert extras == (PRECISION if entry.low_precision else [])  # pyoptk's mixed-precision options
    assert all(ours.parameters[n].kind is inspect.Parameter.KEYWORD_ONLY for n in extras)
    arming = ours.parameters["step_in_backward"]  # pyoptk's step inside the backward, off by default
    assert arming.kind is inspect.Parameter.KEYWORD_ONLY and arming.default is False
    want = inspect.signature(getattr(torch.optim, entry.name).__init__ if entry.in_torch else entry.cls.__init__)
    assert _shape(ours, drop=PRECISION + ["step_in_backward"]) == _shape(want, drop=["precision"]), ours


def test_registry_lists_the_new_ops():
    names = set(pyoptk._core.registry())
    assert {"lion", "adan", "adopt", "ademamix", "schedule_free", "lamb", "lars"} <= names
