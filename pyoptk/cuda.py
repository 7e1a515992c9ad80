"""pyoptk on CUDA GPUs.

Every optimizer whose step is one fused update (SGD, Adam/AdamW, RMSprop, Adagrad, Adadelta,
Adamax, NAdam, RAdam, Rprop, ASGD) and the matching ``pyoptk.functional`` calls take GPU arrays
as they take NumPy ones: anything that speaks DLPack (torch CUDA tensors, JAX, CuPy) or
``__cuda_array_interface__`` (CuPy, Numba), updated in place on its device, with the optimizer
state kept there as :class:`DeviceArray` (itself viewable by those libraries without a copy).
``state_dict()`` returns host NumPy arrays; ``load_state_dict`` copies them back to the device.

The kernels run the very same per-element formulas as the CPU (``csrc/include/pyoptk/ops``),
compiled without fused multiply-add contraction and with IEEE division and square root, on the
legacy default stream (the one torch and CuPy use unless told otherwise; a producer's stream given
through ``__cuda_array_interface__`` is waited for). A step is asynchronous, like torch's.

torch parameters require grad and then refuse to export themselves: pass ``p.detach()`` (same
memory). Build with ``pip install . -Ccmake.define.PYOPTK_CUDA=ON`` (the default, AUTO, builds the
kernels whenever a CUDA compiler is found).
"""
from __future__ import annotations

from typing import Any

from . import _core

_cuda = getattr(_core, "cuda", None)

__all__ = ["built", "is_available", "device_count", "synchronize", "DeviceArray", "empty", "full", "from_numpy"]


def built() -> bool:
    """Whether this pyoptk was built with its CUDA kernels."""
    return _cuda is not None


def device_count() -> int:
    """CUDA devices usable now (0 without the kernels, a driver or a GPU)."""
    return _cuda.device_count() if _cuda is not None else 0


def is_available() -> bool:
    """Whether the CUDA kernels were built and a device is usable."""
    return device_count() > 0


def unavailable_reason() -> str:
    """Why ``is_available()`` is False ('' when it is True)."""
    if _cuda is None:
        return "pyoptk was built without its CUDA kernels (pip install . -Ccmake.define.PYOPTK_CUDA=ON)"
    return _cuda.unavailable_reason()


def synchronize(device: int = 0) -> None:
    """Wait until every queued step on ``device`` has finished."""
    _require().synchronize(device)


def _require() -> Any:
    if not is_available():
        raise RuntimeError(f"pyoptk.cuda is not available: {unavailable_reason()}")
    return _cuda


if _cuda is not None:
    DeviceArray = _cuda.DeviceArray
    empty, full, from_numpy = _cuda.empty, _cuda.full, _cuda.from_numpy
else:
    class DeviceArray:  # type: ignore[no-redef]
        """Placeholder: this build has no CUDA kernels, so no device array can exist."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError(unavailable_reason())

    def empty(*args: Any, **kwargs: Any) -> Any:
        """``empty(shape, dtype, device=0)``: an uninitialised DeviceArray (this build has none: raises)."""
        raise RuntimeError(unavailable_reason())

    def full(*args: Any, **kwargs: Any) -> Any:
        """``full(shape, dtype, value, device=0)``: a DeviceArray filled with value (this build has none: raises)."""
        raise RuntimeError(unavailable_reason())

    def from_numpy(*args: Any, **kwargs: Any) -> Any:
        """``from_numpy(array, device=0)``: a DeviceArray copy of a host array (this build has none: raises)."""
        raise RuntimeError(unavailable_reason())
