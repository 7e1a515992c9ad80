"""Where an optimizer's arrays live: host memory (NumPy, ``_core``) or one CUDA device
(``_core.cuda``). The Optimizer asks a ``Location`` everything that depends on it (which compiled
module steps, how a state array is made, copied to the host for a checkpoint, loaded back), so
the rest of the Python layer is the same for both.
"""
from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

import numpy as np

from . import _core, cuda
from ._precision import BFLOAT16, PARAM_DTYPES

_cuda = getattr(_core, "cuda", None)  # present in builds with the CUDA kernels

_DLPACK_CUDA_DEVICES = (2, 13)  # kDLCUDA, kDLCUDAManaged


def is_device_array(obj: Any) -> bool:
    """A GPU array by its protocols alone (no CUDA call): DLPack on a CUDA device, or
    ``__cuda_array_interface__``. Looked up on the type, so a property that raises (torch's, for a
    tensor that requires grad) is not run."""
    if isinstance(obj, np.ndarray):
        return False
    kind = type(obj)
    if hasattr(kind, "__dlpack__") and hasattr(kind, "__dlpack_device__"):
        return obj.__dlpack_device__()[0] in _DLPACK_CUDA_DEVICES
    return hasattr(kind, "__cuda_array_interface__")


def fill_value(value: Optional[float]) -> Optional[float]:
    return None if value is None else float(value)


class Host:
    """NumPy arrays in host memory."""

    core = _core
    name = "the host"

    def describe(self, p: np.ndarray) -> tuple[tuple[int, ...], np.dtype]:
        return p.shape, p.dtype

    def extent(self, p: np.ndarray) -> tuple[int, int]:
        start = p.__array_interface__["data"][0]
        return start, start + p.nbytes

    def new(self, shape: Sequence[int], dtype: np.dtype, value: Optional[float]) -> np.ndarray:
        # np.zeros maps untouched pages: the kernel's threads touch them first.
        if value is None:
            return np.empty(shape, dtype)
        return np.zeros(shape, dtype) if value == 0 else np.full(shape, value, dtype)

    def to_host(self, a: np.ndarray) -> np.ndarray:
        return a  # a reference to the live state, as torch's state_dict gives

    def load(self, value: np.ndarray) -> np.ndarray:
        return value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Host)

    def __hash__(self) -> int:
        return hash("host")


class CudaDevice:
    """Arrays in one CUDA device's memory: the param's own (any DLPack / CUDA-array-interface
    array) and pyoptk's ``DeviceArray`` for the state."""

    def __init__(self, device: int):
        self.device = device
        self.core = _cuda
        self.name = f"cuda:{device}"

    def describe(self, p: Any) -> tuple[tuple[int, ...], np.dtype]:
        info = _cuda.describe(p, "param")
        return tuple(info["shape"]), info["dtype"]

    def extent(self, p: Any) -> tuple[int, int]:
        info = _cuda.describe(p, "param")
        return info["data"], info["data"] + info["nbytes"]

    def new(self, shape: Sequence[int], dtype: np.dtype, value: Optional[float]) -> Any:
        return _cuda.pieces([tuple(shape)], dtype, fill_value(value), self.device)[0]

    def pieces(self, shapes: list[tuple[int, ...]], dtype: np.dtype, value: Optional[float]) -> list:
        """One allocation for a whole group's state of one name (each piece 256-byte aligned)."""
        return _cuda.pieces(shapes, dtype, fill_value(value), self.device)

    def to_host(self, a: Any) -> np.ndarray:
        return a.to_numpy()  # checkpoints are portable host arrays

    def load(self, value: np.ndarray) -> Any:
        return _cuda.from_numpy(value, self.device)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CudaDevice) and other.device == self.device

    def __hash__(self) -> int:
        return hash(("cuda", self.device))


HOST = Host()


def location_of(p: Any, where: str) -> Host | CudaDevice:
    """Where ``p`` lives, with the checks every param gets (dtype, contiguity, writeable), each
    failure a clear error naming ``where``."""
    if isinstance(p, np.ndarray):
        if isinstance(p, np.ma.MaskedArray):
            raise TypeError(f"{where} is a numpy.ma.MaskedArray; pyoptk would ignore its mask: pass its .data "
                            "(or np.ma.filled(...)) explicitly")
        if p.dtype not in PARAM_DTYPES:
            raise TypeError(f"{where} has dtype {p.dtype}; pyoptk updates float32, float64, bfloat16 "
                            "(ml_dtypes) and float16 arrays")
        if not p.flags.c_contiguous:
            raise ValueError(f"{where} is not C-contiguous; pyoptk updates arrays in place and never through a copy")
        if not p.flags.aligned:
            raise ValueError(f"{where} is not aligned to its {p.itemsize}-byte items (a view at an odd byte offset); "
                             "pass an aligned copy (np.array(...))")
        if not p.flags.writeable:
            raise ValueError(f"{where} is read-only")
        return HOST
    if not is_device_array(p):
        return location_of(host_view(p, where), where)
    if not cuda.is_available():
        raise RuntimeError(f"{where} is a CUDA array, but pyoptk.cuda is not available: {cuda.unavailable_reason()}")
    info = _cuda.describe(p, where)  # raises for a bad dtype or layout
    if not info["writeable"]:
        raise ValueError(f"{where} is read-only")
    return CudaDevice(info["device"])


def common_location(params: list, label: str = "") -> Host | CudaDevice | None:
    """The one place all ``params`` live (None for no params), each checked by ``location_of``;
    a clear error when they mix host and CUDA arrays or span devices. ``label`` follows "param i"
    in messages (" of the new group")."""
    on_gpu = [is_device_array(p) for p in params]  # protocols only: refused before any CUDA call
    if any(on_gpu) and not all(on_gpu):
        h, c = on_gpu.index(False), on_gpu.index(True)
        raise ValueError(f"params{label} mix host (NumPy) and CUDA arrays: param {h} is a host "
                         f"{type(params[h]).__name__}, param {c} a CUDA {type(params[c]).__name__}; "
                         "one fused step runs on one device")
    places = [location_of(p, f"param {i}{label}") for i, p in enumerate(params)]
    for i, place in enumerate(places):
        if place != places[0]:
            raise ValueError(f"params{label} span devices: param 0 is on {places[0].name}, param {i} on {place.name}")
    return places[0] if places else None


_ACCEPTED = ("a numpy.ndarray, a CPU array speaking DLPack or the buffer protocol (a torch CPU tensor, "
             "a memoryview...), or a CUDA array (DLPack or __cuda_array_interface__)")


def is_torch_tensor(obj: Any) -> bool:
    """A torch tensor, told without importing torch (pyoptk never does)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def torch_view(t: Any, where: str) -> np.ndarray:
    """A NumPy view of a torch CPU tensor through torch's own ``numpy()``, after which torch
    refuses to resize the tensor's storage while the view lives (after a DLPack export it
    would not, and a resize frees the memory under the view). Refused when the storage no longer
    holds the tensor (``untyped_storage().resize_()`` shrinks it under its tensors)."""
    torch = sys.modules["torch"]
    if t.layout != torch.strided:
        raise TypeError(f"{where} is a {t.layout} tensor; pyoptk steps dense arrays (torch's row-sparse grads of "
                        "nn.Embedding(sparse=True) go to SparseAdam)")
    if t.requires_grad:
        raise TypeError(f"{where} is a {type(t).__name__} that requires grad, which torch exports to no other "
                        "library: pass p.detach() (the same memory), or use pyoptk.torch, which steps torch "
                        "params as torch.optim does")
    if t.numel() > 0:
        extent = 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride()))
        held = t.untyped_storage().nbytes() - t.storage_offset() * t.element_size()
        if min(t.stride(), default=0) < 0 or held < extent * t.element_size():
            raise ValueError(f"{where}: its storage ({t.untyped_storage().nbytes()} bytes) no longer holds its "
                             f"{t.numel()} elements (shrunk with untyped_storage().resize_()?)")
    try:
        return t.view(torch.int16).numpy().view(BFLOAT16) if t.dtype == torch.bfloat16 else t.numpy()
    except (RuntimeError, TypeError) as e:  # a conjugate / negative view, a dtype NumPy lacks...
        raise TypeError(f"{where}: NumPy cannot view this torch tensor ({e})") from None


def host_view(obj: Any, where: str) -> np.ndarray:
    """A NumPy view, zero-copy, of a host array that is not a float ndarray: anything speaking
    DLPack or the buffer protocol, and complex arrays (stepped as their real view of shape
    (..., 2), torch's ``view_as_real``). Updates through the view land in ``obj``. A clear error otherwise."""
    if isinstance(obj, np.ndarray):
        a = obj
    elif is_torch_tensor(obj) and obj.device.type == "cpu":
        a = torch_view(obj, where)
    elif hasattr(type(obj), "__dlpack__"):
        try:
            a = np.from_dlpack(obj)
        except Exception as e:  # whatever the producer raises, the message names the param
            raise TypeError(f"{where} is a {type(obj).__name__} that NumPy cannot read through DLPack ({e})") from None
        if not a.flags.writeable:
            raise ValueError(f"{where} is a read-only {type(obj).__name__} (its library exports it as immutable, "
                             "as JAX does): pyoptk updates params in place; pass a writeable copy "
                             "(np.array(x)) and read the updated values back from it")
    else:
        try:
            a = np.asarray(memoryview(obj))
        except TypeError:
            raise TypeError(f"{where} is a {type(obj).__name__}, expected {_ACCEPTED}") from None
    if a.dtype.kind == "c":
        if not a.flags.c_contiguous:
            raise ValueError(f"{where} is a complex array that is not C-contiguous; pyoptk steps complex "
                             "arrays as their real view, in place, and never through a copy")
        a = a[..., None].view(a.real.dtype)  # shape (..., 2): torch's view_as_real
    return a


def host_views(params: list) -> list:
    """Params as pyoptk stores them: ndarrays and CUDA arrays as given, other host arrays (DLPack,
    buffer protocol, complex) as their NumPy views (real views for complex)."""
    return [p if (isinstance(p, np.ndarray) and p.dtype.kind != "c") or is_device_array(p)
            else host_view(p, f"param {i}") for i, p in enumerate(params)]


def split_names(params: list) -> tuple[list | None, list]:
    """torch's named params: a list of (name, array) pairs (``model.named_parameters()``) gives
    (names, arrays); plain arrays give (None, arrays). Named and unnamed mixed is refused."""
    named = [isinstance(p, tuple) for p in params]
    if not any(named):
        return None, params
    if not all(named) or any(len(p) != 2 or not isinstance(p[0], str) for p in params):
        raise ValueError("all optimizer params should be with/without names: give (name, array) pairs for every "
                         "param of a group, or none")
    return [p[0] for p in params], [p[1] for p in params]
