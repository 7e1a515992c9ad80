"""Shared fixtures: every test that runs kernels can be repeated on each ISA and thread count.
Also a summary line counting the tests skipped for lack of torch (the test extra leaves it out)."""
import numpy as np
import pytest

import pyoptk
from pyoptk import _core

ISAS = pyoptk.available_isas()
THREADS = [1, 2]
DTYPES = [np.float32, np.float64]
# 0 and 1; below, at and past the AVX2 and AVX-512 widths; odd sizes past the 128-element
# scheduling block; and one large enough to be split across threads.
SIZES = [0, 1, 7, 15, 16, 17, 1023, 100003]


@pytest.fixture
def kernel_config():
    """Returns a context setter: config(isa, threads) -> applies it; restores the defaults after.
    With 2 threads the parallel threshold is dropped to 0 so even small steps are split."""
    saved = (_core.isa(), _core.get_num_threads(), _core._get_min_parallel())

    def apply(isa, threads):
        pyoptk.set_isa(isa)
        pyoptk.set_num_threads(threads)
        _core._set_min_parallel(0 if threads > 1 else saved[2])

    yield apply
    pyoptk.set_isa(saved[0])
    pyoptk.set_num_threads(saved[1])
    _core._set_min_parallel(saved[2])


@pytest.fixture
def all_isas_threads():
    """Yields (isa, threads) pairs to run under; small arrays split across threads too."""
    isa, threads, min_parallel = pyoptk.isa(), pyoptk.get_num_threads(), pyoptk._core._get_min_parallel()
    pyoptk._core._set_min_parallel(0)

    def combos():
        for name in pyoptk.available_isas():
            for n in (1, 2):
                pyoptk.set_isa(name)
                pyoptk.set_num_threads(n)
                yield name, n

    try:
        yield combos
    finally:
        pyoptk.set_isa(isa)
        pyoptk.set_num_threads(threads)
        pyoptk._core._set_min_parallel(min_parallel)


@pytest.fixture
def ns_in_dtype(monkeypatch):
    """torch's Muon runs Newton–Schulz in bfloat16; pyoptk in the param dtype (documented).
    For a tight comparison, torch's is run in the param dtype too (as the NumPy API's tests do)."""
    import torch

    def ns(grad, ns_coefficients, ns_steps, eps):
        a, b, c = ns_coefficients
        x = grad.T if grad.size(0) > grad.size(1) else grad.clone()
        x = x / x.norm().clamp(min=eps)
        for _ in range(ns_steps):
            gram = x @ x.T
            x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
        return x.T if grad.size(0) > grad.size(1) else x
    monkeypatch.setattr(torch.optim._muon, "_zeropower_via_newtonschulz", ns)


def _skipped_for_torch(report) -> bool:
    # pytest.importorskip("torch") words its reason "could not import 'torch': ..."
    return report.skipped and isinstance(report.longrepr, tuple) and "could not import 'torch'" in report.longrepr[2]


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    tests = [r for r in skipped if _skipped_for_torch(r) and r.when != "collect"]
    modules = sorted({r.nodeid for r in skipped if _skipped_for_torch(r) and r.when == "collect"})
    if not tests and not modules:
        return
    whole = f" and {len(modules)} whole module(s) ({', '.join(modules)})" if modules else ""
    terminalreporter.write_line(
        f"{len(tests)} test(s){whole} skipped because torch is not installed: the torch-parity tests. "
        "Run them with: pip install torch==2.13.0 && pytest -q", yellow=True)
