"""One BLAS thread around the matrix products a step runs through NumPy (Muon's Newton–Schulz).

OpenBLAS / MKL split a product over their own threads (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS),
and the split changes the summation order, so the bits: pinned to one thread, the result
depends only on the BLAS library and the CPU, not on any thread count. The limit is
process-wide (BLAS has no per-call setting), so it is reference-counted: held from the first
caller's entry to the last caller's exit, whichever threads they run on.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

_lock = threading.Lock()
_holders = 0
_limiter: Any = None
_controller: Any = None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    global _holders, _limiter, _controller
    with _lock:
        if _holders == 0:
            if _controller is None:  # scans the loaded libraries once (~1 ms)
                from threadpoolctl import ThreadpoolController
                _controller = ThreadpoolController()
            _limiter = _controller.limit(limits=1, user_api="blas")  # ~10 µs
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _limiter.restore_original_limits()
                _limiter = None
